//! OTLP/HTTP (protobuf) span export: batched, through a bounded queue, so a slow or dead
//! collector costs dropped spans (counted), never request latency.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::mpsc;

use crate::metrics::TraceMetrics;

/// Spans that may wait for export before new ones are dropped.
pub const QUEUE_SPANS: usize = 4096;
/// A batch is sent when it holds this many spans…
pub const MAX_BATCH: usize = 512;
/// …or when its first span has waited this long.
pub const BATCH_DELAY: Duration = Duration::from_millis(500);
/// A collector that does not answer within this is counted as failed.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct SpanExporter {
    tx: mpsc::Sender<Span>,
    metrics: TraceMetrics,
}

impl SpanExporter {
    /// Starts the export task for `endpoint` (an `http://` URL).
    ///
    /// # Errors
    /// When the endpoint is not a plain-HTTP URL.
    pub fn start(
        endpoint: &str,
        service_name: &str,
        metrics: TraceMetrics,
    ) -> Result<Self, String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("otlp endpoint {endpoint:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "otlp endpoint {endpoint:?}: only http:// collectors are supported (TLS to the collector comes with #7)"
            ));
        }
        let (tx, rx) = mpsc::channel(QUEUE_SPANS);
        tokio::spawn(run(rx, uri, resource(service_name), metrics.clone()));
        Ok(Self { tx, metrics })
    }

    pub fn export(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.metrics.spans_dropped.inc();
        }
    }
}

fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(service_name.into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn run(
    mut rx: mpsc::Receiver<Span>,
    uri: http::Uri,
    resource: Resource,
    metrics: TraceMetrics,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "meshwork".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans: batch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let body = Bytes::from(request.encode_to_vec());
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
