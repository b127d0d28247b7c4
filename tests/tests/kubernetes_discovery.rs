//! `meshwork-control --kubernetes` end to end, against the fake API server of
//! `meshwork_tests::kube_api`: a Service's ready endpoints reach a subscribed proxy that
//! balances over them, readiness changes follow the watch, a watch that must relist
//! (410 Gone) neither loses nor duplicates endpoints, and an API server gone keeps the
//! last state while `/ready` says the control plane is out of sync.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use meshwork_tests::kube_api::{Collection, FakeApiServer};
use meshwork_tests::{ControlPlane, HttpClient, Proxy, Upstream, dedent, eventually};

/// The cluster the control plane makes of port 80 of Service `web` in `shop`.
const WEB: &str = "web.shop.svc:80";
/// How long anything may take before a test gives up.
const BOUND: Duration = Duration::from_secs(10);

fn web_service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A slice of Service `web` holding one endpoint, `127.0.0.1:PORT` (each upstream has
/// its own port, so each gets its own slice, as a rollout changing `targetPort` makes).
fn web_slice(name: &str, port: u16, ready: bool, zone: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            labels: Some([("kubernetes.io/service-name".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(i32::from(port)),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
        endpoints: vec![Endpoint {
            addresses: vec!["127.0.0.1".into()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            zone: Some(zone.into()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(format!("{name}-pod")),
                namespace: Some("shop".into()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }],
    }
}

fn proxy_config(control: &ControlPlane) -> String {
    dedent(&format!(
        "
        version: 1
        node:
          id: app
          labels: {{ app: shop }}
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: {}
        ",
        control.url()
    ))
}

/// A route from listener `edge` to the Kubernetes cluster, written as a fragment.
fn edge_to_web() -> String {
    dedent(&format!(
        "
        listeners:
          - name: edge
            address: 127.0.0.1:0
            route_table: edge
        route_tables:
          edge:
            - name: all
              backends: [{{ cluster: \"{WEB}\" }}]
        "
    ))
}

/// The fake API server with Service `web` and three ready endpoints, the control plane
/// watching it, a proxy subscribed, and the three upstreams.
struct Cluster {
    api: FakeApiServer,
    control: ControlPlane,
    proxy: Proxy,
    upstreams: Vec<Upstream>,
    client: HttpClient,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let mut upstreams = Vec::new();
        for name in ["a", "b", "c"] {
            upstreams.push(Upstream::http1().name(name).route("/", name).start().await);
        }
        let api = FakeApiServer::start().await;
        api.apply(&web_service());
        for (i, upstream) in upstreams.iter().enumerate() {
            let name = ["web-a", "web-b", "web-c"][i];
            api.apply(&web_slice(name, upstream.addr().port(), true, "zone-1"));
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = api.kubeconfig(dir.path());
        let control = ControlPlane::start_with_args(&[
            "--kubernetes".as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ])
        .await;
        control.write("routes.yaml", &edge_to_web());
        eventually("the control plane to serve the route", BOUND, || async {
            control.status().await["resources"]["listener"] == 1
        })
        .await;
        let proxy = Proxy::with_config(proxy_config(&control)).start().await;
        Cluster {
            api,
            control,
            proxy,
            upstreams,
            client: HttpClient::h1(),
            _dir: dir,
        }
    }

    /// The addresses of the cluster's endpoints at the proxy.
    async fn endpoints_at_proxy(&self) -> BTreeSet<String> {
        let clusters = self.proxy.admin_get_ok("/clusters").await;
        let clusters: serde_json::Value =
            serde_json::from_slice(&clusters.body).expect("/clusters is JSON");
        clusters["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"] == WEB)
            .flat_map(|c| c["endpoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["address"].as_str().map(str::to_string))
            .collect()
    }

    fn addresses(&self, which: &[usize]) -> BTreeSet<String> {
        which
            .iter()
            .map(|i| self.upstreams[*i].addr().to_string())
            .collect()
    }

    /// Which upstreams answered `requests` requests through the proxy.
    async fn answered_by(&self, requests: usize) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for _ in 0..requests {
            let reply = self.client.get(&self.proxy.url("edge", "/")).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            seen.insert(reply.text());
        }
        seen
    }
}

#[tokio::test]
async fn a_service_with_three_ready_endpoints_is_balanced_by_a_subscribed_proxy() {
    let cluster = Cluster::start().await;
    assert_eq!(
        cluster.endpoints_at_proxy().await,
        cluster.addresses(&[0, 1, 2])
    );
    let answered = cluster.answered_by(12).await;
    let expected: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    assert_eq!(answered, expected);

    // The endpoint's metadata travels with it.
    let clusters: serde_json::Value =
        serde_json::from_slice(&cluster.proxy.admin_get_ok("/clusters").await.body).expect("JSON");
    let web = clusters["clusters"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == WEB).cloned())
        .expect("the cluster at the proxy");
    assert!(
        web["endpoints"].as_array().is_some_and(|l| l
            .iter()
            .all(|e| e["zone"] == "zone-1" && e["meshed"] == false)),
        "{web:#}"
    );
    let status = cluster.control.status().await;
    assert_eq!(status["resources"]["endpoints"], 1, "{status:#}");
    assert_eq!(
        status["kubernetes"]["services"]["synced"], true,
        "{status:#}"
    );
}

#[tokio::test]
async fn an_endpoint_turning_not_ready_leaves_within_a_second() {
    let cluster = Cluster::start().await;
    assert_eq!(
        cluster.endpoints_at_proxy().await,
        cluster.addresses(&[0, 1, 2])
    );
    let port = cluster.upstreams[1].addr().port();
    let changed = Instant::now();
    cluster
        .api
        .apply(&web_slice("web-b", port, false, "zone-1"));
    eventually(
        "the not-ready endpoint to leave the proxy",
        BOUND,
        || async { cluster.endpoints_at_proxy().await == cluster.addresses(&[0, 2]) },
    )
    .await;
    let took = changed.elapsed();
    eprintln!("the endpoint left the proxy {took:?} after the EndpointSlice changed");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let expected: BTreeSet<String> = ["a", "c"].map(String::from).into();
    assert_eq!(cluster.answered_by(8).await, expected);
}

#[tokio::test]
async fn a_watch_dropped_with_410_relists_without_losing_or_duplicating_endpoints() {
    let cluster = Cluster::start().await;
    assert_eq!(
        cluster.endpoints_at_proxy().await,
        cluster.addresses(&[0, 1, 2])
    );
    let lists_before = cluster.api.requests(Collection::EndpointSlices, "list");
    // The history is gone and the watches dropped; then, before the control plane is
    // back, one slice goes away and another changes: only a relist can see both.
    cluster.api.compact_and_drop_watches();
    assert!(cluster.api.delete::<EndpointSlice>("shop", "web-a"));
    let port = cluster.upstreams[1].addr().port();
    cluster
        .api
        .apply(&web_slice("web-b", port, false, "zone-1"));
    eventually("the relisted state to reach the proxy", BOUND, || async {
        cluster.endpoints_at_proxy().await == cluster.addresses(&[2])
    })
    .await;
    assert!(cluster.api.requests(Collection::EndpointSlices, "list") > lists_before);
    // Back: one slice ready again, the other re-created: every endpoint once.
    cluster.api.apply(&web_slice("web-b", port, true, "zone-1"));
    let port = cluster.upstreams[0].addr().port();
    cluster.api.apply(&web_slice("web-a", port, true, "zone-1"));
    eventually("every endpoint to be back", BOUND, || async {
        cluster.endpoints_at_proxy().await == cluster.addresses(&[0, 1, 2])
    })
    .await;
    let clusters: serde_json::Value =
        serde_json::from_slice(&cluster.proxy.admin_get_ok("/clusters").await.body).expect("JSON");
    let listed = clusters["clusters"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == WEB).cloned())
        .and_then(|c| c["endpoints"].as_array().map(Vec::len));
    assert_eq!(listed, Some(3), "{clusters:#}");
}

#[tokio::test]
async fn the_api_server_gone_keeps_the_last_state_and_ready_says_so() {
    let mut cluster = Cluster::start().await;
    assert_eq!(cluster.control.ready().await.status, 200);
    cluster.api.stop();
    eventually("/ready to say the API is unreachable", BOUND, || async {
        let ready = cluster.control.ready().await;
        ready.status == 503 && ready.text().contains("the Kubernetes API is unreachable")
    })
    .await;
    let ready = cluster.control.ready().await.text();
    assert!(ready.contains("serving the last state"), "{ready}");
    let status = cluster.control.status().await;
    assert!(
        status["kubernetes"]["endpointslices"]["failing"]["error"].is_string(),
        "{status:#}"
    );
    // The last state is still served: to the proxy connected, and to a new one.
    assert_eq!(
        cluster.endpoints_at_proxy().await,
        cluster.addresses(&[0, 1, 2])
    );
    let newcomer =
        Proxy::with_config(proxy_config(&cluster.control).replace("id: app", "id: newcomer"))
            .start()
            .await;
    let reply = cluster.client.get(&newcomer.url("edge", "/")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// A stand-in for the control plane's Service VIP: each connection goes to the first
/// replica that accepts it (as kube-proxy stops sending to a replica that is gone).
async fn front(replicas: Vec<std::net::SocketAddr>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the front");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let replicas = replicas.clone();
            tokio::spawn(async move {
                for replica in replicas {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(replica).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        return;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_proxy_survives_its_replica_dying_and_follows_the_api_through_another() {
    let mut cluster = Cluster::start().await;
    let kubeconfig = cluster.api.kubeconfig(cluster._dir.path());
    let mut first = ControlPlane::start_with_args(&[
        "--kubernetes".as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ])
    .await;
    let second = ControlPlane::start_with_args(&[
        "--kubernetes".as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ])
    .await;
    for replica in [&first, &second] {
        replica.write("routes.yaml", &edge_to_web());
        // A replica reads the directory on its own time: a proxy that subscribed before
        // would start with no listener.
        eventually("the replica to serve the route", BOUND, || async {
            replica.status().await["resources"]["listener"] == 1
        })
        .await;
    }
    let address = |c: &ControlPlane| {
        c.url()
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("an address")
    };
    let vip = front(vec![address(&first), address(&second)]).await;
    let config = proxy_config(&cluster.control)
        .replace(&cluster.control.url(), &format!("http://{vip}"))
        .replace("id: app", "id: replicated");
    let proxy = Proxy::with_config(config).start().await;
    assert!(serves(&first).await, "the front sends to the first replica");
    assert!(!serves(&second).await);
    let version = proxy.config_version().await;
    first.kill().await;
    // The replica gone, the proxy keeps serving what it has...
    let reply = cluster.client.get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // ...reconnects through the front to the other replica, which (watching the same
    // API) serves the same versions: nothing to apply again.
    eventually(
        "the proxy to reconnect to the second replica",
        BOUND,
        || serves(&second),
    )
    .await;
    assert_eq!(proxy.config_version().await, version);
    // And it follows the API through it.
    let port = cluster.upstreams[1].addr().port();
    cluster
        .api
        .apply(&web_slice("web-b", port, false, "zone-1"));
    eventually(
        "the change to reach the proxy through the second replica",
        BOUND,
        || async {
            let clusters: serde_json::Value =
                serde_json::from_slice(&proxy.admin_get_ok("/clusters").await.body).expect("JSON");
            clusters["clusters"]
                .as_array()
                .and_then(|l| l.iter().find(|c| c["name"] == WEB).cloned())
                .and_then(|c| c["endpoints"].as_array().map(Vec::len))
                == Some(2)
        },
    )
    .await;
    cluster.control.kill().await;
}

/// Whether `control` has the node `replicated` connected.
async fn serves(control: &ControlPlane) -> bool {
    control.status().await["nodes"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["id"] == "replicated"))
}
