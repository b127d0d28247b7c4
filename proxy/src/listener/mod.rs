//! Listeners: bound sockets, their accept loops and connection limits, reconciled with
//! each new config (added, removed, rebound) without touching the ones that stay.

mod activity;
mod date;
mod drain_watch;
mod first_head;
mod header_blocks;
mod http;
mod http1;
mod http2;
mod io;
mod original_dst;
mod output;
mod park;
mod sidecar;
mod supervise;
mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshwork_config::Config;
use meshwork_config::model::{Direction, Listener, ListenerProtocol};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::drain::ConnectionTracker;
use crate::metrics::Metrics;
use crate::metrics::handles::ListenerHandles;
use crate::observe::log_limit::LogLimiter;
use crate::snapshot::SnapshotHandle;
use crate::tls::handshake;
pub use original_dst::original_destination;

/// A listener that could not bind its address (e.g. the port is in use).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BindError {
    /// The listener's name.
    pub listener: String,
    pub message: String,
}

/// A listener that is bound and accepting.
#[derive(Debug)]
struct Running {
    configured: SocketAddr,
    bound: SocketAddr,
    protocol: &'static str,
    direction: Direction,
    stop: CancellationToken,
}

/// What `/listeners` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListenerInfo {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: &'static str,
}

/// The set of running listeners. Reconciling binds every new socket before anything
/// changes, so a config whose listener cannot bind is rejected as a whole.
#[derive(Debug)]
pub struct ListenerSet {
    running: HashMap<String, Running>,
    snapshots: SnapshotHandle,
    connections: ConnectionTracker,
    drain: CancellationToken,
    metrics: Metrics,
}

/// Sockets bound for a config, not yet accepting.
#[derive(Debug)]
pub struct Prepared {
    bound: Vec<(Listener, TcpListener)>,
}

fn protocol_name(l: &Listener) -> &'static str {
    match l.protocol {
        ListenerProtocol::Http { .. } => "http",
        ListenerProtocol::Tcp { .. } => "tcp",
        ListenerProtocol::Auto { .. } => "auto",
    }
}

impl ListenerSet {
    pub fn new(
        snapshots: SnapshotHandle,
        connections: ConnectionTracker,
        drain: CancellationToken,
        metrics: Metrics,
    ) -> Self {
        Self {
            running: HashMap::new(),
            metrics,
            snapshots,
            connections,
            drain,
        }
    }

    /// Binds the listeners `config` adds or moves. Nothing changes until [`Self::commit`].
    ///
    /// # Errors
    /// The first listener that cannot bind, naming it and its address.
    pub fn prepare(&self, config: &Config) -> Result<Prepared, BindError> {
        let mut bound = Vec::new();
        for l in &config.listeners {
            let unchanged = self
                .running
                .get(&l.name)
                .is_some_and(|r| r.configured == l.address && r.protocol == protocol_name(l));
            if unchanged {
                continue;
            }
            // A listener moving to an address it holds itself (same port) is rebound after
            // the old socket closes; only possible with reuse, so bind fresh addresses only.
            let socket = bind(l.address, l.original_destination).map_err(|e| BindError {
                listener: l.name.clone(),
                message: format!("listener {:?}: cannot bind {}: {e}", l.name, l.address),
            })?;
            bound.push((l.clone(), socket));
        }
        Ok(Prepared { bound })
    }

    /// Starts the prepared listeners and stops the ones `config` no longer has. Connections
    /// of a stopped listener finish what they are doing (graceful).
    pub fn commit(&mut self, config: &Config, prepared: Prepared) {
        let keep: std::collections::HashSet<&str> =
            config.listeners.iter().map(|l| l.name.as_str()).collect();
        let replaced: Vec<String> = prepared.bound.iter().map(|(l, _)| l.name.clone()).collect();
        self.running.retain(|name, r| {
            let stays = keep.contains(name.as_str()) && !replaced.contains(name);
            if !stays {
                tracing::info!(listener = %name, address = %r.bound, "listener stopped");
                r.stop.cancel();
            }
            stays
        });
        // A listener kept across a reload takes its new direction (what the drain reads).
        for l in &config.listeners {
            if let Some(r) = self.running.get_mut(&l.name) {
                r.direction = l.direction;
            }
        }
        for (listener, socket) in prepared.bound {
            let bound = socket.local_addr().unwrap_or(listener.address);
            let stop = self.drain.child_token();
            tracing::info!(listener = %listener.name, address = %bound, protocol = protocol_name(&listener), "listener started");
            self.running.insert(
                listener.name.clone(),
                Running {
                    configured: listener.address,
                    bound,
                    protocol: protocol_name(&listener),
                    direction: listener.direction,
                    stop: stop.clone(),
                },
            );
            let acceptor = Acceptor {
                name: listener.name.as_str().into(),
                snapshots: self.snapshots.clone(),
                connections: self.connections.clone(),
                active: Arc::new(AtomicUsize::new(0)),
                metrics: Arc::new(ListenerHandles::new(&self.metrics, &listener.name)),
                tcp: Arc::new(tcp::TcpListenerHandles::new(
                    &self.metrics,
                    listener.name.as_str().into(),
                )),
                bound,
                sidecar: Arc::new(sidecar::SidecarListenerHandles::new(
                    &self.metrics,
                    listener.name.as_str().into(),
                    listener.direction,
                )),
                handshakes: self.metrics.tls.handshakes(&listener.name),
                handshake_failure_log: handshake_failure_log(listener.name.as_str().into()),
            };
            tokio::spawn(acceptor.run(socket, stop));
        }
    }

    pub fn info(&self) -> Vec<ListenerInfo> {
        let mut list: Vec<ListenerInfo> = self
            .running
            .iter()
            .map(|(name, r)| ListenerInfo {
                name: name.clone(),
                address: r.bound,
                protocol: r.protocol,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Stops accepting on the listeners of `direction` (drain: inbound first, outbound
    /// once the app is gone); their HTTP connections shut down gracefully.
    pub fn stop_direction(&mut self, direction: Direction) {
        for r in self.running.values().filter(|r| r.direction == direction) {
            r.stop.cancel();
        }
    }
}

/// `transparent`: the listener takes intercepted connections, which under TPROXY arrive
/// addressed to their original destination; accepting them takes `IP_TRANSPARENT`
/// (CAP_NET_ADMIN). Without the capability the listener still serves redirected
/// connections (REDIRECT mode needs nothing).
fn bind(addr: SocketAddr, transparent: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if transparent {
        let set = if addr.is_ipv6() {
            socket.set_ip_transparent_v6(true)
        } else {
            socket.set_ip_transparent_v4(true)
        };
        if let Err(error) = set {
            tracing::debug!(address = %addr, %error, "IP_TRANSPARENT not set: TPROXY-delivered connections will not reach this listener (REDIRECT mode works)");
        }
    }
    socket.set_nonblocking(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// A listener's bound on handshake failure lines: any client can cause one at will.
/// The rest are summarized; all are counted in `meshwork_tls_handshake_failures_total`.
fn handshake_failure_log(listener: Arc<str>) -> Arc<LogLimiter> {
    LogLimiter::per_listener(listener, "TLS handshake failures")
}

/// One listener's accept loop.
#[derive(Debug)]
struct Acceptor {
    name: Arc<str>,
    snapshots: SnapshotHandle,
    connections: ConnectionTracker,
    active: Arc<AtomicUsize>,
    metrics: Arc<ListenerHandles>,
    /// Refusals and idle closes of a `tcp` listener's connections.
    tcp: Arc<tcp::TcpListenerHandles>,
    /// The address the socket is bound to.
    bound: SocketAddr,
    /// Refusals and protocols of an `auto` listener's connections.
    sidecar: Arc<sidecar::SidecarListenerHandles>,
    /// TLS handshakes completed on this listener.
    handshakes: prometheus::IntCounter,
    handshake_failure_log: Arc<LogLimiter>,
}

/// What a connection is served with, by the listener's protocol.
enum Settings {
    Http(http::HttpConnSettings),
    Tcp(tcp::TcpConnSettings),
    Sidecar(sidecar::SidecarConnSettings),
}

/// Counts a connection against its listener's `max_connections` while it lives.
struct ConnectionSlot(Arc<AtomicUsize>, Arc<ListenerHandles>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        self.1.connections_active.dec();
    }
}

impl Acceptor {
    async fn run(self, socket: TcpListener, stop: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = socket.accept() => accepted,
            };
            let (stream, client_addr) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = %self.name, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let snapshot = self.snapshots.load();
            let Some(config) = snapshot.listener(&self.name) else {
                continue;
            };
            let limits = config.limits.clone();
            let protocol = config.protocol.clone();
            // Built with the snapshot: a connection only takes references.
            let sidecar_ports = matches!(protocol, ListenerProtocol::Auto { .. }).then(|| {
                (
                    snapshot.port_hints(&self.name).cloned().unwrap_or_default(),
                    snapshot.listener_ports.clone(),
                )
            });
            let tls = snapshot.listener_tls(&self.name).cloned();
            drop(snapshot);
            if self.active.fetch_add(1, Ordering::Relaxed) >= limits.max_connections as usize {
                self.active.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(listener = %self.name, %client_addr, max = limits.max_connections, "connection limit reached; closing");
                self.metrics.rejected_max_connections.inc();
                drop(stream);
                continue;
            }
            self.metrics.connections_total.inc();
            self.metrics.connections_active.inc();
            let slot = ConnectionSlot(self.active.clone(), self.metrics.clone());
            let _ = stream.set_nodelay(true);
            let settings = match protocol {
                ListenerProtocol::Http { .. } => Settings::Http(http::HttpConnSettings {
                    listener: self.name.clone(),
                    limits,
                    snapshots: self.snapshots.clone(),
                    // Stopping the listener (removal or process drain) drains its connections.
                    drain: stop.clone(),
                    metrics: self.metrics.clone(),
                }),
                ListenerProtocol::Tcp { .. } => Settings::Tcp(tcp::TcpConnSettings {
                    snapshots: self.snapshots.clone(),
                    idle_timeout: limits.idle_timeout,
                    handles: self.tcp.clone(),
                }),
                ListenerProtocol::Auto { ref route_table } => {
                    let (ports, own_ports) = sidecar_ports.unwrap_or_default();
                    Settings::Sidecar(sidecar::SidecarConnSettings {
                        listening: self.bound,
                        ports,
                        has_routes: route_table.is_some(),
                        idle_timeout: limits.idle_timeout,
                        own_ports,
                        http: http::HttpConnSettings {
                            listener: self.name.clone(),
                            limits: limits.clone(),
                            snapshots: self.snapshots.clone(),
                            drain: stop.clone(),
                            metrics: self.metrics.clone(),
                        },
                        handles: self.sidecar.clone(),
                    })
                }
            };
            let name = self.name.clone();
            let Some(tls) = tls else {
                // Plaintext: straight to the protocol. A task is as large as its largest
                // branch for its whole life: the TCP relay and the sidecar's detection
                // are boxed, so an idle HTTP keep-alive connection's task stays small.
                self.connections.spawn(async move {
                    match settings {
                        Settings::Http(settings) => {
                            http::serve(stream, client_addr, settings).await
                        }
                        Settings::Tcp(settings) => {
                            Box::pin(tcp::serve(stream, client_addr, None, settings)).await
                        }
                        Settings::Sidecar(settings) => {
                            Box::pin(sidecar::serve(stream, client_addr, settings)).await
                        }
                    }
                    drop(slot);
                });
                continue;
            };
            let handshakes = self.handshakes.clone();
            let metrics = self.metrics.clone();
            let failure_log = self.handshake_failure_log.clone();
            self.connections.spawn(async move {
                // Boxed, as the branches below: the task keeps the size of the part that
                // outlives the handshake.
                let established = match Box::pin(handshake::accept(
                    stream,
                    tls.config.clone(),
                    tls.handshake_timeout,
                ))
                .await
                {
                    Ok(established) => established,
                    Err(refused) => {
                        let (reason, detail) = (refused.reason, &refused.detail);
                        metrics
                            .metrics()
                            .tls
                            .handshake_failures_total
                            .with_label_values(&[&*name, reason])
                            .inc();
                        if failure_log.admit(reason) {
                            tracing::info!(listener = %name, %client_addr, reason, detail, "TLS handshake failed; connection closed");
                        }
                        // The client reads the alert before the close; the connection
                        // still holds its slot meanwhile (bounded in time and bytes).
                        refused.close().await;
                        drop(slot);
                        return;
                    }
                };
                handshakes.inc();
                match settings {
                    Settings::Http(settings) => {
                        http::serve_tls(established, client_addr, settings).await
                    }
                    Settings::Tcp(settings) => {
                        let peer = established.peer_identity;
                        Box::pin(tcp::serve(established.stream, client_addr, peer, settings)).await
                    }
                    // Validation refuses `tls` on auto listeners.
                    Settings::Sidecar(_) => {}
                }
                drop(slot);
            });
        }
    }
}
