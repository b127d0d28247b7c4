//! `ring_hash`: consistent hashing on a ring (Karger et al.; ketama; Envoy's ring_hash).
//!
//! Each endpoint is hashed onto the ring at many points (in proportion to its weight);
//! a request's key hash goes to the first point at or after it. Adding or removing one
//! of N endpoints moves only about 1/N of the keys. When the owner of a key's point is
//! unhealthy or ejected, the walk continues along the ring to the next points, so its
//! keys spread over the others and return when it recovers.
//!
//! Points are `xxh3("{host:port}#{i}")` with [`super::HASH_SEED`]: the same config
//! builds the same ring in every process.

use super::EndpointSpec;

/// Points per unit of weight (ketama's 160 per server): each endpoint's share of the
/// key space is then within about 8% of its weight's share.
pub const POINTS_PER_WEIGHT: u64 = 160;
/// The largest ring built (Envoy's default `maximum_ring_size`); heavier weights are
/// scaled down in proportion to fit.
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct RingHash {
    /// Point hashes, ascending.
    hashes: Vec<u64>,
    /// `owners[i]` is the endpoint at `hashes[i]`.
    owners: Vec<u32>,
    /// `index[b]` is the first point whose hash has `b` as its top bits: a lookup
    /// searches one bucket (about one point) instead of the whole ring.
    index: Vec<u32>,
    shift: u32,
}

impl RingHash {
    /// A ring of `points_per_weight` points per unit of weight for each endpoint (at
    /// least one each; scaled down to fit [`MAX_RING_SIZE`]). An endpoint's points do not
    /// depend on the others, so removing one endpoint moves only its own keys.
    pub fn new(endpoints: &[EndpointSpec<'_>], points_per_weight: u64) -> Self {
        let total: u64 = endpoints.iter().map(|e| u64::from(e.weight)).sum();
        let scale = (points_per_weight as f64).min(MAX_RING_SIZE as f64 / total.max(1) as f64);
        let mut points: Vec<(u64, u32)> = Vec::new();
        let mut name = String::new();
        for (index, ep) in endpoints.iter().enumerate() {
            let count = ((f64::from(ep.weight) * scale).round() as u64).max(1);
            for i in 0..count {
                name.clear();
                name.push_str(ep.key);
                name.push('#');
                name.push_str(&i.to_string());
                points.push((super::hash_key(name.as_bytes()), index as u32));
            }
        }
        points.sort_unstable();
        let (hashes, owners): (Vec<u64>, Vec<u32>) = points.into_iter().unzip();
        // About one point per bucket; one bucket (shift 64) for a one-point ring.
        let buckets = hashes.len().next_power_of_two().max(1);
        let shift = 64 - buckets.trailing_zeros();
        let mut index = Vec::with_capacity(buckets + 1);
        let mut p = 0;
        for b in 0..buckets as u64 {
            let start = b.checked_shl(shift).unwrap_or(0);
            while p < hashes.len() && hashes[p] < start {
                p += 1;
            }
            index.push(p as u32);
        }
        index.push(hashes.len() as u32);
        Self {
            hashes,
            owners,
            index,
            shift,
        }
    }

    /// Points on the ring.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The endpoint owning `key` (the first point at or after it, wrapping), and the
    /// ring (owners, position) to walk on from it.
    ///
    /// # Panics
    /// On an empty ring (a cluster without endpoints never looks up).
    pub fn lookup(&self, key: u64) -> (u32, (&[u32], usize)) {
        let bucket = key.checked_shr(self.shift).unwrap_or(0) as usize;
        let lo = self.index[bucket] as usize;
        let hi = self.index[bucket + 1] as usize;
        let mut pos = lo + self.hashes[lo..hi].partition_point(|&h| h < key);
        if pos == self.hashes.len() {
            pos = 0;
        }
        (self.owners[pos], (&self.owners, pos))
    }

    /// Each endpoint's share of the key space (the arcs ending at its points), for tests
    /// and for operators wondering why a ring is uneven.
    pub fn arc_shares(&self, endpoints: usize) -> Vec<f64> {
        let mut shares = vec![0f64; endpoints];
        let Some(&last) = self.hashes.last() else {
            return shares;
        };
        let mut prev = last;
        for (&h, &owner) in self.hashes.iter().zip(&self.owners) {
            let arc = h.wrapping_sub(prev);
            shares[owner as usize] += arc as f64 / 2f64.powi(64);
            prev = h;
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use meshwork_config::model::LoadBalancer;
    use rand::{Rng, RngCore};

    use super::*;
    use crate::balance::testing::{self, FakeEndpoints, assert_shares, seeded, specs};
    use crate::balance::{Balancer, hash_key};

    fn keys(n: usize) -> Vec<String> {
        testing::keys(1, n)
    }

    #[test]
    fn picks_follow_the_arcs_of_the_ring() {
        let names = keys(10);
        let ring = RingHash::new(&specs(&names, &[1; 10]), POINTS_PER_WEIGHT);
        let mut rng = seeded();
        let mut counts = vec![0u64; 10];
        for _ in 0..100_000 {
            counts[ring.lookup(rng.next_u64()).0 as usize] += 1;
        }
        assert_shares(&counts, &ring.arc_shares(10));
        // And the arcs themselves are fair to within 20% with 160 points each.
        for share in ring.arc_shares(10) {
            assert!((share - 0.1).abs() < 0.02, "arc share {share}");
        }
    }

    #[test]
    fn weights_scale_the_arcs() {
        let names = keys(3);
        let ring = RingHash::new(&specs(&names, &[1, 2, 5]), 2000);
        let shares = ring.arc_shares(3);
        for (share, expected) in shares.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            assert!((share - expected).abs() < 0.03, "{shares:?}");
        }
    }

    #[test]
    fn removing_one_of_n_endpoints_moves_about_one_nth_of_the_keys() {
        let n = 20;
        let names = keys(n);
        let all = RingHash::new(&specs(&names, &[1; 20]), POINTS_PER_WEIGHT);
        // The same endpoints but the 8th, keeping indices stable by name.
        let fewer_names: Vec<String> = names.iter().filter(|k| **k != names[7]).cloned().collect();
        let fewer = RingHash::new(&specs(&fewer_names, &[1; 19]), POINTS_PER_WEIGHT);
        let mut rng = seeded();
        let mut moved = 0;
        let mut moved_from_others = 0;
        let total = 100_000;
        for _ in 0..total {
            let key = rng.next_u64();
            let before = &names[all.lookup(key).0 as usize];
            let after = &fewer_names[fewer.lookup(key).0 as usize];
            if before != after {
                moved += 1;
                if *before != names[7] {
                    moved_from_others += 1;
                }
            }
        }
        let fraction = f64::from(moved) / f64::from(total);
        assert!(
            (0.6 / 20.0..1.4 / 20.0).contains(&fraction),
            "moved {fraction:.4} of keys, expected about 1/20"
        );
        // Keys move only off the removed endpoint: the others keep their points.
        assert_eq!(moved_from_others, 0);
    }

    #[test]
    fn the_same_key_maps_to_the_same_endpoint_in_every_process() {
        // Fixed expectations: a ring built anywhere from these endpoints agrees.
        let names = keys(5);
        let ring = RingHash::new(&specs(&names, &[1; 5]), POINTS_PER_WEIGHT);
        let picks: Vec<u32> = ["alice", "bob", "carol", "dave", "erin", "frank"]
            .iter()
            .map(|k| ring.lookup(hash_key(k.as_bytes())).0)
            .collect();
        assert_eq!(picks, RING_PICKS);
        assert_eq!(hash_key(b"alice"), ALICE_HASH);
    }

    /// Computed once; any change here means keys move between deployments.
    const RING_PICKS: [u32; 6] = [1, 2, 4, 3, 1, 2];
    /// xxh3-64 of "alice" with `HASH_SEED`, as the reference C implementation
    /// (python-xxhash) computes it: the key hash is plain xxh3, reproducible anywhere.
    const ALICE_HASH: u64 = 18_169_624_820_085_743_420;

    #[test]
    fn an_unhealthy_endpoints_keys_move_to_the_next_choice_and_come_back() {
        let names = keys(10);
        let lb = Balancer::new(
            LoadBalancer::RingHash,
            &specs(&names, &[1; 10]),
            &mut seeded(),
        );
        let mut eps = FakeEndpoints::new(10);
        let mut rng = seeded();
        let keys: Vec<u64> = (0..10_000).map(|_| rng.random()).collect();
        let pick = |eps: &FakeEndpoints, key: u64, rng: &mut _| {
            lb.pick(eps, None, Some(key), rng).unwrap()
        };
        let before: Vec<usize> = keys.iter().map(|&k| pick(&eps, k, &mut rng)).collect();
        eps.healthy[3] = false;
        let during: Vec<usize> = keys.iter().map(|&k| pick(&eps, k, &mut rng)).collect();
        let mut spread = [0u32; 10];
        for (b, d) in before.iter().zip(&during) {
            if *b == 3 {
                assert_ne!(*d, 3);
                spread[*d] += 1;
            } else {
                assert_eq!(b, d, "a key of a healthy endpoint moved");
            }
        }
        // The ejected endpoint's keys spread over several others, not one neighbour.
        assert!(spread.iter().filter(|&&c| c > 0).count() >= 5, "{spread:?}");
        eps.healthy[3] = true;
        let after: Vec<usize> = keys.iter().map(|&k| pick(&eps, k, &mut rng)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn requests_without_a_key_go_to_random_endpoints() {
        let names = keys(4);
        let lb = Balancer::new(
            LoadBalancer::RingHash,
            &specs(&names, &[1; 4]),
            &mut seeded(),
        );
        let eps = FakeEndpoints::new(4);
        let mut rng = seeded();
        let mut counts = vec![0u64; 4];
        for _ in 0..100_000 {
            counts[lb.pick(&eps, None, None, &mut rng).unwrap()] += 1;
        }
        assert_shares(&counts, &[1; 4]);
    }
}
