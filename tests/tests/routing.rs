//! Route matching end to end: every matcher, first-match-wins, weighted splits, and the
//! route actions (rewrites, header edits, direct responses, redirects).

use http::{Method, StatusCode};
use meshwork_tests::{HttpClient, Proxy, Reply, Upstream, edge_routes};

/// Sends `GET path` with `Host: host` through listener `edge`.
async fn get_with_host(proxy: &Proxy, host: &str, path: &str) -> Reply {
    HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", path))
        .header("host", host)
        .send()
        .await
}

/// Which upstream answered `GET path` (with the given extra headers), or the status
/// when the proxy answered itself.
async fn routed_to(proxy: &Proxy, method: Method, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = HttpClient::h1().request(method, &proxy.url("edge", path));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let reply = request.send().await;
    match reply.upstream() {
        Some(name) => name.to_owned(),
        None => format!(
            "{} {}",
            reply.status.as_u16(),
            reply.error_kind().unwrap_or("")
        ),
    }
}

async fn upstreams<const N: usize>(names: [&str; N]) -> [Upstream; N] {
    let mut started = Vec::new();
    for name in names {
        started.push(Upstream::http1().name(name).start().await);
    }
    started.try_into().expect("N upstreams")
}

#[tokio::test]
async fn host_exact_match_routes_to_its_cluster() {
    let [api, other] = upstreams(["api", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: api
          match:
            host: [api.example.com]
          backends:
            - cluster: api
        - name: rest
          backends:
            - cluster: other
        ",
        &[&api, &other],
    ))
    .start()
    .await;

    for (host, expected) in [
        ("api.example.com", "api"),
        ("API.Example.COM", "api"),
        ("www.example.com", "other"),
        ("api.example.com.evil.test", "other"),
        ("example.com", "other"),
    ] {
        let reply = get_with_host(&proxy, host, "/").await;
        assert_eq!(reply.upstream(), Some(expected), "Host: {host}");
    }
}

#[tokio::test]
async fn host_wildcard_matches_subdomains_but_not_the_bare_domain() {
    let [wild, other] = upstreams(["wild", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: wildcard
          match:
            host: ["*.example.com"]
          backends:
            - cluster: wild
        - name: rest
          backends:
            - cluster: other
        "#,
        &[&wild, &other],
    ))
    .start()
    .await;

    for (host, expected) in [
        ("a.example.com", "wild"),
        ("deep.a.example.com", "wild"),
        ("example.com", "other"),
        ("notexample.com", "other"),
        ("a.example.org", "other"),
    ] {
        let reply = get_with_host(&proxy, host, "/").await;
        assert_eq!(reply.upstream(), Some(expected), "Host: {host}");
    }
}

#[tokio::test]
async fn host_match_ignores_the_port() {
    let [api, other] = upstreams(["api", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: api
          match:
            host: [api.example.com, "*.svc.example.com"]
          backends:
            - cluster: api
        - name: rest
          backends:
            - cluster: other
        "#,
        &[&api, &other],
    ))
    .start()
    .await;

    for (host, expected) in [
        ("api.example.com:8443", "api"),
        ("api.example.com:80", "api"),
        ("web.svc.example.com:9000", "api"),
        ("www.example.com:8443", "other"),
    ] {
        let reply = get_with_host(&proxy, host, "/").await;
        assert_eq!(reply.upstream(), Some(expected), "Host: {host}");
    }
}

#[tokio::test]
async fn path_exact_matches_only_that_path() {
    let [health, other] = upstreams(["health", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: health
          match:
            path:
              exact: /healthz
          backends:
            - cluster: health
        - name: rest
          backends:
            - cluster: other
        ",
        &[&health, &other],
    ))
    .start()
    .await;

    for (path, expected) in [
        ("/healthz", "health"),
        ("/healthz?verbose=1", "health"),
        ("/healthz/", "other"),
        ("/healthzz", "other"),
        ("/HEALTHZ", "other"),
        ("/", "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, Method::GET, path, &[]).await,
            expected,
            "{path}"
        );
    }
}

#[tokio::test]
async fn prefix_match_routes_to_the_v1_cluster() {
    let [v1, other] = upstreams(["v1", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: v1
          match:
            path:
              prefix: /v1/
          backends:
            - cluster: v1
        - name: rest
          backends:
            - cluster: other
        ",
        &[&v1, &other],
    ))
    .start()
    .await;

    for (path, expected) in [
        ("/v1/", "v1"),
        ("/v1/users/7", "v1"),
        ("/v1/users?page=2", "v1"),
        ("/v1", "other"),
        ("/v2/users", "other"),
        ("/api/v1/users", "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, Method::GET, path, &[]).await,
            expected,
            "{path}"
        );
    }
    let echo = HttpClient::h1()
        .get(&proxy.url("edge", "/v1/users?page=2"))
        .await
        .echo();
    assert_eq!(echo.path, "/v1/users", "the path is forwarded unchanged");
    assert_eq!(
        echo.query.as_deref(),
        Some("page=2"),
        "the query is forwarded unchanged"
    );
}

#[tokio::test]
async fn path_regex_routes_matching_paths() {
    let [users, other] = upstreams(["users", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: user-by-id
          match:
            path:
              regex: "^/u/[0-9]+$"
          backends:
            - cluster: users
        - name: rest
          backends:
            - cluster: other
        "#,
        &[&users, &other],
    ))
    .start()
    .await;

    for (path, expected) in [
        ("/u/42", "users"),
        ("/u/42?tab=posts", "users"),
        ("/u/", "other"),
        ("/u/abc", "other"),
        ("/u/42/posts", "other"),
        ("/x/u/42", "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, Method::GET, path, &[]).await,
            expected,
            "{path}"
        );
    }
}

#[tokio::test]
async fn method_match_accepts_only_the_listed_methods() {
    let [writes, other] = upstreams(["writes", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: writes
          match:
            method: [POST, PUT]
          backends:
            - cluster: writes
        - name: rest
          backends:
            - cluster: other
        ",
        &[&writes, &other],
    ))
    .start()
    .await;

    for (method, expected) in [
        (Method::POST, "writes"),
        (Method::PUT, "writes"),
        (Method::GET, "other"),
        (Method::DELETE, "other"),
        (Method::PATCH, "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, method.clone(), "/", &[]).await,
            expected,
            "{method}"
        );
    }
}

#[tokio::test]
async fn header_exact_and_regex_matches_compare_the_value() {
    let [canary, beta, other] = upstreams(["canary", "beta", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: canary
          match:
            headers:
              - name: x-canary
                exact: "true"
          backends:
            - cluster: canary
        - name: beta-users
          match:
            headers:
              - name: x-user
                regex: "^beta-[0-9]+$"
          backends:
            - cluster: beta
        - name: rest
          backends:
            - cluster: other
        "#,
        &[&canary, &beta, &other],
    ))
    .start()
    .await;

    for (headers, expected) in [
        (vec![("x-canary", "true")], "canary"),
        (vec![("X-Canary", "true")], "canary"),
        (vec![("x-canary", "TRUE")], "other"),
        (vec![("x-canary", "false")], "other"),
        (vec![("x-user", "beta-17")], "beta"),
        (vec![("x-user", "beta-")], "other"),
        (vec![("x-user", "alpha-17")], "other"),
        (vec![], "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, Method::GET, "/", &headers).await,
            expected,
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn header_presence_matches_whether_the_header_is_sent_at_all() {
    let [debug, untraced, other] = upstreams(["debug", "untraced", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: debug
          match:
            headers:
              - name: x-debug
                present: true
          backends:
            - cluster: debug
        - name: untraced
          match:
            headers:
              - name: x-trace
                present: false
          backends:
            - cluster: untraced
        - name: rest
          backends:
            - cluster: other
        ",
        &[&debug, &untraced, &other],
    ))
    .start()
    .await;

    for (headers, expected) in [
        (vec![("x-debug", "1")], "debug"),
        (vec![("x-debug", "")], "debug"),
        (vec![("x-debug", "1"), ("x-trace", "1")], "debug"),
        (vec![], "untraced"),
        (vec![("x-trace", "abc")], "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, Method::GET, "/", &headers).await,
            expected,
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn query_matches_compare_exact_values_regexes_and_presence() {
    let [exact, regex, present, other] = upstreams(["exact", "regex", "present", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: debug-on
          match:
            query:
              - name: debug
                exact: "1"
          backends:
            - cluster: exact
        - name: numbered-page
          match:
            query:
              - name: page
                regex: "^[0-9]+$"
          backends:
            - cluster: regex
        - name: has-token
          match:
            query:
              - name: token
                present: true
          backends:
            - cluster: present
        - name: rest
          backends:
            - cluster: other
        "#,
        &[&exact, &regex, &present, &other],
    ))
    .start()
    .await;

    for (path, expected) in [
        ("/?debug=1", "exact"),
        ("/search?a=b&debug=1", "exact"),
        ("/?debug=2", "other"),
        ("/?debug=10", "other"),
        ("/?page=12", "regex"),
        ("/?page=x12", "other"),
        ("/?token=abc", "present"),
        ("/?token=", "present"),
        ("/?token", "present"),
        ("/?tokens=1", "other"),
        ("/", "other"),
    ] {
        assert_eq!(
            routed_to(&proxy, Method::GET, path, &[]).await,
            expected,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_first_matching_route_wins() {
    let [broad, narrow] = upstreams(["broad", "narrow"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: broad
          match:
            path:
              prefix: /api/
          backends:
            - cluster: broad
        - name: narrow
          match:
            path:
              exact: /api/v1/users
          backends:
            - cluster: narrow
        - name: narrow-fallback
          backends:
            - cluster: narrow
        ",
        &[&broad, &narrow],
    ))
    .start()
    .await;

    assert_eq!(
        routed_to(&proxy, Method::GET, "/api/v1/users", &[]).await,
        "broad"
    );
    assert_eq!(
        routed_to(&proxy, Method::GET, "/other", &[]).await,
        "narrow"
    );
}

#[tokio::test]
async fn every_condition_of_a_match_must_hold() {
    let [strict, other] = upstreams(["strict", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: strict
          match:
            host: [api.example.com]
            path:
              prefix: /admin/
            method: [POST]
            headers:
              - name: x-role
                exact: admin
            query:
              - name: confirm
                present: true
          backends:
            - cluster: strict
        - name: rest
          backends:
            - cluster: other
        "#,
        &[&strict, &other],
    ))
    .start()
    .await;

    let client = HttpClient::h1();
    let send = |host: &'static str, method: Method, path: &'static str, role: &'static str| {
        let client = client.clone();
        let url = proxy.url("edge", path);
        async move {
            let reply = client
                .request(method, &url)
                .header("host", host)
                .header("x-role", role)
                .send()
                .await;
            reply.upstream().unwrap_or("none").to_owned()
        }
    };
    assert_eq!(
        send("api.example.com", Method::POST, "/admin/x?confirm", "admin").await,
        "strict"
    );
    assert_eq!(
        send("www.example.com", Method::POST, "/admin/x?confirm", "admin").await,
        "other"
    );
    assert_eq!(
        send("api.example.com", Method::GET, "/admin/x?confirm", "admin").await,
        "other"
    );
    assert_eq!(
        send(
            "api.example.com",
            Method::POST,
            "/public/x?confirm",
            "admin"
        )
        .await,
        "other"
    );
    assert_eq!(
        send("api.example.com", Method::POST, "/admin/x?confirm", "user").await,
        "other"
    );
    assert_eq!(
        send("api.example.com", Method::POST, "/admin/x", "admin").await,
        "other"
    );
}

#[tokio::test]
async fn a_90_10_split_stays_within_five_sigma_over_1000_requests() {
    const REQUESTS: u64 = 1000;
    const WORKERS: u64 = 4;
    let [v1, v2] = upstreams(["v1", "v2"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: split
          backends:
            - cluster: v1
              weight: 90
            - cluster: v2
              weight: 10
        ",
        &[&v1, &v2],
    ))
    .start()
    .await;

    let url = proxy.url("edge", "/split");
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let url = url.clone();
        workers.spawn(async move {
            let client = HttpClient::h1();
            for _ in 0..REQUESTS / WORKERS {
                let reply = client.get(&url).await;
                assert_eq!(reply.status, StatusCode::OK);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("a load worker");
    }

    // Binomial(1000, 0.9): sigma = sqrt(1000 * 0.9 * 0.1) ~ 9.5, so 5 sigma ~ 47.
    let (hits_v1, hits_v2) = (v1.requests(), v2.requests());
    assert_eq!(hits_v1 + hits_v2, REQUESTS);
    let sigma = (REQUESTS as f64 * 0.9 * 0.1).sqrt();
    let deviation = (hits_v1 as f64 - REQUESTS as f64 * 0.9).abs();
    assert!(
        deviation <= 5.0 * sigma,
        "v1 got {hits_v1} and v2 {hits_v2} of {REQUESTS}; expected 900 +- {:.0}",
        5.0 * sigma
    );
}

#[tokio::test]
async fn rewrite_path_prefix_replaces_only_the_matched_prefix() {
    let [api, legacy] = upstreams(["api", "legacy"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: api
          match:
            path:
              prefix: /api/
          rewrite:
            path_prefix: /
          backends:
            - cluster: api
        - name: legacy
          match:
            path:
              prefix: /old/
          rewrite:
            path_prefix: /new/v2/
          backends:
            - cluster: legacy
        ",
        &[&api, &legacy],
    ))
    .start()
    .await;

    let client = HttpClient::h1();
    let echo = client
        .get(&proxy.url("edge", "/api/users/7?expand=1"))
        .await
        .echo();
    assert_eq!(echo.upstream, "api");
    assert_eq!(echo.path, "/users/7");
    assert_eq!(echo.query.as_deref(), Some("expand=1"));

    let echo = client.get(&proxy.url("edge", "/old/a/api/b")).await.echo();
    assert_eq!(echo.upstream, "legacy");
    assert_eq!(echo.path, "/new/v2/a/api/b");
}

#[tokio::test]
async fn rewrite_host_replaces_the_host_seen_upstream() {
    let [h1, h2] = [
        Upstream::http1().name("h1").start().await,
        Upstream::h2c().name("h2").start().await,
    ];
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: to-h2
          match:
            path:
              prefix: /h2/
          rewrite:
            host: api.internal
          backends:
            - cluster: h2
        - name: to-h1
          rewrite:
            host: api.internal
          backends:
            - cluster: h1
        ",
        &[&h1, &h2],
    ))
    .start()
    .await;

    let echo = get_with_host(&proxy, "public.example.com", "/x")
        .await
        .echo();
    assert_eq!(echo.upstream, "h1");
    assert_eq!(echo.host().as_deref(), Some("api.internal"), "{echo:?}");
    assert_eq!(
        echo.headers["host"],
        vec!["api.internal".to_owned()],
        "exactly one Host"
    );

    let echo = get_with_host(&proxy, "public.example.com", "/h2/x")
        .await
        .echo();
    assert_eq!(echo.upstream, "h2");
    assert_eq!(echo.host().as_deref(), Some("api.internal"), "{echo:?}");
}

#[tokio::test]
async fn request_headers_are_set_added_and_removed() {
    let [app] = upstreams(["app"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: edit
          request_headers:
            set:
              x-env: prod
            add:
              x-via: meshwork
            remove: [x-debug, x-internal-token]
          backends:
            - cluster: app
        ",
        &[&app],
    ))
    .start()
    .await;

    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("x-env", "dev")
        .header("x-via", "client")
        .header("x-debug", "1")
        .header("X-Internal-Token", "secret")
        .header("x-kept", "yes")
        .send()
        .await
        .echo();
    assert_eq!(
        echo.headers["x-env"],
        vec!["prod".to_owned()],
        "set replaces"
    );
    assert_eq!(
        echo.headers["x-via"],
        vec!["client".to_owned(), "meshwork".to_owned()],
        "add appends"
    );
    assert!(!echo.has_header("x-debug"), "removed: {echo:?}");
    assert!(!echo.has_header("x-internal-token"), "removed: {echo:?}");
    assert_eq!(echo.header("x-kept").as_deref(), Some("yes"));

    let echo = HttpClient::h1().get(&proxy.url("edge", "/")).await.echo();
    assert_eq!(
        echo.header("x-env").as_deref(),
        Some("prod"),
        "set when absent"
    );
    assert_eq!(
        echo.header("x-via").as_deref(),
        Some("meshwork"),
        "added when absent"
    );
}

#[tokio::test]
async fn response_headers_are_set_added_and_removed() {
    let app = Upstream::http1()
        .name("app")
        .response_header("server", "test-upstream")
        .response_header("x-version", "upstream")
        .response_header("x-cache", "miss")
        .start()
        .await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: edit
          response_headers:
            set:
              x-version: proxy
            add:
              x-cache: proxy-miss
              x-frame-options: DENY
            remove: [server]
          backends:
            - cluster: app
        ",
        &[&app],
    ))
    .start()
    .await;

    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header_all("x-version"), ["proxy"], "set replaces");
    assert_eq!(
        reply.header_all("x-cache"),
        ["miss", "proxy-miss"],
        "add appends"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_ne!(
        reply.header("server"),
        Some("test-upstream"),
        "removed: {:?}",
        reply.headers
    );
}

#[tokio::test]
async fn a_direct_response_answers_without_any_upstream() {
    let [app] = upstreams(["app"]).await;
    let proxy = Proxy::with_config(edge_routes(
        r#"
        - name: health
          match:
            path:
              exact: /healthz
          direct_response:
            status: 200
            body: "ok\n"
        - name: maintenance
          match:
            path:
              prefix: /shop/
          direct_response:
            status: 503
            body: "down for maintenance"
        - name: rest
          backends:
            - cluster: app
        "#,
        &[&app],
    ))
    .start()
    .await;

    let client = HttpClient::h1();
    let reply = client.get(&proxy.url("edge", "/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok\n");
    let reply = client.get(&proxy.url("edge", "/shop/cart")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "down for maintenance");
    assert_eq!(app.requests(), 0, "no request reached the upstream");
    assert_eq!(
        client.get(&proxy.url("edge", "/x")).await.upstream(),
        Some("app")
    );
}

#[tokio::test]
async fn a_redirect_sends_the_exact_location() {
    let [app] = upstreams(["app"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: moved
          match:
            path:
              prefix: /moved/
          redirect:
            host: new.example.com
            path: /landing
            status: 308
        - name: to-https
          redirect:
            scheme: https
            status: 301
        ",
        &[&app],
    ))
    .start()
    .await;

    let reply = get_with_host(&proxy, "www.example.com", "/a/b?x=1&y=2").await;
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        reply.header("location"),
        Some("https://www.example.com/a/b?x=1&y=2")
    );

    let reply = get_with_host(&proxy, "www.example.com", "/moved/page").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.header("location"),
        Some("http://new.example.com/landing")
    );
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn clusters_never_share_upstream_connections_even_for_the_same_host() {
    let [a, b] = upstreams(["a", "b"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: to-a
          match:
            path:
              prefix: /a/
          backends:
            - cluster: a
        - name: to-b
          backends:
            - cluster: b
        ",
        &[&a, &b],
    ))
    .start()
    .await;
    // One client connection, one Host: only the route may decide where each request goes,
    // however the proxy pools its upstream connections.
    let client = HttpClient::h1();
    for i in 0..20 {
        let (path, expected) = if i % 2 == 0 {
            ("/a/x", "a")
        } else {
            ("/b/x", "b")
        };
        let reply = client
            .request(Method::GET, &proxy.url("edge", path))
            .header("host", "shared.example.com")
            .send()
            .await;
        assert_eq!(reply.upstream(), Some(expected), "request {i} to {path}");
    }
    assert_eq!((a.requests(), b.requests()), (10, 10));
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly_over_a_clusters_endpoints() {
    let [one, two] = upstreams(["one", "two"]).await;
    let yaml = meshwork_tests::edge_config(&format!(
        "
        route_tables:
          edge:
            - name: all
              backends:
                - cluster: pair
        clusters:
          - name: pair
            endpoints:
              - {}
              - {}
            protocol: http1
            load_balancer: round_robin
        ",
        one.endpoint(),
        two.endpoint()
    ));
    let proxy = Proxy::with_config(yaml).start().await;
    let client = HttpClient::h1();
    for _ in 0..10 {
        assert_eq!(
            client.get(&proxy.url("edge", "/")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!((one.requests(), two.requests()), (5, 5));
}

#[tokio::test]
async fn an_absolute_form_target_routes_by_its_own_authority() {
    // RFC 9112 section 3.2.2: with an absolute-form target, the Host header is ignored.
    let [api, other] = upstreams(["api", "other"]).await;
    let proxy = Proxy::with_config(edge_routes(
        "
        - name: api
          match:
            host: [api.example.com]
          backends:
            - cluster: api
        - name: rest
          backends:
            - cluster: other
        ",
        &[&api, &other],
    ))
    .start()
    .await;
    let mut conn = meshwork_tests::RawConn::connect(proxy.listener_addr("edge")).await;
    conn.send("GET http://api.example.com/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let response = conn
        .read_response(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(response.header("x-upstream"), Some("api"));
    conn.send("GET http://api.example.com/x HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        .await
        .unwrap();
    let response = conn
        .read_response(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        response.header("x-upstream"),
        Some("api"),
        "routed by the Host header instead of the request target: {response:?}"
    );
}
