//! Load balancing end to end: real upstreams behind each `load_balancer`, endpoint
//! weights, hash keys that stick, and a slow endpoint that latency- and load-aware
//! balancers avoid.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use meshwork_tests::yaml::{EDGE_PREAMBLE, dedent, indent};
use meshwork_tests::{HttpClient, Proxy, Upstream};

/// An edge config with one route to cluster `app`, whose fields after `name: app` are
/// `cluster` (e.g. `load_balancer: ...` and `endpoints: ...`).
fn app_config(cluster: &str) -> String {
    format!(
        "{EDGE_PREAMBLE}route_tables:\n  edge:\n    - name: all\n      backends: [{{ cluster: app }}]\nclusters:\n  - name: app\n{}",
        indent(&dedent(cluster), 4)
    )
}

fn endpoints_yaml(upstreams: &[&Upstream]) -> String {
    upstreams
        .iter()
        .map(|u| format!("{}, ", u.endpoint()))
        .collect::<String>()
        .trim_end_matches(", ")
        .to_owned()
}

/// Sends `total` GETs to `/` from `concurrency` clients at once and returns how many
/// each upstream (by its `x-upstream` name) answered.
async fn spread(proxy: &Proxy, total: usize, concurrency: usize) -> HashMap<String, usize> {
    let url = Arc::new(proxy.url("edge", "/"));
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(total));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (url, left) = (url.clone(), left.clone());
        workers.push(tokio::spawn(async move {
            let client = HttpClient::h1();
            let mut seen: HashMap<String, usize> = HashMap::new();
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let reply = client.get(&url).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
                *seen
                    .entry(reply.upstream().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            seen
        }));
    }
    let mut all = HashMap::new();
    for worker in workers {
        for (name, n) in worker.await.unwrap() {
            *all.entry(name).or_default() += n;
        }
    }
    all
}

/// Two fast upstreams and one 20 times slower, all answering 200 on `/`.
async fn fast_fast_slow() -> (Upstream, Upstream, Upstream) {
    // Far above scheduling noise on a busy machine, so the ratio really is 20.
    let fast = Duration::from_millis(30);
    (
        Upstream::http1()
            .name("fast-a")
            .slow("/", fast)
            .start()
            .await,
        Upstream::http1()
            .name("fast-b")
            .slow("/", fast)
            .start()
            .await,
        Upstream::http1()
            .name("slow")
            .slow("/", fast * 20)
            .start()
            .await,
    )
}

async fn slow_share(load_balancer: &str, total: usize) -> f64 {
    let (a, b, slow) = fast_fast_slow().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: {load_balancer}
        endpoints: [{}]
        ",
        endpoints_yaml(&[&a, &b, &slow])
    )))
    .start()
    .await;
    let counts = spread(&proxy, total, 8).await;
    assert_eq!(counts.values().sum::<usize>(), total);
    counts.get("slow").copied().unwrap_or(0) as f64 / total as f64
}

#[tokio::test]
async fn round_robin_sends_a_slow_endpoint_its_third() {
    // Whatever the latencies, every endpoint gets its turn: 20 of 60 each.
    let share = slow_share("round_robin", 60).await;
    assert!(
        (share - 1.0 / 3.0).abs() < 1e-9,
        "slow endpoint got {share:.3}"
    );
}

#[tokio::test]
async fn least_request_sends_a_20x_slower_endpoint_under_a_tenth() {
    let share = slow_share("least_request", 300).await;
    assert!(share < 0.10, "slow endpoint got {share:.3}");
}

#[tokio::test]
async fn peak_ewma_sends_a_20x_slower_endpoint_under_a_tenth() {
    let share = slow_share("peak_ewma", 300).await;
    assert!(share < 0.10, "slow endpoint got {share:.3}");
}

#[tokio::test]
async fn weighted_round_robin_gives_exact_shares_by_weight() {
    let light = Upstream::http1().name("light").start().await;
    let heavy = Upstream::http1().name("heavy").start().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: weighted_round_robin
        endpoints:
          - {{ address: {}, weight: 1 }}
          - {{ address: {}, weight: 3 }}
        ",
        light.endpoint(),
        heavy.endpoint()
    )))
    .start()
    .await;
    // 100 requests are 25 whole cycles of four turns.
    let counts = spread(&proxy, 100, 1).await;
    assert_eq!(counts.get("light"), Some(&25), "{counts:?}");
    assert_eq!(counts.get("heavy"), Some(&75), "{counts:?}");
}

#[tokio::test]
async fn random_honors_weights() {
    let light = Upstream::http1().name("light").start().await;
    let heavy = Upstream::http1().name("heavy").start().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: random
        endpoints:
          - {{ address: {}, weight: 1 }}
          - {{ address: {}, weight: 9 }}
        ",
        light.endpoint(),
        heavy.endpoint()
    )))
    .start()
    .await;
    let counts = spread(&proxy, 300, 4).await;
    let light_share = *counts.get("light").unwrap_or(&0) as f64 / 300.0;
    // Expected 0.1; binomial sd over 300 is 0.017, so this fails by chance about once
    // in a million runs.
    assert!((0.02..0.19).contains(&light_share), "{counts:?}");
}

async fn three_echo_upstreams() -> [Upstream; 3] {
    [
        Upstream::http1().name("u0").start().await,
        Upstream::http1().name("u1").start().await,
        Upstream::http1().name("u2").start().await,
    ]
}

/// Sends each user's requests (`header` set to the user name, or a cookie when
/// `cookie`) and returns the upstreams that answered each user.
async fn upstreams_per_user(
    proxy: &Proxy,
    header: Option<&str>,
    cookie: Option<&str>,
) -> HashMap<String, HashSet<String>> {
    let client = HttpClient::h1();
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    for round in 0..3 {
        for user in 0..30 {
            let name = format!("user-{user}");
            let mut req =
                client.request(http::Method::GET, &proxy.url("edge", &format!("/r{round}")));
            if let Some(h) = header {
                req = req.header(h, &name);
            }
            if let Some(c) = cookie {
                req = req.header("cookie", &format!("theme=dark; {c}={name}"));
            }
            let reply = req.send().await;
            assert_eq!(reply.status, StatusCode::OK);
            seen.entry(name)
                .or_default()
                .insert(reply.upstream().unwrap().to_owned());
        }
    }
    seen
}

fn assert_sticky_and_spread(seen: &HashMap<String, HashSet<String>>) {
    for (user, upstreams) in seen {
        assert_eq!(upstreams.len(), 1, "{user} went to {upstreams:?}");
    }
    let used: HashSet<&String> = seen.values().flatten().collect();
    assert_eq!(
        used.len(),
        3,
        "30 users should reach all three upstreams: {used:?}"
    );
}

#[tokio::test]
async fn ring_hash_by_header_sends_each_user_to_one_endpoint() {
    let ups = three_echo_upstreams().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: ring_hash
        hash: {{ header: x-user-id }}
        endpoints: [{}]
        ",
        endpoints_yaml(&[&ups[0], &ups[1], &ups[2]])
    )))
    .start()
    .await;
    assert_sticky_and_spread(&upstreams_per_user(&proxy, Some("x-user-id"), None).await);
}

#[tokio::test]
async fn maglev_by_cookie_sends_each_session_to_one_endpoint() {
    let ups = three_echo_upstreams().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: maglev
        hash: {{ cookie: session }}
        endpoints: [{}]
        ",
        endpoints_yaml(&[&ups[0], &ups[1], &ups[2]])
    )))
    .start()
    .await;
    assert_sticky_and_spread(&upstreams_per_user(&proxy, None, Some("session")).await);
}

#[tokio::test]
async fn the_same_header_maps_to_the_same_endpoint_in_two_proxies() {
    let ups = three_echo_upstreams().await;
    let config = app_config(&format!(
        "
        load_balancer: maglev
        hash: {{ header: x-user-id }}
        endpoints: [{}]
        ",
        endpoints_yaml(&[&ups[0], &ups[1], &ups[2]])
    ));
    let first = Proxy::with_config(config.clone()).start().await;
    let second = Proxy::with_config(config).start().await;
    let a = upstreams_per_user(&first, Some("x-user-id"), None).await;
    let b = upstreams_per_user(&second, Some("x-user-id"), None).await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn source_ip_hashing_keeps_one_client_on_one_endpoint() {
    let ups = three_echo_upstreams().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: ring_hash
        hash: {{ source_ip: true }}
        endpoints: [{}]
        ",
        endpoints_yaml(&[&ups[0], &ups[1], &ups[2]])
    )))
    .start()
    .await;
    // Many connections from 127.0.0.1 (other source ports), one endpoint.
    let counts = spread(&proxy, 40, 4).await;
    assert_eq!(counts.len(), 1, "{counts:?}");
}

#[tokio::test]
async fn requests_without_the_hash_header_are_spread() {
    let ups = three_echo_upstreams().await;
    let proxy = Proxy::with_config(app_config(&format!(
        "
        load_balancer: ring_hash
        hash: {{ header: x-user-id }}
        endpoints: [{}]
        ",
        endpoints_yaml(&[&ups[0], &ups[1], &ups[2]])
    )))
    .start()
    .await;
    let counts = spread(&proxy, 60, 2).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
}
