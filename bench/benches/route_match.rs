//! Route matching over 10 / 1,000 / 10,000 routes: the lookup every request pays.
//!
//! Three shapes: path prefixes on any host, where the request matches the last route
//! (first match wins, so this is the worst case of a linear table), differing in the
//! first segment (`/svc{i}/`) or only deeper (`/api/svc{i}/`, one API gateway table);
//! and one route per exact host, where the host index should make table size irrelevant.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri};
use meshwork_proxy::router::{RouteRequest, RouteTable};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// A config with `n` routes, each made by `route(i)`, all going to one cluster.
fn table(n: usize, route: impl Fn(usize) -> String) -> RouteTable {
    let mut yaml = String::from(
        "version: 1
listeners:
  - { name: bench, address: 127.0.0.1:18080, protocol: http, route_table: bench }
clusters:
  - { name: upstream, endpoints: [127.0.0.1:18081], protocol: http1 }
route_tables:
  bench:
",
    );
    for i in 0..n {
        yaml.push_str(&route(i));
    }
    let config =
        meshwork_config::load_str("bench.yaml", &yaml, std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|d| panic!("bench config does not load:\n{d}"));
    // Matching never looks at backends: no live clusters needed (nor a runtime for them).
    RouteTable::build(&config.route_tables["bench"], &HashMap::new())
}

fn bench_lookup(c: &mut Criterion, group_name: &str, make: impl Fn(usize) -> (RouteTable, Uri)) {
    let mut group = c.benchmark_group(group_name);
    let method = Method::GET;
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    for n in SIZES {
        let (table, uri) = make(n);
        let host = uri.host().unwrap_or("").to_owned();
        let mut headers = headers.clone();
        headers.insert("host", HeaderValue::from_str(&host).unwrap());
        // The origin-form request a client sends: path only, host in the header.
        let uri: Uri = uri.path_and_query().unwrap().as_str().parse().unwrap();
        let expected = format!("r{}", n - 1);
        assert_eq!(
            table
                .find(&RouteRequest::new(&method, &uri, &headers))
                .map(|r| r.name().to_owned()),
            Some(expected),
            "the benchmark request must take the last route"
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let req = RouteRequest::new(black_box(&method), black_box(&uri), &headers);
                black_box(table.find(&req).is_some())
            });
        });
    }
    group.finish();
}

fn route_matching(c: &mut Criterion) {
    bench_lookup(c, "route_match/path_prefix_last_of_n", |n| {
        let t = table(n, |i| {
            format!(
                "    - {{ name: r{i}, match: {{ path: {{ prefix: /svc{i}/ }} }}, backends: [{{ cluster: upstream }}] }}\n"
            )
        });
        let uri = format!("http://any.example.com/svc{}/items?page=2", n - 1);
        (t, uri.parse().unwrap())
    });
    // One API gateway table: every prefix shares its first segment and differs deeper.
    bench_lookup(c, "route_match/deep_path_prefix_last_of_n", |n| {
        let t = table(n, |i| {
            format!(
                "    - {{ name: r{i}, match: {{ path: {{ prefix: /api/svc{i}/ }} }}, backends: [{{ cluster: upstream }}] }}\n"
            )
        });
        let uri = format!("http://any.example.com/api/svc{}/items?page=2", n - 1);
        (t, uri.parse().unwrap())
    });
    bench_lookup(c, "route_match/exact_host_last_of_n", |n| {
        let t = table(n, |i| {
            format!(
                "    - {{ name: r{i}, match: {{ host: [svc{i}.example.com], path: {{ prefix: / }} }}, backends: [{{ cluster: upstream }}] }}\n"
            )
        });
        let uri = format!("http://svc{}.example.com/items?page=2", n - 1);
        (t, uri.parse().unwrap())
    });
}

criterion_group!(benches, route_matching);
criterion_main!(benches);
