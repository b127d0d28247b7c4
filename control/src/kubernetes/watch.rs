//! The watches: Services, EndpointSlices (discovery.k8s.io/v1) and the metadata of Pods,
//! each a kube-rs reflector (list, then watch from the resourceVersion with bookmarks;
//! relist on 410 Gone; exponential backoff on errors) feeding an in-memory store.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, metadata_watcher, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::health::Health;
use super::translate::{self, Discovered, INJECTED_ANNOTATION, PodName};

/// How often an unreachable API server is probed, to say when it is back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The stores the watches keep up to date.
#[derive(Clone)]
pub struct Stores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Store<PartialObjectMeta<Pod>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Waits until every store has been listed once.
    pub async fn wait_until_ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.slices.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
    }

    /// What the stores hold now, translated.
    pub fn discovered(&self) -> Discovered {
        let meshed: HashSet<PodName> = self
            .pods
            .state()
            .iter()
            .filter(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(INJECTED_ANNOTATION))
                    .is_some_and(|v| v == "true")
            })
            .filter_map(|p| Some((p.metadata.namespace.clone()?, p.metadata.name.clone()?)))
            .collect();
        let services = self.services.state();
        let slices = self.slices.state();
        translate::translate(
            services.iter().map(AsRef::as_ref),
            slices.iter().map(AsRef::as_ref),
            &meshed,
        )
    }
}

/// Starts the three watches (across all namespaces) and the probe that says when an
/// unreachable API server is back; `changed` is notified after every change.
pub fn start(client: kube::Client, health: Arc<Health>, changed: Arc<Notify>) -> Stores {
    let services = spawn_watch::<Service>("services", Api::all(client.clone()), &health, &changed);
    let slices = spawn_watch::<EndpointSlice>(
        "endpointslices",
        Api::all(client.clone()),
        &health,
        &changed,
    );
    let pods = spawn_metadata_watch("pods", Api::<Pod>::all(client.clone()), &health, &changed);
    tokio::spawn(probe(client, health));
    Stores {
        services,
        slices,
        pods,
    }
}

fn spawn_watch<K>(
    name: &'static str,
    api: Api<K>,
    health: &Arc<Health>,
    changed: &Arc<Notify>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()));
    tokio::spawn(drive(name, stream, health.clone(), changed.clone()));
    store
}

fn spawn_metadata_watch(
    name: &'static str,
    api: Api<Pod>,
    health: &Arc<Health>,
    changed: &Arc<Notify>,
) -> Store<PartialObjectMeta<Pod>> {
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, metadata_watcher(api, watcher::Config::default()));
    tokio::spawn(drive(name, stream, health.clone(), changed.clone()));
    store
}

/// Runs one reflector's stream for the life of the process, recording its health and
/// notifying `changed` when its store changed.
async fn drive<K, S>(name: &'static str, stream: S, health: Arc<Health>, changed: Arc<Notify>)
where
    S: futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let stream = stream.default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                tracing::debug!(watch = name, "listed");
                health.synced(name);
                changed.notify_one();
            }
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                health.working(name);
                changed.notify_one();
            }
            // The store swaps in the new list at InitDone.
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => health.working(name),
            Err(error) => {
                if health.failed(name, error.to_string()) {
                    tracing::warn!(watch = name, %error, "Kubernetes watch failed; serving the last state while it retries");
                } else {
                    tracing::debug!(watch = name, %error, "Kubernetes watch still failing");
                }
            }
        }
    }
}

/// While a watch is failing, asks the API server its version every second: an answer
/// means it is reachable again.
async fn probe(client: kube::Client, health: Arc<Health>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        if health.any_failing() && client.apiserver_version().await.is_ok() {
            tracing::info!("the Kubernetes API answers again");
            health.reachable();
        }
    }
}
