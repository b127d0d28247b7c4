//! One authority per request: the host a request is routed on is the host the upstream
//! is sent, never one for the router and another for the upstream.
//!
//! - HTTP/2 (RFC 9113 §8.3.1): when both `:authority` and `Host` are present they must
//!   name the same entity, or the request is malformed (400). The same entity means
//!   [`same_entity`]: host names equal ignoring ASCII case and one trailing dot, and the
//!   same port once an absent one is read as the scheme's default (80 for `http`, 443
//!   for `https`). A `Host` naming the same entity is then dropped: `:authority` is what
//!   routing reads and what the upstream is sent.
//! - HTTP/1.1 with an absolute-form target (RFC 9112 §3.2.2): the target's authority
//!   wins and replaces `Host`, whatever `Host` said.
//! - Userinfo (`user@host`) has no place in a request's authority (RFC 9110 §4.2.4,
//!   RFC 9113 §8.3.1, and `Host` has no such syntax, RFC 9112 §3.2): refused with 400,
//!   since hosts and routers disagree on what such a name means.

use http::{HeaderValue, Version, header};

use super::ProxyError;

/// Makes `req` carry one authority, as the module docs say. `scheme` is the scheme the
/// client used (for the default port when the request does not say).
///
/// # Errors
/// `MalformedRequest` for userinfo in the authority or `Host`, and for an HTTP/2 `Host`
/// naming another entity than `:authority`.
pub fn reconcile<B>(req: &mut http::Request<B>, scheme: &str) -> Result<(), ProxyError> {
    if req
        .headers()
        .get_all(header::HOST)
        .iter()
        .any(|h| h.as_bytes().contains(&b'@'))
    {
        return Err(ProxyError::MalformedRequest);
    }
    let Some(authority) = req.uri().authority() else {
        return Ok(());
    };
    if authority.as_str().contains('@') {
        return Err(ProxyError::MalformedRequest);
    }
    let default_port = default_port(req.uri().scheme_str().unwrap_or(scheme));
    if req.version() == Version::HTTP_2 {
        let same = req
            .headers()
            .get_all(header::HOST)
            .iter()
            .all(|host| same_entity(authority.as_str(), host.as_bytes(), default_port));
        if !same {
            return Err(ProxyError::MalformedRequest);
        }
        req.headers_mut().remove(header::HOST);
        return Ok(());
    }
    let host =
        HeaderValue::from_str(authority.as_str()).map_err(|_| ProxyError::MalformedRequest)?;
    req.headers_mut().insert(header::HOST, host);
    Ok(())
}

/// 443 for `https`, 80 otherwise.
fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// Whether `authority` and the `Host` value `host` name the same entity: the same host,
/// ignoring ASCII case and one trailing dot, on the same port, an absent or empty port
/// being `default_port` (RFC 3986 §6.2.3). A `host` that is not `host[:port]` names
/// nothing, so never the same entity.
pub fn same_entity(authority: &str, host: &[u8], default_port: u16) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    match (split(authority, default_port), split(host, default_port)) {
        (Some((a, a_port)), Some((b, b_port))) => a_port == b_port && a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// `Host.example.:8080` -> (`Host.example`, 8080); `[::1]` -> (`[::1]`, default).
/// `None` when the port is not a number or the host is empty.
fn split(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let rest = &authority[end..];
        let port = match rest.strip_prefix(':') {
            Some(port) => port,
            None if rest.is_empty() => "",
            None => return None,
        };
        (&authority[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    let port = if port.is_empty() {
        default_port
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse().ok()?
    } else {
        return None;
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_entity_ignores_case_a_trailing_dot_and_a_default_port() {
        for (a, b) in [
            ("good.example", "good.example"),
            ("good.example", "GOOD.Example"),
            ("good.example", "good.example."),
            ("good.example.", "good.example"),
            ("good.example", "good.example:80"),
            ("good.example:80", "good.example"),
            ("good.example", "good.example:"),
            ("good.example:8080", "Good.Example.:8080"),
            ("[::1]:80", "[::1]"),
            ("127.0.0.1", "127.0.0.1:80"),
        ] {
            assert!(same_entity(a, b.as_bytes(), 80), "{a} {b}");
            assert!(same_entity(b, a.as_bytes(), 80), "{b} {a}");
        }
        assert!(same_entity("good.example", b"good.example:443", 443));
    }

    #[test]
    fn other_hosts_ports_and_garbage_are_other_entities() {
        for (a, b) in [
            ("good.example", "evil.example"),
            ("good.example", "good.example:8080"),
            ("good.example", "good.example:443"),
            ("good.example:8080", "good.example:9090"),
            ("good.example", "good.example.evil.example"),
            ("good.example", "good.example.."),
            ("good.example", ""),
            ("good.example", ":80"),
            ("good.example", "good.example:80x"),
            ("good.example", "good.example:99999"),
            ("[::1]", "[::2]"),
            ("[::1]", "[::1]x"),
        ] {
            assert!(!same_entity(a, b.as_bytes(), 80), "{a} {b}");
        }
        assert!(!same_entity("good.example", b"good.example\xff", 80));
    }

    fn request(version: Version, uri: &str, hosts: &[&str]) -> http::Request<()> {
        let mut req = http::Request::get(uri).version(version).body(()).unwrap();
        for host in hosts {
            req.headers_mut()
                .append(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        req
    }

    #[test]
    fn http2_keeps_only_the_authority_and_refuses_another_host() {
        let mut req = request(Version::HTTP_2, "http://good.example/x", &["GOOD.example"]);
        assert_eq!(reconcile(&mut req, "http"), Ok(()));
        assert!(req.headers().get(header::HOST).is_none());
        for hosts in [&["evil.example"][..], &["good.example", "evil.example"]] {
            let mut req = request(Version::HTTP_2, "http://good.example/x", hosts);
            assert_eq!(
                reconcile(&mut req, "http"),
                Err(ProxyError::MalformedRequest)
            );
        }
        let mut tls = request(
            Version::HTTP_2,
            "https://good.example/x",
            &["good.example:443"],
        );
        assert_eq!(reconcile(&mut tls, "https"), Ok(()));
    }

    #[test]
    fn an_absolute_form_target_replaces_host() {
        let mut req = request(Version::HTTP_11, "http://good.example/x", &["evil.example"]);
        assert_eq!(reconcile(&mut req, "http"), Ok(()));
        assert_eq!(req.headers()[header::HOST], "good.example");
        let mut origin = request(Version::HTTP_11, "/x", &["good.example"]);
        assert_eq!(reconcile(&mut origin, "http"), Ok(()));
        assert_eq!(origin.headers()[header::HOST], "good.example");
    }

    #[test]
    fn userinfo_is_refused_wherever_it_is() {
        for req in [
            request(Version::HTTP_11, "/x", &["evil@good.example"]),
            request(
                Version::HTTP_11,
                "http://evil@good.example/x",
                &["good.example"],
            ),
            request(Version::HTTP_2, "http://evil@good.example/x", &[]),
        ] {
            let mut req = req;
            assert_eq!(
                reconcile(&mut req, "http"),
                Err(ProxyError::MalformedRequest)
            );
        }
    }

    /// Property tests: no panic on any `Host`, and "the same entity" behaves as one.
    mod props {
        use proptest::prelude::*;

        use super::super::*;

        /// A host name or an IP literal.
        fn host() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-zA-Z0-9-]{1,10}(\\.[a-zA-Z0-9-]{1,10}){0,3}",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                "\\[[0-9a-f:]{2,12}\\]",
            ]
        }

        fn with_port(host: &str, port: Option<u16>) -> String {
            match port {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }
        }

        proptest! {
            #![proptest_config(crate::property::config())]

            #[test]
            fn the_same_entity_is_symmetric_and_never_panics(
                a in "[ -~]{0,30}",
                b in proptest::collection::vec(any::<u8>(), 0..30),
                default_port in prop_oneof![Just(80u16), Just(443u16)],
            ) {
                if let Ok(b_text) = std::str::from_utf8(&b) {
                    prop_assert_eq!(
                        same_entity(&a, &b, default_port),
                        same_entity(b_text, a.as_bytes(), default_port)
                    );
                } else {
                    prop_assert!(!same_entity(&a, &b, default_port));
                }
            }

            #[test]
            fn case_a_trailing_dot_and_the_default_port_name_the_same_entity(
                host in host(),
                port in proptest::option::of(any::<u16>()),
                upper in proptest::collection::vec(any::<bool>(), 40),
                dot in any::<bool>(),
                spell_default in any::<bool>(),
            ) {
                let authority = with_port(&host, port);
                let recased: String = host
                    .chars()
                    .zip(upper.iter().cycle())
                    .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                    .collect();
                // A name may end in the root's dot; an IP literal may not.
                let recased = if dot && !host.starts_with('[') { format!("{recased}.") } else { recased };
                let port = match port {
                    None if spell_default => Some(80),
                    Some(80) if spell_default => None,
                    other => other,
                };
                let other = with_port(&recased, port);
                prop_assert!(same_entity(&authority, other.as_bytes(), 80), "{} {}", authority, other);
            }

            #[test]
            fn another_port_is_another_entity(host in host(), a in any::<u16>(), b in any::<u16>()) {
                prop_assume!(a != b);
                let (a, b) = (with_port(&host, Some(a)), with_port(&host, Some(b)));
                prop_assert!(!same_entity(&a, b.as_bytes(), 80));
            }

            #[test]
            fn a_reconciled_request_carries_one_authority(
                host in host(),
                port in proptest::option::of(any::<u16>()),
                hosts in proptest::collection::vec("[ -~]{0,30}", 0..3),
                http2 in any::<bool>(),
            ) {
                let authority = with_port(&host, port);
                let Ok(uri) = http::Uri::try_from(format!("http://{authority}/x")) else {
                    return Ok(());
                };
                let version = if http2 { Version::HTTP_2 } else { Version::HTTP_11 };
                let mut req = http::Request::get(uri).version(version).body(()).unwrap();
                for h in &hosts {
                    req.headers_mut().append(header::HOST, HeaderValue::from_str(h).unwrap());
                }
                let result = reconcile(&mut req, "http");
                let userinfo = hosts.iter().any(|h| h.contains('@'));
                let all_same = hosts.iter().all(|h| same_entity(&authority, h.as_bytes(), 80));
                match (result, http2) {
                    (Ok(()), true) => {
                        prop_assert!(!userinfo && all_same);
                        prop_assert!(req.headers().get(header::HOST).is_none());
                    }
                    (Ok(()), false) => {
                        prop_assert!(!userinfo);
                        let sent: Vec<_> = req.headers().get_all(header::HOST).iter().collect();
                        prop_assert_eq!(sent, vec![authority.as_str()]);
                    }
                    (Err(e), _) => {
                        prop_assert_eq!(e, ProxyError::MalformedRequest);
                        prop_assert!(userinfo || (http2 && !all_same));
                    }
                }
            }
        }
    }
}
