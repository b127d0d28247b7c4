//! The scripted xDS v3 ADS server (State of the World) on `envoy-types` + tonic, for the
//! proxy's `control_plane.protocol: xds`.
//!
//! A test sets each type's resources and version ([`XdsServer::set`]); every stream
//! subscribed to that type is sent the new set (EDS and RDS: only the names the stream
//! asked for). The server answers a request when the stream asks for new names, or asks
//! for a type the first time with another version than the one it has; an ACK or NACK
//! is recorded and not answered (no NACK loop). Every request is kept
//! ([`XdsServer::requests`]), so a test can assert ACKs, NACKs and their error details,
//! and the versions and names a resumed stream asks with.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use futures_util::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::{Message, Name};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// How long [`XdsServer::wait_for_request`] waits.
const REQUEST_BOUND: Duration = Duration::from_secs(10);

/// One type's resources as the server has them.
#[derive(Clone, Debug, Default)]
struct TypeSet {
    version: String,
    /// By name, in name order.
    resources: BTreeMap<String, Any>,
}

#[derive(Debug, Default)]
struct Shared {
    sets: Mutex<HashMap<String, TypeSet>>,
    requests: Mutex<Vec<DiscoveryRequest>>,
    /// A type whose set changed (every stream resends it), or `None`: end every stream.
    events: Option<broadcast::Sender<Option<String>>>,
    nonce: AtomicU64,
    streams: AtomicU64,
}

/// A running ADS server on `127.0.0.1`.
#[derive(Debug)]
pub struct XdsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl XdsServer {
    /// Binds `127.0.0.1:0` and serves ADS.
    pub async fn start() -> XdsServer {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves ADS at `addr` (the same port again, after [`XdsServer::stop`]).
    pub async fn start_at(addr: SocketAddr) -> XdsServer {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("xDS server: cannot bind {addr}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            events: Some(events),
            ..Shared::default()
        });
        let service = AggregatedDiscoveryServiceServer::from_arc(Arc::new(Ads {
            shared: shared.clone(),
        }));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let service = service.clone();
                connections.spawn(async move {
                    let per_request = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let mut service = service.clone();
                            tonic::codegen::Service::call(&mut service, req)
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), per_request)
                        .await;
                });
            }
        });
        XdsServer { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to write in `control_plane.address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the resources of `M`'s type (named by `name` each) at `version`, and
    /// pushes them to every stream subscribed to it.
    pub fn set<M: Message + Name>(&self, version: &str, resources: Vec<(&str, M)>) {
        let type_url = M::type_url();
        let set = TypeSet {
            version: version.to_string(),
            resources: resources
                .into_iter()
                .map(|(name, m)| {
                    let any = Any {
                        type_url: type_url.clone(),
                        value: m.encode_to_vec(),
                    };
                    (name.to_string(), any)
                })
                .collect(),
        };
        self.shared
            .sets
            .lock()
            .expect("sets")
            .insert(type_url.clone(), set);
        if let Some(events) = &self.shared.events {
            let _ = events.send(Some(type_url));
        }
    }

    /// Ends every open stream with UNAVAILABLE (the proxy reconnects).
    pub fn reset_streams(&self) {
        if let Some(events) = &self.shared.events {
            let _ = events.send(None);
        }
    }

    /// How many streams were opened so far.
    pub fn streams_opened(&self) -> u64 {
        self.shared.streams.load(Ordering::Relaxed)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<DiscoveryRequest> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// Waits (bounded) for a request of `M`'s type that `matches`, among those received
    /// from the `from`-th on; returns it and its index.
    pub async fn wait_for_request<M: Name>(
        &self,
        what: &str,
        from: usize,
        matches: impl Fn(&DiscoveryRequest) -> bool,
    ) -> (usize, DiscoveryRequest) {
        let type_url = M::type_url();
        let deadline = tokio::time::Instant::now() + REQUEST_BOUND;
        loop {
            let found = self
                .requests()
                .into_iter()
                .enumerate()
                .skip(from)
                .find(|(_, r)| r.type_url == type_url && matches(r));
            if let Some(found) = found {
                return found;
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} version={:?} nonce={:?} names={:?} error={:?}",
                            r.type_url,
                            r.version_info,
                            r.response_nonce,
                            r.resource_names,
                            r.error_detail.as_ref().map(|e| &e.message)
                        )
                    })
                    .collect();
                panic!(
                    "xDS server: no {what} within {REQUEST_BOUND:?}; requests:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops serving: the listener closes and every stream ends.
    pub fn stop(self) {
        self.task.abort();
        self.reset_streams();
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Ads {
    shared: Arc<Shared>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, tonic::Status>> + Send>>;
type DeltaStream =
    Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        self.shared.streams.fetch_add(1, Ordering::Relaxed);
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel::<Result<DiscoveryResponse, tonic::Status>>();
        let shared = self.shared.clone();
        let mut events = shared
            .events
            .as_ref()
            .map(broadcast::Sender::subscribe)
            .ok_or_else(|| tonic::Status::unavailable("stopped"))?;
        tokio::spawn(async move {
            // Per type: the names the stream asked for (`None`: not subscribed yet).
            let mut subscribed: HashMap<String, BTreeSet<String>> = HashMap::new();
            loop {
                tokio::select! {
                    message = incoming.message() => {
                        let Ok(Some(request)) = message else { return };
                        shared.requests.lock().expect("requests").push(request.clone());
                        let names: BTreeSet<String> = request.resource_names.iter().cloned().collect();
                        let first = !subscribed.contains_key(&request.type_url);
                        let changed = subscribed.get(&request.type_url) != Some(&names);
                        subscribed.insert(request.type_url.clone(), names);
                        let current = shared.sets.lock().expect("sets").get(&request.type_url).map(|s| s.version.clone());
                        let stale = current.is_some_and(|v| v != request.version_info);
                        if (first && stale) || (!first && changed) {
                            send(&shared, &tx, &request.type_url, &subscribed);
                        }
                    }
                    event = events.recv() => match event {
                        Ok(Some(type_url)) => {
                            if subscribed.contains_key(&type_url) {
                                send(&shared, &tx, &type_url, &subscribed);
                            }
                        }
                        Ok(None) | Err(_) => {
                            let _ = tx.send(Err(tonic::Status::unavailable("stream reset by the test")));
                            return;
                        }
                    },
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<DeltaStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "this test server speaks State of the World only",
        ))
    }
}

/// Sends the current set of `type_url` (only the names asked for, when any were).
fn send(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Result<DiscoveryResponse, tonic::Status>>,
    type_url: &str,
    subscribed: &HashMap<String, BTreeSet<String>>,
) {
    let Some(set) = shared.sets.lock().expect("sets").get(type_url).cloned() else {
        return;
    };
    let names = subscribed.get(type_url).cloned().unwrap_or_default();
    let resources = set
        .resources
        .into_iter()
        .filter(|(name, _)| names.is_empty() || names.contains(name))
        .map(|(_, any)| any)
        .collect();
    let nonce = shared.nonce.fetch_add(1, Ordering::Relaxed) + 1;
    let _ = tx.send(Ok(DiscoveryResponse {
        version_info: set.version,
        resources,
        type_url: type_url.to_string(),
        nonce: nonce.to_string(),
        ..DiscoveryResponse::default()
    }));
}
