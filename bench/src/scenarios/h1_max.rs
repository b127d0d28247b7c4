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
        let s = ctx.settings.clone();
        let mut rps = Samples::default();
        let mut cpu_us = Samples::default();
        let mut rss_mib = Samples::default();
        let mut notes = Vec::new();
        for target in ctx.targets() {
            if let Err(e) = warm_up(ctx, target) {
                notes.push(format!("{}: warm-up failed: {e:#}", target.name()));
            }
        }
        for round in 0..s.rounds {
            for target in ctx.targets() {
                let result = measure(ctx, target, s.connections, f64::from(s.h1_max_secs));
                match result {
                    Ok(m) => {
                        rps.push(target, m.wrk.requests_per_sec());
                        if let Some(cpu) = m.cpu_secs {
                            cpu_us.push(target, cpu / m.wrk.requests as f64 * 1e6);
                        }
                        if let Some(rss) = m.peak_rss {
                            rss_mib.push(target, rss as f64 / 1024.0 / 1024.0);
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
            rss_mib.row(self.id(), METRIC_RSS_LOAD, Better::Lower),
        ])
    }
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
    let args = wrk_args(ctx, &url, connections, secs);
    let before = usage(&pids);
    let mut peak = 0u64;
    let tool = ctx.tools.wrk.clone();
    let out = ctx.run_load(&tool, &args, Duration::from_secs_f64(secs), &mut || {
        peak = peak.max(rss_bytes(&pids));
    })?;
    let after = usage(&pids);
    ctx.check_alive(target)?;
    let proxied = !pids.is_empty();
    Ok(Measured {
        wrk: wrk::parse(&out)?,
        cpu_secs: proxied.then_some(after.cpu_secs - before.cpu_secs),
        peak_rss: proxied.then_some(peak.max(after.rss_bytes)),
    })
}
