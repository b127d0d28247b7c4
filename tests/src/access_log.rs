//! The proxy's access log written to a file in a temporary directory, read back line by
//! line once the expected number of lines has arrived.
//!
//! ```text
//! let log = AccessLogFile::json();
//! let proxy = Proxy::with_config(format!("{config}{}", log.yaml())).start().await;
//! let lines = log.json_lines(3).await;
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::yaml::access_log_yaml;

/// How long lines may take to reach the file (they are written by a background task).
pub const ACCESS_LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// An access log file the proxy appends to.
#[derive(Debug)]
pub struct AccessLogFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
    format: &'static str,
}

impl AccessLogFile {
    /// A log in `format: json`.
    pub fn json() -> Self {
        Self::new("json")
    }

    /// A log in `format: text`.
    pub fn text() -> Self {
        Self::new("text")
    }

    fn new(format: &'static str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("meshwork-access-log-")
            .tempdir()
            .expect("create a temporary directory");
        let path = dir.path().join("access.log");
        Self {
            _dir: dir,
            path,
            format,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The top-level `access_log:` block writing to this file, to append to a config.
    pub fn yaml(&self) -> String {
        access_log_yaml(self.format, &self.path.display().to_string())
    }

    /// The complete lines written so far.
    pub fn lines_so_far(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `count` lines are written and returns them.
    ///
    /// # Panics
    /// When fewer arrive within [`ACCESS_LOG_TIMEOUT`], or more than `count`.
    pub async fn lines(&self, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + ACCESS_LOG_TIMEOUT;
        loop {
            let lines = self.lines_so_far();
            assert!(
                lines.len() <= count,
                "expected {count} access log lines, got {}:\n{}",
                lines.len(),
                lines.join("\n")
            );
            if lines.len() == count {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} access log lines within {ACCESS_LOG_TIMEOUT:?} in {}, got {}:\n{}",
                self.path.display(),
                lines.len(),
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`AccessLogFile::lines`], each parsed as a JSON object.
    ///
    /// # Panics
    /// As `lines`, or when a line is not a JSON object.
    pub async fn json_lines(&self, count: usize) -> Vec<serde_json::Value> {
        self.lines(count)
            .await
            .iter()
            .map(
                |line| match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(value) if value.is_object() => value,
                    Ok(_) | Err(_) => panic!("access log line is not a JSON object: {line}"),
                },
            )
            .collect()
    }
}

/// Whether `time` is RFC 3339 UTC with milliseconds: `2024-05-01T12:34:56.789Z`.
pub fn is_rfc3339_millis(time: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    time.len() == shape.len()
        && time.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            s => c == s,
        })
}
