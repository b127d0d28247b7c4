//! Validation of clusters: endpoints, protocol, load balancing and resilience settings.

use std::time::Duration;

use super::Check;
use super::check::pos_of;
use super::other::client_tls;
use super::route::absolute_path;
use crate::model::{
    Address, BalancerTuning, Cluster, DEFAULT_CLUSTER_LIMITS, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EWMA_DECAY, DEFAULT_POOL_IDLE_TIMEOUT, Discovery, DnsDiscovery, Endpoint, HashPolicy,
    HealthCheck, HealthCheckKind, LoadBalancer, UpstreamProtocol,
};
use crate::raw::{
    LoadBalancerName, RawCluster, RawEndpoint, RawHash, RawHealthCheck, UpstreamProtocolName,
};
use crate::spanned::Spanned;
use crate::units;

pub(crate) const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(5);

pub(crate) fn cluster(
    ck: &mut Check<'_>,
    at: &Spanned<RawCluster>,
    raw: &RawCluster,
    names: &super::Names,
    vips: &mut super::vip::VipClaims,
) -> Option<Cluster> {
    let name = ck.required_text(at, &raw.name, "name");
    let vip = ck
        .optional(raw.vip.as_ref(), |ck, at| {
            super::vip::vip(ck, at, &name, vips)
        })
        .flatten();
    if name == crate::model::ORIGINAL_DESTINATION_CLUSTER {
        if let Some(field) = &raw.name {
            ck.error(
                field,
                format!(
                    "{name:?} is reserved: it names where auto listeners send what matches none \
                     of their routes (choose another name)"
                ),
            );
        }
    }
    let endpoints = endpoints(ck, at, raw);
    let discovery = ck.optional(raw.discovery.as_ref(), |ck, at| {
        let d = at.get()?;
        match (&d.dns, &d.kubernetes) {
            (None, None) => {
                ck.error(at, "missing field \"dns\" (or \"kubernetes\")");
                None
            }
            (Some(_), Some(k)) => {
                ck.error(k, "cannot be used together with \"dns\" (give one of them)");
                None
            }
            (None, Some(_)) => {
                if let Some(refresh) = &d.refresh {
                    ck.error(
                        refresh,
                        "only with \"dns\" (Kubernetes endpoints are watched, not polled)",
                    );
                }
                let service = ck.parse(&d.kubernetes, |s| units::parse_service_port(s))?;
                Some(Discovery::Kubernetes {
                    kubernetes: service,
                })
            }
            (Some(_), None) => {
                let dns = ck.parse(&d.dns, |s| units::parse_address(s));
                let refresh = ck.positive_duration(&d.refresh, DEFAULT_DNS_REFRESH);
                Some(Discovery::Dns(DnsDiscovery { dns: dns?, refresh }))
            }
        }
    });
    let protocol = match raw.protocol.as_ref().and_then(Spanned::get) {
        None | Some(UpstreamProtocolName::Http1) => UpstreamProtocol::Http1,
        Some(UpstreamProtocolName::Http2) => UpstreamProtocol::Http2,
        Some(UpstreamProtocolName::Auto) => UpstreamProtocol::Auto,
    };
    if let (UpstreamProtocol::Auto, None, Some(field)) = (protocol, &raw.tls, &raw.protocol) {
        ck.error(
            field,
            "protocol auto is chosen by ALPN over TLS, so it needs tls",
        );
    }
    let load_balancer = load_balancer(raw.load_balancer.as_ref().and_then(Spanned::get));
    let hash = ck.optional(raw.hash.as_ref(), hash).flatten();
    let hashing = matches!(load_balancer, LoadBalancer::RingHash | LoadBalancer::Maglev);
    // A hash key with another balancer is ignored, as in Envoy (the format's reference sample
    // shows one with round_robin); a hashing balancer without one cannot work.
    if let (None, Some(lb)) = (&raw.hash, raw.load_balancer.as_ref()) {
        if hashing {
            ck.error(lb, "ring_hash and maglev need a hash key (add `hash:`)");
        }
    }
    let balancer_tuning = balancer_tuning(ck, raw, load_balancer, endpoints.len());
    let limits = raw
        .limits
        .as_ref()
        .and_then(Spanned::get)
        .map(|l| {
            let d = DEFAULT_CLUSTER_LIMITS;
            crate::model::ClusterLimits {
                max_connections: ck.int_in(&l.max_connections, 1, u32::MAX, d.max_connections),
                max_pending: ck.int_in(&l.max_pending, 0, u32::MAX, d.max_pending),
                max_requests: ck.int_in(&l.max_requests, 1, u32::MAX, d.max_requests),
                max_retries: ck.int_in(&l.max_retries, 0, u32::MAX, d.max_retries),
            }
        })
        .unwrap_or(DEFAULT_CLUSTER_LIMITS);
    Some(Cluster {
        name,
        endpoints,
        discovery: discovery.flatten(),
        protocol,
        load_balancer,
        hash,
        balancer_tuning,
        connect_timeout: ck.positive_duration(&raw.connect_timeout, DEFAULT_CONNECT_TIMEOUT),
        idle_timeout: ck.positive_duration(&raw.idle_timeout, DEFAULT_POOL_IDLE_TIMEOUT),
        limits,
        circuit_breaker: ck
            .optional(raw.circuit_breaker.as_ref(), super::breaker::circuit_breaker)
            .flatten(),
        health_check: ck
            .optional(raw.health_check.as_ref(), health_check)
            .flatten(),
        tls: ck.optional(raw.tls.as_ref(), |ck, at| {
            if let Some(t) = at.get() {
                if t.ca.is_none() && !names.identity {
                    ck.error(
                        at,
                        "missing field \"ca\" (the CA bundle to verify the endpoints' certificates; or set `identity` to use its trust bundle)",
                    );
                }
            }
            client_tls(ck, at)
        }),
        vip,
    })
}

fn endpoints(ck: &mut Check<'_>, at: &Spanned<RawCluster>, raw: &RawCluster) -> Vec<Endpoint> {
    match (&raw.endpoints, &raw.discovery) {
        (None, None) => ck.error(at, "missing field \"endpoints\" (or \"discovery\")"),
        (Some(_), Some(d)) => ck.error(
            d,
            "cannot be used together with \"endpoints\" (give one of them)",
        ),
        (Some(list), None) if list.get().is_some_and(Vec::is_empty) => {
            ck.error(list, "needs at least one endpoint")
        }
        _ => {}
    }
    let list = ck.list(&raw.endpoints, |ck, at, e| {
        let endpoint = match e {
            RawEndpoint::Address(text) => {
                let address = ck.parse(&Some(text.clone()), |s| units::parse_address(s));
                Endpoint::at(address?)
            }
            RawEndpoint::Weighted(w) => {
                ck.require(at, &w.address, "address");
                let address: Option<Address> = ck.parse(&w.address, |s| units::parse_address(s));
                let weight = ck.int_in(&w.weight, 1, u32::MAX, 1);
                let zone = w.zone.as_ref().and_then(Spanned::get).cloned();
                let meshed = w.meshed.as_ref().and_then(Spanned::get).copied();
                Endpoint {
                    address: address?,
                    weight,
                    zone,
                    meshed: meshed.unwrap_or(false),
                }
            }
        };
        Some((endpoint, at.pos, at.path.clone()))
    });
    let mut out: Vec<Endpoint> = Vec::new();
    // A set, not a scan of `out`: a discovered cluster may list 100,000 endpoints.
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for (endpoint, pos, path) in list {
        if !seen.insert(endpoint.address.clone()) {
            ck.at(
                pos,
                &path,
                format!("endpoint {} is listed twice", endpoint.address),
            );
        } else {
            out.push(endpoint);
        }
    }
    out
}

fn load_balancer(name: Option<&LoadBalancerName>) -> LoadBalancer {
    match name {
        None | Some(LoadBalancerName::RoundRobin) => LoadBalancer::RoundRobin,
        Some(LoadBalancerName::WeightedRoundRobin) => LoadBalancer::WeightedRoundRobin,
        Some(LoadBalancerName::Random) => LoadBalancer::Random,
        Some(LoadBalancerName::LeastRequest) => LoadBalancer::LeastRequest,
        Some(LoadBalancerName::PeakEwma) => LoadBalancer::PeakEwma,
        Some(LoadBalancerName::RingHash) => LoadBalancer::RingHash,
        Some(LoadBalancerName::Maglev) => LoadBalancer::Maglev,
    }
}

/// The `ring_hash`, `maglev` and `peak_ewma` settings; each only with its balancer, so a
/// setting that would do nothing is an error rather than silently ignored.
fn balancer_tuning(
    ck: &mut Check<'_>,
    raw: &RawCluster,
    load_balancer: LoadBalancer,
    endpoints: usize,
) -> BalancerTuning {
    let mut tuning = BalancerTuning::default();
    let settings = [
        (
            raw.ring_hash.as_ref().map(|s| (s.pos, &s.path)),
            LoadBalancer::RingHash,
        ),
        (
            raw.maglev.as_ref().map(|s| (s.pos, &s.path)),
            LoadBalancer::Maglev,
        ),
        (
            raw.peak_ewma.as_ref().map(|s| (s.pos, &s.path)),
            LoadBalancer::PeakEwma,
        ),
    ];
    for (at, needs) in settings {
        if let Some((pos, path)) = at {
            if load_balancer != needs {
                let message = format!(
                    "applies only with `load_balancer: {}` (this cluster's is {})",
                    lb_name(needs),
                    lb_name(load_balancer)
                );
                ck.at(pos, path, message);
            }
        }
    }
    if let Some(r) = raw.ring_hash.as_ref().and_then(Spanned::get) {
        if r.ring_size.is_some() {
            tuning.ring_size = Some(ck.int_in(&r.ring_size, 1, MAX_RING_SIZE, 1));
        }
    }
    if let Some(m) = raw.maglev.as_ref().and_then(Spanned::get) {
        if let Some(field) = &m.table_size {
            let size = ck.int_in(&m.table_size, 1, u32::MAX, 1);
            if field.get().is_some() {
                if !is_prime(size) {
                    ck.error(field, format!("{size} is not a prime number (Maglev needs a prime table size, e.g. 65537)"));
                } else if (size as usize) <= endpoints {
                    ck.error(field, format!("{size} slots cannot hold {endpoints} endpoints (use a prime of at least 100 per endpoint)"));
                }
            }
            tuning.maglev_table_size = Some(size);
        }
    }
    if let Some(p) = raw.peak_ewma.as_ref().and_then(Spanned::get) {
        tuning.ewma_decay = ck.positive_duration(&p.decay, DEFAULT_EWMA_DECAY);
    }
    tuning
}

/// The largest ring `ring_hash.ring_size` may ask for (Envoy's `maximum_ring_size`).
const MAX_RING_SIZE: u32 = 8 * 1024 * 1024;

fn is_prime(n: u32) -> bool {
    let n = u64::from(n);
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn lb_name(lb: LoadBalancer) -> &'static str {
    match lb {
        LoadBalancer::RoundRobin => "round_robin",
        LoadBalancer::WeightedRoundRobin => "weighted_round_robin",
        LoadBalancer::Random => "random",
        LoadBalancer::LeastRequest => "least_request",
        LoadBalancer::PeakEwma => "peak_ewma",
        LoadBalancer::RingHash => "ring_hash",
        LoadBalancer::Maglev => "maglev",
    }
}

fn hash(ck: &mut Check<'_>, at: &Spanned<RawHash>) -> Option<HashPolicy> {
    let raw = at.get()?;
    let one = [
        ("header", pos_of(&raw.header)),
        ("cookie", pos_of(&raw.cookie)),
        ("source_ip", pos_of(&raw.source_ip)),
    ];
    if !ck.exactly_one(at, &one) {
        return None;
    }
    if let Some(name) = ck.parse(&raw.header, |h| units::parse_header_name(h)) {
        return Some(HashPolicy::Header(name));
    }
    if let Some(cookie) = ck.text(&raw.cookie, "cookie") {
        return Some(HashPolicy::Cookie(cookie));
    }
    ck.parse(&raw.source_ip, |b| {
        if *b {
            Ok(HashPolicy::SourceIp)
        } else {
            Err("source_ip: false hashes nothing (write source_ip: true)".to_string())
        }
    })
}

fn health_check(ck: &mut Check<'_>, at: &Spanned<RawHealthCheck>) -> Option<HealthCheck> {
    let raw = at.get()?;
    if !ck.exactly_one(
        at,
        &[("http", pos_of(&raw.http)), ("tcp", pos_of(&raw.tcp))],
    ) {
        return None;
    }
    let kind = match &raw.http {
        Some(http) => {
            let h = http.get()?;
            ck.require(http, &h.path, "path");
            let path = ck.parse(&h.path, |p| absolute_path(p));
            let mut expected_status = ck.list(&h.expected_status, |ck, at, s| {
                units::parse_status(*s)
                    .map(|_| *s)
                    .map_err(|e| ck.error(at, e))
                    .ok()
            });
            if h.expected_status.is_none() {
                expected_status.push(200);
            }
            HealthCheckKind::Http {
                path: path?,
                expected_status,
            }
        }
        None => HealthCheckKind::Tcp,
    };
    Some(HealthCheck {
        kind,
        interval: ck.positive_duration(&raw.interval, Duration::from_secs(5)),
        timeout: ck.positive_duration(&raw.timeout, Duration::from_secs(1)),
        unhealthy_threshold: ck.int_in(&raw.unhealthy_threshold, 1, u32::MAX, 3),
        healthy_threshold: ck.int_in(&raw.healthy_threshold, 1, u32::MAX, 2),
    })
}
