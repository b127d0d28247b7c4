//! The attempts of one request whose body is buffered for replay: retries one after the
//! other, and at most one hedge alongside them.
//!
//! ```text
//!   first ──────────────┬──────── answers first: it wins, the hedge is cancelled
//!        └ delay ┘ hedge ┴──────── answers first: it wins, the first is cancelled
//! ```
//!
//! A response that is not worth a retry wins at once; the other attempt out is
//! cancelled (dropped before its deadline: not its endpoint's failure). A failure (an
//! error, or a response the retry policy retries) while another attempt is out waits for
//! that one; when none is out, the last failure is retried (backoff, `attempts`, budget)
//! or returned. Hedges and retries draw from the route's one budget; a hedge takes a
//! `max_retries` slot, prefers another endpoint, and does not count against `attempts`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::HeaderMap;
use meshwork_config::model::{DEFAULT_RETRY_MAX_BODY, Hedge};
use tokio::time::Instant;
use tower::Service;

use super::hedge::{self, HedgeEvent};
use super::{PerTry, buffer, one_attempt, retry_after, retry_reason};
use crate::http::{ProxyError, RequestBody};
use crate::layers::{ProxyRequest, ProxyResponse, RequestContext, StackRequest};
use crate::policy::backoff;
use crate::router::RouteEntry;

type Outcome = Result<ProxyResponse, ProxyError>;

/// What the layer decided this request may have.
#[derive(Debug, Clone, Copy)]
pub(super) struct Allowed {
    pub retries: bool,
    pub hedge: bool,
}

/// Runs the request's attempts (see the module docs).
pub(super) async fn run<S>(
    inner: S,
    req: ProxyRequest,
    route: Arc<RouteEntry>,
    allowed: Allowed,
) -> Outcome
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Clone,
{
    let policy = route.config.retry.as_ref();
    let per_try = policy.and_then(|p| p.per_try_timeout);
    let max_body = policy.map_or(DEFAULT_RETRY_MAX_BODY, |p| p.max_body);
    let StackRequest { http, ctx } = *req;
    let (parts, body) = http.into_parts();
    let (data, trailers) = match buffer(body, max_body).await? {
        Ok(whole) => whole,
        Err(streaming) => {
            // Too large to replay: one attempt, streamed.
            let mut svc = inner;
            let req = StackRequest::boxed(http::Request::from_parts(parts, streaming), ctx);
            return one_attempt(&mut svc, req, per_try).await;
        }
    };
    let hedge = route.config.hedge.as_ref().filter(|_| allowed.hedge);
    let mut race = Race {
        inner,
        parts,
        data,
        trailers,
        ctx,
        per_try,
        out: FuturesUnordered::new(),
        tries: 0,
    };
    let retry = policy.filter(|_| allowed.retries);
    let attempts = retry.map_or(1, |p| p.attempts);
    let mut hedge_at = race.launch(false, hedge, &route);
    let mut hedged = false;
    loop {
        // Wait for an attempt out to end, sending the hedge when its time comes.
        let (was_hedge, outcome) = tokio::select! {
            Some(done) = race.out.next() => done,
            () = sleep_until(hedge_at) => {
                hedge_at = None;
                hedged = race.hedge(&route);
                continue;
            }
        };
        let reason = retry.and_then(|p| retry_reason(p, &outcome));
        if outcome.is_ok() && reason.is_none() {
            race.won(was_hedge, &route);
            return outcome;
        }
        if !race.out.is_empty() {
            // An error is not an answer: the attempt still out may give one.
            continue;
        }
        let (Some(policy), Some(reason)) = (retry, reason) else {
            return outcome;
        };
        if race.tries >= attempts {
            return outcome;
        }
        if let Some(budget) = &route.retry_budget {
            if !budget.try_withdraw() {
                if let Some(plan) = &race.ctx.plan {
                    plan.retry_budget_exhausted(route.name());
                }
                tracing::debug!(
                    route = route.name(),
                    "retry budget spent; returning the failure"
                );
                return outcome;
            }
        }
        let wait = match outcome.as_ref().ok().and_then(retry_after) {
            Some(asked) if asked <= policy.backoff.max => asked,
            _ => backoff::delay(&policy.backoff, race.tries, &mut rand::rng()),
        };
        if let Some(plan) = &race.ctx.plan {
            plan.retried(route.name(), &reason);
        }
        tracing::debug!(route = route.name(), attempt = race.tries, %reason, ?wait, "retrying");
        // The failed response (if any) is dropped here, releasing its connection.
        drop(outcome);
        tokio::time::sleep(wait).await;
        hedge_at = race.launch(false, hedge.filter(|_| !hedged), &route);
    }
}

/// Sleeps until `at`; never ends when there is none.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A request's attempts out, and what it takes to make another.
struct Race<S: Service<ProxyRequest>> {
    inner: S,
    parts: http::request::Parts,
    data: Bytes,
    trailers: Option<HeaderMap>,
    ctx: RequestContext,
    per_try: Option<Duration>,
    out: FuturesUnordered<Tagged<S::Future>>,
    /// Attempts launched that are not hedges.
    tries: u32,
}

impl<S> Race<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Clone,
{
    /// Sends one more attempt; returns when its hedge is due, if `hedge` says it may
    /// have one.
    fn launch(
        &mut self,
        is_hedge: bool,
        hedge: Option<&Hedge>,
        route: &RouteEntry,
    ) -> Option<Instant> {
        let mut req = http::Request::new(RequestBody::replay(
            self.data.clone(),
            self.trailers.clone(),
        ));
        *req.method_mut() = self.parts.method.clone();
        *req.uri_mut() = self.parts.uri.clone();
        *req.version_mut() = self.parts.version;
        *req.headers_mut() = self.parts.headers.clone();
        if !is_hedge {
            self.tries += 1;
        }
        let mut ctx = self.ctx.clone();
        ctx.retry = is_hedge || self.tries > 1;
        ctx.hedge = is_hedge;
        let mut svc = self.inner.clone();
        let attempt = one_attempt(&mut svc, StackRequest::boxed(req, ctx), self.per_try);
        self.out.push(Tagged {
            inner: attempt,
            hedge: is_hedge,
            started: Instant::now(),
            latency: route.hedge_latency.clone(),
        });
        hedge.map(|h| Instant::now() + hedge::delay(h, route))
    }

    /// The hedge is due: sends it if the budget allows. Returns whether it was sent.
    fn hedge(&mut self, route: &RouteEntry) -> bool {
        let granted = route
            .retry_budget
            .as_ref()
            .is_none_or(|budget| budget.try_withdraw());
        let event = if granted {
            self.launch(true, None, route);
            HedgeEvent::Sent
        } else {
            HedgeEvent::BudgetExhausted
        };
        if let Some(plan) = &self.ctx.plan {
            plan.hedge(route.name(), event);
        }
        tracing::debug!(route = route.name(), event = event.as_str(), "hedge due");
        granted
    }

    /// An attempt (a hedge or not) answered first: the others out are cancelled (they
    /// are dropped with the race).
    fn won(&mut self, was_hedge: bool, route: &RouteEntry) {
        let plan = self.ctx.plan.as_ref();
        if was_hedge {
            if let Some(plan) = plan {
                plan.hedge(route.name(), HedgeEvent::Won);
            }
        }
        for loser in Pin::new(&self.out).iter_pin_ref() {
            self.ctx.record.cancelled(*loser.project_ref().hedge);
            if let Some(plan) = plan {
                plan.hedge(route.name(), HedgeEvent::Wasted);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// One attempt out: whether it is the hedge, and when it began (its response time
    /// feeds the route's latency percentile).
    struct Tagged<F> {
        #[pin]
        inner: PerTry<F>,
        hedge: bool,
        started: Instant,
        latency: Option<Arc<crate::policy::latency_percentile::LatencyPercentile>>,
    }
}

impl<F> Future for Tagged<F>
where
    F: Future<Output = Outcome>,
{
    type Output = (bool, Outcome);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.inner.poll(cx));
        if let (Some(latency), Ok(_)) = (this.latency, &outcome) {
            latency.record(this.started.elapsed());
        }
        Poll::Ready((*this.hedge, outcome))
    }
}
