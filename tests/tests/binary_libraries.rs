//! The `meshwork` binary's shared libraries: libc and libgcc_s (unwinding), not libm.
//!
//! glibc's libm costs an idle sidecar about 0.3 MiB of resident pages and the loader one
//! more library to map at each start, for two functions the proxy needs (`exp` and
//! tokio's `pow`); the binary carries its own (proxy/src/float_symbols.rs). A new float
//! function from std (`f64::ln`, `f64::sin`, ...) in the proxy would quietly bring the
//! library back: this test names it.

use std::process::Command;

use meshwork_tests::meshwork_bin;

/// The `NEEDED` entries of `binary`'s dynamic section, from `readelf -d` (binutils).
fn needed_libraries(binary: &std::path::Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("readelf (binutils) runs");
    assert!(
        out.status.success(),
        "readelf -d {}: {out:?}",
        binary.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

#[test]
fn the_meshwork_binary_does_not_load_libm() {
    let needed = needed_libraries(&meshwork_bin());
    assert!(
        needed.iter().any(|lib| lib.starts_with("libc.so")),
        "readelf output not understood: {needed:?}"
    );
    let libm: Vec<_> = needed
        .iter()
        .filter(|lib| lib.starts_with("libm.so"))
        .collect();
    assert!(
        libm.is_empty(),
        "the meshwork binary needs {libm:?} again: a float function from std (not the `libm` \
         crate's) crept into the proxy; `nm -D --undefined-only` names it. All needed: {needed:?}"
    );
}
