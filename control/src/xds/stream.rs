//! What every ADS stream does, whatever its flavour ([`Flavor`]: State of the World or
//! Delta): it starts from the node of its first request, takes Envoy's requests and the
//! catalog's changes in turn, and is listed in `/status` until it ends.

use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::node::{EnvoyNode, StreamContext};
use super::snapshot::EnvoySnapshot;
use super::status::Protocol;
use super::types::ResourceType;

/// Responses queued per stream before the stream task waits for Envoy to read.
const RESPONSE_QUEUE: usize = 8;

pub(crate) type Sender<T> = mpsc::Sender<Result<T, Status>>;

/// The per-type rules of one ADS flavour.
pub(crate) trait Flavor: Default + Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const PROTOCOL: Protocol;

    fn node_of(request: &Self::Request) -> Option<&Node>;

    /// Takes one request: ACK/NACK, subscription changes, and the answer they call for.
    fn handle(
        &mut self,
        stream: &mut Stream,
        request: Self::Request,
        tx: &Sender<Self::Response>,
    ) -> impl Future<Output = Result<(), ()>> + Send;

    /// Sends `ty` if what Envoy would hold of it differs from what it was sent (or
    /// always, even empty).
    fn push(
        &mut self,
        stream: &mut Stream,
        ty: ResourceType,
        tx: &Sender<Self::Response>,
        always: bool,
    ) -> impl Future<Output = Result<(), ()>> + Send;

    /// Whether Envoy asked for `ty` on this stream.
    fn subscribed(&self, ty: ResourceType) -> bool;
}

/// What every stream holds: who it serves, what that node is served now, its nonces.
#[derive(Debug)]
pub(crate) struct Stream {
    pub ctx: StreamContext,
    pub node: EnvoyNode,
    pub snapshot: Arc<EnvoySnapshot>,
    nonce: u64,
}

impl Stream {
    /// A nonce never used before on this stream.
    pub fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }

    /// Takes the catalog's current reading for this node.
    fn refresh(&mut self) {
        self.snapshot = self.ctx.snapshot(&self.node);
        self.ctx.show_refused(&self.snapshot);
    }
}

/// Answers an ADS call: waits for the first request (it names the node), then runs the
/// stream in its own task.
///
/// # Errors
/// A stream that ends before its first request, or a first request without a valid node.
pub(crate) async fn open<F: Flavor>(
    ctx: StreamContext,
    mut requests: Streaming<F::Request>,
) -> Result<Response<ReceiverStream<Result<F::Response, Status>>>, Status> {
    let first = requests
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("the stream ended before the first request"))?;
    let node = EnvoyNode::from_first(F::node_of(&first))?;
    ctx.opened(&node, F::PROTOCOL);
    let stream = Stream {
        snapshot: ctx.snapshot(&node),
        ctx,
        node,
        nonce: 0,
    };
    stream.ctx.show_refused(&stream.snapshot);
    let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
    tokio::spawn(run(F::default(), stream, first, requests, tx));
    Ok(Response::new(ReceiverStream::new(rx)))
}

/// The request in a call, without its metadata.
pub(crate) fn into_streaming<T>(request: Request<Streaming<T>>) -> Streaming<T> {
    request.into_inner()
}

async fn run<F: Flavor>(
    mut flavor: F,
    mut stream: Stream,
    first: F::Request,
    mut requests: Streaming<F::Request>,
    tx: Sender<F::Response>,
) {
    let mut catalog = stream.ctx.control.catalog.subscribe();
    catalog.mark_unchanged();
    let mut next = Some(first);
    loop {
        if let Some(request) = next.take() {
            if flavor.handle(&mut stream, request, &tx).await.is_err() {
                break;
            }
        }
        tokio::select! {
            changed = catalog.changed() => {
                if changed.is_err() {
                    break;
                }
                stream.refresh();
                if push_changed(&mut flavor, &mut stream, &tx).await.is_err() {
                    break;
                }
            }
            message = requests.message() => match message {
                Ok(Some(request)) => next = Some(request),
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(node = %stream.node.id, %status, "stream ended");
                    break;
                }
            },
            () = tx.closed() => break,
        }
    }
    stream.ctx.closed(&stream.node);
}

/// Sends what changed in `stream.snapshot`, type by type in push order.
async fn push_changed<F: Flavor>(
    flavor: &mut F,
    stream: &mut Stream,
    tx: &Sender<F::Response>,
) -> Result<(), ()> {
    for ty in ResourceType::PUSH_ORDER {
        if flavor.subscribed(ty) {
            flavor.push(stream, ty, tx, false).await?;
        }
    }
    Ok(())
}
