//! Endpoint changes patched into the catalog give what reading everything again gives:
//! the same served resources and versions, the same node snapshots, and deltas that
//! turn each node's previous snapshot into its new one.

use std::collections::BTreeMap;

use meshwork_config::resource::{DiscoveredEndpoint, Key, Kind, Resource, Source};
use meshwork_config::units::{ServicePort, parse_service_port};
use proptest::prelude::*;

use crate::catalog::{Catalog, NodeSnapshot, Reader};
use crate::kubernetes::Discovered;
use crate::kubernetes::translate::PortInfo;

const SERVICES: usize = 3;

/// Routes to two generated clusters, a written cluster that overrides `svc-1`'s, and a
/// cluster of another name taking `svc-0`'s endpoints for the nodes labelled `app: web`,
/// and a refused one taking `svc-2`'s.
const FRAGMENTS: &[(&str, &str)] = &[
    (
        "routes.yaml",
        "listeners:\n  - name: edge\n    address: 127.0.0.1:8080\n    route_table: edge\nroute_tables:\n  edge:\n    - name: all\n      backends: [{ cluster: \"svc-0.shop.svc:80\" }, { cluster: \"svc-2.shop.svc:80\" }]\n",
    ),
    (
        "svc-1.yaml",
        "clusters:\n  - name: svc-1.shop.svc:80\n    discovery: { kubernetes: svc-1.shop.svc:80 }\n    load_balancer: least_request\n",
    ),
    (
        "broken.yaml",
        "clusters:\n  - name: broken\n    discovery: { kubernetes: svc-2.shop.svc:80 }\n    connect_timeout: 5\n",
    ),
    (
        "web.yaml",
        "node_selector: { app: web }\nclusters:\n  - name: web-api\n    discovery: { kubernetes: svc-0.shop.svc:80 }\n",
    ),
];

fn port(i: usize) -> ServicePort {
    parse_service_port(&format!("svc-{i}.shop.svc:80")).expect("valid")
}

fn endpoints(addresses: &[u8]) -> Vec<DiscoveredEndpoint> {
    let mut list: Vec<DiscoveredEndpoint> = addresses
        .iter()
        .map(|a| DiscoveredEndpoint {
            address: format!("10.0.0.{a}:8080").parse().expect("address"),
            zone: (a % 2 == 0).then(|| "zone-a".to_string()),
            meshed: a % 3 == 0,
        })
        .collect();
    list.sort();
    list.dedup_by(|a, b| a.address == b.address);
    list
}

fn discovered(lists: &[Vec<DiscoveredEndpoint>]) -> Discovered {
    let mut found = Discovered::default();
    for (i, list) in lists.iter().enumerate() {
        let info = PortInfo {
            http2: i == 2,
            cluster_ips: Vec::new(),
            protocol: meshwork_config::model::PortProtocol::Auto,
            source: Source {
                file: format!("kubernetes:services/shop/svc-{i}"),
                line: 1,
                column: 1,
                path: "spec.ports[0]".into(),
            },
        };
        found.ports.insert(port(i), info);
        if !list.is_empty() {
            found.endpoints.insert(port(i), list.clone());
        }
    }
    found
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Resource keys and versions, in order.
fn versions<'a>(resources: impl Iterator<Item = &'a Resource>) -> Vec<(Key, String)> {
    resources
        .map(|r| (r.key.clone(), r.version.clone()))
        .collect()
}

fn same_catalog(patched: &Catalog, full: &Catalog) -> Result<(), TestCaseError> {
    prop_assert_eq!(&patched.version, &full.version);
    prop_assert_eq!(patched.generation, full.generation);
    prop_assert_eq!(&patched.problems, &full.problems);
    prop_assert_eq!(
        versions(patched.served.iter().map(|s| &*s.resource)),
        versions(full.served.iter().map(|s| &*s.resource))
    );
    let selectors =
        |c: &Catalog| -> Vec<_> { c.served.iter().map(|s| s.selector.clone()).collect() };
    prop_assert_eq!(selectors(patched), selectors(full));
    Ok(())
}

fn same_node(patched: &NodeSnapshot, full: &NodeSnapshot) -> Result<(), TestCaseError> {
    prop_assert_eq!(&patched.version, &full.version);
    prop_assert_eq!(
        versions(patched.resources.values().map(|r| &**r)),
        versions(full.resources.values().map(|r| &**r))
    );
    prop_assert_eq!(&patched.rejected, &full.rejected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A sequence of endpoint changes (some ports emptied, some refilled), each applied
    /// by patching the last catalog and by reading everything again.
    #[test]
    fn patched_endpoints_give_what_a_full_reading_gives(
        steps in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(0u8..8, 0..4), SERVICES),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in FRAGMENTS {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let mut full_reader = Reader::new(dir.path().to_path_buf());
        let mut patched_reader = Reader::new(dir.path().to_path_buf());
        let dns = BTreeMap::new();
        let mut lists: Vec<Vec<DiscoveredEndpoint>> = vec![endpoints(&[1, 2]); SERVICES];
        let first = discovered(&lists);
        full_reader.read_with(&dns, Some(&first)).expect("reads");
        let mut patched = patched_reader.read_with(&dns, Some(&first)).expect("reads");
        prop_assert!(!patched.is_clean(), "the broken cluster is refused");
        let nodes = [labels(&[("app", "web")]), labels(&[])];
        for step in &steps {
            let before: Vec<_> = nodes.iter().map(|n| patched.for_node(n)).collect();
            let mut changed = BTreeMap::new();
            for (i, addresses) in step.iter().enumerate() {
                let list = endpoints(addresses);
                if list != lists[i] {
                    changed.insert(port(i), list.clone());
                    lists[i] = list;
                }
            }
            let found = discovered(&lists);
            let full = full_reader.read_with(&dns, Some(&found)).expect("reads");
            // `broken` takes svc-2's endpoints: a change there may change the problems,
            // so it is left to a full reading (as the refresher then does).
            let to_refused = changed.contains_key(&port(2));
            match patched_reader.update_endpoints(&patched, &changed) {
                Some(next) => {
                    prop_assert!(!to_refused, "a refused cluster's port was patched");
                    patched = next;
                }
                None => {
                    prop_assert!(to_refused, "endpoint changes alone are patched in");
                    patched = patched_reader.read_with(&dns, Some(&found)).expect("reads");
                }
            }
            same_catalog(&patched, &full)?;
            for (node, previous) in nodes.iter().zip(&before) {
                let now = patched.for_node(node);
                same_node(&now, &full.for_node(node))?;
                if to_refused {
                    continue;
                }
                let delta = now.delta.as_ref().expect("a patched snapshot says what changed");
                prop_assert_eq!(&delta.from_version, &previous.version);
                let mut rebuilt = previous.resources.clone();
                for key in &delta.removed {
                    rebuilt.remove(key);
                }
                for key in &delta.changed {
                    rebuilt.insert(key.clone(), now.resources[key].clone());
                }
                prop_assert_eq!(
                    versions(rebuilt.values().map(|r| &**r)),
                    versions(now.resources.values().map(|r| &**r))
                );
            }
        }
    }
}

#[test]
fn a_cluster_served_at_its_last_good_version_sends_the_change_to_a_full_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("svc-0.yaml");
    let cluster = "clusters:\n  - name: svc-0.shop.svc:80\n    discovery: { kubernetes: svc-0.shop.svc:80 }\n";
    std::fs::write(&file, cluster).expect("write");
    let mut reader = Reader::new(dir.path().to_path_buf());
    let found = discovered(&[endpoints(&[1])]);
    let good = reader
        .read_with(&BTreeMap::new(), Some(&found))
        .expect("reads");
    assert!(good.is_clean(), "{:?}", good.problems);
    std::fs::write(&file, format!("{cluster}    connect_timeout: 5\n")).expect("write");
    let broken = reader
        .read_with(&BTreeMap::new(), Some(&found))
        .expect("reads");
    assert!(!broken.is_clean());
    let key = Key::new(Kind::Cluster, "svc-0.shop.svc:80");
    assert!(
        broken.served(&key).is_some(),
        "served at its last good version"
    );
    let changed = BTreeMap::from([(port(0), endpoints(&[2]))]);
    assert!(reader.update_endpoints(&broken, &changed).is_none());
    assert!(reader.update_endpoints(&good, &changed).is_some());
}
