//! `meshwork inject`: Kubernetes resources in, the same resources out with meshwork added
//! to their pods — the `meshwork init` init container, its `--validate` check, the proxy
//! as a native sidecar (an init container with `restartPolicy: Always`), the volumes of
//! its config and identity, and an annotation marking the pod injected.
//!
//! The input is a YAML stream (what `kubectl apply -f` takes, `kind: List` included).
//! Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs are
//! injected; every other document goes out as it came (comments aside). Injecting an
//! injected resource gives the same bytes: what an earlier run added is taken out and
//! added again from the current options.
//!
//! Resources are handled as JSON values rather than `k8s-openapi` types: a typed round
//! trip would drop fields its version does not know (and reorder the rest), while
//! `inject` must hand back everything it does not touch exactly as written.

pub mod cli;
mod pod;
mod probes;
mod sidecar;
mod workload;
pub mod yaml;

use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub use pod::{
    DEFAULT_GRACE_PERIOD, EXIT_MARGIN, INJECT_ANNOTATION, INJECTED_ANNOTATION, InvalidPod,
};
pub use probes::InvalidProbePort;
pub use sidecar::{
    ADMIN_PORT, CONFIG_VOLUME, IDENTITY_VOLUME, INIT_CONTAINER, PROXY_CONTAINER, STATE_VOLUME,
    VALIDATE_CONTAINER,
};
pub use workload::WorkloadKind;
pub use yaml::YamlError;

/// The ConfigMap holding the proxy's `config.yaml` unless `--config-map` says otherwise.
pub const DEFAULT_CONFIG_MAP: &str = "meshwork-sidecar";

/// The image `inject` uses unless told otherwise: this version of meshwork, as the
/// Dockerfile builds it (`docker build -t meshwork:VERSION .`).
pub fn default_image() -> String {
    format!("meshwork:{}", env!("CARGO_PKG_VERSION"))
}

/// What `meshwork inject` adds, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    /// The meshwork image (proxy and init containers alike).
    pub image: String,
    /// The ConfigMap with the proxy's `config.yaml`.
    pub config_map: String,
    /// The Secret with the identity; `None`: `meshwork-identity-<service account>`, since
    /// an identity is per service account (`spiffe://<trust domain>/ns/<ns>/sa/<account>`).
    pub identity_secret: Option<String>,
    /// The proxy's drain deadline; `None`: the pod's grace period less [`EXIT_MARGIN`].
    pub drain_timeout: Option<Duration>,
}

/// Where in the input a resource is: its document (from 1) and, inside a `kind: List`,
/// its item (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// Why the input cannot be injected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{at}: not a Kubernetes resource (a mapping with `apiVersion` and `kind`)")]
    NotAResource { at: Location },
    #[error("{at}: {kind} {name:?}: no pod template at `{pointer}`")]
    NoTemplate {
        at: Location,
        kind: String,
        name: String,
        pointer: String,
    },
    #[error("{at}: {kind} {name:?}: {source}")]
    Pod {
        at: Location,
        kind: String,
        name: String,
        source: Box<InvalidPod>,
    },
    #[error(
        "no workload in the input (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job \
         or CronJob in apps/v1, batch/v1 or v1); found: {found}"
    )]
    NoWorkload { found: String },
}

/// What `inject` did to one resource, for the report on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Location,
    /// `Deployment "web"`.
    pub resource: String,
    pub what: NoteKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteKind {
    Injected,
    /// Left alone: `meshwork.io/inject: disabled`.
    Disabled,
    /// Not a workload: passed through.
    PassedThrough,
    /// The kubelet's ports (probes, hooks), left out of interception so that they reach
    /// the app: every client reaches them without the proxy.
    ProbePortsBypassed(Vec<u16>),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Note { at, resource, what } = self;
        match what {
            NoteKind::Injected => write!(f, "{at}: {resource}: injected"),
            NoteKind::Disabled => write!(
                f,
                "{at}: {resource}: left alone ({INJECT_ANNOTATION}: disabled)"
            ),
            NoteKind::PassedThrough => write!(f, "{at}: {resource}: not a workload, unchanged"),
            NoteKind::ProbePortsBypassed(ports) => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(
                    f,
                    "{at}: {resource}: port(s) {} of the kubelet's probes and hooks are left \
                     out of interception, so every client reaches them without the proxy (no \
                     mTLS, no authorization): serve probes on a port that serves nothing else",
                    ports.join(", ")
                )
            }
        }
    }
}

/// The injected YAML stream and what happened to each resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub yaml: String,
    pub notes: Vec<Note>,
}

/// Injects every workload of the YAML stream `input`.
///
/// # Errors
/// See [`InjectError`]: the first problem found, with its document.
pub fn inject(input: &str, options: &InjectOptions) -> Result<Injected, InjectError> {
    let mut documents = Vec::new();
    let mut notes = Vec::new();
    for (index, document) in yaml::parse_documents(input)?.into_iter().enumerate() {
        let Some(mut document) = document else {
            continue;
        };
        let at = Location {
            document: index + 1,
            item: None,
        };
        if is_list(&document) {
            let items = document
                .get_mut("items")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for (item, resource) in items.enumerate() {
                let at = Location {
                    item: Some(item),
                    ..at
                };
                inject_resource(resource, at, options, &mut notes)?;
            }
        } else {
            inject_resource(&mut document, at, options, &mut notes)?;
        }
        documents.push(document);
    }
    if !notes.iter().any(|n| n.what != NoteKind::PassedThrough) {
        let found: Vec<&str> = notes.iter().map(|n| n.resource.as_str()).collect();
        return Err(InjectError::NoWorkload {
            found: if found.is_empty() {
                "nothing".into()
            } else {
                found.join(", ")
            },
        });
    }
    Ok(Injected {
        yaml: yaml::emit_documents(&documents),
        notes,
    })
}

fn is_list(document: &Value) -> bool {
    document.get("kind").and_then(Value::as_str) == Some("List")
        && document.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

fn inject_resource(
    resource: &mut Value,
    at: Location,
    options: &InjectOptions,
    notes: &mut Vec<Note>,
) -> Result<(), InjectError> {
    let text = |key: &str| resource.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(kind), Some(_)) = (text("kind"), text("apiVersion")) else {
        return Err(InjectError::NotAResource { at });
    };
    let name = resource
        .pointer("/metadata/name")
        .or_else(|| resource.pointer("/metadata/generateName"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let resource_name = format!("{kind} {name:?}");
    let Some(workload) = WorkloadKind::of(resource) else {
        notes.push(Note {
            at,
            resource: resource_name,
            what: NoteKind::PassedThrough,
        });
        return Ok(());
    };
    let pointer = workload.pod_pointer();
    let Some(pod_value) = resource.pointer_mut(pointer).filter(|p| p.is_object()) else {
        return Err(InjectError::NoTemplate {
            at,
            kind,
            name,
            pointer: pointer.trim_start_matches('/').replace('/', "."),
        });
    };
    let outcome = pod::inject(pod_value, options).map_err(|source| InjectError::Pod {
        at,
        kind,
        name,
        source: Box::new(source),
    })?;
    match outcome {
        pod::PodOutcome::Disabled => notes.push(Note {
            at,
            resource: resource_name,
            what: NoteKind::Disabled,
        }),
        pod::PodOutcome::Injected { bypassed_ports } => {
            notes.push(Note {
                at,
                resource: resource_name.clone(),
                what: NoteKind::Injected,
            });
            if !bypassed_ports.is_empty() {
                notes.push(Note {
                    at,
                    resource: resource_name,
                    what: NoteKind::ProbePortsBypassed(bypassed_ports.into_iter().collect()),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
