//! Running the real control plane: `ControlPlane::start().await` spawns
//! `meshwork-control` on a temporary fragment directory and waits for its admin server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use http::StatusCode;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::binary::meshwork_control_bin;
use crate::client::HttpClient;
use crate::output::{ECHO_ENV, OutputBuffer};

/// How long the control plane may take to start.
pub const CONTROL_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A control-plane fragment: listener `edge` on an ephemeral port routing everything to
/// cluster `api` (which another fragment or the test defines).
pub const EDGE_TO_API: &str = "
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
route_tables:
  edge:
    - name: all
      backends: [{ cluster: api }]
";

/// A control-plane fragment: cluster `api` (where [`EDGE_TO_API`] routes) with one
/// endpoint.
pub fn api_cluster(endpoint: &str) -> String {
    crate::dedent(&format!(
        "
        clusters:
          - name: api
            endpoints: [{endpoint}]
        "
    ))
}

/// A running `meshwork-control` and its fragment directory; killed when dropped (its
/// output is printed if the test is failing).
#[derive(Debug)]
pub struct ControlPlane {
    dir: tempfile::TempDir,
    child: Option<Child>,
    listen: SocketAddr,
    admin: SocketAddr,
    stderr: OutputBuffer,
    client: HttpClient,
    tls: Option<ControlTls>,
    /// More arguments (e.g. `--kubernetes --kubeconfig FILE`).
    args: Vec<std::ffi::OsString>,
    /// The network namespace it runs in (`None`: the test's own).
    netns: Option<String>,
}

/// TLS on the discovery port: `--tls-cert`/`--tls-key`, and `--client-ca` to require
/// client certificates (mTLS).
#[derive(Clone, Debug)]
pub struct ControlTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl ControlPlane {
    /// Starts `meshwork-control` on an empty directory, discovery and admin on
    /// `127.0.0.1:0`.
    pub async fn start() -> ControlPlane {
        Self::start_with(None).await
    }

    /// As [`ControlPlane::start`], serving the discovery port over TLS.
    pub async fn start_tls(tls: ControlTls) -> ControlPlane {
        Self::start_with(Some(tls)).await
    }

    /// As [`ControlPlane::start`], with more arguments (`--kubernetes`, ...).
    pub async fn start_with_args(args: &[&std::ffi::OsStr]) -> ControlPlane {
        Self::start_full(None, args.iter().map(|a| a.to_os_string()).collect()).await
    }

    async fn start_with(tls: Option<ControlTls>) -> ControlPlane {
        Self::start_full(tls, Vec::new()).await
    }

    /// Starts it inside network namespace `netns` (`ip netns exec`), serving discovery on
    /// `listen` there, with `args` and the fragment files `fragments` (name, YAML) in
    /// its directory from the start. Its admin server is on the namespace's loopback,
    /// out of the test's reach: only [`ControlPlane::url`] and its log are of use.
    pub async fn start_in_netns(
        netns: &str,
        listen: SocketAddr,
        args: &[&std::ffi::OsStr],
        fragments: &[(&str, &str)],
    ) -> ControlPlane {
        let mut control = Self::unstarted(None, args.iter().map(|a| a.to_os_string()).collect());
        for (name, yaml) in fragments {
            control.write(name, yaml);
        }
        control.netns = Some(netns.to_owned());
        control.spawn(listen).await;
        control
    }

    async fn start_full(tls: Option<ControlTls>, args: Vec<std::ffi::OsString>) -> ControlPlane {
        let mut control = Self::unstarted(tls, args);
        control.spawn(control.listen).await;
        control
    }

    fn unstarted(tls: Option<ControlTls>, args: Vec<std::ffi::OsString>) -> ControlPlane {
        let dir = tempfile::Builder::new()
            .prefix("meshwork-control-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        let unbound: SocketAddr = "127.0.0.1:0".parse().expect("address");
        ControlPlane {
            dir,
            child: None,
            listen: unbound,
            admin: unbound,
            stderr: OutputBuffer::default(),
            client: HttpClient::h1(),
            tls,
            args,
            netns: None,
        }
    }

    /// Kills the process (SIGKILL: nothing is closed politely).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same directory and discovery address (proxies reconnect).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn(self.listen).await;
    }

    async fn spawn(&mut self, listen: SocketAddr) {
        let address_file = self.dir.path().join(".addresses");
        let _ = std::fs::remove_file(&address_file);
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", netns])
                    .arg(meshwork_control_bin());
                command
            }
            None => Command::new(meshwork_control_bin()),
        };
        if let Some(tls) = &self.tls {
            command.arg("--tls-cert").arg(&tls.cert);
            command.arg("--tls-key").arg(&tls.key);
            if let Some(ca) = &tls.client_ca {
                command.arg("--client-ca").arg(ca);
            }
        }
        let mut child = command
            .args(&self.args)
            .arg("--config-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--admin")
            .arg("127.0.0.1:0")
            .arg("--address-file")
            .arg(&address_file)
            .arg("--log-level")
            .arg("debug")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start meshwork-control");
        let pid = child.id().unwrap_or_default();
        self.stderr.capture(
            child.stderr.take().expect("piped stderr"),
            format!("meshwork-control {pid}"),
        );
        self.child = Some(child);
        let deadline = Instant::now() + CONTROL_STARTUP_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.fail(&format!("meshwork-control exited ({status}) at startup"));
            }
            if let Some((listen, admin)) = read_addresses(&address_file) {
                self.listen = listen;
                self.admin = admin;
                break;
            }
            if Instant::now() > deadline {
                self.fail("meshwork-control did not write its addresses in time");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.netns.is_some() {
            return;
        }
        let ready = self
            .client
            .get(&format!("http://{}/ready", self.admin))
            .await;
        if ready.status != StatusCode::OK {
            self.fail(&format!("/ready answered {}", ready.status));
        }
    }

    /// `http://ADDR` (`https://ADDR` over TLS) of the discovery server, for a proxy's
    /// `control_plane.address`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.listen)
    }

    /// The fragment directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces, atomically) fragment file `name`.
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp: PathBuf = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).expect("write a fragment");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("move a fragment into place");
    }

    /// Removes fragment file `name`.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove a fragment");
    }

    /// `/status`.
    pub async fn status(&self) -> serde_json::Value {
        let reply = self
            .client
            .get(&format!("http://{}/status", self.admin))
            .await;
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| self.fail(&format!("/status is not JSON ({e}): {}", reply.text())))
    }

    /// `/ready`.
    pub async fn ready(&self) -> crate::Reply {
        self.client
            .get(&format!("http://{}/ready", self.admin))
            .await
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(&format!("http://{}/metrics", self.admin))
            .await
            .text()
    }

    /// What it logged so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- meshwork-control stderr (last 60 lines) ---\n{}",
            self.stderr.tail(60)
        )
    }
}

fn read_addresses(path: &Path) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut listen = None;
    let mut admin = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("listen", a)) => listen = a.parse().ok(),
            Some(("admin", a)) => admin = a.parse().ok(),
            _ => {}
        }
    }
    Some((listen?, admin?))
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os(ECHO_ENV).is_none() {
            eprintln!(
                "--- meshwork-control stderr (last 80 lines) ---\n{}\n--- end ---",
                self.stderr.tail(80)
            );
        }
    }
}
