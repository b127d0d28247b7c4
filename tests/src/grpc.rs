//! A gRPC echo service (`meshwork.test.Echo`) and its client, hand-written on tonic's
//! codec so that no `protoc` is needed: unary, server streaming and bidi streaming.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use http::uri::PathAndQuery;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tonic::server::{ServerStreamingService, StreamingService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// Path of the unary method.
pub const UNARY: &str = "/meshwork.test.Echo/Unary";
/// Path of the server-streaming method.
pub const SERVER_STREAM: &str = "/meshwork.test.Echo/ServerStream";
/// Path of the bidi-streaming method.
pub const BIDI: &str = "/meshwork.test.Echo/Bidi";

/// `message EchoRequest { string message = 1; uint32 count = 2; uint32 fail_with = 3;
/// uint32 interval_ms = 4; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub message: String,
    /// Server streaming: how many replies.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// A non-zero gRPC code to end the call with (after the replies, so in trailers).
    #[prost(uint32, tag = "3")]
    pub fail_with: u32,
    /// Server streaming: pause between replies. Unary: wait this long before answering.
    #[prost(uint32, tag = "4")]
    pub interval_ms: u32,
}

impl EchoRequest {
    /// A request carrying `message` and nothing else.
    pub fn new(message: &str) -> Self {
        Self {
            message: message.to_owned(),
            ..Self::default()
        }
    }
}

/// `message EchoReply { string message = 1; uint32 index = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub index: u32,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn codec() -> ProstCodec<EchoReply, EchoRequest> {
    ProstCodec::default()
}

fn requested_failure(fail_with: u32) -> Option<Status> {
    (fail_with != 0).then(|| {
        Status::new(
            Code::from(fail_with as i32),
            "failure requested by the test",
        )
    })
}

struct Unary;

impl UnaryService<EchoRequest> for Unary {
    type Response = EchoReply;
    type Future = BoxFuture<Result<Response<EchoReply>, Status>>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let request = request.into_inner();
            if request.interval_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(request.interval_ms))).await;
            }
            if let Some(status) = requested_failure(request.fail_with) {
                return Err(status);
            }
            Ok(Response::new(EchoReply {
                message: request.message,
                index: 0,
            }))
        })
    }
}

struct ServerStream;

impl ServerStreamingService<EchoRequest> for ServerStream {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Result<Response<ReplyStream>, Status>>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let request = request.into_inner();
            let interval = Duration::from_millis(u64::from(request.interval_ms));
            let replies = futures_util::stream::iter(0..request.count).then(move |index| {
                let message = request.message.clone();
                async move {
                    if index > 0 && !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                    Ok(EchoReply { message, index })
                }
            });
            let end = futures_util::stream::iter(requested_failure(request.fail_with).map(Err));
            Ok(Response::new(Box::pin(replies.chain(end)) as ReplyStream))
        })
    }
}

struct Bidi;

impl StreamingService<EchoRequest> for Bidi {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Result<Response<ReplyStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<EchoRequest>>) -> Self::Future {
        Box::pin(async move {
            let replies = request.into_inner().enumerate().map(|(index, item)| {
                item.map(|request| EchoReply {
                    message: request.message,
                    index: index as u32,
                })
            });
            Ok(Response::new(Box::pin(replies) as ReplyStream))
        })
    }
}

/// A running gRPC echo server (h2c); stops when dropped.
#[derive(Debug)]
pub struct GrpcUpstream {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl GrpcUpstream {
    /// Binds `127.0.0.1:0` and serves `meshwork.test.Echo`.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The same server on `addr` (e.g. `[::]:PORT` inside a pod's network namespace).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().expect("the bound address");
        let calls = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(listener, calls.clone()));
        Self { addr, calls, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for a cluster's `endpoints`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, calls: Arc<AtomicU64>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let calls = calls.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let mut grpc = tonic::server::Grpc::new(codec());
                            let response = match req.uri().path() {
                                UNARY => grpc.unary(Unary, req).await,
                                SERVER_STREAM => grpc.server_streaming(ServerStream, req).await,
                                BIDI => grpc.streaming(Bidi, req).await,
                                _ => Status::unimplemented("no such method").into_http(),
                            };
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A client of `meshwork.test.Echo` over one h2c connection.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: tonic::client::Grpc<Channel>,
}

impl GrpcClient {
    /// Connects to `addr` (the proxy's listener, usually).
    ///
    /// # Panics
    /// When the connection fails or takes more than 5s.
    pub async fn connect(addr: SocketAddr) -> Self {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid endpoint")
            .connect_timeout(Duration::from_secs(5));
        let channel = tokio::time::timeout(Duration::from_secs(5), endpoint.connect())
            .await
            .unwrap_or_else(|_| panic!("gRPC connect to {addr} timed out"))
            .unwrap_or_else(|e| panic!("gRPC connect to {addr}: {e}"));
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))
    }

    /// Calls `Unary`.
    ///
    /// # Errors
    /// The call's status when it is not OK.
    pub async fn unary(&mut self, request: EchoRequest) -> Result<Response<EchoReply>, Status> {
        self.ready().await?;
        self.inner
            .unary(
                Request::new(request),
                PathAndQuery::from_static(UNARY),
                client_codec(),
            )
            .await
    }

    /// Calls `Unary` with a deadline: the client gives up (resetting the stream) when no
    /// answer came within `deadline`.
    ///
    /// # Errors
    /// The call's status when it is not OK (`DeadlineExceeded` when it ran out of time).
    pub async fn unary_with_deadline(
        &mut self,
        request: EchoRequest,
        deadline: Duration,
    ) -> Result<Response<EchoReply>, Status> {
        self.ready().await?;
        let mut request = Request::new(request);
        request.set_timeout(deadline);
        self.inner
            .unary(request, PathAndQuery::from_static(UNARY), client_codec())
            .await
    }

    /// Calls `ServerStream`.
    ///
    /// # Errors
    /// The call's status when it fails before the replies start.
    pub async fn server_stream(
        &mut self,
        request: EchoRequest,
    ) -> Result<Response<Streaming<EchoReply>>, Status> {
        self.ready().await?;
        self.inner
            .server_streaming(
                Request::new(request),
                PathAndQuery::from_static(SERVER_STREAM),
                client_codec(),
            )
            .await
    }

    /// Calls `Bidi`, sending `requests` as they come.
    ///
    /// # Errors
    /// The call's status when it fails before the replies start.
    pub async fn bidi<S>(&mut self, requests: S) -> Result<Response<Streaming<EchoReply>>, Status>
    where
        S: Stream<Item = EchoRequest> + Send + 'static,
    {
        self.ready().await?;
        self.inner
            .streaming(
                Request::new(requests),
                PathAndQuery::from_static(BIDI),
                client_codec(),
            )
            .await
    }
}

fn client_codec() -> ProstCodec<EchoRequest, EchoReply> {
    ProstCodec::default()
}

/// A stream of requests fed through the returned sender, for [`GrpcClient::bidi`].
pub fn request_channel() -> (
    tokio::sync::mpsc::Sender<EchoRequest>,
    impl Stream<Item = EchoRequest> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|request| (request, rx))
    });
    (tx, stream)
}
