//! What an upstream's HTTP/1.1 response can and cannot make the proxy do: a body framed
//! two ways reaches the client framed the way the proxy read it, bytes after a response
//! are never read as the next one, and a malformed head is a 502, not a relayed mess.

use meshwork_tests::{HttpClient, Proxy, RawScript, RawUpstream, single_cluster_config};

/// An upstream that answers every connection's first request with `reply` (then echoes),
/// and the proxy in front of it.
async fn proxy_to_reply(reply: &[u8]) -> (RawUpstream, Proxy) {
    let app = RawUpstream::start(RawScript::ReplyThenEcho(reply.to_vec())).await;
    let proxy = Proxy::with_config(single_cluster_config(&app.endpoint(), "http1"))
        .start()
        .await;
    (app, proxy)
}

#[tokio::test]
async fn a_body_framed_by_both_transfer_encoding_and_content_length_is_read_by_its_chunks() {
    let (_app, proxy) = proxy_to_reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello");
    assert_ne!(
        reply.header("content-length"),
        Some("3"),
        "the length the proxy did not frame the body by is not relayed"
    );
}

#[tokio::test]
async fn bytes_after_a_response_are_never_read_as_the_next_response() {
    let (app, proxy) = proxy_to_reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
    )
    .await;
    let client = HttpClient::h1();
    for round in 0..2 {
        let reply = client.get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, 200, "round {round}");
        assert_eq!(reply.text(), "ok", "round {round}");
    }
    assert_eq!(
        app.connections(),
        2,
        "the connection that sent more than its response was not reused"
    );
}

#[tokio::test]
async fn malformed_response_heads_are_a_502() {
    for head in [
        "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/9.9 200 OK\r\nContent-Length: 0\r\n\r\n",
    ] {
        let (_app, proxy) = proxy_to_reply(head.as_bytes()).await;
        let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
        assert_eq!(reply.status, 502, "{head:?}");
        assert_eq!(
            reply.header("x-meshwork-error"),
            Some("upstream-reset"),
            "{head:?}"
        );
    }
}
