//! Authorization policies checked against the listener they name: what a policy can
//! decide depends on what the listener knows about a connection.
//!
//! A `tcp` listener sees bytes, not requests: its policy decides once per connection, by
//! the peer's verified identity alone, so `methods` and `paths` (which no connection has)
//! are refused rather than ignored. And without client certificates no connection has an
//! identity: every `from` rule would fail to match and the policy would only ever apply
//! its default (as in Envoy's network RBAC and Linkerd, a plaintext or unauthenticated
//! peer never matches an identity), so such a policy is refused too.

use super::Check;
use crate::model::{ClientAuth, Listener, ListenerProtocol};
use crate::raw::RawAuthorization;
use crate::spanned::{List, Spanned};

/// Reports every policy that asks a listener for what it cannot know.
pub(crate) fn fit_listeners(
    ck: &mut Check<'_>,
    policies: &List<RawAuthorization>,
    listeners: &[Listener],
) {
    let Some(policies) = policies.as_ref().and_then(Spanned::get) else {
        return;
    };
    for at in policies {
        let Some(policy) = at.get() else { continue };
        let Some(named) = policy.listener.as_ref() else {
            continue;
        };
        let Some(listener) = named
            .get()
            .and_then(|name| listeners.iter().find(|l| &l.name == name))
        else {
            continue;
        };
        if matches!(listener.protocol, ListenerProtocol::Tcp { .. }) {
            tcp_policy(ck, named, policy, listener);
        }
        if !matches!(listener.protocol, ListenerProtocol::Auto { .. }) {
            ports_need_auto(ck, policy, listener);
        }
    }
}

fn tcp_policy(
    ck: &mut Check<'_>,
    named: &Spanned<String>,
    policy: &RawAuthorization,
    listener: &Listener,
) {
    let verified = listener
        .tls
        .as_ref()
        .is_some_and(|t| t.client_auth != ClientAuth::None);
    if !verified {
        ck.error(
            named,
            format!(
                "{:?} is a tcp listener without client certificates: its connections have no \
                 peer identity, so no `from` rule can ever match and only `default` would \
                 decide (set its tls.client_auth to required, or remove this policy)",
                listener.name
            ),
        );
    }
    let Some(rules) = policy.allow.as_ref().and_then(Spanned::get) else {
        return;
    };
    for rule in rules.iter().filter_map(Spanned::get) {
        for (field, name, what) in [
            (&rule.methods, "methods", "HTTP method"),
            (&rule.paths, "paths", "HTTP path"),
        ] {
            if let Some(field) = field {
                ck.error(
                    field,
                    format!(
                        "a connection to tcp listener {:?} has no {what}: its policy decides by \
                         peer identity (`from`) only (remove `{name}`)",
                        listener.name
                    ),
                );
            }
        }
    }
}

/// `ports` name the app ports of intercepted connections: a listener that is not `auto`
/// has only its own port, so such a rule would quietly never match.
fn ports_need_auto(ck: &mut Check<'_>, policy: &RawAuthorization, listener: &Listener) {
    let Some(rules) = policy.allow.as_ref().and_then(Spanned::get) else {
        return;
    };
    for rule in rules.iter().filter_map(Spanned::get) {
        if let Some(ports) = &rule.ports {
            ck.error(
                ports,
                format!(
                    "only auto listeners know a connection's destination port ({:?} is not \
                     one): remove `ports`",
                    listener.name
                ),
            );
        }
    }
}
