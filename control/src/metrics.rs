//! The control plane's Prometheus metrics (prefix `meshwork_control_`), documented in
//! docs/control-plane.md.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Push latency buckets in seconds: a push to a proxy on the same host is ACKed in
/// milliseconds; a proxy applying a big config takes longer.
const PUSH_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const STATIC: &str = "metric definitions are static and valid";

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub connected_proxies: IntGauge,
    pub generation: IntGauge,
    pub resources: IntGaugeVec,
    pub problems: IntGauge,
    pub reads_total: IntCounterVec,
    pub pushes_total: IntCounter,
    pub acks_total: IntCounter,
    pub nacks_total: IntCounter,
    pub push_latency_seconds: Histogram,
    pub dns_resolutions_total: IntCounterVec,
    pub tls_handshake_failures_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("meshwork_control".into()), None).unwrap_or_default();
        let register = |c: Box<dyn prometheus::core::Collector>| {
            if let Err(error) = registry.register(c) {
                tracing::error!(%error, "cannot register a metric");
            }
        };
        let connected_proxies = IntGauge::new(
            "connected_proxies",
            "Proxies with an open discovery stream.",
        )
        .expect(STATIC);
        let generation = IntGauge::new(
            "config_generation",
            "Bumped each time the served resources change.",
        )
        .expect(STATIC);
        let resources = IntGaugeVec::new(
            Opts::new("resources", "Resources served, by kind."),
            &["kind"],
        )
        .expect(STATIC);
        let problems = IntGauge::new(
            "config_problems",
            "Files and resources of the directory refused by the last read (their last good versions are served).",
        )
        .expect(STATIC);
        let reads_total = IntCounterVec::new(
            Opts::new(
                "config_reads_total",
                "Readings of the directory, by result: clean, or with_problems.",
            ),
            &["result"],
        )
        .expect(STATIC);
        let pushes_total =
            IntCounter::new("pushes_total", "Responses sent to proxies.").expect(STATIC);
        let acks_total =
            IntCounter::new("acks_total", "Responses proxies applied whole (ACK).").expect(STATIC);
        let nacks_total = IntCounter::new(
            "nacks_total",
            "Responses proxies rejected resources of (NACK).",
        )
        .expect(STATIC);
        let push_latency_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "push_latency_seconds",
                "Time from sending a response to its ACK or NACK.",
            )
            .buckets(PUSH_LATENCY_BUCKETS.to_vec()),
        )
        .expect(STATIC);
        let dns_resolutions_total = IntCounterVec::new(
            Opts::new(
                "dns_resolutions_total",
                "DNS lookups of discovery clusters, by result: ok, or error.",
            ),
            &["result"],
        )
        .expect(STATIC);
        let tls_handshake_failures_total = IntCounterVec::new(
            Opts::new(
                "tls_handshake_failures_total",
                "TLS handshakes with proxies that failed (connection closed), by reason.",
            ),
            &["reason"],
        )
        .expect(STATIC);
        register(Box::new(connected_proxies.clone()));
        register(Box::new(generation.clone()));
        register(Box::new(resources.clone()));
        register(Box::new(problems.clone()));
        register(Box::new(reads_total.clone()));
        register(Box::new(pushes_total.clone()));
        register(Box::new(acks_total.clone()));
        register(Box::new(nacks_total.clone()));
        register(Box::new(push_latency_seconds.clone()));
        register(Box::new(dns_resolutions_total.clone()));
        register(Box::new(tls_handshake_failures_total.clone()));
        for result in ["clean", "with_problems"] {
            reads_total.with_label_values(&[result]);
        }
        for kind in meshwork_config::resource::Kind::ALL {
            resources.with_label_values(&[kind.as_str()]);
        }
        for result in ["ok", "error"] {
            dns_resolutions_total.with_label_values(&[result]);
        }
        // The refusals an operator looks for, at 0 from the start.
        for reason in [
            "no-client-certificate",
            "unknown-ca",
            "certificate-expired",
            "plaintext",
        ] {
            tls_handshake_failures_total.with_label_values(&[reason]);
        }
        Metrics {
            registry,
            connected_proxies,
            generation,
            resources,
            problems,
            reads_total,
            pushes_total,
            acks_total,
            nacks_total,
            push_latency_seconds,
            dns_resolutions_total,
            tls_handshake_failures_total,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "cannot encode metrics");
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
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_family_is_documented_and_every_documented_family_exists() {
        let exposed: BTreeSet<String> = Metrics::new()
            .render()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        let docs = include_str!("../../docs/control-plane.md");
        let documented: BTreeSet<String> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `meshwork_control_"))
            .filter_map(|l| l.split('`').next())
            .map(|name| format!("meshwork_control_{name}"))
            .collect();
        assert_eq!(exposed, documented);
    }
}
