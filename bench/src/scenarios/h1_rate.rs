//! Scenario 2: a fixed rate (2,000 req/s), HTTP/1.1 keep-alive, 128-byte responses, 50
//! connections (oha `-q` with `--latency-correction`, so a stall counts against every
//! request that should have been sent during it). Rows: p50 / p99 / p99.9 latency, and
//! the same added over direct (paired by round: proxy minus the direct run of that round).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Ctx, Samples, Scenario, Settings, secs_arg};
use crate::goals::{metric, scenario};
use crate::parse::oha;
use crate::report::{Better, Row};
use crate::targets::Target;

/// A run is flagged when oha fell more than this short of the asked rate.
const RATE_SHORTFALL: f64 = 0.02;

#[derive(Debug)]
pub struct H1Rate;

impl Scenario for H1Rate {
    fn id(&self) -> &'static str {
        scenario::H1_RATE
    }

    fn describe(&self) -> &'static str {
        "HTTP/1.1 at a fixed 2,000 req/s, 50 connections, coordinated-omission corrected (oha -q --latency-correction): p50/p99/p99.9 and added over direct"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        s.rounds_time(4, f64::from(s.h1_rate_secs))
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let mut notes = Vec::new();
        // [p50, p99, p99.9] per target per round (None when the run failed).
        let mut runs: BTreeMap<Target, Vec<Option<[f64; 3]>>> = BTreeMap::new();
        for target in ctx.targets() {
            if let Err(e) = measure(ctx, target, s.warmup_secs) {
                notes.push(format!("{}: warm-up failed: {e:#}", target.name()));
            }
        }
        for round in 0..s.rounds {
            for target in ctx.targets() {
                let result = measure(ctx, target, f64::from(s.h1_rate_secs));
                let entry = runs.entry(target).or_default();
                match result {
                    Ok(o) => {
                        let wanted = f64::from(s.h1_rate_per_sec);
                        if o.requests_per_sec < wanted * (1.0 - RATE_SHORTFALL) {
                            notes.push(format!(
                                "{} round {}: reached only {:.0} of {wanted:.0} req/s",
                                target.name(),
                                round + 1,
                                o.requests_per_sec
                            ));
                        }
                        if o.errors > 0 {
                            notes.push(format!(
                                "{} round {}: {} errors",
                                target.name(),
                                round + 1,
                                o.errors
                            ));
                        }
                        entry.push(Some([o.p50_ms, o.p99_ms, o.p999_ms]));
                    }
                    Err(e) => {
                        notes.push(format!("{} round {}: {e:#}", target.name(), round + 1));
                        entry.push(None);
                    }
                }
            }
        }
        Ok(rows(self.id(), &runs, notes))
    }
}

/// The absolute and added rows from per-round percentiles.
pub fn rows(
    id: &str,
    runs: &BTreeMap<Target, Vec<Option<[f64; 3]>>>,
    notes: Vec<String>,
) -> Vec<Row> {
    let labels = [
        ("p50 (ms)", "p50 added (ms)"),
        ("p99 (ms)", metric::P99_ADDED_MS),
        ("p99.9 (ms)", "p99.9 added (ms)"),
    ];
    let direct = runs.get(&Target::Direct).cloned().unwrap_or_default();
    let mut absolute: Vec<Row> = Vec::new();
    let mut added: Vec<Row> = Vec::new();
    for (i, (abs_label, added_label)) in labels.iter().enumerate() {
        let mut abs = Samples::default();
        let mut add = Samples::default();
        for (&target, rounds) in runs {
            for (round, run) in rounds.iter().enumerate() {
                let Some(run) = run else { continue };
                abs.push(target, run[i]);
                if target != Target::Direct {
                    if let Some(Some(d)) = direct.get(round) {
                        add.push(target, run[i] - d[i]);
                    }
                }
            }
        }
        absolute.push(abs.row(id, abs_label, Better::Lower));
        added.push(add.row(id, added_label, Better::Lower));
    }
    absolute[0].notes = notes;
    absolute.extend(added);
    absolute
}

fn measure(ctx: &mut Ctx, target: Target, secs: f64) -> anyhow::Result<oha::OhaSummary> {
    let url = ctx.target(target)?.url("/");
    let summary = at_fixed_rate(ctx, url, secs)?;
    ctx.check_alive(target)?;
    Ok(summary)
}

/// One oha run at the settings' fixed rate against `url`, latency-corrected.
pub fn at_fixed_rate(ctx: &mut Ctx, url: String, secs: f64) -> anyhow::Result<oha::OhaSummary> {
    let s = &ctx.settings;
    let args = vec![
        "-z".into(),
        secs_arg(secs),
        "-q".into(),
        s.h1_rate_per_sec.to_string(),
        "-c".into(),
        s.connections.to_string(),
        "--latency-correction".into(),
        "--no-tui".into(),
        "--output-format".into(),
        "json".into(),
        url,
    ];
    let tool = ctx.tools.oha.clone();
    let out = ctx.run_load(&tool, &args, Duration::from_secs_f64(secs), &mut || {})?;
    Ok(oha::parse(&out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_latency_is_paired_with_the_direct_run_of_the_same_round() {
        let mut runs = BTreeMap::new();
        runs.insert(
            Target::Direct,
            vec![Some([0.2, 0.5, 1.0]), Some([0.3, 0.7, 1.5])],
        );
        runs.insert(Target::Meshwork, vec![Some([0.3, 0.9, 2.0]), None]);
        let rows = rows("h1-rate", &runs, vec!["n".into()]);
        let labels: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(
            labels,
            [
                "p50 (ms)",
                "p99 (ms)",
                "p99.9 (ms)",
                "p50 added (ms)",
                "p99 added (ms)",
                "p99.9 added (ms)"
            ]
        );
        let p99_added = &rows[4];
        assert!((p99_added.median(Target::Meshwork).unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(p99_added.median(Target::Direct), None);
        assert_eq!(rows[1].median(Target::Direct), Some(0.6));
        assert_eq!(rows[0].notes, ["n"]);
    }
}
