//! The Envoy streams open right now and, per resource type, what each was sent, what it
//! ACKed and its last NACK (`/status` shows them under `envoy`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::translate::Refusal;
use super::types::ResourceType;

/// Which flavour of ADS a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// State of the World: every response holds all the subscribed resources of a type.
    Sotw,
    /// Incremental: responses hold what changed and the names removed.
    Delta,
}

/// A NACK: the version Envoy refused and the error it gave.
#[derive(Clone, Debug, Serialize)]
pub struct XdsNack {
    pub version: String,
    pub error: String,
}

/// One resource type on one stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TypeStatus {
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    /// The last NACK, until a later version is ACKed.
    pub last_nack: Option<XdsNack>,
}

/// One open Envoy stream.
#[derive(Clone, Debug, Serialize)]
pub struct EnvoyStream {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub peer: String,
    pub protocol: Protocol,
    pub types: BTreeMap<ResourceType, TypeStatus>,
    /// Resources this node would get that were not sent, and why.
    pub refused: Vec<Refusal>,
}

/// Every open Envoy stream, by stream id.
#[derive(Debug, Default)]
pub struct EnvoyStreams {
    streams: Mutex<BTreeMap<u64, EnvoyStream>>,
}

impl EnvoyStreams {
    pub fn insert(&self, stream: u64, status: EnvoyStream) {
        self.lock().insert(stream, status);
    }

    pub fn remove(&self, stream: u64) {
        self.lock().remove(&stream);
    }

    pub fn update(&self, stream: u64, f: impl FnOnce(&mut EnvoyStream)) {
        if let Some(status) = self.lock().get_mut(&stream) {
            f(status);
        }
    }

    /// Records what a stream did with one type.
    pub fn update_type(&self, stream: u64, ty: ResourceType, f: impl FnOnce(&mut TypeStatus)) {
        self.update(stream, |s| f(s.types.entry(ty).or_default()));
    }

    /// Every open stream, sorted by node id.
    pub fn list(&self) -> Vec<EnvoyStream> {
        let mut all: Vec<EnvoyStream> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, EnvoyStream>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}
