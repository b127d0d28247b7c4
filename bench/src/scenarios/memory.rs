//! Scenario 5: memory and startup. Each round starts every proxy afresh, its executable
//! first dropped from the page cache (`targets::evict_from_page_cache`: read from disk,
//! as a container's first start on a node reads it): time from spawn
//! to ready (`/ready` answers 200 for meshwork; the port accepts for nginx and HAProxy),
//! RSS once idle, then RSS while holding 10,000 idle keep-alive client connections
//! (each has done one request). RSS is summed over the proxy's processes (nginx: master
//! and worker); PSS is in the JSON notes for nginx, whose two processes share pages.

use std::time::Duration;

use super::{Ctx, Samples, Scenario, Settings};
use crate::goals::metric;
use crate::idle::IdleConnections;
use crate::process::{group_pids, usage};
use crate::report::{Better, Row};
use crate::targets;

/// Time to settle after ready before reading idle RSS.
const SETTLE: Duration = Duration::from_millis(300);
/// Bound on opening the idle connections.
const OPEN_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Memory;

const MIB: f64 = 1024.0 * 1024.0;

impl Scenario for Memory {
    fn id(&self) -> &'static str {
        crate::goals::scenario::MEMORY
    }

    fn describe(&self) -> &'static str {
        "memory: startup to ready, RSS idle after start, RSS with 10,000 idle keep-alive client connections"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        // Start, settle, ~0.2 ms per connection to open, settle, stop.
        let per = 1.0 + s.idle_connections as f64 * 0.0002;
        Duration::from_secs_f64(3.0 * s.memory_rounds as f64 * per)
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        ctx.stop_targets();
        let s = ctx.settings.clone();
        let mut startup_ms = Samples::default();
        let mut idle_mib = Samples::default();
        let mut conns_mib = Samples::default();
        let mut notes = Vec::new();
        for round in 0..s.memory_rounds {
            for target in ctx.proxies() {
                let tag = format!("mem{round}");
                let result = (|| -> anyhow::Result<()> {
                    if let Some(program) = ctx.env.program(target) {
                        targets::evict_from_page_cache(program)?;
                    }
                    let mut running = targets::start(target, &ctx.env, ctx.upstream_port, &tag)?;
                    startup_ms.push(target, running.startup.as_secs_f64() * 1e3);
                    std::thread::sleep(SETTLE);
                    let pids = running.pgid().map(group_pids).unwrap_or_default();
                    let idle = usage(&pids);
                    idle_mib.push(target, idle.rss_bytes as f64 / MIB);
                    let conns = IdleConnections::open(
                        running.ports.http,
                        s.idle_connections,
                        OPEN_DEADLINE,
                    )?;
                    std::thread::sleep(SETTLE);
                    let held = usage(&pids);
                    let open = conns.still_open();
                    if open < conns.len() {
                        notes.push(format!(
                            "{} round {}: only {open} of {} idle connections still open when measured",
                            target.name(),
                            round + 1,
                            conns.len()
                        ));
                    }
                    conns_mib.push(target, held.rss_bytes as f64 / MIB);
                    if round == 0 && pids.len() > 1 {
                        notes.push(format!(
                            "{}: {} processes; PSS idle {:.1} MiB, with connections {:.1} MiB",
                            target.name(),
                            pids.len(),
                            idle.pss_bytes as f64 / MIB,
                            held.pss_bytes as f64 / MIB
                        ));
                    }
                    running.check_alive()?;
                    drop(conns);
                    Ok(())
                })();
                if let Err(e) = result {
                    notes.push(format!("{} round {}: {e:#}", target.name(), round + 1));
                }
            }
        }
        let mut first = startup_ms.row(self.id(), metric::STARTUP_MS, Better::Lower);
        first.notes = notes;
        Ok(vec![
            first,
            idle_mib.row(self.id(), metric::IDLE_RSS_MIB, Better::Lower),
            conns_mib.row(self.id(), metric::IDLE_CONNS_RSS_MIB, Better::Lower),
        ])
    }
}
