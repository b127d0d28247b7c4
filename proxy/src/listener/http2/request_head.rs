//! A request head from its decoded header fields (RFC 9113 §8.1–§8.3, RFC 8441 §4).
//!
//! Strict as the RFC asks: anything it calls malformed is refused (the connection resets
//! the stream with `PROTOCOL_ERROR`), because a field another hop would read differently
//! is how a request slips past a route. Upper-case names, pseudo-header fields after
//! regular ones or repeated or unknown, connection-specific fields, a `te` other than
//! `trailers`, values with CR, LF or NUL or with surrounding whitespace, a `content-length`
//! that is not one length, and a head without the pseudo-header fields its method needs.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};
use hyper::ext::Protocol;

use super::hpack::{Field, Name, Pseudo};
use crate::http::headers::is_http2_connection_specific;

/// A field's name, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldName {
    Pseudo(Pseudo),
    Regular(HeaderName),
}

impl FieldName {
    fn of(name: Name) -> Result<Self, Malformed> {
        match name {
            Name::Static(name) => match name.pseudo() {
                Some(pseudo) => Ok(FieldName::Pseudo(pseudo)),
                None => name
                    .header_name()
                    .map(FieldName::Regular)
                    .ok_or(Malformed("an invalid field name")),
            },
            Name::Literal(name) => Self::parse(&name),
        }
    }

    /// The name of a field sent as a literal.
    ///
    /// # Errors
    /// Names HTTP/2 forbids: upper case (§8.2.1, which `HeaderName` would lower-case
    /// silently), a pseudo-header field no RFC defines, or no valid token.
    fn parse(name: &[u8]) -> Result<Self, Malformed> {
        if name.first() == Some(&b':') {
            return Pseudo::from_bytes(name)
                .map(FieldName::Pseudo)
                .ok_or(Malformed("an unknown pseudo-header field"));
        }
        if name.iter().any(u8::is_ascii_uppercase) {
            return Err(Malformed("an upper-case field name"));
        }
        HeaderName::from_bytes(name)
            .map(FieldName::Regular)
            .map_err(|_| Malformed("an invalid field name"))
    }
}

/// Why a head is malformed (for the debug log; the client sees a stream reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed request: {0}")]
pub struct Malformed(pub &'static str);

/// A request head being built field by field, as the block is decoded.
#[derive(Debug)]
pub struct RequestHeadBuilder {
    method: Option<Method>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    protocol: Option<Bytes>,
    headers: HeaderMap,
    /// A regular field was seen: pseudo-header fields may no longer come (§8.3).
    regular_seen: bool,
    /// The `content-length` all of its fields agree on.
    content_length: Option<u64>,
    /// More than one `cookie` field came: joined when the head is finished (§8.2.3).
    cookies: usize,
    /// `:protocol` is accepted (we sent `SETTINGS_ENABLE_CONNECT_PROTOCOL`).
    connect_protocol: bool,
    /// A trailer block: no pseudo-header field at all (§8.1).
    trailers: bool,
}

/// A request head and what the connection needs to know of its body.
#[derive(Debug)]
pub struct RequestHead {
    pub request: Request<()>,
    /// The declared body length: the DATA frames must add up to it (§8.1.1).
    pub content_length: Option<u64>,
    /// An extended CONNECT (RFC 8441): the stream becomes a tunnel once answered 2xx.
    pub extended_connect: bool,
}

impl RequestHeadBuilder {
    /// `headers` is an empty map to fill (kept for its capacity); `connect_protocol`
    /// whether extended CONNECT is enabled.
    pub fn new(headers: HeaderMap, connect_protocol: bool) -> Self {
        Self {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            protocol: None,
            headers,
            regular_seen: false,
            content_length: None,
            cookies: 0,
            connect_protocol,
            trailers: false,
        }
    }

    /// A builder of a trailer block's fields.
    pub fn trailers() -> Self {
        Self {
            trailers: true,
            ..Self::new(HeaderMap::new(), false)
        }
    }

    /// A trailer block's fields.
    pub fn into_headers(self) -> HeaderMap {
        self.headers
    }

    /// One decoded field, in block order.
    ///
    /// # Errors
    /// The field makes the request malformed.
    pub fn field(&mut self, field: Field) -> Result<(), Malformed> {
        check_ends(&field.value)?;
        match FieldName::of(field.name)? {
            FieldName::Pseudo(pseudo) => {
                // Regular values are checked whole by `HeaderValue`; these are not all
                // parsed by something that would refuse a control byte (`:protocol`).
                if memchr::memchr3(0, b'\r', b'\n', &field.value).is_some() {
                    return Err(Malformed("a field value with CR, LF or NUL"));
                }
                self.pseudo(pseudo, field.value)
            }
            FieldName::Regular(name) => self.regular(name, field.value, field.never_indexed),
        }
    }

    fn pseudo(&mut self, pseudo: Pseudo, value: Bytes) -> Result<(), Malformed> {
        if self.trailers {
            return Err(Malformed("a pseudo-header field in trailers"));
        }
        if self.regular_seen {
            return Err(Malformed("a pseudo-header field after a regular field"));
        }
        let slot = match pseudo {
            Pseudo::Method => {
                if self.method.is_some() {
                    return Err(Malformed("a repeated :method"));
                }
                let method =
                    Method::from_bytes(&value).map_err(|_| Malformed("an invalid :method"))?;
                self.method = Some(method);
                return Ok(());
            }
            Pseudo::Scheme => &mut self.scheme,
            Pseudo::Authority => &mut self.authority,
            Pseudo::Path => &mut self.path,
            Pseudo::Protocol if self.connect_protocol => &mut self.protocol,
            Pseudo::Protocol => return Err(Malformed(":protocol without extended CONNECT")),
            Pseudo::Status => return Err(Malformed(":status in a request")),
        };
        if slot.is_some() {
            return Err(Malformed("a repeated pseudo-header field"));
        }
        *slot = Some(value);
        Ok(())
    }

    fn regular(
        &mut self,
        name: HeaderName,
        value: Bytes,
        never_indexed: bool,
    ) -> Result<(), Malformed> {
        self.regular_seen = true;
        if is_http2_connection_specific(&name) {
            return Err(Malformed("a connection-specific field"));
        }
        if name == header::TE && value.as_ref() != b"trailers" {
            return Err(Malformed("a te field other than trailers"));
        }
        if name == header::CONTENT_LENGTH {
            let length = parse_length(&value)?;
            if self.content_length.is_some_and(|seen| seen != length) {
                return Err(Malformed("content-length fields that disagree"));
            }
            self.content_length = Some(length);
        }
        if name == header::COOKIE {
            self.cookies += 1;
        }
        // §8.2.1's CR, LF and NUL, and every other control byte but tab, are refused
        // here.
        let mut value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| Malformed("an invalid field value"))?;
        // Forwarded as it came: an intermediary keeps a never-indexed field so (RFC 7541
        // §6.2.3).
        value.set_sensitive(never_indexed);
        self.headers.append(name, value);
        Ok(())
    }

    /// The request, once the block's last field is in.
    ///
    /// # Errors
    /// A pseudo-header field the method needs is missing, or one it forbids is there,
    /// or the target cannot be a URI.
    pub fn finish(mut self) -> Result<RequestHead, Malformed> {
        let method = self.method.ok_or(Malformed("no :method"))?;
        let extended_connect = self.protocol.is_some();
        let uri = if method == Method::CONNECT && !extended_connect {
            // §8.5: only the authority, which is the tunnel's target.
            if self.scheme.is_some() || self.path.is_some() {
                return Err(Malformed("a CONNECT with :scheme or :path"));
            }
            let authority = self
                .authority
                .ok_or(Malformed("a CONNECT without :authority"))?;
            let authority = Authority::from_maybe_shared(authority)
                .map_err(|_| Malformed("an invalid :authority"))?;
            Uri::from(authority)
        } else {
            if extended_connect && method != Method::CONNECT {
                return Err(Malformed(":protocol on a method other than CONNECT"));
            }
            let scheme = self.scheme.ok_or(Malformed("no :scheme"))?;
            let path = self.path.ok_or(Malformed("no :path"))?;
            request_uri(&method, &scheme, self.authority, path)?
        };
        if self.cookies > 1 {
            join_cookies(&mut self.headers)?;
        }
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = self.headers;
        if let Some(protocol) = &self.protocol {
            let protocol =
                std::str::from_utf8(protocol).map_err(|_| Malformed("an invalid :protocol"))?;
            request.extensions_mut().insert(Protocol::from(protocol));
        }
        Ok(RequestHead {
            request,
            content_length: self.content_length,
            extended_connect,
        })
    }
}

/// §8.2.1: no whitespace at either end of a value.
fn check_ends(value: &[u8]) -> Result<(), Malformed> {
    if matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t')) {
        return Err(Malformed("a field value with whitespace at an end"));
    }
    Ok(())
}

fn parse_length(value: &[u8]) -> Result<u64, Malformed> {
    let invalid = Malformed("an invalid content-length");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(invalid)
}

/// The URI of a request that is not a plain CONNECT. `*` only for OPTIONS (§8.3.1);
/// `http` and `https` targets are origin-form paths.
fn request_uri(
    method: &Method,
    scheme: &[u8],
    authority: Option<Bytes>,
    path: Bytes,
) -> Result<Uri, Malformed> {
    let scheme = match scheme {
        b"http" => Scheme::HTTP,
        b"https" => Scheme::HTTPS,
        other => Scheme::try_from(other).map_err(|_| Malformed("an invalid :scheme"))?,
    };
    let origin_form = path.first() == Some(&b'/');
    let asterisk = path.as_ref() == b"*" && method == Method::OPTIONS;
    if !origin_form && !asterisk {
        return Err(Malformed(
            "a :path that is neither a path nor * for OPTIONS",
        ));
    }
    let path = PathAndQuery::from_maybe_shared(path).map_err(|_| Malformed("an invalid :path"))?;
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if let Some(authority) = authority {
        parts.authority = Some(
            Authority::from_maybe_shared(authority)
                .map_err(|_| Malformed("an invalid :authority"))?,
        );
        parts.scheme = Some(scheme);
    }
    Uri::from_parts(parts).map_err(|_| Malformed("an invalid request target"))
}

/// §8.2.3: cookie fields sent apart (for compression) are one `; `-joined field to an
/// HTTP/1 hop, which allows only one.
fn join_cookies(headers: &mut HeaderMap) -> Result<(), Malformed> {
    let mut joined = BytesMut::new();
    for (i, value) in headers.get_all(header::COOKIE).iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    let value = HeaderValue::from_maybe_shared(joined.freeze())
        .map_err(|_| Malformed("an invalid cookie field"))?;
    headers.insert(header::COOKIE, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: &str) -> Field {
        Field {
            name: Name::Literal(Bytes::copy_from_slice(name.as_bytes())),
            value: Bytes::copy_from_slice(value.as_bytes()),
            never_indexed: false,
        }
    }

    fn build(fields: &[(&str, &str)]) -> Result<RequestHead, Malformed> {
        let mut builder = RequestHeadBuilder::new(HeaderMap::new(), true);
        for (name, value) in fields {
            builder.field(field(name, value))?;
        }
        builder.finish()
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "example.com"),
        (":path", "/a?b"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        GET.iter().chain(extra).copied().collect()
    }

    #[test]
    fn a_get_becomes_an_absolute_uri_with_its_fields() {
        let head = build(&with(&[("accept", "*/*"), ("x-a", "b")])).unwrap();
        let req = head.request;
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "http://example.com/a?b");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()["x-a"], "b");
        assert_eq!(head.content_length, None);
        assert!(!head.extended_connect);
    }

    #[test]
    fn without_an_authority_the_target_is_the_path() {
        let head = build(&[(":method", "GET"), (":scheme", "https"), (":path", "/p")]).unwrap();
        assert_eq!(head.request.uri(), "/p");
    }

    #[test]
    fn refuses_what_the_rfc_calls_malformed() {
        let cases: &[&[(&str, &str)]] = &[
            &[(":scheme", "http"), (":path", "/")],
            &[(":method", "GET"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "http")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "*")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "a")],
            &[
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                ("x-a", "b"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":status", "200"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":nope", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("X-Up", "x"),
            ],
        ];
        for case in cases {
            assert!(build(case).is_err(), "accepted {case:?}");
        }
        for extra in [
            ("connection", "keep-alive"),
            ("keep-alive", "5"),
            ("proxy-connection", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("x-a", " leading"),
            ("x-a", "trailing\t"),
            ("x-a", "a\rb"),
            ("x-a", "a\nb"),
            ("x-a", "a\0b"),
            ("x-a", "a\x01b"),
            ("content-length", "1a"),
            ("content-length", ""),
            ("content-length", "-1"),
        ] {
            assert!(build(&with(&[extra])).is_err(), "accepted {extra:?}");
        }
    }

    #[test]
    fn te_trailers_and_an_options_asterisk_are_allowed() {
        assert!(build(&with(&[("te", "trailers")])).is_ok());
        let head = build(&[(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")]).unwrap();
        assert_eq!(head.request.uri(), "*");
    }

    #[test]
    fn content_length_fields_must_agree() {
        let head = build(&with(&[("content-length", "5"), ("content-length", "5")])).unwrap();
        assert_eq!(head.content_length, Some(5));
        assert!(build(&with(&[("content-length", "5"), ("content-length", "6")])).is_err());
    }

    #[test]
    fn a_connect_names_only_its_authority() {
        let head = build(&[(":method", "CONNECT"), (":authority", "db:5432")]).unwrap();
        assert_eq!(head.request.uri(), "db:5432");
        assert!(!head.extended_connect);
        assert!(build(&[(":method", "CONNECT")]).is_err());
        assert!(
            build(&[
                (":method", "CONNECT"),
                (":authority", "a:1"),
                (":path", "/")
            ])
            .is_err()
        );
    }

    #[test]
    fn an_extended_connect_carries_its_protocol() {
        let head = build(&[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "example.com"),
            (":path", "/chat"),
        ])
        .unwrap();
        assert!(head.extended_connect);
        let protocol = head.request.extensions().get::<Protocol>().unwrap();
        assert_eq!(protocol.as_str(), "websocket");
        assert!(
            build(&with(&[(":protocol", "websocket")])).is_err(),
            ":protocol on a GET"
        );
        let mut builder = RequestHeadBuilder::new(HeaderMap::new(), false);
        let refused = builder.field(field(":protocol", "websocket"));
        assert!(refused.is_err(), "not enabled");
    }

    #[test]
    fn cookie_fields_are_joined_for_the_next_hop() {
        let head = build(&with(&[("cookie", "a=1"), ("x-b", "2"), ("cookie", "c=3")])).unwrap();
        let cookies: Vec<_> = head.request.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; c=3"]);
    }
}
