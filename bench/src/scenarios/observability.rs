//! The cost of observability (issue 4): the HTTP/1.1 max-throughput load of `h1-max`
//! against meshwork as benchmarked everywhere else (metrics on, as always; tracing and
//! access log off) and against meshwork with everything on: every request traced
//! (sampling 1.0, exported in batches over OTLP/HTTP) and written to a JSON access log.
//! The `mw-obs/mw` ratio is the price; the target is a loss under 5%.

use std::time::Duration;

use super::h1_max::{METRIC_CPU_US, measure};
use super::{Ctx, Samples, Scenario, Settings};
use crate::goals::{metric, scenario};
use crate::report::{Better, Row};
use crate::targets::Target;

#[derive(Debug)]
pub struct Observability;

const TARGETS: [Target; 2] = [Target::Meshwork, Target::MeshworkObserved];

impl Scenario for Observability {
    fn id(&self) -> &'static str {
        scenario::OBSERVABILITY
    }

    fn describe(&self) -> &'static str {
        "observability cost: h1-max load against meshwork with tracing (sampling 1.0, OTLP export) and a JSON access log on (`meshwork-observed`) vs off"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        s.rounds_time(TARGETS.len(), f64::from(s.observability_secs))
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let mut rps = Samples::default();
        let mut cpu_us = Samples::default();
        let mut notes = Vec::new();
        for target in TARGETS {
            if let Err(e) = measure(ctx, target, s.connections, s.warmup_secs) {
                notes.push(format!("{}: warm-up failed: {e:#}", target.name()));
            }
        }
        for round in 0..s.rounds {
            for target in TARGETS {
                let secs = f64::from(s.observability_secs);
                match measure(ctx, target, s.connections, secs) {
                    Ok(m) => {
                        rps.push(target, m.wrk.requests_per_sec());
                        if let Some(cpu) = m.cpu_secs {
                            cpu_us.push(target, cpu / m.wrk.requests as f64 * 1e6);
                        }
                        if m.wrk.errors > 0 {
                            notes.push(format!(
                                "{} round {}: {} errors of {} requests",
                                target.name(),
                                round + 1,
                                m.wrk.errors,
                                m.wrk.requests
                            ));
                        }
                    }
                    Err(e) => notes.push(format!("{} round {}: {e:#}", target.name(), round + 1)),
                }
            }
        }
        let mut first = rps.row(self.id(), metric::REQUESTS_PER_SEC, Better::Higher);
        first.notes = notes;
        Ok(vec![
            first,
            cpu_us.row(self.id(), METRIC_CPU_US, Better::Lower),
        ])
    }
}
