//! The cost of observability (issue 4): the HTTP/1.1 max-throughput load of `h1-max`
//! against meshwork as benchmarked everywhere else (metrics on, as always; tracing and
//! access log off) and against meshwork with everything on: every request traced
//! (sampling 1.0, exported in batches over OTLP/HTTP) and written to a JSON access log.
//! The `mw-obs/mw` ratio is the price; the target is a loss under 5%.

use std::time::Duration;

use super::h1_max::{METRIC_CPU_US, measure_rounds};
use super::{Ctx, Scenario, Settings};
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
        let secs = f64::from(ctx.settings.observability_secs);
        let r = measure_rounds(ctx, &TARGETS, secs);
        let mut first = r
            .rps
            .row(self.id(), metric::REQUESTS_PER_SEC, Better::Higher);
        first.notes = r.notes;
        Ok(vec![
            first,
            r.cpu_us.row(self.id(), METRIC_CPU_US, Better::Lower),
        ])
    }
}
