//! Config reloads: on SIGHUP and when the config file changes on disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::{Proxy, ReloadTrigger};

/// Editors and ConfigMap updates write in several steps; wait for them to settle.
const SETTLE_DELAY: Duration = Duration::from_millis(100);

/// Starts the reload task. The file's directory is watched (not the file), so
/// rename-into-place updates — editors, Kubernetes ConfigMap symlink swaps — are seen.
pub fn spawn(proxy: Arc<Proxy>, path: PathBuf) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = crate::file_watch::watch(std::slice::from_ref(&path), tx, "reload with SIGHUP");
    tokio::spawn(async move {
        let _watcher = watcher;
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload on file change only");
                None
            }
        };
        loop {
            let trigger = tokio::select! {
                Some(()) = rx.recv() => ReloadTrigger::FileChanged,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading config");
                    ReloadTrigger::Signal
                }
                else => return,
            };
            tokio::time::sleep(SETTLE_DELAY).await;
            while rx.try_recv().is_ok() {}
            let proxy = proxy.clone();
            let path = path.clone();
            // Reading and validating the file is blocking work: keep it off the workers.
            let _ = tokio::task::spawn_blocking(move || proxy.reload_from(&path, trigger)).await;
        }
    })
}
