//! The mesh identity: this proxy's certificate, key and trust bundle, held in one atomic
//! slot so a rotation changes them for every new handshake at once, while connections
//! already established keep the session they negotiated.
//!
//! Listener and cluster TLS configs that use the identity are built once per snapshot and
//! read the slot per handshake through the resolvers and verifiers below.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use meshwork_config::model;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};

use super::files::{self, TlsFileError};
use super::resumption::SessionState;
use crate::metrics::tls::TlsMetrics;

/// One generation of identity files, loaded and checked.
#[derive(Debug)]
pub struct IdentityMaterial {
    pub certified: Arc<CertifiedKey>,
    pub roots: Arc<RootCertStore>,
    /// The SPIFFE ID in the certificate's URI SAN, if any.
    pub spiffe_id: Option<String>,
    /// When the certificate expires (Unix seconds).
    pub not_after: Option<i64>,
    /// Verifiers of client certificates against `roots`, with and without a certificate
    /// being mandatory (see [`Self::client_verifier`]).
    required: Arc<dyn ClientCertVerifier>,
    optional: Arc<dyn ClientCertVerifier>,
    /// The files' bytes, to tell a real change from a touch.
    fingerprint: Vec<u8>,
    /// TLS 1.3 session resumption between meshed peers, for this generation only: a
    /// rotation starts with new ticket keys and no tickets (see `resumption.rs`).
    pub sessions: SessionState,
}

impl IdentityMaterial {
    /// Reads and checks the three files.
    ///
    /// # Errors
    /// The first file that cannot be used, and why.
    pub fn load(files: &model::Identity) -> Result<Self, TlsFileError> {
        let certified = files::certified_key(&files.cert, &files.key)?;
        let roots = files::read_roots(&files.trust_bundle)?;
        let leaf = certified.cert.first();
        let verifier = |mandatory: bool| {
            let builder =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), super::provider());
            let builder = if mandatory {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder.build().map_err(|e| TlsFileError {
                path: files.trust_bundle.clone(),
                problem: format!("cannot verify client certificates with this bundle: {e}"),
            })
        };
        let sessions = SessionState::new(&certified, &roots).map_err(|e| TlsFileError {
            path: files.key.clone(),
            problem: format!("cannot make session ticket keys for it: {e}"),
        })?;
        Ok(Self {
            sessions,
            spiffe_id: leaf.and_then(super::spiffe::spiffe_id),
            not_after: leaf.and_then(files::not_after),
            required: verifier(true)?,
            optional: verifier(false)?,
            certified,
            roots,
            fingerprint: fingerprint(files),
        })
    }

    /// The verifier of client certificates against this generation's bundle, a
    /// certificate `mandatory` or not.
    pub fn client_verifier(&self, mandatory: bool) -> Arc<dyn ClientCertVerifier> {
        if mandatory {
            self.required.clone()
        } else {
            self.optional.clone()
        }
    }
}

/// The three files' bytes (read again: a rotation compares them, not timestamps).
fn fingerprint(files: &model::Identity) -> Vec<u8> {
    let mut all = Vec::new();
    for path in [&files.cert, &files.key, &files.trust_bundle] {
        all.extend(std::fs::read(path).unwrap_or_default());
        all.push(0);
    }
    all
}

/// The live identity, shared by every TLS config that uses it.
#[derive(Debug)]
pub struct IdentityStore {
    current: ArcSwapOption<IdentityMaterial>,
    /// The files the current identity was read from (what the watcher follows).
    files: Mutex<Option<model::Identity>>,
    /// The contents last refused, so one bad write is reported once.
    rejected: Mutex<Option<Vec<u8>>>,
    metrics: TlsMetrics,
}

impl IdentityStore {
    pub fn new(metrics: TlsMetrics) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            files: Mutex::new(None),
            rejected: Mutex::new(None),
            metrics,
        }
    }

    pub fn current(&self) -> Option<Arc<IdentityMaterial>> {
        self.current.load_full()
    }

    /// The identity files in use (none when the config has no `identity`).
    pub fn files(&self) -> Option<model::Identity> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The paths to watch.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        self.files()
            .map(|f| vec![f.cert, f.key, f.trust_bundle])
            .unwrap_or_default()
    }

    /// Puts a loaded identity (or none) in place, for the config being applied. The same
    /// files with the same contents keep the generation in place (a config reload is no
    /// rotation: connections made ahead of need and resumable sessions stay valid).
    pub fn install(&self, files: Option<model::Identity>, material: Option<IdentityMaterial>) {
        if let Some(m) = &material {
            self.observe(m);
        }
        let mut installed = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let unchanged = *installed == files
            && match (self.current(), &material) {
                (Some(current), Some(new)) => current.fingerprint == new.fingerprint,
                (None, None) => true,
                _ => false,
            };
        *installed = files;
        if !unchanged {
            self.current.store(material.map(Arc::new));
        }
    }

    /// Reads the identity files again (they changed on disk). A broken new set is
    /// refused and the current identity stays. Returns whether the identity changed.
    ///
    /// # Errors
    /// The file that cannot be used (once per distinct broken contents); the current
    /// identity is kept.
    pub fn reload(&self) -> Result<bool, TlsFileError> {
        let Some(files) = self.files() else {
            return Ok(false);
        };
        let contents = fingerprint(&files);
        let unchanged = self.current().is_some_and(|c| c.fingerprint == contents);
        let mut rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        if unchanged || rejected.as_ref() == Some(&contents) {
            return Ok(false);
        }
        match IdentityMaterial::load(&files) {
            Ok(material) => {
                *rejected = None;
                self.observe(&material);
                self.metrics.identity_reloads("applied");
                tracing::info!(
                    spiffe_id = material.spiffe_id.as_deref().unwrap_or("-"),
                    not_after = material.not_after.unwrap_or_default(),
                    "identity rotated; new handshakes use the new certificate"
                );
                self.current.store(Some(Arc::new(material)));
                Ok(true)
            }
            Err(error) => {
                *rejected = Some(contents);
                // Logged before counting, so whoever sees the counter finds the reason.
                tracing::error!(%error, "identity files changed but cannot be used; keeping the current identity");
                self.metrics.identity_reloads("rejected");
                Err(error)
            }
        }
    }

    fn observe(&self, material: &IdentityMaterial) {
        if let Some(t) = material.not_after {
            self.metrics.identity_expiry.set(t);
        }
    }
}

/// Serves (listeners) or presents (clusters) the current identity certificate.
#[derive(Debug)]
pub struct IdentityCert(pub Arc<IdentityStore>);

impl ResolvesServerCert for IdentityCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current().map(|m| m.certified.clone())
    }
}

impl ResolvesClientCert for IdentityCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.current().map(|m| m.certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies client certificates against the current identity's trust bundle.
#[derive(Debug)]
pub struct IdentityClientVerifier {
    pub store: Arc<IdentityStore>,
    pub mandatory: bool,
}

impl IdentityClientVerifier {
    fn inner(&self) -> Result<Arc<dyn ClientCertVerifier>, Error> {
        let material = self
            .store
            .current()
            .ok_or_else(|| Error::General("no mesh identity is loaded".into()))?;
        Ok(material.client_verifier(self.mandatory))
    }
}

impl ClientCertVerifier for IdentityClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No CA names are sent (allowed by TLS): the bundle may rotate under a borrowed list.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
