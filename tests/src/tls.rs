//! TLS in tests: a CA made with rcgen, certificates (SPIFFE IDs, DNS names, expired ones)
//! written to files a proxy config can name, and a one-request rustls client that reports
//! what the handshake negotiated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::body::empty;
use crate::client::{Reply, error_chain};

/// A certificate authority living in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    name: String,
    key: KeyPair,
    params: CertificateParams,
    dir: tempfile::TempDir,
    ca_path: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let dir = tempfile::Builder::new()
            .prefix("meshwork-pki-")
            .tempdir()
            .expect("create a temporary directory");
        let ca_path = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_path, cert.pem()).expect("write the CA");
        Self {
            name: name.to_string(),
            key,
            params,
            dir,
            ca_path,
        }
    }

    /// The CA certificate (PEM), to trust.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// A directory for files a test writes beside the certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a certificate signed by this CA, written as `<file_stem>.pem` /
    /// `<file_stem>-key.pem`.
    pub fn issue(&self, file_stem: &str) -> CertBuilder<'_> {
        CertBuilder {
            ca: self,
            file_stem: file_stem.to_string(),
            spiffe_id: None,
            dns: Vec::new(),
            expired: false,
        }
    }
}

/// A certificate being made; [`CertBuilder::write`] signs it and writes the files.
#[derive(Debug)]
pub struct CertBuilder<'a> {
    ca: &'a TestCa,
    file_stem: String,
    spiffe_id: Option<String>,
    dns: Vec<String>,
    expired: bool,
}

impl CertBuilder<'_> {
    pub fn spiffe_id(mut self, id: &str) -> Self {
        self.spiffe_id = Some(id.to_string());
        self
    }

    pub fn dns(mut self, name: &str) -> Self {
        self.dns.push(name.to_string());
        self
    }

    /// Valid for a day that ended yesterday.
    pub fn expired(mut self) -> Self {
        self.expired = true;
        self
    }

    pub fn write(self) -> CertFiles {
        let key = KeyPair::generate().expect("generate a key");
        let mut params = CertificateParams::new(self.dns.clone()).expect("valid DNS names");
        if let Some(id) = &self.spiffe_id {
            params
                .subject_alt_names
                .push(SanType::URI(id.as_str().try_into().expect("a valid URI")));
        }
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, self.file_stem.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        if self.expired {
            params.not_before = now - Duration::from_secs(2 * 86_400);
            params.not_after = now - Duration::from_secs(86_400);
        } else {
            params.not_before = now - Duration::from_secs(3_600);
            params.not_after = now + Duration::from_secs(86_400);
        }
        let issuer = Issuer::from_params(&self.ca.params, &self.ca.key);
        let cert = params
            .signed_by(&key, &issuer)
            .expect("sign the certificate");
        let dir = self.ca.dir.path();
        let files = CertFiles {
            cert: dir.join(format!("{}.pem", self.file_stem)),
            key: dir.join(format!("{}-key.pem", self.file_stem)),
            ca: self.ca.ca_path.clone(),
            der: cert.der().clone(),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write the key");
        let _ = &self.ca.name;
        files
    }
}

/// A certificate, its key and the CA that signed it, as files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub der: CertificateDer<'static>,
}

impl CertFiles {
    /// An `identity:` section using these files.
    pub fn identity_yaml(&self) -> String {
        format!(
            "identity:\n  cert: {}\n  key: {}\n  trust_bundle: {}\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display()
        )
    }

    /// A TLS server config presenting these files (no client certificates asked),
    /// ALPN `http/1.1`.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .expect("read the certificate")
            .map(|c| c.expect("a certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(&self.key).expect("read the key");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a usable certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// Replaces the files at `target`'s paths with these, each by an atomic rename.
    pub fn install_over(&self, target: &CertFiles) {
        for (from, to) in [(&self.cert, &target.cert), (&self.key, &target.key)] {
            let tmp = to.with_extension("tmp");
            std::fs::copy(from, &tmp).expect("copy a certificate file");
            std::fs::rename(&tmp, to).expect("rename a certificate file into place");
        }
    }
}

/// A one-request TLS client: trusts one CA, may present a certificate, offers ALPN.
#[derive(Clone, Debug)]
pub struct TlsClient {
    ca: PathBuf,
    client_cert: Option<(PathBuf, PathBuf)>,
    alpn: Vec<Vec<u8>>,
    server_name: String,
}

/// A response over TLS and what the handshake settled.
#[derive(Debug)]
pub struct TlsReply {
    pub reply: Reply,
    /// The certificate the server presented.
    pub server_cert: CertificateDer<'static>,
    pub alpn: Option<String>,
}

impl TlsClient {
    /// Trusts `ca`, sends SNI `localhost`, offers `http/1.1`.
    pub fn new(ca: &Path) -> Self {
        Self {
            ca: ca.to_path_buf(),
            client_cert: None,
            alpn: vec![b"http/1.1".to_vec()],
            server_name: "localhost".into(),
        }
    }

    pub fn client_cert(mut self, files: &CertFiles) -> Self {
        self.client_cert = Some((files.cert.clone(), files.key.clone()));
        self
    }

    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = name.to_string();
        self
    }

    /// ALPN protocols to offer, e.g. `["h2", "http/1.1"]`.
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    fn config(&self) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("read the CA") {
            roots
                .add(cert.expect("a CA certificate"))
                .expect("add the CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .expect("read the client certificate")
                    .map(|c| c.expect("a certificate"))
                    .collect();
                let key = PrivateKeyDer::from_pem_file(key).expect("read the client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("a usable client certificate")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        config
    }

    /// A TLS connection to `addr`, handshake done.
    ///
    /// # Errors
    /// The connection or the handshake failed (as text).
    pub async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| format!("server name: {e}"))?;
        tokio_rustls::TlsConnector::from(Arc::new(self.config()))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {}", error_chain(&e)))
    }

    /// `GET path` over a new TLS connection to `addr` (HTTP/2 when ALPN chose `h2`).
    ///
    /// # Errors
    /// The handshake or the request failed (as text).
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<TlsReply, String> {
        let attempt = async {
            let tls = self.connect(addr).await?;
            let (_, conn) = tls.get_ref();
            let alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let server_cert = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .cloned()
                .ok_or("no server certificate")?;
            let h2 = alpn.as_deref() == Some("h2");
            let request = Request::builder()
                .method(Method::GET)
                .uri(format!("https://{}{path}", self.server_name))
                .version(if h2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                })
                .header(http::header::HOST, &self.server_name)
                .body(empty())
                .expect("a valid request");
            let io = TokioIo::new(tls);
            let response = if h2 {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| format!("h2 handshake: {}", error_chain(&e)))?;
                tokio::spawn(conn);
                sender.send_request(request).await
            } else {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("http1 handshake: {}", error_chain(&e)))?;
                tokio::spawn(conn);
                sender.send_request(request).await
            }
            .map_err(|e| format!("request: {}", error_chain(&e)))?;
            let reply = Reply::collect(response).await?;
            Ok(TlsReply {
                reply,
                server_cert,
                alpn,
            })
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(result) => result,
            Err(_) => Err("timed out".into()),
        }
    }
}

/// A sidecar's inbound side: listener `inbound` terminating TLS with `identity`
/// (`client_auth`: `none` | `optional` | `required`) in front of cluster `app` at
/// `app_endpoint`; `extra` (top-level YAML) is appended.
pub fn inbound_sidecar_yaml(
    identity: &CertFiles,
    client_auth: &str,
    app_endpoint: &str,
    extra: &str,
) -> String {
    format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: inbound
    address: 127.0.0.1:0
    route_table: inbound
    tls:
      client_auth: {client_auth}
route_tables:
  inbound:
    - name: app
      backends: [{{ cluster: app }}]
clusters:
  - name: app
    endpoints: [{app_endpoint}]
{}{extra}",
        identity.identity_yaml(),
    )
}

/// A sidecar's outbound side: plaintext listener `outbound` for the application,
/// sending everything to cluster `api` at `server` (a sidecar's `inbound`);
/// `cluster_settings` are lines of the cluster (indented four spaces, e.g. its `tls`),
/// `extra` (top-level YAML) is appended.
pub fn outbound_sidecar_yaml(
    server: std::net::SocketAddr,
    cluster_settings: &str,
    extra: &str,
) -> String {
    format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: outbound
    address: 127.0.0.1:0
    route_table: outbound
route_tables:
  outbound:
    - name: api
      backends: [{{ cluster: api }}]
clusters:
  - name: api
    endpoints: [{server}]
{cluster_settings}
{extra}"
    )
}
