//! The discovery port: meshwork's `Discovery.Stream` (one task per proxy stream, in
//! `session.rs`, pushing what changed for its node — encodings shared between streams,
//! `encoded.rs` — and recording its ACKs and NACKs) and Envoy's ADS, over h2c or TLS.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status};

use crate::ControlPlane;
use session::Session;

mod encoded;
mod grpc;
mod session;

pub use encoded::{EncodedCache, EncodedResources, EncodedResponse};

/// Responses queued per stream before the stream task waits for the proxy to read.
const RESPONSE_QUEUE: usize = 4;

/// Meshwork's discovery service (`Discovery.Stream`).
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

    /// Answers one HTTP/2 request: a `Discovery.Stream` call gets its session (after
    /// its first request, which must name the node); any other path is unimplemented.
    async fn call(
        self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<tonic::body::Body> {
        if request.uri().path() != grpc::STREAM_PATH {
            let path = request.uri().path().to_string();
            return grpc::refuse(Status::unimplemented(format!("no method {path}")));
        }
        let (peer, identity) = match request.extensions().get::<Peer>().cloned() {
            Some(p) => (p.address.to_string(), p.identity),
            None => ("unknown".to_string(), None),
        };
        let mut requests = grpc::requests(request.into_body());
        let hello = match requests.message().await {
            Ok(Some(hello)) => hello,
            Ok(None) => {
                return grpc::refuse(Status::invalid_argument(
                    "the stream ended before the first request",
                ));
            }
            Err(status) => return grpc::refuse(status),
        };
        let Some(node) = hello.node.clone().filter(|n| !n.id.is_empty()) else {
            return grpc::refuse(Status::invalid_argument(
                "the first request must carry the node (id and labels)",
            ));
        };
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let session = Session::new(self.control.clone(), id, node, (peer, identity), &hello);
        tokio::spawn(session.run(requests, tx));
        grpc::response(rx)
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
    let service = DiscoveryService::new(control.clone());
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
    DiscoveryService,
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
                    let service = service.clone();
                    Box::pin(async move { Ok(service.call(req).await) })
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

#[cfg(test)]
mod tests;
