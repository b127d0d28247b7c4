//! Child processes the harness starts, and the guarantee that none outlives it.
//!
//! Every child runs in its own process group, pinned to a CPU with `taskset`. A [`Proc`]
//! kills its whole group (nginx's master and worker alike) when dropped, and a signal
//! thread kills every registered group and removes the temp dir on Ctrl-C / SIGTERM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Process groups alive now, and the temp dir to remove when interrupted.
static LIVE: Mutex<Registry> = Mutex::new(Registry {
    groups: BTreeSet::new(),
    temp_dir: None,
});

#[derive(Debug)]
struct Registry {
    groups: BTreeSet<i32>,
    temp_dir: Option<PathBuf>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes the harness the reaper of its children's orphans, and starts the thread that,
/// on SIGINT/SIGTERM/SIGHUP, kills every child group, removes the temp dir and exits 130.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn install_signal_cleanup() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Orphans of our children (nginx's worker when its master dies) become ours to reap.
    nix::sys::prctl::set_child_subreaper(true)?;
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let reg = registry();
            for &pgid in &reg.groups {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            // Reap them, so no zombie outlives the harness either.
            for &pgid in &reg.groups {
                while nix::sys::wait::waitpid(Pid::from_raw(-pgid), None).is_ok() {}
            }
            if let Some(dir) = &reg.temp_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!(
                "\ninterrupted (signal {signal}): stopped {} child process group(s)",
                reg.groups.len()
            );
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Tells the signal thread which directory to remove when interrupted.
pub fn register_temp_dir(dir: &Path) {
    registry().temp_dir = Some(dir.to_path_buf());
}

/// How many child groups are still registered (0 after a clean run).
pub fn live_groups() -> usize {
    registry().groups.len()
}

/// CPU seconds used by the harness and everything it started: itself and its reaped
/// children (load generators, stopped proxies) from /proc/self/stat, plus the child
/// groups still running.
pub fn own_cpu_secs() -> f64 {
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<f64> = rest
                .split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() == 4).then(|| f.iter().sum::<f64>() / USER_HZ)
        })
        .unwrap_or(0.0);
    let groups: Vec<i32> = registry().groups.iter().copied().collect();
    let live: f64 = groups
        .into_iter()
        .map(|pgid| usage(&group_pids(pgid as u32)).cpu_secs)
        .sum();
    own + live
}

/// Which CPU a child is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cpu {
    /// Load generators, the upstream and the harness itself.
    Load,
    /// The proxy under test.
    Proxy,
}

impl Cpu {
    pub fn index(self) -> usize {
        match self {
            Cpu::Load => 0,
            Cpu::Proxy => 1,
        }
    }
}

/// Pins the calling process (the harness) to `cpu`.
///
/// # Errors
/// When the kernel refuses (a CPU that does not exist).
pub fn pin_self(cpu: Cpu) -> anyhow::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu.index())?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// How often [`Proc::wait_output_sampling`] samples: rarely enough to cost the load CPU
/// nothing measurable.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// A running child: its process group is killed when this is dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    started: Instant,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Proc {
    /// Starts `program args` pinned to `cpu`, in a new process group, stdout and stderr
    /// going to `log_dir/NAME.out` and `.err`.
    ///
    /// # Errors
    /// When the program cannot be started.
    pub fn spawn(
        name: &str,
        cpu: Cpu,
        program: &Path,
        args: &[String],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt;
        let stdout_path = log_dir.join(format!("{name}.out"));
        let stderr_path = log_dir.join(format!("{name}.err"));
        let stdout = std::fs::File::create(&stdout_path)?;
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut command = Command::new("taskset");
        command
            .arg("-c")
            .arg(cpu.index().to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        // Hold the lock across spawn so a signal cannot slip in between.
        let mut reg = registry();
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        reg.groups.insert(child.id() as i32);
        Ok(Self {
            name: name.to_owned(),
            child,
            started,
            stdout_path,
            stderr_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Fails when the process has exited already (with the end of its stderr).
    ///
    /// # Errors
    /// When it exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}): {}",
                self.name,
                tail(&self.stderr_path, 1500)
            );
        }
        Ok(())
    }

    /// Waits for the process to exit by itself, at most `timeout`, and returns its
    /// stdout; kills it when it overstays.
    ///
    /// # Errors
    /// When it overstays or exits unsuccessfully.
    pub fn wait_output(self, timeout: Duration) -> anyhow::Result<String> {
        self.wait_output_sampling(timeout, &mut || {})
    }

    /// [`Proc::wait_output`], calling `sample` about every [`SAMPLE_INTERVAL`] meanwhile.
    ///
    /// # Errors
    /// When it overstays or exits unsuccessfully.
    pub fn wait_output_sampling(
        mut self,
        timeout: Duration,
        sample: &mut dyn FnMut(),
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut next_sample = Instant::now() + SAMPLE_INTERVAL;
        loop {
            if Instant::now() >= next_sample {
                sample();
                next_sample += SAMPLE_INTERVAL;
            }
            if let Some(status) = self.child.try_wait()? {
                let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
                if !status.success() {
                    bail!(
                        "{} failed ({status}): {}{}",
                        self.name,
                        tail(&self.stderr_path, 1500),
                        stdout.chars().take(500).collect::<String>()
                    );
                }
                return Ok(stdout);
            }
            if Instant::now() > deadline {
                bail!("{} did not finish within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first stdout line starting with `prefix`, waiting for it at most `timeout`.
    ///
    /// # Errors
    /// When the process exits or the line does not come in time.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
            if let Some(line) = out.lines().find(|l| l.starts_with(prefix)) {
                return Ok(line[prefix.len()..].trim().to_owned());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} printed no `{prefix}` line within {timeout:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The process group's id (the leader's pid).
    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.pgid();
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = self.child.wait();
        // Other members of the group (nginx's worker), reparented to the harness.
        while nix::sys::wait::waitpid(Pid::from_raw(-pgid), None).is_ok() {}
        registry().groups.remove(&pgid);
    }
}

/// The last `max` characters of a file, for error messages.
fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_owned()
}

/// CPU time and memory of every process in a process group, read from /proc.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupUsage {
    /// utime + stime of all processes, in seconds.
    pub cpu_secs: f64,
    /// Resident set size summed over the group's processes, in bytes.
    pub rss_bytes: u64,
    /// Proportional set size summed (shared pages counted once), in bytes.
    pub pss_bytes: u64,
    pub processes: usize,
}

/// Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// The pids of process group `pgid` (the [`Proc::pid`] of a child): nginx's master and
/// worker, or the one process of meshwork and HAProxy. Scans /proc, so call it once and
/// read [`usage`] of the pids as often as needed.
pub fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|f| f.pgrp == pgid)
        })
        .collect()
}

/// CPU time, RSS and PSS of `pids`, summed.
pub fn usage(pids: &[u32]) -> GroupUsage {
    let mut usage = GroupUsage::default();
    for pid in pids {
        let Some(fields) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            continue;
        };
        usage.processes += 1;
        usage.cpu_secs += (fields.utime + fields.stime) as f64 / USER_HZ;
        usage.rss_bytes += read_kib(&format!("/proc/{pid}/status"), "VmRSS:") * 1024;
        usage.pss_bytes += read_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:") * 1024;
    }
    usage
}

/// RSS of `pids`, summed: cheap enough to sample under load.
pub fn rss_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| read_kib(&format!("/proc/{pid}/status"), "VmRSS:") * 1024)
        .sum()
}

/// The fields of /proc/PID/stat that the harness reads.
#[derive(Debug, PartialEq, Eq)]
pub struct StatFields {
    pub pgrp: u32,
    pub utime: u64,
    pub stime: u64,
}

/// Parses /proc/PID/stat; the command name may hold spaces and parentheses, so fields
/// are counted after its closing parenthesis.
pub fn parse_stat(stat: &str) -> Option<StatFields> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
    Some(StatFields {
        pgrp: fields.get(2)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// A `Key:   123 kB` line of a /proc file, in KiB (0 when absent).
fn read_kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 100 0 0 0 \
                    731 92 0 0 20 0 1 0 12345 123456789 900 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(StatFields {
                pgrp: 4241,
                utime: 731,
                stime: 92
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_usage_is_readable() {
        let own_pgrp = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap())
            .unwrap()
            .pgrp;
        let pids = group_pids(own_pgrp);
        assert!(pids.contains(&std::process::id()));
        let usage = usage(&pids);
        assert!(usage.processes >= 1);
        assert!(rss_bytes(&pids) > 0);
        assert!(usage.rss_bytes > 0);
    }
}

/// A child process (a control plane under test), killed when the run ends or fails.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Raises this process's open file limit to its hard limit: benches that hold
/// thousands of streams would otherwise run out of descriptors.
pub fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            eprintln!("cannot raise the open file limit: {e}");
        }
    }
}
