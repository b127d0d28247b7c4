//! Reading PEM certificate chains, private keys and CA bundles, with errors that name the
//! file and say what is wrong with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A TLS file that cannot be used: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TlsFileError {
    pub path: PathBuf,
    pub problem: String,
}

impl TlsFileError {
    fn new(path: &Path, problem: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| TlsFileError::new(path, format!("cannot read: {e}")))
}

/// The certificates of a PEM file (a chain: leaf first), each checked to be X.509.
///
/// # Errors
/// Unreadable file, no `CERTIFICATE` block, a block that is not a valid certificate.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(path)?;
    let mut certs = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = item.map_err(|e| {
            TlsFileError::new(path, format!("certificate #{}: bad PEM: {e}", i + 1))
        })?;
        if let Err(e) = x509_parser::parse_x509_certificate(&cert) {
            return Err(TlsFileError::new(
                path,
                format!("certificate #{}: not a valid X.509 certificate: {e}", i + 1),
            ));
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(TlsFileError::new(
            path,
            "no certificate found (expected a PEM \"-----BEGIN CERTIFICATE-----\" block)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// Unreadable file, no key block, a key of a kind the crypto provider cannot use.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key found (expected a PEM \"PRIVATE KEY\" block: PKCS#8, PKCS#1 or SEC1)"
                    .to_string()
            }
            other => format!("bad PEM private key: {other}"),
        };
        TlsFileError::new(path, problem)
    })
}

/// A CA bundle: every certificate of the file becomes a trust anchor.
///
/// # Errors
/// As [`read_certs`], plus a certificate that cannot be a trust anchor.
pub fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in read_certs(path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            TlsFileError::new(
                path,
                format!("certificate #{}: cannot be a trust anchor: {e}", i + 1),
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// A certificate chain with its private key, checked to belong together.
///
/// An expired (or not yet valid) leaf is loaded with a warning: peers will refuse it,
/// and the proxy says so rather than refusing to start.
///
/// # Errors
/// Either file unusable, or the key not matching the certificate.
pub fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsFileError> {
    let chain = read_certs(cert)?;
    let der = read_key(key)?;
    let signing = crate::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsFileError::new(key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsFileError::new(
                key,
                format!(
                    "this private key does not belong to the certificate {}",
                    cert.display()
                ),
            ));
        }
    }
    if let Some(leaf) = certified.cert.first() {
        warn_if_not_valid_now(cert, leaf);
    }
    Ok(Arc::new(certified))
}

/// The leaf's validity period end, as Unix seconds.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

fn warn_if_not_valid_now(path: &Path, leaf: &CertificateDer<'_>) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf) else {
        return;
    };
    let validity = parsed.validity();
    if !validity.is_valid() {
        tracing::warn!(
            path = %path.display(),
            not_before = %validity.not_before,
            not_after = %validity.not_after,
            "certificate is not valid now (expired or not yet valid); peers will refuse it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        assert!(certified_key(&c, &k).is_ok());
        assert!(read_roots(&c).is_ok());
    }

    #[test]
    fn each_broken_file_names_itself_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (_, other_key) = pair();
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let other = write(dir.path(), "other.pem", &other_key);
        let junk = write(dir.path(), "junk.pem", "hello\n");
        let bad = write(
            dir.path(),
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        );

        let e = certified_key(&c, &other).unwrap_err();
        assert_eq!(e.path, other);
        assert!(e.problem.contains("does not belong"), "{e}");
        let e = certified_key(&junk, &k).unwrap_err();
        assert!(e.problem.contains("no certificate found"), "{e}");
        let e = certified_key(&c, &junk).unwrap_err();
        assert!(e.problem.contains("no private key found"), "{e}");
        let e = read_certs(&bad).unwrap_err();
        assert!(e.problem.contains("not a valid X.509"), "{e}");
        let e = read_certs(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("missing.pem: cannot read"), "{e}");
    }
}
