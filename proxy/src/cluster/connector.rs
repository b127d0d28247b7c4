//! Opens connections to one endpoint, whatever the request URI says: TCP, then TLS when
//! the cluster originates it (reporting the ALPN choice so `protocol: auto` speaks h2 or
//! HTTP/1.1 accordingly). Upgrade requests get a connection of their own that offers
//! only `http/1.1` (see `cluster::upgrade_conn`).
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
use tokio_rustls::client::TlsStream;

use super::limits::{Gate, Slot};
use crate::mesh::connect::MeshDial;
use crate::metrics::Metrics;
use crate::metrics::handles::EndpointHandles;
use crate::tls::client::Origination;

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
    #[error("TLS handshake with {address} failed ({reason}): {detail}")]
    Tls {
        address: String,
        reason: &'static str,
        detail: String,
    },
    #[error("meshed connection: {0}")]
    Mesh(#[source] crate::mesh::connect::ConnectError),
}

/// TLS origination towards one endpoint: the cluster's client config and the name to
/// present and verify.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    config: Arc<rustls::ClientConfig>,
    server_name: Result<rustls::pki_types::ServerName<'static>, String>,
    /// Handshake failures of this cluster, by reason.
    failures: prometheus::IntCounterVec,
    cluster: Arc<str>,
}

impl UpstreamTls {
    pub fn new(
        origination: &Origination,
        endpoint: &Address,
        cluster: &str,
        metrics: &Metrics,
    ) -> Self {
        Self {
            config: origination.config.clone(),
            server_name: origination.server_name_for(endpoint),
            failures: metrics.tls.upstream_handshake_failures_total.clone(),
            cluster: cluster.into(),
        }
    }

    /// The same settings offering only `http/1.1` in ALPN: an upgrade (WebSocket) needs
    /// HTTP/1.1, which an `auto` cluster's endpoint would otherwise answer with `h2`.
    /// The client certificate resolver, the verifier and the session cache are shared.
    pub fn offering_http1_only(&self) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![crate::tls::ALPN_HTTP1.to_vec()];
        Self {
            config: Arc::new(config),
            ..self.clone()
        }
    }

    async fn handshake(
        &self,
        address: &Address,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ConnectError> {
        let failed = |reason: &'static str, detail: String| {
            self.failures
                .with_label_values(&[&*self.cluster, reason])
                .inc();
            tracing::warn!(cluster = %self.cluster, endpoint = %address, reason, detail, "upstream TLS handshake failed");
            ConnectError::Tls {
                address: address.to_string(),
                reason,
                detail,
            }
        };
        let name = self.server_name.clone().map_err(|e| failed("other", e))?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| failed(crate::tls::handshake::reason_of_io(&e), e.to_string()))
    }
}

/// Dials one endpoint with a connect timeout; `TCP_NODELAY` is set because the proxy
/// writes whole frames and must not add Nagle delays to small responses.
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    address: Address,
    connect_timeout: Duration,
    metrics: Arc<EndpointHandles>,
    connections: Arc<Gate>,
    transport: Transport,
    /// `transport` for upgrade requests' own connections: HTTP/1.1 only.
    upgrade_transport: Transport,
}

/// What a connection to an endpoint is beyond TCP.
#[derive(Clone, Debug, Default)]
pub enum Transport {
    #[default]
    Plain,
    /// TLS originated with the cluster's `tls`.
    Tls(Arc<UpstreamTls>),
    /// A meshed original destination: mutual TLS to the peer's inbound port, then the
    /// mesh header (see [`crate::mesh::connect`]), instead of TCP to the address.
    Meshed(MeshDial),
    /// Plain TCP from the client's own address (a TPROXY-delivered connection's original
    /// destination: the app sees who called it; see [`connect_transparent`]).
    TransparentFrom(std::net::IpAddr),
}

impl Transport {
    /// The cluster's TLS origination, if that is what it is.
    pub fn tls(&self) -> Option<&Arc<UpstreamTls>> {
        match self {
            Self::Tls(tls) => Some(tls),
            Self::Plain | Self::Meshed(_) | Self::TransparentFrom(_) => None,
        }
    }

    /// The same transport for a connection carrying opaque bytes (a meshed header saying
    /// so, so the peer relays them to its app unread instead of serving HTTP).
    fn for_opaque(&self) -> Self {
        match self {
            Self::Meshed(dial) => Self::Meshed(MeshDial {
                protocol: crate::mesh::MeshProtocol::Opaque,
                ..dial.clone()
            }),
            other => other.clone(),
        }
    }

    /// The same transport for an upgrade request's own connection: HTTP/1.1 (TLS
    /// offering only `http/1.1`, a meshed header saying HTTP/1).
    fn for_upgrade(&self) -> Self {
        match self {
            Self::Plain => Self::Plain,
            Self::TransparentFrom(source) => Self::TransparentFrom(*source),
            Self::Tls(tls) => Self::Tls(Arc::new(tls.offering_http1_only())),
            Self::Meshed(dial) => Self::Meshed(MeshDial {
                protocol: crate::mesh::MeshProtocol::Http1,
                ..dial.clone()
            }),
        }
    }
}

impl EndpointConnector {
    pub fn new(
        address: Address,
        connect_timeout: Duration,
        metrics: Arc<EndpointHandles>,
        connections: Arc<Gate>,
        transport: Transport,
    ) -> Self {
        Self {
            address,
            connect_timeout,
            metrics,
            connections,
            upgrade_transport: transport.for_upgrade(),
            transport,
        }
    }
}

pin_project_lite::pin_project! {
    /// The bytes of an upstream connection: plain TCP or TLS.
    #[project = UpstreamStreamProj]
    #[derive(Debug)]
    pub enum UpstreamStream {
        Plain { #[pin] tcp: TcpStream },
        Tls { #[pin] tls: TlsStream<TcpStream> },
        /// A connection to an endpoint a cluster's balancer picked for a whole client
        /// connection (a VIP's opaque bytes): counted in the cluster's
        /// `max_connections` and in the endpoint's load while it lives.
        Held { #[pin] held: Box<CountedStream>, load: super::HeldLoad },
    }
}

pin_project_lite::pin_project! {
    /// An upstream connection, counted in `upstream_connections_active` while it lives.
    #[derive(Debug)]
    pub struct CountedStream {
        #[pin]
        inner: UpstreamStream,
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
    fn new(inner: UpstreamStream, metrics: Arc<EndpointHandles>, slot: Slot) -> Self {
        metrics.connections_total.inc();
        metrics.connections_active.inc();
        Self {
            inner,
            metrics,
            _slot: slot,
        }
    }
}

impl UpstreamStream {
    /// The endpoint chose HTTP/2 by ALPN.
    pub fn negotiated_h2(&self) -> bool {
        match self {
            UpstreamStream::Tls { tls } => {
                tls.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2)
            }
            UpstreamStream::Held { held, .. } => held.inner.negotiated_h2(),
            UpstreamStream::Plain { .. } => false,
        }
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        if self.negotiated_h2() {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl Connection for CountedStream {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

/// Forwards a call to whichever stream the connection is.
macro_rules! either {
    ($stream:expr, $s:ident => $call:expr) => {
        match $stream {
            UpstreamStreamProj::Plain { tcp: $s } => $call,
            UpstreamStreamProj::Tls { tls: $s } => $call,
            UpstreamStreamProj::Held { held: $s, .. } => $call,
        }
    };
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self.project(), s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self.project(), s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self.project(), s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain { tcp } => tcp.is_write_vectored(),
            UpstreamStream::Tls { tls } => tls.is_write_vectored(),
            UpstreamStream::Held { held, .. } => held.inner.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.project(), s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.project(), s => s.poll_shutdown(cx))
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

/// Opens a connection to an endpoint: TCP within `timeout`, then (when the cluster
/// originates TLS) the handshake within `timeout` again. Used by the pool, by active
/// health checks and by TCP listeners alike.
///
/// # Errors
/// The connect or handshake failure (handshake failures are counted by reason).
pub async fn open(
    address: &Address,
    timeout: Duration,
    tls: Option<&UpstreamTls>,
) -> Result<UpstreamStream, ConnectError> {
    let tcp = connect(address, timeout).await?;
    let Some(tls) = tls else {
        return Ok(UpstreamStream::Plain { tcp });
    };
    match tokio::time::timeout(timeout, tls.handshake(address, tcp)).await {
        Ok(Ok(tls)) => Ok(UpstreamStream::Tls { tls }),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tls.failures
                .with_label_values(&[&*tls.cluster, "timeout"])
                .inc();
            Err(ConnectError::Timeout {
                address: address.to_string(),
                timeout,
            })
        }
    }
}

/// Connects to `address` (an IP literal) from `source`, another host's address: a
/// transparent socket (`IP_TRANSPARENT`, which takes CAP_NET_ADMIN) carrying `meshwork
/// init --mode tproxy`'s default mark, so the app's replies (addressed to the client)
/// are routed back to the proxy (see docs/sidecar.md, "TPROXY mode").
///
/// # Errors
/// The socket setup or the connect failing, or no connection within `timeout`.
pub async fn connect_transparent(
    address: &Address,
    source: std::net::IpAddr,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let failed = |source: std::io::Error| ConnectError::Connect {
        address: address.to_string(),
        source,
    };
    let ip: std::net::IpAddr = address
        .host
        .parse()
        .map_err(|_| ConnectError::NoAddresses {
            address: address.to_string(),
        })?;
    let destination = SocketAddr::new(ip, address.port);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(destination),
        socket2::Type::STREAM,
        None,
    )
    .map_err(failed)?;
    if destination.is_ipv6() {
        socket.set_ip_transparent_v6(true).map_err(failed)?;
    } else {
        socket.set_ip_transparent_v4(true).map_err(failed)?;
    }
    socket
        .set_mark(crate::init::DEFAULT_TPROXY_MARK)
        .map_err(failed)?;
    socket.set_nonblocking(true).map_err(failed)?;
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .map_err(failed)?;
    let connecting = tokio::net::TcpSocket::from_std_stream(socket.into()).connect(destination);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(error)) => Err(failed(error)),
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
        let this = self.clone();
        Box::pin(async move {
            // At max_connections a request waits (it is one of the cluster's pending
            // requests) for a connection to close, while the pool may hand it a
            // connection that another request finished with first.
            let Some(slot) = this.connections.acquire_within(this.connect_timeout).await else {
                return Err(ConnectError::Overflow);
            };
            this.open_counted(slot).await.map(TokioIo::new)
        })
    }
}

impl EndpointConnector {
    /// What its connections are beyond TCP.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Time to open a connection (and again for its TLS handshake): the cluster's
    /// `connect_timeout`.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Opens a connection that holds `slot` (one of the cluster's `max_connections`)
    /// while it lives and is counted in the endpoint's connection metrics; a failure is
    /// counted in `upstream_connect_failures_total`. Used by the pool and by TCP
    /// listeners alike.
    ///
    /// # Errors
    /// The connect or handshake failure.
    pub async fn open_counted(&self, slot: Slot) -> Result<CountedStream, ConnectError> {
        self.open_counted_with(slot, &self.transport).await
    }

    /// A connection of its own for one upgrade request, never pooled: HTTP/1.1 (over
    /// TLS, ALPN offers only `http/1.1`; meshed, the header says HTTP/1), holding one of
    /// the cluster's `max_connections` for as long as it (and so the tunnel) lives.
    /// Waits for a free slot within the connect timeout, as the pool's connections do.
    ///
    /// # Errors
    /// [`ConnectError::Overflow`] when no slot freed up in time; else the connect or
    /// handshake failure.
    pub async fn open_for_upgrade(&self) -> Result<CountedStream, ConnectError> {
        let Some(slot) = self.connections.acquire_within(self.connect_timeout).await else {
            return Err(ConnectError::Overflow);
        };
        self.open_counted_with(slot, &self.upgrade_transport).await
    }

    /// A connection of its own for opaque bytes (a tcp listener's, a VIP's), never
    /// pooled, holding `slot` of the cluster's `max_connections` while it lives.
    ///
    /// # Errors
    /// The connect or handshake failure.
    pub async fn open_opaque(&self, slot: Slot) -> Result<CountedStream, ConnectError> {
        self.open_counted_with(slot, &self.transport.for_opaque())
            .await
    }

    async fn open_counted_with(
        &self,
        slot: Slot,
        transport: &Transport,
    ) -> Result<CountedStream, ConnectError> {
        let opened = match transport {
            Transport::TransparentFrom(source) => {
                connect_transparent(&self.address, *source, self.connect_timeout)
                    .await
                    .map(|tcp| UpstreamStream::Plain { tcp })
            }
            Transport::Meshed(mesh) => mesh
                .open(self.connect_timeout)
                .await
                .map(|meshed| UpstreamStream::Tls { tls: meshed.stream })
                .map_err(ConnectError::Mesh),
            other => {
                open(
                    &self.address,
                    self.connect_timeout,
                    other.tls().map(|t| &**t),
                )
                .await
            }
        };
        match opened {
            Ok(stream) => Ok(CountedStream::new(stream, self.metrics.clone(), slot)),
            Err(error) => {
                self.metrics.connect_failures.inc();
                Err(error)
            }
        }
    }
}
