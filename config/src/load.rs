//! Loading: file -> env substitution -> YAML tree -> raw structs -> checks -> model.

use std::path::Path;

use crate::de;
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, Sink};
use crate::env;
use crate::model::Config;
use crate::raw::RawConfig;
use crate::spanned::Spanned;
use crate::unsupported;
use crate::validate::{self, Context};
use crate::yaml;

/// Node id used when `node.id` is absent and the hostname cannot be found.
pub const FALLBACK_NODE_ID: &str = "meshwork";

/// Reads a config file, substitutes `${VAR}` from the process environment, parses and
/// validates it.
///
/// Relative file paths in the config (certificates, keys, the access log file) are
/// resolved against the directory holding `path`. Diagnostics name the file as `path`
/// is written.
///
/// # Errors
/// Every problem found (a file that cannot be read is one diagnostic at line 0).
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(
            file_name.clone(),
            Pos::new(0, 0),
            "",
            format!("cannot read the config file: {e}"),
        )])
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    load_str(&file_name, &text, &base_dir, &|name| {
        std::env::var(name).ok()
    })
}

/// Substitutes, parses and validates `text`, the pure core of [`load_file`].
///
/// `file_name` is only used in diagnostics. Relative file paths in the config
/// (certificates, keys, the access log file) are resolved against `base_dir` (give the
/// config file's directory). `env` answers `${VAR}` lookups. The only other outside fact
/// read is the hostname (default `node.id`).
///
/// # Errors
/// Every problem found, sorted by position.
pub fn load_str(
    file_name: &str,
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    load_with(
        file_name,
        text,
        base_dir,
        env,
        unsupported::NOT_SUPPORTED_YET,
    )
}

/// `load_str` with a given table of refusals (tests load with none).
fn load_with(
    file_name: &str,
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    not_yet: &[unsupported::NotYet],
) -> Result<Config, Diagnostics> {
    let (substituted, columns, env_problems) = env::substitute(text, env);
    let mut sink = Sink::default();
    let parsed = yaml::parse(&substituted);
    let root = match &parsed {
        Ok((Some(root), _)) => Some(root),
        _ => None,
    };
    // Positions are kept in the substituted text until the end.
    let env_failed = !env_problems.is_empty();
    for (pos, message) in env_problems {
        let at = columns.substituted(pos);
        let path = root.and_then(|r| yaml::path_at(r, at)).unwrap_or_default();
        sink.push(at, &path, message);
    }
    let config = match parsed {
        Err((pos, message)) => {
            sink.push(pos, "", message);
            None
        }
        Ok((None, _)) => {
            if !env_failed {
                sink.push(
                    Pos::new(1, 1),
                    "",
                    "the file is empty (expected a mapping starting with `version: 1`)",
                );
            }
            None
        }
        // Stop before validating: an unset variable would cause follow-on errors.
        Ok((Some(_), _)) if env_failed => None,
        Ok((Some(root), problems)) => {
            for (pos, path, message) in problems {
                sink.push(pos, &path, message);
            }
            let config = check(&root, base_dir, not_yet, true, &mut sink);
            unsupported::check_control_plane_only(&root, &mut sink);
            config
        }
    };
    match config {
        Some(config) if sink.is_empty() => Ok(config),
        _ => {
            let list = sink
                .into_vec(file_name)
                .into_iter()
                .map(|mut d| {
                    let pos = yaml::inside(text, columns.original(d.pos()));
                    d.line = pos.line;
                    d.column = pos.column;
                    d
                })
                .collect();
            Err(Diagnostics::new(list))
        }
    }
}

/// Structural checks, refusals of unsupported fields, validation of a file (`whole`), or
/// of resources assembled over a proxy's file.
pub(crate) fn check(
    root: &yaml::Node,
    base_dir: &Path,
    not_yet: &[unsupported::NotYet],
    whole: bool,
    sink: &mut Sink,
) -> Option<Config> {
    let raw: Spanned<RawConfig> = de::from_node(root, sink)?;
    let cx = Context {
        base_dir,
        default_node_id: hostname(),
        listeners_served_later: whole,
    };
    let config = validate::validate(&raw, &cx, sink);
    // A field that is also wrong in itself gets only that message.
    let mut refusals = Sink::default();
    unsupported::check(root, not_yet, &mut refusals);
    for d in refusals.into_vec("") {
        if !sink.has_at(d.pos()) {
            sink.push(d.pos(), &d.path, d.message);
        }
    }
    config
}

/// The machine's hostname: /proc/sys/kernel/hostname, else `$HOSTNAME`, else "meshwork".
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| FALLBACK_NODE_ID.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::model::*;

    fn sample() -> String {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contract/config_md.yaml");
        std::fs::read_to_string(path).expect("read the sample")
    }

    #[test]
    fn the_config_md_sample_loads_with_every_field_supported() {
        let loaded = load_str(
            "config_md.yaml",
            &sample(),
            Path::new("/etc/meshwork"),
            &|_| None,
        );
        if let Err(e) = loaded {
            panic!("{e}");
        }
    }

    #[test]
    fn the_whole_config_md_sample_parses_into_the_model() {
        let base = Path::new("/etc/meshwork");
        let config = load_with("config_md.yaml", &sample(), base, &|_| None, &[])
            .unwrap_or_else(|e| panic!("{e}"));

        assert_eq!(config.node.id, "web-7d9f");
        assert_eq!(
            config.node.labels.get("zone").map(String::as_str),
            Some("eu-1")
        );
        assert_eq!(config.runtime.worker_threads, WorkerThreads::Fixed(1));
        assert_eq!(config.admin.address.to_string(), "127.0.0.1:9901");
        let cp = config.control_plane.as_ref().expect("control plane");
        assert_eq!(cp.address, "http://127.0.0.1:18000");

        let edge = config
            .listeners
            .iter()
            .find(|l| l.name == "edge")
            .expect("edge");
        assert_eq!(
            edge.protocol,
            ListenerProtocol::Http {
                route_table: "edge".into()
            }
        );
        let tls = edge.tls.as_ref().expect("tls");
        assert_eq!(tls.certificates[0].cert, base.join("certs/api.pem"));
        assert_eq!(
            tls.certificates[0].server_names,
            vec![
                HostMatch::Exact("api.example.com".into()),
                HostMatch::Wildcard(".example.com".into())
            ]
        );
        assert_eq!(tls.client_auth, ClientAuth::None);
        assert_eq!(edge.limits, DEFAULT_LISTENER_LIMITS);

        let route = &config.route_tables["edge"].routes[0];
        assert_eq!(route.name, "api-canary");
        assert_eq!(route.matcher.path, Some(PathMatch::Prefix("/v1/".into())));
        assert_eq!(route.matcher.methods, vec!["GET", "POST"]);
        assert_eq!(
            route.matcher.query[0].condition,
            ValueCondition::Present(true)
        );
        let RouteAction::Backends(backends) = &route.action else {
            panic!("backends")
        };
        assert_eq!(
            backends[1],
            WeightedBackend {
                cluster: "api-v2".into(),
                weight: 10
            }
        );
        assert_eq!(route.timeout, Some(Duration::from_secs(5)));
        let retry = route.retry.as_ref().expect("retry");
        assert_eq!(retry.attempts, 3);
        assert_eq!(
            retry.on,
            vec![
                RetryOn::ConnectFailure,
                RetryOn::Reset,
                RetryOn::Status(503),
                RetryOn::GatewayError
            ]
        );
        assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(1)));
        assert_eq!(
            retry.backoff,
            Backoff {
                base: Duration::from_millis(25),
                max: Duration::from_secs(1)
            }
        );
        assert_eq!(
            retry.budget,
            RetryBudget {
                ratio: 0.2,
                min_per_second: 10
            }
        );
        assert_eq!(
            retry.methods,
            vec!["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]
        );
        assert_eq!(retry.max_body, 64 * 1024);
        let fault = route.fault.as_ref().expect("fault");
        assert_eq!(
            fault.delay,
            Some(FaultDelay {
                percent: 10.0,
                duration: Duration::from_secs(2)
            })
        );
        let abort = fault.abort.as_ref().expect("abort");
        assert_eq!(
            abort.kind,
            AbortKind::Http(http::StatusCode::SERVICE_UNAVAILABLE)
        );
        let rewrite = route.rewrite.as_ref().expect("rewrite");
        assert_eq!(rewrite.path_prefix.as_deref(), Some("/"));
        assert_eq!(rewrite.host.as_deref(), Some("api.internal"));
        assert_eq!(route.request_headers.set[0].0.as_str(), "x-env");
        assert_eq!(route.request_headers.add[0].1, "meshwork");
        assert_eq!(route.response_headers.remove[0].as_str(), "server");
        assert_eq!(
            route.rate_limit,
            Some(RateLimit {
                requests_per_second: 100.0,
                burst: 200
            })
        );
        assert_eq!(
            route.mirror,
            Some(Mirror {
                cluster: "api-shadow".into(),
                percent: 5.0
            })
        );

        let api = config.cluster("api-v1").expect("api-v1");
        assert_eq!(api.endpoints[1].weight, 3);
        assert_eq!(api.protocol, UpstreamProtocol::Http1);
        assert_eq!(api.load_balancer, LoadBalancer::RoundRobin);
        assert_eq!(
            api.hash,
            Some(HashPolicy::Header(http::HeaderName::from_static(
                "x-user-id"
            )))
        );
        assert_eq!(api.connect_timeout, Duration::from_secs(1));
        assert_eq!(api.idle_timeout, Duration::from_secs(60));
        assert_eq!(api.limits, DEFAULT_CLUSTER_LIMITS);
        let breaker = api.circuit_breaker.as_ref().expect("breaker");
        assert_eq!(breaker.consecutive_failures, Some(5));
        let rate = breaker.failure_rate.as_ref().expect("failure rate");
        assert_eq!((rate.threshold, rate.min_requests), (0.5, 20));
        assert_eq!(breaker.max_open_duration, Duration::from_secs(300));
        assert_eq!(
            (breaker.half_open_requests, breaker.max_ejected_percent),
            (3, 50)
        );
        let hc = api.health_check.as_ref().expect("health check");
        assert_eq!(
            hc.kind,
            HealthCheckKind::Http {
                path: "/healthz".into(),
                expected_status: vec![200, 204]
            }
        );
        assert_eq!((hc.unhealthy_threshold, hc.healthy_threshold), (3, 2));
        let ctls = api.tls.as_ref().expect("cluster tls");
        assert_eq!(ctls.key, Some(base.join("certs/client-key.pem")));
        assert_eq!(ctls.server_name.as_deref(), Some("api.internal"));
        assert_eq!(
            ctls.identities,
            vec!["spiffe://cluster.local/ns/prod/sa/api"]
        );

        let identity = config.identity.as_ref().expect("identity");
        assert_eq!(identity.trust_bundle, Path::new("/var/run/meshwork/ca.pem"));
        let policy = &config.authorization[0];
        assert_eq!(
            (policy.listener.as_str(), policy.default),
            ("inbound", AuthorizationDefault::Deny)
        );
        assert_eq!(policy.allow[0].paths, vec!["/api/*"]);
        let tracing = config.tracing.as_ref().expect("tracing");
        assert_eq!(tracing.propagation, vec![Propagation::W3c, Propagation::B3]);
        assert_eq!(tracing.sampling, 0.01);
        assert_eq!(tracing.service_name, "web-sidecar");
        let log = config.access_log.as_ref().expect("access log");
        assert_eq!(
            (log.format, &log.path),
            (AccessLogFormat::Json, &AccessLogPath::Stdout)
        );
    }

    #[test]
    fn authorization_may_name_listeners_the_control_plane_will_serve() {
        let policy = "authorization:\n  - { listener: inbound, default: deny }\n";
        let fed = format!("version: 1\ncontrol_plane: {{ address: http://127.0.0.1:1 }}\n{policy}");
        assert!(load_str("a.yaml", &fed, Path::new("."), &|_| None).is_ok());
        let alone = format!("version: 1\n{policy}");
        let err = load_str("a.yaml", &alone, Path::new("."), &|_| None).expect_err("refused");
        assert!(
            err.to_string().contains("no listener named \"inbound\""),
            "{err}"
        );
    }

    #[test]
    fn defaults_fill_a_minimal_file() {
        let config = load_str("m.yaml", "version: 1\n", Path::new("."), &|_| None).expect("loads");
        assert_eq!(
            config.admin.address.to_string(),
            crate::model::DEFAULT_ADMIN_ADDRESS
        );
        assert_eq!(config.runtime.worker_threads, WorkerThreads::Fixed(1));
        assert!(!config.node.id.is_empty());
        assert!(config.listeners.is_empty() && config.clusters.is_empty());
    }

    #[test]
    fn a_missing_file_is_one_diagnostic_at_line_zero() {
        let err = load_file(Path::new("/nonexistent/meshwork.yaml")).expect_err("missing");
        assert_eq!(err.len(), 1);
        let d = &err.0[0];
        assert_eq!((d.line, d.column), (0, 0));
        assert!(
            d.to_string()
                .starts_with("/nonexistent/meshwork.yaml:0:0: cannot read the config file"),
            "{d}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let text = "version: 1\naccess_log: { path: logs/access.log }\n";
        let config =
            load_with("a.yaml", text, Path::new("/srv/mesh"), &|_| None, &[]).expect("loads");
        let log = config.access_log.expect("access log");
        assert_eq!(
            log.path,
            AccessLogPath::File(Path::new("/srv/mesh/logs/access.log").to_path_buf())
        );
    }
}
