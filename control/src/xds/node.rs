//! Who is at the other end of an xDS stream: Envoy's node id and the labels that select
//! its resources, and what a stream task needs from the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use tonic::Status;

use super::snapshot::{EnvoySnapshot, SnapshotCache};
use crate::ControlPlane;

/// The metadata field holding a node's labels (a map of strings), as meshwork proxies
/// send `node.labels`.
pub const LABELS_FIELD: &str = "labels";

/// An Envoy node as the first request of its stream described it.
#[derive(Clone, Debug)]
pub struct EnvoyNode {
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

impl EnvoyNode {
    /// The node of a stream's first request: an id is required; labels are the string
    /// fields of `metadata.labels` (anything else there is an error, not ignored).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` naming what is wrong.
    pub fn from_first(node: Option<&Node>) -> Result<EnvoyNode, Status> {
        let node = node.filter(|n| !n.id.is_empty()).ok_or_else(|| {
            Status::invalid_argument("the first request must carry the node with its id")
        })?;
        let mut labels = BTreeMap::new();
        let field = node
            .metadata
            .as_ref()
            .and_then(|m| m.fields.get(LABELS_FIELD));
        if let Some(value) = field {
            let Some(Kind::StructValue(map)) = &value.kind else {
                return Err(Status::invalid_argument(
                    "node.metadata.labels must be a map of strings",
                ));
            };
            for (key, value) in &map.fields {
                match &value.kind {
                    Some(Kind::StringValue(s)) => {
                        labels.insert(key.clone(), s.clone());
                    }
                    _ => {
                        return Err(Status::invalid_argument(format!(
                            "node.metadata.labels.{key} must be a string"
                        )));
                    }
                }
            }
        }
        Ok(EnvoyNode {
            id: node.id.clone(),
            labels,
        })
    }
}

/// What a stream task shares with the server.
#[derive(Debug)]
pub struct StreamContext {
    pub control: Arc<ControlPlane>,
    pub cache: Arc<SnapshotCache>,
    pub id: u64,
    pub peer: String,
}

impl StreamContext {
    /// The current translation of what `node` is served.
    pub fn snapshot(&self, node: &EnvoyNode) -> Arc<EnvoySnapshot> {
        let catalog = self.control.catalog.borrow().clone();
        self.cache.get(&catalog.for_node(&node.labels))
    }
}

impl StreamContext {
    /// Lists the stream in `/status` (until [`StreamContext::closed`]).
    pub fn opened(&self, node: &EnvoyNode, protocol: super::status::Protocol) {
        tracing::info!(node = %node.id, stream = self.id, peer = %self.peer, ?protocol, "Envoy subscribed");
        self.control.envoy.insert(
            self.id,
            super::status::EnvoyStream {
                id: node.id.clone(),
                labels: node.labels.clone(),
                peer: self.peer.clone(),
                protocol,
                types: BTreeMap::new(),
                refused: Vec::new(),
            },
        );
    }

    /// Takes the stream off `/status`.
    pub fn closed(&self, node: &EnvoyNode) {
        tracing::info!(node = %node.id, stream = self.id, "Envoy disconnected");
        self.control.envoy.remove(self.id);
    }

    /// Shows what this node's snapshot refused.
    pub fn show_refused(&self, snapshot: &EnvoySnapshot) {
        let refused = snapshot.refused.clone();
        self.control.envoy.update(self.id, |s| s.refused = refused);
    }

    /// Records an ACK or a NACK of `version` of `ty`.
    pub fn answered(
        &self,
        node: &EnvoyNode,
        ty: super::types::ResourceType,
        version: &str,
        error: Option<String>,
    ) {
        let version = version.to_string();
        match error {
            None => {
                tracing::debug!(node = %node.id, %ty, %version, "ACK");
                self.control.envoy.update_type(self.id, ty, |t| {
                    t.acked_version = Some(version);
                    t.last_nack = None;
                });
            }
            Some(error) => {
                tracing::warn!(node = %node.id, %ty, %version, %error, "Envoy NACK");
                self.control.envoy.update_type(self.id, ty, |t| {
                    t.last_nack = Some(super::status::XdsNack { version, error });
                });
            }
        }
    }

    /// Records that `version` of `ty` was sent.
    pub fn sent(&self, ty: super::types::ResourceType, version: &str) {
        let version = version.to_string();
        self.control
            .envoy
            .update_type(self.id, ty, |t| t.sent_version = Some(version));
    }
}
