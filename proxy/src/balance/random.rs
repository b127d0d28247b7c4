//! `random`: an endpoint drawn at random in proportion to its weight; also the draw
//! behind `least_request`, `peak_ewma` and hash balancers' requests without a key.

use rand::Rng;

/// Draws indices in proportion to their weights: a uniform index when all weights are
/// equal, otherwise a binary search in the cumulative weights (O(log n)).
#[derive(Debug)]
pub struct WeightedSampler {
    weights: Vec<u32>,
    /// `cumulative[i]` = sum of weights `0..=i`; empty when all weights are equal.
    cumulative: Vec<u64>,
}

impl WeightedSampler {
    pub fn new(weights: &[u32]) -> Self {
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        let cumulative = if equal {
            Vec::new()
        } else {
            weights
                .iter()
                .scan(0u64, |sum, w| {
                    *sum += u64::from(*w);
                    Some(*sum)
                })
                .collect()
        };
        Self {
            weights: weights.to_vec(),
            cumulative,
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
        self.cumulative.is_empty()
    }

    /// The weight of endpoint `i`.
    pub fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }

    /// One index, with probability `weight / total` (`0` for an empty set).
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        match self.cumulative.last() {
            Some(&total) => {
                let point = rng.random_range(0..total);
                self.cumulative.partition_point(|&c| c <= point)
            }
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
