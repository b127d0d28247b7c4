//! No input makes the loader panic: deep nesting, odd but valid inputs. (Arbitrary
//! bytes, token soups and mutated examples are generated in `properties.rs`.)

use std::path::Path;

fn load(text: &str) {
    let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
    let _ = meshwork_config::load_str("fuzz.yaml", text, Path::new("."), &env);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for open in ["[", "{a: ", "- "] {
        let text = format!("version: 1\nnode:\n  labels: {}", open.repeat(20_000));
        load(&text);
    }
    for (depth, says) in [
        (100, "nested more than 64 deep"),
        (5_000, "recursion limit"),
    ] {
        let text = format!(
            "version: 1\nlisteners: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = meshwork_config::load_str("deep.yaml", &text, Path::new("."), &|_| None)
            .expect_err("too deep");
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn odd_but_valid_inputs_load_or_fail_cleanly() {
    for text in [
        "",
        "\n\n",
        "version: 1\n...\n",
        "---\nversion: 1\n",
        "version: 1 # comment\n",
        "\u{feff}version: 1\n",
        "version: 1\r\nadmin: {address: \"127.0.0.1:0\"}\r\n",
        "{version: 1, listeners: []}",
        "version: !!int 1\n",
        "version: 0x1\n",
    ] {
        load(text);
    }
}
