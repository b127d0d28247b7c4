//! The admin server (localhost by default): `/live`, `/ready`, `/config`, `/config_dump`, `/listeners`,
//! `/clusters`, `/metrics` read the proxy through [`AdminState`] and change nothing;
//! `POST /drain` and `POST /shutdown` ask for the drain ([`lifecycle`]).

mod lifecycle;
mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control_plane::Link;
use crate::dataplane::DataplaneView;
use crate::drain::DrainTrigger;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// What the admin endpoints read of the running proxy.
#[derive(Debug)]
pub struct AdminState {
    pub readiness: Arc<Readiness>,
    pub dataplane: Arc<dyn DataplaneView>,
    /// The control plane link, when `control_plane` is set.
    pub control_plane: Option<Arc<Link>>,
    pub metrics: Metrics,
    /// What `POST /drain` and `POST /shutdown` ask.
    pub drain: Arc<DrainTrigger>,
}

/// Serves admin requests until `stop` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req, peer)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(state: &AdminState, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    if let Some(action) = lifecycle::LifecycleAction::at(req.uri().path()) {
        return lifecycle::handle(action, &req, peer, &state.drain);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut rsp = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        rsp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return rsp;
    }
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" => match state.readiness.not_ready_reason() {
            None if state.control_plane.as_ref().is_some_and(|l| l.is_stale()) => text(
                StatusCode::OK,
                "ready (stale: serving the last snapshot saved on disk; the control plane has not answered yet)\n",
            ),
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/config" => json(&views::config(state)),
        "/config_dump" => match &state.control_plane {
            Some(link) => json(&link.dump()),
            None => text(
                StatusCode::NOT_FOUND,
                "no control_plane: the config file is the source of truth (see /config)\n",
            ),
        },
        "/listeners" => json(&state.dataplane.listener_info()),
        "/clusters" => json(&views::clusters(&state.dataplane.snapshot())),
        "/metrics" => {
            let mut rsp = text(StatusCode::OK, state.metrics.encode());
            rsp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            rsp
        }
        "/" => text(
            StatusCode::OK,
            "meshwork admin\n  /live       process is up\n  /ready      serving traffic\n  /config     active config and its version\n  /config_dump  each resource from the control plane: version, acked / nacked / stale, error\n  /listeners  bound listener addresses\n  /metrics    Prometheus metrics\n  /clusters   clusters, endpoints and their load\n  POST /drain     begin the drain (preStop hook; loopback clients only)\n  POST /shutdown  the app is done: drain and exit (loopback clients only)\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found; see /\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(body.into()));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut rsp = Response::new(Full::new(Bytes::from(body)));
            rsp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            rsp
        }
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

/// Binds the admin address; an address already in use is a startup error.
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std = std::net::TcpListener::bind(addr)?;
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}
