//! A pod's app container driven the way a kubelet drives it next to a meshwork sidecar:
//! started through `meshwork await` (so it runs only once the proxy is ready), sent
//! SIGTERM, waited for. The app is `lifecycle-app` (tests/src/bin/lifecycle-app.rs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::binary::{meshwork_bin, workspace_bin};
use crate::output::OutputBuffer;
use crate::wait::eventually;

/// The `lifecycle-app` binary: `$MESHWORK_LIFECYCLE_APP_BIN`, else next to the tests.
pub fn lifecycle_app_bin() -> PathBuf {
    workspace_bin(
        "lifecycle-app",
        "meshwork-tests",
        "MESHWORK_LIFECYCLE_APP_BIN",
    )
}

/// A loopback address free right now, for a process that binds it later (the app's
/// port and the admin port must be in the proxy's config before either process runs,
/// as a pod spec names them).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("the bound address")
}

/// What the app's last line says about its outbound calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSummary {
    pub ok: u32,
    pub failed: u32,
    pub ok_after_sigterm: u32,
}

/// The app container: `meshwork await --admin ADMIN -- lifecycle-app ARGS...`.
#[derive(Debug)]
pub struct AppContainer {
    child: Child,
    pid: u32,
    stdout: OutputBuffer,
    stderr: OutputBuffer,
    exited: Option<(ExitStatus, Instant)>,
}

impl AppContainer {
    /// Starts the container's entrypoint; the app itself starts once `/ready` is 200.
    pub fn start(admin: SocketAddr, app_args: &[String]) -> Self {
        let mut child = Command::new(meshwork_bin())
            .arg("await")
            .arg("--admin")
            .arg(admin.to_string())
            .arg("--timeout")
            .arg("30s")
            .arg("--")
            .arg(lifecycle_app_bin())
            .args(app_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start meshwork await");
        let pid = child.id().expect("a running child has a pid");
        let (stdout, stderr) = (OutputBuffer::default(), OutputBuffer::default());
        stdout.capture(child.stdout.take().expect("piped"), format!("app {pid}"));
        stderr.capture(
            child.stderr.take().expect("piped"),
            format!("app {pid} stderr"),
        );
        Self {
            child,
            pid,
            stdout,
            stderr,
            exited: None,
        }
    }

    /// Waits (bounded) until the app printed a line starting with `prefix`.
    pub async fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let mut found = None;
        eventually(
            &format!(
                "the app to print {prefix:?} (stderr so far: {})",
                self.stderr.tail(20)
            ),
            timeout,
            || {
                found = self
                    .stdout
                    .text()
                    .lines()
                    .find(|l| l.starts_with(prefix))
                    .map(str::to_owned);
                std::future::ready(found.is_some())
            },
        )
        .await;
        found.expect("found")
    }

    /// What `meshwork await` and the app wrote to stderr.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    pub fn sigterm(&self) {
        let pid = i32::try_from(self.pid).expect("pid fits in i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("kill -TERM the app");
    }

    /// Waits for the exit; returns its status and when it was seen.
    ///
    /// # Panics
    /// When the app still runs after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Instant) {
        if let Some(exited) = self.exited {
            return exited;
        }
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the app still runs {timeout:?} later; stderr:\n{}",
                    self.stderr.tail(20)
                )
            })
            .expect("wait for the app");
        let exited = (status, Instant::now());
        self.exited = Some(exited);
        exited
    }

    /// The app's summary line (after it exited).
    ///
    /// # Panics
    /// When there is none.
    pub async fn summary(&self) -> AppSummary {
        let line = self.wait_line("summary ", Duration::from_secs(5)).await;
        let field = |name: &str| -> u32 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        AppSummary {
            ok: field("ok"),
            failed: field("failed"),
            ok_after_sigterm: field("ok_after_sigterm"),
        }
    }
}
