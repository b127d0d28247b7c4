//! A response body's frames put in the framing its head announced.

use bytes::Bytes;
use http_body::Frame;

use super::encode::{self, BodyEncoder};
use crate::listener::output::Output;

/// What a response body's frame did to the response.
pub enum FrameOutcome {
    More,
    Ended,
    /// The body broke, or disagreed with its length: the connection must close.
    Broken,
}

/// Queues a response body's next frame (`None`: its end) as `encoder` frames it.
pub fn write_frame<E: std::fmt::Display>(
    out: &mut Output,
    encoder: &mut BodyEncoder,
    frame: Option<Result<Frame<Bytes>, E>>,
) -> FrameOutcome {
    let frame = match frame {
        None => {
            return match encoder {
                BodyEncoder::Chunked { .. } => {
                    encode::last_chunk(out.tail(), None);
                    FrameOutcome::Ended
                }
                BodyEncoder::Length(0) | BodyEncoder::None => FrameOutcome::Ended,
                BodyEncoder::Length(_) => {
                    tracing::debug!("response body shorter than its length");
                    FrameOutcome::Broken
                }
                BodyEncoder::UntilClose => FrameOutcome::Broken,
            };
        }
        Some(Err(error)) => {
            tracing::debug!(%error, "response body broke");
            return FrameOutcome::Broken;
        }
        Some(Ok(frame)) => frame,
    };
    match frame.into_data() {
        Ok(data) => match encoder {
            BodyEncoder::Length(remaining) => {
                let len = data.len() as u64;
                if len > *remaining {
                    tracing::debug!("response body longer than its length");
                    return FrameOutcome::Broken;
                }
                *remaining -= len;
                if !data.is_empty() {
                    out.push(data);
                }
                if *remaining == 0 {
                    FrameOutcome::Ended
                } else {
                    FrameOutcome::More
                }
            }
            BodyEncoder::Chunked { .. } => {
                if !data.is_empty() {
                    encode::chunk_size(out.tail(), data.len());
                    out.push(data);
                    out.tail().extend_from_slice(b"\r\n");
                }
                FrameOutcome::More
            }
            BodyEncoder::UntilClose => {
                out.push(data);
                FrameOutcome::More
            }
            BodyEncoder::None => FrameOutcome::Ended,
        },
        Err(frame) => {
            let trailers = frame.into_trailers().ok();
            match encoder {
                BodyEncoder::Chunked { trailers: taken } => {
                    encode::last_chunk(out.tail(), trailers.as_ref().filter(|_| *taken));
                    FrameOutcome::Ended
                }
                BodyEncoder::Length(0) | BodyEncoder::None => FrameOutcome::Ended,
                // Trailers cannot follow a length-framed body: what came before them is
                // the whole body only if the length agrees.
                BodyEncoder::Length(_) | BodyEncoder::UntilClose => FrameOutcome::Broken,
            }
        }
    }
}
