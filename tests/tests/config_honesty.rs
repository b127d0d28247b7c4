//! What `check` accepts, `run` runs: an `https://` OTLP collector gets its spans over
//! TLS (verified against `tls.ca`, or the system's trust store), and a reload that
//! changes a field read only at startup says so, in the log and in `/config`, instead
//! of showing the new value while running the old one.

use std::time::Duration;

use http::Method;
use meshwork_tests::{
    HttpClient, OtlpReceiver, Proxy, TestCa, TraceParent, Upstream, eventually, meshwork_in,
    single_cluster_config,
};

/// A proxy sending everything to `app`, tracing every request to `collector` with the
/// `otlp` section's extra lines (`tls: ...`), indented under `otlp:`.
fn traced_yaml(app: &Upstream, endpoint: &str, otlp_extra: &str) -> String {
    single_cluster_config(&app.endpoint(), "http1")
        + &format!("tracing:\n  sampling: 1.0\n  otlp:\n    endpoint: {endpoint}\n{otlp_extra}")
}

#[tokio::test]
async fn spans_reach_an_https_collector_verified_against_the_configured_ca() {
    let ca = TestCa::new("collector");
    let certificate = ca.issue("collector").dns("localhost").write();
    let collector = OtlpReceiver::start_tls(&certificate).await;
    let app = Upstream::http1().name("app").start().await;
    let yaml = traced_yaml(
        &app,
        &collector.endpoint(),
        &format!("    tls: {{ ca: {} }}\n", ca.ca_path().display()),
    );

    // `check` and `run` agree: the file is valid, and the proxy runs it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("traced.yaml"), &yaml).unwrap();
    let checked = meshwork_in(
        Some(dir.path()),
        ["check", "--read-certificates", "traced.yaml"],
    )
    .await;
    assert!(checked.success(), "{}", checked.describe());
    let proxy = Proxy::with_config(yaml).start().await;

    let echo = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/over-tls"))
        .send()
        .await
        .echo();
    let sent = TraceParent::received(&echo);
    let spans = collector.trace(&sent.trace_id, 2).await;
    assert_eq!(spans[0].attr("url.path"), "/over-tls");
    let scrape = proxy
        .scrape_when("the export counted", |s| {
            s.get_or_zero("meshwork_trace_spans_exported_total", &[]) >= 2.0
        })
        .await;
    assert_eq!(
        scrape.get_or_zero("meshwork_trace_export_failures_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn an_https_collector_the_trust_store_does_not_vouch_for_gets_no_spans_and_a_warning() {
    let ca = TestCa::new("collector");
    let certificate = ca.issue("collector").dns("localhost").write();
    let collector = OtlpReceiver::start_tls(&certificate).await;
    let app = Upstream::http1().name("app").start().await;
    // Without `tls.ca` the system's trust store decides; here it is another CA (through
    // SSL_CERT_FILE), so the collector's certificate is not trusted.
    let elsewhere = TestCa::new("elsewhere");
    let proxy = Proxy::with_config(traced_yaml(&app, &collector.endpoint(), ""))
        .env("SSL_CERT_FILE", &elsewhere.ca_path().display().to_string())
        .start()
        .await;
    HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/x"))
        .send()
        .await
        .echo();
    proxy
        .scrape_when("a failed export", |s| {
            s.get_or_zero("meshwork_trace_export_failures_total", &[]) >= 1.0
        })
        .await;
    eventually(
        "the warning naming the handshake failure",
        Duration::from_secs(5),
        || async {
            proxy
                .stderr_so_far()
                .contains("TLS handshake with the OTLP collector failed; spans are dropped")
        },
    )
    .await;
    assert!(
        proxy.stderr_so_far().contains("reason=\"unknown-ca\""),
        "{}",
        proxy.stderr_so_far()
    );
    assert!(collector.spans().is_empty());
    assert!(
        collector
            .refused()
            .iter()
            .any(|r| r.starts_with("TLS handshake")),
        "the collector saw the proxy refuse its certificate: {:?}",
        collector.refused()
    );
}

const STARTED: &str = "version: 1
node: { id: before }
runtime: { worker_threads: 1 }
admin:
  address: 127.0.0.1:0
listeners:
  - { name: edge, address: 127.0.0.1:0, route_table: edge }
route_tables:
  edge:
    - { name: all, direct_response: { status: 200, body: \"v1\" } }
";

#[tokio::test]
async fn a_reload_changing_startup_only_fields_says_they_wait_for_a_restart() {
    let mut proxy = Proxy::with_config(STARTED).start().await;
    let admin = proxy.admin_addr();
    let changed = STARTED
        .replace(
            "node: { id: before }",
            "node: { id: after, labels: { zone: eu } }",
        )
        .replace("worker_threads: 1", "worker_threads: 2")
        .replace(
            "  address: 127.0.0.1:0\nlisteners",
            "  address: 127.0.0.1:19901\nlisteners",
        )
        .replace("\"v1\"", "\"v2\"");
    proxy.reload(&changed).await;

    // Everything else is applied.
    let reply = HttpClient::h1()
        .request(Method::GET, &proxy.url("edge", "/"))
        .send()
        .await;
    assert_eq!(reply.text(), "v2");
    // The startup-only fields are named in the log, with both values...
    let expected = [
        ("node.id", "before", "after"),
        ("node.labels", "{}", r#"{"zone":"eu"}"#),
        ("runtime.worker_threads", "1", "2"),
        ("admin.address", "127.0.0.1:0", "127.0.0.1:19901"),
    ];
    eventually("the restart warnings", Duration::from_secs(5), || async {
        proxy
            .stderr_so_far()
            .matches("needs a restart; still running the old value")
            .count()
            >= expected.len()
    })
    .await;
    let log = proxy.stderr_so_far();
    for (field, running, configured) in expected {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains(&format!("field=\"{field}\""))
                && l.contains(&format!("running={running}"))
                && l.contains(&format!("configured={configured}"))),
            "no warning for {field}:\n{log}"
        );
    }
    // ...and in /config, next to the config that shows the new values.
    let document = proxy.config_document().await;
    let pending: Vec<(String, String, String)> = document["pending_restart"]
        .as_array()
        .unwrap_or_else(|| panic!("no pending_restart list: {document}"))
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (text("field"), text("running"), text("configured"))
        })
        .collect();
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(f, r, c)| (f.to_string(), r.to_string(), c.to_string()))
        .collect();
    assert_eq!(pending, want);
    assert_eq!(
        proxy.admin_addr(),
        admin,
        "the admin server stays where it was"
    );

    // Back to what runs: nothing waits any more.
    proxy.reload(STARTED).await;
    let document = proxy.config_document().await;
    assert_eq!(document["pending_restart"], serde_json::json!([]));
}
