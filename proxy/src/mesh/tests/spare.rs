//! Warm spares between two real endpoints: a second connection takes the handshake made
//! after the first, a rotation retires it, and a raced connection given up before its
//! handshake was done leaves it to the next connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::pki::{Pki, plan};
use super::{API, APP, TIMEOUT, WEB};
use crate::mesh::accept::{AcceptError, MeshAccepted, accept};
use crate::mesh::connect::MeshDial;
use crate::mesh::header::HeaderError;
use crate::mesh::{MeshHeader, MeshPlan, MeshProtocol};
use crate::tls::identity::IdentityStore;

/// Each accepted connection's result, with its place in the accept order.
type Accepted = (usize, Result<MeshAccepted, AcceptError>);

/// An inbound side accepting any number of connections with `identity`.
async fn inbound_many(identity: &Arc<IdentityStore>) -> (u16, mpsc::UnboundedReceiver<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plan = plan(identity, port);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for index in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (plan, tx) = (plan.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send((index, accept(tcp, &plan, TIMEOUT).await));
            });
        }
    });
    (port, rx)
}

/// The next accepted connection, within [`TIMEOUT`].
async fn next(accepted: &mut mpsc::UnboundedReceiver<Accepted>) -> Accepted {
    tokio::time::timeout(TIMEOUT, accepted.recv())
        .await
        .expect("an accepted connection within the timeout")
        .expect("the inbound side runs")
}

/// Waits (bounded) until `plan` keeps a spare for `peer`.
async fn spare_ready(plan: &MeshPlan, peer: SocketAddr) {
    for _ in 0..1000 {
        if plan.spares.has_ready(peer) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no spare for {peer} within 5 s");
}

fn header(accepted: Accepted) -> (usize, MeshHeader) {
    match accepted {
        (index, Ok(accepted)) => (index, accepted.header),
        (index, Err(error)) => panic!("connection {index} refused: {error}"),
    }
}

#[tokio::test]
async fn a_second_connection_takes_the_spare_made_after_the_first() {
    let pki = Pki::new("mesh");
    let (web, api) = (pki.identity(WEB), pki.identity(API));
    let (port, mut accepted) = inbound_many(&api).await;
    let plan = plan(&web, port);
    let peer = plan.peer_address(APP);
    let _first = MeshDial::new(plan.clone(), APP, MeshProtocol::Http1)
        .open(TIMEOUT)
        .await
        .unwrap();
    assert_eq!(header(next(&mut accepted).await).0, 0);
    spare_ready(&plan, peer).await;
    // The spare's TCP connection was accepted before this connection began.
    let other_port = SocketAddr::new(APP.ip(), 9090);
    let second = MeshDial::new(plan.clone(), other_port, MeshProtocol::Opaque)
        .open(TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&*second.peer_identity, API);
    let (index, header) = header(next(&mut accepted).await);
    assert_eq!(index, 1, "not the spare");
    assert_eq!((header.port, header.protocol), (9090, MeshProtocol::Opaque));
    assert_eq!(plan.spares.outcomes("used"), 1);
}

#[tokio::test]
async fn a_spare_made_before_a_rotation_is_closed_unused_not_refused() {
    let pki = Pki::new("mesh");
    let (web, api) = (pki.identity(WEB), pki.identity(API));
    let rotated = pki.identity("spiffe://cluster.local/ns/prod/sa/web-v2");
    let (port, mut accepted) = inbound_many(&api).await;
    let plan = plan(&web, port);
    let peer = plan.peer_address(APP);
    let _first = MeshDial::new(plan.clone(), APP, MeshProtocol::Opaque)
        .open(TIMEOUT)
        .await
        .unwrap();
    assert_eq!(header(next(&mut accepted).await).0, 0);
    spare_ready(&plan, peer).await;
    web.install(
        rotated.files(),
        Some(crate::tls::identity::IdentityMaterial::load(&rotated.files().unwrap()).unwrap()),
    );
    let _second = MeshDial::new(plan.clone(), APP, MeshProtocol::Opaque)
        .open(TIMEOUT)
        .await
        .unwrap();
    // The spare (connection 1) ends before its header; the second connection is new
    // and presents the rotated identity.
    let (mut spare, mut fresh) = (next(&mut accepted).await, next(&mut accepted).await);
    if spare.0 != 1 {
        std::mem::swap(&mut spare, &mut fresh);
    }
    assert!(
        matches!(spare, (1, Err(AcceptError::Header(HeaderError::Unused)))),
        "{:?}",
        spare.1.map(|a| a.header)
    );
    assert_eq!(plan.spares.outcomes("stale"), 1);
    assert_eq!(plan.spares.outcomes("used"), 0);
    match fresh {
        (2, Ok(accepted)) => assert_eq!(
            &*accepted.peer_identity,
            "spiffe://cluster.local/ns/prod/sa/web-v2"
        ),
        (index, other) => panic!("connection {index}: {:?}", other.map(|a| a.header)),
    }
}

#[tokio::test]
async fn a_raced_connection_given_up_during_its_handshake_is_the_next_connections() {
    let pki = Pki::new("mesh");
    let (web, api) = (pki.identity(WEB), pki.identity(API));
    let (port, mut accepted) = inbound_many(&api).await;
    let plan = plan(&web, port);
    let raced = MeshDial {
        raced: true,
        ..MeshDial::new(plan.clone(), APP, MeshProtocol::Opaque)
    };
    let mut opening = Box::pin(raced.open(TIMEOUT));
    // Polled once (its handshake begins), then given up: the client spoke HTTP.
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut opening)
            .await
            .is_err()
    );
    drop(opening);
    // The HTTP path's connection to the same peer.
    let _http = MeshDial::new(plan.clone(), APP, MeshProtocol::Http1)
        .open(TIMEOUT)
        .await
        .unwrap();
    let (index, header) = header(next(&mut accepted).await);
    assert_eq!(index, 0, "the raced handshake was not the one used");
    assert_eq!(
        header,
        MeshHeader {
            port: APP.port(),
            protocol: MeshProtocol::Http1,
            raced: false,
        }
    );
}
