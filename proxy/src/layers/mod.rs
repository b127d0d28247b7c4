//! The per-request stack: one tower layer per step of a request's journey, composed in
//! exactly one place ([`http_stack`]) so it reads top to bottom (docs/request-path.md).

pub mod authorize;
pub mod balance;
pub mod endpoint;
pub mod fault;
pub mod forward;
pub mod mirror;
pub mod normalize;
pub mod observe;
pub mod rate_limit;
pub mod rescue;
pub mod respond;
pub mod retry;
pub mod rewrite;
pub mod route;
pub mod split;
pub mod step;
#[cfg(test)]
pub mod test_request;
pub mod timeout;

use std::net::SocketAddr;
use std::sync::Arc;

use tower::ServiceBuilder;

use crate::cluster::ClusterRuntime;
use crate::http::{ProxyError, RequestBody, ResponseBody};
use crate::observe::RequestRecord;
use crate::router::RouteEntry;
use crate::snapshot::{HttpListenerPlan, Snapshot};

/// A request on its way through the stack, boxed once where it enters (the listener):
/// every layer's `call` takes the request by value, and the head and context together
/// are several hundred bytes, which a callgrind profile showed copied at each of the
/// stack's layers (`memcpy` was 12% of a request's instructions). Boxed, each layer moves
/// a pointer.
pub type ProxyRequest = Box<StackRequest>;

/// The request and what earlier layers decided about it.
#[derive(Debug)]
pub struct StackRequest {
    pub http: http::Request<RequestBody>,
    pub ctx: RequestContext,
}

impl StackRequest {
    /// The request as the stack takes it.
    pub fn boxed(http: http::Request<RequestBody>, ctx: RequestContext) -> ProxyRequest {
        Box::new(Self { http, ctx })
    }
}

/// Decisions and facts about one request, filled in layer by layer.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The config this request runs on, start to finish.
    pub snapshot: Arc<Snapshot>,
    pub listener: Arc<str>,
    /// The listener's routes in this snapshot (`None` if the listener was just removed).
    pub plan: Option<Arc<HttpListenerPlan>>,
    /// What happened, for metrics and the access log.
    pub record: Arc<RequestRecord>,
    pub client_addr: SocketAddr,
    /// The client's IP as `x-forwarded-for` text, made once per connection
    /// ([`crate::http::headers::client_address_value`]).
    pub client_address_value: http::HeaderValue,
    /// The verified SPIFFE ID of the client's certificate (mTLS listeners).
    pub peer_identity: Option<Arc<str>>,
    /// `http` or `https`, as seen by the client.
    pub scheme: &'static str,
    pub route: Option<Arc<RouteEntry>>,
    /// The cluster the split chose for this attempt.
    pub cluster: Option<Arc<ClusterRuntime>>,
    /// Where the request's connection was going before interception redirected it
    /// (`auto` listeners): the `original-destination` cluster sends it there.
    pub original_destination: Option<SocketAddr>,
    /// The client's address when its connection was delivered by TPROXY: original
    /// destinations are dialed from it, so the app sees who called.
    pub transparent_source: Option<std::net::IpAddr>,
    /// This attempt follows a failed one: it takes a `max_retries` slot of its cluster
    /// and prefers an endpoint other than the last attempt's.
    pub retry: bool,
    /// This attempt is a hedge: sent while an earlier one is still out (it also takes a
    /// `max_retries` slot and prefers another endpoint, as `retry` says).
    pub hedge: bool,
    /// When the proxy gives up waiting (the route's `timeout`, or its retry policy's
    /// `per_try_timeout` for one attempt). An attempt dropped at or after it was cut for
    /// being slow, which is the endpoint's failure; one dropped before it was abandoned
    /// by its client, which is not.
    pub deadline: Option<tokio::time::Instant>,
}

pub type ProxyResponse = http::Response<ResponseBody>;

/// The HTTP request stack, outermost first. Reading it top to bottom is a request's
/// journey through the proxy.
pub fn http_stack() -> observe::Observe<
    rescue::Rescue<
        impl tower::Service<
            ProxyRequest,
            Response = ProxyResponse,
            Error = ProxyError,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    >,
> {
    let stack = ServiceBuilder::new()
        // First, before anything reads the path: normalize it (RFC 3986 §6.2.2, dot
        // segments, merged slashes) and rewrite the URI, so the policy, the route, a
        // rewrite, the mirror and the upstream all see one path; 400 for a path they
        // could read differently (encoded slashes, `..;`, climbing above `/`...).
        .layer(normalize::NormalizePathLayer::new())
        // Proxy semantics: one authority per request (400 when Host and :authority
        // disagree), strip hop-by-hop headers and h2c upgrades, add x-forwarded-*,
        // x-request-id.
        .layer(forward::ForwardLayer)
        // The listener's authorization policy by peer identity (403 when it refuses);
        // the verified identity is passed on to the application.
        .layer(authorize::AuthorizeLayer::new())
        // Match the request against the listener's route table (404 when none).
        .layer(route::RouteLayer::new())
        // The route's local token bucket (429 when empty).
        .layer(rate_limit::RateLimitLayer::new())
        // Injected delays and aborts, before the timeout starts (as in Envoy).
        .layer(fault::FaultLayer)
        // Routes that answer themselves: direct_response, redirect.
        .layer(respond::RespondLayer::new())
        // The route's overall timeout (504), covering everything below.
        .layer(timeout::TimeoutLayer)
        // Path/host rewrites and request/response header edits.
        .layer(rewrite::RewriteLayer)
        // A fire-and-forget copy of a share of the route's requests to its mirror
        // cluster, once per request (not per retry), as rewritten.
        .layer(mirror::MirrorLayer)
        // Retries with backoff and budget; each attempt goes through split and balance.
        .layer(retry::RetryLayer)
        // Weighted choice of the backend cluster, per attempt.
        .layer(split::SplitLayer::new())
        // One attempt (cluster/attempt.rs): the cluster's gates, then an endpoint its
        // balancer picks and its breaker admits, in one step; sent over the endpoint's
        // pooled connection (tunneling the upgrades the route allows); only the
        // endpoint's own failures count against its breaker.
        .service(endpoint::EndpointService);
    // Turn every error into the response the contract says, so the service given to
    // hyper never fails.
    let rescued = rescue::Rescue::new(stack);
    // Outermost: when the response ends, report the request (metrics, access log).
    observe::Observe::new(rescued)
}
