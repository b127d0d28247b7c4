//! Property tests of the normalizer (proptest): it never panics, it is idempotent, what
//! it returns is normal (no dot segment even where a kept `%2F` is decoded), and on paths made of names and dot segments it agrees with a
//! plain model of RFC 3986 §5.2.4 with merged slashes (so it never climbs above `/`).
//!
//! Each property runs 10,000 cases (it is pure and cheap). For a longer run set
//! `PROPTEST_CASES`, e.g.
//! `PROPTEST_CASES=1000000 cargo test -p meshwork-config --release request_path::properties`.

use std::borrow::Cow;

use crate::model::EscapedSlashes::{self, Keep, Reject};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use super::{PathRefusal, is_unreserved, normalize_path};

/// Cases per property when `PROPTEST_CASES` does not say.
const DEFAULT_CASES: u32 = 10_000;

fn config() -> ProptestConfig {
    let from_env = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        from_env.cases
    } else {
        DEFAULT_CASES
    };
    ProptestConfig {
        cases,
        // Nothing written into the source tree; a failure prints its minimal input.
        failure_persistence: None,
        ..from_env
    }
}

/// Pieces attackers combine: separators, dot spellings, encodings of unreserved and
/// reserved characters, parameters, non-ASCII...
const ACCEPTED: &[&str] = &[
    "/", "/", "//", ".", "..", "...", "%2e", "%2E", ".%2e", "%2e%2E", "a", "b", "Z", "0", "~", "-",
    "_", "%41", "%7e", "%7E", ";", "%3b", "%3B", "=", "%20", "%25", "%252e", "%c3%a9", "é", "€",
    "@", ":", "|", "{", "}", "^", "[", "]", "\"", "'", "*", "+",
];
/// ...encoded slashes (refused, or kept with `keep`)...
const SLASHES: &[&str] = &["%2f", "%2F", "%5c", "%5C"];
/// ...and what is always refused (alone; `%2` and `%` may complete with what follows).
const REFUSED: &[&str] = &[
    "\\", "%", "%z", "%zz", "%2", "%00", "%0a", "%0D", "%7f", "\u{0}", " ", "?", "#", "<",
];

fn tricky_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        16 => prop::sample::select(ACCEPTED),
        2 => prop::sample::select(SLASHES),
        1 => prop::sample::select(REFUSED),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|parts| {
        let mut path = String::from("/");
        parts.into_iter().for_each(|p| path.push_str(p));
        path
    })
}

/// One segment of a path without anything refusable: a name (plain or with encoded
/// unreserved characters), empty, or a dot segment in any spelling.
#[derive(Clone, Debug)]
enum Seg {
    Name(&'static str),
    Empty,
    Dot(&'static str),
    DotDot(&'static str),
}

fn clean_path() -> impl Strategy<Value = Vec<Seg>> {
    let seg = prop_oneof![
        prop::sample::select(&["a", "b", "%61", "x%2Dy", "...", ".a", "a."][..])
            .prop_map(Seg::Name),
        Just(Seg::Empty),
        prop::sample::select(&[".", "%2e", "%2E"][..]).prop_map(Seg::Dot),
        prop::sample::select(&["..", ".%2e", "%2E.", "%2e%2e"][..]).prop_map(Seg::DotDot),
    ];
    prop::collection::vec(seg, 1..16)
}

fn decode_name(raw: &str) -> String {
    raw.replace("%61", "a").replace("%2D", "-")
}

/// The model: RFC 3986 §5.2.4 over the segments, empty ones skipped (merged slashes),
/// `None` when a `..` would climb above the root.
fn model(segs: &[Seg]) -> Option<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut trailing = false;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match seg {
            Seg::Name(n) => {
                stack.push(decode_name(n));
                trailing = false;
            }
            Seg::Empty => trailing = last,
            Seg::Dot(_) => trailing = last,
            Seg::DotDot(_) => {
                stack.pop()?;
                trailing = last;
            }
        }
    }
    let mut out = String::new();
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Some(out)
}

fn join(segs: &[Seg]) -> String {
    let mut path = String::new();
    for seg in segs {
        path.push('/');
        path.push_str(match seg {
            Seg::Name(s) | Seg::Dot(s) | Seg::DotDot(s) => s,
            Seg::Empty => "",
        });
    }
    path
}

/// What a normalized path looks like, or why not.
fn check_normal(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("does not start with /".into());
    }
    if path.contains("//") {
        return Err("has //".into());
    }
    // Not even for an upstream that decodes kept `%2F` / `%5C` into separators.
    let decoded_slashes = path.replace("%2F", "/").replace("%5C", "/");
    for seg in decoded_slashes.split('/').skip(1) {
        if seg == "." || seg == ".." {
            return Err(format!("has the dot segment {seg:?}"));
        }
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii() || b == b'\\' {
            return Err(format!("has the raw byte {b:#x}"));
        }
        if b == b'%' {
            let hex = path.get(i + 1..i + 3).ok_or("a cut percent-encoding")?;
            let d = u8::from_str_radix(hex, 16).map_err(|_| format!("%{hex}"))?;
            if is_unreserved(d) {
                return Err(format!("has %{hex}, an encoded unreserved character"));
            }
            if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                return Err(format!("has lowercase hex %{hex}"));
            }
        }
    }
    Ok(())
}

fn check_once(path: &str, escaped: EscapedSlashes) -> Result<(), TestCaseError> {
    if let Ok(normal) = normalize_path(path, escaped) {
        if let Err(why) = check_normal(&normal) {
            return Err(TestCaseError::fail(format!("{path:?} -> {normal:?} {why}")));
        }
        match normalize_path(&normal, escaped) {
            Ok(Cow::Borrowed(again)) => prop_assert_eq!(again, normal.as_ref()),
            other => {
                return Err(TestCaseError::fail(format!(
                    "{path:?} -> {normal:?} -> {other:?}"
                )));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_string_is_answered_without_panicking(path in any::<String>()) {
        let _ = normalize_path(&path, Reject);
        let _ = normalize_path(&format!("/{path}"), Keep);
    }

    #[test]
    fn any_bytes_read_as_text_are_answered_without_panicking(bytes in any::<Vec<u8>>()) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = normalize_path(&text, Reject);
        let _ = normalize_path(&format!("/{text}"), Keep);
    }

    #[test]
    fn normalizing_twice_changes_nothing_and_the_result_is_normal(path in tricky_path()) {
        check_once(&path, Reject)?;
        check_once(&path, Keep)?;
    }

    #[test]
    fn keep_accepts_what_reject_accepts_and_reads_it_the_same(path in tricky_path()) {
        if let Ok(rejecting) = normalize_path(&path, Reject) {
            prop_assert_eq!(normalize_path(&path, Keep), Ok(rejecting));
        }
    }

    #[test]
    fn dot_segments_follow_rfc_3986_and_never_climb_above_the_root(segs in clean_path()) {
        let path = join(&segs);
        match (model(&segs), normalize_path(&path, Reject)) {
            (Some(want), Ok(got)) => prop_assert_eq!(got.as_ref(), want.as_str(), "{}", path),
            (None, Err(why)) => prop_assert_eq!(why, PathRefusal::AboveRoot, "{}", path),
            (want, got) => {
                return Err(TestCaseError::fail(format!("{path:?}: model {want:?}, got {got:?}")));
            }
        }
    }
}
