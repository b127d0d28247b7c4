//! Errors the proxy answers for itself: each maps to one status code and one
//! `x-meshwork-error` reason, so clients, logs and metrics all say the same thing.

use http::StatusCode;
use meshwork_config::model::AbortKind;

/// Why the proxy produced a response instead of the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ProxyError {
    #[error("malformed request")]
    MalformedRequest,
    #[error("no route matched the request")]
    NoRoute,
    #[error("request head not received in time")]
    HeaderTimeout,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("request header too large")]
    HeaderTooLarge,
    #[error("upstream connection failed")]
    ConnectFailed,
    #[error("upstream connection reset")]
    UpstreamReset,
    #[error("no healthy endpoint")]
    NoHealthyEndpoint,
    #[error("upstream did not respond in time")]
    UpstreamTimeout,
    /// The route's token bucket is empty; the next token comes in `retry_after_secs`
    /// (whole seconds, rounded up, at least 1), sent as `Retry-After`.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u32 },
    /// The route's `fault.abort` answered: its HTTP status, or its gRPC status in a
    /// trailers-only response.
    #[error("fault injected")]
    FaultAbort { kind: AbortKind },
    #[error("every endpoint's circuit breaker is open")]
    CircuitOpen,
    #[error("cluster limit reached")]
    Overflow,
    #[error("refused by the authorization policy")]
    Unauthorized,
    /// The client went away (closed its connection, reset its stream, broke off its
    /// body) before its response began. Nothing reaches the client; the request is
    /// recorded with status 499, as nginx does.
    #[error("the client closed the request")]
    ClientClosed,
    /// The upstream answered `101 Switching Protocols` for a protocol the proxy did not
    /// ask it to switch to.
    #[error("the upstream switched to a protocol that was not requested")]
    UnrequestedUpgrade,
    /// An HTTP/2 extended CONNECT (RFC 8441) asked for a `:protocol` its route's
    /// `upgrades` does not allow (`h2c` never is): no tunnel is opened.
    #[error("the route does not allow an upgrade to this protocol")]
    UpgradeNotAllowed,
    /// An HTTP/2 extended CONNECT could not become a tunnel: the upstream did not switch
    /// (or its WebSocket handshake answer was wrong), or the cluster cannot carry one.
    #[error("the upstream did not switch protocols")]
    UpgradeFailed,
}

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::MalformedRequest => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::HeaderTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::ConnectFailed | ProxyError::UpstreamReset => StatusCode::BAD_GATEWAY,
            ProxyError::NoHealthyEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::FaultAbort {
                kind: AbortKind::Http(status),
            } => status,
            // gRPC errors travel as HTTP 200 with grpc-status (http/response.rs).
            ProxyError::FaultAbort {
                kind: AbortKind::Grpc(_),
            } => StatusCode::OK,
            ProxyError::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Overflow => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unauthorized => StatusCode::FORBIDDEN,
            ProxyError::ClientClosed => CLIENT_CLOSED_REQUEST,
            ProxyError::UnrequestedUpgrade => StatusCode::BAD_GATEWAY,
            ProxyError::UpgradeNotAllowed => StatusCode::FORBIDDEN,
            ProxyError::UpgradeFailed => StatusCode::BAD_GATEWAY,
        }
    }

    /// The value of the `x-meshwork-error` header (stable: clients and tests match on it).
    pub fn reason(self) -> &'static str {
        match self {
            ProxyError::MalformedRequest => "malformed-request",
            ProxyError::NoRoute => "no-route",
            ProxyError::HeaderTimeout => "header-timeout",
            ProxyError::BodyTooLarge => "body-too-large",
            ProxyError::HeaderTooLarge => "header-too-large",
            ProxyError::ConnectFailed => "connect-failed",
            ProxyError::UpstreamReset => "upstream-reset",
            ProxyError::NoHealthyEndpoint => "no-healthy-endpoint",
            ProxyError::UpstreamTimeout => "upstream-timeout",
            ProxyError::RateLimited { .. } => "rate-limited",
            ProxyError::FaultAbort { .. } => "fault-abort",
            ProxyError::CircuitOpen => "circuit-open",
            ProxyError::Overflow => "overflow",
            ProxyError::Unauthorized => "unauthorized",
            ProxyError::ClientClosed => "client-closed",
            ProxyError::UnrequestedUpgrade => "unrequested-upgrade",
            ProxyError::UpgradeNotAllowed => "upgrade-not-allowed",
            ProxyError::UpgradeFailed => "upgrade-failed",
        }
    }

    /// Which side caused it: only [`Blame::Upstream`] errors say anything about an
    /// endpoint's health (its circuit breaker, its error metrics).
    pub fn blame(self) -> Blame {
        match self {
            ProxyError::MalformedRequest
            | ProxyError::HeaderTimeout
            | ProxyError::BodyTooLarge
            | ProxyError::HeaderTooLarge
            | ProxyError::ClientClosed => Blame::Downstream,
            ProxyError::ConnectFailed
            | ProxyError::UpstreamReset
            | ProxyError::UpstreamTimeout
            | ProxyError::UnrequestedUpgrade
            | ProxyError::UpgradeFailed => Blame::Upstream,
            ProxyError::NoRoute
            | ProxyError::NoHealthyEndpoint
            | ProxyError::RateLimited { .. }
            | ProxyError::FaultAbort { .. }
            | ProxyError::CircuitOpen
            | ProxyError::Overflow
            | ProxyError::Unauthorized
            | ProxyError::UpgradeNotAllowed => Blame::Local,
        }
    }
}

/// Who caused a request to fail, as pingora's errors carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The client: a malformed or oversized request, a slow head, a client gone away.
    Downstream,
    /// The endpoint: it refused, reset, timed out or broke the protocol.
    Upstream,
    /// The proxy's own decision: no route, a policy, a limit, an open breaker.
    Local,
}

/// Status 499, "client closed request": nginx's record of a request whose client went
/// away before the response; never sent (there is nobody to send it to).
pub const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a valid status code"),
};

/// The header naming why the proxy answered itself.
pub const ERROR_HEADER: http::HeaderName = http::HeaderName::from_static("x-meshwork-error");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_status_of_the_contract() {
        let all = [
            ProxyError::MalformedRequest,
            ProxyError::NoRoute,
            ProxyError::HeaderTimeout,
            ProxyError::BodyTooLarge,
            ProxyError::HeaderTooLarge,
            ProxyError::ConnectFailed,
            ProxyError::UpstreamReset,
            ProxyError::NoHealthyEndpoint,
            ProxyError::UpstreamTimeout,
            ProxyError::RateLimited {
                retry_after_secs: 1,
            },
            ProxyError::FaultAbort {
                kind: AbortKind::Http(StatusCode::SERVICE_UNAVAILABLE),
            },
            ProxyError::CircuitOpen,
            ProxyError::Overflow,
            ProxyError::Unauthorized,
            ProxyError::ClientClosed,
            ProxyError::UnrequestedUpgrade,
            ProxyError::UpgradeNotAllowed,
            ProxyError::UpgradeFailed,
        ];
        for e in all {
            let s = e.status().as_u16();
            // 499 is only recorded (metrics, access log), never sent.
            assert!(
                [400, 403, 404, 408, 413, 429, 431, 499, 502, 503, 504].contains(&s),
                "{e:?} -> {s}"
            );
            assert!(http::HeaderValue::from_str(e.reason()).is_ok());
        }
    }
}
