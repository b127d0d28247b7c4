//! The `meshwork-control` command line. (Being an integration test of this package also
//! makes `cargo test --workspace` build the binary the end-to-end suite starts.)

use std::process::Command;

fn control() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshwork-control"))
}

#[test]
fn help_documents_every_option() {
    let out = control().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for option in ["--config-dir", "--listen", "--admin", "--check"] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

#[test]
fn the_shipped_example_directory_passes_check_and_a_broken_one_does_not() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/control-plane/fragments"
    );
    let out = control()
        .args(["--check", "--config-dir", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("clusters.yaml"),
        "clusters:\n  - name: api\n    endpoints: [127.0.0.1:9000]\n    conect_timeout: 1s\n",
    )
    .unwrap();
    let out = control()
        .args(["--check", "--config-dir"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clusters.yaml:4:5") && stderr.contains("conect_timeout"),
        "{stderr}"
    );
}

#[test]
fn a_fragment_with_a_route_path_that_can_never_match_fails_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("edge.yaml"),
        "listeners:\n  - { name: edge, address: 127.0.0.1:0, route_table: edge }\nclusters:\n  - { name: api, endpoints: [127.0.0.1:9000] }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("routes.yaml"),
        "route_tables:\n  edge:\n    - name: admin\n      match: { path: { prefix: /x/../admin } }\n      direct_response: { status: 403 }\n",
    )
    .unwrap();
    let out = control()
        .args(["--check", "--config-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"routes.yaml:4:32: route_tables.edge[0].match.path.prefix: "/x/../admin" is not in normalized form: requests are matched after normalization, so it can never match; write "/admin""#
        ),
        "{stderr}"
    );
}
