//! Paths written in the config that meet request paths. Routes and authorization rules
//! are compared with the request path after normalization (`crate::request_path`), and a
//! rewrite or a redirect writes a request path; so each must be in normalized form, or
//! it can never match (or is read otherwise than written). The error gives the
//! normalized form to write, or the reason no request can ever have such a path.
//!
//! Not checked: regex path matches (they run on the normalized path; a regex cannot be
//! checked in general) and health check paths (sent to the endpoints as written, never
//! matched against a route or a policy).

use std::borrow::Cow;

use crate::model::{EscapedSlashes, Listener};
use crate::request_path::{PathRefusal, hex_value, is_unreserved, normalize_path};

/// Where a config path is used; it decides how it is checked and what the error says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathUse {
    /// `match.path.exact`.
    Exact,
    /// `match.path.prefix`: a string prefix, which may end anywhere in a segment (`/api`
    /// starts `/api/v1` and `/apis`, `/.` starts `/.well-known`).
    Prefix,
    /// An authorization `paths` pattern, where `*` is any run of characters.
    Pattern,
    /// `rewrite.path_prefix`: sent to the upstream in place of the matched prefix.
    Rewrite,
    /// `redirect.path`: where the client is sent.
    Redirect,
}

/// How the requests a config path meets have their path read: whether `%2F` and `%5C`
/// are kept, and, when they are refused, which setting would keep them.
#[derive(Clone, Debug)]
pub(crate) struct Reading {
    escaped: EscapedSlashes,
    /// Said after an encoded-slash refusal: the listener setting that decides.
    refused_because: String,
}

const KEEP: &str = "paths.escaped_slashes: keep";

impl Reading {
    /// The paths of route table `table`: an encoded slash can match when one of the
    /// listeners using the table keeps it. A table no listener uses (yet: the control
    /// plane may serve one later) is read leniently, as with `keep`.
    pub(crate) fn route_table(listeners: &[Listener], table: &str) -> Reading {
        let users: Vec<&Listener> = listeners
            .iter()
            .filter(|l| l.route_table() == Some(table))
            .collect();
        let keeps = users.is_empty()
            || users
                .iter()
                .any(|l| l.paths.escaped_slashes == EscapedSlashes::Keep);
        let names: Vec<String> = users.iter().map(|l| format!("{:?}", l.name)).collect();
        Reading {
            escaped: if keeps {
                EscapedSlashes::Keep
            } else {
                EscapedSlashes::Reject
            },
            refused_because: format!(
                "route table {table:?} is used by {} {} without {KEEP}",
                if names.len() == 1 {
                    "listener"
                } else {
                    "listeners"
                },
                names.join(", ")
            ),
        }
    }

    /// The paths of the authorization policy of listener `name` (read leniently when the
    /// listener is not known here: its name is checked elsewhere).
    pub(crate) fn listener(listeners: &[Listener], name: &str) -> Reading {
        let escaped = listeners
            .iter()
            .find(|l| l.name == name)
            .map_or(EscapedSlashes::Keep, |l| l.paths.escaped_slashes);
        Reading {
            escaped,
            refused_because: format!("listener {name:?} does not set {KEEP}"),
        }
    }

    /// A redirect's path: the client may be sent to any server, where an encoded slash
    /// can be what is meant.
    pub(crate) fn anywhere() -> Reading {
        Reading {
            escaped: EscapedSlashes::Keep,
            refused_because: String::new(),
        }
    }
}

/// `path` (already known to start with `/`) when it is in normalized form for its use.
///
/// # Errors
/// The message for the field: the normalized form to write, or why no request can have
/// such a path.
pub(crate) fn check(path: &str, used: PathUse, reading: &Reading) -> Result<String, String> {
    if used == PathUse::Pattern {
        star_in_percent_encoding(path)?;
    }
    // A prefix is checked as the start of a path: its last segment completed with a
    // name (and a cut percent-encoding with digits that keep it encoded).
    let completion = if used == PathUse::Prefix {
        completion(path)
    } else {
        String::new()
    };
    let probe = format!("{path}{completion}");
    match normalize_path(&probe, reading.escaped) {
        Ok(Cow::Borrowed(_)) => Ok(path.to_string()),
        Ok(Cow::Owned(normal)) => {
            let fix = normal.strip_suffix(completion.as_str()).unwrap_or(&normal);
            Err(not_normal(path, fix, used))
        }
        Err(refusal) => Err(refused(path, refusal, used, reading)),
    }
}

fn not_normal(path: &str, fix: &str, used: PathUse) -> String {
    let why = match used {
        PathUse::Exact | PathUse::Prefix | PathUse::Pattern => {
            "requests are matched after normalization, so it can never match".to_string()
        }
        PathUse::Rewrite => format!("the upstream gets it as written and may read it as {fix:?}"),
        PathUse::Redirect => format!("the client's next request reads as {fix:?}"),
    };
    format!("{path:?} is not in normalized form: {why}; write {fix:?}")
}

fn refused(path: &str, refusal: PathRefusal, used: PathUse, reading: &Reading) -> String {
    let what = match used {
        PathUse::Exact => "can never match: a request with this path is refused (400)",
        PathUse::Prefix => "can never match: a request whose path starts with it is refused (400)",
        PathUse::Pattern => "can never match: a request whose path fits it is refused (400)",
        PathUse::Rewrite => "cannot be sent upstream: meshwork refuses such a path (400)",
        PathUse::Redirect => "cannot be redirected to: a request for it is refused (400)",
    };
    let mut message = format!("{path:?} {what}: {refusal}");
    if refusal == PathRefusal::EscapedSlash && !reading.refused_because.is_empty() {
        message.push_str("; ");
        message.push_str(&reading.refused_because);
    }
    message
}

/// What completes a prefix's last segment into a name: `x`, after the digits a cut
/// percent-encoding needs (`%` -> `%25`, `%2` -> `%20`, `%3` -> `%3A`: the first that
/// stays encoded; `%0` and `%1` can only be controls, so they stay refused).
fn completion(prefix: &str) -> String {
    let bytes = prefix.as_bytes();
    let n = bytes.len();
    if bytes.last() == Some(&b'%') {
        return "25x".to_string();
    }
    if n >= 2 && bytes[n - 2] == b'%' {
        if let Some(high) = hex_value(bytes[n - 1]) {
            let low = (0..16u8)
                .find(|low| {
                    let b = high << 4 | low;
                    !is_unreserved(b) && b != b'/' && b != b'\\'
                })
                .unwrap_or(0);
            return format!("{low:X}x");
        }
    }
    "x".to_string()
}

/// In a pattern, `*` does not stand for part of a percent-encoding (`/a%*`, `/a%2*`):
/// the pattern is checked as a path, with each `*` a name.
fn star_in_percent_encoding(pattern: &str) -> Result<(), String> {
    let bytes = pattern.as_bytes();
    let cut = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && (bytes.get(i + 1) == Some(&b'*')
                || (bytes.get(i + 1).is_some_and(|&h| hex_value(h).is_some())
                    && bytes.get(i + 2) == Some(&b'*')))
    });
    if cut {
        Err(format!(
            "{pattern:?}: a \"*\" cannot stand for part of a percent-encoding (write \"%\" with its two hex digits)"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(escaped: EscapedSlashes) -> Reading {
        Reading {
            escaped,
            refused_because: "listener \"edge\" does not set paths.escaped_slashes: keep".into(),
        }
    }

    fn checked(path: &str, used: PathUse) -> Result<String, String> {
        check(path, used, &reading(EscapedSlashes::Reject))
    }

    #[test]
    fn normal_paths_pass_in_every_use() {
        for used in [
            PathUse::Exact,
            PathUse::Prefix,
            PathUse::Pattern,
            PathUse::Rewrite,
            PathUse::Redirect,
        ] {
            for path in [
                "/",
                "/api",
                "/api/",
                "/~user/a%20b",
                "/a;v=1/b",
                "/.well-known/x",
            ] {
                assert_eq!(checked(path, used), Ok(path.to_string()), "{path} {used:?}");
            }
        }
    }

    #[test]
    fn a_prefix_may_end_anywhere_in_a_segment() {
        for prefix in [
            "/a/.", "/a/..", "/a%", "/a%2", "/a%3", "/a%5", "/a%7", "/a%C3", "/a;",
        ] {
            assert_eq!(checked(prefix, PathUse::Prefix), Ok(prefix.to_string()));
        }
        // ...but not end in what no path can continue.
        assert!(
            checked("/a%0", PathUse::Prefix)
                .unwrap_err()
                .contains("control")
        );
        assert!(
            checked("/a/..;", PathUse::Prefix)
                .unwrap_err()
                .contains("\"..;\"")
        );
        assert!(
            checked("/../", PathUse::Prefix)
                .unwrap_err()
                .contains("climbs")
        );
    }

    #[test]
    fn the_error_gives_the_normalized_form() {
        let cases = [
            ("/%7Euser/", PathUse::Prefix, "/~user/"),
            ("/a//b", PathUse::Exact, "/a/b"),
            ("/x/../admin", PathUse::Prefix, "/admin"),
            ("/a/./", PathUse::Prefix, "/a/"),
            ("/a%3b", PathUse::Prefix, "/a%3B"),
            ("/a%c", PathUse::Prefix, "/a%C"),
            ("/café", PathUse::Exact, "/caf%C3%A9"),
            ("/a/.", PathUse::Exact, "/a/"),
            ("/public/./*", PathUse::Pattern, "/public/*"),
            ("/a/*/../b", PathUse::Pattern, "/a/b"),
            ("/v2//", PathUse::Rewrite, "/v2/"),
            ("/v2/.", PathUse::Rewrite, "/v2/"),
            ("/%61", PathUse::Redirect, "/a"),
        ];
        for (path, used, fix) in cases {
            let error = checked(path, used).unwrap_err();
            assert!(
                error.starts_with(&format!("{path:?} is not in normalized form: "))
                    && error.ends_with(&format!("; write {fix:?}")),
                "{path} {used:?}: {error}"
            );
        }
    }

    #[test]
    fn an_encoded_slash_matches_only_where_a_listener_keeps_it() {
        let error = checked("/a%2Fb", PathUse::Exact).unwrap_err();
        assert_eq!(
            error,
            r#""/a%2Fb" can never match: a request with this path is refused (400): an encoded "/" or "\" (%2F, %5C); listener "edge" does not set paths.escaped_slashes: keep"#
        );
        let keep = reading(EscapedSlashes::Keep);
        assert_eq!(
            check("/a%2Fb", PathUse::Exact, &keep),
            Ok("/a%2Fb".to_string())
        );
        assert!(
            check("/a%2fb", PathUse::Exact, &keep)
                .unwrap_err()
                .ends_with(r#"write "/a%2Fb""#)
        );
        // A redirect can go anywhere: kept, without a listener to name.
        assert_eq!(
            check("/a%2Fb", PathUse::Redirect, &Reading::anywhere()),
            Ok("/a%2Fb".to_string())
        );
    }

    #[test]
    fn a_pattern_star_is_a_name_and_never_part_of_an_encoding() {
        for pattern in ["/api/*", "/*", "/a/.*", "/a/*.", "/a/*/b", "/a*"] {
            assert_eq!(checked(pattern, PathUse::Pattern), Ok(pattern.to_string()));
        }
        for pattern in ["/a%*", "/a%2*"] {
            assert!(
                checked(pattern, PathUse::Pattern)
                    .unwrap_err()
                    .contains("percent-encoding")
            );
        }
        assert!(
            checked("/a/..;*", PathUse::Pattern)
                .unwrap_err()
                .contains("can never match")
        );
        assert!(
            checked("/a?*", PathUse::Pattern)
                .unwrap_err()
                .contains("can never match")
        );
    }

    #[test]
    fn a_route_table_is_read_as_its_listeners_read_paths() {
        let listener = |name: &str, table: &str, escaped| Listener {
            name: name.into(),
            address: "127.0.0.1:0".parse().unwrap(),
            protocol: crate::model::ListenerProtocol::Http {
                route_table: table.into(),
            },
            tls: None,
            limits: crate::model::DEFAULT_LISTENER_LIMITS,
            paths: crate::model::ListenerPaths {
                escaped_slashes: escaped,
            },
            direction: Default::default(),
            original_destination: false,
            ports: Default::default(),
        };
        let both = [
            listener("a", "t", EscapedSlashes::Reject),
            listener("b", "t", EscapedSlashes::Keep),
        ];
        assert_eq!(
            Reading::route_table(&both, "t").escaped,
            EscapedSlashes::Keep
        );
        let rejecting = Reading::route_table(&both[..1], "t");
        assert_eq!(rejecting.escaped, EscapedSlashes::Reject);
        assert_eq!(
            rejecting.refused_because,
            r#"route table "t" is used by listener "a" without paths.escaped_slashes: keep"#
        );
        assert_eq!(
            Reading::route_table(&both, "unused").escaped,
            EscapedSlashes::Keep
        );
    }
}
