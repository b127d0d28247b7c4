//! Serves one connection of a `protocol: auto` listener (sidecar interception): finds
//! where it was going (`destination.rs`), then, by the destination port's protocol
//! (`ports` hints, the built-in server-first list, else detection):
//! - opaque: connected to the destination at once and relayed unread;
//! - HTTP: served by the HTTP stack, where a request matching a route of the listener's
//!   `route_table` goes to that route (retries, breakers, balancing, mTLS) and anything
//!   else to the `original-destination` cluster, i.e. where it was going;
//! - detect: the race of `race.rs` — no detection timeout, no waiting on a silent client
//!   before dialing a server that speaks first.
//!
//! TLS from the client is never terminated here: it is relayed to its destination like
//! any opaque stream (counted as `tls`).

mod balanced;
mod classify;
mod connect;
mod destination;
mod meshed;
mod race;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use meshwork_config::model::{Direction, PortProtocol, destination_protocol};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::activity::ConnProtocol;
use super::http::{HttpConnSettings, serve_intercepted};
use super::tcp::relay::{RelayEnd, relay};
use crate::mesh::MeshPlan;
use crate::mesh::accept::AcceptFailures;
use crate::metrics::Metrics;
use crate::metrics::sidecar::PortLabels;
use crate::observe::log_limit::LogLimiter;
pub use crate::rewind::Rewind;
use classify::Detected;
use race::{Start, Upstream};

/// What a connection needs to know about its listener.
#[derive(Clone, Debug)]
pub struct SidecarConnSettings {
    /// The address the listener is bound to.
    pub listening: SocketAddr,
    pub ports: Arc<BTreeMap<u16, PortProtocol>>,
    /// The listener has a route table: HTTP may go elsewhere than its destination.
    pub has_routes: bool,
    pub idle_timeout: Duration,
    /// The configured ports of every listener of this proxy: a destination on this host
    /// at one of them (or at this listener's bound port) would loop.
    pub own_ports: Arc<[u16]>,
    pub http: HttpConnSettings,
    pub handles: Arc<SidecarListenerHandles>,
}

/// An auto listener's counters and log budget, shared by its connections.
#[derive(Debug)]
pub struct SidecarListenerHandles {
    listener: Arc<str>,
    direction: &'static str,
    outbound: bool,
    /// Meshed peers refused by the inbound side (handshake or header).
    mesh_refusals: AcceptFailures,
    metrics: Metrics,
    ports: PortLabels,
    refusals_logged: Arc<LogLimiter>,
}

impl SidecarListenerHandles {
    pub fn new(metrics: &Metrics, listener: Arc<str>, direction: Direction) -> Self {
        Self {
            direction: match direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            },
            outbound: direction == Direction::Outbound,
            mesh_refusals: AcceptFailures::new(
                listener.clone(),
                metrics.mesh.inbound_refused_total.clone(),
            ),
            metrics: metrics.clone(),
            ports: PortLabels::default(),
            refusals_logged: LogLimiter::per_listener(
                listener.clone(),
                "refused intercepted connections",
            ),
            listener,
        }
    }

    /// Counts a connection forwarded to `port` as `protocol`.
    pub fn forwarded(&self, port: u16, protocol: &str) {
        self.metrics
            .sidecar
            .connections_total
            .with_label_values(&[
                &self.listener,
                self.direction,
                &self.ports.label(port),
                protocol,
            ])
            .inc();
    }

    /// Counts (and, within the log budget, logs) a connection closed unforwarded.
    pub fn refused(
        &self,
        reason: &'static str,
        client_addr: SocketAddr,
        detail: &dyn std::fmt::Display,
    ) {
        self.metrics.sidecar.refused(&self.listener, reason).inc();
        if self.refusals_logged.admit(reason) {
            tracing::info!(listener = %self.listener, %client_addr, reason, %detail, "intercepted connection refused");
        }
    }
}

impl SidecarConnSettings {
    /// Whether `port` is one of this proxy's listeners' (a bound port 0 included).
    pub fn is_own_port(&self, port: u16) -> bool {
        port == self.listening.port() || self.own_ports.contains(&port)
    }
}

/// Serves one intercepted connection. The connection's task is as large as the largest
/// state of this future for its whole life: detection, the meshed handshake and the
/// opaque relay are boxed, so an HTTP keep-alive connection parked between requests
/// (`http`) holds little more than the HTTP part.
pub async fn serve(mut client: TcpStream, client_addr: SocketAddr, settings: SidecarConnSettings) {
    let handles = settings.handles.clone();
    let snapshot = settings.http.snapshots.load_full();
    let inbound_mesh = snapshot.mesh.clone().filter(|_| !handles.outbound);
    let resolved = destination::resolve(&client, settings.listening, |port| {
        settings.is_own_port(port)
    });
    let destination = match (resolved, &inbound_mesh) {
        (Ok(destination), _) => destination,
        // A meshed peer dials the inbound port itself.
        (Err(destination::NoDestination::NotRedirected), Some(plan)) => {
            let plan = plan.clone();
            return Box::pin(meshed::serve_inbound(client, client_addr, plan, settings)).await;
        }
        (Err(refusal), _) => {
            handles.refused(refusal.reason(), client_addr, &refusal);
            return reset(client);
        }
    };
    if inbound_mesh.as_ref().is_some_and(|plan| plan.strict()) {
        handles.refused("not-meshed", client_addr, &"mesh.inbound is strict");
        return reset(client);
    }
    let transparent_source = destination
        .transparent
        .then_some(client_addr.ip().to_canonical());
    let destination = destination.address;
    // A VIP (outbound only): its cluster takes the connection, whatever is dialed.
    let vip = snapshot
        .vips
        .get(destination)
        .filter(|_| handles.outbound)
        .cloned();
    let vip_protocol = vip.as_ref().map(|v| v.protocol);
    let mesh = MeshPlan::outbound(&snapshot, &settings.http.listener, destination).cloned();
    let dial = move |raced: bool| match &vip {
        Some(vip) => balanced::dial(vip.cluster.clone(), client_addr.ip().to_canonical()),
        None => meshed::dial(destination, transparent_source, mesh.clone(), raced),
    };
    // A client the listener's policy would not let through unread may still send HTTP
    // that it allows, request by request: it is read first, and nothing is dialed for it.
    let relay_allowed = snapshot
        .http_listener(&settings.http.listener)
        .and_then(|plan| plan.authorization.as_ref())
        .is_none_or(|policy| policy.allows_connection(None, Some(destination.port())));
    drop(snapshot);
    let start = match destination_protocol(&settings.ports, destination.port(), vip_protocol) {
        PortProtocol::Opaque if !relay_allowed => {
            handles.refused("unauthorized", client_addr, &"the policy refuses this port");
            return reset(client);
        }
        PortProtocol::Opaque => Start::Client {
            detected: Detected::Opaque,
            bytes: Bytes::new(),
            upstream: Some(Upstream::Connecting(dial(false))),
        },
        PortProtocol::Auto if relay_allowed => {
            Box::pin(race::race(
                &mut client,
                move || dial(true),
                // HTTP to a VIP goes to its cluster even when this connect failed.
                settings.has_routes || vip_protocol.is_some(),
                settings.idle_timeout,
            ))
            .await
        }
        PortProtocol::Http | PortProtocol::Auto => match read_http_head(&mut client).await {
            Some((Detected::Tls | Detected::Opaque, _)) if !relay_allowed => {
                handles.refused(
                    "unauthorized",
                    client_addr,
                    &"the policy lets only HTTP requests through to this port",
                );
                return reset(client);
            }
            Some((Detected::Tls | Detected::Opaque, bytes)) => Start::Client {
                // A port hinted `http` serves anything as HTTP/1 (which answers 400).
                detected: Detected::Http1,
                bytes,
                upstream: None,
            },
            Some((detected, bytes)) => Start::Client {
                detected,
                bytes,
                upstream: None,
            },
            None => Start::ClientClosed,
        },
    };
    let port = destination.port();
    match start {
        Start::Client {
            detected: detected @ (Detected::Http1 | Detected::Http2),
            bytes,
            upstream,
        } => {
            // HTTP goes through the stack's own connections (pooled per destination).
            drop(upstream);
            handles.forwarded(port, detected.label());
            let protocol = if detected == Detected::Http2 {
                ConnProtocol::Http2
            } else {
                ConnProtocol::Http1
            };
            serve_intercepted(
                Rewind::new(bytes, client),
                client_addr,
                protocol,
                destination,
                transparent_source,
                None,
                settings.http,
            )
            .await
        }
        Start::Client {
            detected,
            bytes,
            upstream,
        } => {
            let Some(upstream) = upstream else { return };
            match Box::pin(upstream.finish()).await {
                Ok(upstream) => {
                    handles.forwarded(port, detected.label());
                    let relay =
                        opaque(Rewind::new(bytes, client), upstream, &settings, destination);
                    Box::pin(relay).await
                }
                Err(error) => {
                    handles.refused("connect-failed", client_addr, &error);
                    reset(client)
                }
            }
        }
        Start::Server {
            upstream,
            greeting,
            client_bytes,
        } => {
            handles.forwarded(port, Detected::Opaque.label());
            Box::pin(opaque(
                Rewind::new(client_bytes, client),
                Rewind::new(greeting, *upstream),
                &settings,
                destination,
            ))
            .await
        }
        Start::ConnectFailed(error) => {
            handles.refused("connect-failed", client_addr, &error);
            reset(client)
        }
        Start::ClientClosed | Start::Idle => {}
    }
}

/// Relays bytes both ways until either side is done or the listener's idle timeout.
async fn opaque<C, U>(
    client: Rewind<C>,
    upstream: U,
    settings: &SidecarConnSettings,
    destination: SocketAddr,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match relay(client, upstream, settings.idle_timeout).await {
        RelayEnd::Closed {
            from_client,
            from_upstream,
        } => {
            tracing::debug!(%destination, from_client, from_upstream, "intercepted connection closed")
        }
        RelayEnd::Idle => tracing::debug!(%destination, "intercepted connection idle; closed"),
        RelayEnd::Broken(error) => {
            tracing::debug!(%destination, %error, "intercepted connection broken")
        }
    }
}

/// The first bytes of a connection that is to be HTTP (a port hinted `http`, or a client
/// the policy lets through only request by request), classified without dialing.
/// `None` when the client closed first.
async fn read_http_head(client: &mut TcpStream) -> Option<(Detected, Bytes)> {
    let mut bytes = BytesMut::with_capacity(classify::ENOUGH);
    loop {
        match client.read_buf(&mut bytes).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if let Some(detected) = classify::classify(&bytes) {
            return Some((detected, bytes.freeze()));
        }
    }
}

/// Closes with a reset, as a refused connect would look to the client.
fn reset(client: TcpStream) {
    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
}
