//! The upstream attempt end to end: after a weighted split plus retries, what the access
//! log reports (cluster, endpoint, attempts) belongs to one attempt, and a retry is
//! gated by the `max_retries` of the cluster it goes to.

use http::StatusCode;
use meshwork_tests::{AccessLogFile, HttpClient, Proxy, Upstream, edge_routes};

/// Requests sent in each test. A request's first attempt lands on `down` with odds 1/5,
/// so the chance that none does is 0.8^100 < 10^-9; each attempt does with odds 1/5, so
/// the chance that some request spends all 10 attempts there is under 100 * 0.2^10 =
/// 10^-5.
const REQUESTS: usize = 100;

/// A route splitting `/` between `down` (always 503, weight 20) and `up` (200, weight
/// 80), retrying 503s up to 10 attempts.
fn split_with_retries(down: &Upstream, up: &Upstream, log: &AccessLogFile) -> String {
    let routes = "
        - name: split
          match: { path: { prefix: / } }
          backends:
            - { cluster: down, weight: 20 }
            - { cluster: up, weight: 80 }
          timeout: 10s
          retry:
            attempts: 10
            on: [\"503\"]
            backoff: { base: 1ms, max: 5ms }
            budget: { ratio: 1.0, min_per_second: 1000 }
        ";
    edge_routes(routes, &[down, up]) + &log.yaml()
}

async fn upstreams() -> (Upstream, Upstream) {
    let down = Upstream::http1()
        .name("down")
        .fail_first("/", 1_000_000, 503, None)
        .start()
        .await;
    let up = Upstream::http1()
        .name("up")
        .route("/", "fine")
        .start()
        .await;
    (down, up)
}

#[tokio::test]
async fn the_access_log_pairs_each_request_s_cluster_with_its_own_endpoint() {
    let (down, up) = upstreams().await;
    let log = AccessLogFile::json();
    let proxy = Proxy::with_config(split_with_retries(&down, &up, &log))
        .start()
        .await;
    for _ in 0..REQUESTS {
        let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let lines = log.json_lines(REQUESTS).await;
    let retried = lines.iter().filter(|l| l["attempts"] != 1).count();
    assert!(retried > 0, "some request started on `down`: {lines:?}");
    for line in &lines {
        assert_eq!(line["upstream_cluster"], "up", "{line}");
        assert_eq!(line["upstream_endpoint"], up.endpoint(), "{line}");
    }
}

#[tokio::test]
async fn a_retry_takes_the_max_retries_gate_of_the_cluster_it_goes_to() {
    let (down, up) = upstreams().await;
    let log = AccessLogFile::json();
    // `up` takes no retries at all; `down` takes any.
    let yaml = split_with_retries(&down, &up, &log).replacen(
        "  - name: up\n",
        "  - name: up\n    limits: { max_retries: 0 }\n",
        1,
    );
    assert!(yaml.contains("max_retries: 0"), "{yaml}");
    let proxy = Proxy::with_config(yaml).start().await;
    let mut ok = 0;
    for _ in 0..REQUESTS {
        let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
        if reply.status == StatusCode::OK {
            ok += 1;
        }
    }
    let lines = log.json_lines(REQUESTS).await;
    assert!(ok > 0, "some request started on `up`");
    assert!(ok < REQUESTS, "some request started on `down`");
    for line in lines.iter().filter(|l| l["status"] == 200) {
        assert_eq!(
            line["attempts"], 1,
            "`up` answered only first attempts: {line}"
        );
    }
    let metrics = proxy.scrape().await;
    assert!(
        metrics.get_or_zero(
            "meshwork_upstream_overflows_total",
            &[("cluster", "up"), ("limit", "max_retries")]
        ) > 0.0,
        "retries refused at `up` are counted as its overflows"
    );
}

/// A route to `app` whose retry policy sets `per_try_timeout: 300ms`, with `retry`'s
/// other fields.
fn per_try_route(app: &Upstream, retry: &str) -> String {
    let routes = format!(
        "
        - name: api
          backends:
            - cluster: app
          timeout: 10s
          retry: {{ per_try_timeout: 300ms, {retry} }}
        "
    );
    edge_routes(&routes, &[app])
}

#[tokio::test]
async fn per_try_timeout_bounds_the_only_attempt_of_a_post_and_of_attempts_1() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", std::time::Duration::from_secs(3))
        .start()
        .await;
    for retry in ["attempts: 3, on: [gateway-error]", "attempts: 1"] {
        let proxy = Proxy::with_config(per_try_route(&app, retry)).start().await;
        let started = std::time::Instant::now();
        let reply = HttpClient::h1()
            .request(http::Method::POST, &proxy.url("edge", "/slow"))
            .body("once")
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{retry}");
        assert_eq!(reply.error_kind(), Some("upstream-timeout"), "{retry}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "cut at the per-try timeout, not the upstream's 3 s ({retry})"
        );
        let endpoint = app.endpoint();
        let timeouts = [("cluster", "app"), ("endpoint", endpoint.as_str())];
        let scrape = proxy
            .scrape_when("the endpoint's timeout", |s| {
                s.get_or_zero("meshwork_upstream_timeouts_total", &timeouts) > 0.0
            })
            .await;
        assert_eq!(
            scrape.get_or_zero("meshwork_upstream_timeouts_total", &timeouts),
            1.0,
            "counted once, against the endpoint"
        );
    }
}

/// A route `limited` to `app` allowing a burst of 2 and then one request a minute, and
/// a route `other` whose `body` is what the reload changes.
fn limited_routes(app: &Upstream, body: &str) -> String {
    let routes = format!(
        "
        - name: other
          match: {{ path: {{ exact: /other }} }}
          direct_response: {{ status: 200, body: {body} }}
        - name: limited
          backends:
            - cluster: app
          rate_limit: {{ requests_per_second: 0.0167, burst: 2 }}
          retry: {{ attempts: 2, on: [\"503\"], budget: {{ ratio: 0.1, min_per_second: 1 }} }}
        "
    );
    edge_routes(&routes, &[app])
}

#[tokio::test]
async fn an_unchanged_route_keeps_its_rate_limit_bucket_across_a_reload() {
    let app = Upstream::http1().name("app").start().await;
    let mut proxy = Proxy::with_config(limited_routes(&app, "before"))
        .start()
        .await;
    let client = HttpClient::h1();
    for _ in 0..2 {
        assert_eq!(
            client.get(&proxy.url("edge", "/x")).await.status,
            StatusCode::OK
        );
    }
    proxy.reload(&limited_routes(&app, "after")).await;
    assert_eq!(
        client.get(&proxy.url("edge", "/other")).await.text(),
        "after"
    );
    let reply = client.get(&proxy.url("edge", "/x")).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the bucket spent before the reload stays spent"
    );
    // A changed limit is a new bucket, full.
    let changed = limited_routes(&app, "after").replace("burst: 2", "burst: 3");
    proxy.reload(&changed).await;
    assert_eq!(
        client.get(&proxy.url("edge", "/x")).await.status,
        StatusCode::OK
    );
    assert_eq!(app.requests(), 3);
}
