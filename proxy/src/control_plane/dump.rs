//! The admin config dump (`GET /config_dump`), like Envoy's config_dump / CSDS: per
//! resource from the control plane, the version in use and its status — `acked`
//! (applied), `nacked` (its last version was rejected: the error, and the version still
//! in use if any) or `stale` (read back from disk at start, not yet confirmed) — plus
//! the protocol's own view (xDS: each type's version, nonce and subscription, and each
//! Envoy resource's standing).

use std::collections::BTreeMap;

use meshwork_config::resource::{Key, Resource};
use serde_json::{Value, json};

/// The last version of a resource that was rejected, and why.
#[derive(Clone, Debug)]
pub(crate) struct Nacked {
    pub version: String,
    pub error: String,
}

/// What the dump is made of, borrowed from the link.
pub(crate) struct Dump<'a> {
    pub address: &'a str,
    pub connected: bool,
    pub version: Option<&'a str>,
    pub stale_since: Option<u64>,
    pub resources: &'a BTreeMap<Key, Resource>,
    pub rejected: &'a BTreeMap<Key, Nacked>,
    pub protocol: Option<&'a Value>,
}

pub(crate) fn render(d: &Dump<'_>) -> Value {
    let mut keys: Vec<&Key> = d.resources.keys().chain(d.rejected.keys()).collect();
    keys.sort();
    keys.dedup();
    let resources: Vec<Value> = keys
        .into_iter()
        .map(|key| {
            let in_use = d.resources.get(key);
            let mut entry = json!({
                "kind": key.kind,
                "name": key.name,
                "version": in_use.map(|r| r.version.as_str()),
                "source": in_use.map(|r| r.source.to_string()),
            });
            match d.rejected.get(key) {
                Some(nacked) => {
                    entry["status"] = json!("nacked");
                    entry["rejected_version"] = json!(nacked.version);
                    entry["error"] = json!(nacked.error);
                }
                None if d.stale_since.is_some() => entry["status"] = json!("stale"),
                None => entry["status"] = json!("acked"),
            }
            entry
        })
        .collect();
    json!({
        "control_plane": {
            "address": d.address,
            "connected": d.connected,
            "version": d.version,
            "stale": d.stale_since.is_some(),
            "stale_since": d.stale_since,
        },
        "resources": resources,
        "xds": d.protocol,
    })
}

#[cfg(test)]
mod tests {
    use meshwork_config::resource::{Kind, Source};

    use super::*;

    fn resource(name: &str) -> (Key, Resource) {
        let key = Key::new(Kind::Cluster, name);
        (
            key.clone(),
            Resource::new(key, "[]".into(), Source::default()),
        )
    }

    fn dump(
        resources: &BTreeMap<Key, Resource>,
        rejected: &BTreeMap<Key, Nacked>,
        stale: bool,
    ) -> Value {
        render(&Dump {
            address: "http://cp:1",
            connected: !stale,
            version: Some("7"),
            stale_since: stale.then_some(1),
            resources,
            rejected,
            protocol: None,
        })
    }

    #[test]
    fn each_resource_says_acked_nacked_or_stale() {
        let resources: BTreeMap<Key, Resource> = [resource("api"), resource("web")].into();
        let rejected: BTreeMap<Key, Nacked> = [
            (
                Key::new(Kind::Cluster, "web"),
                Nacked {
                    version: "v2".into(),
                    error: "bad".into(),
                },
            ),
            (
                Key::new(Kind::Cluster, "new"),
                Nacked {
                    version: "v1".into(),
                    error: "worse".into(),
                },
            ),
        ]
        .into();
        let out = dump(&resources, &rejected, false);
        let list = out["resources"].as_array().expect("list");
        let by_name = |n: &str| list.iter().find(|r| r["name"] == n).expect(n).clone();
        assert_eq!(by_name("api")["status"], "acked");
        let web = by_name("web");
        assert_eq!(
            (web["status"].clone(), web["rejected_version"].clone()),
            (json!("nacked"), json!("v2"))
        );
        assert_eq!(
            web["version"],
            resources[&Key::new(Kind::Cluster, "web")].version.as_str()
        );
        let new = by_name("new");
        assert_eq!(
            (new["status"].clone(), new["version"].clone()),
            (json!("nacked"), Value::Null)
        );

        let stale = dump(&resources, &BTreeMap::new(), true);
        assert!(
            stale["resources"]
                .as_array()
                .expect("list")
                .iter()
                .all(|r| r["status"] == "stale")
        );
        assert_eq!(stale["control_plane"]["stale"], true);
    }
}
