//! Service VIPs (`clusters[].vip`): which cluster an intercepted connection's original
//! destination stands for, compiled once per snapshot, and the route HTTP to a VIP takes
//! when none of its listener's own routes matches.
//!
//! Only `direction: outbound` listeners look destinations up here: a VIP is what the
//! pod's own app dials. An inbound listener forwards to the app at its original
//! destination whatever the config's VIPs say, so a client outside the pod can never
//! steer the inbound side to another pod through it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use meshwork_config::model::{self, PortProtocol, RetryPolicy};

use crate::cluster::ClusterRuntime;

/// What a VIP stands for.
#[derive(Debug, Clone)]
pub struct VipTarget {
    pub cluster: Arc<ClusterRuntime>,
    /// What connections to it speak (`vip.protocol`).
    pub protocol: PortProtocol,
}

/// Every VIP of a config, by address.
#[derive(Debug, Default)]
pub struct Vips {
    by_address: HashMap<SocketAddr, VipTarget>,
}

impl Vips {
    /// The VIPs of `configs`, resolved to the snapshot's `clusters` (validation made
    /// each address stand for one cluster only).
    pub fn build(
        configs: &[model::Cluster],
        clusters: &HashMap<String, Arc<ClusterRuntime>>,
    ) -> Self {
        let mut by_address = HashMap::new();
        for config in configs {
            let (Some(vip), Some(cluster)) = (&config.vip, clusters.get(&config.name)) else {
                continue;
            };
            for address in &vip.addresses {
                by_address.insert(
                    *address,
                    VipTarget {
                        cluster: cluster.clone(),
                        protocol: vip.protocol,
                    },
                );
            }
        }
        Self { by_address }
    }

    /// The cluster `destination` stands for, if it is a VIP.
    pub fn get(&self, destination: SocketAddr) -> Option<&VipTarget> {
        if self.by_address.is_empty() {
            return None;
        }
        self.by_address.get(&destination)
    }
}

/// A route named after `cluster` (its metrics' `route` label) that takes any request to
/// it, retried by `retry`, WebSocket upgrades allowed: what an `auto` listener's HTTP
/// takes when none of its own routes matches — to the `original-destination` cluster,
/// or to the cluster of the VIP its connection was going to.
pub fn whole_cluster_route(cluster: &str, retry: Option<RetryPolicy>) -> model::Route {
    model::Route {
        name: cluster.into(),
        matcher: Default::default(),
        action: model::RouteAction::Backends(vec![model::WeightedBackend {
            cluster: cluster.into(),
            weight: 1,
        }]),
        timeout: None,
        retry,
        hedge: None,
        fault: None,
        rewrite: None,
        request_headers: Default::default(),
        response_headers: Default::default(),
        rate_limit: None,
        mirror: None,
        upgrades: model::DEFAULT_UPGRADES
            .iter()
            .map(|p| p.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http::{HeaderMap, Method, Uri};

    use crate::cluster::ClusterRegistry;
    use crate::metrics::Metrics;
    use crate::router::RouteRequest;
    use crate::snapshot::{Snapshot, SnapshotParts};

    const CONFIG: &str = "version: 1
listeners:
  - { name: outbound, address: 127.0.0.1:15001, direction: outbound, protocol: auto, original_destination: true, route_table: out }
  - { name: inbound, address: 0.0.0.0:15006, protocol: auto, original_destination: true }
route_tables:
  out:
    - { name: pinned, match: { host: [pinned] }, backends: [{ cluster: other }] }
clusters:
  - name: web.shop.svc:80
    endpoints: [10.1.0.1:8080, 10.1.0.2:8080]
    vip: { addresses: [10.96.0.10:80, \"[fd00::10]:80\"], protocol: http }
  - name: other
    endpoints: [10.1.0.9:8080]
";

    fn snapshot() -> Snapshot {
        let config =
            meshwork_config::load_str("test.yaml", CONFIG, std::path::Path::new("."), &|_| None)
                .expect("valid");
        let metrics = Metrics::new();
        let registry = ClusterRegistry::new(metrics.clone());
        Snapshot::build(
            1,
            "test".into(),
            config,
            &registry,
            &metrics,
            SnapshotParts::default(),
        )
    }

    /// The route `listener` gives a `GET http://HOST/` going to `destination`.
    fn route_of(snapshot: &Snapshot, listener: &str, host: &str, destination: &str) -> String {
        let uri: Uri = format!("http://{host}/").parse().unwrap();
        let headers = HeaderMap::new();
        let view = RouteRequest::new(&Method::GET, &uri, &headers);
        let plan = snapshot.http_listener(listener).expect("an auto listener");
        let destination: SocketAddr = destination.parse().unwrap();
        plan.table
            .find_for(&view, Some(destination))
            .expect("auto tables always route")
            .name()
            .to_string()
    }

    #[test]
    fn http_matching_no_route_goes_to_its_vips_cluster_and_a_route_still_wins() {
        let s = snapshot();
        // The listener's own routes come first; another port of the VIP, or another
        // address, goes where it was going.
        for (host, destination, route) in [
            ("web", "10.96.0.10:80", "web.shop.svc:80"),
            ("web", "[fd00::10]:80", "web.shop.svc:80"),
            ("pinned", "10.96.0.10:80", "pinned"),
            ("web", "10.96.0.10:81", "original-destination"),
            ("web", "10.96.0.11:80", "original-destination"),
        ] {
            assert_eq!(
                route_of(&s, "outbound", host, destination),
                route,
                "{host} to {destination}"
            );
        }
        let vip = s.vips.get("10.96.0.10:80".parse().unwrap()).expect("a VIP");
        assert_eq!(vip.cluster.config.name, "web.shop.svc:80");
        assert_eq!(vip.protocol, meshwork_config::model::PortProtocol::Http);
        assert!(s.vips.get("10.1.0.1:8080".parse().unwrap()).is_none());
    }

    #[test]
    fn the_vips_route_is_retried_and_balanced_over_its_cluster() {
        let s = snapshot();
        let plan = s.http_listener("outbound").unwrap();
        let route = plan
            .table
            .vip_route("10.96.0.10:80".parse().unwrap())
            .expect("a VIP route");
        assert!(route.config.retry.is_some());
        assert_eq!(route.backends.len(), 1);
        assert_eq!(route.backends[0].0.endpoints.len(), 2);
        // Matching never reaches it: only the destination does.
        assert!(
            !plan
                .table
                .matchable()
                .iter()
                .any(|r| r.name() == "web.shop.svc:80")
        );
    }

    #[test]
    fn an_inbound_listener_never_maps_a_vip() {
        let s = snapshot();
        assert_eq!(
            route_of(&s, "inbound", "web", "10.96.0.10:80"),
            "original-destination"
        );
    }

    #[test]
    fn explain_names_the_vips_cluster() {
        let config =
            meshwork_config::load_str("test.yaml", CONFIG, std::path::Path::new("."), &|_| None)
                .expect("valid");
        let (out, matched) = crate::explain::explain(
            &config,
            "GET http://web/x",
            &[],
            Some("outbound"),
            Some("10.96.0.10:80".parse().unwrap()),
        )
        .unwrap();
        assert!(matched);
        assert!(
            out.contains("10.96.0.10:80 is a VIP of cluster \"web.shop.svc:80\""),
            "{out}"
        );
        assert!(!out.contains("not reached"), "{out}");
    }
}
