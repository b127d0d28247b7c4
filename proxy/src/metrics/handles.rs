//! Metric handles resolved from label values once, then updated with plain atomics on
//! the request path. Each is created lazily on first use, so configs with many routes
//! only grow series for the routes that see traffic.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::{Metrics, STATUS_CLASSES, status_class};
use crate::http::ProxyError;

/// The request metrics of one (listener, route, cluster).
#[derive(Debug)]
pub struct RequestHandles {
    metrics: Metrics,
    labels: [String; 3],
    by_class: [OnceLock<(IntCounter, Histogram)>; 5],
    pub request_bytes: IntCounter,
    pub response_bytes: IntCounter,
}

impl RequestHandles {
    pub fn new(metrics: &Metrics, listener: &str, route: &str, cluster: &str) -> Self {
        let bytes = [listener, route, cluster];
        Self {
            request_bytes: metrics
                .http
                .request_body_bytes_total
                .with_label_values(&bytes),
            response_bytes: metrics
                .http
                .response_body_bytes_total
                .with_label_values(&bytes),
            metrics: metrics.clone(),
            labels: [listener.into(), route.into(), cluster.into()],
            by_class: Default::default(),
        }
    }

    pub fn observe(
        &self,
        status: http::StatusCode,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let class = status_class(status);
        let (count, latency) = self.by_class[class].get_or_init(|| {
            let [l, r, c] = &self.labels;
            let labels = [l.as_str(), r.as_str(), c.as_str(), STATUS_CLASSES[class]];
            (
                self.metrics.http.requests_total.with_label_values(&labels),
                self.metrics
                    .http
                    .request_duration_seconds
                    .with_label_values(&labels),
            )
        });
        count.inc();
        latency.observe(elapsed.as_secs_f64());
        if request_bytes > 0 {
            self.request_bytes.inc_by(request_bytes);
        }
        if response_bytes > 0 {
            self.response_bytes.inc_by(response_bytes);
        }
    }
}

/// A lazily created [`RequestHandles`].
#[derive(Debug, Default)]
pub struct RequestSlot(OnceLock<RequestHandles>);

impl RequestSlot {
    pub fn get(
        &self,
        metrics: &Metrics,
        listener: &str,
        route: &str,
        cluster: &str,
    ) -> &RequestHandles {
        self.0
            .get_or_init(|| RequestHandles::new(metrics, listener, route, cluster))
    }
}

/// Number of [`ProxyError`] kinds (for per-reason arrays).
const REASONS: usize = 18;

fn reason_index(e: ProxyError) -> usize {
    match e {
        ProxyError::MalformedRequest => 0,
        ProxyError::NoRoute => 1,
        ProxyError::HeaderTimeout => 2,
        ProxyError::BodyTooLarge => 3,
        ProxyError::HeaderTooLarge => 4,
        ProxyError::ConnectFailed => 5,
        ProxyError::UpstreamReset => 6,
        ProxyError::NoHealthyEndpoint => 7,
        ProxyError::UpstreamTimeout => 8,
        ProxyError::RateLimited { .. } => 9,
        ProxyError::FaultAbort { .. } => 10,
        ProxyError::CircuitOpen => 11,
        ProxyError::Overflow => 12,
        ProxyError::Unauthorized => 13,
        ProxyError::ClientClosed => 14,
        ProxyError::UnrequestedUpgrade => 15,
        ProxyError::UpgradeNotAllowed => 16,
        ProxyError::UpgradeFailed => 17,
    }
}

/// A listener's connection and local-response metrics.
#[derive(Debug)]
pub struct ListenerHandles {
    metrics: Metrics,
    name: String,
    pub connections_total: IntCounter,
    pub connections_active: IntGauge,
    /// HTTP/1 keep-alive connections parked between requests (`listener::park`).
    pub connections_parked: IntGauge,
    pub rejected_max_connections: IntCounter,
    local: [OnceLock<IntCounter>; REASONS],
}

impl ListenerHandles {
    pub fn new(metrics: &Metrics, listener: &str) -> Self {
        let d = &metrics.downstream;
        Self {
            connections_total: d.connections_total.with_label_values(&[listener]),
            connections_active: d.connections_active.with_label_values(&[listener]),
            connections_parked: d.connections_parked.with_label_values(&[listener]),
            rejected_max_connections: d
                .connections_rejected_total
                .with_label_values(&[listener, "max_connections"]),
            metrics: metrics.clone(),
            name: listener.into(),
            local: Default::default(),
        }
    }

    pub fn local_response(&self, error: ProxyError) {
        self.local[reason_index(error)]
            .get_or_init(|| {
                self.metrics
                    .http
                    .local_responses_total
                    .with_label_values(&[self.name.as_str(), error.reason()])
            })
            .inc();
    }

    /// Counts a response the proxy wrote outside the request stack (e.g. a 408).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One endpoint's upstream metrics.
#[derive(Debug)]
pub struct EndpointHandles {
    metrics: Metrics,
    labels: [String; 2],
    by_class: [OnceLock<IntCounter>; 5],
    pub duration: Histogram,
    pub connect_failures: IntCounter,
    pub resets: IntCounter,
    pub timeouts: IntCounter,
    pub connections_total: IntCounter,
    pub connections_active: IntGauge,
    pub breaker_state: IntGauge,
}

impl EndpointHandles {
    pub fn new(metrics: &Metrics, cluster: &str, endpoint: &str) -> Self {
        let u = &metrics.upstream;
        let labels = [cluster, endpoint];
        Self {
            duration: u.request_duration_seconds.with_label_values(&[cluster]),
            connect_failures: u.connect_failures_total.with_label_values(&labels),
            resets: u.resets_total.with_label_values(&labels),
            timeouts: u.timeouts_total.with_label_values(&labels),
            connections_total: u.connections_total.with_label_values(&labels),
            connections_active: u.connections_active.with_label_values(&labels),
            breaker_state: u.breaker_state.with_label_values(&labels),
            metrics: metrics.clone(),
            labels: [cluster.into(), endpoint.into()],
            by_class: Default::default(),
        }
    }

    /// Counts a circuit breaker state change (rare: resolved on use).
    pub fn breaker_transition(&self, to: &str) {
        let [c, e] = &self.labels;
        self.metrics
            .upstream
            .breaker_transitions_total
            .with_label_values(&[c.as_str(), e.as_str(), to])
            .inc();
    }

    /// Counts an ejection by its reason (a fixed set of words; rare: resolved on use).
    pub fn breaker_ejection(&self, reason: &str) {
        let [c, e] = &self.labels;
        self.metrics
            .upstream
            .breaker_ejections_total
            .with_label_values(&[c.as_str(), e.as_str(), reason])
            .inc();
    }

    /// Responses received from this endpoint so far, all status classes.
    pub fn requests_total(&self) -> u64 {
        self.by_class
            .iter()
            .filter_map(|c| c.get())
            .map(|c| c.get())
            .sum()
    }

    pub fn response(&self, status: http::StatusCode, elapsed: Duration) {
        let class = status_class(status);
        self.by_class[class]
            .get_or_init(|| {
                let [c, e] = &self.labels;
                self.metrics.upstream.requests_total.with_label_values(&[
                    c.as_str(),
                    e.as_str(),
                    STATUS_CLASSES[class],
                ])
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}
