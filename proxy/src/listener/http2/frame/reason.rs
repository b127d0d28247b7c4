//! Error codes (RFC 9113 §7) and the errors decoding a frame can end in: of the whole
//! connection (§5.4.1) or of one stream (§5.4.2).

use std::fmt;

use super::head::StreamId;

/// An error code, as carried by RST_STREAM and GOAWAY. Any 32-bit value can arrive:
/// codes this list does not name must not trigger special behaviour (§7), so they are
/// kept as they came rather than refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const SETTINGS_TIMEOUT: Reason = Reason(0x4);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    pub const INADEQUATE_SECURITY: Reason = Reason(0xc);
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);

    /// The code's name in RFC 9113 §7, for logs; `None` for a code it does not define.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Reason::NO_ERROR => "NO_ERROR",
            Reason::PROTOCOL_ERROR => "PROTOCOL_ERROR",
            Reason::INTERNAL_ERROR => "INTERNAL_ERROR",
            Reason::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
            Reason::SETTINGS_TIMEOUT => "SETTINGS_TIMEOUT",
            Reason::STREAM_CLOSED => "STREAM_CLOSED",
            Reason::FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
            Reason::REFUSED_STREAM => "REFUSED_STREAM",
            Reason::CANCEL => "CANCEL",
            Reason::COMPRESSION_ERROR => "COMPRESSION_ERROR",
            Reason::CONNECT_ERROR => "CONNECT_ERROR",
            Reason::ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
            Reason::INADEQUATE_SECURITY => "INADEQUATE_SECURITY",
            Reason::HTTP_1_1_REQUIRED => "HTTP_1_1_REQUIRED",
            _ => return None,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown error code {:#x}", self.0),
        }
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Reason({name})"),
            None => write!(f, "Reason({:#x})", self.0),
        }
    }
}

/// Why a received frame was refused, and how far the damage reaches. `detail` names
/// the rule that was broken: for logs, and for a GOAWAY's debug data, as a bare error
/// code rarely tells the peer's developer what they did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The connection cannot go on: send GOAWAY with `reason` and close. Nothing was
    /// consumed from the read buffer, as nothing after the bad frame will be read.
    #[error("HTTP/2 connection error {reason}: {detail}")]
    Connection {
        reason: Reason,
        detail: &'static str,
    },
    /// Only `stream` is broken: send RST_STREAM with `reason` and read on. The frame
    /// was consumed whole, so the next `decode` starts at the next frame.
    #[error("HTTP/2 stream {stream} error {reason}: {detail}")]
    Stream {
        stream: StreamId,
        reason: Reason,
        detail: &'static str,
    },
}

impl FrameError {
    pub fn reason(&self) -> Reason {
        match *self {
            FrameError::Connection { reason, .. } | FrameError::Stream { reason, .. } => reason,
        }
    }

    pub fn detail(&self) -> &'static str {
        match *self {
            FrameError::Connection { detail, .. } | FrameError::Stream { detail, .. } => detail,
        }
    }

    pub(super) const fn connection(reason: Reason, detail: &'static str) -> Self {
        FrameError::Connection { reason, detail }
    }

    pub(super) const fn stream(stream: StreamId, reason: Reason, detail: &'static str) -> Self {
        FrameError::Stream {
            stream,
            reason,
            detail,
        }
    }
}
