//! meshwork under test: `worker_threads: 1`, one listener (HTTP/1.1 and h2c are detected
//! per connection, so both scenarios use the same port), one cluster.

use super::ProxyPorts;

/// The YAML config for one run. The listener's `max_connections` is raised to match the
/// peers' connection limits (nginx `worker_connections`, HAProxy `maxconn`).
pub fn config(admin_port: u16, ports: &ProxyPorts, upstream: &str) -> String {
    format!(
        "version: 1
runtime: {{ worker_threads: 1 }}
admin: {{ address: 127.0.0.1:{admin_port} }}
listeners:
  - name: bench
    address: 127.0.0.1:{http}
    protocol: http
    route_table: bench
    limits: {{ max_connections: 18000 }}
route_tables:
  bench:
    - name: all
      backends: [{{ cluster: upstream }}]
clusters:
  - {{ name: upstream, endpoints: [{upstream}], protocol: http1 }}
",
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
}
