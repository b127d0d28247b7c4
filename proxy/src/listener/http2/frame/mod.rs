//! HTTP/2 frames (RFC 9113 §4, §6): decoding what a client sends, encoding what the
//! server answers.
//!
//! This layer knows one frame at a time: it enforces every rule RFC 9113 §6 states of a
//! frame on its own (lengths, stream 0 or not, padding, setting values) and leaves the
//! rules that need the connection's state (stream states, CONTINUATION sequencing,
//! flow-control windows, the preface's SETTINGS) to the connection. Decoding faces
//! hostile clients on a proxy's hot path, so it is strict and cheap: a frame is refused
//! on its head alone when the head suffices (no waiting for a payload a bad frame
//! announced), and what must outlive the read buffer (bodies, field block fragments,
//! GOAWAY debug data) is a `Bytes` slice of it, never a copy.
//!
//! Encoding writes into the connection's output buffer; a DATA frame's payload can
//! stay out of it ([`encode_data_head`]) and go out in the same vectored write.

mod decode;
mod encode;
mod head;
mod reason;
mod settings;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use self::{
    decode::{decode, take_preface},
    encode::{
        encode_data_head, encode_goaway, encode_header_block, encode_ping, encode_rst_stream,
        encode_settings, encode_settings_ack, encode_window_update,
    },
    head::StreamId,
    reason::{FrameError, Reason},
    settings::{
        DEFAULT_HEADER_TABLE_SIZE, DEFAULT_INITIAL_WINDOW_SIZE, DEFAULT_MAX_FRAME_SIZE,
        MAX_WINDOW_SIZE, Settings,
    },
};
// What only the tests use by these names.
#[cfg(test)]
pub use self::{
    decode::PREFACE,
    encode::{encode_data, encode_headers},
    head::{HEAD_LEN, MAX_LENGTH},
    settings::MAX_MAX_FRAME_SIZE,
};

/// One decoded frame. Flags and fields a type does not define are gone: the receiver
/// must ignore them (§4.1), and dropping them here means nothing later can trip on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: StreamId,
        end_stream: bool,
        /// The body bytes, without the padding.
        data: Bytes,
        /// The whole payload's length, pad length byte and padding included: that is
        /// what counts against both flow-control windows (§6.1), and what the
        /// connection must give back in WINDOW_UPDATEs even when it drops `data`.
        flow_len: u32,
    },
    Headers {
        stream: StreamId,
        end_stream: bool,
        /// Without it, CONTINUATION frames follow, and nothing else may come between.
        end_headers: bool,
        /// RFC 9113 deprecates the signal (§5.3.2) and meshwork ignores it, but it is
        /// kept for the connection to see; a dependency on the frame's own stream has
        /// already been refused.
        priority: Option<Priority>,
        /// Field block fragment for HPACK, padding removed.
        fragment: Bytes,
    },
    Priority {
        stream: StreamId,
        priority: Priority,
    },
    RstStream {
        stream: StreamId,
        code: Reason,
    },
    /// A SETTINGS frame with parameters (possibly none), to apply and acknowledge.
    Settings(Settings),
    /// A SETTINGS frame with ACK: the peer applied the last SETTINGS we sent. Its own
    /// variant rather than a flag on [`Settings`], as it has no parameters and calls for
    /// a different action.
    SettingsAck,
    /// Only a server sends these (§8.4): decoded so that the connection sees the frame
    /// whole and refuses it with a connection PROTOCOL_ERROR.
    PushPromise {
        stream: StreamId,
        end_headers: bool,
        promised: StreamId,
        fragment: Bytes,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: StreamId,
        code: Reason,
        debug: Bytes,
    },
    WindowUpdate {
        /// Stream 0 is the connection's window.
        stream: StreamId,
        /// Never 0: a zero increment is refused.
        increment: u32,
    },
    Continuation {
        stream: StreamId,
        end_headers: bool,
        fragment: Bytes,
    },
    /// A frame of a type RFC 9113 does not define (an extension's), consumed whole.
    /// The connection ignores it (§5.5), except between a HEADERS and its last
    /// CONTINUATION, where any other frame is a connection PROTOCOL_ERROR (§6.10): the
    /// reason it is returned rather than silently skipped.
    Unknown {
        kind: u8,
        stream: StreamId,
    },
}

impl Frame {
    /// The stream the frame was sent on; 0 for the connection-wide types.
    #[cfg(test)]
    pub fn stream(&self) -> StreamId {
        match *self {
            Frame::Data { stream, .. }
            | Frame::Headers { stream, .. }
            | Frame::Priority { stream, .. }
            | Frame::RstStream { stream, .. }
            | Frame::PushPromise { stream, .. }
            | Frame::WindowUpdate { stream, .. }
            | Frame::Continuation { stream, .. }
            | Frame::Unknown { stream, .. } => stream,
            Frame::Settings(_) | Frame::SettingsAck | Frame::Ping { .. } | Frame::GoAway { .. } => {
                StreamId::ZERO
            }
        }
    }
}

/// A stream's priority as RFC 7540 §5.3 defined it, sent in HEADERS and PRIORITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub dependency: StreamId,
    pub exclusive: bool,
    /// As on the wire: one less than the weight (1..=256) it stands for.
    pub weight: u8,
}
