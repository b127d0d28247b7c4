//! Authorization on an mTLS listener: rules by peer identity (`*` = any authenticated
//! peer), method and path glob; a refused request gets 403 `unauthorized`, never reaches
//! the application, and is counted, logged and written to the access log.

use meshwork_tests::{
    AccessLogFile, CertFiles, Proxy, Scrape, TestCa, TlsClient, Upstream, inbound_sidecar_yaml,
    labels_of, promtool_check_metrics,
};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
const BATCH: &str = "spiffe://cluster.local/ns/prod/sa/batch";

struct Mesh {
    ca: TestCa,
    web: CertFiles,
    batch: CertFiles,
    app: Upstream,
    proxy: Proxy,
    log: AccessLogFile,
}

async fn mesh(client_auth: &str, policy: &str) -> Mesh {
    let ca = TestCa::new("mesh");
    let server = ca
        .issue("api")
        .spiffe_id("spiffe://cluster.local/ns/prod/sa/api")
        .dns("localhost")
        .write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let batch = ca.issue("batch").spiffe_id(BATCH).write();
    let app = Upstream::http1().name("app").start().await;
    let log = AccessLogFile::json();
    let yaml = inbound_sidecar_yaml(
        &server,
        client_auth,
        &app.endpoint(),
        &format!(
            "{}authorization:\n  - listener: inbound\n{policy}",
            log.yaml()
        ),
    );
    let proxy = Proxy::with_config(yaml).start().await;
    Mesh {
        ca,
        web,
        batch,
        app,
        proxy,
        log,
    }
}

impl Mesh {
    async fn status(&self, who: Option<&CertFiles>, path: &str) -> u16 {
        let mut client = TlsClient::new(self.ca.ca_path());
        if let Some(files) = who {
            client = client.client_cert(files);
        }
        let reply = client
            .get(self.proxy.listener_addr("inbound"), path)
            .await
            .unwrap_or_else(|e| self.proxy.fail(&format!("GET {path}: {e}")));
        if reply.reply.status == 403 {
            assert_eq!(reply.reply.error_kind(), Some("unauthorized"));
        }
        reply.reply.status.as_u16()
    }

    async fn denied(&self, expected: u64) {
        let labels = labels_of(&[("listener", "inbound")]);
        let value = |s: &Scrape| {
            s.series("meshwork_authorization_denied_total")
                .get(&labels)
                .map_or(0, |v| *v as u64)
        };
        self.proxy
            .scrape_when(&format!("{expected} denials"), |s| value(s) == expected)
            .await;
    }
}

#[tokio::test]
async fn deny_by_default_lets_through_only_what_a_rule_allows() {
    let m = mesh(
        "required",
        "    default: deny
    allow:
      - from: [spiffe://cluster.local/ns/prod/sa/web]
        methods: [GET]
        paths: [\"/api/*\"]
      - from: [\"*\"]
        paths: [/healthz]
",
    )
    .await;
    assert_eq!(m.status(Some(&m.web), "/api/users").await, 200);
    assert_eq!(m.status(Some(&m.web), "/admin").await, 403);
    assert_eq!(m.status(Some(&m.batch), "/api/users").await, 403);
    assert_eq!(m.status(Some(&m.batch), "/healthz").await, 200);
    assert_eq!(m.app.requests(), 2, "refused requests never reach the app");
    m.denied(2).await;

    let lines = m.log.json_lines(4).await;
    let refused: Vec<_> = lines.iter().filter(|l| l["status"] == 403).collect();
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|l| l["error"] == "unauthorized"));
    assert!(refused.iter().any(|l| l["peer_identity"] == BATCH));
    let log = m.proxy.stderr_so_far();
    assert!(
        log.contains("request denied by the authorization policy"),
        "{log}"
    );

    // The TLS and authorization families pass promtool and are all documented.
    let scrape = m.proxy.scrape().await;
    promtool_check_metrics(&scrape.text).unwrap_or_else(|p| m.proxy.fail(&p));
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    for family in [
        "meshwork_tls_handshakes_total",
        "meshwork_authorization_denied_total",
        "meshwork_identity_reloads_total",
        "meshwork_identity_certificate_expiry_timestamp_seconds",
    ] {
        assert!(
            docs.contains(&format!("`{family}`")),
            "{family} is documented"
        );
    }
    assert!(
        scrape
            .text
            .contains("meshwork_identity_certificate_expiry_timestamp_seconds ")
    );
}

#[tokio::test]
async fn a_star_needs_an_authenticated_peer_and_allow_by_default_lets_the_rest_through() {
    let m = mesh(
        "optional",
        "    default: deny
    allow:
      - from: [\"*\"]
",
    )
    .await;
    assert_eq!(m.status(Some(&m.web), "/x").await, 200);
    assert_eq!(
        m.status(None, "/x").await,
        403,
        "no certificate: no identity"
    );
    m.denied(1).await;

    let open = mesh("optional", "    default: allow\n").await;
    assert_eq!(open.status(None, "/x").await, 200);
    assert_eq!(open.status(Some(&open.batch), "/x").await, 200);
    open.denied(0).await;
}
