//! A Delta (incremental) ADS stream: per type, the server tracks which resources Envoy
//! holds at which version and sends only those that changed, plus the names removed.
//! Subscriptions grow and shrink with `resource_names_subscribe` / `_unsubscribe`; a
//! reconnecting Envoy states what it holds (`initial_resource_versions`). A NACK puts
//! back what Envoy held before the refused response, so the next change is sent again
//! relative to that.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use envoy_types::pb::envoy::config::core::v3::Node;

use super::snapshot::set_version;
use super::status::Protocol;
use super::stream::{self, Flavor, Stream};
use super::types::ResourceType;

/// A response not answered yet.
#[derive(Debug)]
struct Pending {
    nonce: String,
    version: String,
    /// What Envoy held before it (restored on a NACK).
    held_before: BTreeMap<String, String>,
}

/// One type on a stream.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What Envoy holds: name -> version.
    held: BTreeMap<String, String>,
    pending: Option<Pending>,
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// The Delta rules, per type.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    types: BTreeMap<ResourceType, TypeState>,
}

type Sender = stream::Sender<DeltaDiscoveryResponse>;

impl Flavor for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Delta;

    fn node_of(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    async fn handle(
        &mut self,
        stream: &mut Stream,
        request: DeltaDiscoveryRequest,
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

impl Delta {
    async fn take(
        &mut self,
        stream: &mut Stream,
        request: DeltaDiscoveryRequest,
        tx: &Sender,
    ) -> Result<(), ()> {
        let Some(ty) = ResourceType::from_url(&request.type_url) else {
            tracing::debug!(node = %stream.node.id, type_url = %request.type_url, "a type this server does not serve; not answered");
            return Ok(());
        };
        let first = !self.types.contains_key(&ty);
        let resubscribed = !request.resource_names_subscribe.is_empty()
            || !request.resource_names_unsubscribe.is_empty();
        let state = self.types.entry(ty).or_default();
        if first {
            state.held = request.initial_resource_versions.into_iter().collect();
            state.wildcard =
                ty.wildcard_by_default() && request.resource_names_subscribe.is_empty();
        }
        for name in request.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                state.names.insert(name);
            }
        }
        for name in request.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(&name);
            }
        }
        // Envoy forgets what it no longer wants.
        let unwanted: Vec<String> = state
            .held
            .keys()
            .filter(|n| !state.wants(n))
            .cloned()
            .collect();
        for name in unwanted {
            state.held.remove(&name);
        }
        if !request.response_nonce.is_empty() {
            let answered = state.pending.take_if(|p| p.nonce == request.response_nonce);
            if let Some(pending) = answered {
                let error = request.error_detail.map(|e| e.message);
                if error.is_some() {
                    state.held = pending.held_before;
                }
                stream
                    .ctx
                    .answered(&stream.node, ty, &pending.version, error);
            }
        }
        // A NACKed version is not sent again until something changes.
        if first || resubscribed {
            self.send_type(stream, ty, tx, first).await
        } else {
            Ok(())
        }
    }

    /// Sends what changed for `ty` relative to what Envoy holds (or an empty response
    /// when `always`, so a first subscription is answered).
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
        let wanted: Vec<_> = snapshot
            .of(ty)
            .iter()
            .filter(|(name, _)| state.wants(name))
            .collect();
        let changed: Vec<Resource> = wanted
            .iter()
            .filter(|(name, e)| state.held.get(*name) != Some(&e.version))
            .map(|(name, e)| Resource {
                name: (*name).clone(),
                version: e.version.clone(),
                resource: Some(e.body.clone()),
                ..Default::default()
            })
            .collect();
        let removed: Vec<String> = state
            .held
            .keys()
            .filter(|n| !wanted.iter().any(|(name, _)| name == n))
            .cloned()
            .collect();
        if !always && changed.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let version = set_version(wanted.iter().copied());
        let nonce = stream.next_nonce();
        let held_now = wanted
            .iter()
            .map(|(name, e)| ((*name).clone(), e.version.clone()))
            .collect();
        let held_before = std::mem::replace(&mut state.held, held_now);
        state.pending = Some(Pending {
            nonce: nonce.clone(),
            version: version.clone(),
            held_before,
        });
        tracing::debug!(node = %stream.node.id, %ty, %version, changed = changed.len(), removed = removed.len(), "push");
        stream.ctx.sent(ty, &version);
        let response = DeltaDiscoveryResponse {
            system_version_info: version,
            resources: changed,
            type_url: ty.url(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        };
        tx.send(Ok(response)).await.map_err(|_| ())
    }
}
