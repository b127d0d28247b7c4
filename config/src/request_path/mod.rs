//! Request path normalization: the one reading of a path that the route, the
//! authorization policy, a rewrite, the mirror and the upstream all share. It lives in
//! the config crate because the paths written in a config are checked against it too
//! (a route path that normalization would change can never match).
//!
//! Follows RFC 3986 §6.2.2 (syntax-based normalization) and Envoy's `normalize_path` +
//! `merge_slashes`: percent-encoded unreserved characters are decoded (§2.3, §6.2.2.2),
//! the hex digits of the remaining percent-encodings are uppercased (§6.2.2.1), dot
//! segments are removed (§5.2.4, also those that only appear once `%2e` is decoded) and
//! repeated slashes are merged. What an upstream could read otherwise is refused
//! ([`PathRefusal`]); docs/security.md "Paths" gives each rule with its reason.
//!
//! It runs on every request, so a path that is already normal (the common case) costs
//! one scan and no allocation: the input is returned borrowed.

use std::borrow::Cow;

use crate::model::EscapedSlashes;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

/// Why a request path is refused (400 `malformed-request`). Each is a path that
/// readers (the route, the policy, an upstream) could understand differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PathRefusal {
    /// RFC 9112 §3.2.1, RFC 9113 §8.3.1: a path starts with `/` (only `OPTIONS` may ask
    /// for `*`).
    #[error("the path does not start with \"/\"")]
    NotAbsolute,
    /// RFC 3986 §2.1: `%` must be followed by two hex digits; readers disagree on what
    /// `%zz`, a lone `%` or IIS's `%u0041` mean.
    #[error("a \"%\" not followed by two hex digits")]
    InvalidPercentEncoding,
    /// `%2F` or `%5C`: an upstream that decodes it reads other segments than the route
    /// and the policy did (listener `paths.escaped_slashes: keep` passes it opaque).
    #[error("an encoded \"/\" or \"\\\" (%2F, %5C)")]
    EscapedSlash,
    /// `%00`-`%1F`, `%7F`: NUL truncates C strings, CR/LF split log lines and headers
    /// built from the path; no resource name needs them.
    #[error("an encoded control character (%00-%1F, %7F)")]
    EncodedControl,
    /// A raw `\`: not allowed in a path (RFC 3986 §3.3), and a segment separator to
    /// Windows servers and to browsers' URL parser.
    #[error("a raw \"\\\" (a separator to some servers)")]
    Backslash,
    /// A byte RFC 3986 §3.3 does not allow in a path and that no normalization can make
    /// unambiguous (controls, space, `<`, `>`, `` ` ``, `?` or `#` inside the path).
    #[error("a character not allowed in a path")]
    InvalidCharacter,
    /// A segment whose name before `;` is empty, `.` or `..` (`/x/..;/admin`): RFC 3986
    /// reads a name, Tomcat, Jetty and Spring strip the parameters and read a dot segment.
    #[error("a dot segment with \";\" parameters (\"..;\"), a dot segment to some servers")]
    DotSegmentWithParameters,
    /// With `escaped_slashes: keep`: a dot segment next to a kept `%2F`/`%5C`
    /// (`/x/..%2Fadmin`), a dot segment to an upstream that decodes the slash.
    #[error("a dot segment next to an encoded slash (\"..%2F\")")]
    DotSegmentBesideEscapedSlash,
    /// `/..`, `/a/../../b`: RFC 3986 §5.2.4 would clamp to `/`, but a path that tries to
    /// climb out of the root is an attack, not a request.
    #[error("the path climbs above \"/\"")]
    AboveRoot,
}

/// The normalized form of `path` (the path component only: no query), borrowed when it
/// is already normal.
///
/// # Errors
/// A [`PathRefusal`] when the path is one an upstream could read otherwise.
pub fn normalize_path(path: &str, escaped: EscapedSlashes) -> Result<Cow<'_, str>, PathRefusal> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathRefusal::NotAbsolute);
    }
    let mut out = Output::new(path);
    // Whether the result ends with `/`: the last segment was empty, `.` or `..`.
    let mut trailing_slash = false;
    let mut start = 1;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(bytes.len(), |i| start + i);
        let last = end == bytes.len();
        let raw = &path[start..end];
        match scan_segment(raw, escaped)? {
            SegmentKind::Empty => {
                if last {
                    trailing_slash = true;
                } else {
                    // A repeated slash (Envoy's `merge_slashes`, nginx's default).
                    let _ = out.diverge();
                }
            }
            SegmentKind::Dot => {
                let _ = out.diverge();
                trailing_slash = last;
            }
            SegmentKind::DotDot => {
                out.pop()?;
                trailing_slash = last;
            }
            SegmentKind::Name { canonical } => {
                if canonical {
                    out.keep(raw, end);
                } else {
                    out.push_canonical(raw);
                }
            }
        }
        if last {
            break;
        }
        start = end + 1;
    }
    Ok(out.finish(trailing_slash))
}

/// The result being built: borrowed (a prefix of the input) until the first change.
struct Output<'a> {
    input: &'a str,
    /// While borrowed: the result so far is `input[..clean_end]`.
    clean_end: usize,
    /// Once changed: the result so far, `/seg/seg` without a trailing slash.
    owned: Option<String>,
}

impl<'a> Output<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            input,
            clean_end: 0,
            owned: None,
        }
    }

    /// The result departs from the input here: copy what is kept so far (once) and
    /// build on the copy.
    fn diverge(&mut self) -> &mut String {
        let (input, clean_end) = (self.input, self.clean_end);
        self.owned.get_or_insert_with(|| {
            let mut owned = String::with_capacity(input.len());
            owned.push_str(&input[..clean_end]);
            owned
        })
    }

    /// Appends a segment that is already canonical (ending at `end` in the input).
    fn keep(&mut self, raw: &str, end: usize) {
        match &mut self.owned {
            // Borrowed: the segment is the input's next one, right after its slash.
            None => self.clean_end = end,
            Some(out) => {
                out.push('/');
                out.push_str(raw);
            }
        }
    }

    /// Appends a segment in its canonical form.
    fn push_canonical(&mut self, raw: &str) {
        let out = self.diverge();
        out.push('/');
        write_canonical(raw, out);
    }

    /// Removes the last segment (RFC 3986 §5.2.4 step 2C); refused when there is none.
    fn pop(&mut self) -> Result<(), PathRefusal> {
        let out = self.diverge();
        let at = out.rfind('/').ok_or(PathRefusal::AboveRoot)?;
        out.truncate(at);
        Ok(())
    }

    fn finish(self, trailing_slash: bool) -> Cow<'a, str> {
        match self.owned {
            None => Cow::Borrowed(self.input),
            Some(mut out) => {
                if trailing_slash || out.is_empty() {
                    out.push('/');
                }
                Cow::Owned(out)
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SegmentKind {
    Empty,
    /// `.` (or `%2e`).
    Dot,
    /// `..` (or any spelling with `%2e`).
    DotDot,
    /// Anything else; `canonical` when it is written as normalization would write it.
    Name {
        canonical: bool,
    },
}

/// Checks one segment (between slashes) and says what it is, without writing anything.
fn scan_segment(raw: &str, escaped: EscapedSlashes) -> Result<SegmentKind, PathRefusal> {
    let bytes = raw.as_bytes();
    let mut canonical = true;
    let mut whole = NameShape::default();
    // With `escaped_slashes: keep`: the part since the last `%2F`/`%5C`, and whether
    // there was one.
    let mut part = NameShape::default();
    let mut escaped_slash_seen = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (decoded, width) = if b == b'%' {
            let d = decode_pct(bytes, i).ok_or(PathRefusal::InvalidPercentEncoding)?;
            if is_unreserved(d) {
                canonical = false;
            } else {
                if d == b'/' || d == b'\\' {
                    if escaped == EscapedSlashes::Reject {
                        return Err(PathRefusal::EscapedSlash);
                    }
                    check_beside_escaped_slash(&part)?;
                    part = NameShape::default();
                    escaped_slash_seen = true;
                } else if d < 0x20 || d == 0x7F {
                    return Err(PathRefusal::EncodedControl);
                }
                if bytes[i + 1].is_ascii_lowercase() || bytes[i + 2].is_ascii_lowercase() {
                    canonical = false;
                }
            }
            (d, 3)
        } else if b == b'\\' {
            return Err(PathRefusal::Backslash);
        } else if b >= 0x80 {
            // Raw UTF-8 is written percent-encoded (RFC 3987 §3.1), as browsers send it.
            canonical = false;
            (b, 1)
        } else if is_path_char(b) {
            (b, 1)
        } else {
            return Err(PathRefusal::InvalidCharacter);
        };
        whole.push(decoded);
        if decoded != b'/' && decoded != b'\\' {
            part.push(decoded);
        }
        i += width;
    }
    if escaped_slash_seen {
        check_beside_escaped_slash(&part)?;
    }
    whole.kind(canonical)
}

/// A part of a segment next to a kept `%2F`/`%5C` may not be a dot segment: an upstream
/// that decodes the slash would climb with it (`/x/..%2Fadmin`).
fn check_beside_escaped_slash(part: &NameShape) -> Result<(), PathRefusal> {
    match part.kind(true)? {
        SegmentKind::Dot | SegmentKind::DotDot => Err(PathRefusal::DotSegmentBesideEscapedSlash),
        SegmentKind::Empty | SegmentKind::Name { .. } => Ok(()),
    }
}

/// The shape of a segment's name: its decoded characters before the first `;` (raw or
/// `%3B`, where Tomcat, Jetty and Spring cut off path parameters).
#[derive(Debug, Default)]
struct NameShape {
    len: usize,
    not_all_dots: bool,
    has_parameters: bool,
}

impl NameShape {
    fn push(&mut self, decoded: u8) {
        if self.has_parameters {
            return;
        }
        if decoded == b';' {
            self.has_parameters = true;
        } else {
            self.len += 1;
            self.not_all_dots |= decoded != b'.';
        }
    }

    fn kind(&self, canonical: bool) -> Result<SegmentKind, PathRefusal> {
        let dots = (!self.not_all_dots && self.len <= 2).then_some(self.len);
        match (dots, self.has_parameters) {
            (Some(_), true) => Err(PathRefusal::DotSegmentWithParameters),
            (Some(0), false) => Ok(SegmentKind::Empty),
            (Some(1), false) => Ok(SegmentKind::Dot),
            (Some(_), false) => Ok(SegmentKind::DotDot),
            (None, _) => Ok(SegmentKind::Name { canonical }),
        }
    }
}

/// Writes a segment already checked by [`scan_segment`] in canonical form.
fn write_canonical(raw: &str, out: &mut String) {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            // Checked by `scan_segment`: two hex digits follow.
            let d = decode_pct(bytes, i).unwrap_or(b'%');
            if is_unreserved(d) {
                out.push(char::from(d));
            } else {
                push_pct(out, d);
            }
            i += 3;
        } else {
            if b >= 0x80 {
                push_pct(out, b);
            } else {
                out.push(char::from(b));
            }
            i += 1;
        }
    }
}

fn push_pct(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xF)]));
}

/// The byte `%XY` at `at` stands for, if `XY` are two hex digits.
pub fn decode_pct(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(at + 1)?)?;
    let lo = hex_value(*bytes.get(at + 2)?)?;
    Some(hi << 4 | lo)
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// An ASCII byte kept as it is in a path: RFC 3986 §3.3's `pchar` (unreserved,
/// sub-delims, `:`, `@`), plus `"`, `{`, `}`, `|`, `^`, `[`, `]`, which HTTP parsers
/// (the `http` crate, nginx) accept raw and no reader takes for a separator or a dot.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'"'
                | b'{'
                | b'}'
                | b'|'
                | b'^'
                | b'['
                | b']'
        )
}
