//! Bodies: boxed request/response bodies, and large bodies generated on the fly and
//! verified on the fly, so neither side ever holds a whole large body.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

/// Errors carried by boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request the harness sends and every response its upstreams send.
pub type RequestBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> RequestBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Size of the chunks [`GeneratedBody`] yields.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The pattern's period: a prime, so it never lines up with chunk or frame sizes.
const PATTERN_PERIOD: usize = 251;

/// The byte at `offset` of every generated body.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % PATTERN_PERIOD as u64) as u8
}

/// `CHUNK_BYTES + PATTERN_PERIOD` bytes of the pattern, shared by every generated chunk.
fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..(CHUNK_BYTES + PATTERN_PERIOD) as u64)
            .map(pattern_byte)
            .collect::<Vec<u8>>()
            .into()
    })
}

/// `len` bytes of the pattern, produced 64 KiB at a time without copying.
#[derive(Debug)]
pub struct GeneratedBody {
    len: u64,
    sent: u64,
    announce_length: bool,
}

impl GeneratedBody {
    /// A body whose exact length is announced (so HTTP/1 sends `content-length`).
    pub fn with_length(len: u64) -> Self {
        Self {
            len,
            sent: 0,
            announce_length: true,
        }
    }

    /// A body of unknown length (so HTTP/1 sends it chunked).
    pub fn chunked(len: u64) -> Self {
        Self {
            len,
            sent: 0,
            announce_length: false,
        }
    }

    /// Boxed, for use as a request or response body.
    pub fn boxed(self) -> RequestBody {
        BodyExt::map_err(self, |never: std::convert::Infallible| match never {}).boxed()
    }
}

impl Body for GeneratedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let remaining = self.len - self.sent;
        if remaining == 0 {
            return Poll::Ready(None);
        }
        let n = remaining.min(CHUNK_BYTES as u64) as usize;
        let start = (self.sent % PATTERN_PERIOD as u64) as usize;
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(pattern().slice(start..start + n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_length {
            SizeHint::with_exact(self.len - self.sent)
        } else {
            SizeHint::default()
        }
    }
}

/// A body fed from the returned sender, frame by frame, for streaming tests.
pub fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, RequestBody) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|data| (Ok::<_, BoxError>(Frame::data(data)), rx))
    });
    (tx, http_body_util::StreamBody::new(frames).boxed())
}

/// What [`verify_pattern`] found in a body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatternCheck {
    /// Bytes received.
    pub bytes: u64,
    /// Offset of the first byte that differs from the pattern, if any.
    pub first_mismatch: Option<u64>,
}

impl PatternCheck {
    /// Checks the next `data` of the body against the pattern.
    pub fn feed(&mut self, data: &[u8]) {
        let mut offset = 0;
        while offset < data.len() && self.first_mismatch.is_none() {
            let n = (data.len() - offset).min(CHUNK_BYTES);
            let start = ((self.bytes + offset as u64) % PATTERN_PERIOD as u64) as usize;
            let piece = &data[offset..offset + n];
            if piece != &pattern()[start..start + n] {
                let at = piece
                    .iter()
                    .zip(&pattern()[start..start + n])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                self.first_mismatch = Some(self.bytes + (offset + at) as u64);
            }
            offset += n;
        }
        self.bytes += data.len() as u64;
    }
}

/// Reads `body` to its end frame by frame, checking it against the pattern.
///
/// # Errors
/// The body's own error, with what had been checked until then.
pub async fn verify_pattern<B>(body: B) -> Result<PatternCheck, (PatternCheck, BoxError)>
where
    B: Body,
    B::Data: AsRef<[u8]>,
    B::Error: Into<BoxError>,
{
    continue_verifying(PatternCheck::default(), body).await
}

/// Like [`verify_pattern`], for a body whose first bytes `check` has already seen.
///
/// # Errors
/// As [`verify_pattern`].
pub async fn continue_verifying<B>(
    mut check: PatternCheck,
    body: B,
) -> Result<PatternCheck, (PatternCheck, BoxError)>
where
    B: Body,
    B::Data: AsRef<[u8]>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    check.feed(data.as_ref());
                }
            }
            Err(e) => return Err((check, e.into())),
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_generated_body_verifies_against_the_pattern() {
        let check = verify_pattern(GeneratedBody::chunked(1_000_003))
            .await
            .unwrap();
        assert_eq!(check.bytes, 1_000_003);
        assert_eq!(check.first_mismatch, None);
    }

    #[test]
    fn a_changed_byte_is_found_at_its_offset() {
        let mut data: Vec<u8> = (0..200_000u64).map(pattern_byte).collect();
        data[150_000] ^= 1;
        let mut check = PatternCheck::default();
        check.feed(&data[..70_000]);
        check.feed(&data[70_000..]);
        assert_eq!(check.first_mismatch, Some(150_000));
    }
}
