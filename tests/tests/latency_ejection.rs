//! Latency-based ejection end to end: of three endpoints, the one answering 5x slower is
//! ejected (seen in `/clusters` and the ejections counter) after a bounded number of its
//! own requests, and takes traffic again once it is fast; three equally slow endpoints
//! are all kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;
use meshwork_tests::{HttpClient, Proxy, Upstream, edge_config, eventually};

const EJECTIONS: &str = "meshwork_circuit_breaker_ejections_total";
const FAST: Duration = Duration::from_millis(30);
const SLOW: Duration = Duration::from_millis(150);

fn config(endpoints: &[&str]) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: api
              backends:
                - cluster: app
        clusters:
          - name: app
            endpoints: [{}]
            circuit_breaker:
              open_duration: 2s
              max_open_duration: 8s
              half_open_requests: 1
              max_ejected_percent: 34
              latency: {{ factor: 2, min_latency: 20ms, min_requests: 5, window: 1s }}
              slow_start: 1s
        ",
        endpoints.join(", ")
    ))
}

/// `clients` clients sending GETs back to back until `stop` is set (each at most 3000).
fn load(proxy: &Proxy, clients: usize, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let url = proxy.url("edge", "/");
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = HttpClient::h1();
                for _ in 0..3000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    assert_eq!(client.get(&url).await.status, StatusCode::OK);
                }
            })
        })
        .collect()
}

/// The `/clusters` entry of the endpoint at `address`.
async fn endpoint_view(proxy: &Proxy, address: &str) -> serde_json::Value {
    let clusters = proxy.admin_get_ok("/clusters").await.json();
    clusters["clusters"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["address"] == address)
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint {address} in {clusters}"))
}

#[tokio::test]
async fn the_endpoint_five_times_slower_is_ejected_and_returns_once_fast() {
    let a = Upstream::http1().name("a").slow("/", FAST).start().await;
    let b = Upstream::http1().name("b").slow("/", FAST).start().await;
    let slow = Upstream::http1().name("slow").slow("/", SLOW).start().await;
    let address = slow.endpoint();
    let proxy = Proxy::with_config(config(&[&a.endpoint(), &b.endpoint(), &address]))
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&proxy, 3, &stop);

    let labels = [
        ("cluster", "app"),
        ("endpoint", address.as_str()),
        ("reason", "latency"),
    ];
    proxy
        .scrape_when("the slow endpoint ejected for latency", |s| {
            s.get_or_zero(EJECTIONS, &labels) >= 1.0
        })
        .await;
    // Judged every 100ms on 5 latencies within 1s: a handful of its requests, not dozens.
    let seen_by_slow = slow.requests();
    assert!(
        seen_by_slow <= 40,
        "{seen_by_slow} requests reached the slow endpoint before its ejection"
    );
    let view = endpoint_view(&proxy, &address).await;
    // Open for 2s: still ejected now, and /clusters says why.
    let cause = &view["ejected_for"];
    assert_eq!(cause["reason"], "latency", "{view}");
    let (latency, others) = (
        cause["latency_ms"].as_f64().unwrap(),
        cause["others_median_ms"].as_f64().unwrap(),
    );
    assert!(latency > 2.0 * others, "{view}");
    assert!(latency >= 100.0 && others < 100.0, "{view}");
    let scrape = proxy.scrape().await;
    for fast in [&a, &b] {
        let labels = [
            ("cluster", "app"),
            ("endpoint", &*fast.endpoint()),
            ("reason", "latency"),
        ];
        assert_eq!(
            scrape.get_or_zero(EJECTIONS, &labels),
            0.0,
            "{} kept",
            fast.name()
        );
    }

    // The endpoint turns fast: the same address now answers as quickly as the others.
    // Ejected, it gets no new requests: once those it had are answered, it is swapped.
    eventually(
        "the slow endpoint's requests answered",
        Duration::from_secs(5),
        || async { endpoint_view(&proxy, &address).await["in_flight"] == 0 },
    )
    .await;
    drop(slow);
    // Its serving task ends (and frees the port) once the runtime gets to the abort.
    eventually(
        "the slow upstream's port free",
        Duration::from_secs(5),
        || async { std::net::TcpListener::bind(&address).is_ok() },
    )
    .await;
    let recovered = Upstream::http1()
        .name("recovered")
        .slow("/", FAST)
        .bind(address.parse().unwrap())
        .start()
        .await;
    eventually(
        "the recovered endpoint back in rotation",
        Duration::from_secs(15),
        || async {
            let view = endpoint_view(&proxy, &address).await;
            recovered.requests() >= 20 && view["circuit_breaker"] == "closed"
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("every request answered 200");
    }
    let view = endpoint_view(&proxy, &address).await;
    assert_eq!(view["ejected_for"], serde_json::Value::Null, "{view}");
}

#[tokio::test]
async fn equally_slow_endpoints_are_all_kept() {
    let upstreams = [
        Upstream::http1().name("a").slow("/", SLOW).start().await,
        Upstream::http1().name("b").slow("/", SLOW).start().await,
        Upstream::http1().name("c").slow("/", SLOW).start().await,
    ];
    let endpoints: Vec<String> = upstreams.iter().map(Upstream::endpoint).collect();
    let refs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let proxy = Proxy::with_config(config(&refs)).start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&proxy, 3, &stop);
    // Enough requests for many judgements: each endpoint with min_requests latencies in
    // its window, seen in /clusters.
    eventually(
        "60 requests at each endpoint",
        Duration::from_secs(30),
        || async { upstreams.iter().all(|u| u.requests() >= 60) },
    )
    .await;
    for address in &endpoints {
        let view = endpoint_view(&proxy, address).await;
        assert!(
            view["latency"]["samples"].as_u64().unwrap() >= 5,
            "judged: {view}"
        );
        assert_eq!(view["circuit_breaker"], "closed", "{view}");
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("every request answered 200");
    }
    let scrape = proxy.scrape().await;
    assert_eq!(scrape.sum(EJECTIONS), 0.0, "{}", scrape.lines_of(EJECTIONS));
}
