//! The index kept per Service gives what a full translation gives, after any sequence
//! of watch events, and reports exactly what changed.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

/// The objects of a small cluster: namespace `shop`, a few Services, slices and Pods.
#[derive(Debug, Default)]
struct World {
    services: BTreeMap<ObjectName, Arc<Service>>,
    slices: BTreeMap<ObjectName, Arc<EndpointSlice>>,
    meshed: HashSet<PodName>,
}

impl Objects for World {
    fn service(&self, name: &ObjectName) -> Option<Arc<Service>> {
        self.services.get(name).cloned()
    }
    fn slice(&self, name: &ObjectName) -> Option<Arc<EndpointSlice>> {
        self.slices.get(name).cloned()
    }
    fn meshed(&self, pod: &PodName) -> bool {
        self.meshed.contains(pod)
    }
    fn services(&self) -> Vec<Arc<Service>> {
        self.services.values().cloned().collect()
    }
    fn slices(&self) -> Vec<Arc<EndpointSlice>> {
        self.slices.values().cloned().collect()
    }
}

impl World {
    fn full(&self) -> Discovered {
        translate::translate(
            self.services.values().map(AsRef::as_ref),
            self.slices.values().map(AsRef::as_ref),
            &self.meshed,
        )
    }
}

fn name(prefix: &str, i: u8) -> ObjectName {
    ("shop".to_string(), format!("{prefix}-{i}"))
}

/// An endpoint: `(ip, ready, serving, terminating, pod)`.
type EndpointSpec = (u8, bool, bool, bool, u8);
/// A slice: its Service (none: no label), whether it has the `grpc` port too, its
/// endpoints.
type SliceSpec = (Option<u8>, bool, Vec<EndpointSpec>);

/// One watch event, already applied to the store when the index hears of it.
#[derive(Clone, Debug)]
enum Event {
    /// Service `i` created or replaced with these ports (of `http` 80, `grpc` 81,
    /// `dns` 53/UDP), or deleted (`None`).
    Service(u8, Option<Vec<u8>>),
    /// Slice `i` of Service `owner` (none: no label) with these endpoints
    /// `(ip, ready, serving, terminating, pod)`, or deleted.
    Slice(u8, Option<SliceSpec>),
    /// Pod `i` meshed or not (or gone).
    Pod(u8, bool),
    /// A watch relisted.
    Relist,
}

fn service_object(i: u8, ports: &[u8]) -> Service {
    let all = [
        serde_json::json!({ "name": "http", "port": 80 }),
        serde_json::json!({ "name": "grpc", "port": 81 }),
        serde_json::json!({ "name": "dns", "port": 53, "protocol": "UDP" }),
    ];
    let ports: Vec<serde_json::Value> =
        ports.iter().map(|p| all[*p as usize % 3].clone()).collect();
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("svc-{i}"), "namespace": "shop" },
        "spec": { "clusterIP": "10.96.0.10", "ports": ports },
    }))
    .expect("a Service")
}

fn slice_object(
    i: u8,
    owner: Option<u8>,
    both_ports: bool,
    endpoints: &[EndpointSpec],
) -> EndpointSlice {
    let mut labels = serde_json::Map::new();
    if let Some(owner) = owner {
        labels.insert(SERVICE_NAME_LABEL.into(), format!("svc-{owner}").into());
    }
    let mut ports = vec![serde_json::json!({ "name": "http", "port": 8080 })];
    if both_ports {
        ports.push(serde_json::json!({ "name": "grpc", "port": 9090 }));
    }
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(ip, ready, serving, terminating, pod)| {
            serde_json::json!({
                "addresses": [format!("10.0.0.{ip}")],
                "conditions": { "ready": ready, "serving": serving, "terminating": terminating },
                "zone": format!("zone-{}", ip % 2),
                "targetRef": { "kind": "Pod", "name": format!("pod-{pod}") },
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("slice-{i}"), "namespace": "shop", "labels": labels },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .expect("an EndpointSlice")
}

/// Applies an event to the world; returns what the watch reports.
fn apply(world: &mut World, event: &Event) -> Touched {
    match event {
        Event::Service(i, ports) => {
            let key = name("svc", *i);
            match ports {
                Some(ports) => world
                    .services
                    .insert(key.clone(), Arc::new(service_object(*i, ports))),
                None => world.services.remove(&key),
            };
            Touched::Service(key)
        }
        Event::Slice(i, spec) => {
            let key = name("slice", *i);
            match spec {
                Some((owner, both, endpoints)) => world.slices.insert(
                    key.clone(),
                    Arc::new(slice_object(*i, *owner, *both, endpoints)),
                ),
                None => world.slices.remove(&key),
            };
            Touched::Slice(key)
        }
        Event::Pod(i, meshed) => {
            let key = name("pod", *i);
            if *meshed {
                world.meshed.insert(key.clone());
            } else {
                world.meshed.remove(&key);
            }
            Touched::Pod(key)
        }
        Event::Relist => Touched::All,
    }
}

fn event() -> impl Strategy<Value = Event> {
    let endpoint = (0u8..6, any::<bool>(), any::<bool>(), any::<bool>(), 0u8..6);
    prop_oneof![
        2 => (0u8..3, proptest::option::weighted(0.8, proptest::collection::vec(0u8..3, 0..3)))
            .prop_map(|(i, ports)| Event::Service(i, ports)),
        4 => (
            0u8..5,
            proptest::option::weighted(
                0.8,
                (
                    proptest::option::weighted(0.9, 0u8..3),
                    any::<bool>(),
                    proptest::collection::vec(endpoint, 0..4),
                ),
            ),
        )
            .prop_map(|(i, spec)| Event::Slice(i, spec)),
        2 => (0u8..6, any::<bool>()).prop_map(|(i, meshed)| Event::Pod(i, meshed)),
        1 => Just(Event::Relist),
    ]
}

/// What changed between two full translations, as an update should say it.
fn expected_update(before: &Discovered, after: &Discovered) -> Update {
    let mut update = Update {
        ports_changed: before.ports != after.ports,
        endpoints: BTreeMap::new(),
    };
    let ports: BTreeSet<&ServicePort> = before.ports.keys().chain(after.ports.keys()).collect();
    for port in ports {
        let old = before.endpoints.get(port).cloned().unwrap_or_default();
        let new = after.endpoints.get(port).cloned().unwrap_or_default();
        if old != new {
            update.endpoints.insert(port.clone(), new);
        }
    }
    update
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Events arrive in batches (as between two refreshes); after each batch the index
    /// equals a full translation of the objects, and its update names exactly the
    /// ports whose endpoints differ, and whether any port itself changed.
    #[test]
    fn events_applied_one_by_one_give_the_full_translation(
        batches in proptest::collection::vec(proptest::collection::vec(event(), 1..4), 1..12)
    ) {
        let mut world = World::default();
        let mut index = Index::default();
        let mut before = world.full();
        for batch in &batches {
            let touched: Vec<Touched> = batch.iter().map(|e| apply(&mut world, e)).collect();
            let update = index.update(&world, touched);
            let after = world.full();
            prop_assert_eq!(index.discovered(), &after);
            prop_assert_eq!(update, expected_update(&before, &after));
            before = after;
        }
    }
}

#[test]
fn a_slice_moved_to_another_service_leaves_the_first() {
    let mut world = World::default();
    let mut index = Index::default();
    let mut touched = vec![
        apply(&mut world, &Event::Service(0, Some(vec![0]))),
        apply(&mut world, &Event::Service(1, Some(vec![0]))),
    ];
    let endpoints = vec![(1, true, true, false, 1)];
    touched.push(apply(
        &mut world,
        &Event::Slice(0, Some((Some(0), false, endpoints.clone()))),
    ));
    index.update(&world, touched);
    let moved = apply(
        &mut world,
        &Event::Slice(0, Some((Some(1), false, endpoints))),
    );
    let update = index.update(&world, [moved]);
    assert!(!update.ports_changed);
    let ports: Vec<String> = update.endpoints.keys().map(ToString::to_string).collect();
    assert_eq!(ports, ["svc-0.shop.svc:80", "svc-1.shop.svc:80"]);
    assert_eq!(
        update.endpoints.values().map(Vec::len).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(index.discovered(), &world.full());
}

#[test]
fn a_pod_turning_meshed_changes_the_endpoints_naming_it() {
    let mut world = World::default();
    let mut index = Index::default();
    let touched = vec![
        apply(&mut world, &Event::Service(0, Some(vec![0]))),
        apply(
            &mut world,
            &Event::Slice(0, Some((Some(0), false, vec![(1, true, true, false, 3)]))),
        ),
    ];
    index.update(&world, touched);
    let meshed = apply(&mut world, &Event::Pod(3, true));
    let update = index.update(&world, [meshed]);
    let list = update
        .endpoints
        .values()
        .next()
        .expect("the port's endpoints changed");
    assert!(list[0].meshed);
    let unrelated = apply(&mut world, &Event::Pod(4, true));
    assert!(index.update(&world, [unrelated]).is_empty());
}
