//! A local token bucket: `rate` tokens per second refill up to `burst`; each request
//! takes one. When empty, it says how long until the next token.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_second.max(f64::MIN_POSITIVE),
            burst,
            state: Mutex::new(State {
                tokens: burst,
                refilled: Instant::now(),
            }),
        }
    }

    /// Takes a token, or says how long until one is available.
    ///
    /// # Errors
    /// The wait until the next token when the bucket is empty.
    pub fn try_take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let earned = now.saturating_duration_since(s.refilled).as_secs_f64() * self.rate;
        s.tokens = (s.tokens + earned).min(self.burst);
        s.refilled = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - s.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate_then_refill() {
        let b = TokenBucket::new(10.0, 3);
        for _ in 0..3 {
            assert!(b.try_take().is_ok());
        }
        let wait = b.try_take().unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(b.try_take().is_ok(), "refills up to the burst only");
        }
        assert!(b.try_take().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_rates_wait_long_enough() {
        let b = TokenBucket::new(0.5, 1);
        assert!(b.try_take().is_ok());
        assert_eq!(b.try_take().unwrap_err(), Duration::from_secs(2));
    }
}
