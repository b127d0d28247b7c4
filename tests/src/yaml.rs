//! Writing configs in tests: indented YAML literals and the common listener preamble.

use crate::upstream::Upstream;

/// Removes the indentation common to all non-blank lines and a leading blank line, so
/// YAML can be written indented inside a test function.
pub fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    let mut started = false;
    for line in lines {
        if !started && line.trim().is_empty() {
            continue;
        }
        started = true;
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str(&line[indent..]);
            out.push('\n');
        }
    }
    out
}

/// The preamble most tests share: format version, an admin server and one `http`
/// listener named `edge` using the route table `edge`, all on `127.0.0.1:0`.
pub const EDGE_PREAMBLE: &str = "\
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: edge
    address: 127.0.0.1:0
    protocol: http
    route_table: edge
";

/// [`EDGE_PREAMBLE`] followed by `rest` (dedented), which holds `route_tables:` (with an
/// `edge` table) and `clusters:`.
pub fn edge_config(rest: &str) -> String {
    format!("{EDGE_PREAMBLE}{}", dedent(rest))
}

/// An edge config with a single route `all` sending everything to the cluster `app`,
/// whose one endpoint is `endpoint` spoken to with `protocol` (`http1` or `http2`).
pub fn single_cluster_config(endpoint: &str, protocol: &str) -> String {
    edge_config(&format!(
        "
        route_tables:
          edge:
            - name: all
              match:
                path:
                  prefix: /
              backends:
                - cluster: app
                  weight: 100
        clusters:
          - name: app
            endpoints:
              - {endpoint}
            protocol: {protocol}
        "
    ))
}

/// A route named `api` sending paths under `/api/` to cluster `app`, for [`edge_routes`].
pub const API_ROUTE: &str = "\
- name: api
  match:
    path:
      prefix: /api/
  backends:
    - cluster: app
";

/// Indents every non-blank line of `text` by `spaces`.
pub fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines()
        .map(|line| {
            if line.trim().is_empty() {
                "\n".to_owned()
            } else {
                format!("{pad}{line}\n")
            }
        })
        .collect()
}

/// One cluster: a single endpoint spoken to with `protocol` (`http1` or `http2`).
pub fn cluster_yaml(name: &str, endpoint: &str, protocol: &str) -> String {
    format!("  - name: {name}\n    endpoints:\n      - {endpoint}\n    protocol: {protocol}\n")
}

/// An edge config whose `edge` route table is `routes` (a YAML list, indented as the
/// test likes) and with one cluster per upstream, named after it.
pub fn edge_routes(routes: &str, upstreams: &[&Upstream]) -> String {
    let clusters: String = upstreams
        .iter()
        .map(|u| cluster_yaml(u.name(), &u.endpoint(), u.cluster_protocol()))
        .collect();
    format!(
        "{EDGE_PREAMBLE}route_tables:\n  edge:\n{}clusters:\n{clusters}",
        indent(&dedent(routes), 4)
    )
}

/// `yaml` (built on [`EDGE_PREAMBLE`]) with a `limits` block added to listener `edge`;
/// `limits` holds its fields, e.g. `"header_read_timeout: 300ms"`.
///
/// # Panics
/// When `yaml` has no `edge` listener from the preamble.
pub fn with_limits(yaml: &str, limits: &str) -> String {
    into_edge_listener(yaml, &format!("limits:\n{}", indent(&dedent(limits), 2)))
}

/// `yaml` (built on [`EDGE_PREAMBLE`]) with listener `edge` terminating TLS with the
/// certificate `cert` and its key `key` (any server name).
///
/// # Panics
/// When `yaml` has no `edge` listener from the preamble.
pub fn with_tls(yaml: &str, cert: &std::path::Path, key: &std::path::Path) -> String {
    let tls = format!(
        "tls:\n  certificates:\n    - {{ cert: {}, key: {} }}\n",
        cert.display(),
        key.display()
    );
    into_edge_listener(yaml, &tls)
}

/// Adds `fields` (YAML at the listener's own indentation) to listener `edge`.
fn into_edge_listener(yaml: &str, fields: &str) -> String {
    let anchor = "    route_table: edge\n";
    let at = yaml
        .find(anchor)
        .expect("the edge listener of EDGE_PREAMBLE")
        + anchor.len();
    format!("{}{}{}", &yaml[..at], indent(fields, 4), &yaml[at..])
}

/// The top-level `access_log:` block: `format` (`json` or `text`) written to `path`.
pub fn access_log_yaml(format: &str, path: &str) -> String {
    format!("access_log:\n  format: {format}\n  path: {path:?}\n")
}

/// The `service_name` [`tracing_yaml`] configures.
pub const TRACING_SERVICE_NAME: &str = "edge-test";

/// The top-level `tracing:` block: W3C and B3 propagation, head sampling `sampling`,
/// spans exported over OTLP/HTTP to `endpoint`, as [`TRACING_SERVICE_NAME`].
pub fn tracing_yaml(endpoint: &str, sampling: f64) -> String {
    format!(
        "tracing:\n  propagation: [w3c, b3]\n  sampling: {sampling:?}\n  otlp:\n    endpoint: {endpoint:?}\n  service_name: {TRACING_SERVICE_NAME}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_strips_the_common_indentation_and_the_leading_blank_line() {
        let text = "\n    a:\n      b: 1\n\n    c: 2\n  ";
        assert_eq!(dedent(text), "a:\n  b: 1\n\nc: 2\n\n");
    }

    #[test]
    fn with_limits_adds_a_limits_block_to_the_edge_listener() {
        let yaml = with_limits(EDGE_PREAMBLE, "max_connections: 2\nidle_timeout: 1s");
        assert!(
            yaml.contains("    route_table: edge\n    limits:\n      max_connections: 2\n      idle_timeout: 1s\n"),
            "{yaml}"
        );
    }

    #[test]
    fn top_level_blocks_append_to_an_edge_config() {
        assert_eq!(
            access_log_yaml("json", "/tmp/a.log"),
            "access_log:\n  format: json\n  path: \"/tmp/a.log\"\n"
        );
        assert!(tracing_yaml("http://127.0.0.1:9/v1/traces", 1.0).contains(
            "  sampling: 1.0\n  otlp:\n    endpoint: \"http://127.0.0.1:9/v1/traces\"\n"
        ));
    }

    #[test]
    fn indent_pads_non_blank_lines() {
        assert_eq!(indent("- a\n\n  b: 1\n", 4), "    - a\n\n      b: 1\n");
    }
}
