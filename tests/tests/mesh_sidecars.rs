//! Meshed connections between two real meshwork sidecars in network namespaces: the
//! pod's app is intercepted by `meshwork init` and its outbound sidecar meshes to the
//! peer's inbound sidecar (mutual TLS, ALPN `meshwork/1`, header), which forwards to the
//! peer's app with the client's identity known to authorization; `mesh.inbound` decides
//! whether plain clients still get in. Needs root (CI runs as root);
//! `MESHWORK_SKIP_NETNS=1` skips, nothing else does.
//!
//! Both sidecars run as root, excluded from capture with `--proxy-uid 0 --proxy-gid 0`;
//! the pod's "app" connects as UID 1000, so its connections are intercepted.

use meshwork_tests::netns::{
    MESHWORK_ADMIN, Netns, PEER_V4, PodLink, meshwork_metrics, probe_connect, probe_http_listener,
    probe_listener, skipped, start_meshwork,
};
use meshwork_tests::tls::{CertFiles, TestCa};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const API: &str = "spiffe://cluster.local/ns/prod/sa/api";
/// The pod's app (intercepted).
const APP_UID: u32 = 1000;

fn init(ns: &Netns) {
    let bin = meshwork_tests::meshwork_bin();
    ns.run_ok(
        &bin.to_string_lossy(),
        &["init", "--proxy-uid", "0", "--proxy-gid", "0"],
    );
}

/// `meshwork init --mode tproxy` in `ns`, sparing the sidecars (root) from capture.
fn init_tproxy(ns: &Netns) {
    let bin = meshwork_tests::meshwork_bin();
    ns.run_ok(
        &bin.to_string_lossy(),
        &[
            "init",
            "--mode",
            "tproxy",
            "--proxy-uid",
            "0",
            "--proxy-gid",
            "0",
        ],
    );
}

/// The pod's sidecar: an outbound auto listener, destinations on the link meshed.
fn outbound_yaml(identity: &CertFiles) -> String {
    format!(
        "
version: 1
admin: {{ address: {MESHWORK_ADMIN} }}
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    direction: outbound
    protocol: auto
    original_destination: true
mesh:
  networks: [10.200.0.0/24]
{}",
        identity.identity_yaml()
    )
}

/// The peer's sidecar: an inbound auto listener, `mesh.inbound: {mode}`, and `extra`.
fn inbound_yaml(identity: &CertFiles, mode: &str, extra: &str) -> String {
    format!(
        "
version: 1
admin: {{ address: {MESHWORK_ADMIN} }}
listeners:
  - name: inbound
    address: 0.0.0.0:15006
    protocol: auto
    original_destination: true
mesh:
  networks: [10.200.0.0/24]
  inbound: {mode}
{}{extra}",
        identity.identity_yaml()
    )
}

/// `GET url` from the pod's app (intercepted), with `headers`: status and body.
fn app_get_with(link: &PodLink, url: &str, headers: &[&str]) -> (String, String) {
    let uid = format!("{APP_UID}");
    let (reuid, regid) = (format!("--reuid={uid}"), format!("--regid={uid}"));
    let mut args = vec![
        reuid.as_str(),
        regid.as_str(),
        "--clear-groups",
        "curl",
        "-s",
        "--max-time",
        "5",
        "-w",
        "\n%{http_code}",
    ];
    for header in headers {
        args.extend(["-H", header]);
    }
    args.push(url);
    let out = link.pod.run_ok("setpriv", &args);
    let (body, status) = out.rsplit_once('\n').expect("curl's status line");
    (status.to_owned(), body.to_owned())
}

/// `GET url` from the pod's app (intercepted): status and body.
fn app_get(link: &PodLink, url: &str) -> (String, String) {
    app_get_with(link, url, &[])
}

fn certs() -> (TestCa, CertFiles, CertFiles) {
    let ca = TestCa::new("mesh");
    let web = ca.issue("web").spiffe_id(WEB).write();
    let api = ca.issue("api").spiffe_id(API).write();
    (ca, web, api)
}

#[test]
fn a_server_first_app_is_reached_through_both_sidecars_over_mutual_tls() {
    if skipped("a_server_first_app_is_reached_through_both_sidecars_over_mutual_tls") {
        return;
    }
    let (_ca, web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    init(&link.pod);
    let _app = probe_listener(&link.peer, "0.0.0.0:8080", "app", &[]);
    let _inbound = start_meshwork(&link.peer, dir.path(), &inbound_yaml(&api, "strict", ""));
    let _outbound = start_meshwork(&link.pod, dir.path(), &outbound_yaml(&web));

    // The app greets first: the greeting comes back through the meshed connection at once.
    let answer = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), Some(APP_UID)).unwrap();
    assert!(answer.starts_with("app local=10.200.0.2:8080"), "{answer}");
    // Connected from the peer's own address: by its sidecar, not straight from the pod.
    assert!(
        answer.contains(&format!("peer={PEER_V4}:")),
        "not through the peer's sidecar: {answer}"
    );
    let inbound = meshwork_metrics(&link.peer);
    let meshed = inbound.get_or_zero(
        "meshwork_sidecar_connections_total",
        &[
            ("listener", "inbound"),
            ("direction", "inbound"),
            ("port", "8080"),
            ("protocol", "meshed"),
        ],
    );
    assert_eq!(
        meshed,
        1.0,
        "{}",
        inbound.lines_of("meshwork_sidecar_connections_total")
    );
    let outbound = meshwork_metrics(&link.pod);
    assert_eq!(outbound.sum("meshwork_mesh_connect_failures_total"), 0.0);
}

#[test]
fn http_between_sidecars_carries_the_clients_identity_to_authorization_and_the_app() {
    if skipped("http_between_sidecars_carries_the_clients_identity_to_authorization_and_the_app") {
        return;
    }
    let (_ca, web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    init(&link.pod);
    let _app = probe_http_listener(&link.peer, "0.0.0.0:8080", "app");
    let policy = format!(
        "
authorization:
  - listener: inbound
    default: deny
    allow:
      - from: [{WEB}]
        paths: [\"/allowed/*\"]
"
    );
    let _inbound = start_meshwork(
        &link.peer,
        dir.path(),
        &inbound_yaml(&api, "strict", &policy),
    );
    let _outbound = start_meshwork(&link.pod, dir.path(), &outbound_yaml(&web));

    let (status, body) = app_get(&link, &format!("http://{PEER_V4}:8080/allowed/x"));
    assert_eq!(status, "200", "{body}");
    assert!(
        body.starts_with(&format!("app peer-identity={WEB} peer={PEER_V4}:")),
        "{body}"
    );
    // The same identity, a path the policy does not give it.
    let (status, body) = app_get(&link, &format!("http://{PEER_V4}:8080/denied"));
    assert_eq!(status, "403", "{body}");
    let inbound = meshwork_metrics(&link.peer);
    assert_eq!(
        inbound.get_or_zero(
            "meshwork_authorization_denied_total",
            &[("listener", "inbound")]
        ),
        1.0,
        "{}",
        inbound.lines_of("meshwork_http_requests_total"),
    );
    // A connection the pod's sidecar opened while curl had not spoken yet (the race) is
    // closed unused, never refused: the policy gives this peer no opaque connections.
    assert_eq!(
        inbound.sum("meshwork_sidecar_connections_refused_total"),
        0.0,
        "{}",
        inbound.lines_of("meshwork_sidecar_connections_refused_total")
    );
}

#[test]
fn strict_refuses_plain_clients_that_permissive_lets_in() {
    if skipped("strict_refuses_plain_clients_that_permissive_lets_in") {
        return;
    }
    let (_ca, web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    for (mode, plain_gets_in) in [("permissive", true), ("strict", false)] {
        let link = PodLink::new();
        init(&link.pod);
        init(&link.peer);
        let _app = probe_listener(&link.peer, "0.0.0.0:8080", "app", &[]);
        let _inbound = start_meshwork(&link.peer, dir.path(), &inbound_yaml(&api, mode, ""));
        let _outbound = start_meshwork(&link.pod, dir.path(), &outbound_yaml(&web));

        // Root in the pod is not intercepted there: a plain client at the peer, whose
        // inbound capture hands it to the peer's sidecar.
        let plain = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), None);
        match (&plain, plain_gets_in) {
            // Forwarded by the peer's sidecar (REDIRECT mode: from the sidecar's address).
            (Ok(answer), true) => assert!(
                answer.starts_with("app ") && answer.contains(&format!("peer={PEER_V4}:")),
                "{mode}: {answer}"
            ),
            (Err(_), false) => {}
            _ => panic!("{mode}: plain client answered {plain:?}"),
        }
        let refused = meshwork_metrics(&link.peer).get_or_zero(
            "meshwork_sidecar_connections_refused_total",
            &[("listener", "inbound"), ("reason", "not-meshed")],
        );
        assert_eq!(refused, if plain_gets_in { 0.0 } else { 1.0 }, "{mode}");

        // The pod's app is meshed either way.
        let meshed = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), Some(APP_UID)).unwrap();
        assert!(
            meshed.contains(&format!("peer={PEER_V4}:")),
            "{mode}: {meshed}"
        );
    }
}

#[test]
fn a_peer_from_another_trust_root_is_refused_and_counted() {
    if skipped("a_peer_from_another_trust_root_is_refused_and_counted") {
        return;
    }
    let (_ca, _web, api) = certs();
    let stranger_ca = TestCa::new("stranger");
    let stranger = stranger_ca.issue("web").spiffe_id(WEB).write();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    init(&link.pod);
    let _app = probe_listener(&link.peer, "0.0.0.0:8080", "app", &[]);
    let _inbound = start_meshwork(&link.peer, dir.path(), &inbound_yaml(&api, "strict", ""));
    let _outbound = start_meshwork(&link.pod, dir.path(), &outbound_yaml(&stranger));

    let answer = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), Some(APP_UID));
    assert!(answer.is_err(), "{answer:?}");
    let failures = meshwork_metrics(&link.pod);
    assert_eq!(
        failures.get_or_zero(
            "meshwork_mesh_connect_failures_total",
            &[("reason", "unknown-ca")]
        ),
        1.0,
        "{}",
        failures.lines_of("meshwork_mesh_connect_failures_total")
    );
    // The peer counts its side once it has read the pod's alert: wait for it, bounded.
    meshwork_tests::wait::eventually_blocking(
        "the peer to count the refused handshake",
        std::time::Duration::from_secs(5),
        || meshwork_metrics(&link.peer).sum("meshwork_mesh_inbound_refused_total") > 0.0,
    );
    let refused = meshwork_metrics(&link.peer);
    assert_eq!(
        refused.get_or_zero(
            "meshwork_mesh_inbound_refused_total",
            &[
                ("listener", "inbound"),
                ("reason", "peer-refused-unknown-ca")
            ]
        ),
        1.0,
        "{}",
        refused.lines_of("meshwork_mesh_inbound_refused_total")
    );
}

#[test]
fn a_routes_cluster_of_meshed_endpoints_carries_the_clients_identity() {
    if skipped("a_routes_cluster_of_meshed_endpoints_carries_the_clients_identity") {
        return;
    }
    let (_ca, web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    init(&link.pod);
    let _app = probe_http_listener(&link.peer, "0.0.0.0:8080", "app");
    // Only the web identity gets in: a plain connection would be refused (strict), so a
    // 200 proves the route's cluster connection was meshed.
    let policy = format!(
        "
authorization:
  - listener: inbound
    default: deny
    allow:
      - from: [{WEB}]
"
    );
    let _inbound = start_meshwork(
        &link.peer,
        dir.path(),
        &inbound_yaml(&api, "strict", &policy),
    );
    // The route sends `Host: users` to a cluster naming the peer pod's address; the app
    // dials an address on the link where no host answers, so the 200 comes from the
    // route, not the original destination.
    let routes = format!(
        "route_tables:
  services:
    - name: users
      match: {{ host: [users] }}
      backends: [{{ cluster: users }}]
clusters:
  - name: users
    endpoints: [{PEER_V4}:8080]
"
    );
    let outbound = outbound_yaml(&web).replace(
        "    original_destination: true\n",
        "    original_destination: true\n    route_table: services\n",
    ) + &routes;
    let _outbound = start_meshwork(&link.pod, dir.path(), &outbound);

    let (status, body) = app_get_with(&link, "http://10.200.0.99:80/x", &["Host: users"]);
    assert_eq!(status, "200", "{body}");
    assert!(
        body.starts_with(&format!("app peer-identity={WEB} peer={PEER_V4}:")),
        "{body}"
    );
}

#[test]
fn under_tproxy_http_reaches_the_app_from_the_clients_own_address() {
    if skipped("under_tproxy_http_reaches_the_app_from_the_clients_own_address") {
        return;
    }
    let (_ca, _web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    // Only the peer is intercepted, in TPROXY mode; the pod's client is plain.
    init_tproxy(&link.peer);
    let _app = probe_http_listener(&link.peer, "0.0.0.0:8080", "app");
    let _inbound = start_meshwork(
        &link.peer,
        dir.path(),
        &inbound_yaml(&api, "permissive", ""),
    );
    let out = link.pod.run_ok(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://{PEER_V4}:8080/x"),
        ],
    );
    let (body, status) = out.rsplit_once('\n').expect("curl's status line");
    assert_eq!(status, "200", "{body}");
    // Through the inbound sidecar's HTTP path, yet from the pod's own address.
    assert!(
        body.starts_with("app peer-identity=- peer=10.200.0.1:"),
        "the app sees the sidecar, not the client: {body}"
    );
    let inbound = meshwork_metrics(&link.peer);
    assert_eq!(
        inbound.get_or_zero(
            "meshwork_sidecar_connections_total",
            &[
                ("listener", "inbound"),
                ("direction", "inbound"),
                ("port", "8080"),
                ("protocol", "http"),
            ],
        ),
        1.0,
        "{}",
        inbound.lines_of("meshwork_sidecar_connections_total")
    );
}

#[test]
fn under_tproxy_a_meshed_connection_reaches_the_app_from_the_client_pods_address() {
    if skipped("under_tproxy_a_meshed_connection_reaches_the_app_from_the_client_pods_address") {
        return;
    }
    let (_ca, web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    init(&link.pod);
    // The peer is intercepted in TPROXY mode; the pod's app is meshed by its sidecar.
    init_tproxy(&link.peer);
    let _http_app = probe_http_listener(&link.peer, "0.0.0.0:8080", "app");
    let _greeting_app = probe_listener(&link.peer, "0.0.0.0:7001", "greeter", &[]);
    let _inbound = start_meshwork(&link.peer, dir.path(), &inbound_yaml(&api, "strict", ""));
    let _outbound = start_meshwork(&link.pod, dir.path(), &outbound_yaml(&web));

    // HTTP, served by the peer's sidecar: from the pod's address, the identity known.
    let (status, body) = app_get(&link, &format!("http://{PEER_V4}:8080/x"));
    assert_eq!(status, "200", "{body}");
    assert!(
        body.starts_with(&format!("app peer-identity={WEB} peer=10.200.0.1:")),
        "the app sees the sidecar, not the client pod: {body}"
    );
    // A server-first app, relayed opaque: the same.
    let answer = probe_connect(&link.pod, &format!("{PEER_V4}:7001"), Some(APP_UID)).unwrap();
    assert!(
        answer.starts_with("greeter ") && answer.contains("peer=10.200.0.1:"),
        "the app sees the sidecar, not the client pod: {answer}"
    );
    let inbound = meshwork_metrics(&link.peer);
    assert_eq!(
        inbound.get_or_zero(
            "meshwork_sidecar_connections_total",
            &[
                ("listener", "inbound"),
                ("direction", "inbound"),
                ("port", "7001"),
                ("protocol", "meshed"),
            ],
        ),
        1.0,
        "{}",
        inbound.lines_of("meshwork_sidecar_connections_total")
    );
}

/// Waits (at most 10 s) until `ns`'s meshwork has applied a reload of its config.
fn wait_for_reload(ns: &Netns) {
    meshwork_tests::wait::eventually_blocking(
        "the config reload to be applied",
        std::time::Duration::from_secs(10),
        || {
            meshwork_metrics(ns)
                .get_or_zero("meshwork_config_reloads_total", &[("result", "applied")])
                >= 1.0
        },
    );
}

fn resumed_inbound(ns: &Netns) -> f64 {
    meshwork_metrics(ns).get_or_zero(
        "meshwork_mesh_handshakes_total",
        &[("side", "inbound"), ("kind", "resumed")],
    )
}

#[test]
fn a_resumed_meshed_connection_is_authorized_by_its_identity_under_the_policy_of_the_moment() {
    if skipped(
        "a_resumed_meshed_connection_is_authorized_by_its_identity_under_the_policy_of_the_moment",
    ) {
        return;
    }
    let (_ca, web, api) = certs();
    let dir = tempfile::tempdir().unwrap();
    let link = PodLink::new();
    init(&link.pod);
    // 3306 is server-first by the built-in list: each connection is authorized as soon as
    // its header arrives, not raced.
    let _app = probe_listener(&link.peer, "0.0.0.0:3306", "app", &[]);
    let policy = |who: &str| {
        format!(
            "
authorization:
  - listener: inbound
    default: deny
    allow:
      - from: [{who}]
        ports: [3306]
"
        )
    };
    let _inbound = start_meshwork(
        &link.peer,
        dir.path(),
        &inbound_yaml(&api, "strict", &policy(WEB)),
    );
    let _outbound = start_meshwork(&link.pod, dir.path(), &outbound_yaml(&web));
    let app = format!("{PEER_V4}:3306");

    // The first connection's handshake is full; those made after its tickets arrived
    // resume (a warm spare made alongside the first may be full too): bounded tries.
    for _ in 0..5 {
        let answer = probe_connect(&link.pod, &app, Some(APP_UID)).unwrap();
        assert!(answer.starts_with("app "), "{answer}");
        if resumed_inbound(&link.peer) >= 1.0 {
            break;
        }
    }
    let resumed_before = resumed_inbound(&link.peer);
    assert!(resumed_before >= 1.0, "no meshed handshake resumed");

    // The policy changes: web is no longer allowed. The identity files are the same, so
    // the sessions stay resumable; each connection is still authorized by its identity.
    std::fs::write(
        dir.path().join(format!("{}.yaml", link.peer.name)),
        inbound_yaml(
            &api,
            "strict",
            &policy("spiffe://cluster.local/ns/prod/sa/other"),
        ),
    )
    .unwrap();
    wait_for_reload(&link.peer);
    for _ in 0..3 {
        let answer = probe_connect(&link.pod, &app, Some(APP_UID));
        assert!(
            !answer.as_deref().unwrap_or_default().starts_with("app "),
            "refused identity reached the app: {answer:?}"
        );
    }
    let inbound = meshwork_metrics(&link.peer);
    assert_eq!(
        inbound.get_or_zero(
            "meshwork_sidecar_connections_refused_total",
            &[("listener", "inbound"), ("reason", "unauthorized")],
        ),
        3.0,
        "{}",
        inbound.lines_of("meshwork_sidecar_connections_refused_total")
    );
    // The connections after the change resumed sessions made before it (the spare each
    // one took was made after the one before).
    assert!(
        resumed_inbound(&link.peer) > resumed_before,
        "{}",
        inbound.lines_of("meshwork_mesh_handshakes_total")
    );
}
