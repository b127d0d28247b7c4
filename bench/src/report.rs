//! The results of a run: rows of figures per target, ratios, and the JSON written to
//! `bench/results/`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::machine::Machine;
use crate::stats::{Summary, ratio};
use crate::targets::Target;

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One figure (a row of the table) for every target that was measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Short scenario id (`h1-max`, `h1-rate`, `h2`, `large`, `memory`).
    pub scenario: String,
    /// What was measured, with its unit (`req/s`, `p99 added (ms)`).
    pub metric: String,
    pub better: Better,
    pub values: BTreeMap<Target, Summary>,
    /// Anything that makes a figure suspect: errors, missed rates, dropped connections.
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(scenario: &str, metric: &str, better: Better) -> Self {
        Self {
            scenario: scenario.to_owned(),
            metric: metric.to_owned(),
            better,
            values: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a target's samples (ignored when there are none).
    pub fn with(mut self, target: Target, samples: &[f64]) -> Self {
        if let Some(s) = Summary::of(samples) {
            self.values.insert(target, s);
        }
        self
    }

    pub fn median(&self, target: Target) -> Option<f64> {
        self.values.get(&target).map(|s| s.median)
    }

    /// `a`'s median over `b`'s, when both were measured and `b` is not zero.
    pub fn ratio(&self, a: Target, b: Target) -> Option<f64> {
        ratio(self.median(a)?, self.median(b)?)
    }
}

/// The ratio columns of the table, in order: every proxy to direct, then meshwork to
/// each peer.
pub const RATIO_COLUMNS: [(Target, Target); 7] = [
    (Target::Meshwork, Target::Direct),
    (Target::Nginx, Target::Direct),
    (Target::Haproxy, Target::Direct),
    (Target::Envoy, Target::Direct),
    (Target::Meshwork, Target::Nginx),
    (Target::Meshwork, Target::Haproxy),
    (Target::Meshwork, Target::Envoy),
];

/// Everything one run produced, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub mode: String,
    pub started_unix: u64,
    pub duration_secs: f64,
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub rows: Vec<Row>,
    pub goals: Vec<crate::goals::Verdict>,
    /// Per scenario: percent of the machine's CPUs used by other processes meanwhile
    /// (other people's builds on a shared machine); high values make a figure suspect.
    pub foreign_cpu_percent: Vec<(String, f64)>,
    /// Per scenario: percent of the CPUs' time the hypervisor took (steal). On a busy
    /// host it delays wake-ups of an idle CPU, which shows first in the fixed-rate tails.
    pub steal_percent: Vec<(String, f64)>,
    pub ratios: Vec<RatioEntry>,
}

/// One ratio, spelled out for JSON readers.
#[derive(Debug, Serialize, PartialEq)]
pub struct RatioEntry {
    pub scenario: String,
    pub metric: String,
    pub of: Target,
    pub to: Target,
    pub ratio: f64,
}

/// Every ratio of every row (all pairs of measured targets, both directions).
pub fn all_ratios(rows: &[Row]) -> Vec<RatioEntry> {
    let mut out = Vec::new();
    for row in rows {
        for &of in row.values.keys() {
            for &to in row.values.keys() {
                if of == to {
                    continue;
                }
                if let Some(r) = row.ratio(of, to) {
                    out.push(RatioEntry {
                        scenario: row.scenario.clone(),
                        metric: row.metric.clone(),
                        of,
                        to,
                        ratio: r,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_cover_every_ordered_pair_of_measured_targets() {
        let row = Row::new("h1-max", "req/s", Better::Higher)
            .with(Target::Direct, &[100.0])
            .with(Target::Meshwork, &[90.0])
            .with(Target::Nginx, &[]);
        assert_eq!(row.ratio(Target::Meshwork, Target::Direct), Some(0.9));
        assert_eq!(row.ratio(Target::Meshwork, Target::Nginx), None);
        let all = all_ratios(&[row]);
        assert_eq!(all.len(), 2);
        assert!(
            all.iter()
                .any(|r| r.of == Target::Direct && r.to == Target::Meshwork)
        );
    }
}
