//! Watches the identity files and rotates the identity when they change.
//!
//! The files' directories are watched (not the files), so rename-into-place updates and
//! Kubernetes Secret volume symlink swaps are seen. A new set that cannot be used (a
//! half-written file, a key that does not match) is logged and counted, and the current
//! identity stays until a good set arrives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::identity::IdentityStore;

/// Certificate tools write several files one after another; wait for them to settle.
const SETTLE_DELAY: Duration = Duration::from_millis(200);

/// A running watcher; dropping it stops watching.
#[derive(Debug)]
pub struct IdentityWatch {
    pub paths: Vec<PathBuf>,
    task: JoinHandle<()>,
}

impl Drop for IdentityWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the store's current identity files (none: nothing to watch).
pub fn spawn(store: Arc<IdentityStore>) -> Option<IdentityWatch> {
    let paths = store.watched_paths();
    if paths.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = crate::file_watch::watch(&paths, tx, "the identity will not rotate live")?;
    let task = tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE_DELAY).await;
            while rx.try_recv().is_ok() {}
            let store = store.clone();
            // A rejected set is logged and counted by the store itself.
            let _ = tokio::task::spawn_blocking(move || store.reload()).await;
        }
    });
    Some(IdentityWatch { paths, task })
}
