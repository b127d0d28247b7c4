//! Parsing an upstream's response head, and what it says of the body that follows and
//! of the connection (RFC 9112 §6.3, §9.3).

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};

use super::ExchangeError;
use super::body_decoder::{BodyDecoder, Chunked};
use crate::http::h1_fields::FramingFields;

/// The largest response head read (Envoy's default limit is 60 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields read at most (hyper's default).
const MAX_FIELDS: usize = 100;

/// A final response's head, and what follows it.
#[derive(Debug)]
pub struct ResponseHead {
    pub response: Response<()>,
    pub body: BodyDecoder,
    /// The upstream lets the connection carry another request after this one.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`, skipping (consuming) informational
/// `1xx` responses other than `101`. `None` when more bytes are needed.
///
/// # Errors
/// A head that is malformed, too large, or frames its body in a way that cannot be
/// read safely.
pub fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<ResponseHead>, ExchangeError> {
    loop {
        let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(ExchangeError::HeadTooLarge);
                }
                return Ok(None);
            }
            Err(error) => return Err(ExchangeError::MalformedHead(error)),
        };
        if len > MAX_HEAD_BYTES {
            return Err(ExchangeError::HeadTooLarge);
        }
        let code = parsed.code.expect("a complete head has a status");
        let status = StatusCode::from_u16(code).map_err(|_| ExchangeError::BadStatus(code))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            buf.advance(len);
            continue;
        }
        let version = if parsed.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        let reason = parsed
            .reason
            .filter(|r| Some(*r) != status.canonical_reason());
        // Where each field lies in the head (on the stack: a response has a handful),
        // so the names and values can be made from the head's shared bytes.
        let base = buf.as_ptr() as usize;
        let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_FIELDS];
        let count = parsed.headers.len();
        for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
            let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
            let name = offset(field.name.as_bytes());
            let value = offset(field.value);
            *span = (
                name,
                name + field.name.len() as u32,
                value,
                value + field.value.len() as u32,
            );
        }
        let reason = reason.map(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes()));
        let head = buf.split_to(len).freeze();
        // Room for the few headers the proxy adds on the way back; and hyper's server
        // keeps the map it wrote for the connection's next request head, to which the
        // proxy adds its own (`x-forwarded-*`, `x-request-id`): with room for them too
        // no request's map grows (one allocation and one reallocation fewer each,
        // bench/RESULTS.md).
        let mut headers = HeaderMap::with_capacity(count + 8);
        let mut fields = FramingFields::default();
        for &(name_start, name_end, value_start, value_end) in &spans[..count] {
            let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
                .map_err(|_| ExchangeError::BadHeader)?;
            let value = HeaderValue::from_maybe_shared(
                head.slice(value_start as usize..value_end as usize),
            )
            .map_err(|_| ExchangeError::BadHeader)?;
            fields.read(&name, &value);
            headers.append(name, value);
        }
        let keep_alive = fields.keeps_alive(version);
        let body = framing(status, version, method, &fields, &mut headers)?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        if let Some(Ok(reason)) = reason {
            response.extensions_mut().insert(reason);
        }
        let switched = status == StatusCode::SWITCHING_PROTOCOLS
            || (*method == Method::CONNECT && status.is_success());
        return Ok(Some(ResponseHead {
            response,
            keep_alive: keep_alive && !switched && body != BodyDecoder::UntilClose,
            body,
        }));
    }
}

/// How the body is framed (RFC 9112 §6.3). A `Transfer-Encoding` wins over a
/// `Content-Length`, which is then removed: forwarded together they would let the next
/// hop read a different body than this one did.
fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    fields: &FramingFields,
    headers: &mut HeaderMap,
) -> Result<BodyDecoder, ExchangeError> {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || *method == Method::HEAD
        || (*method == Method::CONNECT && status.is_success())
    {
        return Ok(BodyDecoder::Done);
    }
    if let Some(chunked) = fields.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(ExchangeError::BadFraming(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        if fields.content_length.is_some() {
            headers.remove(header::CONTENT_LENGTH);
        }
        return Ok(if chunked {
            BodyDecoder::Chunked(Chunked::Size)
        } else {
            BodyDecoder::UntilClose
        });
    }
    match fields.content_length {
        Some(Ok(0)) => Ok(BodyDecoder::Done),
        Some(Ok(len)) => Ok(BodyDecoder::Length(len)),
        Some(Err(_)) => Err(ExchangeError::BadFraming("invalid Content-Length")),
        None => Ok(BodyDecoder::UntilClose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str, method: Method) -> Result<Option<ResponseHead>, ExchangeError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse(&mut buf, &method)
    }

    #[test]
    fn a_head_with_a_length_and_what_follows_it_left_in_the_buffer() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"[..]);
        let head = parse(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::OK);
        assert_eq!(head.response.headers()["x-a"], "b");
        assert_eq!(head.body, BodyDecoder::Length(5));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"hello");
        assert!(
            head.response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .is_none()
        );
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert!(
            parse_text("HTTP/1.1 200 OK\r\nContent-Len", Method::GET)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn informational_responses_are_skipped() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..],
        );
        let head = parse(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::NO_CONTENT);
        assert_eq!(head.body, BodyDecoder::Done);
        assert!(buf.is_empty());
    }

    #[test]
    fn bodies_that_cannot_be_there() {
        for (text, method) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::HEAD),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Method::GET,
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Method::GET),
        ] {
            let head = parse_text(text, method).unwrap().unwrap();
            assert_eq!(head.body, BodyDecoder::Done, "{text}");
            assert!(head.keep_alive);
        }
    }

    #[test]
    fn transfer_encoding_wins_over_content_length_which_goes() {
        let head = parse_text(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.body, BodyDecoder::Chunked(Chunked::Size));
        assert!(!head.response.headers().contains_key(header::CONTENT_LENGTH));
        let head = parse_text(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.body, BodyDecoder::UntilClose);
        assert!(
            !head.keep_alive,
            "a body read until close ends the connection"
        );
    }

    #[test]
    fn the_connection_s_fate() {
        let keep = |text: &str| parse_text(text, Method::GET).unwrap().unwrap().keep_alive;
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(keep(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!keep(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
    }

    #[test]
    fn a_reason_other_than_the_usual_one_is_kept() {
        let head = parse_text(
            "HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        let reason = head.response.extensions().get::<hyper::ext::ReasonPhrase>();
        assert_eq!(reason.map(|r| r.as_bytes()), Some(&b"Fine"[..]));
    }

    #[test]
    fn malformed_heads_are_errors() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "ICY 200 OK\r\n\r\n",
        ] {
            assert!(parse_text(text, Method::GET).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_head_too_large_is_refused() {
        let mut text = "HTTP/1.1 200 OK\r\n".to_owned();
        while text.len() <= MAX_HEAD_BYTES {
            text.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(
            parse_text(&text, Method::GET),
            Err(ExchangeError::HeadTooLarge) | Err(ExchangeError::MalformedHead(_))
        ));
    }
}
