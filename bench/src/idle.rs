//! Idle keep-alive client connections opened by the harness itself (not load: each does
//! one request, then sits open), to see what a proxy holds per idle connection.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Connections that have each completed one keep-alive request and stay open while held.
#[derive(Debug)]
pub struct IdleConnections {
    streams: Vec<TcpStream>,
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: bench\r\nuser-agent: meshwork-bench-idle\r\n\r\n";

impl IdleConnections {
    /// Opens `count` connections to 127.0.0.1:`port`, one after the other, each sending
    /// one request and reading its whole response; bounded by `deadline`.
    ///
    /// # Errors
    /// When a connection or its request fails, or the deadline passes.
    pub fn open(port: u16, count: usize, deadline: Duration) -> anyhow::Result<Self> {
        let start = Instant::now();
        let mut streams = Vec::with_capacity(count);
        let mut buf = vec![0u8; 4096];
        for i in 0..count {
            if start.elapsed() > deadline {
                bail!("opened only {i} of {count} connections within {deadline:?}");
            }
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .with_context(|| format!("connection {i} of {count}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(REQUEST)?;
            read_response(&mut s, &mut buf)
                .with_context(|| format!("response on connection {i}"))?;
            streams.push(s);
        }
        Ok(Self { streams })
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// How many are still open (the peer has not closed them).
    pub fn still_open(&self) -> usize {
        let mut probe = [0u8; 1];
        self.streams
            .iter()
            .filter(|s| {
                if s.set_nonblocking(true).is_err() {
                    return false;
                }
                let open = match s.peek(&mut probe) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                };
                let _ = s.set_nonblocking(false);
                open
            })
            .count()
    }
}

/// Reads one response with a `content-length` body (what the bench upstream sends).
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> anyhow::Result<()> {
    let mut have = 0;
    loop {
        if have == buf.len() {
            bail!("response head larger than {} bytes", buf.len());
        }
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            bail!("connection closed before the response was complete");
        }
        have += n;
        if let Some(total) = response_length(&buf[..have]) {
            if have >= total {
                if have > total {
                    bail!("more bytes than one response");
                }
                return Ok(());
            }
        }
    }
}

/// The full length (head + body) of the response at the start of `bytes`, once its head
/// is complete.
pub fn response_length(bytes: &[u8]) -> Option<usize> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let body = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some(head_end + body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_length_is_head_plus_content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(response_length(r), Some(38 + 5));
        assert_eq!(response_length(b"HTTP/1.1 200 OK\r\ncontent-le"), None);
    }
}
