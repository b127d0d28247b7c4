//! The cost of observability (issue 4): the HTTP/1.1 max-throughput load of `h1-max`
//! against meshwork as benchmarked everywhere else (metrics on, as always; tracing and
//! access log off) and against meshwork with everything on: tracing exported in batches
//! over OTLP/HTTP and a JSON access log. Two samplings: 1.0 (`mw-obs`, every request
//! exported: the worst case) and 0.01 (`mw-obs-0.01`, the documented default: every
//! request's context read, propagated and logged, one in a hundred exported). The
//! `mw-obs*/mw` ratios are the price; the target is a loss under 5%.

use std::time::Duration;

use super::h1_max::measure_rounds;
use super::{Ctx, Scenario, Settings};
use crate::goals::scenario;
use crate::report::Row;
use crate::targets::Target;

#[derive(Debug)]
pub struct Observability;

const TARGETS: [Target; 3] = [
    Target::Meshwork,
    Target::MeshworkObserved,
    Target::MeshworkObservedSampled,
];

impl Scenario for Observability {
    fn id(&self) -> &'static str {
        scenario::OBSERVABILITY
    }

    fn describe(&self) -> &'static str {
        "observability cost: h1-max load against meshwork with tracing (OTLP export; sampling 1.0 `meshwork-observed`, 0.01 `meshwork-observed-0.01`) and a JSON access log on vs off"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        s.rounds_time(TARGETS.len(), f64::from(s.observability_secs))
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let secs = f64::from(ctx.settings.observability_secs);
        Ok(measure_rounds(ctx, &TARGETS, secs).throughput_rows(self.id()))
    }
}
