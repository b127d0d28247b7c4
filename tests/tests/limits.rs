//! Cluster limits end to end: excess requests, connections, pending requests and retries
//! fail fast with 503 `overflow`, counted per limit.

use std::time::Duration;

use http::StatusCode;
use meshwork_tests::{HttpClient, Proxy, Scrape, Upstream, edge_config, labels_of};

fn limited(app: &Upstream, limits: &str, route_extra: &str) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: api
              backends:
                - cluster: app
              {route_extra}
        clusters:
          - name: app
            endpoints: [{}]
            limits: {{ {limits} }}
        ",
        app.endpoint()
    ))
}

/// Two requests at once to a slow path: the statuses and overflow reasons, sorted.
async fn two_at_once(proxy: &Proxy) -> Vec<(u16, Option<String>)> {
    let url = proxy.url("edge", "/slow");
    let (a, b) = tokio::join!(async { HttpClient::h1_unpooled().get(&url).await }, async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        HttpClient::h1_unpooled().get(&url).await
    });
    let mut out: Vec<_> = [a, b]
        .iter()
        .map(|r| (r.status.as_u16(), r.error_kind().map(str::to_owned)))
        .collect();
    out.sort();
    out
}

async fn overflows(proxy: &Proxy, limit: &str) -> String {
    let name = "meshwork_upstream_overflows_total";
    let labels = labels_of(&[("cluster", "app"), ("limit", limit)]);
    let value = |s: &Scrape| {
        s.series(name)
            .get(&labels)
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    value(&proxy.scrape_when(name, |s| !value(s).is_empty()).await)
}

#[tokio::test]
async fn max_requests_turns_away_the_excess_with_503_overflow() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(600))
        .start()
        .await;
    let proxy = Proxy::with_config(limited(&app, "max_requests: 1", ""))
        .start()
        .await;
    let out = two_at_once(&proxy).await;
    assert_eq!(out, [(200, None), (503, Some("overflow".into()))]);
    assert_eq!(app.requests(), 1);
    assert_eq!(overflows(&proxy, "max_requests").await, "1");
}

/// `n` requests to a slow path, started 100 ms apart: the statuses and overflow reasons,
/// sorted.
async fn staggered(proxy: &Proxy, n: u64) -> Vec<(u16, Option<String>)> {
    let url = proxy.url("edge", "/slow");
    let calls = (0..n).map(|i| {
        let url = url.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            HttpClient::h1_unpooled().get(&url).await
        }
    });
    let mut out: Vec<_> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| (r.status.as_u16(), r.error_kind().map(str::to_owned)))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn at_max_connections_requests_queue_for_a_connection() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(300))
        .start()
        .await;
    let proxy = Proxy::with_config(limited(&app, "max_connections: 1", ""))
        .start()
        .await;
    let out = staggered(&proxy, 2).await;
    assert_eq!(
        out,
        [(200, None), (200, None)],
        "the second waited its turn"
    );
    assert_eq!(app.requests(), 2);
    assert_eq!(app.connections(), 1, "both went over the one connection");
}

#[tokio::test]
async fn max_pending_turns_away_requests_beyond_the_queue() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(400))
        .start()
        .await;
    let proxy = Proxy::with_config(limited(&app, "max_connections: 1, max_pending: 1", ""))
        .start()
        .await;
    let out = staggered(&proxy, 3).await;
    assert_eq!(
        out,
        [(200, None), (200, None), (503, Some("overflow".into()))]
    );
    assert_eq!(app.requests(), 2);
    assert_eq!(app.connections(), 1);
    assert_eq!(overflows(&proxy, "max_pending").await, "1");
}

#[tokio::test]
async fn max_pending_zero_turns_away_a_request_when_every_connection_is_busy() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(600))
        .start()
        .await;
    let proxy = Proxy::with_config(limited(&app, "max_connections: 1, max_pending: 0", ""))
        .start()
        .await;
    let out = two_at_once(&proxy).await;
    assert_eq!(out, [(200, None), (503, Some("overflow".into()))]);
    assert_eq!(app.connections(), 1);
    assert_eq!(overflows(&proxy, "max_pending").await, "1");
}

#[tokio::test]
async fn a_queued_request_waits_at_most_the_connect_timeout() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(1500))
        .start()
        .await;
    let config = edge_config(&format!(
        "
        route_tables:
          edge:
            - name: api
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{}]
            connect_timeout: 200ms
            limits: {{ max_connections: 1 }}
        ",
        app.endpoint()
    ));
    let proxy = Proxy::with_config(config).start().await;
    let out = two_at_once(&proxy).await;
    assert_eq!(out, [(200, None), (503, Some("overflow".into()))]);
    assert_eq!(app.connections(), 1);
    assert_eq!(overflows(&proxy, "max_connections").await, "1");
}

#[tokio::test]
async fn max_retries_zero_sends_no_retries() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/", 100, 503, None)
        .start()
        .await;
    let retry = "retry: { attempts: 3, on: [503], backoff: { base: 5ms, max: 10ms } }";
    let proxy = Proxy::with_config(limited(&app, "max_retries: 0", retry))
        .start()
        .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.requests(), 1);
    assert_eq!(overflows(&proxy, "max_retries").await, "1");
}
