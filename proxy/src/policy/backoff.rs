//! Exponential backoff with full jitter: before retry `n` (1-based), wait a random time
//! in `[0, min(max, base * 2^(n-1))]` (AWS's "full jitter", as Envoy does).

use std::time::Duration;

use meshwork_config::model::Backoff;
use rand::Rng;

/// The ceiling of the wait before retry `n` (1-based).
pub fn ceiling(backoff: &Backoff, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    backoff.base.saturating_mul(factor).min(backoff.max)
}

/// A random wait in `[0, ceiling]`.
pub fn delay(backoff: &Backoff, retry: u32, rng: &mut impl Rng) -> Duration {
    let cap = ceiling(backoff, retry);
    if cap.is_zero() {
        return cap;
    }
    Duration::from_nanos(rng.random_range(0..=cap.as_nanos().min(u128::from(u64::MAX)) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const B: Backoff = Backoff {
        base: Duration::from_millis(25),
        max: Duration::from_secs(1),
    };

    #[test]
    fn ceilings_double_then_cap() {
        let c: Vec<u128> = (1..=8).map(|n| ceiling(&B, n).as_millis()).collect();
        assert_eq!(c, [25, 50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            ceiling(&B, 60),
            Duration::from_secs(1),
            "no overflow on huge retry counts"
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads_over_them() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let waits: Vec<Duration> = (0..10_000).map(|_| delay(&B, 3, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(100)));
        let mean = waits.iter().sum::<Duration>() / 10_000;
        assert!(
            (45..=55).contains(&mean.as_millis()),
            "full jitter averages half the ceiling: {mean:?}"
        );
        let low = waits
            .iter()
            .filter(|w| **w < Duration::from_millis(10))
            .count();
        assert!(
            (800..1_200).contains(&low),
            "uniform: about 10% below a tenth: {low}"
        );
    }
}
