//! What happened to a request, recorded as it goes and reported once when its response
//! ends: metrics and the access log line.

pub mod access_log;
pub mod batch;
pub mod log_limit;

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::cluster::{ClusterRuntime, Endpoint};
use crate::http::{ProxyError, ResponseBody};
use crate::router::RouteEntry;
use crate::snapshot::HttpListenerPlan;

/// The request line as the client sent it, kept only when an access log is written or
/// the request is traced. The URI and `Host` are shared with the request, not copied.
#[derive(Debug)]
pub struct RequestLine {
    pub method: http::Method,
    pub protocol: http::Version,
    uri: http::Uri,
    host: Option<HeaderValue>,
}

impl RequestLine {
    pub fn new<B>(req: &http::Request<B>) -> Self {
        let host = match req.uri().authority() {
            Some(_) => None,
            None => req.headers().get(http::header::HOST).cloned(),
        };
        Self {
            method: req.method().clone(),
            protocol: req.version(),
            uri: req.uri().clone(),
            host,
        }
    }

    /// `:authority`, else `Host`, else empty.
    pub fn authority(&self) -> Cow<'_, str> {
        match (self.uri.authority(), &self.host) {
            (Some(a), _) => Cow::Borrowed(a.as_str()),
            (None, Some(host)) => match host.to_str() {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(host.as_bytes()),
            },
            (None, None) => Cow::Borrowed(""),
        }
    }

    /// The path and query.
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

/// One attempt of a request, as recorded: the cluster its split chose and the endpoint
/// it went to (`None` when the cluster turned it away before picking one: a limit, every
/// breaker open). Cluster and endpoint are always of the same attempt.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub cluster: Arc<ClusterRuntime>,
    pub endpoint: Option<Arc<Endpoint>>,
    /// A hedge: sent while an earlier attempt was still out.
    pub hedge: bool,
    /// Cancelled because another attempt of the request answered first.
    pub cancelled: bool,
}

/// The one record of a request, filled in by the layers as it passes: its route, its
/// attempts in order, how it ended. Read when the response ends (metrics, access log,
/// span); the only thing read back on the way is which endpoint the last attempt went
/// to, so a retry prefers another.
#[derive(Debug)]
pub struct RequestRecord {
    pub start: Instant,
    pub wall_start: std::time::SystemTime,
    pub route: OnceLock<Arc<RouteEntry>>,
    /// Most requests make one attempt: kept inline, no allocation.
    attempts: Mutex<SmallVec<[AttemptRecord; 1]>>,
    pub error: OnceLock<ProxyError>,
    pub request_id: OnceLock<crate::http::request_id::RequestId>,
    /// Set when tracing is configured.
    pub trace: OnceLock<crate::trace::TraceInfo>,
    request_bytes: AtomicU64,
    pub line: Option<RequestLine>,
    /// The verified SPIFFE ID of the client (mTLS listeners).
    pub peer_identity: Option<Arc<str>>,
}

impl RequestRecord {
    pub fn new(line: Option<RequestLine>) -> Self {
        Self {
            start: Instant::now(),
            wall_start: std::time::SystemTime::now(),
            route: OnceLock::new(),
            attempts: Mutex::new(SmallVec::new()),
            error: OnceLock::new(),
            request_id: OnceLock::new(),
            trace: OnceLock::new(),
            request_bytes: AtomicU64::new(0),
            line,
            peer_identity: None,
        }
    }

    pub fn with_peer_identity(mut self, peer_identity: Option<Arc<str>>) -> Self {
        self.peer_identity = peer_identity;
        self
    }

    pub fn add_request_bytes(&self, n: usize) {
        self.request_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn request_bytes(&self) -> u64 {
        self.request_bytes.load(Ordering::Relaxed)
    }

    fn attempts_lock(&self) -> std::sync::MutexGuard<'_, SmallVec<[AttemptRecord; 1]>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an attempt at `cluster`: sent to `endpoint`, or turned away before one
    /// was picked; `hedge` when it is a hedge.
    pub fn attempted(
        &self,
        cluster: &Arc<ClusterRuntime>,
        endpoint: Option<&Arc<Endpoint>>,
        hedge: bool,
    ) {
        self.attempts_lock().push(AttemptRecord {
            cluster: cluster.clone(),
            endpoint: endpoint.cloned(),
            hedge,
            cancelled: false,
        });
    }

    /// Marks the latest attempt sent of its kind (a hedge or not) as cancelled: another
    /// answered first. A request has at most one of each kind out at a time.
    pub fn cancelled(&self, hedge: bool) {
        if let Some(attempt) = self
            .attempts_lock()
            .iter_mut()
            .rev()
            .find(|a| a.hedge == hedge && a.endpoint.is_some())
        {
            attempt.cancelled = true;
        }
    }

    /// The last attempt not cancelled (the one whose answer the client got, when it
    /// got one from upstream): the cluster and endpoint metrics and the access log
    /// report.
    pub fn last_attempt(&self) -> Option<AttemptRecord> {
        self.attempts_lock()
            .iter()
            .rev()
            .find(|a| !a.cancelled)
            .cloned()
    }

    /// Hedges sent, and whether one of them was the attempt that answered.
    pub fn hedges(&self) -> (u32, bool) {
        let attempts = self.attempts_lock();
        let sent = attempts
            .iter()
            .filter(|a| a.hedge && a.endpoint.is_some())
            .count() as u32;
        let won = attempts
            .iter()
            .rev()
            .find(|a| !a.cancelled)
            .is_some_and(|a| a.hedge);
        (sent, won)
    }

    /// The endpoint the last attempt went to.
    pub fn last_endpoint(&self) -> Option<Arc<Endpoint>> {
        self.attempts_lock().last()?.endpoint.clone()
    }

    /// Attempts that reached an endpoint.
    pub fn attempts_sent(&self) -> u32 {
        self.attempts_lock()
            .iter()
            .filter(|a| a.endpoint.is_some())
            .count() as u32
    }
}

/// Reports a finished request: metrics always, the access log line when configured.
#[derive(Debug)]
pub struct Observer {
    pub record: Arc<RequestRecord>,
    pub plan: Option<Arc<HttpListenerPlan>>,
    pub access_log: Option<Arc<access_log::AccessLogWriter>>,
    pub tracer: Option<Arc<crate::trace::Tracer>>,
    pub status: http::StatusCode,
    pub response_bytes: u64,
}

impl Observer {
    /// The server span of this request, when it is traced and sampled.
    fn export_span(&self, tracer: &crate::trace::Tracer, elapsed: std::time::Duration) {
        let Some(info) = self.record.trace.get() else {
            return;
        };
        if !info.sampled || !tracer.exports() {
            return;
        }
        let route = self.record.route.get().map_or("", |r| r.name());
        let method = self.record.line.as_ref().map_or("", |l| l.method.as_str());
        let name: &[&str] = if route.is_empty() {
            &[method]
        } else {
            &[method, " ", route]
        };
        let mut span = crate::trace::SpanBuilder::new(
            name,
            opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server,
            info.trace_id,
            info.span_id,
            info.parent_span_id,
        )
        .int("http.response.status_code", i64::from(self.status.as_u16()))
        .str(
            "meshwork.listener",
            self.plan.as_ref().map_or("", |p| p.name.as_str()),
        )
        .str("meshwork.route", route);
        if let Some(line) = &self.record.line {
            let path = line.path().split('?').next().unwrap_or("/");
            span = span
                .str("http.request.method", line.method.as_str())
                .str("url.path", path)
                .str("server.address", &line.authority())
                .str("network.protocol.version", protocol_version(line.protocol));
        }
        if let Some(id) = self.record.request_id.get() {
            span = span.str("meshwork.request_id", &id.to_str_lossy());
        }
        if let Some(attempt) = self.record.last_attempt() {
            span = span.str("meshwork.cluster", attempt.cluster.name());
        }
        if let Some(peer) = &self.record.peer_identity {
            span = span.str("meshwork.peer_identity", peer);
        }
        if let Some(error) = self.record.error.get() {
            span = span.str("meshwork.error", error.reason());
        }
        if self.status.is_server_error() {
            span = match self.record.error.get() {
                Some(error) => span.error(error.reason()),
                None => span.error(&self.status.to_string()),
            };
        }
        tracer.export(span.finish(self.record.wall_start, elapsed));
    }
}

/// `1.1`, `2`: the OpenTelemetry notation for `network.protocol.version`.
pub fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let elapsed = self.record.start.elapsed();
        if let Some(plan) = &self.plan {
            let route = self.record.route.get();
            let cluster = self.record.last_attempt().map(|a| a.cluster);
            plan.request_handles(route, cluster.as_ref()).observe(
                self.status,
                elapsed,
                self.record.request_bytes(),
                self.response_bytes,
            );
            if let Some(error) = self.record.error.get() {
                plan.handles.local_response(*error);
            }
        }
        if let Some(tracer) = &self.tracer {
            self.export_span(tracer, elapsed);
        }
        if let Some(log) = &self.access_log {
            let listener = self.plan.as_ref().map_or("", |p| p.name.as_str());
            log.write(
                listener,
                &self.record,
                self.status,
                self.response_bytes,
                elapsed,
            );
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body, counting bytes and reporting the request when it ends (or is
    /// dropped, when the client goes away).
    #[derive(Debug)]
    pub struct ObservedBody {
        #[pin]
        body: ResponseBody,
        observer: Observer,
    }
}

impl ObservedBody {
    pub fn new(body: ResponseBody, observer: Observer) -> Self {
        Self { body, observer }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = crate::http::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::http::BodyError>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if let Some(data) = f.data_ref() {
                this.observer.response_bytes += data.len() as u64;
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
