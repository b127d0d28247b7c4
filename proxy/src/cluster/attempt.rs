//! One try at one endpoint of a cluster, as one value: [`Attempt`].
//!
//! The cluster begins it in one step — its gates first (a request slot, the queue for an
//! HTTP/1 connection, a retry slot for a retry; a connection slot for a `tcp`
//! connection), then the pick of an endpoint whose breaker admits it — so a refusal at a
//! gate spends no half-open trial. From then on the attempt owns everything it took:
//! the slots, the endpoint's in-flight count and the breaker's admission. It is finished
//! with what the endpoint did ([`Attempt::answered`], [`Attempt::failed`],
//! [`Attempt::connected`]); dropped unfinished, it reports for itself — cut at its
//! deadline it was too slow (a failure, and a timeout counted), otherwise it was
//! abandoned (its client went away, a local step gave up), which says nothing about the
//! endpoint and frees the breaker's trial. Every slot is freed either way.
//!
//! The HTTP endpoint layer, the mirror and `tcp` listeners all go through it, so a
//! hedge (a second attempt in flight at once) is one more value, and a finished
//! attempt's latency is where per-endpoint latency is learned.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use super::limits::Slot;
use super::{ClusterRuntime, Endpoint};
use crate::http::{Blame, ProxyError};

/// The gRPC status an overloaded server answers with (`RESOURCE_EXHAUSTED`).
const GRPC_RESOURCE_EXHAUSTED: &[u8] = b"8";

/// Which of the cluster's gates an attempt must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An HTTP request: a `max_requests` slot; `queued` when it may wait for an HTTP/1
    /// connection (then `max_pending` applies); `retry` when it follows a failed
    /// attempt of the same request (then a `max_retries` slot too).
    Request { queued: bool, retry: bool },
    /// A `tcp` listener's connection: a `max_connections` slot, handed to the
    /// connection it opens ([`Attempt::take_connection_slot`]).
    Connection,
}

/// Which endpoint an attempt goes to.
#[derive(Debug)]
pub enum Target<'a> {
    /// The cluster's balancer picks one, preferring one other than `avoid` (the endpoint
    /// a retry follows); `key` is the request's hash key (`ring_hash`, `maglev`).
    Pick {
        avoid: Option<&'a Arc<Endpoint>>,
        key: Option<u64>,
    },
    /// This one (an `original-destination` cluster's endpoint, made per destination).
    Endpoint(Arc<Endpoint>),
}

/// What an attempt's end says about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered (not with a 5xx), or accepted the connection.
    Healthy,
    /// It answered that it is shedding load (`429`, gRPC `RESOURCE_EXHAUSTED`): alive
    /// and saying so, neither a failure nor a success; its fast refusals do not make it
    /// look quick to a latency-aware balancer.
    Shedding,
    /// It failed: a 5xx, a refused or broken connection, too slow.
    Failed,
    /// The attempt ended for a reason that is not the endpoint's (the client, a local
    /// limit): the breaker only gets its admission back.
    Unjudged,
}

impl Verdict {
    /// The verdict on a response head.
    pub fn of_response(status: StatusCode, headers: &HeaderMap) -> Self {
        let grpc_exhausted = headers
            .get(crate::http::response::GRPC_STATUS)
            .is_some_and(|v| v.as_bytes() == GRPC_RESOURCE_EXHAUSTED);
        if status == StatusCode::TOO_MANY_REQUESTS || grpc_exhausted {
            Verdict::Shedding
        } else if status.is_server_error() {
            Verdict::Failed
        } else {
            Verdict::Healthy
        }
    }

    /// The verdict on an error that ended the attempt: only the endpoint's own count.
    pub fn of_error(error: ProxyError) -> Self {
        match error.blame() {
            Blame::Upstream => Verdict::Failed,
            Blame::Downstream | Blame::Local => Verdict::Unjudged,
        }
    }
}

/// One try at one endpoint, from admission to its outcome (see the module docs).
#[derive(Debug)]
#[must_use = "an attempt reports its outcome when finished or dropped"]
pub struct Attempt {
    cluster: Arc<ClusterRuntime>,
    endpoint: Arc<Endpoint>,
    /// `max_requests` (HTTP) or `max_connections` (`tcp`, until handed over).
    slot: Option<Slot>,
    /// `max_retries`, for a retry.
    _retry_slot: Option<Slot>,
    /// When the proxy stops waiting for it: dropped at or after this, it was too slow.
    deadline: Option<Instant>,
    started: Instant,
    /// Not yet reported to the endpoint's breaker.
    open: bool,
}

impl ClusterRuntime {
    /// Begins an attempt: the gates `admission` names, then `target`'s endpoint if its
    /// breaker admits it. `deadline`: when the proxy stops waiting for this attempt.
    ///
    /// # Errors
    /// `Overflow` at a full gate (counted by limit); `NoHealthyEndpoint` or
    /// `CircuitOpen` when no endpoint may take it.
    pub fn begin(
        self: &Arc<Self>,
        admission: Admission,
        target: Target<'_>,
        deadline: Option<Instant>,
    ) -> Result<Attempt, ProxyError> {
        let gates = &self.gates;
        let (slot, retry_slot) = match admission {
            Admission::Request { queued, retry } => {
                let slot = gates.requests.try_acquire().ok_or(ProxyError::Overflow)?;
                if queued && !gates.admit_pending() {
                    return Err(ProxyError::Overflow);
                }
                let retry_slot = match retry {
                    true => Some(gates.retries.try_acquire().ok_or(ProxyError::Overflow)?),
                    false => None,
                };
                (slot, retry_slot)
            }
            Admission::Connection => {
                let slot = gates
                    .connections
                    .try_acquire()
                    .ok_or(ProxyError::Overflow)?;
                (slot, None)
            }
        };
        let endpoint = match target {
            Target::Pick { avoid, key } => self.pick(avoid, key)?.clone(),
            Target::Endpoint(endpoint) if endpoint.admit() => endpoint,
            Target::Endpoint(_) => return Err(ProxyError::CircuitOpen),
        };
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Attempt {
            cluster: self.clone(),
            endpoint,
            slot: Some(slot),
            _retry_slot: retry_slot,
            deadline,
            started: Instant::now(),
            open: true,
        })
    }
}

impl Attempt {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    pub fn cluster(&self) -> &Arc<ClusterRuntime> {
        &self.cluster
    }

    /// Time since the attempt began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The `max_connections` slot of a `tcp` attempt, for the connection it opens (which
    /// then holds it for its life).
    pub fn take_connection_slot(&mut self) -> Option<Slot> {
        self.slot.take()
    }

    /// The endpoint answered with this head: counted in its metrics and latency
    /// estimate, and judged by [`Verdict::of_response`]. Returns the time it took.
    pub fn answered(mut self, status: StatusCode, headers: &HeaderMap) -> Duration {
        // One clock read for the latency, the estimate's decay and the detector's timer.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started);
        self.endpoint.metrics.response(status, elapsed);
        let verdict = Verdict::of_response(status, headers);
        if verdict != Verdict::Shedding {
            self.endpoint.observe_latency_at(elapsed, now);
        }
        self.settle(verdict);
        super::latency::judge_if_due(&self.cluster, now);
        elapsed
    }

    /// The attempt ended with `error` (judged by its blame). Returns the time it took.
    pub fn failed(mut self, error: ProxyError) -> Duration {
        self.settle(Verdict::of_error(error));
        self.elapsed()
    }

    /// A `tcp` attempt's connection is open (or could not be).
    pub fn connected(mut self, ok: bool) {
        self.settle(if ok {
            Verdict::Healthy
        } else {
            Verdict::Failed
        });
    }

    fn settle(&mut self, verdict: Verdict) {
        if !std::mem::replace(&mut self.open, false) {
            return;
        }
        match verdict {
            Verdict::Healthy => self.endpoint.report(true, &self.cluster.ejection),
            Verdict::Failed => self.endpoint.report(false, &self.cluster.ejection),
            Verdict::Shedding | Verdict::Unjudged => self.endpoint.release(),
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.open {
            return;
        }
        let cut_at_deadline = self.deadline.is_some_and(|d| Instant::now() >= d);
        if cut_at_deadline {
            self.endpoint.metrics.timeouts.inc();
            self.endpoint.observe_cut(self.started.elapsed());
            self.settle(Verdict::Failed);
            super::latency::judge_if_due(&self.cluster, Instant::now());
        } else {
            self.settle(Verdict::Unjudged);
        }
    }
}

#[cfg(test)]
mod tests;
