//! Fixture files: `fixtures/valid/*.yaml` must load; each `fixtures/invalid/NAME.yaml`
//! must fail with exactly the diagnostics in `NAME.err` (one per line).
//!
//! Fixtures see a fixed environment: `PORT=8080`, `EMPTY=` and nothing else. Run with
//! `MESHWORK_BLESS=1` to rewrite the `.err` files from the current output (then review
//! the diff: the messages are the product).

use std::path::{Path, PathBuf};

fn fixture_env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("8080".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Result<meshwork_config::Config, meshwork_config::Diagnostics> {
    let name = path.file_name().expect("file name").to_string_lossy();
    let text = std::fs::read_to_string(path).expect("read fixture");
    let base = path.parent().expect("parent");
    meshwork_config::load_str(&name, &text, base, &fixture_env)
}

#[test]
fn fixtures_give_exactly_the_expected_diagnostics() {
    let bless = std::env::var_os("MESHWORK_BLESS").is_some();
    let mut failures = Vec::new();

    let valid = yaml_files("valid");
    assert!(!valid.is_empty(), "no valid fixtures");
    for path in &valid {
        if let Err(e) = load(path) {
            failures.push(format!("{} should load, got:\n{e}", path.display()));
        }
    }

    let invalid = yaml_files("invalid");
    assert!(!invalid.is_empty(), "no invalid fixtures");
    for path in &invalid {
        let expected_path = path.with_extension("err");
        let actual = match load(path) {
            Ok(_) => String::from("(loaded without errors)\n"),
            Err(e) => format!("{e}\n"),
        };
        if bless {
            std::fs::write(&expected_path, &actual).expect("write .err");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| format!("(missing {})\n", expected_path.display()));
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }

    // Every .err has its .yaml (a renamed fixture must not leave a stale expectation).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    for entry in std::fs::read_dir(&dir).expect("invalid dir") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "err") && !p.with_extension("yaml").exists() {
            failures.push(format!("{} has no .yaml beside it", p.display()));
        }
    }

    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
