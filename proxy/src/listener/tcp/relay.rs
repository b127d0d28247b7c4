//! Bytes both ways between a client and an upstream until either side is done, or until
//! no byte has moved either way for the listener's `idle_timeout`.
//!
//! Both streams report their reads to one [`IdleClock`]; a watchdog sleeps until the
//! clock's deadline and, when nothing moved meanwhile, ends the relay (dropping both
//! connections). Writes are not watched: every byte written was read first.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both sides finished; bytes copied (client to upstream, upstream to client).
    Closed {
        from_client: u64,
        from_upstream: u64,
    },
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A side failed (reset, broken pipe).
    Broken(io::Error),
}

/// When bytes last moved, in milliseconds since `epoch`.
#[derive(Debug)]
struct IdleClock {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl IdleClock {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn deadline(&self, idle_timeout: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle_timeout
    }
}

/// A stream whose reads move its relay's [`IdleClock`].
struct Watched<'a, S> {
    stream: S,
    clock: &'a IdleClock,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.clock.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Copies both ways between `client` and `upstream` (each side's end of stream is passed
/// on as a write shutdown, so half-closed protocols work) until both are done, one
/// fails, or nothing moves for `idle_timeout`.
pub async fn relay<C, U>(client: C, upstream: U, idle_timeout: Duration) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let clock = IdleClock::new();
    let mut client = Watched {
        stream: client,
        clock: &clock,
    };
    let mut upstream = Watched {
        stream: upstream,
        clock: &clock,
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let deadline = clock.deadline(idle_timeout);
        tokio::select! {
            result = &mut copy => return match result {
                Ok((from_client, from_upstream)) => RelayEnd::Closed { from_client, from_upstream },
                Err(error) => RelayEnd::Broken(error),
            },
            () = tokio::time::sleep_until(deadline) => {
                // Bytes that moved while this slept push the deadline on.
                if clock.deadline(idle_timeout) <= Instant::now() {
                    return RelayEnd::Idle;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test(start_paused = true)]
    async fn traffic_either_way_keeps_a_relay_open_and_silence_ends_it() {
        let (client, mut client_peer) = duplex(64);
        let (upstream, mut upstream_peer) = duplex(64);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(10)));
        let mut buf = [0u8; 2];
        for (i, step) in [6, 6, 6].into_iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(step)).await;
            // Alternate directions: either keeps the connection alive.
            if i % 2 == 0 {
                client_peer.write_all(b"up").await.unwrap();
                upstream_peer.read_exact(&mut buf).await.unwrap();
            } else {
                upstream_peer.write_all(b"dn").await.unwrap();
                client_peer.read_exact(&mut buf).await.unwrap();
            }
        }
        assert!(!relay.is_finished(), "18s in, but never 10s without a byte");
        let started = Instant::now();
        let end = relay.await.unwrap();
        assert!(matches!(end, RelayEnd::Idle), "{end:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_relay_ends_when_both_sides_are_done() {
        let (client, mut client_peer) = duplex(64);
        let (upstream, mut upstream_peer) = duplex(64);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(10)));
        client_peer.write_all(b"ping").await.unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping", "the client's end of stream is passed on");
        upstream_peer.write_all(b"pong!").await.unwrap();
        drop(upstream_peer);
        let mut back = Vec::new();
        client_peer.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong!");
        match relay.await.unwrap() {
            RelayEnd::Closed {
                from_client,
                from_upstream,
            } => assert_eq!((from_client, from_upstream), (4, 5)),
            other => panic!("{other:?}"),
        }
    }
}
