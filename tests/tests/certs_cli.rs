//! `meshwork certs`: a development CA and workload certificates that two sidecars use
//! for mTLS as they are, and that `meshwork check` accepts.

use meshwork_tests::{HttpClient, Proxy, Upstream, meshwork};

#[tokio::test]
async fn generated_certificates_carry_mtls_between_two_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).display().to_string();
    let ca = meshwork(["certs", "ca", "--out", &path("ca")]).await;
    assert!(ca.success(), "{}", ca.describe());
    for (name, id) in [
        ("web", "spiffe://cluster.local/ns/default/sa/web"),
        ("api", "spiffe://cluster.local/ns/default/sa/api"),
    ] {
        let out = meshwork([
            "certs",
            "workload",
            "--ca",
            &path("ca"),
            "--spiffe-id",
            id,
            "--out",
            &path(name),
        ])
        .await;
        assert!(out.success(), "{}", out.describe());
        assert!(out.stderr.contains("cert.pem"), "{}", out.describe());
    }
    let again = meshwork(["certs", "ca", "--out", &path("ca")]).await;
    assert!(!again.success());
    assert!(
        again.stderr.contains("exists (use --force"),
        "{}",
        again.describe()
    );
    let bad = meshwork([
        "certs",
        "workload",
        "--ca",
        &path("ca"),
        "--spiffe-id",
        "web",
        "--out",
        &path("x"),
    ])
    .await;
    assert!(!bad.success());
    assert!(
        bad.stderr.contains("is not a SPIFFE ID"),
        "{}",
        bad.describe()
    );

    let identity = |name: &str| {
        format!(
            "identity:\n  cert: {}\n  key: {}\n  trust_bundle: {}\n",
            path(&format!("{name}/cert.pem")),
            path(&format!("{name}/key.pem")),
            path(&format!("{name}/ca.pem")),
        )
    };
    let app = Upstream::http1().name("app").start().await;
    let server_yaml = format!(
        "version: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - {{ name: inbound, address: 127.0.0.1:0, route_table: inbound, tls: {{ client_auth: required }} }}
route_tables:
  inbound:
    - {{ name: app, backends: [{{ cluster: app }}] }}
clusters:
  - {{ name: app, endpoints: [{}] }}
{}",
        app.endpoint(),
        identity("api")
    );
    let config = dir.path().join("server.yaml");
    std::fs::write(&config, &server_yaml).unwrap();
    let check = meshwork([
        "check",
        "--read-certificates",
        &config.display().to_string(),
    ])
    .await;
    assert!(check.success(), "{}", check.describe());
    let server = Proxy::with_config(server_yaml).start().await;
    let client = Proxy::with_config(format!(
        "version: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - {{ name: outbound, address: 127.0.0.1:0, route_table: outbound }}
route_tables:
  outbound:
    - {{ name: api, backends: [{{ cluster: api }}] }}
clusters:
  - name: api
    endpoints: [{}]
    tls: {{ identities: [spiffe://cluster.local/ns/default/sa/api] }}
{}",
        server.listener_addr("inbound"),
        identity("web")
    ))
    .start()
    .await;
    let reply = HttpClient::h1().get(&client.url("outbound", "/")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.echo().header("x-meshwork-peer-identity").as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/web")
    );
}

#[tokio::test]
async fn check_names_the_certificate_file_and_what_is_wrong_with_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key\n").unwrap();
    let config = dir.path().join("edge.yaml");
    std::fs::write(
        &config,
        "version: 1
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
    tls:
      certificates: [{ cert: cert.pem, key: key.pem }]
route_tables:
  edge:
    - { name: ok, direct_response: { status: 200 } }
",
    )
    .unwrap();
    let path = config.display().to_string();
    let structural = meshwork(["check", &path]).await;
    assert!(structural.success(), "{}", structural.describe());
    let out = meshwork(["check", "--read-certificates", &path]).await;
    assert!(!out.success());
    let cert = dir.path().join("cert.pem");
    assert!(
        out.stderr.contains(&format!(
            "listeners[0].tls.certificates[0]: {}: no certificate found",
            cert.display()
        )),
        "{}",
        out.describe()
    );
}
