//! Parsing a client's request head, and what it says of the body that follows and of the
//! connection (RFC 9112 §2–§9).
//!
//! Strict where leniency lets a request slip past a route or be read differently by
//! the next hop: `httparse` refuses obs-folding, whitespace before a field's colon,
//! control characters and bad tokens; a `Content-Length` must be digits (repeats must
//! agree); a `Transfer-Encoding` must end in `chunked` and is refused in HTTP/1.0. A
//! head with both framing headers is read as chunked (the `Content-Length` removed), as
//! hyper did, and answered 400 by the service, which hears of it from the connection's
//! head scanner (`framing`), so the attempt is logged and counted.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, header};

use crate::cluster::http1_client::request_head::{content_length, ends_chunked};

/// Header fields read at most (hyper's default): more is answered 431.
const MAX_FIELDS: usize = 100;

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Empty,
    Length(u64),
    Chunked,
}

/// A request head, and what follows it.
#[derive(Debug)]
pub struct RequestHead {
    pub request: Request<()>,
    pub body: BodyFraming,
    /// The client lets the connection carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100` before sending its body.
    pub expect_continue: bool,
    /// An HTTP/1.1 `Upgrade` request: the connection may switch protocols.
    pub upgrade: bool,
    /// `TE: trailers`: the client takes trailers in a chunked response.
    pub trailers: bool,
}

/// Why a head cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request head too large")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
}

/// Parses the request head at the start of `buf` (consumed when whole). `None` when more
/// bytes are needed. `headers` is an empty map to fill (the last response's, kept for
/// its capacity).
///
/// # Errors
/// A head that is malformed, larger than `max_bytes`, or frames its body in a way that
/// cannot be read safely.
pub fn parse(
    buf: &mut BytesMut,
    max_bytes: usize,
    headers: HeaderMap,
) -> Result<Option<RequestHead>, HeadError> {
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_bytes {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(error) => return Err(HeadError::Malformed(parse_error(error))),
    };
    if len > max_bytes {
        return Err(HeadError::TooLarge);
    }
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let version = if parsed.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    // Where the target and each field lie in the head, so they can be made from the
    // head's shared bytes.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;
    let path = parsed.path.unwrap_or_default();
    let target = (offset(path.as_bytes()), path.len());
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_FIELDS];
    let count = parsed.headers.len();
    for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        let name = offset(field.name.as_bytes()) as u32;
        let value = offset(field.value) as u32;
        *span = (
            name,
            name + field.name.len() as u32,
            value,
            value + field.value.len() as u32,
        );
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    let mut headers = headers;
    headers.reserve(count + 8);
    for &(name_start, name_end, value_start, value_end) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start as usize..value_end as usize))
                .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    let body = framing(version, &mut headers)?;
    let keep_alive = keep_alive(version, &headers);
    let http11 = version == Version::HTTP_11;
    let expect_continue = http11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade = http11 && headers.contains_key(header::UPGRADE);
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"trailers"));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        request,
        body,
        keep_alive,
        expect_continue,
        upgrade,
        trailers,
    }))
}

/// What a parse error is, for the debug log.
fn parse_error(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status | httparse::Error::Token => "invalid request line",
        httparse::Error::Version => "unsupported HTTP version",
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

/// How the body is framed (RFC 9112 §6.3). A `Transfer-Encoding` wins over a
/// `Content-Length`, which is removed (see the module doc).
fn framing(version: Version, headers: &mut HeaderMap) -> Result<BodyFraming, HeadError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(HeadError::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !ends_chunked(headers.get_all(header::TRANSFER_ENCODING).iter()) {
            return Err(HeadError::Malformed(
                "a Transfer-Encoding that does not end in chunked",
            ));
        }
        headers.remove(header::CONTENT_LENGTH);
        return Ok(BodyFraming::Chunked);
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        return match content_length(headers) {
            Some(0) => Ok(BodyFraming::Empty),
            Some(len) => Ok(BodyFraming::Length(len)),
            None => Err(HeadError::Malformed("invalid Content-Length")),
        };
    }
    Ok(BodyFraming::Empty)
}

/// HTTP/1.1 keeps the connection unless a `Connection` says `close`; HTTP/1.0 closes it
/// unless one says `keep-alive` (and none says `close`).
pub fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let mut keep = version == Version::HTTP_11;
    for value in headers.get_all(header::CONNECTION) {
        let value = value.as_bytes();
        if has_token(value, b"close") {
            return false;
        }
        keep |= has_token(value, b"keep-alive");
    }
    keep
}

/// Whether a comma-separated list holds `token` (ASCII case-insensitive).
pub fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Skips what `parse` would skip before a request line (RFC 9112 §2.2: empty lines), so
/// a buffer of only those counts as nothing read.
pub fn skip_empty_lines(buf: &mut BytesMut) {
    let n = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    buf.advance(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Option<RequestHead>, HeadError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse(&mut buf, 8192, HeaderMap::new())
    }

    #[test]
    fn a_head_and_what_follows_it_left_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloGET"[..],
        );
        let head = parse(&mut buf, 8192, HeaderMap::new()).unwrap().unwrap();
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(head.request.uri(), "/a?b");
        assert_eq!(head.request.headers()["x-a"], "b");
        assert_eq!(head.body, BodyFraming::Length(5));
        assert!(head.keep_alive && !head.upgrade && !head.expect_continue);
        assert_eq!(&buf[..], b"helloGET");
    }

    #[test]
    fn a_partial_head_waits_and_an_oversized_one_is_refused() {
        assert!(parse_text("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let mut buf = BytesMut::from(format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(100)).as_str());
        assert_eq!(parse(&mut buf, 64, HeaderMap::new()).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..101).map(|i| format!("x-{i}: a\r\n")).collect();
        assert_eq!(
            parse_text(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooLarge
        );
    }

    #[test]
    fn framing_that_could_be_read_two_ways_is_refused() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A : b\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: b\x01\r\n\r\n",
            "\x16\x03\x01\x02\x00",
        ] {
            assert!(
                matches!(parse_text(text), Err(HeadError::Malformed(_))),
                "{text:?}"
            );
        }
        let head = parse_text("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, BodyFraming::Chunked);
        assert!(!head.request.headers().contains_key(header::CONTENT_LENGTH));
        let head = parse_text("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, BodyFraming::Length(7));
    }

    #[test]
    fn connection_expect_upgrade_and_te_are_read() {
        let head = parse_text("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
        assert!(!parse_text("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        let head = parse_text(
            "PUT / HTTP/1.1\r\nConnection: upgrade, close\r\nUpgrade: websocket\r\nExpect: 100-Continue\r\nTE: trailers\r\nContent-Length: 1\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!head.keep_alive && head.upgrade && head.expect_continue && head.trailers);
    }
}
