//! HTTP clients (hyper-util's pooled client) speaking HTTP/1.1 or h2c with prior
//! knowledge, and the collected [`Reply`] tests assert on.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::{BoxError, RequestBody, empty, full};
use crate::upstream::Echo;

/// How long a request may take, head and body, unless a test says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The header in which the proxy says why it produced an error response.
pub const ERROR_HEADER: &str = "x-meshwork-error";

/// A pooled HTTP client: HTTP/1.1 or h2c (prior knowledge).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, RequestBody>,
    protocol: &'static str,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl HttpClient {
    /// HTTP/1.1 with keep-alive connection pooling.
    pub fn h1() -> Self {
        Self::build(false, usize::MAX, "http1")
    }

    /// HTTP/1.1 opening a new connection for every request.
    pub fn h1_unpooled() -> Self {
        Self::build(false, 0, "http1 (unpooled)")
    }

    /// HTTP/2 in cleartext with prior knowledge (no upgrade dance).
    pub fn h2c() -> Self {
        Self::build(true, usize::MAX, "h2c")
    }

    fn build(http2_only: bool, max_idle: usize, protocol: &'static str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = Client::builder(TokioExecutor::new())
            .http2_only(http2_only)
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Self { inner, protocol }
    }

    /// `GET url`, collected.
    ///
    /// # Panics
    /// When the request fails or takes longer than [`DEFAULT_REQUEST_TIMEOUT`].
    pub async fn get(&self, url: &str) -> Reply {
        self.request(Method::GET, url).send().await
    }

    /// A request to build further and send.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            inner: Request::builder().method(method).uri(url),
            body: None,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sends `req` and returns as soon as the response head arrives.
    ///
    /// # Errors
    /// Connection and protocol errors from hyper.
    pub async fn send_head(
        &self,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, BoxError> {
        self.inner.request(req).await.map_err(Into::into)
    }
}

/// A request being built; see [`HttpClient::request`].
#[derive(Debug)]
pub struct RequestBuilder {
    client: HttpClient,
    inner: http::request::Builder,
    body: Option<RequestBody>,
    timeout: Duration,
}

impl RequestBuilder {
    /// Adds a header (repeatable).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner = self.inner.header(name, value);
        self
    }

    /// Sets the body to these bytes.
    pub fn body(mut self, bytes: impl Into<Bytes>) -> Self {
        self.body = Some(full(bytes));
        self
    }

    /// Sets a streaming body.
    pub fn body_stream(mut self, body: RequestBody) -> Self {
        self.body = Some(body);
        self
    }

    /// Sets the HTTP version of the request (e.g. HTTP/1.0).
    pub fn version(mut self, version: Version) -> Self {
        self.inner = self.inner.version(version);
        self
    }

    /// Replaces [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The request, for [`HttpClient::send_head`].
    pub fn build(self) -> Request<RequestBody> {
        self.inner
            .body(self.body.unwrap_or_else(empty))
            .expect("a well-formed request")
    }

    /// Sends the request and collects the response.
    ///
    /// # Panics
    /// When the request fails or times out.
    pub async fn send(self) -> Reply {
        let what = format!("{:?} {:?}", self.inner.method_ref(), self.inner.uri_ref());
        match self.try_send().await {
            Ok(reply) => reply,
            Err(e) => panic!("{what} failed: {e}"),
        }
    }

    /// Sends the request and collects the response.
    ///
    /// # Errors
    /// Connection, protocol and body errors, or the timeout, as text.
    pub async fn try_send(self) -> Result<Reply, String> {
        let timeout = self.timeout;
        let client = self.client.clone();
        let request = self.build();
        let exchange = async move {
            let response = client
                .send_head(request)
                .await
                .map_err(|e| error_chain(&*e))?;
            Reply::collect(response).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("timed out after {timeout:?}"))?
    }
}

/// A whole response: status, headers, body and trailers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// Reads the whole response.
    ///
    /// # Errors
    /// A body error, as text.
    pub async fn collect(response: Response<Incoming>) -> Result<Reply, String> {
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.map_err(|e| error_chain(&e))?;
        let trailers = collected.trailers().cloned();
        Ok(Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    }

    /// The first value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The proxy's `x-meshwork-error` header.
    pub fn error_kind(&self) -> Option<&str> {
        self.header(ERROR_HEADER)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }

    /// The body as an upstream's echo of the request.
    ///
    /// # Panics
    /// When the status is not 200 or the body is not an echo.
    pub fn echo(&self) -> Echo {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "expected an upstream echo, got {} {:?} {}",
            self.status,
            self.headers,
            self.text()
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not an echo ({e}): {}", self.text()))
    }

    /// Which upstream answered (its `x-upstream` header).
    pub fn upstream(&self) -> Option<&str> {
        self.header("x-upstream")
    }
}

/// An error and its sources, on one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
