//! Meshwork's `Discovery.Stream` through the hand-written gRPC side, over a real socket
//! with tonic's generated client: what `grpc.rs` refuses, and that the streams of one
//! node group, sent one shared encoding, decode the same first response and the same
//! change.

use std::time::Duration;

use meshwork_config::discovery::discovery_client::DiscoveryClient;
use meshwork_config::discovery::{DiscoveryRequest, DiscoveryResponse, Node};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

use crate::testing::ServedFragment;

/// How long one response may take to arrive.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

fn fragment(endpoint: &str) -> String {
    format!(
        "
clusters:
  - name: api
    endpoints: [{endpoint}]
  - name: web
    endpoints: [127.0.0.1:9100]
"
    )
}

/// The control plane on a temporary directory, and a client of its discovery port.
struct Harness {
    served: ServedFragment,
    client: DiscoveryClient<tonic::transport::Channel>,
}

impl Harness {
    async fn start() -> Harness {
        let served = ServedFragment::start(&fragment("127.0.0.1:9001")).await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", served.address))
            .expect("an endpoint")
            .connect()
            .await
            .expect("connect");
        Harness {
            served,
            client: DiscoveryClient::new(channel),
        }
    }

    /// Opens a stream whose first request is `hello`.
    async fn open(
        &self,
        hello: DiscoveryRequest,
    ) -> Result<(mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>), tonic::Status> {
        let (tx, rx) = mpsc::channel(4);
        tx.send(hello).await.expect("queue the first request");
        let responses = self
            .client
            .clone()
            .stream(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok((tx, responses))
    }
}

fn hello(id: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: id.into(),
            labels: Default::default(),
        }),
        ..DiscoveryRequest::default()
    }
}

async fn next(responses: &mut Streaming<DiscoveryResponse>) -> DiscoveryResponse {
    tokio::time::timeout(RESPONSE_TIMEOUT, responses.message())
        .await
        .expect("a response in time")
        .expect("a healthy stream")
        .expect("the stream still open")
}

#[tokio::test]
async fn a_first_request_without_a_node_is_refused() {
    let harness = Harness::start().await;
    let status = match harness.open(DiscoveryRequest::default()).await {
        Ok((_tx, mut responses)) => responses.message().await.expect_err("a refusal"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("node"), "{status:?}");
}

#[tokio::test]
async fn the_streams_of_a_group_decode_one_encoding_alike() {
    let mut harness = Harness::start().await;
    let (tx_a, mut a) = harness.open(hello("a")).await.expect("stream a");
    let (tx_b, mut b) = harness.open(hello("b")).await.expect("stream b");
    let (first_a, first_b) = (next(&mut a).await, next(&mut b).await);
    assert_eq!(first_a.resources.len(), 2, "the two clusters");
    assert_eq!(first_a.resources, first_b.resources);
    assert_eq!(first_a.version, first_b.version);
    assert_ne!(first_a.nonce, "");

    // An edit of one cluster reaches both, as that resource alone.
    harness.served.edit(&fragment("127.0.0.1:9002"));
    for (tx, stream, first) in [(&tx_a, &mut a, &first_a), (&tx_b, &mut b, &first_b)] {
        tx.send(DiscoveryRequest {
            response_nonce: first.nonce.clone(),
            version: first.version.clone(),
            ..DiscoveryRequest::default()
        })
        .await
        .expect("ACK");
        let change = next(stream).await;
        assert_ne!(change.version, first.version);
        let names: Vec<_> = change.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["api"], "{change:?}");
        assert!(change.resources[0].body.contains("9002"), "{change:?}");
        assert!(change.removed.is_empty(), "{change:?}");
    }
}

/// A proxy that says what it holds on subscribing gets only what differs: a resource it
/// holds at the current version is not sent again, one it holds that is gone is removed.
#[tokio::test]
async fn a_first_response_sends_only_what_differs_from_what_the_proxy_holds() {
    let harness = Harness::start().await;
    let (_tx, mut full) = harness.open(hello("full")).await.expect("a full stream");
    let everything = next(&mut full).await;
    let api = everything
        .resources
        .iter()
        .find(|r| r.name == "api")
        .expect("the api cluster");
    let holds = |name: &str, version: &str| meshwork_config::discovery::ResourceRef {
        kind: api.kind,
        name: name.into(),
        version: version.into(),
    };
    let mut resuming = hello("resuming");
    resuming.known = vec![holds("api", &api.version), holds("gone", "0123")];
    let (_tx, mut stream) = harness.open(resuming).await.expect("a resuming stream");
    let first = next(&mut stream).await;
    let names: Vec<_> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["web"], "{first:?}");
    let removed: Vec<_> = first.removed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(removed, ["gone"], "{first:?}");
    assert_eq!(first.version, everything.version);
}
