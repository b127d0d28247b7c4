//! The W3C `traceparent` header (Trace Context Level 1 §3.2), read strictly: a value
//! that breaks any rule is not used, and the trace restarts (§3.2.2, §4.3).
//!
//! Version `00` is exactly `00-<trace-id>-<parent-id>-<trace-flags>`, lowercase hex,
//! 55 characters. A higher version is read from its first 55 characters when they
//! follow version 00's layout and are followed by the end or a dash (§3.2.4); what
//! follows is never looked at. Only the `sampled` flag is read; the proxy writes its
//! own `traceparent` (version `00`, with the other flags zero, §3.2.2.5).

use opentelemetry::trace::{SpanId, TraceId};

use super::trim_ows;

/// Characters in a version-00 `traceparent`.
const VERSION_00_LEN: usize = 55;
/// The `sampled` bit of `trace-flags`.
const SAMPLED: u8 = 0x01;

/// What a usable `traceparent` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub sampled: bool,
}

/// Why a `traceparent` is not used (the trace restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTraceParent {
    #[error("more than one traceparent field")]
    Repeated,
    #[error("not visible ASCII")]
    NotAscii,
    #[error("the version is not two lowercase hex digits followed by a dash")]
    Version,
    #[error("version ff is forbidden")]
    ForbiddenVersion,
    #[error("version 00 is exactly 55 characters")]
    Version00Length,
    #[error("a higher version shorter than 55 characters")]
    TooShort,
    #[error("the trace-id is not 32 lowercase hex digits followed by a dash")]
    TraceId,
    #[error("the trace-id is all zeros")]
    ZeroTraceId,
    #[error("the parent-id is not 16 lowercase hex digits followed by a dash")]
    ParentId,
    #[error("the parent-id is all zeros")]
    ZeroParentId,
    #[error("the trace-flags are not two lowercase hex digits at the end or before a dash")]
    Flags,
}

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Lowercase hex digits to bytes (checked by the caller).
fn hex_bytes<const N: usize>(hex: &[u8]) -> [u8; N] {
    let digit = |b: u8| {
        if b.is_ascii_digit() {
            b - b'0'
        } else {
            b - b'a' + 10
        }
    };
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    out
}

/// Reads one `traceparent` field value.
///
/// # Errors
/// The first rule it breaks.
pub fn parse(value: &[u8]) -> Result<TraceParent, InvalidTraceParent> {
    let b = trim_ows(value);
    if !b.iter().all(|c| (0x20..0x7f).contains(c)) {
        return Err(InvalidTraceParent::NotAscii);
    }
    if b.len() < 3 || !is_lower_hex(&b[..2]) || b[2] != b'-' {
        return Err(InvalidTraceParent::Version);
    }
    match &b[..2] {
        b"ff" => return Err(InvalidTraceParent::ForbiddenVersion),
        b"00" if b.len() != VERSION_00_LEN => return Err(InvalidTraceParent::Version00Length),
        _ if b.len() < VERSION_00_LEN => return Err(InvalidTraceParent::TooShort),
        _ => {}
    }
    let (trace, parent, flags) = (&b[3..35], &b[36..52], &b[53..55]);
    if !is_lower_hex(trace) || b[35] != b'-' {
        return Err(InvalidTraceParent::TraceId);
    }
    if !is_lower_hex(parent) || b[52] != b'-' {
        return Err(InvalidTraceParent::ParentId);
    }
    if !is_lower_hex(flags) || b.get(55).is_some_and(|&c| c != b'-') {
        return Err(InvalidTraceParent::Flags);
    }
    let trace_id = TraceId::from_bytes(hex_bytes(trace));
    if trace_id == TraceId::INVALID {
        return Err(InvalidTraceParent::ZeroTraceId);
    }
    let parent_id = SpanId::from_bytes(hex_bytes(parent));
    if parent_id == SpanId::INVALID {
        return Err(InvalidTraceParent::ZeroParentId);
    }
    let [flags] = hex_bytes::<1>(flags);
    Ok(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & SAMPLED != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvalidTraceParent as Invalid;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    fn parsed(value: &str) -> Result<TraceParent, InvalidTraceParent> {
        parse(value.as_bytes())
    }

    fn ids(value: &str) -> (String, String, bool) {
        let p = parsed(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        (p.trace_id.to_string(), p.parent_id.to_string(), p.sampled)
    }

    #[test]
    fn a_version_00_traceparent_gives_its_trace_id_parent_id_and_sampled_flag() {
        assert_eq!(
            ids(&format!("00-{TRACE}-{PARENT}-01")),
            (TRACE.into(), PARENT.into(), true)
        );
        assert!(!ids(&format!("00-{TRACE}-{PARENT}-00")).2);
    }

    #[test]
    fn optional_whitespace_around_the_value_is_ignored() {
        for value in [
            format!(" 00-{TRACE}-{PARENT}-01"),
            format!("\t00-{TRACE}-{PARENT}-01"),
            format!("00-{TRACE}-{PARENT}-01 "),
            format!("00-{TRACE}-{PARENT}-01\t"),
            format!("\t 00-{TRACE}-{PARENT}-01 \t"),
        ] {
            assert_eq!(ids(&value).0, TRACE, "{value:?}");
        }
    }

    #[test]
    fn the_version_must_be_two_lowercase_hex_digits_then_a_dash() {
        for version in [".0", "0.", "0", "000", "0000", "0A", "A0", "g0", ""] {
            let value = format!("{version}-{TRACE}-{PARENT}-01");
            assert_eq!(parsed(&value), Err(Invalid::Version), "{value:?}");
        }
        assert_eq!(parsed("00"), Err(Invalid::Version));
    }

    #[test]
    fn version_ff_is_forbidden() {
        let value = format!("ff-{TRACE}-{PARENT}-01");
        assert_eq!(parsed(&value), Err(Invalid::ForbiddenVersion));
    }

    #[test]
    fn version_00_has_nothing_after_its_flags() {
        for tail in [".", "-", "-what-the-future-will-be-like", "0"] {
            let value = format!("00-{TRACE}-{PARENT}-01{tail}");
            assert_eq!(parsed(&value), Err(Invalid::Version00Length), "{value:?}");
        }
    }

    #[test]
    fn a_higher_version_is_read_from_its_first_55_characters() {
        for value in [
            format!("cc-{TRACE}-{PARENT}-01"),
            format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
            format!("01-{TRACE}-{PARENT}-00-"),
            format!("fe-{TRACE}-{PARENT}-01-x"),
        ] {
            assert_eq!(ids(&value).0, TRACE, "{value:?}");
        }
        assert!(!ids(&format!("01-{TRACE}-{PARENT}-00-")).2);
    }

    #[test]
    fn a_higher_version_must_end_or_have_a_dash_after_its_flags() {
        let value = format!("cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like");
        assert_eq!(parsed(&value), Err(Invalid::Flags));
        let value = format!("cc-{TRACE}-{PARENT}-010");
        assert_eq!(parsed(&value), Err(Invalid::Flags));
    }

    #[test]
    fn a_higher_version_shorter_than_55_characters_is_not_read() {
        let value = format!("cc-{TRACE}-{PARENT}-1");
        assert_eq!(parsed(&value), Err(Invalid::TooShort));
    }

    #[test]
    fn the_trace_id_must_be_32_lowercase_hex_digits() {
        for trace in [
            ".2345678901234567890123456789012",
            "1234567890123456789012345678901.",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "4bf92f3577b34da6a3ce929d0e0e473G",
        ] {
            let value = format!("00-{trace}-{PARENT}-01");
            assert_eq!(parsed(&value), Err(Invalid::TraceId), "{value:?}");
        }
        // Too long or too short: version 00 is then not 55 characters long, and a
        // higher version has its dash in the wrong place.
        for trace in [&format!("{TRACE}3"), &TRACE[..31]] {
            let value = format!("00-{trace}-{PARENT}-01");
            assert_eq!(parsed(&value), Err(Invalid::Version00Length), "{value:?}");
            let value = format!("cc-{trace}-{PARENT}-01-x");
            assert_eq!(parsed(&value), Err(Invalid::TraceId), "{value:?}");
        }
    }

    #[test]
    fn an_all_zero_trace_id_is_invalid() {
        let value = format!("00-{}-{PARENT}-01", "0".repeat(32));
        assert_eq!(parsed(&value), Err(Invalid::ZeroTraceId));
    }

    #[test]
    fn the_parent_id_must_be_16_lowercase_hex_digits() {
        for parent in [".234567890123456", "123456789012345.", "00F067AA0BA902B7"] {
            let value = format!("00-{TRACE}-{parent}-01");
            assert_eq!(parsed(&value), Err(Invalid::ParentId), "{value:?}");
        }
        for parent in ["12345678901234567", "123456789012345"] {
            let value = format!("00-{TRACE}-{parent}-01");
            assert_eq!(parsed(&value), Err(Invalid::Version00Length), "{value:?}");
            let value = format!("cc-{TRACE}-{parent}-01-x");
            assert_eq!(parsed(&value), Err(Invalid::ParentId), "{value:?}");
        }
    }

    #[test]
    fn an_all_zero_parent_id_is_invalid() {
        let value = format!("00-{TRACE}-{}-01", "0".repeat(16));
        assert_eq!(parsed(&value), Err(Invalid::ZeroParentId));
    }

    #[test]
    fn the_trace_flags_must_be_two_lowercase_hex_digits() {
        for flags in [".0", "0.", "0A", "zz"] {
            let value = format!("00-{TRACE}-{PARENT}-{flags}");
            assert_eq!(parsed(&value), Err(Invalid::Flags), "{value:?}");
        }
        for flags in ["001", "1"] {
            let value = format!("00-{TRACE}-{PARENT}-{flags}");
            assert_eq!(parsed(&value), Err(Invalid::Version00Length), "{value:?}");
        }
    }

    #[test]
    fn only_the_sampled_bit_of_the_flags_is_read() {
        for (flags, sampled) in [("01", true), ("03", true), ("ff", true), ("02", false)] {
            let value = format!("00-{TRACE}-{PARENT}-{flags}");
            assert_eq!(ids(&value).2, sampled, "{value:?}");
        }
    }

    #[test]
    fn bytes_outside_visible_ascii_make_it_invalid() {
        let mut value = format!("00-{TRACE}-{PARENT}-01").into_bytes();
        value[10] = 0xe9;
        assert_eq!(parse(&value), Err(Invalid::NotAscii));
    }
}
