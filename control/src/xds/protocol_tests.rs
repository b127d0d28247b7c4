//! The ADS protocol rules driven by hand over a real socket (the real server, a tonic
//! client): ACK and NACK per type, stale nonces, subscriptions, pushes on change, and
//! Delta's resume from `initial_resource_versions`. Envoy itself (tests/xds_envoy.rs)
//! never NACKs what meshwork-control sends, so NACKs are shown here.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::types::ResourceType;
use crate::testing::ServedFragment;

/// How long one response may take to arrive.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

const FRAGMENT: &str = "
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
route_tables:
  edge:
    - name: all
      backends: [{ cluster: api }]
clusters:
  - name: api
    endpoints: [127.0.0.1:9001]
";

/// The control plane serving [`FRAGMENT`] on `127.0.0.1:0`.
type Harness = ServedFragment;

async fn start() -> Harness {
    ServedFragment::start(FRAGMENT).await
}

async fn client(h: &Harness) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{}", h.address))
        .await
        .expect("connect")
}

fn node() -> Option<Node> {
    Some(Node {
        id: "envoy-test".into(),
        ..Default::default()
    })
}

fn nack(message: &str) -> Option<rpc::Status> {
    Some(rpc::Status {
        code: 3,
        message: message.into(),
        ..Default::default()
    })
}

/// One State of the World stream: requests in, responses out.
struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    /// Opens a stream with `first` (the server answers the call once it has it).
    async fn open(h: &Harness, first: DiscoveryRequest) -> Sotw {
        let (tx, requests) = mpsc::channel(8);
        tx.send(first).await.expect("queue the first request");
        let rx = client(h)
            .await
            .stream_aggregated_resources(ReceiverStream::new(requests))
            .await
            .expect("open the stream")
            .into_inner();
        Sotw { tx, rx }
    }

    fn request(
        ty: ResourceType,
        names: &[&str],
        nonce: &str,
        error: Option<rpc::Status>,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            node: node(),
            type_url: ty.url(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            error_detail: error,
            ..Default::default()
        }
    }

    async fn send(
        &self,
        ty: ResourceType,
        names: &[&str],
        nonce: &str,
        error: Option<rpc::Status>,
    ) {
        let request = Self::request(ty, names, nonce, error);
        self.tx.send(request).await.expect("send a request");
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(RESPONSE_TIMEOUT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("the stream is open")
    }
}

fn envoy_status(h: &Harness, ty: ResourceType) -> super::status::TypeStatus {
    h.control.envoy.list()[0].types[&ty].clone()
}

/// Waits until the server has taken a NACK of `ty` (requests and catalog changes race).
async fn nacked(h: &Harness, ty: ResourceType) {
    let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
    while h.control.envoy.list()[0].types[&ty].last_nack.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the NACK was not taken in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sotw_acks_nacks_and_stale_nonces_follow_xds() {
    let mut h = start().await;
    let mut s = Sotw::open(&h, Sotw::request(ResourceType::Cluster, &[], "", None)).await;
    let clusters = s.next().await;
    assert_eq!(clusters.type_url, ResourceType::Cluster.url());
    assert_eq!(clusters.resources.len(), 1);

    // A NACK is recorded and the refused version is not sent again: the next response
    // on the stream answers the endpoints subscription that follows it.
    s.send(
        ResourceType::Cluster,
        &[],
        &clusters.nonce,
        nack("bad cluster"),
    )
    .await;
    s.send(ResourceType::Endpoints, &["api"], "", None).await;
    let endpoints = s.next().await;
    assert_eq!(endpoints.type_url, ResourceType::Endpoints.url());
    let status = envoy_status(&h, ResourceType::Cluster);
    assert_eq!(status.acked_version, None);
    let last_nack = status.last_nack.expect("the NACK is shown");
    assert_eq!(
        (last_nack.version.as_str(), last_nack.error.as_str()),
        (clusters.version_info.as_str(), "bad cluster")
    );

    // A request naming an older nonce is ignored, even with another subscription.
    s.send(
        ResourceType::Endpoints,
        &["api", "other"],
        &clusters.nonce,
        None,
    )
    .await;
    s.send(ResourceType::Endpoints, &["api"], &endpoints.nonce, None)
        .await;
    s.send(ResourceType::Listener, &[], "", None).await;
    let listeners = s.next().await;
    assert_eq!(
        listeners.type_url,
        ResourceType::Listener.url(),
        "a stale request was answered"
    );
    assert_eq!(
        envoy_status(&h, ResourceType::Endpoints)
            .acked_version
            .as_deref(),
        Some(endpoints.version_info.as_str())
    );

    // A change is pushed to the types it touches, clusters before endpoints.
    s.send(ResourceType::Listener, &[], &listeners.nonce, None)
        .await;
    h.edit(&FRAGMENT.replace("9001", "9002").replace("api", "api2"));
    let pushed = [s.next().await, s.next().await];
    let types: Vec<&str> = pushed.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(
        types,
        [ResourceType::Cluster.url(), ResourceType::Endpoints.url()]
    );
    assert_ne!(pushed[0].version_info, clusters.version_info);
    // Endpoints are named: api is gone and api2 was not asked for.
    assert!(pushed[1].resources.is_empty());
}

/// One Delta stream.
struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    /// Opens a stream with `first` (the server answers the call once it has it).
    async fn open(h: &Harness, first: DeltaDiscoveryRequest) -> Delta {
        let (tx, requests) = mpsc::channel(8);
        let first = DeltaDiscoveryRequest {
            node: node(),
            ..first
        };
        tx.send(first).await.expect("queue the first request");
        let rx = client(h)
            .await
            .delta_aggregated_resources(ReceiverStream::new(requests))
            .await
            .expect("open the stream")
            .into_inner();
        Delta { tx, rx }
    }

    async fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx
            .send(DeltaDiscoveryRequest {
                node: node(),
                ..request
            })
            .await
            .expect("send a request");
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(RESPONSE_TIMEOUT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("the stream is open")
    }
}

#[tokio::test]
async fn delta_sends_only_what_changed_and_resumes_from_held_versions() {
    let mut h = start().await;
    let clusters = DeltaDiscoveryRequest {
        type_url: ResourceType::Cluster.url(),
        ..Default::default()
    };
    let mut d = Delta::open(&h, clusters.clone()).await;
    let first = d.next().await;
    assert_eq!(first.resources.len(), 1);
    let api_version = first.resources[0].version.clone();
    d.send(DeltaDiscoveryRequest {
        response_nonce: first.nonce.clone(),
        ..clusters.clone()
    })
    .await;

    // An edit that renames the cluster: the new one sent, the old one removed.
    h.edit(&FRAGMENT.replace("api", "api2"));
    let change = d.next().await;
    let names: Vec<&str> = change.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["api2"]);
    assert_eq!(change.removed_resources, ["api"]);
    // A NACK puts back what Envoy held: the next change is sent relative to it.
    d.send(DeltaDiscoveryRequest {
        response_nonce: change.nonce.clone(),
        error_detail: nack("no"),
        ..clusters.clone()
    })
    .await;
    nacked(&h, ResourceType::Cluster).await;
    h.edit(&FRAGMENT.replace("api", "api3"));
    let next = d.next().await;
    let names: Vec<&str> = next.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["api3"]);
    assert_eq!(
        next.removed_resources,
        ["api"],
        "api2 was refused, api is what Envoy holds"
    );

    // A new stream that says it holds api at its version gets nothing more for it.
    h.edit(FRAGMENT);
    let held = [("api".to_string(), api_version)].into_iter().collect();
    let mut resumed = Delta::open(
        &h,
        DeltaDiscoveryRequest {
            initial_resource_versions: held,
            ..clusters
        },
    )
    .await;
    let answer = resumed.next().await;
    assert!(answer.resources.is_empty() && answer.removed_resources.is_empty());
}
