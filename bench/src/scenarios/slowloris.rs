//! Slowloris waves: whether a proxy gives memory back after an attack. Each round starts
//! every proxy afresh, reads its RSS once idle, then sends five waves of 5,000
//! connections that each send the start of a request head and nothing more; every proxy
//! closes them at its 2 s header timeout (meshwork, HAProxy and Envoy answer 408 first;
//! nginx closes without answering). RSS is read one second after each wave's last
//! connection closed; the row is the RSS after the last wave against the start.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{Ctx, Samples, Scenario, Settings};
use crate::goals::metric;
use crate::process::{group_pids, usage};
use crate::report::{Better, Row};
use crate::targets::{self, Target};

/// Connections per wave and waves per round (issue 15's attack).
pub const WAVE_CONNECTIONS: usize = 5_000;
pub const WAVES: usize = 5;
/// What each connection sends: a request head that never ends.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: ";
/// Every target's header timeout is 2 s; a connection not closed by then plus this is a
/// proxy that does not enforce it.
const CLOSE_DEADLINE: Duration = Duration::from_secs(15);
/// RSS after a wave barely moves between rounds, and a round takes ~20 s per target.
const ROUNDS: usize = 1;
/// From the last close of a wave to the RSS reading.
const SETTLE: Duration = Duration::from_secs(1);
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug)]
pub struct Slowloris;

impl Scenario for Slowloris {
    fn id(&self) -> &'static str {
        crate::goals::scenario::SLOWLORIS
    }

    fn describe(&self) -> &'static str {
        "slowloris waves: RSS idle, then after each of 5 waves of 5,000 connections sending an unfinished request head (closed at the 2 s header timeout)"
    }

    fn estimate(&self, _: &Settings) -> Duration {
        // Per wave: open (~0.1 ms each), the 2 s timeout, settle.
        let wave = WAVE_CONNECTIONS as f64 * 0.0001 + 2.0 + SETTLE.as_secs_f64();
        Duration::from_secs_f64(4.0 * ROUNDS as f64 * (1.0 + WAVES as f64 * wave))
    }

    fn in_quick_all(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        ctx.stop_targets();
        let mut start_mib = Samples::default();
        let mut after_mib: Vec<Samples> = (0..WAVES).map(|_| Samples::default()).collect();
        let mut ratio = Samples::default();
        let mut notes = Vec::new();
        for round in 0..ROUNDS {
            for target in ctx.proxies() {
                let tag = format!("slowloris{round}");
                let result = (|| -> anyhow::Result<()> {
                    let mut running = targets::start(target, &ctx.env, ctx.upstream_port, &tag)?;
                    std::thread::sleep(SETTLE);
                    let pids = running.pgid().map(group_pids).unwrap_or_default();
                    let rss = || usage(&pids).rss_bytes as f64 / MIB;
                    let start = rss();
                    start_mib.push(target, start);
                    for (wave, after) in after_mib.iter_mut().enumerate() {
                        let answered = wave_of(running.ports.http)
                            .with_context(|| format!("wave {}", wave + 1))?;
                        // nginx closes at its header timeout without answering.
                        if answered < WAVE_CONNECTIONS && target != Target::Nginx {
                            notes.push(format!(
                                "{} round {} wave {}: {answered} of {WAVE_CONNECTIONS} connections answered 408",
                                target.name(),
                                round + 1,
                                wave + 1
                            ));
                        }
                        std::thread::sleep(SETTLE);
                        after.push(target, rss());
                    }
                    ratio.push(target, rss() / start);
                    running.check_alive()
                })();
                if let Err(e) = result {
                    notes.push(format!("{} round {}: {e:#}", target.name(), round + 1));
                }
            }
        }
        let mut rows = vec![start_mib.row(self.id(), metric::IDLE_RSS_MIB, Better::Lower)];
        for (wave, after) in after_mib.into_iter().enumerate() {
            rows.push(after.row(
                self.id(),
                &format!("RSS after wave {} (MiB)", wave + 1),
                Better::Lower,
            ));
        }
        let mut last = ratio.row(self.id(), metric::SLOWLORIS_RSS_RATIO, Better::Lower);
        last.notes = notes;
        rows.push(last);
        Ok(rows)
    }
}

/// One wave: opens [`WAVE_CONNECTIONS`] connections, each sending [`PARTIAL_HEAD`], then
/// waits for the proxy to close every one; how many got a 408 first.
fn wave_of(port: u16) -> anyhow::Result<usize> {
    let mut conns = Vec::with_capacity(WAVE_CONNECTIONS);
    for i in 0..WAVE_CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connection {i} of {WAVE_CONNECTIONS}"))?;
        s.write_all(PARTIAL_HEAD)?;
        conns.push(s);
    }
    let deadline = Instant::now() + CLOSE_DEADLINE;
    let mut answered = 0;
    let mut buf = [0u8; 512];
    for s in &mut conns {
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("connections still open {CLOSE_DEADLINE:?} after the wave");
            }
            s.set_read_timeout(Some(left))?;
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // A reset after the 408 (the proxy closed with unread bytes) ends it too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
        answered += usize::from(got.starts_with(b"HTTP/1.1 408"));
    }
    Ok(answered)
}
