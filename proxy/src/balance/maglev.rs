//! `maglev`: Google's Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted
//! as in Envoy.
//!
//! A lookup table of prime size M (65537 by default, larger for clusters of more than
//! 655 endpoints so each has about 100 slots) is filled by letting every endpoint in
//! turn claim the next free slot of its own permutation of the table; an endpoint's
//! turns come in proportion to its weight. A key goes to `table[hash % M]`: one read
//! per pick. Shares are balanced to within a slot or so, and removing one of N
//! endpoints moves a little over 1/N of the keys. A key whose endpoint is unhealthy or
//! ejected walks on to the next slots (other endpoints, in the permutation's
//! pseudo-random order) and comes back when it recovers.
//!
//! Permutations come from `xxh3("host:port")` with two fixed seeds: the same config
//! builds the same table in every process.

use super::{EndpointSpec, HASH_SEED};

/// The table size for up to 655 endpoints (the paper's and Envoy's default).
pub const DEFAULT_TABLE_SIZE: u64 = 65_537;
/// Slots per endpoint aimed at for larger clusters (the paper's M >= 100 N).
const SLOTS_PER_ENDPOINT: u64 = 100;

/// The prime table size used for `n` endpoints.
pub fn table_size_for(n: usize) -> u64 {
    next_prime(DEFAULT_TABLE_SIZE.max(n as u64 * SLOTS_PER_ENDPOINT))
}

fn next_prime(mut m: u64) -> u64 {
    let is_prime = |m: u64| m >= 2 && (2..).take_while(|d| d * d <= m).all(|d| m % d != 0);
    while !is_prime(m) {
        m += 1;
    }
    m
}

#[derive(Debug)]
pub struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// Fills a table of prime size `size` (see [`table_size_for`]).
    ///
    /// # Panics
    /// When `size` is not prime (permutations would not cover the table).
    pub fn new(endpoints: &[EndpointSpec<'_>], size: u64) -> Self {
        assert_eq!(next_prime(size), size, "maglev table size must be prime");
        if endpoints.is_empty() {
            return Self { table: Vec::new() };
        }
        struct Turn {
            offset: u64,
            skip: u64,
            next: u64,
            weight: u64,
            /// Weight this endpoint has been served so far, in units of the max weight.
            target: u64,
        }
        let mut turns: Vec<Turn> = endpoints
            .iter()
            .map(|ep| {
                let key = ep.key.as_bytes();
                let h1 = xxhash_rust::xxh3::xxh3_64_with_seed(key, HASH_SEED);
                let h2 =
                    xxhash_rust::xxh3::xxh3_64_with_seed(key, HASH_SEED ^ 0x9e37_79b9_7f4a_7c15);
                Turn {
                    offset: h1 % size,
                    skip: h2 % (size - 1) + 1,
                    next: 0,
                    weight: u64::from(ep.weight),
                    target: 0,
                }
            })
            .collect();
        let max_weight = turns.iter().map(|t| t.weight).max().unwrap_or(1);
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; size as usize];
        let mut filled = 0u64;
        'fill: for round in 0u64.. {
            for (index, turn) in turns.iter_mut().enumerate() {
                // A lighter endpoint sits out rounds so its turns match its weight.
                if turn.weight * round < turn.target {
                    continue;
                }
                turn.target += max_weight;
                let mut slot = (turn.offset + turn.next * turn.skip) % size;
                while table[slot as usize] != EMPTY {
                    turn.next += 1;
                    slot = (turn.offset + turn.next * turn.skip) % size;
                }
                table[slot as usize] = index as u32;
                turn.next += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Self { table }
    }

    /// Slots in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The endpoint for `key`, and the table (slots, position) to walk on from it.
    pub fn lookup(&self, key: u64) -> (u32, (&[u32], usize)) {
        let slot = (key % self.table.len() as u64) as usize;
        (self.table[slot], (&self.table, slot))
    }

    /// How many slots each endpoint holds.
    pub fn slot_counts(&self, endpoints: usize) -> Vec<u64> {
        let mut counts = vec![0u64; endpoints];
        for &owner in &self.table {
            counts[owner as usize] += 1;
        }
        counts
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
        testing::keys(2, n)
    }

    #[test]
    fn table_sizes_are_prime_and_grow_with_the_cluster() {
        assert_eq!(table_size_for(3), 65_537);
        assert_eq!(table_size_for(655), 65_537);
        assert_eq!(table_size_for(1000), 100_003);
        assert_eq!(next_prime(65_536), 65_537);
    }

    #[test]
    fn the_table_is_balanced_within_a_few_slots() {
        let names = keys(10);
        let table = Maglev::new(&specs(&names, &[1; 10]), DEFAULT_TABLE_SIZE);
        let counts = table.slot_counts(10);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn picks_over_100_000_keys_share_evenly() {
        let names = keys(10);
        let table = Maglev::new(&specs(&names, &[1; 10]), DEFAULT_TABLE_SIZE);
        let mut rng = seeded();
        let mut counts = vec![0u64; 10];
        for _ in 0..100_000 {
            counts[table.lookup(rng.next_u64()).0 as usize] += 1;
        }
        assert_shares(&counts, &[1; 10]);
    }

    #[test]
    fn weights_set_the_shares_of_slots_and_picks() {
        let names = keys(4);
        let weights = [1, 2, 3, 10];
        let table = Maglev::new(&specs(&names, &weights), DEFAULT_TABLE_SIZE);
        let counts = table.slot_counts(4);
        for (c, w) in counts.iter().zip(weights) {
            let expected = DEFAULT_TABLE_SIZE as f64 * f64::from(w) / 16.0;
            assert!((*c as f64 - expected).abs() < 8.0, "{counts:?}");
        }
        let mut rng = seeded();
        let mut picks = vec![0u64; 4];
        for _ in 0..100_000 {
            picks[table.lookup(rng.next_u64()).0 as usize] += 1;
        }
        assert_shares(&picks, &weights);
    }

    #[test]
    fn removing_one_of_n_endpoints_moves_about_one_nth_of_the_keys() {
        let n = 20;
        let names = keys(n);
        let all = Maglev::new(&specs(&names, &[1; 20]), DEFAULT_TABLE_SIZE);
        let fewer_names: Vec<String> = names.iter().filter(|k| **k != names[7]).cloned().collect();
        let fewer = Maglev::new(&specs(&fewer_names, &[1; 19]), DEFAULT_TABLE_SIZE);
        let mut rng = seeded();
        let (mut moved, mut moved_from_others) = (0u32, 0u32);
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
            (0.9 / 20.0..1.5 / 20.0).contains(&fraction),
            "moved {fraction:.4} of keys, expected about 1/20"
        );
        // Maglev trades a little disruption for balance: a few keys of others move.
        let others = f64::from(moved_from_others) / f64::from(total);
        assert!(
            others < 0.02,
            "{others:.4} of the keys of remaining endpoints moved"
        );
    }

    #[test]
    fn the_same_key_maps_to_the_same_endpoint_in_every_process() {
        let names = keys(5);
        let table = Maglev::new(&specs(&names, &[1; 5]), DEFAULT_TABLE_SIZE);
        let picks: Vec<u32> = ["alice", "bob", "carol", "dave", "erin", "frank"]
            .iter()
            .map(|k| table.lookup(hash_key(k.as_bytes())).0)
            .collect();
        assert_eq!(picks, MAGLEV_PICKS);
    }

    /// Computed once; any change here means keys move between deployments.
    const MAGLEV_PICKS: [u32; 6] = [4, 2, 1, 3, 1, 4];

    #[test]
    fn an_unhealthy_endpoints_keys_move_to_the_next_choice_and_come_back() {
        let names = keys(10);
        let lb = Balancer::new(
            LoadBalancer::Maglev,
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
        eps.admits[5] = false; // ejected by its breaker
        let during: Vec<usize> = keys.iter().map(|&k| pick(&eps, k, &mut rng)).collect();
        let mut spread = [0u32; 10];
        for (b, d) in before.iter().zip(&during) {
            if *b == 3 || *b == 5 {
                assert!(*d != 3 && *d != 5);
                spread[*d] += 1;
            } else {
                assert_eq!(b, d, "a key of a healthy endpoint moved");
            }
        }
        assert!(spread.iter().filter(|&&c| c > 0).count() >= 6, "{spread:?}");
        eps.healthy[3] = true;
        eps.admits[5] = true;
        let after: Vec<usize> = keys.iter().map(|&k| pick(&eps, k, &mut rng)).collect();
        assert_eq!(before, after);
    }
}
