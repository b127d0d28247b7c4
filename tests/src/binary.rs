//! Finding the `meshwork` binary under test.

use std::path::PathBuf;

/// The environment variable that names the binary explicitly.
pub const MESHWORK_BIN_ENV: &str = "MESHWORK_BIN";

/// The `meshwork` binary: `$MESHWORK_BIN`, else `target/<profile>/meshwork` next to the
/// running test executable (which lives in `target/<profile>/deps/`).
///
/// # Panics
/// When the binary does not exist, with a message saying how to build it.
pub fn meshwork_bin() -> PathBuf {
    if let Some(path) = std::env::var_os(MESHWORK_BIN_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{MESHWORK_BIN_ENV}={} does not name a file",
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
    let candidate = dir.join("meshwork");
    assert!(
        candidate.is_file(),
        "the meshwork binary was not found at {}: build it with `cargo build -p meshwork-proxy` \
         (or point {MESHWORK_BIN_ENV} at it)",
        candidate.display()
    );
    candidate
}
