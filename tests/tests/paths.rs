//! Path normalization (issue #12, point 1), with the exact bytes of each trick on raw
//! sockets: a path is normalized before the authorization policy and the routes read it,
//! and what they matched is what the rewrite, the mirror and the upstream get; a path an
//! upstream could read differently is refused with 400 `malformed-request`. Over
//! HTTP/1 (plaintext and mTLS) and HTTP/2 (h2c and h2 over mTLS).

use std::net::SocketAddr;
use std::time::Duration;

use meshwork_tests::{
    AccessLogFile, CertFiles, Proxy, RawConn, TestCa, TlsClient, Upstream, eventually, meshwork_in,
};

const WEB: &str = "spiffe://cluster.local/ns/prod/sa/web";
/// The body of the `admin` route's local 403: the request matched the `/admin` route.
const ADMIN_REFUSAL: &str = "admin is off limits\n";
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One proxy with three listeners on one route table (`/admin` answers 403 itself,
/// `/m/` is rewritten to `/mm/` and mirrored to `shadow`, `/api` (no trailing slash) is
/// rewritten to `/v2/`, the rest goes to `app`):
/// `edge` (plaintext, escaped slashes refused), `keep` (plaintext, escaped slashes
/// kept) and `inbound` (mTLS, authorization allows only `/public/*`).
struct Setup {
    ca: TestCa,
    web: CertFiles,
    app: Upstream,
    shadow: Upstream,
    proxy: Proxy,
    log: AccessLogFile,
}

fn config(identity: &CertFiles, app: &Upstream, shadow: &Upstream, log: &AccessLogFile) -> String {
    format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
  - name: keep
    address: 127.0.0.1:0
    route_table: edge
    paths:
      escaped_slashes: keep
  - name: inbound
    address: 127.0.0.1:0
    route_table: edge
    tls:
      client_auth: required
route_tables:
  edge:
    - name: admin
      match:
        path: {{ prefix: /admin }}
      direct_response: {{ status: 403, body: {ADMIN_REFUSAL:?} }}
    - name: mirrored
      match:
        path: {{ prefix: /m/ }}
      backends: [{{ cluster: app }}]
      rewrite: {{ path_prefix: /mm/ }}
      mirror: {{ cluster: shadow, percent: 100 }}
    - name: versioned
      match:
        path: {{ prefix: /api }}
      backends: [{{ cluster: app }}]
      rewrite: {{ path_prefix: /v2/ }}
    - name: app
      backends: [{{ cluster: app }}]
clusters:
  - name: app
    endpoints: [{app}]
  - name: shadow
    endpoints: [{shadow}]
authorization:
  - listener: inbound
    default: deny
    allow:
      - from: [\"*\"]
        paths: [\"/public/*\"]
{identity}{log}",
        app = app.endpoint(),
        shadow = shadow.endpoint(),
        identity = identity.identity_yaml(),
        log = log.yaml(),
    )
}

async fn setup() -> Setup {
    let ca = TestCa::new("mesh");
    let server = ca
        .issue("api")
        .spiffe_id("spiffe://cluster.local/ns/prod/sa/api")
        .dns("localhost")
        .write();
    let web = ca.issue("web").spiffe_id(WEB).write();
    let app = Upstream::http1().name("app").start().await;
    let shadow = Upstream::http1().name("shadow").start().await;
    let log = AccessLogFile::json();
    let proxy = Proxy::with_config(config(&server, &app, &shadow, &log))
        .start()
        .await;
    Setup {
        ca,
        web,
        app,
        shadow,
        proxy,
        log,
    }
}

/// What a request got, in words a failure message can show.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The `admin` route answered (403 with its body).
    AdminRoute,
    /// The authorization policy refused it (403 `unauthorized`).
    Unauthorized,
    /// Refused as malformed (400 `malformed-request`).
    Malformed,
    /// `app` answered; it saw this path (and query).
    Upstream(String),
    Other(String),
}

impl Setup {
    /// What `request` (raw HTTP/1 bytes) got on `listener`, over TLS with the `web`
    /// certificate for `inbound`.
    async fn send_h1(&self, listener: &str, request: &[u8]) -> Outcome {
        let addr = self.proxy.listener_addr(listener);
        let mut conn = if listener == "inbound" {
            let client = TlsClient::new(self.ca.ca_path()).client_cert(&self.web);
            RawConn::over(client.connect(addr).await.unwrap_or_else(|e| panic!("{e}")))
        } else {
            RawConn::connect(addr).await
        };
        let before = self.app.paths().len();
        conn.send(request)
            .await
            .unwrap_or_else(|e| panic!("sending {request:?}: {e}"));
        match conn.read_response(READ_TIMEOUT).await {
            Ok(r) => self.outcome(r.status, r.header("x-meshwork-error"), &r.text(), before),
            Err(e) => Outcome::Other(format!("no response: {e}")),
        }
    }

    /// Names a response, given how many requests `app` had seen before it.
    fn outcome(&self, status: u16, error: Option<&str>, body: &str, before: usize) -> Outcome {
        let paths = self.app.paths();
        match (status, error) {
            (403, None) if body == ADMIN_REFUSAL && paths.len() == before => Outcome::AdminRoute,
            (403, Some("unauthorized")) if paths.len() == before => Outcome::Unauthorized,
            (400, Some("malformed-request")) if paths.len() == before => Outcome::Malformed,
            (200, None) if paths.len() == before + 1 => Outcome::Upstream(paths[before].clone()),
            _ => Outcome::Other(format!(
                "{status} {error:?} {body:?}; the upstream saw {:?}",
                &paths[before..]
            )),
        }
    }
}

fn get(target: &[u8]) -> Vec<u8> {
    [b"GET ", target, b" HTTP/1.1\r\nHost: localhost\r\n\r\n"].concat()
}

/// Checks every `(request, expected)` and reports all mismatches at once.
async fn expect_all(s: &Setup, listener: &str, cases: &[(Vec<u8>, Outcome)]) {
    let mut failures = Vec::new();
    for (request, expected) in cases {
        let got = s.send_h1(listener, request).await;
        if &got != expected {
            failures.push(format!(
                "{:?}: expected {expected:?}, got {got:?}",
                String::from_utf8_lossy(request)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "on {listener}:\n{}",
        failures.join("\n")
    );
}

fn upstream(path: &str) -> Outcome {
    Outcome::Upstream(path.to_owned())
}

#[tokio::test]
async fn the_tricks_of_the_issue_reach_the_admin_route_instead_of_the_upstream() {
    let s = setup().await;
    expect_all(
        &s,
        "edge",
        &[
            (get(b"/x/../admin"), Outcome::AdminRoute),
            (get(b"/./admin"), Outcome::AdminRoute),
            (get(b"//admin"), Outcome::AdminRoute),
            (get(b"/%61dmin"), Outcome::AdminRoute),
            (get(b"/%2e/admin"), Outcome::AdminRoute),
            (get(b"/x/%2E%2e/admin/panel"), Outcome::AdminRoute),
            (get(b"/x/..%2fadmin"), Outcome::Malformed),
            (
                b"GET http://localhost/x/./../admin HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
                Outcome::AdminRoute,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_upstream_receives_the_normalized_path_with_the_query_untouched() {
    let s = setup().await;
    expect_all(
        &s,
        "edge",
        &[
            (
                get(b"/a/./b/../c?x=../%2e&y=%2F"),
                upstream("/a/c?x=../%2e&y=%2F"),
            ),
            (get(b"//p//q/"), upstream("/p/q/")),
            (get(b"/%7euser/%41%62c/%2D"), upstream("/~user/Abc/-")),
            (get(b"/a%3bb/%c3%a9/%20"), upstream("/a%3Bb/%C3%A9/%20")),
            (get(b"/caf\xc3\xa9"), upstream("/caf%C3%A9")),
            (get(b"/admin;x/../ok"), upstream("/ok")),
            (get(b"/%252e%252e/x"), upstream("/%252e%252e/x")),
            (get(b"/already/normal?q"), upstream("/already/normal?q")),
            (
                b"GET http://localhost/x/./y/../z?q HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
                upstream("/x/z?q"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn paths_an_upstream_could_read_differently_are_refused_and_counted_as_malformed() {
    let s = setup().await;
    let refused: &[&[u8]] = &[
        b"/x/..%2fadmin",
        b"/x/..%2Fadmin",
        b"/a%5cb",
        b"/a%5C..%5Cadmin",
        b"/..",
        b"/a/../../b",
        b"/%2e%2e/admin",
        b"/x/..;/admin",
        b"/x/.;/admin",
        b"/public/;x/../admin",
        b"/x/%2e%2e;/admin",
        b"/a\\b",
        b"/..\\admin",
        b"/%zz",
        b"/%",
        b"/%2",
        b"/%u0041dmin",
        b"/a%00b",
        b"/a%0d%0aSet-Cookie:%20x=1",
        b"/a%0A",
        b"/a%7f",
        b"*",
        b"http://localhost/../admin",
    ];
    let cases: Vec<(Vec<u8>, Outcome)> = refused
        .iter()
        .map(|target| (get(target), Outcome::Malformed))
        .collect();
    expect_all(&s, "edge", &cases).await;

    // Like every 400 the proxy answers itself: counted, and in the access log.
    let n = refused.len() as f64;
    s.proxy
        .scrape_when(&format!("{n} malformed-request answers"), |scrape| {
            scrape.get_or_zero(
                "meshwork_http_local_responses_total",
                &[("listener", "edge"), ("reason", "malformed-request")],
            ) == n
        })
        .await;
    let lines = s.log.json_lines(refused.len()).await;
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 400 && l["error"] == "malformed-request"),
        "{lines:#?}"
    );
    assert_eq!(s.app.requests(), 0);
}

#[tokio::test]
async fn a_keep_listener_passes_encoded_slashes_opaque() {
    let s = setup().await;
    expect_all(
        &s,
        "keep",
        &[
            (get(b"/files/a%2fb"), upstream("/files/a%2Fb")),
            (get(b"/files/a%2fb/../c"), upstream("/files/c")),
            (get(b"/x/..%2fadmin"), Outcome::Malformed),
            (get(b"/x/%2F../admin"), Outcome::Malformed),
            (get(b"/files/a%5cb"), upstream("/files/a%5Cb")),
            (get(b"/x/../admin"), Outcome::AdminRoute),
            (get(b"/a\\b"), Outcome::Malformed),
            (get(b"/.."), Outcome::Malformed),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_rewrite_and_the_mirror_see_the_normalized_path() {
    let s = setup().await;
    expect_all(
        &s,
        "edge",
        &[(get(b"/m/x/%2e%2E/y?q=1"), upstream("/mm/y?q=1"))],
    )
    .await;
    eventually("the mirror's copy", Duration::from_secs(5), || async {
        !s.shadow.paths().is_empty()
    })
    .await;
    assert_eq!(s.shadow.paths(), ["/mm/y?q=1"]);
}

/// A prefix without its closing `/` (`/api`) rewritten to one with it (`/v2/`) cuts a
/// segment in two: `/api../admin` is a normal path (its first segment is `api..`), but
/// rewritten it would be `/v2/../admin`, which the upstream reads as `/admin`, outside
/// `/v2/`. A rewritten path that is not normal is refused.
#[tokio::test]
async fn a_rewrite_that_would_forward_a_dot_segment_is_refused() {
    let s = setup().await;
    for listener in ["edge", "keep"] {
        expect_all(
            &s,
            listener,
            &[
                (get(b"/api/users?q=1"), upstream("/v2/users?q=1")),
                (get(b"/api"), upstream("/v2/")),
                (get(b"/apis"), upstream("/v2/s")),
                (get(b"/api..x"), upstream("/v2/..x")),
                (get(b"/api../admin"), Outcome::Malformed),
                (get(b"/api.."), Outcome::Malformed),
                (get(b"/api./x"), Outcome::Malformed),
            ],
        )
        .await;
    }
    expect_all(&s, "keep", &[(get(b"/api..%2Fadmin"), Outcome::Malformed)]).await;
}

#[tokio::test]
async fn the_authorization_policy_reads_the_normalized_path_over_mtls() {
    let s = setup().await;
    expect_all(
        &s,
        "inbound",
        &[
            (get(b"/public/../admin"), Outcome::Unauthorized),
            (get(b"/public/%2e%2e/secret"), Outcome::Unauthorized),
            (get(b"/public//../secret"), Outcome::Unauthorized),
            (get(b"/public/..%2fsecret"), Outcome::Malformed),
            (get(b"/public/..;/secret"), Outcome::Malformed),
            (get(b"/public/;/../secret"), Outcome::Malformed),
            (get(b"/public/./a/../b"), upstream("/public/b")),
            (get(b"/%70ublic/doc"), upstream("/public/doc")),
        ],
    )
    .await;
}

/// `GET path` over HTTP/2 on an established connection: the h2 crate sends `:path`
/// exactly as given.
async fn send_h2(client: &h2::client::SendRequest<bytes::Bytes>, s: &Setup, uri: &str) -> Outcome {
    let before = s.app.paths().len();
    let request = http::Request::get(uri).body(()).expect("a request");
    let mut ready = client.clone().ready().await.expect("a ready h2 connection");
    let (response, _) = ready
        .send_request(request, true)
        .unwrap_or_else(|e| panic!("sending {uri}: {e}"));
    let response = match tokio::time::timeout(READ_TIMEOUT, response).await {
        Ok(Ok(response)) => response,
        other => return Outcome::Other(format!("{uri}: {other:?}")),
    };
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-meshwork-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("a body chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    s.outcome(
        status,
        error.as_deref(),
        &String::from_utf8_lossy(&text),
        before,
    )
}

async fn expect_all_h2<I>(s: &Setup, io: I, authority: &str, cases: &[(&str, Outcome)])
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::handshake(io).await.expect("an h2 handshake");
    tokio::spawn(connection);
    let mut failures = Vec::new();
    for (path, expected) in cases {
        let got = send_h2(&client, s, &format!("{authority}{path}")).await;
        if &got != expected {
            failures.push(format!("{path:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "over HTTP/2:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn http2_paths_are_normalized_and_refused_the_same_way() {
    let s = setup().await;
    let addr: SocketAddr = s.proxy.listener_addr("edge");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    expect_all_h2(
        &s,
        tcp,
        &format!("http://{addr}"),
        &[
            ("/x/../admin", Outcome::AdminRoute),
            ("//admin", Outcome::AdminRoute),
            ("/%61dmin", Outcome::AdminRoute),
            ("/%2e/admin", Outcome::AdminRoute),
            ("/x/..%2fadmin", Outcome::Malformed),
            ("/a/./b/../c?x=..", upstream("/a/c?x=..")),
            ("/..", Outcome::Malformed),
            ("/x/..;/admin", Outcome::Malformed),
        ],
    )
    .await;

    let tls = TlsClient::new(s.ca.ca_path())
        .client_cert(&s.web)
        .alpn(&["h2"])
        .connect(s.proxy.listener_addr("inbound"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    expect_all_h2(
        &s,
        tls,
        "https://localhost",
        &[
            ("/public/../admin", Outcome::Unauthorized),
            ("/public/%2E%2E/secret", Outcome::Unauthorized),
            ("/public/..%2fsecret", Outcome::Malformed),
            ("/public/..;/secret", Outcome::Malformed),
            ("/public/./a/../b", upstream("/public/b")),
        ],
    )
    .await;
}

#[tokio::test]
async fn explain_shows_the_normalized_path_or_why_it_is_refused() {
    let app = Upstream::http1().name("app").start().await;
    let shadow = Upstream::http1().name("shadow").start().await;
    let ca = TestCa::new("explain");
    let identity = ca.issue("api").dns("localhost").write();
    let log = AccessLogFile::json();
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("paths.yaml"),
        config(&identity, &app, &shadow, &log),
    )
    .expect("write the config");
    let explain = |request: &'static str, listener: &'static str| {
        let dir = dir.path().to_owned();
        async move {
            meshwork_in(
                Some(&dir),
                ["explain", "-c", "paths.yaml", "-l", listener, request],
            )
            .await
        }
    };

    let out = explain("GET http://localhost/x/%2e%2e/admin", "edge").await;
    assert!(
        out.stdout.contains("/x/%2e%2e/admin -> /admin"),
        "{}",
        out.describe()
    );
    let admin = out
        .stdout
        .lines()
        .find(|l| l.contains("admin") && l.contains("MATCH"));
    assert!(admin.is_some(), "{}", out.describe());

    let out = explain("GET http://localhost/x/..%2fadmin", "edge").await;
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("refused") && out.stdout.contains("%2F"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("400") && out.stdout.contains("malformed-request"),
        "{}",
        out.describe()
    );
    assert!(!out.stdout.contains("MATCH"), "{}", out.describe());

    let out = explain("GET http://localhost/files/a%2fb", "keep").await;
    assert!(
        out.stdout.contains("/files/a%2fb -> /files/a%2Fb"),
        "{}",
        out.describe()
    );
}
