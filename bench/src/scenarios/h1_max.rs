//! Scenario 1: HTTP/1.1 keep-alive, 128-byte responses, 50 connections, as fast as wrk
//! can go. Rows: requests/s, the proxy's CPU time per request (utime + stime of all its
//! processes over the run, divided by the requests), and its peak RSS under this load.

use std::time::Duration;

use super::{Ctx, Samples, Scenario, Settings, secs_arg};
use crate::goals::{metric, scenario};
use crate::parse::wrk;
use crate::process::{group_pids, rss_bytes, usage};
use crate::report::{Better, Row};
use crate::targets::Target;

pub const METRIC_CPU_US: &str = "proxy CPU per request (µs)";
pub const METRIC_RSS_LOAD: &str = "RSS under load (MiB)";

#[derive(Debug)]
pub struct H1Max;

/// wrk's arguments: one thread (one load CPU), exact summary via the Lua script.
pub fn wrk_args(ctx: &Ctx, url: &str, connections: u32, secs: f64) -> Vec<String> {
    vec![
        "-t1".into(),
        format!("-c{connections}"),
        format!("-d{}", secs_arg(secs)),
        "--timeout".into(),
        "10s".into(),
        "-s".into(),
        ctx.wrk_script.display().to_string(),
        url.into(),
    ]
}

impl Scenario for H1Max {
    fn id(&self) -> &'static str {
        scenario::H1_MAX
    }

    fn describe(&self) -> &'static str {
        "HTTP/1.1 keep-alive, 128 B responses, 50 connections: max requests/s (wrk), proxy CPU per request, RSS under load"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        s.rounds_time(4, f64::from(s.h1_max_secs))
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let targets = ctx.targets();
        let secs = f64::from(ctx.settings.h1_max_secs);
        let r = measure_rounds(ctx, &targets, secs);
        let rss = r.rss_mib.row(self.id(), METRIC_RSS_LOAD, Better::Lower);
        let mut rows = r.throughput_rows(self.id());
        rows.push(rss);
        Ok(rows)
    }
}

/// What [`measure_rounds`] collected, per target.
#[derive(Debug, Default)]
pub struct Rounds {
    pub rps: Samples,
    pub cpu_us: Samples,
    pub rss_mib: Samples,
    /// Failed warm-ups and runs, and runs that saw errors.
    pub notes: Vec<String>,
}

impl Rounds {
    /// The requests/s row (carrying the notes) and the CPU-per-request row.
    pub fn throughput_rows(self, scenario: &'static str) -> Vec<Row> {
        let mut rps = self
            .rps
            .row(scenario, metric::REQUESTS_PER_SEC, Better::Higher);
        rps.notes = self.notes;
        vec![rps, self.cpu_us.row(scenario, METRIC_CPU_US, Better::Lower)]
    }
}

/// The h1-max load against each of `targets`: a warm-up each, then the settings'
/// rounds of `secs`, alternating the targets within every round.
pub fn measure_rounds(ctx: &mut Ctx, targets: &[Target], secs: f64) -> Rounds {
    let s = ctx.settings.clone();
    let mut r = Rounds::default();
    for &target in targets {
        if let Err(e) = warm_up(ctx, target) {
            r.notes
                .push(format!("{}: warm-up failed: {e:#}", target.name()));
        }
    }
    for round in 0..s.rounds {
        for &target in targets {
            match measure(ctx, target, s.connections, secs) {
                Ok(m) => {
                    r.rps.push(target, m.wrk.requests_per_sec());
                    if let Some(cpu) = m.cpu_secs {
                        r.cpu_us.push(target, cpu / m.wrk.requests as f64 * 1e6);
                    }
                    if let Some(rss) = m.peak_rss {
                        r.rss_mib.push(target, rss as f64 / 1024.0 / 1024.0);
                    }
                    if m.wrk.errors > 0 {
                        r.notes.push(format!(
                            "{} round {}: {} errors of {} requests",
                            target.name(),
                            round + 1,
                            m.wrk.errors,
                            m.wrk.requests
                        ));
                    }
                }
                Err(e) => r
                    .notes
                    .push(format!("{} round {}: {e:#}", target.name(), round + 1)),
            }
        }
    }
    r
}

fn warm_up(ctx: &mut Ctx, target: Target) -> anyhow::Result<()> {
    let url = ctx.target(target)?.url("/");
    let args = wrk_args(
        ctx,
        &url,
        ctx.settings.connections,
        ctx.settings.warmup_secs,
    );
    let tool = ctx.tools.wrk.clone();
    ctx.run_load(
        &tool,
        &args,
        Duration::from_secs_f64(ctx.settings.warmup_secs),
        &mut || {},
    )?;
    Ok(())
}

/// One wrk run against `target`, with the proxy's CPU and peak RSS over it.
#[derive(Debug)]
pub struct Measured {
    pub wrk: wrk::WrkSummary,
    pub cpu_secs: Option<f64>,
    pub peak_rss: Option<u64>,
}

pub fn measure(
    ctx: &mut Ctx,
    target: Target,
    connections: u32,
    secs: f64,
) -> anyhow::Result<Measured> {
    let running = ctx.target(target)?;
    let url = running.url("/");
    let pids = running.pgid().map(group_pids).unwrap_or_default();
    let measured = measure_url(ctx, &url, &pids, connections, secs)?;
    ctx.check_alive(target)?;
    Ok(measured)
}

/// One wrk run against `url`, with the CPU and peak RSS of `pids` (the proxies serving
/// it; none for the direct run) over it.
pub fn measure_url(
    ctx: &mut Ctx,
    url: &str,
    pids: &[u32],
    connections: u32,
    secs: f64,
) -> anyhow::Result<Measured> {
    let args = wrk_args(ctx, url, connections, secs);
    let before = usage(pids);
    let mut peak = 0u64;
    let tool = ctx.tools.wrk.clone();
    let out = ctx.run_load(&tool, &args, Duration::from_secs_f64(secs), &mut || {
        peak = peak.max(rss_bytes(pids));
    })?;
    let after = usage(pids);
    let proxied = !pids.is_empty();
    Ok(Measured {
        wrk: wrk::parse(&out)?,
        cpu_secs: proxied.then_some(after.cpu_secs - before.cpu_secs),
        peak_rss: proxied.then_some(peak.max(after.rss_bytes)),
    })
}
