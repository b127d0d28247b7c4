//! `least_request`: the power of two random choices over requests in flight.
//!
//! Two endpoints are drawn at random (in proportion to their weights) and the one with
//! the lower load per unit of weight wins. Comparing two instead of scanning all keeps a
//! pick O(1) and avoids every proxy herding onto the one least-loaded endpoint
//! (Mitzenmacher; the choice of Envoy, Finagle and linkerd2-proxy). `peak_ewma` is the
//! same draw with a latency-aware cost ([`super::peak_ewma::cost`]).

use rand::Rng;

use super::random::WeightedSampler;

/// Load per unit of weight: `in_flight / weight`. Idle endpoints tie, and a tie goes to
/// the first drawn, so idle endpoints are picked in proportion to their weights; under
/// load an endpoint of weight 4 takes four times the requests in flight of one of
/// weight 1 before it loses comparisons.
pub fn cost(in_flight: usize, weight: u32) -> f64 {
    in_flight as f64 / f64::from(weight.max(1))
}

/// Draws two distinct endpoints (by weight) and returns `(chosen, other)`: the usable
/// one that is cheaper (`cheaper(b, a)`: b costs less than a; ties go to the first
/// drawn), and the one it beat. When neither is usable the first drawn is returned and
/// the caller's walk moves on from the other, itself a random start.
pub fn pick(
    sampler: &WeightedSampler,
    rng: &mut impl Rng,
    usable: &impl Fn(usize) -> bool,
    cheaper: impl Fn(usize, usize) -> bool,
) -> (usize, usize) {
    let n = sampler.len();
    let a = sampler.sample(rng);
    if n < 2 {
        return (a, a);
    }
    let b = second_draw(sampler, rng, a, n);
    match (usable(a), usable(b)) {
        (true, true) if cheaper(b, a) => (b, a),
        (true, _) => (a, b),
        (false, true) => (b, a),
        (false, false) => (a, b),
    }
}

/// Another endpoint than `a`, drawn by weight (a few redraws), or uniformly among the
/// others when `a` holds nearly all the weight.
fn second_draw(sampler: &WeightedSampler, rng: &mut impl Rng, a: usize, n: usize) -> usize {
    if sampler.is_uniform() {
        let b = rng.random_range(0..n - 1);
        return if b >= a { b + 1 } else { b };
    }
    for _ in 0..4 {
        let b = sampler.sample(rng);
        if b != a {
            return b;
        }
    }
    (a + 1 + rng.random_range(0..n - 1)) % n
}

#[cfg(test)]
mod tests {
    use meshwork_config::model::LoadBalancer;

    use crate::balance::Balancer;
    use crate::balance::testing::{self, FakeEndpoints, assert_shares, seeded, specs};

    fn balancer(weights: &[u32]) -> Balancer {
        let keys = testing::keys(0, weights.len());
        Balancer::new(
            LoadBalancer::LeastRequest,
            &specs(&keys, weights),
            &mut seeded(),
        )
    }

    #[test]
    fn idle_endpoints_share_evenly() {
        let lb = balancer(&[1; 8]);
        let eps = FakeEndpoints::new(8);
        let mut rng = seeded();
        let mut counts = vec![0u64; 8];
        for _ in 0..100_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        assert_shares(&counts, &[1; 8]);
    }

    #[test]
    fn weights_set_the_shares_of_idle_endpoints() {
        let weights = [1, 2, 4];
        let lb = balancer(&weights);
        let eps = FakeEndpoints::new(3);
        let mut rng = seeded();
        let mut counts = [0u64; 3];
        for _ in 0..100_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        // Idle endpoints tie and ties go to the first drawn, itself drawn by weight.
        assert_shares(&counts, &weights);
    }

    #[test]
    fn the_busiest_endpoint_is_never_picked_while_others_are_idle() {
        let lb = balancer(&[1; 3]);
        let mut eps = FakeEndpoints::new(3);
        eps.in_flight = vec![0, 50, 0];
        let mut rng = seeded();
        let mut counts = [0u64; 3];
        for _ in 0..100_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        // It is always compared with another, idle, endpoint.
        assert_eq!(counts[1], 0);
        assert_shares(&[counts[0], counts[2]], &[1, 1]);
    }

    #[test]
    fn load_is_compared_per_unit_of_weight() {
        // Endpoint 1 has 4x the weight and 2x the load: it is the less loaded.
        let lb = balancer(&[1, 4]);
        let mut eps = FakeEndpoints::new(2);
        eps.in_flight = vec![4, 9];
        let mut rng = seeded();
        let mut counts = [0u64; 2];
        for _ in 0..10_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        assert!(counts[1] > counts[0] * 10, "{counts:?}");
    }
}
