//! Watches the identity files and rotates the identity when they change.
//!
//! The files' directories are watched (not the files), so rename-into-place updates and
//! Kubernetes Secret volume symlink swaps are seen. A new set that cannot be used (a
//! half-written file, a key that does not match) is logged and counted, and the current
//! identity stays until a good set arrives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
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
    let watcher = watcher(&paths, tx)?;
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

fn watcher(paths: &[PathBuf], tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let dirs: BTreeSet<PathBuf> = paths.iter().map(|p| parent(p).to_path_buf()).collect();
    let names: Vec<_> = paths
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_owned())
        .collect();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let ours = event.paths.iter().any(|p| {
                p.file_name().is_some_and(|n| {
                    names.iter().any(|ours| ours == n) || n.to_string_lossy().starts_with("..")
                })
            });
            if ours {
                let _ = tx.try_send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the identity files; they will not rotate live");
            return None;
        }
    };
    for dir in &dirs {
        if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(%error, dir = %dir.display(), "cannot watch an identity directory; its files will not rotate live");
        }
    }
    Some(watcher)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
