//! What happened to a request, recorded as it goes and reported once when its response
//! ends: metrics and the access log line.

pub mod access_log;

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::cluster::{ClusterRuntime, Endpoint};
use crate::http::{ProxyError, ResponseBody};
use crate::router::RouteEntry;
use crate::snapshot::HttpListenerPlan;

/// The request line as the client sent it, kept only when an access log is written.
#[derive(Debug)]
pub struct RequestLine {
    pub method: http::Method,
    pub authority: String,
    pub path: String,
    pub protocol: http::Version,
}

/// Filled in by the layers as the request passes; read when the response ends.
#[derive(Debug)]
pub struct RequestRecord {
    pub start: Instant,
    pub wall_start: std::time::SystemTime,
    pub route: OnceLock<Arc<RouteEntry>>,
    pub cluster: OnceLock<Arc<ClusterRuntime>>,
    /// The endpoint of the last attempt.
    pub endpoint: Mutex<Option<Arc<Endpoint>>>,
    pub attempts: AtomicU32,
    pub error: OnceLock<ProxyError>,
    pub request_id: OnceLock<HeaderValue>,
    request_bytes: AtomicU64,
    pub line: Option<RequestLine>,
}

impl RequestRecord {
    pub fn new(line: Option<RequestLine>) -> Self {
        Self {
            start: Instant::now(),
            wall_start: std::time::SystemTime::now(),
            route: OnceLock::new(),
            cluster: OnceLock::new(),
            endpoint: Mutex::new(None),
            attempts: AtomicU32::new(0),
            error: OnceLock::new(),
            request_id: OnceLock::new(),
            request_bytes: AtomicU64::new(0),
            line,
        }
    }

    pub fn add_request_bytes(&self, n: usize) {
        self.request_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn request_bytes(&self) -> u64 {
        self.request_bytes.load(Ordering::Relaxed)
    }

    pub fn set_endpoint(&self, endpoint: &Arc<Endpoint>) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = Some(endpoint.clone());
    }

    pub fn endpoint(&self) -> Option<Arc<Endpoint>> {
        self.endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Reports a finished request: metrics always, the access log line when configured.
#[derive(Debug)]
pub struct Observer {
    pub record: Arc<RequestRecord>,
    pub plan: Option<Arc<HttpListenerPlan>>,
    pub access_log: Option<Arc<access_log::AccessLogWriter>>,
    pub status: http::StatusCode,
    pub response_bytes: u64,
}

impl Drop for Observer {
    fn drop(&mut self) {
        let elapsed = self.record.start.elapsed();
        if let Some(plan) = &self.plan {
            let route = self.record.route.get();
            let cluster = self.record.cluster.get();
            plan.request_handles(route, cluster).observe(
                self.status,
                elapsed,
                self.record.request_bytes(),
                self.response_bytes,
            );
            if let Some(error) = self.record.error.get() {
                plan.handles.local_response(*error);
            }
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
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
