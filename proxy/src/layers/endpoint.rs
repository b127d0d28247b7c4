//! Endpoint: sends the request to the chosen endpoint over its pooled connection, in the
//! cluster's protocol, and tunnels protocol upgrades (WebSocket) both ways.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use meshwork_config::model::UpstreamProtocol;
use tower::Service;

use super::{ProxyRequest, ProxyResponse};
use crate::cluster::connector::ConnectError;
use crate::cluster::{ClusterRuntime, Endpoint};
use crate::http::headers::is_upgrade_request;
use crate::http::{ProxyError, ResponseBody};

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
    req: &http::Request<crate::http::RequestBody>,
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

async fn send(req: ProxyRequest) -> Result<ProxyResponse, ProxyError> {
    let ProxyRequest { http: mut req, ctx } = req;
    let (Some(endpoint), Some(cluster)) = (ctx.endpoint.clone(), ctx.cluster.clone()) else {
        return Err(ProxyError::NoHealthyEndpoint);
    };
    ctx.record.set_endpoint(&endpoint);
    let authority = upstream_authority(&req, &endpoint)?;
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::MalformedRequest)?;

    let http2 = cluster.config.protocol == UpstreamProtocol::Http2;
    let downstream_upgrade: Option<OnUpgrade> = if !http2 && is_upgrade_request(req.headers()) {
        req.extensions_mut().remove::<OnUpgrade>()
    } else {
        None
    };
    if http2 {
        // RFC 9113 §8.3.1: `:authority` carries the host; a differing Host must not be sent.
        req.headers_mut().remove(header::HOST);
        *req.version_mut() = Version::HTTP_2;
    } else {
        if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        *req.version_mut() = Version::HTTP_11;
    }

    let attempt = ClientSpan::begin(&ctx, &mut req);
    let sent = tokio::time::Instant::now();
    let Some(request_slot) = cluster.gates.requests.try_acquire() else {
        return Err(ProxyError::Overflow);
    };
    if !http2 && !cluster.gates.admit_pending() {
        return Err(ProxyError::Overflow);
    }
    let in_flight = crate::cluster::InFlight::new(&endpoint);
    let breaker = BreakerReport::new(&endpoint, &cluster.ejection);
    let result = endpoint.client.request(req).await;
    drop(in_flight);
    drop(request_slot);
    match &result {
        // The cluster's own limit, not the endpoint's health.
        Err(error) if is_overflow(error) => breaker.forget(),
        Ok(rsp) => breaker.report(!rsp.status().is_server_error()),
        Err(_) => breaker.report(false),
    }
    let elapsed = sent.elapsed();
    let mut rsp = match result {
        Ok(rsp) => rsp,
        Err(error) => {
            let kind = classify(&cluster, &endpoint, &error);
            if let Some(span) = attempt {
                span.end(&ctx, &cluster, &endpoint, Err(kind), elapsed);
            }
            return Err(kind);
        }
    };
    endpoint.metrics.response(rsp.status(), elapsed);
    endpoint.observe_latency(elapsed);
    if let Some(span) = attempt {
        span.end(&ctx, &cluster, &endpoint, Ok(rsp.status()), elapsed);
    }

    if rsp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(downstream) = downstream_upgrade {
            let upstream = hyper::upgrade::on(&mut rsp);
            tokio::spawn(tunnel(downstream, upstream, endpoint.clone()));
        }
    }
    Ok(rsp.map(ResponseBody::from))
}

/// Reports an attempt's outcome to the endpoint's circuit breaker; an attempt dropped
/// before it finished (a timeout cut it) counts as a failure.
struct BreakerReport<'a> {
    endpoint: &'a Endpoint,
    ejection: &'a crate::cluster::breaker::EjectionBudget,
    pending: bool,
}

impl<'a> BreakerReport<'a> {
    fn new(endpoint: &'a Endpoint, ejection: &'a crate::cluster::breaker::EjectionBudget) -> Self {
        Self {
            endpoint,
            ejection,
            pending: true,
        }
    }

    fn report(mut self, success: bool) {
        self.pending = false;
        self.endpoint.report(success, self.ejection);
    }

    fn forget(mut self) {
        self.pending = false;
    }
}

impl Drop for BreakerReport<'_> {
    fn drop(&mut self) {
        if self.pending {
            self.endpoint.report(false, self.ejection);
        }
    }
}

/// One upstream attempt's client span: its id is the parent the upstream is told about.
struct ClientSpan {
    span_id: opentelemetry::trace::SpanId,
    start: std::time::SystemTime,
    method: http::Method,
}

impl ClientSpan {
    /// Writes the trace context for this attempt into the upstream request.
    fn begin(
        ctx: &super::RequestContext,
        req: &mut http::Request<crate::http::RequestBody>,
    ) -> Option<Self> {
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

/// Whether the connector refused for the cluster's `max_connections`.
fn is_overflow(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if matches!(
            e.downcast_ref::<ConnectError>(),
            Some(ConnectError::Overflow)
        ) {
            return true;
        }
        source = e.source();
    }
    false
}

/// Connect failures (nothing was sent) vs. everything else (the connection broke).
fn classify(
    cluster: &ClusterRuntime,
    endpoint: &Endpoint,
    error: &hyper_util::client::legacy::Error,
) -> ProxyError {
    if is_overflow(error) {
        // Counted here, for the request it turned away; the pool's own background
        // connects that time out the same way turn nobody away.
        cluster.gates.connections.count_overflow();
        return ProxyError::Overflow;
    }
    let kind = if error.is_connect() {
        // Counted by the connector, which also sees connects the pool makes on its own.
        ProxyError::ConnectFailed
    } else {
        endpoint.metrics.resets.inc();
        ProxyError::UpstreamReset
    };
    let cause = std::error::Error::source(error)
        .map(|e| e.to_string())
        .unwrap_or_default();
    tracing::debug!(endpoint = %endpoint.address, %error, %cause, reason = kind.reason(), "upstream request failed");
    kind
}

/// Copies bytes both ways between an upgraded client and upstream until either closes.
async fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade, endpoint: Arc<Endpoint>) {
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(endpoint = %endpoint.address, %error, "upgrade failed");
            return;
        }
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    match tokio::io::copy_bidirectional(&mut down, &mut up).await {
        Ok((from_client, from_upstream)) => {
            tracing::debug!(endpoint = %endpoint.address, from_client, from_upstream, "tunnel closed")
        }
        Err(error) => tracing::debug!(endpoint = %endpoint.address, %error, "tunnel broken"),
    }
}
