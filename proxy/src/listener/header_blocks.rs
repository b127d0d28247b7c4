//! Spots when an HTTP/2 request head (a header block) starts and ends in the bytes a
//! client sends, so that `header_read_timeout` holds on HTTP/2 as it does on HTTP/1.
//!
//! hyper hands the proxy a request only once its whole header block has arrived, and
//! has no head timeout for HTTP/2: a HEADERS frame without END_HEADERS whose
//! CONTINUATION never comes, or a HEADERS frame whose payload trickles in, is invisible
//! above the socket. So the socket reader walks the frame headers (RFC 9113 §4.1) as
//! the bytes go by, skipping payloads without looking at them: a header block begins
//! with the type byte of a HEADERS frame and ends when the whole frame carrying
//! END_HEADERS (HEADERS or CONTINUATION) has been read. A header block must be
//! contiguous — no other frame may come between its frames (§6.10) — so a connection
//! has at most one open at a time, and an open one blocks the whole connection.
//! No allocation; a fixed 9-byte buffer for a frame header split across reads.

/// The client connection preface, skipped before the first frame (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// A change in whether a header block is being received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEvent {
    /// The first frame of a header block has begun.
    Began,
    /// The frame carrying END_HEADERS has been read whole.
    Ended,
}

#[derive(Debug, Clone)]
pub struct HeaderBlockScanner {
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    payload_left: usize,
    /// The frame being read ends its header block once its payload is whole.
    ends_block: bool,
    open: bool,
}

impl Default for HeaderBlockScanner {
    fn default() -> Self {
        Self {
            preface_left: PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            payload_left: 0,
            ends_block: false,
            open: false,
        }
    }
}

impl HeaderBlockScanner {
    /// Feeds the next bytes from the client, reporting each change in order.
    pub fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(BlockEvent)) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                if self.payload_left == 0 {
                    self.frame_done(&mut on);
                }
            } else {
                self.header[self.header_len] = bytes[0];
                self.header_len += 1;
                bytes = &bytes[1..];
                self.header_byte(&mut on);
            }
        }
    }

    fn header_byte(&mut self, on: &mut impl FnMut(BlockEvent)) {
        // The type is the fourth byte: a slow HEADERS frame counts from there.
        if self.header_len == 4 && self.header[3] == HEADERS && !self.open {
            self.open = true;
            on(BlockEvent::Began);
        }
        if self.header_len < FRAME_HEADER_LEN {
            return;
        }
        let [l0, l1, l2, kind, flags, ..] = self.header;
        self.header_len = 0;
        self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        self.ends_block = matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0;
        if self.payload_left == 0 {
            self.frame_done(on);
        }
    }

    fn frame_done(&mut self, on: &mut impl FnMut(BlockEvent)) {
        if self.ends_block && self.open {
            self.open = false;
            on(BlockEvent::Ended);
        }
        self.ends_block = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    /// The events for `bytes` fed `chunk` bytes at a time.
    fn events(bytes: &[u8], chunk: usize) -> Vec<BlockEvent> {
        let mut s = HeaderBlockScanner::default();
        let mut out = Vec::new();
        for c in bytes.chunks(chunk) {
            s.feed(c, |e| out.push(e));
        }
        out
    }

    fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, &[0, 3, 0, 0, 0, 100]));
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn a_whole_headers_frame_begins_and_ends_a_block_in_any_split() {
        let bytes = connection(&[frame(HEADERS, END_HEADERS | 0x1, b"\x82\x86\x84")]);
        for chunk in [1, 2, 5, 9, 24, bytes.len()] {
            assert_eq!(
                events(&bytes, chunk),
                [BlockEvent::Began, BlockEvent::Ended],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_headers_frame_without_end_headers_stays_open_until_its_continuation_is_whole() {
        let open = connection(&[frame(HEADERS, 0x1, b"\x82\x86")]);
        assert_eq!(events(&open, 3), [BlockEvent::Began]);
        let mut closed = open.clone();
        closed.extend(frame(CONTINUATION, 0, b"\x84"));
        assert_eq!(
            events(&closed, 3),
            [BlockEvent::Began],
            "no END_HEADERS yet"
        );
        let continuation = frame(CONTINUATION, END_HEADERS, b"\x84\x84");
        closed.extend_from_slice(&continuation[..continuation.len() - 1]);
        assert_eq!(events(&closed, 3), [BlockEvent::Began], "not whole yet");
        closed.push(continuation[continuation.len() - 1]);
        assert_eq!(events(&closed, 3), [BlockEvent::Began, BlockEvent::Ended]);
    }

    #[test]
    fn a_block_begins_at_the_type_byte_of_a_trickled_headers_frame() {
        let bytes = connection(&[frame(HEADERS, END_HEADERS, b"\x82\x86\x84")]);
        let type_byte = PREFACE.len() + 15 + 4;
        let mut s = HeaderBlockScanner::default();
        let mut seen = Vec::new();
        s.feed(&bytes[..type_byte - 1], |e| seen.push(e));
        assert!(seen.is_empty());
        s.feed(&bytes[type_byte - 1..type_byte], |e| seen.push(e));
        assert_eq!(seen, [BlockEvent::Began]);
        s.feed(&bytes[type_byte..bytes.len() - 1], |e| seen.push(e));
        assert_eq!(seen, [BlockEvent::Began], "payload not whole yet");
    }

    #[test]
    fn other_frames_and_their_payloads_are_skipped() {
        // DATA whose payload looks like a HEADERS frame header, PING, WINDOW_UPDATE,
        // then trailers.
        let fake = frame(HEADERS, 0, b"");
        let bytes = connection(&[
            frame(HEADERS, END_HEADERS, b"\x82"),
            frame(0x0, 0, &fake),
            frame(0x6, 0, &[0; 8]),
            frame(0x8, 0, &[0, 0, 1, 0]),
            frame(HEADERS, END_HEADERS | 0x1, b"\x40"),
        ]);
        for chunk in [1, 4, 7, bytes.len()] {
            assert_eq!(
                events(&bytes, chunk),
                [
                    BlockEvent::Began,
                    BlockEvent::Ended,
                    BlockEvent::Began,
                    BlockEvent::Ended
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn an_empty_headers_frame_with_end_headers_ends_at_once() {
        let bytes = connection(&[frame(HEADERS, END_HEADERS, b"")]);
        assert_eq!(events(&bytes, 9), [BlockEvent::Began, BlockEvent::Ended]);
    }
}
