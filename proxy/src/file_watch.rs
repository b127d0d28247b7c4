//! Watching files that other programs replace: the config file, the identity files.
//!
//! The files' directories are watched, not the files: editors and certificate tools
//! write a new file and rename it into place, and Kubernetes ConfigMap and Secret volumes
//! swap a `..data` symlink, none of which a watch on the old file would see.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

/// Watches the directories of `paths` and sends on `tx` when one of the files (or a
/// `..`-prefixed Kubernetes volume entry) changes. `consequence` finishes the warning
/// logged when watching is not possible (e.g. "reload with SIGHUP").
pub fn watch(
    paths: &[PathBuf],
    tx: mpsc::Sender<()>,
    consequence: &'static str,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dirs: BTreeSet<&Path> = paths.iter().map(|p| parent(p)).collect();
    let names: Vec<_> = paths
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_owned())
        .collect();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
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
        }) {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(%error, "cannot watch files; {consequence}");
                return None;
            }
        };
    for dir in dirs {
        if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(%error, dir = %dir.display(), "cannot watch a directory; {consequence}");
        }
    }
    Some(watcher)
}

/// A file's directory (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
