//! Certificates renewed at the same paths (certbot, cert-manager writing files) are picked
//! up on SIGHUP, like `nginx -s reload`: the listener serves the new certificate and a
//! TLS cluster presents the new client certificate on its new connections.

use meshwork_tests::{
    HttpClient, Proxy, Scrape, TestCa, TlsClient, Upstream, inbound_sidecar_yaml, labels_of,
    outbound_sidecar_yaml,
};

/// Waits until `proxy` has applied `expected` reloads.
async fn reloads_applied(proxy: &Proxy, expected: f64) {
    let labels = labels_of(&[("result", "applied")]);
    proxy
        .scrape_when(&format!("{expected} applied reloads"), |s: &Scrape| {
            s.series("meshwork_config_reloads_total").get(&labels) == Some(&expected)
        })
        .await;
}

#[tokio::test]
async fn sighup_makes_a_listener_serve_a_certificate_renewed_at_the_same_path() {
    let ca = TestCa::new("edge");
    let current = ca.issue("current").dns("localhost").write();
    let proxy = Proxy::with_config(format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
    tls:
      certificates: [{{ cert: {}, key: {} }}]
route_tables:
  edge:
    - name: hello
      direct_response: {{ status: 200, body: \"hello\\n\" }}
",
        current.cert.display(),
        current.key.display(),
    ))
    .start()
    .await;
    let addr = proxy.listener_addr("edge");
    let served = || async {
        TlsClient::new(ca.ca_path())
            .get(addr, "/")
            .await
            .expect("a TLS request")
            .server_cert
    };
    assert_eq!(served().await, current.der);

    let renewed = ca.issue("renewed").dns("localhost").write();
    renewed.install_over(&current);
    proxy.sighup();
    reloads_applied(&proxy, 1.0).await;
    assert_eq!(
        served().await,
        renewed.der,
        "new handshakes use the renewed file"
    );
    let log = proxy.stderr_so_far();
    assert!(
        log.contains("config unchanged; reading the certificate files again"),
        "{log}"
    );
}

#[tokio::test]
async fn sighup_makes_a_tls_cluster_present_a_client_certificate_renewed_at_the_same_path() {
    const API: &str = "spiffe://cluster.local/ns/prod/sa/api";
    const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
    const WEB_RENEWED: &str = "spiffe://cluster.local/ns/prod/sa/web-renewed";
    let ca = TestCa::new("mesh");
    let api = ca.issue("api").spiffe_id(API).write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let server = Proxy::with_config(inbound_sidecar_yaml(&api, "required", &app.endpoint(), ""))
        .start()
        .await;
    let cluster_tls = format!(
        "    tls: {{ ca: {}, cert: {}, key: {}, identities: [{API}] }}",
        ca.ca_path().display(),
        web.cert.display(),
        web.key.display(),
    );
    let client = Proxy::with_config(outbound_sidecar_yaml(
        server.listener_addr("inbound"),
        &cluster_tls,
        "",
    ))
    .start()
    .await;
    let peer_seen_by_app = || async {
        HttpClient::h1()
            .get(&client.url("outbound", "/whoami"))
            .await
            .echo()
            .header("x-meshwork-peer-identity")
            .expect("the app learns the peer identity")
    };
    assert_eq!(peer_seen_by_app().await, WEB);

    let renewed = ca.issue("web-renewed").spiffe_id(WEB_RENEWED).write();
    renewed.install_over(&web);
    client.sighup();
    reloads_applied(&client, 1.0).await;
    assert_eq!(
        peer_seen_by_app().await,
        WEB_RENEWED,
        "the cluster was rebuilt with the renewed client certificate"
    );
}
