//! Opens TCP connections to one endpoint, whatever the request URI says.
//!
//! The pooled client keys connections by the request's authority; this connector is what
//! makes "the authority the upstream sees" and "the endpoint we dial" independent, so the
//! original `Host` / `:authority` is kept while the balancer chooses the address.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use meshwork_config::model::Address;
use tokio::net::TcpStream;

/// Why a connection to an endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("resolving {address}: {source}")]
    Resolve { address: String, source: io::Error },
    #[error("{address} resolved to no addresses")]
    NoAddresses { address: String },
    #[error("connecting to {address}: {source}")]
    Connect { address: String, source: io::Error },
    #[error("connecting to {address}: timed out after {timeout:?}")]
    Timeout { address: String, timeout: Duration },
}

/// Dials one endpoint with a connect timeout; `TCP_NODELAY` is set because the proxy
/// writes whole frames and must not add Nagle delays to small responses.
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    address: Address,
    connect_timeout: Duration,
}

impl EndpointConnector {
    pub fn new(address: Address, connect_timeout: Duration) -> Self {
        Self {
            address,
            connect_timeout,
        }
    }
}

/// Connects to `address` (an IP literal or a DNS name), trying each resolved address in
/// turn, all within `timeout`.
pub async fn connect(address: &Address, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = match address.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, address.port)],
            Err(_) => tokio::net::lookup_host((address.host.as_str(), address.port))
                .await
                .map_err(|source| ConnectError::Resolve {
                    address: address.to_string(),
                    source,
                })?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(source) => last = Some(source),
            }
        }
        Err(match last {
            Some(source) => ConnectError::Connect {
                address: address.to_string(),
                source,
            },
            None => ConnectError::NoAddresses {
                address: address.to_string(),
            },
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout {
            address: address.to_string(),
            timeout,
        }),
    }
}

impl tower::Service<http::Uri> for EndpointConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let address = self.address.clone();
        let timeout = self.connect_timeout;
        Box::pin(async move { connect(&address, timeout).await.map(TokioIo::new) })
    }
}
