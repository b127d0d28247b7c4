//! The server side of a handshake on an accepted TCP connection, for the proxy's
//! listeners and the control plane's discovery port: plaintext refused at its first byte,
//! a deadline, a short fixed reason for every failure, and a refused client's connection
//! closed so that it reads the alert saying why.
//!
//! Why the closing matters: with TLS 1.3 a client's certificate is checked after the
//! client has finished its side of the handshake, so its first request bytes are often
//! on the way when it is refused. Closing a socket with unread bytes (or receiving bytes
//! after closing it) sends a reset; the client's next write then fails with "connection
//! reset" or "broken pipe" before it ever reads the alert ("certificate required",
//! "unknown ca"...). So the alert is followed by a FIN (write side shut down) and what the
//! client still sends is read and discarded, within [`LINGER`] and [`LINGER_BYTES`], until
//! it closes too.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::reason::{Reason, reason_of_io};

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long a refused client has to read the alert and close before the connection is
/// dropped (it still counts against its listener's connection limit meanwhile).
pub const LINGER: Duration = Duration::from_secs(1);

/// How much a refused client may still send before the connection is dropped.
pub const LINGER_BYTES: usize = 256 * 1024;

/// A handshake that failed: why, and the connection to close.
#[derive(Debug)]
pub struct Refused {
    /// One of [`crate::reason::REASONS`].
    pub reason: Reason,
    pub detail: String,
    /// The connection when TLS refused the client (an alert may be on its way); `None`
    /// for plaintext and timeouts, which are closed at once.
    alerted: Option<TcpStream>,
}

impl Refused {
    fn at_once(reason: Reason, detail: String) -> Self {
        Self {
            reason,
            detail,
            alerted: None,
        }
    }

    /// Closes the connection so the client can read the alert first: at most [`LINGER`]
    /// and [`LINGER_BYTES`] later. Dropping a `Refused` instead closes it at once.
    pub async fn close(self) {
        if let Some(tcp) = self.alerted {
            let ended = linger(tcp).await;
            tracing::trace!(?ended, "refused TLS connection closed");
        }
    }
}

/// Runs the server side of a handshake on `stream` within `timeout`.
///
/// # Errors
/// Why the handshake failed; the caller reports it, then [`Refused::close`]s it.
pub async fn accept(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, Refused> {
    let attempt = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => {
                return Err(Refused::at_once(
                    "eof",
                    "closed before the handshake".to_string(),
                ));
            }
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                return Err(Refused::at_once(
                    "plaintext",
                    format!("not a TLS handshake (first byte {:#04x})", first[0]),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(Refused::at_once(reason_of_io(&e), e.to_string())),
        }
        tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .into_fallible()
            .await
            .map_err(|(e, tcp)| Refused {
                reason: reason_of_io(&e),
                detail: e.to_string(),
                alerted: Some(tcp),
            })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Refused::at_once(
            "timeout",
            format!("handshake not finished within {timeout:?}"),
        )),
    }
}

/// How the lingering after an alert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lingered {
    /// The client closed its side (it has read the alert, or gave up).
    ClientClosed,
    /// The client kept sending past [`LINGER_BYTES`].
    ByteLimit,
    /// The client neither closed nor stopped within [`LINGER`].
    TimeLimit,
    /// The connection failed (e.g. the client reset it).
    Error,
}

/// Sends a FIN after what was written (the alert), then reads and discards what the
/// client still sends until it closes, within the time and byte bounds.
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) -> Lingered {
    let drain = async {
        if io.shutdown().await.is_err() {
            return Lingered::Error;
        }
        let mut sink = [0u8; 8192];
        let mut read = 0;
        loop {
            match io.read(&mut sink).await {
                Ok(0) => return Lingered::ClientClosed,
                Ok(n) => {
                    read += n;
                    if read >= LINGER_BYTES {
                        return Lingered::ByteLimit;
                    }
                }
                Err(_) => return Lingered::Error,
            }
        }
    };
    tokio::time::timeout(LINGER, drain)
        .await
        .unwrap_or(Lingered::TimeLimit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;

    /// A server requiring client certificates from its own self-signed CA, and a client
    /// trusting the server but presenting none.
    fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let roots = Arc::new(roots);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), crate::provider())
                .build()
                .unwrap();
        let server = ServerConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(crate::PROTOCOL_VERSIONS)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![der],
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(crate::PROTOCOL_VERSIONS)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    #[tokio::test]
    async fn a_client_writing_after_its_refusal_reads_the_alert() {
        let (server_config, client_config) = configs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let refused = accept(tcp, server_config, Duration::from_secs(10))
                .await
                .expect_err("no client certificate");
            let reason = refused.reason;
            refused.close().await;
            reason
        });
        let tcp = TcpStream::connect(address).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(client_config)
            .connect(name, tcp)
            .await
            .expect("TLS 1.3: the client's side finishes before the server checks");
        tls.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        // The alert is here; the rest of the request follows it.
        tls.get_ref().0.readable().await.unwrap();
        for _ in 0..8 {
            tls.write_all(&[b'x'; 4096]).await.expect("no reset");
            tls.flush().await.expect("no reset");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let error = tls.read(&mut [0u8; 64]).await.expect_err("the alert");
        assert_eq!(
            error.to_string(),
            "received fatal alert: CertificateRequired"
        );
        drop(tls);
        assert_eq!(server.await.unwrap(), "no-client-certificate");
    }

    #[tokio::test]
    async fn plaintext_is_refused_at_its_first_byte_without_lingering() {
        let (server_config, _) = configs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let refused = accept(tcp, server_config, Duration::from_secs(10))
            .await
            .expect_err("plaintext");
        assert_eq!(refused.reason, "plaintext");
        assert_eq!(refused.detail, "not a TLS handshake (first byte 0x47)");
        assert!(refused.alerted.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_ends_when_the_client_closes_and_it_read_the_alert_then_eof() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = server;
        server.write_all(b"alert").await.unwrap();
        client.write_all(b"request bytes").await.unwrap();
        let lingering = tokio::spawn(linger(server));
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, b"alert", "the alert, then end of stream");
        drop(client);
        assert_eq!(lingering.await.unwrap(), Lingered::ClientClosed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_after_the_time_bound() {
        let (_client, server) = tokio::io::duplex(1024);
        let started = tokio::time::Instant::now();
        assert_eq!(linger(server).await, Lingered::TimeLimit);
        assert_eq!(started.elapsed(), LINGER);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_sending_is_dropped_after_the_byte_bound() {
        let (mut client, server) = tokio::io::duplex(16 * 1024);
        let flood = tokio::spawn(async move {
            let mut sent = 0;
            while client.write_all(&[0u8; 1024]).await.is_ok() {
                sent += 1024;
            }
            sent
        });
        let started = tokio::time::Instant::now();
        assert_eq!(linger(server).await, Lingered::ByteLimit);
        assert!(started.elapsed() < LINGER);
        let sent = flood.await.unwrap();
        assert!(
            (LINGER_BYTES..=LINGER_BYTES + 32 * 1024).contains(&sent),
            "{sent}"
        );
    }
}
