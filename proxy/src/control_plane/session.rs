//! One discovery stream: hello, then for each response apply and ACK or NACK.

use std::sync::Arc;
use std::time::Duration;

use meshwork_config::discovery::discovery_client::DiscoveryClient;
use meshwork_config::discovery::{DiscoveryRequest, Node, Rejection as WireRejection, kind_of};
use meshwork_config::resource::Key;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::tls::ControlPlaneTls;
use super::{Link, Update};
use crate::dataplane::ApplyConfig;
use crate::readiness::Readiness;

/// How long connecting to the control plane may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 pings keep the stream's connection checked while nothing changes, so a control
/// plane that vanished without closing (host down) is noticed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("invalid control plane address: {0}")]
    Address(String),
    #[error("cannot connect: {}", chain(.0))]
    Connect(#[source] tonic::transport::Error),
    #[error("stream failed: {}", status_text(.0))]
    Stream(#[from] tonic::Status),
    #[error("the proxy stopped")]
    Stopped,
}

/// An error and its causes, `a: b: c` (tonic's transport error alone says only
/// "transport error").
fn chain(error: &dyn std::error::Error) -> String {
    with_causes(error.to_string(), error.source())
}

/// A status's message and the errors under it (`Status`'s own `Display` prints its
/// source with `Debug`).
fn status_text(status: &tonic::Status) -> String {
    with_causes(
        status.message().to_string(),
        std::error::Error::source(status),
    )
}

/// `first: cause: cause...`, leaving out a cause that only repeats the one above it
/// (layers often do: "transport error: transport error").
fn with_causes(first: String, mut source: Option<&dyn std::error::Error>) -> String {
    let mut out = first.clone();
    let mut last = first;
    while let Some(cause) = source {
        let text = cause.to_string();
        if !last.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = cause.source();
    }
    out
}

/// A channel to the control plane at `link`'s address (over TLS when `tls` is given).
///
/// # Errors
/// A malformed address, or a server that cannot be reached.
pub(crate) async fn connect(
    link: &Link,
    tls: Option<&Arc<ControlPlaneTls>>,
) -> Result<tonic::transport::Channel, SessionError> {
    let endpoint = tonic::transport::Endpoint::from_shared(link.address.clone())
        .map_err(|e| SessionError::Address(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .tcp_nodelay(true);
    match tls {
        Some(tls) => {
            let tls = tls.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |uri| tls.clone().dial(uri)))
                .await
        }
        None => endpoint.connect().await,
    }
    .map_err(SessionError::Connect)
}

/// Runs one stream until it ends.
///
/// # Errors
/// When the control plane cannot be reached or the stream fails.
pub async fn run(
    dataplane: &Arc<dyn ApplyConfig>,
    readiness: &Readiness,
    link: &Arc<Link>,
    node: Node,
    tls: Option<&Arc<ControlPlaneTls>>,
) -> Result<(), SessionError> {
    let channel = connect(link, tls).await?;
    let mut client = DiscoveryClient::new(channel)
        .max_decoding_message_size(crate::control_plane::MAX_RESPONSE_BYTES);
    let (requests, rx) = mpsc::channel::<DiscoveryRequest>(4);
    let hello = DiscoveryRequest {
        node: Some(node),
        known: link.known(),
        ..DiscoveryRequest::default()
    };
    requests
        .send(hello)
        .await
        .map_err(|_| SessionError::Stopped)?;
    let mut responses = client.stream(ReceiverStream::new(rx)).await?.into_inner();
    link.set_connected(true);
    tracing::info!(address = %link.address, "subscribed to the control plane");
    while let Some(response) = responses.message().await? {
        let mut update = Update {
            version: response.version.clone(),
            ..Update::default()
        };
        for wire in response.resources {
            let source = wire.source.clone();
            let (kind, name, version) = (wire.kind, wire.name.clone(), wire.version.clone());
            match wire.into_resource() {
                Ok(resource) => update.changed.push(resource),
                Err(error) => update.malformed.push(WireRejection {
                    kind,
                    name,
                    version,
                    error,
                    source,
                }),
            }
        }
        update.removed = response
            .removed
            .iter()
            .filter_map(|r| Some(Key::new(kind_of(r.kind)?, r.name.clone())))
            .collect();
        let (d, l) = (dataplane.clone(), link.clone());
        // Validating and binding is blocking work: keep it off the workers.
        let rejected = tokio::task::spawn_blocking(move || l.apply(d.as_ref(), update))
            .await
            .map_err(|_| SessionError::Stopped)?;
        readiness.control_plane_synced();
        let answer = DiscoveryRequest {
            response_nonce: response.nonce,
            version: response.version,
            rejected,
            ..DiscoveryRequest::default()
        };
        requests
            .send(answer)
            .await
            .map_err(|_| SessionError::Stopped)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        under: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Option<Box<Layer>> {
        texts
            .iter()
            .rev()
            .fold(None, |under, text| Some(Box::new(Layer { text, under })))
    }

    #[test]
    fn causes_are_listed_once() {
        let error = layers(&[
            "transport error",
            "transport error",
            "handshake failed (unknown-ca)",
            "handshake failed (unknown-ca)",
            "invalid peer certificate: UnknownIssuer",
        ])
        .expect("layers");
        assert_eq!(
            chain(error.as_ref()),
            "transport error: handshake failed (unknown-ca): invalid peer certificate: UnknownIssuer"
        );
    }
}
