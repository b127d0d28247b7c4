//! Per-route state that outlives a snapshot: each route's rate-limit bucket, retry
//! budget (which its hedges draw from too) and recent latency percentile (a percentile
//! hedge delay), kept across a reload or a control-plane push while the route (by table and
//! name) keeps the same limit, as cluster state is kept while its cluster is unchanged.
//! Without it, every reload would refill every bucket and forget every budget: a
//! client could get past a rate limit by timing its burst to a config push.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use meshwork_config::model;

use super::RouteTable;
use crate::cluster::ClusterRuntime;
use crate::policy::latency_percentile::LatencyPercentile;
use crate::policy::retry_budget::RetryBudget;
use crate::policy::token_bucket::TokenBucket;

/// A route's state, with the settings it was made for.
#[derive(Debug, Clone, Default)]
pub struct RouteState {
    pub rate_limit: Option<(model::RateLimit, Arc<TokenBucket>)>,
    pub retry_budget: Option<(model::RetryBudget, Arc<RetryBudget>)>,
    /// The route's recent response time at its hedge `delay` percentile.
    pub hedge_latency: Option<Arc<LatencyPercentile>>,
}

impl RouteState {
    /// The state for `route`: what `kept` has for the same settings, new otherwise.
    pub fn for_route(route: &model::Route, kept: Option<&RouteState>) -> Self {
        let rate_limit =
            route
                .rate_limit
                .map(|limit| match kept.and_then(|k| k.rate_limit.as_ref()) {
                    Some((was, bucket)) if *was == limit => (limit, bucket.clone()),
                    _ => (
                        limit,
                        Arc::new(TokenBucket::new(limit.requests_per_second, limit.burst)),
                    ),
                });
        // Hedges and retries draw from one budget: a route that only hedges has the
        // default one.
        let budget = match (&route.retry, &route.hedge) {
            (Some(retry), _) => Some(retry.budget),
            (None, Some(_)) => Some(model::DEFAULT_RETRY_BUDGET),
            (None, None) => None,
        };
        let retry_budget = budget.map(|budget| match kept.and_then(|k| k.retry_budget.as_ref()) {
            Some((was, kept)) if *was == budget => (budget, kept.clone()),
            _ => (
                budget,
                Arc::new(RetryBudget::new(budget.ratio, budget.min_per_second)),
            ),
        });
        let hedge_latency = route.hedge.as_ref().and_then(|hedge| {
            let model::HedgeDelay::Percentile { percentile, .. } = hedge.delay else {
                return None;
            };
            Some(match kept.and_then(|k| k.hedge_latency.as_ref()) {
                Some(was) if was.percentile() == percentile => was.clone(),
                _ => Arc::new(LatencyPercentile::new(percentile)),
            })
        });
        Self {
            rate_limit,
            retry_budget,
            hedge_latency,
        }
    }
}

/// The state of the routes of the current config, by table and route name.
#[derive(Debug, Default)]
pub struct RouteStates {
    kept: Mutex<HashMap<(String, String), RouteState>>,
}

impl RouteStates {
    /// The route tables of a new snapshot, their routes taking over the state of the
    /// same routes with the same settings; the state of routes gone (or changed) goes
    /// away with the last snapshot using it. Only called when a snapshot is built.
    pub fn resolve(
        &self,
        tables: &BTreeMap<String, model::RouteTable>,
        clusters: &HashMap<String, Arc<ClusterRuntime>>,
    ) -> HashMap<String, Arc<RouteTable>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::new();
        let built = tables
            .iter()
            .map(|(name, table)| {
                let states = table
                    .routes
                    .iter()
                    .map(|route| {
                        let key = (name.clone(), route.name.clone());
                        let state = RouteState::for_route(route, kept.get(&key));
                        next.insert(key, state.clone());
                        state
                    })
                    .collect();
                let built = RouteTable::build_with(table, clusters, states);
                (name.clone(), Arc::new(built))
            })
            .collect();
        *kept = next;
        built
    }
}
