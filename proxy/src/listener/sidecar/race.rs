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
    /// The destination spoke first (or closed): opaque from here. `client_bytes` are the
    /// client's bytes read so far (too few to classify).
    Server {
        upstream: Box<UpstreamStream>,
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
    loop {
        let mut probe = [0u8; 1];
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
            // Data (or the destination's close) before any decisive client byte.
            peeked = async {
                match connected.as_ref() {
                    Some(stream) => stream.tcp().peek(&mut probe).await,
                    None => std::future::pending().await,
                }
            } => {
                // A close (or reset) without a byte is no greeting: while HTTP may still be
                // routed elsewhere, the destination is then as good as unreachable, and
                // the client's first bytes still decide.
                if wait_for_http && !matches!(peeked, Ok(n) if n > 0) {
                    connected = None;
                    failed = Some(peeked.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the destination closed before any byte")
                    }));
                    continue;
                }
                let Some(stream) = connected else { unreachable!("peeked a connection") };
                return Start::Server { upstream: Box::new(stream), client_bytes: bytes.freeze() };
            }
            () = &mut idle => return Start::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (client, accepted)
    }

    fn dial_to(addr: std::net::SocketAddr) -> impl FnOnce() -> Connecting {
        move || {
            Box::pin(async move {
                TcpStream::connect(addr)
                    .await
                    .map(|tcp| UpstreamStream::Plain { tcp })
            })
        }
    }

    #[tokio::test]
    async fn a_server_that_greets_first_wins_without_any_client_byte() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            s.write_all(b"220 hello\r\n").await.unwrap();
            let _ = s.read(&mut [0u8; 1]).await;
        });
        let (_client, mut accepted) = pair().await;
        match race(
            &mut accepted,
            dial_to(addr),
            false,
            Duration::from_secs(3600),
        )
        .await
        {
            Start::Server { client_bytes, .. } => assert!(client_bytes.is_empty()),
            _ => panic!("expected the server to win"),
        }
    }

    #[tokio::test]
    async fn http_that_arrived_with_the_connection_dials_nothing() {
        let (mut client, mut accepted) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        // Wait until the bytes are readable without consuming them.
        accepted.peek(&mut [0u8; 1]).await.unwrap();
        let dial = || -> Connecting { panic!("dialed for HTTP") };
        match race(&mut accepted, dial, false, Duration::from_secs(3600)).await {
            Start::Client {
                detected,
                upstream,
                bytes,
            } => {
                assert_eq!(detected, Detected::Http1);
                assert!(upstream.is_none());
                assert_eq!(&bytes[..], b"GET / HTTP/1.1\r\n\r\n");
            }
            _ => panic!("expected HTTP"),
        }
    }

    #[tokio::test]
    async fn client_bytes_sent_in_pieces_are_classified_once_they_decide() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (mut client, mut accepted) = pair().await;
        let racing = tokio::spawn(async move {
            race(
                &mut accepted,
                dial_to(addr),
                false,
                Duration::from_secs(3600),
            )
            .await
        });
        // The destination accepts (and stays silent) before the client's second piece.
        let (_silent, _) = server.accept().await.unwrap();
        client.write_all(b"PO").await.unwrap();
        client.write_all(b"ST /x HTTP/1.1\r\n").await.unwrap();
        match racing.await.unwrap() {
            Start::Client {
                detected,
                bytes,
                upstream,
            } => {
                assert_eq!(detected, Detected::Http1);
                assert!(bytes.starts_with(b"POST"));
                assert!(upstream.is_some());
            }
            _ => panic!("expected HTTP"),
        }
    }

    #[tokio::test]
    async fn a_refused_connect_ends_the_race_unless_http_may_still_be_routed() {
        let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = unused.local_addr().unwrap();
        drop(unused);
        let (_client, mut accepted) = pair().await;
        assert!(matches!(
            race(
                &mut accepted,
                dial_to(addr),
                false,
                Duration::from_secs(3600)
            )
            .await,
            Start::ConnectFailed(_)
        ));
        let (mut client, mut accepted) = pair().await;
        // The client speaks only once the connect has failed.
        let (failed_tx, failed) = tokio::sync::oneshot::channel();
        let dial = move || -> Connecting {
            Box::pin(async move {
                let result = TcpStream::connect(addr)
                    .await
                    .map(|tcp| UpstreamStream::Plain { tcp });
                let _ = failed_tx.send(());
                result
            })
        };
        let racing = tokio::spawn(async move {
            race(&mut accepted, dial, true, Duration::from_secs(3600)).await
        });
        failed.await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_http_without_destination(racing.await.unwrap()).await;
    }

    /// The race ended on the client's HTTP, the destination's connection unusable.
    async fn assert_http_without_destination(start: Start) {
        match start {
            Start::Client {
                detected, upstream, ..
            } => {
                assert_eq!(detected, Detected::Http1);
                assert!(upstream.expect("dialed").finish().await.is_err());
            }
            Start::Server { .. } => panic!("the destination's close was taken for a greeting"),
            _ => panic!("expected HTTP"),
        }
    }

    #[tokio::test]
    async fn a_destination_closing_without_a_byte_decides_nothing_while_http_may_be_routed() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        // The destination accepts and closes at once (a load balancer without backends).
        tokio::spawn(async move {
            while let Ok((closed, _)) = server.accept().await {
                drop(closed);
            }
        });
        let (mut client, mut accepted) = pair().await;
        let (dialed_tx, dialed) = tokio::sync::oneshot::channel();
        let dial = move || -> Connecting {
            Box::pin(async move {
                let stream = TcpStream::connect(addr).await?;
                // Returned once its end of stream is there to see.
                stream.readable().await?;
                let _ = dialed_tx.send(());
                Ok(UpstreamStream::Plain { tcp: stream })
            })
        };
        let racing = tokio::spawn(async move {
            race(&mut accepted, dial, true, Duration::from_secs(3600)).await
        });
        dialed.await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_http_without_destination(racing.await.unwrap()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn silence_on_both_sides_lasts_until_the_idle_timeout() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (_client, mut accepted) = pair().await;
        let keep = tokio::spawn(async move { server.accept().await });
        assert!(matches!(
            race(
                &mut accepted,
                dial_to(addr),
                false,
                Duration::from_secs(300)
            )
            .await,
            Start::Idle
        ));
        drop(keep);
    }
}
