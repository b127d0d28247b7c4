//! What the proxy adds, keeps and strips when forwarding: `x-forwarded-*`,
//! `x-request-id`, hop-by-hop headers, and `Host`.

use http::{Method, StatusCode};
use meshwork_tests::{HttpClient, Proxy, Upstream, single_cluster_config};

async fn proxy_to(upstream: &Upstream) -> Proxy {
    Proxy::with_config(single_cluster_config(
        &upstream.endpoint(),
        upstream.cluster_protocol(),
    ))
    .start()
    .await
}

#[tokio::test]
async fn x_forwarded_for_is_set_to_the_client_ip() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1().get(&proxy.url("edge", "/")).await.echo();
    assert_eq!(echo.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn x_forwarded_for_is_appended_to_what_the_client_sent() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
        .send()
        .await
        .echo();
    // One combined header or one header per hop read the same; compare the joined list.
    assert_eq!(
        echo.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 10.0.0.1, 127.0.0.1")
    );
}

/// Several `x-forwarded-for` lines reach the upstream as one list, every hop the client
/// named kept in order and this proxy's last: none dropped, nothing to put before it.
#[tokio::test]
async fn x_forwarded_for_lines_are_folded_into_one_list() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-for", "10.0.0.1, 10.0.0.2")
        .send()
        .await
        .echo();
    assert_eq!(
        echo.headers.get("x-forwarded-for"),
        Some(&vec![
            "203.0.113.7, 10.0.0.1, 10.0.0.2, 127.0.0.1".to_owned()
        ])
    );
}

#[tokio::test]
async fn x_forwarded_proto_says_http_whatever_the_client_claims() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    let echo = client.get(&proxy.url("edge", "/")).await.echo();
    assert_eq!(
        echo.headers.get("x-forwarded-proto"),
        Some(&vec!["http".to_owned()])
    );
    let echo = client
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .echo();
    assert_eq!(
        echo.headers.get("x-forwarded-proto"),
        Some(&vec!["http".to_owned()])
    );
}

#[tokio::test]
async fn a_request_id_is_generated_as_a_uuid_when_absent() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let echo = client.get(&proxy.url("edge", "/")).await.echo();
        let id = echo
            .header("x-request-id")
            .expect("an x-request-id upstream");
        uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id:?} is not a UUID: {e}"));
        assert!(
            !seen.contains(&id),
            "request ids repeat: {seen:?} then {id}"
        );
        seen.push(id);
    }
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_kept() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .echo();
    assert_eq!(
        echo.headers.get("x-request-id"),
        Some(&vec!["trace-me-42".to_owned()])
    );
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("connection", "keep-alive, x-private-a")
        .header("connection", "x-private-b")
        .header("x-private-a", "1")
        .header("x-private-b", "2")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("te", "gzip")
        .header("trailer", "x-checksum")
        .header("upgrade", "foo/1")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .echo();
    for name in [
        "connection",
        "x-private-a",
        "x-private-b",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !echo.has_header(name),
            "{name} reached the upstream: {echo:?}"
        );
    }
    assert_eq!(echo.header("x-end-to-end").as_deref(), Some("kept"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_returned() {
    let app = Upstream::http1()
        .name("app")
        .response_header("connection", "x-upstream-private")
        .response_header("x-upstream-private", "1")
        .response_header("keep-alive", "timeout=5")
        .response_header("proxy-authenticate", "Basic realm=\"up\"")
        .response_header("x-end-to-end", "kept")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    for name in ["x-upstream-private", "keep-alive", "proxy-authenticate"] {
        assert!(
            reply.header(name).is_none(),
            "{name} came back: {:?}",
            reply.headers
        );
    }
    assert_eq!(reply.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn te_trailers_is_forwarded_to_an_http2_upstream() {
    let app = Upstream::h2c().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("te", "trailers")
        .send()
        .await
        .echo();
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.header("te").as_deref(), Some("trailers"));
}

#[tokio::test]
async fn the_host_header_reaches_an_http1_upstream_unchanged() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("host", "shop.example.com:8080")
        .send()
        .await
        .echo();
    assert_eq!(
        echo.headers.get("host"),
        Some(&vec!["shop.example.com:8080".to_owned()])
    );
}

#[tokio::test]
async fn the_host_becomes_the_authority_at_an_http2_upstream() {
    let app = Upstream::h2c().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .header("host", "shop.example.com")
        .send()
        .await
        .echo();
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.authority.as_deref(), Some("shop.example.com"));
}

#[tokio::test]
async fn an_upstream_error_status_is_passed_through_untouched() {
    let app = Upstream::http1()
        .name("app")
        .status("/unavailable", 503)
        .status("/missing", 404)
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    for (path, status) in [
        ("/unavailable", StatusCode::SERVICE_UNAVAILABLE),
        ("/missing", StatusCode::NOT_FOUND),
    ] {
        let reply = client.get(&proxy.url("edge", path)).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.upstream(), Some("app"));
        assert_eq!(
            reply.error_kind(),
            None,
            "the upstream's answer, not the proxy's"
        );
    }
}

#[tokio::test]
async fn repeated_response_headers_come_back_separately() {
    let app = Upstream::http1()
        .name("app")
        .response_header("set-cookie", "a=1; Path=/")
        .response_header("set-cookie", "b=2; Path=/; HttpOnly")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(
        reply.header_all("set-cookie"),
        ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    );
}

#[tokio::test]
async fn percent_encoded_paths_are_forwarded_normalized_and_queries_verbatim() {
    let app = Upstream::http1().name("app").start().await;
    let proxy = proxy_to(&app).await;
    let echo = HttpClient::h1()
        .get(&proxy.url("edge", "/a%20b/c%3bd/%7Euser?x=%2F&y=1+2&z"))
        .await
        .echo();
    // Unreserved characters decoded, other hex uppercased (docs/security.md "Paths").
    assert_eq!(echo.path, "/a%20b/c%3Bd/~user");
    assert_eq!(echo.query.as_deref(), Some("x=%2F&y=1+2&z"));
}

#[tokio::test]
async fn a_head_request_gets_the_headers_without_a_body() {
    let app = Upstream::http1()
        .name("app")
        .route("/doc", "hello")
        .start()
        .await;
    let proxy = proxy_to(&app).await;
    let client = HttpClient::h1();
    let reply = client
        .request(Method::HEAD, &proxy.url("edge", "/doc"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let length = reply.header("content-length");
    assert!(
        length.is_none() || length == Some("5"),
        "HEAD announces the GET's length or none, not {length:?}"
    );
    // The connection is still in sync for the next request.
    let reply = client.get(&proxy.url("edge", "/doc")).await;
    assert_eq!(reply.text(), "hello");
}
