//! Scenario 4: large responses, 1 MiB (8 connections) and 100 MiB (2 connections),
//! throughput in MiB/s of everything wrk read (partial responses at the end included).

use std::time::Duration;

use super::h1_max::wrk_args;
use super::{Ctx, Samples, Scenario, Settings};
use crate::parse::wrk;
use crate::report::{Better, Row};
use crate::targets::Target;

/// (label, body bytes, client connections)
const SIZES: [(&str, u64, u32); 2] = [
    ("1 MiB responses (MiB/s)", 1024 * 1024, 8),
    ("100 MiB responses (MiB/s)", 100 * 1024 * 1024, 2),
];

#[derive(Debug)]
pub struct Large;

impl Scenario for Large {
    fn id(&self) -> &'static str {
        "large"
    }

    fn describe(&self) -> &'static str {
        "large bodies: 1 MiB (8 connections) and 100 MiB (2 connections) responses, MiB/s (wrk)"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        s.rounds_time(4, f64::from(s.large_secs)) * SIZES.len() as u32
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let mut rows = Vec::new();
        for (label, bytes, connections) in SIZES {
            let path = format!("/bytes/{bytes}");
            let mut mib = Samples::default();
            let mut notes = Vec::new();
            for target in ctx.targets() {
                if let Err(e) = run_wrk(ctx, target, &path, connections, s.warmup_secs) {
                    notes.push(format!("{}: warm-up failed: {e:#}", target.name()));
                }
            }
            for round in 0..s.rounds {
                for target in ctx.targets() {
                    match run_wrk(ctx, target, &path, connections, f64::from(s.large_secs)) {
                        Ok(w) => {
                            mib.push(target, w.mib_per_sec());
                            if w.errors > 0 {
                                notes.push(format!(
                                    "{} round {}: {} errors",
                                    target.name(),
                                    round + 1,
                                    w.errors
                                ));
                            }
                        }
                        Err(e) => {
                            notes.push(format!("{} round {}: {e:#}", target.name(), round + 1));
                        }
                    }
                }
            }
            let mut row = mib.row(self.id(), label, Better::Higher);
            row.notes = notes;
            rows.push(row);
        }
        Ok(rows)
    }
}

fn run_wrk(
    ctx: &mut Ctx,
    target: Target,
    path: &str,
    connections: u32,
    secs: f64,
) -> anyhow::Result<wrk::WrkSummary> {
    let url = ctx.target(target)?.url(path);
    let args = wrk_args(ctx, &url, connections, secs);
    let tool = ctx.tools.wrk.clone();
    let out = ctx.run_load(&tool, &args, Duration::from_secs_f64(secs), &mut || {})?;
    ctx.check_alive(target)?;
    Ok(wrk::parse(&out)?)
}
