//! Mirror: a copy of a share of the route's requests (`mirror: {cluster, percent}`) goes
//! to another cluster, fire and forget (Envoy's request shadowing). The client's request
//! goes on at once and never waits for the copy; the copy's response is read and
//! dropped, and its errors and latency are only counted.
//!
//! The copy carries the request as rewritten by the route, with `-shadow` appended to
//! its host (`api.example.com` -> `api.example.com-shadow`, as Envoy does) so the mirror
//! cluster can tell copies from real traffic. A request body is copied as it streams to
//! the real upstream ([`BodyTee`]), and the copy is sent once the body has ended; a body
//! longer than [`MAX_MIRRORED_BODY`] is not mirrored (counted as `skipped`), nor is a
//! protocol upgrade. A copy gets the route's `timeout` (15 s without one) from its
//! start to the end of its response, and the mirror cluster's own limits, breakers and
//! balancer apply to it.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Uri, Version, header};
use http_body_util::BodyExt;
use meshwork_config::model::UpstreamProtocol;
use tokio::sync::oneshot;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::cluster::ClusterRuntime;
use crate::cluster::attempt::{Admission, Target};
use crate::cluster::failure::{Failure, classify, describe};
use crate::http::headers::is_upgrade_request;
use crate::http::tee::{BodyTee, CopiedBody, MAX_MIRRORED_BODY};
use crate::http::{ProxyError, RequestBody};
use crate::snapshot::HttpListenerPlan;

/// How long a copy may take when its route has no `timeout` (Envoy's default route
/// timeout).
pub const DEFAULT_MIRROR_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug)]
pub struct MirrorLayer;

impl<S> Layer<S> for MirrorLayer {
    type Service = Mirror<S>;
    fn layer(&self, inner: S) -> Mirror<S> {
        Mirror { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Mirror<S> {
    inner: S,
}

impl<S> Service<ProxyRequest> for Mirror<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        if let Some(copy) = copy_if_chosen(&mut req) {
            tokio::spawn(copy.send());
        }
        self.inner.call(req)
    }
}

/// How a copy ended, as counted in `meshwork_http_mirror_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The mirror cluster answered (any status).
    Answered,
    /// No endpoint, a cluster limit, a connect failure, a reset or the timeout.
    Failed,
    /// Not sent: the body was too long, or the client's body did not complete.
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The body of a copy: known now, or arriving when the client's body has ended.
enum CopyBody {
    Now(CopiedBody),
    Later(oneshot::Receiver<CopiedBody>),
    /// Too long to copy.
    None,
}

/// One copy of a request on its way to the mirror cluster.
struct Copy {
    cluster: Arc<ClusterRuntime>,
    plan: Option<Arc<HttpListenerPlan>>,
    route: Arc<str>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    client: IpAddr,
    body: CopyBody,
    timeout: Duration,
}

/// The copy of `req` to send, when its route mirrors and this request falls in the share;
/// sets up the copy of the body as it streams.
fn copy_if_chosen(req: &mut ProxyRequest) -> Option<Copy> {
    let route = req.ctx.route.as_ref()?;
    let percent = route.config.mirror.as_ref()?.percent;
    let cluster = route.mirror.clone()?;
    if !super::fault::roll(percent)
        || is_upgrade_request(req.http.headers())
        || req.http.method() == Method::CONNECT
    {
        return None;
    }
    let body = req.http.body_mut();
    let body = if http_body::Body::is_end_stream(body) {
        CopyBody::Now(CopiedBody {
            data: Default::default(),
            trailers: None,
        })
    } else if http_body::Body::size_hint(body).lower() > MAX_MIRRORED_BODY as u64 {
        CopyBody::None
    } else {
        let (tee, rx) = BodyTee::new(MAX_MIRRORED_BODY);
        if body.tee(tee) {
            CopyBody::Later(rx)
        } else {
            // Already buffered whole elsewhere: nothing streams past to copy.
            CopyBody::None
        }
    };
    Some(Copy {
        cluster,
        plan: req.ctx.plan.clone(),
        route: route.name().into(),
        method: req.http.method().clone(),
        uri: req.http.uri().clone(),
        headers: req.http.headers().clone(),
        client: req.ctx.client_addr.ip(),
        body,
        timeout: route.config.timeout.unwrap_or(DEFAULT_MIRROR_TIMEOUT),
    })
}

impl Copy {
    /// Sends the copy and counts how it went; never fails.
    async fn send(mut self) {
        let body = match std::mem::replace(&mut self.body, CopyBody::None) {
            CopyBody::Now(body) => Some(body),
            CopyBody::Later(rx) => rx.await.ok(),
            CopyBody::None => None,
        };
        let outcome = match body {
            Some(body) => {
                let deadline = tokio::time::Instant::now() + self.timeout;
                tokio::time::timeout_at(deadline, self.exchange(body, deadline))
                    .await
                    .unwrap_or(Outcome::Failed)
            }
            None => Outcome::Skipped,
        };
        if let Some(plan) = &self.plan {
            plan.mirrored(&self.route, self.cluster.name(), outcome.as_str());
        }
    }

    /// Shapes the copy, begins an attempt at the mirror cluster (cut at `deadline`),
    /// sends it, and reads the response to its end (so the connection goes back to the
    /// pool).
    async fn exchange(&self, body: CopiedBody, deadline: tokio::time::Instant) -> Outcome {
        let cluster = &self.cluster;
        let Some(req) = self.request(body, cluster.config.protocol) else {
            return Outcome::Failed;
        };
        let key = super::balance::hash_key_of(cluster, &self.headers, self.client);
        let admission = Admission::Request {
            queued: false,
            retry: false,
        };
        let target = Target::Pick { avoid: None, key };
        let Ok(attempt) = cluster.begin(admission, target, Some(deadline)) else {
            return Outcome::Failed;
        };
        let endpoint = attempt.endpoint().clone();
        let rsp = match endpoint.client.send(req).await {
            Ok(rsp) => rsp,
            Err(error) => {
                // Classified as the client's requests are: a connection limit is not the
                // endpoint's failure.
                let failure = Failure::of_send(&error);
                attempt.failed(classify(
                    cluster,
                    &endpoint,
                    failure,
                    &describe(&error),
                    None,
                ));
                return Outcome::Failed;
            }
        };
        attempt.answered(rsp.status(), rsp.headers());
        // Drained rather than dropped, so an HTTP/1 connection can be reused.
        let _ = rsp.into_body().collect().await;
        Outcome::Answered
    }

    /// The copy as an upstream request in the mirror cluster's protocol.
    fn request(
        &self,
        body: CopiedBody,
        protocol: UpstreamProtocol,
    ) -> Option<http::Request<RequestBody>> {
        let authority = self.uri.authority().cloned().or_else(|| {
            let host = self.headers.get(header::HOST)?;
            Authority::try_from(host.as_bytes()).ok()
        })?;
        let authority = shadow_authority(&authority)?;
        let path = self
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .ok()?;
        let mut req = http::Request::new(RequestBody::replay(body.data, body.trailers));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = self.headers.clone();
        if protocol == UpstreamProtocol::Http2 {
            req.headers_mut().remove(header::HOST);
            *req.version_mut() = Version::HTTP_2;
        } else {
            let host = http::HeaderValue::from_str(authority.as_str()).ok()?;
            req.headers_mut().insert(header::HOST, host);
            *req.version_mut() = Version::HTTP_11;
        }
        Some(req)
    }
}

/// `host[:port]` -> `host-shadow[:port]`.
fn shadow_authority(authority: &Authority) -> Option<Authority> {
    let shadow = match authority.port() {
        Some(port) => format!("{}-shadow:{port}", authority.host()),
        None => format!("{}-shadow", authority.host()),
    };
    Authority::try_from(shadow).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster::{cluster, one_strike_breaker};
    use meshwork_config::model::ClusterLimits;

    /// A copy of `GET /` for `authority` (none: a request it cannot be shaped from).
    fn copy(cluster: Arc<ClusterRuntime>, authority: Option<&str>) -> Copy {
        let mut headers = HeaderMap::new();
        if let Some(a) = authority {
            headers.insert(header::HOST, a.parse().unwrap());
        }
        Copy {
            cluster,
            plan: None,
            route: "r".into(),
            method: Method::GET,
            uri: Uri::from_static("/"),
            headers,
            client: IpAddr::from([127, 0, 0, 1]),
            body: CopyBody::Now(CopiedBody {
                data: Default::default(),
                trailers: None,
            }),
            timeout: Duration::from_secs(1),
        }
    }

    /// A cluster of `addr` whose one-strike breaker has just turned half-open: the next
    /// pick takes its only trial.
    async fn half_open(addr: std::net::SocketAddr, limits: ClusterLimits) -> Arc<ClusterRuntime> {
        let c = cluster("mirror", &[addr], Some(one_strike_breaker()), limits);
        c.endpoints[0].report(false, &c.ejection);
        tokio::time::advance(Duration::from_secs(10)).await;
        c
    }

    /// Whether the endpoint takes traffic again once the longest open time has passed:
    /// false when its half-open trial was lost (it would be refused until a reload).
    async fn recovers(c: &ClusterRuntime) -> bool {
        tokio::time::advance(Duration::from_secs(41)).await;
        c.pick(None, None).is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_turned_away_by_max_requests_loses_no_half_open_trial() {
        let limits = ClusterLimits {
            max_requests: 1,
            ..Default::default()
        };
        let c = half_open("127.0.0.1:9".parse().unwrap(), limits).await;
        let held = c.gates.requests.try_acquire().unwrap();
        copy(c.clone(), Some("a.test")).send().await;
        drop(held);
        assert!(recovers(&c).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_that_cannot_be_shaped_loses_no_half_open_trial() {
        let c = half_open("127.0.0.1:9".parse().unwrap(), Default::default()).await;
        copy(c.clone(), None).send().await;
        assert!(recovers(&c).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_cut_by_its_timeout_is_the_endpoint_s_failure_not_a_lost_trial() {
        // Accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                open.push(conn);
            }
        });
        let c = half_open(addr, Default::default()).await;
        copy(c.clone(), Some("a.test")).send().await;
        assert_eq!(
            c.endpoints[0].breaker.as_ref().map(|b| b.state()),
            Some(crate::cluster::breaker::BreakerState::Open),
            "the trial timed out: open again"
        );
        assert_eq!(c.endpoints[0].metrics.timeouts.get(), 1);
        assert!(recovers(&c).await);
    }

    #[test]
    fn the_shadow_host_keeps_the_port() {
        let shadow = |a: &'static str| shadow_authority(&Authority::from_static(a)).unwrap();
        assert_eq!(shadow("api.example.com"), "api.example.com-shadow");
        assert_eq!(
            shadow("api.example.com:8080"),
            "api.example.com-shadow:8080"
        );
        assert_eq!(shadow("127.0.0.1:80"), "127.0.0.1-shadow:80");
    }
}
