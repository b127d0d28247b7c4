//! Load balancing: which endpoint of a cluster gets the next request.
//!
//! Every algorithm of the config's `load_balancer` lives in its own module and is pure:
//! it sees the endpoints through [`Candidates`] (health, load, latency, breaker) and
//! draws randomness from the `Rng` it is given, so tests run it with a fixed seed and
//! without sockets. A [`Balancer`] is built once per cluster config (schedules, hash
//! rings and Maglev tables included) and never rebuilt on the request path.
//!
//! An algorithm names a first choice and, behind it, the order of the next choices
//! ([`Choices`]); [`select`] walks them, skipping endpoints failing their health check
//! and the one a retry wants to avoid, and stops at the first whose breaker admits the
//! request. So an unhealthy or ejected endpoint's share (or its hash keys) goes to the
//! next choice and comes back as soon as the endpoint recovers.

pub mod least_request;
pub mod maglev;
pub mod peak_ewma;
pub mod random;
pub mod ring_hash;
pub mod round_robin;
pub mod weighted;

use meshwork_config::model::{BalancerTuning, LoadBalancer};
use rand::Rng;

use self::maglev::Maglev;
use self::random::WeightedSampler;
use self::ring_hash::RingHash;
use self::round_robin::RoundRobin;
use self::weighted::SmoothWeighted;

/// Seed of every hash the balancers compute (request keys, ring points, Maglev
/// permutations): fixed, so a key maps to the same endpoint in every process.
pub const HASH_SEED: u64 = 0x6d65_7368_776f_726b; // "meshwork"

/// How many successive points of a hash ring or Maglev table are tried before the walk
/// falls back to the endpoints in order (only reached when most endpoints are down).
const PROBE_LIMIT: usize = 64;

/// The stable 64-bit hash of a request's key (header value, cookie value, client IP).
pub fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, HASH_SEED)
}

/// The hash key of a client address: its IP (IPv4-mapped IPv6 as IPv4), not its port,
/// so every connection of one client goes to the same endpoint.
pub fn hash_source_ip(ip: std::net::IpAddr) -> u64 {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => hash_key(&v4.octets()),
        std::net::IpAddr::V6(v6) => hash_key(&v6.octets()),
    }
}

/// The endpoints of one cluster as a balancer sees them, by index.
pub trait Candidates {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// In rotation (passing its active health check). No side effects.
    fn is_healthy(&self, i: usize) -> bool;
    /// Whether its circuit breaker lets one request through now. May spend a
    /// half-open trial, so it is asked only of the endpoint about to be returned.
    fn admit(&self, i: usize) -> bool;
    /// Its breaker is open and would refuse now. No side effects: a breaker whose open
    /// time is up is not refusing (its trial is for `admit` to spend). Rotations skip
    /// a refusing endpoint's turn, so its share goes to all the others rather than all
    /// to the next one in order.
    fn is_refusing(&self, _i: usize) -> bool {
        false
    }
    /// Requests sent and not answered yet.
    fn in_flight(&self, i: usize) -> usize;
    /// The share of the picks it would get that it takes now, from 0 to 1: below 1
    /// while it ramps up after a return from ejection (slow start). No side effects.
    fn share(&self, _i: usize) -> f64 {
        1.0
    }
    /// Its peak-EWMA latency estimate as stored (asked by `peak_ewma` only).
    fn latency(&self, i: usize) -> peak_ewma::Estimate;
}

/// Why no endpoint was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickError {
    /// No endpoint passes its health check (or the cluster has none).
    NoHealthyEndpoint,
    /// Healthy endpoints exist, but every one's breaker refuses.
    AllRefused,
}

/// One cluster's balancer, built from its config; state that must follow requests
/// (round-robin position) is atomic, so picks never lock.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    /// Endpoint weights, for the random draws of `random`, `least_request`, `peak_ewma`
    /// and for requests without a hash key.
    sampler: WeightedSampler,
}

#[derive(Debug)]
enum Algorithm {
    RoundRobin(RoundRobin),
    WeightedRoundRobin(SmoothWeighted),
    Random,
    LeastRequest,
    /// The decay time of the endpoints' estimates, in nanoseconds.
    PeakEwma {
        decay_ns: f64,
    },
    RingHash(RingHash),
    Maglev(Maglev),
}

/// An endpoint as a balancer is built from: its stable identity (`host:port`, hashed
/// onto rings and tables) and its weight.
#[derive(Clone, Copy, Debug)]
pub struct EndpointSpec<'a> {
    pub key: &'a str,
    pub weight: u32,
}

impl Balancer {
    /// Builds the balancer (and any schedule, ring or table) for these endpoints.
    /// `rng` only sets where the rotations start, so proxies started together do not
    /// all send their first requests to the same endpoint.
    pub fn new(
        algorithm: LoadBalancer,
        endpoints: &[EndpointSpec<'_>],
        rng: &mut impl Rng,
    ) -> Self {
        Self::with_tuning(algorithm, &BalancerTuning::default(), endpoints, rng)
    }

    /// [`Balancer::new`] with the cluster's ring size, Maglev table size and EWMA decay.
    pub fn with_tuning(
        algorithm: LoadBalancer,
        tuning: &BalancerTuning,
        endpoints: &[EndpointSpec<'_>],
        rng: &mut impl Rng,
    ) -> Self {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
        let algorithm = match algorithm {
            LoadBalancer::RoundRobin => {
                Algorithm::RoundRobin(RoundRobin::new(rng.random_range(0..endpoints.len().max(1))))
            }
            LoadBalancer::WeightedRoundRobin => {
                let schedule = SmoothWeighted::new(&weights);
                let start = rng.random_range(0..schedule.len().max(1));
                Algorithm::WeightedRoundRobin(schedule.starting_at(start))
            }
            LoadBalancer::Random => Algorithm::Random,
            LoadBalancer::LeastRequest => Algorithm::LeastRequest,
            LoadBalancer::PeakEwma => Algorithm::PeakEwma {
                decay_ns: tuning.ewma_decay.as_nanos().max(1) as f64,
            },
            LoadBalancer::RingHash => {
                let points_per_weight = match tuning.ring_size {
                    Some(size) => {
                        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
                        (u64::from(size) / total.max(1)).max(1)
                    }
                    None => ring_hash::POINTS_PER_WEIGHT,
                };
                Algorithm::RingHash(RingHash::new(endpoints, points_per_weight))
            }
            LoadBalancer::Maglev => Algorithm::Maglev(Maglev::new(
                endpoints,
                tuning
                    .maglev_table_size
                    .map_or_else(|| maglev::table_size_for(endpoints.len()), u64::from),
            )),
        };
        Self {
            algorithm,
            sampler: WeightedSampler::new(&weights),
        }
    }

    /// The endpoint for the next request: `key` is the request's hash key (ignored by
    /// balancers that do not hash), `avoid` the endpoint a retry follows.
    ///
    /// # Errors
    /// See [`PickError`].
    pub fn pick(
        &self,
        candidates: &impl Candidates,
        avoid: Option<usize>,
        key: Option<u64>,
        rng: &mut impl Rng,
    ) -> Result<usize, PickError> {
        let n = candidates.len();
        if n == 0 {
            return Err(PickError::NoHealthyEndpoint);
        }
        let usable = |i: usize| {
            candidates.is_healthy(i) && (n == 1 || avoid != Some(i)) && !candidates.is_refusing(i)
        };
        let choices = match &self.algorithm {
            Algorithm::RoundRobin(rr) => Choices::linear(rotate(|| rr.next(n), n, &usable), n),
            Algorithm::WeightedRoundRobin(wrr) => {
                let tries = wrr.len().min(PROBE_LIMIT);
                Choices::linear(rotate(|| wrr.next(), tries, &usable), n)
            }
            Algorithm::Random => self.random_choices(rng, n),
            Algorithm::LeastRequest => {
                let (first, other) = least_request::pick(&self.sampler, rng, &usable, |b, a| {
                    let cost =
                        |i| least_request::cost(candidates.in_flight(i), self.sampler.weight(i));
                    cost(b) < cost(a)
                });
                Choices::linear(first, n).falling_back_at(other)
            }
            Algorithm::PeakEwma { decay_ns } => {
                let (first, other) = least_request::pick(&self.sampler, rng, &usable, |b, a| {
                    let load = |i| (candidates.latency(i), candidates.in_flight(i));
                    peak_ewma::cheaper(load(b), load(a), *decay_ns)
                });
                Choices::linear(first, n).falling_back_at(other)
            }
            Algorithm::RingHash(ring) => match key {
                Some(key) => {
                    let (first, probe) = ring.lookup(key);
                    Choices::linear(first as usize, n).probing(probe)
                }
                None => self.random_choices(rng, n),
            },
            Algorithm::Maglev(table) => match key {
                Some(key) => {
                    let (first, probe) = table.lookup(key);
                    Choices::linear(first as usize, n).probing(probe)
                }
                None => self.random_choices(rng, n),
            },
        };
        select(choices, candidates, avoid, rng)
    }

    fn random_choices(&self, rng: &mut impl Rng, n: usize) -> Choices<'static> {
        Choices::linear(self.sampler.sample(rng), n).falling_back_at(rng.random_range(0..n))
    }
}

/// The first usable endpoint of the next `tries` turns of a rotation (or the last one
/// seen). Skipped turns are spent, so a down endpoint's turns are shared by all others
/// rather than doubling the next one's.
fn rotate(mut next: impl FnMut() -> usize, tries: usize, usable: &impl Fn(usize) -> bool) -> usize {
    let mut i = next();
    for _ in 1..tries {
        if usable(i) {
            break;
        }
        i = next();
    }
    i
}

/// The order in which endpoints are tried: the algorithm's first choice, then (for hash
/// balancers) the next points of the ring or table, then every endpoint in index order
/// from `fallback`, so the walk always ends having seen each endpoint.
#[derive(Debug)]
pub struct Choices<'a> {
    first: Option<usize>,
    /// Successive ring points / table slots after the key's own, cyclically.
    probe: &'a [u32],
    probe_pos: usize,
    probe_left: usize,
    fallback: usize,
    linear_left: usize,
    n: usize,
}

impl<'a> Choices<'a> {
    pub fn linear(first: usize, n: usize) -> Self {
        Self {
            first: Some(first),
            probe: &[],
            probe_pos: 0,
            probe_left: 0,
            fallback: (first + 1) % n.max(1),
            linear_left: n,
            n,
        }
    }

    /// Starts the in-order walk elsewhere than right after the first choice (random
    /// balancers: a down endpoint's share spreads instead of doubling its neighbour's).
    pub fn falling_back_at(mut self, start: usize) -> Self {
        self.fallback = start;
        self
    }

    /// `(slots, pos)`: walk `slots` cyclically from `pos` before the in-order walk.
    pub fn probing(mut self, (slots, pos): (&'a [u32], usize)) -> Self {
        self.probe = slots;
        self.probe_pos = pos;
        self.probe_left = slots.len().min(PROBE_LIMIT);
        self
    }
}

impl Iterator for Choices<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.probe_left > 0 {
            self.probe_left -= 1;
            self.probe_pos = (self.probe_pos + 1) % self.probe.len();
            return Some(self.probe[self.probe_pos] as usize);
        }
        if self.linear_left > 0 {
            self.linear_left -= 1;
            let i = self.fallback;
            self.fallback = (self.fallback + 1) % self.n;
            return Some(i);
        }
        None
    }
}

/// Walks `choices` to the first healthy endpoint other than `avoid` whose breaker
/// admits the request; `avoid` itself only when nothing else will take it. An endpoint
/// in slow start takes its turn with the probability of its [`Candidates::share`] and
/// otherwise passes it on to the next choice; it is still picked when nothing else will
/// take the request.
///
/// # Errors
/// `NoHealthyEndpoint` when no endpoint is healthy, `AllRefused` when every healthy
/// one's breaker refuses.
pub fn select(
    choices: Choices<'_>,
    candidates: &impl Candidates,
    avoid: Option<usize>,
    rng: &mut impl Rng,
) -> Result<usize, PickError> {
    let n = candidates.len();
    let mut avoided = false;
    let mut any_healthy = false;
    let mut passed_on = false;
    for i in choices {
        if !candidates.is_healthy(i) {
            continue;
        }
        any_healthy = true;
        if n > 1 && avoid == Some(i) {
            avoided = true;
            continue;
        }
        let share = candidates.share(i);
        if share < 1.0 && !rng.random_bool(share.clamp(0.0, 1.0)) {
            passed_on = true;
            continue;
        }
        if candidates.admit(i) {
            return Ok(i);
        }
    }
    // Nothing else took it: the endpoints that passed their turn on take it after all.
    if passed_on {
        let ramping = (0..n).filter(|&i| {
            candidates.is_healthy(i) && (n == 1 || avoid != Some(i)) && candidates.share(i) < 1.0
        });
        for i in ramping {
            if candidates.admit(i) {
                return Ok(i);
            }
        }
    }
    match avoid {
        Some(i) if avoided && candidates.admit(i) => Ok(i),
        _ if !any_healthy => Err(PickError::NoHealthyEndpoint),
        _ => Err(PickError::AllRefused),
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
