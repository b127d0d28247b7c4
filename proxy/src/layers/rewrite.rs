//! Rewrite: the route's `rewrite` (path prefix, host) and its request/response header
//! edits (remove, then set, then add). A rewritten path stays in normalized form, or the
//! request is refused (400).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Uri, header};
use meshwork_config::model::{EscapedSlashes, HeaderModifier, PathMatch};
use meshwork_config::request_path::normalize_path;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;
use crate::router::RouteEntry;

#[derive(Clone, Copy, Debug)]
pub struct RewriteLayer;

impl<S> Layer<S> for RewriteLayer {
    type Service = Rewrite<S>;
    fn layer(&self, inner: S) -> Rewrite<S> {
        Rewrite { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Rewrite<S> {
    inner: S,
}

/// Applies header edits in the order remove, set, add.
pub fn apply_header_modifier(m: &HeaderModifier, headers: &mut HeaderMap) {
    for name in &m.remove {
        headers.remove(name);
    }
    for (name, value) in &m.set {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &m.add {
        headers.append(name.clone(), value.clone());
    }
}

pub fn apply_response_headers(m: &HeaderModifier, rsp: &mut ProxyResponse) {
    if !m.is_empty() {
        apply_header_modifier(m, rsp.headers_mut());
    }
}

/// Replaces the matched `prefix` of `path` with `replacement`, without doubling or
/// losing the `/` between them (`/v1/` -> `/` turns `/v1/x` into `/x`).
fn replace_prefix(path: &str, prefix: &str, replacement: &str) -> String {
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
    out.push_str(replacement);
    match (replacement.ends_with('/'), rest.starts_with('/')) {
        (true, true) => out.push_str(&rest[1..]),
        (false, false) if !rest.is_empty() && prefix.ends_with('/') => {
            out.push('/');
            out.push_str(rest);
        }
        _ => out.push_str(rest),
    }
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}

/// The path the upstream gets for `path` (normalized) when the route's matched `prefix`
/// is rewritten to `replacement` (in normalized form, checked by the config).
///
/// # Errors
/// `MalformedRequest` when the result is not in normalized form. Where the two meet, a
/// prefix without its closing `/` rewritten to one with it cuts a segment in two: `/api`
/// -> `/v2/` turns the normal `/api../admin` into `/v2/../admin`, which the upstream
/// reads as `/admin`, outside `/v2/`. The upstream must read what the route matched.
fn rewrite_path(path: &str, prefix: &str, replacement: &str) -> Result<String, ProxyError> {
    let rewritten = replace_prefix(path, prefix, replacement);
    // Escaped slashes were decided by the listener (and the config, for the replacement).
    match normalize_path(&rewritten, EscapedSlashes::Keep) {
        Ok(Cow::Borrowed(_)) => Ok(rewritten),
        Ok(Cow::Owned(_)) | Err(_) => Err(ProxyError::MalformedRequest),
    }
}

fn rewrite_request(
    route: &RouteEntry,
    req: &mut http::Request<crate::http::RequestBody>,
) -> Result<(), ProxyError> {
    if let Some(rewrite) = &route.config.rewrite {
        if let (Some(replacement), Some(PathMatch::Prefix(prefix))) =
            (&rewrite.path_prefix, &route.config.matcher.path)
        {
            let path = rewrite_path(req.uri().path(), prefix, replacement)?;
            let pq = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let pq = PathAndQuery::try_from(pq).map_err(|_| ProxyError::MalformedRequest)?;
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::MalformedRequest)?;
        }
        if let Some(host) = &rewrite.host {
            let value = HeaderValue::from_str(host).map_err(|_| ProxyError::MalformedRequest)?;
            req.headers_mut().insert(header::HOST, value);
            if req.uri().authority().is_some() {
                let authority =
                    Authority::try_from(host.as_str()).map_err(|_| ProxyError::MalformedRequest)?;
                let mut parts = req.uri().clone().into_parts();
                parts.authority = Some(authority);
                *req.uri_mut() =
                    Uri::from_parts(parts).map_err(|_| ProxyError::MalformedRequest)?;
            }
        }
    }
    if !route.config.request_headers.is_empty() {
        apply_header_modifier(&route.config.request_headers, req.headers_mut());
    }
    Ok(())
}

impl<S> Service<ProxyRequest> for Rewrite<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        let route = req.ctx.route.clone();
        if let Some(route) = &route {
            if let Err(e) = rewrite_request(route, &mut req.http) {
                return ResponseFuture::Failed { error: Some(e) };
            }
        }
        ResponseFuture::Running {
            inner: self.inner.call(req),
            route: route.filter(|r| !r.config.response_headers.is_empty()),
        }
    }
}

pin_project_lite::pin_project! {
    #[project = ResponseFutureProj]
    #[derive(Debug)]
    pub enum ResponseFuture<F> {
        Running { #[pin] inner: F, route: Option<Arc<RouteEntry>> },
        Failed { error: Option<ProxyError> },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ProxyResponse, ProxyError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ResponseFutureProj::Running { inner, route } => {
                let mut rsp = ready!(inner.poll(cx))?;
                if let Some(route) = route {
                    apply_response_headers(&route.config.response_headers, &mut rsp);
                }
                Poll::Ready(Ok(rsp))
            }
            ResponseFutureProj::Failed { error } => {
                Poll::Ready(Err(error.take().unwrap_or(ProxyError::MalformedRequest)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_replacement_keeps_exactly_one_slash() {
        assert_eq!(replace_prefix("/v1/users", "/v1/", "/"), "/users");
        assert_eq!(replace_prefix("/v1/users", "/v1", "/"), "/users");
        assert_eq!(replace_prefix("/v1/users", "/v1/", "/api/"), "/api/users");
        assert_eq!(replace_prefix("/v1/users", "/v1/", "/api"), "/api/users");
        assert_eq!(replace_prefix("/v1", "/v1", "/"), "/");
        assert_eq!(replace_prefix("/v1/", "/v1/", ""), "/");
        assert_eq!(replace_prefix("/v1x", "/v1", "/v2"), "/v2x");
    }

    #[test]
    fn a_rewrite_that_makes_a_dot_segment_where_prefix_and_rest_meet_is_refused() {
        assert_eq!(
            rewrite_path("/api/x", "/api", "/v2/").ok(),
            Some("/v2/x".into())
        );
        assert_eq!(
            rewrite_path("/api..x", "/api", "/v2/").ok(),
            Some("/v2/..x".into())
        );
        assert_eq!(
            rewrite_path("/api..", "/api", "/v2").ok(),
            Some("/v2..".into())
        );
        for (path, prefix, replacement) in [
            ("/api../admin", "/api", "/v2/"),
            ("/api..", "/api", "/v2/"),
            ("/api./x", "/api", "/v2/"),
            ("/api..%2Fx", "/api", "/v2/"),
        ] {
            assert!(
                matches!(
                    rewrite_path(path, prefix, replacement),
                    Err(ProxyError::MalformedRequest)
                ),
                "{path} {prefix} -> {replacement}"
            );
        }
    }

    #[test]
    fn header_edits_apply_remove_set_add_in_order() {
        let mut h = HeaderMap::new();
        h.insert("x-debug", HeaderValue::from_static("1"));
        h.insert("x-env", HeaderValue::from_static("dev"));
        h.insert("x-via", HeaderValue::from_static("lb"));
        let m = HeaderModifier {
            set: vec![(
                header::HeaderName::from_static("x-env"),
                HeaderValue::from_static("prod"),
            )],
            add: vec![(
                header::HeaderName::from_static("x-via"),
                HeaderValue::from_static("meshwork"),
            )],
            remove: vec![header::HeaderName::from_static("x-debug")],
        };
        apply_header_modifier(&m, &mut h);
        assert!(h.get("x-debug").is_none());
        assert_eq!(h["x-env"], "prod");
        let via: Vec<_> = h.get_all("x-via").iter().collect();
        assert_eq!(via, ["lb", "meshwork"]);
    }
}
