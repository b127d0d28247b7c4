//! A JSON object written field by field into a byte buffer.
//!
//! Access log lines are flat objects of strings, integers and nulls, mostly of text that
//! needs no escaping (names from the config, ids, addresses): writing them directly,
//! with a scan for characters that need escaping before copying each string, costs a
//! fraction of going through serde's serializer for every field.

use std::time::Duration;

#[derive(Debug)]
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Ends the object and the line.
    pub fn end(self) {
        self.out.extend_from_slice(b"}\n");
    }

    #[inline]
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.key(key);
        string(self.out, value);
        self
    }

    /// A string, or `null` when absent.
    #[inline]
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    /// A string written by `write` (which must write nothing that needs escaping).
    #[inline]
    pub fn raw_str(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.key(key);
        self.out.push(b'"');
        write(self.out);
        self.out.push(b'"');
        self
    }

    #[inline]
    pub fn null(&mut self, key: &'static str) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(b"null");
        self
    }

    #[inline]
    pub fn uint(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Milliseconds with microsecond precision, as a JSON number (`1.5`, `2.0`, `0.123`).
    pub fn millis(&mut self, key: &'static str, value: Duration) -> &mut Self {
        self.key(key);
        let micros = value.as_micros();
        let mut digits = itoa::Buffer::new();
        self.out
            .extend_from_slice(digits.format(micros / 1000).as_bytes());
        self.out.push(b'.');
        let fraction = micros % 1000;
        let fraction = [fraction / 100, fraction / 10 % 10, fraction % 10];
        let kept = fraction
            .iter()
            .rposition(|d| *d != 0)
            .map_or(1, |last| last + 1);
        for d in &fraction[..kept] {
            self.out.push(b'0' + *d as u8);
        }
        self
    }

    #[inline]
    fn key(&mut self, key: &'static str) {
        if !std::mem::take(&mut self.empty) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
}

/// `b` in every byte of a word.
const fn repeat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// Whether any byte of `w` is below `n` (n <= 128): the classic bit trick, exact about
/// whether there is one.
const fn has_byte_below(w: u64, n: u8) -> bool {
    w.wrapping_sub(repeat(n)) & !w & repeat(0x80) != 0
}

const fn has_byte(w: u64, b: u8) -> bool {
    has_byte_below(w ^ repeat(b), 1)
}

/// Whether a string holds a `"`, a `\` or a control character, checked a word at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    words
        .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")))
        .any(|w| has_byte_below(w, 0x20) || has_byte(w, b'"') || has_byte(w, b'\\'))
        || rest.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A JSON string literal: `"`, `\` and control characters escaped, the rest (UTF-8
/// included) copied as it is.
fn string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b if b < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                b => out.push(b),
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn object(fill: impl FnOnce(&mut JsonObject<'_>)) -> Value {
        let mut out = Vec::new();
        let mut object = JsonObject::new(&mut out);
        fill(&mut object);
        object.end();
        assert!(out.ends_with(b"}\n"));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn hostile_strings_come_back_exactly() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{1f}h/é✓😀";
        let v = object(|o| {
            o.str("nasty", nasty).str("plain", "GET").str("empty", "");
        });
        assert_eq!(v, json!({"nasty": nasty, "plain": "GET", "empty": ""}));
    }

    #[test]
    fn the_word_at_a_time_scan_agrees_with_a_byte_loop() {
        let slow = |b: &[u8]| b.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        let mut cases: Vec<Vec<u8>> = vec![b"".to_vec(), b"plain ascii text/v1?x=1".to_vec()];
        // Every byte value at every position of a 17-byte string (two words and a rest).
        for pos in 0..17 {
            for b in 0..=255u8 {
                let mut v = b"abcdefghijklmnopq".to_vec();
                v[pos] = b;
                cases.push(v);
            }
        }
        for case in cases {
            assert_eq!(needs_escape(&case), slow(&case), "{case:?}");
        }
    }

    #[test]
    fn numbers_nulls_and_raw_strings() {
        let v = object(|o| {
            o.uint("zero", 0)
                .uint("big", u64::MAX)
                .opt_str("none", None)
                .opt_str("some", Some("x"))
                .raw_str("raw", |out| {
                    out.extend_from_slice(b"2026-12-02T17:11:30.123Z")
                });
        });
        assert_eq!(
            v,
            json!({"zero": 0, "big": u64::MAX, "none": null, "some": "x",
                   "raw": "2026-12-02T17:11:30.123Z"})
        );
    }

    #[test]
    fn milliseconds_keep_microseconds_without_trailing_zeros() {
        for (micros, expected) in [
            (1500, "1.5"),
            (2000, "2.0"),
            (123, "0.123"),
            (120, "0.12"),
            (0, "0.0"),
            (12_345_678, "12345.678"),
        ] {
            let mut out = Vec::new();
            JsonObject::new(&mut out)
                .millis("ms", Duration::from_micros(micros))
                .out
                .push(b'}');
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text, format!("{{\"ms\":{expected}}}"));
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed["ms"].as_f64().unwrap(), micros as f64 / 1000.0);
        }
    }
}
