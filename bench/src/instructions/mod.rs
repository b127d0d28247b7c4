//! `meshwork-bench instructions`: user-space instructions and allocator calls per
//! request, counted by callgrind: the repeatable figure on a shared VM, where wall-clock
//! rates move by tens of percent from one run to the next.
//!
//! Each proxy runs under `valgrind --tool=callgrind` in front of `bench-upstream`; a
//! warm-up load fills its pools and caches, the counters are zeroed
//! (`callgrind_control -z`), a fixed number of keep-alive requests is sent, and the
//! counters are dumped (`callgrind_control -d`). Instructions per request are every
//! thread's user-space instructions over the measured requests; allocator calls are the
//! calls into `malloc`/`free`/`realloc` (glibc or jemalloc names) from outside the
//! allocator.

pub mod callgrind;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::parse::{h2load, oha};
use crate::process::{Cpu, Proc, free_port};
use crate::targets::{self, ProxyPorts, TlsFiles};
use crate::tools::{self, Tools};

/// How long a proxy under callgrind may take to accept connections (it translates the
/// binary's code as it first runs: seconds, not milliseconds).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a load run may take under callgrind (about 50x slower than native).
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured requests per proxy and protocol.
    pub requests: u64,
    /// Unmeasured requests before them (pools, caches, lazily built state).
    pub warmup: u64,
    /// Client connections (and h2 streams per connection) of each load run.
    pub connections: u32,
    pub protocols: Vec<Protocol>,
    /// Also measure nginx and HAProxy.
    pub peers: bool,
    pub install: bool,
    /// A prebuilt meshwork binary instead of building the workspace's.
    pub meshwork: Option<PathBuf>,
    /// A second meshwork binary, measured as `meshwork-base`.
    pub baseline: Option<PathBuf>,
    /// Where to keep each dump (the run's own directory is removed when it ends).
    pub keep_dumps: Option<PathBuf>,
}

/// The request paths measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 keep-alive (oha).
    H1,
    /// h2c with prior knowledge, the proxy speaking HTTP/1.1 upstream (h2load).
    H2c,
    /// HTTP/1.1 keep-alive over mTLS (oha presenting a client certificate).
    Mtls,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::H1, Protocol::H2c, Protocol::Mtls];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::H1 => "h1",
            Protocol::H2c => "h2c",
            Protocol::Mtls => "mtls",
        }
    }

    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("unknown protocol `{name}`; expected h1, h2c or mtls"))
    }
}

/// A proxy measured under callgrind.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    Meshwork(PathBuf),
    MeshworkBase(PathBuf),
    Nginx,
    Haproxy,
}

impl Subject {
    fn name(&self) -> &'static str {
        match self {
            Subject::Meshwork(_) => "meshwork",
            Subject::MeshworkBase(_) => "meshwork-base",
            Subject::Nginx => "nginx",
            Subject::Haproxy => "haproxy",
        }
    }
}

/// One proxy's figures for one protocol, per measured request.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub target: &'static str,
    pub protocol: Protocol,
    pub requests: u64,
    pub counts: callgrind::Counts,
}

impl Measurement {
    fn per_request(&self, n: u64) -> f64 {
        n as f64 / self.requests as f64
    }
}

/// Runs every chosen proxy and protocol and prints the table.
///
/// # Errors
/// When a tool is missing, a proxy does not start, or a load run sees an error (a
/// figure over failed requests would mean nothing).
pub fn run(options: &Options) -> anyhow::Result<Vec<Measurement>> {
    crate::process::install_signal_cleanup()?;
    let workspace = tools::workspace_root();
    let tools = tools::ensure(options.install, &workspace, options.meshwork.as_deref())?;
    let valgrind = tools::which("valgrind");
    let control = tools::which("callgrind_control");
    let (Some(valgrind), Some(control)) = (valgrind, control) else {
        bail!("missing: valgrind (callgrind); install with `apt-get install -y valgrind`");
    };
    let tmp = tempfile::Builder::new()
        .prefix("meshwork-instructions-")
        .tempdir()?;
    crate::process::register_temp_dir(tmp.path());
    let (_upstream, upstream, _) = crate::run::start_upstream(&tools, tmp.path())?;
    let certificates = crate::scenarios::tls::write_certificates(&tmp.path().join("tls"))?;
    let mut subjects = vec![Subject::Meshwork(tools.meshwork.clone())];
    if let Some(base) = &options.baseline {
        ensure!(
            targets::is_executable(base),
            "--baseline {}: not an executable file",
            base.display()
        );
        subjects.push(Subject::MeshworkBase(base.clone()));
    }
    if options.peers {
        subjects.extend([Subject::Nginx, Subject::Haproxy]);
    }
    let bench = Bench {
        tools: &tools,
        valgrind: &valgrind,
        control: &control,
        dir: tmp.path(),
        upstream: &upstream,
        certificates: &certificates,
        options,
    };
    let mut measurements = Vec::new();
    let mut failures = Vec::new();
    for &protocol in &options.protocols {
        for subject in &subjects {
            let started = Instant::now();
            match bench.measure(subject, protocol) {
                Ok(m) => {
                    eprintln!(
                        "{:<14} {:<5} {:>9.0} instructions/request  ({:.0} s)",
                        m.target,
                        protocol.name(),
                        m.per_request(m.counts.instructions),
                        started.elapsed().as_secs_f64()
                    );
                    measurements.push(m);
                }
                // One proxy failing (a request error) leaves the others' figures good.
                Err(error) => failures.push(format!(
                    "{} over {}: {error:#}",
                    subject.name(),
                    protocol.name()
                )),
            }
        }
    }
    println!("{}", render(&measurements));
    for failure in &failures {
        println!("not measured: {failure}");
    }
    ensure!(!measurements.is_empty(), "nothing could be measured");
    Ok(measurements)
}

/// What every measurement shares.
struct Bench<'a> {
    tools: &'a Tools,
    valgrind: &'a Path,
    control: &'a Path,
    dir: &'a Path,
    upstream: &'a str,
    certificates: &'a TlsFiles,
    options: &'a Options,
}

impl Bench<'_> {
    fn measure(&self, subject: &Subject, protocol: Protocol) -> anyhow::Result<Measurement> {
        let dir = self
            .dir
            .join(format!("{}-{}", subject.name(), protocol.name()));
        std::fs::create_dir_all(&dir)?;
        let (program, args, ports) = self.command(subject, protocol, &dir)?;
        let out_file = dir.join("callgrind.out");
        let mut valgrind_args = vec![
            "--tool=callgrind".to_owned(),
            "--compress-strings=no".into(),
            "--compress-pos=no".into(),
            format!("--callgrind-out-file={}", out_file.display()),
            program.display().to_string(),
        ];
        valgrind_args.extend(args);
        let mut proc = Proc::spawn(
            subject.name(),
            Cpu::Proxy,
            self.valgrind,
            &valgrind_args,
            &dir,
        )?;
        wait_accepting(&mut proc, ports.http)?;
        // Unmeasured: a request the slowed-down proxy failed to answer in time while
        // starting is no reason to give up on it (the measured run must be clean).
        if let Err(error) = self.load(protocol, &ports, self.options.warmup, &dir) {
            eprintln!(
                "{} over {}: warm-up: {error:#}",
                subject.name(),
                protocol.name()
            );
        }
        self.callgrind_control("-z", proc.pid())?;
        self.load(protocol, &ports, self.options.requests, &dir)?;
        self.callgrind_control("-d", proc.pid())?;
        proc.check_alive()?;
        let dump_file = dir.join("callgrind.out.1");
        let dump = std::fs::read_to_string(&dump_file).context("callgrind wrote no dump")?;
        if let Some(keep) = &self.options.keep_dumps {
            std::fs::create_dir_all(keep)?;
            let kept = keep.join(format!("{}-{}.callgrind", subject.name(), protocol.name()));
            std::fs::copy(&dump_file, &kept)
                .with_context(|| format!("keeping the dump as {}", kept.display()))?;
        }
        let counts = callgrind::parse(&dump).map_err(anyhow::Error::msg)?;
        Ok(Measurement {
            target: subject.name(),
            protocol,
            requests: self.options.requests,
            counts,
        })
    }

    /// The proxy's program, arguments and ports, its config written under `dir`: the
    /// same configs as the load scenarios (meshwork with one worker thread, nginx with
    /// one process — `master_process off`, so the worker's work is in the one process
    /// callgrind follows — HAProxy with one thread).
    fn command(
        &self,
        subject: &Subject,
        protocol: Protocol,
        dir: &Path,
    ) -> anyhow::Result<(PathBuf, Vec<String>, ProxyPorts)> {
        let tls = (protocol == Protocol::Mtls).then_some(self.certificates);
        let endpoints = [self.upstream.to_owned()];
        let http = free_port()?;
        Ok(match subject {
            Subject::Meshwork(binary) | Subject::MeshworkBase(binary) => {
                let ports = ProxyPorts { http, h2: http };
                let admin = free_port()?;
                let config = match tls {
                    Some(files) => {
                        targets::meshwork::tls_config(admin, &ports, self.upstream, files)
                    }
                    None => targets::meshwork::config(admin, &ports, self.upstream),
                };
                let file = dir.join("meshwork.yaml");
                std::fs::write(&file, config)?;
                (binary.clone(), targets::meshwork::args(&file), ports)
            }
            Subject::Nginx => {
                let ports = ProxyPorts {
                    http,
                    h2: free_port()?,
                };
                targets::nginx::make_dirs(dir)?;
                let config = match tls {
                    Some(files) => targets::nginx::tls_config(dir, &ports, &endpoints, files),
                    None => targets::nginx::config(dir, &ports, &endpoints, false),
                };
                let file = dir.join("nginx.conf");
                std::fs::write(&file, config)?;
                let mut args = targets::nginx::args(dir, &file);
                args.extend(["-g".into(), "master_process off;".into()]);
                (self.tools.nginx.clone(), args, ports)
            }
            Subject::Haproxy => {
                let ports = ProxyPorts {
                    http,
                    h2: free_port()?,
                };
                let config = match tls {
                    Some(files) => targets::haproxy::tls_config(dir, &ports, &endpoints, files),
                    None => targets::haproxy::config(dir, &ports, &endpoints, false),
                };
                let file = dir.join("haproxy.cfg");
                std::fs::write(&file, config)?;
                (
                    self.tools.haproxy.clone(),
                    targets::haproxy::args(&file),
                    ports,
                )
            }
        })
    }

    /// Sends `requests` requests over `connections` keep-alive connections and checks
    /// that every one was answered 2xx.
    fn load(
        &self,
        protocol: Protocol,
        ports: &ProxyPorts,
        requests: u64,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let connections = self.options.connections.to_string();
        let (program, args) = match protocol {
            Protocol::H1 | Protocol::Mtls => {
                let mut args = vec![
                    "-n".to_owned(),
                    requests.to_string(),
                    "-c".into(),
                    connections,
                    "--no-tui".into(),
                    "--output-format".into(),
                    "json".into(),
                ];
                if protocol == Protocol::Mtls {
                    let files = self.certificates;
                    for (flag, path) in [
                        ("--cacert", &files.ca),
                        ("--cert", &files.client_cert),
                        ("--key", &files.client_key),
                    ] {
                        args.extend([flag.to_owned(), path.display().to_string()]);
                    }
                    args.push(format!("https://127.0.0.1:{}/", ports.http));
                } else {
                    args.push(format!("http://127.0.0.1:{}/", ports.http));
                }
                (&self.tools.oha, args)
            }
            Protocol::H2c => (
                &self.tools.h2load,
                vec![
                    "-t1".to_owned(),
                    "-c1".into(),
                    format!("-m{connections}"),
                    format!("-n{requests}"),
                    format!("http://127.0.0.1:{}/", ports.h2),
                ],
            ),
        };
        let out = Proc::spawn("load", Cpu::Load, program, &args, dir)?.wait_output(LOAD_TIMEOUT)?;
        match protocol {
            Protocol::H1 | Protocol::Mtls => {
                let summary = oha::parse(&out)?;
                ensure!(
                    summary.errors == 0 && summary.success_rate >= 1.0,
                    "{} of {requests} requests failed",
                    summary.errors
                );
            }
            Protocol::H2c => {
                let summary = h2load::parse(&out)?;
                ensure!(
                    summary.errors == 0 && summary.succeeded == requests,
                    "{} of {requests} requests succeeded, {} errors",
                    summary.succeeded,
                    summary.errors
                );
            }
        }
        Ok(())
    }

    /// `callgrind_control FLAG PID` (`-z` zeroes the counters, `-d` dumps them).
    fn callgrind_control(&self, flag: &str, pid: u32) -> anyhow::Result<()> {
        let out = Command::new(self.control)
            .arg(flag)
            .arg(pid.to_string())
            .output()?;
        ensure!(
            out.status.success(),
            "callgrind_control {flag} {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// Waits until `port` accepts a connection, at most [`START_TIMEOUT`].
fn wait_accepting(proc: &mut Proc, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        proc.check_alive()?;
        if Instant::now() > deadline {
            bail!("{} not accepting after {START_TIMEOUT:?}", proc.name());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The Markdown table: per request, instructions and allocator calls.
pub fn render(measurements: &[Measurement]) -> String {
    let mut out = String::from(
        "| protocol | target | instructions/request | allocations/request | frees/request | reallocations/request |\n|---|---|---:|---:|---:|---:|\n",
    );
    for m in measurements {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} |\n",
            m.protocol.name(),
            m.target,
            m.per_request(m.counts.instructions),
            m.per_request(m.counts.allocations),
            m.per_request(m.counts.frees),
            m.per_request(m.counts.reallocations),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_figures_per_request() {
        let m = Measurement {
            target: "meshwork",
            protocol: Protocol::H1,
            requests: 1000,
            counts: callgrind::Counts {
                instructions: 56_200_000,
                allocations: 21_000,
                frees: 21_500,
                reallocations: 300,
            },
        };
        let table = render(&[m]);
        assert!(
            table.contains("| h1 | meshwork | 56200 | 21.0 | 21.5 | 0.3 |"),
            "{table}"
        );
    }

    #[test]
    fn protocols_parse_by_name_and_refuse_others() {
        assert_eq!(Protocol::parse("h2c"), Ok(Protocol::H2c));
        assert!(
            Protocol::parse("h3")
                .unwrap_err()
                .contains("h1, h2c or mtls")
        );
    }
}
