//! The TLS part of a snapshot: every listener's `ServerConfig` and every cluster's
//! origination settings, built (and every certificate file read) once per config.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meshwork_config::Config;
use rustls::ServerConfig;

use super::client::{Origination, alpn_for, origination};
use super::identity::IdentityStore;
use super::server::{ServerTlsError, server_config};

/// A TLS listener's handshake settings.
#[derive(Debug)]
pub struct ListenerTlsPlan {
    pub config: Arc<ServerConfig>,
    pub handshake_timeout: Duration,
}

/// TLS settings of one config, by listener and cluster name.
#[derive(Debug, Default)]
pub struct TlsPlan {
    listeners: HashMap<String, Arc<ListenerTlsPlan>>,
    clusters: HashMap<String, Origination>,
    /// A hash of the contents of each TLS cluster's `ca`, `cert` and `key` files: a
    /// cluster whose config is unchanged is still rebuilt when they changed on disk.
    cluster_files: HashMap<String, u64>,
}

impl TlsPlan {
    /// Reads every certificate, key and CA file the config names (except the identity's,
    /// which `identity` already holds) and builds the rustls configs.
    ///
    /// # Errors
    /// The first unusable file or setting, named by its field path.
    pub fn build(
        config: &Config,
        identity: Option<&Arc<IdentityStore>>,
    ) -> Result<Self, ServerTlsError> {
        let mut plan = Self::default();
        for (i, listener) in config.listeners.iter().enumerate() {
            if let Some(tls) = &listener.tls {
                let server = server_config(i, tls, &listener.protocol, identity)?;
                plan.listeners.insert(
                    listener.name.clone(),
                    Arc::new(ListenerTlsPlan {
                        config: server,
                        handshake_timeout: tls.handshake_timeout,
                    }),
                );
            }
        }
        for (i, cluster) in config.clusters.iter().enumerate() {
            if let Some(tls) = &cluster.tls {
                let section = format!("clusters[{i}].tls");
                // Hashed before the files are read for use: should they change in
                // between, the next SIGHUP sees a difference and rebuilds once more,
                // rather than missing the change.
                plan.cluster_files
                    .insert(cluster.name.clone(), files_hash(tls));
                let o = origination(&section, tls, alpn_for(cluster.protocol), identity)?;
                plan.clusters.insert(cluster.name.clone(), o);
            }
        }
        Ok(plan)
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerTlsPlan>> {
        self.listeners.get(name)
    }

    pub fn cluster(&self, name: &str) -> Option<&Origination> {
        self.clusters.get(name)
    }

    /// The hash of a TLS cluster's certificate files as read now (0 without TLS).
    pub fn cluster_files(&self, name: &str) -> u64 {
        self.cluster_files.get(name).copied().unwrap_or(0)
    }
}

fn files_hash(tls: &meshwork_config::model::ClientTls) -> u64 {
    let mut contents = Vec::new();
    for path in [&tls.ca, &tls.cert, &tls.key].into_iter().flatten() {
        contents.extend(std::fs::read(path).unwrap_or_default());
        contents.push(0);
    }
    xxhash_rust::xxh3::xxh3_64(&contents)
}

/// Reads every certificate file of `config` as applying it would (for `meshwork check`).
///
/// # Errors
/// The first unusable file or setting, named by its field path.
pub fn check_files(config: &Config) -> Result<(), String> {
    let store = Arc::new(IdentityStore::new(crate::metrics::Metrics::new().tls));
    if let Some(files) = &config.identity {
        let material =
            super::identity::IdentityMaterial::load(files).map_err(|e| format!("identity: {e}"))?;
        store.install(Some(files.clone()), Some(material));
    }
    let identity = config.identity.as_ref().map(|_| &store);
    TlsPlan::build(config, identity).map_err(|e| e.to_string())?;
    if let Some(cp) = &config.control_plane {
        crate::control_plane::ControlPlaneTls::build(cp, identity).map_err(|e| e.to_string())?;
    }
    if let Some(otlp) = config.tracing.as_ref().and_then(|t| t.otlp.as_ref()) {
        crate::trace::collector::CollectorConnector::new(otlp)?;
    }
    Ok(())
}
