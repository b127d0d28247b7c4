//! Writing a response for an HTTP/1 client: the status line and fields, and the body's
//! framing (RFC 9112 §6): a `Content-Length` when the length is known, chunks for an
//! HTTP/1.1 client otherwise, and for an HTTP/1.0 client the connection's close.

use bytes::BufMut;
use http::{HeaderMap, Method, StatusCode, Version, header};
use http_body::SizeHint;

use crate::cluster::http1_client::request_head::write_field;
use crate::http::h1_fields::{content_length_value, has_token};

/// What the request said that decides how its response is written.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    pub head: bool,
    pub connect: bool,
    pub version: Version,
    /// `TE: trailers`.
    pub trailers: bool,
}

impl RequestFacts {
    pub fn of(method: &Method, version: Version, trailers: bool) -> Self {
        Self {
            head: *method == Method::HEAD,
            connect: *method == Method::CONNECT,
            version,
            trailers,
        }
    }
}

/// How the response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoder {
    /// No body is sent (`HEAD`, `1xx`, `204`, `304`, a `CONNECT`'s `2xx`).
    None,
    /// This many bytes are still to be written.
    Length(u64),
    Chunked {
        trailers: bool,
    },
    /// Everything until the connection closes (an HTTP/1.0 client, no known length).
    UntilClose,
}

/// Writes the head of `status`/`headers` into `out` and says how the body follows.
/// `keep_alive` comes in as what the client asked and the connection allows, and goes
/// out as what the response says (a `Connection: close` from the service, or a body
/// only the close can end, turns it off).
pub fn head(
    out: &mut Vec<u8>,
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
    body: SizeHint,
    request: RequestFacts,
    keep_alive: &mut bool,
) -> BodyEncoder {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        reason.unwrap_or_else(|| status.canonical_reason().unwrap_or("").as_bytes()),
    );
    out.extend_from_slice(b"\r\n");

    // The service's framing fields are read as the others are written, and replaced:
    // the framing is decided here.
    let mut length = None;
    let mut connection = false;
    let mut date = false;
    for (name, value) in headers {
        if *name == header::TRANSFER_ENCODING {
            continue;
        }
        if *name == header::CONTENT_LENGTH {
            length = Some(match length {
                Some(Err(bad)) => Err(bad),
                agreed => content_length_value(value.as_bytes(), agreed.and_then(Result::ok)),
            });
            continue;
        }
        if *name == header::CONNECTION {
            connection = true;
            if has_token(value.as_bytes(), b"close") {
                *keep_alive = false;
            }
        } else if *name == header::DATE {
            date = true;
        }
        write_field(out, name, value);
    }
    let length = length.and_then(Result::ok);

    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let encoder = if bodiless || request.head || (request.connect && status.is_success()) {
        BodyEncoder::None
    } else if let Some(len) = length.or(body.exact()) {
        BodyEncoder::Length(len)
    } else if request.version == Version::HTTP_11 {
        BodyEncoder::Chunked {
            trailers: request.trailers,
        }
    } else {
        BodyEncoder::UntilClose
    };
    // A HEAD's or a 304's length is that of what a GET would have had: kept.
    // (Never on a 1xx or 204, which have no length at all.)
    let kept_length = length.filter(|_| {
        status == StatusCode::NOT_MODIFIED
            || (request.head && !status.is_informational() && status != StatusCode::NO_CONTENT)
    });
    match (encoder, kept_length) {
        (BodyEncoder::Length(len), _) | (BodyEncoder::None, Some(len)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (BodyEncoder::Chunked { .. }, _) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        (BodyEncoder::UntilClose, _) => *keep_alive = false,
        (BodyEncoder::None, None) => {}
    }
    if !connection && status != StatusCode::SWITCHING_PROTOCOLS {
        if !*keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if request.version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !date {
        out.extend_from_slice(b"date: ");
        crate::listener::date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    encoder
}

/// The size line before a chunk of `len` bytes.
pub fn chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
    out.put_slice(b"\r\n");
}

/// The last chunk, and the trailers when the client takes them.
pub fn last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.put_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        write_field(out, name, value);
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn facts(version: Version) -> RequestFacts {
        RequestFacts::of(&Method::GET, version, false)
    }

    /// The head written for a response without a reason phrase, and its encoder.
    fn write(
        status: StatusCode,
        headers: &HeaderMap,
        body: SizeHint,
        request: RequestFacts,
        keep_alive: &mut bool,
    ) -> (String, BodyEncoder) {
        let mut out = Vec::new();
        let encoder = head(&mut out, status, None, headers, body, request, keep_alive);
        (String::from_utf8(out).unwrap(), encoder)
    }

    #[test]
    fn a_known_length_is_written_and_an_unknown_one_is_chunked_or_closes() {
        let mut keep = true;
        let headers = HeaderMap::new();
        let (t, enc) = write(
            StatusCode::OK,
            &headers,
            SizeHint::with_exact(5),
            facts(Version::HTTP_11),
            &mut keep,
        );
        assert_eq!(enc, BodyEncoder::Length(5));
        assert!(
            t.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: "),
            "{t}"
        );
        assert!(keep);

        let (t, enc) = write(
            StatusCode::OK,
            &headers,
            SizeHint::new(),
            facts(Version::HTTP_11),
            &mut keep,
        );
        assert_eq!(enc, BodyEncoder::Chunked { trailers: false });
        assert!(t.contains("transfer-encoding: chunked\r\n"));

        let (t, enc) = write(
            StatusCode::OK,
            &headers,
            SizeHint::new(),
            facts(Version::HTTP_10),
            &mut keep,
        );
        assert_eq!(enc, BodyEncoder::UntilClose);
        assert!(!keep);
        assert!(t.contains("connection: close\r\n"));
    }

    #[test]
    fn a_services_framing_headers_are_not_written_twice_and_close_is_heard() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        let mut keep = true;
        let (t, enc) = write(
            StatusCode::BAD_REQUEST,
            &headers,
            SizeHint::new(),
            facts(Version::HTTP_11),
            &mut keep,
        );
        assert_eq!(enc, BodyEncoder::Length(3));
        assert!(!keep);
        assert_eq!(t.matches("content-length").count(), 1, "{t}");
        assert_eq!(t.matches("connection").count(), 1, "{t}");
        assert!(!t.contains("transfer-encoding"), "{t}");
    }

    #[test]
    fn bodiless_responses_have_no_framing_and_head_keeps_its_length() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        let mut keep = true;
        let head_req = RequestFacts::of(&Method::HEAD, Version::HTTP_11, false);
        let (t, enc) = write(
            StatusCode::OK,
            &headers,
            SizeHint::new(),
            head_req,
            &mut keep,
        );
        assert_eq!(enc, BodyEncoder::None);
        assert!(t.contains("content-length: 10\r\n"));
        let (t, enc) = write(
            StatusCode::NO_CONTENT,
            &headers,
            SizeHint::new(),
            facts(Version::HTTP_11),
            &mut keep,
        );
        assert_eq!(enc, BodyEncoder::None);
        assert!(!t.contains("content-length"), "{t}");
    }

    #[test]
    fn chunks_and_a_reason_are_written_as_given() {
        let mut out = Vec::new();
        let mut keep = true;
        head(
            &mut out,
            StatusCode::OK,
            Some(b"Fine"),
            &HeaderMap::new(),
            SizeHint::with_exact(0),
            facts(Version::HTTP_11),
            &mut keep,
        );
        assert!(out.starts_with(b"HTTP/1.1 200 Fine\r\n"));
        out.clear();
        chunk_size(&mut out, 255);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        last_chunk(&mut out, Some(&trailers));
        assert_eq!(out, b"ff\r\n0\r\ngrpc-status: 0\r\n\r\n");
    }
}
