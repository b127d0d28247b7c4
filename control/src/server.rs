//! The discovery service: one task per proxy stream, pushing what changed for its node
//! and recording its ACKs and NACKs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use meshwork_config::discovery::discovery_server::{Discovery, DiscoveryServer};
use meshwork_config::discovery::{
    DiscoveryRequest, DiscoveryResponse, Node, Resource as WireResource, ResourceRef, kind_of,
};
use meshwork_config::resource::Key;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::ControlPlane;
use crate::catalog::{Delta, NodeSnapshot};
use crate::nodes::{Nack, NodeStatus, Rejected};

/// Responses queued per stream before the stream task waits for the proxy to read.
const RESPONSE_QUEUE: usize = 4;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct DiscoveryService {
    control: Arc<ControlPlane>,
    next_stream: Arc<AtomicU64>,
}

impl DiscoveryService {
    pub fn new(control: Arc<ControlPlane>) -> Self {
        DiscoveryService {
            control,
            next_stream: Arc::default(),
        }
    }
}

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    type StreamStream =
        Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send + 'static>>;

    async fn stream(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request.extensions().get::<Peer>().cloned();
        let (peer, identity) = match peer {
            Some(p) => (p.address.to_string(), p.identity),
            None => ("unknown".to_string(), None),
        };
        let mut requests = request.into_inner();
        let hello = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before the first request"))?;
        let node = hello
            .node
            .clone()
            .filter(|n| !n.id.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument("the first request must carry the node (id and labels)")
            })?;
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let session = Session::new(self.control.clone(), id, node, (peer, identity), &hello);
        tokio::spawn(session.run(requests, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One proxy's stream.
struct Session {
    control: Arc<ControlPlane>,
    id: u64,
    node: Node,
    labels: BTreeMap<String, String>,
    /// What the proxy holds (as far as we know): key -> version.
    held: BTreeMap<Key, String>,
    /// The version of the node snapshot last sent: when the next one was patched from
    /// it, its delta says what to send without comparing every resource.
    sent_version: Option<String>,
    nonce: u64,
    /// The response awaiting its ACK/NACK: nonce, version, when it was sent.
    pending: Option<(String, String, Instant)>,
}

impl Session {
    fn new(
        control: Arc<ControlPlane>,
        id: u64,
        node: Node,
        (peer, identity): (String, Option<String>),
        hello: &DiscoveryRequest,
    ) -> Self {
        let labels: BTreeMap<String, String> = node.labels.clone().into_iter().collect();
        let held = hello
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
            held,
            sent_version: None,
            nonce: 0,
            pending: None,
        }
    }

    async fn run(
        mut self,
        mut requests: Streaming<DiscoveryRequest>,
        tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    ) {
        let mut catalog = self.control.catalog.subscribe();
        catalog.mark_unchanged();
        if self.push(&tx, true).await.is_ok() {
            loop {
                tokio::select! {
                    changed = catalog.changed() => {
                        if changed.is_err() || self.push(&tx, false).await.is_err() {
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
    async fn push(
        &mut self,
        tx: &mpsc::Sender<Result<DiscoveryResponse, Status>>,
        first: bool,
    ) -> Result<(), ()> {
        let catalog = self.control.catalog.borrow().clone();
        let snapshot = catalog.for_node(&self.labels);
        if !first && self.sent_version.as_deref() == Some(snapshot.version.as_str()) {
            // The same set as sent (versions are content hashes): nothing to send.
            return Ok(());
        }
        let (resources, removed) = match &snapshot.delta {
            Some(delta)
                if !first && self.sent_version.as_deref() == Some(delta.from_version.as_str()) =>
            {
                self.delta_since_sent(&snapshot, delta)
            }
            _ => self.difference(&snapshot),
        };
        self.sent_version = Some(snapshot.version.clone());
        if !first && resources.is_empty() && removed.is_empty() {
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let response = DiscoveryResponse {
            version: snapshot.version.clone(),
            nonce: nonce.clone(),
            resources,
            removed,
        };
        tracing::debug!(node = %self.node.id, version = %snapshot.version, changed = response.resources.len(), removed = response.removed.len(), "push");
        self.pending = Some((nonce, snapshot.version.clone(), Instant::now()));
        let version = snapshot.version.clone();
        self.control
            .nodes
            .update(self.id, |s| s.sent_version = Some(version));
        self.control.metrics.pushes_total.inc();
        tx.send(Ok(response)).await.map_err(|_| ())
    }

    /// What to send, found by comparing every resource with what the proxy holds; `held`
    /// becomes the snapshot.
    fn difference(&mut self, snapshot: &NodeSnapshot) -> (Vec<WireResource>, Vec<ResourceRef>) {
        let resources: Vec<WireResource> = snapshot
            .resources
            .values()
            .filter(|r| self.held.get(&r.key) != Some(&r.version))
            .map(|r| WireResource::from(&**r))
            .collect();
        let removed: Vec<ResourceRef> = self
            .held
            .keys()
            .filter(|k| !snapshot.resources.contains_key(k))
            .map(ResourceRef::from)
            .collect();
        self.held = snapshot
            .resources
            .values()
            .map(|r| (r.key.clone(), r.version.clone()))
            .collect();
        (resources, removed)
    }

    /// What to send when `snapshot` was patched from the one last sent: only what its
    /// delta names; `held` is updated by it.
    fn delta_since_sent(
        &mut self,
        snapshot: &NodeSnapshot,
        delta: &Delta,
    ) -> (Vec<WireResource>, Vec<ResourceRef>) {
        let mut resources = Vec::with_capacity(delta.changed.len());
        for key in &delta.changed {
            let Some(r) = snapshot.resources.get(key) else {
                continue;
            };
            if self.held.get(key) != Some(&r.version) {
                self.held.insert(key.clone(), r.version.clone());
                resources.push(WireResource::from(&**r));
            }
        }
        let removed = delta
            .removed
            .iter()
            .filter(|key| self.held.remove(*key).is_some())
            .map(ResourceRef::from)
            .collect();
        (resources, removed)
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

/// Serves the discovery API on `listener` until `stop`: gRPC over h2c, or over TLS
/// (`tls`) where a proxy's verified SPIFFE ID is recorded with its stream.
pub async fn serve(
    listener: TcpListener,
    control: Arc<ControlPlane>,
    tls: Option<Arc<ServerConfig>>,
    stop: CancellationToken,
) {
    let service = DiscoveryServer::new(DiscoveryService::new(control.clone()));
    let ads = crate::xds::AggregatedDiscoveryServiceServer::new(crate::xds::AdsService::new(
        control.clone(),
    ));
    loop {
        let (stream, address): (_, SocketAddr) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "discovery accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let services = (service.clone(), ads.clone());
        let stop = stop.clone();
        let tls = tls.clone();
        let control = control.clone();
        tokio::spawn(async move {
            let Some(config) = tls else {
                let peer = Peer {
                    address,
                    identity: None,
                };
                return serve_connection(stream, peer, services, stop).await;
            };
            let accepted = tokio::select! {
                accepted = crate::tls::accept(stream, config) => accepted,
                () = stop.cancelled() => return,
            };
            match accepted {
                Ok(accepted) => {
                    let peer = Peer {
                        address,
                        identity: accepted.identity,
                    };
                    serve_connection(accepted.stream, peer, services, stop).await;
                }
                Err(refused) => {
                    let (reason, error) = (refused.reason, &refused.detail);
                    control
                        .metrics
                        .tls_handshake_failures_total
                        .with_label_values(&[reason])
                        .inc();
                    tracing::warn!(peer = %address, reason, %error, "TLS handshake with a proxy failed; connection closed");
                    refused.close().await;
                }
            }
        });
    }
}

/// The services of the discovery port: meshwork's protocol and Envoy's ADS.
type Services = (
    DiscoveryServer<DiscoveryService>,
    crate::xds::AggregatedDiscoveryServiceServer<crate::xds::AdsService>,
);

/// Serves HTTP/2 on one connection (plaintext or TLS) until it closes or `stop`; each
/// request goes to Envoy's ADS or to meshwork's protocol by its gRPC path.
async fn serve_connection<I>(io: I, peer: Peer, (service, ads): Services, stop: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let per_request =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            let response: Pin<Box<dyn Future<Output = _> + Send>> =
                if req.uri().path().starts_with(crate::xds::ADS_PATH_PREFIX) {
                    Box::pin(tower::ServiceExt::oneshot(ads.clone(), req))
                } else {
                    Box::pin(tower::ServiceExt::oneshot(service.clone(), req))
                };
            response
        });
    let connection = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .serve_connection(hyper_util::rt::TokioIo::new(io), per_request);
    tokio::pin!(connection);
    tokio::select! {
        _ = &mut connection => {}
        () = stop.cancelled() => {}
    }
}

/// Who is at the other end of a connection, put in each request's extensions by
/// [`serve`]: its address and, over mTLS, its verified SPIFFE ID.
#[derive(Clone, Debug)]
struct Peer {
    address: SocketAddr,
    identity: Option<String>,
}

/// The address (and verified SPIFFE ID, over mTLS) of the client of `request`, for logs
/// and `/status`.
pub(crate) fn peer_of<T>(request: &Request<T>) -> String {
    match request.extensions().get::<Peer>() {
        Some(Peer {
            address,
            identity: Some(id),
        }) => format!("{address} ({id})"),
        Some(peer) => peer.address.to_string(),
        None => "unknown".to_string(),
    }
}
