//! The machine a run measured on (CPU, kernel, tool versions, commit) and how busy it
//! was: other work on a 2-core box moves every figure, so the harness waits for quiet
//! and records the load.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

/// What RESULTS.md and the JSON say about where the figures come from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    pub git_commit: String,
    /// The meshwork binary measured and its `--version`.
    pub meshwork_binary: String,
    pub rustc: String,
    /// Tool name -> its version line.
    pub versions: Vec<(String, String)>,
    /// /proc/loadavg before the first and after the last measurement.
    pub load_before: String,
    pub load_after: String,
    /// Share of both CPUs busy over a few seconds just before measuring (0-100).
    pub cpu_busy_before_percent: f64,
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// How many CPUs /proc/cpuinfo lists (the machine's, whatever this process is pinned to).
pub fn online_cpus(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

/// Busy and total jiffies from the aggregate `cpu` line of /proc/stat.
pub fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = values.get(3)? + values.get(4).unwrap_or(&0);
    let total: u64 = values.iter().take(8).sum();
    Some((total - idle, total))
}

/// CPU seconds spent in processes (user + nice + system) on the whole machine since
/// boot, from /proc/stat. Interrupt and softirq time are left out on purpose: loopback
/// TCP is processed in softirq context and is not charged to any process's
/// utime/stime, so counting it would make our own traffic look like someone else's.
pub fn system_busy_secs() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| task_jiffies(&s))
        .map_or(0.0, |j| j as f64 / 100.0)
}

/// CPU seconds the hypervisor took from this (virtual) machine since boot, all CPUs:
/// the `steal` column of /proc/stat.
pub fn steal_secs() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("cpu "))?;
            line.split_whitespace().nth(8)?.parse::<u64>().ok()
        })
        .map_or(0.0, |j| j as f64 / 100.0)
}

/// user + nice + system jiffies from the aggregate `cpu` line of /proc/stat.
pub fn task_jiffies(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    (values.len() == 3).then(|| values.iter().sum())
}

/// Share of the machine (percent of all CPUs over `wall_secs`) that processes other than
/// the harness and its children used, from two readings of [`system_busy_secs`] and
/// [`crate::process::own_cpu_secs`].
pub fn foreign_percent(system_busy: f64, own: f64, wall_secs: f64, cpus: usize) -> f64 {
    if wall_secs <= 0.0 || cpus == 0 {
        return 0.0;
    }
    ((system_busy - own) / (wall_secs * cpus as f64) * 100.0).max(0.0)
}

/// Percent of all CPUs busy over `window`, from /proc/stat.
pub fn cpu_busy_percent(window: Duration) -> f64 {
    let read = || {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_jiffies(&s))
    };
    let Some((busy0, total0)) = read() else {
        return 0.0;
    };
    std::thread::sleep(window);
    let Some((busy1, total1)) = read() else {
        return 0.0;
    };
    let total = total1.saturating_sub(total0);
    if total == 0 {
        return 0.0;
    }
    busy1.saturating_sub(busy0) as f64 / total as f64 * 100.0
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Waits (bounded by `max_wait`) until the CPUs are less than `max_busy_percent` busy
/// over a 3 s window; returns the last reading. Never fails: a busy machine is recorded,
/// not hidden.
pub fn wait_for_quiet(max_busy_percent: f64, max_wait: Duration) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let busy = cpu_busy_percent(Duration::from_secs(3));
        if busy <= max_busy_percent {
            return busy;
        }
        if start.elapsed() >= max_wait {
            eprintln!(
                "warning: CPUs still {busy:.0}% busy after waiting {max_wait:?}; measuring anyway (recorded)"
            );
            return busy;
        }
        eprintln!(
            "CPUs {busy:.0}% busy (load {}); waiting for quiet (<= {max_busy_percent:.0}%)",
            loadavg()
        );
        std::thread::sleep(Duration::from_secs(7));
    }
}

/// The first non-empty line a command prints (stdout or stderr), or `unavailable`.
fn version_line(program: &Path, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("unavailable")
                .to_owned()
        }
        Err(_) => "unavailable".to_owned(),
    }
}

/// Describes this machine, the tools at `tools`, and the checkout at `repo` (whose
/// proxy was not what got measured when `prebuilt_meshwork`).
pub fn describe(tools: &crate::tools::Tools, repo: &Path, prebuilt_meshwork: bool) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut git_commit = git(&["rev-parse", "--short=12", "HEAD"]);
    if !prebuilt_meshwork && !git(&["status", "--porcelain", "--", "proxy", "config"]).is_empty() {
        git_commit.push_str(" (with uncommitted changes in proxy/ or config/)");
    }
    let meshwork_binary = format!(
        "{} ({}{})",
        tools.meshwork.display(),
        version_line(&tools.meshwork, &["--version"]),
        if prebuilt_meshwork {
            ", prebuilt, given with --meshwork"
        } else {
            ", built from this checkout"
        }
    );
    Machine {
        // Not available_parallelism(): the harness is pinned to one CPU by now.
        nproc: online_cpus(&read("/proc/cpuinfo")),
        cpu_model: cpu_model(&read("/proc/cpuinfo")),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        os,
        git_commit,
        meshwork_binary,
        rustc: version_line(Path::new("rustc"), &["--version"]),
        versions: vec![
            ("nginx".into(), version_line(&tools.nginx, &["-v"])),
            ("haproxy".into(), version_line(&tools.haproxy, &["-v"])),
            ("envoy".into(), version_line(&tools.envoy, &["--version"])),
            ("wrk".into(), version_line(&tools.wrk, &["-v"])),
            ("oha".into(), version_line(&tools.oha, &["--version"])),
            ("h2load".into(), version_line(&tools.h2load, &["--version"])),
        ],
        load_before: String::new(),
        load_after: String::new(),
        cpu_busy_before_percent: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\
                    processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(info), "AMD EPYC 7B13");
        assert_eq!(online_cpus(info), 2);
        assert_eq!(cpu_model(""), "unknown");
    }

    #[test]
    fn foreign_share_is_what_the_harness_did_not_use() {
        // 10 s on 2 CPUs, 12 busy seconds of which 9 were ours: 3 of 20 = 15%.
        assert!((foreign_percent(12.0, 9.0, 10.0, 2) - 15.0).abs() < 1e-9);
        assert_eq!(foreign_percent(5.0, 6.0, 10.0, 2), 0.0);
        assert_eq!(foreign_percent(5.0, 1.0, 0.0, 2), 0.0);
    }

    #[test]
    fn cpu_jiffies_count_idle_and_iowait_as_not_busy() {
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 50 2 25 400 10 0 1 1 0 0\n";
        // busy = user+nice+system+irq+softirq+steal = 100+5+50+1+2+3
        assert_eq!(cpu_jiffies(stat), Some((161, 981)));
        assert_eq!(cpu_jiffies("intr 1 2 3\n"), None);
        // Only what processes are charged for: user + nice + system.
        assert_eq!(task_jiffies(stat), Some(155));
    }
}
