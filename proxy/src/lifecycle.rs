//! The life of a `meshwork run` process, from start to exit code, in the order it
//! happens.
//!
//! **Start.** The config file was read and validated before the runtime was built. The
//! data plane is created at version 0: the config's settings without its listeners,
//! routes or clusters. With a `control_plane`, its TLS is built before any port is
//! bound, so a bad certificate file stops the start naming the file. The admin server
//! binds and serves; `/ready` answers 503 "starting". Then the config is applied: every
//! listener binds, the identity and every certificate file is read, and any failure
//! ends the start with an error (exit code 1). The admin address is written to
//! `--admin-address-file` when asked, and the proxy is ready — with a control plane,
//! once its first snapshot is applied ([`crate::readiness`]).
//!
//! **Run.** The config file is reloaded on SIGHUP and when it changes on disk
//! ([`crate::reload`]); the control plane's stream is kept open
//! ([`crate::control_plane`]). Both apply through the same
//! [`ApplyConfig`](crate::dataplane::ApplyConfig); a change that fails keeps the active
//! config.
//!
//! **Stop.** SIGTERM, SIGINT, `POST /drain` or `POST /shutdown` begins the drain, once:
//! `/ready` turns 503 "draining", reloads and the control plane stream stop, and
//! [`crate::drain`] runs under the one deadline `--drain-timeout` — inbound listeners
//! stop and drain, outbound listeners serve the app until it is gone. What is still
//! open at the deadline is counted (`meshwork_drain_deadline_closed_total` and the log)
//! and closed by the exit. What the last requests produced (access log, spans) is
//! written out, the admin server stops, and the process exits 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meshwork_config::Config;
use meshwork_config::model::{ControlPlaneProtocol, Direction};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminState;
use crate::control_plane::{ControlPlaneTls, LastGood, Link};
use crate::dataplane::{Dataplane, DataplaneView, file_source};
use crate::drain::{ConnectionTracker, DrainEnd, DrainListeners, DrainSettings, DrainTrigger};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::reload::ConfigFile;

/// How long shutdown waits for the access log and span export to write out what is left.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// How the proxy was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: PathBuf,
    pub admin_address_file: Option<PathBuf>,
    /// The drain's one deadline, from the ask to stop.
    pub drain_timeout: Duration,
    /// How long the app must make no call, after inbound drained, to count as gone
    /// (default [`crate::drain::DEFAULT_APP_QUIET_PERIOD`]).
    pub app_quiet_period: Duration,
}

/// Runs the proxy until SIGTERM/SIGINT or `POST /drain`/`POST /shutdown`, then drains.
///
/// # Errors
/// Startup failures: listeners or admin that cannot bind, an unwritable address file.
pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<()> {
    let trigger = Arc::new(DrainTrigger::new());
    let running = start(config, &options, &trigger)?;
    tokio::select! {
        signal = wait_for_shutdown_signal() => {
            trigger.drain();
            tracing::info!(signal, "drain asked");
        }
        () = trigger.begun() => {}
    }
    running
        .stop(
            DrainSettings {
                timeout: options.drain_timeout,
                app_quiet_period: options.app_quiet_period,
            },
            &trigger,
        )
        .await;
    Ok(())
}

/// A started proxy: what [`Running::stop`] winds down.
#[derive(Debug)]
struct Running {
    dataplane: Arc<Dataplane>,
    metrics: Metrics,
    /// Cancelled when the drain is over: every listener's token is its child.
    drain: CancellationToken,
    /// Every connection and tunnel, so the drain can wait for them.
    connections: ConnectionTracker,
    admin_stop: CancellationToken,
    reloads: JoinHandle<()>,
    subscription: Option<JoinHandle<()>>,
}

/// Start: admin up, config applied, listeners bound, ready; then the reload and control
/// plane tasks.
fn start(
    config: Config,
    options: &RunOptions,
    trigger: &Arc<DrainTrigger>,
) -> anyhow::Result<Running> {
    let drain = CancellationToken::new();
    let connections = ConnectionTracker::new();
    let metrics = Metrics::new();
    let admin_address = config.admin.address;
    let initial_text = std::fs::read_to_string(&options.config_path).ok();
    let control_plane = config.control_plane.as_ref().map(|cp| {
        let bootstrap = meshwork_config::resource::Bootstrap::new(
            options.config_path.display().to_string(),
            initial_text.clone().unwrap_or_default(),
            &base_dir(&options.config_path),
        );
        let protocol = match cp.protocol {
            ControlPlaneProtocol::Meshwork => "meshwork",
            ControlPlaneProtocol::Xds => "xds",
        };
        let last_good = LastGood::new(&cp.state_dir, protocol, &cp.address, &config.node.id);
        Arc::new(Link::new(
            cp.address.clone(),
            bootstrap,
            metrics.control_plane.clone(),
            Some(last_good),
        ))
    });
    // A proxy fed by a control plane serves its routes and clusters once the first
    // snapshot is in: an app started before would find its calls' routes missing.
    let awaiting_snapshot = control_plane.is_some();
    let node = config.node.clone();
    let protocol = config.control_plane.as_ref().map(|cp| cp.protocol);
    let dataplane = Arc::new(Dataplane::new(
        &config,
        metrics.clone(),
        connections.clone(),
        drain.clone(),
    ));
    let readiness = Arc::new(Readiness::new(
        awaiting_snapshot,
        dataplane.identity().clone(),
        trigger.clone(),
    ));

    // Before any port is bound: a bad certificate file for the control plane stops the
    // start, naming the file.
    let control_plane_tls = match &config.control_plane {
        Some(cp) => {
            ControlPlaneTls::build(cp, config.identity.as_ref().map(|_| dataplane.identity()))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .map(Arc::new)
        }
        None => None,
    };

    let admin = crate::admin::bind(admin_address)
        .map_err(|e| anyhow::anyhow!("admin: cannot bind {admin_address}: {e}"))?;
    let admin_bound = admin.local_addr()?;
    let admin_stop = CancellationToken::new();
    let admin_state = Arc::new(AdminState {
        readiness: readiness.clone(),
        dataplane: dataplane.clone(),
        control_plane: control_plane.clone(),
        metrics: metrics.clone(),
        drain: trigger.clone(),
    });
    tokio::spawn(crate::admin::serve(admin, admin_state, admin_stop.clone()));
    tracing::info!(address = %admin_bound, "admin server started");

    dataplane
        .apply(config, file_source(&options.config_path))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Restarted while the control plane is down: serve what it sent last time.
    if let Some(link) = &control_plane {
        if link.restore(&*dataplane) {
            readiness.control_plane_synced();
        }
    }
    if let Some(path) = &options.admin_address_file {
        write_atomically(path, &admin_bound.to_string())?;
    }
    readiness.mark_started();
    if awaiting_snapshot {
        tracing::info!("started; ready once the control plane's first snapshot is applied");
    } else {
        tracing::info!("ready");
    }

    // Run: reload on SIGHUP and file change; follow the control plane.
    let config_file = Arc::new(ConfigFile::new(
        options.config_path.clone(),
        initial_text,
        dataplane.clone(),
        control_plane.clone(),
        metrics.config.clone(),
    ));
    let reloads = crate::reload::spawn(config_file, listen_for_hangups());
    let subscription = control_plane.zip(protocol).map(|(link, protocol)| {
        crate::control_plane::spawn(
            dataplane.clone(),
            readiness.clone(),
            link,
            &node,
            protocol,
            control_plane_tls,
        )
    });
    Ok(Running {
        dataplane,
        metrics,
        drain,
        connections,
        admin_stop,
        reloads,
        subscription,
    })
}

impl Running {
    /// Stop: no more config changes, the drain under its deadline, what is buffered
    /// written out.
    async fn stop(self, settings: DrainSettings, trigger: &DrainTrigger) {
        let began = tokio::time::Instant::now();
        tracing::info!(
            deadline = ?settings.timeout,
            outbound_listeners = self.dataplane.has_outbound(),
            "draining"
        );
        self.reloads.abort();
        if let Some(task) = self.subscription {
            task.abort();
        }
        let end = crate::drain::drain(&*self.dataplane, &self.connections, trigger, settings).await;
        self.drain.cancel();
        match end {
            DrainEnd::Deadline { open } => {
                self.metrics
                    .drain
                    .deadline_closed_total
                    .inc_by(u64::try_from(open).unwrap_or(u64::MAX));
                tracing::warn!(
                    open,
                    deadline = ?settings.timeout,
                    "drain deadline passed; closing the connections and tunnels still open"
                );
            }
            end => tracing::info!(?end, took = ?began.elapsed(), "drained"),
        }
        // What the last requests produced is still in memory: write and send it.
        let last = self.dataplane.snapshot();
        if let Some(log) = &last.access_log {
            log.close(FLUSH_AT_EXIT).await;
        }
        if let Some(tracer) = &last.tracer {
            tracer.close(FLUSH_AT_EXIT).await;
        }
        self.admin_stop.cancel();
        tracing::info!("stopped");
    }
}

impl DrainListeners for Dataplane {
    fn stop_accepting(&self, direction: Direction) {
        self.stop_listeners(direction);
    }

    fn has_outbound(&self) -> bool {
        self.snapshot()
            .config
            .listeners
            .iter()
            .any(|l| l.direction == Direction::Outbound)
    }
}

/// SIGHUP, for the reload task; `None` (reload on file change only) when it cannot be
/// listened for.
fn listen_for_hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload on file change only");
            None
        }
    }
}

/// Returns on SIGTERM or SIGINT, naming it. Once listened for, neither ends the
/// process by itself again: a second one during the drain changes nothing.
async fn wait_for_shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// The directory relative paths in the config file are read from: the file's own,
/// made absolute.
fn base_dir(config_path: &Path) -> PathBuf {
    let dir = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
