//! Properties of the config loader, checked with generated inputs (proptest):
//!
//! - any input (bytes, YAML-ish token soup, mutated examples) loads or fails with
//!   located diagnostics, never a panic: every diagnostic names the file and a line and
//!   column inside the input, and has a message;
//! - loading is deterministic: the same text gives the same model, or the same
//!   diagnostics in the same order;
//! - a generated valid config loads, and the model holds exactly the generated values
//!   (names, addresses, durations, weights, limits): the text round-trips to the model.
//!
//! CI runs proptest's default number of cases per property (256, a few seconds). Longer
//! runs: `PROPTEST_CASES=100000 cargo test --release -p meshwork-config --test
//! properties`. A failing case is shrunk and saved under `proptest-regressions/`
//! (commit it: it is replayed first on every later run).

use std::path::Path;
use std::time::Duration;

use meshwork_config::model::{ListenerProtocol, LoadBalancer};
use meshwork_config::{Config, Diagnostics};
use proptest::prelude::*;

const FILE: &str = "prop.yaml";

fn env(name: &str) -> Option<String> {
    (name == "PORT").then(|| "8080".to_string())
}

fn load(text: &str) -> Result<Config, Diagnostics> {
    meshwork_config::load_str(FILE, text, Path::new("/etc/meshwork"), &env)
}

/// Checks the loader's contract on `text`: a config, or diagnostics each located
/// inside the text. Returns the result for further checks.
fn load_checked(text: &str) -> Result<Result<Config, Diagnostics>, TestCaseError> {
    let result = load(text);
    if let Err(diagnostics) = &result {
        prop_assert!(!diagnostics.is_empty(), "an error with no diagnostic");
        let lines = yaml_lines(text);
        for d in diagnostics {
            prop_assert_eq!(&d.file, FILE);
            prop_assert!(!d.message.trim().is_empty(), "no message: {:?}", d);
            prop_assert!(
                d.line >= 1 && d.line <= lines.len(),
                "line {} outside the text's {} lines: {}",
                d.line,
                lines.len(),
                d
            );
            let width = lines[d.line - 1].chars().count();
            prop_assert!(
                d.column >= 1 && d.column <= width + 1,
                "column {} outside line {} ({} characters): {}",
                d.column,
                d.line,
                width,
                d
            );
        }
    }
    Ok(result)
}

/// The lines of `text` as YAML (and an editor) breaks them: at `\r\n`, `\r` or `\n`.
fn yaml_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        out.push(&rest[..at]);
        rest = &rest[at + if rest[at..].starts_with("\r\n") { 2 } else { 1 }..];
    }
    out.push(rest);
    out
}

/// Pieces of YAML and of the config's vocabulary, for token soups.
const PIECES: &[&str] = &[
    "\n",
    " ",
    "  ",
    "    ",
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "#",
    "${",
    "${PORT}",
    "${NOPE}",
    "${X:-1s}",
    "&a ",
    "*a",
    "!!str ",
    "!x ",
    "<<: ",
    "~",
    "null",
    "0",
    "-1",
    "1.5",
    "1e999",
    "99999999999999999999",
    "é",
    "\t",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "? ",
    "\u{feff}",
    "\\",
    "\r\n",
    "version",
    "1",
    "listeners",
    "name",
    "address",
    "127.0.0.1:0",
    "[::1]:80",
    "protocol",
    "http",
    "tcp",
    "route_table",
    "cluster",
    "clusters",
    "endpoints",
    "route_tables",
    "backends",
    "weight",
    "timeout",
    "5s",
    "250ms",
    "64KiB",
    "tls",
    "client_auth",
    "required",
    "authorization",
    "allow",
    "from",
    "paths",
    "methods",
    "GET",
    "/api/*",
    "tracing",
    "otlp",
    "endpoint",
    "https://c:4318/v1/traces",
    "limits",
    "max_connections",
    "idle_timeout",
    "admin",
    "node",
    "id",
    "retry",
    "attempts",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..120).prop_map(|p| p.concat())
}

/// A text from the examples with a few edits: deletions and inserted pieces.
fn mutated_example() -> impl Strategy<Value = String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds: Vec<String> = [
        "examples/edge.yaml",
        "examples/sidecar.yaml",
        "tests/fixtures/valid/full.yaml",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(dir.join(p)).expect("read a seed"))
    .collect();
    let edit = (
        any::<prop::sample::Index>(),
        0usize..8,
        prop::sample::select(PIECES),
    );
    (
        prop::sample::select(seeds),
        prop::collection::vec(edit, 1..6),
    )
        .prop_map(|(seed, edits)| {
            let mut text: Vec<char> = seed.chars().collect();
            for (at, delete, piece) in edits {
                let at = at.index(text.len() + 1);
                let end = (at + delete).min(text.len());
                text.splice(at..end, piece.chars());
            }
            text.into_iter().collect()
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_load_or_fail_with_located_diagnostics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_checked(&text)?;
    }

    #[test]
    fn token_soups_load_or_fail_with_located_diagnostics(text in token_soup()) {
        let _ = load_checked(&text)?;
    }

    #[test]
    fn mutated_examples_load_or_fail_with_located_diagnostics_the_same_way_twice(text in mutated_example()) {
        let first = load_checked(&text)?;
        prop_assert_eq!(first, load(&text), "loading the same text twice differs");
    }
}

/// The values a generated config sets, to compare with what the loader built.
#[derive(Debug, Clone)]
struct Generated {
    listeners: Vec<(String, u16, bool)>,
    clusters: Vec<GeneratedCluster>,
    timeout_ms: u64,
}

#[derive(Debug, Clone)]
struct GeneratedCluster {
    name: String,
    endpoints: Vec<(u8, u16, u32)>,
    connect_timeout_ms: u64,
    max_connections: u32,
    balancer: usize,
}

const BALANCERS: &[(&str, LoadBalancer)] = &[
    ("round_robin", LoadBalancer::RoundRobin),
    ("random", LoadBalancer::Random),
    ("least_request", LoadBalancer::LeastRequest),
    ("peak_ewma", LoadBalancer::PeakEwma),
];

/// A name; the `s-` prefix keeps it from ever spelling a YAML keyword (`n` + `ull` was
/// `null`, which YAML reads as no value at all).
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&b"abcdefghijklmnopqrstuvwxyz0123456789-"[..]),
        1..12,
    )
    .prop_map(|b| format!("s-{}", String::from_utf8(b).expect("ascii")))
}

fn generated() -> impl Strategy<Value = Generated> {
    let cluster = (
        name(),
        prop::collection::vec((1u8..=254, 1u16..=65535, 1u32..=100), 1..4),
        1u64..=60_000,
        1u32..=100_000,
        0..BALANCERS.len(),
    )
        .prop_map(
            |(name, endpoints, connect_timeout_ms, max_connections, balancer)| GeneratedCluster {
                name,
                endpoints,
                connect_timeout_ms,
                max_connections,
                balancer,
            },
        );
    (
        prop::collection::vec((name(), any::<bool>()), 1..4),
        prop::collection::vec(cluster, 1..4),
        1u64..=3_600_000,
    )
        .prop_map(|(listeners, clusters, timeout_ms)| {
            // Distinct names and distinct ports, as a valid file needs.
            let mut names = std::collections::BTreeSet::new();
            let listeners = listeners
                .into_iter()
                .filter(|(n, _)| names.insert(n.clone()))
                .enumerate()
                .map(|(i, (n, tcp))| (n, 10_000 + i as u16, tcp))
                .collect();
            let mut names = std::collections::BTreeSet::new();
            let clusters = clusters
                .into_iter()
                .filter(|c| names.insert(c.name.clone()))
                .collect();
            Generated {
                listeners,
                clusters,
                timeout_ms,
            }
        })
}

impl Generated {
    fn yaml(&self) -> String {
        let first = &self.clusters[0].name;
        let mut out = String::from("version: 1\nlisteners:\n");
        for (name, port, tcp) in &self.listeners {
            let target = if *tcp {
                format!("protocol: tcp, cluster: {first}")
            } else {
                "route_table: main".to_string()
            };
            out += &format!("  - {{ name: {name}, address: \"127.0.0.1:{port}\", {target} }}\n");
        }
        out += &format!(
            "route_tables:\n  main:\n    - name: all\n      timeout: {}ms\n      backends:\n",
            self.timeout_ms
        );
        for c in &self.clusters {
            out += &format!("        - {{ cluster: {} }}\n", c.name);
        }
        out += "clusters:\n";
        for c in &self.clusters {
            out += &format!(
                "  - name: {}\n    connect_timeout: {}ms\n    load_balancer: {}\n    limits: {{ max_connections: {} }}\n    endpoints:\n",
                c.name, c.connect_timeout_ms, BALANCERS[c.balancer].0, c.max_connections
            );
            for (host, port, weight) in &c.endpoints {
                out +=
                    &format!("      - {{ address: \"10.0.0.{host}:{port}\", weight: {weight} }}\n");
            }
        }
        out
    }
}

proptest! {
    #[test]
    fn a_generated_valid_config_loads_into_exactly_its_values(g in generated()) {
        let text = g.yaml();
        let config = match load_checked(&text)? {
            Ok(config) => config,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n---\n{text}"))),
        };
        prop_assert_eq!(config.listeners.len(), g.listeners.len());
        for (listener, (name, port, tcp)) in config.listeners.iter().zip(&g.listeners) {
            prop_assert_eq!(&listener.name, name);
            prop_assert_eq!(listener.address.port(), *port);
            let is_tcp = matches!(listener.protocol, ListenerProtocol::Tcp { .. });
            prop_assert_eq!(is_tcp, *tcp);
        }
        let route = &config.route_tables["main"].routes[0];
        prop_assert_eq!(route.timeout, Some(Duration::from_millis(g.timeout_ms)));
        prop_assert_eq!(config.clusters.len(), g.clusters.len());
        for (cluster, want) in config.clusters.iter().zip(&g.clusters) {
            prop_assert_eq!(&cluster.name, &want.name);
            prop_assert_eq!(cluster.connect_timeout, Duration::from_millis(want.connect_timeout_ms));
            prop_assert_eq!(cluster.limits.max_connections, want.max_connections);
            prop_assert_eq!(cluster.load_balancer, BALANCERS[want.balancer].1);
            let endpoints: Vec<(String, u16, u32)> = cluster
                .endpoints
                .iter()
                .map(|e| (e.address.host.clone(), e.address.port, e.weight))
                .collect();
            let expected: Vec<(String, u16, u32)> = want
                .endpoints
                .iter()
                .map(|(h, p, w)| (format!("10.0.0.{h}"), *p, *w))
                .collect();
            prop_assert_eq!(endpoints, expected);
        }
        // Deterministic: the same text, the same model.
        prop_assert_eq!(Ok(config), load(&text));
    }
}
