//! Network namespaces for the sidecar tests: a "pod" and a "peer" host joined by a veth
//! pair, each with IPv4 and IPv6 addresses, and processes started inside them.
//!
//! These tests need root (CI runs as root). They are skipped only when
//! `MESHWORK_SKIP_NETNS=1` says so; on a machine that cannot create namespaces they fail
//! with a message naming what is missing.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The environment variable that skips the namespace tests (CI never sets it).
pub const SKIP_VAR: &str = "MESHWORK_SKIP_NETNS";

pub const POD_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
pub const POD_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 2);

/// `true` (after saying so) when the namespace tests are to be skipped.
pub fn skipped(test: &str) -> bool {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: {SKIP_VAR}=1");
        return true;
    }
    false
}

/// One network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// # Panics
    /// When the namespace cannot be created (not root, no `ip`, no namespace support).
    pub fn new(role: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mw-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "cannot create network namespace {name}: {} (these tests need root and \
                 network namespaces; set {SKIP_VAR}=1 to skip them)",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(error) => panic!(
                "cannot run `ip` ({error}): these tests need iproute2 (Debian package \
                 `iproute2`), root and network namespaces; set {SKIP_VAR}=1 to skip them"
            ),
        }
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `program args` inside this namespace, not yet started.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, program])
            .args(args);
        command
    }

    /// Runs `program args` here to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name))
    }

    /// Runs `program args` here; panics with its output unless it succeeds.
    pub fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "`{program} {}` in {} failed: {}{}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip ARGS` inside this namespace.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "`ip -n {} {}` failed: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A pod and a peer host on one link: pod 10.200.0.1 / fd00:200::1, peer .2 / ::2, the
/// pod's default routes via the peer (so any address has a route from the pod).
#[derive(Debug)]
pub struct PodLink {
    pub pod: Netns,
    pub peer: Netns,
}

impl PodLink {
    pub fn new() -> Self {
        let pod = Netns::new("pod");
        let peer = Netns::new("peer");
        // Created inside the namespaces directly: no name clash in the root namespace.
        pod.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
        ]);
        for (ns, v4, v6) in [(&pod, POD_V4, POD_V6), (&peer, PEER_V4, PEER_V6)] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            // nodad: usable at once, without waiting for duplicate address detection.
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            ns.ip(&["link", "set", "eth0", "up"]);
        }
        pod.ip(&["route", "add", "default", "via", &PEER_V4.to_string()]);
        pod.ip(&["-6", "route", "add", "default", "via", &PEER_V6.to_string()]);
        Self { pod, peer }
    }
}

impl Default for PodLink {
    fn default() -> Self {
        Self::new()
    }
}

/// A process in a namespace, killed on drop.
#[derive(Debug)]
pub struct Background {
    child: Child,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `netns-probe listen ADDR TAG [extra]` in `ns` and waits (bounded) until it is
/// listening.
///
/// # Panics
/// When it does not say `ready` within 10 s.
pub fn probe_listener(ns: &Netns, addr: &str, tag: &str, extra: &[&str]) -> Background {
    let mut args = vec!["listen", addr, tag];
    args.extend_from_slice(extra);
    start_probe(ns, &args)
}

/// Starts `netns-probe listen-http ADDR TAG` in `ns` (an HTTP/1.1 app whose answers say
/// who connected and with which `x-meshwork-peer-identity`) and waits until it listens.
///
/// # Panics
/// When it does not say `ready` within 10 s.
pub fn probe_http_listener(ns: &Netns, addr: &str, tag: &str) -> Background {
    start_probe(ns, &["listen-http", addr, tag])
}

fn start_probe(ns: &Netns, args: &[&str]) -> Background {
    let mut child = ns
        .command(&probe_bin(), args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start netns-probe");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let background = Background { child };
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.starts_with("ready") => background,
        other => panic!(
            "netns-probe {} in {} did not start: {other:?}",
            args.join(" "),
            ns.name
        ),
    }
}

/// What a connection from `ns` to `addr` (as `uid`, default root) is answered with:
/// `TAG local=... orig=... peer=...`, or `Err(stderr)` when it fails.
pub fn probe_connect(ns: &Netns, addr: &str, uid: Option<u32>) -> Result<String, String> {
    let uid = uid.map(|u| u.to_string());
    let mut args = vec!["connect", addr];
    if let Some(uid) = &uid {
        args.extend(["--uid", uid]);
    }
    let out = ns.run(&probe_bin(), &args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The probe binary, built with this package's tests (`$MESHWORK_NETNS_PROBE_BIN` wins).
pub fn probe_bin() -> String {
    crate::binary::workspace_bin("netns-probe", "meshwork-tests", "MESHWORK_NETNS_PROBE_BIN")
        .to_string_lossy()
        .into_owned()
}

/// The admin address of a meshwork started by [`start_meshwork`] (its namespace's own
/// loopback).
pub const MESHWORK_ADMIN: &str = "127.0.0.1:9901";

/// Starts `meshwork run` with `yaml` (written to `dir`, its log beside it) in `ns` and
/// waits (bounded) until its `/ready` answers 200, asked by curl inside `ns`. The config's
/// admin address must be [`MESHWORK_ADMIN`].
///
/// # Panics
/// When it is not ready within 10 s (with its log).
pub fn start_meshwork(ns: &Netns, dir: &std::path::Path, yaml: &str) -> Background {
    let config = dir.join(format!("{}.yaml", ns.name));
    let log = dir.join(format!("{}.log", ns.name));
    std::fs::write(&config, yaml).expect("write the config");
    let bin = crate::meshwork_bin();
    let child = ns
        .command(
            &bin.to_string_lossy(),
            &["run", "-c", &config.to_string_lossy()],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the log"))
        .spawn()
        .expect("start meshwork");
    let background = Background { child };
    let ready = format!("http://{MESHWORK_ADMIN}/ready");
    let answered = || {
        ns.run("curl", &["-sf", "-o", "/dev/null", &ready])
            .status
            .success()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !answered() {
        if std::time::Instant::now() > deadline {
            panic!(
                "meshwork in {} not ready within 10 s:\n{}",
                ns.name,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    background
}

/// The `/metrics` text of the meshwork started in `ns` by [`start_meshwork`].
pub fn meshwork_metrics(ns: &Netns) -> crate::metrics::Scrape {
    let text = ns.run_ok(
        "curl",
        &["-sf", &format!("http://{MESHWORK_ADMIN}/metrics")],
    );
    crate::metrics::Scrape::parse(&text)
}
