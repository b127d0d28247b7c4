//! What the proxy applied from the control plane, and applying more of it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use meshwork_config::discovery::{Rejection as WireRejection, ResourceRef};
use meshwork_config::resource::{Applied, Bootstrap, Key, Kind, Rejection, Resource, settle};
use serde::Serialize;

use super::dump::{self, Nacked};
use super::last_good::LastGood;
use crate::dataplane::{ApplyConfig, ApplyError, file_source};
use crate::metrics::ControlPlaneMetrics;

/// The proxy's link to the control plane: its address, the proxy's own file (the
/// bootstrap every snapshot is assembled over) and what was applied.
#[derive(Debug)]
pub struct Link {
    pub address: String,
    bootstrap: Mutex<Bootstrap>,
    held: Mutex<Held>,
    connected: AtomicBool,
    metrics: ControlPlaneMetrics,
    /// Where each applied snapshot is saved (`None`: not saved).
    last_good: Option<LastGood>,
    /// Set while saving fails, so a directory that cannot be written (a non-root user
    /// and the default `state_dir`) is one warning, not one per snapshot.
    save_failing: AtomicBool,
}

#[derive(Debug, Default)]
struct Held {
    /// The resources applied, by key.
    resources: BTreeMap<Key, Resource>,
    /// The control plane's version of the last response applied (whole or in part).
    version: Option<String>,
    /// Whether any response was applied yet (before that, the file's own listeners,
    /// route tables and clusters run).
    synced: bool,
    /// What the last response's NACK said (empty after an ACK).
    last_rejected: Vec<RejectedView>,
    /// Every resource whose last version sent was rejected, until a later version of
    /// it is applied or it is removed: the config dump's NACKed entries.
    rejected: BTreeMap<Key, Nacked>,
    /// Set while what runs is the snapshot read back from disk at start, not yet
    /// confirmed by the control plane: its `saved_at` (seconds since the Unix epoch).
    stale_since: Option<u64>,
    /// The protocol's own view of its subscription (xDS: versions and each resource's
    /// standing), for the config dump.
    protocol_view: Option<serde_json::Value>,
}

/// A rejected resource as `/config` shows it.
#[derive(Clone, Debug, Serialize)]
struct RejectedView {
    resource: String,
    version: String,
    error: String,
}

/// One response from the control plane, decoded.
#[derive(Debug, Default)]
pub struct Update {
    pub version: String,
    pub changed: Vec<Resource>,
    pub removed: Vec<Key>,
    /// Resources that arrived malformed (not applied), with the reason.
    pub malformed: Vec<WireRejection>,
}

impl Link {
    pub fn new(
        address: String,
        bootstrap: Bootstrap,
        metrics: ControlPlaneMetrics,
        last_good: Option<LastGood>,
    ) -> Self {
        Link {
            address,
            bootstrap: Mutex::new(bootstrap),
            held: Mutex::default(),
            connected: AtomicBool::new(false),
            metrics,
            last_good,
            save_failing: AtomicBool::new(false),
        }
    }

    /// Applies the last good snapshot saved on disk, if there is one: the proxy serves
    /// it, reported stale, until the control plane answers. Returns whether one was
    /// applied. A resource of it that no longer fits the proxy's file is left out.
    pub fn restore(&self, dataplane: &dyn ApplyConfig) -> bool {
        let Some(last_good) = &self.last_good else {
            return false;
        };
        let saved = match last_good.load() {
            Ok(Some(saved)) => saved,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(%error, "not serving the saved snapshot");
                return false;
            }
        };
        let bootstrap = self
            .bootstrap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let source = format!("last_good:{}", last_good.path().display());
        let mut held = self.lock();
        match apply_resources(
            dataplane,
            &bootstrap,
            saved.resources,
            &BTreeMap::new(),
            &source,
        ) {
            Ok((_, applied, rejected)) => {
                for r in &rejected {
                    tracing::warn!(resource = %r.resource.key, error = %r.error, "left out of the saved snapshot: no longer fits the proxy's file");
                }
                held.resources = applied.into_iter().map(|r| (r.key.clone(), r)).collect();
                held.synced = true;
                held.version = Some(saved.version.clone());
                held.stale_since = Some(saved.saved_at);
                tracing::warn!(version = %saved.version, saved_at = saved.saved_at, resources = held.resources.len(), path = %last_good.path().display(), "serving the last good snapshot saved on disk (stale until the control plane answers)");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot apply the saved snapshot");
                false
            }
        }
    }

    /// Whether what runs is the snapshot read back from disk, not yet confirmed by the
    /// control plane.
    pub fn is_stale(&self) -> bool {
        self.lock().stale_since.is_some()
    }

    /// Saves what is held as the last good snapshot (a failure is logged: the proxy
    /// serves on).
    fn save(&self, held: &Held) {
        let (Some(last_good), Some(version)) = (&self.last_good, &held.version) else {
            return;
        };
        let resources: Vec<Resource> = held.resources.values().cloned().collect();
        match last_good.save(version, &resources) {
            Ok(()) => {
                if self.save_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %last_good.path().display(), "saving the last good snapshot again");
                }
            }
            Err(error) => {
                if !self.save_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, path = %last_good.path().display(), "cannot save the last good snapshot (warned once until a save succeeds; set control_plane.state_dir to a writable directory)");
                } else {
                    tracing::debug!(%error, path = %last_good.path().display(), "cannot save the last good snapshot");
                }
            }
        }
    }

    /// The control plane link's metrics.
    pub fn metrics(&self) -> &ControlPlaneMetrics {
        &self.metrics
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.metrics.connected.set(i64::from(connected));
    }

    /// The resources held, for the first request of a stream (so only what differs is
    /// sent again).
    pub fn known(&self) -> Vec<ResourceRef> {
        self.lock()
            .resources
            .values()
            .map(|r| {
                let mut reference = ResourceRef::from(&r.key);
                reference.version.clone_from(&r.version);
                reference
            })
            .collect()
    }

    /// The keys of the resources held.
    pub fn held_keys(&self) -> Vec<Key> {
        self.lock().resources.keys().cloned().collect()
    }

    /// Replaces the protocol's view of its subscription shown in the config dump.
    pub fn set_protocol_view(&self, view: serde_json::Value) {
        self.lock().protocol_view = Some(view);
    }

    /// Applies `update` over what is held. Every resource that fails (validation, or a
    /// listener that cannot bind) keeps its previous version, or is left out; the rest
    /// is applied. Returns what to NACK (empty: ACK).
    pub fn apply(&self, dataplane: &dyn ApplyConfig, update: Update) -> Vec<WireRejection> {
        let mut held = self.lock();
        let mut nack = update.malformed;
        if held.synced && update.changed.is_empty() && update.removed.is_empty() && nack.is_empty()
        {
            held.version = Some(update.version.clone());
            held.last_rejected.clear();
            if held.stale_since.take().is_some() {
                self.save(&held);
            }
            self.record(&held, true);
            return nack;
        }
        let touched: Vec<Key> = (update.changed.iter().map(|r| r.key.clone()))
            .chain(update.removed.iter().cloned())
            .collect();
        let mut offered = held.resources.clone();
        for key in &update.removed {
            offered.remove(key);
        }
        let changed: Vec<Resource> = update.changed.clone();
        for r in update.changed {
            offered.insert(r.key.clone(), r);
        }
        let bootstrap = self
            .bootstrap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let source = format!("control_plane:{}", self.address);
        match apply_resources(
            dataplane,
            &bootstrap,
            offered.into_values().collect(),
            &held.resources,
            &source,
        ) {
            Ok((_, applied, rejected)) => {
                held.resources = applied.into_iter().map(|r| (r.key.clone(), r)).collect();
                nack.extend(rejected.iter().map(WireRejection::from));
                held.last_rejected = rejected
                    .iter()
                    .map(|r| RejectedView {
                        resource: r.resource.key.to_string(),
                        version: r.resource.version.clone(),
                        error: r.error.clone(),
                    })
                    .collect();
                held.synced = true;
                held.version = Some(update.version.clone());
                held.stale_since = None;
                self.save(&held);
                tracing::info!(version = %update.version, resources = held.resources.len(), rejected = rejected.len(), "applied a snapshot from the control plane");
            }
            Err(error) => {
                // Nothing applied: every changed resource is rejected with the reason.
                tracing::error!(version = %update.version, %error, "cannot apply the control plane's snapshot; keeping the active config");
                held.last_rejected = changed
                    .iter()
                    .map(|r| RejectedView {
                        resource: r.key.to_string(),
                        version: r.version.clone(),
                        error: error.clone(),
                    })
                    .collect();
                nack.extend(changed.into_iter().map(|resource| {
                    WireRejection::from(&Rejection {
                        resource,
                        error: error.clone(),
                    })
                }));
            }
        }
        held.rejected.retain(|k, _| !touched.contains(k));
        for r in &nack {
            tracing::warn!(name = %r.name, version = %r.version, error = %r.error, "rejected a resource from the control plane");
            if let Some(kind) = meshwork_config::discovery::kind_of(r.kind) {
                let nacked = Nacked {
                    version: r.version.clone(),
                    error: r.error.clone(),
                };
                held.rejected.insert(Key::new(kind, r.name.clone()), nacked);
            }
        }
        self.record(&held, nack.is_empty());
        nack
    }

    /// `/config_dump`: per resource, the version in use and its status, and the
    /// protocol's own view.
    pub fn dump(&self) -> serde_json::Value {
        let held = self.lock();
        dump::render(&dump::Dump {
            address: &self.address,
            connected: self.connected.load(Ordering::Relaxed),
            version: held.version.as_deref(),
            stale_since: held.stale_since,
            resources: &held.resources,
            rejected: &held.rejected,
            protocol: held.protocol_view.as_ref(),
        })
    }

    /// A new version of the proxy's own file: assembled with the resources held. Before
    /// the first snapshot, the file's own config is applied as a file reload would.
    ///
    /// # Errors
    /// Why nothing was applied.
    pub fn reload_bootstrap(
        &self,
        dataplane: &dyn ApplyConfig,
        path: &Path,
        text: String,
    ) -> Result<u64, ApplyError> {
        let config = meshwork_config::load_file(path)?;
        let mut held = self.lock();
        let base_dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let bootstrap = Bootstrap::new(
            path.display().to_string(),
            text,
            &std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf()),
        );
        let version = if held.synced {
            let source = format!("control_plane:{}", self.address);
            let resources: Vec<Resource> = held.resources.values().cloned().collect();
            // Only the file changed: a resource that no longer fits it is left out.
            let (version, applied, rejected) =
                apply_resources(dataplane, &bootstrap, resources, &BTreeMap::new(), &source)
                    .map_err(ApplyError::Assembly)?;
            for r in &rejected {
                tracing::warn!(resource = %r.resource.key, error = %r.error, "left out: no longer fits the proxy's file");
            }
            held.resources = applied.into_iter().map(|r| (r.key.clone(), r)).collect();
            version
        } else {
            dataplane.apply(config, file_source(path))?
        };
        *self.bootstrap.lock().unwrap_or_else(|e| e.into_inner()) = bootstrap;
        Ok(version)
    }

    /// `/config`'s `control_plane` part.
    pub fn view(&self) -> serde_json::Value {
        let held = self.lock();
        serde_json::json!({
            "address": self.address,
            "connected": self.connected.load(Ordering::Relaxed),
            "synced": held.synced,
            "stale": held.stale_since.is_some(),
            "stale_since": held.stale_since,
            "last_good": self.last_good.as_ref().map(|l| l.path().display().to_string()),
            "version": held.version,
            "resources": held.resources.values().map(|r| serde_json::json!({
                "kind": r.key.kind,
                "name": r.key.name,
                "version": r.version,
                "source": r.source.to_string(),
            })).collect::<Vec<_>>(),
            "last_rejected": held.last_rejected,
            "xds": held.protocol_view,
        })
    }

    /// Whether a snapshot from the control plane was applied.
    pub fn is_synced(&self) -> bool {
        self.lock().synced
    }

    fn record(&self, held: &Held, ack: bool) {
        let m = &self.metrics;
        m.updates_total
            .with_label_values(&[if ack { "ack" } else { "nack" }])
            .inc();
        m.info.reset();
        if let Some(version) = &held.version {
            m.info.with_label_values(&[&self.address, version]).set(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Settles `offered` over `bootstrap` through [`ApplyConfig::apply`]: a listener that
/// cannot bind is rejected like an invalid resource.
fn apply_resources(
    dataplane: &dyn ApplyConfig,
    bootstrap: &Bootstrap,
    offered: Vec<Resource>,
    previous: &BTreeMap<Key, Resource>,
    source: &str,
) -> Result<(u64, Vec<Resource>, Vec<Rejection>), String> {
    let env = |name: &str| std::env::var(name).ok();
    let settled = settle(
        bootstrap,
        offered,
        &|key| previous.get(key).cloned(),
        &env,
        &mut |config| match dataplane.apply(config, source.to_string()) {
            Ok(version) => Applied::Done(version),
            Err(ApplyError::Bind(e)) => Applied::Reject(vec![(
                Key::new(Kind::Listener, e.listener.clone()),
                e.to_string(),
            )]),
            Err(other) => Applied::Fail(other.to_string()),
        },
    )?;
    Ok((settled.value, settled.applied, settled.rejected))
}
