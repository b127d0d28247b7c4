//! Scenarios: each measures every target, alternating them round by round (A B C D,
//! A B C D, ...) so drift cancels, and returns rows for the table.
//!
//! To add a row (mTLS, retries under failure, config push latency...): write a type
//! implementing [`Scenario`] in its own file here and add it to [`all`]. The [`Ctx`]
//! gives it running targets, the tools, and a way to run a load generator pinned to the
//! load CPU.

pub mod failover;
pub mod h1_max;
pub mod h1_rate;
pub mod h2;
pub mod large;
pub mod memory;
pub mod mesh;
pub mod observability;
pub mod slowloris;
pub mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::process::{Cpu, Proc};
use crate::report::Row;
use crate::targets::{self, Env, Running, Target};
use crate::tools::Tools;

/// One kind of measurement: a few rows of the table.
pub trait Scenario {
    /// The short id: the subcommand name and the table's `scenario` column.
    fn id(&self) -> &'static str;
    /// One line for `--help`, README and RESULTS.md.
    fn describe(&self) -> &'static str;
    /// About how long it takes with `settings` (for the run's time budget).
    fn estimate(&self, settings: &Settings) -> Duration;
    /// Measures every target and returns the rows.
    ///
    /// # Errors
    /// Only when nothing can be measured at all; a failing target becomes a row note.
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>>;
    /// Part of `all --quick` (a scenario that does not fit the smoke run's two minutes
    /// runs there only when named). Default yes.
    fn in_quick_all(&self) -> bool {
        true
    }
}

/// Every scenario, in the order `all` runs them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(h1_max::H1Max),
        Box::new(h1_rate::H1Rate),
        Box::new(h2::H2),
        Box::new(large::Large),
        Box::new(observability::Observability),
        Box::new(failover::Failover),
        Box::new(tls::Tls),
        Box::new(mesh::Mesh),
        Box::new(memory::Memory),
        Box::new(slowloris::Slowloris),
    ]
}

/// Durations, counts and rates of a run (`--quick` shrinks durations, never loads).
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub rounds: usize,
    /// Short unmeasured run per target before a scenario's rounds (fills pools, caches);
    /// whole seconds, as wrk wants.
    pub warmup_secs: f64,
    /// Client connections for the small-response HTTP/1.1 scenarios.
    pub connections: u32,
    pub h1_max_secs: u32,
    pub h1_rate_secs: u32,
    pub h1_rate_per_sec: u32,
    pub h2_secs: u32,
    pub h2_connections: u32,
    pub h2_streams_per_connection: u32,
    pub large_secs: u32,
    pub observability_secs: u32,
    pub failover_secs: u32,
    /// Rounds of the failover scenario (each restarts every proxy).
    pub failover_rounds: usize,
    /// Each run of the tls scenario (handshakes, keep-alive).
    pub tls_secs: u32,
    /// Rounds of the tls scenario (kept low so `all` stays short).
    pub tls_rounds: usize,
    /// Each run of the mesh scenario (a fixed-rate and a max run per pair per round).
    pub mesh_secs: u32,
    pub idle_connections: usize,
    /// Rounds of the memory scenario (its figures barely move between rounds).
    pub memory_rounds: usize,
}

impl Settings {
    pub fn full() -> Self {
        Self {
            rounds: 3,
            warmup_secs: 1.0,
            connections: 50,
            h1_max_secs: 8,
            h1_rate_secs: 7,
            h1_rate_per_sec: 2_000,
            h2_secs: 6,
            h2_connections: 10,
            h2_streams_per_connection: 10,
            large_secs: 5,
            observability_secs: 4,
            failover_secs: 3,
            failover_rounds: 3,
            tls_secs: 1,
            tls_rounds: 2,
            mesh_secs: 4,
            idle_connections: 10_000,
            memory_rounds: 3,
        }
    }

    pub fn quick() -> Self {
        Self {
            rounds: 2,
            h1_max_secs: 2,
            h1_rate_secs: 2,
            h2_secs: 1,
            large_secs: 1,
            observability_secs: 1,
            failover_secs: 1,
            failover_rounds: 1,
            tls_rounds: 1,
            mesh_secs: 1,
            memory_rounds: 1,
            ..Self::full()
        }
    }

    /// Wall time of `rounds` runs of `secs` for each of `targets` targets, plus warm-up.
    pub fn rounds_time(&self, targets: usize, secs: f64) -> Duration {
        Duration::from_secs_f64(
            targets as f64 * (self.warmup_secs + self.rounds as f64 * (secs + 0.3)),
        )
    }
}

/// What a scenario works with.
#[derive(Debug)]
pub struct Ctx {
    pub tools: Tools,
    pub env: Env,
    pub settings: Settings,
    pub upstream_port: u16,
    /// The wrk Lua script printing the summary line.
    pub wrk_script: PathBuf,
    /// Proxies started on first use and kept for the load scenarios.
    running: BTreeMap<Target, Running>,
    runs: usize,
}

impl Ctx {
    pub fn new(
        tools: Tools,
        env: Env,
        settings: Settings,
        upstream_port: u16,
        wrk_script: PathBuf,
    ) -> Self {
        Self {
            tools,
            env,
            settings,
            upstream_port,
            wrk_script,
            running: BTreeMap::new(),
            runs: 0,
        }
    }

    /// The shared running instance of `target`, started when first asked for (or again
    /// after it died, which the caller has noted).
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn target(&mut self, target: Target) -> anyhow::Result<&mut Running> {
        if let Some(r) = self.running.get_mut(&target) {
            if r.check_alive().is_err() {
                self.running.remove(&target);
            }
        }
        if !self.running.contains_key(&target) {
            let r = targets::start(target, &self.env, self.upstream_port, "shared")?;
            self.running.insert(target, r);
        }
        Ok(self.running.get_mut(&target).expect("inserted above"))
    }

    /// The targets of this run, in the order every round visits them.
    pub fn targets(&self) -> Vec<Target> {
        let mut all = Target::ALL.to_vec();
        if self.env.meshwork_base.is_some() {
            all.push(Target::MeshworkBase);
        }
        all
    }

    /// [`Ctx::targets`] without the direct run.
    pub fn proxies(&self) -> Vec<Target> {
        let mut all = self.targets();
        all.retain(|&t| t != Target::Direct);
        all
    }

    /// Fails when the shared instance of `target` has died (without restarting it).
    ///
    /// # Errors
    /// When it exited.
    pub fn check_alive(&mut self, target: Target) -> anyhow::Result<()> {
        match self.running.get_mut(&target) {
            Some(r) => r.check_alive(),
            None => Ok(()),
        }
    }

    /// Stops every shared proxy (before the memory scenario starts fresh ones).
    pub fn stop_targets(&mut self) {
        self.running.clear();
    }

    /// Runs a load generator pinned to the load CPU and returns its stdout; `sample` is
    /// called every [`crate::process::SAMPLE_INTERVAL`] while it runs.
    ///
    /// # Errors
    /// When it fails, or runs past `expected` plus a margin.
    pub fn run_load(
        &mut self,
        program: &std::path::Path,
        args: &[String],
        expected: Duration,
        sample: &mut dyn FnMut(),
    ) -> anyhow::Result<String> {
        self.runs += 1;
        let name = format!(
            "{}-{}",
            program.file_name().unwrap_or_default().to_string_lossy(),
            self.runs
        );
        let proc = Proc::spawn(&name, Cpu::Load, program, args, &self.env.dir)?;
        proc.wait_output_sampling(expected + Duration::from_secs(30), sample)
    }
}

/// Collects samples per target, and notes for the rows.
#[derive(Debug, Default)]
pub struct Samples {
    pub values: BTreeMap<Target, Vec<f64>>,
}

impl Samples {
    pub fn push(&mut self, target: Target, value: f64) {
        self.values.entry(target).or_default().push(value);
    }

    pub fn get(&self, target: Target) -> &[f64] {
        self.values.get(&target).map_or(&[], Vec::as_slice)
    }

    /// A row with every target's samples.
    pub fn row(&self, scenario: &str, metric: &str, better: crate::report::Better) -> Row {
        let mut row = Row::new(scenario, metric, better);
        for (&t, v) in &self.values {
            row = row.with(t, v);
        }
        row
    }
}

/// `secs` as the `5s` some tools want.
pub fn secs_arg(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{secs:.0}s")
    } else {
        format!("{:.0}ms", secs * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_ids_are_unique_and_the_default_run_fits_twelve_minutes() {
        let all = all();
        let mut ids: Vec<&str> = all.iter().map(|s| s.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        let full: Duration = all.iter().map(|s| s.estimate(&Settings::full())).sum();
        assert!(full < Duration::from_secs(12 * 60), "{full:?}");
        let quick: Duration = all
            .iter()
            .filter(|s| s.in_quick_all())
            .map(|s| s.estimate(&Settings::quick()))
            .sum();
        assert!(quick < Duration::from_secs(120), "{quick:?}");
    }

    #[test]
    fn durations_are_written_as_tools_expect() {
        assert_eq!(secs_arg(5.0), "5s");
        assert_eq!(secs_arg(0.5), "500ms");
    }
}
