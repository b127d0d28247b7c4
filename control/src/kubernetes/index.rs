//! The translation of the cluster's objects, kept up to date per Service.
//!
//! Translating every Service and EndpointSlice again on each watch event costs the size
//! of the cluster per change: at 5,000 Services that is seconds of CPU per second of
//! churn. Instead each watch event names what it touched ([`Touched`]), and only the
//! Services it affects are translated again — with the same [`translate::translate`],
//! over that one Service, its slices and the Pods they name — so the result is the one
//! a full translation gives (a property test in `index/tests.rs` holds it to that),
//! and an update reports which Service ports' endpoints changed, for the catalog to
//! replace just those.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use meshwork_config::resource::DiscoveredEndpoint;
use meshwork_config::units::ServicePort;

use super::translate::{self, Discovered, PodName, SERVICE_NAME_LABEL};

/// A Service (or an object of its namespace), by namespace and name.
pub type ObjectName = (String, String);

/// What one watch event touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touched {
    Service(ObjectName),
    /// An EndpointSlice, by its own namespace and name (which Service it belongs to is
    /// read from the objects: its label may have changed).
    Slice(ObjectName),
    Pod(PodName),
    /// A watch listed everything again: translate everything.
    All,
}

/// Where the index reads the objects (the watches' stores; plain maps in tests).
pub trait Objects {
    fn service(&self, name: &ObjectName) -> Option<Arc<Service>>;
    fn slice(&self, name: &ObjectName) -> Option<Arc<EndpointSlice>>;
    /// The Pod is known and carries the meshed annotation.
    fn meshed(&self, pod: &PodName) -> bool;
    fn services(&self) -> Vec<Arc<Service>>;
    fn slices(&self) -> Vec<Arc<EndpointSlice>>;
}

/// What an update changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// A Service port appeared, went away or changed (its cluster resource changes): the
    /// catalog must be read in full.
    pub ports_changed: bool,
    /// The ports whose usable endpoints changed, with their new list (empty: none left).
    pub endpoints: BTreeMap<ServicePort, Vec<DiscoveredEndpoint>>,
}

impl Update {
    pub fn is_empty(&self) -> bool {
        !self.ports_changed && self.endpoints.is_empty()
    }

    /// Folds a later update into this one.
    pub fn merge(&mut self, later: Update) {
        self.ports_changed |= later.ports_changed;
        self.endpoints.extend(later.endpoints);
    }
}

/// The translation of every Service, and what links objects to the Services they feed.
#[derive(Debug, Default)]
pub struct Index {
    discovered: Discovered,
    /// The ports each Service has in `discovered`.
    ports_of: HashMap<ObjectName, Vec<ServicePort>>,
    /// The slices of each Service (by the `kubernetes.io/service-name` label).
    slices_of: HashMap<ObjectName, BTreeSet<String>>,
    /// The Service each slice belongs to (namespace and Service name).
    owner_of: HashMap<ObjectName, ObjectName>,
    /// The Pods each Service's slices name, and the reverse.
    pods_of: HashMap<ObjectName, BTreeSet<PodName>>,
    services_of_pod: HashMap<PodName, BTreeSet<ObjectName>>,
}

impl Index {
    /// What the objects say now, translated (as `translate::translate` over all of them).
    pub fn discovered(&self) -> &Discovered {
        &self.discovered
    }

    /// Brings the translation up to date with what `touched` changed in `objects`.
    pub fn update(
        &mut self,
        objects: &dyn Objects,
        touched: impl IntoIterator<Item = Touched>,
    ) -> Update {
        let mut dirty: BTreeSet<ObjectName> = BTreeSet::new();
        for t in touched {
            match t {
                Touched::All => return self.rebuild(objects),
                Touched::Service(name) => {
                    dirty.insert(name);
                }
                Touched::Slice(name) => dirty.extend(self.relink_slice(objects, name)),
                Touched::Pod(pod) => {
                    dirty.extend(
                        self.services_of_pod
                            .get(&pod)
                            .into_iter()
                            .flatten()
                            .cloned(),
                    );
                }
            }
        }
        let mut update = Update::default();
        for service in dirty {
            self.translate_service(objects, service, &mut update);
        }
        update
    }

    /// Translates everything again, reporting what differs from before.
    fn rebuild(&mut self, objects: &dyn Objects) -> Update {
        let mut dirty: BTreeSet<ObjectName> = self
            .ports_of
            .keys()
            .chain(self.pods_of.keys())
            .chain(self.slices_of.keys())
            .cloned()
            .collect();
        self.slices_of.clear();
        self.owner_of.clear();
        for slice in objects.slices() {
            let (Some(namespace), Some(name)) = (
                slice.metadata.namespace.clone(),
                slice.metadata.name.clone(),
            ) else {
                continue;
            };
            dirty.extend(self.relink_slice(objects, (namespace, name)));
        }
        for service in objects.services() {
            if let (Some(namespace), Some(name)) = (
                service.metadata.namespace.clone(),
                service.metadata.name.clone(),
            ) {
                dirty.insert((namespace, name));
            }
        }
        let mut update = Update::default();
        for service in dirty {
            self.translate_service(objects, service, &mut update);
        }
        update
    }

    /// Records which Service a slice belongs to now; returns the Services it belonged
    /// to before and belongs to now (both must be translated again).
    fn relink_slice(&mut self, objects: &dyn Objects, slice: ObjectName) -> Vec<ObjectName> {
        let now = objects.slice(&slice).and_then(|s| {
            let service = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
            Some((slice.0.clone(), service.clone()))
        });
        let before = match &now {
            Some(owner) => self.owner_of.insert(slice.clone(), owner.clone()),
            None => self.owner_of.remove(&slice),
        };
        if let Some(old) = &before {
            if let Some(set) = self.slices_of.get_mut(old) {
                set.remove(&slice.1);
                if set.is_empty() {
                    self.slices_of.remove(old);
                }
            }
        }
        if let Some(owner) = &now {
            self.slices_of
                .entry(owner.clone())
                .or_default()
                .insert(slice.1.clone());
        }
        before.into_iter().chain(now).collect()
    }

    /// Translates one Service again and records what changed in `update`.
    fn translate_service(
        &mut self,
        objects: &dyn Objects,
        service: ObjectName,
        update: &mut Update,
    ) {
        let object = objects.service(&service);
        let slices: Vec<Arc<EndpointSlice>> = self
            .slices_of
            .get(&service)
            .into_iter()
            .flatten()
            .filter_map(|name| objects.slice(&(service.0.clone(), name.clone())))
            .collect();
        let pods = pods_named(&slices);
        self.relink_pods(&service, pods.clone());
        let meshed: HashSet<PodName> = pods.into_iter().filter(|p| objects.meshed(p)).collect();
        let found =
            translate::translate(object.as_deref(), slices.iter().map(AsRef::as_ref), &meshed);

        let before = self.ports_of.remove(&service).unwrap_or_default();
        for port in &before {
            if !found.ports.contains_key(port) {
                update.ports_changed = true;
                self.discovered.ports.remove(port);
                if self.discovered.endpoints.remove(port).is_some() {
                    update.endpoints.insert(port.clone(), Vec::new());
                }
            }
        }
        let mut endpoints = found.endpoints;
        for (port, info) in &found.ports {
            if self.discovered.ports.get(port) != Some(info) {
                update.ports_changed = true;
                self.discovered.ports.insert(port.clone(), info.clone());
            }
            let list = endpoints.remove(port).unwrap_or_default();
            let old = self
                .discovered
                .endpoints
                .get(port)
                .map_or(&[][..], Vec::as_slice);
            if old != list.as_slice() {
                if list.is_empty() {
                    self.discovered.endpoints.remove(port);
                } else {
                    self.discovered.endpoints.insert(port.clone(), list.clone());
                }
                update.endpoints.insert(port.clone(), list);
            }
        }
        if !found.ports.is_empty() {
            self.ports_of
                .insert(service, found.ports.into_keys().collect());
        }
    }

    fn relink_pods(&mut self, service: &ObjectName, pods: BTreeSet<PodName>) {
        for pod in self.pods_of.remove(service).into_iter().flatten() {
            if let Some(set) = self.services_of_pod.get_mut(&pod) {
                set.remove(service);
                if set.is_empty() {
                    self.services_of_pod.remove(&pod);
                }
            }
        }
        for pod in &pods {
            self.services_of_pod
                .entry(pod.clone())
                .or_default()
                .insert(service.clone());
        }
        if !pods.is_empty() {
            self.pods_of.insert(service.clone(), pods);
        }
    }
}

/// The Pods the slices' endpoints name (`targetRef` of kind Pod; namespace defaulting to
/// the slice's), whose annotation says whether the endpoint is meshed.
fn pods_named(slices: &[Arc<EndpointSlice>]) -> BTreeSet<PodName> {
    let mut pods = BTreeSet::new();
    for slice in slices {
        for endpoint in &slice.endpoints {
            let Some(target) = endpoint.target_ref.as_ref() else {
                continue;
            };
            if target.kind.as_deref() != Some("Pod") {
                continue;
            }
            let namespace = target
                .namespace
                .clone()
                .or_else(|| slice.metadata.namespace.clone());
            if let (Some(namespace), Some(name)) = (namespace, target.name.clone()) {
                pods.insert((namespace, name));
            }
        }
    }
    pods
}

#[cfg(test)]
mod tests;
