//! TLS (issue 7): each proxy terminating mTLS on its HTTP/1.1 port in front of the bench
//! upstream, with the same certificates (made here with rcgen: a CA, a server certificate
//! for 127.0.0.1, a client certificate with a SPIFFE ID) and requiring and verifying the
//! client's certificate.
//!
//! Rows: handshakes per second (oha `--disable-keepalive`: a new mTLS connection for
//! every request, with resumption as oha's client does it), and keep-alive requests per
//! second over mTLS. No direct column: the upstream speaks no TLS. Short runs (the whole
//! `all` run must stay short): read them as a comparison between the
//! proxies of the same run, not as absolute figures.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, SanType,
};

use super::{Ctx, Samples, Scenario, Settings, secs_arg};
use crate::goals::scenario;
use crate::parse::oha;
use crate::report::{Better, Row};
use crate::targets::{self, Backend, Running, TlsFiles};

pub const METRIC_HANDSHAKES: &str = "mTLS handshakes/s (new connection per request)";
pub const METRIC_KEEPALIVE: &str = "mTLS keep-alive req/s";

#[derive(Debug)]
pub struct Tls;

impl Scenario for Tls {
    fn id(&self) -> &'static str {
        scenario::TLS
    }

    fn describe(&self) -> &'static str {
        "mTLS termination (same certificates for all, client certificate verified): handshakes/s with a new connection per request, and keep-alive req/s (oha, 50 connections)"
    }

    fn estimate(&self, s: &Settings) -> Duration {
        // Proxies only (no direct), started once (~0.5 s each); two runs per round.
        let runs = 3.0 * s.tls_rounds as f64 * 2.0;
        Duration::from_secs_f64(1.5 + runs * (f64::from(s.tls_secs) + 0.3))
    }

    /// The smoke run's budget is spent by the others: `tls --quick` runs it alone.
    fn in_quick_all(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Vec<Row>> {
        let s = ctx.settings.clone();
        let files = write_certificates(&ctx.env.dir.join("tls")).context("making certificates")?;
        let mut handshakes = Samples::default();
        let mut keepalive = Samples::default();
        let mut notes = Vec::new();
        let mut running: Vec<Running> = Vec::new();
        for target in ctx.proxies() {
            match targets::start_with(target, &ctx.env, &Backend::Tls(files.clone()), "mtls") {
                Ok(r) => running.push(r),
                Err(e) => notes.push(format!("{}: {e:#}", target.name())),
            }
        }
        let secs = f64::from(s.tls_secs);
        for round in 0..s.tls_rounds {
            for r in &mut running {
                for (keep_alive, samples) in [(false, &mut handshakes), (true, &mut keepalive)] {
                    match measure(ctx, r, &files, keep_alive, secs) {
                        Ok(m) => {
                            samples.push(r.target, m.requests_per_sec);
                            if m.errors > 0 {
                                notes.push(format!(
                                    "{} round {}: {} errors",
                                    r.target.name(),
                                    round + 1,
                                    m.errors
                                ));
                            }
                        }
                        Err(e) => {
                            notes.push(format!("{} round {}: {e:#}", r.target.name(), round + 1))
                        }
                    }
                }
            }
        }
        let mut first = handshakes.row(self.id(), METRIC_HANDSHAKES, Better::Higher);
        first.notes = notes;
        Ok(vec![
            first,
            keepalive.row(self.id(), METRIC_KEEPALIVE, Better::Higher),
        ])
    }
}

/// One oha run against an mTLS target, presenting the client certificate: a new
/// connection per request, or keep-alive.
fn measure(
    ctx: &mut Ctx,
    running: &mut Running,
    files: &TlsFiles,
    keep_alive: bool,
    secs: f64,
) -> anyhow::Result<oha::OhaSummary> {
    let path = |p: &Path| p.display().to_string();
    let mut args = vec![
        "-z".into(),
        secs_arg(secs),
        "-c".into(),
        ctx.settings.connections.to_string(),
        "--no-tui".into(),
        "--output-format".into(),
        "json".into(),
        "--cacert".into(),
        path(&files.ca),
        "--cert".into(),
        path(&files.client_cert),
        "--key".into(),
        path(&files.client_key),
    ];
    if !keep_alive {
        args.push("--disable-keepalive".into());
    }
    args.push(running.https_url("/"));
    let tool = ctx.tools.oha.clone();
    let out = ctx.run_load(&tool, &args, Duration::from_secs_f64(secs), &mut || {})?;
    running.check_alive()?;
    let summary = oha::parse(&out)?;
    anyhow::ensure!(
        summary.requests_per_sec > 0.0 && summary.success_rate > 0.0,
        "no request succeeded: {}",
        out.chars().take(400).collect::<String>()
    );
    Ok(summary)
}

/// Writes a CA, a server certificate for `127.0.0.1`/`localhost` and a client certificate
/// (SPIFFE ID `spiffe://bench.local/ns/bench/sa/oha`) under `dir`.
pub fn write_certificates(dir: &Path) -> anyhow::Result<TlsFiles> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "meshwork bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let leaf = |names: Vec<String>, uri: Option<&str>, eku: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        if let Some(uri) = uri {
            params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        }
        params.extended_key_usages = vec![eku];
        let cert = params.signed_by(&key, &issuer)?;
        anyhow::Ok((cert.pem(), key.serialize_pem()))
    };
    let (server, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client, client_key) = leaf(
        Vec::new(),
        Some("spiffe://bench.local/ns/bench/sa/oha"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        combined: dir.join("server-combined.pem"),
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
        require_client_cert: true,
    };
    std::fs::write(&files.ca, ca.pem())?;
    std::fs::write(&files.cert, &server)?;
    std::fs::write(&files.key, &server_key)?;
    std::fs::write(&files.combined, format!("{server}{server_key}"))?;
    std::fs::write(&files.client_cert, &client)?;
    std::fs::write(&files.client_key, &client_key)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_written_for_every_proxy_s_format() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_certificates(dir.path()).unwrap();
        let combined = std::fs::read_to_string(&files.combined).unwrap();
        assert!(combined.contains("BEGIN CERTIFICATE") && combined.contains("PRIVATE KEY"));
        for p in [
            &files.ca,
            &files.cert,
            &files.key,
            &files.client_cert,
            &files.client_key,
        ] {
            assert!(std::fs::metadata(p).unwrap().len() > 0, "{}", p.display());
        }
    }
}
