//! Balance: what an attempt's pick goes by — the endpoint an `original-destination`
//! cluster's request was going to, or the request's hash key for `ring_hash` and
//! `maglev` from the cluster's `hash` (a header, a cookie or the client's IP). The pick
//! itself (healthy endpoints whose breaker admits; 503 `circuit-open` when every breaker
//! refuses, `no-healthy-endpoint` when none is healthy) is the cluster's, as it begins
//! the attempt (`cluster/attempt.rs`).

use std::net::IpAddr;

use http::HeaderMap;
use meshwork_config::model::{HashPolicy, LoadBalancer};

use std::sync::Arc;

use super::RequestContext;
use crate::balance::{hash_key, hash_source_ip};
use crate::cluster::attempt::Target;
use crate::cluster::{ClusterRuntime, Endpoint};
use crate::http::RequestBody;
use crate::mesh::MeshPlan;

/// The hash of a request's key under `policy`: the header's value (the first one when
/// repeated), the cookie's value, or the client's IP. `None` when the request has no
/// such header or cookie; the balancer then picks at random.
pub fn request_hash_key(policy: &HashPolicy, headers: &HeaderMap, client: IpAddr) -> Option<u64> {
    match policy {
        HashPolicy::Header(name) => headers.get(name).map(|v| hash_key(v.as_bytes())),
        HashPolicy::Cookie(name) => cookie_value(headers, name).map(hash_key),
        HashPolicy::SourceIp => Some(hash_source_ip(client)),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4:
/// `name=value` pairs separated by `; `; HTTP/2 may split them over several headers).
/// Written here rather than pulling in a cookie crate: a lookup by name is all it takes.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| {
                let value = pair[eq + 1..].trim_ascii();
                // A quoted value hashes as its content.
                value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value)
            })
        })
}

/// Which endpoint of `cluster` the request's attempt goes to: the one its connection was
/// going to (an `original-destination` cluster), or one the cluster's balancer picks,
/// by the request's hash key when the balancer hashes, preferring one other than
/// `avoid`.
pub fn target<'a>(
    ctx: &RequestContext,
    req: &http::Request<RequestBody>,
    cluster: &ClusterRuntime,
    avoid: Option<&'a Arc<Endpoint>>,
) -> Target<'a> {
    if let (Some(destinations), Some(destination)) =
        (&cluster.original_destinations, ctx.original_destination)
    {
        return Target::Endpoint(destinations.endpoint(
            destination,
            req.version() == http::Version::HTTP_2,
            &cluster.gates,
            MeshPlan::outbound(&ctx.snapshot, &ctx.listener, destination),
            ctx.transparent_source,
        ));
    }
    let key = hash_key_of(cluster, req.headers(), ctx.client_addr.ip());
    Target::Pick { avoid, key }
}

/// The request's hash key in `cluster`, when its balancer hashes (`ring_hash`, `maglev`)
/// by a `hash` policy the request has a value for.
pub fn hash_key_of(cluster: &ClusterRuntime, headers: &HeaderMap, client: IpAddr) -> Option<u64> {
    let hashing = matches!(
        cluster.config.load_balancer,
        LoadBalancer::RingHash | LoadBalancer::Maglev
    );
    let policy = cluster.config.hash.as_ref().filter(|_| hashing)?;
    request_hash_key(policy, headers, client)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use http::HeaderValue;

    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_header_key_hashes_the_header_value() {
        let policy = HashPolicy::Header(http::HeaderName::from_static("x-user-id"));
        let key = request_hash_key(&policy, &headers(&[("x-user-id", "alice")]), CLIENT);
        assert_eq!(key, Some(hash_key(b"alice")));
        assert_eq!(request_hash_key(&policy, &headers(&[]), CLIENT), None);
    }

    #[test]
    fn a_cookie_key_finds_the_cookie_among_others_and_across_headers() {
        let policy = HashPolicy::Cookie("session".into());
        let one = headers(&[("cookie", "theme=dark; session=abc123; lang=en")]);
        let split = headers(&[("cookie", "theme=dark"), ("cookie", "session=\"abc123\"")]);
        assert_eq!(
            request_hash_key(&policy, &one, CLIENT),
            Some(hash_key(b"abc123"))
        );
        assert_eq!(
            request_hash_key(&policy, &split, CLIENT),
            Some(hash_key(b"abc123"))
        );
        let other = headers(&[("cookie", "sessionx=1; xsession=2")]);
        assert_eq!(request_hash_key(&policy, &other, CLIENT), None);
    }

    #[test]
    fn a_source_ip_key_ignores_the_port_and_ipv4_mapping() {
        let policy = HashPolicy::SourceIp;
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(
            request_hash_key(&policy, &HeaderMap::new(), CLIENT),
            request_hash_key(&policy, &HeaderMap::new(), mapped)
        );
        assert_ne!(
            request_hash_key(&policy, &HeaderMap::new(), CLIENT),
            request_hash_key(&policy, &HeaderMap::new(), "10.0.0.8".parse().unwrap())
        );
    }
}
