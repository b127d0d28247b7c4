//! SPIFFE identities read from a certificate's URI SAN.

use rustls::pki_types::CertificateDer;

/// The `spiffe://` URIs of a certificate's subject alternative names.
pub fn spiffe_ids(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                Some((*uri).to_string())
            }
            _ => None,
        })
        .collect()
}

/// The SPIFFE ID of a certificate (the first, as SPIFFE allows exactly one).
pub fn spiffe_id(cert: &CertificateDer<'_>) -> Option<String> {
    spiffe_ids(cert).into_iter().next()
}
