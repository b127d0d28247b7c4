//! Authorization policies compiled for the request path: who (peer identity), what
//! method, which path (glob) — first matching rule allows, otherwise the default decides.

use meshwork_config::model::{AuthorizationDefault, AuthorizationPolicy, AuthorizationRule};

/// A listener's policy, compiled once per snapshot.
#[derive(Debug)]
pub struct Authorization {
    rules: Vec<Rule>,
    default_allow: bool,
}

#[derive(Debug)]
struct Rule {
    from: From,
    /// Empty = any method.
    methods: Vec<http::Method>,
    /// Empty = any path.
    paths: Vec<Glob>,
    /// Empty = any destination port.
    ports: Vec<u16>,
}

#[derive(Debug)]
enum From {
    /// `from` absent or empty: anyone, authenticated or not.
    Anyone,
    /// `"*"` among the identities: any authenticated peer.
    AnyAuthenticated,
    Identities(Vec<String>),
}

impl Authorization {
    pub fn new(policy: &AuthorizationPolicy) -> Self {
        Self {
            rules: policy.allow.iter().map(Rule::new).collect(),
            default_allow: policy.default == AuthorizationDefault::Allow,
        }
    }

    /// Whether a request from `peer` (its verified identity, if any) may pass;
    /// `port`: the original destination port of an intercepted connection.
    pub fn allows(
        &self,
        peer: Option<&str>,
        method: &http::Method,
        path: &str,
        port: Option<u16>,
    ) -> bool {
        self.rules
            .iter()
            .any(|r| r.covers(port) && r.matches(peer, method, path))
            || self.default_allow
    }

    /// Whether a connection from `peer` may pass (`tcp` listeners, and what an `auto`
    /// listener relays unread), decided once per connection. A connection has no method
    /// or path, so a rule naming either never matches one (`check` refuses such rules on
    /// tcp listeners anyway).
    pub fn allows_connection(&self, peer: Option<&str>, port: Option<u16>) -> bool {
        self.rules.iter().any(|r| {
            r.methods.is_empty() && r.paths.is_empty() && r.covers(port) && r.from.admits(peer)
        }) || self.default_allow
    }
}

impl From {
    fn admits(&self, peer: Option<&str>) -> bool {
        match self {
            From::Anyone => true,
            From::AnyAuthenticated => peer.is_some(),
            From::Identities(ids) => peer.is_some_and(|p| ids.iter().any(|id| id == p)),
        }
    }
}

impl Rule {
    fn new(rule: &AuthorizationRule) -> Self {
        let from = if rule.from.is_empty() {
            From::Anyone
        } else if rule.from.iter().any(|f| f == "*") {
            From::AnyAuthenticated
        } else {
            From::Identities(rule.from.clone())
        };
        Self {
            from,
            methods: rule
                .methods
                .iter()
                .filter_map(|m| http::Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            paths: rule.paths.iter().map(|p| Glob::new(p)).collect(),
            ports: rule.ports.clone(),
        }
    }

    /// A rule with `ports` covers only connections known to go to one of them.
    fn covers(&self, port: Option<u16>) -> bool {
        self.ports.is_empty() || port.is_some_and(|p| self.ports.contains(&p))
    }

    fn matches(&self, peer: Option<&str>, method: &http::Method, path: &str) -> bool {
        self.from.admits(peer)
            && (self.methods.is_empty() || self.methods.contains(method))
            && (self.paths.is_empty() || self.paths.iter().any(|g| g.matches(path)))
    }
}

/// A path pattern where `*` matches any run of characters (`/` included).
#[derive(Debug)]
struct Glob {
    /// The literal pieces between the stars.
    pieces: Vec<String>,
}

impl Glob {
    fn new(pattern: &str) -> Self {
        Self {
            pieces: pattern.split('*').map(str::to_owned).collect(),
        }
    }

    fn matches(&self, text: &str) -> bool {
        if self.pieces.len() == 1 {
            return self.pieces[0] == text;
        }
        let first = &self.pieces[0];
        let last = &self.pieces[self.pieces.len() - 1];
        if !text.starts_with(first.as_str()) || text.len() < first.len() + last.len() {
            return false;
        }
        if !text.ends_with(last.as_str()) {
            return false;
        }
        // The middle pieces, leftmost first, within what the first and last leave.
        let mut rest = &text[first.len()..text.len() - last.len()];
        for piece in &self.pieces[1..self.pieces.len() - 1] {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// An authorization policy on a listener that does not verify client certificates can
/// only match rules without `from`: say so, since it is probably not what was meant.
pub fn warn_about_unauthenticated_policies(config: &meshwork_config::Config) {
    use meshwork_config::model::ClientAuth;
    for policy in &config.authorization {
        let verified = config
            .listeners
            .iter()
            .find(|l| l.name == policy.listener)
            .and_then(|l| l.tls.as_ref())
            .is_some_and(|t| t.client_auth != ClientAuth::None);
        if !verified {
            tracing::warn!(
                listener = %policy.listener,
                "authorization policy on a listener without client certificates (tls.client_auth): no request has a peer identity there"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(default: AuthorizationDefault, rules: Vec<AuthorizationRule>) -> Authorization {
        Authorization::new(&AuthorizationPolicy {
            listener: "inbound".into(),
            default,
            allow: rules,
        })
    }

    fn rule(from: &[&str], methods: &[&str], paths: &[&str]) -> AuthorizationRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        AuthorizationRule {
            ports: Vec::new(),
            from: v(from),
            methods: v(methods),
            paths: v(paths),
        }
    }

    const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";

    #[test]
    fn globs_match_any_run_of_characters() {
        let g = Glob::new("/api/*");
        assert!(g.matches("/api/"));
        assert!(g.matches("/api/v1/users"));
        assert!(!g.matches("/apix"));
        let g = Glob::new("/a/*/c*d");
        assert!(g.matches("/a/b/cd"));
        assert!(g.matches("/a/b/x/c-d"));
        assert!(!g.matches("/a/b/c"));
        assert!(Glob::new("*").matches("/anything"));
        assert!(Glob::new("/exact").matches("/exact"));
        assert!(!Glob::new("/exact").matches("/exact/"));
        assert!(!Glob::new("/ab*ba").matches("/aba"));
    }

    #[test]
    fn deny_by_default_allows_only_what_a_rule_names() {
        let p = policy(
            AuthorizationDefault::Deny,
            vec![rule(&[WEB], &["GET"], &["/api/*"])],
        );
        let get = http::Method::GET;
        assert!(p.allows(Some(WEB), &get, "/api/users", None));
        assert!(!p.allows(Some(WEB), &http::Method::POST, "/api/users", None));
        assert!(!p.allows(Some(WEB), &get, "/admin", None));
        assert!(!p.allows(
            Some("spiffe://cluster.local/ns/prod/sa/other"),
            &get,
            "/api/x",
            None
        ));
        assert!(!p.allows(None, &get, "/api/x", None));
    }

    #[test]
    fn a_connection_is_allowed_by_identity_rules_only() {
        let p = policy(
            AuthorizationDefault::Deny,
            vec![rule(&[WEB], &[], &[]), rule(&["*"], &["GET"], &["/x"])],
        );
        assert!(p.allows_connection(Some(WEB), None));
        assert!(
            !p.allows_connection(Some("spiffe://cluster.local/ns/prod/sa/other"), None),
            "a rule with methods or paths never matches a connection"
        );
        assert!(!p.allows_connection(None, None));
        let p = policy(AuthorizationDefault::Deny, vec![rule(&["*"], &[], &[])]);
        assert!(p.allows_connection(Some(WEB), None));
        assert!(
            !p.allows_connection(None, None),
            "* needs an authenticated peer"
        );
        assert!(policy(AuthorizationDefault::Allow, vec![]).allows_connection(None, None));
    }

    #[test]
    fn a_star_means_any_authenticated_peer_and_no_from_means_anyone() {
        let p = policy(AuthorizationDefault::Deny, vec![rule(&["*"], &[], &[])]);
        assert!(p.allows(Some(WEB), &http::Method::DELETE, "/x", None));
        assert!(!p.allows(None, &http::Method::GET, "/x", None));
        let p = policy(
            AuthorizationDefault::Deny,
            vec![rule(&[], &[], &["/healthz"])],
        );
        assert!(p.allows(None, &http::Method::GET, "/healthz", None));
        let p = policy(AuthorizationDefault::Allow, vec![]);
        assert!(p.allows(None, &http::Method::GET, "/x", None));
    }

    #[test]
    fn a_rule_with_ports_covers_only_connections_to_them() {
        let mut r = rule(&[], &[], &[]);
        r.ports = vec![8080];
        let p = policy(AuthorizationDefault::Deny, vec![r]);
        assert!(p.allows_connection(None, Some(8080)));
        assert!(!p.allows_connection(None, Some(9090)));
        assert!(
            !p.allows_connection(None, None),
            "an unknown port is not one of them"
        );
        let get = http::Method::GET;
        assert!(p.allows(None, &get, "/x", Some(8080)));
        assert!(!p.allows(None, &get, "/x", Some(22)));
    }

    #[test]
    fn http_rules_never_let_an_unread_connection_through() {
        let p = policy(AuthorizationDefault::Deny, vec![rule(&[], &["GET"], &[])]);
        assert!(p.allows(None, &http::Method::GET, "/x", Some(80)));
        assert!(!p.allows_connection(None, Some(80)));
    }
}
