//! Running the real proxy: `Proxy::with_config(yaml).start().await` spawns
//! `meshwork run`, waits until its admin server says it is ready, and learns the
//! addresses its listeners actually bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::binary::meshwork_bin;
use crate::client::{HttpClient, Reply};
use crate::output::{ECHO_ENV, OutputBuffer};

/// How long the proxy may take to become ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reload may take to show in `/config`.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How often startup and reload poll.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One entry of the admin `/listeners` list.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ListenerInfo {
    pub name: String,
    /// The address actually bound (never port 0).
    pub address: SocketAddr,
    pub protocol: String,
}

/// Builds and starts a [`Proxy`].
#[derive(Debug)]
pub struct ProxyBuilder {
    yaml: String,
    drain_timeout: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
}

impl ProxyBuilder {
    /// Passes `--drain-timeout` (e.g. `"2s"`).
    pub fn drain_timeout(mut self, duration: &str) -> Self {
        self.drain_timeout = Some(duration.to_owned());
        self
    }

    /// Passes one more argument to `meshwork run`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// `start` returns once the admin server answers, without waiting for `/ready`: for
    /// a proxy expected to stay not ready.
    pub fn without_waiting_for_ready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Sets an environment variable for the proxy (e.g. for `${VAR}` in the config).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Writes the config to a temporary directory, starts `meshwork run`, and waits
    /// (at most [`STARTUP_TIMEOUT`]) for the admin address file, then for `/ready`,
    /// then reads `/listeners`.
    ///
    /// # Panics
    /// When the proxy exits or is not ready in time, with what it logged.
    pub async fn start(self) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("meshwork-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        let config_path = dir.path().join("meshwork.yaml");
        std::fs::write(&config_path, &self.yaml).expect("write the config");
        let address_file = dir.path().join("admin-address");

        let mut command = Command::new(meshwork_bin());
        command
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-file")
            .arg(&address_file);
        if let Some(drain) = &self.drain_timeout {
            command.arg("--drain-timeout").arg(drain);
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start `meshwork run`");
        let pid = child.id().expect("a running child has a pid");
        let stderr = OutputBuffer::default();
        let stdout = OutputBuffer::default();
        stderr.capture(
            child.stderr.take().expect("piped stderr"),
            format!("meshwork {pid}"),
        );
        stdout.capture(
            child.stdout.take().expect("piped stdout"),
            format!("meshwork {pid} stdout"),
        );

        let mut proxy = Proxy {
            child,
            pid,
            _dir: dir,
            config_path,
            admin: None,
            listeners: Vec::new(),
            stderr,
            stdout,
            admin_client: HttpClient::h1(),
            exit: None,
            reported: AtomicBool::new(false),
        };
        proxy.await_ready(&address_file, self.wait_ready).await;
        proxy.refresh_listeners().await;
        proxy
    }
}

/// A running `meshwork run`; killed when dropped (its output is printed if the test is
/// failing).
#[derive(Debug)]
pub struct Proxy {
    child: Child,
    pid: u32,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    admin: Option<SocketAddr>,
    listeners: Vec<ListenerInfo>,
    stderr: OutputBuffer,
    stdout: OutputBuffer,
    admin_client: HttpClient,
    exit: Option<ExitStatus>,
    /// Set once a panic message already carried the proxy's stderr.
    reported: AtomicBool,
}

impl Proxy {
    /// A proxy to be started with this YAML config.
    pub fn with_config(yaml: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder {
            yaml: yaml.into(),
            drain_timeout: None,
            args: Vec::new(),
            env: Vec::new(),
            wait_ready: true,
        }
    }

    async fn await_ready(&mut self, address_file: &Path, wait_ready: bool) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let admin = loop {
            self.assert_running("before writing its admin address")
                .await;
            if let Ok(text) = std::fs::read_to_string(address_file) {
                if let Ok(addr) = text.trim().parse::<SocketAddr>() {
                    break addr;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "meshwork did not write its admin address to {} within {STARTUP_TIMEOUT:?}",
                    address_file.display()
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        self.admin = Some(admin);
        let mut last;
        loop {
            self.assert_running("before becoming ready").await;
            match self.try_admin_get("/ready").await {
                Ok(reply) if reply.status == StatusCode::OK || !wait_ready => return,
                Ok(reply) => last = format!("{} {}", reply.status, reply.text()),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "meshwork's /ready did not answer 200 within {STARTUP_TIMEOUT:?} (last: {last})"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.exit = Some(status);
            // Let the capture tasks read what is left in the pipes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.fail(&format!("meshwork exited ({status}) {when}"));
        }
    }

    /// Panics with `message` and the proxy's stderr.
    pub fn fail(&self, message: &str) -> ! {
        self.reported.store(true, Ordering::SeqCst);
        panic!(
            "{message}\n--- meshwork stderr (last 60 lines) ---\n{}",
            self.stderr.tail(60)
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The admin server's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("the proxy is ready")
    }

    /// The bound address of listener `name` (as last read from `/listeners`).
    ///
    /// # Panics
    /// When there is no such listener.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        match self.listeners.iter().find(|l| l.name == name) {
            Some(listener) => listener.address,
            None => panic!(
                "no listener named {name:?} in /listeners: {:?}",
                self.listeners
            ),
        }
    }

    /// The listeners as last read from `/listeners`.
    pub fn listeners(&self) -> &[ListenerInfo] {
        &self.listeners
    }

    /// `http://ADDRESS{path}` for listener `name`.
    pub fn url(&self, name: &str, path: &str) -> String {
        format!("http://{}{path}", self.listener_addr(name))
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr())
    }

    /// `GET` on the admin server, collected.
    ///
    /// # Panics
    /// When the request fails.
    pub async fn admin_get(&self, path: &str) -> Reply {
        match self.try_admin_get(path).await {
            Ok(reply) => reply,
            Err(e) => self.fail(&format!("admin GET {path} failed: {e}")),
        }
    }

    /// `GET` on the admin server, which must answer 200.
    ///
    /// # Panics
    /// When the request fails or the status is not 200.
    pub async fn admin_get_ok(&self, path: &str) -> Reply {
        let reply = self.admin_get(path).await;
        if reply.status != StatusCode::OK {
            self.fail(&format!(
                "{path} answered {}: {}",
                reply.status,
                reply.text()
            ));
        }
        reply
    }

    /// Asserts that `/clusters` shows every endpoint's circuit breaker closed.
    ///
    /// # Panics
    /// When one is open or half-open, or no breaker is shown, with `/clusters`.
    pub async fn assert_breakers_closed(&self) {
        let clusters = self.admin_get_ok("/clusters").await.text();
        let closed = clusters.contains("\"circuit_breaker\": \"closed\"")
            && !clusters.contains("\"circuit_breaker\": \"open\"")
            && !clusters.contains("\"circuit_breaker\": \"half_open\"");
        if !closed {
            self.fail(&format!("not every circuit breaker is closed:\n{clusters}"));
        }
    }

    async fn try_admin_get(&self, path: &str) -> Result<Reply, String> {
        self.admin_client
            .request(Method::GET, &self.admin_url(path))
            .timeout(Duration::from_secs(2))
            .try_send()
            .await
    }

    /// Re-reads `/listeners`.
    pub async fn refresh_listeners(&mut self) {
        let reply = self.admin_get_ok("/listeners").await;
        match serde_json::from_slice(&reply.body) {
            Ok(listeners) => self.listeners = listeners,
            Err(e) => self.fail(&format!(
                "/listeners is not a listener list ({e}): {}",
                reply.text()
            )),
        }
    }

    /// The whole `/config` document.
    pub async fn config_document(&self) -> serde_json::Value {
        let reply = self.admin_get_ok("/config").await;
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| self.fail(&format!("/config is not JSON ({e}): {}", reply.text())))
    }

    /// The active config's `version` from `/config`.
    pub async fn config_version(&self) -> String {
        let document = self.config_document().await;
        match &document["version"] {
            serde_json::Value::String(version) => version.clone(),
            serde_json::Value::Null => self.fail(&format!("/config has no version: {document}")),
            other => other.to_string(),
        }
    }

    /// The path of the config file the proxy reads.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Overwrites the config file in place, without signalling (the watcher may notice).
    pub fn write_config_without_signal(&self, yaml: &str) {
        std::fs::write(&self.config_path, yaml).expect("write the config");
    }

    /// Replaces the config file atomically (write a temporary file, then rename).
    pub fn replace_config_atomically(&self, yaml: &str) {
        let temporary = self.config_path.with_extension("yaml.new");
        std::fs::write(&temporary, yaml).expect("write the new config");
        std::fs::rename(&temporary, &self.config_path).expect("rename the new config into place");
    }

    /// Replaces the config and sends SIGHUP, then waits (at most [`RELOAD_TIMEOUT`]) for
    /// `/config`'s version to change, and re-reads `/listeners`. Returns the new version.
    ///
    /// # Panics
    /// When the version does not change in time.
    pub async fn reload(&mut self, yaml: &str) -> String {
        let before = self.config_version().await;
        self.replace_config_atomically(yaml);
        self.sighup();
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let now = self.config_version().await;
            if now != before {
                self.refresh_listeners().await;
                return now;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the config version stayed {before:?} for {RELOAD_TIMEOUT:?} after SIGHUP"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Sends `signal` to the proxy.
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.pid).expect("pid fits in i32");
        kill(Pid::from_raw(pid), signal).unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
    }

    pub fn sighup(&self) {
        self.signal(Signal::SIGHUP);
    }

    pub fn sigterm(&self) {
        self.signal(Signal::SIGTERM);
    }

    pub fn sigint(&self) {
        self.signal(Signal::SIGINT);
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// When it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.exit = Some(status);
                status
            }
            Ok(Err(e)) => self.fail(&format!("waiting for meshwork to exit: {e}")),
            Err(_) => self.fail(&format!("meshwork still running {timeout:?} later")),
        }
    }

    /// Resident memory, from `/proc/PID/status`.
    ///
    /// # Panics
    /// When the process is gone.
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes_of(self.pid).unwrap_or_else(|| self.fail("no VmRSS in /proc/PID/status"))
    }

    /// What the proxy has written to stderr so far (the last 4 MiB).
    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    /// Bytes written to stderr so far, for noticing that something was logged.
    pub fn stderr_bytes(&self) -> u64 {
        self.stderr.total_bytes()
    }

    /// What the proxy has written to stdout so far (the last 4 MiB).
    pub fn stdout_so_far(&self) -> String {
        self.stdout.text()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking()
            && std::env::var_os(ECHO_ENV).is_none()
            && !self.reported.load(Ordering::SeqCst)
        {
            eprintln!(
                "--- meshwork {} stderr (last 80 lines) ---\n{}\n--- end of meshwork stderr ---",
                self.pid,
                self.stderr.tail(80)
            );
        }
    }
}

/// Resident memory of process `pid` from `/proc/PID/status`; `None` once it is gone.
pub fn rss_bytes_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())?;
    Some(kib * 1024)
}
