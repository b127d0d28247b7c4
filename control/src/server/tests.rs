//! Meshwork's `Discovery.Stream` through the hand-written gRPC side, over a real socket
//! with tonic's generated client: what `grpc.rs` refuses, and that the streams of one
//! node group, sent one shared encoding, decode the same first response and the same
//! change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshwork_config::discovery::discovery_client::DiscoveryClient;
use meshwork_config::discovery::{DiscoveryRequest, DiscoveryResponse, Node};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Streaming};

use crate::ControlPlane;
use crate::catalog::Reader;
use crate::metrics::Metrics;

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
    dir: tempfile::TempDir,
    reader: Reader,
    control: Arc<ControlPlane>,
    client: DiscoveryClient<tonic::transport::Channel>,
    stop: CancellationToken,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("mesh.yaml"), fragment("127.0.0.1:9001"))
            .expect("write a fragment");
        let mut reader = Reader::new(dir.path().to_path_buf());
        let catalog = reader.read(&BTreeMap::new()).expect("read the directory");
        assert!(catalog.is_clean(), "{:?}", catalog.problems);
        let control = Arc::new(ControlPlane {
            catalog: watch::channel(Arc::new(catalog)).0,
            nodes: Default::default(),
            metrics: Metrics::new(),
            envoy: Default::default(),
            kubernetes: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("bound address");
        let stop = CancellationToken::new();
        tokio::spawn(super::serve(listener, control.clone(), None, stop.clone()));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("an endpoint")
            .connect()
            .await
            .expect("connect");
        let client = DiscoveryClient::new(channel);
        Harness {
            dir,
            reader,
            control,
            client,
            stop,
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

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
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
    std::fs::write(
        harness.dir.path().join("mesh.yaml"),
        fragment("127.0.0.1:9002"),
    )
    .expect("edit the fragment");
    let catalog = harness
        .reader
        .read(&BTreeMap::new())
        .expect("read the directory");
    harness.control.catalog.send_replace(Arc::new(catalog));
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
