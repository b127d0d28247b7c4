//! A plaintext HTTP/1 connection whose first request head is not all there when it
//! opens: the head is read here, into a buffer the size of what arrived, and the server
//! connection (`http1`) serves it once it is complete (the bytes replayed first, see
//! `io`).
//!
//! The server connection reads into an 8 KiB buffer. A client trickling its head
//! (slowloris) would hold one resident until its header timeout, and each such buffer
//! is an extent whose descriptor jemalloc keeps for good in its metadata
//! (bench/RESULTS.md, "Idle RSS and slowloris memory": with hyper's 17 KiB, 5,000 such
//! clients held 92 MiB). A head that arrives whole in the first bytes (nearly every
//! client's) goes to the server connection directly, without a copy.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::activity::ConnActivity;
use super::http::HttpConnSettings;
use super::supervise::answer_header_timeout;
use crate::http::ProxyError;

/// The most of a head read here. A longer head goes to the server connection with what
/// was read, and it reads the rest itself: a client sending this much is no longer cheap to hold
/// off, and heads this long are rare.
pub(super) const HEAD_BYTES: usize = 1024;

/// Whether `bytes` hold the empty line that ends a request head: CRLF or a bare LF
/// (both are accepted), after a line's LF.
pub(super) fn ends_head(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes)
        .any(|at| matches!(&bytes[at + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

/// Whether `head` may be the start of a request head and is not a whole one, so that
/// the server connection would wait for more. A whole head, and bytes no head may hold
/// (control characters other than tab, CR and LF: answered 400 at once), go to the
/// server connection.
fn wants_more(head: &[u8]) -> bool {
    let may_be_head = head
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || matches!(b, b'\t' | b'\r' | b'\n'));
    may_be_head && !ends_head(head)
}

/// Reads the first request head of `stream`, which has begun arriving (its bytes are
/// waiting on the socket) but was not all there: `Some` with the bytes to replay to the
/// server connection once the head is complete (or [`HEAD_BYTES`] long, or not a
/// request head at all), `None` when the connection ended here: the client closed it,
/// or its head timed out (answered 408, as the connection's supervisor does).
pub(super) async fn read(
    stream: &TcpStream,
    activity: &ConnActivity,
    settings: &HttpConnSettings,
    client_addr: SocketAddr,
) -> Option<Bytes> {
    // The head began with the bytes waiting: its timeout runs from now, as it would had
    // the server connection read them (the replayed bytes do not start it again).
    activity.on_read();
    let deadline = activity.head_deadline(settings.limits.header_read_timeout)?;
    let mut head = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Err(_) => {
                settings.metrics.local_response(ProxyError::HeaderTimeout);
                tracing::debug!(%client_addr, "request head not received in time; answering 408");
                answer_header_timeout(stream);
                return None;
            }
            Ok(Err(_)) => return None,
            Ok(Ok(())) => {}
        }
        let mut chunk = [0u8; HEAD_BYTES];
        let room = HEAD_BYTES - head.len();
        match stream.try_read(&mut chunk[..room]) {
            Ok(0) => return None,
            Ok(n) => {
                head.extend_from_slice(&chunk[..n]);
                if head.len() == HEAD_BYTES || !wants_more(&head) {
                    return Some(Bytes::from(head));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_an_empty_line_with_crlf_or_bare_lf() {
        assert!(ends_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(ends_head(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(ends_head(b"GET / HTTP/1.1\r\nHost: x\n\r\nbody"));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r"));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: "));
        assert!(!ends_head(b""));
    }

    #[test]
    fn only_the_start_of_a_request_head_waits_for_more() {
        assert!(wants_more(b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: "));
        assert!(wants_more(b"GE"));
        assert!(!wants_more(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        // Not HTTP (a TLS ClientHello on the plaintext port): a 400, at once.
        assert!(!wants_more(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"));
    }
}
