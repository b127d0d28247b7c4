//! Circuit breakers end to end: open on consecutive failures, fail fast without touching
//! the upstream, half-open after the open time (doubling on re-open), close on success,
//! and `max_ejected_percent` keeping part of a cluster in service.

use std::time::Duration;

use http::StatusCode;
use meshwork_tests::{HttpClient, Proxy, Upstream, edge_config};

fn breaker_config(endpoints: &[&Upstream], max_ejected_percent: u32) -> String {
    let list: Vec<String> = endpoints.iter().map(|u| u.endpoint()).collect();
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: api
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{}]
            circuit_breaker:
              consecutive_failures: 3
              open_duration: 300ms
              max_open_duration: 1s
              half_open_requests: 1
              max_ejected_percent: {max_ejected_percent}
        ",
        list.join(", ")
    ))
}

async fn get(proxy: &Proxy) -> (StatusCode, Option<String>) {
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    (reply.status, reply.error_kind().map(str::to_owned))
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    let app = Upstream::http1()
        .name("app")
        .fail_first("/", 5, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(breaker_config(&[&app], 100))
        .start()
        .await;
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, None);
    let open = (
        StatusCode::SERVICE_UNAVAILABLE,
        Some("circuit-open".to_owned()),
    );
    for _ in 0..3 {
        assert_eq!(get(&proxy).await, unavailable);
    }
    assert_eq!(app.requests(), 3);
    assert_eq!(get(&proxy).await, open, "open: fails fast");
    assert_eq!(app.requests(), 3, "without touching the upstream");

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        get(&proxy).await,
        unavailable,
        "half-open: one trial, which fails"
    );
    assert_eq!(app.requests(), 4);
    assert_eq!(get(&proxy).await, open, "re-opened");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        get(&proxy).await,
        open,
        "re-opened for twice as long (600ms)"
    );
    assert_eq!(app.requests(), 4);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&proxy).await, unavailable, "second trial fails too");
    assert_eq!(app.requests(), 5);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        get(&proxy).await,
        (StatusCode::OK, None),
        "capped at 1s; the trial succeeds"
    );
    assert_eq!(get(&proxy).await, (StatusCode::OK, None), "closed");
    assert_eq!(app.requests(), 7);

    let clusters = HttpClient::h1()
        .get(&format!("http://{}/clusters", proxy.admin_addr()))
        .await
        .text();
    assert!(
        clusters.contains("\"circuit_breaker\": \"closed\""),
        "{clusters}"
    );
}

#[tokio::test]
async fn max_ejected_percent_keeps_half_of_a_failing_cluster_in_service() {
    let a = Upstream::http1()
        .name("a")
        .fail_first("/", u64::MAX, 503, None)
        .start()
        .await;
    let b = Upstream::http1()
        .name("b")
        .fail_first("/", u64::MAX, 503, None)
        .start()
        .await;
    let proxy = Proxy::with_config(breaker_config(&[&a, &b], 50))
        .start()
        .await;
    for _ in 0..20 {
        let (status, reason) = get(&proxy).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reason, None, "one endpoint always stays in service");
    }
    // One breaker opened after 3 failures; the other endpoint took everything after.
    let (ra, rb) = (a.requests(), b.requests());
    assert_eq!(ra + rb, 20);
    assert!(ra.min(rb) <= 3, "a={ra} b={rb}");
}
