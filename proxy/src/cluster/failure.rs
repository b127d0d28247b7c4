//! What ended an exchange with an endpoint, whichever client made it (the pool, or an
//! upgrade's own connection), classified into the error the client is answered with and
//! counted where it belongs.

use super::connector::ConnectError;
use super::pool::SendError;
use super::upgrade_conn::UpgradeSendError;
use super::{ClusterRuntime, Endpoint};
use crate::http::ProxyError;
use crate::http::client_fault::ClientFault;

/// What kind of failure ended an exchange with the endpoint, whichever client (the pool,
/// or an upgrade's own connection) made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connector refused for the cluster's `max_connections`.
    Overflow,
    /// No connection could be made: nothing was sent.
    Connect,
    /// The connection broke during the exchange.
    Broken,
}

impl Failure {
    /// The failure of an endpoint's client (the pool, or the legacy client's).
    pub fn of_send(error: &SendError) -> Self {
        match error {
            SendError::Connect(ConnectError::Overflow) => Failure::Overflow,
            SendError::Connect(_) => Failure::Connect,
            SendError::Exchange(_) | SendError::Http(_) => Failure::Broken,
            SendError::Legacy(error) => Self::of_legacy(error),
        }
    }

    fn of_legacy(error: &hyper_util::client::legacy::Error) -> Self {
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            if matches!(
                e.downcast_ref::<ConnectError>(),
                Some(ConnectError::Overflow)
            ) {
                return Failure::Overflow;
            }
            source = e.source();
        }
        if error.is_connect() {
            Failure::Connect
        } else {
            Failure::Broken
        }
    }

    pub fn of_upgrade(error: &UpgradeSendError) -> Self {
        match error {
            UpgradeSendError::Connect(ConnectError::Overflow) => Failure::Overflow,
            UpgradeSendError::Connect(_) => Failure::Connect,
            UpgradeSendError::Http(_) => Failure::Broken,
        }
    }
}

/// The client's error with its causes, for the debug log (a cause that the text
/// already quotes is not repeated).
pub fn describe(error: &SendError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The client's fault when its body broke first (the upstream request failed because
/// of it); else the cluster's connection limit, a connect failure (nothing was sent), or
/// a reset (the connection broke).
pub fn classify(
    cluster: &ClusterRuntime,
    endpoint: &Endpoint,
    failure: Failure,
    cause: &str,
    client_fault: Option<ClientFault>,
) -> ProxyError {
    if let Some(fault) = client_fault {
        tracing::debug!(endpoint = %endpoint.address, ?fault, "the client broke its request body; upstream request aborted");
        return fault.error();
    }
    let kind = match failure {
        Failure::Overflow => {
            // Counted here, for the request it turned away; the pool's own background
            // connects that time out the same way turn nobody away.
            cluster.gates.connections.count_overflow();
            return ProxyError::Overflow;
        }
        // Counted by the connector, which also sees connects the pool makes on its own.
        Failure::Connect => ProxyError::ConnectFailed,
        Failure::Broken => {
            endpoint.metrics.resets.inc();
            ProxyError::UpstreamReset
        }
    };
    tracing::debug!(endpoint = %endpoint.address, %cause, reason = kind.reason(), "upstream request failed");
    kind
}
