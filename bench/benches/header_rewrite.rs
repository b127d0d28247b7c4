//! Header work every proxied request pays: hop-by-hop removal, forwarding headers, and
//! a route's header edits (remove, set, add).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use meshwork_proxy::http::headers::{add_forwarded, client_address_value, remove_hop_by_hop};
use meshwork_proxy::layers::rewrite::apply_header_modifier;

/// The headers of a typical browser-ish request through a keep-alive connection.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.9"),
        ("connection", "keep-alive"),
        ("cookie", "session=0123456789abcdef; theme=dark"),
        ("x-request-id", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn header_rewriting(c: &mut Criterion) {
    let mut group = c.benchmark_group("headers");
    group.bench_function("clone_only_baseline", |b| {
        b.iter_batched(request_headers, black_box, BatchSize::SmallInput);
    });
    group.bench_function("remove_hop_by_hop", |b| {
        b.iter_batched(
            request_headers,
            |mut h| {
                remove_hop_by_hop(&mut h, false);
                h
            },
            BatchSize::SmallInput,
        );
    });
    // Made once per connection by the listener, cloned per request.
    let client = client_address_value(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    group.bench_function("add_forwarded", |b| {
        b.iter_batched(
            request_headers,
            |mut h| {
                add_forwarded(&mut h, black_box(&client), "http");
                h
            },
            BatchSize::SmallInput,
        );
    });
    let config = meshwork_config::load_str(
        "bench.yaml",
        "version: 1
listeners:
  - { name: bench, address: 127.0.0.1:18080, protocol: http, route_table: bench }
clusters:
  - { name: upstream, endpoints: [127.0.0.1:18081], protocol: http1 }
route_tables:
  bench:
    - name: all
      backends: [{ cluster: upstream }]
      request_headers: { set: { x-env: prod }, add: { x-via: meshwork }, remove: [cookie] }
",
        std::path::Path::new("."),
        &|_| None,
    )
    .unwrap_or_else(|d| panic!("bench config does not load:\n{d}"));
    let modifier = config.route_tables["bench"].routes[0]
        .request_headers
        .clone();
    group.bench_function("apply_header_modifier_set_add_remove", |b| {
        b.iter_batched(
            request_headers,
            |mut h| {
                apply_header_modifier(black_box(&modifier), &mut h);
                h
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, header_rewriting);
criterion_main!(benches);
