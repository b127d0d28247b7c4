//! Whether the proxy serves traffic: what `/ready` answers, set by the lifecycle and the
//! control plane link.

use std::sync::atomic::{AtomicBool, Ordering};

/// The three things `/ready` waits on: the start finished, no drain began, and (for a
/// proxy whose file has no listeners of its own) the control plane's first snapshot.
#[derive(Debug)]
pub struct Readiness {
    started: AtomicBool,
    draining: AtomicBool,
    /// Set while `/ready` waits for the control plane's first snapshot (the file has no
    /// listeners of its own).
    awaiting_snapshot: AtomicBool,
}

impl Readiness {
    /// Not started yet; `awaiting_snapshot` when the control plane must deliver the
    /// first snapshot before there is anything to serve.
    pub fn new(awaiting_snapshot: bool) -> Self {
        Self {
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            awaiting_snapshot: AtomicBool::new(awaiting_snapshot),
        }
    }

    /// The config is applied and its listeners are bound.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// Shutdown began: `/ready` fails from now on.
    pub fn mark_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// A snapshot from the control plane was applied: `/ready` stops waiting for one.
    pub fn control_plane_synced(&self) {
        self.awaiting_snapshot.store(false, Ordering::Relaxed);
    }

    /// Why the proxy is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Relaxed) {
            Some("draining")
        } else if self.awaiting_snapshot.load(Ordering::Relaxed) {
            Some("waiting for the first snapshot from the control plane")
        } else if !self.started.load(Ordering::Relaxed) {
            Some("starting")
        } else {
            None
        }
    }
}
