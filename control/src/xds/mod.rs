//! xDS v3 for Envoy: the Aggregated Discovery Service (State of the World and Delta)
//! served on the discovery port beside meshwork's own protocol, from the same catalog.
//!
//! A node's resources are the ones its labels select (as for a meshwork proxy: labels
//! come from `node.metadata.labels`), checked together, then translated into Envoy's
//! Listeners, RouteConfigurations, Clusters and ClusterLoadAssignments (`translate`).
//! What Envoy cannot express, or the translation does not do, is refused per resource
//! (with whatever refers to it) and shown in `/status`; nothing is sent half-right. The
//! streams (`sotw`, `delta`) keep xDS's per-type version, nonce and ACK/NACK rules.

mod delta;
mod node;
mod proto;
mod snapshot;
mod sotw;
mod status;
mod stream;
mod translate;
mod types;

#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::ControlPlane;

pub use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
pub use snapshot::{EnvoySnapshot, SnapshotCache};
pub use status::{EnvoyStreams, Protocol};
pub use translate::{Refusal, translate};
pub use types::ResourceType;

/// The gRPC path prefix of the ADS service (to route requests on the shared port).
pub const ADS_PATH_PREFIX: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/";

/// The ADS service: one task per Envoy stream.
#[derive(Debug, Clone)]
pub struct AdsService {
    control: Arc<ControlPlane>,
    cache: Arc<SnapshotCache>,
    next_stream: Arc<AtomicU64>,
}

impl AdsService {
    pub fn new(control: Arc<ControlPlane>) -> Self {
        AdsService {
            control,
            cache: Arc::default(),
            next_stream: Arc::default(),
        }
    }

    fn stream_context(&self, peer: String) -> node::StreamContext {
        node::StreamContext {
            control: self.control.clone(),
            cache: self.cache.clone(),
            // Stream ids of the two protocols share one counter so `/status` keys are unique.
            id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            peer,
        }
    }
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let ctx = self.stream_context(crate::server::peer_of(&request));
        stream::open::<sotw::Sotw>(ctx, stream::into_streaming(request)).await
    }

    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let ctx = self.stream_context(crate::server::peer_of(&request));
        stream::open::<delta::Delta>(ctx, stream::into_streaming(request)).await
    }
}
