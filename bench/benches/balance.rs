//! One endpoint pick per load balancer, over clusters of 10 / 100 / 1,000 endpoints: the
//! choice every request pays. Measured through `ClusterRuntime::pick`, the call the
//! balance layer makes (health, breaker and avoid checks included); hash balancers get
//! a different key hash each iteration, so a pick does not keep hitting one cached slot.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use meshwork_proxy::balance::hash_key;
use meshwork_proxy::cluster::ClusterRuntime;
use meshwork_proxy::metrics::Metrics;

const SIZES: [usize; 3] = [10, 100, 1_000];
const ALGORITHMS: [&str; 7] = [
    "round_robin",
    "weighted_round_robin",
    "random",
    "least_request",
    "peak_ewma",
    "ring_hash",
    "maglev",
];

/// A cluster of `n` endpoints (weights 1 to 4) under `load_balancer`.
fn cluster(load_balancer: &str, n: usize, metrics: &Metrics) -> ClusterRuntime {
    let mut yaml = format!(
        "version: 1
listeners:
  - {{ name: bench, address: 127.0.0.1:18080, protocol: http, route_table: bench }}
route_tables:
  bench:
    - {{ name: all, backends: [{{ cluster: app }}] }}
clusters:
  - name: app
    load_balancer: {load_balancer}
    hash: {{ header: x-user-id }}
    endpoints:
"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "      - {{ address: 10.{}.{}.{}:8080, weight: {} }}\n",
            i / 65_536,
            (i / 256) % 256,
            i % 256,
            1 + i % 4
        ));
    }
    let config =
        meshwork_config::load_str("bench.yaml", &yaml, std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|d| panic!("bench config does not load:\n{d}"));
    ClusterRuntime::new(config.clusters[0].clone(), None, None, metrics)
}

fn picks(c: &mut Criterion) {
    let metrics = Metrics::new();
    let keys: Vec<u64> = (0..4096u32)
        .map(|i| hash_key(format!("user-{i}").as_bytes()))
        .collect();
    for algorithm in ALGORITHMS {
        let mut group = c.benchmark_group(format!("balance/{algorithm}"));
        let hashing = matches!(algorithm, "ring_hash" | "maglev");
        for n in SIZES {
            let cluster = cluster(algorithm, n, &metrics);
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    let key = hashing.then(|| keys[i]);
                    black_box(cluster.pick(None, black_box(key)).is_ok())
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, picks);
criterion_main!(benches);
