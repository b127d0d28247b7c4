//! Serialization of the model's foreign types in the config's own notation (durations as
//! `"250ms"`, sizes in bytes, header names as text), so `/config` reads like the YAML.

use std::time::Duration;

use serde::Serializer;

/// `Duration` -> `"1h"`, `"2m"`, `"5s"`, `"250ms"`, `"10us"`: the largest unit that is exact.
pub fn duration_text(d: &Duration) -> String {
    let nanos = d.as_nanos();
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if nanos == 0 {
        return "0s".into();
    }
    for (size, unit) in UNITS {
        if nanos % size == 0 {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

pub fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&duration_text(d))
}

pub fn opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&duration_text(d)),
        None => s.serialize_none(),
    }
}

pub fn status<S: Serializer>(code: &http::StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(code.as_u16())
}

pub fn header_name<S: Serializer>(name: &http::HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_str())
}

pub fn header_names<S: Serializer>(names: &[http::HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(|n| n.as_str()))
}

/// A list of values shown as their text (`10.0.0.0/8`).
pub fn display_list<S: Serializer, T: std::fmt::Display>(
    items: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(ToString::to_string))
}

/// Header edits as a map `name: value` (values that are not text are shown lossily).
pub fn header_pairs<S: Serializer>(
    pairs: &[(http::HeaderName, http::HeaderValue)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(n, v)| {
        (
            n.as_str(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration_text(&Duration::from_secs(3600)), "1h");
        assert_eq!(duration_text(&Duration::from_secs(90)), "90s");
        assert_eq!(duration_text(&Duration::from_secs(120)), "2m");
        assert_eq!(duration_text(&Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(&Duration::from_micros(1500)), "1500us");
        assert_eq!(duration_text(&Duration::ZERO), "0s");
    }
}
