//! Running `meshwork` subcommands that exit on their own (`check`, `explain`, `schema`,
//! `--help`), or other one-shot tools, and collecting what they print.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::binary::meshwork_bin;

/// How long a one-shot subcommand may run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished `meshwork` invocation printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Both streams, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `meshwork ARGS...` in the current directory.
///
/// # Panics
/// When it cannot be started or runs longer than [`CLI_TIMEOUT`].
pub async fn meshwork<I, S>(args: I) -> CliOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    meshwork_in(None, args).await
}

/// Runs `meshwork ARGS...` in directory `dir` (so diagnostics name files as given).
///
/// # Panics
/// As [`meshwork`].
pub async fn meshwork_in<I, S>(dir: Option<&Path>, args: I) -> CliOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_program(&meshwork_bin(), dir, args).await
}

/// Runs `PROGRAM ARGS...` (any one-shot tool: `meshwork-control --check`, a validator) in
/// directory `dir`, bounded by [`CLI_TIMEOUT`].
///
/// # Panics
/// When it cannot be started or runs longer than [`CLI_TIMEOUT`].
pub async fn run_program<I, S>(program: &Path, dir: Option<&Path>, args: I) -> CliOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let name = program.display();
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let output = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not exit within {CLI_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("collect {name}'s output: {e}"));
    CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
