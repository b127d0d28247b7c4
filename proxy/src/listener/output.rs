//! What a server connection has to write to its client: frame and head bytes copied
//! into one buffer, longer body pieces queued as they are, all written with vectored
//! writes in order.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

/// Response pieces at most this long are copied next to their framing (one write for a
/// head and a small body); longer ones are written from where they are.
const COPY_MAX: usize = 4 * 1024;

/// Bytes waiting to be written, in order: `queued` pieces, then `tail` from `tail_at`.
#[derive(Debug, Default)]
pub struct Output {
    queued: VecDeque<Bytes>,
    /// The newest bytes (heads, framing, small body pieces).
    tail: Vec<u8>,
    tail_at: usize,
    /// Written and not flushed since (TLS: in the session's buffer).
    unflushed: bool,
}

impl Output {
    /// Where heads and framing are written.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    pub fn len(&self) -> usize {
        self.queued.iter().map(Bytes::len).sum::<usize>() + self.tail.len() - self.tail_at
    }

    pub fn has_pending(&self) -> bool {
        !self.queued.is_empty() || self.tail_at < self.tail.len()
    }

    /// Nothing to write and nothing unflushed.
    pub fn is_idle(&self) -> bool {
        !self.has_pending() && !self.unflushed
    }

    /// Queues a piece of body.
    pub fn push(&mut self, data: Bytes) {
        if data.len() <= COPY_MAX {
            self.tail.extend_from_slice(&data);
            return;
        }
        if self.tail_at < self.tail.len() {
            let unwritten = Bytes::from(std::mem::take(&mut self.tail)).slice(self.tail_at..);
            self.queued.push_back(unwritten);
        }
        self.tail.clear();
        self.tail_at = 0;
        self.queued.push_back(data);
    }

    /// Writes everything to `io`, then flushes.
    pub fn poll_write_all<I: AsyncWrite + Unpin>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.has_pending() {
            let mut slices = [IoSlice::new(&[]); 16];
            let mut n = 0;
            for piece in self.queued.iter().take(slices.len() - 1) {
                slices[n] = IoSlice::new(piece);
                n += 1;
            }
            if self.tail_at < self.tail.len() {
                slices[n] = IoSlice::new(&self.tail[self.tail_at..]);
                n += 1;
            }
            let mut written =
                std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unflushed = true;
            while written > 0 {
                if let Some(front) = self.queued.front_mut() {
                    let n = written.min(front.len());
                    front.advance(n);
                    written -= n;
                    if front.is_empty() {
                        self.queued.pop_front();
                    }
                } else {
                    self.tail_at += written;
                    written = 0;
                }
            }
        }
        self.tail.clear();
        self.tail_at = 0;
        if self.unflushed {
            std::task::ready!(Pin::new(&mut *io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_go_out_in_order_whether_copied_or_queued() {
        let mut out = Output::default();
        out.tail().extend_from_slice(b"head;");
        out.push(Bytes::from_static(b"small;"));
        out.push(Bytes::from(vec![b'x'; COPY_MAX + 1]));
        out.tail().extend_from_slice(b";end");
        let mut sink = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(
            out.poll_write_all(&mut sink, &mut cx),
            Poll::Ready(Ok(()))
        ));
        let expected = [&b"head;small;"[..], &vec![b'x'; COPY_MAX + 1], b";end"].concat();
        assert_eq!(sink, expected);
        assert!(out.is_idle());
    }
}
