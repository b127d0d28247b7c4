//! Proxy header semantics: hop-by-hop removal (RFC 9110 §7.6.1) and forwarding headers.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// de-facto `keep-alive` and `proxy-connection`).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether `name` is a field that belongs to an HTTP/1 connection and makes an HTTP/2
/// message malformed (RFC 9113 §8.2.2): refused in requests, never sent in responses.
pub fn is_http2_connection_specific(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == HOP_BY_HOP[1]
        || *name == HOP_BY_HOP[2]
}

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including every header named in `Connection`.
///
/// `keep_upgrade` keeps `Connection: upgrade` and `Upgrade` so a protocol upgrade
/// (WebSocket) can be tunneled. `TE: trailers` is kept: it is how gRPC clients say they
/// accept trailers, and it is the one TE value HTTP/2 allows.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of them: one pass over the names instead of nine removals.
    let present = headers
        .keys()
        .any(|name| *name == header::UPGRADE || HOP_BY_HOP.contains(name));
    if !present {
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    if headers
        .get_all(header::CONNECTION)
        .iter()
        .any(names_other_headers)
    {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            if keep_upgrade && name == header::UPGRADE {
                continue;
            }
            headers.remove(&name);
        }
    }
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether a `Connection` value names headers beyond the usual `keep-alive` / `close`
/// (which need no extra removal), so the common case allocates nothing.
fn names_other_headers(value: &HeaderValue) -> bool {
    value.to_str().map_or(true, |v| {
        v.split(',').any(|t| {
            let t = t.trim();
            !(t.eq_ignore_ascii_case("keep-alive")
                || t.eq_ignore_ascii_case("close")
                || t.is_empty())
        })
    })
}

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The client's address as `x-forwarded-for` text, made once per connection: each
/// request's header is then a clone of it (a reference count) rather than a value
/// written, checked and cut anew.
pub fn client_address_value(ip: std::net::IpAddr) -> HeaderValue {
    let mut text = [0u8; 48];
    let n = write_ip(ip, &mut text);
    HeaderValue::from_bytes(&text[..n]).expect("an address is a valid header value")
}

/// Appends the client's address (from [`client_address_value`]) to `x-forwarded-for`
/// and sets `x-forwarded-proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client_address: &HeaderValue, proto: &'static str) {
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(client_address.clone());
        }
        Entry::Occupied(mut entry) => {
            // Every line the client sent, folded into one list (RFC 9110 §5.3), then
            // this hop.
            let mut parts: Vec<&[u8]> = Vec::new();
            for value in entry.iter() {
                let value = value.as_bytes().trim_ascii();
                if !value.is_empty() {
                    parts.extend([value, b", "]);
                }
            }
            parts.push(client_address.as_bytes());
            let value = match parts.len() {
                1 => Some(client_address.clone()),
                _ => super::made_values::header_value(&parts),
            };
            if let Some(value) = value {
                entry.insert(value);
            }
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// Writes `ip` as text into `out` (48 bytes hold any address), returning its length.
/// IPv4, every request's common case, by hand: `Display` goes through the formatting
/// machinery, a tenth of a microsecond per request.
fn write_ip(ip: std::net::IpAddr, out: &mut [u8; 48]) -> usize {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[n] = b'.';
                    n += 1;
                }
                let mut digits = itoa::Buffer::new();
                let text = digits.format(octet).as_bytes();
                out[n..n + text.len()].copy_from_slice(text);
                n += text.len();
            }
            n
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            let _ = write!(cursor, "{ip}");
            cursor.position() as usize
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_their_display() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.45",
            "255.255.255.255",
            "::1",
            "fe80::1:2",
            "::ffff:10.0.0.1",
        ] {
            let ip: std::net::IpAddr = text.parse().unwrap();
            let mut out = [0u8; 48];
            let n = write_ip(ip, &mut out);
            assert_eq!(std::str::from_utf8(&out[..n]).unwrap(), ip.to_string());
        }
    }

    /// A header map from name/value pairs, in order (repeats appended).
    pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn removes_standard_hop_by_hop_and_those_named_in_connection() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "basic x"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn keeps_te_trailers_only() {
        let mut h = map(&[("te", "gzip, trailers")]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
        let mut h = map(&[("te", "gzip")]);
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn upgrade_headers_survive_when_tunneling() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade_request(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    fn local() -> HeaderValue {
        client_address_value("127.0.0.1".parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        add_forwarded(&mut h, &local(), "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        let mut h = map(&[("x-forwarded-proto", "https")]);
        add_forwarded(&mut h, &local(), "http");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(
            h["x-forwarded-proto"], "http",
            "the client's own is replaced"
        );
    }

    /// Every line a client sent stays in the list, in order (none dropped), empty ones
    /// left out; the result is one line.
    #[test]
    fn forwarded_for_lines_are_folded_into_one() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", " "),
            ("x-forwarded-for", "10.0.0.1, 10.0.0.2"),
        ]);
        add_forwarded(&mut h, &local(), "https");
        let all: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["203.0.113.7, 10.0.0.1, 10.0.0.2, 127.0.0.1"]);
        let mut h = map(&[("x-forwarded-for", "")]);
        add_forwarded(&mut h, &local(), "https");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }
}
