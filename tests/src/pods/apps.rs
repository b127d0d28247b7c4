//! Apps of the pods that the shared upstream helpers do not cover: a server-first TCP
//! server (a greeting before any client byte, like MySQL or SMTP) and a TLS server with a
//! certificate of its own (for passthrough). Both say, in their first line, which client
//! address they saw, so a test can tell a TPROXY-kept address from the proxy's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::tls::CertFiles;

/// A server that writes `TAG peer=CLIENT local=ADDR\n` as soon as it accepts, then echoes
/// every byte it reads. Stops when dropped.
#[derive(Debug)]
pub struct GreetingServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl GreetingServer {
    /// Binds `addr` (run it inside a pod).
    pub async fn start(addr: SocketAddr, tag: &str) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().expect("the bound address");
        let tag = tag.to_owned();
        let task = tokio::spawn(serve(listener, move |mut stream: TcpStream| {
            let tag = tag.clone();
            async move {
                let greeting = greeting(&tag, &stream);
                if stream.write_all(greeting.as_bytes()).await.is_err() {
                    return;
                }
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            }
        }));
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for GreetingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS server presenting its own certificate: after the handshake it writes
/// `TAG peer=CLIENT local=ADDR\n` and echoes. Stops when dropped.
#[derive(Debug)]
pub struct TlsHelloServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsHelloServer {
    /// Binds `addr` (run it inside a pod) and serves with `cert`.
    pub async fn start(addr: SocketAddr, tag: &str, cert: &CertFiles) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().expect("the bound address");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config()));
        let tag = tag.to_owned();
        let task = tokio::spawn(serve(listener, move |stream: TcpStream| {
            let tag = tag.clone();
            let acceptor = acceptor.clone();
            async move {
                let greeting = greeting(&tag, &stream);
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (mut read, mut write) = tokio::io::split(tls);
                if write.write_all(greeting.as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut read, &mut write).await;
            }
        }));
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TlsHelloServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn greeting(tag: &str, stream: &TcpStream) -> String {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "-".to_owned(), |a| a.to_string());
    let local = stream
        .local_addr()
        .map_or_else(|_| "-".to_owned(), |a| a.to_string());
    format!("{tag} peer={peer} local={local}\n")
}

async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                connections.spawn(handle(stream));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Connects to `addr` and reads the server's first line without sending a byte; returns
/// the line, the time from the start of the connect to the line read, and the connection
/// (to go on with).
///
/// # Errors
/// The connection failed, closed, or no line came within `bound`.
pub async fn read_greeting(
    addr: SocketAddr,
    bound: Duration,
) -> Result<(String, Duration, BufReader<TcpStream>), String> {
    let started = Instant::now();
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .await
            .map_err(|e| format!("read the greeting from {addr}: {e}"))?;
        if read == 0 {
            return Err(format!("{addr} closed the connection before any greeting"));
        }
        Ok((line.trim_end().to_owned(), started.elapsed(), reader))
    };
    tokio::time::timeout(bound, attempt)
        .await
        .map_err(|_| format!("no greeting from {addr} within {bound:?}"))?
}

/// Writes `bytes` on `stream` and reads back as many (an echo), within 5 s.
///
/// # Errors
/// The write or read failed, or the echo did not come back in time.
pub async fn echo_round_trip<S>(stream: &mut S, bytes: &[u8]) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let attempt = async {
        stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0; bytes.len()];
        stream
            .read_exact(&mut back)
            .await
            .map_err(|e| format!("read the echo: {e}"))?;
        Ok(back)
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "no echo within 5s".to_owned())?
}
