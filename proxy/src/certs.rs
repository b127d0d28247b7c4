//! `meshwork certs`: a development CA and workload certificates carrying SPIFFE IDs
//! (rcgen), so mTLS between two sidecars can be tried in a minute. Not a production CA:
//! keys are written unencrypted (mode 0600) and nothing is revoked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::cli::CertsCommand;

/// Clocks of the machines using the certificates may lag a little behind this one.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} exists (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{0:?} is not a SPIFFE ID (expected spiffe://trust-domain/path)")]
    NotSpiffe(String),
    #[error("{}: {error}", path.display())]
    BadCa { path: PathBuf, error: String },
    #[error("cannot create the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// Runs a `meshwork certs` subcommand; returns the files written.
///
/// # Errors
/// See [`CertsError`].
pub fn run(command: &CertsCommand) -> Result<Vec<PathBuf>, CertsError> {
    match command {
        CertsCommand::Ca {
            out,
            name,
            days,
            force,
        } => create_ca(out, name, *days, *force),
        CertsCommand::Workload {
            ca,
            spiffe_id,
            dns,
            out,
            days,
            force,
        } => issue_workload(ca, spiffe_id, dns, out, *days, *force),
    }
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
}

/// A self-signed CA: `out/ca.pem`, `out/ca-key.pem`.
///
/// # Errors
/// See [`CertsError`].
pub fn create_ca(
    out: &Path,
    name: &str,
    days: u32,
    force: bool,
) -> Result<Vec<PathBuf>, CertsError> {
    let (cert_path, key_path) = (out.join("ca.pem"), out.join("ca-key.pem"));
    refuse_existing(&[&cert_path, &key_path], force)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let cert = params.self_signed(&key)?;
    create_dir(out)?;
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    Ok(vec![cert_path, key_path])
}

/// A workload certificate with `spiffe_id` in its URI SAN, for both server and client
/// use: `out/cert.pem`, `out/key.pem`, and `out/ca.pem` (a copy of the CA certificate).
///
/// # Errors
/// See [`CertsError`].
pub fn issue_workload(
    ca_dir: &Path,
    spiffe_id: &str,
    dns: &[String],
    out: &Path,
    days: u32,
    force: bool,
) -> Result<Vec<PathBuf>, CertsError> {
    if spiffe_id
        .strip_prefix("spiffe://")
        .is_none_or(|rest| rest.split('/').next().is_none_or(str::is_empty))
    {
        return Err(CertsError::NotSpiffe(spiffe_id.to_string()));
    }
    let (ca_cert_path, ca_key_path) = (ca_dir.join("ca.pem"), ca_dir.join("ca-key.pem"));
    let ca_pem = read(&ca_cert_path)?;
    let ca_key_pem = read(&ca_key_path)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| CertsError::BadCa {
        path: ca_key_path.clone(),
        error: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| CertsError::BadCa {
        path: ca_cert_path.clone(),
        error: e.to_string(),
    })?;

    let paths = [
        out.join("cert.pem"),
        out.join("key.pem"),
        out.join("ca.pem"),
    ];
    refuse_existing(&[&paths[0], &paths[1], &paths[2]], force)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns.to_vec())?;
    params
        .subject_alt_names
        .push(SanType::URI(spiffe_id.try_into()?));
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        spiffe_id.rsplit('/').next().unwrap_or(spiffe_id),
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer)?;
    create_dir(out)?;
    write(&paths[0], &cert.pem(), false)?;
    write(&paths[1], &key.serialize_pem(), true)?;
    write(&paths[2], &ca_pem, false)?;
    Ok(paths.to_vec())
}

fn refuse_existing(paths: &[&PathBuf], force: bool) -> Result<(), CertsError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) if !force => Err(CertsError::Exists((*p).clone())),
        _ => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(|error| CertsError::Io {
        path: dir.to_path_buf(),
        error,
    })
}

fn read(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path).map_err(|error| CertsError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Writes through a temporary file and a rename, so a watching proxy never reads half a
/// file; `secret` files are readable by their owner only.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error| CertsError::Io {
        path: path.to_path_buf(),
        error,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_certificate_chains_to_the_ca_and_carries_its_spiffe_id() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        create_ca(&ca, "test CA", 1, false).unwrap();
        let web = dir.path().join("web");
        let id = "spiffe://cluster.local/ns/prod/sa/web";
        issue_workload(&ca, id, &["web.internal".into()], &web, 1, false).unwrap();

        let identity = meshwork_config::model::Identity {
            cert: web.join("cert.pem"),
            key: web.join("key.pem"),
            trust_bundle: web.join("ca.pem"),
        };
        let material = crate::tls::identity::IdentityMaterial::load(&identity).unwrap();
        assert_eq!(material.spiffe_id.as_deref(), Some(id));
        let leaf = &material.certified.cert[0];
        let parsed = rustls::server::ParsedCertificate::try_from(leaf).unwrap();
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &material.roots,
            &[],
            rustls::pki_types::UnixTime::now(),
            crate::tls::provider().signature_verification_algorithms.all,
        )
        .unwrap();
    }

    #[test]
    fn existing_files_and_bad_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        create_ca(dir.path(), "ca", 1, false).unwrap();
        assert!(matches!(
            create_ca(dir.path(), "ca", 1, false),
            Err(CertsError::Exists(_))
        ));
        assert!(create_ca(dir.path(), "ca", 1, true).is_ok());
        let e = issue_workload(dir.path(), "web", &[], &dir.path().join("w"), 1, false);
        assert!(matches!(e, Err(CertsError::NotSpiffe(_))), "{e:?}");
    }
}
