//! W3C Trace Context (Level 1 §3) through the proxy, one rule per test: requests sent
//! as exact bytes (header names in any case, fields repeated), the `traceparent` and
//! `tracestate` an upstream receives, and for a few, the parent of the exported server
//! span. A context that breaks a `traceparent` rule restarts the trace (a new trace id,
//! no `tracestate`); one that breaks a `tracestate` rule loses only its `tracestate`.

use std::time::Duration;

use meshwork_tests::{
    Echo, OtlpReceiver, Proxy, RawConn, TraceParent, Upstream, single_cluster_config, tracing_yaml,
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn valid() -> String {
    format!("00-{TRACE}-{PARENT}-01")
}

/// An upstream that echoes requests, behind a proxy propagating W3C and B3 (no span
/// export unless `otlp` names a collector).
struct Traced {
    proxy: Proxy,
    _app: Upstream,
}

impl Traced {
    async fn start(otlp: Option<&OtlpReceiver>) -> Self {
        let app = Upstream::http1().name("app").start().await;
        let tracing = match otlp {
            Some(collector) => tracing_yaml(&collector.endpoint(), 1.0),
            None => "tracing:\n  propagation: [w3c, b3]\n  sampling: 1.0\n".to_owned(),
        };
        let yaml = single_cluster_config(&app.endpoint(), "http1") + &tracing;
        Self {
            proxy: Proxy::with_config(yaml).start().await,
            _app: app,
        }
    }

    /// Sends `GET /` with exactly these header lines; what the upstream received.
    async fn forward(&self, lines: &[&str]) -> Echo {
        let mut request = String::from("GET /tc HTTP/1.1\r\nHost: tc.test\r\n");
        for line in lines {
            request.push_str(line);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let mut conn = RawConn::connect(self.proxy.listener_addr("edge")).await;
        conn.send(&request).await.unwrap();
        let response = conn
            .read_response(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| self.proxy.fail(&format!("{lines:?}: {e}")));
        assert_eq!(response.status, 200, "{lines:?}: {response:?}");
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("not an echo ({e}): {}", response.text()))
    }
}

/// The upstream's `traceparent`, and every `tracestate` field it got.
fn context(echo: &Echo) -> (TraceParent, Vec<String>) {
    let states = echo.headers.get("tracestate").cloned().unwrap_or_default();
    (TraceParent::received(echo), states)
}

/// Checks that the request's context was used: same trace, a new parent id, and the
/// `tracestate` it should have.
fn assert_continued(echo: &Echo, tracestate: &[&str]) {
    let (sent, states) = context(echo);
    assert_eq!(sent.trace_id, TRACE, "the trace continues: {echo:?}");
    assert_ne!(sent.parent_id, PARENT, "the proxy's span is the new parent");
    assert_eq!(states, tracestate, "tracestate fields forwarded");
}

/// Checks that the trace restarted: a new trace id and no `tracestate`.
fn assert_restarted(echo: &Echo) {
    let (sent, states) = context(echo);
    assert_ne!(sent.trace_id, TRACE, "the trace should restart: {echo:?}");
    assert_eq!(
        states,
        Vec::<String>::new(),
        "no tracestate after a restart"
    );
}

#[tokio::test]
async fn a_valid_traceparent_and_tracestate_continue_the_trace() {
    let t = Traced::start(None).await;
    let echo = t
        .forward(&[
            &format!("traceparent: {}", valid()),
            "tracestate: congo=t61rcWkgMzE",
        ])
        .await;
    assert_continued(&echo, &["congo=t61rcWkgMzE"]);
    assert_eq!(TraceParent::received(&echo).flags, "01");
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let t = Traced::start(None).await;
    let echo = t
        .forward(&[&format!("TrAcEpArEnT: {}", valid()), "TRACESTATE: foo=1"])
        .await;
    assert_continued(&echo, &["foo=1"]);
}

#[tokio::test]
async fn misspelled_header_names_are_not_trace_context() {
    let t = Traced::start(None).await;
    let echo = t
        .forward(&[&format!("trace-parent: {}", valid()), "trace-state: foo=1"])
        .await;
    assert_restarted(&echo);
}

#[tokio::test]
async fn two_traceparent_headers_restart_the_trace() {
    let t = Traced::start(None).await;
    let other = format!("00-{}-{PARENT}-01", TRACE.replace('4', "5"));
    let echo = t
        .forward(&[
            &format!("traceparent: {}", valid()),
            &format!("traceparent: {other}"),
            "tracestate: foo=1",
        ])
        .await;
    assert_restarted(&echo);
    assert_ne!(TraceParent::received(&echo).trace_id, other[3..35]);
}

#[tokio::test]
async fn a_version_that_is_not_two_lowercase_hex_digits_restarts_the_trace() {
    let t = Traced::start(None).await;
    for version in [".0", "0.", "0", "000", "0A"] {
        let echo = t
            .forward(&[&format!("traceparent: {version}-{TRACE}-{PARENT}-01")])
            .await;
        assert_restarted(&echo);
    }
}

#[tokio::test]
async fn version_ff_restarts_the_trace() {
    let t = Traced::start(None).await;
    let echo = t
        .forward(&[
            &format!("traceparent: ff-{TRACE}-{PARENT}-01"),
            "tracestate: foo=1",
        ])
        .await;
    assert_restarted(&echo);
}

#[tokio::test]
async fn version_00_with_anything_after_its_flags_restarts_the_trace() {
    let t = Traced::start(None).await;
    for tail in [".", "-what-the-future-will-be-like"] {
        let echo = t
            .forward(&[&format!("traceparent: {}{tail}", valid())])
            .await;
        assert_restarted(&echo);
    }
}

#[tokio::test]
async fn a_higher_version_is_continued_from_its_first_55_characters_and_sent_as_00() {
    let t = Traced::start(None).await;
    for value in [
        format!("cc-{TRACE}-{PARENT}-01"),
        format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
    ] {
        let echo = t
            .forward(&[&format!("traceparent: {value}"), "tracestate: foo=1"])
            .await;
        assert_continued(&echo, &["foo=1"]);
    }
}

#[tokio::test]
async fn a_higher_version_without_a_dash_after_its_flags_restarts_the_trace() {
    let t = Traced::start(None).await;
    let echo = t
        .forward(&[&format!(
            "traceparent: cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"
        )])
        .await;
    assert_restarted(&echo);
}

#[tokio::test]
async fn an_uppercase_or_non_hex_trace_id_restarts_the_trace() {
    let t = Traced::start(None).await;
    for trace in [TRACE.to_uppercase(), format!("{}.", &TRACE[..31])] {
        let echo = t
            .forward(&[&format!("traceparent: 00-{trace}-{PARENT}-01")])
            .await;
        let sent = TraceParent::received(&echo);
        assert_ne!(sent.trace_id, TRACE.to_lowercase(), "{trace}");
    }
}

#[tokio::test]
async fn a_trace_id_of_the_wrong_length_restarts_the_trace() {
    let t = Traced::start(None).await;
    for trace in [format!("{TRACE}3"), TRACE[..31].to_owned()] {
        let echo = t
            .forward(&[&format!("traceparent: 00-{trace}-{PARENT}-01")])
            .await;
        assert_restarted(&echo);
    }
}

#[tokio::test]
async fn an_all_zero_trace_id_restarts_the_trace() {
    let t = Traced::start(None).await;
    let zeros = "0".repeat(32);
    let echo = t
        .forward(&[&format!("traceparent: 00-{zeros}-{PARENT}-01")])
        .await;
    assert_ne!(TraceParent::received(&echo).trace_id, zeros);
}

#[tokio::test]
async fn an_invalid_or_all_zero_parent_id_restarts_the_trace() {
    let t = Traced::start(None).await;
    for parent in [
        "0".repeat(16),
        PARENT.to_uppercase().replace("00F", "10F"),
        format!("{PARENT}7"),
        PARENT[..15].to_owned(),
    ] {
        let echo = t
            .forward(&[&format!("traceparent: 00-{TRACE}-{parent}-01")])
            .await;
        assert_restarted(&echo);
    }
}

#[tokio::test]
async fn trace_flags_that_are_not_two_lowercase_hex_digits_restart_the_trace() {
    let t = Traced::start(None).await;
    for flags in [".0", "0.", "001", "1", "0A"] {
        let echo = t
            .forward(&[&format!("traceparent: 00-{TRACE}-{PARENT}-{flags}")])
            .await;
        assert_restarted(&echo);
    }
}

#[tokio::test]
async fn only_the_sampled_flag_is_forwarded() {
    let t = Traced::start(None).await;
    for (flags, sent) in [("ff", "01"), ("03", "01"), ("02", "00"), ("00", "00")] {
        let echo = t
            .forward(&[&format!("traceparent: 00-{TRACE}-{PARENT}-{flags}")])
            .await;
        assert_continued(&echo, &[]);
        assert_eq!(TraceParent::received(&echo).flags, sent, "flags {flags}");
    }
}

#[tokio::test]
async fn whitespace_around_the_traceparent_is_ignored() {
    let t = Traced::start(None).await;
    for value in [format!(" {}", valid()), format!("\t{}\t ", valid())] {
        let echo = t.forward(&[&format!("traceparent:{value}")]).await;
        assert_continued(&echo, &[]);
    }
}

#[tokio::test]
async fn several_tracestate_headers_are_combined_in_order_and_forwarded_whole() {
    let t = Traced::start(None).await;
    let echo = t
        .forward(&[
            "tracestate: foo=1,bar=2",
            &format!("traceparent: {}", valid()),
            "tracestate: rojo=1,congo=2",
            "tracestate: baz=3",
        ])
        .await;
    assert_continued(&echo, &["foo=1,bar=2,rojo=1,congo=2,baz=3"]);
}

/// `bar01=01,...` with `n` members, split over fields of 10.
fn members(n: usize) -> Vec<String> {
    let all: Vec<String> = (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect();
    all.chunks(10)
        .map(|chunk| format!("tracestate: {}", chunk.join(",")))
        .collect()
}

#[tokio::test]
async fn thirty_two_tracestate_members_are_forwarded() {
    let t = Traced::start(None).await;
    let mut lines = members(32);
    lines.push(format!("traceparent: {}", valid()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let echo = t.forward(&lines).await;
    let all: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
    assert_continued(&echo, &[&all.join(",")]);
}

#[tokio::test]
async fn thirty_three_tracestate_members_are_dropped_and_the_trace_kept() {
    let t = Traced::start(None).await;
    let mut lines = members(33);
    lines.push(format!("traceparent: {}", valid()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let echo = t.forward(&lines).await;
    assert_continued(&echo, &[]);
}

#[tokio::test]
async fn a_tracestate_key_breaking_the_grammar_drops_the_tracestate_only() {
    let t = Traced::start(None).await;
    for state in [
        "foo =1",
        "FOO=1",
        "foo.bar=1",
        "@foo=1,bar=2",
        &format!("{}=1", "z".repeat(257)),
    ] {
        let echo = t
            .forward(&[
                &format!("traceparent: {}", valid()),
                "tracestate: ok=1",
                &format!("tracestate: {state}"),
            ])
            .await;
        assert_continued(&echo, &[]);
    }
}

#[tokio::test]
async fn keys_with_at_signs_and_256_characters_are_forwarded() {
    let t = Traced::start(None).await;
    let long = "z".repeat(256);
    for state in [
        "foo@=1,bar=2",
        "foo@bar@baz=1,bar=2",
        "7tenant@sys=1",
        &format!("{long}=1"),
    ] {
        let echo = t
            .forward(&[
                &format!("traceparent: {}", valid()),
                &format!("tracestate: {state}"),
            ])
            .await;
        assert_continued(&echo, &[state]);
    }
}

#[tokio::test]
async fn a_tracestate_value_breaking_the_grammar_drops_the_tracestate_only() {
    let t = Traced::start(None).await;
    for state in [
        "foo=bar=baz",
        "foo=,bar=3",
        &format!("foo={}", "v".repeat(257)),
    ] {
        let echo = t
            .forward(&[
                &format!("traceparent: {}", valid()),
                &format!("tracestate: {state}"),
            ])
            .await;
        assert_continued(&echo, &[]);
    }
}

#[tokio::test]
async fn whitespace_and_empty_tracestate_members_are_dropped() {
    let t = Traced::start(None).await;
    let traceparent = format!("traceparent: {}", valid());
    let echo = t
        .forward(&[
            &traceparent,
            "tracestate: foo=1 \t , \t bar=2,, \t baz=3",
            "tracestate:",
        ])
        .await;
    assert_continued(&echo, &["foo=1,bar=2,baz=3"]);
    let echo = t
        .forward(&[&traceparent, "tracestate:", "tracestate: ,"])
        .await;
    assert_continued(&echo, &[]);
}

#[tokio::test]
async fn a_tracestate_over_512_characters_loses_whole_entries_large_ones_first() {
    let t = Traced::start(None).await;
    let entry = |name: char, len: usize| format!("{name}={}", "x".repeat(len - 2));
    let small: Vec<String> = "abcde".chars().map(|n| entry(n, 100)).collect();
    let echo = t
        .forward(&[
            &format!("traceparent: {}", valid()),
            &format!("tracestate: {},{}", small[0], entry('z', 200)),
            &format!("tracestate: {}", small[1..].join(",")),
        ])
        .await;
    assert_continued(&echo, &[&small.join(",")]);
}

#[tokio::test]
async fn a_tracestate_without_a_traceparent_is_not_forwarded() {
    let t = Traced::start(None).await;
    let echo = t.forward(&["tracestate: foo=1,bar=2"]).await;
    assert_restarted(&echo);
}

#[tokio::test]
async fn an_ignored_traceparent_leaves_a_b3_context_to_be_continued() {
    let t = Traced::start(None).await;
    let b3_trace = TRACE.replace('4', "6");
    let echo = t
        .forward(&[
            &format!("traceparent: {}", valid()),
            &format!("traceparent: {}", valid()),
            &format!("b3: {b3_trace}-{PARENT}-1"),
        ])
        .await;
    assert_eq!(TraceParent::received(&echo).trace_id, b3_trace);
    assert_eq!(
        echo.header("b3").unwrap(),
        format!("{b3_trace}-{}-1", TraceParent::received(&echo).parent_id)
    );
}

/// The parent of the server span exported for a request with these header lines.
async fn server_span_parent(lines: &[&str]) -> String {
    let collector = OtlpReceiver::start().await;
    let t = Traced::start(Some(&collector)).await;
    let echo = t.forward(lines).await;
    let sent = TraceParent::received(&echo);
    let spans = collector.trace(&sent.trace_id, 2).await;
    let client = spans
        .iter()
        .find(|s| s.span_id == sent.parent_id)
        .unwrap_or_else(|| panic!("the client span {}: {spans:#?}", sent.parent_id));
    let server = spans
        .iter()
        .find(|s| s.span_id == client.parent_span_id)
        .unwrap_or_else(|| panic!("the server span: {spans:#?}"));
    server.parent_span_id.clone()
}

#[tokio::test]
async fn the_exported_server_span_is_a_child_of_a_higher_version_parent() {
    let value = format!("traceparent: cc-{TRACE}-{PARENT}-01-future");
    assert_eq!(server_span_parent(&[&value]).await, PARENT);
}

#[tokio::test]
async fn the_exported_server_span_of_a_restarted_trace_has_no_parent() {
    let twice = format!("traceparent: {}", valid());
    assert_eq!(server_span_parent(&[&twice, &twice]).await, "");
    let upper = format!("traceparent: 00-{}-{PARENT}-01", TRACE.to_uppercase());
    assert_eq!(server_span_parent(&[&upper]).await, "");
}
