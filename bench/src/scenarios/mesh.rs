//! The mesh: client -> outbound sidecar -> mTLS -> inbound sidecar -> app, the shape
//! sidecar users compare. A meshwork pair against an Envoy pair (Istio's data plane),
//! the direct run (client -> app) as the baseline; every proxy pinned to the proxy CPU.
//!
//! The two sidecars of a pair speak HTTP/1.1 over mTLS to each other with the bench's
//! certificates: the outbound one presents the client certificate (a SPIFFE ID) and
//! verifies the inbound one's (`localhost`); the inbound one requires and verifies the
//! client's. Rows: at a fixed 2,000 req/s (oha, latency-corrected) p50/p99/p99.9 and the
//! same added over direct; at max (wrk) req/s, CPU per request of both proxies together,
//! and the RSS of each under that load.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;

use super::h1_max::{METRIC_CPU_US, measure_url};
use super::{Ctx, Samples, Scenario, Settings, h1_rate, tls};
use crate::goals::{metric, scenario};
use crate::process::{group_pids, rss_bytes};
use crate::report::{Better, Row};
use crate::targets::{self, Backend, Running, Target};

pub const METRIC_RSS_INBOUND: &str = "RSS inbound sidecar under load (MiB)";
pub const METRIC_RSS_OUTBOUND: &str = "RSS outbound sidecar under load (MiB)";
/// The pairs compared: meshwork's and Envoy's (nginx and HAProxy are no sidecars).
const PAIRS: [Target; 2] = [Target::Meshwork, Target::Envoy];

#[derive(Debug)]
pub struct Mesh;

/// A started pair: the inbound sidecar in front of the app, the outbound one in front of
/// the inbound one.
struct Pair {
    target: Target,
    inbound: Running,
    outbound: Running,
}

impl Pair {
    fn start(ctx: &Ctx, target: Target, files: &targets::TlsFiles) -> anyhow::Result<Self> {
        let inbound =
            targets::start_with(target, &ctx.env, &Backend::Tls(files.clone()), "mesh-in")
                .context("inbound sidecar")?;
        let address = format!("127.0.0.1:{}", inbound.ports.http);
        let outbound = targets::start_with(
            target,
            &ctx.env,
            &Backend::MtlsUpstream {
                files: files.clone(),
                address,
            },
            "mesh-out",
        )
        .context("outbound sidecar")?;
        Ok(Self {
            target,
            inbound,
            outbound,
        })
    }

    /// Both sidecars' processes.
    fn pids(&self) -> Vec<u32> {
        [&self.inbound, &self.outbound]
            .iter()
            .filter_map(|r| r.pgid())
            .flat_map(group_pids)
            .collect()
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        self.inbound.check_alive().context("inbound sidecar")?;
        self.outbound.check_alive().context("outbound sidecar")
    }
}

impl Scenario for Mesh {
    fn id(&self) -> &'static str {
        scenario::MESH
    }

    fn describe(&self) -> &'static str {
        "client -> outbound sidecar -> mTLS -> inbound sidecar -> app, meshwork pair vs Envoy pair: latency at 2,000 req/s (added over direct), max req/s, CPU per request of both proxies, RSS of each"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        // Direct and two pairs, each a fixed-rate and a max run per round.
        s.rounds_time(3, 2.0 * f64::from(s.mesh_secs))
    }

    /// Four proxies to start and two load tools per round: `mesh --quick` runs it alone.
    fn in_quick_all(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let files = tls::write_certificates(&ctx.env.dir.join("mesh-tls"))
            .context("making certificates")?;
        let mut notes = Vec::new();
        let mut pairs: Vec<Pair> = Vec::new();
        for target in PAIRS {
            match Pair::start(ctx, target, &files) {
                Ok(p) => pairs.push(p),
                Err(e) => notes.push(format!("{}: {e:#}", target.name())),
            }
        }
        let direct_url = format!("http://127.0.0.1:{}/", ctx.upstream_port);
        // Warm-up: pools, TLS sessions, caches.
        for p in &pairs {
            let url = p.outbound.url("/");
            if let Err(e) = measure_url(ctx, &url, &[], s.connections, s.warmup_secs) {
                notes.push(format!("{}: warm-up failed: {e:#}", p.target.name()));
            }
        }
        let mut latency: BTreeMap<Target, Vec<Option<[f64; 3]>>> = BTreeMap::new();
        let mut rps = Samples::default();
        let mut cpu_us = Samples::default();
        let mut rss_in = Samples::default();
        let mut rss_out = Samples::default();
        for round in 0..s.rounds {
            let fixed = h1_rate::at_fixed_rate(ctx, direct_url.clone(), f64::from(s.mesh_secs));
            latency
                .entry(Target::Direct)
                .or_default()
                .push(fixed.ok().map(|o| [o.p50_ms, o.p99_ms, o.p999_ms]));
            match measure_url(ctx, &direct_url, &[], s.connections, f64::from(s.mesh_secs)) {
                Ok(m) => rps.push(Target::Direct, m.wrk.requests_per_sec()),
                Err(e) => notes.push(format!("direct round {}: {e:#}", round + 1)),
            }
            for p in &mut pairs {
                let url = p.outbound.url("/");
                let fixed = h1_rate::at_fixed_rate(ctx, url.clone(), f64::from(s.mesh_secs))
                    .and_then(|o| {
                        anyhow::ensure!(o.errors == 0, "{} errors at the fixed rate", o.errors);
                        Ok([o.p50_ms, o.p99_ms, o.p999_ms])
                    });
                if let Err(e) = &fixed {
                    notes.push(format!("{} round {}: {e:#}", p.target.name(), round + 1));
                }
                latency.entry(p.target).or_default().push(fixed.ok());
                let inbound = p.inbound.pgid().map(group_pids).unwrap_or_default();
                let outbound = p.outbound.pgid().map(group_pids).unwrap_or_default();
                match measure_url(ctx, &url, &p.pids(), s.connections, f64::from(s.mesh_secs)) {
                    Ok(m) => {
                        rps.push(p.target, m.wrk.requests_per_sec());
                        if m.wrk.requests > 0 {
                            if let Some(cpu) = m.cpu_secs {
                                cpu_us.push(p.target, cpu / m.wrk.requests as f64 * 1e6);
                            }
                        }
                        if m.wrk.errors > 0 {
                            notes.push(format!(
                                "{} round {}: {} errors of {} requests",
                                p.target.name(),
                                round + 1,
                                m.wrk.errors,
                                m.wrk.requests
                            ));
                        }
                    }
                    Err(e) => notes.push(format!("{} round {}: {e:#}", p.target.name(), round + 1)),
                }
                rss_in.push(p.target, mib(rss_bytes(&inbound)));
                rss_out.push(p.target, mib(rss_bytes(&outbound)));
                if let Err(e) = p.check_alive() {
                    notes.push(format!("{} round {}: {e:#}", p.target.name(), round + 1));
                }
            }
        }
        let mut rows = h1_rate::rows(self.id(), &latency, notes);
        rows.push(rps.row(self.id(), metric::REQUESTS_PER_SEC, Better::Higher));
        rows.push(cpu_us.row(self.id(), METRIC_CPU_US, Better::Lower));
        rows.push(rss_in.row(self.id(), METRIC_RSS_INBOUND, Better::Lower));
        rows.push(rss_out.row(self.id(), METRIC_RSS_OUTBOUND, Better::Lower));
        Ok(rows)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}
