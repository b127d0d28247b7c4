//! The running data plane — its active snapshot, listeners and mesh identity — and
//! applying a new config to it.
//!
//! The rest of the proxy sees it through two narrow traits: [`DataplaneView`] (what the
//! admin views read) and [`ApplyConfig`] (what reloads and the control plane change).
//! Only the lifecycle holds the [`Dataplane`] itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use meshwork_config::Config;
use meshwork_config::model::Direction;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterRegistry;
use crate::drain::ConnectionTracker;
use crate::listener::{ListenerInfo, ListenerSet};
use crate::mesh::MeshPlan;
use crate::metrics::Metrics;
use crate::observe::access_log::AccessLogWriter;
use crate::restart::{PendingRestart, StartupSettings};
use crate::snapshot::{Snapshot, SnapshotHandle, SnapshotParts};
use crate::tls::TlsPlan;
use crate::tls::identity::{IdentityMaterial, IdentityStore};
use crate::tls::watch::IdentityWatch;
use crate::trace::Tracer;

/// What the admin views read of the running data plane.
pub trait DataplaneView: Send + Sync + std::fmt::Debug {
    /// The active snapshot.
    fn snapshot(&self) -> Arc<Snapshot>;
    /// The bound listeners.
    fn listener_info(&self) -> Vec<ListenerInfo>;
    /// The startup-only fields the applied config sets differently from what runs.
    fn pending_restart(&self) -> Vec<PendingRestart>;
}

/// Applying a config to the running data plane: what reloads and the control plane need.
pub trait ApplyConfig: DataplaneView {
    /// Applies `config`, read from `source`, and returns its version.
    ///
    /// # Errors
    /// Why nothing changed: see [`ApplyError`].
    fn apply(&self, config: Config, source: String) -> Result<u64, ApplyError>;
}

/// The snapshot source name of a config read from the file at `path`.
pub fn file_source(path: &std::path::Path) -> String {
    format!("file:{}", path.display())
}

/// A config that could not be applied: invalid, or its listeners could not bind.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(#[from] meshwork_config::Diagnostics),
    #[error("{0}")]
    Bind(#[from] crate::listener::BindError),
    #[error("tracing: {0}")]
    Tracing(String),
    #[error("{0}")]
    Tls(String),
    #[error("access_log: cannot open {path}: {error}")]
    AccessLog { path: String, error: std::io::Error },
    /// The file and the control plane's resources do not fit together.
    #[error("{0}")]
    Assembly(String),
}

/// The running data plane.
#[derive(Debug)]
pub struct Dataplane {
    snapshots: SnapshotHandle,
    metrics: Metrics,
    registry: ClusterRegistry,
    listeners: Mutex<ListenerSet>,
    /// The mesh identity, read by every TLS config that uses it.
    identity: Arc<IdentityStore>,
    /// Follows the identity files on disk.
    identity_watch: Mutex<Option<IdentityWatch>>,
    next_version: AtomicU64,
    /// The settings read once at startup, and those the applied config changes.
    startup: StartupSettings,
    pending_restart: Mutex<Vec<PendingRestart>>,
    /// Every connection and tunnel, for the drain.
    connections: ConnectionTracker,
}

impl Dataplane {
    /// A data plane with no listeners yet. Its version 0 carries `config`'s settings
    /// without listeners, routes or clusters, in place only until the first
    /// [`Dataplane::apply`] (before any listener accepts), which builds them all (reading
    /// the certificate files) once. Connections are tracked by `connections` and told to
    /// finish by `drain`.
    pub fn new(
        config: &Config,
        metrics: Metrics,
        connections: ConnectionTracker,
        drain: CancellationToken,
    ) -> Self {
        let registry = ClusterRegistry::new(metrics.clone());
        let mut bare = config.clone();
        bare.listeners.clear();
        bare.route_tables.clear();
        bare.clusters.clear();
        bare.identity = None;
        bare.authorization.clear();
        let empty = Snapshot::build(
            0,
            String::new(),
            bare,
            &registry,
            &metrics,
            SnapshotParts {
                connections: connections.clone(),
                ..SnapshotParts::default()
            },
        );
        let snapshots: SnapshotHandle = Arc::new(ArcSwap::from_pointee(empty));
        Self {
            snapshots: snapshots.clone(),
            registry,
            identity: Arc::new(IdentityStore::new(metrics.tls.clone())),
            identity_watch: Mutex::new(None),
            listeners: Mutex::new(ListenerSet::new(
                snapshots,
                connections.clone(),
                drain,
                metrics.clone(),
            )),
            metrics,
            next_version: AtomicU64::new(1),
            startup: StartupSettings::of(config),
            pending_restart: Mutex::new(Vec::new()),
            connections,
        }
    }

    /// The mesh identity store, for TLS set up outside the snapshot (the control plane's).
    pub fn identity(&self) -> &Arc<IdentityStore> {
        &self.identity
    }

    /// Stops the listeners of `direction` accepting; open connections stay, tracked by
    /// the drain, and those serving HTTP shut down gracefully.
    pub fn stop_listeners(&self, direction: Direction) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop_direction(direction);
    }

    /// Applies a new config: binds new listeners first, then swaps the snapshot, then
    /// starts/stops listeners. On any error nothing changes.
    ///
    /// # Errors
    /// When the config's certificate files, access log or tracing cannot be set up, or a
    /// new listener cannot bind.
    pub fn apply(&self, config: Config, source: String) -> Result<u64, ApplyError> {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let prepared = listeners.prepare(&config)?;
        // Every certificate file is read now: a bad one rejects the whole config.
        let identity = match &config.identity {
            Some(files) => Some(
                IdentityMaterial::load(files)
                    .map_err(|e| ApplyError::Tls(format!("identity: {e}")))?,
            ),
            None => None,
        };
        let tls = TlsPlan::build(&config, config.identity.as_ref().map(|_| &self.identity))
            .map_err(|e| ApplyError::Tls(e.to_string()))?;
        let mesh = MeshPlan::build(config.mesh.as_ref(), &self.identity, &self.metrics)
            .map_err(|e| ApplyError::Tls(e.to_string()))?;
        let access_log = self.access_log_for(&config)?;
        let tracer = self.tracer_for(&config)?;
        crate::policy::authorization::warn_about_unauthenticated_policies(&config);
        *self
            .pending_restart
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.startup.differences(&config);
        self.identity.install(config.identity.clone(), identity);
        self.watch_identity();
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let snapshot = Snapshot::build(
            version,
            source,
            config,
            &self.registry,
            &self.metrics,
            SnapshotParts {
                tls,
                access_log,
                tracer,
                mesh,
                connections: self.connections.clone(),
            },
        );
        let config = snapshot.config.clone();
        self.snapshots.store(Arc::new(snapshot));
        listeners.commit(&config, prepared);
        self.metrics
            .config
            .version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.metrics
            .config
            .last_reload_success_timestamp_seconds
            .set(now.as_secs_f64());
        Ok(version)
    }

    /// (Re)starts the identity file watcher when the identity files changed.
    fn watch_identity(&self) {
        let paths = self.identity.watched_paths();
        let mut watch = self
            .identity_watch
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if watch.as_ref().map(|w| &w.paths) != Some(&paths) {
            *watch = crate::tls::watch::spawn(self.identity.clone());
        }
    }

    /// The tracer for `config`: the running one when the tracing settings did not change
    /// (so spans queued for export survive a reload), a new one otherwise.
    fn tracer_for(&self, config: &Config) -> Result<Option<Arc<Tracer>>, ApplyError> {
        let Some(wanted) = &config.tracing else {
            return Ok(None);
        };
        if let Some(current) = &self.snapshots.load().tracer {
            if current.config == *wanted {
                return Ok(Some(current.clone()));
            }
        }
        Tracer::start(wanted.clone(), self.metrics.trace.clone())
            .map(|t| Some(Arc::new(t)))
            .map_err(ApplyError::Tracing)
    }

    /// The access log writer for `config`: the running one when its settings did not
    /// change (so a reload does not reopen the file), a new one otherwise.
    fn access_log_for(&self, config: &Config) -> Result<Option<Arc<AccessLogWriter>>, ApplyError> {
        let Some(wanted) = &config.access_log else {
            return Ok(None);
        };
        if let Some(current) = &self.snapshots.load().access_log {
            if current.config == *wanted {
                return Ok(Some(current.clone()));
            }
        }
        AccessLogWriter::start(
            wanted.clone(),
            self.metrics.access_log_dropped_total.clone(),
        )
        .map(Some)
        .map_err(|error| ApplyError::AccessLog {
            path: format!("{:?}", wanted.path),
            error,
        })
    }
}

impl DataplaneView for Dataplane {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.load_full()
    }

    fn listener_info(&self) -> Vec<ListenerInfo> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .info()
    }

    fn pending_restart(&self) -> Vec<PendingRestart> {
        self.pending_restart
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ApplyConfig for Dataplane {
    fn apply(&self, config: Config, source: String) -> Result<u64, ApplyError> {
        Dataplane::apply(self, config, source)
    }
}
