//! Differential test of path normalization against nginx (Debian's `nginx`): the same
//! tricky request targets, raw, sent to nginx directly and through meshwork with nginx
//! as its upstream. nginx answers each with the target it received and its own reading
//! of the path (`$uri`: decoded, dot segments removed, slashes merged), or 400.
//!
//! What must hold, for every target meshwork lets through:
//! 1. nginx never refuses what meshwork forwards: no path reaches the upstream in a form
//!    nginx would have refused;
//! 2. a target nginx refuses on its own, meshwork refuses too (it never turns a refused
//!    path into an accepted one);
//! 3. nginx reads the forwarded path as it reads the original: meshwork changes the
//!    spelling, never the resource, except for the differences listed in
//!    [`KEEP_DIFFERS`] (documented in docs/security.md "Paths").
//!
//! meshwork refusing what nginx accepts is allowed (it is stricter by design: encoded
//! slashes, controls, backslashes, `..;`). Without nginx installed the test fails, unless
//! `MESHWORK_SKIP_NGINX=1` says to skip it.

use std::time::Duration;

use meshwork_tests::{Nginx, Proxy, RawConn, RawResponse};

/// Request targets: the tricks of issue #12 and what an attacker tries next.
const TARGETS: &[&[u8]] = &[
    b"/x/../admin",
    b"/./admin",
    b"//admin",
    b"/%61dmin",
    b"/%2e/admin",
    b"/x/..%2fadmin",
    b"/public/../admin",
    b"/..",
    b"/../admin",
    b"/a/../../b",
    b"/a/.%2e/../b",
    b"/.%2e/x",
    b"/%2E%2E/x",
    b"/a/%2e%2e/b",
    b"/a/%2E%2E",
    b"/a/.",
    b"/a/..",
    b"/.",
    b"/a//../b",
    b"///a///b//",
    b"/x/..;/admin",
    b"/admin;jsessionid=1",
    b"/a;b/../c",
    b"/a\\b",
    b"/a%5cb",
    b"/a%5Cb",
    b"/a%2fb",
    b"/a%2fb/../c",
    b"/a/..%5c..%5cb",
    b"/..%2f",
    b"/%zz",
    b"/%",
    b"/%2",
    b"/%u0041",
    b"/a%00b",
    b"/a%0d%0ab",
    b"/a%0ab",
    b"/a%09b",
    b"/a%7fb",
    b"/caf\xc3\xa9",
    b"/caf%c3%a9",
    b"/caf\xff",
    b"/%e9",
    b"/%252e%252e/admin",
    b"/~u",
    b"/%7Eu",
    b"/%7eu/%41%5a",
    b"/a%3Bb",
    b"/a%20b",
    b"/a%3fb",
    b"/a%23b",
    b"/a?x=../..",
    b"/a/..?q=%2f",
    b"/a#/../b",
    b"/a|b",
    b"/a{b}",
    b"/a^b",
    b"/a[b]",
    b"/a\"b",
    b"/a/...",
    b"/a/.../b",
    b"/a..b/..c",
    b"*",
    b"http://localhost/x/../admin",
    b"http://localhost/../admin",
];

/// Targets that a `keep` listener forwards with an encoded slash nginx then decodes as a
/// separator: nginx reads another path through meshwork than directly. This is what
/// `escaped_slashes: keep` means (the slash is opaque), and why it is not the default:
/// an upstream behind `keep` must not decode `%2F` before routing (docs/security.md).
const KEEP_DIFFERS: &[&[u8]] = &[b"/a%2fb/../c"];

/// What one side did with a target.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// nginx answered 200: the target it received and its reading of the path.
    Read {
        request_uri: String,
        uri: String,
    },
    /// nginx answered 400.
    NginxRefused,
    /// meshwork refused it (400 `malformed-request`) before any upstream saw it.
    MeshworkRefused,
    /// meshwork's HTTP parser refused it (400 before the request stack: not UTF-8).
    ParserRefused,
    Other(String),
}

fn seen(response: &RawResponse) -> Seen {
    let from_nginx = response
        .header("server")
        .is_some_and(|s| s.starts_with("nginx"));
    match (response.status, response.header("x-meshwork-error")) {
        (400, Some("malformed-request")) => Seen::MeshworkRefused,
        (400, None) if from_nginx => Seen::NginxRefused,
        (400, None) => Seen::ParserRefused,
        (200, None) if from_nginx => {
            let text = String::from_utf8_lossy(&response.body).into_owned();
            match text.split_once('\n') {
                Some((request_uri, uri)) => Seen::Read {
                    request_uri: request_uri.to_owned(),
                    uri: uri.strip_suffix('\n').unwrap_or(uri).to_owned(),
                },
                None => Seen::Other(format!("{response:?}")),
            }
        }
        _ => Seen::Other(format!("{response:?}")),
    }
}

async fn send(addr: std::net::SocketAddr, target: &[u8]) -> Seen {
    let mut conn = RawConn::connect(addr).await;
    let request = [b"GET ", target, b" HTTP/1.1\r\nHost: localhost\r\n\r\n"].concat();
    if let Err(e) = conn.send(&request).await {
        return Seen::Other(format!("send: {e}"));
    }
    match conn.read_response(Duration::from_secs(5)).await {
        Ok(response) => seen(&response),
        Err(e) => Seen::Other(format!("no response: {e}")),
    }
}

fn config(nginx: &Nginx) -> String {
    format!(
        "
version: 1
admin:
  address: 127.0.0.1:0
listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: all
  - name: keep
    address: 127.0.0.1:0
    route_table: all
    paths:
      escaped_slashes: keep
route_tables:
  all:
    - name: nginx
      backends: [{{ cluster: nginx }}]
clusters:
  - name: nginx
    endpoints: [{}]
",
        nginx.endpoint()
    )
}

/// Checks one target on one listener; `None` when all holds.
fn judge(listener: &str, target: &[u8], direct: &Seen, via: &Seen) -> Option<String> {
    let shown = String::from_utf8_lossy(target);
    match (direct, via) {
        (_, Seen::NginxRefused) => Some(format!(
            "{listener} {shown:?}: meshwork forwarded a path nginx refuses (direct: {direct:?})"
        )),
        (_, Seen::Other(what)) => Some(format!("{listener} {shown:?}: through meshwork: {what}")),
        (Seen::Other(what), _) => Some(format!("{listener} {shown:?}: direct to nginx: {what}")),
        (Seen::NginxRefused, Seen::Read { .. }) => Some(format!(
            "{listener} {shown:?}: nginx refuses it, meshwork let it through as {via:?}"
        )),
        (
            Seen::Read { uri: want, .. },
            Seen::Read {
                uri: got,
                request_uri,
            },
        ) => {
            let allowed = listener == "keep" && KEEP_DIFFERS.contains(&target);
            (want != got && !allowed).then(|| {
                format!(
                    "{listener} {shown:?}: nginx reads {want:?} directly but {got:?} as \
                     forwarded ({request_uri:?})"
                )
            })
        }
        (_, Seen::MeshworkRefused | Seen::ParserRefused) => None,
        (Seen::MeshworkRefused | Seen::ParserRefused, _) => Some(format!(
            "{listener} {shown:?}: nginx direct gave {direct:?}"
        )),
    }
}

#[tokio::test]
async fn no_path_reaches_the_upstream_in_a_form_nginx_would_refuse_or_read_otherwise() {
    let Ok(nginx) = Nginx::start_or_skip().await else {
        return;
    };
    let proxy = Proxy::with_config(config(&nginx)).start().await;
    let mut failures = Vec::new();
    let mut table = Vec::new();
    let mut refused_by_meshwork = 0;
    for target in TARGETS {
        let direct = send(nginx.addr(), target).await;
        for listener in ["edge", "keep"] {
            let via = send(proxy.listener_addr(listener), target).await;
            if matches!(via, Seen::MeshworkRefused) {
                refused_by_meshwork += 1;
            }
            table.push(format!(
                "{listener:<5} {:<32} nginx: {direct:?}\n{:<38} meshwork: {via:?}",
                format!("{:?}", String::from_utf8_lossy(target)),
                ""
            ));
            failures.extend(judge(listener, target, &direct, &via));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nall results:\n{}\n\nnginx's error log:\n{}",
        failures.join("\n"),
        table.join("\n"),
        nginx.error_log()
    );
    // The corpus is tricky enough that meshwork refuses a good share of it.
    assert!(refused_by_meshwork > 20, "{}", table.join("\n"));
}

#[test]
fn the_judge_flags_each_kind_of_disagreement() {
    let read = |uri: &str| Seen::Read {
        request_uri: uri.to_owned(),
        uri: uri.to_owned(),
    };
    assert!(judge("edge", b"/x", &read("/x"), &Seen::NginxRefused).is_some());
    assert!(judge("edge", b"/..", &Seen::NginxRefused, &read("/")).is_some());
    assert!(judge("edge", b"/a", &read("/a"), &read("/b")).is_some());
    assert!(judge("edge", b"/a%2fb/../c", &read("/a/c"), &read("/c")).is_some());
    assert!(judge("keep", b"/a%2fb/../c", &read("/a/c"), &read("/c")).is_none());
    assert!(judge("edge", b"/a", &read("/a"), &read("/a")).is_none());
    assert!(judge("edge", b"/a%0a", &read("/a\n"), &Seen::MeshworkRefused).is_none());
}
