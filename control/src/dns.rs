//! DNS discovery: one task per discovery cluster, looking its name up every `refresh`
//! and keeping the last good answer (a failed or empty lookup changes nothing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::catalog::DiscoveryTarget;
use crate::metrics::Metrics;

/// The lookups running and their last answers.
#[derive(Debug)]
pub struct Resolver {
    answers: Arc<Mutex<BTreeMap<String, Vec<SocketAddr>>>>,
    tasks: BTreeMap<String, (DiscoveryTarget, JoinHandle<()>)>,
    /// Notified when an answer changes.
    changed: Arc<Notify>,
    metrics: Metrics,
}

impl Resolver {
    pub fn new(changed: Arc<Notify>, metrics: Metrics) -> Self {
        Resolver {
            answers: Arc::default(),
            tasks: BTreeMap::new(),
            changed,
            metrics,
        }
    }

    /// The last answer for each discovery cluster.
    pub fn answers(&self) -> BTreeMap<String, Vec<SocketAddr>> {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs one lookup task per target: starts new ones, restarts changed ones, stops
    /// (and forgets the answers of) the ones no longer wanted.
    pub fn sync(&mut self, targets: &[DiscoveryTarget]) {
        let wanted: BTreeMap<&str, &DiscoveryTarget> =
            targets.iter().map(|t| (t.cluster.as_str(), t)).collect();
        self.tasks.retain(|name, (target, task)| {
            let keep = wanted.get(name.as_str()) == Some(&&*target);
            if !keep {
                task.abort();
                self.answers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
            }
            keep
        });
        for (name, target) in wanted {
            if !self.tasks.contains_key(name) {
                let task = tokio::spawn(lookup_loop(
                    (*target).clone(),
                    self.answers.clone(),
                    self.changed.clone(),
                    self.metrics.clone(),
                ));
                self.tasks
                    .insert(name.to_string(), ((*target).clone(), task));
            }
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

async fn lookup_loop(
    target: DiscoveryTarget,
    answers: Arc<Mutex<BTreeMap<String, Vec<SocketAddr>>>>,
    changed: Arc<Notify>,
    metrics: Metrics,
) {
    let name = format!("{}:{}", target.dns.host, target.dns.port);
    loop {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(found) => {
                let mut found: Vec<SocketAddr> = found.collect();
                found.sort();
                found.dedup();
                if found.is_empty() {
                    metrics
                        .dns_resolutions_total
                        .with_label_values(&["error"])
                        .inc();
                    tracing::warn!(cluster = %target.cluster, dns = %name, "DNS answered no address; keeping the last answer");
                } else {
                    metrics
                        .dns_resolutions_total
                        .with_label_values(&["ok"])
                        .inc();
                    let mut all = answers.lock().unwrap_or_else(|e| e.into_inner());
                    if all.get(&target.cluster) != Some(&found) {
                        tracing::info!(cluster = %target.cluster, dns = %name, endpoints = found.len(), "DNS answer changed");
                        all.insert(target.cluster.clone(), found);
                        changed.notify_one();
                    }
                }
            }
            Err(error) => {
                metrics
                    .dns_resolutions_total
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(cluster = %target.cluster, dns = %name, %error, "DNS lookup failed; keeping the last answer");
            }
        }
        tokio::time::sleep(target.refresh).await;
    }
}
