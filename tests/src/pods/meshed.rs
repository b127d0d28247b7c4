//! Two pods with their interception rules and a sidecar each: the whole data path
//! app(A) -> outbound sidecar(A) -> [mTLS] -> inbound sidecar(B) -> app(B), built in one
//! call, and the identities it uses.

use super::{Pods, Sidecar, SidecarConfig};
use crate::tls::{CertFiles, TestCa};

/// Pod A's SPIFFE identity.
pub const SPIFFE_A: &str = "spiffe://cluster.local/ns/test/sa/a";
/// Pod B's SPIFFE identity.
pub const SPIFFE_B: &str = "spiffe://cluster.local/ns/test/sa/b";

/// The mesh CA and each pod's identity certificate.
#[derive(Debug)]
pub struct Identities {
    pub ca: TestCa,
    pub a: CertFiles,
    pub b: CertFiles,
}

impl Identities {
    pub fn new() -> Self {
        let ca = TestCa::new("mesh");
        let a = ca.issue("a").spiffe_id(SPIFFE_A).write();
        let b = ca.issue("b").spiffe_id(SPIFFE_B).write();
        Self { ca, a, b }
    }
}

impl Default for Identities {
    fn default() -> Self {
        Self::new()
    }
}

/// Pods A and B, `meshwork init` run in both (B with `b_init` flags, A with `a_init`),
/// and both sidecars ready. Fields drop in order: sidecars, then the pods.
#[derive(Debug)]
pub struct MeshedPods {
    pub a_sidecar: Sidecar,
    pub b_sidecar: Sidecar,
    pub pods: Pods,
    pub ids: Identities,
}

/// How to build [`MeshedPods`]: each pod's `meshwork init` flags and sidecar config.
#[derive(Debug)]
pub struct MeshedPodsBuilder {
    ids: Identities,
    a_init: Vec<String>,
    b_init: Vec<String>,
    a_config: SidecarConfig,
    b_config: SidecarConfig,
}

impl MeshedPods {
    /// Default init flags and configs ([`SidecarConfig::new`] with each pod's identity).
    pub fn builder() -> MeshedPodsBuilder {
        let ids = Identities::new();
        let a_config = SidecarConfig::new(&ids.a);
        let b_config = SidecarConfig::new(&ids.b);
        MeshedPodsBuilder {
            ids,
            a_init: Vec::new(),
            b_init: Vec::new(),
            a_config,
            b_config,
        }
    }
}

impl MeshedPodsBuilder {
    /// More `meshwork init` flags for pod A.
    pub fn a_init(mut self, args: &[&str]) -> Self {
        self.a_init.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// More `meshwork init` flags for pod B.
    pub fn b_init(mut self, args: &[&str]) -> Self {
        self.b_init.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Changes pod A's sidecar config.
    pub fn a_config(mut self, change: impl FnOnce(SidecarConfig) -> SidecarConfig) -> Self {
        self.a_config = change(self.a_config);
        self
    }

    /// Changes pod B's sidecar config.
    pub fn b_config(mut self, change: impl FnOnce(SidecarConfig) -> SidecarConfig) -> Self {
        self.b_config = change(self.b_config);
        self
    }

    /// Makes the pods, programs both and starts both sidecars (ready).
    pub async fn start(self) -> MeshedPods {
        let pods = Pods::new();
        let a_init: Vec<&str> = self.a_init.iter().map(String::as_str).collect();
        let b_init: Vec<&str> = self.b_init.iter().map(String::as_str).collect();
        pods.a.init(&a_init);
        pods.b.init(&b_init);
        let b_sidecar = Sidecar::start(&pods.b, &self.b_config).await;
        let a_sidecar = Sidecar::start(&pods.a, &self.a_config).await;
        MeshedPods {
            a_sidecar,
            b_sidecar,
            pods,
            ids: self.ids,
        }
    }
}
