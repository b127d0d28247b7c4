//! The 9-byte frame head every HTTP/2 frame starts with (RFC 9113 §4.1), the frame
//! type and flag numbers, and the stream identifier it carries.

use std::fmt;

/// Bytes in a frame head: length (24 bits), type, flags, stream identifier (32 bits).
pub const HEAD_LEN: usize = 9;

/// The largest length the 24-bit length field can carry: no frame, sent or received,
/// is longer, whatever SETTINGS_MAX_FRAME_SIZE says.
pub const MAX_LENGTH: u32 = (1 << 24) - 1;

/// Frame type numbers (RFC 9113 §6, §11.2).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Flag bits. The same bit means different things on different types, hence the
/// per-meaning names; bits a type does not define are ignored on receipt (§4.1).
pub mod flag {
    /// DATA, HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE.
    pub const PADDED: u8 = 0x8;
    /// HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// A stream identifier: 31 bits. The top bit of the field on the wire is reserved;
/// it is dropped when read and never sent (§4.1), so a `StreamId` never holds it and
/// two identifiers that differ only there are the same stream.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(u32);

impl StreamId {
    /// Stream 0: the connection itself.
    pub const ZERO: StreamId = StreamId(0);
    /// The largest identifier; a connection that has used it can open no more streams.
    pub const MAX: StreamId = StreamId(u32::MAX >> 1);

    /// The identifier in the low 31 bits of `id`; the reserved bit is dropped.
    pub const fn new(id: u32) -> Self {
        StreamId(id & Self::MAX.0)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Clients open odd-numbered streams, servers even ones (§5.1.1): a server
    /// receiving a HEADERS on an even stream has a protocol error on its hands.
    pub const fn is_client_initiated(self) -> bool {
        self.0 & 1 == 1
    }
}

impl From<StreamId> for u32 {
    fn from(id: StreamId) -> u32 {
        id.0
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A received frame head, read before its payload is necessarily buffered so that a
/// frame can be refused on its head alone, without waiting for (up to 16 MiB of)
/// payload a hostile peer may never send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: StreamId,
}

impl Head {
    /// The head at the start of `bytes`, if all nine bytes are there.
    pub fn read(bytes: &[u8]) -> Option<Head> {
        let head: &[u8; HEAD_LEN] = bytes.get(..HEAD_LEN)?.try_into().ok()?;
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *head;
        Some(Head {
            len: u32::from_be_bytes([0, l0, l1, l2]),
            kind,
            flags,
            stream: StreamId::new(u32::from_be_bytes([s0, s1, s2, s3])),
        })
    }

    pub fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The head's nine bytes. Lengths come from our own buffers, not the peer: one that
    /// does not fit the 24-bit field is a bug in the caller, and a panic is better
    /// than a truncated length that would make the peer read the rest of the frame
    /// (or a body's bytes) as the next frame's head.
    pub fn bytes(len: usize, kind: u8, flags: u8, stream: StreamId) -> [u8; HEAD_LEN] {
        assert!(
            len <= MAX_LENGTH as usize,
            "HTTP/2 frame payload of {len} bytes does not fit the 24-bit length field"
        );
        let [_, l0, l1, l2] = (len as u32).to_be_bytes();
        let [s0, s1, s2, s3] = stream.get().to_be_bytes();
        [l0, l1, l2, kind, flags, s0, s1, s2, s3]
    }
}
