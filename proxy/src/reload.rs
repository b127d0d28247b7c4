//! Config reloads: on SIGHUP and when the config file changes on disk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::control_plane::Link;
use crate::dataplane::{ApplyConfig, ApplyError, file_source};
use crate::metrics::ConfigMetrics;

/// Editors and ConfigMap updates write in several steps; wait for them to settle.
const SETTLE_DELAY: Duration = Duration::from_millis(100);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// The config file changed on disk: an unchanged text is not applied again.
    FileChanged,
    /// SIGHUP: applied even when the text is unchanged (certificate files are re-read).
    Signal,
}

/// The proxy's config file, what was last read from it, and where a new text goes: to
/// the data plane, or (with a control plane) to the link that assembles it with the
/// control plane's resources.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    dataplane: Arc<dyn ApplyConfig>,
    control_plane: Option<Arc<Link>>,
    metrics: ConfigMetrics,
    /// The text of the last config applied, to skip reloads that change nothing.
    applied_text: Mutex<Option<String>>,
    /// The text of the last config that failed validation: the same text fails the same
    /// way, so a watcher event and a SIGHUP for one bad edit count as one rejection.
    invalid_text: Mutex<Option<String>>,
}

impl ConfigFile {
    /// The file at `path`, whose text `applied_text` is what runs now.
    pub fn new(
        path: PathBuf,
        applied_text: Option<String>,
        dataplane: Arc<dyn ApplyConfig>,
        control_plane: Option<Arc<Link>>,
        metrics: ConfigMetrics,
    ) -> Self {
        Self {
            path,
            dataplane,
            control_plane,
            metrics,
            applied_text: Mutex::new(applied_text),
            invalid_text: Mutex::new(None),
        }
    }

    /// Reads and applies the config file, unless its text is what is already applied or
    /// what last failed validation. (A config rejected because a port was busy is tried
    /// again on the next signal: that can change without the file changing.) `Signal`
    /// (SIGHUP) applies an unchanged text again, which re-reads every certificate file:
    /// how renewed certificates at the same paths are picked up, as with `nginx -s reload`.
    pub fn reload(&self, trigger: ReloadTrigger) {
        let path = self.path.as_path();
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
            Some(link) => link.reload_bootstrap(self.dataplane.as_ref(), path, text.clone()),
            None => meshwork_config::load_file(path)
                .map_err(ApplyError::from)
                .and_then(|config| self.dataplane.apply(config, file_source(path))),
        };
        match result {
            Ok(version) => {
                self.metrics
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
        for p in self.dataplane.pending_restart() {
            tracing::warn!(
                field = p.field,
                running = %p.running,
                configured = %p.configured,
                "config field changed on reload needs a restart; still running the old value"
            );
        }
    }
}

/// Starts the reload task: on each `hangups` signal (SIGHUP; `None` when it cannot be
/// listened for) and on each change of the file. The file's directory is watched (not
/// the file), so rename-into-place updates — editors, Kubernetes ConfigMap symlink swaps
/// — are seen.
pub fn spawn(file: Arc<ConfigFile>, mut hangups: Option<Signal>) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher =
        crate::file_watch::watch(std::slice::from_ref(&file.path), tx, "reload with SIGHUP");
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                Some(()) = rx.recv() => ReloadTrigger::FileChanged,
                Some(()) = async { match hangups.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading config");
                    ReloadTrigger::Signal
                }
                else => return,
            };
            tokio::time::sleep(SETTLE_DELAY).await;
            while rx.try_recv().is_ok() {}
            let file = file.clone();
            // Reading and validating the file is blocking work: keep it off the workers.
            let _ = tokio::task::spawn_blocking(move || file.reload(trigger)).await;
        }
    })
}
