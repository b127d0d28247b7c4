//! Meshed connections over real loopback sockets with real certificates: the round trip,
//! and each way a peer is refused.

pub(crate) mod pki;
mod resumption;
mod spare;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::accept::{AcceptError, AcceptFailures, MeshAccepted, accept};
use super::connect::{ConnectError, MeshDial, connect};
use super::{ALPN_MESH, MeshHeader, MeshPlan, MeshProtocol};
use crate::tls::identity::{IdentityCert, IdentityStore};
use crate::tls::spiffe::{Trust, UpstreamVerifier};
use pki::{Pki, plan};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const API: &str = "spiffe://cluster.local/ns/prod/sa/api";
const TIMEOUT: Duration = Duration::from_secs(5);
/// The app's port the outbound side names in the header.
const APP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// An inbound side accepting one connection with `identity` within `timeout`.
async fn inbound(
    identity: &Arc<IdentityStore>,
    timeout: Duration,
) -> (u16, JoinHandle<Result<MeshAccepted, AcceptError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plan = plan(identity, port);
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp, &plan, timeout).await
    });
    (port, task)
}

/// A hand-made mesh client: `identity`'s trust bundle, its certificate if `present_cert`,
/// offering `alpn`.
async fn raw_client(
    identity: &Arc<IdentityStore>,
    present_cert: bool,
    alpn: &[&[u8]],
    port: u16,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UpstreamVerifier::any_identity(
            Trust::Identity(identity.clone()),
        )));
    let mut config = if present_cert {
        builder.with_client_cert_resolver(Arc::new(IdentityCert(identity.clone())))
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

fn refusal(result: Result<MeshAccepted, AcceptError>) -> AcceptError {
    match result {
        Ok(accepted) => panic!("accepted {:?}", accepted.header),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_meshed_connection_carries_identities_header_and_bytes_both_ways() {
    let pki = Pki::new("mesh");
    let (web, api) = (pki.identity(WEB), pki.identity(API));
    let (port, server) = inbound(&api, TIMEOUT).await;
    let mut client = connect(
        &MeshDial::new(plan(&web, port), APP, MeshProtocol::Http1),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(&*client.peer_identity, API);
    assert_eq!(client.peer_address.port(), port);
    client.stream.write_all(b"ping").await.unwrap();

    let mut accepted = server.await.unwrap().unwrap();
    assert_eq!(&*accepted.peer_identity, WEB);
    assert_eq!(
        accepted.header,
        MeshHeader {
            port: 8080,
            protocol: MeshProtocol::Http1,
            raced: false,
        }
    );
    let mut ping = [0u8; 4];
    accepted.stream.read_exact(&mut ping).await.unwrap();
    assert_eq!(&ping, b"ping");
    accepted.stream.write_all(b"pong").await.unwrap();
    accepted.stream.shutdown().await.unwrap();
    let mut pong = Vec::new();
    client.stream.read_to_end(&mut pong).await.unwrap();
    assert_eq!(pong, b"pong");
}

#[tokio::test]
async fn a_rotated_identity_is_presented_on_the_next_connection() {
    let pki = Pki::new("mesh");
    let api = pki.identity(API);
    let web = pki.identity(WEB);
    let rotated = pki.identity("spiffe://cluster.local/ns/prod/sa/web-v2");
    for (expected, store) in [
        (WEB, &web),
        ("spiffe://cluster.local/ns/prod/sa/web-v2", &rotated),
    ] {
        web.install(
            store.files(),
            Some(crate::tls::identity::IdentityMaterial::load(&store.files().unwrap()).unwrap()),
        );
        let (port, server) = inbound(&api, TIMEOUT).await;
        let _client = connect(
            &MeshDial::new(plan(&web, port), APP, MeshProtocol::Opaque),
            TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(&*server.await.unwrap().unwrap().peer_identity, expected);
    }
}

#[tokio::test]
async fn a_client_from_another_trust_root_is_refused() {
    let (ours, theirs) = (Pki::new("ours"), Pki::new("theirs"));
    let (port, server) = inbound(&ours.identity(API), TIMEOUT).await;
    let stranger = theirs.identity(WEB);
    // It does not trust the server either: refused on both sides.
    let error = connect(
        &MeshDial::new(plan(&stranger, port), APP, MeshProtocol::Opaque),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert_eq!(error.reason(), "unknown-ca", "{error}");
    let refused = refusal(server.await.unwrap());
    assert_eq!(refused.reason(), "peer-refused-unknown-ca", "{refused}");
}

#[tokio::test]
async fn a_client_certificate_from_another_trust_root_is_refused_by_the_server() {
    let (ours, theirs) = (Pki::new("ours"), Pki::new("theirs"));
    let api = ours.identity(API);
    let (port, server) = inbound(&api, TIMEOUT).await;
    // Trusts our CA (to get as far as its own certificate) but presents one of theirs.
    let stranger = theirs.identity(WEB);
    let ours_bundle = api.files().unwrap().trust_bundle;
    let mut files = stranger.files().unwrap();
    files.trust_bundle = ours_bundle;
    let material = crate::tls::identity::IdentityMaterial::load(&files).unwrap();
    stranger.install(Some(files), Some(material));
    let connected = raw_client(&stranger, true, &[ALPN_MESH], port).await;
    let refused = refusal(server.await.unwrap());
    assert_eq!(refused.reason(), "unknown-ca", "{refused}");
    // TLS 1.3: the client finished its side; it reads the alert.
    let mut tls = connected.unwrap();
    let error = tls.read(&mut [0u8; 8]).await.unwrap_err();
    assert!(error.to_string().contains("UnknownCA"), "{error}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity(API), TIMEOUT).await;
    let client = pki.identity(WEB);
    let connected = raw_client(&client, false, &[ALPN_MESH], port).await;
    assert_eq!(
        refusal(server.await.unwrap()).reason(),
        "no-client-certificate"
    );
    let error = connected.unwrap().read(&mut [0u8; 8]).await.unwrap_err();
    assert!(error.to_string().contains("CertificateRequired"), "{error}");
}

#[tokio::test]
async fn a_client_certificate_without_a_spiffe_id_is_refused() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity(API), TIMEOUT).await;
    let anonymous = pki.identity_without_spiffe_id("web.internal");
    let _ = connect(
        &MeshDial::new(plan(&anonymous, port), APP, MeshProtocol::Opaque),
        TIMEOUT,
    )
    .await;
    assert_eq!(refusal(server.await.unwrap()).reason(), "identity-mismatch");
}

#[tokio::test]
async fn a_server_certificate_without_a_spiffe_id_is_refused() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity_without_spiffe_id("api.internal"), TIMEOUT).await;
    let error = connect(
        &MeshDial::new(plan(&pki.identity(WEB), port), APP, MeshProtocol::Opaque),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ConnectError::Tls { .. }), "{error}");
    assert_eq!(error.reason(), "identity-mismatch");
    // The client says why in an `access_denied` alert.
    assert_eq!(refusal(server.await.unwrap()).reason(), "alert");
}

#[tokio::test]
async fn a_client_offering_another_alpn_is_refused() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity(API), TIMEOUT).await;
    let result = raw_client(&pki.identity(WEB), true, &[b"h2"], port).await;
    assert!(result.is_err(), "no common protocol");
    assert_eq!(refusal(server.await.unwrap()).reason(), "incompatible");
}

#[tokio::test]
async fn a_client_offering_no_alpn_is_not_a_mesh_peer() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity(API), TIMEOUT).await;
    let _client = raw_client(&pki.identity(WEB), true, &[], port)
        .await
        .unwrap();
    let refused = refusal(server.await.unwrap());
    assert!(
        matches!(refused, AcceptError::NotMeshPeer { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_select_the_mesh_alpn_is_not_a_mesh_peer() {
    let pki = Pki::new("mesh");
    let api = pki.identity(API);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A TLS server with the right certificate and no ALPN support (not meshwork).
    let mut config = (*plan(&api, port).tls().unwrap().server).clone();
    config.alpn_protocols.clear();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let _ = tls.read(&mut [0u8; 64]).await;
    });
    let error = connect(
        &MeshDial::new(plan(&pki.identity(WEB), port), APP, MeshProtocol::Opaque),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ConnectError::NotMeshPeer { .. }), "{error}");
    assert_eq!(error.reason(), "not-mesh-peer");
    server.await.unwrap();
}

#[tokio::test]
async fn garbage_instead_of_a_header_is_refused() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity(API), TIMEOUT).await;
    let mut client = raw_client(&pki.identity(WEB), true, &[ALPN_MESH], port)
        .await
        .unwrap();
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let refused = refusal(server.await.unwrap());
    assert_eq!(refused.reason(), "header-version", "{refused}");
}

#[tokio::test]
async fn a_header_not_sent_in_time_is_refused() {
    let pki = Pki::new("mesh");
    let (port, server) = inbound(&pki.identity(API), Duration::from_millis(300)).await;
    let mut client = raw_client(&pki.identity(WEB), true, &[ALPN_MESH], port)
        .await
        .unwrap();
    client.write_all(&[1, 0]).await.unwrap();
    client.flush().await.unwrap();
    let refused = refusal(server.await.unwrap());
    assert_eq!(refused.reason(), "header-timeout", "{refused}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let pki = Pki::new("mesh");
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let error = connect(
        &MeshDial::new(plan(&pki.identity(WEB), port), APP, MeshProtocol::Opaque),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(error.is_unreachable(), "{error}");
}

#[test]
fn refusals_are_counted_by_reason() {
    let metrics = crate::metrics::Metrics::new();
    let failures =
        AcceptFailures::new("inbound".into(), metrics.mesh.inbound_refused_total.clone());
    let client: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            failures.report(
                client,
                &AcceptError::Header(super::header::HeaderError::PortZero),
            );
        }
    });
    let counted = metrics
        .mesh
        .inbound_refused_total
        .with_label_values(&["inbound", "header-malformed"])
        .get();
    assert_eq!(counted, 3);
}

/// Compiles only while the plan stays shareable across connection tasks.
#[allow(dead_code)]
fn plan_is_send_and_sync(plan: Arc<MeshPlan>) -> impl Send + Sync {
    plan
}
