//! Distributed tracing: context propagation (W3C, B3), head sampling, a server span per
//! request and a client span per upstream attempt, exported over OTLP/HTTP.

pub mod collector;
pub mod context;
pub mod exporter;
pub mod span;
pub mod traceparent;
pub mod tracestate;

use std::time::Duration;

use http::HeaderValue;
use meshwork_config::model;
use opentelemetry::trace::{SpanId, TraceId};
use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::metrics::TraceMetrics;
use exporter::SpanExporter;
pub use span::{EncodedSpan, SpanBuilder};

/// The tracing settings in force, and the exporter (none without `otlp`).
#[derive(Debug)]
pub struct Tracer {
    pub config: model::Tracing,
    exporter: Option<SpanExporter>,
}

/// A request's place in its trace.
#[derive(Debug, Clone)]
pub struct TraceInfo {
    pub trace_id: TraceId,
    /// The proxy's server span for this request.
    pub span_id: SpanId,
    /// The caller's span, when the request arrived with a context.
    pub parent_span_id: Option<SpanId>,
    pub sampled: bool,
    pub tracestate: Option<HeaderValue>,
}

impl Tracer {
    /// # Errors
    /// When the OTLP endpoint cannot be used.
    pub fn start(config: model::Tracing, metrics: TraceMetrics) -> Result<Self, String> {
        let exporter = match &config.otlp {
            Some(otlp) => Some(SpanExporter::start(otlp, &config.service_name, metrics)?),
            None => None,
        };
        Ok(Self { config, exporter })
    }

    /// Joins the caller's trace or starts one; the caller's sampling decision wins.
    pub fn begin(&self, headers: &http::HeaderMap) -> TraceInfo {
        let incoming = context::extract(headers, &self.config.propagation);
        IDS.with_borrow_mut(|rng| {
            let sampled = match incoming.as_ref().and_then(|c| c.sampled) {
                Some(decision) => decision,
                None => self.config.sampling >= 1.0 || rng.random::<f64>() < self.config.sampling,
            };
            TraceInfo {
                trace_id: incoming
                    .as_ref()
                    .map_or_else(|| new_trace_id(rng), |c| c.trace_id),
                span_id: random_span_id(rng),
                parent_span_id: incoming.as_ref().map(|c| c.parent_span_id),
                sampled,
                tracestate: incoming.and_then(|c| c.tracestate),
            }
        })
    }

    /// Whether spans go anywhere: without `otlp`, context is propagated and logged but
    /// no span is built.
    pub fn exports(&self) -> bool {
        self.exporter.is_some()
    }

    pub fn propagation(&self) -> &[model::Propagation] {
        &self.config.propagation
    }

    pub fn export(&self, span: EncodedSpan) {
        if let Some(exporter) = &self.exporter {
            exporter.export(span);
        }
    }

    /// Sends the spans still waiting (at shutdown), waiting up to `within`.
    pub async fn close(&self, within: Duration) {
        if let Some(exporter) = &self.exporter {
            exporter.close(within).await;
        }
    }
}

/// `bytes` without the optional whitespace (spaces and tabs) around it, which is not
/// part of a field value or list member (RFC 9110 §5.5, §5.6.1).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |c: &u8| matches!(c, b' ' | b'\t');
    let start = bytes.iter().position(|c| !ows(c)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|c| !ows(c)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

thread_local! {
    /// Trace and span ids must be unique, not unpredictable: a fast generator per thread,
    /// seeded from the OS-seeded thread RNG (as the OpenTelemetry SDK's id generator
    /// does), instead of a ChaCha block per few ids.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

fn new_trace_id(rng: &mut impl Rng) -> TraceId {
    loop {
        let id = TraceId::from_bytes(rng.random());
        if id != TraceId::INVALID {
            return id;
        }
    }
}

pub fn new_span_id() -> SpanId {
    IDS.with_borrow_mut(random_span_id)
}

fn random_span_id(rng: &mut impl Rng) -> SpanId {
    loop {
        let id = SpanId::from_bytes(rng.random());
        if id != SpanId::INVALID {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwork_config::model::Propagation;

    fn tracer(sampling: f64) -> Tracer {
        Tracer {
            config: model::Tracing {
                propagation: vec![Propagation::W3c, Propagation::B3],
                sampling,
                otlp: None,
                service_name: "t".into(),
            },
            exporter: None,
        }
    }

    #[test]
    fn the_parent_decision_wins_over_head_sampling() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let info = tracer(0.0).begin(&h);
        assert!(info.sampled);
        assert_eq!(
            info.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(info.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert_ne!(info.span_id.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn head_sampling_applies_to_new_traces() {
        let empty = http::HeaderMap::new();
        assert!((0..100).all(|_| tracer(1.0).begin(&empty).sampled));
        assert!((0..100).all(|_| !tracer(0.0).begin(&empty).sampled));
        let sampled = (0..10_000)
            .filter(|_| tracer(0.25).begin(&empty).sampled)
            .count();
        assert!((2_000..3_000).contains(&sampled), "{sampled}");
        let info = tracer(1.0).begin(&empty);
        assert!(info.parent_span_id.is_none());
    }
}
