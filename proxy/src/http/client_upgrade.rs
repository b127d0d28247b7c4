//! The client's side of a tunnel, once its connection switched protocols: from
//! meshwork's HTTP/1 server (the connection itself, after the `101` was written, with
//! any bytes the client sent early) or its HTTP/2 server (an extended CONNECT's stream,
//! once answered 2xx).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::rewind::Rewind;

/// A transport a tunnel can run over.
pub trait TunnelIo: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> TunnelIo for T {}

/// Where the client's side of a tunnel will come from, in a request's extensions
/// (which want it cloneable: the clones share it, and the first to ask gets it).
#[derive(Debug, Clone)]
pub struct ClientUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl ClientUpgrade {
    /// A pair: the server connection's sending side, and the request's extension.
    pub fn pair() -> (oneshot::Sender<Upgraded>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, ClientUpgrade(Arc::new(Mutex::new(Some(rx)))))
    }

    /// The client's side, once the switch happened.
    ///
    /// # Errors
    /// The connection ended (or its response was not a switch) before handing it over.
    pub async fn into_io(self) -> Result<Box<dyn TunnelIo>, String> {
        let rx = self.0.lock().ok().and_then(|mut slot| slot.take());
        match rx {
            Some(rx) => match rx.await {
                Ok(upgraded) => Ok(Box::new(upgraded)),
                Err(_) => Err("the client connection ended before switching".into()),
            },
            None => Err("the connection was taken over already".into()),
        }
    }
}

/// An HTTP/1 connection handed over to a tunnel: the bytes read past the request head
/// first, then the transport.
pub type Upgraded = Rewind<Box<dyn TunnelIo>>;
