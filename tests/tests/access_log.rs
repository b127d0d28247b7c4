//! The access log: one line per request, JSON or text, with exact fields.

use std::time::Duration;

use http::{Method, StatusCode};
use meshwork_tests::access_log::is_rfc3339_millis;
use meshwork_tests::{API_ROUTE, AccessLogFile, HttpClient, Proxy, Reply, Upstream, edge_routes};
use serde_json::{Value, json};

const UPLOAD_BYTES: usize = 1000;

/// A proxy routing `/api/` to upstream `app` (echo; `/api/upload` streams the body back)
/// and writing `log`.
async fn proxy_logging_to(log: &AccessLogFile) -> (Proxy, Upstream) {
    let app = Upstream::http1()
        .name("app")
        .echo_body("/api/upload")
        .start()
        .await;
    let yaml = edge_routes(API_ROUTE, &[&app]) + &log.yaml();
    (Proxy::with_config(yaml).start().await, app)
}

/// The request id the upstream saw.
fn request_id(reply: &Reply) -> String {
    reply
        .echo()
        .header("x-request-id")
        .expect("the upstream got an x-request-id")
}

/// The line's `request_id`, which the proxy generated (a UUID).
fn generated_id(line: &Value) -> String {
    let id = line["request_id"].as_str().unwrap_or_default();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "request_id is not a UUID: {line}"
    );
    id.to_owned()
}

/// Checks the line's `time` and `duration_ms` and removes them: the rest is exact.
fn without_timing(mut line: Value) -> Value {
    let object = line.as_object_mut().expect("a JSON object");
    let time = object.remove("time").unwrap_or_default();
    assert!(
        is_rfc3339_millis(time.as_str().unwrap_or_default()),
        "time {time}"
    );
    let duration = object.remove("duration_ms").unwrap_or_default();
    assert!(
        duration.as_f64().is_some_and(|ms| ms >= 0.0),
        "duration_ms {duration}"
    );
    line
}

#[tokio::test]
async fn json_lines_carry_route_upstream_bytes_request_id_and_error_exactly() {
    let log = AccessLogFile::json();
    let (proxy, app) = proxy_logging_to(&log).await;
    let authority = proxy.listener_addr("edge").to_string();
    let echo = HttpClient::h1()
        .get(&proxy.url("edge", "/api/echo?q=1&r=two"))
        .await;
    let upload = HttpClient::h1()
        .request(Method::POST, &proxy.url("edge", "/api/upload"))
        .body(vec![b'u'; UPLOAD_BYTES])
        .send()
        .await;
    let h2 = HttpClient::h2c()
        .request(Method::GET, &proxy.url("edge", "/api/h2"))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await;
    let missing = HttpClient::h1().get(&proxy.url("edge", "/elsewhere")).await;
    assert_eq!(
        (upload.body.len(), missing.status),
        (UPLOAD_BYTES, StatusCode::NOT_FOUND)
    );

    let lines = log.json_lines(4).await;
    let line = |path: &str| {
        let found = lines.iter().find(|l| l["path"] == path);
        without_timing(
            found
                .unwrap_or_else(|| panic!("no line for {path}: {lines:#?}"))
                .clone(),
        )
    };
    // What a routed GET's line says; each check overrides what differs.
    let routed = |overrides: Value| {
        let mut line = json!({
            "listener": "edge", "route": "api", "method": "GET", "authority": authority,
            "protocol": "HTTP/1.1", "status": 200, "upstream_cluster": "app",
            "upstream_endpoint": app.endpoint(), "attempts": 1, "request_bytes": 0,
            "trace_id": null, "peer_identity": null, "error": null, "hedge": null,
        });
        let fields = line.as_object_mut().unwrap();
        fields.extend(overrides.as_object().unwrap().clone());
        line
    };
    let path = "/api/echo?q=1&r=two";
    assert_eq!(
        line(path),
        routed(
            json!({"path": path, "response_bytes": echo.body.len(), "request_id": request_id(&echo)})
        )
    );
    let upload_line = line("/api/upload");
    assert_eq!(
        upload_line,
        routed(json!({
            "method": "POST", "path": "/api/upload", "request_bytes": UPLOAD_BYTES,
            "response_bytes": UPLOAD_BYTES, "request_id": generated_id(&upload_line),
        }))
    );
    assert_eq!(request_id(&h2), "client-chosen-id");
    assert_eq!(
        line("/api/h2"),
        routed(json!({
            "path": "/api/h2", "protocol": "HTTP/2.0", "response_bytes": h2.body.len(),
            "request_id": "client-chosen-id",
        }))
    );
    let missing_line = line("/elsewhere");
    assert_eq!(
        missing_line,
        routed(json!({
            "path": "/elsewhere", "route": null, "status": 404, "upstream_cluster": null,
            "upstream_endpoint": null, "attempts": 0, "response_bytes": missing.body.len(),
            "request_id": generated_id(&missing_line), "error": "no-route",
        }))
    );
}

/// Splits a text line into its quoted request line and its other fields, with the time
/// and the duration checked and the duration replaced by `MS`.
fn text_fields(line: &str) -> (&str, String) {
    let (time, rest) = line
        .strip_prefix('[')
        .and_then(|l| l.split_once("] \""))
        .unwrap_or_else(|| panic!("no [time] \"…: {line}"));
    let (request, rest) = rest
        .split_once("\" ")
        .unwrap_or_else(|| panic!("no closing quote: {line}"));
    let mut fields: Vec<&str> = rest.split(' ').collect();
    assert!(
        fields
            .get(4)
            .is_some_and(|ms| ms.parse::<f64>().is_ok_and(|ms| ms >= 0.0)),
        "no duration in ms: {line}"
    );
    fields[4] = "MS";
    assert!(is_rfc3339_millis(time), "{line}");
    (request, fields.join(" "))
}

#[tokio::test]
async fn text_lines_put_every_field_in_its_place_with_dashes_for_missing_ones() {
    let log = AccessLogFile::text();
    let (proxy, app) = proxy_logging_to(&log).await;
    let authority = proxy.listener_addr("edge").to_string();
    let echo = HttpClient::h1()
        .get(&proxy.url("edge", "/api/echo?q=1"))
        .await;
    let missing = HttpClient::h1().get(&proxy.url("edge", "/elsewhere")).await;
    let lines = log.lines(2).await;
    let (unrouted, routed): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.contains("/elsewhere "));

    let (request, fields) = text_fields(routed[0]);
    assert_eq!(request, format!("GET {authority}/api/echo?q=1 HTTP/1.1"));
    let (bytes, endpoint, id) = (echo.body.len(), app.endpoint(), request_id(&echo));
    assert_eq!(
        fields,
        format!("200 - 0 {bytes} MS edge api app {endpoint} 1 {id} -")
    );

    let (request, fields) = text_fields(unrouted[0]);
    assert_eq!(request, format!("GET {authority}/elsewhere HTTP/1.1"));
    let (fields, peer) = fields.rsplit_once(' ').unwrap();
    assert_eq!(peer, "-", "no peer identity on a plaintext listener");
    let (fields, id) = fields.rsplit_once(' ').unwrap();
    let bytes = missing.body.len();
    assert_eq!(fields, format!("404 no-route 0 {bytes} MS edge - - - 0"));
    assert!(uuid::Uuid::parse_str(id).is_ok(), "request id {id:?}");
}

#[tokio::test]
async fn lines_still_in_memory_are_written_when_the_proxy_stops() {
    let log = AccessLogFile::json();
    let (mut proxy, _app) = proxy_logging_to(&log).await;
    let client = HttpClient::h1();
    for i in 0..20 {
        let reply = client.get(&proxy.url("edge", &format!("/api/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // Lines are batched in memory for up to 200ms; stopping right away must not lose them.
    proxy.sigterm();
    assert!(proxy.wait_exit(Duration::from_secs(10)).await.success());
    let lines = log.lines_so_far();
    assert_eq!(lines.len(), 20, "{lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["path"], format!("/api/{i}"));
    }
}
