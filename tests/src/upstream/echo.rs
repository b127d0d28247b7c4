//! The echo of a request, as upstreams send it back in a JSON body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an upstream saw of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The name of the upstream that answered.
    pub upstream: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The `:authority` (HTTP/2) or else the `Host` header.
    pub authority: Option<String>,
    /// Every header, lower-case name to its values in order.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Echo {
    /// The request as seen by the upstream.
    pub fn of<B>(upstream: &str, req: &http::Request<B>) -> Self {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in req.headers() {
            headers
                .entry(name.as_str().to_owned())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| headers.get("host").and_then(|v| v.first().cloned()));
        Echo {
            upstream: upstream.to_owned(),
            method: req.method().as_str().to_owned(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            version: format!("{:?}", req.version()),
            authority,
            headers,
        }
    }

    /// Every value of header `name` joined with `, ` (as a list-valued header reads).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|values| values.join(", "))
    }

    /// Whether header `name` reached the upstream.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(&name.to_ascii_lowercase())
    }

    /// The host the upstream was asked for, without a port.
    pub fn host(&self) -> Option<String> {
        self.authority.as_ref().map(|a| match a.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_owned(),
            _ => a.clone(),
        })
    }
}
