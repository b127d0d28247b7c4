//! Hedging's decisions, apart from the attempts' loop: which requests a route may hedge,
//! how long the first attempt may go unanswered before the hedge is sent, and the
//! events counted in `meshwork_http_hedges_total`.

use std::time::Duration;

use meshwork_config::model::{Hedge, HedgeDelay};

use crate::router::RouteEntry;

/// What happened to a route's hedges, as the `event` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeEvent {
    /// A hedge was sent.
    Sent,
    /// A hedge answered first: its response went to the client.
    Won,
    /// An attempt (the hedge or the one it hedged) was cancelled: another answered first.
    Wasted,
    /// A hedge was due but the route's retry budget was spent: none was sent.
    BudgetExhausted,
}

impl HedgeEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HedgeEvent::Sent => "sent",
            HedgeEvent::Won => "won",
            HedgeEvent::Wasted => "wasted",
            HedgeEvent::BudgetExhausted => "budget-exhausted",
        }
    }
}

/// Whether `req` may be hedged under `hedge`: its method is one of the policy's, or it is
/// a gRPC call (`content-type: application/grpc...`) and the policy says the route's gRPC
/// calls are idempotent.
pub fn may_hedge<B>(hedge: &Hedge, req: &http::Request<B>) -> bool {
    hedge.methods.iter().any(|m| m == req.method().as_str()) || (hedge.grpc && is_grpc(req))
}

/// A gRPC call: a POST whose content type is `application/grpc` or a subtype of it
/// (`application/grpc+proto`).
fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| {
                let v = v.as_bytes();
                v.len() >= 16
                    && v[..16].eq_ignore_ascii_case(b"application/grpc")
                    && matches!(v.get(16), None | Some(b'+' | b';'))
            })
}

/// How long the first attempt (or a retry) may go unanswered before the hedge: the
/// fixed delay, or the route's recent response time at its percentile (the initial delay
/// until the route has seen enough responses).
pub fn delay(hedge: &Hedge, route: &RouteEntry) -> Duration {
    match hedge.delay {
        HedgeDelay::Fixed(delay) => delay,
        HedgeDelay::Percentile { initial, .. } => route
            .hedge_latency
            .as_ref()
            .and_then(|latency| latency.estimate())
            .unwrap_or(initial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, content_type: Option<&'static str>) -> http::Request<()> {
        let mut req = http::Request::builder().method(method);
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn grpc_calls_are_hedged_only_where_the_route_says_they_are_idempotent() {
        let mut hedge = Hedge {
            delay: HedgeDelay::Fixed(Duration::from_millis(10)),
            methods: vec!["GET".into()],
            grpc: false,
        };
        let grpc = request(http::Method::POST, Some("application/grpc+proto"));
        assert!(may_hedge(&hedge, &request(http::Method::GET, None)));
        assert!(!may_hedge(&hedge, &grpc));
        hedge.grpc = true;
        assert!(may_hedge(&hedge, &grpc));
        assert!(may_hedge(
            &hedge,
            &request(http::Method::POST, Some("application/grpc"))
        ));
        for not_grpc in [
            request(http::Method::POST, Some("application/json")),
            request(http::Method::POST, Some("application/grpcx")),
            request(http::Method::POST, None),
            request(http::Method::PUT, Some("application/grpc")),
        ] {
            assert!(!may_hedge(&hedge, &not_grpc), "{not_grpc:?}");
        }
    }
}
