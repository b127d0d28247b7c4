//! Endpoint: one attempt of a request. The chosen cluster begins it (its gates, then an
//! endpoint its balancer picks and its breaker admits: `cluster/attempt.rs`); the
//! request goes over the endpoint's pooled connection, in the cluster's protocol,
//! tunneling the protocol upgrades its route allows (WebSocket by default) both ways;
//! the attempt then hears how it went, counting only what the endpoint is to blame for.
//!
//! To an `auto` cluster (whose pool may have negotiated `h2`) an upgrade travels on an
//! HTTP/1.1 connection of its own (`cluster::upgrade_conn`); an HTTP/2 client's extended
//! CONNECT (RFC 8441) becomes an HTTP/1.1 upgrade here, once its route allowed the
//! protocol (`http::extended_connect`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::http::client_upgrade::ClientUpgrade;
use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri, Version, header};
use meshwork_config::model::UpstreamProtocol;
use tower::Service;

use super::{ProxyRequest, ProxyResponse};
use crate::cluster::Endpoint;
use crate::cluster::attempt::Admission;
use crate::cluster::failure::{Failure, classify, describe};
use crate::cluster::pool::UpstreamBody;
use crate::cluster::upgrade_conn;
use crate::http::extended_connect;
use crate::http::tunnel::{Downstream, PendingTunnel};
use crate::http::upgrade;
use crate::http::{ProxyError, RequestBody, ResponseBody};

#[derive(Clone, Copy, Debug)]
pub struct EndpointService;

type BoxFuture = Pin<Box<dyn Future<Output = Result<ProxyResponse, ProxyError>> + Send>>;

impl Service<ProxyRequest> for EndpointService {
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ProxyRequest) -> BoxFuture {
        Box::pin(send(req))
    }
}

/// The authority the upstream should see: the request's own (`:authority` or `Host`),
/// falling back to the endpoint's address for HTTP/1.0 requests without a `Host`.
fn upstream_authority(
    req: &http::Request<RequestBody>,
    endpoint: &Endpoint,
) -> Result<Authority, ProxyError> {
    if let Some(a) = req.uri().authority() {
        return Ok(a.clone());
    }
    if let Some(host) = req.headers().get(header::HOST) {
        return Authority::try_from(host.as_bytes()).map_err(|_| ProxyError::MalformedRequest);
    }
    Authority::try_from(&*endpoint.address_text).map_err(|_| ProxyError::MalformedRequest)
}

/// Makes the request what the endpoint gets: an absolute URI, the cluster's protocol
/// version, `Host` for HTTP/1, and only an upgrade its route allows (from an HTTP/1.1
/// client, or an HTTP/2 extended CONNECT, to a cluster that is not HTTP/2-only; any
/// other HTTP/1.1 upgrade goes on as a plain request).
///
/// # Errors
/// A malformed authority; an extended CONNECT its route or cluster cannot tunnel.
fn prepare(
    req: &mut http::Request<RequestBody>,
    ctx: &super::RequestContext,
    endpoint: &Endpoint,
    http2: bool,
) -> Result<Option<PendingTunnel>, ProxyError> {
    let authority = upstream_authority(req, endpoint)?;
    // HTTP/1 needs a `Host`; made before the authority moves into the URI, as a clone of
    // it would allocate (its bytes turning shared) for a header most requests have.
    let host = (!http2 && !req.headers().contains_key(header::HOST))
        .then(|| http::HeaderValue::from_str(authority.as_str()).ok())
        .flatten();
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::MalformedRequest)?;

    let allowed = ctx
        .route
        .as_ref()
        .map_or(&[][..], |r| &r.config.upgrades[..]);
    let pending = match extended_connect::protocol(req).cloned() {
        Some(protocol) => Some(admit_extended_connect(req, &protocol, allowed, http2)?),
        None => {
            let tunnel = !http2
                && req.version() == Version::HTTP_11
                && req.extensions().get::<ClientUpgrade>().is_some();
            upgrade::negotiate(req.headers_mut(), allowed, tunnel).and_then(|requested| {
                let client = req.extensions_mut().remove::<ClientUpgrade>()?;
                Some(PendingTunnel::new(requested, client, Downstream::Http1))
            })
        }
    };
    if http2 {
        // RFC 9113 §8.3.1: `:authority` carries the host; a differing Host must not be sent.
        req.headers_mut().remove(header::HOST);
        *req.version_mut() = Version::HTTP_2;
    } else {
        if let Some(host) = host {
            req.headers_mut().insert(header::HOST, host);
        }
        *req.version_mut() = Version::HTTP_11;
    }
    Ok(pending)
}

/// An HTTP/2 extended CONNECT becomes an HTTP/1.1 upgrade request only when its
/// `:protocol` is one protocol name, its route's `upgrades` allow it (`h2c` never), and
/// the cluster can speak HTTP/1.1; otherwise no tunnel opens and nothing is sent.
fn admit_extended_connect(
    req: &mut http::Request<RequestBody>,
    protocol: &hyper::ext::Protocol,
    allowed: &[String],
    http2: bool,
) -> Result<PendingTunnel, ProxyError> {
    if !extended_connect::is_one_protocol(protocol.as_str()) {
        return Err(ProxyError::MalformedRequest);
    }
    if !upgrade::allows(allowed, protocol.as_str()) {
        return Err(ProxyError::UpgradeNotAllowed);
    }
    if http2 {
        tracing::debug!(
            protocol = protocol.as_str(),
            "an HTTP/2-only cluster cannot carry an upgrade"
        );
        return Err(ProxyError::UpgradeFailed);
    }
    // The server connection hands every extended CONNECT its side of the tunnel; a copy
    // of the request (a retry, a mirror) has none.
    let client = req
        .extensions_mut()
        .remove::<ClientUpgrade>()
        .ok_or(ProxyError::UpgradeFailed)?;
    let answer = extended_connect::into_upgrade(req, protocol);
    Ok(PendingTunnel::new(
        upgrade::Requested::one(protocol.as_str()),
        client,
        Downstream::Http2(answer),
    ))
}

async fn send(req: ProxyRequest) -> Result<ProxyResponse, ProxyError> {
    let super::StackRequest { http: mut req, ctx } = *req;
    let Some(cluster) = ctx.cluster.clone() else {
        return Err(ProxyError::NoHealthyEndpoint);
    };
    let http2 = cluster.config.protocol == UpstreamProtocol::Http2;
    // A retry prefers an endpoint other than the one its last attempt went to.
    let avoid = ctx.retry.then(|| ctx.record.last_endpoint()).flatten();
    let admission = Admission::Request {
        queued: !http2,
        retry: ctx.retry,
    };
    let target = super::balance::target(&ctx, &req, &cluster, avoid.as_ref());
    let attempt = match cluster.begin(admission, target, ctx.deadline) {
        Ok(attempt) => attempt,
        Err(error) => {
            ctx.record.attempted(&cluster, None, ctx.hedge);
            return Err(error);
        }
    };
    let endpoint = attempt.endpoint().clone();
    ctx.record.attempted(&cluster, Some(&endpoint), ctx.hedge);
    let pending_tunnel = match prepare(&mut req, &ctx, &endpoint, http2) {
        Ok(pending) => pending,
        Err(error) => {
            attempt.failed(error);
            return Err(error);
        }
    };
    let client_faults = req.body_mut().watch_client_faults();
    let span = ClientSpan::begin(&ctx, &mut req);
    // An `auto` cluster's pooled connection may be `h2`, which has no `101`: its upgrades
    // take an HTTP/1.1 connection of their own. An `http1` cluster's pool is HTTP/1.1
    // already, and hands an idle connection to the upgrade (to hyper's client, which
    // turns it into the tunnel).
    let own_connection =
        pending_tunnel.is_some() && cluster.config.protocol == UpstreamProtocol::Auto;
    // Boxed, like the pool's connects: this path's future (a connect and a handshake) is
    // most of the size of every request's future, which each request moves whole.
    let result = if own_connection {
        Box::pin(upgrade_conn::send(&endpoint, req))
            .await
            .map(|rsp| rsp.map(UpstreamBody::from))
            .map_err(|e| (Failure::of_upgrade(&e), e.to_string()))
    } else {
        endpoint
            .client
            .send(req)
            .await
            .map_err(|e| (Failure::of_send(&e), describe(&e)))
    };
    let outcome = match result {
        Ok(rsp) => refuse_unrequested_switch(rsp, pending_tunnel.as_ref(), &endpoint),
        Err((failure, cause)) => Err(classify(
            &cluster,
            &endpoint,
            failure,
            &cause,
            client_faults.and_then(|f| f.get()),
        )),
    };
    let elapsed = match &outcome {
        Ok(rsp) => attempt.answered(rsp.status(), rsp.headers()),
        Err(error) => attempt.failed(*error),
    };
    if let Some(span) = span {
        let status = outcome.as_ref().map(|rsp| rsp.status()).map_err(|e| *e);
        span.end(&ctx, &cluster, &endpoint, status, elapsed);
    }
    let mut rsp = outcome?;
    if let Some(pending) = pending_tunnel {
        // Tracked: the drain lets the tunnel finish, and counts it if the deadline cuts it.
        rsp = pending.open(rsp, &endpoint.address_text, &ctx.snapshot.connections)?;
    }
    Ok(rsp.map(ResponseBody::from))
}

/// A `101` is relayed only when it switches to a protocol that was asked for; any other
/// is a 502, and the upstream connection (already handed over to the switch) is dropped
/// with the response, so nothing of the other protocol reaches the client.
fn refuse_unrequested_switch(
    rsp: http::Response<UpstreamBody>,
    pending: Option<&PendingTunnel>,
    endpoint: &Endpoint,
) -> Result<http::Response<UpstreamBody>, ProxyError> {
    if rsp.status() != StatusCode::SWITCHING_PROTOCOLS
        || pending.is_some_and(|p| p.accepts(rsp.headers()))
    {
        return Ok(rsp);
    }
    tracing::debug!(endpoint = %endpoint.address, upgrade = ?rsp.headers().get(header::UPGRADE), "upstream switched protocols unasked; dropping the connection");
    Err(ProxyError::UnrequestedUpgrade)
}

/// One upstream attempt's client span: its id is the parent the upstream is told about.
struct ClientSpan {
    span_id: opentelemetry::trace::SpanId,
    start: std::time::SystemTime,
    method: http::Method,
}

impl ClientSpan {
    /// Writes the trace context for this attempt into the upstream request.
    fn begin(ctx: &super::RequestContext, req: &mut http::Request<RequestBody>) -> Option<Self> {
        let tracer = ctx.snapshot.tracer.as_ref()?;
        let info = ctx.record.trace.get()?;
        let span_id = crate::trace::new_span_id();
        let out = crate::trace::context::Outgoing {
            trace_id: info.trace_id,
            span_id,
            sampled: info.sampled,
            tracestate: info.tracestate.as_ref(),
        };
        crate::trace::context::inject(req.headers_mut(), &out, tracer.propagation());
        Some(Self {
            span_id,
            start: std::time::SystemTime::now(),
            method: req.method().clone(),
        })
    }

    fn end(
        self,
        ctx: &super::RequestContext,
        cluster: &crate::cluster::ClusterRuntime,
        endpoint: &Endpoint,
        outcome: Result<StatusCode, ProxyError>,
        elapsed: std::time::Duration,
    ) {
        let (Some(tracer), Some(info)) = (ctx.snapshot.tracer.as_ref(), ctx.record.trace.get())
        else {
            return;
        };
        if !info.sampled || !tracer.exports() {
            return;
        }
        let mut span = crate::trace::SpanBuilder::new(
            &[self.method.as_str(), " ", cluster.name()],
            opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client,
            info.trace_id,
            self.span_id,
            Some(info.span_id),
        )
        .str("http.request.method", self.method.as_str())
        .str("meshwork.cluster", cluster.name())
        .str("meshwork.endpoint", &endpoint.address_text)
        .str("server.address", &endpoint.address.host)
        .int("server.port", i64::from(endpoint.address.port));
        match outcome {
            Ok(status) => {
                span = span.int("http.response.status_code", i64::from(status.as_u16()));
                if status.is_server_error() {
                    span = span.error(&status.to_string());
                }
            }
            Err(kind) => {
                span = span
                    .str("error.type", kind.reason())
                    .error(&kind.to_string())
            }
        }
        tracer.export(span.finish(self.start, elapsed));
    }
}
