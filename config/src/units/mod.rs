//! Values written as text: durations, sizes, HTTP names (addresses and host patterns
//! are in `address.rs`).
//!
//! Each parser returns the value or a message saying what is wrong with the text, what
//! was expected and, where we can guess, what to write instead.

mod address;
mod service;

use std::time::Duration;

pub use address::{check_dns_name, parse_address, parse_host_match, parse_socket_addr};
pub use service::{ServicePort, is_dns_label, parse_service_port};

/// Units a duration may have, with their length in nanoseconds.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// `250ms`, `5s`, `1.5s`, `2m`, `1h`, `1h30m`, `100us`, `10ns`. Bare numbers are refused
/// with a hint (`25` -> try "25ms"; below 10 -> try "5s").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("expected a duration, got an empty string (e.g. \"5s\")".to_string());
    }
    let numeric = t.chars().all(|c| c.is_ascii_digit() || c == '.');
    if let Some(n) = t.parse::<f64>().ok().filter(|_| numeric) {
        let unit = if n >= 10.0 { "ms" } else { "s" };
        return Err(format!("{text:?} is not a duration (try \"{t}{unit}\")"));
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        if unit.starts_with(char::is_whitespace) {
            return Err(format!(
                "{text:?} is not a duration (write the unit right after the number, e.g. \"{number}{}\")",
                unit.trim()
                    .chars()
                    .next()
                    .map_or("s".to_string(), |c| c.to_string())
            ));
        }
        if number.is_empty() {
            return Err(format!(
                "{text:?} is not a duration (expected a number with a unit: 250ms, 5s, 2m, 1h)"
            ));
        }
        let Some((_, nanos)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!(
                    "{text:?} is not a duration: {number:?} has no unit (use ns, us, ms, s, m or h)"
                )
            } else {
                format!(
                    "{text:?} is not a duration: unknown unit {unit:?} (use ns, us, ms, s, m or h)"
                )
            });
        };
        total =
            total
                .checked_add(scaled(number, *nanos).ok_or_else(|| {
                    format!("{text:?} is not a duration: {number:?} is not a number")
                })?)
                .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| format!("{text:?} is too long a duration"))?;
    // The remainder is below 10^9, so it fits.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// `number` (decimal digits, at most one `.`) times `unit` nanoseconds, truncated.
fn scaled(number: &str, unit: u128) -> Option<u128> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut value = whole.checked_mul(unit)?;
    let mut scale = unit;
    for d in frac.chars().take(18) {
        scale /= 10;
        value = value.checked_add(u128::from(d.to_digit(10)?) * scale)?;
    }
    Some(value)
}

/// Units a size may have, with their length in bytes.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// `512B`, `64KiB`, `1MiB`, `1GiB` (powers of 1024); `KB`, `MB`, `GB` are powers of 1000.
/// Whole numbers only; bare numbers are refused with a hint.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a size (expected a whole number with a unit: 512B, 64KiB, 1MiB)"
        ));
    }
    if unit.is_empty() {
        return Err(format!(
            "{text:?} is not a size (try \"{number}B\" or \"{number}KiB\")"
        ));
    }
    let Some((_, scale)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(format!(
            "{text:?} is not a size: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
        ));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*scale))
        .ok_or_else(|| format!("{text:?} is too large a size"))
}

/// A header name (any case; stored lower-case).
pub fn parse_header_name(text: &str) -> Result<http::HeaderName, String> {
    http::HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
        format!("{text:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)")
    })
}

/// A header value (visible ASCII, spaces and tabs; no line breaks).
pub fn parse_header_value(text: &str) -> Result<http::HeaderValue, String> {
    http::HeaderValue::from_str(text).map_err(|_| {
        format!("{text:?} is not a valid header value (no control characters or line breaks)")
    })
}

/// A protocol name a route may allow in `upgrades` (RFC 9110 §7.8: a token, without a
/// version), lower-cased. `h2c` is refused: its tunnel would carry HTTP/2 past every
/// route and policy.
pub fn parse_upgrade_protocol(text: &str) -> Result<String, String> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if text.is_empty() || !text.bytes().all(is_tchar) {
        return Err(format!(
            "{text:?} is not a protocol name (letters, digits and !#$%&'*+-.^_`|~ only, no version), e.g. \"websocket\""
        ));
    }
    if text.eq_ignore_ascii_case("h2c") {
        return Err(
            "\"h2c\" can never be allowed: a client speaking HTTP/2 through the tunnel would bypass every route and policy (to reach an upstream over HTTP/2, set `protocol: http2` on its cluster)"
                .to_string(),
        );
    }
    Ok(text.to_ascii_lowercase())
}

/// An HTTP method name: an upper-case token such as `GET`.
pub fn parse_method(text: &str) -> Result<String, String> {
    if http::Method::from_bytes(text.as_bytes()).is_err() || text.is_empty() {
        return Err(format!("{text:?} is not an HTTP method name"));
    }
    let upper = text.to_ascii_uppercase();
    if upper != text {
        return Err(format!(
            "{text:?} is not an HTTP method name: methods are upper-case (try {upper:?})"
        ));
    }
    Ok(upper)
}

/// An HTTP status code from 100 to 599.
pub fn parse_status(code: u16) -> Result<http::StatusCode, String> {
    if !(100..=599).contains(&code) {
        return Err(format!(
            "{code} is not an HTTP status (expected 100 to 599)"
        ));
    }
    http::StatusCode::from_u16(code).map_err(|_| format!("{code} is not an HTTP status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("10ns"), Ok(Duration::from_nanos(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bare_numbers_are_refused_with_a_hint() {
        assert_eq!(
            parse_duration("25"),
            Err(r#""25" is not a duration (try "25ms")"#.to_string())
        );
        assert_eq!(
            parse_duration("5"),
            Err(r#""5" is not a duration (try "5s")"#.to_string())
        );
    }

    #[test]
    fn bad_durations_say_why() {
        let err = |t| parse_duration(t).expect_err(t);
        assert!(err("5sec").contains(r#"unknown unit "sec""#));
        assert!(err("ms").contains("expected a number with a unit"));
        assert_eq!(
            err("10 seconds"),
            r#""10 seconds" is not a duration (write the unit right after the number, e.g. "10s")"#
        );
        assert!(err("-5s").contains("is not a duration"));
        assert!(err("1.2.3s").contains("is not a number"));
        assert!(err("").contains("empty"));
        assert!(err("99999999999999999999h").contains("too long"));
    }

    #[test]
    fn sizes_are_binary_or_decimal() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("2 MB"), Ok(2_000_000));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(
            parse_size("65536"),
            Err(r#""65536" is not a size (try "65536B" or "65536KiB")"#.to_string())
        );
        assert!(
            parse_size("64kb")
                .expect_err("kb")
                .contains(r#"unknown unit "kb""#)
        );
        assert!(
            parse_size("1.5MiB")
                .expect_err("frac")
                .contains("unknown unit")
        );
        assert!(
            parse_size("KiB")
                .expect_err("none")
                .contains("whole number")
        );
        assert!(
            parse_size("99999999999999999999GiB")
                .expect_err("big")
                .contains("too large")
        );
    }

    #[test]
    fn header_names_values_methods_and_statuses() {
        assert_eq!(parse_header_name("X-Env").expect("name").as_str(), "x-env");
        assert!(parse_header_name("x env").is_err());
        assert!(parse_header_value("a\nb").is_err());
        assert_eq!(parse_method("GET"), Ok("GET".to_string()));
        assert!(
            parse_method("get")
                .expect_err("case")
                .contains(r#"try "GET""#)
        );
        assert!(parse_method("GE T").is_err());
        assert!(parse_status(99).is_err());
        assert!(parse_status(600).is_err());
        assert_eq!(parse_status(503).expect("status").as_u16(), 503);
    }
}
