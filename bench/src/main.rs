//! `meshwork-bench`: parse arguments, run the chosen scenarios.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use meshwork_bench::instructions::{self, Protocol};
use meshwork_bench::run::{RunOptions, run};
use meshwork_bench::scenarios;

/// Benchmarks meshwork against nginx and HAProxy (and the upstream directly) on this
/// machine, pinned: load generator + upstream on CPU 0, the proxy on CPU 1.
#[derive(Debug, Parser)]
#[command(name = "meshwork-bench", version, about)]
struct Cli {
    /// `all`, `list`, `instructions`, or one or more scenario ids (see `list`).
    #[arg(required = true, value_name = "WHAT")]
    what: Vec<String>,
    /// Short runs (under 2 minutes for `all`); same loads, shorter durations, 2 rounds.
    #[arg(long)]
    quick: bool,
    /// Rounds per figure (default 3, or 2 with --quick).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Fail instead of installing missing tools (apt-get, cargo install oha).
    #[arg(long)]
    no_install: bool,
    /// Update bench/RESULTS.md (default: yes for a full `all`, no otherwise).
    #[arg(long, overrides_with = "no_write_results")]
    write_results: bool,
    /// Do not update bench/RESULTS.md.
    #[arg(long)]
    no_write_results: bool,
    /// Measure this meshwork binary instead of building the workspace's (e.g. one built
    /// from a clean export of a commit while the working tree is being edited).
    #[arg(long, value_name = "PATH")]
    meshwork: Option<std::path::PathBuf>,
    /// Also measure this second meshwork binary, as `meshwork-base`, alternating with the
    /// others (before/after a change to the request path, in one run).
    #[arg(long, value_name = "PATH")]
    baseline: Option<std::path::PathBuf>,
    /// Wait until the CPUs are at most this busy (percent) before measuring.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    max_busy: f64,
    /// Give up waiting for quiet after this many seconds (then measure and record it).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    wait_quiet: u64,
    /// `instructions`: measured requests per proxy and protocol.
    #[arg(long, default_value_t = 5_000, value_name = "N")]
    requests: u64,
    /// `instructions`: unmeasured warm-up requests before them.
    #[arg(long, default_value_t = 500, value_name = "N")]
    warmup_requests: u64,
    /// `instructions`: client connections (h2c: streams on one connection).
    #[arg(long, default_value_t = 4, value_name = "N")]
    connections: u32,
    /// `instructions`: the request paths to measure.
    #[arg(long, value_delimiter = ',', default_value = "h1,h2c,mtls", value_parser = Protocol::parse)]
    protocols: Vec<Protocol>,
    /// `instructions`: meshwork only (no nginx and HAProxy).
    #[arg(long)]
    no_peers: bool,
    /// `instructions`: keep each callgrind dump in this directory, as
    /// `TARGET-PROTOCOL.callgrind`, for `callgrind_annotate` (profiles of the measured
    /// requests only).
    #[arg(long, value_name = "DIR")]
    keep_dumps: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let all = scenarios::all();
    if cli.what.iter().any(|w| w == "list") {
        for s in &all {
            println!("{:<10} {}", s.id(), s.describe());
        }
        return ExitCode::SUCCESS;
    }
    if cli.what.iter().any(|w| w == "instructions") {
        if cli.what.len() > 1 {
            eprintln!("error: `instructions` runs alone (it measures under callgrind)");
            return ExitCode::from(2);
        }
        let options = instructions::Options {
            requests: cli.requests.max(1),
            warmup: cli.warmup_requests.max(1),
            connections: cli.connections.max(1),
            protocols: cli.protocols.clone(),
            peers: !cli.no_peers,
            install: !cli.no_install,
            meshwork: cli.meshwork.clone(),
            baseline: cli.baseline.clone(),
            keep_dumps: cli.keep_dumps.clone(),
        };
        return match instructions::run(&options) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let everything = cli.what.iter().any(|w| w == "all");
    let chosen: Vec<String> = if everything {
        all.iter()
            .filter(|s| !cli.quick || s.in_quick_all())
            .map(|s| s.id().to_owned())
            .collect()
    } else {
        cli.what.clone()
    };
    if let Some(unknown) = chosen
        .iter()
        .find(|w| !all.iter().any(|s| s.id() == w.as_str()))
    {
        let ids: Vec<&str> = all.iter().map(|s| s.id()).collect();
        eprintln!(
            "error: unknown scenario `{unknown}`; expected all, list, or one of: {}",
            ids.join(", ")
        );
        return ExitCode::from(2);
    }
    let full_all = everything && !cli.quick;
    // `results/latest.json` is the run the generated section of RESULTS.md shows: both
    // are written, or neither (`--write-results` / `--no-write-results` set both).
    let write_results = !cli.no_write_results && (cli.write_results || full_all);
    let options = RunOptions {
        scenarios: chosen,
        quick: cli.quick,
        rounds: cli.rounds,
        install: !cli.no_install,
        write_results_md: write_results,
        save_latest: write_results,
        max_busy_percent: cli.max_busy,
        wait_quiet: Duration::from_secs(cli.wait_quiet),
        meshwork: cli.meshwork.clone(),
        baseline: cli.baseline.clone(),
        command: format!(
            "cargo run -p meshwork-bench --release -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
    };
    match run(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
