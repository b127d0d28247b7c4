//! The fake API server's objects: one resourceVersion counter for everything, every
//! change kept in a history that watches replay from a resourceVersion (until it is
//! compacted, after which a watch from an older version gets 410 Gone, as etcd
//! compaction makes the real API server answer).

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::sync::broadcast;

/// The resources served, by their collection's plural name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collection {
    Services,
    EndpointSlices,
    Pods,
}

impl Collection {
    /// The collection a request path (all namespaces) names.
    pub fn from_path(path: &str) -> Option<Collection> {
        match path {
            "/api/v1/services" => Some(Collection::Services),
            "/apis/discovery.k8s.io/v1/endpointslices" => Some(Collection::EndpointSlices),
            "/api/v1/pods" => Some(Collection::Pods),
            _ => None,
        }
    }

    /// `kind` of its list (`ServiceList`), `apiVersion`.
    pub fn list_kind(self) -> (&'static str, &'static str) {
        match self {
            Collection::Services => ("ServiceList", "v1"),
            Collection::EndpointSlices => ("EndpointSliceList", "discovery.k8s.io/v1"),
            Collection::Pods => ("PodList", "v1"),
        }
    }

    /// `kind` and `apiVersion` of one object.
    pub fn kind(self) -> (&'static str, &'static str) {
        match self {
            Collection::Services => ("Service", "v1"),
            Collection::EndpointSlices => ("EndpointSlice", "discovery.k8s.io/v1"),
            Collection::Pods => ("Pod", "v1"),
        }
    }
}

/// One change, as watches send it.
#[derive(Clone, Debug)]
pub struct Change {
    pub collection: Collection,
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub kind: &'static str,
    pub resource_version: u64,
    pub object: Value,
}

/// What the live watches are told.
#[derive(Clone, Debug)]
pub enum Live {
    Change(Change),
    /// A BOOKMARK at this resourceVersion (for the watches that asked for them).
    Bookmark(u64),
    /// Close every watch connection abruptly.
    Drop,
}

/// Objects by collection, namespace and name; the history of changes.
#[derive(Debug)]
pub struct Store {
    pub resource_version: u64,
    pub objects: BTreeMap<(Collection, String, String), Value>,
    pub history: Vec<Change>,
    /// Watches from a resourceVersion below this get 410 Gone.
    pub oldest_watchable: u64,
    pub live: broadcast::Sender<Live>,
}

impl Store {
    pub fn new() -> Self {
        Store {
            resource_version: 1,
            objects: BTreeMap::new(),
            history: Vec::new(),
            oldest_watchable: 0,
            live: broadcast::channel(65_536).0,
        }
    }

    /// Creates or replaces an object (it must have a namespace and a name); returns its
    /// new resourceVersion.
    pub fn apply(&mut self, collection: Collection, mut object: Value) -> u64 {
        self.resource_version += 1;
        let rv = self.resource_version;
        let (kind, api_version) = collection.kind();
        object["kind"] = kind.into();
        object["apiVersion"] = api_version.into();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .expect("the object has a namespace")
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("the object has a name")
            .to_string();
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = format!("uid-{namespace}-{name}").into();
        }
        let key = (collection, namespace, name);
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(key, object.clone());
        self.record(collection, kind, object);
        rv
    }

    /// Deletes an object; false when there was none.
    pub fn delete(&mut self, collection: Collection, namespace: &str, name: &str) -> bool {
        let key = (collection, namespace.to_string(), name.to_string());
        let Some(mut object) = self.objects.remove(&key) else {
            return false;
        };
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = self.resource_version.to_string().into();
        self.record(collection, "DELETED", object);
        true
    }

    fn record(&mut self, collection: Collection, kind: &'static str, object: Value) {
        let change = Change {
            collection,
            kind,
            resource_version: self.resource_version,
            object,
        };
        self.history.push(change.clone());
        let _ = self.live.send(Live::Change(change));
    }

    /// Forgets the history: a watch from any version seen so far gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_watchable = self.resource_version + 1;
    }
}

/// Whether `object`'s labels match a label selector of `key=value`, `key==value`,
/// `key!=value`, `key` and `!key` terms separated by commas (the equality-based and
/// existence forms).
pub fn selector_matches(selector: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                label(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                label(k.trim()) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k.trim()).is_none()
            } else {
                label(term).is_some()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_of_the_equality_and_existence_forms() {
        let object =
            serde_json::json!({ "metadata": { "labels": { "app": "web", "tier": "front" } } });
        for (selector, expected) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app=api", false),
            ("app!=api", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
        ] {
            assert_eq!(selector_matches(selector, &object), expected, "{selector}");
        }
    }
}
