//! An OTLP/HTTP trace receiver: `POST /v1/traces` with an `application/x-protobuf`
//! `ExportTraceServiceRequest`, decoded with the opentelemetry-proto types into
//! [`ExportedSpan`]s the test asserts on.
//!
//! ```text
//! let collector = OtlpReceiver::start().await;   // collector.endpoint() for `tracing.otlp`
//! let spans = collector.trace(&trace_id, 2).await;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// How long spans may take to arrive: the proxy exports in batches.
pub const SPANS_TIMEOUT: Duration = Duration::from_secs(10);

/// The path OTLP/HTTP exporters post traces to.
pub const TRACES_PATH: &str = "/v1/traces";

/// One span as received, ids in lower-case hex (empty when absent).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedSpan {
    /// The attributes of the resource that exported it (`service.name`, ...).
    pub resource: BTreeMap<String, Value>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: SpanKind,
    pub attributes: BTreeMap<String, Value>,
    pub status: SpanStatus,
}

impl ExportedSpan {
    /// Attribute `key`, or `Null` when absent.
    pub fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ExportedSpan>,
    /// Export requests refused, and why (shown when a wait fails).
    refused: Vec<String>,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    /// `http`, or `https` for [`OtlpReceiver::start_tls`].
    scheme: &'static str,
    received: Arc<Mutex<Received>>,
    task: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Binds `127.0.0.1:0` and accepts exports (HTTP/1.1 or h2c) until dropped.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the bound address");
        let received = Arc::new(Mutex::new(Received::default()));
        let task = tokio::spawn(accept_loop(listener, None, received.clone()));
        Self {
            addr,
            scheme: "http",
            received,
            task,
        }
    }

    /// Binds `127.0.0.1:0` and accepts exports over TLS (HTTP/1.1), presenting
    /// `certificate` (issue it for `localhost`: [`OtlpReceiver::endpoint`] names it).
    pub async fn start_tls(certificate: &crate::CertFiles) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the bound address");
        let received = Arc::new(Mutex::new(Received::default()));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(certificate.server_config()));
        let task = tokio::spawn(accept_loop(listener, Some(acceptor), received.clone()));
        Self {
            addr,
            scheme: "https",
            received,
            task,
        }
    }

    /// `http://127.0.0.1:PORT/v1/traces` (or `https://localhost:PORT/v1/traces` for a
    /// TLS receiver), for `tracing.otlp.endpoint`.
    pub fn endpoint(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}{TRACES_PATH}", self.addr.port()),
            _ => format!("http://{}{TRACES_PATH}", self.addr),
        }
    }

    /// Export requests refused so far, and why (TLS handshakes that failed included).
    pub fn refused(&self) -> Vec<String> {
        self.received.lock().unwrap().refused.clone()
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    /// Waits until `check` holds for the spans received, and returns them.
    ///
    /// # Panics
    /// When it does not within [`SPANS_TIMEOUT`], with what was received and refused.
    pub async fn spans_when(
        &self,
        what: &str,
        check: impl Fn(&[ExportedSpan]) -> bool,
    ) -> Vec<ExportedSpan> {
        let deadline = tokio::time::Instant::now() + SPANS_TIMEOUT;
        loop {
            let spans = self.spans();
            if check(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() > deadline {
                let refused = self.received.lock().unwrap().refused.clone();
                panic!(
                    "the collector did not receive {what} within {SPANS_TIMEOUT:?}; \
                     received {} spans: {spans:#?}\nrefused exports: {refused:?}",
                    spans.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `count` spans of trace `trace_id` and returns them (server span first,
    /// then client spans).
    ///
    /// # Panics
    /// When they do not arrive in time, or more arrive.
    pub async fn trace(&self, trace_id: &str, count: usize) -> Vec<ExportedSpan> {
        let of_trace = |spans: &[ExportedSpan]| -> Vec<ExportedSpan> {
            spans
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect()
        };
        let spans = self
            .spans_when(&format!("{count} spans of trace {trace_id}"), |spans| {
                of_trace(spans).len() >= count
            })
            .await;
        let mut trace = of_trace(&spans);
        assert_eq!(trace.len(), count, "spans of trace {trace_id}: {trace:#?}");
        trace.sort_by_key(|s| s.kind != SpanKind::Server);
        trace
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    received: Arc<Mutex<Received>>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let received = received.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let service = {
                        let received = received.clone();
                        service_fn(move |req| {
                            let received = received.clone();
                            async move { Ok::<_, hyper::Error>(export(req, &received).await) }
                        })
                    };
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let Some(acceptor) = tls else {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        return;
                    };
                    match acceptor.accept(stream).await {
                        Ok(stream) => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Err(e) => received.lock().unwrap().refused.push(format!("TLS handshake: {e}")),
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Handles one export request; anything but a well-formed protobuf export is refused
/// and remembered.
async fn export(req: Request<Incoming>, received: &Mutex<Received>) -> Response<Full<Bytes>> {
    let refuse = |status: StatusCode, why: String| {
        received.lock().unwrap().refused.push(why.clone());
        let mut response = Response::new(Full::new(Bytes::from(why)));
        *response.status_mut() = status;
        response
    };
    if req.method() != Method::POST || req.uri().path() != TRACES_PATH {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "{} {}: expected POST {TRACES_PATH}",
                req.method(),
                req.uri()
            ),
        );
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    if content_type != "application/x-protobuf" {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type {content_type:?}: expected application/x-protobuf"),
        );
    }
    if let Some(encoding) = header("content-encoding").filter(|e| e != "identity") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-encoding {encoding:?}: the test receiver reads plain protobuf"),
        );
    }
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("decoding: {e}")),
    };
    received.lock().unwrap().spans.extend(flatten(request));
    let mut response = Response::new(Full::new(Bytes::from(
        ExportTraceServiceResponse::default().encode_to_vec(),
    )));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<ExportedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = attributes(
            resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default(),
        );
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            out.push(ExportedSpan {
                resource: resource.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                name: span.name,
                kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                attributes: attributes(span.attributes),
                status: span
                    .status
                    .and_then(|s| SpanStatus::try_from(s.code).ok())
                    .unwrap_or(SpanStatus::Unset),
            });
        }
    }
    out
}

fn attributes(pairs: Vec<KeyValue>) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .map(|kv| (kv.key, kv.value.map_or(Value::Null, json)))
        .collect()
}

/// An attribute value as JSON: strings, numbers, booleans, arrays; bytes as hex.
fn json(value: AnyValue) -> Value {
    match value.value {
        Some(any_value::Value::StringValue(s)) => Value::from(s),
        Some(any_value::Value::BoolValue(b)) => Value::from(b),
        Some(any_value::Value::IntValue(i)) => Value::from(i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(d),
        Some(any_value::Value::ArrayValue(a)) => a.values.into_iter().map(json).collect(),
        Some(any_value::Value::KvlistValue(kv)) => {
            Value::Object(attributes(kv.values).into_iter().collect())
        }
        Some(any_value::Value::BytesValue(b)) => Value::from(hex(&b)),
        Some(other) => Value::from(format!("{other:?}")),
        None => Value::Null,
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    use super::*;
    use crate::client::HttpClient;

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn export() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: (1..=16).collect(),
            span_id: vec![0xab; 8],
            name: "GET".to_owned(),
            kind: SpanKind::Server as i32,
            attributes: vec![attribute(
                "http.response.status_code",
                any_value::Value::IntValue(503),
            )],
            status: Some(Status {
                code: SpanStatus::Error as i32,
                message: String::new(),
            }),
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![attribute(
                        "service.name",
                        any_value::Value::StringValue("svc".to_owned()),
                    )],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[tokio::test]
    async fn protobuf_exports_are_decoded_and_anything_else_is_refused() {
        let receiver = OtlpReceiver::start().await;
        let post = |content_type: &str| {
            HttpClient::h1()
                .request(Method::POST, &receiver.endpoint())
                .header("content-type", content_type)
                .body(export().encode_to_vec())
        };
        assert_eq!(
            post("application/x-protobuf").send().await.status,
            StatusCode::OK
        );
        assert_eq!(
            post("application/json").send().await.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let spans = receiver.spans();
        assert_eq!(spans.len(), 1, "{spans:#?}");
        let span = &spans[0];
        assert_eq!(span.trace_id, "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(
            (span.span_id.as_str(), span.parent_span_id.as_str()),
            ("abababababababab", "")
        );
        assert_eq!(
            (span.kind, span.status),
            (SpanKind::Server, SpanStatus::Error)
        );
        assert_eq!(span.resource["service.name"], "svc");
        assert_eq!(span.attr("http.response.status_code"), 503);
        assert_eq!(receiver.received.lock().unwrap().refused.len(), 1);
    }
}
