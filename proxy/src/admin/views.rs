//! The admin server's JSON views of the running proxy: `/config` (the active config,
//! where it came from, the control plane link and the fields waiting for a restart) and
//! `/clusters` (every cluster's endpoints and their load).

use std::sync::atomic::Ordering;

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
            let endpoints: Vec<serde_json::Value> = c
                .endpoints
                .iter()
                .map(|e| {
                    let configured = c.config.endpoints.iter().find(|x| x.address == e.address);
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
