//! The discovery stream over mTLS: `meshwork-control --tls-cert --tls-key --client-ca`
//! and proxies with `control_plane.tls`. A proxy with a client certificate from the mesh
//! CA gets its routes (and the control plane records its SPIFFE ID); a proxy without a
//! certificate, or with one from another CA, is refused at the handshake, counts and logs
//! why, and keeps serving its own file; a proxy that does not trust the control plane's
//! CA refuses it (and, without listeners of its own, stays not ready).

use std::time::Duration;

use meshwork_tests::control::EDGE_TO_API;
use meshwork_tests::{
    CertFiles, ControlPlane, ControlTls, HttpClient, Proxy, Scrape, TestCa, Upstream, dedent,
    eventually,
};

const BOUND: Duration = Duration::from_secs(10);
const CONTROL_ID: &str = "spiffe://mesh.test/meshwork-control";
const PROXY_ID: &str = "spiffe://mesh.test/ns/prod/sa/web";

/// The mesh CA, a control plane requiring client certificates from it, serving `api`
/// (answering `from-control`).
struct Setup {
    ca: TestCa,
    control: ControlPlane,
    _api: Upstream,
}

impl Setup {
    async fn start() -> Setup {
        let ca = TestCa::new("mesh");
        let server = ca.issue("control").spiffe_id(CONTROL_ID).write();
        let control = ControlPlane::start_tls(ControlTls {
            cert: server.cert.clone(),
            key: server.key.clone(),
            client_ca: Some(server.ca.clone()),
        })
        .await;
        let api = Upstream::http1()
            .name("api")
            .route("/", "from-control")
            .start()
            .await;
        control.write(
            "clusters.yaml",
            &format!(
                "clusters:\n  - name: api\n    endpoints: [{}]\n",
                api.endpoint()
            ),
        );
        control.write("routes.yaml", EDGE_TO_API);
        eventually(
            "the control plane to serve the fragments",
            BOUND,
            || async { control.status().await["resources"]["listener"] == 1 },
        )
        .await;
        Setup {
            ca,
            control,
            _api: api,
        }
    }

    /// A proxy's `control_plane:` section: `tls` trusting `ca`, presenting `client`.
    fn control_plane_yaml(&self, ca: &std::path::Path, client: Option<&CertFiles>) -> String {
        let mut tls = format!("    ca: {}\n    identities: [{CONTROL_ID}]\n", ca.display());
        if let Some(c) = client {
            tls.push_str(&format!(
                "    cert: {}\n    key: {}\n",
                c.cert.display(),
                c.key.display()
            ));
        }
        format!(
            "control_plane:\n  address: {}\n  tls:\n{tls}",
            self.control.url()
        )
    }
}

fn base(id: &str) -> String {
    dedent(&format!(
        "
        version: 1
        node:
          id: {id}
        admin:
          address: 127.0.0.1:0
        "
    ))
}

/// Listeners, routes and clusters of the proxy's own file: `edge` answers `from-file`.
fn own_routes(local: &Upstream) -> String {
    format!(
        "{EDGE_TO_API}clusters:\n  - name: api\n    endpoints: [{}]\n",
        local.endpoint()
    )
}

#[tokio::test]
async fn a_proxy_with_a_mesh_certificate_gets_its_routes_over_mtls() {
    let setup = Setup::start().await;
    let client = setup.ca.issue("web").spiffe_id(PROXY_ID).write();
    let yaml = base("web") + &setup.control_plane_yaml(setup.ca.ca_path(), Some(&client));
    // Without listeners of its own, `start` returning (ready) means a snapshot came over TLS.
    let proxy = Proxy::with_config(yaml).start().await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.text(), "from-control");

    let config = proxy.config_document().await;
    assert_eq!(config["control_plane"]["connected"], true, "{config:#}");
    assert_eq!(
        config["source"],
        format!("control_plane:{}", setup.control.url())
    );
    let status = setup.control.status().await;
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{status:#}");
    assert_eq!(nodes[0]["identity"], PROXY_ID, "{status:#}");
    let logged = setup.control.stderr_so_far();
    assert!(
        logged.contains("proxy subscribed") && logged.contains(PROXY_ID),
        "the control plane did not log the proxy's identity:\n{logged}"
    );
    assert!(
        logged.contains("mode=\"mtls\"") || logged.contains("mode=mtls"),
        "{logged}"
    );
}

#[tokio::test]
async fn a_proxy_with_a_mesh_identity_uses_it_for_the_control_plane() {
    let setup = Setup::start().await;
    let identity = setup.ca.issue("web-id").spiffe_id(PROXY_ID).write();
    // `tls` without files: the identity's trust bundle verifies the control plane, its
    // certificate is the proxy's client certificate.
    let yaml = base("web")
        + &format!(
            "control_plane:\n  address: {}\n  tls: {{ identities: [{CONTROL_ID}] }}\n",
            setup.control.url()
        )
        + &identity.identity_yaml();
    let proxy = Proxy::with_config(yaml).start().await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.text(), "from-control");
    let status = setup.control.status().await;
    assert_eq!(status["nodes"][0]["identity"], PROXY_ID, "{status:#}");
}

/// Starts a proxy with its own routes whose client certificate the control plane
/// refuses, and checks it keeps serving them while counting and logging the refusal
/// (`proxy_reason`), and that the control plane counted it (`control_reason`).
async fn refused_proxy_keeps_its_file(
    setup: &Setup,
    client: Option<&CertFiles>,
    proxy_reason: &str,
    control_reason: &str,
) {
    let local = Upstream::http1()
        .name("local")
        .route("/", "from-file")
        .start()
        .await;
    let yaml = base("refused")
        + &setup.control_plane_yaml(setup.ca.ca_path(), client)
        + &own_routes(&local);
    // Never ready (no first snapshot), but serving its own listeners.
    let proxy = Proxy::with_config(yaml)
        .without_waiting_for_ready()
        .start()
        .await;
    let failures = "meshwork_control_plane_tls_handshake_failures_total";
    eventually("the proxy to count the refusal", BOUND, || async {
        proxy
            .scrape()
            .await
            .get_or_zero(failures, &[("reason", proxy_reason)])
            >= 1.0
    })
    .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.text(), "from-file");
    let config = proxy.config_document().await;
    assert_eq!(config["control_plane"]["connected"], false, "{config:#}");
    assert_eq!(config["control_plane"]["synced"], false, "{config:#}");
    let logged = proxy.stderr_so_far();
    assert!(
        logged.contains("TLS with the control plane failed") && logged.contains(proxy_reason),
        "{logged}"
    );

    let control = Scrape::parse(&setup.control.metrics().await);
    assert!(
        control.get_or_zero(
            "meshwork_control_tls_handshake_failures_total",
            &[("reason", control_reason)]
        ) >= 1.0,
        "{}",
        setup.control.metrics().await
    );
    assert!(
        setup.control.status().await["nodes"]
            .as_array()
            .expect("nodes")
            .is_empty()
    );
    assert!(
        setup
            .control
            .stderr_so_far()
            .contains("TLS handshake with a proxy failed"),
        "{}",
        setup.control.stderr_so_far()
    );
}

#[tokio::test]
async fn a_proxy_without_a_client_certificate_is_refused_and_keeps_its_file() {
    let setup = Setup::start().await;
    refused_proxy_keeps_its_file(
        &setup,
        None,
        "peer-refused-certificate",
        "no-client-certificate",
    )
    .await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let setup = Setup::start().await;
    let other = TestCa::new("other");
    let stranger = other.issue("web").spiffe_id(PROXY_ID).write();
    refused_proxy_keeps_its_file(
        &setup,
        Some(&stranger),
        "peer-refused-unknown-ca",
        "unknown-ca",
    )
    .await;
}

#[tokio::test]
async fn a_proxy_that_does_not_trust_the_control_planes_ca_refuses_it() {
    let setup = Setup::start().await;
    let other = TestCa::new("other");
    let client = setup.ca.issue("web").spiffe_id(PROXY_ID).write();
    // No listeners of its own: like a proxy whose control plane is down, it stays not
    // ready until a snapshot is applied, which never happens here.
    let yaml = base("web") + &setup.control_plane_yaml(other.ca_path(), Some(&client));
    let proxy = Proxy::with_config(yaml)
        .without_waiting_for_ready()
        .start()
        .await;
    eventually("the proxy to count the refusal", BOUND, || async {
        proxy.scrape().await.get_or_zero(
            "meshwork_control_plane_tls_handshake_failures_total",
            &[("reason", "unknown-ca")],
        ) >= 1.0
    })
    .await;
    let ready = proxy.admin_get("/ready").await;
    assert_eq!(ready.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.text(),
        "not ready: waiting for the first snapshot from the control plane\n"
    );
    assert!(
        setup.control.status().await["nodes"]
            .as_array()
            .expect("nodes")
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_certificate_file_stops_check_and_start_naming_the_file() {
    let setup = Setup::start().await;
    let junk = setup.ca.dir().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let yaml = base("web") + &setup.control_plane_yaml(&junk, None);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("p.yaml"), &yaml).expect("write");
    let check =
        meshwork_tests::meshwork_in(Some(dir.path()), ["check", "--read-certificates", "p.yaml"])
            .await;
    assert!(!check.success(), "{}", check.describe());
    let expected = format!(
        "control_plane.tls.ca: {}: no certificate found",
        junk.display()
    );
    assert!(check.stderr.contains(&expected), "{}", check.describe());
    let run = meshwork_tests::meshwork_in(Some(dir.path()), ["run", "-c", "p.yaml"]).await;
    assert!(!run.success(), "{}", run.describe());
    assert!(run.stderr.contains(&expected), "{}", run.describe());
}
