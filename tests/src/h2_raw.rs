//! HTTP/2 frames as exact bytes, for clients no HTTP/2 library would let a test be: a
//! connection that stops after its preface, a header block never ended. Builds the
//! frames a test sends and parses the frames the proxy sends back (RFC 9113 §4.1).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame: the 9-byte header then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame payload under 16 MiB");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The preface and an empty SETTINGS frame: what every client sends first.
pub fn preface_and_settings() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out
}

/// The HPACK block of `GET http://{authority}{path}`, without Huffman coding or the
/// dynamic table: static-table entries for the method and scheme, literals for the rest
/// (RFC 7541 §6.1, §6.2.2).
pub fn get_header_block(authority: &str, path: &str) -> Vec<u8> {
    let mut out = vec![0x82, 0x86]; // :method GET, :scheme http
    for (index, value) in [(4u8, path), (1u8, authority)] {
        // Literal without indexing, name from static-table entry `index`.
        out.push(index);
        let len = u8::try_from(value.len()).expect("a short header value");
        assert!(len < 0x7f, "a header value under 127 bytes");
        out.push(len);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A frame the proxy sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A GOAWAY's last stream id and error code.
    pub fn goaway(&self) -> Option<(u32, u32)> {
        if self.kind != GOAWAY || self.payload.len() < 8 {
            return None;
        }
        let word =
            |at: usize| u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("4 bytes"));
        Some((word(0) & 0x7fff_ffff, word(4)))
    }
}

/// Splits `bytes` into frames; a trailing partial frame is left out.
pub fn parse_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if bytes.len() < 9 + len {
            break;
        }
        frames.push(Frame {
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes(bytes[5..9].try_into().expect("4 bytes")) & 0x7fff_ffff,
            payload: bytes[9..9 + len].to_vec(),
        });
        bytes = &bytes[9 + len..];
    }
    frames
}

/// What a connection received until the peer closed it.
#[derive(Debug)]
pub struct UntilClosed {
    pub frames: Vec<Frame>,
    /// How long after the call the peer closed (EOF or reset); `None`: still open at the
    /// deadline.
    pub closed_after: Option<Duration>,
}

impl UntilClosed {
    /// The GOAWAY frames received, as (last stream id, error code).
    pub fn goaways(&self) -> Vec<(u32, u32)> {
        self.frames.iter().filter_map(Frame::goaway).collect()
    }
}

/// Reads every frame from `stream` until the peer closes it or `timeout` passes.
pub async fn frames_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> UntilClosed {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed_after = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => break None,
            Ok(Ok(0) | Err(_)) => break Some(start.elapsed()),
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    };
    UntilClosed {
        frames: parse_frames(&bytes),
        closed_after,
    }
}

/// Reads frames from `stream` until one matches `wanted`, within `timeout`; every frame
/// read so far, the matching one last.
///
/// # Errors
/// The peer closed first, or nothing matched in time (with the frames seen).
pub async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
    wanted: impl Fn(&Frame) -> bool,
) -> Result<Vec<Frame>, String> {
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let frames = parse_frames(&bytes);
        if let Some(at) = frames.iter().position(&wanted) {
            return Ok(frames[..=at].to_vec());
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(format!("timed out after {timeout:?}; frames: {frames:?}")),
            Ok(Ok(0)) => return Err(format!("closed; frames: {frames:?}")),
            Ok(Err(e)) => return Err(format!("{e}; frames: {frames:?}")),
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_partial_one_is_left_out() {
        let mut bytes = frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0xb]);
        bytes.extend(frame(HEADERS, END_HEADERS, 5, b"abc"));
        bytes.extend(&frame(DATA, 0, 5, b"xyz")[..10]);
        let frames = parse_frames(&bytes);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].goaway(), Some((3, 0xb)));
        assert_eq!(
            (frames[1].kind, frames[1].flags, frames[1].stream),
            (HEADERS, END_HEADERS, 5)
        );
        assert_eq!(frames[1].payload, b"abc");
    }
}
