//! OTLP/HTTP (protobuf) span export, over HTTP or HTTPS: batched, through a bounded buffer, so a slow or dead
//! collector costs dropped spans (counted), never request latency.
//!
//! Spans arrive already encoded ([`EncodedSpan`]); a request task appends one to the
//! shared batch and wakes the export task only when a batch starts or fills. The export
//! request is the batch wrapped in the resource and scope envelope, written by hand
//! around the encoded spans (a repeated message field is a concatenation of its elements).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshwork_config::model::Otlp;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::collector::CollectorConnector;
use super::span::{EncodedSpan, bytes_field, delimited_len};
use crate::metrics::TraceMetrics;
use crate::observe::batch::{Batcher, Bounds, Pushed};

/// Spans that may wait for export before new ones are dropped.
pub const QUEUE_SPANS: usize = 4096;
/// A batch is sent when it holds this many spans…
pub const MAX_BATCH: usize = 512;
/// …or when its first span has waited this long.
pub const BATCH_DELAY: Duration = Duration::from_millis(500);
/// A collector that does not answer within this is counted as failed.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

const BOUNDS: Bounds = Bounds {
    max_records: QUEUE_SPANS,
    max_bytes: 32 * 1024 * 1024,
    batch_records: MAX_BATCH,
    batch_bytes: 4 * 1024 * 1024,
};

// ExportTraceServiceRequest.resource_spans, ResourceSpans.{resource, scope_spans},
// ScopeSpans.{scope, spans}.
const RESOURCE_SPANS: u32 = 1;
const RESOURCE: u32 = 1;
const SCOPE_SPANS: u32 = 2;
const SCOPE: u32 = 1;
const SPANS: u32 = 2;
/// The most a span's field header takes: a one-byte key and a ten-byte length varint.
const HEADER_MAX: usize = 11;

#[derive(Debug)]
struct Shared {
    batch: Batcher,
    wake: Notify,
    closing: AtomicBool,
}

#[derive(Debug)]
pub struct SpanExporter {
    shared: Arc<Shared>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    metrics: TraceMetrics,
}

impl SpanExporter {
    /// Starts the export task for `otlp` (an `http://` or `https://` collector).
    ///
    /// # Errors
    /// When the endpoint or its TLS settings cannot be used.
    pub fn start(otlp: &Otlp, service_name: &str, metrics: TraceMetrics) -> Result<Self, String> {
        let (connector, uri) = CollectorConnector::new(otlp)?;
        let shared = Arc::new(Shared {
            batch: Batcher::new(BOUNDS),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
        });
        let task = tokio::spawn(run(
            shared.clone(),
            Client::builder(TokioExecutor::new()).build(connector),
            uri,
            Envelope::new(service_name),
            metrics.clone(),
        ));
        Ok(Self {
            shared,
            task: std::sync::Mutex::new(Some(task)),
            metrics,
        })
    }

    pub fn export(&self, span: EncodedSpan) {
        let mut header = [0u8; HEADER_MAX];
        let mut rest = &mut header[..];
        encode_key(SPANS, WireType::LengthDelimited, &mut rest);
        encode_varint(span.0.len() as u64, &mut rest);
        let used = HEADER_MAX - rest.len();
        match self.shared.batch.push(&header[..used], &span.0) {
            Pushed::Dropped => self.metrics.spans_dropped.inc(),
            p if p.wakes_consumer() => self.shared.wake.notify_one(),
            _ => {}
        }
    }

    /// Sends what is waiting and stops, waiting up to `within` for the collector.
    pub async fn close(&self, within: Duration) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            if tokio::time::timeout(within, task).await.is_err() {
                tracing::warn!("the span exporter did not finish in time; spans may be lost");
            }
        }
    }
}

impl Drop for SpanExporter {
    /// An exporter replaced by a config change sends its last batch and ends.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// The resource and scope every batch is wrapped in, encoded once.
#[derive(Debug)]
struct Envelope {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Envelope {
    fn new(service_name: &str) -> Self {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service_name.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "meshwork".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        Self {
            resource: resource.encode_to_vec(),
            scope: scope.encode_to_vec(),
        }
    }

    /// An `ExportTraceServiceRequest` carrying `spans` (each with its field header).
    fn request(&self, spans: &[u8]) -> Vec<u8> {
        let scope_spans = delimited_len(SCOPE, self.scope.len()) + spans.len();
        let resource_spans =
            delimited_len(RESOURCE, self.resource.len()) + delimited_len(SCOPE_SPANS, scope_spans);
        let mut out = Vec::with_capacity(delimited_len(RESOURCE_SPANS, resource_spans));
        encode_key(RESOURCE_SPANS, WireType::LengthDelimited, &mut out);
        encode_varint(resource_spans as u64, &mut out);
        bytes_field(RESOURCE, &self.resource, &mut out);
        encode_key(SCOPE_SPANS, WireType::LengthDelimited, &mut out);
        encode_varint(scope_spans as u64, &mut out);
        bytes_field(SCOPE, &self.scope, &mut out);
        out.extend_from_slice(spans);
        out
    }
}

/// The export task: sleeps while nothing is waiting; once a batch starts, sends it when
/// it is full or [`BATCH_DELAY`] has passed.
async fn run(
    shared: Arc<Shared>,
    client: Client<CollectorConnector, Full<Bytes>>,
    uri: http::Uri,
    envelope: Envelope,
    metrics: TraceMetrics,
) {
    let mut batch = Vec::new();
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if shared.batch.is_empty() {
            if closing {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while !shared.batch.batch_is_full() && !shared.closing.load(Ordering::Acquire) {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let n = shared.batch.take(&mut batch) as u64;
        let body = Bytes::from(envelope.request(&batch));
        let req = http::Request::post(uri.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body));
        let Ok(req) = req else { continue };
        match tokio::time::timeout(EXPORT_TIMEOUT, client.request(req)).await {
            Ok(Ok(rsp)) if rsp.status().is_success() => metrics.spans_exported.inc_by(n),
            outcome => {
                let why = match outcome {
                    Ok(Ok(rsp)) => format!("collector answered {}", rsp.status()),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".into(),
                };
                tracing::debug!(spans = n, %why, "span export failed");
                metrics.export_failures.inc();
                metrics.spans_dropped.inc_by(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::span::SpanBuilder;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    #[test]
    fn a_batch_decodes_as_one_export_request_with_every_span() {
        let envelope = Envelope::new("checkout");
        let mut batch = Vec::new();
        for i in 1..=3u64 {
            let span = SpanBuilder::new(
                &["span ", &i.to_string()],
                SpanKind::Server,
                TraceId::from(u128::from(i)),
                SpanId::from(i),
                None,
            )
            .int("i", i as i64)
            .finish(std::time::UNIX_EPOCH, Duration::from_millis(i));
            encode_key(SPANS, WireType::LengthDelimited, &mut batch);
            encode_varint(span.0.len() as u64, &mut batch);
            batch.extend_from_slice(&span.0);
        }
        let request =
            ExportTraceServiceRequest::decode(envelope.request(&batch).as_slice()).unwrap();
        assert_eq!(request.resource_spans.len(), 1);
        let resource_spans = &request.resource_spans[0];
        let service = &resource_spans.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        assert_eq!(
            service.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("checkout".into()))
        );
        let scope_spans = &resource_spans.scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().unwrap().name, "meshwork");
        let names: Vec<_> = scope_spans.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["span 1", "span 2", "span 3"]);
        assert_eq!(scope_spans.spans[2].end_time_unix_nano, 3_000_000);
    }
}
