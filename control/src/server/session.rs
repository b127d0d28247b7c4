//! One proxy's discovery stream: what it holds, what to send it when the catalog
//! changes, and its ACKs and NACKs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use meshwork_config::discovery::{DiscoveryRequest, Node, ResourceRef, kind_of};
use meshwork_config::resource::{Key, Resource};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::encoded::{EncodedResources, EncodedResponse};
use crate::ControlPlane;
use crate::catalog::NodeSnapshot;
use crate::nodes::{Nack, NodeStatus, Rejected};

/// Where a stream's responses are queued for its body.
pub type Responses = mpsc::Sender<Result<EncodedResponse, Status>>;

/// One proxy's stream.
pub struct Session {
    control: Arc<ControlPlane>,
    id: u64,
    node: Node,
    labels: BTreeMap<String, String>,
    /// What the proxy said it holds when it subscribed (key -> version), until the first
    /// response is sent.
    known: BTreeMap<Key, String>,
    /// The node snapshot last sent: what the proxy holds since (as far as we know). The
    /// next snapshot, when patched from it, says by its delta what to send; otherwise
    /// the two are compared.
    sent: Option<Arc<NodeSnapshot>>,
    nonce: u64,
    /// The response awaiting its ACK/NACK: nonce, version, when it was sent.
    pending: Option<(String, String, Instant)>,
}

impl Session {
    pub fn new(
        control: Arc<ControlPlane>,
        id: u64,
        node: Node,
        (peer, identity): (String, Option<String>),
        hello: &DiscoveryRequest,
    ) -> Self {
        let labels: BTreeMap<String, String> = node.labels.clone().into_iter().collect();
        let known = hello
            .known
            .iter()
            .filter_map(|r| {
                Some((
                    Key::new(kind_of(r.kind)?, r.name.clone()),
                    r.version.clone(),
                ))
            })
            .collect();
        tracing::info!(node = %node.id, stream = id, %peer, identity = identity.as_deref().unwrap_or("-"), "proxy subscribed");
        control.nodes.insert(
            id,
            NodeStatus {
                id: node.id.clone(),
                labels: labels.clone(),
                peer,
                identity,
                sent_version: None,
                acked_version: None,
                last_nack: None,
            },
        );
        control.metrics.connected_proxies.inc();
        Session {
            control,
            id,
            node,
            labels,
            known,
            sent: None,
            nonce: 0,
            pending: None,
        }
    }

    pub async fn run(mut self, mut requests: Streaming<DiscoveryRequest>, tx: Responses) {
        let mut catalog = self.control.catalog.subscribe();
        catalog.mark_unchanged();
        if self.push(&tx).await.is_ok() {
            loop {
                tokio::select! {
                    changed = catalog.changed() => {
                        if changed.is_err() || self.push(&tx).await.is_err() {
                            break;
                        }
                    }
                    message = requests.message() => match message {
                        Ok(Some(request)) => self.answered(request),
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(node = %self.node.id, %status, "stream ended");
                            break;
                        }
                    },
                    () = tx.closed() => break,
                }
            }
        }
        tracing::info!(node = %self.node.id, stream = self.id, "proxy disconnected");
        self.control.nodes.remove(self.id);
        self.control.metrics.connected_proxies.dec();
    }

    /// Sends what changed for this node since what it holds (on the first push, always
    /// a response, even an empty one, so the proxy gets a version to ACK).
    async fn push(&mut self, tx: &Responses) -> Result<(), ()> {
        let catalog = self.control.catalog.borrow().clone();
        let snapshot = catalog.for_node(&self.labels);
        let (resources, removed) = match &self.sent {
            None => self.first(&snapshot),
            // The same set as sent (versions are content hashes): nothing to send.
            Some(sent) if sent.version == snapshot.version => return Ok(()),
            Some(sent) => match &snapshot.delta {
                Some(delta) if delta.from_version == sent.version => (
                    snapshot.encoded_delta(),
                    delta.removed.iter().map(ResourceRef::from).collect(),
                ),
                _ => difference(sent, &snapshot),
            },
        };
        let first = self.sent.is_none();
        self.sent = Some(snapshot.clone());
        if !first && resources.count == 0 && removed.is_empty() {
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let version = snapshot.version.clone();
        tracing::debug!(node = %self.node.id, %version, changed = resources.count, removed = removed.len(), "push");
        let response =
            EncodedResponse::new(version.clone(), nonce.clone(), removed, resources.bytes);
        self.pending = Some((nonce, version.clone(), Instant::now()));
        self.control
            .nodes
            .update(self.id, |s| s.sent_version = Some(version));
        self.control.metrics.pushes_total.inc();
        tx.send(response).await.map_err(|_| ())
    }

    /// The first response: every resource (one encoding shared by the node group's
    /// streams), or, when the proxy said what it holds, what differs from that.
    fn first(&mut self, snapshot: &NodeSnapshot) -> (EncodedResources, Vec<ResourceRef>) {
        let known = std::mem::take(&mut self.known);
        if known.is_empty() {
            return (snapshot.encoded_all(), Vec::new());
        }
        changes(
            snapshot,
            |key, r| known.get(key) == Some(&r.version),
            known.keys(),
        )
    }

    /// An ACK or NACK (or a stale answer to an older response, ignored as in xDS).
    fn answered(&mut self, request: DiscoveryRequest) {
        let Some((nonce, version, sent)) = &self.pending else {
            return;
        };
        if request.response_nonce != *nonce {
            return;
        }
        let metrics = &self.control.metrics;
        metrics
            .push_latency_seconds
            .observe(sent.elapsed().as_secs_f64());
        let version = version.clone();
        self.pending = None;
        if request.rejected.is_empty() {
            metrics.acks_total.inc();
            tracing::debug!(node = %self.node.id, %version, "ACK");
            self.control.nodes.update(self.id, |s| {
                s.acked_version = Some(version);
                s.last_nack = None;
            });
            return;
        }
        metrics.nacks_total.inc();
        let rejected: Vec<Rejected> = request
            .rejected
            .into_iter()
            .map(|r| {
                let kind =
                    kind_of(r.kind).map_or_else(|| format!("kind {}", r.kind), |k| k.to_string());
                let source = r
                    .source
                    .map(|s| format!("{}:{}:{}", s.file, s.line, s.column))
                    .unwrap_or_default();
                Rejected {
                    kind,
                    name: r.name,
                    version: r.version,
                    source,
                    error: r.error,
                }
            })
            .collect();
        for r in &rejected {
            tracing::warn!(node = %self.node.id, %version, kind = %r.kind, name = %r.name, source = %r.source, error = %r.error, "NACK");
        }
        self.control.nodes.update(self.id, |s| {
            s.last_nack = Some(Nack { version, rejected });
        });
    }
}

/// What a proxy holding `sent` needs to hold `now` (resources shared between snapshots
/// are the same allocation, so most compare by pointer).
fn difference(sent: &NodeSnapshot, now: &NodeSnapshot) -> (EncodedResources, Vec<ResourceRef>) {
    changes(
        now,
        |key, r| {
            sent.resources
                .get(key)
                .is_some_and(|old| Arc::ptr_eq(old, r) || old.version == r.version)
        },
        sent.resources.keys(),
    )
}

/// The resources of `now` a proxy does not hold as they are (`holds`), and those of
/// `held` it holds that `now` has not.
fn changes<'a>(
    now: &NodeSnapshot,
    holds: impl Fn(&Key, &Arc<Resource>) -> bool,
    held: impl Iterator<Item = &'a Key>,
) -> (EncodedResources, Vec<ResourceRef>) {
    let changed = now.resources.iter().filter(|(key, r)| !holds(key, r));
    let resources = EncodedResources::new(changed.map(|(_, r)| &**r));
    let removed = held
        .filter(|k| !now.resources.contains_key(k))
        .map(ResourceRef::from)
        .collect();
    (resources, removed)
}
