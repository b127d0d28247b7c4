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

use std::sync::Arc;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use meshwork_config::model::Address;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::limits::{Gate, Slot};
use crate::metrics::handles::EndpointHandles;

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
    #[error("no connection of the cluster's max_connections freed up within the connect timeout")]
    Overflow,
}

/// Dials one endpoint with a connect timeout; `TCP_NODELAY` is set because the proxy
/// writes whole frames and must not add Nagle delays to small responses.
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    address: Address,
    connect_timeout: Duration,
    metrics: Arc<EndpointHandles>,
    connections: Arc<Gate>,
}

impl EndpointConnector {
    pub fn new(
        address: Address,
        connect_timeout: Duration,
        metrics: Arc<EndpointHandles>,
        connections: Arc<Gate>,
    ) -> Self {
        Self {
            address,
            connect_timeout,
            metrics,
            connections,
        }
    }
}

pin_project_lite::pin_project! {
    /// An upstream connection, counted in `upstream_connections_active` while it lives.
    #[derive(Debug)]
    pub struct CountedStream {
        #[pin]
        inner: TcpStream,
        metrics: Arc<EndpointHandles>,
        // Counts against the cluster's max_connections while the connection lives.
        _slot: Slot,
    }

    impl PinnedDrop for CountedStream {
        fn drop(this: Pin<&mut Self>) {
            this.metrics.connections_active.dec();
        }
    }
}

impl CountedStream {
    fn new(inner: TcpStream, metrics: Arc<EndpointHandles>, slot: Slot) -> Self {
        metrics.connections_total.inc();
        metrics.connections_active.inc();
        Self {
            inner,
            metrics,
            _slot: slot,
        }
    }
}

impl Connection for CountedStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
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
    type Response = TokioIo<CountedStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let address = self.address.clone();
        let timeout = self.connect_timeout;
        let metrics = self.metrics.clone();
        let connections = self.connections.clone();
        Box::pin(async move {
            // At max_connections a request waits (it is one of the cluster's pending
            // requests) for a connection to close, while the pool may hand it a
            // connection that another request finished with first.
            let Some(slot) = connections.acquire_within(timeout).await else {
                return Err(ConnectError::Overflow);
            };
            match connect(&address, timeout).await {
                Ok(stream) => Ok(TokioIo::new(CountedStream::new(stream, metrics, slot))),
                Err(error) => {
                    metrics.connect_failures.inc();
                    Err(error)
                }
            }
        })
    }
}
