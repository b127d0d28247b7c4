//! Meshed connections in an auto listener. Outbound: a destination that runs meshwork
//! is dialed meshed (mutual TLS to its inbound port, header naming the app's port).
//! Inbound: a connection that dialed the listener itself is a meshed peer when its
//! ClientHello offers meshwork's ALPN; it is accepted (client certificate required),
//! then forwarded to the app at this pod's address and the port the header names, with
//! the peer's SPIFFE ID known to authorization. No byte of it is sniffed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use super::race::{Connecting, UpstreamStream};
use super::{Rewind, SidecarConnSettings, connect, opaque, reset};
use crate::listener::activity::ConnProtocol;
use crate::listener::http::serve_intercepted;
use crate::mesh::accept::{MESH_HANDSHAKE_TIMEOUT, accept};
use crate::mesh::client_hello::{PeekError, Peeked, peek_client_hello};
use crate::mesh::connect::MeshDial;
use crate::mesh::{MeshPlan, MeshProtocol};

/// Dials `destination`: meshed with `mesh` (the destination runs meshwork), else
/// straight, from `transparent_source` under TPROXY. What a meshed dial carries is
/// always opaque to the peer: HTTP is served by the HTTP stack, whose own connections to
/// a meshed destination are meshed as HTTP. `raced`: dialed while the client's protocol
/// is still being detected; when the client speaks HTTP before the handshake is done,
/// the dial is dropped and its handshake goes to the HTTP stack's connection instead
/// (see `mesh/spare.rs`), so detection wastes nothing.
pub fn dial(
    destination: SocketAddr,
    transparent_source: Option<IpAddr>,
    mesh: Option<Arc<MeshPlan>>,
    raced: bool,
) -> Connecting {
    match mesh {
        Some(plan) => Box::pin(async move {
            let dial = MeshDial {
                raced,
                ..MeshDial::new(plan, destination, MeshProtocol::Opaque)
            };
            dial.open(connect::CONNECT_TIMEOUT)
                .await
                .map(|meshed| UpstreamStream::Tls { tls: meshed.stream })
                .map_err(io::Error::other)
        }),
        None => Box::pin(async move {
            connect::connect(destination, transparent_source)
                .await
                .map(|tcp| UpstreamStream::Plain { tcp })
        }),
    }
}

/// Serves a connection that dialed the inbound listener itself: a meshed peer's, or
/// refused (`not-redirected`, as any connection that was not intercepted).
pub async fn serve_inbound(
    client: TcpStream,
    client_addr: SocketAddr,
    plan: Arc<MeshPlan>,
    settings: SidecarConnSettings,
) {
    let handles = settings.handles.clone();
    match peek_client_hello(&client, MESH_HANDSHAKE_TIMEOUT).await {
        Ok(Peeked::ClientHello(hello)) if hello.offers_mesh() => {}
        Ok(_) => {
            handles.refused("not-redirected", client_addr, &"not a meshed peer");
            return reset(client);
        }
        // Gone before saying anything: nothing was refused (a raced connection its
        // sidecar gave up on while connecting looks like this).
        Err(PeekError::Closed) => return,
        Err(error) => {
            handles.refused(error.reason(), client_addr, &error);
            return reset(client);
        }
    }
    let Ok(local) = client.local_addr() else {
        return reset(client);
    };
    // Boxed, as the relay below: an HTTP connection parked between requests keeps only
    // the size of the HTTP part (see `super::serve`).
    let accepted = match Box::pin(accept(client, &plan, MESH_HANDSHAKE_TIMEOUT)).await {
        Ok(accepted) => accepted,
        Err(error) => {
            handles.mesh_refusals.report(client_addr, &error);
            return error.close().await;
        }
    };
    // The app on this pod, at the port the peer's client dialed.
    let destination = SocketAddr::new(local.ip().to_canonical(), accepted.header.port);
    if settings.is_own_port(destination.port()) {
        handles.refused(
            "loop",
            client_addr,
            &"the header names a port of this proxy",
        );
        return;
    }
    // Under TPROXY the app sees who called, meshed or not: the client pod's address is
    // the TCP peer of this connection (the peer's sidecar dials from its pod's address).
    // Never an address the peer wrote: an identity proves who it is, not where it is.
    let client_ip = client_addr.ip().to_canonical();
    let transparent_source = connect::routed_back_under_tproxy(client_ip).then_some(client_ip);
    let peer = accepted.peer_identity;
    handles.forwarded(destination.port(), "meshed");
    tracing::debug!(%client_addr, peer = %peer, %destination, protocol = accepted.header.protocol.as_str(), "meshed connection accepted");
    let stream = Rewind::new(Bytes::new(), accepted.stream);
    let protocol = match accepted.header.protocol {
        MeshProtocol::Http1 => ConnProtocol::Http1,
        MeshProtocol::Http2 => ConnProtocol::Http2,
        MeshProtocol::Opaque => {
            let mut stream = stream;
            if !authorized(&settings, &peer, destination.port()) {
                // A connection the peer opened while its client had not spoken yet is
                // closed unused when the client speaks HTTP: no refusal to report then.
                // Closing it here instead would look to the peer like its destination
                // spoke first, and commit its client to an opaque relay.
                if accepted.header.raced && abandoned(&mut stream, settings.idle_timeout).await {
                    tracing::debug!(%client_addr, peer = %peer, "raced meshed connection closed unused");
                    return;
                }
                count_denial(&settings);
                handles.refused("unauthorized", client_addr, &format_args!("peer {peer}"));
                return;
            }
            return match connect::connect(destination, transparent_source).await {
                Ok(tcp) => {
                    Box::pin(opaque(
                        stream,
                        UpstreamStream::Plain { tcp },
                        &settings,
                        destination,
                    ))
                    .await
                }
                Err(error) => handles.refused("connect-failed", client_addr, &error),
            };
        }
    };
    serve_intercepted(
        stream,
        client_addr,
        protocol,
        destination,
        transparent_source,
        Some(peer),
        settings.http,
    )
    .await
}

/// Whether the listener's authorization policy (if any) lets `peer` open a connection
/// to the app's `port` (HTTP is decided per request by the stack).
fn authorized(settings: &SidecarConnSettings, peer: &str, port: u16) -> bool {
    let snapshot = settings.http.snapshots.load();
    let Some(plan) = snapshot.http_listener(&settings.http.listener) else {
        return false;
    };
    plan.authorization
        .as_ref()
        .is_none_or(|policy| policy.allows_connection(Some(peer), Some(port)))
}

fn count_denial(settings: &SidecarConnSettings) {
    if let Some(plan) = settings
        .http
        .snapshots
        .load()
        .http_listener(&settings.http.listener)
    {
        plan.authorization_denied();
    }
}

/// Whether the peer ends `stream` without sending a byte (within `idle_timeout`). A
/// dropped connection ends without TLS's close_notify, which reads as an error.
async fn abandoned<S: AsyncRead + Unpin>(stream: &mut S, idle_timeout: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(idle_timeout, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}
