//! HTTP/2 streams polled by their connection's own task instead of a task each.
//!
//! hyper hands every HTTP/2 stream to its executor; a spawning executor costs each
//! request a task (its allocation, scheduling) and wake-ups across tasks: the stream's
//! task wakes the connection's to send what it queued, the connection's wakes the
//! stream's when its response may go on. [`StreamExec`] only queues a stream, and
//! [`LocalStreams`] polls the queued streams together with the connection, as Envoy and
//! nginx keep a connection's streams on one worker. A connection's streams then share
//! one task, as HTTP/1 requests on a connection always do; connections still spread
//! over the workers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

use super::supervise::GracefulConnection;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many times one poll may go round the connection and its streams while they wake
/// each other (a response queued wakes the connection to send it; frames read wake
/// streams) before it yields to the other tasks of its worker.
const ROUNDS: usize = 8;

/// hyper's executor for one connection's streams (and the send halves of its extended
/// CONNECT tunnels): queues them for the connection's [`LocalStreams`].
#[derive(Clone, Debug)]
pub struct StreamExec {
    queue: Arc<Queue>,
}

#[derive(Default)]
struct Queue {
    streams: Mutex<Vec<StreamFuture>>,
    /// Saves taking the lock on the turns (most of them) when no stream came.
    pending: AtomicBool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        lock(&self.queue.streams).push(Box::pin(stream));
        self.queue.pending.store(true, Ordering::Release);
    }
}

/// The wake-ups of a connection and of its streams, told apart so that a poll drives
/// only what was woken; and, while the connection's task is polling them, kept from
/// waking the task again: that poll goes round until neither is woken.
#[derive(Debug)]
struct Wakeups {
    task: AtomicWaker,
    polling: AtomicBool,
    conn: AtomicBool,
    streams: AtomicBool,
}

impl Wakeups {
    fn wake(&self, which: &AtomicBool) {
        // SeqCst with the poller's store of `polling` and load of the flags: either it
        // sees this flag after it stopped polling, or this sees it stopped.
        which.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// The waker hyper's connection is polled with (its socket, its timers, its streams'
/// queued frames wake it).
#[derive(Debug)]
struct ConnWake(Arc<Wakeups>);

impl Wake for ConnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake(&self.0.conn);
    }
}

/// The waker the streams are polled with (their upstream responses and bodies, their
/// send capacity).
#[derive(Debug)]
struct StreamsWake(Arc<Wakeups>);

impl Wake for StreamsWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake(&self.0.streams);
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/2 server connection whose streams are polled in its own task. It is done
    /// when hyper's connection is: after a graceful shutdown, that is once every stream
    /// has ended (h2 waits for their handles to be dropped); otherwise the connection is
    /// gone and the streams left could only fail, so they are dropped with it.
    #[project = LocalStreamsProj]
    pub struct LocalStreams<C> {
        #[pin]
        conn: C,
        queue: Arc<Queue>,
        streams: FuturesUnordered<CatchUnwind<AssertUnwindSafe<StreamFuture>>>,
        wakeups: Arc<Wakeups>,
        conn_waker: Waker,
        streams_waker: Waker,
    }

    impl<C> PinnedDrop for LocalStreams<C> {
        fn drop(this: Pin<&mut Self>) {
            // Queued streams hold the executor, which holds the queue: a cycle.
            let queued = this.queue.streams.lock().map(|mut q| std::mem::take(&mut *q));
            drop(queued);
        }
    }
}

impl<C> std::fmt::Debug for LocalStreams<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStreams")
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl<C> LocalStreamsProj<'_, C> {
    /// Whether the connection or a stream was woken, or a stream (a tunnel's send
    /// half, started by its stream) is waiting to be adopted.
    fn woken(&self) -> bool {
        self.wakeups.conn.load(Ordering::SeqCst)
            || self.wakeups.streams.load(Ordering::SeqCst)
            || self.queue.pending.load(Ordering::Acquire)
    }
}

/// Starts serving a connection with streams polled in its task: `build` makes hyper's
/// connection with the executor given.
pub fn serve<C>(build: impl FnOnce(StreamExec) -> C) -> LocalStreams<C> {
    let queue = Arc::new(Queue::default());
    let conn = build(StreamExec {
        queue: queue.clone(),
    });
    let wakeups = Arc::new(Wakeups {
        task: AtomicWaker::new(),
        polling: AtomicBool::new(false),
        // The first poll drives the connection.
        conn: AtomicBool::new(true),
        streams: AtomicBool::new(false),
    });
    LocalStreams {
        conn,
        queue,
        streams: FuturesUnordered::new(),
        conn_waker: Waker::from(Arc::new(ConnWake(wakeups.clone()))),
        streams_waker: Waker::from(Arc::new(StreamsWake(wakeups.clone()))),
        wakeups,
    }
}

impl<C> Future for LocalStreams<C>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    type Output = Result<(), hyper::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let wakeups = &**this.wakeups;
        wakeups.task.register(cx.waker());
        wakeups.polling.store(true, Ordering::SeqCst);
        for _ in 0..ROUNDS {
            if wakeups.conn.swap(false, Ordering::SeqCst) {
                let mut conn_cx = Context::from_waker(this.conn_waker);
                if let Poll::Ready(ended) = this.conn.as_mut().poll(&mut conn_cx) {
                    wakeups.polling.store(false, Ordering::SeqCst);
                    return Poll::Ready(ended);
                }
            }
            if this.queue.pending.swap(false, Ordering::Acquire) {
                // (The queue keeps its room: as many streams as came in one turn.)
                for stream in lock(&this.queue.streams).drain(..) {
                    this.streams.push(AssertUnwindSafe(stream).catch_unwind());
                }
                wakeups.streams.store(true, Ordering::SeqCst);
            }
            if wakeups.streams.swap(false, Ordering::SeqCst) {
                poll_streams(this.streams, this.streams_waker);
            }
            if !this.woken() {
                break;
            }
        }
        wakeups.polling.store(false, Ordering::SeqCst);
        // Woken during the last round, or from elsewhere since: go round again later.
        if this.woken() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Polls the streams that were woken until none is ready; one that panics ends alone,
/// as it would in a task of its own (its dropped handles reset it).
fn poll_streams(
    streams: &mut FuturesUnordered<CatchUnwind<AssertUnwindSafe<StreamFuture>>>,
    waker: &Waker,
) {
    let mut cx = Context::from_waker(waker);
    while let Poll::Ready(Some(ended)) = streams.poll_next_unpin(&mut cx) {
        if ended.is_err() {
            tracing::error!("an HTTP/2 stream panicked; it was reset");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<C> GracefulConnection for LocalStreams<C>
where
    C: GracefulConnection,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.project();
        this.conn.graceful_shutdown();
        this.wakeups.conn.store(true, Ordering::SeqCst);
    }
}
