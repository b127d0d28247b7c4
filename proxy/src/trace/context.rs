//! Trace context propagation: W3C Trace Context and B3 (single and multi header), read
//! from the incoming request and written on each upstream attempt.

use http::{HeaderMap, HeaderName, HeaderValue};
use meshwork_config::model::Propagation;
use opentelemetry::trace::{SpanId, TraceId};

use super::traceparent::{self, InvalidTraceParent};
use super::tracestate;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// The context a request arrived with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: TraceId,
    pub parent_span_id: SpanId,
    /// The caller's sampling decision, when it made one (B3 may defer).
    pub sampled: Option<bool>,
    pub tracestate: Option<HeaderValue>,
}

/// Reads the first context found, in the order `propagation` lists the formats.
pub fn extract(headers: &HeaderMap, propagation: &[Propagation]) -> Option<Incoming> {
    propagation.iter().find_map(|p| match p {
        Propagation::W3c => extract_w3c(headers),
        Propagation::B3 => extract_b3_single(headers).or_else(|| extract_b3_multi(headers)),
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A B3 trace id. B3 allows 64-bit trace ids: left-pad to 128 bits.
fn trace_id(hex: &str) -> Option<TraceId> {
    if !(hex.len() == 32 || hex.len() == 16) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = TraceId::from_hex(hex).ok()?;
    (id != TraceId::INVALID).then_some(id)
}

/// A B3 span id.
fn span_id(hex: &str) -> Option<SpanId> {
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = SpanId::from_hex(hex).ok()?;
    (id != SpanId::INVALID).then_some(id)
}

/// `traceparent` and `tracestate` (W3C Trace Context §3.2, §3.3). A `traceparent` that
/// breaks a rule, or comes in more than one field, is ignored — the trace restarts and
/// its `tracestate` goes with it (§4.3); a `tracestate` that breaks one is dropped alone.
fn extract_w3c(headers: &HeaderMap) -> Option<Incoming> {
    let mut fields = headers.get_all(TRACEPARENT).iter();
    let first = fields.next()?;
    let parsed = match fields.next() {
        Some(_) => Err(InvalidTraceParent::Repeated),
        None => traceparent::parse(first.as_bytes()),
    };
    let parent = match parsed {
        Ok(parent) => parent,
        Err(why) => {
            tracing::debug!(%why, "traceparent ignored; the trace restarts");
            return None;
        }
    };
    let tracestate = tracestate::combine(headers.get_all(TRACESTATE)).unwrap_or_else(|why| {
        tracing::debug!(%why, "tracestate dropped");
        None
    });
    Some(Incoming {
        trace_id: parent.trace_id,
        parent_span_id: parent.parent_id,
        sampled: Some(parent.sampled),
        tracestate,
    })
}

fn b3_sampled(token: &str) -> Option<bool> {
    match token {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`.
fn extract_b3_single(headers: &HeaderMap) -> Option<Incoming> {
    let value = header_str(headers, &B3)?;
    let mut parts = value.split('-');
    let trace = trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let sampled = parts.next().and_then(b3_sampled);
    Some(Incoming {
        trace_id: trace,
        parent_span_id: span,
        sampled,
        tracestate: None,
    })
}

fn extract_b3_multi(headers: &HeaderMap) -> Option<Incoming> {
    let trace = trace_id(header_str(headers, &B3_TRACE_ID)?)?;
    let span = span_id(header_str(headers, &B3_SPAN_ID)?)?;
    let debug = header_str(headers, &B3_FLAGS) == Some("1");
    let sampled = if debug {
        Some(true)
    } else {
        header_str(headers, &B3_SAMPLED).and_then(b3_sampled)
    };
    Some(Incoming {
        trace_id: trace,
        parent_span_id: span,
        sampled,
        tracestate: None,
    })
}

/// What the upstream is told: this trace, with the attempt's span as parent.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    pub tracestate: Option<&'a HeaderValue>,
}

/// Whether a header is one of those [`inject`] replaces (names are lowercase).
fn is_trace_header(name: &str) -> bool {
    matches!(name, "traceparent" | "tracestate" | "b3") || name.starts_with("x-b3-")
}

/// Lowercase hex of the ids, written into one buffer: `trace(32) span(16)`.
struct HexIds([u8; 48]);

/// Lowercase hex of `bytes` into `out` (twice as long): by hand, as `{:x}` on a `u128`
/// goes through the formatting machinery, a few hundred instructions per id.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// A trace id as its 32 lowercase hex digits (as W3C trace context and logs write it).
pub fn trace_id_hex(id: TraceId) -> [u8; 32] {
    let mut out = [0u8; 32];
    write_hex(&id.to_bytes(), &mut out);
    out
}

impl HexIds {
    fn new(trace: TraceId, span: SpanId) -> Self {
        let mut out = [0u8; 48];
        write_hex(&trace.to_bytes(), &mut out[..32]);
        write_hex(&span.to_bytes(), &mut out[32..]);
        Self(out)
    }

    fn trace(&self) -> &[u8] {
        &self.0[..32]
    }

    fn span(&self) -> &[u8] {
        &self.0[32..]
    }
}

/// A header value of hex digits, dashes and flags (always valid), assembled from parts.
fn value(parts: &[&[u8]]) -> HeaderValue {
    let mut buf = [0u8; 64];
    let mut len = 0;
    for part in parts {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    HeaderValue::from_bytes(&buf[..len]).expect("hex ids and dashes are valid header values")
}

/// Replaces every trace header with the context for one upstream attempt, in every
/// configured format ("read any of them, write all of them").
pub fn inject(headers: &mut HeaderMap, out: &Outgoing<'_>, propagation: &[Propagation]) {
    // Most requests carry no trace header; looking for one is cheaper than eight removals.
    let carried = headers.keys().any(|name| is_trace_header(name.as_str()));
    for name in [
        &TRACEPARENT,
        &TRACESTATE,
        &B3,
        &B3_TRACE_ID,
        &B3_SPAN_ID,
        &B3_PARENT_SPAN_ID,
        &B3_SAMPLED,
        &B3_FLAGS,
    ] {
        if !carried {
            break;
        }
        headers.remove(name);
    }
    let ids = HexIds::new(out.trace_id, out.span_id);
    for p in propagation {
        match p {
            Propagation::W3c => {
                let flags: &[u8] = if out.sampled { b"01" } else { b"00" };
                let parent = value(&[b"00-", ids.trace(), b"-", ids.span(), b"-", flags]);
                headers.insert(TRACEPARENT, parent);
                if let Some(state) = out.tracestate {
                    headers.insert(TRACESTATE, state.clone());
                }
            }
            Propagation::B3 => {
                let sampled: &[u8] = if out.sampled { b"1" } else { b"0" };
                headers.insert(B3, value(&[ids.trace(), b"-", ids.span(), b"-", sampled]));
                headers.insert(B3_TRACE_ID, value(&[ids.trace()]));
                headers.insert(B3_SPAN_ID, value(&[ids.span()]));
                headers.insert(
                    B3_SAMPLED,
                    HeaderValue::from_static(if out.sampled { "1" } else { "0" }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &[Propagation] = &[Propagation::W3c, Propagation::B3];

    /// A header map holding every pair, repeated names as separate fields.
    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn w3c_traceparent_is_read_with_its_flags_and_state() {
        let h = headers(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "vendor=x"),
        ]);
        let ctx = extract(&h, BOTH).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(ctx.sampled, Some(true));
        assert_eq!(ctx.tracestate.unwrap(), "vendor=x");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E473G-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "0.-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(
                extract(&headers(&[("traceparent", bad)]), &[Propagation::W3c]).is_none(),
                "{bad}"
            );
        }
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn two_traceparent_fields_restart_the_trace_even_when_equal() {
        for second in [
            PARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01",
        ] {
            let h = headers(&[("traceparent", PARENT), ("traceparent", second)]);
            assert_eq!(extract(&h, &[Propagation::W3c]), None, "{second}");
        }
    }

    #[test]
    fn a_w3c_context_ignored_leaves_b3_to_be_read() {
        let h = headers(&[
            ("traceparent", PARENT),
            ("traceparent", PARENT),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ]);
        let ctx = extract(&h, BOTH).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(ctx.tracestate, None);
    }

    #[test]
    fn several_tracestate_fields_are_combined() {
        let h = headers(&[
            ("traceparent", PARENT),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1"),
        ]);
        let ctx = extract(&h, &[Propagation::W3c]).unwrap();
        assert_eq!(ctx.tracestate.unwrap(), "foo=1,bar=2,rojo=1");
    }

    #[test]
    fn an_invalid_tracestate_is_dropped_and_the_traceparent_kept() {
        let h = headers(&[("traceparent", PARENT), ("tracestate", "FOO=1")]);
        let ctx = extract(&h, &[Propagation::W3c]).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.tracestate, None);
    }

    #[test]
    fn a_tracestate_without_a_valid_traceparent_is_not_read() {
        let bad_parent = PARENT.replace("-01", "-0g");
        for h in [
            headers(&[("tracestate", "foo=1")]),
            headers(&[("traceparent", &bad_parent), ("tracestate", "foo=1")]),
        ] {
            assert_eq!(extract(&h, &[Propagation::W3c]), None);
        }
    }

    #[test]
    fn only_the_sampled_flag_is_propagated() {
        let h = headers(&[("traceparent", &PARENT.replace("-01", "-ff"))]);
        let ctx = extract(&h, &[Propagation::W3c]).unwrap();
        assert_eq!(ctx.sampled, Some(true));
        let mut out = HeaderMap::new();
        let outgoing = Outgoing {
            trace_id: ctx.trace_id,
            span_id: SpanId::from_hex("e457b5a2e4d86bd1").unwrap(),
            sampled: true,
            tracestate: None,
        };
        inject(&mut out, &outgoing, &[Propagation::W3c]);
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-e457b5a2e4d86bd1-01"
        );
    }

    #[test]
    fn a_higher_version_is_written_back_as_version_00() {
        let h = headers(&[("traceparent", &format!("cc{}-future", &PARENT[2..]))]);
        let ctx = extract(&h, &[Propagation::W3c]).unwrap();
        let mut out = HeaderMap::new();
        let outgoing = Outgoing {
            trace_id: ctx.trace_id,
            span_id: ctx.parent_span_id,
            sampled: true,
            tracestate: None,
        };
        inject(&mut out, &outgoing, &[Propagation::W3c]);
        assert_eq!(out["traceparent"], PARENT);
    }

    #[test]
    fn every_tracestate_field_is_replaced_by_the_combined_one() {
        let mut h = headers(&[("tracestate", "a=1"), ("tracestate", "b=2")]);
        let state = HeaderValue::from_static("a=1,b=2");
        let outgoing = Outgoing {
            trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            span_id: SpanId::from_hex("e457b5a2e4d86bd1").unwrap(),
            sampled: true,
            tracestate: Some(&state),
        };
        inject(&mut h, &outgoing, &[Propagation::W3c]);
        let states: Vec<_> = h.get_all("tracestate").iter().collect();
        assert_eq!(states, [&state]);
    }

    #[test]
    fn b3_single_and_multi_are_read_and_64_bit_ids_padded() {
        let single = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        let ctx = extract(&single, BOTH).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(ctx.sampled, Some(true));
        let multi = headers(&[
            ("x-b3-traceid", "64fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "0"),
        ]);
        let ctx = extract(&multi, BOTH).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "000000000000000064fe8b2a57d3eff7");
        assert_eq!(ctx.sampled, Some(false));
        let deferred = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")]);
        assert_eq!(extract(&deferred, BOTH).unwrap().sampled, None);
    }

    #[test]
    fn only_configured_formats_are_read() {
        let h = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        assert!(extract(&h, &[Propagation::W3c]).is_none());
    }

    #[test]
    fn injection_writes_every_configured_format_and_drops_stale_headers() {
        let mut h = headers(&[
            ("x-b3-parentspanid", "1111111111111111"),
            ("traceparent", "stale"),
        ]);
        let out = Outgoing {
            trace_id: TraceId::from_hex("80f198ee56343ba864fe8b2a57d3eff7").unwrap(),
            span_id: SpanId::from_hex("e457b5a2e4d86bd1").unwrap(),
            sampled: true,
            tracestate: None,
        };
        inject(&mut h, &out, BOTH);
        assert_eq!(
            h["traceparent"],
            "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01"
        );
        assert_eq!(
            h["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
        );
        assert_eq!(h["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(h["x-b3-sampled"], "1");
        assert!(h.get("x-b3-parentspanid").is_none());

        // A format that is not written is still removed; other headers stay.
        let mut h = headers(&[("x-b3-flags", "1"), ("accept", "*/*")]);
        inject(&mut h, &out, &[Propagation::W3c]);
        assert!(h.get("x-b3-flags").is_none());
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h.len(), 2, "{h:?}");
    }
}
