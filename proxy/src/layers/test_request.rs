//! Requests for the layers' unit tests: a [`ProxyRequest`] routed by a route of a real
//! snapshot built from YAML, so a layer runs without a socket or a listener.

use std::path::Path;
use std::sync::Arc;

use super::{ProxyRequest, RequestContext, StackRequest};
use crate::cluster::ClusterRegistry;
use crate::http::RequestBody;
use crate::metrics::Metrics;
use crate::observe::RequestRecord;
use crate::snapshot::{Snapshot, SnapshotParts};

/// A snapshot of `version: 1` plus `rest` (listeners `edge` -> table `edge`, clusters).
pub fn snapshot(rest: &str) -> Arc<Snapshot> {
    let text = format!(
        "version: 1\nadmin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  \
         - {{ name: edge, address: 127.0.0.1:0, route_table: edge }}\n{rest}"
    );
    let config = meshwork_config::load_str("t.yaml", &text, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    let registry = ClusterRegistry::new(metrics.clone());
    Arc::new(Snapshot::build(
        1,
        "test".into(),
        config,
        &registry,
        &metrics,
        SnapshotParts::default(),
    ))
}

/// `method /` on listener `edge` of `snapshot`, already routed by its first route.
pub fn routed(snapshot: &Arc<Snapshot>, method: http::Method) -> ProxyRequest {
    let plan = snapshot.http_listener("edge").cloned();
    let route = plan.as_ref().map(|p| p.table.routes[0].clone());
    let http = http::Request::builder()
        .method(method)
        .uri("/")
        .header(http::header::HOST, "a.test")
        .body(RequestBody::replay(Default::default(), None))
        .unwrap_or_else(|e| panic!("{e}"));
    let record = Arc::new(RequestRecord::new(None));
    if let Some(route) = &route {
        let _ = record.route.set(route.clone());
    }
    StackRequest::boxed(
        http,
        RequestContext {
            snapshot: snapshot.clone(),
            listener: "edge".into(),
            plan,
            record,
            client_addr: ([127, 0, 0, 1], 40000).into(),
            client_address_value: http::HeaderValue::from_static("127.0.0.1"),
            peer_identity: None,
            scheme: "http",
            route,
            cluster: None,
            original_destination: None,
            transparent_source: None,
            retry: false,
            hedge: false,
            deadline: None,
        },
    )
}
