//! The admin server's two lifecycle endpoints, the only ones that change anything:
//! `POST /drain` (a preStop hook: begin the drain) and `POST /shutdown` (a Job's app,
//! its last step: the app is gone, exit as soon as what is open is done).
//!
//! Neither may be reached by accident. They take POST only (405 otherwise, so a probe,
//! a crawler or a browser's address bar never triggers them); they answer only clients
//! on a loopback address (the pod's own containers share its network namespace, while
//! the admin port may be bound to the pod's address for the kubelet's probes); and they
//! refuse any request carrying `Origin`, which browsers add to cross-site and
//! DNS-rebinding POSTs and which no hook or app library sends.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use super::text;
use crate::drain::DrainTrigger;

/// What a lifecycle endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LifecycleAction {
    Drain,
    Shutdown,
}

impl LifecycleAction {
    /// The action at `path`, if it is a lifecycle endpoint.
    pub(super) fn at(path: &str) -> Option<Self> {
        match path {
            "/drain" => Some(Self::Drain),
            "/shutdown" => Some(Self::Shutdown),
            _ => None,
        }
    }
}

/// Checks the request and, when it passes, asks `trigger`.
pub(super) fn handle<B>(
    action: LifecycleAction,
    req: &Request<B>,
    peer: SocketAddr,
    trigger: &DrainTrigger,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        let mut rsp = text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        rsp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return rsp;
    }
    if !peer.ip().to_canonical().is_loopback() {
        tracing::warn!(%peer, path = req.uri().path(), "lifecycle request from a non-loopback address refused");
        return text(
            StatusCode::FORBIDDEN,
            "lifecycle endpoints answer loopback clients only\n",
        );
    }
    if req.headers().contains_key(header::ORIGIN) {
        tracing::warn!(%peer, path = req.uri().path(), "lifecycle request from a browser page refused");
        return text(
            StatusCode::FORBIDDEN,
            "lifecycle endpoints refuse requests with an Origin\n",
        );
    }
    let began = match action {
        LifecycleAction::Drain => trigger.drain(),
        LifecycleAction::Shutdown => trigger.shutdown(),
    };
    tracing::info!(%peer, action = ?action, began, "lifecycle request");
    match (action, began) {
        (LifecycleAction::Drain, true) => text(StatusCode::OK, "draining\n"),
        (LifecycleAction::Drain, false) => text(StatusCode::OK, "already draining\n"),
        (LifecycleAction::Shutdown, _) => text(StatusCode::OK, "shutting down\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, origin: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(()).unwrap()
    }

    fn local() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn only_post_from_loopback_without_an_origin_begins_the_drain() {
        let trigger = DrainTrigger::new();
        for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            let rsp = handle(
                LifecycleAction::Drain,
                &request(method.clone(), "/drain", None),
                local(),
                &trigger,
            );
            assert_eq!(rsp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(rsp.headers()[header::ALLOW], "POST");
        }
        for peer in [
            "10.0.0.7:40000",
            "[2001:db8::1]:40000",
            "[::ffff:10.0.0.7]:1",
        ] {
            let rsp = handle(
                LifecycleAction::Shutdown,
                &request(Method::POST, "/shutdown", None),
                peer.parse().unwrap(),
                &trigger,
            );
            assert_eq!(rsp.status(), StatusCode::FORBIDDEN, "{peer}");
        }
        let rsp = handle(
            LifecycleAction::Drain,
            &request(Method::POST, "/drain", Some("http://evil.example")),
            local(),
            &trigger,
        );
        assert_eq!(rsp.status(), StatusCode::FORBIDDEN);
        assert!(
            !trigger.is_draining(),
            "nothing refused may begin the drain"
        );

        for peer in ["127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            let rsp = handle(
                LifecycleAction::Drain,
                &request(Method::POST, "/drain", None),
                peer.parse().unwrap(),
                &trigger,
            );
            assert_eq!(rsp.status(), StatusCode::OK, "{peer}");
        }
        assert!(trigger.is_draining());
    }

    #[test]
    fn shutdown_begins_the_drain_and_says_the_app_is_gone() {
        let trigger = DrainTrigger::new();
        let rsp = handle(
            LifecycleAction::Shutdown,
            &request(Method::POST, "/shutdown", None),
            local(),
            &trigger,
        );
        assert_eq!(rsp.status(), StatusCode::OK);
        assert!(trigger.is_draining());
        use futures_util::FutureExt;
        assert!(trigger.app_gone().now_or_never().is_some());
    }
}
