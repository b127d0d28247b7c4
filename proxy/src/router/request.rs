//! The parts of a request that routing looks at, extracted once per request.

use http::{HeaderMap, Method, Uri, header};

use meshwork_config::request_path::decode_pct;

/// A borrowed view of what matching needs: normalized host, path, query, method, headers.
#[derive(Debug)]
pub struct RouteRequest<'a> {
    /// Lower-case, without port or trailing dot; empty when the request names no host.
    pub host: std::borrow::Cow<'a, str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

impl<'a> RouteRequest<'a> {
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        let raw_host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        Self {
            host: normalize_host(raw_host),
            path: uri.path(),
            query: uri.query(),
            method,
            headers,
        }
    }
}

/// `API.Example.com:8080.` -> `api.example.com`; `[::1]:80` -> `[::1]`.
pub fn normalize_host(raw: &str) -> std::borrow::Cow<'_, str> {
    // Byte scans rather than `rsplit`/`rfind`: a host is a few bytes, and the string
    // searchers' setup cost more than the scan itself (a tenth of the route lookup in a
    // callgrind profile). `@`, `[`, `]` and `:` are ASCII, so every cut is a char boundary.
    let after_userinfo = raw.bytes().rposition(|b| b == b'@').map_or(0, |at| at + 1);
    let without_userinfo = &raw[after_userinfo..];
    let end = if without_userinfo.starts_with('[') {
        without_userinfo
            .bytes()
            .position(|b| b == b']')
            .map_or(without_userinfo.len(), |close| close + 1)
    } else {
        without_userinfo
            .bytes()
            .rposition(|b| b == b':')
            .unwrap_or(without_userinfo.len())
    };
    let without_port = &without_userinfo[..end];
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

/// The values of query parameter `name` (percent-decoded, `+` as space).
pub fn query_values<'q>(
    query: Option<&'q str>,
    name: &'q str,
) -> impl Iterator<Item = String> + 'q {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
}

fn percent_decode(s: &str) -> String {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match decode_pct(bytes, i) {
                Some(decoded) => {
                    out.push(decoded);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("api.example.com."), "api.example.com");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("user@host:1"), "host");
        assert_eq!(normalize_host(""), "");
    }

    #[test]
    fn query_values_are_decoded() {
        let q = Some("a=1&debug=on%20now&flag&b=x+y&debug=2");
        assert_eq!(
            query_values(q, "debug").collect::<Vec<_>>(),
            ["on now", "2"]
        );
        assert_eq!(query_values(q, "flag").collect::<Vec<_>>(), [""]);
        assert_eq!(query_values(q, "b").collect::<Vec<_>>(), ["x y"]);
        assert_eq!(query_values(q, "none").count(), 0);
        assert_eq!(
            query_values(Some("x=%zz%4"), "x").collect::<Vec<_>>(),
            ["%zz%4"]
        );
    }
}
