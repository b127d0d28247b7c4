//! TLS termination on listeners: certificates picked by SNI (exact, wildcard, default),
//! ALPN choosing HTTP/2 or HTTP/1.1, and clients that cannot finish a handshake
//! (plaintext, silent, old protocol versions) closed with a counted, logged reason.
//! Real clients too: curl and `openssl s_client`.

use std::io::{Read, Write};
use std::time::Duration;

use meshwork_tests::{CertFiles, Proxy, Scrape, TestCa, TlsClient, labels_of};

struct Edge {
    proxy: Proxy,
    ca: TestCa,
    default: CertFiles,
    api: CertFiles,
    wildcard: CertFiles,
}

/// An edge listener with three certificates: a default, `api.example.com`, and
/// `*.example.com`; every request is answered by the proxy itself.
async fn edge(extra_tls: &str) -> Edge {
    let ca = TestCa::new("edge");
    let default = ca.issue("default").dns("localhost").write();
    let api = ca.issue("api").dns("api.example.com").write();
    let wildcard = ca.issue("wildcard").dns("*.example.com").write();
    let yaml = format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
    tls:
      certificates:
        - {{ cert: {}, key: {}, server_names: [localhost] }}
        - {{ cert: {}, key: {}, server_names: [api.example.com] }}
        - {{ cert: {}, key: {}, server_names: ['*.example.com'] }}
{extra_tls}
route_tables:
  edge:
    - name: hello
      direct_response: {{ status: 200, body: \"hello over tls\\n\" }}
",
        default.cert.display(),
        default.key.display(),
        api.cert.display(),
        api.key.display(),
        wildcard.cert.display(),
        wildcard.key.display(),
    );
    let proxy = Proxy::with_config(yaml).start().await;
    Edge {
        proxy,
        ca,
        default,
        api,
        wildcard,
    }
}

async fn failures(proxy: &Proxy, reason: &str, expected: u64) {
    let labels = labels_of(&[("listener", "edge"), ("reason", reason)]);
    let value = |s: &Scrape| {
        s.series("meshwork_tls_handshake_failures_total")
            .get(&labels)
            .map_or(0, |v| *v as u64)
    };
    proxy
        .scrape_when(&format!("{expected} handshake failures ({reason})"), |s| {
            value(s) == expected
        })
        .await;
}

#[tokio::test]
async fn the_certificate_is_picked_by_sni_exact_then_wildcard_then_the_first() {
    let e = edge("").await;
    let addr = e.proxy.listener_addr("edge");
    let cases = [
        ("api.example.com", &e.api),
        ("www.example.com", &e.wildcard),
        ("localhost", &e.default),
    ];
    for (name, expected) in cases {
        let reply = TlsClient::new(e.ca.ca_path())
            .server_name(name)
            .get(addr, "/")
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(reply.server_cert, expected.der, "SNI {name}");
        assert_eq!(reply.reply.text(), "hello over tls\n");
    }
    // An unknown name gets the first certificate (which then does not verify for it).
    let err = TlsClient::new(e.ca.ca_path())
        .server_name("unknown.test")
        .get(addr, "/")
        .await
        .unwrap_err();
    assert!(err.contains("handshake"), "{err}");
    let scrape = e.proxy.scrape().await;
    assert_eq!(
        scrape.get("meshwork_tls_handshakes_total", &[("listener", "edge")]),
        Some(3.0)
    );
}

#[tokio::test]
async fn alpn_chooses_http2_or_http1() {
    let e = edge("").await;
    let addr = e.proxy.listener_addr("edge");
    let h2 = TlsClient::new(e.ca.ca_path())
        .alpn(&["h2", "http/1.1"])
        .get(addr, "/")
        .await
        .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some("h2"));
    assert_eq!(h2.reply.version, http::Version::HTTP_2);
    assert_eq!(h2.reply.status, 200);
    let h1 = TlsClient::new(e.ca.ca_path())
        .alpn(&["http/1.1"])
        .get(addr, "/")
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(h1.reply.version, http::Version::HTTP_11);
    let none = TlsClient::new(e.ca.ca_path())
        .alpn(&[])
        .get(addr, "/")
        .await
        .unwrap();
    assert_eq!(none.alpn, None);
    assert_eq!(none.reply.text(), "hello over tls\n");
    let _ = (&e.default, &e.api);
}

#[tokio::test]
async fn a_plaintext_client_gets_a_closed_connection_and_the_reason_is_counted_and_logged() {
    let e = edge("").await;
    let addr = e.proxy.listener_addr("edge");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let n = conn.read_to_end(&mut got).unwrap_or(0);
    assert_eq!(
        n,
        0,
        "nothing but a close: {:?}",
        String::from_utf8_lossy(&got)
    );
    failures(&e.proxy, "plaintext", 1).await;
    assert!(
        e.proxy.stderr_so_far().contains("reason=\"plaintext\"")
            || e.proxy.stderr_so_far().contains("reason=plaintext"),
        "{}",
        e.proxy.stderr_so_far()
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_closed_at_the_timeout() {
    let e = edge("      handshake_timeout: 300ms").await;
    let addr = e.proxy.listener_addr("edge");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The first byte of a TLS record, then nothing.
    conn.write_all(&[0x16]).unwrap();
    let mut got = Vec::new();
    assert_eq!(conn.read_to_end(&mut got).unwrap_or(0), 0);
    failures(&e.proxy, "timeout", 1).await;
}

fn tool(name: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok()
        || std::process::Command::new(name)
            .arg("version")
            .output()
            .is_ok();
    if found {
        return true;
    }
    // Skipped only when asked to: a missing client must not pass as a passing test.
    if std::env::var("MESHWORK_SKIP_TLS_CLIENTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: `{name}` is not installed and MESHWORK_SKIP_TLS_CLIENTS=1");
        return false;
    }
    panic!(
        "`{name}` is not installed: install it (`apt-get install {name}`; .ci/run does), or \
         set MESHWORK_SKIP_TLS_CLIENTS=1 to skip the tests that use it"
    );
}

#[tokio::test]
async fn curl_gets_an_answer_over_http2_and_http1() {
    if !tool("curl") {
        return;
    }
    let e = edge("").await;
    let addr = e.proxy.listener_addr("edge");
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", flag, "--cacert"])
            .arg(e.ca.ca_path())
            .args([
                "--resolve",
                &format!("api.example.com:{}:127.0.0.1", addr.port()),
            ])
            .args(["-w", "\n%{http_version}"])
            .arg(format!("https://api.example.com:{}/", addr.port()))
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout, format!("hello over tls\n\n{version}"));
    }
}

/// Runs `openssl s_client` against the listener with `args`, returning its output.
async fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closing stdin ends the session after the handshake.
    drop(child.stdin.take());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("openssl s_client finished")
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn openssl_sees_the_sni_certificate_and_alpn_and_old_protocols_are_refused() {
    if !tool("openssl") {
        return;
    }
    let e = edge("").await;
    let addr = e.proxy.listener_addr("edge");
    let ca = e.ca.ca_path().to_string_lossy().into_owned();
    let out = s_client(
        addr,
        &[
            "-servername",
            "www.example.com",
            "-alpn",
            "h2",
            "-CAfile",
            &ca,
        ],
    )
    .await;
    assert!(
        out.contains("CN=wildcard") || out.contains("CN = wildcard"),
        "{out}"
    );
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let out = s_client(addr, &["-tls1_1"]).await;
    assert!(out.contains("no peer certificate available"), "{out}");
    failures(&e.proxy, "incompatible", 1).await;
}

#[tokio::test]
async fn a_reload_naming_a_broken_certificate_is_rejected_and_the_old_one_keeps_serving() {
    let e = edge("").await;
    let addr = e.proxy.listener_addr("edge");
    let broken = e.ca.dir().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(e.proxy.config_path()).unwrap();
    let bad = text.replacen(
        &e.default.cert.display().to_string(),
        &broken.display().to_string(),
        1,
    );
    assert_ne!(bad, text);
    e.proxy.replace_config_atomically(&bad);
    e.proxy.sighup();
    let labels = labels_of(&[("result", "rejected")]);
    e.proxy
        .scrape_when("the reload rejected", |s| {
            s.series("meshwork_config_reloads_total").get(&labels) == Some(&1.0)
        })
        .await;
    let log = e.proxy.stderr_so_far();
    assert!(
        log.contains(&format!(
            "listeners[0].tls.certificates[0]: {}: certificate #1: not a valid X.509 certificate",
            broken.display()
        )),
        "{log}"
    );
    let reply = TlsClient::new(e.ca.ca_path()).get(addr, "/").await.unwrap();
    assert_eq!(reply.server_cert, e.default.der);
}

#[tokio::test]
async fn tcp_listeners_terminate_tls_and_tcp_clusters_originate_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new("tcp");
    let server = ca.issue("db").dns("db.internal").write();
    let echo = meshwork_tests::TcpEchoUpstream::start().await;
    // `front` terminates TLS on a tcp listener in front of a plaintext echo server.
    let front = Proxy::with_config(format!(
        "version: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - name: db
    address: 127.0.0.1:0
    protocol: tcp
    cluster: echo
    tls:
      certificates: [{{ cert: {}, key: {} }}]
clusters:
  - {{ name: echo, endpoints: [{}] }}
",
        server.cert.display(),
        server.key.display(),
        echo.endpoint()
    ))
    .start()
    .await;
    let mut direct = TlsClient::new(ca.ca_path())
        .server_name("db.internal")
        .alpn(&[])
        .connect(front.listener_addr("db"))
        .await
        .unwrap();
    direct.write_all(b"over tls").await.unwrap();
    let mut got = [0u8; 8];
    direct.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"over tls");

    // `back` takes plaintext and originates TLS to `front`, verifying its name.
    let back = Proxy::with_config(format!(
        "version: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - {{ name: db, address: 127.0.0.1:0, protocol: tcp, cluster: front }}
clusters:
  - name: front
    endpoints: [{}]
    tls: {{ ca: {}, server_name: db.internal }}
",
        front.listener_addr("db"),
        ca.ca_path().display()
    ))
    .start()
    .await;
    let mut plain = tokio::net::TcpStream::connect(back.listener_addr("db"))
        .await
        .unwrap();
    plain.write_all(b"two hops").await.unwrap();
    plain.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"two hops");
    let scrape = front.scrape().await;
    assert_eq!(
        scrape.get("meshwork_tls_handshakes_total", &[("listener", "db")]),
        Some(2.0)
    );
}
