//! One benchmark run from start to end: tools, temp dir, upstream, the chosen scenarios,
//! then the table, the JSON and (for a full `all`) RESULTS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::process::{self, Cpu, Proc};
use crate::report::{Report, Row, all_ratios};
use crate::scenarios::{self, Ctx, Scenario, Settings};
use crate::targets::Env;
use crate::{goals, machine, parse, results_md, table, tools};

/// Other processes' share of the CPUs during a scenario from which its rows get a note.
const FOREIGN_CPU_WARNING_PERCENT: f64 = 5.0;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario ids to run, in the registry's order.
    pub scenarios: Vec<String>,
    pub quick: bool,
    pub rounds: Option<usize>,
    pub install: bool,
    /// Update RESULTS.md (default: only for a full, non-quick `all`).
    pub write_results_md: bool,
    /// Save results/latest.json too.
    pub save_latest: bool,
    pub max_busy_percent: f64,
    pub wait_quiet: Duration,
    /// A prebuilt meshwork binary instead of building the workspace's.
    pub meshwork: Option<PathBuf>,
    /// A second meshwork binary measured as `meshwork-base` (before/after a change).
    pub baseline: Option<PathBuf>,
    /// The command as typed, recorded with the results.
    pub command: String,
}

/// Runs the benchmark and returns the report (also printed and written).
///
/// # Errors
/// When the setup fails (tools, upstream); a failing target is a note, not an error.
pub fn run(options: &RunOptions) -> anyhow::Result<Report> {
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    process::install_signal_cleanup()?;
    raise_open_files_limit();
    let workspace = tools::workspace_root();
    let tools = tools::ensure(options.install, &workspace, options.meshwork.as_deref())?;
    // The harness shares the load CPU: the proxy's CPU is for the proxy alone.
    process::pin_self(Cpu::Load).context("cannot pin the harness to CPU 0 (needs 2 CPUs)")?;

    let mut settings = if options.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    if let Some(r) = options.rounds {
        settings.rounds = r.max(1);
        settings.memory_rounds = r.max(1);
        settings.failover_rounds = r.max(1);
        settings.tls_rounds = r.max(1);
    }
    let selected: Vec<Box<dyn Scenario>> = scenarios::all()
        .into_iter()
        .filter(|s| options.scenarios.iter().any(|id| id == s.id()))
        .collect();
    let estimate: Duration = selected.iter().map(|s| s.estimate(&settings)).sum();

    let tmp = tempfile::Builder::new()
        .prefix("meshwork-bench-")
        .tempdir()?;
    process::register_temp_dir(tmp.path());
    let wrk_script = tmp.path().join("summary.lua");
    std::fs::write(&wrk_script, parse::wrk::SUMMARY_SCRIPT)?;

    let mut machine = machine::describe(&tools, &workspace, options.meshwork.is_some());
    let busy = machine::wait_for_quiet(options.max_busy_percent, options.wait_quiet);
    machine.cpu_busy_before_percent = busy;
    machine.load_before = machine::loadavg();

    let (mut upstream, upstream_addr, upstream_port) = start_upstream(&tools, tmp.path())?;
    if let Some(base) = &options.baseline {
        if !crate::targets::is_executable(base) {
            anyhow::bail!("--baseline {}: not an executable file", base.display());
        }
    }
    let env = Env {
        meshwork: tools.meshwork.clone(),
        meshwork_base: options.baseline.clone(),
        nginx: tools.nginx.clone(),
        haproxy: tools.haproxy.clone(),
        envoy: tools.envoy.clone(),
        dir: tmp.path().to_path_buf(),
        upstream: upstream_addr,
    };
    eprintln!(
        "meshwork-bench: {} scenario(s), {} round(s), about {:.0} s; upstream {}; temp dir {}",
        selected.len(),
        settings.rounds,
        estimate.as_secs_f64(),
        env.upstream,
        tmp.path().display()
    );
    let mut ctx = Ctx::new(
        tools.clone(),
        env,
        settings.clone(),
        upstream_port,
        wrk_script,
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut foreign_cpu_percent = Vec::new();
    let mut steal_percent = Vec::new();
    let cpus = machine.nproc;
    for scenario in &selected {
        let t = Instant::now();
        let (busy0, own0) = (machine::system_busy_secs(), process::own_cpu_secs());
        let steal0 = machine::steal_secs();
        eprintln!(
            "\n== {} (~{:.0} s): {}",
            scenario.id(),
            scenario.estimate(&settings).as_secs_f64(),
            scenario.describe()
        );
        let mut new_rows = scenario.run(&mut ctx)?;
        let (busy1, own1) = (machine::system_busy_secs(), process::own_cpu_secs());
        let foreign =
            machine::foreign_percent(busy1 - busy0, own1 - own0, t.elapsed().as_secs_f64(), cpus);
        foreign_cpu_percent.push((scenario.id().to_owned(), foreign));
        let wall = t.elapsed().as_secs_f64() * cpus.max(1) as f64;
        let steal = (machine::steal_secs() - steal0) / wall * 100.0;
        steal_percent.push((scenario.id().to_owned(), steal));
        if foreign >= FOREIGN_CPU_WARNING_PERCENT {
            if let Some(first) = new_rows.first_mut() {
                first.notes.push(format!(
                    "other processes used {foreign:.0}% of the CPUs during this scenario: figures are disturbed"
                ));
            }
        }
        eprint!("{}", table::render(&new_rows));
        for row in &new_rows {
            for note in &row.notes {
                eprintln!("  note: {note}");
            }
        }
        eprintln!("   ({:.0} s)", t.elapsed().as_secs_f64());
        upstream.check_alive()?;
        rows.extend(new_rows);
    }
    ctx.stop_targets();
    drop(upstream);
    machine.load_after = machine::loadavg();

    let report = Report {
        command: options.command.clone(),
        mode: if options.quick { "quick" } else { "full" }.to_owned(),
        started_unix,
        duration_secs: started.elapsed().as_secs_f64(),
        machine,
        settings: serde_json::to_value(&settings)?,
        goals: goals::check(&rows),
        foreign_cpu_percent,
        steal_percent,
        ratios: all_ratios(&rows),
        rows,
    };
    println!("\n{}", table::render(&report.rows));
    println!("{}", goals::render(&report.goals));
    let json = write_json(&report, options.save_latest)?;
    println!("JSON: {}", json.display());
    if options.write_results_md {
        let path = bench_dir().join("RESULTS.md");
        let lines: Vec<(String, String)> = selected
            .iter()
            .map(|s| (s.id().to_owned(), s.describe().to_owned()))
            .collect();
        let document = std::fs::read_to_string(&path).unwrap_or_default();
        let updated = results_md::splice(&document, &results_md::section(&report, &lines));
        std::fs::write(&path, updated)?;
        println!("updated {}", path.display());
    }
    drop(tmp);
    let left = process::live_groups();
    if left > 0 {
        eprintln!("warning: {left} child process group(s) still registered");
    }
    eprintln!("done in {:.0} s", report.duration_secs);
    Ok(report)
}

/// Starts `bench-upstream` on the load CPU: the process, its `127.0.0.1:PORT`, the port.
///
/// # Errors
/// When it does not start or prints no address within 10 s.
pub fn start_upstream(
    tools: &tools::Tools,
    dir: &std::path::Path,
) -> anyhow::Result<(Proc, String, u16)> {
    let mut upstream = Proc::spawn(
        "bench-upstream",
        Cpu::Load,
        &tools.upstream,
        &["--listen".into(), "127.0.0.1:0".into()],
        dir,
    )?;
    let address = upstream.wait_for_line("listening ", Duration::from_secs(10))?;
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("bench-upstream printed no port")?;
    Ok((upstream, address, port))
}

pub(crate) fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `results/<unix time>-<mode>.json` (and `latest.json` when asked).
fn write_json(report: &Report, save_latest: bool) -> anyhow::Result<PathBuf> {
    let dir = bench_dir().join("results");
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(report)?;
    let path = dir.join(format!("{}-{}.json", report.started_unix, report.mode));
    std::fs::write(&path, &text)?;
    if save_latest {
        std::fs::write(dir.join("latest.json"), &text)?;
    }
    Ok(path)
}

/// Raises the soft open-files limit to the hard one: the harness holds 10,000 client
/// connections, and the proxies (its children) inherit the limit.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            eprintln!("warning: cannot raise the open-files limit to {hard}: {e}");
        }
    }
}
