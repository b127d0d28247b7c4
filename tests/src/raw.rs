//! A raw TCP (or TLS) client for requests no well-behaved client would send: smuggling
//! attempts, malformed heads, slow writers. Reads responses with a minimal HTTP/1 parser.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest response head the parser accepts.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A byte stream a [`RawConn`] can speak over: TCP, or TLS over TCP.
pub trait RawStream: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug> RawStream for T {}

/// One raw connection.
#[derive(Debug)]
pub struct RawConn {
    stream: Box<dyn RawStream>,
    /// Bytes read but not yet consumed by a parsed response.
    buf: Vec<u8>,
    eof: bool,
}

/// A parsed HTTP/1 response.
#[derive(Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.text())
            .finish()
    }
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why no response could be read.
#[derive(Debug)]
pub enum RawError {
    /// The peer closed the connection before a whole response arrived.
    Closed { partial: Vec<u8> },
    /// Nothing complete arrived in time.
    Timeout { partial: Vec<u8> },
    /// A socket error (e.g. connection reset).
    Io(std::io::Error),
    /// Bytes arrived that are not an HTTP/1 response.
    Malformed(String),
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawError::Closed { partial } => write!(
                f,
                "connection closed after {:?}",
                String::from_utf8_lossy(partial)
            ),
            RawError::Timeout { partial } => write!(
                f,
                "timed out after receiving {:?}",
                String::from_utf8_lossy(partial)
            ),
            RawError::Io(e) => write!(f, "socket error: {e}"),
            RawError::Malformed(why) => write!(f, "malformed response: {why}"),
        }
    }
}

impl std::error::Error for RawError {}

impl RawConn {
    /// Connects to `addr`.
    ///
    /// # Panics
    /// When the connection is not established within 5s.
    pub async fn connect(addr: SocketAddr) -> Self {
        match Self::try_connect(addr).await {
            Ok(conn) => conn,
            Err(e) => panic!("connecting to {addr}: {e}"),
        }
    }

    /// Connects to `addr` within 5s.
    ///
    /// # Errors
    /// Refused, or timed out.
    pub async fn try_connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        Ok(Self::over(stream))
    }

    /// A connection over an established `stream` (e.g. a TLS session from
    /// [`crate::TlsClient::connect`]).
    pub fn over(stream: impl RawStream + 'static) -> Self {
        Self {
            stream: Box::new(stream),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all of `bytes`.
    ///
    /// # Errors
    /// When the peer has closed or reset the connection.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.stream.write_all(bytes.as_ref()).await?;
        self.stream.flush().await
    }

    /// Reads one response head only (the body, if any, is left unread), for a response
    /// that is still streaming.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn read_head(&mut self, timeout: Duration) -> Result<RawResponse, RawError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((status, headers, head_len)) = parse_head(&self.buf)? {
                self.buf.drain(..head_len);
                return Ok(RawResponse {
                    status,
                    headers,
                    body: Vec::new(),
                });
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(RawError::Malformed("response head too large".into()));
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads one whole response (head, then a body delimited by `content-length`,
    /// chunked encoding, or the end of the connection).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn read_response(&mut self, timeout: Duration) -> Result<RawResponse, RawError> {
        let deadline = Instant::now() + timeout;
        let (status, headers, head_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(RawError::Malformed("response head too large".into()));
            }
            self.fill(deadline).await?;
        };
        self.buf.drain(..head_len);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if status / 100 == 1 || status == 204 || status == 304 {
            Vec::new()
        } else if header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            self.read_chunked(deadline).await?
        } else if let Some(len) = header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| RawError::Malformed(format!("content-length {len:?}")))?;
            while self.buf.len() < len {
                self.fill(deadline).await?;
            }
            self.buf.drain(..len).collect()
        } else {
            while !self.eof {
                match self.fill(deadline).await {
                    Ok(()) | Err(RawError::Closed { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            std::mem::take(&mut self.buf)
        };
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Waits until the peer closes the connection (EOF or reset), discarding anything it
    /// sends meanwhile. Returns how long that took, or `None` if it was still open
    /// after `timeout`.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            if self.eof {
                return Some(start.elapsed());
            }
            match self.fill(deadline).await {
                Ok(()) => self.buf.clear(),
                Err(RawError::Closed { .. }) | Err(RawError::Io(_)) => {
                    return Some(start.elapsed());
                }
                Err(RawError::Timeout { .. }) => return None,
                Err(RawError::Malformed(_)) => unreachable!("fill does not parse"),
            }
        }
    }

    /// Whether the connection is still open: nothing but possibly data arrives for
    /// `grace`, without EOF or reset.
    pub async fn is_open_after(&mut self, grace: Duration) -> bool {
        self.wait_closed(grace).await.is_none()
    }

    async fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, RawError> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n") {
                    break pos;
                }
                self.fill(deadline).await?;
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| RawError::Malformed(format!("chunk size {line:?}")))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        let empty = pos == 0;
                        self.buf.drain(..pos + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else {
                        self.fill(deadline).await?;
                    }
                }
            }
            while self.buf.len() < size + 2 {
                self.fill(deadline).await?;
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Reads more bytes into `buf`.
    async fn fill(&mut self, deadline: Instant) -> Result<(), RawError> {
        if self.eof {
            return Err(RawError::Closed {
                partial: self.buf.clone(),
            });
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(RawError::Timeout {
                partial: self.buf.clone(),
            }),
            Ok(Ok(0)) => {
                self.eof = true;
                Err(RawError::Closed {
                    partial: self.buf.clone(),
                })
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(RawError::Io(e)),
        }
    }
}

type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, RawError> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            let headers = response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            Ok(Some((status, headers, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(RawError::Malformed(format!(
            "{e} in {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(200)])
        ))),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
