//! The race, against real sockets: who speaks first, what a close means, silence.

use super::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (client, accepted)
}

fn dial_to(addr: std::net::SocketAddr) -> impl FnOnce() -> Connecting {
    move || {
        Box::pin(async move {
            TcpStream::connect(addr)
                .await
                .map(|tcp| UpstreamStream::Plain { tcp })
        })
    }
}

#[tokio::test]
async fn a_server_that_greets_first_wins_without_any_client_byte() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = server.accept().await.unwrap();
        s.write_all(b"220 hello\r\n").await.unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    });
    let (_client, mut accepted) = pair().await;
    match race(
        &mut accepted,
        dial_to(addr),
        false,
        Duration::from_secs(3600),
    )
    .await
    {
        Start::Server { client_bytes, .. } => assert!(client_bytes.is_empty()),
        _ => panic!("expected the server to win"),
    }
}

#[tokio::test]
async fn http_that_arrived_with_the_connection_dials_nothing() {
    let (mut client, mut accepted) = pair().await;
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    // Wait until the bytes are readable without consuming them.
    accepted.peek(&mut [0u8; 1]).await.unwrap();
    let dial = || -> Connecting { panic!("dialed for HTTP") };
    match race(&mut accepted, dial, false, Duration::from_secs(3600)).await {
        Start::Client {
            detected,
            upstream,
            bytes,
        } => {
            assert_eq!(detected, Detected::Http1);
            assert!(upstream.is_none());
            assert_eq!(&bytes[..], b"GET / HTTP/1.1\r\n\r\n");
        }
        _ => panic!("expected HTTP"),
    }
}

#[tokio::test]
async fn client_bytes_sent_in_pieces_are_classified_once_they_decide() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (mut client, mut accepted) = pair().await;
    let racing = tokio::spawn(async move {
        race(
            &mut accepted,
            dial_to(addr),
            false,
            Duration::from_secs(3600),
        )
        .await
    });
    // The destination accepts (and stays silent) before the client's second piece.
    let (_silent, _) = server.accept().await.unwrap();
    client.write_all(b"PO").await.unwrap();
    client.write_all(b"ST /x HTTP/1.1\r\n").await.unwrap();
    match racing.await.unwrap() {
        Start::Client {
            detected,
            bytes,
            upstream,
        } => {
            assert_eq!(detected, Detected::Http1);
            assert!(bytes.starts_with(b"POST"));
            assert!(upstream.is_some());
        }
        _ => panic!("expected HTTP"),
    }
}

#[tokio::test]
async fn a_refused_connect_ends_the_race_unless_http_may_still_be_routed() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let (_client, mut accepted) = pair().await;
    assert!(matches!(
        race(
            &mut accepted,
            dial_to(addr),
            false,
            Duration::from_secs(3600)
        )
        .await,
        Start::ConnectFailed(_)
    ));
    let (mut client, accepted) = pair().await;
    // The client speaks only once the connect has failed.
    let (failed_tx, failed) = tokio::sync::oneshot::channel();
    let dial = move || -> Connecting {
        Box::pin(async move {
            let result = TcpStream::connect(addr)
                .await
                .map(|tcp| UpstreamStream::Plain { tcp });
            let _ = failed_tx.send(());
            result
        })
    };
    let start = http_once(&mut client, accepted, dial, failed).await;
    assert_http_without_destination(start).await;
}

/// Races `accepted` (HTTP may still be routed), the client speaking HTTP once
/// `dialed` says the destination's side is where the test wants it.
async fn http_once(
    client: &mut TcpStream,
    mut accepted: TcpStream,
    dial: impl FnOnce() -> Connecting + Send + 'static,
    dialed: tokio::sync::oneshot::Receiver<()>,
) -> Start {
    let racing =
        tokio::spawn(
            async move { race(&mut accepted, dial, true, Duration::from_secs(3600)).await },
        );
    dialed.await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    racing.await.unwrap()
}

/// The race ended on the client's HTTP, the destination's connection unusable.
async fn assert_http_without_destination(start: Start) {
    match start {
        Start::Client {
            detected, upstream, ..
        } => {
            assert_eq!(detected, Detected::Http1);
            assert!(upstream.expect("dialed").finish().await.is_err());
        }
        Start::Server { .. } => panic!("the destination's close was taken for a greeting"),
        _ => panic!("expected HTTP"),
    }
}

#[tokio::test]
async fn a_destination_closing_without_a_byte_decides_nothing_while_http_may_be_routed() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    // The destination accepts and closes at once (a load balancer without backends).
    tokio::spawn(async move {
        while let Ok((closed, _)) = server.accept().await {
            drop(closed);
        }
    });
    let (mut client, accepted) = pair().await;
    let (dialed_tx, dialed) = tokio::sync::oneshot::channel();
    let dial = move || -> Connecting {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            // Returned once its end of stream is there to see.
            stream.readable().await?;
            let _ = dialed_tx.send(());
            Ok(UpstreamStream::Plain { tcp: stream })
        })
    };
    let start = http_once(&mut client, accepted, dial, dialed).await;
    assert_http_without_destination(start).await;
}

#[tokio::test(start_paused = true)]
async fn silence_on_both_sides_lasts_until_the_idle_timeout() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (_client, mut accepted) = pair().await;
    let keep = tokio::spawn(async move { server.accept().await });
    assert!(matches!(
        race(
            &mut accepted,
            dial_to(addr),
            false,
            Duration::from_secs(300)
        )
        .await,
        Start::Idle
    ));
    drop(keep);
}

/// A meshed peer (mutual TLS, header read) that ends its side with a TLS close_notify
/// as soon as it has accepted (as the inbound side does when its app closes without a
/// byte), keeping the TCP connection open. Returns the peer's inbound port.
async fn meshed_peer_that_closes(api: &std::sync::Arc<crate::tls::identity::IdentityStore>) -> u16 {
    use crate::mesh::tests::pki::plan;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plan = plan(api, port);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut accepted = crate::mesh::accept::accept(tcp, &plan, Duration::from_secs(5))
            .await
            .unwrap();
        accepted.stream.shutdown().await.unwrap();
        std::future::pending::<()>().await;
        drop(accepted);
    });
    port
}

#[tokio::test]
async fn a_meshed_peers_tls_close_decides_nothing_while_http_may_be_routed() {
    use crate::mesh::MeshProtocol;
    use crate::mesh::connect::MeshDial;
    use crate::mesh::tests::pki::{Pki, plan};
    let pki = Pki::new("mesh");
    let web = pki.identity("spiffe://cluster.local/ns/prod/sa/web");
    let api = pki.identity("spiffe://cluster.local/ns/prod/sa/api");
    let port = meshed_peer_that_closes(&api).await;
    let app = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
    let (mut client, accepted) = pair().await;
    let (dialed_tx, dialed) = tokio::sync::oneshot::channel();
    let dial = move || -> Connecting {
        Box::pin(async move {
            let meshed = MeshDial::new(plan(&web, port), app, MeshProtocol::Opaque)
                .open(Duration::from_secs(5))
                .await
                .map_err(io::Error::other)?;
            // Returned once the peer's close_notify is there to read.
            meshed.stream.get_ref().0.readable().await?;
            let _ = dialed_tx.send(());
            Ok(UpstreamStream::Tls { tls: meshed.stream })
        })
    };
    let start = http_once(&mut client, accepted, dial, dialed).await;
    assert_http_without_destination(start).await;
}
