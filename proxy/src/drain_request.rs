//! `meshwork drain`: asks the local proxy to start draining (`POST /drain` on its admin
//! port) and waits for the answer — the sidecar's preStop hook in Kubernetes.
//!
//! A Kubernetes `httpGet` hook can only send GET, from the node; an `exec` hook runs in
//! the proxy's own container and reaches the admin port on loopback. The image carries no
//! curl, so the binary asks itself (as Istio's `pilot-agent request POST drain` does).
//! One HTTP/1.1 request over a blocking socket: there is nothing to multiplex.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The most of the answer that is read: its status line and a short body, for the message.
const MAX_ANSWER_BYTES: u64 = 4096;

/// Why the proxy did not confirm the drain.
#[derive(Debug, thiserror::Error)]
pub enum DrainRequestError {
    #[error("cannot reach the proxy's admin server at {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the proxy's admin server at {address} did not answer: {source}")]
    Io {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the proxy's admin server at {address} answered {status_line:?}, not 2xx")]
    Refused {
        address: SocketAddr,
        status_line: String,
    },
}

/// Sends `POST /drain` to `address`; returns the answer's status line.
///
/// # Errors
/// No connection, no answer within `timeout`, or an answer that is not 2xx.
pub fn drain(address: SocketAddr, timeout: Duration) -> Result<String, DrainRequestError> {
    let io = |source| DrainRequestError::Io { address, source };
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|source| DrainRequestError::Connect { address, source })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "POST /drain HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .map_err(io)?;
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or("").to_owned();
    let success = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .is_some_and(|rest| rest.starts_with('2'));
    if success {
        Ok(status_line)
    } else {
        Err(DrainRequestError::Refused {
            address,
            status_line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server answering `answer`; returns its address and the request.
    fn serve_once(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before ending its request");
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (address, handle)
    }

    #[test]
    fn posts_drain_and_accepts_a_2xx() {
        let (address, server) = serve_once("HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
        let status = drain(address, Duration::from_secs(5)).unwrap();
        assert_eq!(status, "HTTP/1.1 202 Accepted");
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /drain HTTP/1.1\r\n"), "{request}");
    }

    #[test]
    fn a_refusal_or_no_server_is_an_error_naming_the_address() {
        let (address, server) = serve_once("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        let err = drain(address, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, DrainRequestError::Refused { .. }), "{err}");
        assert!(
            err.to_string().contains("\"HTTP/1.1 404 Not Found\""),
            "{err}"
        );
        server.join().unwrap();
        // The port is free again once its listener is gone.
        let err = drain(address, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, DrainRequestError::Connect { .. }), "{err}");
    }
}
