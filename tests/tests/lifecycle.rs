//! The proxy's life: admin endpoints, reloads (signal, file watch, invalid configs, under
//! load, with long-lived streams open), listeners kept across reloads, and draining on
//! SIGTERM/SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use meshwork_tests::{
    GrpcUpstream, HttpClient, LiveStreams, Proxy, RawConn, Upstream, WsUpstream, cluster_yaml,
    dedent, edge_config, edge_routes, eventually, single_cluster_config, within,
};

/// A config routing everything to `upstream` (which must be among `all`, all defined).
fn everything_to(upstream: &Upstream, all: &[&Upstream]) -> String {
    edge_routes(
        &format!(
            "
            - name: all
              backends:
                - cluster: {}
            ",
            upstream.name()
        ),
        all,
    )
}

#[tokio::test]
async fn the_admin_server_reports_liveness_readiness_config_and_listeners() {
    let app = Upstream::http1().name("app").start().await;
    let yaml = dedent(
        "
        version: 1
        admin:
          address: 127.0.0.1:0
        listeners:
          - name: edge
            address: 127.0.0.1:0
            protocol: http
            route_table: edge
          - name: raw
            address: 127.0.0.1:0
            protocol: tcp
            cluster: app
        route_tables:
          edge:
            - name: all
              backends:
                - cluster: app
        clusters:
        ",
    ) + &cluster_yaml("app", &app.endpoint(), "http1");
    let proxy = Proxy::with_config(yaml).start().await;

    assert_eq!(proxy.admin_get("/live").await.status, StatusCode::OK);
    assert_eq!(proxy.admin_get("/ready").await.status, StatusCode::OK);

    let config = proxy.config_document().await;
    assert!(
        config["version"].is_string(),
        "version is a string: {config}"
    );
    assert!(
        config.get("source").is_some(),
        "/config names its source: {config}"
    );
    assert!(
        config["config"].is_object(),
        "/config holds the config: {config}"
    );

    let listeners = proxy.listeners();
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    let edge = listeners.iter().find(|l| l.name == "edge").expect("edge");
    let raw = listeners.iter().find(|l| l.name == "raw").expect("raw");
    assert_eq!(
        (edge.protocol.as_str(), raw.protocol.as_str()),
        ("http", "tcp")
    );
    for listener in listeners {
        assert_eq!(listener.address.ip().to_string(), "127.0.0.1");
        assert_ne!(
            listener.address.port(),
            0,
            "the bound port, not the configured 0"
        );
    }
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.upstream(), Some("app"));
}

#[tokio::test]
async fn sighup_applies_a_new_route_table_and_keeps_the_listener_socket() {
    let a = Upstream::http1().name("a").start().await;
    let b = Upstream::http1().name("b").start().await;
    let mut proxy = Proxy::with_config(everything_to(&a, &[&a, &b]))
        .start()
        .await;
    let address = proxy.listener_addr("edge");
    let version = proxy.config_version().await;

    // A keep-alive connection opened before the reload.
    let mut conn = RawConn::connect(address).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let before = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(before.header("x-upstream"), Some("a"));

    let new_version = proxy.reload(&everything_to(&b, &[&a, &b])).await;
    assert_ne!(new_version, version);
    assert_eq!(
        proxy.listener_addr("edge"),
        address,
        "the listener socket is kept"
    );
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.upstream(), Some("b"));

    // The old connection still works, and its next request uses the new routes.
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let after = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(after.header("x-upstream"), Some("b"));
}

#[tokio::test]
async fn an_edited_config_file_applies_without_a_signal() {
    let a = Upstream::http1().name("a").start().await;
    let b = Upstream::http1().name("b").start().await;
    let proxy = Proxy::with_config(everything_to(&a, &[&a, &b]))
        .start()
        .await;
    let version = proxy.config_version().await;

    proxy.write_config_without_signal(&everything_to(&b, &[&a, &b]));
    eventually(
        "the watcher to apply the edited file",
        Duration::from_secs(10),
        || async { proxy.config_version().await != version },
    )
    .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.upstream(), Some("b"));
}

#[tokio::test]
async fn an_invalid_reload_keeps_the_old_config_and_traffic() {
    let a = Upstream::http1().name("a").start().await;
    let mut proxy = Proxy::with_config(everything_to(&a, &[&a])).start().await;
    let version = proxy.config_version().await;
    let client = HttpClient::h1();

    let broken_files = [
        // Valid YAML, invalid config: a route naming a cluster that does not exist.
        edge_routes(
            "
            - name: all
              backends:
                - cluster: missing-cluster
            ",
            &[&a],
        ),
        // Not YAML at all.
        "version: 1\nlisteners: [\n  - name: {{\n".to_owned(),
        // An empty file.
        String::new(),
    ];
    for broken in &broken_files {
        let logged_before = proxy.stderr_bytes();
        proxy.replace_config_atomically(broken);
        proxy.sighup();
        // Give the proxy time to read the file and say why it refuses it.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while proxy.stderr_bytes() == logged_before {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(proxy.config_version().await, version, "after {broken:?}");
        assert_eq!(proxy.admin_get("/ready").await.status, StatusCode::OK);
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(
            reply.upstream(),
            Some("a"),
            "traffic still flows after {broken:?}"
        );
    }
    assert!(
        proxy.stderr_so_far().contains("missing-cluster"),
        "the rejected reload's reason is logged"
    );

    // A good config afterwards still applies.
    let b = Upstream::http1().name("b").start().await;
    proxy.reload(&everything_to(&b, &[&a, &b])).await;
    assert_eq!(
        client.get(&proxy.url("edge", "/")).await.upstream(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_request() {
    const RELOADS: usize = 4;
    const WORKERS: usize = 4;
    const MAX_REQUESTS_PER_WORKER: u64 = 5_000;
    let mut upstreams = Vec::new();
    for i in 0..=RELOADS {
        upstreams.push(Upstream::http1().name(&format!("u{i}")).start().await);
    }
    let all: Vec<&Upstream> = upstreams.iter().collect();
    let mut proxy = Proxy::with_config(everything_to(&upstreams[0], &all))
        .start()
        .await;
    let address = proxy.listener_addr("edge");
    let url = proxy.url("edge", "/load");

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (stop, served, url) = (stop.clone(), served.clone(), url.clone());
        // Half the workers hold one HTTP/2 connection across every reload.
        let client = if worker % 2 == 0 {
            HttpClient::h1()
        } else {
            HttpClient::h2c()
        };
        workers.spawn(async move {
            let started = Instant::now();
            let mut failures = Vec::new();
            for _ in 0..MAX_REQUESTS_PER_WORKER {
                if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                match client.request(http::Method::GET, &url).try_send().await {
                    Ok(reply) if reply.status == StatusCode::OK => {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(reply) => {
                        failures.push(format!("{} {:?}", reply.status, reply.error_kind()))
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        });
    }

    for (i, upstream) in upstreams.iter().enumerate().skip(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.reload(&everything_to(upstream, &all)).await;
        assert_eq!(
            proxy.listener_addr("edge"),
            address,
            "reload {i} kept the socket"
        );
        let reply = HttpClient::h1().get(&url).await;
        assert_eq!(
            reply.upstream(),
            Some(upstream.name()),
            "routing after reload {i}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);

    let mut failures = Vec::new();
    while let Some(worker) = workers.join_next().await {
        failures.extend(worker.expect("a load worker"));
    }
    let served = served.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during reloads, e.g. {:?}",
        failures.len(),
        failures.len() as u64 + served,
        &failures[..failures.len().min(5)]
    );
    assert!(
        served >= 50,
        "only {served} requests were sent: not much of a load"
    );
    assert!(
        upstreams[RELOADS].requests() > 0,
        "the last upstream took traffic"
    );
}

#[tokio::test]
async fn a_websocket_and_a_grpc_stream_opened_before_a_reload_keep_working_after_it() {
    let ws_upstream = WsUpstream::start().await;
    let grpc_upstream = GrpcUpstream::start().await;
    let config = |extra_route: &str| {
        edge_config(&format!(
            "
            route_tables:
              edge:
            {extra_route}
                - name: grpc
                  match:
                    path:
                      prefix: /meshwork.test.Echo/
                  backends:
                    - cluster: grpc
                - name: ws
                  backends:
                    - cluster: ws
            clusters:
              - name: grpc
                endpoints:
                  - {}
                protocol: http2
              - name: ws
                endpoints:
                  - {}
                protocol: http1
            ",
            grpc_upstream.endpoint(),
            ws_upstream.endpoint()
        ))
    };
    let new_route = "    - name: new
                  match:
                    path:
                      exact: /new
                  direct_response:
                    status: 200
                    body: new";
    let mut proxy = Proxy::with_config(config("")).start().await;
    let address = proxy.listener_addr("edge");

    let mut streams = LiveStreams::open(address).await;
    streams.echo("before").await;

    proxy.reload(&config(new_route)).await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/new")).await;
    assert_eq!(reply.text(), "new", "the new config is active");

    streams.echo("after").await;
    streams.close().await;
}

#[tokio::test]
async fn a_reload_adding_a_listener_binds_it_and_removing_it_closes_it() {
    let app = Upstream::http1().name("app").start().await;
    let base = single_cluster_config(&app.endpoint(), "http1");
    let mut proxy = Proxy::with_config(base.clone()).start().await;
    let edge = proxy.listener_addr("edge");

    let with_internal = base
        .replacen(
            "route_tables:\n",
            "  - name: internal\n    address: 127.0.0.1:0\n    protocol: http\n    route_table: internal\nroute_tables:\n  internal:\n    - name: hello\n      direct_response:\n        status: 200\n        body: internal\n",
            1,
        );
    proxy.reload(&with_internal).await;
    assert_eq!(
        proxy.listener_addr("edge"),
        edge,
        "the existing listener is kept"
    );
    let internal = proxy.listener_addr("internal");
    let reply = HttpClient::h1_unpooled()
        .get(&proxy.url("internal", "/"))
        .await;
    assert_eq!(reply.text(), "internal");

    proxy.reload(&base).await;
    assert_eq!(proxy.listener_addr("edge"), edge);
    assert!(proxy.listeners().iter().all(|l| l.name != "internal"));
    eventually(
        "the removed listener to stop accepting",
        Duration::from_secs(5),
        || async { RawConn::try_connect(internal).await.is_err() },
    )
    .await;
}

#[tokio::test]
async fn environment_variables_are_substituted_in_the_config() {
    let app = Upstream::http1().name("app").start().await;
    let yaml = edge_routes(
        "
        - name: all
          request_headers:
            set:
              x-env: ${MESHWORK_TEST_ENV_NAME:-fallback}
              x-region: ${MESHWORK_TEST_REGION}
          backends:
            - cluster: app
        ",
        &[&app],
    )
    .replace(&app.endpoint(), "${MESHWORK_TEST_APP_ENDPOINT}");
    let proxy = Proxy::with_config(yaml)
        .env("MESHWORK_TEST_APP_ENDPOINT", &app.endpoint())
        .env("MESHWORK_TEST_REGION", "eu-1")
        .start()
        .await;
    let echo = HttpClient::h1().get(&proxy.url("edge", "/")).await.echo();
    assert_eq!(echo.upstream, "app");
    assert_eq!(echo.header("x-env").as_deref(), Some("fallback"));
    assert_eq!(echo.header("x-region").as_deref(), Some("eu-1"));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_refuses_new_connections_and_exits_0() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(1500))
        .start()
        .await;
    let mut proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .drain_timeout("10s")
        .start()
        .await;
    let address = proxy.listener_addr("edge");
    let url = proxy.url("edge", "/slow");
    let in_flight = tokio::spawn(async move { HttpClient::h1_unpooled().get(&url).await });
    eventually(
        "the slow request to reach the upstream",
        Duration::from_secs(5),
        || async { app.requests() == 1 },
    )
    .await;

    let signalled = Instant::now();
    proxy.sigterm();
    eventually("new connections to be refused", Duration::from_secs(2), || async {
        let Ok(mut conn) = RawConn::try_connect(address).await else { return true };
        if conn.send(b"GET /new HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
            return true;
        }
        !matches!(conn.read_response(Duration::from_millis(300)).await, Ok(r) if r.status == 200)
    })
    .await;

    // Draining is not ready: load balancers must stop sending traffic here.
    let ready = HttpClient::h1_unpooled()
        .request(http::Method::GET, &proxy.admin_url("/ready"))
        .timeout(Duration::from_secs(2))
        .try_send()
        .await;
    assert!(
        !matches!(&ready, Ok(reply) if reply.status == StatusCode::OK),
        "/ready still answers 200 while draining: {ready:?}"
    );

    let reply = within("the in-flight request", Duration::from_secs(10), in_flight)
        .await
        .expect("the request task");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow");
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "exit took {:?}: it should follow the last request, not the 10s drain timeout",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn sigterm_stops_waiting_for_requests_at_the_drain_timeout_and_exits_0() {
    let app = Upstream::http1()
        .name("app")
        .slow("/forever", Duration::from_secs(60))
        .start()
        .await;
    let mut proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .drain_timeout("500ms")
        .start()
        .await;
    let url = proxy.url("edge", "/forever");
    let in_flight = tokio::spawn(async move {
        HttpClient::h1_unpooled()
            .request(http::Method::GET, &url)
            .timeout(Duration::from_secs(20))
            .try_send()
            .await
    });
    eventually(
        "the request to reach the upstream",
        Duration::from_secs(5),
        || async { app.requests() == 1 },
    )
    .await;
    let signalled = Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "took {:?}",
        signalled.elapsed()
    );
    let result = within(
        "the abandoned request to end",
        Duration::from_secs(5),
        in_flight,
    )
    .await
    .expect("the request task");
    assert!(
        !matches!(&result, Ok(reply) if reply.status == StatusCode::OK),
        "a request outliving the drain cannot have succeeded: {result:?}"
    );
}

#[tokio::test]
async fn sigint_stops_an_idle_proxy_promptly_with_exit_0() {
    let app = Upstream::http1().name("app").start().await;
    let mut proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .start()
        .await;
    assert_eq!(
        HttpClient::h1_unpooled()
            .get(&proxy.url("edge", "/"))
            .await
            .status,
        StatusCode::OK
    );
    let signalled = Instant::now();
    proxy.sigint();
    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "took {:?}",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn a_reload_changing_a_clusters_endpoint_moves_its_traffic() {
    let old = Upstream::http1().name("old").start().await;
    let new = Upstream::http1().name("new").start().await;
    let mut proxy = Proxy::with_config(single_cluster_config(&old.endpoint(), "http1"))
        .start()
        .await;
    let client = HttpClient::h1();
    assert_eq!(
        client.get(&proxy.url("edge", "/")).await.upstream(),
        Some("old")
    );

    // Same cluster name, new endpoint: pooled connections to the old one must not be used.
    proxy
        .reload(&single_cluster_config(&new.endpoint(), "http1"))
        .await;
    for _ in 0..5 {
        assert_eq!(
            client.get(&proxy.url("edge", "/")).await.upstream(),
            Some("new")
        );
    }
    assert_eq!(old.requests(), 1);

    // Same cluster name, new protocol.
    let h2 = Upstream::h2c().name("h2").start().await;
    proxy
        .reload(&single_cluster_config(&h2.endpoint(), "http2"))
        .await;
    let echo = client.get(&proxy.url("edge", "/")).await.echo();
    assert_eq!(
        (echo.upstream.as_str(), echo.version.as_str()),
        ("h2", "HTTP/2.0")
    );
}

#[tokio::test]
async fn a_config_file_replaced_by_rename_applies_without_a_signal_every_time() {
    // Editors and Kubernetes ConfigMaps replace files by renaming over them; a watcher
    // that followed the old inode would see the first replacement at most.
    let a = Upstream::http1().name("a").start().await;
    let b = Upstream::http1().name("b").start().await;
    let proxy = Proxy::with_config(everything_to(&a, &[&a, &b]))
        .start()
        .await;
    let client = HttpClient::h1();
    for (round, target) in [&b, &a, &b].into_iter().enumerate() {
        let version = proxy.config_version().await;
        proxy.replace_config_atomically(&everything_to(target, &[&a, &b]));
        eventually(
            &format!("the watcher to apply replacement {round}"),
            Duration::from_secs(10),
            || async { proxy.config_version().await != version },
        )
        .await;
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(
            reply.upstream(),
            Some(target.name()),
            "after replacement {round}"
        );
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_http2_stream_finish() {
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(1000))
        .start()
        .await;
    let mut proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .drain_timeout("10s")
        .start()
        .await;
    let client = HttpClient::h2c();
    assert_eq!(
        client.get(&proxy.url("edge", "/warm")).await.status,
        StatusCode::OK
    );
    let url = proxy.url("edge", "/slow");
    let in_flight = tokio::spawn(async move { client.get(&url).await });
    eventually(
        "the slow request to reach the upstream",
        Duration::from_secs(5),
        || async { app.requests() == 2 },
    )
    .await;
    proxy.sigterm();
    let reply = within(
        "the in-flight h2 request",
        Duration::from_secs(10),
        in_flight,
    )
    .await
    .expect("the request task");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "slow")
    );
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_the_drain() {
    let app = Upstream::http1().name("app").start().await;
    let mut proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .drain_timeout("10s")
        .start()
        .await;
    let mut h1 = RawConn::connect(proxy.listener_addr("edge")).await;
    h1.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(
        h1.read_response(Duration::from_secs(5))
            .await
            .unwrap()
            .status,
        200
    );
    let h2 = HttpClient::h2c();
    assert_eq!(h2.get(&proxy.url("edge", "/")).await.status, StatusCode::OK);

    let signalled = Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "idle connections kept the proxy up for {:?} (drain timeout 10s)",
        signalled.elapsed()
    );
    assert!(h1.wait_closed(Duration::from_secs(1)).await.is_some());
}
