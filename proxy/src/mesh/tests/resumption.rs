//! TLS 1.3 session resumption between meshed peers, over real loopback sockets: a
//! second connection to a peer resumes and still carries both verified identities;
//! a rotation on either side (a new bundle, a new certificate) ends the sessions made
//! before it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::pki::{Pki, plan, trust};
use super::{API, APP, TIMEOUT, WEB};
use crate::mesh::accept::{AcceptError, accept};
use crate::mesh::connect::{ConnectError, MeshedStream, handshake};
use crate::mesh::{MeshHeader, MeshPlan, MeshProtocol};
use crate::tls::identity::IdentityStore;

/// What the inbound side saw of one connection: the peer's identity and whether the
/// handshake resumed a session, or why it refused.
type Seen = Result<(Arc<str>, bool), AcceptError>;

/// The suite both sides of a meshed connection agree on (`generation.rs` prefers it).
const MESH_SUITE: rustls::CipherSuite = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;

/// An inbound side for `identity` accepting every connection with one plan (as a
/// listener does); each accepted one is answered `hi` and kept open.
async fn peer(identity: &Arc<IdentityStore>) -> (Arc<MeshPlan>, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plan = plan(identity, listener.local_addr().unwrap().port());
    let (seen, rx) = mpsc::channel(8);
    let server = plan.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            match accept(tcp, &server, TIMEOUT).await {
                Ok(mut accepted) => {
                    let tls = accepted.stream.get_ref().1;
                    let resumed = tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    let suite = tls.negotiated_cipher_suite().map(|suite| suite.suite());
                    assert_eq!(suite, Some(MESH_SUITE), "the inbound side's suite");
                    let _ = seen
                        .send(Ok((accepted.peer_identity.clone(), resumed)))
                        .await;
                    let _ = accepted.stream.write_all(b"hi").await;
                    open.push(accepted);
                }
                Err(error) => {
                    let _ = seen.send(Err(error)).await;
                }
            }
        }
    });
    (plan, rx)
}

/// One meshed connection from `client` to the peer on `port` (no warm spare: each call
/// is its own handshake), reading the peer's `hi`, through which the session tickets
/// that came before it are taken in.
async fn dial(client: &Arc<MeshPlan>, port: u16) -> Result<MeshedStream, ConnectError> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let handshaken = handshake(client, address, TIMEOUT).await?;
    let header = MeshHeader {
        port: APP.port(),
        protocol: MeshProtocol::Opaque,
        raced: false,
    };
    let mut meshed = handshaken.send_header(header).await?;
    let mut hi = [0u8; 2];
    tokio::time::timeout(TIMEOUT, meshed.stream.read_exact(&mut hi))
        .await
        .expect("the peer's hi in time")
        .map_err(|source| ConnectError::Header { address, source })?;
    assert_eq!(&hi, b"hi");
    Ok(meshed)
}

fn resumed(stream: &MeshedStream) -> bool {
    let tls = stream.stream.get_ref().1;
    let suite = tls.negotiated_cipher_suite().map(|suite| suite.suite());
    assert_eq!(suite, Some(MESH_SUITE), "the outbound side's suite");
    tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

fn count(plan: &MeshPlan, side: &str, kind: &str) -> u64 {
    plan.handshakes.with_label_values(&[side, kind]).get()
}

async fn next(seen: &mut mpsc::Receiver<Seen>) -> Seen {
    tokio::time::timeout(TIMEOUT, seen.recv())
        .await
        .expect("the peer saw the connection in time")
        .expect("the peer runs")
}

#[tokio::test]
async fn the_second_connection_to_a_peer_resumes_and_carries_both_identities() {
    let pki = Pki::new("mesh");
    let (web, api) = (pki.identity(WEB), pki.identity(API));
    let (server, mut seen) = peer(&api).await;
    let port = server.mesh.inbound_port;
    let client = plan(&web, port);

    let first = dial(&client, port).await.unwrap();
    assert!(!resumed(&first));
    assert_eq!(next(&mut seen).await.unwrap(), (Arc::from(WEB), false));
    for _ in 0..2 {
        let again = dial(&client, port).await.unwrap();
        assert!(
            resumed(&again),
            "a session of the first connection is resumed"
        );
        // The identities are those the full handshake verified.
        assert_eq!(&*again.peer_identity, API);
        assert_eq!(next(&mut seen).await.unwrap(), (Arc::from(WEB), true));
    }
    assert_eq!(count(&client, "outbound", "full"), 1);
    assert_eq!(count(&client, "outbound", "resumed"), 2);
    assert_eq!(count(&server, "inbound", "full"), 1);
    assert_eq!(count(&server, "inbound", "resumed"), 2);
}

#[tokio::test]
async fn a_plan_rebuilt_for_a_new_config_with_the_same_identity_still_resumes() {
    let pki = Pki::new("mesh");
    let (web, api) = (pki.identity(WEB), pki.identity(API));
    let (server, mut seen) = peer(&api).await;
    let port = server.mesh.inbound_port;
    dial(&plan(&web, port), port).await.unwrap();
    next(&mut seen).await.unwrap();
    // A config reload: the same identity files are installed again, a new plan built.
    let files = web.files().unwrap();
    let material = crate::tls::identity::IdentityMaterial::load(&files).unwrap();
    web.install(Some(files), Some(material));
    let again = dial(&plan(&web, port), port).await.unwrap();
    assert!(resumed(&again));
    assert_eq!(next(&mut seen).await.unwrap(), (Arc::from(WEB), true));
}

#[tokio::test]
async fn after_the_servers_bundle_drops_a_ca_a_session_it_verified_is_not_resumed() {
    let (old, new) = (Pki::new("old"), Pki::new("new"));
    // web's certificate comes from the old CA, api's from the new one; api trusts both.
    let web = old.identity(WEB);
    trust(&web, &[new.ca_pem()]);
    let api = new.identity(API);
    trust(&api, &[old.ca_pem(), new.ca_pem()]);
    let (server, mut seen) = peer(&api).await;
    let port = server.mesh.inbound_port;
    let client = plan(&web, port);
    dial(&client, port).await.unwrap();
    assert_eq!(next(&mut seen).await.unwrap(), (Arc::from(WEB), false));

    // api's bundle rotates to the new CA only: web's certificate is no longer trusted.
    trust(&api, &[new.ca_pem()]);
    // web offers its ticket; the server no longer accepts it and checks the certificate
    // again (TLS 1.3: the client finished its side, and reads the refusal).
    let refused = dial(&client, port).await.unwrap_err();
    assert!(matches!(refused, ConnectError::Header { .. }), "{refused}");
    let error = next(&mut seen).await.unwrap_err();
    assert_eq!(error.reason(), "unknown-ca", "{error}");
    assert_eq!(count(&server, "inbound", "resumed"), 0);
}

#[tokio::test]
async fn after_the_clients_bundle_rotates_it_verifies_the_peer_again() {
    let (old, new) = (Pki::new("old"), Pki::new("new"));
    let web = old.identity(WEB);
    trust(&web, &[old.ca_pem(), new.ca_pem()]);
    let api = new.identity(API);
    trust(&api, &[old.ca_pem()]);
    let (server, mut seen) = peer(&api).await;
    let port = server.mesh.inbound_port;
    let client = plan(&web, port);
    dial(&client, port).await.unwrap();
    next(&mut seen).await.unwrap();

    // web no longer trusts the new CA, which issued api's certificate.
    trust(&web, &[old.ca_pem()]);
    let refused = dial(&client, port).await.unwrap_err();
    assert_eq!(refused.reason(), "unknown-ca", "{refused}");
    assert_eq!(count(&client, "outbound", "resumed"), 0);
    drop(seen);
}
