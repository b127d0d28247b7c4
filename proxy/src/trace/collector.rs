//! The connection to the OTLP collector: plain TCP for an `http://` endpoint, TLS
//! (rustls, HTTP/1.1 by ALPN) for `https://`, verified against `tls.ca` or the system's
//! trust store and the endpoint's host (or `tls.server_name`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use meshwork_config::model::{Address, ClientTls, Otlp};
use rustls::pki_types::ServerName;

use crate::cluster::connector::{ConnectError, UpstreamStream, connect};
use crate::observe::log_limit::{DEFAULT_LOG_BURST, DEFAULT_LOG_INTERVAL, LogLimiter};

/// A collector that does not accept a connection (TCP and TLS each) within this is
/// counted as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS towards the collector: the client config and the name to verify.
#[derive(Debug)]
struct CollectorTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    /// Handshake failures are logged as warnings (a wrong CA drops every span), bounded.
    failures_logged: Arc<LogLimiter>,
}

/// Dials the collector, whatever URI the request carries (there is one collector).
#[derive(Clone, Debug)]
pub struct CollectorConnector {
    address: Address,
    tls: Option<Arc<CollectorTls>>,
}

impl CollectorConnector {
    /// The connector and the URI to post to, for `otlp`.
    ///
    /// # Errors
    /// An endpoint that is not an `http://` or `https://` URL with a host, or TLS
    /// settings (files, names) that cannot be used.
    pub fn new(otlp: &Otlp) -> Result<(Self, http::Uri), String> {
        let endpoint = &otlp.endpoint;
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("otlp endpoint {endpoint:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "otlp endpoint {endpoint:?}: expected an http:// or https:// URL"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("otlp endpoint {endpoint:?}: no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let address = Address {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        };
        let tls = match (https, &otlp.tls) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(format!(
                    "otlp endpoint {endpoint:?}: `tls` needs an https:// endpoint"
                ));
            }
            (true, tls) => Some(Arc::new(collector_tls(tls.as_ref(), &address)?)),
        };
        Ok((Self { address, tls }, uri))
    }
}

fn collector_tls(tls: Option<&ClientTls>, address: &Address) -> Result<CollectorTls, String> {
    let defaults = ClientTls {
        ca: None,
        cert: None,
        key: None,
        server_name: None,
        identities: Vec::new(),
    };
    let tls = tls.unwrap_or(&defaults);
    let origination = crate::tls::client::origination_outside_mesh(
        "tracing.otlp.tls",
        tls,
        vec![crate::tls::ALPN_HTTP1.to_vec()],
    )
    .map_err(|e| e.to_string())?;
    let server_name = origination.server_name_for(address)?;
    Ok(CollectorTls {
        config: origination.config,
        server_name,
        failures_logged: LogLimiter::new(
            DEFAULT_LOG_BURST,
            DEFAULT_LOG_INTERVAL,
            Box::new(|suppressed| {
                tracing::warn!(suppressed = suppressed.total, reasons = %suppressed, "TLS handshake failures with the OTLP collector not logged one by one; spans are dropped");
            }),
        ),
    })
}

impl tower::Service<http::Uri> for CollectorConnector {
    type Response = TokioIo<UpstreamStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = connect(&this.address, CONNECT_TIMEOUT).await?;
            let Some(tls) = &this.tls else {
                return Ok(TokioIo::new(UpstreamStream::Plain { tcp }));
            };
            let handshake = tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(tls.server_name.clone(), tcp);
            let failed = |reason: &'static str, detail: String| {
                if tls.failures_logged.admit(reason) {
                    tracing::warn!(collector = %this.address, reason, detail, "TLS handshake with the OTLP collector failed; spans are dropped");
                }
                ConnectError::Tls {
                    address: this.address.to_string(),
                    reason,
                    detail,
                }
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => Ok(TokioIo::new(UpstreamStream::Tls { tls: stream })),
                Ok(Err(e)) => Err(failed(
                    crate::tls::handshake::reason_of_io(&e),
                    e.to_string(),
                )),
                Err(_) => Err(failed("timeout", format!("after {CONNECT_TIMEOUT:?}"))),
            }
        })
    }
}
