//! Validation of per-route policies: retry, fault injection, rate limit and mirroring.

use std::time::Duration;

use super::other::{method, refer};
use super::{Check, Names};
use crate::model::{
    AbortKind, Backoff, DEFAULT_RETRY_METHODS, Fault, FaultAbort, FaultDelay, GrpcCode, Mirror,
    RateLimit, RetryBudget, RetryOn, RetryPolicy,
};
use crate::raw::{RETRY_ON_NAMES, RawFault, RawMirror, RawRateLimit, RawRetry, RetryOnText};
use crate::spanned::Spanned;
use crate::units;

/// Default total tries, the first included.
pub(crate) const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
/// Most tries accepted.
const MAX_RETRY_ATTEMPTS: u32 = 10;
pub(crate) const DEFAULT_RETRY_ON: &[RetryOn] = &[
    RetryOn::ConnectFailure,
    RetryOn::Reset,
    RetryOn::GatewayError,
];
pub(crate) const DEFAULT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(25),
    max: Duration::from_secs(1),
};
use crate::model::{DEFAULT_RETRY_BUDGET, DEFAULT_RETRY_MAX_BODY};

impl RetryPolicy {
    /// The policy `retry: {}` gives: every setting at its default.
    pub fn defaults() -> Self {
        RetryPolicy {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            on: DEFAULT_RETRY_ON.to_vec(),
            per_try_timeout: None,
            backoff: DEFAULT_BACKOFF,
            budget: DEFAULT_RETRY_BUDGET,
            methods: crate::model::DEFAULT_RETRY_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            max_body: DEFAULT_RETRY_MAX_BODY,
        }
    }
}

pub(crate) fn retry(ck: &mut Check<'_>, at: &Spanned<RawRetry>) -> RetryPolicy {
    let Some(raw) = at.get() else {
        return placeholder_retry();
    };
    let attempts = ck.int_in(&raw.attempts, 1, MAX_RETRY_ATTEMPTS, DEFAULT_RETRY_ATTEMPTS);
    let mut on = ck.list(&raw.on, |ck, at, c| {
        retry_on(c).map_err(|e| ck.error(at, e)).ok()
    });
    if raw.on.is_none() {
        on = DEFAULT_RETRY_ON.to_vec();
    } else if raw
        .on
        .as_ref()
        .and_then(Spanned::get)
        .is_some_and(Vec::is_empty)
    {
        if let Some(field) = &raw.on {
            ck.error(
                field,
                "needs at least one condition (leave `on` out for the default)",
            );
        }
    }
    let per_try_timeout = raw
        .per_try_timeout
        .is_some()
        .then(|| ck.positive_duration(&raw.per_try_timeout, Duration::from_secs(1)));
    let backoff = raw
        .backoff
        .as_ref()
        .and_then(|b| {
            let raw = b.get()?;
            let base = ck.positive_duration(&raw.base, DEFAULT_BACKOFF.base);
            let max = ck.positive_duration(&raw.max, DEFAULT_BACKOFF.max.max(base));
            if let Some(field) = raw.max.as_ref().filter(|_| max < base) {
                ck.error(
                    field,
                    format!("max ({max:?}) is shorter than base ({base:?})"),
                );
            }
            Some(Backoff { base, max })
        })
        .unwrap_or(DEFAULT_BACKOFF);
    let budget = raw
        .budget
        .as_ref()
        .and_then(Spanned::get)
        .map(|b| RetryBudget {
            ratio: ck.number_in(&b.ratio, 0.0, 1.0, DEFAULT_RETRY_BUDGET.ratio),
            min_per_second: ck.int_in(
                &b.min_per_second,
                0,
                u32::MAX,
                DEFAULT_RETRY_BUDGET.min_per_second,
            ),
        })
        .unwrap_or(DEFAULT_RETRY_BUDGET);
    let methods = methods(ck, &raw.methods);
    let max_body = ck.size(&raw.max_body, DEFAULT_RETRY_MAX_BODY);
    RetryPolicy {
        attempts,
        on,
        per_try_timeout,
        backoff,
        budget,
        methods,
        max_body,
    }
}

/// The methods a policy (`retry`, `hedge`) applies to: the idempotent ones by default.
pub(crate) fn methods(ck: &mut Check<'_>, raw: &crate::spanned::List<String>) -> Vec<String> {
    match raw {
        None => DEFAULT_RETRY_METHODS
            .iter()
            .map(|m| m.to_string())
            .collect(),
        Some(_) => ck.list(raw, |ck, at, m| method(ck, at, m)),
    }
}

fn placeholder_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: DEFAULT_RETRY_ATTEMPTS,
        on: Vec::new(),
        per_try_timeout: None,
        backoff: DEFAULT_BACKOFF,
        budget: DEFAULT_RETRY_BUDGET,
        methods: Vec::new(),
        max_body: DEFAULT_RETRY_MAX_BODY,
    }
}

/// A retry condition: a name, a status code (as a number or a string) or a gRPC code.
pub(crate) fn retry_on(text: &RetryOnText) -> Result<RetryOn, String> {
    let t = text.0.trim();
    if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        return match t.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(RetryOn::Status(code)),
            _ => Err(format!("{t} is not an HTTP status (expected 100 to 599)")),
        };
    }
    Ok(match t {
        "connect-failure" => RetryOn::ConnectFailure,
        "reset" => RetryOn::Reset,
        "5xx" => RetryOn::ServerError,
        "gateway-error" => RetryOn::GatewayError,
        "retriable-4xx" => RetryOn::Retriable4xx,
        "cancelled" => RetryOn::Grpc(GrpcCode::Cancelled),
        "deadline-exceeded" => RetryOn::Grpc(GrpcCode::DeadlineExceeded),
        "resource-exhausted" => RetryOn::Grpc(GrpcCode::ResourceExhausted),
        "unavailable" => RetryOn::Grpc(GrpcCode::Unavailable),
        _ => {
            let mut message = crate::suggest::unknown("retry condition", t, RETRY_ON_NAMES);
            message.push_str(" (or a status code such as 503)");
            return Err(message);
        }
    })
}

pub(crate) fn fault(ck: &mut Check<'_>, at: &Spanned<RawFault>) -> Fault {
    let Some(raw) = at.get() else {
        return Fault {
            delay: None,
            abort: None,
        };
    };
    if raw.delay.is_none() && raw.abort.is_none() {
        ck.error(at, "a fault needs delay or abort");
    }
    let delay = ck
        .optional(raw.delay.as_ref(), |ck, at| {
            let d = at.get()?;
            ck.require(at, &d.percent, "percent");
            ck.require(at, &d.duration, "duration");
            Some(FaultDelay {
                percent: ck.number_in(&d.percent, 0.0, 100.0, 0.0),
                duration: ck.duration(&d.duration, Duration::ZERO),
            })
        })
        .flatten();
    let abort = ck
        .optional(raw.abort.as_ref(), |ck, at| {
            let a = at.get()?;
            ck.require(at, &a.percent, "percent");
            let percent = ck.number_in(&a.percent, 0.0, 100.0, 0.0);
            let one = [
                ("status", a.status.as_ref().map(|s| s.pos)),
                ("grpc_status", a.grpc_status.as_ref().map(|s| s.pos)),
            ];
            if !ck.exactly_one(at, &one) {
                return None;
            }
            let kind = match ck.parse(&a.status, |s| units::parse_status(*s)) {
                Some(status) => AbortKind::Http(status),
                None => AbortKind::Grpc(ck.parse(&a.grpc_status, |g| {
                    if *g <= 16 {
                        Ok(*g)
                    } else {
                        Err(format!("{g} is not a gRPC status (expected 0 to 16)"))
                    }
                })?),
            };
            Some(FaultAbort { percent, kind })
        })
        .flatten();
    Fault { delay, abort }
}

pub(crate) fn rate_limit(ck: &mut Check<'_>, at: &Spanned<RawRateLimit>) -> RateLimit {
    let Some(raw) = at.get() else {
        return RateLimit {
            requests_per_second: 1.0,
            burst: 1,
        };
    };
    ck.require(at, &raw.requests_per_second, "requests_per_second");
    let requests_per_second = ck
        .parse(&raw.requests_per_second, |r| {
            if r.is_finite() && *r > 0.0 && *r <= f64::from(u32::MAX) {
                Ok(*r)
            } else {
                Err(format!("{r} is out of range (expected more than 0)"))
            }
        })
        .unwrap_or(1.0);
    // Whole by ceil(); at most u32::MAX by the check above.
    let default_burst = requests_per_second.ceil().max(1.0) as u32;
    let burst = ck.int_in(&raw.burst, 1, u32::MAX, default_burst);
    RateLimit {
        requests_per_second,
        burst,
    }
}

pub(crate) fn mirror(ck: &mut Check<'_>, at: &Spanned<RawMirror>, names: &Names) -> Mirror {
    let Some(raw) = at.get() else {
        return Mirror {
            cluster: String::new(),
            percent: 100.0,
        };
    };
    let cluster = ck.required_text(at, &raw.cluster, "cluster");
    refer(ck, &raw.cluster, &names.clusters, "cluster");
    let percent = ck.number_in(&raw.percent, 0.0, 100.0, 100.0);
    Mirror { cluster, percent }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(t: &str) -> Result<RetryOn, String> {
        retry_on(&RetryOnText(t.to_string()))
    }

    #[test]
    fn retry_conditions_are_names_statuses_or_grpc_codes() {
        assert_eq!(on("connect-failure"), Ok(RetryOn::ConnectFailure));
        assert_eq!(on("503"), Ok(RetryOn::Status(503)));
        assert_eq!(on("5xx"), Ok(RetryOn::ServerError));
        assert_eq!(on("unavailable"), Ok(RetryOn::Grpc(GrpcCode::Unavailable)));
        assert!(on("700").is_err());
        assert_eq!(
            on("conect-failure"),
            Err(r#"unknown retry condition "conect-failure", did you mean "connect-failure"? (or a status code such as 503)"#.to_string())
        );
    }
}
