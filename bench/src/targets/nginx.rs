//! nginx as the peer reverse proxy: one worker, upstream keep-alive pool, no access log,
//! its own prefix (pid, logs, temp paths) under the run's temp dir.

use std::path::Path;

use super::ProxyPorts;

/// Idle pooled connections per worker to the upstream (`keepalive N`).
pub const UPSTREAM_KEEPALIVE: u32 = 128;

/// The nginx.conf for one run, in foreground mode (`daemon off`).
///
/// Defaults are kept except where they would make the comparison unequal:
/// `keepalive_requests` (default 1,000 closes every benchmark connection each 1,000
/// requests; meshwork and HAProxy have no such limit) and `proxy_max_temp_file_size 0`
/// (large responses stream through memory buffers instead of being spooled to disk).
/// HTTP/2 gets its own port: nginx 1.22's `listen ... http2` without TLS speaks only h2c
/// with prior knowledge.
///
/// With `failover`, in front of several endpoints of which one may fail: up to 3 tries on
/// an error, timeout or 5xx (`proxy_next_upstream`), and a server taken out for 10 s after
/// 5 failures (`max_fails`, nginx's passive ejection) — meshwork's failover config.
pub fn config(dir: &Path, ports: &ProxyPorts, endpoints: &[String], failover: bool) -> String {
    let dir = dir.display();
    let (servers, retries) = if failover {
        let servers: String = endpoints
            .iter()
            .map(|e| format!("server {e} max_fails=5 fail_timeout=10s;\n        "))
            .collect();
        let retries = "proxy_next_upstream error timeout http_500 http_502 http_503 http_504;
            proxy_next_upstream_tries 3;";
        (servers, retries)
    } else {
        let servers: String = endpoints
            .iter()
            .map(|e| format!("server {e};\n        "))
            .collect();
        (servers, "")
    };
    let location = format!(
        "location / {{
            proxy_pass http://upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_max_temp_file_size 0;
            {retries}
        }}"
    );
    format!(
        "daemon off;
worker_processes 1;
worker_rlimit_nofile 19000;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 18000;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    # the slowloris scenario's header timeout, the same for every target
    client_header_timeout 2s;

    upstream upstream {{
        {servers}keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}

    server {{
        listen 127.0.0.1:{http} backlog=4096;
        {location}
    }}

    server {{
        listen 127.0.0.1:{h2} http2 backlog=4096;
        {location}
    }}
}}
",
        http = ports.http,
        h2 = ports.h2,
    )
}

/// [`config`] with the HTTP/1.1 server terminating TLS (1.2 and 1.3), verifying client
/// certificates when `tls.require_client_cert`.
pub fn tls_config(
    dir: &Path,
    ports: &ProxyPorts,
    endpoints: &[String],
    tls: &super::TlsFiles,
) -> String {
    let mut ssl = format!(
        "listen 127.0.0.1:{} ssl backlog=4096;
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;",
        ports.http,
        tls.cert.display(),
        tls.key.display()
    );
    if tls.require_client_cert {
        ssl.push_str(&format!(
            "
        ssl_client_certificate {};
        ssl_verify_client on;",
            tls.ca.display()
        ));
    }
    config(dir, ports, endpoints, false).replacen(
        &format!("listen 127.0.0.1:{} backlog=4096;", ports.http),
        &ssl,
        1,
    )
}

/// Arguments for `nginx`: the config, the prefix, and the early error log.
/// The directories nginx writes to under its prefix `dir`.
///
/// # Errors
/// When one cannot be created.
pub fn make_dirs(dir: &Path) -> std::io::Result<()> {
    for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

pub fn args(dir: &Path, config_file: &Path) -> Vec<String> {
    vec![
        "-c".into(),
        config_file.display().to_string(),
        "-p".into(),
        dir.display().to_string(),
        "-e".into(),
        dir.join("error.log").display().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_worker_no_access_log_and_a_keepalive_pool() {
        let c = config(
            Path::new("/tmp/x"),
            &ProxyPorts { http: 1, h2: 2 },
            &["127.0.0.1:3".to_owned()],
            false,
        );
        for needle in [
            "daemon off;",
            "worker_processes 1;",
            "access_log off;",
            "keepalive 128;",
            "server 127.0.0.1:3;",
            "listen 127.0.0.1:1 ",
            "listen 127.0.0.1:2 http2",
            "pid /tmp/x/nginx.pid;",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
    }

    #[test]
    fn failover_config_retries_and_ejects_like_meshworks() {
        let endpoints = ["127.0.0.1:3".to_owned(), "127.0.0.1:4".to_owned()];
        let c = config(
            Path::new("/tmp/x"),
            &ProxyPorts { http: 1, h2: 2 },
            &endpoints,
            true,
        );
        for needle in [
            "server 127.0.0.1:3 max_fails=5 fail_timeout=10s;",
            "server 127.0.0.1:4 max_fails=5 fail_timeout=10s;",
            "proxy_next_upstream_tries 3;",
            "http_503",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
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
            "listen 127.0.0.1:1 ssl backlog=4096;",
            "ssl_verify_client on;",
            "ssl_client_certificate /tmp/tls/ca.pem;",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
    }
}
