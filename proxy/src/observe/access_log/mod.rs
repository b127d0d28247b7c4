//! The access log: one line per request, JSON or text, to stdout or a file.
//!
//! Lines are formatted on the request's task into a thread-local buffer and appended to
//! a bounded in-memory batch; a writer thread writes the batch out every
//! [`FLUSH_INTERVAL`] (sooner when [`FLUSH_BYTES`] are waiting), one `write` per batch.
//! Like Envoy's buffered access log: a line per request costs no allocation, no queue
//! hand-off and no wake-up, and a slow disk or a blocked pipe costs dropped lines
//! (counted), never request latency. Shutdown and config changes flush what is waiting.

mod format;
mod json;

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meshwork_config::model::{AccessLog, AccessLogPath};
use prometheus::IntCounter;

use super::RequestRecord;
use super::batch::{Batcher, Bounds, Pushed};

/// The longest a line waits in memory before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// A batch this big is written without waiting for the interval (small enough that the
/// buffer being filled stays in cache).
pub const FLUSH_BYTES: usize = 64 * 1024;
/// Lines that would take the waiting batch past this are dropped.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

const BOUNDS: Bounds = Bounds {
    max_records: usize::MAX,
    max_bytes: MAX_PENDING_BYTES,
    batch_records: usize::MAX,
    batch_bytes: FLUSH_BYTES,
};

thread_local! {
    /// Where a line is formatted before it is copied into the batch (outside the lock).
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

#[derive(Debug)]
struct Shared {
    batch: Batcher,
    closing: AtomicBool,
}

#[derive(Debug)]
pub struct AccessLogWriter {
    pub config: AccessLog,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_thread: std::thread::Thread,
    dropped: IntCounter,
}

impl AccessLogWriter {
    /// Opens the destination (a file is appended to, created if missing) and starts the
    /// writer thread.
    ///
    /// # Errors
    /// When the file cannot be opened or the thread cannot be started.
    pub fn start(config: AccessLog, dropped: IntCounter) -> std::io::Result<Arc<Self>> {
        let out: Box<dyn std::io::Write + Send> = match &config.path {
            AccessLogPath::Stdout => Box::new(std::io::stdout()),
            AccessLogPath::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let shared = Arc::new(Shared {
            batch: Batcher::new(BOUNDS),
            closing: AtomicBool::new(false),
        });
        let writer = std::thread::Builder::new()
            .name("meshwork-access-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, out)
            })?;
        Ok(Arc::new(Self {
            config,
            shared,
            writer_thread: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
            dropped,
        }))
    }

    pub fn write(
        &self,
        listener: &str,
        record: &RequestRecord,
        status: http::StatusCode,
        response_bytes: u64,
        elapsed: Duration,
    ) {
        let pushed = LINE.with_borrow_mut(|line| {
            line.clear();
            format::line(
                self.config.format,
                line,
                listener,
                record,
                status,
                response_bytes,
                elapsed,
            );
            self.shared.batch.push(&[], line)
        });
        match pushed {
            Pushed::Dropped => self.dropped.inc(),
            p if p.wakes_consumer() => self.writer_thread.unpark(),
            _ => {}
        }
    }

    /// Writes out what is waiting and stops the writer, waiting for it up to `within`
    /// (a blocked pipe must not hold up shutdown forever).
    pub async fn close(&self, within: Duration) {
        self.stop_writer();
        let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + within;
        while !writer.is_finished() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !writer.is_finished() {
            tracing::warn!("the access log writer did not finish in time; lines may be lost");
        }
    }

    fn stop_writer(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.writer_thread.unpark();
    }
}

impl Drop for AccessLogWriter {
    /// A writer replaced by a config change writes out its last lines and ends.
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// The writer thread: sleeps while nothing is waiting; once a batch starts, writes it
/// when it is full or [`FLUSH_INTERVAL`] has passed, whichever comes first.
fn write_batches(shared: &Shared, mut out: Box<dyn std::io::Write + Send>) {
    let mut batch = Vec::with_capacity(FLUSH_BYTES);
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if shared.batch.is_empty() {
            if closing {
                return;
            }
            std::thread::park();
            continue;
        }
        let deadline = Instant::now() + FLUSH_INTERVAL;
        while !shared.batch.batch_is_full() && !shared.closing.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        shared.batch.take(&mut batch);
        if let Err(error) = out.write_all(&batch).and_then(|()| out.flush()) {
            tracing::warn!(%error, bytes = batch.len(), "access log write failed");
        }
    }
}
