//! wrk: a Lua `done` hook prints one machine-readable summary line, parsed here.

use super::{ParseError, key_value};

/// Passed to wrk with `-s`: prints exact counts instead of wrk's rounded text.
pub const SUMMARY_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  io.write(string.format(
    "meshwork-bench: requests=%d duration_us=%d bytes=%d connect_errors=%d read_errors=%d write_errors=%d status_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

const PREFIX: &str = "meshwork-bench:";

/// What one wrk run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkSummary {
    pub requests: u64,
    pub duration_secs: f64,
    pub bytes: u64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses.
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl WrkSummary {
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.duration_secs
    }

    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / self.duration_secs / (1024.0 * 1024.0)
    }
}

/// Reads the summary line that [`SUMMARY_SCRIPT`] printed.
///
/// # Errors
/// When the line is missing or incomplete (wrk failed before `done`).
pub fn parse(stdout: &str) -> Result<WrkSummary, ParseError> {
    let err = |what: &str| ParseError {
        tool: "wrk",
        what: what.to_owned(),
    };
    let line = stdout
        .lines()
        .find(|l| l.starts_with(PREFIX))
        .ok_or_else(|| err("no `meshwork-bench:` summary line (did wrk run the -s script?)"))?;
    let get =
        |key: &str| key_value(line, key).ok_or_else(|| err(&format!("no {key}= in {line:?}")));
    let duration_us = get("duration_us")?;
    if duration_us <= 0.0 {
        return Err(err("zero duration"));
    }
    let errors = [
        "connect_errors",
        "read_errors",
        "write_errors",
        "status_errors",
        "timeouts",
    ]
    .iter()
    .map(|k| get(k))
    .sum::<Result<f64, _>>()?;
    Ok(WrkSummary {
        requests: get("requests")? as u64,
        duration_secs: duration_us / 1e6,
        bytes: get("bytes")? as u64,
        errors: errors as u64,
        p50_ms: get("p50_us")? / 1e3,
        p99_ms: get("p99_us")? / 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 8s test @ http://127.0.0.1:18080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.00us  100.00us   4.00ms   90.00%
  800000 requests in 8.00s, 150.00MB read
Requests/sec: 100000.00
Transfer/sec:     18.75MB
meshwork-bench: requests=800000 duration_us=8000000 bytes=157286400 connect_errors=0 read_errors=1 write_errors=0 status_errors=2 timeouts=0 p50_us=480 p99_us=1250
";

    #[test]
    fn reads_counts_rates_and_errors_from_the_summary_line() {
        let s = parse(OUTPUT).unwrap();
        assert_eq!(s.requests, 800_000);
        assert_eq!(s.duration_secs, 8.0);
        assert_eq!(s.requests_per_sec(), 100_000.0);
        assert_eq!(s.mib_per_sec(), 18.75);
        assert_eq!(s.errors, 3);
        assert_eq!((s.p50_ms, s.p99_ms), (0.48, 1.25));
    }

    #[test]
    fn output_without_the_summary_line_is_an_error_naming_wrk() {
        let e = parse("unable to connect to 127.0.0.1:1 Connection refused\n").unwrap_err();
        assert_eq!(e.tool, "wrk");
        assert!(e.to_string().contains("summary line"), "{e}");
    }

    #[test]
    fn a_truncated_summary_line_is_an_error() {
        assert!(parse("meshwork-bench: requests=5 duration_us=100\n").is_err());
    }
}
