//! Tests of reading a directory of fragments.

use super::*;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().expect("temp dir"))
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.path().join(name), text).expect("write");
    }
    fn reader(&self) -> Reader {
        Reader::new(self.0.path().to_path_buf())
    }
}

fn read(reader: &mut Reader) -> Catalog {
    reader.read(&BTreeMap::new()).expect("reads")
}

fn keys(catalog: &Catalog) -> Vec<String> {
    catalog
        .served
        .iter()
        .map(|s| s.resource.key.to_string())
        .collect()
}

const CLUSTERS: &str = "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001]\n";
const ROUTES: &str = "listeners:\n  - name: edge\n    address: 127.0.0.1:8080\n    route_table: edge\nroute_tables:\n  edge:\n    - name: all\n      backends: [{ cluster: api }]\n";

#[test]
fn fragments_from_several_files_are_merged() {
    let dir = Dir::new();
    dir.write("clusters.yaml", CLUSTERS);
    dir.write("routes.yml", ROUTES);
    dir.write("notes.txt", "not a fragment");
    dir.write(".hidden.yaml", "garbage: [");
    let catalog = read(&mut dir.reader());
    assert!(catalog.is_clean(), "{:?}", catalog.problems);
    assert_eq!(
        keys(&catalog),
        vec![
            r#"listener "edge""#,
            r#"route_table "edge""#,
            r#"cluster "api""#
        ]
    );
    assert_eq!(catalog.count(Kind::Cluster), 1);
}

#[test]
fn a_name_defined_twice_is_an_error_naming_both_files() {
    let dir = Dir::new();
    dir.write("a.yaml", CLUSTERS);
    dir.write(
        "b.yaml",
        "clusters:\n\n  - name: api\n    endpoints: [127.0.0.1:9002]\n",
    );
    let catalog = read(&mut dir.reader());
    assert!(catalog.served.is_empty());
    assert_eq!(catalog.problems.len(), 1);
    assert_eq!(
        catalog.problems[0].error,
        r#"b.yaml:3:5: clusters[0]: cluster "api" is defined twice: here and at a.yaml:2:5 (clusters[0])"#
    );
}

#[test]
fn a_duplicate_added_later_keeps_the_last_good_version() {
    let dir = Dir::new();
    dir.write("a.yaml", CLUSTERS);
    let mut reader = dir.reader();
    let before = read(&mut reader);
    dir.write(
        "b.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9002]\n",
    );
    let after = read(&mut reader);
    assert_eq!(after.version, before.version);
    assert_eq!(after.generation, before.generation);
    assert_eq!(after.problems.len(), 1);
}

#[test]
fn a_broken_file_keeps_its_last_good_resources() {
    let dir = Dir::new();
    dir.write("clusters.yaml", CLUSTERS);
    dir.write("routes.yaml", ROUTES);
    let mut reader = dir.reader();
    let good = read(&mut reader);
    dir.write("routes.yaml", "listeners: [\n");
    let broken = read(&mut reader);
    assert_eq!(broken.version, good.version);
    assert_eq!(keys(&broken), keys(&good));
    assert_eq!(broken.problems.len(), 1);
    assert_eq!(broken.problems[0].file, "routes.yaml");
    assert!(broken.problems[0].resource.is_none());
    assert!(
        broken.problems[0].error.starts_with("routes.yaml:"),
        "{}",
        broken.problems[0].error
    );
}

#[test]
fn an_invalid_resource_does_not_block_valid_ones_unless_they_refer_to_it() {
    let dir = Dir::new();
    dir.write(
        "clusters.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9001]\n    connect_timeout: 5\n  - name: web\n    endpoints: [127.0.0.1:9002]\n",
    );
    dir.write("routes.yaml", ROUTES);
    let catalog = read(&mut dir.reader());
    assert_eq!(keys(&catalog), vec![r#"cluster "web""#]);
    let problems: Vec<(&str, Option<&str>)> = catalog
        .problems
        .iter()
        .map(|p| (p.file.as_str(), p.resource.as_deref()))
        .collect();
    assert_eq!(
        problems,
        vec![
            ("clusters.yaml", Some(r#"cluster "api""#)),
            ("routes.yaml", Some(r#"route_table "edge""#)),
            ("routes.yaml", Some(r#"listener "edge""#)),
        ]
    );
    assert!(
        catalog.problems[0]
            .error
            .starts_with("clusters.yaml:4:22: clusters[0].connect_timeout:")
    );
}

#[test]
fn replicas_reading_the_same_files_serve_the_same_versions() {
    let (a, b) = (Dir::new(), Dir::new());
    for dir in [&a, &b] {
        dir.write("clusters.yaml", CLUSTERS);
        dir.write("routes.yaml", ROUTES);
    }
    let (ca, cb) = (read(&mut a.reader()), read(&mut b.reader()));
    assert_eq!(ca.version, cb.version);
    let labels = BTreeMap::new();
    assert_eq!(ca.for_node(&labels).version, cb.for_node(&labels).version);
}

#[test]
fn an_unchanged_directory_keeps_its_generation() {
    let dir = Dir::new();
    dir.write("clusters.yaml", CLUSTERS);
    let mut reader = dir.reader();
    let first = read(&mut reader);
    let second = read(&mut reader);
    assert_eq!((first.generation, second.generation), (1, 1));
    dir.write(
        "clusters.yaml",
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9009]\n",
    );
    assert_eq!(read(&mut reader).generation, 2);
}

#[test]
fn selectors_choose_which_nodes_get_a_file() {
    let dir = Dir::new();
    dir.write("clusters.yaml", CLUSTERS);
    dir.write(
        "web.yaml",
        &format!("node_selector: {{ app: web }}\n{ROUTES}"),
    );
    let catalog = read(&mut dir.reader());
    assert!(catalog.is_clean(), "{:?}", catalog.problems);
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let web = catalog.for_node(&labels(&[("app", "web"), ("zone", "eu")]));
    let db = catalog.for_node(&labels(&[("app", "db")]));
    assert_eq!(web.resources.len(), 3);
    assert_eq!(db.resources.len(), 1);
    assert_ne!(web.version, db.version);
    assert!(Arc::ptr_eq(
        &web,
        &catalog.for_node(&labels(&[("app", "web")]))
    ));
}

#[test]
fn a_node_does_not_get_resources_that_refer_to_ones_it_is_not_selected_for() {
    let dir = Dir::new();
    dir.write(
        "clusters.yaml",
        &format!("node_selector: {{ zone: eu }}\n{CLUSTERS}"),
    );
    dir.write("routes.yaml", ROUTES);
    let catalog = read(&mut dir.reader());
    assert!(catalog.is_clean(), "{:?}", catalog.problems);
    let us: BTreeMap<String, String> = [("zone".to_string(), "us".to_string())].into();
    let snapshot = catalog.for_node(&us);
    assert!(snapshot.resources.is_empty());
    assert_eq!(snapshot.rejected.len(), 2);
}

#[test]
fn dns_answers_become_endpoints() {
    let dir = Dir::new();
    dir.write(
        "clusters.yaml",
        "clusters:\n  - name: api\n    discovery: { dns: \"api.internal:8080\", refresh: 2s }\n",
    );
    let mut reader = dir.reader();
    let unresolved = read(&mut reader);
    assert!(unresolved.is_clean(), "{:?}", unresolved.problems);
    assert_eq!(
        unresolved.discovery,
        vec![DiscoveryTarget {
            cluster: "api".into(),
            dns: Address {
                host: "api.internal".into(),
                port: 8080
            },
            refresh: Duration::from_secs(2),
        }]
    );
    let answers = BTreeMap::from([(
        "api".to_string(),
        vec!["127.0.0.1:8080".parse().expect("addr")],
    )]);
    let resolved = reader.read(&answers).expect("reads");
    assert_eq!(resolved.count(Kind::Endpoints), 1);
    assert_ne!(resolved.version, unresolved.version);
}

#[test]
fn the_example_directory_is_clean_and_fits_the_example_proxy() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/control-plane");
    let mut reader = Reader::new(examples.join("fragments"));
    let catalog = read(&mut reader);
    assert!(catalog.is_clean(), "{:#?}", catalog.problems);
    let proxy =
        meshwork_config::load_file(&examples.join("proxy.yaml")).expect("the proxy file loads");
    let snapshot = catalog.for_node(&proxy.node.labels.clone().into_iter().collect());
    assert!(snapshot.rejected.is_empty(), "{:#?}", snapshot.rejected);
    assert_eq!(snapshot.resources.len(), 4);
    let text = std::fs::read_to_string(examples.join("proxy.yaml")).expect("read");
    let bootstrap = resource::Bootstrap::new("proxy.yaml", text, &examples);
    let resources: Vec<Resource> = snapshot.resources.values().map(|r| (**r).clone()).collect();
    let settled = settle(
        &bootstrap,
        resources,
        &|_| None,
        &|_| None,
        &mut Applied::Done,
    )
    .expect("the snapshot fits the proxy's file");
    assert!(settled.rejected.is_empty());
    assert_eq!(settled.value.listeners[0].name, "edge");
}

fn discovered(endpoints: &[&str]) -> Discovered {
    let port = meshwork_config::units::parse_service_port("web.shop.svc:80").expect("valid");
    let info = crate::kubernetes::translate::PortInfo {
        http2: false,
        cluster_ips: Vec::new(),
        protocol: meshwork_config::model::PortProtocol::Auto,
        source: resource::Source {
            file: "kubernetes:services/shop/web".into(),
            line: 1,
            column: 1,
            path: "spec.ports[0]".into(),
        },
    };
    let list = endpoints
        .iter()
        .map(|a| resource::DiscoveredEndpoint {
            address: a.parse().expect("address"),
            zone: None,
            meshed: false,
        })
        .collect();
    Discovered {
        ports: [(port.clone(), info)].into(),
        endpoints: [(port, list)].into(),
    }
}

fn cluster_named<'a>(catalog: &'a Catalog, kind: Kind, name: &str) -> &'a Served {
    catalog
        .served
        .iter()
        .find(|s| s.resource.key == Key::new(kind, name))
        .unwrap_or_else(|| panic!("no {kind} {name:?} in {:?}", keys(catalog)))
}

#[test]
fn a_service_port_is_served_as_a_cluster_with_its_endpoints_next_to_the_fragments() {
    let dir = Dir::new();
    dir.write(
        "routes.yaml",
        &ROUTES.replace("cluster: api", "cluster: \"web.shop.svc:80\""),
    );
    let mut reader = dir.reader();
    let found = discovered(&["10.0.0.1:8080", "10.0.0.2:8080"]);
    let catalog = reader
        .read_with(&BTreeMap::new(), Some(&found))
        .expect("reads");
    assert!(catalog.is_clean(), "{:?}", catalog.problems);
    let cluster = cluster_named(&catalog, Kind::Cluster, "web.shop.svc:80");
    assert_eq!(cluster.resource.source.file, "kubernetes:services/shop/web");
    cluster_named(&catalog, Kind::Endpoints, "web.shop.svc:80");
    assert_eq!(catalog.count(Kind::RouteTable), 1);
    // An endpoint change changes the endpoints resource only.
    let before = cluster.resource.version.clone();
    let found = discovered(&["10.0.0.1:8080"]);
    let catalog = reader
        .read_with(&BTreeMap::new(), Some(&found))
        .expect("reads");
    assert_eq!(
        cluster_named(&catalog, Kind::Cluster, "web.shop.svc:80")
            .resource
            .version,
        before
    );
}

#[test]
fn a_fragment_cluster_of_the_same_name_overrides_the_generated_one_and_gets_its_endpoints() {
    let dir = Dir::new();
    dir.write(
        "web.yaml",
        "clusters:\n  - name: web.shop.svc:80\n    discovery: { kubernetes: web.shop.svc:80 }\n    load_balancer: least_request\n",
    );
    let mut reader = dir.reader();
    let found = discovered(&["10.0.0.1:8080"]);
    let catalog = reader
        .read_with(&BTreeMap::new(), Some(&found))
        .expect("reads");
    assert!(catalog.is_clean(), "{:?}", catalog.problems);
    assert_eq!(catalog.count(Kind::Cluster), 1, "{:?}", keys(&catalog));
    let cluster = cluster_named(&catalog, Kind::Cluster, "web.shop.svc:80");
    assert_eq!(cluster.resource.source.file, "web.yaml");
    cluster_named(&catalog, Kind::Endpoints, "web.shop.svc:80");
}
