//! Distributed tracing: spans received by an OTLP/HTTP collector in the test, trace
//! context propagated W3C and B3, head sampling, and a dead collector costing nothing.

use std::time::Duration;

use http::{Method, StatusCode};
use meshwork_tests::yaml::TRACING_SERVICE_NAME;
use meshwork_tests::{
    AccessLogFile, B3, Echo, ExportedSpan, HttpClient, OtlpReceiver, Proxy, SpanKind, SpanStatus,
    TraceParent, Upstream, dead_endpoint, random_span_id, random_trace_id, single_cluster_config,
    tracing_yaml, within,
};
use serde_json::json;

/// A proxy sending everything (route `all`) to `app` (cluster `app`), tracing with
/// `sampling` to `collector`, plus `extra` top-level config.
async fn traced_proxy(app: &Upstream, collector: &str, sampling: f64, extra: &str) -> Proxy {
    let yaml = single_cluster_config(&app.endpoint(), "http1")
        + &tracing_yaml(collector, sampling)
        + extra;
    Proxy::with_config(yaml).start().await
}

async fn echo_app() -> Upstream {
    Upstream::http1()
        .name("app")
        .status("/unavailable", 503)
        .start()
        .await
}

/// `GET path` with `headers`; the upstream's echo of it.
async fn get_echo(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Echo {
    let mut request = HttpClient::h1().request(Method::GET, &proxy.url("edge", path));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.echo()
}

/// The server span and the single client span of a two-span trace, checked to be
/// linked: same trace, the client a child of the server, both from our service.
fn server_and_client(spans: &[ExportedSpan]) -> (&ExportedSpan, &ExportedSpan) {
    let [server, client] = spans else {
        panic!("expected a server and a client span: {spans:#?}");
    };
    assert_eq!(
        (server.kind, client.kind),
        (SpanKind::Server, SpanKind::Client)
    );
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(client.parent_span_id, server.span_id);
    for span in spans {
        assert_eq!(span.resource["service.name"], TRACING_SERVICE_NAME);
    }
    (server, client)
}

#[tokio::test]
async fn a_request_exports_a_server_span_and_a_client_span_with_http_and_mesh_attributes() {
    let collector = OtlpReceiver::start().await;
    let app = echo_app().await;
    let proxy = traced_proxy(&app, &collector.endpoint(), 1.0, "").await;
    let echo = get_echo(&proxy, "/hello?x=1", &[]).await;
    let sent = TraceParent::received(&echo);
    assert_eq!(sent.flags, "01");

    let spans = collector.trace(&sent.trace_id, 2).await;
    let (server, client) = server_and_client(&spans);
    assert_eq!(
        server.parent_span_id, "",
        "a new trace has a root server span"
    );
    assert_eq!(
        sent.parent_id, client.span_id,
        "the upstream's parent is the client span"
    );
    let request_id = echo.header("x-request-id").expect("an x-request-id");
    for (key, value) in [
        ("http.request.method", json!("GET")),
        ("url.path", json!("/hello")),
        ("http.response.status_code", json!(200)),
        ("meshwork.listener", json!("edge")),
        ("meshwork.route", json!("all")),
        ("meshwork.request_id", json!(request_id)),
    ] {
        assert_eq!(server.attr(key), &value, "server span {key}: {server:#?}");
    }
    for (key, value) in [
        ("meshwork.cluster", json!("app")),
        ("meshwork.endpoint", json!(app.endpoint())),
        ("http.response.status_code", json!(200)),
    ] {
        assert_eq!(client.attr(key), &value, "client span {key}: {client:#?}");
    }
    assert_eq!(
        (server.status, client.status),
        (SpanStatus::Unset, SpanStatus::Unset)
    );
}

#[tokio::test]
async fn an_upstream_5xx_marks_the_server_and_client_spans_as_errors() {
    let collector = OtlpReceiver::start().await;
    let app = echo_app().await;
    let proxy = traced_proxy(&app, &collector.endpoint(), 1.0, "").await;
    let request_id = format!("rid-{}", random_trace_id());
    let reply = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/unavailable"))
        .header("x-request-id", &request_id)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    let spans = collector
        .spans_when("the server span of the 503", |spans| {
            spans
                .iter()
                .any(|s| s.attr("meshwork.request_id") == request_id.as_str())
        })
        .await;
    let server = spans
        .iter()
        .find(|s| s.attr("meshwork.request_id") == request_id.as_str())
        .unwrap();
    let spans = collector.trace(&server.trace_id, 2).await;
    let (server, client) = server_and_client(&spans);
    for span in [server, client] {
        assert_eq!(
            span.attr("http.response.status_code"),
            &json!(503),
            "{span:#?}"
        );
        assert_eq!(span.status, SpanStatus::Error, "{span:#?}");
    }
}

#[tokio::test]
async fn a_w3c_parent_keeps_its_trace_id_and_the_upstream_gets_the_client_span_as_parent() {
    let collector = OtlpReceiver::start().await;
    let app = echo_app().await;
    let proxy = traced_proxy(&app, &collector.endpoint(), 1.0, "").await;
    let (trace_id, parent_id) = (random_trace_id(), random_span_id());
    let traceparent = TraceParent::header(&trace_id, &parent_id, true);
    let echo = get_echo(
        &proxy,
        "/w3c",
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=opaque"),
        ],
    )
    .await;
    let sent = TraceParent::received(&echo);
    assert_eq!(
        (sent.trace_id.as_str(), sent.flags.as_str()),
        (trace_id.as_str(), "01")
    );
    assert_eq!(echo.header("tracestate").as_deref(), Some("vendor=opaque"));

    let spans = collector.trace(&trace_id, 2).await;
    let (server, client) = server_and_client(&spans);
    assert_eq!(server.parent_span_id, parent_id);
    assert_eq!(sent.parent_id, client.span_id);
}

/// Sends a request carrying B3 `headers` for `trace_id` (as sent) and `span_id`, and
/// checks that it leaves with W3C, single B3 and multi B3 all naming `expected_trace`
/// and the client span, and that the server span's parent is `span_id`.
async fn assert_b3_in_every_format_out(
    headers: &[(&str, &str)],
    span_id: &str,
    expected_trace: &str,
) {
    let collector = OtlpReceiver::start().await;
    let app = echo_app().await;
    let proxy = traced_proxy(&app, &collector.endpoint(), 1.0, "").await;
    let echo = get_echo(&proxy, "/b3", headers).await;
    let sent = TraceParent::received(&echo);
    assert_eq!(
        (sent.trace_id.as_str(), sent.flags.as_str()),
        (expected_trace, "01")
    );
    let expected_b3 = B3 {
        trace_id: expected_trace.to_owned(),
        span_id: sent.parent_id.clone(),
        sampled: Some("1".to_owned()),
    };
    assert_eq!(B3::received_single(&echo), expected_b3, "b3 header");
    assert_eq!(B3::received_multi(&echo), expected_b3, "X-B3-* headers");

    let spans = collector.trace(expected_trace, 2).await;
    let (server, client) = server_and_client(&spans);
    assert_eq!(server.parent_span_id, span_id);
    assert_eq!(sent.parent_id, client.span_id);
}

#[tokio::test]
async fn a_b3_single_header_request_leaves_with_traceparent_b3_and_x_b3_headers() {
    let (trace_id, span_id) = (random_trace_id(), random_span_id());
    let b3 = B3::single_header(&trace_id, &span_id);
    assert_b3_in_every_format_out(&[("b3", &b3)], &span_id, &trace_id).await;
}

#[tokio::test]
async fn b3_multi_headers_are_read_and_leave_in_every_format() {
    let (trace_id, span_id) = (random_trace_id(), random_span_id());
    let headers = [
        ("X-B3-TraceId", trace_id.as_str()),
        ("X-B3-SpanId", span_id.as_str()),
        ("X-B3-Sampled", "1"),
    ];
    assert_b3_in_every_format_out(&headers, &span_id, &trace_id).await;
}

#[tokio::test]
async fn a_64_bit_b3_trace_id_is_left_padded_with_zeros_to_128_bits() {
    let (short, span_id) = (random_span_id(), random_span_id());
    let b3 = B3::single_header(&short, &span_id);
    let padded = format!("{}{short}", "0".repeat(16));
    assert_b3_in_every_format_out(&[("b3", &b3)], &span_id, &padded).await;
}

#[tokio::test]
async fn with_sampling_zero_only_traces_whose_parent_is_sampled_are_exported() {
    let collector = OtlpReceiver::start().await;
    let app = echo_app().await;
    let proxy = traced_proxy(&app, &collector.endpoint(), 0.0, "").await;
    let unsampled = TraceParent::received(&get_echo(&proxy, "/new", &[]).await);
    assert_eq!(
        unsampled.flags, "00",
        "a new unsampled trace still propagates"
    );

    let (trace_id, parent_id) = (random_trace_id(), random_span_id());
    let traceparent = TraceParent::header(&trace_id, &parent_id, true);
    let sent =
        TraceParent::received(&get_echo(&proxy, "/child", &[("traceparent", &traceparent)]).await);
    assert_eq!(
        (sent.trace_id.as_str(), sent.flags.as_str()),
        (trace_id.as_str(), "01")
    );
    collector.trace(&trace_id, 2).await;
    // Spans are exported in the order they end: the earlier request's would be here by now.
    let leaked: Vec<ExportedSpan> = collector
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == unsampled.trace_id)
        .collect();
    assert_eq!(leaked, Vec::new(), "spans of the unsampled trace");
}

#[tokio::test]
async fn the_access_log_carries_the_trace_id() {
    let collector = OtlpReceiver::start().await;
    let app = echo_app().await;
    let log = AccessLogFile::json();
    let proxy = traced_proxy(&app, &collector.endpoint(), 1.0, &log.yaml()).await;
    let sent = TraceParent::received(&get_echo(&proxy, "/logged", &[]).await);
    let lines = log.json_lines(1).await;
    assert_eq!(lines[0]["trace_id"], json!(sent.trace_id), "{}", lines[0]);
}

#[tokio::test]
async fn a_dead_collector_neither_fails_nor_stalls_requests_and_its_losses_are_counted() {
    let app = echo_app().await;
    let dead_collector = format!("http://{}/v1/traces", dead_endpoint());
    let proxy = traced_proxy(&app, &dead_collector, 1.0, "").await;
    let client = HttpClient::h1();
    within(
        "200 requests with a dead collector",
        Duration::from_secs(30),
        async {
            for i in 0..200 {
                let reply = client
                    .request(Method::GET, &proxy.url("edge", &format!("/r{i}")))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "request {i}");
            }
        },
    )
    .await;
    let (dropped, failures) = (
        "meshwork_trace_spans_dropped_total",
        "meshwork_trace_export_failures_total",
    );
    let scrape = proxy
        .scrape_when("failed exports and dropped spans", |s| {
            s.get_or_zero(dropped, &[]) > 0.0 && s.get_or_zero(failures, &[]) > 0.0
        })
        .await;
    assert_eq!(
        scrape.get("meshwork_trace_spans_exported_total", &[]),
        Some(0.0)
    );
}
