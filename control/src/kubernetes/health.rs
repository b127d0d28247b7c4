//! Whether each watch is in sync with the API server: `/ready` and `/status` of a
//! control plane run with `--kubernetes`.
//!
//! A watch that failed (the API server unreachable, a refused list) keeps serving its
//! last state; the control plane then says it is not ready, so new proxies go to a
//! replica that is in sync, while the ones connected keep what they have.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// The state of one watch (`services`, `endpointslices`, `pods`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct WatchState {
    /// Listed in full at least once.
    pub synced: bool,
    /// The last error since the last success, and since when (seconds since the epoch).
    pub failing: Option<Failing>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Failing {
    pub error: String,
    pub since_unix_seconds: u64,
}

/// Every watch's state.
#[derive(Debug, Default)]
pub struct Health {
    watches: Mutex<BTreeMap<&'static str, WatchState>>,
}

impl Health {
    pub fn new(watches: &[&'static str]) -> Self {
        Health {
            watches: Mutex::new(
                watches
                    .iter()
                    .map(|w| (*w, WatchState::default()))
                    .collect(),
            ),
        }
    }

    /// `watch` listed everything (again).
    pub fn synced(&self, watch: &'static str) {
        let mut all = self.lock();
        let state = all.entry(watch).or_default();
        state.synced = true;
        state.failing = None;
    }

    /// `watch` saw an event: the API answers.
    pub fn working(&self, watch: &'static str) {
        self.lock().entry(watch).or_default().failing = None;
    }

    /// The API server answered a probe: every watch may work again (one that still
    /// fails says so at its next retry).
    pub fn reachable(&self) {
        for state in self.lock().values_mut() {
            state.failing = None;
        }
    }

    /// `watch` failed; returns whether it was working until now (to log once).
    pub fn failed(&self, watch: &'static str, error: String) -> bool {
        let mut all = self.lock();
        let state = all.entry(watch).or_default();
        let was_working = state.failing.is_none();
        if was_working {
            let since = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            state.failing = Some(Failing {
                error,
                since_unix_seconds: since,
            });
        } else if let Some(failing) = &mut state.failing {
            failing.error = error;
        }
        was_working
    }

    /// Whether any watch is failing now.
    pub fn any_failing(&self) -> bool {
        self.lock().values().any(|s| s.failing.is_some())
    }

    /// `None` when every watch is synced and working; else why not, one line.
    pub fn not_ready(&self) -> Option<String> {
        let all = self.lock();
        if let Some((name, _)) = all.iter().find(|(_, s)| !s.synced) {
            return Some(format!("the Kubernetes {name} are not listed yet"));
        }
        let failing: Vec<String> = all
            .iter()
            .filter_map(|(name, s)| Some(format!("{name}: {}", s.failing.as_ref()?.error)))
            .collect();
        if failing.is_empty() {
            None
        } else {
            Some(format!(
                "the Kubernetes API is unreachable ({}); serving the last state",
                failing.join("; ")
            ))
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, WatchState> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, WatchState>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_watch_is_listed_and_working() {
        let health = Health::new(&["services", "endpointslices"]);
        let why = health.not_ready().expect("not listed");
        assert!(why.contains("are not listed yet"), "{why}");
        health.synced("services");
        health.synced("endpointslices");
        assert_eq!(health.not_ready(), None);
        assert!(health.failed("services", "connection refused".into()));
        assert!(!health.failed("services", "still refused".into()));
        let why = health.not_ready().expect("failing");
        assert!(why.contains("services: still refused"), "{why}");
        assert!(why.contains("serving the last state"), "{why}");
        health.reachable();
        assert_eq!(health.not_ready(), None);
    }
}
