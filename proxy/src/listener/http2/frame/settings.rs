//! SETTINGS parameters (RFC 9113 §6.5.2, RFC 8441 §3): read into typed fields and
//! checked as they are read, and written back out.

use super::encode::FrameSink;
use super::head::{HEAD_LEN, Head, StreamId, kind};
use super::reason::{FrameError, Reason};

/// SETTINGS_HEADER_TABLE_SIZE until the peer says otherwise.
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4_096;
/// SETTINGS_INITIAL_WINDOW_SIZE until the peer says otherwise.
pub const DEFAULT_INITIAL_WINDOW_SIZE: u32 = 65_535;
/// SETTINGS_MAX_FRAME_SIZE until the peer says otherwise, and the least it may say.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The most SETTINGS_MAX_FRAME_SIZE may say: the 24-bit length field's limit.
pub const MAX_MAX_FRAME_SIZE: u32 = 16_777_215;
/// The largest flow-control window (§6.9.1), and so the largest initial window.
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// Parameter identifiers (§6.5.2, RFC 8441 §3).
mod id {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// Bytes per parameter: a 16-bit identifier and a 32-bit value.
const PARAM_LEN: usize = 6;

/// The parameters of one SETTINGS frame: `None` for each the frame did not carry, which
/// the receiver leaves at its current value (a SETTINGS frame changes only what it
/// names). When a frame names one twice, the last value is the one that holds (§6.5.3
/// says they are processed in order), though each is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub header_table_size: Option<u32>,
    pub enable_push: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: Option<bool>,
}

impl Settings {
    /// The parameters of a payload whose length is already known to be a multiple of 6.
    /// Identifiers this list does not know are skipped, as §6.5.2 requires: extensions
    /// announce themselves this way and must not break a peer that predates them.
    pub(super) fn parse(payload: &[u8]) -> Result<Settings, FrameError> {
        let mut settings = Settings::default();
        for param in payload.chunks_exact(PARAM_LEN) {
            if let [i0, i1, v0, v1, v2, v3] = *param {
                let value = u32::from_be_bytes([v0, v1, v2, v3]);
                settings.set(u16::from_be_bytes([i0, i1]), value)?;
            }
        }
        Ok(settings)
    }

    fn set(&mut self, id: u16, value: u32) -> Result<(), FrameError> {
        match id {
            id::HEADER_TABLE_SIZE => self.header_table_size = Some(value),
            id::ENABLE_PUSH => self.enable_push = Some(flag(value, "ENABLE_PUSH not 0 or 1")?),
            id::MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
            id::INITIAL_WINDOW_SIZE => {
                if value > MAX_WINDOW_SIZE {
                    return Err(FrameError::connection(
                        Reason::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE above 2^31-1",
                    ));
                }
                self.initial_window_size = Some(value);
            }
            id::MAX_FRAME_SIZE => {
                if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                    return Err(FrameError::connection(
                        Reason::PROTOCOL_ERROR,
                        "MAX_FRAME_SIZE outside 16384..=16777215",
                    ));
                }
                self.max_frame_size = Some(value);
            }
            id::MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
            id::ENABLE_CONNECT_PROTOCOL => {
                let on = flag(value, "ENABLE_CONNECT_PROTOCOL not 0 or 1")?;
                self.enable_connect_protocol = Some(on);
            }
            _ => {}
        }
        Ok(())
    }

    /// Each parameter that is set, in identifier order.
    fn params(&self) -> impl Iterator<Item = (u16, u32)> {
        [
            (id::HEADER_TABLE_SIZE, self.header_table_size),
            (id::ENABLE_PUSH, self.enable_push.map(u32::from)),
            (id::MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (id::INITIAL_WINDOW_SIZE, self.initial_window_size),
            (id::MAX_FRAME_SIZE, self.max_frame_size),
            (id::MAX_HEADER_LIST_SIZE, self.max_header_list_size),
            (
                id::ENABLE_CONNECT_PROTOCOL,
                self.enable_connect_protocol.map(u32::from),
            ),
        ]
        .into_iter()
        .filter_map(|(id, value)| Some((id, value?)))
    }

    /// Writes a SETTINGS frame carrying each parameter that is set. Values are written
    /// as they are, unchecked: they are ours, and a bad one is the peer's to refuse.
    pub(super) fn encode(&self, dst: &mut impl FrameSink) {
        let len = self.params().count() * PARAM_LEN;
        dst.reserve_frame(HEAD_LEN + len);
        dst.put_slice(&Head::bytes(len, kind::SETTINGS, 0, StreamId::ZERO));
        for (id, value) in self.params() {
            dst.put_u16(id);
            dst.put_u32(value);
        }
    }
}

/// A parameter that can only be on or off.
fn flag(value: u32, detail: &'static str) -> Result<bool, FrameError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FrameError::connection(Reason::PROTOCOL_ERROR, detail)),
    }
}
