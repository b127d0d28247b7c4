//! Validation of a route's `hedge` policy: its delay (a duration or a percentile of the
//! route's recent response times), the methods it may hedge, and whether its gRPC calls
//! are idempotent.

use std::time::Duration;

use super::Check;
use crate::model::{Hedge, HedgeDelay};
use crate::raw::RawHedge;
use crate::spanned::Spanned;
use crate::units;

/// The delay a percentile `delay` uses until the route has an estimate.
const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(100);
/// The lowest percentile accepted: below the median, most requests would be hedged.
const MIN_PERCENTILE: f64 = 50.0;
/// The highest percentile accepted: beyond it, a window rarely holds enough samples.
const MAX_PERCENTILE: f64 = 99.9;

pub(crate) fn hedge(ck: &mut Check<'_>, at: &Spanned<RawHedge>) -> Hedge {
    let placeholder = HedgeDelay::Fixed(DEFAULT_INITIAL_DELAY);
    let Some(raw) = at.get() else {
        return Hedge {
            delay: placeholder,
            methods: Vec::new(),
            grpc: false,
        };
    };
    ck.require(at, &raw.delay, "delay");
    let delay = ck.parse(&raw.delay, |d| delay(d)).unwrap_or(placeholder);
    let delay = match delay {
        HedgeDelay::Percentile { percentile, .. } => HedgeDelay::Percentile {
            percentile,
            initial: ck.positive_duration(&raw.initial_delay, DEFAULT_INITIAL_DELAY),
        },
        fixed => {
            if let Some(field) = &raw.initial_delay {
                ck.error(
                    field,
                    "only a percentile `delay` (such as p95) has an initial delay",
                );
            }
            fixed
        }
    };
    let methods = super::policy::methods(ck, &raw.methods);
    let grpc = raw
        .grpc
        .as_ref()
        .and_then(Spanned::get)
        .copied()
        .unwrap_or(false);
    Hedge {
        delay,
        methods,
        grpc,
    }
}

/// `50ms` (more than zero) or `p95` (`p50` to `p99.9`).
fn delay(text: &str) -> Result<HedgeDelay, String> {
    let t = text.trim();
    if let Some(number) = t.strip_prefix('p') {
        let percentile: f64 = number
            .parse()
            .ok()
            .filter(|p: &f64| p.is_finite())
            .ok_or_else(|| {
                format!("{t:?} is not a percentile (expected p50 to p99.9, e.g. p95)")
            })?;
        if !(MIN_PERCENTILE..=MAX_PERCENTILE).contains(&percentile) {
            return Err(format!(
                "{t:?} is out of range (expected p50 to p99.9, e.g. p95)"
            ));
        }
        return Ok(HedgeDelay::Percentile {
            percentile,
            initial: DEFAULT_INITIAL_DELAY,
        });
    }
    let fixed = units::parse_duration(t)
        .map_err(|e| format!("{e}; or a percentile of the route's response times, e.g. p95"))?;
    if fixed.is_zero() {
        return Err(format!(
            "{t:?} is not allowed: the delay must be more than 0 (every request would be sent twice)"
        ));
    }
    Ok(HedgeDelay::Fixed(fixed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_is_a_duration_or_a_percentile() {
        assert_eq!(
            delay("50ms"),
            Ok(HedgeDelay::Fixed(Duration::from_millis(50)))
        );
        assert_eq!(
            delay("p99.9"),
            Ok(HedgeDelay::Percentile {
                percentile: 99.9,
                initial: DEFAULT_INITIAL_DELAY
            })
        );
        assert!(delay("p100").unwrap_err().contains("out of range"));
        assert!(delay("p10").unwrap_err().contains("out of range"));
        assert!(delay("pNaN").unwrap_err().contains("not a percentile"));
        assert!(delay("0s").unwrap_err().contains("more than 0"));
        assert!(delay("soon").unwrap_err().contains("e.g. p95"));
    }
}
