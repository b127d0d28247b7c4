//! Route tables compiled for lookup: first match wins, as written, but a request only
//! checks the routes that could match its host and the first segment of its path (an
//! index built once per snapshot).

pub mod matcher;
pub mod request;

use std::collections::HashMap;
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
    /// The route's local rate limit (starts full with each new snapshot).
    pub rate_limit: Option<crate::policy::token_bucket::TokenBucket>,
    /// The route's retry budget (starts empty with each new snapshot).
    pub retry_budget: Option<crate::policy::retry_budget::RetryBudget>,
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

/// The routes of one host bucket, split by the first segment of the path they need.
///
/// A route whose path condition fixes the request's first path segment (an exact path,
/// or a prefix that includes the segment's closing `/`, like `/api/`) can only match
/// requests with that segment; every other route (no path condition, a regex, a prefix
/// ending inside the first segment like `/ap` or `/`) is in `any_segment`.
#[derive(Debug, Default)]
struct PathIndex {
    by_segment: HashMap<Box<str>, Indices>,
    any_segment: Indices,
}

impl PathIndex {
    fn push(&mut self, i: u32, path: Option<&PathMatch>) {
        let list = match path.and_then(fixed_first_segment) {
            Some(segment) => self.by_segment.entry(segment.into()).or_default(),
            None => &mut self.any_segment,
        };
        if list.last() != Some(&i) {
            list.push(i);
        }
    }

    /// The (up to two) sorted lists of routes that could match a path with `segment`.
    fn candidates<'a>(&'a self, segment: &str, out: &mut Lists<'a>) {
        if !self.any_segment.is_empty() {
            out.push(&self.any_segment);
        }
        if let Some(l) = self.by_segment.get(segment) {
            out.push(l);
        }
    }
}

/// The candidate lists of one lookup, on the stack: two per host bucket (any host, the
/// exact host, up to [`MAX_WILDCARD_LEVELS`] wildcard suffixes).
struct Lists<'a> {
    items: [&'a [u32]; 2 * (2 + MAX_WILDCARD_LEVELS)],
    len: usize,
}

/// Wildcard suffixes looked up per request at most (deeper names are rare).
const MAX_WILDCARD_LEVELS: usize = 6;

impl<'a> Lists<'a> {
    fn new() -> Self {
        Self {
            items: [&[]; 2 * (2 + MAX_WILDCARD_LEVELS)],
            len: 0,
        }
    }

    fn push(&mut self, list: &'a [u32]) {
        self.items[self.len] = list;
        self.len += 1;
    }
}

/// The first segment every path matching `path` has, when the condition fixes it.
fn fixed_first_segment(path: &PathMatch) -> Option<&str> {
    match path {
        PathMatch::Exact(p) => Some(first_segment(p)),
        PathMatch::Prefix(p) => {
            let rest = p.strip_prefix('/')?;
            // `/api/...`: the segment is closed; `/api` could also be `/apis`.
            rest.find('/').map(|end| &rest[..end])
        }
        PathMatch::Regex(_) => None,
    }
}

/// `/api/v1/x` -> `api`; `/` -> ``; `/api` -> `api`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

#[derive(Debug)]
pub struct RouteTable {
    pub name: Arc<str>,
    pub routes: Vec<Arc<RouteEntry>>,
    exact_hosts: HashMap<String, PathIndex>,
    /// Keyed by suffix with its leading dot (`.example.com`).
    wildcard_hosts: HashMap<String, PathIndex>,
    any_host: PathIndex,
}

impl RouteTable {
    /// Compiles a table, resolving backend clusters by name. The config was validated, so
    /// every referenced cluster exists in `clusters`.
    pub fn build(
        table: &model::RouteTable,
        clusters: &HashMap<String, Arc<ClusterRuntime>>,
    ) -> Self {
        let name: Arc<str> = table.name.as_str().into();
        let mut routes = Vec::with_capacity(table.routes.len());
        let mut exact_hosts: HashMap<String, PathIndex> = HashMap::new();
        let mut wildcard_hosts: HashMap<String, PathIndex> = HashMap::new();
        let mut any_host = PathIndex::default();
        for (i, route) in table.routes.iter().enumerate() {
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
                retry_budget: route.retry.as_ref().map(|r| {
                    crate::policy::retry_budget::RetryBudget::new(
                        r.budget.ratio,
                        r.budget.min_per_second,
                    )
                }),
                mirror: route
                    .mirror
                    .as_ref()
                    .and_then(|m| clusters.get(&m.cluster).cloned()),
                rate_limit: route.rate_limit.map(|r| {
                    crate::policy::token_bucket::TokenBucket::new(r.requests_per_second, r.burst)
                }),
            }));
        }
        Self {
            name,
            routes,
            exact_hosts,
            wildcard_hosts,
            any_host,
        }
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
        self.routes
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
        let segment = first_segment(path);
        let mut lists = Lists::new();
        self.any_host.candidates(segment, &mut lists);
        if let Some(index) = self.exact_hosts.get(host) {
            index.candidates(segment, &mut lists);
        }
        if !self.wildcard_hosts.is_empty() {
            // Every proper suffix starting at a dot: a.b.example.com -> .b.example.com, ...
            for (pos, _) in host.match_indices('.').take(MAX_WILDCARD_LEVELS) {
                if let Some(index) = self.wildcard_hosts.get(&host[pos..]) {
                    index.candidates(segment, &mut lists);
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
