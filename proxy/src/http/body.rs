//! The response body given to hyper: either the upstream's body streamed through
//! untouched, or a small body the proxy wrote itself (errors, direct responses).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// Streams without buffering: frames (data and trailers) pass through as they come.
    #[project = ResponseBodyProj]
    #[derive(Debug)]
    pub enum ResponseBody {
        Upstream { #[pin] body: Incoming },
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

impl From<Incoming> for ResponseBody {
    fn from(body: Incoming) -> Self {
        ResponseBody::Upstream { body }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
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
    /// The request body on its way upstream, counting the bytes that pass for metrics and
    /// access logs; frames (data and trailers) are forwarded as they arrive.
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        record: Option<std::sync::Arc<crate::observe::RequestRecord>>,
    }
}

impl RequestBody {
    pub fn new(
        inner: Incoming,
        record: Option<std::sync::Arc<crate::observe::RequestRecord>>,
    ) -> Self {
        Self { inner, record }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(f))), Some(record)) = (&frame, this.record) {
            if let Some(data) = f.data_ref() {
                record.add_request_bytes(data.len());
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
