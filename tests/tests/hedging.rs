//! Hedging end to end: a bimodal upstream (one request in 20 at each endpoint is slow,
//! by a counter) behind a two-endpoint cluster, the same run with and without a route `hedge`. The
//! client counts the slow responses it gets (the upstream labels each body `slow` or
//! `fast`: no wall-clock limits), the upstreams count the load, and the proxy's metrics
//! count the hedges.

use std::time::Duration;

use http::StatusCode;
use meshwork_tests::yaml::EDGE_PREAMBLE;
use meshwork_tests::{HttpClient, Proxy, Upstream};

/// Requests per run, one after the other (so each endpoint's counter is deterministic
/// without hedging: round robin gives each 100, of which 5 are slow).
const REQUESTS: u64 = 200;
const EVERY: u64 = 20;
const SLOW: Duration = Duration::from_millis(200);
/// The route's budget share: at most this share of requests may be sent again.
const BUDGET_RATIO: f64 = 0.1;

struct Run {
    /// Responses the client got from a slow attempt.
    slow_seen: u64,
    /// Requests the two endpoints got.
    upstream_requests: u64,
    hedges_sent: f64,
    hedges_won: f64,
}

async fn run(hedge: Option<&str>) -> Run {
    // Out of phase: the two endpoints are not slow for the same request.
    let a = Upstream::http1()
        .name("a")
        .bimodal("/item", EVERY, 0, SLOW)
        .start()
        .await;
    let b = Upstream::http1()
        .name("b")
        .bimodal("/item", EVERY, EVERY / 2, SLOW)
        .start()
        .await;
    let hedge = hedge.map_or(String::new(), |h| format!("      hedge: {h}\n"));
    let config = format!(
        "{EDGE_PREAMBLE}route_tables:\n  edge:\n    - name: items\n      \
         backends: [{{ cluster: app }}]\n      \
         retry: {{ attempts: 1, budget: {{ ratio: {BUDGET_RATIO}, min_per_second: 0 }} }}\n\
         {hedge}clusters:\n  - name: app\n    endpoints: [{}, {}]\n",
        a.endpoint(),
        b.endpoint()
    );
    let proxy = Proxy::with_config(config).start().await;
    let client = HttpClient::h1();
    let mut slow_seen = 0;
    for _ in 0..REQUESTS {
        let reply = client.get(&proxy.url("edge", "/item")).await;
        assert_eq!(reply.status, StatusCode::OK);
        match reply.text().as_str() {
            "slow" => slow_seen += 1,
            "fast" => {}
            other => panic!("unexpected body {other:?}"),
        }
    }
    let metrics = proxy.scrape().await;
    let hedges = |event: &str| {
        metrics.get_or_zero(
            "meshwork_http_hedges_total",
            &[("listener", "edge"), ("route", "items"), ("event", event)],
        )
    };
    Run {
        slow_seen,
        upstream_requests: a.requests() + b.requests(),
        hedges_sent: hedges("sent"),
        hedges_won: hedges("won"),
    }
}

#[tokio::test]
async fn hedging_cuts_the_slow_tail_within_the_budget() {
    let plain = run(None).await;
    // Without hedging the client waits for every slow attempt: 5 at each endpoint.
    assert_eq!(plain.slow_seen, 10, "without hedging");
    assert_eq!(plain.upstream_requests, REQUESTS);
    assert_eq!(plain.hedges_sent, 0.0);

    let hedged = run(Some("{ delay: 20ms }")).await;
    // A slow first attempt is hedged at 20ms to the other endpoint, which answers at
    // once unless its own counter makes that request slow too (or the budget is spent).
    assert!(
        hedged.slow_seen <= 2,
        "with hedging the client still saw {} slow responses",
        hedged.slow_seen
    );
    assert!(
        hedged.hedges_won >= 8.0,
        "hedges won: {} (sent {})",
        hedged.hedges_won,
        hedged.hedges_sent
    );
    // The extra load, counted at the upstreams, is the hedges, within the budget.
    let extra = hedged.upstream_requests - REQUESTS;
    assert!(extra as f64 <= hedged.hedges_sent, "{extra} extra requests");
    assert!(
        hedged.hedges_sent <= BUDGET_RATIO * REQUESTS as f64,
        "{} hedges for {REQUESTS} requests",
        hedged.hedges_sent
    );
}

#[tokio::test]
async fn a_spent_budget_sends_no_hedge_and_the_slow_answer_comes_through() {
    let a = Upstream::http1()
        .name("a")
        .slow("/item", SLOW)
        .start()
        .await;
    let b = Upstream::http1()
        .name("b")
        .slow("/item", SLOW)
        .start()
        .await;
    let config = format!(
        "{EDGE_PREAMBLE}route_tables:\n  edge:\n    - name: items\n      \
         backends: [{{ cluster: app }}]\n      \
         retry: {{ attempts: 1, budget: {{ ratio: 0, min_per_second: 0 }} }}\n      \
         hedge: {{ delay: 10ms }}\nclusters:\n  - name: app\n    endpoints: [{}, {}]\n",
        a.endpoint(),
        b.endpoint()
    );
    let proxy = Proxy::with_config(config).start().await;
    let client = HttpClient::h1();
    for _ in 0..3 {
        let reply = client.get(&proxy.url("edge", "/item")).await;
        assert_eq!(reply.text(), "slow");
    }
    let metrics = proxy.scrape().await;
    let count = |event: &str| {
        metrics.get_or_zero(
            "meshwork_http_hedges_total",
            &[("listener", "edge"), ("route", "items"), ("event", event)],
        )
    };
    assert_eq!(count("budget-exhausted"), 3.0);
    assert_eq!(count("sent"), 0.0);
    assert_eq!(a.requests() + b.requests(), 3, "no extra load");
}
