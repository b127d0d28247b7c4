//! Running `nft` and `ip`, with errors that say what to fix (a missing tool, a missing
//! capability) instead of a bare exit status.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// A failed `nft` or `ip` invocation.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "`{program}` was not found on PATH: meshwork init programs the network namespace \
         with it ({package}); run it from an image that carries it (the Dockerfile's \
         `init` target does)"
    )]
    NotFound {
        program: &'static str,
        package: &'static str,
    },
    #[error(
        "`{command}` was refused: {stderr} (meshwork init needs the NET_ADMIN capability: \
         run it as the pod's init container with `securityContext.capabilities.add: \
         [NET_ADMIN]`, or as root on a host)"
    )]
    NotPermitted { command: String, stderr: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` could not run: {source}")]
    Io {
        command: String,
        source: std::io::Error,
    },
}

/// What a command said when it failed, for callers that tolerate some failures.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stderr: String,
}

/// Runs `program args`, feeding `stdin`; fails only when it cannot run at all.
fn run_raw(
    program: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Output, CommandError> {
    let command = display(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CommandError::NotFound {
                program,
                package: package_of(program),
            },
            _ => CommandError::Io {
                command: command.clone(),
                source,
            },
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|source| CommandError::Io {
                command: command.clone(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| CommandError::Io {
            command: command.clone(),
            source,
        })?;
    Ok(Output {
        success: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `program args`; any failure is an error.
pub fn run(program: &'static str, args: &[&str], stdin: Option<&str>) -> Result<(), CommandError> {
    let out = run_raw(program, args, stdin)?;
    if out.success {
        return Ok(());
    }
    Err(failure(
        display(program, args),
        out.stderr,
        "exit status non-zero",
    ))
}

/// Runs `program args`, returning its failure instead of turning it into an error.
pub fn try_run(program: &'static str, args: &[&str]) -> Result<Output, CommandError> {
    run_raw(program, args, None)
}

/// Loads `ruleset` in one nftables transaction.
pub fn nft_load(ruleset: &str) -> Result<(), CommandError> {
    run("nft", &["-f", "-"], Some(ruleset))
}

/// Deletes `inet TABLE`; a table that is not there is already clean.
pub fn nft_delete_table(table: &str) -> Result<(), CommandError> {
    let args = ["delete", "table", "inet", table];
    let out = try_run("nft", &args)?;
    if out.success || out.stderr.contains("No such file or directory") {
        return Ok(());
    }
    Err(failure(
        display("nft", &args),
        out.stderr,
        "exit status non-zero",
    ))
}

pub fn failure(command: String, stderr: String, status: &str) -> CommandError {
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        CommandError::NotPermitted { command, stderr }
    } else {
        CommandError::Failed {
            command,
            status: status.to_owned(),
            stderr,
        }
    }
}

fn display(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

fn package_of(program: &str) -> &'static str {
    match program {
        "nft" => "Debian/Ubuntu package `nftables`",
        "ip" => "Debian/Ubuntu package `iproute2`",
        _ => "its distribution package",
    }
}
