//! Reading a TLS ClientHello from the first bytes of a connection without consuming them:
//! whether the client speaks TLS, the server name it asked for (SNI) and the protocols it
//! offered (ALPN). The auto listener passes TLS through by SNI and recognises a meshed
//! peer by its ALPN ([`super::ALPN_MESH`]) before any handshake.
//!
//! The parsing is rustls's own [`rustls::server::Acceptor`], fed a copy of the peeked
//! bytes: no new dependency, a ClientHello split over several records or TCP segments is
//! joined as in a real handshake, and a hello that parses here is one the mesh handshake
//! will parse too. It is bounded: at most [`MAX_CLIENT_HELLO_BYTES`] are peeked, the
//! socket is peeked again only when new bytes arrived (at most [`MAX_PEEK_ROUNDS`]
//! times), all within the caller's deadline.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{MsgFlags, recv};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The most bytes peeked for a ClientHello. Browsers' largest (post-quantum key shares,
/// ECH) are about 2 KiB; 16 KiB leaves room for many more extensions.
pub const MAX_CLIENT_HELLO_BYTES: usize = 16 * 1024;

/// The most times the socket is peeked while a ClientHello is incomplete. Each round
/// needs new bytes; a 16 KiB hello in 1460-byte segments takes 12. A client trickling a
/// byte at a time is given up on here rather than re-parsed thousands of times.
pub const MAX_PEEK_ROUNDS: u32 = 64;

/// What a ClientHello offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The SNI host name, if sent.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order (empty: no ALPN extension).
    pub alpn: Vec<Vec<u8>>,
}

impl ClientHelloInfo {
    /// Whether the client offered meshwork's own ALPN: it is a meshed peer.
    pub fn offers_mesh(&self) -> bool {
        self.alpn.iter().any(|p| p == super::ALPN_MESH)
    }
}

/// What some first bytes of a connection are.
#[derive(Debug)]
pub enum Classified {
    /// Not a TLS handshake record (plaintext HTTP, another protocol, or nothing yet).
    NotTls,
    /// The start of a TLS handshake; more bytes are needed to read the ClientHello.
    Incomplete,
    /// A complete ClientHello.
    ClientHello(ClientHelloInfo),
    /// A TLS handshake record that is not a valid ClientHello.
    Malformed(rustls::Error),
}

/// Classifies the first bytes of a connection (pure: no I/O).
pub fn classify(bytes: &[u8]) -> Classified {
    match bytes {
        [] => return Classified::Incomplete,
        // A handshake record of SSL 3.0 / TLS 1.x (record version major 3).
        [TLS_HANDSHAKE_RECORD] | [TLS_HANDSHAKE_RECORD, 3, ..] => {}
        _ => return Classified::NotTls,
    }
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        // Reads at most a buffer's worth per call; a slice never blocks.
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Classified::Malformed(rustls::Error::General(e.to_string())),
        }
        match acceptor.accept() {
            Ok(None) => {}
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                return Classified::ClientHello(ClientHelloInfo {
                    server_name: hello.server_name().map(str::to_string),
                    alpn: hello
                        .alpn()
                        .map(|p| p.map(<[u8]>::to_vec).collect())
                        .unwrap_or_default(),
                });
            }
            Err((error, _alert)) => return Classified::Malformed(error),
        }
    }
    Classified::Incomplete
}

/// What the first bytes of a connection turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Peeked {
    /// A TLS ClientHello, still unread on the socket.
    ClientHello(ClientHelloInfo),
    /// Not TLS: the bytes are still unread on the socket.
    NotTls,
}

/// Why no ClientHello could be read.
#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    #[error("no complete ClientHello within {0:?}")]
    Timeout(Duration),
    #[error("the client closed the connection before its ClientHello was complete")]
    Closed,
    #[error("the ClientHello is larger than {MAX_CLIENT_HELLO_BYTES} bytes")]
    TooLarge,
    #[error("the ClientHello came in more than {MAX_PEEK_ROUNDS} pieces")]
    TooFragmented,
    #[error("not a valid ClientHello: {0}")]
    Malformed(rustls::Error),
    #[error("peeking at the connection: {0}")]
    Io(#[source] io::Error),
}

impl PeekError {
    /// A short fixed reason, for a metric label and a log field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "client-hello-timeout",
            Self::Closed | Self::Io(_) => "client-hello-eof",
            Self::TooLarge | Self::TooFragmented => "client-hello-too-large",
            Self::Malformed(_) => "client-hello-malformed",
        }
    }
}

/// Reads the ClientHello at the start of `stream` without consuming a byte of it, within
/// `timeout`. Returns as soon as the first bytes show the connection is not TLS; waits
/// (for new bytes only, never spinning) while a ClientHello is incomplete.
///
/// # Errors
/// See [`PeekError`]; in every case the bytes are still unread on the socket.
pub async fn peek_client_hello(stream: &TcpStream, timeout: Duration) -> Result<Peeked, PeekError> {
    tokio::time::timeout(timeout, peek_until_complete(stream))
        .await
        .map_err(|_| PeekError::Timeout(timeout))?
}

async fn peek_until_complete(stream: &TcpStream) -> Result<Peeked, PeekError> {
    let mut buf = vec![0u8; MAX_CLIENT_HELLO_BYTES];
    let mut seen = 0;
    for _ in 0..MAX_PEEK_ROUNDS {
        let peeked = peek_more(stream, &mut buf, seen).await?;
        match classify(&buf[..peeked]) {
            Classified::NotTls => return Ok(Peeked::NotTls),
            Classified::ClientHello(info) => return Ok(Peeked::ClientHello(info)),
            Classified::Malformed(error) => return Err(PeekError::Malformed(error)),
            Classified::Incomplete if peeked == buf.len() => return Err(PeekError::TooLarge),
            Classified::Incomplete => seen = peeked,
        }
    }
    Err(PeekError::TooFragmented)
}

/// Peeks the socket's unread bytes into `buf` once there are more than `seen` of them
/// (or `buf` is full). Waits on the socket's readiness, which a peek that finds nothing
/// new clears, so waiting costs nothing until new bytes (or the client's FIN) arrive.
async fn peek_more(stream: &TcpStream, buf: &mut [u8], seen: usize) -> Result<usize, PeekError> {
    loop {
        let ready = stream
            .ready(Interest::READABLE)
            .await
            .map_err(PeekError::Io)?;
        let peeked = stream.try_io(Interest::READABLE, || {
            let n = recv(
                stream.as_raw_fd(),
                buf,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            )
            .map_err(io::Error::from)?;
            if n == seen && n != 0 && n < buf.len() {
                // Nothing new: report "would block" so tokio clears the readiness.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match peeked {
            Ok(0) => return Err(PeekError::Closed),
            Ok(n) => return Ok(n),
            // The end-of-stream flag is never cleared: nothing more will come.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && ready.is_read_closed() => {
                return Err(PeekError::Closed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(PeekError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::mesh::ALPN_MESH;

    /// The bytes a rustls client sends first: one record holding its ClientHello.
    fn client_hello(server_name: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::PROTOCOL_VERSIONS)
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// The same handshake message cut into records of at most `size` payload bytes.
    fn in_records(hello: &[u8], size: usize) -> Vec<u8> {
        let (header, payload) = hello.split_at(5);
        let mut out = Vec::new();
        for chunk in payload.chunks(size) {
            out.extend_from_slice(&header[..3]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    fn expect_hello(bytes: &[u8]) -> ClientHelloInfo {
        match classify(bytes) {
            Classified::ClientHello(info) => info,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sni_and_alpn_are_read_from_a_client_hello() {
        let hello = client_hello("api.example.com", &[b"h2", ALPN_MESH]);
        let info = expect_hello(&hello);
        assert_eq!(info.server_name.as_deref(), Some("api.example.com"));
        assert_eq!(info.alpn, vec![b"h2".to_vec(), ALPN_MESH.to_vec()]);
        assert!(info.offers_mesh());
        let plain = expect_hello(&client_hello("db.internal", &[]));
        assert!(plain.alpn.is_empty());
        assert!(!plain.offers_mesh());
    }

    #[test]
    fn every_prefix_of_a_client_hello_is_incomplete() {
        let hello = client_hello("api.example.com", &[ALPN_MESH]);
        for end in 0..hello.len() {
            assert!(
                matches!(classify(&hello[..end]), Classified::Incomplete),
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn a_client_hello_split_over_several_records_is_joined() {
        let hello = client_hello("api.example.com", &[ALPN_MESH]);
        let split = in_records(&hello, 100);
        assert!(split.len() > hello.len() + 5, "several records");
        assert_eq!(expect_hello(&split), expect_hello(&hello));
    }

    #[test]
    fn other_protocols_are_not_tls() {
        for bytes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PRI * HTTP/2.0\r\n",
            b"\x16\x01\x00",
            b"SSH-2.0-OpenSSH\r\n",
        ] {
            assert!(matches!(classify(bytes), Classified::NotTls), "{bytes:?}");
        }
    }

    #[test]
    fn a_handshake_record_that_is_not_a_client_hello_is_malformed() {
        // A ServerHello (type 2) where a ClientHello must be.
        let server_hello = [0x16, 3, 3, 0, 6, 2, 0, 0, 2, 3, 3];
        assert!(matches!(classify(&server_hello), Classified::Malformed(_)));
        let mut truncated_body = client_hello("a.example", &[]);
        // Claims a shorter handshake message than the record carries.
        truncated_body[8] = truncated_body[8].wrapping_sub(40);
        assert!(matches!(
            classify(&truncated_body),
            Classified::Malformed(_)
        ));
    }

    /// A connected pair: the client's write half and the accepted server socket.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_client_hello_arriving_in_pieces_is_peeked_and_left_unread() {
        let hello = in_records(&client_hello("api.example.com", &[ALPN_MESH]), 64);
        let (mut client, mut server) = pair().await;
        let writer = {
            let hello = hello.clone();
            tokio::spawn(async move {
                for piece in hello.chunks(50) {
                    client.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client
            })
        };
        let peeked = peek_client_hello(&server, Duration::from_secs(5))
            .await
            .unwrap();
        let Peeked::ClientHello(info) = peeked else {
            panic!("{peeked:?}")
        };
        assert_eq!(info.server_name.as_deref(), Some("api.example.com"));
        let _client = writer.await.unwrap();
        let mut unread = vec![0u8; hello.len()];
        server.read_exact(&mut unread).await.unwrap();
        assert_eq!(unread, hello, "every byte is still there to be read");
    }

    #[tokio::test]
    async fn plaintext_is_told_at_once_and_left_unread() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let peeked = peek_client_hello(&server, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(peeked, Peeked::NotTls);
        let mut unread = [0u8; 16];
        server.read_exact(&mut unread).await.unwrap();
        assert_eq!(&unread, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_client_closing_halfway_through_its_hello_is_closed_not_waited_for() {
        let hello = client_hello("api.example.com", &[]);
        let (mut client, server) = pair().await;
        client.write_all(&hello[..hello.len() / 2]).await.unwrap();
        client.shutdown().await.unwrap();
        let error = peek_client_hello(&server, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(error, PeekError::Closed), "{error}");
    }

    #[tokio::test]
    async fn a_hello_larger_than_the_bound_is_refused() {
        let (mut client, server) = pair().await;
        // A handshake record that claims the maximum payload, then keeps coming.
        let mut huge = vec![0x16, 3, 1, 0x40, 0x00, 1, 0x00, 0xff, 0xff];
        huge.resize(MAX_CLIENT_HELLO_BYTES + 1024, 0);
        let writer = tokio::spawn(async move {
            client.write_all(&huge).await.unwrap();
            client
        });
        let error = peek_client_hello(&server, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, PeekError::TooLarge), "{error}");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn an_incomplete_hello_times_out() {
        let hello = client_hello("api.example.com", &[]);
        let (mut client, server) = pair().await;
        client.write_all(&hello[..10]).await.unwrap();
        let error = peek_client_hello(&server, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(error, PeekError::Timeout(_)), "{error}");
        assert_eq!(error.reason(), "client-hello-timeout");
    }
}
