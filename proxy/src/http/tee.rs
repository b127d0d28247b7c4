//! A copy of a request body taken as its frames stream past to the upstream, for a
//! route's `mirror`: bounded in size, and never waited on by the client's request.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Frame;
use tokio::sync::oneshot;

/// The largest request body copied for a mirror (64 KiB); a longer body is not mirrored.
/// The copy is held in memory until the client's body ends, so this bounds what each
/// mirrored request costs (Envoy's shadowing buffers the body the same way).
pub const MAX_MIRRORED_BODY: usize = 64 * 1024;

/// A whole request body, as the mirror sends it.
#[derive(Debug)]
pub struct CopiedBody {
    pub data: Bytes,
    pub trailers: Option<HeaderMap>,
}

/// Collects the frames of a request body as they are read. When the body ends within
/// the limit the copy goes to the receiver; when it grows past the limit, fails, or is
/// dropped unfinished, the receiver sees the sender gone.
#[derive(Debug)]
pub struct BodyTee {
    data: BytesMut,
    trailers: Option<HeaderMap>,
    limit: usize,
    done: Option<oneshot::Sender<CopiedBody>>,
}

impl BodyTee {
    pub fn new(limit: usize) -> (Self, oneshot::Receiver<CopiedBody>) {
        let (tx, rx) = oneshot::channel();
        let tee = Self {
            data: BytesMut::new(),
            trailers: None,
            limit,
            done: Some(tx),
        };
        (tee, rx)
    }

    /// Copies one frame read from the client.
    pub fn frame(&mut self, frame: &Frame<Bytes>) {
        if self.done.is_none() {
            return;
        }
        if let Some(data) = frame.data_ref() {
            if self.data.len() + data.len() > self.limit {
                self.abandon();
                return;
            }
            self.data.extend_from_slice(data);
        } else if let Some(trailers) = frame.trailers_ref() {
            self.trailers = Some(trailers.clone());
        }
    }

    /// The body ended: hands over the copy.
    pub fn end(&mut self) {
        if let Some(done) = self.done.take() {
            let copy = CopiedBody {
                data: std::mem::take(&mut self.data).freeze(),
                trailers: self.trailers.take(),
            };
            // The mirror may have given up waiting; nothing to do then.
            let _ = done.send(copy);
        }
    }

    /// No copy will be made (too large, or the client's body failed).
    pub fn abandon(&mut self) {
        self.done = None;
        self.data = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_within_the_limit_is_copied_with_its_trailers() {
        let (mut tee, mut rx) = BodyTee::new(10);
        tee.frame(&Frame::data(Bytes::from_static(b"hello ")));
        tee.frame(&Frame::data(Bytes::from_static(b"you")));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        tee.frame(&Frame::trailers(trailers.clone()));
        tee.end();
        let copy = rx.try_recv().unwrap();
        assert_eq!(copy.data, "hello you");
        assert_eq!(copy.trailers, Some(trailers));
    }

    #[test]
    fn a_body_past_the_limit_is_not_copied() {
        let (mut tee, mut rx) = BodyTee::new(4);
        tee.frame(&Frame::data(Bytes::from_static(b"hello")));
        tee.end();
        assert!(matches!(
            rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn an_unfinished_body_is_not_copied() {
        let (mut tee, mut rx) = BodyTee::new(100);
        tee.frame(&Frame::data(Bytes::from_static(b"hel")));
        drop(tee);
        assert!(matches!(
            rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
