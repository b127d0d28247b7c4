//! meshwork under test: `worker_threads: 1`, one listener (HTTP/1.1 and h2c are detected
//! per connection, so both scenarios use the same port), one cluster.

use std::path::Path;

use super::ProxyPorts;

/// The YAML config for one run. The listener's `max_connections` is raised to match the
/// peers' connection limits (nginx `worker_connections`, HAProxy `maxconn`).
pub fn config(admin_port: u16, ports: &ProxyPorts, upstream: &str) -> String {
    render(
        admin_port,
        ports,
        "",
        &format!("  - {{ name: upstream, endpoints: [{upstream}], protocol: http1 }}\n"),
        "",
    )
}

/// [`config`] with every request traced (sampling 1.0, batched OTLP/HTTP export to the
/// bench upstream, which answers any POST with 200 like a collector) and written to a
/// JSON access log file in `dir`: what a user turning everything on pays.
pub fn observed_config(
    admin_port: u16,
    ports: &ProxyPorts,
    upstream: &str,
    dir: &Path,
    sampling: f64,
) -> String {
    let observability = format!(
        "tracing:
  sampling: {sampling}
  otlp: {{ endpoint: http://{upstream}/v1/traces }}
  service_name: meshwork-bench
access_log:
  format: json
  path: {}
",
        dir.join("access.log").display()
    );
    render(
        admin_port,
        ports,
        &observability,
        &format!("  - {{ name: upstream, endpoints: [{upstream}], protocol: http1 }}\n"),
        "",
    )
}

/// In front of several endpoints of which one may fail: up to 3 tries on a 5xx, connect
/// failure or reset (the default retry budget), and a breaker ejecting an endpoint after
/// 5 consecutive failures for 10 s (at most half of the endpoints).
pub fn failover_config(admin_port: u16, ports: &ProxyPorts, endpoints: &[String]) -> String {
    let cluster = format!(
        "  - name: upstream
    endpoints: [{}]
    protocol: http1
    circuit_breaker: {{ consecutive_failures: 5, open_duration: 10s, max_ejected_percent: 50 }}
",
        endpoints.join(", ")
    );
    let route = "      retry: { attempts: 3, on: [5xx, connect-failure, reset], backoff: { base: 1ms, max: 10ms } }\n";
    render(admin_port, ports, "", &cluster, route)
}

/// [`config`] with the listener terminating TLS (TLS 1.2/1.3, ALPN), requiring a client
/// certificate when `tls.require_client_cert`.
pub fn tls_config(
    admin_port: u16,
    ports: &ProxyPorts,
    upstream: &str,
    tls: &super::TlsFiles,
) -> String {
    let client_auth = if tls.require_client_cert {
        format!(", client_auth: required, client_ca: {}", tls.ca.display())
    } else {
        String::new()
    };
    config(admin_port, ports, upstream).replacen(
        "    route_table: bench\n",
        &format!(
            "    route_table: bench\n    tls: {{ certificates: [{{ cert: {}, key: {} }}]{client_auth} }}\n",
            tls.cert.display(),
            tls.key.display()
        ),
        1,
    )
}

/// A sidecar's outbound side: the listener plaintext, the cluster originating mTLS to
/// `address` with the client certificate, verifying the server's for `localhost`.
pub fn mtls_upstream_config(
    admin_port: u16,
    ports: &ProxyPorts,
    address: &str,
    tls: &super::TlsFiles,
) -> String {
    let cluster = format!(
        "  - name: upstream
    endpoints: [{address}]
    protocol: http1
    tls: {{ ca: {}, cert: {}, key: {}, server_name: localhost }}
",
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    render(admin_port, ports, "", &cluster, "")
}

/// `meshwork run` with `config_file`, warnings only, a short drain on exit.
pub fn args(config_file: &Path) -> Vec<String> {
    [
        "--log-level",
        "warn",
        "run",
        "-c",
        &config_file.display().to_string(),
        "--drain-timeout",
        "1s",
    ]
    .map(String::from)
    .to_vec()
}

fn render(admin_port: u16, ports: &ProxyPorts, top: &str, clusters: &str, route: &str) -> String {
    format!(
        "version: 1
runtime: {{ worker_threads: 1 }}
admin: {{ address: 127.0.0.1:{admin_port} }}
{top}listeners:
  - name: bench
    address: 127.0.0.1:{http}
    protocol: http
    route_table: bench
    # header_read_timeout: the slowloris scenario's, the same for every target
    limits: {{ max_connections: 18000, header_read_timeout: 2s }}
route_tables:
  bench:
    - name: all
      backends: [{{ cluster: upstream }}]
{route}clusters:
{clusters}",
        http = ports.http,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_uses_one_worker_thread_and_the_given_ports() {
        let c = config(9, &ProxyPorts { http: 1, h2: 1 }, "127.0.0.1:3");
        assert!(c.contains("worker_threads: 1"), "{c}");
        assert!(c.contains("address: 127.0.0.1:9"), "{c}");
        assert!(c.contains("address: 127.0.0.1:1\n"), "{c}");
        assert!(c.contains("endpoints: [127.0.0.1:3]"), "{c}");
    }

    #[test]
    fn every_config_is_valid() {
        let ports = ProxyPorts { http: 1, h2: 1 };
        let endpoints = ["127.0.0.1:3".to_owned(), "127.0.0.1:4".to_owned()];
        for (name, yaml) in [
            ("plain", config(9, &ports, "127.0.0.1:3")),
            (
                "observed",
                observed_config(9, &ports, "127.0.0.1:3", Path::new("/tmp/x"), 1.0),
            ),
            (
                "observed, sampled",
                observed_config(9, &ports, "127.0.0.1:3", Path::new("/tmp/x"), 0.01),
            ),
            ("failover", failover_config(9, &ports, &endpoints)),
            (
                "mtls",
                tls_config(
                    9,
                    &ports,
                    "127.0.0.1:3",
                    &super::super::TlsFiles::example(true),
                ),
            ),
        ] {
            let loaded =
                meshwork_config::load_str("bench.yaml", &yaml, Path::new("/tmp"), &|_| None);
            assert!(loaded.is_ok(), "{name}: {loaded:?}\n{yaml}");
        }
    }
}
