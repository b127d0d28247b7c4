//! No input makes the loader panic: mutated examples, deep nesting, odd bytes.

use std::path::Path;

fn load(text: &str) {
    let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
    let _ = meshwork_config::load_str("fuzz.yaml", text, Path::new("."), &env);
}

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "\n",
    " ",
    "  ",
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "#",
    "${",
    "$${",
    "}",
    "&a ",
    "*a",
    "!!str ",
    "!x ",
    "<<: ",
    "~",
    "null",
    "0",
    "-1",
    "1e999",
    "99999999999999999999",
    "é",
    "µs",
    "\t",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "? ",
    "%YAML 1.2\n",
    "\u{feff}",
    "\\",
    "\r\n",
];

#[test]
fn mutated_examples_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds: Vec<String> = [
        "examples/edge.yaml",
        "examples/sidecar.yaml",
        "tests/fixtures/valid/full.yaml",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(dir.join(p)).expect("read seed"))
    .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1500 {
        let mut text: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(text.len() + 1);
            match rng.below(3) {
                0 if at < text.len() => {
                    let end = (at + 1 + rng.below(8)).min(text.len());
                    text.drain(at..end);
                }
                _ => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    text.splice(at..at, piece.chars());
                }
            }
        }
        let text: String = text.into_iter().collect();
        let result = std::panic::catch_unwind(|| load(&text));
        assert!(result.is_ok(), "panicked on:\n{text}");
    }
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
