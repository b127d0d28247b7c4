//! Validation of a cluster's `circuit_breaker`: failure triggers, open times, the
//! ejection cap, latency-based ejection and slow start.

use std::time::Duration;

use super::Check;
use crate::model::{CircuitBreaker, FailureRate, LatencyEjection};
use crate::raw::{RawCircuitBreaker, RawLatencyEjection};
use crate::spanned::Spanned;

/// Default of `latency.factor`: three times slower than the others' median.
const DEFAULT_LATENCY_FACTOR: f64 = 3.0;
/// Largest `latency.factor` accepted (beyond, nothing would ever be ejected).
const MAX_LATENCY_FACTOR: f64 = 1000.0;
/// Default of `latency.min_latency`: faster endpoints are never ejected for latency.
const DEFAULT_MIN_LATENCY: Duration = Duration::from_millis(20);
/// Default of `latency.window`.
const DEFAULT_LATENCY_WINDOW: Duration = Duration::from_secs(10);
/// Shortest `latency.window`: it is judged every tenth of it.
const MIN_LATENCY_WINDOW: Duration = Duration::from_millis(100);

pub(super) fn circuit_breaker(
    ck: &mut Check<'_>,
    at: &Spanned<RawCircuitBreaker>,
) -> Option<CircuitBreaker> {
    let raw = at.get()?;
    let failure_rate = ck
        .optional(raw.failure_rate.as_ref(), |ck, at| {
            let f = at.get()?;
            ck.require(at, &f.threshold, "threshold");
            Some(FailureRate {
                threshold: ck.number_in(&f.threshold, 0.0, 1.0, 0.5),
                min_requests: ck.int_in(&f.min_requests, 1, u32::MAX, 20),
                window: ck.positive_duration(&f.window, Duration::from_secs(10)),
            })
        })
        .flatten();
    let consecutive_failures = match &raw.consecutive_failures {
        Some(_) => Some(ck.int_in(&raw.consecutive_failures, 1, u32::MAX, 5)),
        None if failure_rate.is_none() && raw.failure_rate.is_none() => Some(5),
        None => None,
    };
    let open_duration = ck.positive_duration(&raw.open_duration, Duration::from_secs(10));
    let max_open_duration = ck.positive_duration(
        &raw.max_open_duration,
        Duration::from_secs(300).max(open_duration),
    );
    if max_open_duration < open_duration {
        if let Some(field) = &raw.max_open_duration {
            ck.error(field, "max_open_duration is shorter than open_duration");
        }
    }
    let max_ejected_percent = ck
        .parse(&raw.max_ejected_percent, |p| {
            if *p <= 100 {
                Ok(*p)
            } else {
                Err(format!("{p} is out of range (expected 0 to 100)"))
            }
        })
        .unwrap_or(50);
    Some(CircuitBreaker {
        consecutive_failures,
        failure_rate,
        open_duration,
        max_open_duration,
        half_open_requests: ck.int_in(&raw.half_open_requests, 1, u32::MAX, 3),
        max_ejected_percent,
        latency: ck.optional(raw.latency.as_ref(), latency).flatten(),
        slow_start: raw
            .slow_start
            .as_ref()
            .map(|_| ck.positive_duration(&raw.slow_start, Duration::ZERO)),
    })
}

fn latency(ck: &mut Check<'_>, at: &Spanned<RawLatencyEjection>) -> Option<LatencyEjection> {
    let raw = at.get()?;
    let factor = ck
        .parse(&raw.factor, |f| {
            if *f > 1.0 && *f <= MAX_LATENCY_FACTOR {
                Ok(*f)
            } else {
                Err(format!(
                    "{f} is out of range (expected more than 1, at most {MAX_LATENCY_FACTOR}: how many times slower than the others' median)"
                ))
            }
        })
        .unwrap_or(DEFAULT_LATENCY_FACTOR);
    let window = ck.positive_duration(&raw.window, DEFAULT_LATENCY_WINDOW);
    if window < MIN_LATENCY_WINDOW {
        if let Some(field) = &raw.window {
            ck.error(
                field,
                "the window must be at least 100ms (it is judged every tenth of it)",
            );
        }
    }
    let percentile = ck.int_in(&raw.percentile, 1, 99, 50);
    Some(LatencyEjection {
        factor,
        min_latency: ck.duration(&raw.min_latency, DEFAULT_MIN_LATENCY),
        min_requests: ck.int_in(&raw.min_requests, 1, u32::MAX, 20),
        window,
        percentile: u8::try_from(percentile).unwrap_or(50),
    })
}
