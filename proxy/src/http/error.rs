//! Errors the proxy answers for itself: each maps to one status code and one
//! `x-meshwork-error` reason, so clients, logs and metrics all say the same thing.

use http::StatusCode;

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
    #[error("rate limited")]
    RateLimited,
    #[error("fault injected")]
    FaultAbort,
    #[error("every endpoint's circuit breaker is open")]
    CircuitOpen,
    #[error("cluster limit reached")]
    Overflow,
    #[error("refused by the authorization policy")]
    Unauthorized,
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
            ProxyError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            // The configured abort status is used where one is set (see layers/fault.rs).
            ProxyError::FaultAbort => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Overflow => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unauthorized => StatusCode::FORBIDDEN,
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
            ProxyError::RateLimited => "rate-limited",
            ProxyError::FaultAbort => "fault-abort",
            ProxyError::CircuitOpen => "circuit-open",
            ProxyError::Overflow => "overflow",
            ProxyError::Unauthorized => "unauthorized",
        }
    }
}

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
            ProxyError::RateLimited,
            ProxyError::FaultAbort,
            ProxyError::CircuitOpen,
            ProxyError::Overflow,
            ProxyError::Unauthorized,
        ];
        for e in all {
            let s = e.status().as_u16();
            assert!(
                [400, 403, 404, 408, 413, 429, 431, 502, 503, 504].contains(&s),
                "{e:?} -> {s}"
            );
            assert!(http::HeaderValue::from_str(e.reason()).is_ok());
        }
    }
}
