//! An HTTP/1 keep-alive connection parked between requests: its server connection and
//! buffers are gone (`http1`), and the connection's task waits on the bare transport for the next
//! bytes, the idle timeout or the drain. The parked connections of a listener are
//! counted in `meshwork_downstream_connections_parked`.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use prometheus::IntGauge;

use super::activity::ConnActivity;
use super::http::HttpConnSettings;
use super::io::ConnIo;

/// How long closing a parked connection may wait to send its last bytes (a TLS
/// close_notify); an idle connection's send buffer is empty, so this is a bound only.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The most bytes a parked connection reads when it wakes: a typical request head,
/// read into the stack and handed to the server connection, which reads the rest itself.
const WAKE_READ_BYTES: usize = 2048;

/// Waits on a parked HTTP/1 connection: its next bytes (returned), or its end (`None`):
/// the client closing, the idle timeout, or drain (an idle connection closes at once).
pub(super) async fn wait<T>(
    stream: &mut T,
    activity: &ConnActivity,
    settings: &HttpConnSettings,
) -> Option<Bytes>
where
    T: tokio::io::AsyncRead + Unpin,
{
    let _parked = Counted::new(&settings.metrics.connections_parked);
    let idle_deadline = activity.idle_deadline(settings.limits.idle_timeout)?;
    let first_bytes = std::future::poll_fn(|cx| {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); WAKE_READ_BYTES];
        let mut read = tokio::io::ReadBuf::uninit(&mut buf);
        std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
        Poll::Ready(std::io::Result::Ok(Bytes::copy_from_slice(read.filled())))
    });
    let woken = tokio::select! {
        read = first_bytes => read.ok().filter(|bytes| !bytes.is_empty()),
        _ = settings.drain.cancelled() => None,
        _ = tokio::time::sleep_until(idle_deadline) => {
            tracing::debug!("idle timeout; closing connection");
            None
        }
    };
    activity.set_park_due(false);
    woken
}

/// Closes a parked connection as its server connection would have: FIN, and over TLS a
/// close_notify first.
pub(super) async fn close<T>(stream: T, activity: std::sync::Arc<ConnActivity>)
where
    ConnIo<T>: tokio::io::AsyncWrite + Unpin,
{
    let mut io = ConnIo::new(stream, activity);
    let _ = tokio::time::timeout(
        CLOSE_WRITE_TIMEOUT,
        tokio::io::AsyncWriteExt::shutdown(&mut io),
    )
    .await;
}

/// One parked connection in the gauge, for as long as it lives.
struct Counted<'a>(&'a IntGauge);

impl<'a> Counted<'a> {
    fn new(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
