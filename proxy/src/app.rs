//! The running proxy: its active snapshot, listeners, admin server, reloads and drain.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use meshwork_config::Config;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ClusterRegistry;
use crate::listener::{ListenerInfo, ListenerSet};
use crate::metrics::Metrics;
use crate::observe::access_log::AccessLogWriter;
use crate::restart::{PendingRestart, StartupSettings};
use crate::snapshot::{Snapshot, SnapshotHandle, SnapshotParts};
use crate::tls::TlsPlan;
use crate::tls::identity::{IdentityMaterial, IdentityStore};
use crate::tls::watch::IdentityWatch;
use crate::trace::Tracer;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// The config file changed on disk: an unchanged text is not applied again.
    FileChanged,
    /// SIGHUP: applied even when the text is unchanged (certificate files are re-read).
    Signal,
}

/// How long shutdown waits for the access log and span export to write out what is left.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// How the proxy was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: PathBuf,
    pub admin_address_file: Option<PathBuf>,
    pub drain_timeout: Duration,
}

/// Shared state of the running proxy.
#[derive(Debug)]
pub struct Proxy {
    pub snapshots: SnapshotHandle,
    pub metrics: Metrics,
    registry: ClusterRegistry,
    listeners: Mutex<ListenerSet>,
    /// The mesh identity, read by every TLS config that uses it.
    identity: Arc<IdentityStore>,
    /// Follows the identity files on disk.
    identity_watch: Mutex<Option<IdentityWatch>>,
    next_version: AtomicU64,
    ready: AtomicBool,
    draining: AtomicBool,
    /// The text of the last config applied, to skip reloads that change nothing.
    applied_text: Mutex<Option<String>>,
    /// The text of the last config that failed validation: the same text fails the same
    /// way, so a watcher event and a SIGHUP for one bad edit count as one rejection.
    invalid_text: Mutex<Option<String>>,
    /// The control plane link, when `control_plane` is set.
    pub control_plane: Option<Arc<crate::control_plane::Link>>,
    /// Set while `/ready` waits for the control plane's first snapshot (the file has no
    /// listeners of its own).
    awaiting_snapshot: AtomicBool,
    /// The settings read once at startup, and those the applied config changes.
    startup: StartupSettings,
    pending_restart: Mutex<Vec<PendingRestart>>,
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

impl Proxy {
    /// Applies a new config: binds new listeners first, then swaps the snapshot, then
    /// starts/stops listeners. On any error nothing changes.
    ///
    /// # Errors
    /// When a new listener cannot bind.
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

    /// The access log writer for `config`: the running one when its settings did not
    /// change (so a reload does not reopen the file), a new one otherwise.
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

    /// Reads and applies the config file, unless its text is what is already applied or
    /// what last failed validation. (A config rejected because a port was busy is tried
    /// again on the next signal: that can change without the file changing.) `Forced`
    /// (SIGHUP) applies an unchanged text again, which re-reads every certificate file:
    /// how renewed certificates at the same paths are picked up, as with `nginx -s reload`.
    pub fn reload_from(&self, path: &Path, trigger: ReloadTrigger) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "reload: cannot read config; keeping the active one");
                return;
            }
        };
        {
            let applied = self.applied_text.lock().unwrap_or_else(|e| e.into_inner());
            if applied.as_deref() == Some(text.as_str()) {
                if trigger == ReloadTrigger::FileChanged {
                    tracing::debug!(path = %path.display(), "reload: config unchanged");
                    return;
                }
                tracing::info!(path = %path.display(), "reload: config unchanged; reading the certificate files again");
            }
            let invalid = self.invalid_text.lock().unwrap_or_else(|e| e.into_inner());
            if invalid.as_deref() == Some(text.as_str()) {
                tracing::debug!(path = %path.display(), "reload: same invalid config as before");
                return;
            }
        }
        let result = match &self.control_plane {
            // The file is the bootstrap the control plane's resources are assembled over.
            Some(link) => link.reload_bootstrap(self, path, text.clone()),
            None => meshwork_config::load_file(path)
                .map_err(ApplyError::from)
                .and_then(|config| self.apply(config, source_name(path))),
        };
        match result {
            Ok(version) => {
                self.metrics
                    .config
                    .reloads_total
                    .with_label_values(&["applied"])
                    .inc();
                *self.applied_text.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                tracing::info!(version, path = %path.display(), "config reloaded");
                self.warn_pending_restart();
            }
            Err(error) => {
                if matches!(error, ApplyError::Invalid(_)) {
                    *self.invalid_text.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                }
                self.metrics
                    .config
                    .reloads_total
                    .with_label_values(&["rejected"])
                    .inc();
                for line in error.to_string().lines() {
                    tracing::error!(error = line, "reload rejected; keeping the active config");
                }
            }
        }
    }

    /// Says which applied fields still run with their startup value.
    fn warn_pending_restart(&self) {
        let pending = self
            .pending_restart
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for p in pending.iter() {
            tracing::warn!(
                field = p.field,
                running = %p.running,
                configured = %p.configured,
                "config field changed on reload needs a restart; still running the old value"
            );
        }
    }

    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Relaxed) {
            Some("draining")
        } else if self.awaiting_snapshot.load(Ordering::Relaxed) {
            Some("waiting for the first snapshot from the control plane")
        } else if !self.ready.load(Ordering::Relaxed) {
            Some("starting")
        } else {
            None
        }
    }

    pub fn listener_info(&self) -> Vec<ListenerInfo> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .info()
    }

    /// Every cluster of the active config with its endpoints and their load.
    pub fn clusters_view(&self) -> serde_json::Value {
        let snapshot = self.snapshots.load();
        let mut clusters: Vec<_> = snapshot.clusters.values().collect();
        clusters.sort_by(|a, b| a.name().cmp(b.name()));
        let list: Vec<serde_json::Value> = clusters
            .iter()
            .map(|c| {
                let endpoints: Vec<serde_json::Value> = c
                    .endpoints
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "address": e.address.to_string(),
                            "weight": c.config.endpoints.iter().find(|x| x.address == e.address).map_or(1, |x| x.weight),
                            // No active health checking yet (#5): an endpoint is assumed healthy.
                            "health": match &e.health {
                                Some(h) if h.is_healthy() => "healthy",
                                Some(_) => "unhealthy",
                                None => "unchecked",
                            },
                            "circuit_breaker": e.breaker.as_ref().map(|b| b.state().as_str()),
                            "in_flight": e.in_flight.load(Ordering::Relaxed),
                            "connections_active": e.metrics.connections_active.get(),
                            "requests_total": e.metrics.requests_total(),
                            "connect_failures_total": e.metrics.connect_failures.get(),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": c.name(),
                    "protocol": c.config.protocol,
                    "load_balancer": c.config.load_balancer,
                    "endpoints": endpoints,
                })
            })
            .collect();
        serde_json::json!({ "version": snapshot.version.to_string(), "clusters": list })
    }

    pub fn config_view(&self) -> serde_json::Value {
        let snapshot = self.snapshots.load();
        serde_json::json!({
            "version": snapshot.version.to_string(),
            "source": snapshot.source,
            "control_plane": self.control_plane.as_ref().map(|l| l.view()),
            "pending_restart": &*self.pending_restart.lock().unwrap_or_else(|e| e.into_inner()),
            "config": &*snapshot.config,
        })
    }

    /// A snapshot from the control plane was applied: `/ready` stops waiting for one.
    pub fn control_plane_synced(&self) {
        self.awaiting_snapshot.store(false, Ordering::Relaxed);
    }
}

fn source_name(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Runs the proxy until SIGTERM/SIGINT, then drains.
///
/// # Errors
/// Startup failures: listeners or admin that cannot bind, an unwritable address file.
pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<()> {
    let drain = CancellationToken::new();
    let connections = TaskTracker::new();
    let admin_address = config.admin.address;
    let initial_text = std::fs::read_to_string(&options.config_path).ok();
    let control_plane = config.control_plane.as_ref().map(|cp| {
        let path = &options.config_path;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let bootstrap = meshwork_config::resource::Bootstrap::new(
            path.display().to_string(),
            initial_text.clone().unwrap_or_default(),
            &base_dir,
        );
        Arc::new(crate::control_plane::Link::new(
            cp.address.clone(),
            bootstrap,
        ))
    });
    // Without listeners of its own, a proxy fed by a control plane has nothing to serve
    // until the first snapshot.
    let awaiting_snapshot = control_plane.is_some() && config.listeners.is_empty();
    let node = meshwork_config::discovery::Node {
        id: config.node.id.clone(),
        labels: config.node.labels.clone().into_iter().collect(),
    };

    // Version 0: the config's settings without listeners, routes or clusters, in place
    // only until the first apply below (before any listener accepts), which builds them
    // all (reading the certificate files) once.
    let metrics = Metrics::new();
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
        SnapshotParts::default(),
    );
    let snapshots: SnapshotHandle = Arc::new(ArcSwap::from_pointee(empty));
    let proxy = Arc::new(Proxy {
        snapshots: snapshots.clone(),
        registry,
        identity: Arc::new(IdentityStore::new(metrics.tls.clone())),
        identity_watch: Mutex::new(None),
        listeners: Mutex::new(ListenerSet::new(
            snapshots,
            connections.clone(),
            drain.clone(),
            metrics.clone(),
        )),
        metrics,
        next_version: AtomicU64::new(1),
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        applied_text: Mutex::new(initial_text),
        invalid_text: Mutex::new(None),
        control_plane: control_plane.clone(),
        awaiting_snapshot: AtomicBool::new(awaiting_snapshot),
        startup: StartupSettings::of(&config),
        pending_restart: Mutex::new(Vec::new()),
    });

    // Before any port is bound: a bad certificate file for the control plane stops the
    // start, naming the file.
    let control_plane_tls = match &config.control_plane {
        Some(cp) => crate::control_plane::ControlPlaneTls::build(
            cp,
            config.identity.as_ref().map(|_| &proxy.identity),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map(Arc::new),
        None => None,
    };

    let admin = crate::admin::bind(admin_address)
        .map_err(|e| anyhow::anyhow!("admin: cannot bind {admin_address}: {e}"))?;
    let admin_bound = admin.local_addr()?;
    let admin_stop = CancellationToken::new();
    tokio::spawn(crate::admin::serve(
        admin,
        proxy.clone(),
        admin_stop.clone(),
    ));
    tracing::info!(address = %admin_bound, "admin server started");

    proxy
        .apply(config, source_name(&options.config_path))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(path) = &options.admin_address_file {
        write_atomically(path, &admin_bound.to_string())?;
    }
    proxy.ready.store(true, Ordering::Relaxed);
    if awaiting_snapshot {
        tracing::info!("started; ready once the control plane's first snapshot is applied");
    } else {
        tracing::info!("ready");
    }

    let reloads = crate::reload::spawn(proxy.clone(), options.config_path.clone());
    let subscription = control_plane
        .map(|link| crate::control_plane::spawn(proxy.clone(), link, node, control_plane_tls));

    wait_for_shutdown_signal().await;
    tracing::info!(timeout = ?options.drain_timeout, "draining");
    proxy.draining.store(true, Ordering::Relaxed);
    reloads.abort();
    if let Some(task) = subscription {
        task.abort();
    }
    proxy
        .listeners
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stop_all();
    drain.cancel();
    connections.close();
    if tokio::time::timeout(options.drain_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = connections.len(),
            "drain timeout reached; closing remaining connections"
        );
    }
    // What the last requests produced is still in memory: write and send it.
    let last = proxy.snapshots.load_full();
    if let Some(log) = &last.access_log {
        log.close(FLUSH_AT_EXIT).await;
    }
    if let Some(tracer) = &last.tracer {
        tracer.close(FLUSH_AT_EXIT).await;
    }
    admin_stop.cancel();
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
