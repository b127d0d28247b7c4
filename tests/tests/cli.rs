//! The command line: `check` diagnostics and exit codes, `explain`, `schema`, `--help`,
//! and the shipped example configs.

use std::path::{Path, PathBuf};

use meshwork_tests::{meshwork, meshwork_in};

/// Lines joined with `\n`, so a test can see line numbers as indices + 1.
fn lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Writes `files` (name, contents) into a fresh temporary directory.
fn write_files(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).expect("write a config file");
    }
    dir
}

/// Whether `stderr` holds a `FILE:LINE:COL:` diagnostic for `file`.
fn has_diagnostic_for(stderr: &str, file: &str) -> bool {
    let prefix = format!("{file}:");
    stderr.lines().any(|line| {
        line.match_indices(&prefix)
            .any(|(at, _)| line[at + prefix.len()..].starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// A small valid config (upstreams need not run for `check` or `explain`).
fn valid_config() -> String {
    lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "route_tables:",
        "  edge:",
        "    - name: all",
        "      backends:",
        "        - cluster: app",
        "clusters:",
        "  - name: app",
        "    endpoints:",
        "      - 127.0.0.1:9",
    ])
}

/// Runs `meshwork check FILE` in `dir` and expects failure with a diagnostic starting
/// `FILE:LINE:COL: FIELD.PATH:` and containing `message_part`.
async fn assert_check_reports(file: &str, yaml: &str, position_and_path: &str, message_part: &str) {
    let dir = write_files(&[(file, yaml)]);
    let output = meshwork_in(Some(dir.path()), ["check", file]).await;
    assert!(
        !output.success(),
        "check accepted {file}:\n{}",
        output.describe()
    );
    let expected = format!("{file}:{position_and_path}: ");
    let line = output
        .stderr
        .lines()
        .find(|line| line.contains(&expected))
        .unwrap_or_else(|| panic!("no diagnostic {expected:?}\n{}", output.describe()));
    assert!(
        line.contains(message_part),
        "the diagnostic {line:?} does not say {message_part:?}"
    );
}

#[tokio::test]
async fn help_and_every_subcommands_help_succeed() {
    let output = meshwork(["--help"]).await;
    assert!(output.success(), "{}", output.describe());
    for subcommand in ["run", "check", "explain", "schema", "demo"] {
        assert!(
            output.stdout.contains(subcommand),
            "--help does not list {subcommand}:\n{}",
            output.stdout
        );
        let output = meshwork([subcommand, "--help"]).await;
        assert!(
            output.success(),
            "{subcommand} --help: {}",
            output.describe()
        );
        assert!(
            !output.stdout.is_empty(),
            "{subcommand} --help printed nothing"
        );
    }
    let output = meshwork(["run", "--help"]).await;
    for flag in ["--config", "--admin-address-file", "--drain-timeout"] {
        assert!(
            output.stdout.contains(flag),
            "run --help lacks {flag}:\n{}",
            output.stdout
        );
    }
    assert!(meshwork(["--version"]).await.success());
}

#[tokio::test]
async fn an_unknown_subcommand_fails() {
    let output = meshwork(["frobnicate"]).await;
    assert!(!output.success(), "{}", output.describe());
}

#[tokio::test]
async fn check_accepts_a_valid_file_with_exit_0() {
    let dir = write_files(&[("good.yaml", &valid_config())]);
    let output = meshwork_in(Some(dir.path()), ["check", "good.yaml"]).await;
    assert!(output.success(), "{}", output.describe());
    assert!(
        !has_diagnostic_for(&output.stderr, "good.yaml"),
        "{}",
        output.describe()
    );
}

#[tokio::test]
async fn check_reports_an_unknown_field_at_its_key_with_a_suggestion() {
    let yaml = lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "    limits:",
        "      header_read_timout: 300ms",
        "route_tables:",
        "  edge:",
        "    - name: ok",
        "      direct_response:",
        "        status: 200",
    ]);
    assert_check_reports(
        "typo.yaml",
        &yaml,
        "10:7: listeners[0].limits.header_read_timout",
        "header_read_timeout",
    )
    .await;
}

#[tokio::test]
async fn check_reports_a_bare_number_duration_at_its_value() {
    let yaml = lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "    limits:",
        "      header_read_timeout: 10",
        "route_tables:",
        "  edge:",
        "    - name: ok",
        "      direct_response:",
        "        status: 200",
    ]);
    assert_check_reports(
        "duration.yaml",
        &yaml,
        "10:28: listeners[0].limits.header_read_timeout",
        "is not a duration",
    )
    .await;
}

#[tokio::test]
async fn check_reports_a_route_naming_a_missing_cluster() {
    let yaml = lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "route_tables:",
        "  edge:",
        "    - name: api",
        "      backends:",
        "        - cluster: api-v1",
        "        - cluster: api-v3",
        "clusters:",
        "  - name: api-v1",
        "    endpoints:",
        "      - 127.0.0.1:9",
    ]);
    assert_check_reports(
        "refs.yaml",
        &yaml,
        "14:20: route_tables.edge[0].backends[1].cluster",
        "api-v3",
    )
    .await;
}

#[tokio::test]
async fn check_refuses_a_route_path_that_normalization_would_change() {
    let yaml = lines(&[
        "version: 1",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    route_table: edge",
        "route_tables:",
        "  edge:",
        "    - name: admin",
        "      match:",
        "        path: { prefix: /x/../admin }",
        "      direct_response: { status: 403 }",
    ]);
    assert_check_reports(
        "edge.yaml",
        &yaml,
        "10:25: route_tables.edge[0].match.path.prefix",
        r#""/x/../admin" is not in normalized form: requests are matched after normalization, so it can never match; write "/admin""#,
    )
    .await;
}

#[tokio::test]
async fn check_refuses_tls_to_a_plaintext_control_plane_address() {
    let yaml = lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "control_plane:",
        "  address: http://127.0.0.1:18000",
        "  tls: { ca: ca.pem }",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "route_tables:",
        "  edge:",
        "    - name: api",
        "      direct_response: { status: 200 }",
    ]);
    assert_check_reports(
        "control.yaml",
        &yaml,
        "5:12: control_plane.address",
        "with `tls` the address must be https://",
    )
    .await;
}

#[tokio::test]
async fn check_reports_every_problem_in_a_file_not_just_the_first() {
    let yaml = lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "route_tables:",
        "  edge:",
        "    - name: api",
        "      timeout: 5",
        "      backends:",
        "        - cluster: nope",
    ]);
    let dir = write_files(&[("many.yaml", &yaml)]);
    let output = meshwork_in(Some(dir.path()), ["check", "many.yaml"]).await;
    assert!(!output.success());
    for expected in [
        "many.yaml:12:16: route_tables.edge[0].timeout: ",
        "many.yaml:14:20: route_tables.edge[0].backends[0].cluster: ",
    ] {
        assert!(
            output.stderr.contains(expected),
            "missing {expected:?}\n{}",
            output.describe()
        );
    }
}

#[tokio::test]
async fn check_reports_broken_yaml_with_its_position() {
    let yaml = lines(&[
        "version: 1",
        "listeners:",
        "  - name: edge",
        "    address: [127.0.0.1:0",
        "    route_table: edge",
    ]);
    let dir = write_files(&[("syntax.yaml", &yaml)]);
    let output = meshwork_in(Some(dir.path()), ["check", "syntax.yaml"]).await;
    assert!(!output.success(), "{}", output.describe());
    let diagnostic = output
        .stderr
        .lines()
        .find(|l| l.contains("syntax.yaml:"))
        .unwrap_or_else(|| panic!("no diagnostic naming the file\n{}", output.describe()));
    let position: Vec<&str> = diagnostic
        .split("syntax.yaml:")
        .nth(1)
        .unwrap_or("")
        .splitn(3, ':')
        .collect();
    assert!(
        position.len() == 3
            && position[0]
                .parse::<u32>()
                .is_ok_and(|l| (4..=5).contains(&l))
            && position[1].parse::<u32>().is_ok(),
        "expected syntax.yaml:LINE:COL on line 4 or 5: {diagnostic:?}"
    );
}

#[tokio::test]
async fn check_exits_non_zero_when_any_file_is_invalid_and_names_only_that_one() {
    let broken = valid_config().replace("cluster: app", "cluster: missing");
    let dir = write_files(&[("good.yaml", &valid_config()), ("bad.yaml", &broken)]);
    let output = meshwork_in(Some(dir.path()), ["check", "good.yaml", "bad.yaml"]).await;
    assert!(!output.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("bad.yaml:13:20: "),
        "{}",
        output.describe()
    );
    assert!(
        !has_diagnostic_for(&output.stderr, "good.yaml"),
        "{}",
        output.describe()
    );

    let output = meshwork_in(Some(dir.path()), ["check", "good.yaml", "good.yaml"]).await;
    assert!(output.success(), "{}", output.describe());
}

#[tokio::test]
async fn check_of_a_missing_file_fails_naming_it() {
    let dir = write_files(&[]);
    let output = meshwork_in(Some(dir.path()), ["check", "nowhere.yaml"]).await;
    assert!(!output.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("nowhere.yaml"),
        "{}",
        output.describe()
    );
}

#[tokio::test]
async fn run_refuses_to_start_with_an_invalid_config() {
    let broken = valid_config().replace("cluster: app", "cluster: missing");
    let dir = write_files(&[("bad.yaml", &broken)]);
    let output = meshwork_in(Some(dir.path()), ["run", "-c", "bad.yaml"]).await;
    assert!(!output.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("bad.yaml:13:20: "),
        "{}",
        output.describe()
    );
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples")
}

#[tokio::test]
async fn every_example_config_passes_check() {
    let mut examples: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("config/examples exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    examples.sort();
    assert!(
        !examples.is_empty(),
        "no examples in {}",
        examples_dir().display()
    );
    for example in &examples {
        let output = meshwork([Path::new("check"), example.as_path()]).await;
        assert!(
            output.success(),
            "{}: {}",
            example.display(),
            output.describe()
        );
    }
}

#[tokio::test]
async fn schema_prints_a_json_schema_of_the_format() {
    let output = meshwork(["schema"]).await;
    assert!(output.success(), "{}", output.describe());
    let schema: serde_json::Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("schema is not JSON ({e}):\n{}", output.stdout));
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no top-level properties: {schema}"));
    for field in ["version", "admin", "listeners", "route_tables", "clusters"] {
        assert!(properties.contains_key(field), "the schema lacks {field}");
    }
}

#[tokio::test]
async fn explain_names_the_matching_route_and_why_earlier_ones_did_not_match() {
    let yaml = lines(&[
        "version: 1",
        "admin:",
        "  address: 127.0.0.1:0",
        "listeners:",
        "  - name: edge",
        "    address: 127.0.0.1:0",
        "    protocol: http",
        "    route_table: edge",
        "route_tables:",
        "  edge:",
        "    - name: health-check",
        "      match:",
        "        path:",
        "          exact: /healthz",
        "      direct_response:",
        "        status: 200",
        "    - name: writes-only",
        "      match:",
        "        method: [POST]",
        "      backends:",
        "        - cluster: app",
        "    - name: canary-users",
        "      match:",
        "        headers:",
        "          - name: x-canary",
        "            exact: \"true\"",
        "      backends:",
        "        - cluster: canary",
        "    - name: everything-else",
        "      backends:",
        "        - cluster: app",
        "clusters:",
        "  - name: app",
        "    endpoints:",
        "      - 127.0.0.1:9",
        "  - name: canary",
        "    endpoints:",
        "      - 127.0.0.1:10",
    ]);
    let dir = write_files(&[("routes.yaml", &yaml)]);
    let output = meshwork_in(
        Some(dir.path()),
        [
            "explain",
            "-c",
            "routes.yaml",
            "GET http://api.example.com/users?id=7",
            "-H",
            "x-canary: true",
        ],
    )
    .await;
    assert!(output.success(), "{}", output.describe());
    let text = output.stdout.to_lowercase();
    for (route, reason) in [("health-check", "path"), ("writes-only", "method")] {
        let line = text
            .lines()
            .find(|l| l.contains(route))
            .unwrap_or_else(|| panic!("{route} is not mentioned:\n{}", output.stdout));
        assert!(
            line.contains(reason) || text.contains(&format!("{route}:")) && text.contains(reason),
            "why {route} did not match ({reason}) is not said:\n{}",
            output.stdout
        );
    }
    assert!(text.contains("canary-users"), "{}", output.stdout);
    assert!(
        text.contains("canary"),
        "the chosen cluster is named:\n{}",
        output.stdout
    );
    let chosen = text.find("canary-users").unwrap();
    let earlier = text.find("writes-only").unwrap();
    assert!(
        earlier < chosen,
        "routes are explained in order:\n{}",
        output.stdout
    );
}

#[tokio::test]
async fn explain_takes_a_destination_for_an_auto_listener() {
    let yaml = lines(&[
        "version: 1",
        "listeners:",
        "  - name: outbound",
        "    address: 127.0.0.1:0",
        "    direction: outbound",
        "    protocol: auto",
        "    original_destination: true",
        "    route_table: services",
        "    ports: { 9092: opaque }",
        "route_tables:",
        "  services:",
        "    - name: users",
        "      match: { host: [users] }",
        "      backends: [{ cluster: users }]",
        "clusters:",
        "  - name: users",
        "    endpoints: [127.0.0.1:9]",
    ]);
    let dir = write_files(&[("sidecar.yaml", &yaml)]);
    let mysql = meshwork_in(
        Some(dir.path()),
        ["explain", "-c", "sidecar.yaml", "10.0.0.5:3306"],
    )
    .await;
    assert!(mysql.success(), "{}", mysql.describe());
    assert!(
        mysql
            .stdout
            .contains("opaque (MySQL, on the built-in server-first list)"),
        "{}",
        mysql.describe()
    );
    let unrouted = meshwork_in(
        Some(dir.path()),
        [
            "explain",
            "-c",
            "sidecar.yaml",
            "--destination",
            "10.0.0.5:8080",
            "GET http://elsewhere/x",
        ],
    )
    .await;
    assert!(unrouted.success(), "{}", unrouted.describe());
    assert!(
        unrouted
            .stdout
            .contains("forwarded to its original destination, 10.0.0.5:8080"),
        "{}",
        unrouted.describe()
    );
}
