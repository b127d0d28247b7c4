//! Responses the proxy writes itself.

use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use super::{ERROR_HEADER, ProxyError, ResponseBody};

/// `grpc-status`, as a name made once: a lookup by `&str` parses the name each time.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The response for an error the proxy answers itself, naming the reason.
pub fn error_response(error: ProxyError) -> Response<ResponseBody> {
    if let ProxyError::FaultAbort {
        kind: meshwork_config::model::AbortKind::Grpc(code),
    } = error
    {
        return grpc_trailers_only(error, code);
    }
    let mut rsp = Response::new(ResponseBody::full(format!("{error}\n")));
    *rsp.status_mut() = error.status();
    let h = rsp.headers_mut();
    h.insert(ERROR_HEADER, HeaderValue::from_static(error.reason()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let ProxyError::RateLimited { retry_after_secs } = error {
        h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    }
    rsp
}

/// A gRPC error as gRPC clients read one: HTTP 200, a trailers-only response whose
/// headers carry `grpc-status`.
fn grpc_trailers_only(error: ProxyError, code: u16) -> Response<ResponseBody> {
    let mut rsp = Response::new(ResponseBody::empty());
    let h = rsp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(GRPC_STATUS, HeaderValue::from(code));
    h.insert("grpc-message", HeaderValue::from_static("fault%20injected"));
    h.insert(ERROR_HEADER, HeaderValue::from_static(error.reason()));
    rsp
}

/// A plain response with a body (direct responses, admin).
pub fn text_response(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut rsp = Response::new(ResponseBody::full(body));
    *rsp.status_mut() = status;
    rsp
}
