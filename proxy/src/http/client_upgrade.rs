//! The client's side of a tunnel, once its connection switched protocols: from hyper's
//! HTTP/2 server (an extended CONNECT's stream) or from meshwork's HTTP/1 server (the
//! connection itself, after the `101` was written, with any bytes the client sent early).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// A transport a tunnel can run over.
pub trait TunnelIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> TunnelIo for T {}

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
pub struct Upgraded {
    io: Box<dyn TunnelIo>,
    early: Bytes,
}

impl Upgraded {
    pub fn new(io: Box<dyn TunnelIo>, early: Bytes) -> Self {
        Self { io, early }
    }
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("early", &self.early.len())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.early.has_remaining() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
