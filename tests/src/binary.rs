//! Finding the binaries under test: `meshwork` and `meshwork-control`.

use std::path::PathBuf;

/// The environment variable that names the binary explicitly.
pub const MESHWORK_BIN_ENV: &str = "MESHWORK_BIN";

/// The environment variable that names the `meshwork-control` binary explicitly.
pub const MESHWORK_CONTROL_BIN_ENV: &str = "MESHWORK_CONTROL_BIN";

/// The `meshwork-control` binary: `$MESHWORK_CONTROL_BIN`, else
/// `target/<profile>/meshwork-control` next to the running test executable.
///
/// # Panics
/// When the binary does not exist, with a message saying how to build it.
pub fn meshwork_control_bin() -> PathBuf {
    workspace_bin(
        "meshwork-control",
        "meshwork-control",
        MESHWORK_CONTROL_BIN_ENV,
    )
}

/// The `meshwork` binary: `$MESHWORK_BIN`, else `target/<profile>/meshwork` next to the
/// running test executable (which lives in `target/<profile>/deps/`).
///
/// # Panics
/// When the binary does not exist, with a message saying how to build it.
pub fn meshwork_bin() -> PathBuf {
    workspace_bin("meshwork", "meshwork-proxy", MESHWORK_BIN_ENV)
}

/// Binary `name` of package `package`: `$env`, else next to the test executable.
pub(crate) fn workspace_bin(name: &str, package: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env}={} does not name a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's own path");
    let mut dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join(name);
    assert!(
        candidate.is_file(),
        "the {name} binary was not found at {}: build it with `cargo build -p {package}` \
         (or point {env} at it)",
        candidate.display()
    );
    candidate
}
