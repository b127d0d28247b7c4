//! `round_robin`: each endpoint in turn, ignoring weights.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A shared rotation position; one relaxed atomic add per pick.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(start: usize) -> Self {
        Self {
            next: AtomicUsize::new(start),
        }
    }

    /// The next index in `0..n` (`n > 0`).
    pub fn next(&self, n: usize) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_every_index_once_per_cycle() {
        let rr = RoundRobin::new(2);
        let picks: Vec<usize> = (0..8).map(|_| rr.next(4)).collect();
        assert_eq!(picks, vec![2, 3, 0, 1, 2, 3, 0, 1]);
    }
}
