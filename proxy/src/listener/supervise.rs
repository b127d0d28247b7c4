//! Supervises one downstream HTTP connection while it is served (HTTP/1 by meshwork's
//! own server connection, HTTP/2 by hyper's): the head and idle
//! timeouts, graceful drain, and a bounded close after any graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpStream;

use super::activity::{ConnActivity, ConnProtocol};
use super::drain_watch::DrainWatch;
use super::http::HttpConnSettings;
use crate::http::ProxyError;

/// Either kind of server connection, as far as supervision is concerned.
pub(super) trait GracefulConnection: Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;

    fn graceful_shutdown(self: Pin<&mut Self>);
}

const HEADER_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\nx-meshwork-error: header-timeout\r\ncontent-length: 0\r\n\r\n";

/// How long a connection has to close by itself after a graceful shutdown began. An
/// HTTP/2 shutdown sends GOAWAY and a PING, and sends the final GOAWAY (naming the last
/// stream processed) only when the PING is acknowledged: a client that never answers
/// would otherwise keep the connection open for good.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Where a connection is in closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Draining or idle: requests in flight and a head being received (within its own
    /// timeout) finish first.
    Graceful {
        grace_until: tokio::time::Instant,
    },
    /// A head was not received in time (HTTP/2): the GOAWAY's grace, then closed with
    /// whatever is in flight, as the blocked connection can no longer carry requests.
    HeadTimedOut {
        grace_until: tokio::time::Instant,
    },
}

impl Closing {
    /// When the connection is closed regardless, if it is.
    fn deadline(self, activity: &ConnActivity) -> Option<tokio::time::Instant> {
        match self {
            Closing::Open => None,
            Closing::Graceful { grace_until } => {
                (activity.in_flight() == 0 && !activity.receiving_head()).then_some(grace_until)
            }
            Closing::HeadTimedOut { grace_until } => Some(grace_until),
        }
    }
}

/// How long an HTTP/1 keep-alive connection stays idle before it is parked (its server
/// connection and buffers dropped, see `http1` and `park`). A connection busy with
/// requests is never parked: parking and waking cost a fresh server connection and
/// buffers, which a wait this long makes negligible, while connections idle for longer
/// hold no buffers.
pub(super) const PARK_AFTER: Duration = Duration::from_millis(100);

/// How a supervised connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// The server connection finished without an error (the client closed between
    /// requests, or the connection was parked).
    Clean,
    /// An error, a timeout, or the shutdown grace ran out.
    Closed,
}

/// Drives the connection until it ends, enforcing the head and idle timeouts and
/// starting a graceful shutdown on drain.
///
/// One timer per connection, armed lazily: it is moved only when a deadline comes
/// sooner than the one it is set for. A later deadline (the next request's head, the
/// next idle period) leaves it alone; when it fires early, the deadlines are read again
/// and it is set for the next one. A connection busy with requests so costs no timer
/// work per request, only a wake-up per `PARK_AFTER` at most. The deadlines are read
/// after every poll of the server connection, where an HTTP/1 connection's activity changes (its socket
/// reads, its requests' starts and their responses' ends all happen inside that poll):
/// no notification is needed for it. An HTTP/2 connection's responses end in their
/// streams' tasks, which wake this one through `activity.changed()`.
pub(super) async fn supervise<C: GracefulConnection + ?Sized>(
    mut conn: Pin<&mut C>,
    activity: &ConnActivity,
    settings: &HttpConnSettings,
    http1_stream: Option<&TcpStream>,
    client_addr: SocketAddr,
) -> Ended {
    let limits = &settings.limits;
    let mut drained = std::pin::pin!(DrainWatch::new(&settings.drain));
    let mut changed = std::pin::pin!(
        activity
            .changes_from_other_tasks()
            .then(|| activity.changed())
    );
    // Never polled before it is first set for a deadline.
    let mut timer = std::pin::pin!(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed: Option<tokio::time::Instant> = None;
    let mut closing = Closing::Open;
    std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(match result {
                    Ok(()) => Ended::Clean,
                    Err(error) => {
                        tracing::debug!(%client_addr, %error, "connection ended with an error");
                        Ended::Closed
                    }
                });
            }
            let open = closing == Closing::Open;
            if open && drained.as_mut().poll_drained(cx) {
                closing = shut_down(conn.as_mut(), false);
                continue;
            }
            if let Some(mut notified) = changed.as_mut().as_pin_mut() {
                // Consumed and registered again: the deadlines below are read afresh.
                while notified.as_mut().poll(cx).is_ready() {
                    notified.set(activity.changed());
                }
            }
            let head_timer = !matches!(closing, Closing::HeadTimedOut { .. });
            let deadlines = [
                activity
                    .head_deadline(limits.header_read_timeout)
                    .filter(|_| head_timer),
                activity.idle_deadline(limits.idle_timeout).filter(|_| open),
                activity.park_deadline(PARK_AFTER).filter(|_| open),
                closing.deadline(activity),
            ];
            let Some(next) = deadlines.into_iter().flatten().min() else {
                return Poll::Pending;
            };
            if armed.is_none_or(|at| next < at) {
                timer.as_mut().reset(next);
                armed = Some(next);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            armed = None;
            // The timer fired: for a deadline that passed, or one that has since moved
            // later (then the next turn sets it again).
            let now = tokio::time::Instant::now();
            if closing.deadline(activity).is_some_and(|d| d <= now) {
                tracing::debug!(%client_addr, "connection still open after its shutdown grace; closing");
                return Poll::Ready(Ended::Closed);
            }
            if head_timer
                && activity
                    .head_deadline(limits.header_read_timeout)
                    .is_some_and(|d| d <= now)
            {
                settings.metrics.local_response(ProxyError::HeaderTimeout);
                if activity.protocol() == ConnProtocol::Http2 {
                    tracing::debug!(%client_addr, "HTTP/2 request head not received in time; GOAWAY");
                    closing = shut_down(conn.as_mut(), true);
                    continue;
                }
                tracing::debug!(%client_addr, "request head not received in time; answering 408");
                if let Some(stream) = http1_stream {
                    answer_header_timeout(stream);
                }
                return Poll::Ready(Ended::Closed);
            }
            if open
                && activity
                    .idle_deadline(limits.idle_timeout)
                    .is_some_and(|d| d <= now)
            {
                tracing::debug!(%client_addr, "idle timeout; closing connection");
                closing = shut_down(conn.as_mut(), false);
            } else if open
                && activity
                    .park_deadline(PARK_AFTER)
                    .is_some_and(|d| d <= now)
            {
                // The next turn polls the server connection, which then parks itself if it
                // is between requests with nothing buffered (see `http1`).
                activity.set_park_due(true);
            }
        }
    })
    .await
}

/// Answers 408 to an HTTP/1 client whose request head did not arrive in time and closes
/// the socket both ways: the connection can carry no request after a partial head.
pub(super) fn answer_header_timeout(stream: &TcpStream) {
    let _ = stream.try_write(HEADER_TIMEOUT_RESPONSE);
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
}

/// Starts a graceful shutdown (HTTP/2: GOAWAY) and says how the connection closes now.
fn shut_down<C: GracefulConnection + ?Sized>(conn: Pin<&mut C>, head_timed_out: bool) -> Closing {
    conn.graceful_shutdown();
    let grace_until = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    if head_timed_out {
        Closing::HeadTimedOut { grace_until }
    } else {
        Closing::Graceful { grace_until }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::*;
    use crate::listener::activity::InFlightGuard;
    use crate::listener::header_blocks::BlockEvent;

    /// What the stand-in for a server connection does when it is next polled, as one
    /// would while serving: bytes read, a request started, its response ended, a header block.
    enum Step {
        Read,
        Start,
        Finish,
        Block(BlockEvent),
    }

    /// A connection that does what it is told when polled, and ends once shut down.
    struct Scripted {
        activity: Arc<ConnActivity>,
        steps: mpsc::UnboundedReceiver<Step>,
        request: Option<InFlightGuard>,
        shut_down: bool,
    }

    impl Future for Scripted {
        type Output = Result<(), hyper::Error>;

        fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
            let this = self.get_mut();
            if this.shut_down {
                return Poll::Ready(Ok(()));
            }
            while let Poll::Ready(step) = this.steps.poll_recv(cx) {
                match step {
                    None => return Poll::Ready(Ok(())),
                    Some(Step::Read) => this.activity.on_read(),
                    Some(Step::Start) => {
                        this.request = Some(InFlightGuard::new(this.activity.clone()));
                    }
                    Some(Step::Finish) => this.request = None,
                    Some(Step::Block(event)) => this.activity.on_header_block(event),
                }
            }
            Poll::Pending
        }
    }

    impl GracefulConnection for Scripted {
        type Error = hyper::Error;

        fn graceful_shutdown(self: Pin<&mut Self>) {
            self.get_mut().shut_down = true;
        }
    }

    fn settings(header_read_timeout: Duration, idle_timeout: Duration) -> HttpConnSettings {
        let snapshot =
            crate::layers::test_request::snapshot("route_tables:\n  edge: []\nclusters: []\n");
        let metrics = crate::metrics::Metrics::new();
        HttpConnSettings {
            listener: "edge".into(),
            limits: meshwork_config::model::ListenerLimits {
                header_read_timeout,
                idle_timeout,
                ..Default::default()
            },
            snapshots: Arc::new(arc_swap::ArcSwap::new(snapshot)),
            drain: tokio_util::sync::CancellationToken::new(),
            metrics: Arc::new(crate::metrics::handles::ListenerHandles::new(
                &metrics, "edge",
            )),
        }
    }

    /// Supervises a scripted connection of `protocol` in a task of its own.
    fn start(
        protocol: ConnProtocol,
        settings: HttpConnSettings,
    ) -> (
        Arc<ConnActivity>,
        mpsc::UnboundedSender<Step>,
        tokio::task::JoinHandle<(Ended, Instant)>,
    ) {
        let activity = Arc::new(ConnActivity::new(protocol, Instant::now()));
        let (steps, rx) = mpsc::unbounded_channel();
        let conn = Scripted {
            activity: activity.clone(),
            steps: rx,
            request: None,
            shut_down: false,
        };
        let supervised = activity.clone();
        let task = tokio::spawn(async move {
            let client = SocketAddr::from(([127, 0, 0, 1], 1));
            let mut conn = std::pin::pin!(conn);
            let ended = supervise(conn.as_mut(), &supervised, &settings, None, client).await;
            (ended, Instant::now())
        });
        (activity, steps, task)
    }

    /// Once due for parking (the stand-in does not park), the timer waits for
    /// the idle timeout; a head that starts meanwhile has a sooner deadline, which must
    /// be kept.
    #[tokio::test(start_paused = true)]
    async fn a_head_started_while_the_timer_waits_for_a_later_deadline_is_timed() {
        let header = Duration::from_secs(2);
        let (activity, steps, mut task) = start(
            ConnProtocol::Http1,
            settings(header, Duration::from_secs(300)),
        );
        let t0 = Instant::now();
        send(&steps, Step::Start).await;
        send(&steps, Step::Finish).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(activity.park_due(), "due for parking at 100 ms");
        send(&steps, Step::Read).await;
        let head_deadline = t0 + Duration::from_millis(200) + header;
        assert!(
            tokio::time::timeout_at(head_deadline - Duration::from_millis(5), &mut task)
                .await
                .is_err(),
            "closed before the head's deadline"
        );
        let (ended, at) = tokio::time::timeout_at(head_deadline + Duration::from_millis(5), task)
            .await
            .expect("closed at the head's deadline")
            .unwrap();
        assert_eq!(ended, Ended::Closed);
        assert!(at >= head_deadline, "closed at {:?}", at - t0);
    }

    /// Requests that come and go before the timer fires move no deadline sooner; the
    /// idle timeout still counts from the end of the last one.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_the_last_response_of_a_busy_connection() {
        let idle = Duration::from_millis(300);
        let (activity, steps, task) =
            start(ConnProtocol::Http1, settings(Duration::from_secs(2), idle));
        let t0 = Instant::now();
        for _ in 0..5 {
            send(&steps, Step::Read).await;
            send(&steps, Step::Start).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
            send(&steps, Step::Finish).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let last_response = t0 + Duration::from_millis(240);
        closed_gracefully_after(task, last_response + idle).await;
        assert!(activity.park_due(), "due for parking first, at 100 ms");
    }

    /// HTTP/2 responses end in their streams' tasks: the supervisor must hear of it to
    /// start the idle timeout.
    #[tokio::test(start_paused = true)]
    async fn an_http2_response_ending_in_another_task_starts_the_idle_timeout() {
        let idle = Duration::from_millis(300);
        let (activity, steps, task) =
            start(ConnProtocol::Http2, settings(Duration::from_secs(2), idle));
        let t0 = Instant::now();
        send(&steps, Step::Block(BlockEvent::Began)).await;
        send(&steps, Step::Block(BlockEvent::Ended)).await;
        // The stream's response, held elsewhere (hyper spawns a task per stream).
        let stream = InFlightGuard::new(activity.clone());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!task.is_finished(), "a request in flight is not idle");
        let ended_at = t0 + Duration::from_secs(10);
        tokio::spawn(async move { drop(stream) }).await.unwrap();
        closed_gracefully_after(task, ended_at + idle).await;
    }

    /// The drain token is polled once, then only read: a drain that begins after the
    /// connection has turned many times (requests served) must still wake it and shut
    /// it down gracefully, busy or not.
    #[tokio::test(start_paused = true)]
    async fn a_drain_beginning_after_many_turns_shuts_the_connection_down() {
        let settings = settings(Duration::from_secs(2), Duration::from_secs(300));
        let drain = settings.drain.clone();
        let (_activity, steps, task) = start(ConnProtocol::Http1, settings);
        for _ in 0..20 {
            send(&steps, Step::Read).await;
            send(&steps, Step::Start).await;
            send(&steps, Step::Finish).await;
        }
        assert!(!task.is_finished(), "open before the drain");
        let drained_at = Instant::now();
        drain.cancel();
        closed_gracefully_after(task, drained_at).await;
    }

    /// Waits for the supervised connection to be shut down gracefully (the idle
    /// timeout) at `deadline` (within the timer's millisecond).
    async fn closed_gracefully_after(
        task: tokio::task::JoinHandle<(Ended, Instant)>,
        deadline: Instant,
    ) {
        let (ended, at) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("closed when idle")
            .unwrap();
        assert_eq!(ended, Ended::Clean, "a graceful close");
        assert!(
            at >= deadline && at < deadline + Duration::from_millis(5),
            "closed {:?} after its deadline",
            at.saturating_duration_since(deadline)
        );
    }

    /// Sends `step` and lets the connection's task take it now (the clock is paused).
    async fn send(steps: &mpsc::UnboundedSender<Step>, step: Step) {
        steps.send(step).unwrap();
        tokio::task::yield_now().await;
    }
}
