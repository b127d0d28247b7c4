//! Protocol upgrades (RFC 9110 §7.8): which a request may ask the upstream for, and
//! whether the upstream's `101 Switching Protocols` switched to one of them.
//!
//! A tunnel is opaque: once bytes flow both ways, no route or policy sees them again.
//! So only the protocols a route names in `upgrades` (WebSocket by default) are
//! tunnelled. `h2c` never is, whatever a route says: a client speaking HTTP/2 through
//! the tunnel would send every later request straight to the upstream, past every route
//! and policy (RFC 9113 §3.1 deprecates the h2c upgrade; Envoy strips it too). So
//! `h2c` tokens and `HTTP2-Settings` are stripped from every request, and an upgrade to
//! a protocol the route does not allow goes on as a plain request, which a server is
//! free to answer without switching (RFC 9110 §7.8). Protocol names are compared
//! ignoring ASCII case and any `/version` (`WebSocket/13` is `websocket`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::headers::is_upgrade_request;

/// The h2c upgrade's settings header (RFC 7540 §3.2.1), connection-specific: never
/// forwarded.
pub const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// The protocols an upgrade forwarded upstream asked for (lower-case names), which a
/// `101` must switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    protocols: Vec<String>,
}

impl Requested {
    /// One protocol asked for (an HTTP/2 extended CONNECT's `:protocol`).
    pub fn one(protocol: &str) -> Self {
        Self {
            protocols: vec![protocol_name(protocol).to_ascii_lowercase()],
        }
    }

    /// Whether a `101` with these headers switched to protocols that were all asked
    /// for (at least one, named in its `Upgrade`, as RFC 9110 §15.2.2 requires).
    pub fn accepts(&self, response: &HeaderMap) -> bool {
        let Some(tokens) = tokens(response) else {
            return false;
        };
        !tokens.is_empty()
            && tokens.iter().all(|t| {
                let name = protocol_name(t);
                !is_h2c(name) && self.protocols.iter().any(|p| p.eq_ignore_ascii_case(name))
            })
    }
}

/// Every token of every `Upgrade` line; `None` when a value is not visible ASCII (no
/// protocol name can be read from it, so it can name none).
fn tokens(headers: &HeaderMap) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for value in headers.get_all(header::UPGRADE) {
        let text = value.to_str().ok()?;
        out.extend(text.split(',').map(str::trim).filter(|t| !t.is_empty()));
    }
    Some(out)
}

/// Whether the headers hold any of `names`. Most requests hold none of the few names an
/// upgrade involves, and one pass over their handful of names costs less than a lookup
/// per name, each hashing it (a request's header-map hashing was about 4% of its
/// instructions, bench/RESULTS.md).
fn names_any(headers: &HeaderMap, names: &[HeaderName]) -> bool {
    headers.keys().any(|name| names.contains(name))
}

/// `WebSocket/13` -> `WebSocket`.
fn protocol_name(token: &str) -> &str {
    token.split('/').next().unwrap_or_default().trim()
}

fn is_h2c(name: &str) -> bool {
    name.eq_ignore_ascii_case("h2c")
}

/// Whether a route whose `upgrades` are `allowed` lets a request switch to `protocol`
/// (a name, maybe with a `/version`): never `h2c`.
pub fn allows(allowed: &[String], protocol: &str) -> bool {
    let name = protocol_name(protocol);
    !is_h2c(name) && allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Removes `HTTP2-Settings` and every `h2c` token of `Upgrade` (the whole `Upgrade`
/// when nothing else is left, or when it cannot be read). Cheap when there is neither.
pub fn strip_h2c(headers: &mut HeaderMap) {
    if !names_any(headers, &[HTTP2_SETTINGS, header::UPGRADE]) {
        return;
    }
    headers.remove(HTTP2_SETTINGS);
    if !headers.contains_key(header::UPGRADE) {
        return;
    }
    let kept = match tokens(headers) {
        Some(tokens) if !tokens.iter().any(|t| is_h2c(protocol_name(t))) => return,
        Some(tokens) => tokens
            .into_iter()
            .filter(|t| !is_h2c(protocol_name(t)))
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    };
    match HeaderValue::from_str(&kept) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(header::UPGRADE, value);
        }
        _ => {
            headers.remove(header::UPGRADE);
        }
    }
}

/// Decides what of a request's upgrade goes upstream, as the last step before it is
/// sent: `h2c` never; the protocols in `allowed` only; none at all when no tunnel can be
/// made (`tunnel` false: an HTTP/2 client or cluster). Leaves `Upgrade` holding only
/// what was kept, or removes it (and `Connection`) so the request goes on as a plain
/// one. Returns what a `101` may switch to.
pub fn negotiate(headers: &mut HeaderMap, allowed: &[String], tunnel: bool) -> Option<Requested> {
    if !names_any(
        headers,
        &[HTTP2_SETTINGS, header::UPGRADE, header::CONNECTION],
    ) {
        return None;
    }
    strip_h2c(headers);
    if !headers.contains_key(header::UPGRADE) {
        // No upgrade left to announce (an `h2c` stripped, or none asked for).
        headers.remove(header::CONNECTION);
        return None;
    }
    let kept: Vec<&str> = match tokens(headers) {
        Some(tokens) if tunnel && is_upgrade_request(headers) => {
            tokens.into_iter().filter(|t| allows(allowed, t)).collect()
        }
        _ => Vec::new(),
    };
    let requested = Requested {
        protocols: kept
            .iter()
            .map(|t| protocol_name(t).to_ascii_lowercase())
            .collect(),
    };
    match HeaderValue::from_str(&kept.join(", ")) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(header::UPGRADE, value);
            Some(requested)
        }
        _ => {
            headers.remove(header::UPGRADE);
            headers.remove(header::CONNECTION);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::headers::tests::map;

    fn websocket() -> Vec<String> {
        vec!["websocket".into()]
    }

    #[test]
    fn h2c_and_its_settings_are_stripped_in_any_case_and_among_other_tokens() {
        for (upgrade, left) in [
            ("h2c", None),
            ("H2C", None),
            ("h2c/1", None),
            ("h2c, WebSocket", Some("WebSocket")),
            ("foo, H2c , bar/2", Some("foo, bar/2")),
        ] {
            let mut h = map(&[
                ("connection", "upgrade"),
                ("upgrade", upgrade),
                ("http2-settings", "AAMAAABk"),
            ]);
            strip_h2c(&mut h);
            assert_eq!(
                h.get("upgrade").map(|v| v.to_str().unwrap()),
                left,
                "{upgrade}"
            );
            assert!(h.get("http2-settings").is_none());
        }
        let mut split = map(&[("upgrade", "h2c"), ("upgrade", "websocket")]);
        strip_h2c(&mut split);
        assert_eq!(split.get_all("upgrade").iter().count(), 1);
        assert_eq!(split["upgrade"], "websocket");
    }

    #[test]
    fn only_allowed_protocols_are_kept_and_a_101_must_name_one_of_them() {
        let mut h = map(&[("connection", "upgrade"), ("upgrade", "WebSocket/13, irc")]);
        let requested = negotiate(&mut h, &websocket(), true).expect("websocket is allowed");
        assert_eq!(h["upgrade"], "WebSocket/13");
        assert_eq!(h["connection"], "upgrade");
        assert!(requested.accepts(&map(&[("upgrade", "websocket")])));
        assert!(requested.accepts(&map(&[("upgrade", "WEBSOCKET")])));
        assert!(!requested.accepts(&map(&[("upgrade", "h2c")])));
        assert!(!requested.accepts(&map(&[("upgrade", "irc")])));
        assert!(!requested.accepts(&map(&[("upgrade", "websocket, irc")])));
        assert!(!requested.accepts(&HeaderMap::new()), "a 101 must say");
    }

    #[test]
    fn a_route_allows_its_protocols_by_name_and_never_h2c() {
        let allowed = vec!["websocket".to_string(), "h2c".to_string()];
        assert!(allows(&allowed, "websocket"));
        assert!(allows(&allowed, "WebSocket/13"));
        assert!(!allows(&allowed, "h2c"));
        assert!(!allows(&allowed, "H2C/1"));
        assert!(!allows(&allowed, "irc"));
        assert!(!allows(&[], "websocket"));
        let one = Requested::one("WebSocket/13");
        assert!(one.accepts(&map(&[("upgrade", "websocket")])));
        assert!(!one.accepts(&map(&[("upgrade", "websocket, irc")])));
    }

    #[test]
    fn an_upgrade_nothing_allows_goes_on_as_a_plain_request() {
        let upgrade = [("connection", "upgrade"), ("upgrade", "websocket")];
        let check = |headers: &[(&str, &str)], allowed: &[String], tunnel: bool| {
            let mut h = map(headers);
            assert_eq!(negotiate(&mut h, allowed, tunnel), None, "{headers:?}");
            assert!(h.get("upgrade").is_none(), "{headers:?}");
            assert!(h.get("connection").is_none(), "{headers:?}");
        };
        check(
            &[("connection", "upgrade"), ("upgrade", "irc")],
            &websocket(),
            true,
        );
        check(&upgrade, &[], true);
        check(&upgrade, &websocket(), false);
        check(&[("upgrade", "websocket")], &websocket(), true);
        check(
            &[("connection", "upgrade"), ("upgrade", "h2c")],
            &["h2c".into()],
            true,
        );
    }

    /// Property tests: whatever the tokens, their case and their versions, `h2c` never
    /// survives and only allowed protocols are asked for.
    mod props {
        use proptest::prelude::*;

        use super::super::*;
        use super::map;

        fn token() -> impl Strategy<Value = String> {
            let name = prop_oneof![
                Just("h2c".to_string()),
                Just("websocket".to_string()),
                Just("custom-proto".to_string()),
                "[a-z0-9]{1,8}",
            ];
            let upper = proptest::collection::vec(any::<bool>(), 12);
            let version = proptest::option::of("[0-9]{1,2}");
            (name, upper, version).prop_map(|(name, upper, version)| {
                let name: String = name
                    .chars()
                    .zip(upper)
                    .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                    .collect();
                match version {
                    Some(v) => format!("{name}/{v}"),
                    None => name,
                }
            })
        }

        /// `Upgrade` lines: tokens joined by commas and optional spaces.
        fn upgrade_lines() -> impl Strategy<Value = Vec<String>> {
            let line = proptest::collection::vec((token(), "[ ]{0,2}"), 0..4).prop_map(|tokens| {
                tokens
                    .iter()
                    .map(|(t, space)| format!("{space}{t}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
            proptest::collection::vec(line, 1..3)
        }

        fn headers(lines: &[String], connection: bool) -> HeaderMap {
            let mut h = HeaderMap::new();
            for line in lines {
                h.append(header::UPGRADE, HeaderValue::from_str(line).unwrap());
            }
            if connection {
                h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            h.insert(HTTP2_SETTINGS, HeaderValue::from_static("AAMAAABk"));
            h
        }

        fn names(h: &HeaderMap) -> Vec<String> {
            tokens(h)
                .unwrap_or_default()
                .iter()
                .map(|t| protocol_name(t).to_ascii_lowercase())
                .collect()
        }

        proptest! {
            #![proptest_config(crate::property::config())]

            #[test]
            fn h2c_never_survives_and_the_rest_keeps_its_order(lines in upgrade_lines()) {
                let mut h = headers(&lines, true);
                let before: Vec<String> = names(&h).into_iter().filter(|n| n != "h2c").collect();
                strip_h2c(&mut h);
                prop_assert!(h.get(HTTP2_SETTINGS).is_none());
                prop_assert_eq!(names(&h), before);
                let again = h.clone();
                strip_h2c(&mut h);
                prop_assert_eq!(h, again);
            }

            #[test]
            fn only_allowed_protocols_are_asked_for(
                lines in upgrade_lines(),
                allowed in proptest::collection::vec(
                    prop_oneof![Just("h2c"), Just("websocket"), Just("custom-proto"), Just("a")],
                    0..3,
                ),
                connection in any::<bool>(),
                tunnel in any::<bool>(),
            ) {
                let allowed: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                let mut h = headers(&lines, connection);
                let offered = names(&h);
                let requested = negotiate(&mut h, &allowed, tunnel);
                let asked = names(&h);
                prop_assert!(asked.iter().all(|n| n != "h2c" && allowed.contains(n)));
                let could = connection && tunnel
                    && offered.iter().any(|n| n != "h2c" && allowed.contains(n));
                prop_assert_eq!(requested.is_some(), could);
                match requested {
                    Some(requested) => {
                        prop_assert!(h.contains_key(header::CONNECTION));
                        for name in &asked {
                            let switched = map(&[("upgrade", name.as_str())]);
                            prop_assert!(requested.accepts(&switched));
                        }
                        prop_assert!(!requested.accepts(&map(&[("upgrade", "h2c")])));
                    }
                    None => {
                        prop_assert!(h.get(header::UPGRADE).is_none());
                        prop_assert!(h.get(header::CONNECTION).is_none());
                    }
                }
            }
        }
    }
}
