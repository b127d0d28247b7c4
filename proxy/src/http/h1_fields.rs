//! What an HTTP/1 head's framing and connection fields say (RFC 9112 §6, §9.3), read
//! as the fields go into the header map: a parser that looked them up afterwards paid
//! a hash and a probe per name, mostly for names that are absent.

use http::{HeaderName, HeaderValue, Version, header};

/// A `Content-Length` that is not one length: not digits, too large, or disagreeing
/// with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadContentLength;

/// The framing and connection fields of one head.
#[derive(Debug, Default)]
pub struct FramingFields {
    /// The length every `Content-Length` value agrees on (`Err`: they differ, or one is
    /// not a length).
    pub content_length: Option<Result<u64, BadContentLength>>,
    /// A `Transfer-Encoding` was seen; `true` when the last coding of its last value is
    /// `chunked`.
    pub transfer_encoding: Option<bool>,
    /// A `Connection` said `close`.
    pub close: bool,
    /// A `Connection` said `keep-alive`.
    pub keep_alive: bool,
}

impl FramingFields {
    /// Reads one field; `false` when it is none of these.
    pub fn read(&mut self, name: &HeaderName, value: &HeaderValue) -> bool {
        if *name == header::CONTENT_LENGTH {
            self.content_length = Some(match self.content_length {
                Some(Err(bad)) => Err(bad),
                Some(Ok(agreed)) => content_length_value(value.as_bytes(), Some(agreed)),
                None => content_length_value(value.as_bytes(), None),
            });
        } else if *name == header::TRANSFER_ENCODING {
            self.transfer_encoding = Some(ends_chunked(value));
        } else if *name == header::CONNECTION {
            self.close |= has_token(value.as_bytes(), b"close");
            self.keep_alive |= has_token(value.as_bytes(), b"keep-alive");
        } else {
            return false;
        }
        true
    }

    /// HTTP/1.1 keeps the connection unless a `Connection` says `close`; HTTP/1.0
    /// closes it unless one says `keep-alive` (and none says `close`).
    pub fn keeps_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::HTTP_11 || self.keep_alive)
    }
}

/// Whether the last transfer coding of `value` is `chunked`.
pub fn ends_chunked(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .rsplit(|b| *b == b',')
        .next()
        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The length a `Content-Length` value gives (a list of equal lengths counts as one),
/// when it agrees with `agreed` (earlier values').
pub fn content_length_value(
    value: &[u8],
    mut agreed: Option<u64>,
) -> Result<u64, BadContentLength> {
    for element in value.split(|b| *b == b',') {
        let element = element.trim_ascii();
        if element.is_empty() {
            return Err(BadContentLength);
        }
        let mut len: u64 = 0;
        for digit in element {
            if !digit.is_ascii_digit() {
                return Err(BadContentLength);
            }
            len = len
                .checked_mul(10)
                .and_then(|l| l.checked_add(u64::from(digit - b'0')))
                .ok_or(BadContentLength)?;
        }
        if agreed.is_some_and(|a| a != len) {
            return Err(BadContentLength);
        }
        agreed = Some(len);
    }
    agreed.ok_or(BadContentLength)
}

/// Whether a comma-separated list holds `token` (ASCII case-insensitive).
pub fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fields: &[(&str, &str)]) -> FramingFields {
        let mut f = FramingFields::default();
        for (name, value) in fields {
            f.read(
                &HeaderName::from_bytes(name.as_bytes()).unwrap(),
                &HeaderValue::from_str(value).unwrap(),
            );
        }
        f
    }

    #[test]
    fn content_lengths_must_agree_and_be_digits() {
        assert_eq!(read(&[("content-length", "5")]).content_length, Some(Ok(5)));
        assert_eq!(
            read(&[("content-length", "5, 5"), ("Content-Length", "5")]).content_length,
            Some(Ok(5))
        );
        for bad in [
            &[("content-length", "5, 6")][..],
            &[("content-length", "5"), ("content-length", "6")],
            &[("content-length", "+5")],
            &[("content-length", "")],
            &[("content-length", "99999999999999999999")],
        ] {
            assert_eq!(
                read(bad).content_length,
                Some(Err(BadContentLength)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_last_transfer_coding_frames_and_connection_tokens_are_read() {
        assert_eq!(
            read(&[("transfer-encoding", "gzip, Chunked")]).transfer_encoding,
            Some(true)
        );
        assert_eq!(
            read(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "gzip")
            ])
            .transfer_encoding,
            Some(false)
        );
        let f = read(&[("connection", "Keep-Alive")]);
        assert!(f.keeps_alive(Version::HTTP_10));
        let f = read(&[
            ("connection", "upgrade, close"),
            ("connection", "keep-alive"),
        ]);
        assert!(!f.keeps_alive(Version::HTTP_11));
        assert!(!FramingFields::default().keeps_alive(Version::HTTP_10));
    }
}
