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
    /// Classifies the error of a body read from a client.
    pub fn of(error: &ClientBodyError) -> Self {
        match error {
            ClientBodyError::Malformed(_) => ClientFault::Malformed,
            ClientBodyError::Closed => ClientFault::Closed,
        }
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
    use super::*;

    /// What each server connection reports (their tests show which input gives which).
    #[test]
    fn broken_framing_is_malformed_and_a_client_gone_is_closed() {
        let malformed = ClientBodyError::Malformed("bad chunk size");
        assert_eq!(ClientFault::of(&malformed), ClientFault::Malformed);
        assert_eq!(
            ClientFault::of(&ClientBodyError::Closed),
            ClientFault::Closed
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
