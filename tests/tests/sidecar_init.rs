//! `meshwork init` in real network namespaces: a pod and a peer host on a veth link, the
//! rules programmed by the real binary, real connections from processes inside.
//! Needs root (CI runs as root); `MESHWORK_SKIP_NETNS=1` skips, nothing else does.

use meshwork_tests::meshwork_bin;
use meshwork_tests::netns::{
    PEER_V4, PEER_V6, POD_V4, PodLink, probe_connect, probe_listener, skipped,
};

fn init(link: &PodLink, args: &[&str]) -> String {
    let bin = meshwork_bin();
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    link.pod.run_ok(&bin.to_string_lossy(), &all)
}

fn ruleset(link: &PodLink) -> String {
    link.pod.run_ok("nft", &["list", "ruleset"])
}

#[test]
fn app_connections_reach_the_outbound_port_and_the_proxys_own_do_not() {
    if skipped("app_connections_reach_the_outbound_port_and_the_proxys_own_do_not") {
        return;
    }
    let link = PodLink::new();
    let _outbound = probe_listener(&link.pod, "[::]:15001", "outbound", &[]);
    let _service = probe_listener(&link.peer, "[::]:8080", "service", &[]);
    let _local = probe_listener(&link.pod, "127.0.0.1:9000", "local", &[]);

    // Before init, everything goes where it was going.
    let direct = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), None).unwrap();
    assert!(direct.starts_with("service "), "{direct}");

    init(&link, &[]);
    let v4 = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), None).unwrap();
    assert!(v4.starts_with("outbound "), "{v4}");
    assert!(
        v4.contains(&format!("orig={PEER_V4}:8080")),
        "the original destination is kept: {v4}"
    );
    let v6 = probe_connect(&link.pod, &format!("[{PEER_V6}]:8080"), None).unwrap();
    assert!(v6.starts_with("outbound "), "{v6}");
    assert!(v6.contains(&format!("orig=[{PEER_V6}]:8080")), "{v6}");

    // The proxy (UID 1337) reaches the service itself; loopback is never captured.
    let proxy = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), Some(1337)).unwrap();
    assert!(proxy.starts_with("service "), "{proxy}");
    let local = probe_connect(&link.pod, "127.0.0.1:9000", None).unwrap();
    assert!(local.starts_with("local "), "{local}");
}

#[test]
fn skipped_ports_and_networks_go_out_untouched() {
    if skipped("skipped_ports_and_networks_go_out_untouched") {
        return;
    }
    let link = PodLink::new();
    let _outbound = probe_listener(&link.pod, "[::]:15001", "outbound", &[]);
    let _a = probe_listener(&link.peer, "[::]:3306", "mysql", &[]);
    let _b = probe_listener(&link.peer, "[::]:8080", "service", &[]);
    init(&link, &["--outbound-skip-ports", "3306"]);
    let mysql = probe_connect(&link.pod, &format!("{PEER_V4}:3306"), None).unwrap();
    assert!(mysql.starts_with("mysql "), "{mysql}");
    let service = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), None).unwrap();
    assert!(service.starts_with("outbound "), "{service}");

    // Running init again with other flags replaces the rules, it does not add to them.
    init(
        &link,
        &[
            "--outbound-skip-cidrs",
            &format!("{PEER_V4}/32,{PEER_V6}/128"),
        ],
    );
    let v4 = probe_connect(&link.pod, &format!("{PEER_V4}:8080"), None).unwrap();
    assert!(v4.starts_with("service "), "{v4}");
    let v6 = probe_connect(&link.pod, &format!("[{PEER_V6}]:8080"), None).unwrap();
    assert!(v6.starts_with("service "), "{v6}");
    let mysql = probe_connect(&link.pod, &format!("{PEER_V4}:3306"), None).unwrap();
    assert!(mysql.starts_with("mysql "), "{mysql}");
}

#[test]
fn connections_to_the_pod_reach_the_inbound_port_except_the_admin_port() {
    if skipped("connections_to_the_pod_reach_the_inbound_port_except_the_admin_port") {
        return;
    }
    let link = PodLink::new();
    let _inbound = probe_listener(&link.pod, "[::]:15006", "inbound", &[]);
    let _app = probe_listener(&link.pod, "[::]:8080", "app", &[]);
    let _admin = probe_listener(&link.pod, "[::]:4191", "admin", &[]);
    init(&link, &[]);
    let app = probe_connect(&link.peer, &format!("{POD_V4}:8080"), None).unwrap();
    assert!(app.starts_with("inbound "), "{app}");
    assert!(app.contains(&format!("orig={POD_V4}:8080")), "{app}");
    assert!(
        app.contains(&format!("peer={PEER_V4}:"))
            || app.contains(&format!("peer=[::ffff:{PEER_V4}]:")),
        "{app}"
    );
    // Kubelet's probes of the sidecar's admin port are not captured (default skip).
    let admin = probe_connect(&link.peer, &format!("{POD_V4}:4191"), None).unwrap();
    assert!(admin.starts_with("admin "), "{admin}");
}

#[test]
fn init_is_idempotent_and_cleanup_removes_everything() {
    if skipped("init_is_idempotent_and_cleanup_removes_everything") {
        return;
    }
    let link = PodLink::new();
    init(&link, &[]);
    let once = ruleset(&link);
    init(&link, &[]);
    let twice = ruleset(&link);
    assert_eq!(once, twice, "a second run must leave one set of rules");
    assert_eq!(twice.matches("table inet meshwork").count(), 1, "{twice}");
    assert_eq!(twice.matches("redirect to :15001").count(), 1, "{twice}");

    // TPROXY mode adds policy routing; going back to redirect mode removes it.
    init(&link, &["--mode", "tproxy"]);
    let rules = link.pod.run_ok("ip", &["rule"]);
    assert_eq!(
        rules.matches("fwmark 0x539 lookup 133").count(),
        1,
        "{rules}"
    );
    init(&link, &["--mode", "tproxy"]);
    let rules = link.pod.run_ok("ip", &["rule"]);
    assert_eq!(
        rules.matches("fwmark 0x539 lookup 133").count(),
        1,
        "{rules}"
    );
    init(&link, &[]);
    assert_eq!(ruleset(&link), once);
    assert!(!link.pod.run_ok("ip", &["rule"]).contains("fwmark"));

    init(&link, &["--mode", "tproxy"]);
    init(&link, &["--cleanup"]);
    assert!(!ruleset(&link).contains("meshwork"), "{}", ruleset(&link));
    assert!(!link.pod.run_ok("ip", &["rule"]).contains("fwmark"));
    assert!(!link.pod.run_ok("ip", &["-6", "rule"]).contains("fwmark"));
    // Cleaning a clean namespace is not an error.
    init(&link, &["--cleanup"]);
}

#[test]
fn validate_fails_without_the_rules_and_passes_with_them() {
    if skipped("validate_fails_without_the_rules_and_passes_with_them") {
        return;
    }
    let link = PodLink::new();
    let bin = meshwork_bin();
    let bin = bin.to_string_lossy();
    let out = link
        .pod
        .run(&bin, &["init", "--validate", "--validate-timeout", "1s"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "validation must fail without rules"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOT redirected"), "{stderr}");
    assert!(
        stderr.contains("meshwork init"),
        "the message says what to run: {stderr}"
    );

    init(&link, &[]);
    let ok = link.pod.run_ok(&bin, &["init", "--validate"]);
    assert!(ok.contains("outbound redirect works"), "{ok}");
    let v6 = link.pod.run_ok(
        &bin,
        &[
            "init",
            "--validate",
            "--validate-address",
            "[2001:db8::1]:9",
        ],
    );
    assert!(v6.contains("outbound redirect works"), "{v6}");

    // As the proxy's UID it would prove nothing: refused with the reason.
    let out = link.pod.run(
        "setpriv",
        &[
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            &bin,
            "init",
            "--validate",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UID 1337"));
}

#[test]
fn tproxy_mode_delivers_inbound_connections_with_their_addresses_untouched() {
    if skipped("tproxy_mode_delivers_inbound_connections_with_their_addresses_untouched") {
        return;
    }
    let link = PodLink::new();
    let _inbound = probe_listener(&link.pod, "0.0.0.0:15006", "inbound", &["--transparent"]);
    let _app = probe_listener(&link.pod, "0.0.0.0:8080", "app", &[]);
    init(&link, &["--mode", "tproxy"]);
    let got = probe_connect(&link.peer, &format!("{POD_V4}:8080"), None).unwrap();
    // No NAT: the listener's local address is the one the client dialled, and the
    // client's address is its own.
    assert!(got.starts_with("inbound "), "{got}");
    assert!(got.contains(&format!("local={POD_V4}:8080")), "{got}");
    assert!(got.contains(&format!("peer={PEER_V4}:")), "{got}");
}
