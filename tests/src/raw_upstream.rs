//! A raw TCP upstream that answers with exact bytes and records every byte it receives,
//! for what a well-behaved server never does (a `101` nobody asked for) and for proving
//! how a request reached the upstream (a body cut short and the connection closed, never
//! a complete one).
//!
//! ```text
//! let upstream = RawUpstream::start(RawScript::Listen).await;
//! let seen = upstream.closed(0, Duration::from_secs(5)).await; // what connection 0 got
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::wait::eventually;

/// What the upstream does on each connection.
#[derive(Clone, Debug)]
pub enum RawScript {
    /// Once a whole request head has arrived, writes these bytes, then sends back every
    /// byte that follows (a tunnel's echo) until the peer closes.
    ReplyThenEcho(Vec<u8>),
    /// Never answers: reads until the peer closes.
    Listen,
}

/// One accepted connection: what arrived, and whether the peer has closed it.
#[derive(Debug, Default)]
struct Recorded {
    received: Mutex<Vec<u8>>,
    closed: AtomicBool,
}

/// A running raw upstream; stops (connections included) when dropped.
#[derive(Debug)]
pub struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Arc<Recorded>>>>,
    task: JoinHandle<()>,
}

impl RawUpstream {
    /// Binds `127.0.0.1:0` and runs `script` on every connection.
    pub async fn start(script: RawScript) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the bound address");
        let connections: Arc<Mutex<Vec<Arc<Recorded>>>> = Arc::default();
        let list = connections.clone();
        let task = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let record = Arc::new(Recorded::default());
                        list.lock().unwrap().push(record.clone());
                        tasks.spawn(serve(stream, script.clone(), record));
                    }
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    /// `127.0.0.1:PORT`, for a cluster's `endpoints`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    fn connection(&self, index: usize) -> Option<Arc<Recorded>> {
        self.connections.lock().unwrap().get(index).cloned()
    }

    /// The bytes connection `index` has received so far (empty if it does not exist).
    pub fn received(&self, index: usize) -> Vec<u8> {
        self.connection(index)
            .map(|c| c.received.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Waits until connection `index` exists and has received a whole request head;
    /// returns the head as text.
    ///
    /// # Panics
    /// When that takes longer than `timeout`.
    pub async fn head(&self, index: usize, timeout: Duration) -> String {
        eventually(
            &format!("a request head on upstream connection {index}"),
            timeout,
            || async { head_end(&self.received(index)).is_some() },
        )
        .await;
        let received = self.received(index);
        let end = head_end(&received).unwrap_or(received.len());
        String::from_utf8_lossy(&received[..end]).into_owned()
    }

    /// Waits until the proxy has closed connection `index`; returns all it received.
    ///
    /// # Panics
    /// When the connection is still open after `timeout`.
    pub async fn closed(&self, index: usize, timeout: Duration) -> Vec<u8> {
        eventually(
            &format!("the proxy to close upstream connection {index}"),
            timeout,
            || async {
                self.connection(index)
                    .is_some_and(|c| c.closed.load(Ordering::SeqCst))
            },
        )
        .await;
        self.received(index)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the head ends (after its blank line), if it is all there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

async fn serve(mut stream: TcpStream, script: RawScript, record: Arc<Recorded>) {
    let _ = stream.set_nodelay(true);
    let mut replied = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (head_done, after_head) = {
            let mut received = record.received.lock().unwrap();
            let before = received.len();
            received.extend_from_slice(&chunk[..n]);
            match head_end(&received) {
                // Bytes of this read that came after the head (what a tunnel echoes).
                Some(end) => (true, received[end.max(before)..].to_vec()),
                None => (false, Vec::new()),
            }
        };
        if let RawScript::ReplyThenEcho(reply) = &script {
            if head_done && !replied {
                replied = true;
                if stream.write_all(reply).await.is_err() {
                    break;
                }
            }
            if head_done && !after_head.is_empty() && stream.write_all(&after_head).await.is_err() {
                break;
            }
        }
    }
    record.closed.store(true, Ordering::SeqCst);
}

/// How long [`RawUpstream::closed`] waits in most tests.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
