//! A request body broken by its client: how (gone away, or malformed), and where the body
//! leaves word of it for the attempt carrying it.
//!
//! When a client breaks its body mid-way, the upstream request fails too, and from the
//! upstream side it looks like any broken connection (an HTTP/2 upstream even sees only
//! the reset the proxy sent). The body knows better: it saw the client's error first, so
//! it records it in a [`ClientFaultCell`] the attempt reads when its upstream request
//! fails. The error is then the client's (400 or 499), never the endpoint's.

use std::sync::OnceLock;

use super::ProxyError;
use super::client_body::ClientBodyError;

/// How a client broke its own request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFault {
    /// It went away or cancelled: connection closed or reset mid-body, an HTTP/2
    /// `RST_STREAM`, a body shorter than its `Content-Length` because the socket ended.
    Closed,
    /// It broke the framing: bad chunk sizes, bare CR or LF, overlong chunk extensions,
    /// HTTP/2 DATA disagreeing with `content-length`.
    Malformed,
}

impl ClientFault {
    /// Classifies the error of a body read from a client: meshwork's HTTP/1 connection
    /// says which it is; of hyper's errors, by their types: io error kinds from its
    /// HTTP/1 decoder (`InvalidData`/`InvalidInput` for broken framing), its parse errors,
    /// and the h2 reason (`PROTOCOL_ERROR` for a broken stream). Anything else is the
    /// client going away.
    pub fn of(error: &ClientBodyError) -> Self {
        let error = match error {
            ClientBodyError::Malformed(_) => return ClientFault::Malformed,
            ClientBodyError::Closed => return ClientFault::Closed,
            ClientBodyError::Hyper(error) => error,
        };
        if error.is_parse() {
            return ClientFault::Malformed;
        }
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                ) {
                    return ClientFault::Malformed;
                }
            }
            if let Some(h2) = e.downcast_ref::<h2::Error>() {
                if h2.reason() == Some(h2::Reason::PROTOCOL_ERROR) {
                    return ClientFault::Malformed;
                }
            }
            source = e.source();
        }
        ClientFault::Closed
    }

    /// The answer: 400 `malformed-request`, or 499 `client-closed`.
    pub fn error(self) -> ProxyError {
        match self {
            ClientFault::Closed => ProxyError::ClientClosed,
            ClientFault::Malformed => ProxyError::MalformedRequest,
        }
    }
}

/// Where a streaming request body records that its client broke it (the first fault
/// only), shared with the attempt that sends the body upstream.
#[derive(Debug, Default)]
pub struct ClientFaultCell(OnceLock<ClientFault>);

impl ClientFaultCell {
    pub fn record(&self, fault: ClientFault) {
        let _ = self.0.set(fault);
    }

    pub fn get(&self) -> Option<ClientFault> {
        self.0.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Serves `bytes` (then the end of the stream) to a real hyper HTTP/1 server whose
    /// service reads the request body; returns how the body failed, if it did.
    async fn fault_reading(bytes: &'static [u8]) -> Option<ClientFault> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let tx = tx.lock().unwrap().take();
                async move {
                    let fault = req
                        .into_body()
                        .collect()
                        .await
                        .err()
                        .map(|e| ClientFault::of(&ClientBodyError::Hyper(e)));
                    if let Some(tx) = tx {
                        let _ = tx.send(fault);
                    }
                    Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
                }
            });
        // Half-close: the end of the stream reaches the body instead of ending the
        // connection (and the service) first.
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service);
        tokio::spawn(conn);
        let mut client = client;
        client.write_all(bytes).await.unwrap();
        client.shutdown().await.unwrap();
        let fault = rx.await.unwrap();
        drop(client);
        fault
    }

    #[tokio::test]
    async fn broken_framing_is_malformed_and_a_body_cut_short_is_closed() {
        const CHUNKED: &str = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            "zz\r\n",
            "5\nhello\r\n0\r\n\r\n",
            "5\r\nhelloXX\r\n0\r\n\r\n",
            "10000000000000005\r\nhello\r\n0\r\n\r\n",
            "0_5\r\n\r\n",
        ] {
            let request: &'static str = format!("{CHUNKED}{body}").leak();
            assert_eq!(
                fault_reading(request.as_bytes()).await,
                Some(ClientFault::Malformed),
                "{body:?}"
            );
        }
        assert_eq!(
            fault_reading(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").await,
            Some(ClientFault::Closed)
        );
        assert_eq!(
            fault_reading(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
            )
            .await,
            Some(ClientFault::Closed)
        );
        assert_eq!(
            fault_reading(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").await,
            None
        );
    }

    #[test]
    fn the_first_fault_recorded_is_kept() {
        let cell = ClientFaultCell::default();
        assert_eq!(cell.get(), None);
        cell.record(ClientFault::Malformed);
        cell.record(ClientFault::Closed);
        assert_eq!(cell.get(), Some(ClientFault::Malformed));
        assert_eq!(ClientFault::Malformed.error(), ProxyError::MalformedRequest);
        assert_eq!(ClientFault::Closed.error(), ProxyError::ClientClosed);
    }
}
