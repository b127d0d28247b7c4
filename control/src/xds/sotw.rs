//! A State of the World ADS stream: per type, every response holds all the resources
//! Envoy subscribed to, with a version (hash of what it holds) and a nonce; a request
//! naming the last nonce ACKs or (with `error_detail`) NACKs it, one naming an older
//! nonce is stale and ignored. A type is sent again when what it holds changes or its
//! subscription does; a NACKed version is not sent again.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use envoy_types::pb::envoy::config::core::v3::Node;

use super::snapshot::set_version;
use super::status::Protocol;
use super::stream::{self, Flavor, Stream};
use super::types::ResourceType;
use std::collections::BTreeMap;

/// Which resources of a type Envoy asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Subscription {
    All,
    Names(BTreeSet<String>),
}

impl Subscription {
    /// The subscription a request states: `*`, or (for listeners and clusters) an empty
    /// list, is every resource; otherwise the names listed.
    pub(crate) fn of(ty: ResourceType, names: &[String]) -> Subscription {
        if names.iter().any(|n| n == "*") || (names.is_empty() && ty.wildcard_by_default()) {
            Subscription::All
        } else {
            Subscription::Names(names.iter().cloned().collect())
        }
    }

    pub(crate) fn wants(&self, name: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Names(names) => names.contains(name),
        }
    }
}

/// One type on a stream: what Envoy wants and the last response (nonce, version).
#[derive(Debug)]
struct TypeState {
    subscription: Subscription,
    sent: Option<(String, String)>,
}

/// The State of the World rules, per type.
#[derive(Debug, Default)]
pub(crate) struct Sotw {
    types: BTreeMap<ResourceType, TypeState>,
}

type Sender = stream::Sender<DiscoveryResponse>;

impl Flavor for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Sotw;

    fn node_of(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    async fn handle(
        &mut self,
        stream: &mut Stream,
        request: DiscoveryRequest,
        tx: &Sender,
    ) -> Result<(), ()> {
        self.take(stream, request, tx).await
    }

    async fn push(
        &mut self,
        stream: &mut Stream,
        ty: ResourceType,
        tx: &Sender,
        always: bool,
    ) -> Result<(), ()> {
        self.send_type(stream, ty, tx, always).await
    }

    fn subscribed(&self, ty: ResourceType) -> bool {
        self.types.contains_key(&ty)
    }
}

impl Sotw {
    async fn take(
        &mut self,
        stream: &mut Stream,
        request: DiscoveryRequest,
        tx: &Sender,
    ) -> Result<(), ()> {
        let Some(ty) = ResourceType::from_url(&request.type_url) else {
            tracing::debug!(node = %stream.node.id, type_url = %request.type_url, "a type this server does not serve; not answered");
            return Ok(());
        };
        let first = !self.types.contains_key(&ty);
        let subscription = Subscription::of(ty, &request.resource_names);
        let state = self.types.entry(ty).or_insert_with(|| TypeState {
            subscription: subscription.clone(),
            sent: None,
        });
        if !request.response_nonce.is_empty() {
            match &state.sent {
                Some((nonce, version)) if *nonce == request.response_nonce => {
                    let error = request.error_detail.map(|e| e.message);
                    stream.ctx.answered(&stream.node, ty, version, error);
                }
                // An answer to an older response: Envoy has a newer one coming.
                _ => return Ok(()),
            }
        }
        let resubscribed = state.subscription != subscription;
        state.subscription = subscription;
        if first || resubscribed {
            self.send_type(stream, ty, tx, first).await
        } else {
            Ok(())
        }
    }

    /// Sends `ty` when what Envoy would hold differs from the last response (or always).
    async fn send_type(
        &mut self,
        stream: &mut Stream,
        ty: ResourceType,
        tx: &Sender,
        always: bool,
    ) -> Result<(), ()> {
        let Some(state) = self.types.get_mut(&ty) else {
            return Ok(());
        };
        let snapshot = stream.snapshot.clone();
        let entries: Vec<_> = snapshot
            .of(ty)
            .iter()
            .filter(|(name, _)| state.subscription.wants(name))
            .collect();
        let version = set_version(entries.iter().copied());
        if !always && state.sent.as_ref().is_some_and(|(_, v)| *v == version) {
            return Ok(());
        }
        let nonce = stream.next_nonce();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: entries.iter().map(|(_, e)| e.body.clone()).collect(),
            type_url: ty.url(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        tracing::debug!(node = %stream.node.id, %ty, %version, resources = response.resources.len(), "push");
        state.sent = Some((nonce, version.clone()));
        stream.ctx.sent(ty, &version);
        tx.send(Ok(response)).await.map_err(|_| ())
    }
}
