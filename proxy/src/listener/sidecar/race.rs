//! Protocol detection without a timeout: the connection to the original destination is
//! opened while the client's first bytes are awaited, and whichever side speaks first
//! decides. Client bytes first: they are classified (`classify.rs`). Destination bytes
//! first: a server-first protocol (MySQL, SMTP, SSH, NATS...), relayed opaque with its
//! greeting forwarded at once. Neither: both connections stay open until the listener's
//! idle timeout, the same as any idle connection — there is no detection deadline after
//! which a silent client would be guessed at.
//!
//! A client whose first bytes are already there when the connection is accepted (most
//! HTTP clients) is classified before anything is dialed, so HTTP costs no extra
//! connection to the destination.
//!
//! The destination's side is read through its stream, never peeked under it: on a meshed
//! connection (TLS) only application data is a greeting. What TLS itself sends after its
//! handshake — a session ticket, a key update, the close_notify of a peer whose app
//! closed without a byte — is not the destination speaking first.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::classify::{Detected, ENOUGH, classify};
pub use crate::cluster::connector::UpstreamStream;

/// A connection to the destination: plain TCP, or meshed (mutual TLS to the peer's
/// inbound port, header sent; the peer sends nothing more before the app's bytes).
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<UpstreamStream>> + Send>>;

/// The connection to the destination, as far as it got.
pub enum Upstream {
    Connecting(Connecting),
    /// Boxed: a TLS stream is large, and the race holds it only briefly.
    Connected(Box<UpstreamStream>),
    Failed(io::Error),
}

impl Upstream {
    /// The connection, once it is made.
    ///
    /// # Errors
    /// The connect's error.
    pub async fn finish(self) -> io::Result<UpstreamStream> {
        match self {
            Self::Connecting(connecting) => connecting.await,
            Self::Connected(stream) => Ok(*stream),
            Self::Failed(error) => Err(error),
        }
    }
}

/// How the race ended.
pub enum Start {
    /// The client spoke first: what its bytes are, the bytes (to replay), and the
    /// connection to the destination as far as it got (not started for HTTP that was
    /// classified on arrival).
    Client {
        detected: Detected,
        bytes: Bytes,
        upstream: Option<Upstream>,
    },
    /// The destination spoke first (or closed): opaque from here. `greeting` is what it
    /// said (read from it, to be forwarded first; empty when it closed); `client_bytes`
    /// are the client's bytes read so far (too few to classify).
    Server {
        upstream: Box<UpstreamStream>,
        greeting: Bytes,
        client_bytes: Bytes,
    },
    /// The destination refused or did not answer, and the client said nothing that
    /// could still be served without it.
    ConnectFailed(io::Error),
    /// The client closed without a byte.
    ClientClosed,
    /// Neither side said anything for the idle timeout.
    Idle,
}

/// Races the client's first bytes against the destination's. `dial` opens the connection
/// to the destination; `wait_for_http` keeps waiting for the client after a failed
/// connect, because HTTP may still be routed elsewhere by the listener's route table.
pub async fn race(
    client: &mut TcpStream,
    dial: impl FnOnce() -> Connecting,
    wait_for_http: bool,
    idle_timeout: Duration,
) -> Start {
    let mut bytes = BytesMut::with_capacity(ENOUGH);
    // What arrived with the connection decides without dialing anything.
    if let Ok(n) = client.try_read_buf(&mut bytes) {
        if n == 0 {
            return Start::ClientClosed;
        }
        if let Some(detected @ (Detected::Http1 | Detected::Http2)) = classify(&bytes) {
            return Start::Client {
                detected,
                bytes: bytes.freeze(),
                upstream: None,
            };
        }
    }
    let mut connecting = Some(dial());
    let mut connected: Option<UpstreamStream> = None;
    let mut failed: Option<io::Error> = None;
    let upstream = |connecting: Option<Connecting>,
                    connected: Option<UpstreamStream>,
                    failed: Option<io::Error>| {
        match (connecting, connected) {
            (Some(c), _) => Upstream::Connecting(c),
            (None, Some(s)) => Upstream::Connected(Box::new(s)),
            (None, None) => {
                Upstream::Failed(failed.unwrap_or_else(|| io::ErrorKind::NotConnected.into()))
            }
        }
    };
    if let Some(detected) = classify(&bytes) {
        return Start::Client {
            detected,
            bytes: bytes.freeze(),
            upstream: Some(upstream(connecting, connected, failed)),
        };
    }
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let mut greeting = BytesMut::new();
    loop {
        tokio::select! {
            read = client.read_buf(&mut bytes) => match read {
                Ok(0) | Err(_) if bytes.is_empty() => return Start::ClientClosed,
                // Closed (or broken) after a few bytes: what there is goes on opaque.
                Ok(0) | Err(_) => return Start::Client {
                    detected: Detected::Opaque,
                    bytes: bytes.freeze(),
                    upstream: Some(upstream(connecting, connected, failed)),
                },
                Ok(_) => {
                    if let Some(detected) = classify(&bytes) {
                        return Start::Client {
                            detected,
                            bytes: bytes.freeze(),
                            upstream: Some(upstream(connecting, connected, failed)),
                        };
                    }
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                }
            },
            result = async {
                match connecting.as_mut() {
                    Some(dialing) => dialing.await,
                    None => std::future::pending().await,
                }
            } => {
                connecting = None;
                match result {
                    Ok(stream) => connected = Some(stream),
                    Err(error) if wait_for_http => failed = Some(error),
                    Err(error) => return Start::ConnectFailed(error),
                }
            },
            // Data (or the destination's close) before any decisive client byte. Read,
            // not peeked: through TLS only application data comes out of a read
            // (cancel-safe: when another branch wins, nothing was read).
            read = async {
                match connected.as_mut() {
                    Some(stream) => stream.read_buf(&mut greeting).await,
                    None => std::future::pending().await,
                }
            } => {
                // A close (or reset) without a byte is no greeting: while HTTP may still be
                // routed elsewhere, the destination is then as good as unreachable, and
                // the client's first bytes still decide.
                if wait_for_http && !matches!(read, Ok(n) if n > 0) {
                    connected = None;
                    failed = Some(read.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the destination closed before any byte")
                    }));
                    continue;
                }
                let Some(stream) = connected else { unreachable!("read from a connection") };
                return Start::Server {
                    upstream: Box::new(stream),
                    greeting: greeting.freeze(),
                    client_bytes: bytes.freeze(),
                };
            }
            () = &mut idle => return Start::Idle,
        }
    }
}

#[cfg(test)]
mod tests;
