//! Spans written straight into OTLP protobuf as they are built.
//!
//! Building `opentelemetry_proto` structs first would cost an allocation per attribute
//! key and value and a second pass to encode them; here each field is encoded once, into
//! one buffer per span, and the exporter concatenates the buffers into a request. The
//! field numbers are those of `opentelemetry/proto/trace/v1/trace.proto` and
//! `common/v1/common.proto`; the tests decode the result with the generated types.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::encoding::{WireType, encoded_len_varint};

// Span
const TRACE_ID: u32 = 1;
const SPAN_ID: u32 = 2;
const PARENT_SPAN_ID: u32 = 4;
const NAME: u32 = 5;
const KIND: u32 = 6;
const START_TIME: u32 = 7;
const END_TIME: u32 = 8;
const ATTRIBUTES: u32 = 9;
const STATUS: u32 = 15;
// KeyValue
const KEY: u32 = 1;
const VALUE: u32 = 2;
// AnyValue
const STRING_VALUE: u32 = 1;
const INT_VALUE: u32 = 3;
// Status
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;

/// One span, encoded as an OTLP `Span` message (without its own field header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSpan(pub Vec<u8>);

/// Builds one span; fields are encoded as they are added.
#[derive(Debug)]
pub struct SpanBuilder {
    buf: Vec<u8>,
}

impl SpanBuilder {
    /// `name` is given in parts (`["GET", " ", "route"]`) so it needs no formatting.
    pub fn new(
        name: &[&str],
        kind: SpanKind,
        trace_id: TraceId,
        span_id: SpanId,
        parent: Option<SpanId>,
    ) -> Self {
        let mut buf = Vec::with_capacity(512);
        bytes_field(TRACE_ID, &trace_id.to_bytes(), &mut buf);
        bytes_field(SPAN_ID, &span_id.to_bytes(), &mut buf);
        if let Some(parent) = parent {
            bytes_field(PARENT_SPAN_ID, &parent.to_bytes(), &mut buf);
        }
        let name_len = name.iter().map(|p| p.len()).sum::<usize>();
        field_key(NAME, WireType::LengthDelimited, &mut buf);
        varint(name_len as u64, &mut buf);
        for part in name {
            buf.extend_from_slice(part.as_bytes());
        }
        field_key(KIND, WireType::Varint, &mut buf);
        varint(kind as u64, &mut buf);
        Self { buf }
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        let any_value = delimited_len(STRING_VALUE, value.len());
        self.attribute(key, any_value);
        bytes_field(STRING_VALUE, value.as_bytes(), &mut self.buf);
        self
    }

    pub fn int(mut self, key: &str, value: i64) -> Self {
        // int64 is encoded as the two's complement varint of its 64 bits.
        let any_value = 1 + encoded_len_varint(value as u64);
        self.attribute(key, any_value);
        field_key(INT_VALUE, WireType::Varint, &mut self.buf);
        varint(value as u64, &mut self.buf);
        self
    }

    /// Marks the span failed (call at most once).
    pub fn error(mut self, message: &str) -> Self {
        let code = StatusCode::Error as u64;
        let len = delimited_len(STATUS_MESSAGE, message.len()) + 1 + encoded_len_varint(code);
        field_key(STATUS, WireType::LengthDelimited, &mut self.buf);
        varint(len as u64, &mut self.buf);
        bytes_field(STATUS_MESSAGE, message.as_bytes(), &mut self.buf);
        field_key(STATUS_CODE, WireType::Varint, &mut self.buf);
        varint(code, &mut self.buf);
        self
    }

    /// The finished span: started at `start` (wall clock), lasting `elapsed` (monotonic).
    pub fn finish(mut self, start: SystemTime, elapsed: Duration) -> EncodedSpan {
        for (field, time) in [(START_TIME, start), (END_TIME, start + elapsed)] {
            field_key(field, WireType::SixtyFourBit, &mut self.buf);
            self.buf.extend_from_slice(&unix_nanos(time).to_le_bytes());
        }
        EncodedSpan(self.buf)
    }

    /// The header of a `KeyValue` attribute and its key, up to its `AnyValue`'s content.
    fn attribute(&mut self, key: &str, any_value_len: usize) {
        let key_value_len = delimited_len(KEY, key.len()) + delimited_len(VALUE, any_value_len);
        field_key(ATTRIBUTES, WireType::LengthDelimited, &mut self.buf);
        varint(key_value_len as u64, &mut self.buf);
        bytes_field(KEY, key.as_bytes(), &mut self.buf);
        field_key(VALUE, WireType::LengthDelimited, &mut self.buf);
        varint(any_value_len as u64, &mut self.buf);
    }
}

/// A field's key: every field number used here is below 16, so a key is one byte.
#[inline]
fn field_key(field: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    debug_assert!(field < 16);
    buf.push(((field << 3) | wire_type as u32) as u8);
}

#[inline]
fn varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// The encoded size of a length-delimited field with `len` bytes of content.
pub fn delimited_len(field: u32, len: usize) -> usize {
    debug_assert!(field < 16, "a one-byte key");
    1 + encoded_len_varint(len as u64) + len
}

/// Writes a length-delimited field (bytes, string or an already encoded message).
pub fn bytes_field(field: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    field_key(field, WireType::LengthDelimited, buf);
    varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use prost::Message;

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn spans_decode_as_the_otlp_messages_they_stand_for() {
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let parent = SpanId::from_hex("a3ce929d0e0e4736").unwrap();
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        // A value long enough (> 127 bytes) to need a two-byte length varint.
        let long = "x".repeat(300);
        let encoded = SpanBuilder::new(
            &["GET", " ", "api"],
            SpanKind::Client,
            trace_id,
            span_id,
            Some(parent),
        )
        .str("url.path", &long)
        .int("http.response.status_code", 503)
        .int("negative", -7)
        .str("empty", "")
        .error("upstream answered 503")
        .finish(start, Duration::from_micros(1500));

        let decoded = Span::decode(encoded.0.as_slice()).unwrap();
        let expected = Span {
            trace_id: trace_id.to_bytes().to_vec(),
            span_id: span_id.to_bytes().to_vec(),
            parent_span_id: parent.to_bytes().to_vec(),
            name: "GET api".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 1_700_000_000_123_456_789,
            end_time_unix_nano: 1_700_000_000_124_956_789,
            attributes: vec![
                attribute("url.path", any_value::Value::StringValue(long.clone())),
                attribute("http.response.status_code", any_value::Value::IntValue(503)),
                attribute("negative", any_value::Value::IntValue(-7)),
                attribute("empty", any_value::Value::StringValue(String::new())),
            ],
            status: Some(Status {
                message: "upstream answered 503".into(),
                code: StatusCode::Error as i32,
            }),
            ..Default::default()
        };
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_root_span_has_no_parent() {
        let encoded = SpanBuilder::new(
            &["GET"],
            SpanKind::Server,
            TraceId::from_hex("01").unwrap(),
            SpanId::from_hex("02").unwrap(),
            None,
        )
        .finish(UNIX_EPOCH, Duration::ZERO);
        let decoded = Span::decode(encoded.0.as_slice()).unwrap();
        assert!(decoded.parent_span_id.is_empty());
        assert_eq!(decoded.name, "GET");
        assert_eq!(decoded.kind, SpanKind::Server as i32);
        assert!(decoded.status.is_none());
    }
}
