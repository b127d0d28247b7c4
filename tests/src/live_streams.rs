//! A WebSocket and a gRPC bidirectional stream held open through one proxy listener,
//! for tests that change the config under them and check both still carry messages.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::Streaming;

use crate::grpc::{EchoReply, EchoRequest, GrpcClient, request_channel};
use crate::wait::within;
use crate::ws::{WsStream, ws_connect, ws_round_trip};

/// How long one echo may take.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// A WebSocket on `/chat` and a gRPC `Bidi` call, both echoing.
pub struct LiveStreams {
    ws: WsStream,
    grpc_requests: tokio::sync::mpsc::Sender<EchoRequest>,
    grpc_replies: Streaming<EchoReply>,
}

impl std::fmt::Debug for LiveStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStreams").finish_non_exhaustive()
    }
}

impl LiveStreams {
    /// Opens both through `addr` and checks one echo on each.
    ///
    /// # Panics
    /// When either fails to open or to echo in time.
    pub async fn open(addr: SocketAddr) -> Self {
        let ws = ws_connect(addr, "/chat").await;
        let mut grpc = GrpcClient::connect(addr).await;
        let (grpc_requests, requests) = request_channel();
        grpc_requests
            .send(EchoRequest::new("opening"))
            .await
            .expect("queue the first gRPC message");
        let grpc_replies = grpc
            .bidi(requests)
            .await
            .expect("the bidi call starts")
            .into_inner();
        let mut streams = Self {
            ws,
            grpc_requests,
            grpc_replies,
        };
        let first = within(
            "the first gRPC echo",
            ECHO_TIMEOUT,
            streams.grpc_replies.message(),
        );
        assert_eq!(
            first.await.expect("no error").expect("a reply").message,
            "opening"
        );
        streams.echo("opened").await;
        streams
    }

    /// Sends `text` on both and checks each echoes it.
    ///
    /// # Panics
    /// When either does not echo `text` in time.
    pub async fn echo(&mut self, text: &str) {
        assert_eq!(ws_round_trip(&mut self.ws, text).await, text, "WebSocket");
        self.grpc_requests
            .send(EchoRequest::new(text))
            .await
            .expect("send on the gRPC stream");
        let reply = within("a gRPC echo", ECHO_TIMEOUT, self.grpc_replies.message()).await;
        assert_eq!(
            reply.expect("no error").expect("a reply").message,
            text,
            "gRPC"
        );
    }

    /// Ends both cleanly: the gRPC call with status 0, the WebSocket with a close.
    ///
    /// # Panics
    /// When either does not end cleanly.
    pub async fn close(mut self) {
        drop(self.grpc_requests);
        let end = within(
            "the end of the call",
            ECHO_TIMEOUT,
            self.grpc_replies.message(),
        )
        .await;
        assert!(
            matches!(end, Ok(None)),
            "the call ends with grpc-status 0: {end:?}"
        );
        self.ws.close(None).await.expect("a clean WebSocket close");
    }
}
