//! The request head an HTTP/1.1 upstream gets, and how its body is framed on the wire
//! (RFC 9112 §6): the same choices hyper's client makes, so a request is framed the
//! same whichever client carries it.

use bytes::BufMut;
use http::header::{self, Entry};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::http::h1_fields;

/// What the request's body is known to be before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// Nothing to send (the body says it is at its end).
    Empty,
    Known(u64),
    Unknown,
}

/// How the request body goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFraming {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Chunked, with the trailer fields the `Trailer` header declared (others are
    /// dropped: a recipient may ignore undeclared ones, and HTTP/1.1 caches may not
    /// expect them).
    Chunked { trailers: Vec<HeaderName> },
}

/// Makes `Content-Length` and `Transfer-Encoding` agree with the framing chosen, then
/// writes the head (request line in origin form, or authority form for `CONNECT`,
/// then the headers) into `out`.
///
/// The framing: no body is `Content-Length` framing of 0 (`Transfer-Encoding` goes);
/// a `Transfer-Encoding` already there makes it chunked (`chunked` added when it is not
/// the last coding, `Content-Length` removed); else a valid `Content-Length` is kept;
/// else a known length is set; else `GET`, `HEAD` and `CONNECT` send none and the rest
/// go chunked.
pub fn encode(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    length: BodyLength,
    out: &mut Vec<u8>,
) -> RequestFraming {
    let framing = frame(method, headers, length);
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = if *method == Method::CONNECT {
        uri.authority().map(|a| a.as_str())
    } else {
        uri.path_and_query().map(|p| p.as_str())
    };
    out.extend_from_slice(target.filter(|t| !t.is_empty()).unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(headers, out);
    out.extend_from_slice(b"\r\n");
    framing
}

/// `name: value` lines, lower-case names as HTTP/2 and hyper write them.
fn write_fields(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        write_field(out, name, value);
    }
}

/// One `name: value` line (a header, or a trailer field after the last chunk).
pub fn write_field(out: &mut impl BufMut, name: &HeaderName, value: &HeaderValue) {
    out.put_slice(name.as_str().as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

fn frame(method: &Method, headers: &mut HeaderMap, length: BodyLength) -> RequestFraming {
    if length == BodyLength::Empty {
        headers.remove(header::TRANSFER_ENCODING);
        return RequestFraming::Length(0);
    }
    if let Entry::Occupied(mut te) = headers.entry(header::TRANSFER_ENCODING) {
        if !ends_chunked(te.iter()) {
            let last = te.iter_mut().last().expect("an occupied entry has a value");
            let mut value = last.as_bytes().to_vec();
            value.extend_from_slice(b", chunked");
            *last = HeaderValue::from_bytes(&value).expect("a valid value with a token appended");
        }
        headers.remove(header::CONTENT_LENGTH);
        return chunked(headers);
    }
    if let Some(len) = content_length(headers) {
        return RequestFraming::Length(len);
    }
    match length {
        BodyLength::Known(len) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            RequestFraming::Length(len)
        }
        _ if matches!(*method, Method::GET | Method::HEAD | Method::CONNECT) => {
            RequestFraming::Length(0)
        }
        _ => {
            headers.remove(header::CONTENT_LENGTH);
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            chunked(headers)
        }
    }
}

fn chunked(headers: &HeaderMap) -> RequestFraming {
    let trailers = headers
        .get_all(header::TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    RequestFraming::Chunked { trailers }
}

/// Whether the last transfer coding of these values is `chunked`.
pub fn ends_chunked<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> bool {
    values.last().is_some_and(h1_fields::ends_chunked)
}

/// The length every `Content-Length` value (and every element of a list) agrees on;
/// `None` when there is none, or any is not a number, or two differ.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut agreed = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        agreed = Some(h1_fields::content_length_value(value.as_bytes(), agreed).ok()?);
    }
    agreed
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::Request;

    fn head(req: &mut Request<()>, length: BodyLength) -> (String, RequestFraming) {
        let mut out = Vec::new();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let framing = encode(&method, &uri, req.headers_mut(), length, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    }

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_get_without_body_is_written_in_origin_form() {
        let mut req = request(Method::GET, "http://up:8080/a/b?q=1", &[("host", "up")]);
        let (text, framing) = head(&mut req, BodyLength::Empty);
        assert_eq!(text, "GET /a/b?q=1 HTTP/1.1\r\nhost: up\r\n\r\n");
        assert_eq!(framing, RequestFraming::Length(0));
    }

    #[test]
    fn an_empty_body_drops_a_transfer_encoding_and_keeps_a_content_length() {
        let mut req = request(
            Method::POST,
            "http://up/",
            &[("transfer-encoding", "chunked"), ("content-length", "0")],
        );
        let (text, framing) = head(&mut req, BodyLength::Empty);
        assert_eq!(text, "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(framing, RequestFraming::Length(0));
    }

    #[test]
    fn a_known_length_is_set_and_an_existing_one_kept() {
        let mut req = request(Method::POST, "http://up/x", &[]);
        let (text, framing) = head(&mut req, BodyLength::Known(5));
        assert_eq!(text, "POST /x HTTP/1.1\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(framing, RequestFraming::Length(5));
        let mut req = request(Method::PUT, "http://up/x", &[("content-length", "7")]);
        assert_eq!(
            head(&mut req, BodyLength::Unknown).1,
            RequestFraming::Length(7)
        );
    }

    #[test]
    fn an_unknown_length_is_chunked_except_for_get_head_and_connect() {
        let mut req = request(Method::POST, "http://up/x", &[("content-length", "x")]);
        let (text, framing) = head(&mut req, BodyLength::Unknown);
        assert_eq!(
            text,
            "POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Chunked { trailers: vec![] });
        for method in [Method::GET, Method::HEAD] {
            let mut req = request(method, "http://up/x", &[]);
            assert_eq!(
                head(&mut req, BodyLength::Unknown).1,
                RequestFraming::Length(0)
            );
        }
    }

    #[test]
    fn a_transfer_encoding_not_ending_in_chunked_gets_chunked_and_loses_its_length() {
        let mut req = request(
            Method::POST,
            "http://up/",
            &[("transfer-encoding", "gzip"), ("content-length", "3")],
        );
        let (text, framing) = head(&mut req, BodyLength::Known(3));
        assert_eq!(
            text,
            "POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
        );
        assert!(matches!(framing, RequestFraming::Chunked { .. }));
    }

    #[test]
    fn declared_trailers_are_the_ones_sent() {
        let mut req = request(
            Method::POST,
            "http://up/",
            &[("trailer", "x-sum, grpc-status")],
        );
        let (_, framing) = head(&mut req, BodyLength::Unknown);
        assert_eq!(
            framing,
            RequestFraming::Chunked {
                trailers: vec![
                    HeaderName::from_static("x-sum"),
                    HeaderName::from_static("grpc-status")
                ]
            }
        );
    }

    #[test]
    fn connect_is_written_in_authority_form() {
        let mut req = request(Method::CONNECT, "up:443", &[]);
        assert_eq!(
            head(&mut req, BodyLength::Empty).0,
            "CONNECT up:443 HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn content_lengths_must_agree() {
        let map = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
            }
            content_length(&h)
        };
        assert_eq!(map(&["5"]), Some(5));
        assert_eq!(map(&["5", "5, 5"]), Some(5));
        assert_eq!(map(&["5", "6"]), None);
        assert_eq!(map(&["+5"]), None);
        assert_eq!(map(&["5,"]), None);
        assert_eq!(map(&["99999999999999999999999"]), None);
        assert_eq!(map(&[]), None);
    }
}
