//! `meshwork-control --kubernetes`: the mesh learned from the cluster it runs in.
//!
//! Services, EndpointSlices and Pod metadata are watched (`watch.rs`) and translated
//! (`translate.rs`, kept up to date per Service by `index.rs`: each event translates
//! only the Services it touches) into a cluster per Service port, named `NAME.NAMESPACE.svc:PORT`,
//! with its usable endpoints, their zones and whether each runs meshwork. The catalog
//! merges that with the fragment directory (see `catalog.rs`); `health.rs` says whether
//! the watches are in sync (`/ready`, `/status`).
//!
//! Replicas share nothing: each watches the API on its own and, reading the same
//! objects, serves the same resources at the same versions.

pub mod health;
pub mod index;
pub mod translate;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;

pub use health::Health;
pub use index::{Index, Touched, Update};
pub use translate::Discovered;
pub use watch::{Pending, Stores};

/// Where the API server is.
#[derive(Clone, Debug)]
pub enum ApiAccess {
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
}

/// The watches running, and their health.
#[derive(Debug, Clone)]
pub struct Kubernetes {
    pub stores: Stores,
    pub health: Arc<Health>,
    /// What the watch events touched since the index last took them.
    pub pending: Arc<Pending>,
}

impl Kubernetes {
    /// Brings `index` up to date with the events since the last call.
    pub fn update(&self, index: &mut Index) -> Update {
        index.update(&self.stores, self.pending.take())
    }
}

/// Connects to the API server and starts the watches; `changed` is notified after every
/// change.
///
/// # Errors
/// A kubeconfig that cannot be read, no in-cluster environment, a client that cannot be
/// built (the watches themselves retry for ever).
pub async fn start(access: &ApiAccess, changed: Arc<Notify>) -> anyhow::Result<Kubernetes> {
    let config = match access {
        ApiAccess::InCluster => kube::Config::incluster()
            .map_err(|e| anyhow::anyhow!("no in-cluster Kubernetes config: {e}"))?,
        ApiAccess::Kubeconfig(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?
        }
    };
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("cannot build the Kubernetes client: {e}"))?;
    let health = Arc::new(Health::new(&["endpointslices", "pods", "services"]));
    let pending = Arc::new(Pending::default());
    let stores = watch::start(client, health.clone(), pending.clone(), changed);
    Ok(Kubernetes {
        stores,
        health,
        pending,
    })
}
