//! Parsing a client's request head, and what it says of the body that follows and of the
//! connection (RFC 9112 §2–§9).
//!
//! Strict where leniency lets a request slip past a route or be read differently by
//! the next hop: `httparse` refuses obs-folding, whitespace before a field's colon,
//! control characters and bad tokens; a `Content-Length` must be digits (repeats must
//! agree); a `Transfer-Encoding` must end in `chunked`, is refused in HTTP/1.0, and
//! together with a `Content-Length` is a smuggling attempt. Each is answered 400 and
//! the connection closed, as where the next request starts is then unknowable.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, header};
use smallvec::SmallVec;

use crate::http::h1_fields::{FramingFields, has_token};

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
    // On the stack for a usual head (nothing to zero first); a longer one spills.
    let spans: SmallVec<[(u32, u32, u32, u32); 16]> = parsed
        .headers
        .iter()
        .map(|field| {
            let name = offset(field.name.as_bytes()) as u32;
            let value = offset(field.value) as u32;
            (
                name,
                name + field.name.len() as u32,
                value,
                value + field.value.len() as u32,
            )
        })
        .collect();
    let count = spans.len();
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    let mut headers = headers;
    headers.reserve(count + 8);
    // What the connection needs from the fields, read as they go into the map rather
    // than looked up in it afterwards.
    let mut fields = Fields::default();
    for &(name_start, name_end, value_start, value_end) in &spans {
        let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start as usize..value_end as usize))
                .map_err(|_| HeadError::Malformed("invalid header value"))?;
        fields.read(&name, &value);
        headers.append(name, value);
    }
    let body = fields.body(version)?;
    let http11 = version == Version::HTTP_11;
    let keep_alive = fields.framing.keeps_alive(version);
    let expect_continue = http11 && fields.expect_continue;
    let upgrade = http11 && fields.upgrade;
    let trailers = fields.trailers;
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

/// What the connection reads from a head's fields.
#[derive(Debug, Default)]
struct Fields {
    framing: FramingFields,
    expect_continue: bool,
    upgrade: bool,
    trailers: bool,
}

impl Fields {
    fn read(&mut self, name: &HeaderName, value: &HeaderValue) {
        if self.framing.read(name, value) {
            return;
        }
        if *name == header::EXPECT {
            self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        } else if *name == header::UPGRADE {
            self.upgrade = true;
        } else if *name == header::TE {
            self.trailers |= has_token(value.as_bytes(), b"trailers");
        }
    }

    /// How the body is framed (RFC 9112 §6.3), refusing what another reader could
    /// frame differently: both framing headers (a smuggling attempt), a
    /// `Transfer-Encoding` that does not end in `chunked` or comes in HTTP/1.0, a
    /// `Content-Length` that is not one length.
    fn body(&self, version: Version) -> Result<BodyFraming, HeadError> {
        match (self.framing.transfer_encoding, self.framing.content_length) {
            (Some(_), Some(_)) => Err(HeadError::Malformed(
                "both Content-Length and Transfer-Encoding",
            )),
            (Some(_), None) if version == Version::HTTP_10 => Err(HeadError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request",
            )),
            (Some(false), None) => Err(HeadError::Malformed(
                "a Transfer-Encoding that does not end in chunked",
            )),
            (Some(true), None) => Ok(BodyFraming::Chunked),
            (None, Some(Err(_))) => Err(HeadError::Malformed("invalid Content-Length")),
            (None, Some(Ok(0)) | None) => Ok(BodyFraming::Empty),
            (None, Some(Ok(len))) => Ok(BodyFraming::Length(len)),
        }
    }
}

/// Skips what `parse` would skip before a request line (RFC 9112 §2.2: empty lines), so
/// a buffer of only those counts as nothing read.
pub fn skip_empty_lines(buf: &mut BytesMut) {
    let n = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
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
        assert!(
            parse_text("GET / HTTP/1.1\r\nHost: x\r\n")
                .unwrap()
                .is_none()
        );
        let mut buf = BytesMut::from(format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(100)).as_str());
        assert_eq!(
            parse(&mut buf, 64, HeaderMap::new()).unwrap_err(),
            HeadError::TooLarge
        );
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
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
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
        assert!(
            !parse_text("GET / HTTP/1.0\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        let head = parse_text(
            "PUT / HTTP/1.1\r\nConnection: upgrade, close\r\nUpgrade: websocket\r\nExpect: 100-Continue\r\nTE: trailers\r\nContent-Length: 1\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!head.keep_alive && head.upgrade && head.expect_continue && head.trailers);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A header name in any ASCII case.
    fn any_case(name: &'static str) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
            name.chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect()
        })
    }

    proptest! {
        /// Both framing headers, in any case, order and company, and however the head
        /// arrives in pieces: refused, never framed.
        #[test]
        fn both_framing_headers_are_refused_however_they_come(
            cl in any_case("content-length"),
            te in any_case("transfer-encoding"),
            te_first in any::<bool>(),
            others in proptest::collection::vec("x-[a-z]{1,8}: [a-z0-9]{0,8}", 0..5),
            at in 0usize..4,
            cuts in proptest::collection::vec(1usize..200, 0..4),
        ) {
            let mut fields: Vec<String> = others;
            let (first, second) = (format!("{cl}: 5"), format!("{te}: chunked"));
            let (first, second) = if te_first { (second, first) } else { (first, second) };
            fields.insert(at.min(fields.len()), first);
            fields.push(second);
            let text = format!("POST / HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n0\r\n\r\n", fields.join("\r\n"));
            let bytes = text.as_bytes();
            let mut buf = BytesMut::new();
            let mut from = 0;
            let mut outcome = None;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                let to = (from + cut).min(bytes.len());
                buf.extend_from_slice(&bytes[from..to]);
                from = to;
                match parse(&mut buf, 8192, HeaderMap::new()) {
                    Ok(None) => {}
                    other => {
                        outcome = Some(other.map(|h| h.map(|h| h.body)));
                        break;
                    }
                }
            }
            prop_assert!(
                matches!(outcome, Some(Err(HeadError::Malformed(_)))),
                "{text:?}: {outcome:?}"
            );
        }
    }
}
