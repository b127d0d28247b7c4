//! Test certificates for meshed connections: a CA per trust domain (`meshwork certs`'
//! own code) and identity stores holding workload certificates issued by it, with or
//! without a SPIFFE ID.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshwork_config::model::{Identity, Mesh, MeshInbound};

use crate::mesh::MeshPlan;
use crate::tls::identity::{IdentityMaterial, IdentityStore};

/// A CA in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA named `name` (two trust roots need two names: a verifier finds the issuer
    /// by name before it checks the signature).
    pub(crate) fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        crate::certs::create_ca(&dir.path().join("ca"), name, 1, false).unwrap();
        Self { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The CA certificate (PEM), to put in a trust bundle.
    pub(crate) fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca().join("ca.pem")).unwrap()
    }

    /// An identity store holding a workload certificate for `spiffe_id`.
    pub(crate) fn identity(&self, spiffe_id: &str) -> Arc<IdentityStore> {
        let out = self.dir.path().join(spiffe_id.rsplit('/').next().unwrap());
        crate::certs::issue_workload(&self.ca(), spiffe_id, &[], &out, 1, true).unwrap();
        store(&out)
    }

    /// An identity store whose certificate (from this CA) has a DNS name and no SPIFFE ID.
    pub(crate) fn identity_without_spiffe_id(&self, dns: &str) -> Arc<IdentityStore> {
        let ca_pem = std::fs::read_to_string(self.ca().join("ca.pem")).unwrap();
        let ca_key = std::fs::read_to_string(self.ca().join("ca-key.pem")).unwrap();
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&ca_pem, rcgen::KeyPair::from_pem(&ca_key).unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![dns.into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let out = self.dir.path().join(dns);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(out.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(out.join("ca.pem"), ca_pem).unwrap();
        store(&out)
    }
}

/// Makes `store` trust `cas` (PEM certificates, concatenated into its own bundle file,
/// written in place): installed at once, or, when the store already uses that bundle, a
/// rotation (the store reads its files again, as its watcher would).
pub(crate) fn trust(store: &IdentityStore, cas: &[String]) {
    let mut files = store.files().unwrap();
    let bundle = files.cert.with_file_name("bundle.pem");
    std::fs::write(&bundle, cas.concat()).unwrap();
    if files.trust_bundle == bundle {
        assert!(store.reload().unwrap(), "the bundle changed");
    } else {
        files.trust_bundle = bundle;
        let material = IdentityMaterial::load(&files).unwrap();
        store.install(Some(files), Some(material));
    }
}

fn store(dir: &Path) -> Arc<IdentityStore> {
    let files = Identity {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        trust_bundle: dir.join("ca.pem"),
    };
    let material = IdentityMaterial::load(&files).unwrap();
    let store = Arc::new(IdentityStore::new(crate::metrics::Metrics::new().tls));
    store.install(Some(files), Some(material));
    store
}

/// A plan for `identity` whose peers accept on `inbound_port` (of 127.0.0.1).
pub(crate) fn plan(identity: &Arc<IdentityStore>, inbound_port: u16) -> Arc<MeshPlan> {
    let mesh = Mesh {
        networks: vec!["127.0.0.0/8".parse().unwrap()],
        inbound: MeshInbound::Strict,
        inbound_port,
    };
    MeshPlan::build(Some(&mesh), identity, &crate::metrics::Metrics::new())
        .unwrap()
        .unwrap()
}
