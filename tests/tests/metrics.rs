//! `/metrics` after real traffic: parsed strictly, every count asserted exactly, the
//! exposition checked by `promtool` and against docs/metrics.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use http::{Method, StatusCode};
use meshwork_tests::metrics::Labels;
use meshwork_tests::{
    API_ROUTE, HttpClient, Proxy, RawConn, Scrape, Upstream, cluster_yaml, dead_endpoint,
    edge_config, edge_routes, labels_of, promtool_check_metrics, single_cluster_config,
};

const REQUESTS: &str = "meshwork_http_requests_total";
const LOCAL_RESPONSES: &str = "meshwork_http_local_responses_total";
const UPSTREAM_REQUESTS: &str = "meshwork_upstream_requests_total";
const HELLO: &str = "hello, metrics";
const UPLOAD_BYTES: usize = 1000;

/// A route `status` answering `/status` itself, before [`API_ROUTE`].
const STATUS_ROUTE: &str = "
- name: status
  match:
    path:
      exact: /status
  direct_response:
    status: 200
    body: ok
";

/// Routes `status` and `api` (`/api/` to cluster `app`); anything else has no route.
fn routes() -> String {
    format!("{STATUS_ROUTE}{API_ROUTE}")
}

async fn app() -> Upstream {
    Upstream::http1()
        .name("app")
        .route("/api/hello", HELLO)
        .status("/api/unavailable", 503)
        .echo_body("/api/upload")
        .start()
        .await
}

fn http_labels(route: &str, cluster: &str, status_class: &str) -> Labels {
    labels_of(&[
        ("listener", "edge"),
        ("route", route),
        ("cluster", cluster),
        ("status_class", status_class),
    ])
}

fn bytes_of(scrape: &Scrape, name: &str, route: &str, cluster: &str) -> f64 {
    scrape.get_or_zero(
        name,
        &[("listener", "edge"), ("route", route), ("cluster", cluster)],
    )
}

/// The `+Inf` buckets of histogram `name`, keyed by their labels without `le`.
fn inf_buckets(scrape: &Scrape, name: &str) -> BTreeMap<Labels, f64> {
    scrape
        .nonzero_series(&format!("{name}_bucket"))
        .into_iter()
        .filter_map(|(mut labels, value)| {
            (labels.remove("le").as_deref() == Some("+Inf")).then_some((labels, value))
        })
        .collect()
}

#[tokio::test]
async fn requests_bytes_and_upstream_responses_are_counted_exactly_per_route_cluster_and_class() {
    let app = app().await;
    let proxy = Proxy::with_config(edge_routes(&routes(), &[&app]))
        .start()
        .await;
    let client = HttpClient::h1();
    let mut response_bytes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut get = async |path: &str, status: StatusCode, route: &'static str| {
        let reply = client.get(&proxy.url("edge", path)).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        *response_bytes.entry(route).or_default() += reply.body.len();
    };
    for _ in 0..6 {
        get("/api/hello", StatusCode::OK, "api").await;
    }
    for _ in 0..3 {
        get("/api/unavailable", StatusCode::SERVICE_UNAVAILABLE, "api").await;
    }
    for _ in 0..2 {
        get("/nowhere", StatusCode::NOT_FOUND, "").await;
    }
    get("/status", StatusCode::OK, "status").await;
    let upload = client
        .request(Method::POST, &proxy.url("edge", "/api/upload"))
        .body(vec![b'u'; UPLOAD_BYTES])
        .send()
        .await;
    assert_eq!(upload.body.len(), UPLOAD_BYTES);
    *response_bytes.entry("api").or_default() += UPLOAD_BYTES;

    let scrape = proxy
        .scrape_when("13 requests", |s| s.sum(REQUESTS) == 13.0)
        .await;
    let expected = BTreeMap::from([
        (http_labels("api", "app", "2xx"), 7.0),
        (http_labels("api", "app", "5xx"), 3.0),
        (http_labels("", "", "4xx"), 2.0),
        (http_labels("status", "", "2xx"), 1.0),
    ]);
    assert_eq!(scrape.nonzero_series(REQUESTS), expected);
    let duration = "meshwork_http_request_duration_seconds";
    assert_eq!(
        scrape.nonzero_series(&format!("{duration}_count")),
        expected
    );
    assert_eq!(inf_buckets(&scrape, duration), expected);

    let endpoint = app.endpoint();
    let upstream = |class| {
        labels_of(&[
            ("cluster", "app"),
            ("endpoint", &endpoint),
            ("status_class", class),
        ])
    };
    assert_eq!(
        scrape.nonzero_series(UPSTREAM_REQUESTS),
        BTreeMap::from([(upstream("2xx"), 7.0), (upstream("5xx"), 3.0)])
    );
    assert_eq!(
        scrape.get(
            "meshwork_upstream_request_duration_seconds_count",
            &[("cluster", "app")]
        ),
        Some(10.0)
    );
    assert_eq!(
        scrape.nonzero_series(LOCAL_RESPONSES),
        BTreeMap::from([(
            labels_of(&[("listener", "edge"), ("reason", "no-route")]),
            2.0
        )])
    );

    let request_body = "meshwork_http_request_body_bytes_total";
    assert_eq!(
        bytes_of(&scrape, request_body, "api", "app"),
        UPLOAD_BYTES as f64
    );
    assert_eq!(scrape.sum(request_body), UPLOAD_BYTES as f64);
    let response_body = "meshwork_http_response_body_bytes_total";
    for (route, cluster) in [("api", "app"), ("status", ""), ("", "")] {
        assert_eq!(
            bytes_of(&scrape, response_body, route, cluster),
            response_bytes[route] as f64,
            "response bytes of route {route:?}\n{}",
            scrape.lines_of(response_body)
        );
    }
    assert_eq!(response_bytes["api"], 6 * HELLO.len() + UPLOAD_BYTES);
}

/// Sends `count` GETs to `path` through route `all` (timeout 300ms) to the one endpoint
/// of cluster `app`, each answered `status` with reason `reason`, and checks the local
/// responses and the endpoint's `[connect failures, resets, timeouts]`.
async fn assert_failures_counted(
    endpoint: &str,
    path: &str,
    count: usize,
    (status, reason): (StatusCode, &str),
    faults: [f64; 3],
) -> Scrape {
    let proxy = Proxy::with_config(edge_config(&format!(
        "
        route_tables:
          edge:
            - name: all
              timeout: 300ms
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints:
              - {endpoint}
            protocol: http1
        "
    )))
    .start()
    .await;
    for _ in 0..count {
        let reply = HttpClient::h1().get(&proxy.url("edge", path)).await;
        assert_eq!((reply.status, reply.error_kind()), (status, Some(reason)));
    }
    let scrape = proxy
        .scrape_when(&format!("{count} requests"), |s| {
            s.sum(REQUESTS) == count as f64
        })
        .await;
    assert_eq!(
        scrape.nonzero_series(LOCAL_RESPONSES),
        BTreeMap::from([(
            labels_of(&[("listener", "edge"), ("reason", reason)]),
            count as f64
        )])
    );
    assert_eq!(
        scrape.get(
            REQUESTS,
            &[
                ("listener", "edge"),
                ("route", "all"),
                ("cluster", "app"),
                ("status_class", "5xx")
            ]
        ),
        Some(count as f64)
    );
    let endpoint = [("cluster", "app"), ("endpoint", endpoint)];
    let counted = [
        "meshwork_upstream_connect_failures_total",
        "meshwork_upstream_resets_total",
        "meshwork_upstream_timeouts_total",
    ]
    .map(|name| scrape.get_or_zero(name, &endpoint));
    assert_eq!(counted, faults, "[connect failures, resets, timeouts]");
    scrape
}

#[tokio::test]
async fn connection_refusals_count_as_connect_failures_of_the_endpoint() {
    let refused = (StatusCode::BAD_GATEWAY, "connect-failed");
    let scrape = assert_failures_counted(&dead_endpoint(), "/", 2, refused, [2.0, 0.0, 0.0]).await;
    assert_eq!(scrape.nonzero_series(UPSTREAM_REQUESTS), BTreeMap::new());
}

#[tokio::test]
async fn a_route_timeout_counts_as_an_upstream_timeout_of_the_endpoint() {
    let app = Upstream::http1()
        .slow("/slow", Duration::from_secs(5))
        .start()
        .await;
    let timeout = (StatusCode::GATEWAY_TIMEOUT, "upstream-timeout");
    assert_failures_counted(&app.endpoint(), "/slow", 1, timeout, [0.0, 0.0, 1.0]).await;
}

#[tokio::test]
async fn an_upstream_closing_before_answering_counts_as_a_reset_of_the_endpoint() {
    let app = Upstream::http1()
        .reset_before_headers("/reset")
        .start()
        .await;
    let reset = (StatusCode::BAD_GATEWAY, "upstream-reset");
    assert_failures_counted(&app.endpoint(), "/reset", 1, reset, [0.0, 1.0, 0.0]).await;
}

#[tokio::test]
async fn downstream_connections_are_counted_and_the_active_gauge_follows_them() {
    let app = app().await;
    let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .start()
        .await;
    let edge = [("listener", "edge")];
    let (total, active) = (
        "meshwork_downstream_connections_total",
        "meshwork_downstream_connections_active",
    );
    let mut connections = Vec::new();
    for _ in 0..3 {
        let mut conn = RawConn::connect(proxy.listener_addr("edge")).await;
        conn.send("GET /api/hello HTTP/1.1\r\nHost: edge\r\n\r\n")
            .await
            .unwrap();
        let response = conn.read_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status, 200);
        connections.push(conn);
    }
    proxy
        .scrape_when("3 connections, all active", |s| {
            s.get(total, &edge) == Some(3.0) && s.get(active, &edge) == Some(3.0)
        })
        .await;
    drop(connections);
    let scrape = proxy
        .scrape_when("no active connection", |s| {
            s.get(active, &edge) == Some(0.0)
        })
        .await;
    assert_eq!(scrape.get(total, &edge), Some(3.0));
}

#[tokio::test]
async fn config_version_and_reload_results_are_exposed() {
    let app = app().await;
    let config = single_cluster_config(&app.endpoint(), "http1");
    let mut proxy = Proxy::with_config(config.clone()).start().await;
    let (version, reloads) = ("meshwork_config_version", "meshwork_config_reloads_total");
    let first: f64 = proxy.config_version().await.parse().unwrap();
    let scrape = proxy.scrape().await;
    assert_eq!(scrape.get(version, &[]), Some(first));
    assert_eq!(scrape.nonzero_series(reloads), BTreeMap::new());

    let second: f64 = proxy
        .reload(&config.replace("name: all", "name: everything"))
        .await
        .parse()
        .unwrap();
    assert_eq!(second, first + 1.0);
    let applied = labels_of(&[("result", "applied")]);
    let scrape = proxy
        .scrape_when("the new version", |s| s.get(version, &[]) == Some(second))
        .await;
    assert_eq!(
        scrape.nonzero_series(reloads),
        BTreeMap::from([(applied.clone(), 1.0)])
    );

    // The watcher alone: SIGHUP on top of a file change makes the proxy read the same bad
    // file twice, and today each read counts as a rejection.
    proxy.replace_config_atomically("version: 1\nlisteners: [unclosed\n");
    let scrape = proxy
        .scrape_when("a rejected reload", |s| {
            s.get_or_zero(reloads, &[("result", "rejected")]) > 0.0
        })
        .await;
    assert_eq!(
        scrape.nonzero_series(reloads),
        BTreeMap::from([(applied, 1.0), (labels_of(&[("result", "rejected")]), 1.0)])
    );
    assert_eq!(scrape.get(version, &[]), Some(second));
    assert_eq!(proxy.config_version().await.parse::<f64>().unwrap(), second);
}

#[tokio::test]
async fn random_paths_and_user_agents_create_no_new_series() {
    let app = app().await;
    let proxy = Proxy::with_config(edge_routes(&routes(), &[&app]))
        .start()
        .await;
    let client = HttpClient::h1();
    // One request of each kind first, so every series the traffic below may touch exists.
    for path in ["/api/warm-up", "/warm-up"] {
        client.get(&proxy.url("edge", path)).await;
    }
    let before = proxy
        .scrape_when("the warm-up requests", |s| s.sum(REQUESTS) == 2.0)
        .await;
    let token = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..50 {
        let prefix = if i % 2 == 0 { "/api" } else { "" };
        let path = format!("{prefix}/{token}-{i}?q={token}");
        client
            .request(Method::GET, &proxy.url("edge", &path))
            .header("user-agent", &format!("agent-{token}-{i}"))
            .send()
            .await;
    }
    let after = proxy
        .scrape_when("52 requests", |s| s.sum(REQUESTS) == 52.0)
        .await;
    let new: BTreeSet<String> = after
        .series_ids()
        .difference(&before.series_ids())
        .cloned()
        .collect();
    assert_eq!(new, BTreeSet::new(), "series added by request data");
    let leaked: Vec<String> = after
        .label_values()
        .into_iter()
        .filter(|v| v.contains(&token))
        .collect();
    assert_eq!(leaked, Vec::<String>::new());
}

/// Traffic touching most families: successes, upstream errors, no route, a dead cluster.
async fn scrape_after_mixed_traffic() -> Scrape {
    let app = app().await;
    let dead_route = "- name: dead\n  match:\n    path:\n      prefix: /dead/\n  backends:\n    - cluster: dead\n";
    let routes = routes() + dead_route;
    let yaml = edge_routes(&routes, &[&app]) + &cluster_yaml("dead", &dead_endpoint(), "http1");
    let proxy = Proxy::with_config(yaml).start().await;
    let client = HttpClient::h1();
    for path in [
        "/api/hello",
        "/api/unavailable",
        "/nowhere",
        "/status",
        "/dead/x",
    ] {
        client.get(&proxy.url("edge", path)).await;
    }
    proxy
        .scrape_when("5 requests", |s| s.sum(REQUESTS) == 5.0)
        .await
}

#[tokio::test]
async fn the_exposition_passes_promtool_check_metrics() {
    let scrape = scrape_after_mixed_traffic().await;
    if let Err(problems) = promtool_check_metrics(&scrape.text) {
        panic!("{problems}\n--- /metrics ---\n{}", scrape.text);
    }
}

/// docs/metrics.md's tables: family name to `(type, labels)`.
fn documented_families() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let text = std::fs::read_to_string(path).expect("read docs/metrics.md");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells
                .get(1)?
                .strip_prefix("`meshwork_")?
                .strip_suffix('`')?;
            let labels = cells[3]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            Some((format!("meshwork_{name}"), (cells[2].to_owned(), labels)))
        })
        .collect()
}

#[tokio::test]
async fn every_exposed_family_is_documented_with_its_type_and_labels() {
    let documented = documented_families();
    let scrape = scrape_after_mixed_traffic().await;
    for family in scrape
        .families
        .iter()
        .filter(|f| f.name.starts_with("meshwork_"))
    {
        let Some((kind, labels)) = documented.get(&family.name) else {
            panic!("{} is not in docs/metrics.md", family.name);
        };
        assert_eq!(
            format!("{:?}", family.kind).to_lowercase(),
            *kind,
            "type of {}",
            family.name
        );
        for sample in &family.samples {
            let mut names: BTreeSet<String> = sample.labels.keys().cloned().collect();
            names.remove("le");
            assert_eq!(names, *labels, "labels of {}", family.name);
        }
    }
}
