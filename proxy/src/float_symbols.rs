//! The binary's own `pow`, so that glibc's libm is not loaded at all.
//!
//! `pow` is the only libm function left in the `meshwork` binary: tokio's multi-thread
//! scheduler calls `f64::powf` for its poll-time statistics, and the compiler lowers that
//! to a call to the C symbol `pow`. The peak-EWMA's `exp` is the `libm` crate's already.
//! With `pow` defined here, the linker resolves tokio's call to it, nothing else needs
//! `libm.so.6`, and the linker (`--as-needed`) leaves the library out: at every start the
//! loader maps and relocates one library fewer, and an idle sidecar's RSS loses the
//! 0.3 MiB of libm pages it held (bench/RESULTS.md, "Idle RSS: without libm").
//!
//! The definition is the `libm` crate's `pow` (a port of musl's, under 1 ULP from the
//! exact result), which is pure Rust and calls no `pow` itself. A test checks it against
//! glibc's results.

/// `double pow(double x, double y)`, C ABI and name, for the calls the compiler emits.
///
/// Safety of the attribute: this is the only definition of `pow` in the binary (the
/// link fails with a duplicate symbol otherwise), and it has `pow`'s exact C signature.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    /// Reference values from glibc's `pow` (Python's `math.pow` on Debian 12). Not
    /// `f64::powf` here: in this binary's tests that calls the function under test.
    #[test]
    fn agrees_with_glibc_within_an_ulp() {
        let cases = [
            (0.5_f64, 1.0_f64, 0.5_f64),
            (0.9, 3.0, 0.7290000000000001),
            (0.8, 0.25, 0.9457416090031758),
            (2.0, -3.5, 0.08838834764831845),
            (10.0, 300.0, 1e300),
            (0.9, 1000.0, 1.7478712517226947e-46),
            (0.9, 17.0, 0.16677181699666577),
            (3.0, 0.5, 1.7320508075688772),
            (-2.0, 3.0, -8.0),
            (0.0, 0.0, 1.0),
        ];
        for (x, y, expected) in cases {
            let ours = super::pow(x, y);
            let ulps = (ours.to_bits() as i64 - expected.to_bits() as i64).abs();
            assert!(ulps <= 1, "pow({x}, {y}) = {ours}, glibc {expected}");
        }
        assert!(super::pow(-1.0, 0.5).is_nan());
        assert_eq!(super::pow(0.0, -1.0), f64::INFINITY);
    }
}
