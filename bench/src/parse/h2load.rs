//! h2load: its text summary (`finished in`, `requests:`, `status codes:` lines).

use super::ParseError;

/// What one h2load run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct H2loadSummary {
    pub requests_per_sec: f64,
    pub succeeded: u64,
    /// Failed, errored and timed-out requests plus non-2xx responses.
    pub errors: u64,
}

/// The number just before `label` in `text` (`617280 succeeded` -> 617280).
fn count_before(text: &str, label: &str) -> Option<u64> {
    text.split(',')
        .map(str::trim)
        .find_map(|part| part.strip_suffix(label))
        .and_then(|n| n.trim().rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Reads h2load's summary.
///
/// # Errors
/// When the `finished in` or `requests:` line is missing (h2load could not connect).
pub fn parse(stdout: &str) -> Result<H2loadSummary, ParseError> {
    let err = |what: String| ParseError {
        tool: "h2load",
        what,
    };
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .ok_or_else(|| err(format!("no `{prefix}` line")))
    };
    let finished = line("finished in")?;
    let requests_per_sec = finished
        .split(',')
        .find_map(|p| p.trim().strip_suffix(" req/s"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| err(format!("no req/s in {finished:?}")))?;
    let requests = line("requests:")?;
    let count = |label: &str| {
        count_before(requests, label).ok_or_else(|| err(format!("no `{label}` in {requests:?}")))
    };
    let succeeded = count(" succeeded")?;
    let mut errors = count(" failed")? + count(" errored")? + count(" timeout")?;
    if let Ok(status) = line("status codes:") {
        for class in [" 3xx", " 4xx", " 5xx"] {
            errors += count_before(status, class).unwrap_or(0);
        }
    }
    Ok(H2loadSummary {
        requests_per_sec,
        succeeded,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 1s warm-up time and 6s main duration for each client
Warm-up started for thread #0.
progress: 10% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 7.00s, 98765.43 req/s, 5.12MB/s
requests: 592593 total, 592693 started, 592593 done, 592590 succeeded, 3 failed, 0 errored, 0 timeout
status codes: 592590 2xx, 0 3xx, 1 4xx, 0 5xx
traffic: 30.72MB (32212254) total, 1.13MB (1185186) headers (space savings 90.12%), 72.34MB (75851904) data
";

    #[test]
    fn reads_rate_successes_and_errors() {
        let s = parse(OUTPUT).unwrap();
        assert_eq!(s.requests_per_sec, 98765.43);
        assert_eq!(s.succeeded, 592_590);
        assert_eq!(s.errors, 4);
    }

    #[test]
    fn output_of_a_failed_connection_is_an_error() {
        let e = parse("starting benchmark...\nconnect error\n").unwrap_err();
        assert_eq!(e.tool, "h2load");
    }
}
