//! The admin server's JSON views of the running proxy: `/config` (the active config,
//! where it came from, the control plane link and the fields waiting for a restart) and
//! `/clusters` (every cluster's endpoints, their load, latency and why any is ejected).

use std::sync::atomic::Ordering;

use crate::cluster::breaker::EjectionCause;
use crate::cluster::{ClusterRuntime, Endpoint};
use crate::snapshot::Snapshot;

use super::AdminState;

/// `/config`: the active config, its version and source, the control plane link, and
/// the startup-only fields the applied config sets differently from what runs.
pub fn config(state: &AdminState) -> serde_json::Value {
    let snapshot = state.dataplane.snapshot();
    serde_json::json!({
        "version": snapshot.version.to_string(),
        "source": snapshot.source,
        "control_plane": state.control_plane.as_ref().map(|l| l.view()),
        "pending_restart": state.dataplane.pending_restart(),
        "config": &*snapshot.config,
    })
}

/// `/clusters`: every cluster of the active config with its endpoints and their load.
pub fn clusters(snapshot: &Snapshot) -> serde_json::Value {
    let mut clusters: Vec<_> = snapshot.clusters.values().collect();
    clusters.sort_by(|a, b| a.name().cmp(b.name()));
    let list: Vec<serde_json::Value> = clusters
        .iter()
        .map(|c| {
            // By address, not a scan per endpoint: a cluster may have 100,000 of them.
            let by_address: std::collections::HashMap<_, _> =
                c.config.endpoints.iter().map(|x| (&x.address, x)).collect();
            let endpoints: Vec<serde_json::Value> = c
                .endpoints
                .iter()
                .map(|e| {
                    let configured = by_address.get(&e.address).copied();
                    serde_json::json!({
                        "address": e.address.to_string(),
                        "weight": configured.map_or(1, |x| x.weight),
                        "zone": configured.and_then(|x| x.zone.as_deref()),
                        "meshed": configured.is_some_and(|x| x.meshed),
                        // No active health checking yet (#5): an endpoint is assumed healthy.
                        "health": match &e.health {
                            Some(h) if h.is_healthy() => "healthy",
                            Some(_) => "unhealthy",
                            None => "unchecked",
                        },
                        "circuit_breaker": e.breaker.as_ref().map(|b| b.state().as_str()),
                        "ejected_for": e.breaker.as_ref().and_then(|b| b.cause()).map(ejection_cause),
                        "latency": latency_estimate(c, e),
                        "slow_start_share": Some(e.share()).filter(|s| *s < 1.0),
                        "in_flight": e.in_flight.load(Ordering::Relaxed),
                        "connections_active": e.metrics.connections_active.get(),
                        "requests_total": e.metrics.requests_total(),
                        "connect_failures_total": e.metrics.connect_failures.get(),
                    })
                })
                .collect();
            serde_json::json!({
                "name": c.name(),
                "protocol": c.config.protocol,
                "load_balancer": c.config.load_balancer,
                "endpoints": endpoints,
            })
        })
        .collect();
    serde_json::json!({ "version": snapshot.version.to_string(), "clusters": list })
}

/// Why an endpoint is ejected; for latency, what it was compared with.
fn ejection_cause(cause: EjectionCause) -> serde_json::Value {
    match cause {
        EjectionCause::Latency { latency, others } => serde_json::json!({
            "reason": cause.as_str(),
            "latency_ms": latency.as_secs_f64() * 1e3,
            "others_median_ms": others.as_secs_f64() * 1e3,
        }),
        _ => serde_json::json!({ "reason": cause.as_str() }),
    }
}

/// The endpoint's latency percentile over the window, as latency-based ejection sees it
/// (`null` without `circuit_breaker.latency`).
fn latency_estimate(cluster: &ClusterRuntime, endpoint: &Endpoint) -> serde_json::Value {
    let (Some(detector), Some(window)) = (&cluster.latency_outliers, &endpoint.latency_window)
    else {
        return serde_json::Value::Null;
    };
    let percentile = detector.config().percentile;
    let estimate = window.percentile(percentile, tokio::time::Instant::now());
    serde_json::json!({
        "percentile": percentile,
        "value_ms": estimate.map(|p| p.value.as_secs_f64() * 1e3),
        "samples": estimate.map_or(0, |p| p.samples),
    })
}
