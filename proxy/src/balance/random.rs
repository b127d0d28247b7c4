//! `random`: an endpoint drawn at random in proportion to its weight; also the draw
//! behind `least_request`, `peak_ewma` and hash balancers' requests without a key.

use rand::Rng;
use rand::distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

/// Draws indices in proportion to their weights: a uniform index when all weights are
/// equal, otherwise Walker's alias method (rand_distr's `WeightedAliasIndex`): two
/// random numbers and a table read per draw, whatever the number of endpoints.
#[derive(Debug)]
pub struct WeightedSampler {
    weights: Vec<u32>,
    /// `None` when all weights are equal.
    alias: Option<WeightedAliasIndex<u64>>,
}

impl WeightedSampler {
    pub fn new(weights: &[u32]) -> Self {
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        let alias = if equal {
            None
        } else {
            // Weights are at least 1 and at most u32::MAX, so every weight is below
            // u64::MAX / n and the sum is non-zero: the table always builds.
            WeightedAliasIndex::new(weights.iter().map(|&w| u64::from(w)).collect()).ok()
        };
        Self {
            weights: weights.to_vec(),
            alias,
        }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Whether every endpoint has the same weight (draws are uniform).
    pub fn is_uniform(&self) -> bool {
        self.alias.is_none()
    }

    /// The weight of endpoint `i`.
    pub fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }

    /// One index, with probability `weight / total` (`0` for an empty set).
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        match &self.alias {
            Some(alias) => alias.sample(rng),
            None => rng.random_range(0..self.weights.len().max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{assert_shares, seeded};

    #[test]
    fn equal_weights_are_drawn_uniformly() {
        let sampler = WeightedSampler::new(&[1; 10]);
        let mut rng = seeded();
        let mut counts = vec![0u64; 10];
        for _ in 0..100_000 {
            counts[sampler.sample(&mut rng)] += 1;
        }
        assert_shares(&counts, &[1; 10]);
    }

    #[test]
    fn the_largest_weights_still_build_a_table() {
        let sampler = WeightedSampler::new(&[u32::MAX, 1, u32::MAX]);
        assert!(!sampler.is_uniform());
        let mut rng = seeded();
        assert!((0..1000).all(|_| sampler.sample(&mut rng) != 1));
    }

    #[test]
    fn weights_set_the_shares() {
        let weights = [1, 2, 3, 10];
        let sampler = WeightedSampler::new(&weights);
        let mut rng = seeded();
        let mut counts = vec![0u64; 4];
        for _ in 0..100_000 {
            counts[sampler.sample(&mut rng)] += 1;
        }
        assert_shares(&counts, &weights);
    }
}
