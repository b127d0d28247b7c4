//! `meshwork demo`: the quickstart config with two small example upstreams, so a new
//! user sees the proxy route real traffic with nothing else installed.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The example config, as shipped in config/examples/.
pub const QUICKSTART: &str = include_str!("../../config/examples/quickstart.yaml");

/// Where the quickstart sends traffic (see the `clusters` of quickstart.yaml).
pub const BACKENDS: [(&str, &str); 2] = [("a", "127.0.0.1:8081"), ("b", "127.0.0.1:8082")];

/// Starts the example upstreams on their fixed localhost ports.
///
/// # Errors
/// When a port is taken, naming it.
pub async fn start_backends() -> anyhow::Result<()> {
    for (name, addr) in BACKENDS {
        let addr: SocketAddr = addr.parse()?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "demo upstream {name}: cannot bind {addr}: {e} (is another demo running?)"
            )
        })?;
        tokio::spawn(serve_backend(listener, name));
    }
    Ok(())
}

async fn serve_backend(listener: TcpListener, name: &'static str) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(echo(name, req))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers with what the upstream received, so the proxy's header work is visible.
fn echo(backend: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "backend": backend,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
    });
    let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    text.push(b'\n');
    let mut rsp = Response::new(Full::new(Bytes::from(text)));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}

pub const BANNER: &str = "\
meshwork demo: proxy on http://127.0.0.1:8080, admin on http://127.0.0.1:9901
upstreams: backend a on 127.0.0.1:8081, backend b on 127.0.0.1:8082

try:
  curl -i http://127.0.0.1:8080/healthz            # answered by the proxy itself
  curl -s http://127.0.0.1:8080/api/hello          # routed, split across a and b
  curl -s -H 'x-canary: true' http://127.0.0.1:8080/api/hello   # header match -> b only
  curl -i http://127.0.0.1:8080/nowhere            # 404 + x-meshwork-error: no-route
  curl -s http://127.0.0.1:9901/config             # the active config
Edit the config file and save: the proxy reloads it. Ctrl-C to stop.
";
