//! Every long-lived task the drain waits for — downstream connections and the tunnels
//! they upgrade into — and how many were ever started, so the drain can tell a quiet
//! app from one still making calls.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Tracks the tasks the drain waits for: a [`TaskTracker`] that also counts the tasks
/// started. A task started and finished while the drain looked away still moves the
/// count, which is how a short call made by an app that is shutting down is noticed.
#[derive(Debug, Clone, Default)]
pub struct ConnectionTracker {
    tasks: TaskTracker,
    started: Arc<AtomicU64>,
}

impl ConnectionTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task`, tracked until it ends.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.tasks.spawn(task)
    }

    /// Tasks started since the process began.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Tasks running now.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// From now on [`Self::wait`] returns whenever no task runs (tasks may still be
    /// spawned: an outbound listener keeps accepting while the app shuts down).
    pub fn close(&self) {
        self.tasks.close();
    }

    /// Returns once the tracker is closed and no task runs.
    pub async fn wait(&self) {
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_every_task_started_even_when_it_already_ended() {
        let tracker = ConnectionTracker::new();
        assert_eq!(tracker.started(), 0);
        tracker.spawn(async {}).await.expect("the task");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tracker.spawn(async move {
            let _ = rx.await;
        });
        assert_eq!((tracker.started(), tracker.len()), (2, 1));
        tracker.close();
        drop(tx);
        tracker.wait().await;
        assert!(tracker.is_empty());
        // Closed trackers still take tasks, and wait for them again.
        tracker.spawn(async {}).await.expect("the task");
        assert_eq!(tracker.started(), 3);
        tracker.wait().await;
    }
}
