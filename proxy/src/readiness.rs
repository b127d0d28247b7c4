//! Whether the proxy serves traffic: what `/ready` answers, set by the lifecycle and the
//! control plane link.
//!
//! Ready means: the config is applied and every listener is bound (the start
//! finished), the mesh identity is loaded when the config has one, the control plane's
//! first snapshot is in when there is a control plane, and no drain began. An app
//! started after `/ready` (`meshwork await`, a native sidecar's startupProbe) finds
//! every route, certificate and port it will use in place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::drain::DrainTrigger;
use crate::tls::identity::IdentityStore;

/// What `/ready` waits on.
#[derive(Debug)]
pub struct Readiness {
    started: AtomicBool,
    /// Began by a signal or the admin server: `/ready` fails from the moment it is asked.
    drain: Arc<DrainTrigger>,
    /// Set while `/ready` waits for the control plane's first snapshot.
    awaiting_snapshot: AtomicBool,
    /// The mesh identity, which must be loaded whenever the config names its files.
    identity: Arc<IdentityStore>,
}

impl Readiness {
    /// Not started yet; `awaiting_snapshot` when a control plane must deliver its first
    /// snapshot before the proxy has everything it will serve.
    pub fn new(
        awaiting_snapshot: bool,
        identity: Arc<IdentityStore>,
        drain: Arc<DrainTrigger>,
    ) -> Self {
        Self {
            started: AtomicBool::new(false),
            drain,
            awaiting_snapshot: AtomicBool::new(awaiting_snapshot),
            identity,
        }
    }

    /// The config is applied and its listeners are bound.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// A snapshot from the control plane was applied: `/ready` stops waiting for one.
    pub fn control_plane_synced(&self) {
        self.awaiting_snapshot.store(false, Ordering::Relaxed);
    }

    /// Why the proxy is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.drain.is_draining() {
            Some("draining")
        } else if !self.started.load(Ordering::Relaxed) {
            Some("starting")
        } else if self.identity.files().is_some() && self.identity.current().is_none() {
            Some("the identity is not loaded")
        } else if self.awaiting_snapshot.load(Ordering::Relaxed) {
            Some("waiting for the first snapshot from the control plane")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use meshwork_config::model;

    use super::*;
    use crate::metrics::Metrics;

    fn store() -> Arc<IdentityStore> {
        Arc::new(IdentityStore::new(Metrics::new().tls.clone()))
    }

    #[test]
    fn ready_only_once_started_synced_and_not_draining() {
        let drain = Arc::new(DrainTrigger::new());
        let readiness = Readiness::new(true, store(), drain.clone());
        assert_eq!(readiness.not_ready_reason(), Some("starting"));
        readiness.mark_started();
        assert_eq!(
            readiness.not_ready_reason(),
            Some("waiting for the first snapshot from the control plane")
        );
        readiness.control_plane_synced();
        assert_eq!(readiness.not_ready_reason(), None);
        drain.drain();
        assert_eq!(readiness.not_ready_reason(), Some("draining"));
    }

    #[test]
    fn a_config_naming_identity_files_is_not_ready_without_the_identity() {
        let identity = store();
        identity.install(
            Some(model::Identity {
                cert: "cert.pem".into(),
                key: "key.pem".into(),
                trust_bundle: "ca.pem".into(),
            }),
            None,
        );
        let readiness = Readiness::new(false, identity, Arc::new(DrainTrigger::new()));
        readiness.mark_started();
        assert_eq!(
            readiness.not_ready_reason(),
            Some("the identity is not loaded")
        );
    }
}
