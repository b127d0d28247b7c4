//! Route tables compiled for lookup: first match wins, as written, but a request only
//! checks the routes that could match its host and the leading segments of its path (an
//! index built once per snapshot).

pub mod matcher;
pub mod request;
pub mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use meshwork_config::model::{self, HostMatch, PathMatch, RouteAction};

use crate::cluster::ClusterRuntime;
pub use matcher::Mismatch;
pub use request::RouteRequest;

/// A route ready to serve: its config plus its backends resolved to live clusters.
#[derive(Debug)]
pub struct RouteEntry {
    pub table: Arc<str>,
    /// Position in its table.
    pub index: usize,
    pub config: model::Route,
    /// Weighted backends, resolved; empty for direct responses and redirects.
    pub backends: Vec<(Arc<ClusterRuntime>, u32)>,
    pub total_weight: u64,
    /// The route's local rate limit, kept across snapshots while its settings are
    /// unchanged (`router/state.rs`).
    pub rate_limit: Option<Arc<crate::policy::token_bucket::TokenBucket>>,
    /// The route's retry budget, kept like the rate limit; its hedges draw from it too.
    pub retry_budget: Option<Arc<crate::policy::retry_budget::RetryBudget>>,
    /// The route's recent response time at its hedge `delay` percentile, kept likewise.
    pub hedge_latency: Option<Arc<crate::policy::latency_percentile::LatencyPercentile>>,
    /// The cluster receiving copies of a share of this route's requests, resolved.
    pub mirror: Option<Arc<ClusterRuntime>>,
}

impl RouteEntry {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Route indices, ascending (so merging lists keeps the order routes were written in).
type Indices = Vec<u32>;

/// Path segments a route is indexed under at most: deeper fixed segments are still
/// checked by the route's matcher, they just do not narrow the candidates further.
const MAX_FIXED_SEGMENTS: usize = 4;

/// The routes of one host bucket, in a trie of the leading path segments their path
/// condition fixes.
///
/// Every path an exact condition matches has all of its segments; every path a prefix
/// matches has the segments the prefix closes with `/` (`/api/v1/` fixes `api` and `v1`,
/// `/api/v` only `api`, `/` none). A route sits at the node of its fixed segments (the
/// first [`MAX_FIXED_SEGMENTS`] of them), routes fixing none (no path condition, a regex,
/// `/ap`) at the root, so a request only checks the routes on the nodes along its own
/// path: one API gateway table of `/api/svc{i}/` prefixes costs two hash lookups, not a
/// scan.
#[derive(Debug, Default)]
struct PathIndex {
    root: SegmentNode,
}

#[derive(Debug, Default)]
struct SegmentNode {
    /// Routes whose fixed segments end here.
    routes: Indices,
    children: HashMap<Box<str>, SegmentNode>,
}

impl PathIndex {
    fn push(&mut self, i: u32, path: Option<&PathMatch>) {
        let mut node = &mut self.root;
        for segment in path
            .into_iter()
            .flat_map(fixed_segments)
            .take(MAX_FIXED_SEGMENTS)
        {
            node = node.children.entry(segment.into()).or_default();
        }
        // A route listing one host twice lands in the same bucket twice.
        if node.routes.last() != Some(&i) {
            node.routes.push(i);
        }
    }

    /// The sorted lists of routes that could match `path`: one per trie node on its way.
    fn candidates<'a>(&'a self, path: &str, out: &mut Lists<'a>) {
        let mut node = &self.root;
        out.push(&node.routes);
        // Paths not starting with `/` (`*`) have no segments any route fixes.
        let Some(rest) = path.strip_prefix('/') else {
            return;
        };
        for segment in rest.split('/').take(MAX_FIXED_SEGMENTS) {
            let Some(child) = node.children.get(segment) else {
                return;
            };
            node = child;
            out.push(&node.routes);
        }
    }
}

/// The candidate lists of one lookup, on the stack: per host bucket (any host, the exact
/// host, up to [`MAX_WILDCARD_LEVELS`] wildcard suffixes) the root and up to
/// [`MAX_FIXED_SEGMENTS`] trie nodes.
struct Lists<'a> {
    items: [&'a [u32]; LISTS_PER_LOOKUP],
    len: usize,
}

/// Wildcard suffixes looked up per request at most (deeper names are rare).
const MAX_WILDCARD_LEVELS: usize = 6;

const LISTS_PER_LOOKUP: usize = (1 + MAX_FIXED_SEGMENTS) * (2 + MAX_WILDCARD_LEVELS);

impl<'a> Lists<'a> {
    fn new() -> Self {
        Self {
            items: [&[]; LISTS_PER_LOOKUP],
            len: 0,
        }
    }

    /// Keeps `list` unless it is empty (most trie nodes on a path hold no routes).
    fn push(&mut self, list: &'a [u32]) {
        if !list.is_empty() {
            self.items[self.len] = list;
            self.len += 1;
        }
    }
}

/// The leading segments every path matching `path` has (`/api/v1/x` -> `api`, `v1`, `x`
/// for an exact path; `/api/v1/x` -> `api`, `v1` for a prefix).
fn fixed_segments(path: &PathMatch) -> impl Iterator<Item = &str> {
    let fixed = match path {
        PathMatch::Exact(p) => p.strip_prefix('/'),
        // `/api/...`: the segment is closed; `/api` could also be `/apis`.
        PathMatch::Prefix(p) => p
            .strip_prefix('/')
            .and_then(|rest| rest.rfind('/').map(|end| &rest[..end])),
        PathMatch::Regex(_) => None,
    };
    fixed.into_iter().flat_map(|f| f.split('/'))
}

#[derive(Debug)]
pub struct RouteTable {
    pub name: Arc<str>,
    pub routes: Vec<Arc<RouteEntry>>,
    exact_hosts: HashMap<String, PathIndex>,
    /// Keyed by suffix with its leading dot (`.example.com`).
    wildcard_hosts: HashMap<String, PathIndex>,
    any_host: PathIndex,
    /// An `auto` listener's `original-destination` route, by index: a request it would
    /// take goes to the route of its destination's VIP instead, if any.
    fallback: Option<u32>,
    /// The routes of VIPs (after every matchable route), by VIP address.
    by_destination: HashMap<SocketAddr, u32>,
}

impl RouteTable {
    /// Compiles a table, resolving backend clusters by name, with new per-route state.
    /// The config was validated, so every referenced cluster exists in `clusters`.
    pub fn build(
        table: &model::RouteTable,
        clusters: &HashMap<String, Arc<ClusterRuntime>>,
    ) -> Self {
        let states = table
            .routes
            .iter()
            .map(|route| state::RouteState::for_route(route, None))
            .collect();
        Self::build_with(table, clusters, states)
    }

    /// Compiles a table whose routes take `states`, one per route in order.
    pub fn build_with(
        table: &model::RouteTable,
        clusters: &HashMap<String, Arc<ClusterRuntime>>,
        states: Vec<state::RouteState>,
    ) -> Self {
        let name: Arc<str> = table.name.as_str().into();
        let mut routes = Vec::with_capacity(table.routes.len());
        let mut exact_hosts: HashMap<String, PathIndex> = HashMap::new();
        let mut wildcard_hosts: HashMap<String, PathIndex> = HashMap::new();
        let mut any_host = PathIndex::default();
        for ((i, route), state) in table.routes.iter().enumerate().zip(states) {
            let i = i as u32;
            let backends: Vec<(Arc<ClusterRuntime>, u32)> = match &route.action {
                RouteAction::Backends(list) => list
                    .iter()
                    .filter_map(|b| clusters.get(&b.cluster).map(|c| (c.clone(), b.weight)))
                    .collect(),
                _ => Vec::new(),
            };
            let total_weight = backends.iter().map(|(_, w)| u64::from(*w)).sum();
            let path = route.matcher.path.as_ref();
            if route.matcher.hosts.is_empty() {
                any_host.push(i, path);
            }
            for host in &route.matcher.hosts {
                let index = match host {
                    HostMatch::Exact(h) => exact_hosts.entry(h.clone()).or_default(),
                    HostMatch::Wildcard(s) => wildcard_hosts.entry(s.clone()).or_default(),
                };
                index.push(i, path);
            }
            routes.push(Arc::new(RouteEntry {
                table: name.clone(),
                index: i as usize,
                config: route.clone(),
                backends,
                total_weight,
                retry_budget: state.retry_budget.map(|(_, budget)| budget),
                hedge_latency: state.hedge_latency,
                mirror: route
                    .mirror
                    .as_ref()
                    .and_then(|m| clusters.get(&m.cluster).cloned()),
                rate_limit: state.rate_limit.map(|(_, bucket)| bucket),
            }));
        }
        Self {
            name,
            routes,
            exact_hosts,
            wildcard_hosts,
            any_host,
            fallback: None,
            by_destination: HashMap::new(),
        }
    }

    /// Makes the route at `fallback` give way to the route `by_destination` names for a
    /// request going to a VIP. Every route from `fallback` on matches any request, so
    /// the routes after it are reached only this way.
    pub fn with_vip_routes(
        mut self,
        fallback: usize,
        by_destination: HashMap<SocketAddr, u32>,
    ) -> Self {
        self.fallback = Some(fallback as u32);
        self.by_destination = by_destination;
        self
    }

    /// The route for a request whose connection was going to `destination`: the first
    /// route matching it, unless that is the fallback and `destination` is a VIP, whose
    /// route it then takes.
    pub fn find_for(
        &self,
        req: &RouteRequest<'_>,
        destination: Option<SocketAddr>,
    ) -> Option<&Arc<RouteEntry>> {
        let found = self.find(req)?;
        if self.fallback == Some(found.index as u32) {
            if let Some(vip) = destination.and_then(|d| self.vip_route(d)) {
                return Some(vip);
            }
        }
        Some(found)
    }

    /// The route of the VIP `destination`, if it is one.
    pub fn vip_route(&self, destination: SocketAddr) -> Option<&Arc<RouteEntry>> {
        let index = *self.by_destination.get(&destination)?;
        self.routes.get(index as usize)
    }

    /// The routes requests are matched against, in order (a VIP's route is reached by
    /// destination only).
    pub fn matchable(&self) -> &[Arc<RouteEntry>] {
        let end = self.fallback.map_or(self.routes.len(), |f| f as usize + 1);
        &self.routes[..end.min(self.routes.len())]
    }

    /// The first route matching the request.
    pub fn find(&self, req: &RouteRequest<'_>) -> Option<&Arc<RouteEntry>> {
        let mut found = None;
        self.for_each_candidate(&req.host, req.path, |i| {
            let route = &self.routes[i as usize];
            if matcher::check(&route.config.matcher, req).is_ok() {
                found = Some(route);
                return true;
            }
            false
        });
        found
    }

    /// Every route in order with the reason it did or did not match (`meshwork explain`).
    pub fn explain(&self, req: &RouteRequest<'_>) -> Vec<(Arc<RouteEntry>, Result<(), String>)> {
        self.matchable()
            .iter()
            .map(|route| {
                let verdict = matcher::check(&route.config.matcher, req)
                    .map_err(|m| matcher::describe(&route.config.matcher, m, req));
                (route.clone(), verdict)
            })
            .collect()
    }

    /// Calls `visit` with the indices of routes that could match `host` and `path`, in
    /// ascending order, until it returns true.
    fn for_each_candidate(&self, host: &str, path: &str, mut visit: impl FnMut(u32) -> bool) {
        let mut lists = Lists::new();
        self.any_host.candidates(path, &mut lists);
        if let Some(index) = self.exact_hosts.get(host) {
            index.candidates(path, &mut lists);
        }
        if !self.wildcard_hosts.is_empty() {
            // Every proper suffix starting at a dot: a.b.example.com -> .b.example.com, ...
            for (pos, _) in host.match_indices('.').take(MAX_WILDCARD_LEVELS) {
                if let Some(index) = self.wildcard_hosts.get(&host[pos..]) {
                    index.candidates(path, &mut lists);
                }
            }
        }
        let lists = &mut lists.items[..lists.len];
        // k-way merge of short sorted lists; k is tiny, so a linear scan for the minimum.
        loop {
            let mut min: Option<(usize, u32)> = None;
            for (li, l) in lists.iter().enumerate() {
                if let Some(&first) = l.first() {
                    if min.is_none_or(|(_, m)| first < m) {
                        min = Some((li, first));
                    }
                }
            }
            let Some((_, idx)) = min else { return };
            for l in lists.iter_mut() {
                if l.first() == Some(&idx) {
                    *l = &l[1..];
                }
            }
            if visit(idx) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
