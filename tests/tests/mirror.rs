//! Route `mirror` end to end: copies reach the mirror cluster (bodies included, up to
//! the copy limit), the configured share is copied, and a slow or dead mirror cluster
//! never touches the client's responses.

use std::time::Duration;

use http::{Method, StatusCode};
use meshwork_tests::wait::{eventually, within};
use meshwork_tests::{HttpClient, Proxy, Upstream, edge_routes};

/// A route sending everything to `app`, mirroring `percent` of it to `shadow`.
fn mirrored_route(percent: u32) -> String {
    format!(
        "
        - name: api
          backends: [{{ cluster: app }}]
          mirror: {{ cluster: shadow, percent: {percent} }}
        "
    )
}

const MIRROR_SERIES: &str = "meshwork_http_mirror_requests_total";

fn mirrored(scrape: &meshwork_tests::Scrape, outcome: &str) -> f64 {
    scrape.get_or_zero(
        MIRROR_SERIES,
        &[
            ("listener", "edge"),
            ("route", "api"),
            ("cluster", "shadow"),
            ("outcome", outcome),
        ],
    )
}

#[tokio::test]
async fn every_request_is_copied_to_the_mirror_cluster() {
    let app = Upstream::http1().name("app").start().await;
    let shadow = Upstream::http1().name("shadow").start().await;
    let proxy = Proxy::with_config(edge_routes(&mirrored_route(100), &[&app, &shadow]))
        .start()
        .await;
    let client = HttpClient::h1();
    for i in 0..20 {
        let reply = client
            .get(&proxy.url("edge", &format!("/item/{i}?q=1")))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        // The client gets the real upstream's answer.
        assert_eq!(reply.upstream(), Some("app"));
    }
    eventually(
        "20 copies at the mirror",
        Duration::from_secs(10),
        || async { shadow.requests() == 20 },
    )
    .await;
    assert_eq!(app.requests(), 20);
    let mut paths = shadow.paths();
    paths.sort();
    assert!(paths.contains(&"/item/7?q=1".to_owned()), "{paths:?}");
    proxy
        .scrape_when("20 answered copies", |s| mirrored(s, "answered") == 20.0)
        .await;
}

#[tokio::test]
async fn request_bodies_are_copied_up_to_the_limit() {
    let app = Upstream::http1()
        .name("app")
        .count_body("/upload")
        .start()
        .await;
    let shadow = Upstream::http1()
        .name("shadow")
        .count_body("/upload")
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&mirrored_route(100), &[&app, &shadow]))
        .start()
        .await;
    let client = HttpClient::h1();
    let small = client
        .request(Method::POST, &proxy.url("edge", "/upload"))
        .body(vec![b'a'; 10_000])
        .send()
        .await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.json()["bytes"], 10_000);
    eventually("the small body's copy", Duration::from_secs(10), || async {
        shadow.requests() == 1
    })
    .await;
    proxy
        .scrape_when("one answered copy", |s| mirrored(s, "answered") == 1.0)
        .await;
    // Past 64 KiB the client's request goes through whole and no copy is sent.
    let large = client
        .request(Method::POST, &proxy.url("edge", "/upload"))
        .body(vec![b'b'; 200_000])
        .send()
        .await;
    assert_eq!(large.status, StatusCode::OK);
    assert_eq!(large.json()["bytes"], 200_000);
    proxy
        .scrape_when("one skipped copy", |s| mirrored(s, "skipped") == 1.0)
        .await;
    assert_eq!(shadow.requests(), 1);
    assert_eq!(app.requests(), 2);
}

#[tokio::test]
async fn only_the_configured_share_is_copied() {
    let app = Upstream::http1().name("app").start().await;
    let shadow = Upstream::http1().name("shadow").start().await;
    let proxy = Proxy::with_config(edge_routes(&mirrored_route(25), &[&app, &shadow]))
        .start()
        .await;
    let client = HttpClient::h1();
    for _ in 0..200 {
        assert_eq!(
            client.get(&proxy.url("edge", "/")).await.status,
            StatusCode::OK
        );
    }
    let scrape = proxy
        .scrape_when("copies settled", |s| {
            mirrored(s, "answered") == shadow.requests() as f64
        })
        .await;
    // Expected 50 (binomial sd 6.1): outside 20..=80 by chance about once in a million.
    let copies = mirrored(&scrape, "answered");
    assert!(
        (20.0..=80.0).contains(&copies),
        "{copies} copies of 200 at 25%"
    );
}

#[tokio::test]
async fn a_slow_mirror_cluster_never_delays_the_client() {
    let app = Upstream::http1().name("app").start().await;
    // Answers each copy after a minute: a client waiting for it would time out below.
    let shadow = Upstream::http1()
        .name("shadow")
        .slow("/", Duration::from_secs(60))
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(&mirrored_route(100), &[&app, &shadow]))
        .start()
        .await;
    let client = HttpClient::h1();
    within(
        "20 requests with a stalled mirror",
        Duration::from_secs(20),
        async {
            for _ in 0..20 {
                let reply = client.get(&proxy.url("edge", "/")).await;
                assert_eq!(reply.status, StatusCode::OK);
                assert_eq!(reply.upstream(), Some("app"));
            }
        },
    )
    .await;
    // The copies are out there, still waiting for their answers.
    eventually(
        "20 copies at the slow mirror",
        Duration::from_secs(10),
        || async { shadow.requests() == 20 },
    )
    .await;
    assert_eq!(mirrored(&proxy.scrape().await, "answered"), 0.0);
}

#[tokio::test]
async fn a_dead_mirror_cluster_only_counts_failures() {
    let app = Upstream::http1().name("app").start().await;
    let config = meshwork_tests::edge_config(&format!(
        "
        route_tables:
          edge:
            - name: api
              backends: [{{ cluster: app }}]
              mirror: {{ cluster: shadow }}
        clusters:
          - name: app
            endpoints: [{app}]
          - name: shadow
            endpoints: [{dead}]
        ",
        app = app.endpoint(),
        dead = meshwork_tests::dead_endpoint(),
    ));
    let proxy = Proxy::with_config(config).start().await;
    let client = HttpClient::h1();
    for _ in 0..10 {
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.upstream(), Some("app"));
    }
    let scrape = proxy
        .scrape_when("10 failed copies", |s| mirrored(s, "failed") == 10.0)
        .await;
    // The client's requests were all answered by the real upstream.
    assert_eq!(
        scrape.get_or_zero(
            "meshwork_http_requests_total",
            &[
                ("listener", "edge"),
                ("route", "api"),
                ("cluster", "app"),
                ("status_class", "2xx")
            ]
        ),
        10.0
    );
}
