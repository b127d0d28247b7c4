//! RFC 8441 extended CONNECT: a WebSocket (or another upgrade) asked for over HTTP/2 as
//! `:method CONNECT` with `:protocol websocket`, carried to an HTTP/1.1 upstream as the
//! `Upgrade` request RFC 8441 §5 maps it to, and the upstream's `101` answered to the
//! HTTP/2 client as the `200` that opens its tunnel.
//!
//! The request stays a `CONNECT` through routing and policy (a route's `match.method` and
//! an authorization rule's `methods` see `CONNECT`); it becomes a `GET` with `Upgrade`
//! only at the endpoint, after the route allowed its protocol. For WebSocket the proxy
//! makes the `Sec-WebSocket-Key` the upstream must answer (the HTTP/2 client sends none,
//! and any it does send is replaced) and checks the `Sec-WebSocket-Accept` it gets back,
//! so a `101` that does not prove the upstream read this handshake opens nothing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::ext::Protocol;
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: appended to the key before hashing it into the accept value.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `:protocol` of an extended CONNECT; `None` for any other request (a plain
/// `CONNECT` included).
pub fn protocol<B>(req: &Request<B>) -> Option<&Protocol> {
    if req.method() != Method::CONNECT {
        return None;
    }
    req.extensions().get::<Protocol>()
}

/// Whether a `:protocol` is one protocol name, maybe with a version: an RFC 9110 token,
/// optionally `/` and another. Anything else (a list, spaces) is malformed: it would
/// become several `Upgrade` tokens, or none.
pub fn is_one_protocol(protocol: &str) -> bool {
    let mut parts = protocol.splitn(2, '/');
    parts.all(|part| !part.is_empty() && part.bytes().all(is_tchar))
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What the HTTP/2 client is owed once the HTTP/1.1 upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Answer {
    /// For WebSocket: the `Sec-WebSocket-Accept` a `101` must carry.
    expected_accept: Option<String>,
}

/// Why the upstream's answer cannot open the HTTP/2 client's tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoTunnel {
    /// A `2xx` other than `101`: to the HTTP/2 client it would say "tunnel open".
    #[error("the upstream answered {0} without switching protocols")]
    NotSwitched(StatusCode),
    /// A `101` whose `Sec-WebSocket-Accept` does not answer the key sent.
    #[error("the upstream's Sec-WebSocket-Accept does not answer the key sent")]
    WrongAccept,
}

/// Turns an extended CONNECT for `protocol` into the HTTP/1.1 upgrade request RFC 8441
/// §5 maps it to: `GET` with `Connection: upgrade` and `Upgrade: <protocol>`, and for
/// WebSocket a fresh `Sec-WebSocket-Key` (`Sec-WebSocket-Version`, `-Protocol` and
/// `-Extensions` go on as the client sent them). The caller makes it HTTP/1.1 and sets
/// `Host`, as for any request to an HTTP/1.1 upstream.
pub fn into_upgrade<B>(req: &mut Request<B>, protocol: &Protocol) -> Http2Answer {
    let value = HeaderValue::from_str(protocol.as_str());
    *req.method_mut() = Method::GET;
    let headers = req.headers_mut();
    if let Ok(value) = value {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let websocket = protocol.as_str().eq_ignore_ascii_case("websocket");
    let expected_accept = websocket.then(|| {
        let key = BASE64.encode(rand::random::<[u8; 16]>());
        let accept = accept_for(key.as_bytes());
        if let Ok(key) = HeaderValue::from_str(&key) {
            headers.insert(header::SEC_WEBSOCKET_KEY, key);
        }
        accept
    });
    req.extensions_mut().remove::<Protocol>();
    Http2Answer { expected_accept }
}

/// RFC 6455 §4.2.2: base64(SHA-1(key + GUID)).
fn accept_for(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID);
    BASE64.encode(sha.finalize())
}

impl Http2Answer {
    /// The response for the HTTP/2 client: a `101` (already checked to switch to what
    /// was asked) that answered the WebSocket key becomes a `200` without the HTTP/1.1
    /// handshake headers (`Sec-WebSocket-Protocol` and `-Extensions` stay); any other
    /// non-`2xx` answer (a `404`, a `426`) is passed on as it is.
    ///
    /// # Errors
    /// [`NoTunnel`] when the answer cannot open the tunnel.
    pub fn answer<B>(&self, mut rsp: Response<B>) -> Result<Response<B>, NoTunnel> {
        let status = rsp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return if status.is_success() {
                Err(NoTunnel::NotSwitched(status))
            } else {
                Ok(rsp)
            };
        }
        if let Some(expected) = &self.expected_accept {
            let accept = rsp.headers().get(header::SEC_WEBSOCKET_ACCEPT);
            if accept.is_none_or(|a| a.as_bytes() != expected.as_bytes()) {
                return Err(NoTunnel::WrongAccept);
            }
        }
        *rsp.status_mut() = StatusCode::OK;
        let headers = rsp.headers_mut();
        for name in [
            header::UPGRADE,
            header::CONNECTION,
            header::SEC_WEBSOCKET_ACCEPT,
            header::CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
        Ok(rsp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extended_connect(protocol: &str) -> Request<()> {
        let mut req = Request::connect("https://app.example/chat")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "chat")
            .header("sec-websocket-key", "Y2hvc2VuIGJ5IHRoZSBjbGllbnQ=")
            .body(())
            .unwrap();
        req.extensions_mut().insert(Protocol::from(protocol));
        req
    }

    #[test]
    fn the_rfc_6455_example_key_gets_its_accept() {
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_an_extended_connect_has_a_protocol() {
        assert!(protocol(&extended_connect("websocket")).is_some());
        let plain = Request::connect("app.example:443").body(()).unwrap();
        assert!(protocol(&plain).is_none());
        let mut get = Request::get("/").body(()).unwrap();
        get.extensions_mut().insert(Protocol::from("websocket"));
        assert!(protocol(&get).is_none(), "a :protocol needs CONNECT");
    }

    #[test]
    fn a_protocol_is_one_token_with_an_optional_version() {
        for ok in ["websocket", "WebSocket/13", "custom-proto", "a.b_c~1"] {
            assert!(is_one_protocol(ok), "{ok}");
        }
        for bad in [
            "",
            "websocket, h2c",
            "web socket",
            "/13",
            "websocket/",
            "a/b/c",
            "é",
        ] {
            assert!(!is_one_protocol(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_websocket_connect_becomes_a_get_upgrade_with_a_key_of_the_proxy() {
        let mut req = extended_connect("websocket");
        let answer = into_upgrade(&mut req, &Protocol::from("websocket"));
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert_eq!(req.headers()["connection"], "upgrade");
        assert_eq!(req.headers()["sec-websocket-version"], "13");
        assert_eq!(req.headers()["sec-websocket-protocol"], "chat");
        let key = req.headers()["sec-websocket-key"].as_bytes().to_vec();
        assert_ne!(
            key, b"Y2hvc2VuIGJ5IHRoZSBjbGllbnQ=",
            "the client's key is replaced"
        );
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        assert!(req.extensions().get::<Protocol>().is_none());

        let switched = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-accept", accept_for(&key))
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap();
        let ok = answer.answer(switched).expect("the key was answered");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["sec-websocket-protocol"], "chat");
        for gone in ["upgrade", "connection", "sec-websocket-accept"] {
            assert!(ok.headers().get(gone).is_none(), "{gone}");
        }
        // Another key's accept each time: two tunnels never share one.
        let mut again = extended_connect("websocket");
        into_upgrade(&mut again, &Protocol::from("websocket"));
        assert_ne!(again.headers()["sec-websocket-key"].as_bytes(), &key[..]);
    }

    #[test]
    fn a_switch_that_does_not_answer_the_key_or_a_2xx_opens_nothing() {
        let mut req = extended_connect("websocket");
        let answer = into_upgrade(&mut req, &Protocol::from("websocket"));
        let switched = |accept: Option<&str>| {
            let mut b = Response::builder()
                .status(101)
                .header("upgrade", "websocket");
            if let Some(a) = accept {
                b = b.header("sec-websocket-accept", a);
            }
            b.body(()).unwrap()
        };
        assert_eq!(
            answer.answer(switched(None)).unwrap_err(),
            NoTunnel::WrongAccept
        );
        let other = accept_for(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            answer.answer(switched(Some(&other))).unwrap_err(),
            NoTunnel::WrongAccept
        );
        let ok = Response::builder().status(200).body(()).unwrap();
        assert_eq!(
            answer.answer(ok).unwrap_err(),
            NoTunnel::NotSwitched(StatusCode::OK)
        );
        let refused = Response::builder().status(426).body(()).unwrap();
        assert_eq!(answer.answer(refused).unwrap().status(), 426);
    }

    #[test]
    fn another_protocol_needs_no_key() {
        let mut req = extended_connect("custom-proto");
        let answer = into_upgrade(&mut req, &Protocol::from("custom-proto"));
        assert_eq!(req.headers()["upgrade"], "custom-proto");
        let switched = Response::builder()
            .status(101)
            .header("upgrade", "custom-proto")
            .body(())
            .unwrap();
        assert_eq!(answer.answer(switched).unwrap().status(), 200);
    }
}
