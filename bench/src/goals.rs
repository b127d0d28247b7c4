//! The targets of issue 3 (and issue 4's observability cost), checked against a run's
//! rows: met, not met, or not measured.
//! Never tuned: the thresholds are the issue's, the figures are the run's medians.

use serde::Serialize;

use crate::report::Row;
use crate::targets::Target;

/// Metric names the scenarios use and the goals look up.
pub mod metric {
    pub const REQUESTS_PER_SEC: &str = "req/s";
    pub const P99_ADDED_MS: &str = "p99 added (ms)";
    pub const IDLE_RSS_MIB: &str = "RSS idle (MiB)";
    pub const IDLE_CONNS_RSS_MIB: &str = "RSS 10k idle conns (MiB)";
    pub const STARTUP_MS: &str = "startup to ready (ms)";
    pub const SLOWLORIS_RSS_RATIO: &str = "RSS after the waves / idle";
}

/// Scenario ids, shared with the goals.
pub mod scenario {
    pub const H1_MAX: &str = "h1-max";
    pub const H1_RATE: &str = "h1-rate";
    pub const MEMORY: &str = "memory";
    pub const OBSERVABILITY: &str = "observability";
    pub const FAILOVER: &str = "failover";
    pub const TLS: &str = "tls";
    pub const MESH: &str = "mesh";
    pub const SLOWLORIS: &str = "slowloris";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    NotMet,
    NotMeasured,
}

impl Status {
    fn from_bool(met: bool) -> Self {
        if met { Status::Met } else { Status::NotMet }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "not met",
            Status::NotMeasured => "not measured",
        }
    }
}

/// One target of the issue and how this run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub goal: &'static str,
    pub status: Status,
    /// The figures that decided it.
    pub measured: String,
}

fn find<'a>(rows: &'a [Row], scenario: &str, metric: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.metric == metric)
}

fn verdict(goal: &'static str, decided: Option<(bool, String)>) -> Verdict {
    match decided {
        Some((met, measured)) => Verdict {
            goal,
            status: Status::from_bool(met),
            measured,
        },
        None => Verdict {
            goal,
            status: Status::NotMeasured,
            measured: "—".to_owned(),
        },
    }
}

/// Checks every target of the issue against `rows`.
pub fn check(rows: &[Row]) -> Vec<Verdict> {
    use Target::{Direct, Haproxy, Meshwork, MeshworkObserved, MeshworkObservedSampled, Nginx};
    let rps = find(rows, scenario::H1_MAX, metric::REQUESTS_PER_SEC);
    let observed = find(rows, scenario::OBSERVABILITY, metric::REQUESTS_PER_SEC);
    let p99 = find(rows, scenario::H1_RATE, metric::P99_ADDED_MS);
    let memory = |m| find(rows, scenario::MEMORY, m).and_then(|r| r.median(Meshwork));
    vec![
        verdict(
            "requests/s >= 1.2x nginx",
            rps.and_then(|r| r.ratio(Meshwork, Nginx))
                .map(|x| (x >= 1.2, format!("{x:.2}x nginx"))),
        ),
        verdict(
            "requests/s >= 0.9x direct",
            rps.and_then(|r| r.ratio(Meshwork, Direct))
                .map(|x| (x >= 0.9, format!("{x:.2}x direct"))),
        ),
        verdict(
            "p99 added at the fixed rate <= 0.5 ms",
            p99.and_then(|r| r.median(Meshwork))
                .map(|ms| (ms <= 0.5, format!("{ms:.3} ms"))),
        ),
        verdict(
            "p99 added below every peer",
            p99.and_then(|r| {
                let mw = r.median(Meshwork)?;
                let peers = [Nginx, Haproxy].map(|p| r.median(p));
                if peers.iter().any(Option::is_none) {
                    return None;
                }
                let peers = peers.map(|p| p.unwrap_or(f64::NAN));
                Some((
                    peers.iter().all(|&p| mw < p),
                    format!(
                        "meshwork {mw:.3} ms, nginx {:.3} ms, haproxy {:.3} ms",
                        peers[0], peers[1]
                    ),
                ))
            }),
        ),
        verdict(
            "idle RSS < 6 MiB",
            memory(metric::IDLE_RSS_MIB).map(|m| (m < 6.0, format!("{m:.1} MiB"))),
        ),
        verdict(
            "RSS with 10,000 idle keep-alive connections < 64 MiB",
            memory(metric::IDLE_CONNS_RSS_MIB).map(|m| (m < 64.0, format!("{m:.1} MiB"))),
        ),
        verdict(
            "RSS after 5 waves of 5,000 slowloris connections within 20% of idle (issue 15)",
            find(rows, scenario::SLOWLORIS, metric::SLOWLORIS_RSS_RATIO)
                .and_then(|r| r.median(Meshwork))
                .map(|x| (x <= 1.2, format!("{x:.2}x idle"))),
        ),
        verdict(
            "startup to ready < 50 ms",
            memory(metric::STARTUP_MS).map(|ms| (ms < 50.0, format!("{ms:.1} ms"))),
        ),
        verdict(
            "tracing (default sampling 0.01) + access log on cost < 5% of requests/s (issue 4)",
            observed
                .and_then(|r| r.ratio(MeshworkObservedSampled, Meshwork))
                .map(observability_cost),
        ),
        verdict(
            "tracing (every request, sampling 1.0) + access log on cost < 5% of requests/s (issue 4)",
            observed
                .and_then(|r| r.ratio(MeshworkObserved, Meshwork))
                .map(observability_cost),
        ),
    ]
}

/// Whether observability on (`x` = on/off throughput) costs less than 5%.
fn observability_cost(x: f64) -> (bool, String) {
    let cost = (1.0 - x) * 100.0;
    (cost < 5.0, format!("{cost:.1}% ({x:.2}x)"))
}

/// The verdicts as a Markdown table.
pub fn render(verdicts: &[Verdict]) -> String {
    let mut out = String::from("| target | status | measured |\n|---|---|---|\n");
    for v in verdicts {
        out.push_str(&format!(
            "| {} | **{}** | {} |\n",
            v.goal,
            v.status.label(),
            v.measured
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Better;

    #[test]
    fn goals_are_met_not_met_or_not_measured_from_the_medians() {
        let rows = vec![
            Row::new(scenario::H1_MAX, metric::REQUESTS_PER_SEC, Better::Higher)
                .with(Target::Direct, &[100.0])
                .with(Target::Meshwork, &[95.0])
                .with(Target::Nginx, &[74.0]),
            Row::new(scenario::H1_RATE, metric::P99_ADDED_MS, Better::Lower)
                .with(Target::Meshwork, &[0.6])
                .with(Target::Nginx, &[0.7])
                .with(Target::Haproxy, &[1.0]),
        ];
        let v = check(&rows);
        let status = |goal: &str| v.iter().find(|v| v.goal.starts_with(goal)).unwrap().status;
        assert_eq!(status("requests/s >= 1.2x nginx"), Status::Met);
        assert_eq!(status("requests/s >= 0.9x direct"), Status::Met);
        assert_eq!(status("p99 added at the fixed rate"), Status::NotMet);
        assert_eq!(status("p99 added below every peer"), Status::Met);
        assert_eq!(status("idle RSS"), Status::NotMeasured);
        assert!(render(&v).contains("| requests/s >= 1.2x nginx | **met** | 1.28x nginx |"));
    }
}
