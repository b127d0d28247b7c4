//! One ADS stream: subscribe (resuming with the versions held), then for each response
//! translate, apply, ACK or NACK, and follow the EDS and RDS names in use.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value as ProtoValue, value::Kind as ProtoKind};
use envoy_types::pb::google::rpc::Status;
use meshwork_config::discovery::kind_of;
use meshwork_config::resource::Key;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::state::{Received, XdsState};
use crate::control_plane::session::{SessionError, connect};
use crate::control_plane::tls::ControlPlaneTls;
use crate::control_plane::{Link, Update};
use crate::dataplane::ApplyConfig;
use crate::readiness::Readiness;

/// The xDS node of this proxy: its id, and its labels as metadata.
pub(crate) fn node(node: &meshwork_config::model::Node) -> Node {
    let fields = node
        .labels
        .iter()
        .map(|(k, v)| {
            let value = ProtoValue {
                kind: Some(ProtoKind::StringValue(v.clone())),
            };
            (k.clone(), value)
        })
        .collect();
    Node {
        id: node.id.clone(),
        metadata: Some(Struct { fields }),
        user_agent_name: "meshwork".into(),
        ..Node::default()
    }
}

/// Runs one stream until it ends; `state` carries over to the next one.
///
/// # Errors
/// When the server cannot be reached or the stream fails.
pub(crate) async fn run(
    dataplane: &Arc<dyn ApplyConfig>,
    readiness: &Readiness,
    link: &Arc<Link>,
    state: &mut XdsState,
    node: &Node,
    tls: Option<&Arc<ControlPlaneTls>>,
) -> Result<(), SessionError> {
    let channel = connect(link, tls).await?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(crate::control_plane::MAX_RESPONSE_BYTES);
    // Unbounded: this task is the only sender, and sends at most a few requests per
    // response it reads.
    let (requests, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    for request in state.initial_requests(node) {
        requests.send(request).map_err(|_| SessionError::Stopped)?;
    }
    let mut responses = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    link.set_connected(true);
    tracing::info!(address = %link.address, "subscribed to the xDS server");
    while let Some(response) = responses.message().await? {
        let (type_url, nonce) = (response.type_url.clone(), response.nonce.clone());
        let received = match state.receive(response) {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(%type_url, %error, "rejected an xDS response");
                let nack = DiscoveryRequest {
                    type_url,
                    response_nonce: nonce,
                    error_detail: Some(Status {
                        code: 3,
                        message: error,
                        details: Vec::new(),
                    }),
                    ..DiscoveryRequest::default()
                };
                requests.send(nack).map_err(|_| SessionError::Stopped)?;
                continue;
            }
        };
        let mut errors = received.errors.clone();
        if state.is_ready() {
            errors.extend(apply(dataplane, link, state, &received).await?);
            if state.is_warm() {
                readiness.control_plane_synced();
            }
        }
        for (name, error) in &errors {
            tracing::warn!(type_url = %received.kind.type_url(), %name, %error, "NACK: cannot take this xDS resource");
        }
        let answer = state.answer(&received, &errors);
        requests.send(answer).map_err(|_| SessionError::Stopped)?;
        for request in state.resubscriptions() {
            requests.send(request).map_err(|_| SessionError::Stopped)?;
        }
        link.set_protocol_view(state.view());
    }
    Ok(())
}

/// Applies what `state` holds; returns the resources of `received` rejected when
/// applied (by xDS name). Rejections of resources from earlier responses are recorded
/// in their standing.
async fn apply(
    dataplane: &Arc<dyn ApplyConfig>,
    link: &Arc<Link>,
    state: &mut XdsState,
    received: &Received,
) -> Result<Vec<(String, String)>, SessionError> {
    let resources = state.resources();
    let offered: BTreeSet<Key> = resources.iter().map(|r| r.key.clone()).collect();
    // Until every endpoint and route table referred to arrived, what is held stays
    // (a listener keeps serving its previous routes while its new ones warm up, as in
    // Envoy); once warm, what the server no longer sends is removed.
    let removed = if state.is_warm() {
        link.held_keys()
            .into_iter()
            .filter(|k| !offered.contains(k))
            .collect()
    } else {
        Vec::new()
    };
    let update = Update {
        version: state.version_with(received),
        removed,
        changed: resources,
        malformed: Vec::new(),
    };
    let (d, l) = (dataplane.clone(), link.clone());
    // Validating and binding is blocking work: keep it off the workers.
    let rejected = tokio::task::spawn_blocking(move || l.apply(d.as_ref(), update))
        .await
        .map_err(|_| SessionError::Stopped)?;
    let mut errors = Vec::new();
    for r in rejected {
        let Some(kind) = kind_of(r.kind) else {
            continue;
        };
        let (origin, name) = state.origin(&Key::new(kind, r.name), received.kind, &received.names);
        if origin == received.kind && received.names.contains(&name) {
            errors.push((name, r.error));
        } else {
            state.mark_rejected(origin, &name, &r.error);
        }
    }
    Ok(errors)
}
