//! The gRPC side of `Discovery.Stream`, by hand where tonic's generated server would
//! copy: requests are decoded by tonic (`Streaming` with prost), but responses arrive
//! already encoded ([`EncodedResponse`], sharing their resources between streams) and
//! go out as HTTP/2 data frames as they are, ending with the `grpc-status` trailers.
//! tonic's server encodes every message into a buffer of its own per stream, which is
//! the copy the shared encoding exists to avoid.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use meshwork_config::discovery::DiscoveryRequest;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codec::{BufferSettings, Streaming};

use super::encoded::EncodedResponse;

/// The gRPC path of meshwork's discovery stream.
pub const STREAM_PATH: &str = "/meshwork.discovery.v1.Discovery/Stream";

/// The requests of a stream, decoded as tonic's server would (4 MiB per message at
/// most, no compression).
pub fn requests(body: hyper::body::Incoming) -> Streaming<DiscoveryRequest> {
    let decoder = tonic_prost::ProstDecoder::<DiscoveryRequest>::new(BufferSettings::default());
    Streaming::new_request(decoder, body, None, None)
}

/// A stream's response: headers now, then each response as it is queued, then the
/// trailers (`grpc-status` 0 when the queue closes, or the error queued).
pub fn response(
    queue: mpsc::Receiver<Result<EncodedResponse, Status>>,
) -> http::Response<tonic::body::Body> {
    let body = ResponseBody {
        queue,
        pieces: VecDeque::new(),
        finished: false,
    };
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A call refused before any response: a trailers-only answer.
pub fn refuse(status: Status) -> http::Response<tonic::body::Body> {
    status.into_http()
}

/// The body of [`response`].
struct ResponseBody {
    queue: mpsc::Receiver<Result<EncodedResponse, Status>>,
    /// Pieces of the current response not yet handed to HTTP/2.
    pieces: VecDeque<Bytes>,
    finished: bool,
}

impl ResponseBody {
    fn trailers(status: &Status) -> Frame<Bytes> {
        let mut trailers = HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            // Only a status whose message cannot be a header value: send the code alone.
            let _ = Status::new(status.code(), "").add_header(&mut trailers);
        }
        Frame::trailers(trailers)
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            if let Some(piece) = self.pieces.pop_front() {
                if piece.is_empty() {
                    continue;
                }
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match ready!(self.queue.poll_recv(cx)) {
                Some(Ok(response)) => self.pieces.extend(response.pieces),
                Some(Err(status)) => {
                    self.finished = true;
                    return Poll::Ready(Some(Ok(Self::trailers(&status))));
                }
                None => {
                    self.finished = true;
                    return Poll::Ready(Some(Ok(Self::trailers(&Status::ok("")))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }
}
