//! The watches: Services, EndpointSlices (discovery.k8s.io/v1) and the metadata of Pods,
//! each a kube-rs reflector (list, then watch from the resourceVersion with bookmarks;
//! relist on 410 Gone; exponential backoff on errors) feeding an in-memory store, and
//! naming what each event touched ([`Pending`]) for the index to translate again.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, metadata_watcher, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::health::Health;
use super::index::{ObjectName, Objects, Touched};
use super::translate::{INJECTED_ANNOTATION, PodName};

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
}

impl Objects for Stores {
    fn service(&self, (namespace, name): &ObjectName) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    fn slice(&self, (namespace, name): &ObjectName) -> Option<Arc<EndpointSlice>> {
        self.slices.get(&ObjectRef::new(name).within(namespace))
    }

    fn meshed(&self, (namespace, name): &PodName) -> bool {
        self.pods
            .get(&ObjectRef::new(name).within(namespace))
            .is_some_and(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(INJECTED_ANNOTATION))
                    .is_some_and(|v| v == "true")
            })
    }

    fn services(&self) -> Vec<Arc<Service>> {
        self.services.state()
    }

    fn slices(&self) -> Vec<Arc<EndpointSlice>> {
        self.slices.state()
    }
}

/// What the watch events touched, in order, until the index takes it.
#[derive(Debug, Default)]
pub struct Pending(Mutex<Vec<Touched>>);

impl Pending {
    fn push(&self, touched: Touched) {
        self.lock().push(touched);
    }

    /// Everything touched since the last call.
    pub fn take(&self) -> Vec<Touched> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Touched>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where a watch's events go: what they touched, and a wake-up for the refresher.
#[derive(Clone)]
struct Sink {
    health: Arc<Health>,
    pending: Arc<Pending>,
    changed: Arc<Notify>,
}

/// Starts the three watches (across all namespaces) and the probe that says when an
/// unreachable API server is back; `changed` is notified after every change.
pub fn start(
    client: kube::Client,
    health: Arc<Health>,
    pending: Arc<Pending>,
    changed: Arc<Notify>,
) -> Stores {
    let sink = Sink {
        health: health.clone(),
        pending,
        changed,
    };
    let services = spawn_watch::<Service>(
        "services",
        Api::all(client.clone()),
        Touched::Service,
        &sink,
    );
    let slices = spawn_watch::<EndpointSlice>(
        "endpointslices",
        Api::all(client.clone()),
        Touched::Slice,
        &sink,
    );
    let pods = spawn_metadata_watch("pods", Api::<Pod>::all(client.clone()), &sink);
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
    touched: fn(ObjectName) -> Touched,
    sink: &Sink,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()));
    tokio::spawn(drive(name, stream, touched, sink.clone()));
    store
}

fn spawn_metadata_watch(
    name: &'static str,
    api: Api<Pod>,
    sink: &Sink,
) -> Store<PartialObjectMeta<Pod>> {
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, metadata_watcher(api, watcher::Config::default()));
    tokio::spawn(drive(name, stream, Touched::Pod, sink.clone()));
    store
}

/// Runs one reflector's stream for the life of the process, recording its health,
/// what each event touched (`touched` of the object's namespace and name; a new list
/// touches everything) and waking the refresher.
async fn drive<K, S>(name: &'static str, stream: S, touched: fn(ObjectName) -> Touched, sink: Sink)
where
    K: kube::Resource,
    S: futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let Sink {
        health,
        pending,
        changed,
    } = sink;
    let stream = stream.default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                tracing::debug!(watch = name, "listed");
                health.synced(name);
                pending.push(Touched::All);
                changed.notify_one();
            }
            Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                health.working(name);
                let meta = object.meta();
                if let (Some(namespace), Some(object)) = (&meta.namespace, &meta.name) {
                    pending.push(touched((namespace.clone(), object.clone())));
                }
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
