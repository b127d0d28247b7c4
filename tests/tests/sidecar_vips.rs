//! Service VIPs end to end, in network namespaces: pod A's app dials a Service's cluster
//! IP (an address nothing owns: only `meshwork init`'s redirect answers it) and A's
//! outbound sidecar balances the connection over the Service's endpoints in pod B —
//! HTTP through the cluster's route, opaque TCP to an endpoint the balancer picks, as the
//! port's protocol hint says — meshing the endpoints marked `meshed` even outside
//! `mesh.networks` and reaching the others in clear. Once with the VIPs written in the
//! sidecar's file, once learned by a real `meshwork-control --kubernetes` from the fake
//! API server. Real `meshwork` processes as UID 1337.
//!
//! Needs root (CI runs as root); `MESHWORK_SKIP_NETNS=1` skips, nothing else does.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ObjectReference, Pod as KubePod, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use meshwork_tests::kube_api::FakeApiServer;
use meshwork_tests::netns::skipped;
use meshwork_tests::pods::{Identities, MeshedPods, Pod, Pods, Sidecar, SidecarConfig};
use meshwork_tests::{ControlPlane, HttpClient, Scrape, Upstream, eventually};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: &str = "meshwork_sidecar_connections_total";
/// How long anything may take before a test gives up.
const BOUND: Duration = Duration::from_secs(10);
/// Networks no pod is in: `mesh` is on, but only endpoints marked `meshed` are meshed.
const NO_POD_NETWORK: &str = "192.0.2.0/24";
/// What the app sends over the opaque port: an HTTP request, which only a connection
/// relayed unread (not detected, not served as HTTP) gets back verbatim from an echo.
const OPAQUE_PAYLOAD: &[u8] = b"GET /not-http-here HTTP/1.1\r\nHost: x\r\n\r\n";

/// `[::]:port`: an app in B listening on every address of the pod.
fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// The sum of the connections a sidecar's `listener` counted to `port` as `protocol`.
fn connections(scrape: &Scrape, listener: &str, port: u16, protocol: &str) -> f64 {
    let port = port.to_string();
    scrape
        .series(CONNECTIONS)
        .iter()
        .filter(|(labels, _)| {
            labels.get("listener").is_some_and(|l| l == listener)
                && labels.get("port").is_some_and(|p| *p == port)
                && labels.get("protocol").is_some_and(|p| p == protocol)
        })
        .map(|(_, value)| value)
        .sum()
}

/// An HTTP/1.1 echo upstream named `name` in `pod` on `[::]:port`.
async fn http_app(pod: &Pod, name: &str, port: u16) -> Upstream {
    pod.run(Upstream::http1().name(name).bind(any(port)).start())
        .await
}

/// A client-first echo in `pod` on `[::]:port` that prefixes its first answer with
/// `tag`: which endpoint a connection reached, and that its bytes arrived unchanged.
async fn tagged_echo(pod: &Pod, port: u16, tag: &'static str) -> tokio::task::JoinHandle<()> {
    let listener = pod
        .run(async move { TcpListener::bind(any(port)).await.expect("bind the echo") })
        .await;
    pod.spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut first = true;
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    let mut out = Vec::new();
                    if std::mem::take(&mut first) {
                        out.extend_from_slice(tag.as_bytes());
                    }
                    out.extend_from_slice(&buf[..n]);
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// `count` HTTP/1.1 requests from `pod`'s app to `url`, each on a connection of its own:
/// how many each upstream answered.
async fn http_calls(pod: &Pod, url: &str, count: usize) -> BTreeMap<String, usize> {
    let url = url.to_owned();
    pod.run(async move {
        let client = HttpClient::h1_unpooled();
        let mut answered: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..count {
            let reply = client
                .request(http::Method::GET, &url)
                .timeout(BOUND)
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            *answered.entry(reply.echo().upstream).or_default() += 1;
        }
        answered
    })
    .await
}

/// `count` connections from `pod`'s app to `addr`, each sending [`OPAQUE_PAYLOAD`] and
/// reading its echo: how many each tag (`tag_len` bytes) answered.
async fn opaque_calls(
    pod: &Pod,
    addr: SocketAddr,
    count: usize,
    tag_len: usize,
) -> BTreeMap<String, usize> {
    pod.run(async move {
        let mut answered: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..count {
            let exchange = async {
                let mut stream = TcpStream::connect(addr).await.expect("connect the VIP");
                stream.write_all(OPAQUE_PAYLOAD).await.expect("send");
                let mut back = vec![0; tag_len + OPAQUE_PAYLOAD.len()];
                stream.read_exact(&mut back).await.expect("read the echo");
                back
            };
            let back = tokio::time::timeout(BOUND, exchange)
                .await
                .expect("an echo in time");
            let (tag, echoed) = back.split_at(tag_len);
            assert_eq!(
                echoed,
                OPAQUE_PAYLOAD,
                "relayed unread: {:?}",
                String::from_utf8_lossy(&back)
            );
            *answered
                .entry(String::from_utf8_lossy(tag).into_owned())
                .or_default() += 1;
        }
        answered
    })
    .await
}

/// Waits for B's inbound sidecar to count a meshed connection to `meshed` and a plain
/// one (`plain_protocol`) to `plain`; then, those connections counted, neither was the
/// other kind.
async fn assert_meshed_only_where_marked(
    b: &Sidecar,
    meshed: u16,
    plain: u16,
    plain_protocol: &str,
) {
    let scrape = b
        .scrape_when(
            &format!("a meshed connection to {meshed} and a {plain_protocol} one to {plain}"),
            |s| {
                connections(s, "inbound", meshed, "meshed") >= 1.0
                    && connections(s, "inbound", plain, plain_protocol) >= 1.0
            },
        )
        .await;
    assert_eq!(connections(&scrape, "inbound", plain, "meshed"), 0.0);
    assert_eq!(connections(&scrape, "inbound", meshed, plain_protocol), 0.0);
}

#[tokio::test]
async fn a_vip_in_the_sidecars_file_balances_http_and_opaque_and_meshes_only_marked_endpoints() {
    if skipped(
        "a_vip_in_the_sidecars_file_balances_http_and_opaque_and_meshes_only_marked_endpoints",
    ) {
        return;
    }
    let m = MeshedPods::builder()
        .a_config(|c| {
            c.mesh_networks(&[NO_POD_NETWORK]).extra(
                "clusters:
  - name: users
    endpoints: [{ address: \"10.200.0.2:8090\", meshed: true }, \"10.200.0.2:8091\"]
    vip: { addresses: [\"10.96.0.10:80\"], protocol: http }
  - name: echo
    endpoints: [{ address: \"10.200.0.2:9090\", meshed: true }, \"10.200.0.2:9091\"]
    vip: { addresses: [\"10.96.0.11:5000\"], protocol: opaque }
",
            )
        })
        // B's app on 9091 speaks a client-first protocol of its own: reached in clear, it
        // must not be sniffed by B's inbound side either.
        .b_config(|c| c.inbound("ports: { 9091: opaque }"))
        .start()
        .await;
    let _users1 = http_app(&m.pods.b, "users-1", 8090).await;
    let _users2 = http_app(&m.pods.b, "users-2", 8091).await;
    let _echo1 = tagged_echo(&m.pods.b, 9090, "echo-1|").await;
    let _echo2 = tagged_echo(&m.pods.b, 9091, "echo-2|").await;

    let answered = http_calls(&m.pods.a, "http://10.96.0.10/profile", 4).await;
    assert_eq!(
        answered,
        [("users-1".to_string(), 2), ("users-2".to_string(), 2)].into(),
        "round robin over the VIP's cluster"
    );
    let tags = opaque_calls(&m.pods.a, "10.96.0.11:5000".parse().unwrap(), 4, 7).await;
    assert_eq!(
        tags,
        [("echo-1|".to_string(), 2), ("echo-2|".to_string(), 2)].into()
    );

    // The endpoint marked `meshed` got mutual TLS (B's inbound side says so), the other
    // plaintext, though neither is in A's mesh.networks.
    assert_meshed_only_where_marked(&m.b_sidecar, 8090, 8091, "http").await;
    assert_meshed_only_where_marked(&m.b_sidecar, 9090, 9091, "opaque").await;
    // A counted them at the VIP's port, as the hints say.
    m.a_sidecar
        .scrape_when("the VIP connections counted as hinted", |s| {
            connections(s, "outbound", 80, "http") >= 4.0
                && connections(s, "outbound", 5000, "opaque") >= 4.0
        })
        .await;
}

/// Service `web` in `shop`: cluster IP 10.96.0.10, port 80 named `http-web`, port 5000
/// named `tcp-echo`.
fn web_service() -> Service {
    let port = |name: &str, port| ServicePort {
        name: Some(name.into()),
        port,
        ..ServicePort::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            cluster_ips: Some(vec!["10.96.0.10".into()]),
            ports: Some(vec![port("http-web", 80), port("tcp-echo", 5000)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Pod `web-N`'s slice: its one endpoint, 10.200.0.2, serving `http-web` on 808N and
/// `tcp-echo` on 909N (each "pod" has ports of its own: they all live in pod B).
fn web_slice(n: u16) -> EndpointSlice {
    let port = |name: &str, number: u16| EndpointPort {
        name: Some(name.into()),
        port: Some(i32::from(number)),
        protocol: Some("TCP".into()),
        ..EndpointPort::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("web-{n}")),
            namespace: Some("shop".into()),
            labels: Some([("kubernetes.io/service-name".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![port("http-web", 8080 + n), port("tcp-echo", 9090 + n)]),
        endpoints: vec![Endpoint {
            addresses: vec!["10.200.0.2".into()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(format!("web-{n}")),
                namespace: Some("shop".into()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }],
    }
}

/// Pod `web-N`, with the annotation `meshwork inject` adds when `injected`.
fn web_pod(n: u16, injected: bool) -> KubePod {
    KubePod {
        metadata: ObjectMeta {
            name: Some(format!("web-{n}")),
            namespace: Some("shop".into()),
            annotations: injected
                .then(|| [("meshwork.io/injected".to_string(), "true".to_string())].into()),
            ..ObjectMeta::default()
        },
        ..KubePod::default()
    }
}

/// The control plane's fragment for pod A's sidecar: the outbound listener, as
/// `SidecarConfig` writes it.
const SIDECAR_LISTENERS: &str = "listeners:
  - name: outbound
    address: 127.0.0.1:15001
    direction: outbound
    protocol: auto
    original_destination: true
    limits: { idle_timeout: 1h }
";

/// The endpoints the sidecar's `/clusters` lists for `cluster`.
async fn endpoints_at(sidecar: &Sidecar, cluster: &str) -> usize {
    let Ok((_, body)) = sidecar.admin_get("/clusters").await else {
        return 0;
    };
    let clusters: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    clusters["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == cluster)
        .map(|c| c["endpoints"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test]
async fn a_service_vip_learned_from_kubernetes_spreads_http_and_tcp_over_its_pods() {
    if skipped("a_service_vip_learned_from_kubernetes_spreads_http_and_tcp_over_its_pods") {
        return;
    }
    // The control plane (and the API server it watches) run in pod B, on a port B's
    // interception skips; A's sidecar subscribes to it, as UID 1337 (never captured).
    let pods = Pods::new();
    let ids = Identities::new();
    pods.a.init(&[]);
    pods.b.init(&["--inbound-skip-ports", "18000"]);
    // B's echoes speak a client-first protocol of their own: reached in clear, they must
    // not be sniffed by B's inbound side either.
    let b_config = SidecarConfig::new(&ids.b).inbound("ports: { 9092: opaque, 9093: opaque }");
    let b_sidecar = Sidecar::start(&pods.b, &b_config).await;

    let api = pods.b.run(FakeApiServer::start()).await;
    api.apply(&web_service());
    for n in 1..=3 {
        api.apply(&web_slice(n));
        api.apply(&web_pod(n, n == 1));
    }
    let dir = tempfile::tempdir().expect("a directory");
    let kubeconfig = api.kubeconfig(dir.path());
    let _control = ControlPlane::start_in_netns(
        &pods.b.ns.name,
        "10.200.0.2:18000".parse().unwrap(),
        &[
            OsStr::new("--kubernetes"),
            OsStr::new("--kubeconfig"),
            kubeconfig.as_os_str(),
        ],
        // With a control plane, a proxy's listeners are the ones it serves.
        &[("sidecar.yaml", SIDECAR_LISTENERS)],
    )
    .await;
    let a_config = SidecarConfig::new(&ids.a)
        .mesh_networks(&[NO_POD_NETWORK])
        .extra("control_plane:\n  address: http://10.200.0.2:18000\n");
    let a_sidecar = Sidecar::start(&pods.a, &a_config).await;
    eventually(
        "both of web's clusters with 3 endpoints at A",
        BOUND,
        || async {
            endpoints_at(&a_sidecar, "web.shop.svc:80").await == 3
                && endpoints_at(&a_sidecar, "web.shop.svc:5000").await == 3
        },
    )
    .await;

    let mut apps = Vec::new();
    for n in 1..=3u16 {
        apps.push(http_app(&pods.b, &format!("web-{n}"), 8080 + n).await);
    }
    let tags = ["web-1|", "web-2|", "web-3|"];
    let mut echoes = Vec::new();
    for (n, tag) in (1..=3u16).zip(tags) {
        echoes.push(tagged_echo(&pods.b, 9090 + n, tag).await);
    }

    // `http-web`: HTTP, round robin over the three pods.
    let answered = http_calls(&pods.a, "http://10.96.0.10/", 6).await;
    let expected: BTreeMap<String, usize> = (1..=3).map(|n| (format!("web-{n}"), 2)).collect();
    assert_eq!(answered, expected, "each pod answered its share");
    // `tcp-echo`: opaque at once (an HTTP request comes back verbatim), spread too.
    let echoed = opaque_calls(&pods.a, "10.96.0.10:5000".parse().unwrap(), 6, 6).await;
    let expected: BTreeMap<String, usize> = tags.iter().map(|t| (t.to_string(), 2)).collect();
    assert_eq!(echoed, expected, "each pod echoed its share");

    // web-1 is injected: meshed; web-2 is not: plaintext.
    assert_meshed_only_where_marked(&b_sidecar, 8081, 8082, "http").await;
    assert_meshed_only_where_marked(&b_sidecar, 9091, 9092, "opaque").await;
    a_sidecar
        .scrape_when("the VIP connections counted as hinted", |s| {
            connections(s, "outbound", 80, "http") >= 6.0
                && connections(s, "outbound", 5000, "opaque") >= 6.0
        })
        .await;
}
