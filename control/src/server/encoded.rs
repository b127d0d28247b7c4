//! Discovery responses encoded once and shared between streams.
//!
//! A proxy's first response holds every resource its node group gets: with 100k
//! Kubernetes endpoints that is ~10 MB, and encoding it once per stream (and keeping each
//! copy queued until that stream's flow-control window lets it out) costs a copy per
//! stream. Instead, a node snapshot's resources are encoded once — as the
//! `DiscoveryResponse.resources` entries — the first time a stream needs them, kept with
//! the snapshot ([`EncodedCache`]), and every stream of the group sends that same buffer
//! (reference-counted [`Bytes`], handed to HTTP/2 without copying). Likewise for what an
//! endpoint change replaced (the snapshot's delta): the streams that held the snapshot it
//! was patched from all send one encoding.
//!
//! Protobuf lets a message's fields come in any order and a repeated field's entries be
//! spread out, so a response is the stream's own fields (version, nonce, removed: a few
//! bytes) followed by the shared resources entries; any protobuf decoder reads them as
//! the one `DiscoveryResponse` (a test below holds that).

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use meshwork_config::discovery::{DiscoveryResponse, Resource as WireResource, ResourceRef};
use meshwork_config::resource::Resource;
use prost::Message;
use tonic::Status;

use crate::catalog::NodeSnapshot;

/// `DiscoveryResponse.resources`' field number.
const RESOURCES_FIELD: u32 = 3;

/// Resources encoded as `DiscoveryResponse.resources` entries, and how many.
#[derive(Clone, Debug, Default)]
pub struct EncodedResources {
    pub bytes: Bytes,
    pub count: usize,
}

impl EncodedResources {
    /// Encodes `resources` into one buffer of exactly their size (it is kept as long as
    /// the snapshot is served, so no spare capacity).
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Self {
        let wire: Vec<WireResource> = resources.into_iter().map(WireResource::from).collect();
        let len = wire
            .iter()
            .map(|r| prost::encoding::message::encoded_len(RESOURCES_FIELD, r))
            .sum();
        let mut buf = BytesMut::with_capacity(len);
        for r in &wire {
            prost::encoding::message::encode(RESOURCES_FIELD, r, &mut buf);
        }
        EncodedResources {
            bytes: buf.freeze(),
            count: wire.len(),
        }
    }
}

/// A node snapshot's encodings, made on first use (see the module's doc).
#[derive(Debug, Default)]
pub struct EncodedCache {
    all: OnceLock<EncodedResources>,
    delta: OnceLock<EncodedResources>,
}

impl NodeSnapshot {
    /// Every resource of the snapshot, encoded once for all the streams that send them.
    pub fn encoded_all(&self) -> EncodedResources {
        self.encoded
            .all
            .get_or_init(|| EncodedResources::new(self.resources.values().map(|r| &**r)))
            .clone()
    }

    /// The resources the delta names as changed (those still in the snapshot), encoded
    /// once; empty for a snapshot computed in full.
    pub fn encoded_delta(&self) -> EncodedResources {
        self.encoded
            .delta
            .get_or_init(|| {
                let changed = self.delta.iter().flat_map(|d| &d.changed);
                EncodedResources::new(changed.filter_map(|k| self.resources.get(k).map(|r| &**r)))
            })
            .clone()
    }
}

/// One response as gRPC frames it: the message prefix (compression flag, length) with
/// the stream's own fields, then the resources' shared encoding.
#[derive(Debug)]
pub struct EncodedResponse {
    pub pieces: [Bytes; 2],
}

impl EncodedResponse {
    /// # Errors
    /// A message past gRPC's 4 GiB length limit.
    pub fn new(
        version: String,
        nonce: String,
        removed: Vec<ResourceRef>,
        resources: Bytes,
    ) -> Result<Self, Status> {
        let own = DiscoveryResponse {
            version,
            nonce,
            resources: Vec::new(),
            removed,
        };
        let own_len = own.encoded_len();
        let len = u32::try_from(own_len + resources.len()).map_err(|_| {
            Status::resource_exhausted("a discovery response is past gRPC's 4 GiB limit")
        })?;
        let mut head = BytesMut::with_capacity(5 + own_len);
        head.put_u8(0);
        head.put_u32(len);
        own.encode(&mut head)
            .map_err(|e| Status::internal(format!("encoding a discovery response: {e}")))?;
        Ok(EncodedResponse {
            pieces: [head.freeze(), resources],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwork_config::discovery::Kind as WireKind;
    use meshwork_config::resource::{Key, Kind, Source};

    fn resource(kind: Kind, name: &str, body: &str) -> Resource {
        Resource::new(
            Key::new(kind, name.to_string()),
            body.to_string(),
            Source {
                file: "k8s".into(),
                line: 1,
                column: 2,
                path: "clusters".into(),
            },
        )
    }

    #[test]
    fn a_response_in_pieces_decodes_as_the_one_message() {
        let resources = [
            resource(Kind::Cluster, "web", "{\"a\":1}"),
            resource(Kind::Endpoints, "web", "{\"b\":2}"),
        ];
        let removed = vec![ResourceRef {
            kind: WireKind::Cluster.into(),
            name: "old".into(),
            version: String::new(),
        }];
        let encoded = EncodedResources::new(&resources);
        assert_eq!(encoded.count, 2);
        let response =
            EncodedResponse::new("v1".into(), "7".into(), removed.clone(), encoded.bytes)
                .expect("encodes");
        let wire: Vec<u8> = response.pieces.iter().flat_map(|p| p.to_vec()).collect();
        assert_eq!(wire[0], 0, "not compressed");
        let len = u32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize;
        assert_eq!(len, wire.len() - 5);
        let decoded = DiscoveryResponse::decode(&wire[5..]).expect("decodes");
        let expected = DiscoveryResponse {
            version: "v1".into(),
            nonce: "7".into(),
            resources: resources.iter().map(WireResource::from).collect(),
            removed,
        };
        assert_eq!(decoded, expected);
    }
}
