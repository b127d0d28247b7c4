//! The response body given to hyper: either the upstream's body streamed through
//! untouched, or a small body the proxy wrote itself (errors, direct responses).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::cluster::pool::UpstreamBody;

use super::client_body::{ClientBody, ClientBodyError};
use super::client_fault::{ClientFault, ClientFaultCell};
use super::tee::BodyTee;

pin_project_lite::pin_project! {
    /// Streams without buffering: frames (data and trailers) pass through as they come.
    #[project = ResponseBodyProj]
    #[derive(Debug)]
    pub enum ResponseBody {
        Upstream { #[pin] body: UpstreamBody },
        Full { data: Option<Bytes> },
    }
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        ResponseBody::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }

    pub fn empty() -> Self {
        ResponseBody::Full { data: None }
    }
}

impl From<UpstreamBody> for ResponseBody {
    fn from(body: UpstreamBody) -> Self {
        ResponseBody::Upstream { body }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        match self.project() {
            ResponseBodyProj::Upstream { body } => body.poll_frame(cx),
            ResponseBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream { body } => body.is_end_stream(),
            ResponseBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { body } => body.size_hint(),
            ResponseBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The request body on its way upstream, counting the bytes read from the client for
    /// metrics and access logs. Frames (data and trailers) are forwarded as they arrive,
    /// or replayed from a buffer when the request may be retried.
    #[project = RequestBodyProj]
    #[derive(Debug)]
    pub enum RequestBody {
        /// Straight from the client.
        Streaming {
            #[pin]
            inner: ClientBody,
            record: Option<std::sync::Arc<crate::observe::RequestRecord>>,
            // A route `mirror`'s copy of the body, taken as frames go by.
            tee: Option<Box<BodyTee>>,
            // Where a client's error is recorded for the attempt sending the body.
            faults: Option<std::sync::Arc<ClientFaultCell>>,
        },
        /// A whole body held for replay (cheap to clone).
        Replay {
            data: Option<Bytes>,
            trailers: Option<http::HeaderMap>,
        },
        /// The part read while trying to buffer, then the rest from the client.
        Prefixed {
            prefix: Option<Bytes>,
            #[pin]
            rest: ClientBody,
            record: Option<std::sync::Arc<crate::observe::RequestRecord>>,
            // Saw the prefix already; copies the rest.
            tee: Option<Box<BodyTee>>,
            faults: Option<std::sync::Arc<ClientFaultCell>>,
        },
    }
}

impl RequestBody {
    pub fn new(
        inner: impl Into<ClientBody>,
        record: Option<std::sync::Arc<crate::observe::RequestRecord>>,
    ) -> Self {
        RequestBody::Streaming {
            inner: inner.into(),
            record,
            tee: None,
            faults: None,
        }
    }

    /// Where this body will record it if its client breaks it, for the attempt about to
    /// send it; `None` for a body that cannot break any more (whole, or already ended).
    pub fn watch_client_faults(&mut self) -> Option<std::sync::Arc<ClientFaultCell>> {
        if Body::is_end_stream(self) {
            return None;
        }
        match self {
            RequestBody::Streaming { faults, .. } | RequestBody::Prefixed { faults, .. } => {
                Some(faults.get_or_insert_with(Default::default).clone())
            }
            RequestBody::Replay { .. } => None,
        }
    }

    /// Copies the body for a mirror as it streams. `false` (and the tee dropped) when
    /// the body is already whole (a replay buffer), where there is nothing to watch.
    pub fn tee(&mut self, tee: BodyTee) -> bool {
        match self {
            RequestBody::Streaming { tee: slot, .. } | RequestBody::Prefixed { tee: slot, .. } => {
                *slot = Some(Box::new(tee));
                true
            }
            RequestBody::Replay { .. } => false,
        }
    }

    pub fn replay(data: Bytes, trailers: Option<http::HeaderMap>) -> Self {
        RequestBody::Replay {
            data: (!data.is_empty()).then_some(data),
            trailers,
        }
    }
}

/// Counts a frame read from the client and hands it to the mirror's tee, if any; an
/// error is the client's, recorded for the attempt sending the body.
fn observe(
    record: &Option<std::sync::Arc<crate::observe::RequestRecord>>,
    tee: &mut Option<Box<BodyTee>>,
    faults: &Option<std::sync::Arc<ClientFaultCell>>,
    frame: &Poll<Option<Result<Frame<Bytes>, ClientBodyError>>>,
    ended: bool,
) {
    match frame {
        Poll::Ready(Some(Ok(f))) => {
            if let (Some(data), Some(record)) = (f.data_ref(), record) {
                record.add_request_bytes(data.len());
            }
            if let Some(tee) = tee {
                tee.frame(f);
                // hyper stops polling a body that says it is at its end.
                if ended {
                    tee.end();
                }
            }
        }
        Poll::Ready(None) => {
            if let Some(tee) = tee {
                tee.end();
            }
        }
        Poll::Ready(Some(Err(error))) => {
            if let Some(tee) = tee {
                tee.abandon();
            }
            if let Some(faults) = faults {
                faults.record(ClientFault::of(error));
            }
        }
        Poll::Pending => {}
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.project() {
            RequestBodyProj::Streaming {
                mut inner,
                record,
                tee,
                faults,
            } => {
                let frame = inner.as_mut().poll_frame(cx);
                observe(record, tee, faults, &frame, inner.is_end_stream());
                frame
            }
            RequestBodyProj::Replay { data, trailers } => Poll::Ready(match data.take() {
                Some(d) => Some(Ok(Frame::data(d))),
                None => trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            RequestBodyProj::Prefixed {
                prefix,
                mut rest,
                record,
                tee,
                faults,
            } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                let frame = rest.as_mut().poll_frame(cx);
                observe(record, tee, faults, &frame, rest.is_end_stream());
                frame
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming { inner, .. } => inner.is_end_stream(),
            RequestBody::Replay { data, trailers } => data.is_none() && trailers.is_none(),
            RequestBody::Prefixed { prefix, rest, .. } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming { inner, .. } => inner.size_hint(),
            RequestBody::Replay { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RequestBody::Prefixed { prefix, rest, .. } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}
