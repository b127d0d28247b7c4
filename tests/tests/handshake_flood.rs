//! A flood of failed TLS handshakes is counted whole, by reason, but logged at a bounded
//! rate: the first 10 per listener in each 5-second interval one by one, then one
//! summary line per interval saying how many more failed and why.

use std::time::Duration;

use meshwork_tests::{Proxy, RawConn, TestCa, edge_config, eventually, with_tls};
use tokio::time::Instant;

/// The proxy's bound, as docs/security.md states it: lines per listener and interval.
const BURST: usize = 10;
const INTERVAL: Duration = Duration::from_secs(5);

const FAILURE_LINE: &str = "TLS handshake failed";
const SUMMARY_LINE: &str = "TLS handshake failures not logged one by one";

/// The failures logged one by one, and the `suppressed=` count of each summary line.
fn logged(stderr: &str) -> (usize, Vec<u64>) {
    let failures = stderr.lines().filter(|l| l.contains(FAILURE_LINE)).count();
    let summaries = stderr
        .lines()
        .filter(|l| l.contains(SUMMARY_LINE))
        .map(|l| {
            let count = l
                .split("suppressed=")
                .nth(1)
                .unwrap_or_else(|| panic!("a summary without a count: {l}"));
            let digits: String = count.chars().take_while(char::is_ascii_digit).collect();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("a summary count: {l}"))
        })
        .collect();
    (failures, summaries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_failed_handshakes_are_all_counted_and_logged_at_a_bounded_rate() {
    const FLOOD: usize = 500;
    let ca = TestCa::new("flood");
    let cert = ca.issue("edge").dns("localhost").write();
    let yaml = edge_config(
        "
        route_tables:
          edge:
            - name: hello
              direct_response: { status: 200, body: ok }
        ",
    );
    let proxy = Proxy::with_config(with_tls(&yaml, &cert.cert, &cert.key))
        .start()
        .await;
    let addr = proxy.listener_addr("edge");

    // Plain HTTP to a TLS listener: refused at its first byte, reason `plaintext`.
    let started = Instant::now();
    for _ in 0..FLOOD / 50 {
        let batch = (0..50).map(|_| async move {
            let mut conn = RawConn::connect(addr).await;
            let _ = conn
                .send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            conn.wait_closed(Duration::from_secs(5)).await
        });
        for closed in futures_util::future::join_all(batch).await {
            assert!(closed.is_some(), "a plaintext client was not closed");
        }
    }
    let failures = "meshwork_tls_handshake_failures_total";
    let labels = [("listener", "edge"), ("reason", "plaintext")];
    proxy
        .scrape_when(&format!("{FLOOD} handshake failures"), |s| {
            s.get(failures, &labels) == Some(FLOOD as f64)
        })
        .await;
    let flood_took = started.elapsed();

    // Every failure is either logged or in the summary of its interval, written when
    // the interval ends.
    eventually(
        "every failure logged or summarized",
        INTERVAL * 2 + Duration::from_secs(5),
        || async {
            let (one_by_one, summaries) = logged(&proxy.stderr_so_far());
            one_by_one + summaries.iter().sum::<u64>() as usize >= FLOOD
        },
    )
    .await;
    let (one_by_one, summaries) = logged(&proxy.stderr_so_far());
    let intervals = flood_took.as_secs_f64() / INTERVAL.as_secs_f64();
    let intervals = intervals.ceil() as usize + 1;
    assert!(
        one_by_one <= BURST * intervals && summaries.len() <= intervals,
        "{one_by_one} failure lines and {} summaries for a flood of {flood_took:?}",
        summaries.len()
    );
    assert_eq!(
        one_by_one + summaries.iter().sum::<u64>() as usize,
        FLOOD,
        "summaries {summaries:?}"
    );
    let stderr = proxy.stderr_so_far();
    let summary = stderr.lines().find(|l| l.contains(SUMMARY_LINE)).unwrap();
    assert!(
        summary.contains("listener=edge") && summary.contains("plaintext="),
        "the summary names the listener and the reasons: {summary}"
    );
}
