//! Test helpers for the balancers: a seeded RNG, endpoints without sockets, and a
//! chi-square test of observed shares against the expected ones.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Candidates, EndpointSpec};

/// `n` distinct endpoint keys (`host:port`) in the `10.<net>.x.y` range.
pub fn keys(net: u8, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{net}.{}.{}:8080", i / 250, i % 250))
        .collect()
}

/// Endpoint specs pairing `keys` with `weights`.
pub fn specs<'a>(keys: &'a [String], weights: &[u32]) -> Vec<EndpointSpec<'a>> {
    keys.iter()
        .zip(weights)
        .map(|(key, &weight)| EndpointSpec { key, weight })
        .collect()
}

/// The same random sequence on every run.
pub fn seeded() -> StdRng {
    StdRng::seed_from_u64(0x5eed)
}

/// Endpoints as plain data: all healthy, admitted, idle, with no latency by default
/// (latencies all observed at the same instant).
#[derive(Debug, Clone)]
pub struct FakeEndpoints {
    pub healthy: Vec<bool>,
    pub admits: Vec<bool>,
    pub in_flight: Vec<usize>,
    pub latency_ns: Vec<f64>,
    /// Slow-start shares (1 = not ramping).
    pub shares: Vec<f64>,
}

impl FakeEndpoints {
    pub fn new(n: usize) -> Self {
        Self {
            healthy: vec![true; n],
            admits: vec![true; n],
            in_flight: vec![0; n],
            latency_ns: vec![0.0; n],
            shares: vec![1.0; n],
        }
    }
}

impl Candidates for FakeEndpoints {
    fn len(&self) -> usize {
        self.healthy.len()
    }
    fn is_healthy(&self, i: usize) -> bool {
        self.healthy[i]
    }
    fn admit(&self, i: usize) -> bool {
        self.admits[i]
    }
    fn is_refusing(&self, i: usize) -> bool {
        !self.admits[i]
    }
    fn in_flight(&self, i: usize) -> usize {
        self.in_flight[i]
    }
    fn share(&self, i: usize) -> f64 {
        self.shares[i]
    }
    fn latency(&self, i: usize) -> super::peak_ewma::Estimate {
        super::peak_ewma::Estimate {
            stored_ns: self.latency_ns[i],
            stamp_ns: 0,
        }
    }
}

/// Pearson's chi-square statistic of `counts` against shares proportional to `weights`.
pub fn chi_square(counts: &[u64], weights: &[f64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    counts
        .iter()
        .zip(weights)
        .map(|(&observed, &w)| {
            let expected = total as f64 * w / weight_sum;
            (observed as f64 - expected).powi(2) / expected
        })
        .sum()
}

/// The chi-square value a fair sampler exceeds with probability 0.001, for `df`
/// degrees of freedom (Wilson–Hilferty approximation, good to a few percent).
pub fn chi_square_critical(df: usize) -> f64 {
    const Z_0_999: f64 = 3.090;
    let k = df as f64;
    let t = 2.0 / (9.0 * k);
    k * (1.0 - t + Z_0_999 * t.sqrt()).powi(3)
}

/// Asserts `counts` match shares proportional to `weights` (chi-square, p = 0.001).
#[track_caller]
pub fn assert_shares<W: Copy + Into<f64>>(counts: &[u64], weights: &[W]) {
    let weights: Vec<f64> = weights.iter().map(|&w| w.into()).collect();
    let stat = chi_square(counts, &weights);
    let critical = chi_square_critical(counts.len() - 1);
    assert!(
        stat < critical,
        "shares {counts:?} do not follow weights {weights:?}: chi-square {stat:.1} >= {critical:.1}"
    );
}

#[test]
fn the_chi_square_test_rejects_a_skewed_sampler() {
    // 52/48 over 100,000 picks is far outside chance for a fair coin.
    let stat = chi_square(&[52_000, 48_000], &[1.0, 1.0]);
    assert!(stat > chi_square_critical(1));
    assert!(chi_square(&[50_100, 49_900], &[1.0, 1.0]) < chi_square_critical(1));
    // Wilson-Hilferty against the table: df=1 10.83, df=9 27.88, df=99 148.2.
    assert!((chi_square_critical(1) - 10.83).abs() < 0.5);
    assert!((chi_square_critical(9) - 27.88).abs() < 0.3);
    assert!((chi_square_critical(99) - 148.2).abs() < 0.5);
}
