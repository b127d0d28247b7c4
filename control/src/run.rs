//! Running the control plane: first reading, watching the directory, the servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meshwork_config::resource::Kind;
use notify::Watcher;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::ControlPlane;
use crate::catalog::{Catalog, Reader};
use crate::dns::Resolver;
use crate::kubernetes::{Discovered, Index, Touched, Update};
use crate::metrics::Metrics;
use crate::nodes::Nodes;

/// Editors and ConfigMap updates write in several steps; wait for them to settle.
const SETTLE_DELAY: Duration = Duration::from_millis(100);

/// Kubernetes watch events come in bursts (a rollout, a node going away, many pods
/// turning ready): after the first, wait this long so the burst costs one update.
const KUBERNETES_COALESCE: Duration = Duration::from_millis(20);

/// How the control plane was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// Where to write the bound addresses (`listen ADDR` and `admin ADDR` lines), for
    /// scripts and tests that ask for port 0.
    pub address_file: Option<PathBuf>,
    /// TLS (and mTLS) on the discovery port; plaintext h2c without.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Watch the Kubernetes API (`--kubernetes`): a cluster per Service port.
    pub kubernetes: Option<crate::kubernetes::ApiAccess>,
}

/// Reads the directory, starts the servers and serves until SIGTERM/SIGINT.
///
/// # Errors
/// A directory that cannot be read, addresses that cannot be bound.
pub async fn run(options: Options) -> anyhow::Result<()> {
    // Certificate problems stop the start before anything is read or bound.
    let tls = match &options.tls {
        Some(files) => Some(crate::tls::server_config(files)?),
        None => None,
    };
    let metrics = Metrics::new();
    let dns_changed = Arc::new(Notify::new());
    let mut resolver = Resolver::new(dns_changed.clone(), metrics.clone());
    let mut reader = Reader::new(options.config_dir.clone());
    // Watching starts before the first reading, so a change made between that reading
    // and the watch (say, right after the address file announced this process) is not
    // lost: it is read again once the watch reports it.
    let (tx, mut changes) = mpsc::channel::<()>(1);
    let _watcher = watch_dir(&options.config_dir, tx);
    let kubernetes_changed = Arc::new(Notify::new());
    let mut index = Index::default();
    let kubernetes = match &options.kubernetes {
        Some(access) => {
            let kubernetes = crate::kubernetes::start(access, kubernetes_changed.clone()).await?;
            tracing::info!("waiting for the first list of the Kubernetes objects");
            kubernetes.stores.wait_until_ready().await;
            kubernetes.pending.take();
            index.update(&kubernetes.stores, [Touched::All]);
            Some(kubernetes)
        }
        None => None,
    };
    let first = reader
        .read_with(
            &resolver.answers(),
            kubernetes.as_ref().map(|_| index.discovered()),
        )
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", options.config_dir.display()))?;
    resolver.sync(&first.discovery);
    report(&metrics, &first, None);
    let (catalog, _) = watch::channel(Arc::new(first));
    let control = Arc::new(ControlPlane {
        catalog,
        nodes: Nodes::default(),
        metrics,
        envoy: Default::default(),
        kubernetes: kubernetes.as_ref().map(|k| k.health.clone()),
    });

    let stop = CancellationToken::new();
    let discovery = TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", options.listen))?;
    let listen = discovery.local_addr()?;
    let mode = match &options.tls {
        None => "h2c",
        Some(files) if files.client_ca.is_some() => "mtls",
        Some(_) => "tls",
    };
    tokio::spawn(crate::server::serve(
        discovery,
        control.clone(),
        tls,
        stop.clone(),
    ));
    tracing::info!(address = %listen, mode, "discovery server started");
    let mut lines = format!("listen {listen}\n");
    if let Some(address) = options.admin {
        let admin = TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("admin: cannot bind {address}: {e}"))?;
        let bound = admin.local_addr()?;
        tokio::spawn(crate::admin::serve(admin, control.clone(), stop.clone()));
        tracing::info!(address = %bound, "admin server started");
        lines.push_str(&format!("admin {bound}\n"));
    }
    if let Some(path) = &options.address_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, lines)?;
        std::fs::rename(&tmp, path)?;
    }

    let refresher = tokio::spawn({
        let control = control.clone();
        async move {
            loop {
                // Whether the directory or DNS changed (else only Kubernetes did).
                let full = tokio::select! {
                    Some(()) = changes.recv() => {
                        tokio::time::sleep(SETTLE_DELAY).await;
                        while changes.try_recv().is_ok() {}
                        true
                    }
                    () = dns_changed.notified() => true,
                    () = kubernetes_changed.notified() => {
                        tokio::time::sleep(KUBERNETES_COALESCE).await;
                        false
                    }
                };
                let update = match &kubernetes {
                    Some(k) => k.update(&mut index),
                    None => Update::default(),
                };
                let found = kubernetes.as_ref().map(|_| index.discovered());
                refresh(&control, &mut reader, &mut resolver, found, full, &update);
            }
        }
    });

    wait_for_shutdown_signal().await;
    tracing::info!("stopping");
    refresher.abort();
    stop.cancel();
    Ok(())
}

/// Publishes what changed: with `full` (the directory or DNS changed) or Service ports
/// changed, reads everything again; when only endpoints changed, patches them into the
/// current catalog (reading everything again when that cannot be decided alone).
fn refresh(
    control: &ControlPlane,
    reader: &mut Reader,
    resolver: &mut Resolver,
    discovered: Option<&Discovered>,
    full: bool,
    update: &Update,
) {
    if !full && !update.ports_changed {
        if update.endpoints.is_empty() {
            return;
        }
        let current = control.catalog.borrow().clone();
        if let Some(catalog) = reader.update_endpoints(&current, &update.endpoints) {
            report(&control.metrics, &catalog, Some(&current));
            control.catalog.send_replace(Arc::new(catalog));
            return;
        }
    }
    match reader.read_with(&resolver.answers(), discovered) {
        Ok(catalog) => {
            resolver.sync(&catalog.discovery);
            let previous = control.catalog.borrow().clone();
            report(&control.metrics, &catalog, Some(&previous));
            control.catalog.send_replace(Arc::new(catalog));
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the config directory; serving the last reading");
        }
    }
}

/// Logs what changed and sets the gauges.
fn report(metrics: &Metrics, catalog: &Catalog, previous: Option<&Catalog>) {
    let result = if catalog.is_clean() {
        "clean"
    } else {
        "with_problems"
    };
    metrics.reads_total.with_label_values(&[result]).inc();
    metrics
        .problems
        .set(i64::try_from(catalog.problems.len()).unwrap_or(i64::MAX));
    metrics
        .generation
        .set(i64::try_from(catalog.generation).unwrap_or(i64::MAX));
    for kind in Kind::ALL {
        let count = i64::try_from(catalog.count(kind)).unwrap_or(i64::MAX);
        metrics
            .resources
            .with_label_values(&[kind.as_str()])
            .set(count);
    }
    if previous.is_none_or(|p| p.version != catalog.version) {
        tracing::info!(version = %catalog.version, generation = catalog.generation, resources = catalog.served.len(), "serving a new version");
    }
    if previous.is_none_or(|p| p.problems != catalog.problems) {
        for problem in &catalog.problems {
            for line in problem.error.lines() {
                tracing::error!(file = %problem.file, error = line, "refused; its last good version (if any) is served");
            }
        }
        if !catalog.is_clean() && previous.is_some_and(Catalog::is_clean) {
            tracing::warn!("the directory has problems; see /status");
        }
    }
}

fn watch_dir(dir: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.try_send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(error) => {
            tracing::error!(%error, "cannot watch the config directory; changes will not be seen");
            return None;
        }
    };
    if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::error!(%error, dir = %dir.display(), "cannot watch the config directory; changes will not be seen");
        return None;
    }
    Some(watcher)
}

async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
