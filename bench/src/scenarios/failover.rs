//! Failover (issue 5): each proxy in front of three endpoints, one of which answers every
//! request with 503, configured as a user would for a flaky endpoint (up to 3 tries,
//! passive ejection after 5 consecutive failures; see each target's failover config).
//! Each round starts every proxy afresh, so each starts by discovering the failure.
//!
//! Rows: the share of requests the client saw succeed, the upstream requests per client
//! request (1.00 = no extra load; retries add to it), and the share of upstream requests
//! that went to the failing endpoint.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::Context as _;

use super::h1_max::wrk_args;
use super::{Ctx, Samples, Scenario, Settings};
use crate::goals::scenario;
use crate::parse::wrk;
use crate::process::{Cpu, Proc};
use crate::report::{Better, Row};
use crate::targets::{self, Backend};

pub const METRIC_SUCCESS: &str = "client success rate (%)";
pub const METRIC_UPSTREAM_PER_REQUEST: &str = "upstream requests per client request";
pub const METRIC_TO_FAILING: &str = "upstream requests to the failing endpoint (%)";

#[derive(Debug)]
pub struct Failover;

impl Scenario for Failover {
    fn id(&self) -> &'static str {
        scenario::FAILOVER
    }

    fn describe(&self) -> &'static str {
        "failover: three endpoints, one answering 503, retries and passive ejection on: client success rate, upstream requests per client request, share sent to the failing endpoint"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        // Proxies only, each started afresh every round (~0.5 s), no warm-up.
        Duration::from_secs_f64(3.0 * s.failover_rounds as f64 * (f64::from(s.failover_secs) + 0.8))
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let (_healthy, second) = spawn_upstream(ctx, "bench-upstream-2", &[])?;
        let (_failing, failing) = spawn_upstream(ctx, "bench-upstream-503", &["--status", "503"])?;
        let endpoints = vec![ctx.env.upstream.clone(), second, failing];
        let mut success = Samples::default();
        let mut per_request = Samples::default();
        let mut to_failing = Samples::default();
        let mut notes = Vec::new();
        for round in 0..s.failover_rounds {
            for target in ctx.proxies() {
                let result = (|| -> anyhow::Result<()> {
                    let backend = Backend::Failover(endpoints.clone());
                    let mut running = targets::start_with(
                        target,
                        &ctx.env,
                        &backend,
                        &format!("failover{round}"),
                    )?;
                    let before = counts(&endpoints)?;
                    let secs = f64::from(s.failover_secs);
                    let args = wrk_args(ctx, &running.url("/"), s.connections, secs);
                    let tool = ctx.tools.wrk.clone();
                    let out =
                        ctx.run_load(&tool, &args, Duration::from_secs_f64(secs), &mut || {})?;
                    let after = counts(&endpoints)?;
                    running.check_alive()?;
                    let summary = wrk::parse(&out)?;
                    let sent: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
                    let total: u64 = sent.iter().sum();
                    anyhow::ensure!(
                        summary.requests > 0 && total > 0,
                        "no requests went through"
                    );
                    let ok = summary.requests.saturating_sub(summary.errors);
                    success.push(target, ok as f64 / summary.requests as f64 * 100.0);
                    per_request.push(target, total as f64 / summary.requests as f64);
                    to_failing.push(target, sent[2] as f64 / total as f64 * 100.0);
                    Ok(())
                })();
                if let Err(e) = result {
                    notes.push(format!("{} round {}: {e:#}", target.name(), round + 1));
                }
            }
        }
        let mut first = success.row(self.id(), METRIC_SUCCESS, Better::Higher);
        first.notes = notes;
        Ok(vec![
            first,
            per_request.row(self.id(), METRIC_UPSTREAM_PER_REQUEST, Better::Lower),
            to_failing.row(self.id(), METRIC_TO_FAILING, Better::Lower),
        ])
    }
}

/// Another `bench-upstream` on the load CPU, for this scenario only; its address.
fn spawn_upstream(ctx: &Ctx, name: &str, extra: &[&str]) -> anyhow::Result<(Proc, String)> {
    let mut args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut proc = Proc::spawn(name, Cpu::Load, &ctx.tools.upstream, &args, &ctx.env.dir)?;
    let address = proc.wait_for_line("listening ", Duration::from_secs(10))?;
    Ok((proc, address))
}

/// How many requests each upstream has served so far.
fn counts(endpoints: &[String]) -> anyhow::Result<Vec<u64>> {
    endpoints.iter().map(|e| count(e)).collect()
}

fn count(endpoint: &str) -> anyhow::Result<u64> {
    let mut s =
        TcpStream::connect(endpoint).with_context(|| format!("connecting to {endpoint}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /__bench/requests HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    response
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| body.trim().parse().ok())
        .with_context(|| format!("no request count from {endpoint}: {response:?}"))
}
