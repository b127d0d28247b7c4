//! Supervises one downstream HTTP connection while hyper serves it: the head and idle
//! timeouts, graceful drain, and a bounded close after any graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;

use super::activity::{ConnActivity, ConnProtocol};
use super::http::HttpConnSettings;
use crate::http::ProxyError;

/// Either kind of hyper server connection, as far as supervision is concerned.
pub(super) trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

const HEADER_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\nx-meshwork-error: header-timeout\r\ncontent-length: 0\r\n\r\n";

/// How long a connection has to close by itself after a graceful shutdown began. An
/// HTTP/2 shutdown sends GOAWAY and a PING, and sends the final GOAWAY (naming the last
/// stream processed) only when the PING is acknowledged: a client that never answers
/// would otherwise keep the connection open for good.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Where a connection is in closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Draining or idle: requests in flight and a head being received (within its own
    /// timeout) finish first.
    Graceful {
        grace_until: tokio::time::Instant,
    },
    /// A head was not received in time (HTTP/2): the GOAWAY's grace, then closed with
    /// whatever is in flight, as the blocked connection can no longer carry requests.
    HeadTimedOut {
        grace_until: tokio::time::Instant,
    },
}

impl Closing {
    /// When the connection is closed regardless, if it is.
    fn deadline(self, activity: &ConnActivity) -> Option<tokio::time::Instant> {
        match self {
            Closing::Open => None,
            Closing::Graceful { grace_until } => {
                (activity.in_flight() == 0 && !activity.receiving_head()).then_some(grace_until)
            }
            Closing::HeadTimedOut { grace_until } => Some(grace_until),
        }
    }
}

/// How long an HTTP/1 keep-alive connection stays idle inside hyper before it is parked
/// (hyper and its buffers dropped, see `io` and `park`). A connection busy with
/// requests is never parked: parking and waking cost a fresh hyper connection per
/// request (about 3,300 instructions, bench/RESULTS.md), which a wait this long makes
/// negligible, while connections idle for longer hold no buffers.
pub(super) const PARK_AFTER: Duration = Duration::from_millis(100);

/// How a supervised connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// hyper finished it without an error (the client closed between requests, or the
    /// connection was parked).
    Clean,
    /// An error, a timeout, or the shutdown grace ran out.
    Closed,
}

/// Drives the connection until it ends, enforcing the head and idle timeouts and
/// starting a graceful shutdown on drain.
pub(super) async fn supervise<C: GracefulConnection>(
    conn: C,
    activity: &ConnActivity,
    settings: &HttpConnSettings,
    http1_stream: Option<&TcpStream>,
    client_addr: SocketAddr,
) -> Ended {
    let limits = &settings.limits;
    let drain = &settings.drain;
    let mut conn = std::pin::pin!(conn);
    let mut closing = Closing::Open;
    loop {
        let open = closing == Closing::Open;
        let head_timer = !matches!(closing, Closing::HeadTimedOut { .. });
        let deadlines = [
            activity
                .head_deadline(limits.header_read_timeout)
                .filter(|_| head_timer),
            activity.idle_deadline(limits.idle_timeout).filter(|_| open),
            activity.park_deadline(PARK_AFTER).filter(|_| open),
            closing.deadline(activity),
        ];
        let next = deadlines.into_iter().flatten().min();
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                return match result {
                    Ok(()) => Ended::Clean,
                    Err(error) => {
                        tracing::debug!(%client_addr, %error, "connection ended with an error");
                        Ended::Closed
                    }
                };
            }
            _ = drain.cancelled(), if open => {
                closing = shut_down(conn.as_mut(), false);
            }
            _ = activity.changed() => {}
            _ = wake => {
                let now = tokio::time::Instant::now();
                if closing.deadline(activity).is_some_and(|d| d <= now) {
                    tracing::debug!(%client_addr, "connection still open after its shutdown grace; closing");
                    return Ended::Closed;
                }
                if head_timer && activity.head_deadline(limits.header_read_timeout).is_some_and(|d| d <= now) {
                    settings.metrics.local_response(ProxyError::HeaderTimeout);
                    if activity.protocol() == ConnProtocol::Http2 {
                        tracing::debug!(%client_addr, "HTTP/2 request head not received in time; GOAWAY");
                        closing = shut_down(conn.as_mut(), true);
                        continue;
                    }
                    tracing::debug!(%client_addr, "request head not received in time; answering 408");
                    if let Some(stream) = http1_stream {
                        let _ = stream.try_write(HEADER_TIMEOUT_RESPONSE);
                        let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
                    }
                    return Ended::Closed;
                }
                if open && activity.idle_deadline(limits.idle_timeout).is_some_and(|d| d <= now) {
                    tracing::debug!(%client_addr, "idle timeout; closing connection");
                    closing = shut_down(conn.as_mut(), false);
                } else if open && activity.park_deadline(PARK_AFTER).is_some_and(|d| d <= now) {
                    // The next turn of the loop polls hyper, which then finds end-of-stream
                    // (see `io`).
                    activity.set_park_due(true);
                }
            }
        }
    }
}

/// Starts a graceful shutdown (HTTP/2: GOAWAY) and says how the connection closes now.
fn shut_down<C: GracefulConnection>(conn: Pin<&mut C>, head_timed_out: bool) -> Closing {
    conn.graceful_shutdown();
    let grace_until = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    if head_timed_out {
        Closing::HeadTimedOut { grace_until }
    } else {
        Closing::Graceful { grace_until }
    }
}
