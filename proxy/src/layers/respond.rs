//! Respond: routes that answer without an upstream — `direct_response` and `redirect`.

use http::{HeaderValue, Response, Uri, header};
use meshwork_config::model::{Redirect, RouteAction};

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::http::{ProxyError, ResponseBody};

#[derive(Debug)]
pub struct Respond;

pub type RespondLayer = StepLayer<Respond>;

impl Step for Respond {
    fn decide(req: &mut ProxyRequest) -> Decision {
        let Some(route) = req.ctx.route.clone() else {
            return Decision::Continue;
        };
        let rsp = match &route.config.action {
            RouteAction::Backends(_) => return Decision::Continue,
            RouteAction::DirectResponse(direct) => {
                let mut rsp = Response::new(ResponseBody::full(direct.body.clone()));
                *rsp.status_mut() = direct.status;
                if !direct.body.is_empty() {
                    rsp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                }
                rsp
            }
            RouteAction::Redirect(redirect) => {
                let host = req
                    .http
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok());
                let location = redirect_location(redirect, req.http.uri(), host, req.ctx.scheme);
                let mut rsp = Response::new(ResponseBody::empty());
                *rsp.status_mut() = redirect.status;
                match HeaderValue::from_str(&location) {
                    Ok(v) => {
                        rsp.headers_mut().insert(header::LOCATION, v);
                    }
                    Err(_) => return Decision::Answer(Err(ProxyError::MalformedRequest)),
                }
                rsp
            }
        };
        let mut rsp = rsp;
        crate::layers::rewrite::apply_response_headers(&route.config.response_headers, &mut rsp);
        Decision::Answer(Ok(rsp))
    }
}

/// The request's URL with the parts the redirect names replaced. Changing the scheme
/// without naming a port drops the request's port (the old one belongs to the old scheme).
fn redirect_location(
    redirect: &Redirect,
    uri: &Uri,
    host_header: Option<&str>,
    req_scheme: &str,
) -> String {
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .or(host_header)
        .unwrap_or_default();
    let (req_host, req_port) = split_authority(authority);
    let scheme = redirect.scheme.as_deref().unwrap_or(req_scheme);
    let host = redirect.host.as_deref().unwrap_or(req_host);
    let port = match (redirect.port, &redirect.scheme) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(s)) if s != req_scheme => None,
        (None, _) => req_port.map(str::to_owned),
    };
    let path = redirect.path.as_deref().unwrap_or(uri.path());
    let mut location = format!("{scheme}://{host}");
    if let Some(port) = port {
        location.push(':');
        location.push_str(&port);
    }
    location.push_str(path);
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    location
}

/// `host:port` -> (`host`, `Some(port)`), IPv6 literals kept in brackets.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.starts_with('[') {
        return match authority.find("]:") {
            Some(i) => (&authority[..=i], Some(&authority[i + 2..])),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(scheme: Option<&str>, port: Option<u16>, path: Option<&str>) -> Redirect {
        Redirect {
            scheme: scheme.map(str::to_owned),
            host: None,
            port,
            path: path.map(str::to_owned),
            status: http::StatusCode::MOVED_PERMANENTLY,
        }
    }

    #[test]
    fn https_redirect_drops_the_old_port_and_keeps_path_and_query() {
        let uri: Uri = "/a/b?x=1".parse().unwrap();
        let loc = redirect_location(
            &redirect(Some("https"), None, None),
            &uri,
            Some("api.example.com:8080"),
            "http",
        );
        assert_eq!(loc, "https://api.example.com/a/b?x=1");
    }

    #[test]
    fn redirect_replaces_only_what_it_names() {
        let uri: Uri = "/old".parse().unwrap();
        let loc = redirect_location(
            &redirect(None, Some(9443), Some("/new")),
            &uri,
            Some("h:8080"),
            "http",
        );
        assert_eq!(loc, "http://h:9443/new");
        let loc = redirect_location(
            &redirect(None, None, Some("/new")),
            &uri,
            Some("h:8080"),
            "http",
        );
        assert_eq!(loc, "http://h:8080/new");
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(split_authority("a.com:8080"), ("a.com", Some("8080")));
        assert_eq!(split_authority("a.com"), ("a.com", None));
        assert_eq!(split_authority("[::1]:80"), ("[::1]", Some("80")));
        assert_eq!(split_authority("[::1]"), ("[::1]", None));
    }
}
