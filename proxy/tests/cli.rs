//! The binary's command-line surface: every subcommand documents itself, and the
//! shipped examples pass `meshwork check`. (Being an integration test of this package
//! also makes `cargo test --workspace` build the `meshwork` binary the e2e suite runs.)

use std::process::Command;

fn meshwork() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshwork"))
}

#[test]
fn every_subcommand_has_complete_help() {
    for sub in [
        &[][..],
        &["run"],
        &["check"],
        &["explain"],
        &["schema"],
        &["demo"],
        &["certs"],
        &["certs", "ca"],
        &["certs", "workload"],
    ] {
        let out = meshwork().args(sub).arg("--help").output().unwrap();
        assert!(out.status.success(), "{sub:?} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:"), "{sub:?}: {text}");
    }
}

#[test]
fn shipped_examples_pass_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = meshwork().arg("check").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_fails_with_a_positioned_error_for_a_broken_file() {
    let dir = std::env::temp_dir().join(format!("meshwork-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "version: 1\nlisteners:\n  - name: web\n    adress: 127.0.0.1:8080\n",
    )
    .unwrap();
    let out = meshwork().arg("check").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml:4:5: listeners[0]"), "{err}");
    assert!(err.contains("did you mean \"address\""), "{err}");
}
