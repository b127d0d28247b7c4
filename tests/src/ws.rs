//! A WebSocket echo upstream and a client connecting through a given address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket client stream.
pub type WsStream = WebSocketStream<TcpStream>;

/// A running WebSocket echo server (any path); stops when dropped.
#[derive(Debug)]
pub struct WsUpstream {
    addr: SocketAddr,
    sessions: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl WsUpstream {
    /// Binds `127.0.0.1:0` and echoes every text and binary message back.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The same server on `addr` (e.g. `[::]:PORT` inside a pod's network namespace).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().expect("the bound address");
        let sessions = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(listener, sessions.clone()));
        Self {
            addr,
            sessions,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for a cluster's `endpoints`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Handshakes completed so far.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::SeqCst)
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, sessions: Arc<AtomicU64>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let sessions = sessions.clone();
                connections.spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                    sessions.fetch_add(1, Ordering::SeqCst);
                    while let Some(Ok(message)) = ws.next().await {
                        let reply = match message {
                            Message::Text(_) | Message::Binary(_) => message,
                            Message::Close(_) => break,
                            _ => continue,
                        };
                        if ws.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Opens a WebSocket to `ws://127.0.0.1:PORT{path}` over a TCP connection to `addr`.
///
/// # Panics
/// When the connection or the handshake fails or takes more than 5s.
pub async fn ws_connect(addr: SocketAddr, path: &str) -> WsStream {
    let handshake = async {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect for the WebSocket");
        let url = format!("ws://{addr}{path}");
        tokio_tungstenite::client_async(url, stream).await
    };
    let (ws, _response) = tokio::time::timeout(Duration::from_secs(5), handshake)
        .await
        .unwrap_or_else(|_| panic!("WebSocket handshake via {addr} timed out"))
        .unwrap_or_else(|e| panic!("WebSocket handshake via {addr}: {e}"));
    ws
}

/// Sends `text` and waits (5s at most) for the next text message.
///
/// # Panics
/// When sending fails, the stream ends, or nothing arrives in time.
pub async fn ws_round_trip(ws: &mut WsStream, text: &str) -> String {
    ws.send(Message::text(text))
        .await
        .expect("send a WebSocket message");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a WebSocket reply within 5s")
            .expect("the WebSocket stays open")
            .expect("a well-formed WebSocket message");
        if let Message::Text(reply) = message {
            return reply.as_str().to_owned();
        }
    }
}
