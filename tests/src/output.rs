//! Capturing a child process's output into a shared buffer while it runs.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Set this to echo the proxy's output to the test's stderr as it arrives.
pub const ECHO_ENV: &str = "MESHWORK_TEST_ECHO";

/// Bytes kept per stream; older output is dropped first.
const KEEP_BYTES: usize = 4 * 1024 * 1024;

/// Output captured so far (the last 4 MiB), shared with the task filling it.
#[derive(Clone, Debug, Default)]
pub struct OutputBuffer {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    text: String,
    /// Bytes ever received, including dropped ones.
    total: u64,
}

impl OutputBuffer {
    /// Everything kept so far.
    pub fn text(&self) -> String {
        self.inner.lock().unwrap().text.clone()
    }

    /// The last `lines` lines.
    pub fn tail(&self, lines: usize) -> String {
        let text = self.text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Bytes received since the start, including any no longer kept.
    pub fn total_bytes(&self) -> u64 {
        self.inner.lock().unwrap().total
    }

    fn push(&self, line: &str) {
        let mut captured = self.inner.lock().unwrap();
        captured.total += line.len() as u64;
        captured.text.push_str(line);
        if captured.text.len() > KEEP_BYTES {
            let mut cut = captured.text.len() - KEEP_BYTES / 2;
            while !captured.text.is_char_boundary(cut) {
                cut += 1;
            }
            captured.text.drain(..cut);
        }
    }

    /// Spawns a task copying `reader` line by line into this buffer (and to stderr,
    /// prefixed with `label`, when `MESHWORK_TEST_ECHO` is set).
    pub fn capture<R>(&self, reader: R, label: String)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let buffer = self.clone();
        let echo = std::env::var_os(ECHO_ENV).is_some();
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        if echo {
                            eprint!("[{label}] {text}");
                        }
                        buffer.push(&text);
                    }
                }
            }
        });
    }
}
