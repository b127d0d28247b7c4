//! The proxy's Prometheus metrics: one registry, families grouped by what they describe.
//!
//! Label values come only from the config (listener, route, cluster names, endpoint
//! addresses) and from small fixed sets (status class, reason), never from request data,
//! so cardinality is bounded by the config. Hot-path updates go through handles resolved
//! once (see [`handles`]), so a request touches atomics, not label maps.
//!
//! A later module adds its own family with one line:
//! `let retries = metrics.register(IntCounterVec::new(Opts::new(..), &[..])?);`

pub mod drain;
pub mod handles;
pub mod mesh;
pub mod sidecar;
pub mod tcp;
pub mod tls;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: sub-millisecond proxy overhead up to slow upstreams.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The status classes used as label values, indexed by `status / 100 - 1`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`STATUS_CLASSES`].
pub fn status_class(status: http::StatusCode) -> usize {
    (usize::from(status.as_u16() / 100)).clamp(1, 5) - 1
}

#[derive(Debug, Clone)]
pub struct DownstreamMetrics {
    pub connections_total: IntCounterVec,
    pub connections_active: IntGaugeVec,
    pub connections_parked: IntGaugeVec,
    pub connections_rejected_total: IntCounterVec,
}

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub request_body_bytes_total: IntCounterVec,
    pub response_body_bytes_total: IntCounterVec,
    pub local_responses_total: IntCounterVec,
    pub faults_injected_total: IntCounterVec,
    pub mirror_requests_total: IntCounterVec,
    pub retries_total: IntCounterVec,
    pub retry_budget_exhausted_total: IntCounterVec,
    pub hedges_total: IntCounterVec,
}

#[derive(Debug, Clone)]
pub struct UpstreamMetrics {
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub connect_failures_total: IntCounterVec,
    pub resets_total: IntCounterVec,
    pub timeouts_total: IntCounterVec,
    pub connections_total: IntCounterVec,
    pub connections_active: IntGaugeVec,
    pub breaker_state: IntGaugeVec,
    pub breaker_transitions_total: IntCounterVec,
    pub breaker_ejections_total: IntCounterVec,
    pub overflows_total: IntCounterVec,
}

#[derive(Debug, Clone)]
pub struct ConfigMetrics {
    pub version: IntGauge,
    pub reloads_total: IntCounterVec,
    pub last_reload_success_timestamp_seconds: Gauge,
}

/// The control plane link (`control_plane` set).
#[derive(Debug, Clone)]
pub struct ControlPlaneMetrics {
    pub connected: IntGauge,
    pub updates_total: IntCounterVec,
    pub info: IntGaugeVec,
    pub tls_handshake_failures_total: IntCounterVec,
}

#[derive(Debug, Clone)]
pub struct HealthMetrics {
    pub checks_total: IntCounterVec,
    pub endpoint_healthy: IntGaugeVec,
}

#[derive(Debug, Clone)]
pub struct TraceMetrics {
    pub spans_exported: IntCounter,
    pub spans_dropped: IntCounter,
    pub export_failures: IntCounter,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub downstream: DownstreamMetrics,
    pub http: HttpMetrics,
    pub upstream: UpstreamMetrics,
    pub config: ConfigMetrics,
    pub control_plane: ControlPlaneMetrics,
    pub trace: TraceMetrics,
    pub health: HealthMetrics,
    pub tls: tls::TlsMetrics,
    pub tcp: tcp::TcpMetrics,
    pub mesh: mesh::MeshMetrics,
    pub sidecar: sidecar::SidecarMetrics,
    pub drain: drain::DrainMetrics,
    pub access_log_dropped_total: IntCounter,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(opts(name, help)).expect("metric definitions are static and valid")
}

/// Every family's name starts with this; `process_*` families keep their standard names.
pub const PREFIX: &str = "meshwork_";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{PREFIX}{name}"), help)
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(opts(name, help), labels).expect("metric definitions are static and valid")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(opts(name, help), labels).expect("metric definitions are static and valid")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::from(opts(name, help)).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("metric definitions are static and valid")
}

const HTTP_LABELS: &[&str] = &["listener", "route", "cluster", "status_class"];
const HTTP_BYTES_LABELS: &[&str] = &["listener", "route", "cluster"];
const ENDPOINT_LABELS: &[&str] = &["cluster", "endpoint"];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            downstream: DownstreamMetrics {
                connections_total: counter_vec(
                    "downstream_connections_total",
                    "Downstream connections accepted.",
                    &["listener"],
                ),
                connections_active: gauge_vec(
                    "downstream_connections_active",
                    "Downstream connections open now.",
                    &["listener"],
                ),
                connections_parked: gauge_vec(
                    "downstream_connections_parked",
                    "HTTP/1 keep-alive connections open now and parked between requests (no buffers held).",
                    &["listener"],
                ),
                connections_rejected_total: counter_vec(
                    "downstream_connections_rejected_total",
                    "Downstream connections closed at accept, by reason.",
                    &["listener", "reason"],
                ),
            },
            http: HttpMetrics {
                retries_total: counter_vec(
                    "http_retries_total",
                    "Retries sent, by reason (connect-failure, reset, per-try-timeout, a status code, grpc-N).",
                    &["listener", "route", "reason"],
                ),
                retry_budget_exhausted_total: counter_vec(
                    "http_retry_budget_exhausted_total",
                    "Retries not sent because the route's retry budget was spent.",
                    &["listener", "route"],
                ),
                hedges_total: counter_vec(
                    "http_hedges_total",
                    "Hedged attempts, by event (sent, won, wasted, budget-exhausted).",
                    &["listener", "route", "event"],
                ),
                faults_injected_total: counter_vec(
                    "http_faults_injected_total",
                    "Faults injected by route fault policies, by kind (delay, abort).",
                    &["listener", "route", "kind"],
                ),
                mirror_requests_total: counter_vec(
                    "http_mirror_requests_total",
                    "Copies of requests for route mirror clusters, by outcome (answered, failed, skipped).",
                    &["listener", "route", "cluster", "outcome"],
                ),
                requests_total: counter_vec(
                    "http_requests_total",
                    "HTTP requests answered, by response status class.",
                    HTTP_LABELS,
                ),
                request_duration_seconds: histogram_vec(
                    "http_request_duration_seconds",
                    "Time from request arrival to the end of the response.",
                    HTTP_LABELS,
                ),
                request_body_bytes_total: counter_vec(
                    "http_request_body_bytes_total",
                    "Request body bytes received from clients.",
                    HTTP_BYTES_LABELS,
                ),
                response_body_bytes_total: counter_vec(
                    "http_response_body_bytes_total",
                    "Response body bytes sent to clients.",
                    HTTP_BYTES_LABELS,
                ),
                local_responses_total: counter_vec(
                    "http_local_responses_total",
                    "Responses the proxy produced itself, by reason (the x-meshwork-error value).",
                    &["listener", "reason"],
                ),
            },
            upstream: UpstreamMetrics {
                requests_total: counter_vec(
                    "upstream_requests_total",
                    "Requests sent to upstream endpoints (each attempt), by response status class.",
                    &["cluster", "endpoint", "status_class"],
                ),
                request_duration_seconds: histogram_vec(
                    "upstream_request_duration_seconds",
                    "Time from sending a request upstream to its response head.",
                    &["cluster"],
                ),
                connect_failures_total: counter_vec(
                    "upstream_connect_failures_total",
                    "Failed connection attempts to endpoints.",
                    ENDPOINT_LABELS,
                ),
                resets_total: counter_vec(
                    "upstream_resets_total",
                    "Upstream connections that broke before a response.",
                    ENDPOINT_LABELS,
                ),
                timeouts_total: counter_vec(
                    "upstream_timeouts_total",
                    "Requests to endpoints cut by a timeout.",
                    ENDPOINT_LABELS,
                ),
                connections_total: counter_vec(
                    "upstream_connections_total",
                    "Connections opened to endpoints.",
                    ENDPOINT_LABELS,
                ),
                connections_active: gauge_vec(
                    "upstream_connections_active",
                    "Connections to endpoints open now.",
                    ENDPOINT_LABELS,
                ),
                overflows_total: counter_vec(
                    "upstream_overflows_total",
                    "Requests, connections or retries refused by a cluster limit, by limit.",
                    &["cluster", "limit"],
                ),
                breaker_state: gauge_vec(
                    "circuit_breaker_state",
                    "Circuit breaker state per endpoint: 0 closed, 1 open, 2 half-open.",
                    ENDPOINT_LABELS,
                ),
                breaker_transitions_total: counter_vec(
                    "circuit_breaker_transitions_total",
                    "Circuit breaker state changes, by the state entered.",
                    &["cluster", "endpoint", "to"],
                ),
                breaker_ejections_total: counter_vec(
                    "circuit_breaker_ejections_total",
                    "Endpoints ejected (circuit breaker opened), by reason: consecutive_failures, failure_rate, failed_trial or latency.",
                    &["cluster", "endpoint", "reason"],
                ),
            },
            config: ConfigMetrics {
                version: IntGauge::with_opts(opts(
                    "config_version",
                    "Version of the active config (increases with each applied config).",
                ))
                .expect("valid"),
                reloads_total: counter_vec(
                    "config_reloads_total",
                    "Config reloads, by result (applied or rejected).",
                    &["result"],
                ),
                last_reload_success_timestamp_seconds: Gauge::with_opts(opts(
                    "config_last_reload_success_timestamp_seconds",
                    "Unix time of the last applied config.",
                ))
                .expect("valid"),
            },
            control_plane: ControlPlaneMetrics {
                connected: IntGauge::with_opts(opts(
                    "control_plane_connected",
                    "1 while the discovery stream to the control plane is open.",
                ))
                .expect("valid"),
                updates_total: counter_vec(
                    "control_plane_updates_total",
                    "Responses from the control plane, by answer: ack (applied whole) or nack (resources rejected).",
                    &["result"],
                ),
                info: gauge_vec(
                    "control_plane_info",
                    "1 for the control plane address and the snapshot version last applied from it.",
                    &["address", "version"],
                ),
                tls_handshake_failures_total: counter_vec(
                    "control_plane_tls_handshake_failures_total",
                    "Discovery streams to the control plane that TLS refused (on either side), by reason.",
                    &["reason"],
                ),
            },
            access_log_dropped_total: IntCounter::with_opts(opts(
                "access_log_dropped_total",
                "Access log lines dropped because the writer fell behind.",
            ))
            .expect("valid"),
            health: HealthMetrics {
                checks_total: counter_vec(
                    "health_checks_total",
                    "Active health check probes, by result (success, failure).",
                    &["cluster", "endpoint", "result"],
                ),
                endpoint_healthy: gauge_vec(
                    "endpoint_healthy",
                    "1 when the endpoint passes its active health check, 0 when it is out of rotation.",
                    ENDPOINT_LABELS,
                ),
            },
            tls: tls::TlsMetrics::new(),
            tcp: tcp::TcpMetrics::new(),
            mesh: mesh::MeshMetrics::new(),
            sidecar: sidecar::SidecarMetrics::new(),
            drain: drain::DrainMetrics::new(),
            trace: TraceMetrics {
                spans_exported: counter(
                    "trace_spans_exported_total",
                    "Spans accepted by the OTLP collector.",
                ),
                spans_dropped: counter(
                    "trace_spans_dropped_total",
                    "Spans dropped: the export queue was full or the collector failed.",
                ),
                export_failures: counter(
                    "trace_export_failures_total",
                    "OTLP export requests that failed.",
                ),
            },
            registry,
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let d = &self.downstream;
        self.register(d.connections_total.clone());
        self.register(d.connections_active.clone());
        self.register(d.connections_parked.clone());
        self.register(d.connections_rejected_total.clone());
        let h = &self.http;
        self.register(h.requests_total.clone());
        self.register(h.request_duration_seconds.clone());
        self.register(h.request_body_bytes_total.clone());
        self.register(h.response_body_bytes_total.clone());
        self.register(h.local_responses_total.clone());
        self.register(h.faults_injected_total.clone());
        self.register(h.mirror_requests_total.clone());
        self.register(h.retries_total.clone());
        self.register(h.retry_budget_exhausted_total.clone());
        self.register(h.hedges_total.clone());
        let u = &self.upstream;
        self.register(u.requests_total.clone());
        self.register(u.request_duration_seconds.clone());
        self.register(u.connect_failures_total.clone());
        self.register(u.resets_total.clone());
        self.register(u.timeouts_total.clone());
        self.register(u.connections_total.clone());
        self.register(u.connections_active.clone());
        self.register(u.breaker_state.clone());
        self.register(u.overflows_total.clone());
        self.register(u.breaker_transitions_total.clone());
        self.register(u.breaker_ejections_total.clone());
        let c = &self.config;
        self.register(c.version.clone());
        self.register(c.reloads_total.clone());
        self.register(c.last_reload_success_timestamp_seconds.clone());
        let cp = &self.control_plane;
        self.register(cp.connected.clone());
        self.register(cp.updates_total.clone());
        self.register(cp.info.clone());
        self.register(cp.tls_handshake_failures_total.clone());
        self.register(self.access_log_dropped_total.clone());
        self.register(self.health.checks_total.clone());
        self.register(self.health.endpoint_healthy.clone());
        self.register(self.trace.spans_exported.clone());
        self.register(self.trace.spans_dropped.clone());
        self.register(self.trace.export_failures.clone());
        self.tls.register(self);
        self.tcp.register(self);
        self.mesh.register(self);
        self.sidecar.register(self);
        self.drain.register(self);
        let build = IntGaugeVec::new(
            opts(
                "build_info",
                "Always 1; the labels say which build this is.",
            ),
            &["version"],
        )
        .expect("valid");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        self.register(build);
        #[cfg(target_os = "linux")]
        if let Err(error) = self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(%error, "process metrics unavailable");
        }
    }

    /// Adds a metric family to `/metrics` and hands it back.
    ///
    /// # Panics
    /// When a family of that name is already registered: names are static, so that is
    /// a programming error caught by any test that builds the proxy.
    pub fn register<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        self.registry
            .register(Box::new(collector.clone()))
            .expect("each metric family is registered once");
        collector
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_registered_once_and_exposed_with_the_prefix() {
        let m = Metrics::new();
        m.http
            .requests_total
            .with_label_values(&["edge", "api", "v1", "2xx"])
            .inc();
        let text = m.encode();
        assert!(text.contains("meshwork_http_requests_total{cluster=\"v1\",listener=\"edge\",route=\"api\",status_class=\"2xx\"} 1"), "{text}");
        assert!(text.contains("meshwork_build_info{version="));
    }

    #[test]
    fn status_classes_cover_every_status() {
        assert_eq!(STATUS_CLASSES[status_class(http::StatusCode::OK)], "2xx");
        assert_eq!(
            STATUS_CLASSES[status_class(http::StatusCode::SWITCHING_PROTOCOLS)],
            "1xx"
        );
        assert_eq!(
            STATUS_CLASSES[status_class(http::StatusCode::GATEWAY_TIMEOUT)],
            "5xx"
        );
    }
}
