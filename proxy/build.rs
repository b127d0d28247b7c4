//! Lays out the `meshwork` binary's code so that what the proxy runs sits together.
//!
//! An idle sidecar's memory is mostly its own binary: the kernel maps the pages a
//! process touches in 64 KiB windows (fault-around), and startup touches code spread over
//! the whole text, so about 7 MiB of a 12 MB text is resident with 1.9 MB of it run.
//! `link-order.txt` lists the functions that startup and the common request paths run
//! (made by `bench/link-order.sh` under callgrind); lld places them first, in that
//! order, so they fill a few windows instead of most of them (bench/RESULTS.md, "Idle
//! RSS: the binary's layout").
//!
//! The relative relocations of the position-independent binary (500 KB of `.rela.dyn`,
//! every entry read by the loader at each start, so resident too) are packed as RELR
//! (`-z pack-relative-relocs`: a few KB), which needs glibc 2.36 or later to run; it is
//! used only when the building machine's glibc has it.
//!
//! Only release builds for x86_64 Linux, whose Rust toolchain links with lld by default;
//! GNU ld has no such option. `MESHWORK_LINK_ORDER=0` turns both off (for a build that
//! forces another linker, or runs on an older glibc than it was built on). A function the
//! file names that no longer exists is skipped, so a stale list costs only layout, never
//! correctness.

fn main() {
    println!("cargo::rerun-if-changed=link-order.txt");
    println!("cargo::rerun-if-env-changed=MESHWORK_LINK_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let disabled = std::env::var("MESHWORK_LINK_ORDER").is_ok_and(|v| v == "0");
    if target != "x86_64-unknown-linux-gnu" || profile != "release" || disabled {
        return;
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = std::path::Path::new(&manifest_dir).join("link-order.txt");
    println!(
        "cargo::rustc-link-arg-bin=meshwork=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo::rustc-link-arg-bin=meshwork=-Wl,--no-warn-symbol-ordering");
    if glibc_has_relr() {
        println!("cargo::rustc-link-arg-bin=meshwork=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn glibc_has_relr() -> bool {
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
