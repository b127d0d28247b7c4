//! The client's side of a tunnel, once its connection switched protocols: from hyper's
//! HTTP/2 server (an extended CONNECT's stream) or from meshwork's HTTP/1 server (the
//! connection itself, after the `101` was written, with any bytes the client sent early).

use std::sync::{Arc, Mutex};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::rewind::Rewind;

/// A transport a tunnel can run over.
pub trait TunnelIo: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> TunnelIo for T {}

/// Where the client's side of a tunnel will come from, in a request's extensions
/// (which want it cloneable: the clones share it, and the first to ask gets it).
#[derive(Debug, Clone)]
pub enum ClientUpgrade {
    Hyper(OnUpgrade),
    Http1(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>),
}

impl ClientUpgrade {
    /// A pair: the HTTP/1 connection's sending side, and the request's extension.
    pub fn http1() -> (oneshot::Sender<Upgraded>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, ClientUpgrade::Http1(Arc::new(Mutex::new(Some(rx)))))
    }

    /// The client's side, once the switch happened.
    ///
    /// # Errors
    /// The connection ended (or its response was not a switch) before handing it over.
    pub async fn into_io(self) -> Result<Box<dyn TunnelIo>, String> {
        match self {
            ClientUpgrade::Hyper(on) => match on.await {
                Ok(upgraded) => Ok(Box::new(TokioIo::new(upgraded))),
                Err(error) => Err(error.to_string()),
            },
            ClientUpgrade::Http1(shared) => {
                let rx = shared.lock().ok().and_then(|mut slot| slot.take());
                match rx {
                    Some(rx) => match rx.await {
                        Ok(upgraded) => Ok(Box::new(upgraded)),
                        Err(_) => Err("the client connection ended before switching".into()),
                    },
                    None => Err("the connection was taken over already".into()),
                }
            }
        }
    }
}

/// An HTTP/1 connection handed over to a tunnel: the bytes read past the request head
/// first, then the transport.
pub type Upgraded = Rewind<Box<dyn TunnelIo>>;
