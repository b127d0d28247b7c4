//! `kube-scale`: `meshwork-control --kubernetes` at scale — how long it takes to load a
//! large cluster, how much memory it holds per endpoint, and how long an EndpointSlice
//! change takes to reach every subscribed proxy while the endpoints churn.
//!
//! The bench runs the tests' fake Kubernetes API server (`meshwork_tests::kube_api`) in
//! its own process, loads it with `--services` Services (one TCP port each, `http` 80)
//! and their EndpointSlices (`--endpoints` per Service, cut into slices of at most 100
//! endpoints as the EndpointSlice controller does; every endpoint ready, with a zone and
//! a Pod `targetRef`; with `--pods`, each Pod too, annotated as meshed), then starts a
//! release `meshwork-control --kubernetes` on it and measures:
//!
//! - **load**: from spawning the control plane to it serving (its address file written:
//!   it waits for the first list of every watch and reads once before it binds), then
//!   the time for `--streams` discovery streams to receive their first (full) response;
//! - **memory**: the control plane's RSS (`/proc/PID/status`) once loaded, before any
//!   stream, and with the streams subscribed; run it at several `--services` to see
//!   whether it is linear (the figure per endpoint is the slope between two sizes);
//! - **churn**: `--churn-rate` endpoint changes per second for `--churn-seconds`, each
//!   one EndpointSlice write replacing one endpoint's address with a fresh one (Services
//!   taken in turn, so the same one is touched again only after every other was); per
//!   change and stream, the time from the write (the watch event is sent to the control
//!   plane's open watch at that moment) to the stream receiving an `endpoints` resource
//!   whose body holds the new address; p50 / p99 / max over every (change, stream) pair,
//!   and the control plane's CPU (utime + stime from `/proc/PID/stat`) over the churn.
//!
//! The streams stand for proxies (one TCP connection each, ACKing every response, as
//! `control-fanout` does); a real proxy would also build every cluster it is sent, which
//! is its own cost, not the control plane's. The bench itself (API server and streams)
//! runs on the same machine and takes CPU from the control plane: its figures are upper
//! bounds; build it with optimizations too (a debug build of the API server and the
//! streams, not the control plane, sets the pace at 100k endpoints). Run it with
//!
//! ```sh
//! cargo build --release -p meshwork-control
//! cargo run --release -p meshwork-bench --bin kube-scale -- --services 5000 --endpoints 20 \
//!     --streams 100 --churn-rate 500 --churn-seconds 10
//! ```
#![forbid(unsafe_code)]

use meshwork_bench::process::{KillOnDrop, raise_file_limit};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use meshwork_config::discovery::discovery_client::DiscoveryClient;
use meshwork_config::discovery::{DiscoveryRequest, Kind, Node};
use meshwork_tests::kube_api::FakeApiServer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, Parser)]
#[command(name = "kube-scale", about)]
struct Cli {
    /// Services (one port each).
    #[arg(long, default_value_t = 5000)]
    services: usize,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 20)]
    endpoints: usize,
    /// Subscribed discovery streams (one connection each).
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Endpoint changes per second during the churn.
    #[arg(long, default_value_t = 500)]
    churn_rate: usize,
    /// How long the churn lasts, in seconds (0: no churn, load and memory only).
    #[arg(long, default_value_t = 10)]
    churn_seconds: u64,
    /// Also create every endpoint's Pod, annotated as meshed.
    #[arg(long)]
    pods: bool,
    /// The `meshwork-control` binary (default: target/release/meshwork-control).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

/// Endpoints per EndpointSlice at most (the EndpointSlice controller's default).
const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The namespace of every object.
const NAMESPACE: &str = "bench";
/// The endpoints' port.
const TARGET_PORT: u16 = 8080;
/// How long loading, subscribing or the last change's arrival may take before the run fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);
/// How many times a stream connects before it gives up.
const STREAM_ATTEMPTS: usize = 5;
/// Set once the figures are printed: streams failing after that (the control plane is
/// being stopped) are not worth a message.
static FINISHED: AtomicBool = AtomicBool::new(false);

fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

/// The cluster the control plane makes of Service `i`'s port.
fn cluster_name(i: usize) -> String {
    format!("svc-{i}.{NAMESPACE}.svc:80")
}

/// The `n`-th pod address: 10.0.0.0/9, one per endpoint at load.
fn pod_ip(n: usize) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 0x7f, (n >> 8) & 0xff, n & 0xff)
}

/// The `n`-th fresh address written by the churn: 10.128.0.0/9, never used at load.
fn churn_ip(n: usize) -> String {
    format!(
        "10.{}.{}.{}",
        128 + ((n >> 16) & 0x7f),
        (n >> 8) & 0xff,
        n & 0xff
    )
}

fn meta(name: String, labels: Option<BTreeMap<String, String>>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(NAMESPACE.into()),
        labels,
        ..ObjectMeta::default()
    }
}

fn service(i: usize) -> Service {
    Service {
        metadata: meta(service_name(i), None),
        spec: Some(ServiceSpec {
            cluster_ip: Some(format!("172.16.{}.{}", (i >> 8) & 0xff, i & 0xff)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: None,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Slice `s` of Service `i`, holding the given (ip, pod) endpoints.
fn slice(i: usize, s: usize, endpoints: &[(String, String)]) -> EndpointSlice {
    let labels = [("kubernetes.io/service-name".to_string(), service_name(i))].into();
    EndpointSlice {
        metadata: meta(format!("{}-{s}", service_name(i)), Some(labels)),
        address_type: "IPv4".into(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(i32::from(TARGET_PORT)),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
        endpoints: endpoints
            .iter()
            .map(|(ip, pod)| Endpoint {
                addresses: vec![ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                zone: Some(format!("zone-{}", ip.len() % 3)),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some(pod.clone()),
                    namespace: Some(NAMESPACE.into()),
                    ..ObjectReference::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
    }
}

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            annotations: Some([("meshwork.io/injected".to_string(), "true".to_string())].into()),
            ..meta(name.to_string(), None)
        },
        ..Pod::default()
    }
}

/// Every Service's endpoints as the API server holds them: `(ip, pod name)`.
type Endpoints = Vec<Vec<(String, String)>>;

/// One churn change: which Service, the fresh address it wrote, when.
#[derive(Clone, Debug)]
struct Change {
    marker: String,
    written: Instant,
}

/// What the streams record: every change (by index), the changes pending per Service,
/// and each (change, stream) arrival.
#[derive(Default)]
struct Tracker {
    changes: Vec<Change>,
    by_service: HashMap<String, Vec<usize>>,
    arrivals: Vec<Vec<Option<Instant>>>,
}

type Shared = Arc<Mutex<Tracker>>;

fn lock(tracker: &Shared) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let total = cli.services * cli.endpoints;
    eprintln!(
        "loading the fake API server: {} Services x {} endpoints = {total} endpoints",
        cli.services, cli.endpoints
    );
    let api = FakeApiServer::start().await;
    let mut endpoints: Endpoints = Vec::with_capacity(cli.services);
    let loading = Instant::now();
    for i in 0..cli.services {
        api.apply(&service(i));
        let list: Vec<(String, String)> = (0..cli.endpoints)
            .map(|e| {
                let n = i * cli.endpoints + e;
                (pod_ip(n), format!("pod-{n}"))
            })
            .collect();
        for (s, chunk) in list.chunks(MAX_ENDPOINTS_PER_SLICE).enumerate() {
            api.apply(&slice(i, s, chunk));
        }
        if cli.pods {
            for (_, name) in &list {
                api.apply(&pod(name));
            }
        }
        endpoints.push(list);
    }
    eprintln!("fake API server loaded in {:?}", loading.elapsed());

    let dir = tempfile::tempdir()?;
    let kubeconfig = api.kubeconfig(dir.path());
    let fragments = dir.path().join("fragments");
    std::fs::create_dir(&fragments)?;
    let address_file = dir.path().join("addresses");
    let spawned = Instant::now();
    let child = std::process::Command::new(&control_bin)
        .arg("--config-dir")
        .arg(&fragments)
        .arg("--kubernetes")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--address-file")
        .arg(&address_file)
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .spawn()?;
    let control = KillOnDrop(child);
    let pid = control.0.id();
    let listen = wait_for_address(&address_file, spawned).await?;
    let load_time = spawned.elapsed();
    let rss_loaded = rss_kib(pid)?;
    eprintln!(
        "control plane serving after {load_time:?}; RSS {} MiB",
        rss_loaded / 1024
    );

    let tracker: Shared = Arc::new(Mutex::new(Tracker::default()));
    let (subscribed_tx, mut subscribed_rx) = mpsc::channel::<usize>(cli.streams);
    let url = format!("http://{listen}");
    for s in 0..cli.streams {
        let (url, tracker, subscribed) = (url.clone(), tracker.clone(), subscribed_tx.clone());
        tokio::spawn(async move {
            // A stream that fails reconnects, as a proxy does (a busy machine may miss
            // an HTTP/2 keepalive); it reports its subscription once.
            let mut reported = false;
            for _ in 0..STREAM_ATTEMPTS {
                let result = subscribe(s, &url, &tracker, &subscribed, &mut reported).await;
                if let Err(error) = result {
                    if FINISHED.load(Ordering::Relaxed) {
                        return;
                    }
                    eprintln!("stream {s}: {error}; reconnecting");
                }
            }
        });
    }
    drop(subscribed_tx);
    let connecting = Instant::now();
    for _ in 0..cli.streams {
        let clusters = tokio::time::timeout(PHASE_TIMEOUT, subscribed_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("a stream failed to subscribe"))?;
        anyhow::ensure!(
            clusters == cli.services,
            "a stream's first response held {clusters} endpoints resources, not {}",
            cli.services
        );
    }
    let subscribe_time = connecting.elapsed();
    let rss_streams = rss_kib(pid)?;
    eprintln!(
        "{} streams got the full set in {subscribe_time:?}; RSS {} MiB",
        cli.streams,
        rss_streams / 1024
    );

    let churn = if cli.churn_seconds > 0 && cli.churn_rate > 0 {
        Some(run_churn(&cli, &api, &mut endpoints, &tracker, pid).await?)
    } else {
        None
    };
    let rss_end = rss_kib(pid)?;
    let peak = peak_rss_kib(pid)?;
    FINISHED.store(true, Ordering::Relaxed);

    println!(
        "{} services x {} endpoints = {total} endpoints{}, {} streams",
        cli.services,
        cli.endpoints,
        if cli.pods { " (with pods)" } else { "" },
        cli.streams
    );
    println!(
        "load: serving after {:.2} s; {} streams got the full set in {:.2} s",
        load_time.as_secs_f64(),
        cli.streams,
        subscribe_time.as_secs_f64()
    );
    println!(
        "memory: RSS {:.1} MiB loaded ({:.0} bytes per endpoint, all of it), {:.1} MiB with the streams, {:.1} MiB at the end, peak {:.1} MiB",
        rss_loaded as f64 / 1024.0,
        rss_loaded as f64 * 1024.0 / total.max(1) as f64,
        rss_streams as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    if let Some(churn) = churn {
        println!("{churn}");
    }
    Ok(())
}

/// Churns, waits for every change to reach every stream, and says how it went.
async fn run_churn(
    cli: &Cli,
    api: &FakeApiServer,
    endpoints: &mut Endpoints,
    tracker: &Shared,
    pid: u32,
) -> anyhow::Result<String> {
    let count = cli.churn_rate * cli.churn_seconds as usize;
    {
        let mut t = lock(tracker);
        t.arrivals = vec![vec![None; cli.streams]; count];
        t.changes.reserve(count);
    }
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    // Writes in 10 ms ticks, catching up when a tick was late.
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    let mut written = 0;
    while written < count {
        interval.tick().await;
        let due =
            ((started.elapsed().as_secs_f64() * cli.churn_rate as f64) as usize + 1).min(count);
        while written < due {
            let service = written % cli.services;
            let round = written / cli.services;
            let list = &mut endpoints[service];
            let e = round % list.len();
            let marker = format!("\"{}:{TARGET_PORT}\"", churn_ip(written));
            list[e].0 = churn_ip(written);
            {
                let mut t = lock(tracker);
                t.by_service
                    .entry(cluster_name(service))
                    .or_default()
                    .push(written);
                t.changes.push(Change {
                    marker,
                    written: Instant::now(),
                });
            }
            let s = e / MAX_ENDPOINTS_PER_SLICE;
            let chunk: Vec<(String, String)> = list
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .nth(s)
                .map(<[_]>::to_vec)
                .unwrap_or_default();
            api.apply(&slice(service, s, &chunk));
            written += 1;
        }
    }
    let writing = started.elapsed();
    let waiting = Instant::now();
    loop {
        let done = lock(tracker)
            .arrivals
            .iter()
            .all(|per_stream| per_stream.iter().all(Option::is_some));
        if done {
            break;
        }
        if waiting.elapsed() >= PHASE_TIMEOUT {
            eprintln!(
                "the churn's changes did not all reach every stream in {PHASE_TIMEOUT:?}: the missing ones count as the bound"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = started.elapsed();
    let cpu = cpu_ticks(pid)? - cpu_before;
    let t = lock(tracker);
    let mut samples: Vec<Duration> = t
        .arrivals
        .iter()
        .zip(&t.changes)
        .flat_map(|(per_stream, change)| {
            per_stream.iter().map(move |at| match at {
                Some(at) => at.saturating_duration_since(change.written),
                None => started.elapsed(),
            })
        })
        .collect();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let ticks_per_second = 100.0;
    Ok(format!(
        "churn: {count} endpoint changes at {}/s (written in {:.2} s, all arrived {:.2} s after the first): change -> every stream p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; control plane CPU {:.2} s = {:.0}% of one core over the churn",
        cli.churn_rate,
        writing.as_secs_f64(),
        busy.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        cpu as f64 / ticks_per_second,
        cpu as f64 / ticks_per_second / busy.as_secs_f64() * 100.0,
    ))
}

/// One stream: subscribe, ACK everything, record when each change's address arrives.
/// Reports, once, how many endpoints resources its first response held.
async fn subscribe(
    s: usize,
    url: &str,
    tracker: &Shared,
    subscribed: &mpsc::Sender<usize>,
    reported: &mut bool,
) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect()
        .await?;
    let mut client = DiscoveryClient::new(channel).max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: format!("bench-{s}"),
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
            let clusters = response
                .resources
                .iter()
                .filter(|r| r.kind == Kind::Endpoints as i32)
                .count();
            if !*reported {
                *reported = true;
                let _ = subscribed.send(clusters).await;
            }
        }
        // A reconnected stream's first response carries the changes it missed.
        {
            let mut t = lock(tracker);
            let Tracker {
                changes,
                by_service,
                arrivals,
            } = &mut *t;
            for resource in &response.resources {
                if resource.kind != Kind::Endpoints as i32 {
                    continue;
                }
                for &c in by_service.get(&resource.name).into_iter().flatten() {
                    let slot = &mut arrivals[c][s];
                    if slot.is_none() && resource.body.contains(&changes[c].marker) {
                        *slot = Some(now);
                    }
                }
            }
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

async fn wait_for_address(file: &Path, since: Instant) -> anyhow::Result<String> {
    loop {
        if let Some(line) = std::fs::read_to_string(file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("listen ").map(str::to_string))
        }) {
            return Ok(line);
        }
        anyhow::ensure!(
            since.elapsed() < PHASE_TIMEOUT,
            "meshwork-control did not start serving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}
