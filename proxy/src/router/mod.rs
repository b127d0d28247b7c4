//! Route tables compiled for lookup: first match wins, as written, but a request only
//! checks the routes that could match its host (an index built once per snapshot).

pub mod matcher;
pub mod request;

use std::collections::HashMap;
use std::sync::Arc;

use meshwork_config::model::{self, HostMatch, RouteAction};

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
}

impl RouteEntry {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Route indices, ascending (so merging lists keeps the order routes were written in).
type Indices = Vec<u32>;

#[derive(Debug)]
pub struct RouteTable {
    pub name: Arc<str>,
    pub routes: Vec<Arc<RouteEntry>>,
    exact_hosts: HashMap<String, Indices>,
    /// Keyed by suffix with its leading dot (`.example.com`).
    wildcard_hosts: HashMap<String, Indices>,
    any_host: Indices,
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
        let mut exact_hosts: HashMap<String, Indices> = HashMap::new();
        let mut wildcard_hosts: HashMap<String, Indices> = HashMap::new();
        let mut any_host = Vec::new();
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
            if route.matcher.hosts.is_empty() {
                any_host.push(i);
            }
            for host in &route.matcher.hosts {
                let list = match host {
                    HostMatch::Exact(h) => exact_hosts.entry(h.clone()).or_default(),
                    HostMatch::Wildcard(s) => wildcard_hosts.entry(s.clone()).or_default(),
                };
                if list.last() != Some(&i) {
                    list.push(i);
                }
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
        self.for_each_candidate(&req.host, |i| {
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

    /// Calls `visit` with the indices of routes that could match `host`, in ascending
    /// order, until it returns true.
    fn for_each_candidate(&self, host: &str, mut visit: impl FnMut(u32) -> bool) {
        let mut lists: [&[u32]; 8] = [&[]; 8];
        let mut n = 0;
        lists[n] = &self.any_host;
        n += 1;
        if let Some(l) = self.exact_hosts.get(host) {
            lists[n] = l;
            n += 1;
        }
        if !self.wildcard_hosts.is_empty() {
            // Every proper suffix starting at a dot: a.b.example.com -> .b.example.com, ...
            for (pos, _) in host.match_indices('.') {
                if n == lists.len() {
                    break;
                }
                if let Some(l) = self.wildcard_hosts.get(&host[pos..]) {
                    lists[n] = l;
                    n += 1;
                }
            }
        }
        let lists = &mut lists[..n];
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
