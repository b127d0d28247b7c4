//! Serves one downstream HTTP connection: detects HTTP/1 vs HTTP/2 (prior knowledge in
//! plaintext, ALPN over TLS) and serves it with the listener's limits (HTTP/1:
//! meshwork's own server connection, `http1`; HTTP/2: hyper's), under the connection's
//! supervisor (`supervise`: head and idle timeouts, graceful drain).

use std::convert::Infallible;
use std::future::Future;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use meshwork_config::model::ListenerLimits;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::activity::{ConnActivity, ConnProtocol, InFlightGuard};
use super::first_head;
use super::http1::{Http1Server, Http1Service};
use super::http2::Http2Server;
use super::io::ConnIo;
use super::park;
use super::supervise::{Ended, GracefulConnection, supervise};
use crate::http::client_body::ClientBody;
use crate::http::{ProxyError, RequestBody};
use crate::layers::{self, RequestContext, StackRequest};
use crate::metrics::handles::ListenerHandles;
use crate::observe::{ObservedBody, RequestLine, RequestRecord};
use crate::snapshot::SnapshotHandle;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection needs to know about its listener.
#[derive(Clone, Debug)]
pub struct HttpConnSettings {
    pub listener: Arc<str>,
    pub limits: ListenerLimits,
    pub snapshots: SnapshotHandle,
    pub drain: CancellationToken,
    pub metrics: Arc<ListenerHandles>,
}

/// What a plaintext connection's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    Closed,
    Http2,
    /// HTTP/1, with its first request head all there (or at least
    /// [`first_head::HEAD_BYTES`] of it) or not.
    Http1 {
        whole_head: bool,
    },
    /// Part of the HTTP/2 preface: more is needed to tell.
    PartialPreface,
}

impl Opening {
    fn of(bytes: &[u8]) -> Self {
        let n = bytes.len().min(H2_PREFACE.len());
        if bytes.is_empty() {
            Self::Closed
        } else if bytes[..n] != H2_PREFACE[..n] {
            Self::Http1 {
                whole_head: bytes.len() == first_head::HEAD_BYTES || first_head::ends_head(bytes),
            }
        } else if n == H2_PREFACE.len() {
            Self::Http2
        } else {
            Self::PartialPreface
        }
    }
}

/// Looks at the first bytes without consuming them: the HTTP/2 preface or anything else,
/// and whether an HTTP/1 connection's first request head is all there.
async fn detect(stream: &TcpStream) -> std::io::Result<Opening> {
    loop {
        let opening = std::future::poll_fn(|cx| {
            // On the stack of one poll: the connection's task does not carry it.
            let mut buf = [MaybeUninit::<u8>::uninit(); first_head::HEAD_BYTES];
            let mut peeked = ReadBuf::uninit(&mut buf);
            std::task::ready!(stream.poll_peek(cx, &mut peeked))?;
            Poll::Ready(std::io::Result::Ok(Opening::of(peeked.filled())))
        })
        .await?;
        if opening != Opening::PartialPreface {
            return Ok(opening);
        }
        // A partial preface: wait briefly for the rest instead of spinning on peek.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves a plaintext connection: HTTP/2 when it opens with the prior-knowledge preface,
/// HTTP/1 otherwise.
pub async fn serve(stream: TcpStream, client_addr: SocketAddr, settings: HttpConnSettings) {
    let accepted = tokio::time::Instant::now();
    let limits = settings.limits.clone();
    let opening = match tokio::time::timeout(limits.header_read_timeout, detect(&stream)).await {
        Ok(Ok(opening)) => opening,
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(%client_addr, "no request within the header read timeout; closing");
            return;
        }
    };
    let (detected, whole_head) = match opening {
        Opening::Http1 { whole_head } => (ConnProtocol::Http1, whole_head),
        Opening::Http2 => (ConnProtocol::Http2, true),
        Opening::Closed | Opening::PartialPreface => return,
    };
    let activity = Arc::new(ConnActivity::new(detected, accepted));
    // A head still arriving is read without the server connection's buffers (`first_head`).
    let first_bytes = if whole_head {
        Bytes::new()
    } else {
        match first_head::read(&stream, &activity, &settings, client_addr).await {
            Some(bytes) => bytes,
            None => return,
        }
    };
    // The server connection reads through the read half (tokio's own read path, which
    // knows a short read drained the socket and so saves a read that would only return
    // EAGAIN); the write half stays here for a last 408 after it is stopped.
    let (read, write) = stream.into_split();
    let conn = Conn {
        client_addr,
        peer_identity: None,
        original_destination: None,
        transparent_source: None,
        scheme: "http",
        activity,
        settings,
    };
    conn.run(read, Some(write.as_ref()), first_bytes).await;
    // The read half may live on in an upgraded (WebSocket) tunnel: dropping the write half
    // would shut the socket's sending side under it; this leaves closing to the read half.
    write.forget();
}

/// Serves a connection after its TLS handshake: HTTP/2 when ALPN chose `h2`, HTTP/1
/// otherwise. (A slow request head ends the connection without the plaintext 408.)
pub async fn serve_tls(
    tls: crate::tls::handshake::Established,
    client_addr: SocketAddr,
    settings: HttpConnSettings,
) {
    let protocol = if tls.h2 {
        ConnProtocol::Http2
    } else {
        ConnProtocol::Http1
    };
    let activity = Arc::new(ConnActivity::new(protocol, tokio::time::Instant::now()));
    let conn = Conn {
        client_addr,
        peer_identity: tls.peer_identity,
        original_destination: None,
        transparent_source: None,
        scheme: "https",
        activity,
        settings,
    };
    conn.run(tls.stream, None, Bytes::new()).await
}

/// Serves an intercepted connection (`auto` listeners) whose protocol was detected from
/// its first bytes: `stream` replays them. Requests that match none of the listener's
/// routes go to `original_destination` (from `transparent_source` under TPROXY);
/// `peer_identity` is a meshed peer's.
pub async fn serve_intercepted<S>(
    stream: super::sidecar::Rewind<S>,
    client_addr: SocketAddr,
    protocol: ConnProtocol,
    original_destination: SocketAddr,
    transparent_source: Option<std::net::IpAddr>,
    peer_identity: Option<Arc<str>>,
    settings: HttpConnSettings,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let activity = Arc::new(ConnActivity::new(protocol, tokio::time::Instant::now()));
    let conn = Conn {
        client_addr,
        peer_identity,
        original_destination: Some(original_destination),
        transparent_source,
        scheme: "http",
        activity,
        settings,
    };
    conn.run(stream, None, Bytes::new()).await
}

/// One downstream connection and what its requests need to know about it.
struct Conn {
    client_addr: SocketAddr,
    /// The verified SPIFFE ID of the client certificate (TLS listeners).
    peer_identity: Option<Arc<str>>,
    /// Where an intercepted connection was going (`auto` listeners).
    original_destination: Option<SocketAddr>,
    /// A TPROXY-delivered client's address: original destinations are dialed from it.
    transparent_source: Option<std::net::IpAddr>,
    scheme: &'static str,
    activity: Arc<ConnActivity>,
    settings: HttpConnSettings,
}

impl Conn {
    /// Serves the connection; `first_bytes` were read from `stream` already (an HTTP/1
    /// head that arrived slowly) and are served first.
    async fn run<T>(self, stream: T, plaintext: Option<&TcpStream>, first_bytes: Bytes)
    where
        ConnIo<T>: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + Unpin + Send + std::fmt::Debug + 'static,
    {
        let service = HttpService {
            listener: self.settings.listener.clone(),
            client_addr: self.client_addr,
            client_address_value: crate::http::headers::client_address_value(self.client_addr.ip()),
            peer_identity: self.peer_identity.clone(),
            original_destination: self.original_destination,
            transparent_source: self.transparent_source,
            scheme: self.scheme,
            snapshots: self.settings.snapshots.clone(),
            activity: self.activity.clone(),
            metrics: self.settings.metrics.clone(),
        };
        match self.activity.protocol() {
            ConnProtocol::Http1 => {
                self.run_http1(stream, service, plaintext, first_bytes)
                    .await;
            }
            ConnProtocol::Http2 => {
                debug_assert!(first_bytes.is_empty(), "only HTTP/1 heads are read ahead");
                let io = ConnIo::new(stream, self.activity.clone());
                let conn = Http2Server::new(io, service, self.max_header_size());
                // Boxed, as is its supervisor: every connection's task is as large as
                // its largest state, and most connections are HTTP/1 ones, parked.
                let mut conn = Box::pin(conn);
                let supervised = supervise(
                    conn.as_mut(),
                    &self.activity,
                    &self.settings,
                    None,
                    self.client_addr,
                );
                Box::pin(supervised).await;
            }
        }
    }

    /// HTTP/1: the server connection (`http1`) serves requests as they come; once it
    /// has been idle for a while (`supervise::PARK_AFTER`) it is parked (its buffers and
    /// state dropped, see `park`) and served afresh when the client sends again.
    async fn run_http1<T>(
        self,
        stream: T,
        service: HttpService,
        plaintext: Option<&TcpStream>,
        first_bytes: Bytes,
    ) where
        ConnIo<T>: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + Unpin + Send + std::fmt::Debug + 'static,
    {
        let max_header = self.max_header_size();
        let mut stream = stream;
        let mut replay = first_bytes;
        loop {
            let io = ConnIo::new(stream, self.activity.clone()).replaying(replay);
            let conn =
                Http1Server::new(io, service.clone(), max_header).parkable(self.activity.clone());
            // The connection and its supervisor in one allocation, gone once parked: a
            // parked connection's task holds neither.
            let supervised = async {
                let mut conn = conn;
                let ended = supervise(
                    Pin::new(&mut conn),
                    &self.activity,
                    &self.settings,
                    plaintext,
                    self.client_addr,
                )
                .await;
                conn.into_parked().filter(|_| ended == Ended::Clean)
            };
            let Some(parked) = Box::pin(supervised).await else {
                return;
            };
            stream = parked.into_inner();
            replay = match park::wait(&mut stream, &self.activity, &self.settings).await {
                Some(bytes) => bytes,
                None => return park::close(stream, self.activity.clone()).await,
            };
        }
    }

    fn max_header_size(&self) -> usize {
        usize::try_from(self.settings.limits.max_request_header_size).unwrap_or(usize::MAX)
    }
}

impl<I> GracefulConnection for Http1Server<I, HttpService>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    type Error = std::io::Error;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        Http1Server::graceful_shutdown(self.get_mut())
    }
}

impl<I> GracefulConnection for Http2Server<I, HttpService>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    type Error = std::io::Error;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        Http2Server::graceful_shutdown(self.get_mut())
    }
}

/// The service either server connection calls for each request: loads the current
/// snapshot and runs the request through the stack.
#[derive(Clone, Debug)]
struct HttpService {
    listener: Arc<str>,
    client_addr: SocketAddr,
    client_address_value: http::HeaderValue,
    peer_identity: Option<Arc<str>>,
    original_destination: Option<SocketAddr>,
    /// A TPROXY-delivered client's address: original destinations are dialed from it.
    transparent_source: Option<std::net::IpAddr>,
    scheme: &'static str,
    snapshots: SnapshotHandle,
    activity: Arc<ConnActivity>,
    metrics: Arc<ListenerHandles>,
}

type HttpFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<TrackedBody>, Infallible>> + Send>>;

impl Http1Service for HttpService {
    type Body = TrackedBody;
    type Future = HttpFuture;

    fn refused(&self, error: ProxyError) {
        self.metrics.local_response(error);
    }

    fn serve(&self, req: http::Request<ClientBody>) -> HttpFuture {
        let guard = InFlightGuard::new(self.activity.clone());
        let snapshot = self.snapshots.load_full();
        let observed = snapshot.access_log.is_some() || snapshot.tracer.is_some();
        let line = observed.then(|| RequestLine::new(&req));
        let record =
            Arc::new(RequestRecord::new(line).with_peer_identity(self.peer_identity.clone()));
        let plan = snapshot.http_listener(&self.listener).cloned();
        let req = StackRequest::boxed(
            req.map(|body| RequestBody::new(body, Some(record.clone()))),
            RequestContext {
                plan,
                record,
                snapshot,
                listener: self.listener.clone(),
                client_addr: self.client_addr,
                client_address_value: self.client_address_value.clone(),
                peer_identity: self.peer_identity.clone(),
                scheme: self.scheme,
                route: None,
                cluster: None,
                original_destination: self.original_destination,
                transparent_source: self.transparent_source,
                retry: false,
                hedge: false,
                deadline: None,
            },
        );
        let stack = layers::http_stack();
        Box::pin(async move {
            let Ok(rsp) = stack.oneshot(req).await;
            Ok(rsp.map(|body| TrackedBody {
                body,
                _guard: guard,
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// The response body, holding its request's in-flight mark until it is done.
    #[derive(Debug)]
    pub struct TrackedBody {
        #[pin]
        body: ObservedBody,
        _guard: InFlightGuard,
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = crate::http::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::http::BodyError>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
