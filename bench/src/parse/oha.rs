//! oha: its JSON report (`--output-format json`): rate, success, latency percentiles.

use serde_json::Value;

use super::ParseError;

/// What one oha run measured; latencies in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct OhaSummary {
    pub requests_per_sec: f64,
    pub success_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Responses other than 2xx plus transport errors.
    pub errors: u64,
}

/// Reads oha's JSON report (oha prints times in seconds).
///
/// # Errors
/// When the output is not JSON or lacks the summary or the percentiles.
pub fn parse(stdout: &str) -> Result<OhaSummary, ParseError> {
    let err = |what: String| ParseError { tool: "oha", what };
    // Anything printed before the JSON object (warnings) is skipped.
    let start = stdout
        .find('{')
        .ok_or_else(|| err("no JSON object".into()))?;
    let json: Value = serde_json::from_str(&stdout[start..]).map_err(|e| err(e.to_string()))?;
    let number = |path: &[&str]| {
        let mut v = &json;
        for key in path {
            v = v.get(key).unwrap_or(&Value::Null);
        }
        v.as_f64()
            .ok_or_else(|| err(format!("no number at {}", path.join("."))))
    };
    let non_2xx: u64 = json
        .get("statusCodeDistribution")
        .and_then(Value::as_object)
        .map(|codes| {
            codes
                .iter()
                .filter(|(code, _)| !code.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    // Requests still in flight when `-z` ends are "aborted due to deadline": cut by the
    // load generator, not failed by the target.
    let transport: u64 = json
        .get("errorDistribution")
        .and_then(Value::as_object)
        .map(|errors| {
            errors
                .iter()
                .filter(|(what, _)| !what.contains("deadline"))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    Ok(OhaSummary {
        requests_per_sec: number(&["summary", "requestsPerSec"])?,
        success_rate: number(&["summary", "successRate"])?,
        p50_ms: number(&["latencyPercentiles", "p50"])? * 1e3,
        p99_ms: number(&["latencyPercentiles", "p99"])? * 1e3,
        p999_ms: number(&["latencyPercentiles", "p99.9"])? * 1e3,
        errors: non_2xx + transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = r#"{
  "summary": {"successRate": 1.0, "total": 10.001, "slowest": 0.0051, "fastest": 0.00009,
              "average": 0.00031, "requestsPerSec": 1999.8, "totalData": 2560000,
              "sizePerRequest": 128, "sizePerSec": 255974.4},
  "responseTimeHistogram": {"0.0001": 10},
  "latencyPercentiles": {"p10": 0.0002, "p25": 0.00025, "p50": 0.0003, "p75": 0.00035,
                         "p90": 0.0004, "p95": 0.00045, "p99": 0.0009, "p99.9": 0.0021,
                         "p99.99": 0.004},
  "statusCodeDistribution": {"200": 19990, "502": 8},
  "errorDistribution": {"connection reset": 2, "aborted due to deadline": 7}
}"#;

    #[test]
    fn reads_rate_percentiles_in_ms_and_errors() {
        let s = parse(OUTPUT).unwrap();
        assert_eq!(s.requests_per_sec, 1999.8);
        assert!((s.p50_ms - 0.3).abs() < 1e-9);
        assert!((s.p99_ms - 0.9).abs() < 1e-9);
        assert!((s.p999_ms - 2.1).abs() < 1e-9);
        assert_eq!(s.errors, 10);
    }

    #[test]
    fn text_before_the_json_is_skipped_and_missing_fields_are_errors() {
        assert!(parse(&format!("warning: something\n{OUTPUT}")).is_ok());
        let e = parse(r#"{"summary": {}}"#).unwrap_err();
        assert!(e.to_string().contains("summary.requestsPerSec"), "{e}");
        assert!(parse("Error: connection refused").is_err());
    }
}
