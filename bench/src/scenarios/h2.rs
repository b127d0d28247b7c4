//! Scenario 3: HTTP/2 with prior knowledge (h2c), many multiplexed streams per
//! connection (h2load), 128-byte responses. The proxies speak HTTP/1.1 to the upstream,
//! as in every other scenario; the direct run is h2c to the upstream itself.

use std::time::Duration;

use super::{Ctx, Samples, Scenario, Settings, secs_arg};
use crate::goals::metric;
use crate::parse::h2load;
use crate::report::{Better, Row};
use crate::targets::Target;

#[derive(Debug)]
pub struct H2;

impl Scenario for H2 {
    fn id(&self) -> &'static str {
        "h2"
    }

    fn describe(&self) -> &'static str {
        "HTTP/2 (h2c), 10 connections x 10 concurrent streams, 128 B responses: requests/s (h2load)"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        // h2load's own warm-up precedes every run; there is no separate warm-up run.
        Duration::from_secs_f64(
            4.0 * s.rounds as f64 * (f64::from(s.h2_secs) + s.warmup_secs + 0.3),
        )
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let mut rps = Samples::default();
        let mut notes = Vec::new();
        for round in 0..s.rounds {
            for target in ctx.targets() {
                match measure(ctx, target, &s) {
                    Ok(m) => {
                        rps.push(target, m.requests_per_sec);
                        if m.errors > 0 {
                            notes.push(format!(
                                "{} round {}: {} errors ({} succeeded)",
                                target.name(),
                                round + 1,
                                m.errors,
                                m.succeeded
                            ));
                        }
                    }
                    Err(e) => notes.push(format!("{} round {}: {e:#}", target.name(), round + 1)),
                }
            }
        }
        let mut row = rps.row(self.id(), metric::REQUESTS_PER_SEC, Better::Higher);
        row.notes = notes;
        Ok(vec![row])
    }
}

fn measure(ctx: &mut Ctx, target: Target, s: &Settings) -> anyhow::Result<h2load::H2loadSummary> {
    let url = ctx.target(target)?.h2_url("/");
    let args = vec![
        "-t1".into(),
        format!("-c{}", s.h2_connections),
        format!("-m{}", s.h2_streams_per_connection),
        format!("-D{}", secs_arg(f64::from(s.h2_secs))),
        format!("--warm-up-time={}", secs_arg(s.warmup_secs)),
        url,
    ];
    let tool = ctx.tools.h2load.clone();
    let expected = Duration::from_secs_f64(f64::from(s.h2_secs) + s.warmup_secs);
    let out = ctx.run_load(&tool, &args, expected, &mut || {})?;
    ctx.check_alive(target)?;
    Ok(h2load::parse(&out)?)
}
