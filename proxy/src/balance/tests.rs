//! What every balancer shares: the walk past unhealthy, refused and avoided endpoints,
//! the errors, and the shares of round_robin and random.

use meshwork_config::model::LoadBalancer;

use super::testing::{FakeEndpoints, assert_shares, seeded};
use super::{Balancer, EndpointSpec, PickError};

const ALL: [LoadBalancer; 7] = [
    LoadBalancer::RoundRobin,
    LoadBalancer::WeightedRoundRobin,
    LoadBalancer::Random,
    LoadBalancer::LeastRequest,
    LoadBalancer::PeakEwma,
    LoadBalancer::RingHash,
    LoadBalancer::Maglev,
];

fn balancer(algorithm: LoadBalancer, weights: &[u32]) -> Balancer {
    let keys: Vec<String> = (0..weights.len())
        .map(|i| format!("10.3.0.{i}:80"))
        .collect();
    let specs: Vec<EndpointSpec<'_>> = keys
        .iter()
        .zip(weights)
        .map(|(key, &weight)| EndpointSpec { key, weight })
        .collect();
    Balancer::new(algorithm, &specs, &mut seeded())
}

fn counts(
    lb: &Balancer,
    eps: &FakeEndpoints,
    picks: usize,
    key: impl Fn(usize) -> Option<u64>,
) -> Vec<u64> {
    let mut rng = seeded();
    let mut counts = vec![0u64; eps.healthy.len()];
    for p in 0..picks {
        counts[lb.pick(eps, None, key(p), &mut rng).unwrap()] += 1;
    }
    counts
}

#[test]
fn round_robin_shares_exactly_and_ignores_weights() {
    let lb = balancer(LoadBalancer::RoundRobin, &[1, 5, 1, 1]);
    let c = counts(&lb, &FakeEndpoints::new(4), 100_000, |_| None);
    assert_eq!(c, vec![25_000; 4]);
}

#[test]
fn random_shares_follow_the_weights() {
    let lb = balancer(LoadBalancer::Random, &[1; 10]);
    assert_shares(
        &counts(&lb, &FakeEndpoints::new(10), 100_000, |_| None),
        &[1; 10],
    );
    let weights = [3, 1, 6];
    let lb = balancer(LoadBalancer::Random, &weights);
    assert_shares(
        &counts(&lb, &FakeEndpoints::new(3), 100_000, |_| None),
        &weights,
    );
}

#[test]
fn every_balancer_skips_unhealthy_endpoints_and_spreads_their_share() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 6]);
        let mut eps = FakeEndpoints::new(6);
        eps.healthy[2] = false;
        let c = counts(&lb, &eps, 60_000, |p| {
            Some(super::hash_key(&p.to_le_bytes()))
        });
        assert_eq!(c[2], 0, "{algorithm:?} sent to an unhealthy endpoint");
        // No neighbour doubles up: everyone else stays near a fifth.
        for (i, &n) in c.iter().enumerate().filter(|(i, _)| *i != 2) {
            let share = n as f64 / 60_000.0;
            assert!(
                (share - 0.2).abs() < 0.04,
                "{algorithm:?}: endpoint {i} got {share:.3}"
            );
        }
    }
}

#[test]
fn every_balancer_skips_endpoints_whose_breaker_refuses() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 4]);
        let mut eps = FakeEndpoints::new(4);
        eps.admits[0] = false;
        eps.admits[3] = false;
        let c = counts(&lb, &eps, 4_000, |p| {
            Some(super::hash_key(&p.to_le_bytes()))
        });
        assert_eq!((c[0], c[3]), (0, 0), "{algorithm:?}");
    }
}

#[test]
fn every_balancer_spreads_the_share_of_an_endpoint_whose_breaker_refuses() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 6]);
        let mut eps = FakeEndpoints::new(6);
        eps.admits[2] = false;
        let c = counts(&lb, &eps, 60_000, |p| {
            Some(super::hash_key(&p.to_le_bytes()))
        });
        assert_eq!(c[2], 0, "{algorithm:?} sent to a refusing endpoint");
        // Its turns are not all handed to the next endpoint in order.
        for (i, &n) in c.iter().enumerate().filter(|(i, _)| *i != 2) {
            let share = n as f64 / 60_000.0;
            assert!(
                (share - 0.2).abs() < 0.04,
                "{algorithm:?}: endpoint {i} got {share:.3}"
            );
        }
    }
}

#[test]
fn a_retry_avoids_the_endpoint_that_just_failed() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 3]);
        let eps = FakeEndpoints::new(3);
        let mut rng = seeded();
        for p in 0..300u64 {
            let key = Some(super::hash_key(&p.to_le_bytes()));
            let first = lb.pick(&eps, None, key, &mut rng).unwrap();
            let retry = lb.pick(&eps, Some(first), key, &mut rng).unwrap();
            assert_ne!(first, retry, "{algorithm:?}");
        }
    }
}

#[test]
fn the_avoided_endpoint_is_used_when_it_is_the_only_one_left() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 3]);
        let mut eps = FakeEndpoints::new(3);
        eps.healthy = vec![false, true, false];
        let mut rng = seeded();
        assert_eq!(
            lb.pick(&eps, Some(1), Some(7), &mut rng),
            Ok(1),
            "{algorithm:?}"
        );
    }
}

#[test]
fn no_healthy_endpoint_and_all_refused_are_told_apart() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 3]);
        let mut eps = FakeEndpoints::new(3);
        eps.admits = vec![false; 3];
        let mut rng = seeded();
        assert_eq!(
            lb.pick(&eps, None, Some(1), &mut rng),
            Err(PickError::AllRefused)
        );
        eps.healthy = vec![false; 3];
        assert_eq!(
            lb.pick(&eps, None, Some(1), &mut rng),
            Err(PickError::NoHealthyEndpoint)
        );
        let empty = balancer(algorithm, &[]);
        assert_eq!(
            empty.pick(&FakeEndpoints::new(0), None, Some(1), &mut rng),
            Err(PickError::NoHealthyEndpoint)
        );
    }
}

#[test]
fn a_single_endpoint_cluster_always_gets_the_request() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1]);
        let eps = FakeEndpoints::new(1);
        let mut rng = seeded();
        assert_eq!(
            lb.pick(&eps, Some(0), Some(9), &mut rng),
            Ok(0),
            "{algorithm:?}"
        );
    }
}

/// The cluster's `ring_hash.ring_size`, `maglev.table_size` and `peak_ewma.decay` reach
/// the structures built for it.
#[test]
fn tuning_sets_the_ring_size_the_table_size_and_the_decay() {
    let keys = ["10.4.0.1:80", "10.4.0.2:80", "10.4.0.3:80"];
    let specs: Vec<EndpointSpec<'_>> = keys
        .iter()
        .zip([1, 2, 3])
        .map(|(key, weight)| EndpointSpec { key, weight })
        .collect();
    let tuning = meshwork_config::model::BalancerTuning {
        ring_size: Some(6_000),
        maglev_table_size: Some(101),
        ewma_decay: std::time::Duration::from_secs(2),
    };
    let build = |lb| Balancer::with_tuning(lb, &tuning, &specs, &mut seeded()).algorithm;
    match build(LoadBalancer::RingHash) {
        super::Algorithm::RingHash(ring) => {
            assert_eq!(ring.len(), 6_000, "1,000 per unit of weight")
        }
        other => panic!("{other:?}"),
    }
    match build(LoadBalancer::Maglev) {
        super::Algorithm::Maglev(table) => assert_eq!(table.len(), 101),
        other => panic!("{other:?}"),
    }
    match build(LoadBalancer::PeakEwma) {
        super::Algorithm::PeakEwma { decay_ns } => assert_eq!(decay_ns, 2e9),
        other => panic!("{other:?}"),
    }
    // Untuned: the defaults.
    match balancer(LoadBalancer::RingHash, &[1, 2, 3]).algorithm {
        super::Algorithm::RingHash(ring) => assert_eq!(ring.len(), 6 * 160),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_balancer_scales_a_ramping_endpoints_share_by_its_slow_start() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 4]);
        let mut eps = FakeEndpoints::new(4);
        let even = counts(&lb, &eps, 8_000, |p| {
            Some(super::hash_key(&p.to_le_bytes()))
        });
        eps.shares[2] = 0.25;
        let ramping = counts(&lb, &eps, 8_000, |p| {
            Some(super::hash_key(&p.to_le_bytes()))
        });
        // A quarter of its ~2000 picks (binomial sd about 19 at p = 0.25): 500 +- 8 sd,
        // whatever the algorithm (hash keys included: the rest go to the next choice).
        let expected = even[2] as f64 / 4.0;
        assert!(
            (ramping[2] as f64 - expected).abs() < 160.0,
            "{algorithm:?}: {} picks while ramping, {} at full share",
            ramping[2],
            even[2]
        );
        assert_eq!(ramping.iter().sum::<u64>(), 8_000);
    }
}

#[test]
fn a_ramping_endpoint_takes_the_request_when_nothing_else_will() {
    for algorithm in ALL {
        let lb = balancer(algorithm, &[1; 3]);
        let mut eps = FakeEndpoints::new(3);
        eps.shares[1] = 0.0;
        eps.admits = vec![false, true, false];
        let mut rng = seeded();
        assert_eq!(
            lb.pick(&eps, None, Some(7), &mut rng),
            Ok(1),
            "{algorithm:?}"
        );
        eps.healthy[1] = false;
        assert_eq!(
            lb.pick(&eps, None, Some(7), &mut rng),
            Err(PickError::AllRefused),
            "{algorithm:?}"
        );
    }
}
