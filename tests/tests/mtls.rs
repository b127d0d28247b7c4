//! mTLS between two meshwork sidecars: the client sidecar originates TLS with its mesh
//! identity and verifies the server's SPIFFE ID; the server sidecar requires a client
//! certificate, passes the verified identity to its application, logs it, and refuses
//! (with a counted reason) certificates from another CA, expired ones, missing ones,
//! and servers with the wrong identity. Identity files rotate live under load.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use meshwork_tests::{
    AccessLogFile, CertFiles, HttpClient, Proxy, Scrape, TestCa, TlsClient, Upstream, eventually,
    inbound_sidecar_yaml, labels_of, outbound_sidecar_yaml,
};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const API: &str = "spiffe://cluster.local/ns/prod/sa/api";

/// The server side: an `inbound` listener requiring client certificates, in front of `app`.
async fn server_sidecar(identity: &CertFiles, app: &Upstream, log: &AccessLogFile) -> Proxy {
    let yaml = inbound_sidecar_yaml(identity, "required", &app.endpoint(), &log.yaml());
    Proxy::with_config(yaml).start().await
}

/// The client side: an `outbound` plaintext listener for the application, sending to the
/// server sidecar over mTLS and accepting only `accepted` as the server's identity.
async fn client_sidecar(identity: &CertFiles, server: &Proxy, accepted: &str) -> Proxy {
    client_sidecar_with(identity, server, accepted, "").await
}

/// [`client_sidecar`] with more cluster settings (indented for the cluster).
async fn client_sidecar_with(
    identity: &CertFiles,
    server: &Proxy,
    accepted: &str,
    cluster_extra: &str,
) -> Proxy {
    let cluster =
        format!("    protocol: auto\n    tls:\n      identities: [{accepted}]\n{cluster_extra}");
    let yaml = outbound_sidecar_yaml(
        server.listener_addr("inbound"),
        &cluster,
        &identity.identity_yaml(),
    );
    Proxy::with_config(yaml).start().await
}

async fn counter(proxy: &Proxy, name: &str, labels: &[(&str, &str)], expected: u64) {
    let labels = labels_of(labels);
    let value = |s: &Scrape| s.series(name).get(&labels).map_or(0, |v| *v as u64);
    proxy
        .scrape_when(&format!("{name} {labels:?} = {expected}"), |s| {
            value(s) == expected
        })
        .await;
}

async fn refused(server: &Proxy, reason: &str) {
    counter(
        server,
        "meshwork_tls_handshake_failures_total",
        &[("listener", "inbound"), ("reason", reason)],
        1,
    )
    .await;
    let log = server.stderr_so_far();
    assert!(log.contains(&format!("reason=\"{reason}\"")), "{log}");
}

#[tokio::test]
async fn sidecars_talk_mtls_and_the_app_learns_the_verified_peer_identity() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let log = AccessLogFile::json();
    let server = server_sidecar(&api, &app, &log).await;
    let client = client_sidecar(&web, &server, API).await;

    let reply = HttpClient::h1()
        .request(http::Method::GET, &client.url("outbound", "/hello"))
        // A client cannot claim an identity: the proxy replaces the header.
        .header("x-meshwork-peer-identity", "spiffe://evil/ns/x/sa/y")
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    assert_eq!(
        echo.header("x-meshwork-peer-identity").as_deref(),
        Some(WEB)
    );
    let line = &log.json_lines(1).await[0];
    assert_eq!(line["peer_identity"], WEB);
    // protocol: auto took h2 by ALPN between the sidecars.
    assert_eq!(line["protocol"], "HTTP/2.0");
    counter(
        &server,
        "meshwork_tls_handshakes_total",
        &[("listener", "inbound")],
        1,
    )
    .await;
}

#[tokio::test]
async fn a_server_with_another_identity_is_refused_by_the_client_sidecar() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    let client = client_sidecar(&web, &server, "spiffe://cluster.local/ns/prod/sa/billing").await;

    let reply = HttpClient::h1().get(&client.url("outbound", "/")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.error_kind(), Some("connect-failed"));
    counter(
        &client,
        "meshwork_upstream_tls_handshake_failures_total",
        &[("cluster", "api"), ("reason", "identity-mismatch")],
        1,
    )
    .await;
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).write();
    let rogue_ca = TestCa::new("rogue");
    let rogue = rogue_ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    // The rogue trusts the real CA for the server, but presents its own certificate.
    let mut rogue_files = rogue.clone();
    rogue_files.ca = ca.ca_path().to_path_buf();
    let client = client_sidecar(&rogue_files, &server, API).await;

    let reply = HttpClient::h1().get(&client.url("outbound", "/")).await;
    assert_eq!(reply.status, 502);
    refused(&server, "unknown-ca").await;
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).dns("localhost").write();
    let old = ca
        .issue("web-old")
        .spiffe_id(WEB)
        .dns("localhost")
        .expired()
        .write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    let result = TlsClient::new(ca.ca_path())
        .server_name("localhost")
        .client_cert(&old)
        .get(server.listener_addr("inbound"), "/")
        .await;
    assert!(result.is_err(), "{result:?}");
    refused(&server, "certificate-expired").await;
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).dns("localhost").write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    let result = TlsClient::new(ca.ca_path())
        .get(server.listener_addr("inbound"), "/")
        .await;
    assert!(result.is_err(), "{result:?}");
    refused(&server, "no-client-certificate").await;
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn the_identity_rotates_under_load_without_a_failed_request_and_a_broken_file_is_refused() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).dns("localhost").write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    let client = client_sidecar(&web, &server, API).await;
    let inbound = server.listener_addr("inbound");
    let presented = || async {
        TlsClient::new(ca.ca_path())
            .client_cert(&web)
            .get(inbound, "/")
            .await
            .expect("a direct mTLS request")
            .server_cert
    };
    assert_eq!(presented().await, api.der);

    // Bounded load through both sidecars, new connections included, while rotating.
    let url = client.url("outbound", "/load");
    let load = tokio::spawn(async move {
        let (pooled, fresh) = (HttpClient::h1(), HttpClient::h1_unpooled());
        let mut statuses = Vec::new();
        for i in 0..300 {
            let client = if i % 2 == 0 { &pooled } else { &fresh };
            statuses.push(client.get(&url).await.status.as_u16());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        statuses
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next = ca.issue("api-next").spiffe_id(API).dns("localhost").write();
    next.install_over(&api);
    let reloads = "meshwork_identity_reloads_total";
    counter(&server, reloads, &[("result", "applied")], 1).await;
    let statuses = load.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        presented().await,
        next.der,
        "new handshakes use the new certificate"
    );

    // A broken certificate is refused; the rotated identity stays.
    std::fs::write(&api.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    counter(&server, reloads, &[("result", "rejected")], 1).await;
    // stderr is read by a thread of the harness; give it a moment to catch up.
    eventually(
        "the rejection in the log",
        Duration::from_secs(5),
        || async {
            server
                .stderr_so_far()
                .contains("cannot be used; keeping the current identity")
        },
    )
    .await;
    assert_eq!(presented().await, next.der);
    let reply = HttpClient::h1()
        .get(&client.url("outbound", "/after"))
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn health_checks_of_a_tls_cluster_go_over_mtls() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    let client = client_sidecar_with(
        &web,
        &server,
        API,
        "    health_check: { http: { path: /healthz }, interval: 100ms, unhealthy_threshold: 1 }",
    )
    .await;
    let endpoint = server.listener_addr("inbound").to_string();
    let labels = labels_of(&[
        ("cluster", "api"),
        ("endpoint", &endpoint),
        ("result", "success"),
    ]);
    client
        .scrape_when("3 successful health checks", |s| {
            s.series("meshwork_health_checks_total")
                .get(&labels)
                .is_some_and(|v| *v >= 3.0)
        })
        .await;
    let failures = labels_of(&[
        ("cluster", "api"),
        ("endpoint", &endpoint),
        ("result", "failure"),
    ]);
    let scrape = client.scrape().await;
    let failed = scrape
        .series("meshwork_health_checks_total")
        .get(&failures)
        .copied();
    assert_eq!(failed.unwrap_or(0.0), 0.0, "no failed probe");
    assert!(app.paths().iter().any(|p| p == "/healthz"));
    let reply = HttpClient::h1().get(&client.url("outbound", "/")).await;
    assert_eq!(reply.status, 200);
}

/// With TLS 1.3 the server checks the client's certificate after the client has finished
/// its side of the handshake, so a client refused for having none is already sending its
/// request. It must read the alert saying why, not a reset from a connection closed with
/// its bytes unread (its writes after that would fail with "broken pipe" or "connection
/// reset" before it ever reads the alert).
#[tokio::test]
async fn a_client_refused_after_its_tls13_handshake_reads_the_alert_not_a_reset() {
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).dns("localhost").write();
    let app = Upstream::http1().name("app").start().await;
    let server = server_sidecar(&api, &app, &AccessLogFile::json()).await;
    let attempt = async {
        let mut tls = TlsClient::new(ca.ca_path())
            .connect(server.listener_addr("inbound"))
            .await
            .expect("the client's side of a TLS 1.3 handshake finishes");
        assert_eq!(
            tls.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let chunk = [b'x'; 4096];
        let head = format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
            chunk.len() * 8
        );
        tls.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.flush().await.map_err(|e| format!("flush: {e}"))?;
        // The server has refused (its alert is here, not read yet); the body follows.
        tls.get_ref().0.readable().await.expect("readable");
        for _ in 0..8 {
            tls.write_all(&chunk)
                .await
                .map_err(|e| format!("write: {e}"))?;
            tls.flush().await.map_err(|e| format!("flush: {e}"))?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply)
            .await
            .map_err(|e| format!("read: {e}"))
    };
    let result = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .expect("the refusal arrives");
    let error = result.expect_err("refused");
    assert_eq!(error, "read: received fatal alert: CertificateRequired");
    refused(&server, "no-client-certificate").await;
    assert_eq!(app.requests(), 0);
}
