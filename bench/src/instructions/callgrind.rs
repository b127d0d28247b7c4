//! Reading a callgrind dump (`--compress-strings=no`): the instructions it counted and
//! how often the allocator's entry points were called.

/// The allocator entry points counted, by what they do. glibc's names (`malloc` and its
/// `__libc_` aliases, whichever the symbol table gives callgrind) and jemalloc's, with
/// and without tikv-jemallocator's `_rjem_` prefix (Rust's global allocator calls
/// `mallocx`/`sdallocx`/`rallocx` for some layouts, `malloc`/`free` for others).
const ALLOCATE: &[&str] = &[
    "malloc",
    "calloc",
    "__libc_malloc",
    "__libc_calloc",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "mallocx",
    "_rjem_malloc",
    "_rjem_calloc",
    "_rjem_mallocx",
    "_rjem_posix_memalign",
    "_rjem_aligned_alloc",
];
const FREE: &[&str] = &[
    "free",
    "cfree",
    "__libc_free",
    "sdallocx",
    "dallocx",
    "_rjem_free",
    "_rjem_sdallocx",
    "_rjem_dallocx",
];
const REALLOCATE: &[&str] = &[
    "realloc",
    "__libc_realloc",
    "rallocx",
    "_rjem_realloc",
    "_rjem_rallocx",
];

/// What one dump counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Instructions executed (callgrind's `Ir`), every thread of the process.
    pub instructions: u64,
    /// Calls to an allocating entry point (`malloc`, `calloc`, `mallocx`, ...).
    pub allocations: u64,
    pub frees: u64,
    pub reallocations: u64,
}

/// What kind of allocator call a function name is (callgrind appends `'2` and so on to
/// recursive instances, and may name a versioned symbol `name@@GLIBC_2.34`: the same
/// function).
fn kind(name: &str) -> Option<Kind> {
    let name = name.split(['\'', '@']).next().unwrap_or(name);
    if ALLOCATE.contains(&name) {
        Some(Kind::Allocate)
    } else if FREE.contains(&name) {
        Some(Kind::Free)
    } else if REALLOCATE.contains(&name) {
        Some(Kind::Reallocate)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Allocate,
    Free,
    Reallocate,
}

/// Parses a dump written with `--compress-strings=no`: the `totals:` (or `summary:`)
/// line for the instructions, and each `calls=N` line under a `cfn=` naming an allocator
/// entry point. Calls between allocator functions (jemalloc's `free` into its own
/// internals) do not count twice: only calls from outside the allocator names count.
///
/// # Errors
/// When the dump has no total (not a callgrind file, or cut short).
pub fn parse(dump: &str) -> Result<Counts, String> {
    let mut counts = Counts::default();
    let mut total = None;
    let mut caller_is_allocator = false;
    let mut callee = None;
    for line in dump.lines() {
        if let Some(name) = line.strip_prefix("fn=") {
            caller_is_allocator = kind(name).is_some();
        } else if let Some(name) = line.strip_prefix("cfn=") {
            callee = kind(name);
        } else if let Some(rest) = line.strip_prefix("calls=") {
            let n: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("bad calls line `{line}`"))?;
            match callee.take() {
                _ if caller_is_allocator => {}
                Some(Kind::Allocate) => counts.allocations += n,
                Some(Kind::Free) => counts.frees += n,
                Some(Kind::Reallocate) => counts.reallocations += n,
                None => {}
            }
        } else if let Some(rest) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            let first = rest.split_whitespace().next().unwrap_or_default();
            total = total.or(first.parse::<u64>().ok());
        }
    }
    counts.instructions = total.ok_or("no `totals:` or `summary:` line")?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "version: 1
creator: callgrind-3.19.0
events: Ir
summary: 1000

ob=/usr/lib/libc.so.6
fl=???
fn=main
0 10
cfn=malloc
calls=3 0
0 30
cfn=free@@GLIBC_2.2.5
calls=2 0
0 20
cfn=_rjem_sdallocx
calls=5 0
0 5
cfn=_rjem_mallocx
calls=4 0
0 4
cfn=realloc'2
calls=1 0
0 7
cfn=memcpy
calls=9 0
0 9
fn=free
0 8
cfn=malloc
calls=7 0
0 7
totals: 1000
";

    #[test]
    fn counts_instructions_and_allocator_calls_from_outside_the_allocator() {
        let counts = parse(DUMP).unwrap();
        assert_eq!(
            counts,
            Counts {
                instructions: 1000,
                allocations: 3 + 4,
                frees: 2 + 5,
                reallocations: 1,
            }
        );
    }

    #[test]
    fn a_file_without_totals_is_refused() {
        assert!(parse("events: Ir\nfn=main\n0 1\n").is_err());
    }

    #[test]
    fn a_garbled_calls_line_is_refused() {
        assert!(parse("fn=main\ncfn=malloc\ncalls=x 0\ntotals: 1\n").is_err());
    }
}
