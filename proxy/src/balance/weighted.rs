//! `weighted_round_robin`: nginx's smooth weighted round robin, precomputed.
//!
//! The smooth algorithm spreads each endpoint's turns evenly over a cycle (weights 5, 1,
//! 1 give `a a b a c a a`, never `a a a a a b c`) and gives every endpoint exactly its
//! weight's share of each cycle. Run live it costs O(n) under a lock per pick; here the
//! cycle is computed once, when the cluster is built, and a pick is one atomic add and
//! one table read.
//!
//! Weights are first divided by their greatest common divisor. A cycle longer than
//! [`MAX_CYCLE`] picks (or costing more than [`MAX_BUILD_STEPS`] to compute) is not kept
//! whole: the weights are scaled down in proportion (each at least 1) until it fits, so
//! shares are then exact to within that rounding.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Most picks in one precomputed cycle (a table of `u32`, 256 KiB at most).
pub const MAX_CYCLE: u64 = 1 << 16;
/// Most work (cycle length x endpoints) spent computing the cycle at build time.
pub const MAX_BUILD_STEPS: u64 = 1 << 24;

#[derive(Debug)]
pub struct SmoothWeighted {
    cycle: Vec<u32>,
    next: AtomicUsize,
}

impl SmoothWeighted {
    pub fn new(weights: &[u32]) -> Self {
        let weights = fit(weights);
        Self {
            cycle: smooth_cycle(&weights),
            next: AtomicUsize::new(0),
        }
    }

    /// The same cycle, entered at `start`.
    pub fn starting_at(self, start: usize) -> Self {
        self.next.store(start, Ordering::Relaxed);
        self
    }

    /// Picks in one cycle.
    pub fn len(&self) -> usize {
        self.cycle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cycle.is_empty()
    }

    /// The next endpoint of the cycle (`0` for an empty cluster).
    pub fn next(&self) -> usize {
        if self.cycle.is_empty() {
            return 0;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.cycle.len();
        self.cycle[i] as usize
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The weights reduced by their gcd, then scaled down until the cycle fits the limits.
fn fit(weights: &[u32]) -> Vec<u64> {
    let n = weights.len() as u64;
    let divisor = weights
        .iter()
        .fold(0u64, |g, &w| gcd(g, u64::from(w)))
        .max(1);
    let mut reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / divisor).collect();
    let limit = MAX_CYCLE.min(MAX_BUILD_STEPS / n.max(1)).max(n);
    let total: u64 = reduced.iter().sum();
    if total > limit {
        // Each endpoint keeps at least one turn; the rest is shared in proportion.
        let room = (limit - n) as f64;
        for w in &mut reduced {
            *w = 1 + (room * (*w as f64 - 1.0) / (total - n) as f64).floor() as u64;
        }
    }
    reduced
}

/// One cycle of nginx's smooth weighted round robin: each step every endpoint's current
/// weight grows by its weight, the largest (lowest index on ties) is picked and pays
/// back the total.
fn smooth_cycle(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        cycle.push(best as u32);
    }
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::assert_shares;

    fn picks(weights: &[u32], count: usize) -> Vec<usize> {
        let wrr = SmoothWeighted::new(weights);
        (0..count).map(|_| wrr.next()).collect()
    }

    #[test]
    fn the_cycle_is_the_nginx_smooth_sequence() {
        assert_eq!(picks(&[5, 1, 1], 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn every_cycle_gives_exact_shares() {
        let weights = [1, 2, 3, 4, 7];
        let cycle: u32 = weights.iter().sum();
        let all = picks(&weights, cycle as usize * 3);
        for chunk in all.chunks(cycle as usize) {
            let mut counts = [0u32; 5];
            for &i in chunk {
                counts[i] += 1;
            }
            assert_eq!(counts, weights);
        }
    }

    #[test]
    fn shares_over_100_000_picks_follow_the_weights() {
        let weights = [1, 3, 5, 10, 20, 1, 1, 9];
        let mut counts = vec![0u64; weights.len()];
        for i in picks(&weights, 100_000) {
            counts[i] += 1;
        }
        assert_shares(&counts, &weights);
    }

    #[test]
    fn turns_are_spread_over_the_cycle() {
        // At every point of the cycle each endpoint is within one pick of its exact
        // share so far: no endpoint gets its turns in a burst.
        let weights = [10u32, 3, 3, 1, 1, 7];
        let total: u32 = weights.iter().sum();
        let mut counts = [0f64; 6];
        for (t, i) in picks(&weights, total as usize).into_iter().enumerate() {
            counts[i] += 1.0;
            for (j, &w) in weights.iter().enumerate() {
                let exact = (t + 1) as f64 * f64::from(w) / f64::from(total);
                assert!(
                    (counts[j] - exact).abs() < 1.0 + 1e-9,
                    "after {} picks endpoint {j} has {} turns, exact share {exact:.2}",
                    t + 1,
                    counts[j]
                );
            }
        }
        // And the heaviest endpoint never runs more than twice in a row here.
        let seq = picks(&weights, total as usize * 2);
        let longest = seq
            .chunk_by(|a, b| a == b)
            .map(<[usize]>::len)
            .max()
            .unwrap();
        assert!(longest <= 2, "a burst of {longest} picks to one endpoint");
    }

    #[test]
    fn weights_are_reduced_by_their_gcd() {
        assert_eq!(SmoothWeighted::new(&[300, 100, 200]).len(), 6);
    }

    #[test]
    fn huge_weights_are_scaled_to_a_bounded_cycle_keeping_proportions() {
        let wrr = SmoothWeighted::new(&[u32::MAX, u32::MAX / 3, 1]);
        assert!(wrr.len() as u64 <= MAX_CYCLE);
        let mut counts = [0u64; 3];
        for _ in 0..wrr.len() {
            counts[wrr.next()] += 1;
        }
        assert!(counts[2] >= 1, "every endpoint keeps a turn");
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!((ratio - 3.0).abs() < 0.01, "ratio {ratio}");
    }
}
