//! `control-fanout`: how long one change of the control plane's directory takes to reach
//! every subscribed proxy stream.
//!
//! Starts `meshwork-control` on a temporary directory, opens `--streams` discovery
//! streams (one TCP connection each, as that many proxies would), each ACKing what it is
//! sent, then rewrites a fragment `--changes` times. For each change it records, per
//! stream, the time from the file's rename into place to the stream receiving the new
//! version, and prints p50 / p99 / max over every (change, stream) pair. The figure
//! includes the control plane's 100 ms settle delay after a file event (editors and
//! ConfigMap updates write in several steps), so it is that plus the fan-out.
#![forbid(unsafe_code)]

use meshwork_bench::process::{KillOnDrop, raise_file_limit};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use meshwork_config::discovery::discovery_client::DiscoveryClient;
use meshwork_config::discovery::{DiscoveryRequest, Node};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, Parser)]
#[command(name = "control-fanout", about)]
struct Cli {
    /// Subscribed streams (one connection each).
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Changes to measure.
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// The `meshwork-control` binary (default: target/release/meshwork-control).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

/// Set once the figures are printed: streams failing after that (the control plane is
/// being stopped) are not worth a message.
static FINISHED: AtomicBool = AtomicBool::new(false);

/// How long one change may take to reach every stream before the run fails.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

fn cluster_file(port: u16) -> String {
    format!("clusters:\n  - name: api\n    endpoints: [127.0.0.1:{port}]\n")
}

fn write_atomically(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write a fragment");
    std::fs::rename(&tmp, dir.join(name)).expect("rename a fragment into place");
}

/// Every stream's arrival time of each change: `arrivals[change][stream]`.
type Arrivals = Arc<Mutex<Vec<Vec<Option<Instant>>>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_file_limit();
    let control_bin = cli.control.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/meshwork-control")
    });
    anyhow::ensure!(
        control_bin.is_file(),
        "{} not found: build it with `cargo build --release -p meshwork-control` or pass --control",
        control_bin.display()
    );
    let dir = tempfile::tempdir()?;
    write_atomically(dir.path(), "clusters.yaml", &cluster_file(9000));
    let address_file = dir.path().join(".addresses");
    let child = std::process::Command::new(&control_bin)
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--address-file")
        .arg(&address_file)
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .spawn()?;
    let _child = KillOnDrop(child);
    let started = Instant::now();
    let listen = loop {
        if let Some(line) = std::fs::read_to_string(&address_file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("listen ").map(str::to_string))
        }) {
            break line;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "meshwork-control did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let url = format!("http://{listen}");

    let arrivals: Arrivals = Arc::new(Mutex::new(vec![vec![None; cli.streams]; cli.changes + 1]));
    // The change number each response belongs to, published before the file is written.
    let (change_tx, change_rx) = watch::channel(0usize);
    let (subscribed_tx, mut subscribed_rx) = mpsc::channel::<()>(cli.streams);
    for i in 0..cli.streams {
        let (url, arrivals, change_rx, subscribed) = (
            url.clone(),
            arrivals.clone(),
            change_rx.clone(),
            subscribed_tx.clone(),
        );
        tokio::spawn(async move {
            if let Err(error) = subscribe(i, &url, arrivals, change_rx, subscribed).await {
                if !FINISHED.load(Ordering::Relaxed) {
                    eprintln!("stream {i}: {error}");
                }
            }
        });
    }
    drop(subscribed_tx);
    let connecting = Instant::now();
    for _ in 0..cli.streams {
        tokio::time::timeout(CHANGE_TIMEOUT, subscribed_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("a stream failed to subscribe"))?;
    }
    eprintln!(
        "{} streams subscribed in {:?}",
        cli.streams,
        connecting.elapsed()
    );

    let mut samples: Vec<Duration> = Vec::new();
    for change in 1..=cli.changes {
        tokio::time::sleep(Duration::from_millis(500)).await;
        change_tx.send_replace(change);
        let written = Instant::now();
        write_atomically(
            dir.path(),
            "clusters.yaml",
            &cluster_file(9000 + change as u16),
        );
        loop {
            let done = arrivals.lock().unwrap_or_else(|e| e.into_inner())[change]
                .iter()
                .all(Option::is_some);
            if done {
                break;
            }
            anyhow::ensure!(
                written.elapsed() < CHANGE_TIMEOUT,
                "change {change} did not reach every stream"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all = arrivals.lock().unwrap_or_else(|e| e.into_inner())[change].clone();
        let mut these: Vec<Duration> = all.into_iter().flatten().map(|t| t - written).collect();
        these.sort();
        eprintln!(
            "change {change}: p50 {:?}  p99 {:?}  max {:?}",
            these[these.len() / 2],
            these[(these.len() * 99 / 100).min(these.len() - 1)],
            these[these.len() - 1]
        );
        samples.extend(these);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "one change to {} streams ({} changes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        cli.streams,
        cli.changes,
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
    FINISHED.store(true, Ordering::Relaxed);
    Ok(())
}

/// One stream: subscribe, ACK everything, record when each change arrives.
async fn subscribe(
    i: usize,
    url: &str,
    arrivals: Arrivals,
    change: watch::Receiver<usize>,
    subscribed: mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect()
        .await?;
    let mut client = DiscoveryClient::new(channel);
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: format!("bench-{i}"),
            labels: Default::default(),
        }),
        ..DiscoveryRequest::default()
    })
    .await?;
    let mut responses = client.stream(ReceiverStream::new(rx)).await?.into_inner();
    let mut first = true;
    while let Some(response) = responses.message().await? {
        let now = Instant::now();
        if first {
            first = false;
            let _ = subscribed.send(()).await;
        } else {
            let n = *change.borrow();
            arrivals.lock().unwrap_or_else(|e| e.into_inner())[n][i].get_or_insert(now);
        }
        tx.send(DiscoveryRequest {
            response_nonce: response.nonce,
            version: response.version,
            ..DiscoveryRequest::default()
        })
        .await?;
    }
    Ok(())
}
