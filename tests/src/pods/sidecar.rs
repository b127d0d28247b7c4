//! A real `meshwork run` sidecar inside a pod, as UID/GID 1337 (the UID `meshwork init`
//! exempts from capture), with a sidecar config: outbound listeners on `127.0.0.1:15001`
//! and `[::1]:15001`, inbound on `0.0.0.0:15006` and `[::]:15006`, admin on
//! `127.0.0.1:4191`, a SPIFFE identity and `mesh.networks`.

use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{POD_NETWORKS, Pod};
use crate::binary::meshwork_bin;
use crate::client::HttpClient;
use crate::metrics::Scrape;
use crate::output::OutputBuffer;
use crate::tls::CertFiles;

/// The proxy's UID and GID (`meshwork init`'s default `--proxy-uid`/`--proxy-gid`).
pub const PROXY_UID: u32 = 1337;

/// The admin address inside every pod (`meshwork init` skips 4191 inbound by default).
const ADMIN: &str = "127.0.0.1:4191";

/// How long a sidecar may take to answer `/ready`, and metrics to show a wait's event.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What a sidecar's config says beyond the fixed listeners and admin.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    identity: CertFiles,
    mesh_networks: Vec<String>,
    mesh_inbound: Option<String>,
    outbound_lines: Vec<String>,
    inbound_lines: Vec<String>,
    extra: String,
    transparent: bool,
}

impl SidecarConfig {
    /// Identity `identity`, `mesh.networks` both pods' networks, listeners `auto` with
    /// `original_destination` and a one-hour idle timeout (so nothing in a test can wait
    /// on a timeout).
    pub fn new(identity: &CertFiles) -> Self {
        Self {
            identity: identity.clone(),
            mesh_networks: POD_NETWORKS.iter().map(|n| (*n).to_owned()).collect(),
            mesh_inbound: None,
            outbound_lines: Vec::new(),
            inbound_lines: Vec::new(),
            extra: String::new(),
            transparent: false,
        }
    }

    /// Replaces `mesh.networks` (an empty list leaves `mesh` out: nothing is meshed).
    pub fn mesh_networks(mut self, networks: &[&str]) -> Self {
        self.mesh_networks = networks.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// `mesh.inbound: MODE` (`permissive` or `strict`).
    pub fn mesh_inbound(mut self, mode: &str) -> Self {
        self.mesh_inbound = Some(mode.to_owned());
        self
    }

    /// One more line of both outbound listeners (e.g. `route_table: outbound`).
    pub fn outbound(mut self, line: &str) -> Self {
        self.outbound_lines.push(line.to_owned());
        self
    }

    /// One more line of both inbound listeners.
    pub fn inbound(mut self, line: &str) -> Self {
        self.inbound_lines.push(line.to_owned());
        self
    }

    /// Top-level YAML appended (route tables, clusters, authorization).
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self
    }

    /// The proxy keeps `CAP_NET_ADMIN` (as an ambient capability): TPROXY mode needs it
    /// for transparent sockets.
    pub fn transparent(mut self) -> Self {
        self.transparent = true;
        self
    }

    /// The config text, naming the identity files as copied into `dir`.
    fn yaml(&self, dir: &Path) -> String {
        let listener = |name: &str, address: &str, direction: &str, lines: &[String]| {
            let mut text = format!(
                "  - name: {name}\n    address: \"{address}\"\n    direction: {direction}\n    \
                 protocol: auto\n    original_destination: true\n    limits: {{ idle_timeout: 1h }}\n"
            );
            for line in lines {
                text.push_str(&format!("    {line}\n"));
            }
            text
        };
        let mut yaml = format!("version: 1\nadmin:\n  address: {ADMIN}\nlisteners:\n");
        for (name, address) in [
            ("outbound", "127.0.0.1:15001"),
            ("outbound-v6", "[::1]:15001"),
        ] {
            yaml.push_str(&listener(name, address, "outbound", &self.outbound_lines));
        }
        for (name, address) in [("inbound", "0.0.0.0:15006"), ("inbound-v6", "[::]:15006")] {
            yaml.push_str(&listener(name, address, "inbound", &self.inbound_lines));
        }
        yaml.push_str(&format!(
            "identity:\n  cert: {}\n  key: {}\n  trust_bundle: {}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            dir.join("ca.pem").display()
        ));
        if !self.mesh_networks.is_empty() {
            yaml.push_str(&format!(
                "mesh:\n  networks: [{}]\n",
                self.mesh_networks.join(", ")
            ));
            if let Some(mode) = &self.mesh_inbound {
                yaml.push_str(&format!("  inbound: {mode}\n"));
            }
        }
        yaml.push_str(&self.extra);
        yaml
    }
}

/// A running sidecar; killed on drop (its log is printed when the test is failing).
#[derive(Debug)]
pub struct Sidecar {
    child: Child,
    pod_name: String,
    runtime: tokio::runtime::Handle,
    stderr: OutputBuffer,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Writes the config and identity into a directory owned by the proxy's UID, starts
    /// `meshwork run` in `pod` as UID/GID 1337, and waits (at most 10 s) for `/ready`.
    ///
    /// # Panics
    /// When it exits or is not ready in time, with what it logged.
    pub async fn start(pod: &Pod, config: &SidecarConfig) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("meshwork-sidecar-")
            .tempdir()
            .expect("create the sidecar's directory");
        let files = [
            (&config.identity.cert, "cert.pem"),
            (&config.identity.key, "key.pem"),
            (&config.identity.ca, "ca.pem"),
        ];
        for (from, name) in files {
            std::fs::copy(from, dir.path().join(name)).expect("copy an identity file");
        }
        let config_path = dir.path().join("meshwork.yaml");
        std::fs::write(&config_path, config.yaml(dir.path())).expect("write the config");
        for entry in std::fs::read_dir(dir.path()).expect("list the sidecar's directory") {
            let path = entry.expect("a directory entry").path();
            own_by_proxy(&path, 0o600);
        }
        own_by_proxy(dir.path(), 0o700);

        let bin = meshwork_bin();
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &pod.ns.name, "setpriv"]);
        command.args([
            &format!("--reuid={PROXY_UID}"),
            &format!("--regid={PROXY_UID}"),
            "--clear-groups",
        ]);
        if config.transparent {
            command.args(["--inh-caps=+net_admin", "--ambient-caps=+net_admin"]);
        }
        command
            .arg(&bin)
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start `meshwork run` in the pod");
        let pid = child.id().unwrap_or_default();
        let stderr = OutputBuffer::default();
        let label = format!("sidecar {} {pid}", pod.ns.name);
        stderr.capture(child.stderr.take().expect("piped stderr"), label.clone());
        // stdout (the access log, if any) goes to the same buffer.
        stderr.capture(child.stdout.take().expect("piped stdout"), label);
        let mut sidecar = Self {
            child,
            pod_name: pod.ns.name.clone(),
            runtime: pod.runtime.handle.clone(),
            stderr,
            _dir: dir,
        };
        sidecar.await_ready().await;
        sidecar
    }

    async fn await_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        let mut last;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("meshwork exited ({status}) before becoming ready"));
            }
            match self.admin_get("/ready").await {
                Ok((StatusCode::OK, _)) => return,
                Ok((status, body)) => last = format!("{status} {body}"),
                Err(error) => last = error,
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "/ready did not answer 200 within {TIMEOUT:?} (last: {last})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET path` on the admin server, from inside the pod.
    ///
    /// # Errors
    /// The request failed (as text).
    pub async fn admin_get(&self, path: &str) -> Result<(StatusCode, String), String> {
        let url = format!("http://{ADMIN}{path}");
        let task = self.runtime.spawn(async move {
            HttpClient::h1_unpooled()
                .request(Method::GET, &url)
                .timeout(Duration::from_secs(2))
                .try_send()
                .await
                .map(|reply| (reply.status, reply.text()))
        });
        task.await.map_err(|e| format!("admin request task: {e}"))?
    }

    /// `GET /metrics`, parsed.
    ///
    /// # Panics
    /// When the scrape fails.
    pub async fn scrape(&self) -> Scrape {
        match self.admin_get("/metrics").await {
            Ok((StatusCode::OK, text)) => Scrape::parse(&text),
            other => self.fail(&format!("GET /metrics: {other:?}")),
        }
    }

    /// Scrapes until `check` holds (bounded) and returns that scrape.
    ///
    /// # Panics
    /// When `check` still fails after 10 s, with the sidecar's `meshwork_sidecar_` and
    /// connection samples.
    pub async fn scrape_when(&self, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let scrape = self.scrape().await;
            if check(&scrape) {
                return scrape;
            }
            if Instant::now() > deadline {
                let samples: Vec<&str> = scrape
                    .text
                    .lines()
                    .filter(|l| l.starts_with("meshwork_") && !l.contains("_bucket{"))
                    .collect();
                self.fail(&format!(
                    "/metrics did not show {what} within {TIMEOUT:?}; last scrape:\n{}",
                    samples.join("\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM to `meshwork` itself (`ip netns exec` and `setpriv` exec it, so the
    /// child's pid is the proxy's), as a kubelet stopping the pod does.
    pub fn sigterm(&self) {
        let pid = self.child.id().expect("the sidecar is still running");
        let pid = i32::try_from(pid).expect("pid fits in i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("kill -TERM the sidecar");
    }

    /// Waits for the sidecar to exit.
    ///
    /// # Panics
    /// When it still runs after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => self.fail(&format!("waiting for meshwork to exit: {e}")),
            Err(_) => self.fail(&format!("meshwork still running {timeout:?} later")),
        }
    }

    /// What the sidecar logged so far.
    pub fn log(&self) -> String {
        self.stderr.text()
    }

    fn fail(&self, message: &str) -> ! {
        panic!(
            "sidecar in {}: {message}\n--- its log (last 80 lines) ---\n{}",
            self.pod_name,
            self.stderr.tail(80)
        );
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- sidecar in {} (last 80 lines) ---\n{}",
                self.pod_name,
                self.stderr.tail(80)
            );
        }
    }
}

fn own_by_proxy(path: &Path, mode: u32) {
    chown(path, Some(PROXY_UID), Some(PROXY_UID))
        .unwrap_or_else(|e| panic!("chown {} to {PROXY_UID}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
