//! Translation of Services and EndpointSlices: names, readiness, zones, meshed pods,
//! protocols.

use super::*;

fn service(name: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": "shop" },
        "spec": { "clusterIP": "10.96.0.10", "ports": ports },
    }))
    .expect("a Service")
}

fn slice(
    name: &str,
    service: &str,
    ports: serde_json::Value,
    endpoints: serde_json::Value,
) -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": { SERVICE_NAME_LABEL: service },
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .expect("an EndpointSlice")
}

fn key(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: name.into(),
        namespace: "shop".into(),
        port,
    }
}

fn addresses(found: &Discovered, port: &ServicePort) -> Vec<String> {
    found
        .endpoints
        .get(port)
        .map(|list| list.iter().map(|e| e.address.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn each_tcp_port_is_a_cluster_with_the_ready_endpoints_of_its_slices() {
    let web = service(
        "web",
        serde_json::json!([
            { "name": "http", "port": 80, "targetPort": 8080 },
            { "name": "grpc-api", "port": 9090 },
            { "name": "dns", "port": 53, "protocol": "UDP" },
        ]),
    );
    let slices = [
        slice(
            "web-a",
            "web",
            serde_json::json!([{ "name": "http", "port": 8080 }, { "name": "grpc-api", "port": 9091 }]),
            serde_json::json!([
                { "addresses": ["10.0.0.1"], "conditions": { "ready": true }, "zone": "a",
                  "targetRef": { "kind": "Pod", "name": "web-1", "namespace": "shop" } },
                { "addresses": ["10.0.0.2"], "conditions": {} },
                { "addresses": ["10.0.0.3"], "conditions": { "ready": false, "serving": false } },
            ]),
        ),
        // The same pod in a second slice while the controller moves it: listed once.
        slice(
            "web-b",
            "web",
            serde_json::json!([{ "name": "http", "port": 8080 }]),
            serde_json::json!([{ "addresses": ["10.0.0.1"], "conditions": { "ready": true } }]),
        ),
        slice(
            "other",
            "other",
            serde_json::json!([{ "name": "http", "port": 8080 }]),
            serde_json::json!([{ "addresses": ["10.9.9.9"] }]),
        ),
    ];
    let meshed: HashSet<PodName> = [("shop".to_string(), "web-1".to_string())].into();
    let found = translate([&web], slices.iter(), &meshed);
    let ports: Vec<String> = found.ports.keys().map(ToString::to_string).collect();
    assert_eq!(ports, ["web.shop.svc:80", "web.shop.svc:9090"]);
    assert_eq!(
        addresses(&found, &key("web", 80)),
        ["10.0.0.1:8080", "10.0.0.2:8080"]
    );
    assert_eq!(
        addresses(&found, &key("web", 9090)),
        ["10.0.0.1:9091", "10.0.0.2:9091"]
    );
    let first = &found.endpoints[&key("web", 80)][0];
    assert_eq!(first.zone.as_deref(), Some("a"));
    assert!(first.meshed);
    assert!(!found.endpoints[&key("web", 80)][1].meshed);
    assert!(!found.ports[&key("web", 80)].http2);
    assert!(found.ports[&key("web", 9090)].http2);
    assert_eq!(
        found.ports[&key("web", 80)].cluster_ips,
        vec!["10.96.0.10".parse::<IpAddr>().expect("ip")]
    );
    assert_eq!(found.ports[&key("web", 9090)].source.path, "spec.ports[1]");
}

#[test]
fn the_port_name_or_app_protocol_is_the_vips_protocol_hint() {
    let web = service(
        "web",
        serde_json::json!([
            { "name": "http-web", "port": 80 },
            { "name": "tcp-db", "port": 81 },
            { "name": "grpc-api", "port": 82 },
            { "name": "metrics", "port": 83 },
            { "name": "tcp-looks-opaque", "appProtocol": "kubernetes.io/h2c", "port": 84 },
            { "name": "http", "appProtocol": "TLS", "port": 85 },
            { "port": 86 },
        ]),
    );
    let found = translate([&web], [], &HashSet::new());
    let hint = |port| found.ports[&key("web", port)].protocol;
    assert_eq!(hint(80), PortProtocol::Http);
    assert_eq!(hint(81), PortProtocol::Opaque);
    assert_eq!(hint(82), PortProtocol::Http);
    assert_eq!(hint(83), PortProtocol::Auto);
    assert_eq!(
        hint(84),
        PortProtocol::Http,
        "appProtocol wins over the name"
    );
    assert_eq!(hint(85), PortProtocol::Opaque);
    assert_eq!(hint(86), PortProtocol::Auto);
    let settings = found.ports[&key("web", 81)].cluster_settings(81);
    assert_eq!(
        settings.vips,
        vec![
            "10.96.0.10:81"
                .parse::<std::net::SocketAddr>()
                .expect("vip")
        ]
    );
    assert_eq!(settings.protocol, PortProtocol::Opaque);
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let web = service("web", serde_json::json!([{ "port": 80 }]));
    let terminating = serde_json::json!({
        "addresses": ["10.0.0.5"],
        "conditions": { "ready": false, "serving": true, "terminating": true },
    });
    let gone = serde_json::json!({
        "addresses": ["10.0.0.6"],
        "conditions": { "ready": false, "serving": false, "terminating": true },
    });
    let ready = serde_json::json!({ "addresses": ["10.0.0.7"], "conditions": { "ready": true } });
    let ports = serde_json::json!([{ "port": 8080 }]);
    let only_terminating = slice(
        "s",
        "web",
        ports.clone(),
        serde_json::json!([terminating, gone]),
    );
    let found = translate([&web], [&only_terminating], &HashSet::new());
    assert_eq!(addresses(&found, &key("web", 80)), ["10.0.0.5:8080"]);
    let with_ready = slice(
        "s",
        "web",
        ports,
        serde_json::json!([terminating, gone, ready]),
    );
    let found = translate([&web], [&with_ready], &HashSet::new());
    assert_eq!(addresses(&found, &key("web", 80)), ["10.0.0.7:8080"]);
}

#[test]
fn a_port_without_usable_endpoints_is_a_cluster_without_endpoints() {
    let web = service("web", serde_json::json!([{ "port": 80 }]));
    let found = translate([&web], [], &HashSet::new());
    assert!(found.ports.contains_key(&key("web", 80)));
    assert!(found.endpoints.is_empty());
}

#[test]
fn external_names_and_fqdn_slices_have_no_endpoints_to_balance() {
    let external: Service = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "ext", "namespace": "shop" },
        "spec": { "type": "ExternalName", "externalName": "example.com", "ports": [{ "port": 80 }] },
    }))
    .expect("a Service");
    let web = service("web", serde_json::json!([{ "port": 80 }]));
    let mut fqdn = slice(
        "s",
        "web",
        serde_json::json!([{ "port": 80 }]),
        serde_json::json!([{ "addresses": ["web.example.com"] }]),
    );
    fqdn.address_type = "FQDN".into();
    let found = translate([&external, &web], [&fqdn], &HashSet::new());
    let ports: Vec<String> = found.ports.keys().map(ToString::to_string).collect();
    assert_eq!(ports, ["web.shop.svc:80"]);
    assert!(found.endpoints.is_empty());
}

#[test]
fn app_protocol_wins_over_the_port_name() {
    let port = |name: &str, app: Option<&str>| KubePort {
        name: Some(name.into()),
        app_protocol: app.map(str::to_string),
        port: 80,
        ..KubePort::default()
    };
    assert!(speaks_http2(&port("grpc", None)));
    assert!(speaks_http2(&port("h2c-web", None)));
    assert!(!speaks_http2(&port("grpcweb", None)));
    assert!(!speaks_http2(&port("http-web", None)));
    assert!(speaks_http2(&port("http-web", Some("kubernetes.io/h2c"))));
    assert!(!speaks_http2(&port("grpc-api", Some("http"))));
}
