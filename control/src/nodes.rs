//! The proxies connected right now and what each did with what it was sent (`/status`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// A resource a proxy rejected, as it said in its NACK.
#[derive(Clone, Debug, Serialize)]
pub struct Rejected {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub source: String,
    pub error: String,
}

/// A NACK: the version it answered and the resources it rejected (the rest applied).
#[derive(Clone, Debug, Serialize)]
pub struct Nack {
    pub version: String,
    pub rejected: Vec<Rejected>,
}

/// One connected proxy.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub peer: String,
    /// The SPIFFE ID of its verified client certificate (mTLS), if any.
    pub identity: Option<String>,
    /// The version last sent.
    pub sent_version: Option<String>,
    /// The version last applied whole (ACK).
    pub acked_version: Option<String>,
    /// The last NACK, until a later version is ACKed.
    pub last_nack: Option<Nack>,
}

/// Every open stream's node, by stream id.
#[derive(Debug, Default)]
pub struct Nodes {
    streams: Mutex<BTreeMap<u64, NodeStatus>>,
}

impl Nodes {
    pub fn insert(&self, stream: u64, status: NodeStatus) {
        self.lock().insert(stream, status);
    }

    pub fn remove(&self, stream: u64) {
        self.lock().remove(&stream);
    }

    pub fn update(&self, stream: u64, f: impl FnOnce(&mut NodeStatus)) {
        if let Some(status) = self.lock().get_mut(&stream) {
            f(status);
        }
    }

    /// Every connected node, sorted by id.
    pub fn list(&self) -> Vec<NodeStatus> {
        let mut all: Vec<NodeStatus> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, NodeStatus>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}
