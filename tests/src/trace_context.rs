//! Trace context headers as a test sends and checks them: W3C `traceparent`, B3 single
//! (`b3`) and multi (`X-B3-*`), and random ids in their lower-case hex form.

use crate::upstream::Echo;

/// 32 hex digits (128 bits), random.
pub fn random_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// 16 hex digits (64 bits), random.
pub fn random_span_id() -> String {
    random_trace_id()[..16].to_owned()
}

/// A parsed `traceparent`: `00-TRACE_ID-PARENT_ID-FLAGS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub parent_id: String,
    /// Two hex digits; `01` is sampled.
    pub flags: String,
}

impl TraceParent {
    /// The header value for a context.
    pub fn header(trace_id: &str, parent_id: &str, sampled: bool) -> String {
        format!(
            "00-{trace_id}-{parent_id}-{}",
            if sampled { "01" } else { "00" }
        )
    }

    /// Parses a version-00 `traceparent` strictly (lower-case hex, non-zero ids).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(value: &str) -> Result<Self, String> {
        let parts: Vec<&str> = value.split('-').collect();
        let [version, trace_id, parent_id, flags] = parts[..] else {
            return Err(format!("traceparent {value:?} has not 4 parts"));
        };
        let ok = version == "00"
            && is_hex_id(trace_id, 32)
            && is_hex_id(parent_id, 16)
            && flags.len() == 2
            && flags.chars().all(is_lower_hex);
        if !ok {
            return Err(format!("traceparent {value:?} is malformed"));
        }
        Ok(Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// The `traceparent` an upstream received.
    ///
    /// # Panics
    /// When it received none, or a malformed one.
    pub fn received(echo: &Echo) -> Self {
        let value = echo
            .header("traceparent")
            .unwrap_or_else(|| panic!("the upstream got no traceparent: {:?}", echo.headers));
        Self::parse(&value).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A B3 context: from the single `b3` header or the `X-B3-*` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct B3 {
    pub trace_id: String,
    pub span_id: String,
    /// `1`, `0`, `d` (debug), or absent (the receiver decides).
    pub sampled: Option<String>,
}

impl B3 {
    /// `b3: {trace_id}-{span_id}-1`.
    pub fn single_header(trace_id: &str, span_id: &str) -> String {
        format!("{trace_id}-{span_id}-1")
    }

    /// The single `b3` header an upstream received, parsed strictly.
    ///
    /// # Panics
    /// When it received none, or a malformed one.
    pub fn received_single(echo: &Echo) -> Self {
        let value = echo
            .header("b3")
            .unwrap_or_else(|| panic!("the upstream got no b3 header: {:?}", echo.headers));
        let parts: Vec<&str> = value.split('-').collect();
        let (trace_id, span_id, sampled) = match parts[..] {
            [t, s] => (t, s, None),
            [t, s, sampled] | [t, s, sampled, _] => (t, s, Some(sampled.to_owned())),
            _ => panic!("b3 {value:?} is malformed"),
        };
        Self::checked(trace_id, span_id, sampled)
    }

    /// The `X-B3-TraceId`, `X-B3-SpanId` and `X-B3-Sampled` headers an upstream received.
    ///
    /// # Panics
    /// When the ids are missing or malformed.
    pub fn received_multi(echo: &Echo) -> Self {
        let get = |name: &str| {
            echo.header(name)
                .unwrap_or_else(|| panic!("the upstream got no {name}: {:?}", echo.headers))
        };
        Self::checked(
            &get("x-b3-traceid"),
            &get("x-b3-spanid"),
            echo.header("x-b3-sampled"),
        )
    }

    fn checked(trace_id: &str, span_id: &str, sampled: Option<String>) -> Self {
        assert!(
            is_hex_id(trace_id, 32) || is_hex_id(trace_id, 16),
            "B3 trace id {trace_id:?} is malformed"
        );
        assert!(
            is_hex_id(span_id, 16),
            "B3 span id {span_id:?} is malformed"
        );
        Self {
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            sampled,
        }
    }
}

fn is_lower_hex(c: char) -> bool {
    c.is_ascii_digit() || ('a'..='f').contains(&c)
}

/// `len` lower-case hex digits, not all zero.
fn is_hex_id(id: &str, len: usize) -> bool {
    id.len() == len && id.chars().all(is_lower_hex) && id.chars().any(|c| c != '0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_refuses_malformed_values() {
        let (trace, span) = (random_trace_id(), random_span_id());
        let parsed = TraceParent::parse(&TraceParent::header(&trace, &span, true)).unwrap();
        assert_eq!((parsed.trace_id, parsed.parent_id), (trace.clone(), span));
        assert_eq!(parsed.flags, "01");
        for bad in [
            format!("01-{trace}-0000000000000001-01"),
            format!("00-{}-0000000000000001-01", "0".repeat(32)),
            format!("00-{}-0000000000000001-01", trace.to_uppercase()),
            format!("00-{trace}-01"),
        ] {
            assert!(TraceParent::parse(&bad).is_err(), "{bad}");
        }
    }
}
