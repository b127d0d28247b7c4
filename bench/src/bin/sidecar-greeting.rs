//! sidecar-greeting: what a pair of meshwork sidecars adds to a server-first connection.
//!
//! Two pairs of pods (network namespaces on a veth link, as the e2e suite builds them):
//! one plain, one with `meshwork init` and a meshwork sidecar (UID 1337) in each pod. In
//! pod B a server writes a greeting the moment it accepts (like MySQL or SMTP); from
//! pod A a client connects to B's address and reads the greeting without sending a byte.
//! Measured: connect start to greeting read, inside pod A. Through the sidecars the path
//! is app -> outbound sidecar (protocol detection: the server spoke first) -> mTLS ->
//! inbound sidecar -> app. The pairs alternate connection by connection, so drift hits
//! both alike; each round gives p50 and p99 per path, and the added latency is the
//! meshed figure minus the direct one. At the end, both sidecars' counts of meshed
//! handshakes (full or resumed) and warm spares are printed.
//!
//! Needs root (namespaces, nftables) and a `meshwork` binary: the release one next to
//! this binary, or `MESHWORK_BIN`. Run it with
//! `cargo build --release -p meshwork-proxy --bin meshwork -p meshwork-bench --bin sidecar-greeting && target/release/sidecar-greeting`.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use meshwork_bench::machine;
use meshwork_bench::stats::Summary;
use meshwork_tests::pods::{GreetingServer, MeshedPods, Pod, Pods, read_greeting};

/// The per-connection bound: far above any figure measured, so a stall shows as an error.
const CONNECTION_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(about = "The latency meshwork sidecars add to a server-first connection")]
struct Args {
    /// Measured rounds; each gives a p50 and a p99 per path.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Connections per path per round.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Unmeasured connections per path before the first round.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// B's server port: not in the built-in server-first list, so the outbound sidecar
    /// detects (the race) rather than being told. Use 3306 to measure the hinted path.
    #[arg(long, default_value_t = 7001)]
    port: u16,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.connections == 0 {
        bail!("--rounds and --connections must be at least 1");
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("sidecar-greeting needs root: it creates network namespaces and nftables rules");
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    println!(
        "machine: {} CPUs, {}; load average before: {}",
        machine::online_cpus(&cpuinfo),
        machine::cpu_model(&cpuinfo),
        machine::loadavg()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime")?;
    let rounds = runtime.block_on(measure(&args))?;
    println!("load average after: {}", machine::loadavg());
    report(&args, &rounds);
    Ok(())
}

/// One round's percentiles, in microseconds.
#[derive(Debug)]
struct Round {
    direct: (f64, f64),
    meshed: (f64, f64),
}

async fn measure(args: &Args) -> anyhow::Result<Vec<Round>> {
    let any = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), args.port);
    let direct = Pods::new();
    let _direct_server = direct.b.run(GreetingServer::start(any, "direct")).await;
    let meshed = MeshedPods::builder().start().await;
    let _meshed_server = meshed
        .pods
        .b
        .run(GreetingServer::start(any, "meshed"))
        .await;
    let paths = [
        (&direct.a, direct.b.addr_v4(args.port)),
        (&meshed.pods.a, meshed.pods.b.addr_v4(args.port)),
    ];

    for _ in 0..args.warmup {
        for (client, addr) in paths {
            greeting_micros(client, addr).await?;
        }
    }
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let mut samples = [
            Vec::with_capacity(args.connections),
            Vec::with_capacity(args.connections),
        ];
        for _ in 0..args.connections {
            for (i, (client, addr)) in paths.iter().enumerate() {
                samples[i].push(greeting_micros(client, *addr).await?);
            }
        }
        let [direct, meshed] = samples.map(|mut s| {
            s.sort_by(f64::total_cmp);
            (percentile(&s, 0.50), percentile(&s, 0.99))
        });
        eprintln!(
            "round {}: direct p50 {:.0} µs p99 {:.0} µs; meshed p50 {:.0} µs p99 {:.0} µs",
            round + 1,
            direct.0,
            direct.1,
            meshed.0,
            meshed.1
        );
        rounds.push(Round { direct, meshed });
    }
    // How the meshed connections were made: full or resumed handshakes, spares used.
    for (pod, sidecar) in [("A", &meshed.a_sidecar), ("B", &meshed.b_sidecar)] {
        let (_, metrics) = sidecar
            .admin_get("/metrics")
            .await
            .map_err(anyhow::Error::msg)
            .context("the sidecar's metrics")?;
        for line in metrics.lines().filter(|l| {
            l.starts_with("meshwork_mesh_handshakes_total")
                || l.starts_with("meshwork_mesh_spares_total")
        }) {
            println!("pod {pod}'s sidecar: {line}");
        }
    }
    Ok(rounds)
}

/// Connect start to greeting read, in microseconds, measured inside `client`'s pod.
async fn greeting_micros(client: &Pod, addr: SocketAddr) -> anyhow::Result<f64> {
    let (_, elapsed, _) = client
        .run(read_greeting(addr, CONNECTION_BOUND))
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("greeting from {addr}"))?;
    Ok(elapsed.as_secs_f64() * 1e6)
}

/// The `q` quantile of sorted, non-empty samples (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(args: &Args, rounds: &[Round]) {
    let figure = |pick: &dyn Fn(&Round) -> f64| {
        let values: Vec<f64> = rounds.iter().map(pick).collect();
        let s = Summary::of(&values).expect("at least one round");
        format!("{:>8.0} ±{:.0}%", s.median, s.spread_percent())
    };
    println!(
        "\nserver greeting on port {}, {} rounds x {} connections per path (µs; median over rounds, ± half the range):",
        args.port,
        rounds.len(),
        args.connections
    );
    println!("| path | p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| direct | {} | {} |",
        figure(&|r| r.direct.0),
        figure(&|r| r.direct.1)
    );
    println!(
        "| through both sidecars | {} | {} |",
        figure(&|r| r.meshed.0),
        figure(&|r| r.meshed.1)
    );
    println!(
        "| added | {} | {} |",
        figure(&|r| r.meshed.0 - r.direct.0),
        figure(&|r| r.meshed.1 - r.direct.1)
    );
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.50), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
