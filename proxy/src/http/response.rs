//! Responses the proxy writes itself.

use http::{HeaderValue, Response, StatusCode, header};

use super::{ERROR_HEADER, ProxyError, ResponseBody};

/// The response for an error the proxy answers itself, naming the reason.
pub fn error_response(error: ProxyError) -> Response<ResponseBody> {
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

/// A plain response with a body (direct responses, admin).
pub fn text_response(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut rsp = Response::new(ResponseBody::full(body));
    *rsp.status_mut() = status;
    rsp
}
