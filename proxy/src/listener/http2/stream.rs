//! One stream's state in the server connection, and the table of the streams in flight.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use tokio::sync::oneshot;

use super::frame::StreamId;
use super::tunnel::StreamOutbox;
use crate::http::client_upgrade::Upgraded;
use crate::http::stream_inbox::StreamInbox;
use crate::listener::http1::Http1Service;

/// A request in flight and its response.
pub struct Stream<S: Http1Service> {
    pub id: StreamId,
    /// Where the client's DATA goes (`None`: the request ended with its head).
    pub inbox: Option<Arc<StreamInbox>>,
    /// The client sent END_STREAM (or broke the stream's rules).
    pub recv_ended: bool,
    /// What the client may still send on the stream before we give credit back.
    pub recv_window: i64,
    /// Bytes of the body the stack read and the client was not credited for yet.
    pub credit: i64,
    /// The body length the request declared, and what came of it so far.
    pub content_length: Option<u64>,
    pub received: u64,
    /// What we may still send on the stream (the client's credit; negative after it
    /// lowered its initial window).
    pub send_window: i64,
    pub response: Response<S>,
    /// The response to a HEAD request: its body is not sent.
    pub head_request: bool,
    /// An extended CONNECT's: where its tunnel goes once it is answered 2xx.
    pub upgrade: Option<oneshot::Sender<Upgraded>>,
    /// It became a tunnel.
    pub tunneled: bool,
}

pub enum Response<S: Http1Service> {
    Pending(S::Future),
    Body {
        body: S::Body,
        /// Data the windows did not let out yet.
        held: Option<Bytes>,
        /// Trailers waiting behind `held`.
        trailers: Option<HeaderMap>,
        /// The body ended behind `held`.
        ended: bool,
    },
    /// An extended CONNECT answered 2xx: what its tunnel writes goes out as DATA.
    Tunnel(Arc<StreamOutbox>),
    /// END_STREAM went out (or the stream was reset).
    Done,
}

impl<S: Http1Service> Stream<S> {
    /// The client has sent all it will (END_STREAM, or it was cut off).
    pub fn recv_closed(&self) -> bool {
        self.recv_ended
    }

    pub fn send_closed(&self) -> bool {
        matches!(self.response, Response::Done)
    }

    /// Answered before the client finished sending, and not a tunnel (whose client may
    /// go on sending after our side ended): the rest of the request is not wanted.
    pub fn answered_early(&self) -> bool {
        self.send_closed() && !self.recv_closed() && !self.tunneled
    }
}

impl<S: Http1Service> Drop for Stream<S> {
    /// A stream forgotten before its end (reset, or its connection gone) breaks off
    /// whatever still reads or writes it.
    fn drop(&mut self) {
        if let Some(inbox) = &self.inbox {
            inbox.close();
        }
        if let Response::Tunnel(outbox) = &self.response {
            outbox.close();
        }
    }
}

/// The streams in flight, by slot (each slot has its own waker, `ready`).
pub struct Streams<S: Http1Service> {
    slots: Vec<Option<Stream<S>>>,
    free: Vec<usize>,
    len: usize,
}

impl<S: Http1Service> Default for Streams<S> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<S: Http1Service> Streams<S> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a stream; its slot.
    pub fn insert(&mut self, stream: Stream<S>) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(stream);
                slot
            }
            None => {
                self.slots.push(Some(stream));
                self.slots.len() - 1
            }
        }
    }

    /// The slot of stream `id`, when it is in flight. A linear search: a connection has
    /// few streams in flight, and comparing integers beats hashing them.
    pub fn slot_of(&self, id: StreamId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.id == id))
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Stream<S>> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    pub fn remove(&mut self, slot: usize) -> Option<Stream<S>> {
        let stream = self.slots.get_mut(slot)?.take()?;
        self.len -= 1;
        self.free.push(slot);
        Some(stream)
    }

    /// The slots in use.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| s.as_ref().map(|_| slot))
    }

    /// Every stream, for a change that concerns them all (a new initial window).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream<S>> {
        self.slots.iter_mut().filter_map(Option::as_mut)
    }

    /// Removes every stream.
    pub fn drain(&mut self) -> impl Iterator<Item = Stream<S>> + '_ {
        self.len = 0;
        self.free.clear();
        let slots = std::mem::take(&mut self.slots);
        slots.into_iter().flatten()
    }
}
