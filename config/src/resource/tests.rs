//! Tests of cutting, assembling and settling resources.

use std::path::Path;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn cut(file: &str, text: &str) -> Vec<Resource> {
    parse_fragment(file, text, &no_env)
        .unwrap_or_else(|e| panic!("{e}"))
        .resources
}

fn settle_all(
    offered: Vec<Resource>,
    previous: &dyn Fn(&Key) -> Option<Resource>,
) -> Settled<crate::Config> {
    let bootstrap = Bootstrap::empty(Path::new("/etc/meshwork"));
    settle(&bootstrap, offered, previous, &no_env, &mut Applied::Done).expect("settles")
}

const CLUSTERS: &str = "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001]\n  - name: broken\n    endpoints: [127.0.0.1:9002]\n    connect_timeout: 25\n";
const ROUTES: &str = "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n    route_table: edge\nroute_tables:\n  edge:\n    - name: all\n      backends: [{ cluster: api }]\n  other:\n    - name: all\n      backends: [{ cluster: broken }]\n";

#[test]
fn one_invalid_resource_blocks_only_itself_and_what_refers_to_it() {
    let mut offered = cut("clusters.yaml", CLUSTERS);
    offered.extend(cut("routes.yaml", ROUTES));
    let settled = settle_all(offered, &|_| None);
    let applied: Vec<String> = settled.applied.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(
        applied,
        vec![
            r#"cluster "api""#,
            r#"listener "edge""#,
            r#"route_table "edge""#
        ]
    );
    assert_eq!(settled.value.clusters.len(), 1);
    let errors: Vec<(String, &str)> = settled
        .rejected
        .iter()
        .map(|r| (r.resource.key.to_string(), r.error.as_str()))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].0, r#"cluster "broken""#);
    assert_eq!(
        errors[0].1,
        r#"clusters.yaml:6:22: clusters[1].connect_timeout: "25" is not a duration (try "25ms")"#
    );
    assert_eq!(errors[1].0, r#"route_table "other""#);
    assert!(
        errors[1]
            .1
            .starts_with("routes.yaml:11:29: route_tables.other[0].backends[0].cluster:"),
        "{}",
        errors[1].1
    );
}

#[test]
fn an_invalid_change_falls_back_to_the_previous_version() {
    let good = cut(
        "c.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001]\n",
    );
    let bad = cut("c.yaml", "clusters:\n  - name: api\n    endpoints: []\n");
    let previous = good[0].clone();
    let settled = settle_all(bad.clone(), &|k| {
        (k == &previous.key).then(|| previous.clone())
    });
    assert_eq!(settled.applied, good);
    assert_eq!(settled.rejected.len(), 1);
    assert_eq!(settled.rejected[0].resource, bad[0]);
    assert_eq!(
        settled.rejected[0].error,
        "c.yaml:3:16: clusters[0].endpoints: needs at least one endpoint"
    );
}

#[test]
fn resources_an_apply_step_refuses_are_left_out() {
    let offered = cut(
        "routes.yaml",
        &format!(
            "{ROUTES}clusters:\n  - {{ name: api, endpoints: [127.0.0.1:1] }}\n  - {{ name: broken, endpoints: [127.0.0.1:2] }}\n"
        ),
    );
    let bootstrap = Bootstrap::empty(Path::new("/"));
    let mut tries = 0;
    let settled = settle(&bootstrap, offered, &|_| None, &no_env, &mut |config| {
        tries += 1;
        if config.listeners.iter().any(|l| l.name == "edge") {
            Applied::Reject(vec![(
                Key::new(Kind::Listener, "edge"),
                "port in use".into(),
            )])
        } else {
            Applied::Done(config)
        }
    })
    .expect("settles");
    assert_eq!(tries, 2);
    assert!(settled.value.listeners.is_empty());
    assert_eq!(settled.rejected.len(), 1);
    assert_eq!(settled.rejected[0].error, "port in use");
}

#[test]
fn problems_in_the_bootstrap_file_fail_the_whole_set() {
    let bootstrap = Bootstrap::new(
        "proxy.yaml",
        "version: 1\nnode:\n  idd: web-1\n",
        Path::new("/"),
    );
    let err = settle(
        &bootstrap,
        Vec::new(),
        &|_| None,
        &no_env,
        &mut Applied::Done,
    )
    .expect_err("fails");
    assert!(err.starts_with("proxy.yaml:3:"), "{err}");
}

#[test]
fn authorization_in_the_bootstrap_must_name_a_served_listener() {
    let bootstrap = Bootstrap::new(
        "proxy.yaml",
        "version: 1\ncontrol_plane: { address: http://127.0.0.1:1 }\nauthorization:\n  - { listener: inbound, default: deny }\n",
        Path::new("/"),
    );
    let err = settle(
        &bootstrap,
        Vec::new(),
        &|_| None,
        &no_env,
        &mut Applied::Done,
    )
    .expect_err("no such listener");
    assert!(
        err.starts_with(
            "proxy.yaml:4:17: authorization[0].listener: no listener named \"inbound\""
        ),
        "{err}"
    );
    let offered = cut(
        "l.yaml",
        "listeners:\n  - { name: inbound, address: 127.0.0.1:0, protocol: tcp, cluster: app, tls: { certificates: [{ cert: c.pem, key: k.pem }], client_auth: required, client_ca: ca.pem } }\nclusters:\n  - { name: app, endpoints: [127.0.0.1:1] }\n",
    );
    assert!(settle(&bootstrap, offered, &|_| None, &no_env, &mut Applied::Done).is_ok());
}

#[test]
fn a_bootstrap_policy_is_checked_against_the_served_listener_it_names() {
    let bootstrap = Bootstrap::new(
        "proxy.yaml",
        "version: 1\ncontrol_plane: { address: http://127.0.0.1:1 }\nauthorization:\n  - { listener: inbound, default: deny }\n",
        Path::new("/"),
    );
    let plaintext = cut(
        "l.yaml",
        "listeners:\n  - { name: inbound, address: 127.0.0.1:0, protocol: tcp, cluster: app }\nclusters:\n  - { name: app, endpoints: [127.0.0.1:1] }\n",
    );
    let err = settle(
        &bootstrap,
        plaintext,
        &|_| None,
        &no_env,
        &mut Applied::Done,
    )
    .expect_err("a tcp listener without client certificates has no identities to check");
    assert!(
        err.starts_with("proxy.yaml:4:17: authorization[0].listener: \"inbound\" is a tcp listener without client certificates"),
        "{err}"
    );
}

#[test]
fn the_bootstrap_keeps_its_own_sections_and_loses_the_served_ones() {
    let bootstrap = Bootstrap::new(
        "proxy.yaml",
        "version: 1\nnode: { id: web-1 }\nclusters:\n  - { name: local, endpoints: [127.0.0.1:1] }\n",
        Path::new("/"),
    );
    let offered = cut(
        "c.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001]\n",
    );
    let settled =
        settle(&bootstrap, offered, &|_| None, &no_env, &mut Applied::Done).expect("settles");
    assert_eq!(settled.value.node.id, "web-1");
    let names: Vec<&str> = settled
        .value
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["api"]);
}

#[test]
fn resolved_endpoints_take_the_place_of_discovery() {
    let offered = cut(
        "c.yaml",
        "clusters:\n  - name: api\n    discovery: { dns: \"api.svc:8080\", refresh: 1s }\n",
    );
    let unresolved = settle_all(offered.clone(), &|_| None);
    let api = &unresolved.value.clusters[0];
    assert!(api.endpoints.is_empty() && api.discovery.is_some());

    let addresses = [
        "10.0.0.2:8080".parse().expect("addr"),
        "10.0.0.1:8080".parse().expect("addr"),
    ];
    let endpoints = resolved_endpoints(&offered[0], &addresses).expect("a discovery cluster");
    assert_eq!(endpoints.key, Key::new(Kind::Endpoints, "api"));
    assert_eq!(endpoints.source.path, "clusters[0].discovery");
    let mut with = offered.clone();
    with.push(endpoints.clone());
    let resolved = settle_all(with, &|_| None);
    let api = &resolved.value.clusters[0];
    let got: Vec<String> = api
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(got, vec!["10.0.0.1:8080", "10.0.0.2:8080"]);
    // Same addresses in another order: same version.
    let again = resolved_endpoints(&offered[0], &[addresses[1], addresses[0]]).expect("again");
    assert_eq!(again.version, endpoints.version);
}

#[test]
fn a_body_that_is_not_ours_is_rejected_with_its_source() {
    let mut offered = cut(
        "c.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001]\n",
    );
    offered[0] = Resource::new(
        offered[0].key.clone(),
        "{}".into(),
        offered[0].source.clone(),
    );
    let settled = settle_all(offered, &|_| None);
    assert!(settled.applied.is_empty());
    assert!(
        settled.rejected[0]
            .error
            .starts_with("c.yaml:2:5: clusters[0]: malformed body node"),
        "{}",
        settled.rejected[0].error
    );
}

#[test]
fn a_served_route_path_that_can_never_match_is_rejected_where_it_was_written() {
    // The listeners come from one fragment, the route tables from another: whether an
    // encoded slash can match is decided by the listeners using the table.
    let mut offered = cut(
        "listeners.yaml",
        "listeners:\n  - { name: edge, address: 127.0.0.1:0, route_table: edge }\n  - { name: files, address: 127.0.0.1:0, route_table: files, paths: { escaped_slashes: keep } }\nclusters:\n  - { name: api, endpoints: [127.0.0.1:1] }\n",
    );
    offered.extend(cut(
        "routes.yaml",
        "route_tables:\n  edge:\n    - name: home\n      match: { path: { prefix: /%7Euser/ } }\n      backends: [{ cluster: api }]\n  files:\n    - name: encoded\n      match: { path: { prefix: /a%2Fb/ } }\n      backends: [{ cluster: api }]\n",
    ));
    let settled = settle_all(offered, &|_| None);
    let applied: Vec<String> = settled.applied.iter().map(|r| r.key.to_string()).collect();
    assert!(
        applied.contains(&r#"route_table "files""#.to_string()),
        "{applied:?}"
    );
    let table = settled
        .rejected
        .iter()
        .find(|r| r.resource.key == Key::new(Kind::RouteTable, "edge"))
        .expect("route table edge is rejected");
    assert_eq!(
        table.error,
        r#"routes.yaml:4:32: route_tables.edge[0].match.path.prefix: "/%7Euser/" is not in normalized form: requests are matched after normalization, so it can never match; write "/~user/""#
    );
}

#[test]
fn bootstrap_authorization_paths_are_checked_against_the_served_listener() {
    let text = "version: 1\ncontrol_plane: { address: http://127.0.0.1:1 }\nauthorization:\n  - listener: inbound\n    allow: [{ paths: [\"/a%2Fb/*\"] }]\n";
    let bootstrap = Bootstrap::new("proxy.yaml", text, Path::new("/"));
    // Alone, the file loads: which listener it names is not known yet.
    let alone = crate::load_str("proxy.yaml", text, Path::new("/"), &no_env);
    assert!(alone.is_ok(), "{alone:?}");
    let served = |escaped: &str| {
        cut(
            "l.yaml",
            &format!(
                "listeners:\n  - {{ name: inbound, address: 127.0.0.1:0, route_table: in, paths: {{ escaped_slashes: {escaped} }} }}\nroute_tables:\n  in:\n    - {{ name: all, backends: [{{ cluster: app }}] }}\nclusters:\n  - {{ name: app, endpoints: [127.0.0.1:1] }}\n"
            ),
        )
    };
    let keep = settle(
        &bootstrap,
        served("keep"),
        &|_| None,
        &no_env,
        &mut Applied::Done,
    );
    assert!(keep.is_ok(), "{keep:?}");
    let err = settle(
        &bootstrap,
        served("reject"),
        &|_| None,
        &no_env,
        &mut Applied::Done,
    )
    .expect_err("the pattern can never match on a rejecting listener");
    assert_eq!(
        err,
        r#"proxy.yaml:5:23: authorization[0].allow[0].paths[0]: "/a%2Fb/*" can never match: a request whose path fits it is refused (400): an encoded "/" or "\" (%2F, %5C); listener "inbound" does not set paths.escaped_slashes: keep"#
    );
}

fn service_source() -> Source {
    Source {
        file: "kubernetes:services/default/web".into(),
        line: 1,
        column: 1,
        path: "spec.ports[0]".into(),
    }
}

#[test]
fn a_service_ports_vips_and_protocol_hint_reach_the_proxys_cluster() {
    let service = crate::units::parse_service_port("web.default.svc:80").expect("valid");
    let settings = super::ServiceSettings {
        http2: false,
        vips: vec![
            "10.96.0.10:80".parse().expect("vip"),
            "[fd00::10]:80".parse().expect("vip"),
        ],
        protocol: crate::model::PortProtocol::Opaque,
    };
    let cluster = service_cluster(&service, &settings, service_source());
    let settled = settle_all(vec![cluster], &|_| None);
    assert!(settled.rejected.is_empty(), "{:?}", settled.rejected);
    assert_eq!(
        settled.value.clusters[0].vip,
        Some(crate::model::Vip {
            addresses: settings.vips.clone(),
            protocol: crate::model::PortProtocol::Opaque,
        })
    );
    // A headless Service (no cluster IP) has no VIP to map.
    let headless = super::ServiceSettings {
        vips: Vec::new(),
        ..settings
    };
    let cluster = service_cluster(&service, &headless, service_source());
    let settled = settle_all(vec![cluster], &|_| None);
    assert_eq!(settled.value.clusters[0].vip, None);
}

#[test]
fn a_service_port_becomes_a_cluster_whose_endpoints_carry_zone_and_meshed() {
    let service = crate::units::parse_service_port("web.default.svc:80").expect("valid");
    let settings = super::ServiceSettings {
        http2: true,
        vips: Vec::new(),
        protocol: crate::model::PortProtocol::Auto,
    };
    let cluster = service_cluster(&service, &settings, service_source());
    assert_eq!(kubernetes_discovery(&cluster), Some(service.clone()));
    // Without endpoints yet: a valid cluster with none.
    let alone = settle_all(vec![cluster.clone()], &|_| None);
    assert!(alone.rejected.is_empty(), "{:?}", alone.rejected);
    assert!(alone.value.clusters[0].endpoints.is_empty());

    let endpoint = |address: &str, zone: Option<&str>, meshed| DiscoveredEndpoint {
        address: address.parse().expect("address"),
        zone: zone.map(str::to_string),
        meshed,
    };
    let found = [
        endpoint("10.0.0.3:8080", None, false),
        endpoint("10.0.0.1:8080", Some("zone-a"), true),
        endpoint("10.0.0.2:8080", Some("zone-b"), false),
    ];
    let endpoints = discovered_endpoints(&cluster, &found).expect("a discovery cluster");
    assert_eq!(
        endpoints.key,
        Key::new(Kind::Endpoints, "web.default.svc:80")
    );
    let settled = settle_all(vec![cluster.clone(), endpoints.clone()], &|_| None);
    assert!(settled.rejected.is_empty(), "{:?}", settled.rejected);
    let web = &settled.value.clusters[0];
    assert_eq!(web.name, "web.default.svc:80");
    assert_eq!(web.protocol, crate::model::UpstreamProtocol::Http2);
    let got: Vec<(String, Option<&str>, bool)> = web
        .endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.zone.as_deref(), e.meshed))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.1:8080".to_string(), Some("zone-a"), true),
            ("10.0.0.2:8080".to_string(), Some("zone-b"), false),
            ("10.0.0.3:8080".to_string(), None, false),
        ]
    );
    // Another order: the same version (no push for nothing).
    let again = discovered_endpoints(
        &cluster,
        &[found[2].clone(), found[1].clone(), found[0].clone()],
    )
    .expect("again");
    assert_eq!(again.version, endpoints.version);
}

#[test]
fn a_written_cluster_may_take_its_endpoints_from_a_service_port() {
    let offered = cut(
        "c.yaml",
        "clusters:\n  - name: web\n    discovery: { kubernetes: web.default.svc:80 }\n    load_balancer: least_request\n",
    );
    let service = kubernetes_discovery(&offered[0]).expect("discovery.kubernetes");
    assert_eq!(service.to_string(), "web.default.svc:80");
    let found = [DiscoveredEndpoint {
        address: "10.0.0.1:80".parse().expect("address"),
        zone: None,
        meshed: false,
    }];
    let mut with = offered.clone();
    with.push(discovered_endpoints(&offered[0], &found).expect("endpoints"));
    let settled = settle_all(with, &|_| None);
    assert!(settled.rejected.is_empty(), "{:?}", settled.rejected);
    assert_eq!(settled.value.clusters[0].endpoints.len(), 1);
}

#[test]
fn kubernetes_discovery_is_checked_where_it_is_written() {
    for (body, expected) in [
        (
            "discovery: { kubernetes: web.default:80 }",
            "c.yaml:3:30: clusters[0].discovery.kubernetes: \"web.default:80\": expected NAME.NAMESPACE.svc:PORT",
        ),
        (
            "discovery: { kubernetes: web.default.svc:80, dns: \"web:80\" }",
            "clusters[0].discovery.kubernetes: cannot be used together with \"dns\"",
        ),
        (
            "discovery: { kubernetes: web.default.svc:80, refresh: 1s }",
            "clusters[0].discovery.refresh: only with \"dns\"",
        ),
        (
            "discovery: {}",
            "clusters[0].discovery: missing field \"dns\" (or \"kubernetes\")",
        ),
    ] {
        let offered = cut("c.yaml", &format!("clusters:\n  - name: web\n    {body}\n"));
        let settled = settle_all(offered, &|_| None);
        let error = &settled.rejected[0].error;
        assert!(error.contains(expected), "{body}: {error}");
    }
}

#[test]
fn a_served_cluster_keeps_its_latency_ejection_and_slow_start() {
    let offered = cut(
        "c.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]\n    circuit_breaker:\n      latency: { factor: 4, min_latency: 30ms, min_requests: 7, window: 3s, percentile: 90 }\n      slow_start: 15s\n",
    );
    let settled = settle_all(offered, &|_| None);
    let breaker = settled.value.clusters[0]
        .circuit_breaker
        .as_ref()
        .expect("breaker");
    assert_eq!(
        breaker.latency,
        Some(crate::model::LatencyEjection {
            factor: 4.0,
            min_latency: std::time::Duration::from_millis(30),
            min_requests: 7,
            window: std::time::Duration::from_secs(3),
            percentile: 90,
        })
    );
    assert_eq!(breaker.slow_start, Some(std::time::Duration::from_secs(15)));
}

#[test]
fn a_served_route_keeps_its_hedge_policy() {
    let mut offered = cut("clusters.yaml", CLUSTERS);
    offered.extend(cut(
        "routes.yaml",
        "route_tables:\n  edge:\n    - name: reads\n      backends: [{ cluster: api }]\n      \
         hedge: { delay: p95, initial_delay: 20ms, grpc: true }\n",
    ));
    let settled = settle_all(offered, &|_| None);
    let route = &settled.value.route_tables["edge"].routes[0];
    assert_eq!(
        route.hedge,
        Some(crate::model::Hedge {
            delay: crate::model::HedgeDelay::Percentile {
                percentile: 95.0,
                initial: std::time::Duration::from_millis(20),
            },
            methods: crate::model::DEFAULT_RETRY_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            grpc: true,
        })
    );
}
