//! `control_plane.protocol: xds` end to end: the real proxy fed by a scripted standard
//! ADS server (tests/src/xds). A good snapshot carries traffic to local upstreams; a
//! resource meshwork cannot represent is NACKed with a detail naming the resource and
//! the field while the rest is applied; a rejected resource keeps its previous version;
//! version bumps reroute; a reset stream resumes with the versions and names held.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use meshwork_tests::xds::XdsServer;
use meshwork_tests::xds::resources::{
    eds_cluster, http_listener, load_assignment, route_config, static_cluster,
};
use meshwork_tests::{HttpClient, Proxy, Upstream, dedent, eventually};

/// How long a change may take to reach the proxy before the test gives up.
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

fn proxy_config(server: &XdsServer, state_dir: &std::path::Path) -> String {
    dedent(&format!(
        "
        version: 1
        node:
          id: xds-client-test
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: {}
          protocol: xds
          state_dir: {}
        ",
        server.url(),
        state_dir.display()
    ))
}

fn acked(r: &DiscoveryRequest, version: &str) -> bool {
    r.version_info == version && r.error_detail.is_none() && !r.response_nonce.is_empty()
}

/// `/config_dump`.
async fn config_dump(proxy: &Proxy) -> serde_json::Value {
    let reply = proxy.admin_get_ok("/config_dump").await;
    serde_json::from_slice(&reply.body).expect("/config_dump is JSON")
}

/// The standing of an xDS resource in `/config_dump`'s xDS view.
async fn standing(proxy: &Proxy, type_name: &str, name: &str) -> serde_json::Value {
    let dump = config_dump(proxy).await;
    let types = dump["xds"].as_array().cloned().unwrap_or_default();
    types
        .iter()
        .filter(|t| {
            t["type_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(type_name))
        })
        .flat_map(|t| t["resources"].as_array().cloned().unwrap_or_default())
        .find(|r| r["name"] == name)
        .map(|r| r["standing"].clone())
        .unwrap_or(serde_json::Value::Null)
}

async fn answer(client: &HttpClient, proxy: &Proxy) -> String {
    let reply = client.get(&proxy.url("edge", "/")).await;
    format!("{} {}", reply.status.as_u16(), reply.text())
}

/// Serves `api` (EDS -> v1) and `static-v2` (STATIC -> v2) and an `edge` listener whose
/// routes (RDS `edge-routes`) send `/` to `api`.
fn serve_good_snapshot(server: &XdsServer, v1: &Upstream, v2: &Upstream) {
    server.set(
        "1",
        vec![
            ("api", eds_cluster("api")),
            ("static-v2", static_cluster("static-v2", &[&v2.endpoint()])),
        ],
    );
    server.set(
        "1",
        vec![("api", load_assignment("api", &[&v1.endpoint()]))],
    );
    server.set(
        "1",
        vec![("edge", http_listener("edge", "127.0.0.1:0", "edge-routes"))],
    );
    server.set(
        "1",
        vec![("edge-routes", route_config("edge-routes", &[("/", "api")]))],
    );
}

#[tokio::test]
async fn a_standard_ads_server_feeds_the_proxy_and_what_it_cannot_represent_is_nacked_by_field() {
    let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
    let v2 = Upstream::http1().name("v2").route("/", "v2").start().await;
    let server = XdsServer::start().await;
    serve_good_snapshot(&server, &v1, &v2);
    let state = tempfile::tempdir().expect("state dir");
    let proxy = Proxy::with_config(proxy_config(&server, state.path()))
        .start()
        .await;
    let client = HttpClient::h1();

    // The good snapshot: every type ACKed at version 1, traffic flows to v1.
    assert_eq!(answer(&client, &proxy).await, "200 v1");
    server
        .wait_for_request::<Cluster>("a CDS ACK of 1", 0, |r| acked(r, "1"))
        .await;
    let (_, eds) = server
        .wait_for_request::<ClusterLoadAssignment>("an EDS ACK of 1", 0, |r| acked(r, "1"))
        .await;
    assert_eq!(
        eds.resource_names,
        ["api"],
        "EDS subscribes to the EDS clusters"
    );
    server
        .wait_for_request::<Listener>("an LDS ACK of 1", 0, |r| acked(r, "1"))
        .await;
    let (_, rds) = server
        .wait_for_request::<RouteConfiguration>("an RDS ACK of 1", 0, |r| acked(r, "1"))
        .await;
    assert_eq!(
        rds.resource_names,
        ["edge-routes"],
        "RDS subscribes to the listeners' routes"
    );
    let first = server.requests();
    assert_eq!(
        first[0].node.as_ref().map(|n| n.id.as_str()),
        Some("xds-client-test"),
        "the first request names the node"
    );

    // A version bump reroutes.
    let mark = server.requests().len();
    server.set(
        "2",
        vec![(
            "edge-routes",
            route_config("edge-routes", &[("/", "static-v2")]),
        )],
    );
    eventually("the proxy to route to v2", PROPAGATION_BOUND, || async {
        answer(&client, &proxy).await == "200 v2"
    })
    .await;
    server
        .wait_for_request::<RouteConfiguration>("an RDS ACK of 2", mark, |r| acked(r, "2"))
        .await;

    // A cluster meshwork cannot represent: NACKed naming it and its fields; the new good
    // cluster beside it is applied.
    let mark = server.requests().len();
    let mut maglev = static_cluster("hashed", &[&v1.endpoint()]);
    maglev.lb_policy = LbPolicy::Maglev as i32;
    maglev.outlier_detection = Some(OutlierDetection::default());
    server.set(
        "3",
        vec![
            ("api", eds_cluster("api")),
            ("static-v2", static_cluster("static-v2", &[&v2.endpoint()])),
            ("static-v1", static_cluster("static-v1", &[&v1.endpoint()])),
            ("hashed", maglev),
        ],
    );
    let (_, nack) = server
        .wait_for_request::<Cluster>("a CDS NACK of 3", mark, |r| r.error_detail.is_some())
        .await;
    let detail = nack.error_detail.expect("error detail").message;
    assert_eq!(
        nack.version_info, "1",
        "a NACK carries the last version taken"
    );
    assert!(
        detail.contains("Cluster \"hashed\": lb_policy: "),
        "{detail}"
    );
    assert!(
        detail.contains("outlier_detection: not supported by meshwork"),
        "{detail}"
    );
    assert!(!detail.contains("static-v1"), "{detail}");
    eventually(
        "the good new cluster to be applied",
        PROPAGATION_BOUND,
        || async {
            let clusters = proxy.admin_get_ok("/clusters").await.text();
            clusters.contains("\"static-v1\"")
        },
    )
    .await;
    let hashed = standing(&proxy, "Cluster", "hashed").await;
    assert_eq!(hashed["status"], "nacked", "{hashed:#}");
    assert!(
        hashed["error"]
            .as_str()
            .is_some_and(|e| e.contains("lb_policy")),
        "{hashed:#}"
    );
    assert_eq!(
        standing(&proxy, "Cluster", "static-v1").await["status"],
        "acked"
    );
    assert!(
        !proxy
            .admin_get_ok("/clusters")
            .await
            .text()
            .contains("\"hashed\"")
    );

    // A rejected version of a cluster in use keeps its previous version serving.
    let mark = server.requests().len();
    let mut broken = static_cluster("static-v2", &[&v1.endpoint()]);
    broken.lb_policy = LbPolicy::Maglev as i32;
    server.set(
        "4",
        vec![
            ("api", eds_cluster("api")),
            ("static-v2", broken),
            ("static-v1", static_cluster("static-v1", &[&v1.endpoint()])),
        ],
    );
    let (_, nack) = server
        .wait_for_request::<Cluster>("a CDS NACK of 4", mark, |r| r.error_detail.is_some())
        .await;
    assert!(
        nack.error_detail
            .expect("detail")
            .message
            .contains("Cluster \"static-v2\": lb_policy"),
    );
    let kept = standing(&proxy, "Cluster", "static-v2").await;
    assert_eq!(kept["status"], "nacked", "{kept:#}");
    assert_eq!(
        kept["applied_version"], "3",
        "the version of static-v2 last taken: {kept:#}"
    );
    for _ in 0..5 {
        assert_eq!(
            answer(&client, &proxy).await,
            "200 v2",
            "the previous static-v2 serves"
        );
    }

    // A reset stream resumes with the versions and names held; traffic never stops.
    let mark = server.requests().len();
    server.reset_streams();
    let (resumed_at, cds) = server
        .wait_for_request::<Cluster>("a CDS request on a new stream", mark, |r| {
            r.response_nonce.is_empty()
        })
        .await;
    assert_eq!(server.streams_opened(), 2);
    assert_eq!(
        cds.version_info, "1",
        "CDS resumes at the last version ACKed"
    );
    let (_, eds) = server
        .wait_for_request::<ClusterLoadAssignment>("EDS on the new stream", resumed_at, |r| {
            r.response_nonce.is_empty()
        })
        .await;
    assert_eq!(
        (eds.version_info.as_str(), eds.resource_names.as_slice()),
        ("1", &["api".to_string()][..])
    );
    let (_, rds) = server
        .wait_for_request::<RouteConfiguration>("RDS on the new stream", resumed_at, |r| {
            r.response_nonce.is_empty()
        })
        .await;
    assert_eq!(rds.version_info, "2");
    assert_eq!(rds.resource_names, ["edge-routes"]);
    for _ in 0..5 {
        assert_eq!(answer(&client, &proxy).await, "200 v2");
    }
}

#[tokio::test]
async fn restarted_while_the_server_is_down_the_proxy_serves_its_last_snapshot_from_disk() {
    let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
    let v2 = Upstream::http1().name("v2").route("/", "v2").start().await;
    let server = XdsServer::start().await;
    let address = server.addr();
    serve_good_snapshot(&server, &v1, &v2);
    let state = tempfile::tempdir().expect("state dir");
    let config = proxy_config(&server, state.path());
    let mut proxy = Proxy::with_config(config.clone()).start().await;
    let client = HttpClient::h1();
    assert_eq!(answer(&client, &proxy).await, "200 v1");
    assert_eq!(proxy.admin_get_ok("/ready").await.text(), "ready\n");
    proxy.sigterm();
    proxy.wait_exit(PROPAGATION_BOUND).await;

    // The server is gone; the restarted proxy serves the saved snapshot, stale.
    server.stop();
    let restarted = Proxy::with_config(config.clone()).start().await;
    let ready = restarted.admin_get_ok("/ready").await.text();
    assert!(ready.starts_with("ready (stale: "), "{ready}");
    assert_eq!(answer(&client, &restarted).await, "200 v1");
    let link = restarted.config_document().await["control_plane"].clone();
    assert_eq!(link["stale"], true, "{link:#}");
    assert_eq!(link["connected"], false, "{link:#}");
    assert_eq!(link["version"], "1/1/1/1", "{link:#}");
    let dump = config_dump(&restarted).await;
    let statuses: Vec<(String, String)> = dump["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("edge", "stale"),
            ("edge-routes", "stale"),
            ("api", "stale"),
            ("static-v2", "stale")
        ]
        .map(|(n, s)| (n.to_string(), s.to_string())),
        "{dump:#}"
    );

    // The server is back with a new version: it replaces the saved snapshot.
    let server = XdsServer::start_at(address).await;
    serve_good_snapshot(&server, &v1, &v2);
    server.set(
        "5",
        vec![(
            "edge-routes",
            route_config("edge-routes", &[("/", "static-v2")]),
        )],
    );
    eventually(
        "the proxy to take the server's snapshot",
        PROPAGATION_BOUND,
        || async { restarted.config_document().await["control_plane"]["stale"] == false },
    )
    .await;
    let mut restarted = restarted;
    restarted.refresh_listeners().await;
    eventually("the new routes to serve", PROPAGATION_BOUND, || async {
        answer(&client, &restarted).await == "200 v2"
    })
    .await;
    assert_eq!(restarted.admin_get_ok("/ready").await.text(), "ready\n");
    let dump = config_dump(&restarted).await;
    assert!(
        dump["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .all(|r| r["status"] == "acked"),
        "{dump:#}"
    );
}
