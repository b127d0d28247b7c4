//! HAProxy as the peer reverse proxy: one thread, server connections reused across
//! clients (`http-reuse always`), no logging, HTTP/2 (h2c) on a second bind.

use std::path::Path;

use super::ProxyPorts;

/// The haproxy.cfg for one run; it is started with `-db` (foreground, one process).
/// `maxconn` leaves room for the memory scenario's 10,000 idle client connections.
///
/// With `failover`, in front of several endpoints of which one may fail: up to 3 tries
/// on a 5xx or connection failure, each retry on another server (`retry-on`, `option
/// redispatch 1`), and a server marked down after 5 consecutive errors seen in traffic
/// (`observe layer7`), back after 10 s of passing TCP checks — meshwork's failover config.
pub fn config(dir: &Path, ports: &ProxyPorts, endpoints: &[String], failover: bool) -> String {
    let dir = dir.display();
    let mut backend = String::new();
    if failover {
        backend.push_str(
            "    balance roundrobin
    retries 2
    retry-on conn-failure empty-response response-timeout 500 502 503 504
    option redispatch 1
",
        );
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let checks = if failover {
            " check inter 10s fastinter 10s downinter 10s rise 1 observe layer7 error-limit 5 on-error mark-down"
        } else {
            ""
        };
        backend.push_str(&format!("    server upstream{i} {endpoint}{checks}\n"));
    }
    format!(
        "global
    nbthread 1
    maxconn 10500
    # HAProxy reserves two descriptors per connection (21,000 here); a hard limit of
    # 20,000 (this machine's) would stop it at startup. The scenarios never need more
    # than ~10,050 descriptors, so let it start with the limit it gets.
    no strict-limits
    pidfile {dir}/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    # the slowloris scenario's header timeout, the same for every target
    timeout http-request 2s

frontend bench
    bind 127.0.0.1:{http} backlog 4096
    bind 127.0.0.1:{h2} proto h2 backlog 4096
    default_backend upstream

backend upstream
{backend}",
        http = ports.http,
        h2 = ports.h2,
    )
}

/// [`config`] with the HTTP/1.1 bind terminating TLS (1.2 and 1.3, ALPN http/1.1),
/// verifying client certificates when `tls.require_client_cert`.
pub fn tls_config(
    dir: &Path,
    ports: &ProxyPorts,
    endpoints: &[String],
    tls: &super::TlsFiles,
) -> String {
    let verify = if tls.require_client_cert {
        format!(" ca-file {} verify required", tls.ca.display())
    } else {
        String::new()
    };
    config(dir, ports, endpoints, false).replacen(
        &format!("bind 127.0.0.1:{} backlog 4096", ports.http),
        &format!(
            "bind 127.0.0.1:{} ssl crt {} ssl-min-ver TLSv1.2 alpn http/1.1{verify} backlog 4096",
            ports.http,
            tls.combined.display()
        ),
        1,
    )
}

/// Arguments for `haproxy`: foreground, the config file.
pub fn args(config_file: &Path) -> Vec<String> {
    vec!["-db".into(), "-f".into(), config_file.display().to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_thread_no_log_and_connection_reuse() {
        let c = config(
            Path::new("/tmp/x"),
            &ProxyPorts { http: 1, h2: 2 },
            &["127.0.0.1:3".to_owned()],
            false,
        );
        for needle in [
            "nbthread 1",
            "http-reuse always",
            "bind 127.0.0.1:1 ",
            "bind 127.0.0.1:2 proto h2",
            "server upstream0 127.0.0.1:3",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
        assert!(
            !c.lines().any(|l| l.trim_start().starts_with("log")),
            "logging must stay off:\n{c}"
        );
    }

    #[test]
    fn the_tls_config_terminates_tls_on_the_http1_port() {
        let tls = super::super::TlsFiles::example(true);
        let c = tls_config(
            Path::new("/tmp/x"),
            &ProxyPorts { http: 1, h2: 2 },
            &["127.0.0.1:3".to_owned()],
            &tls,
        );
        for needle in [
            "bind 127.0.0.1:1 ssl crt /tmp/tls/server-combined.pem",
            "ca-file /tmp/tls/ca.pem verify required",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
    }
}
