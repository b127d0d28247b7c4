//! The access log: one line per request, JSON or text, to stdout or a file.
//!
//! Lines are formatted on the request's task and handed to a writer thread through a
//! bounded queue; when the writer falls behind (a slow disk, a blocked pipe) lines are
//! dropped and counted, never waited for. The writer is a plain thread with a buffered
//! writer, flushing whenever the queue runs empty: writing through tokio's file type
//! would hand every flush to the blocking pool, a thread hand-off per batch on the
//! proxy's own CPU.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use meshwork_config::model::{AccessLog, AccessLogFormat, AccessLogPath};
use prometheus::IntCounter;
use std::io::Write as _;

use tokio::sync::mpsc;

use super::RequestRecord;

/// Lines that may wait for the writer before new ones are dropped.
pub const QUEUE_LINES: usize = 16 * 1024;

#[derive(Debug)]
pub struct AccessLogWriter {
    pub config: AccessLog,
    tx: mpsc::Sender<String>,
    dropped: IntCounter,
}

impl AccessLogWriter {
    /// Opens the destination (a file is appended to, created if missing) and starts the
    /// writer task.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn start(config: AccessLog, dropped: IntCounter) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        let out: Box<dyn std::io::Write + Send> = match &config.path {
            AccessLogPath::Stdout => Box::new(std::io::stdout()),
            AccessLogPath::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        // Ends when the last sender (this writer) is dropped, after the queued lines.
        std::thread::Builder::new()
            .name("meshwork-access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(Arc::new(Self {
            config,
            tx,
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
        let line = match self.config.format {
            AccessLogFormat::Json => json_line(listener, record, status, response_bytes, elapsed),
            AccessLogFormat::Text => text_line(listener, record, status, response_bytes, elapsed),
        };
        if self.tx.try_send(line).is_err() {
            self.dropped.inc();
        }
    }
}

fn write_lines(mut rx: mpsc::Receiver<String>, out: Box<dyn std::io::Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Some(line) = rx.blocking_recv() {
        let mut ok = out.write_all(line.as_bytes()).is_ok();
        // Batch what is already queued, then flush once.
        while let Ok(line) = rx.try_recv() {
            ok &= out.write_all(line.as_bytes()).is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::warn!("access log write failed");
        }
    }
}

struct Fields<'a> {
    time: String,
    route: &'a str,
    cluster: &'a str,
    endpoint: Option<String>,
    error: Option<&'static str>,
    request_id: String,
}

fn fields(record: &RequestRecord) -> Fields<'_> {
    Fields {
        time: humantime::format_rfc3339_millis(record.wall_start).to_string(),
        route: record.route.get().map_or("", |r| r.name()),
        cluster: record.cluster.get().map_or("", |c| c.name()),
        endpoint: record.endpoint().map(|e| e.address.to_string()),
        error: record.error.get().map(|e| e.reason()),
        request_id: record
            .request_id
            .get()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
    }
}

fn json_line(
    listener: &str,
    record: &RequestRecord,
    status: http::StatusCode,
    response_bytes: u64,
    elapsed: Duration,
) -> String {
    let f = fields(record);
    let line = record.line.as_ref();
    let entry = JsonEntry {
        time: &f.time,
        listener,
        route: (!f.route.is_empty()).then_some(f.route),
        method: line.map(|l| l.method.as_str()),
        authority: line.map(|l| l.authority.as_str()),
        path: line.map(|l| l.path.as_str()),
        protocol: line.map(|l| format!("{:?}", l.protocol)),
        status: status.as_u16(),
        duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        upstream_cluster: (!f.cluster.is_empty()).then_some(f.cluster),
        upstream_endpoint: f.endpoint.as_deref(),
        attempts: record.attempts.load(std::sync::atomic::Ordering::Relaxed),
        request_bytes: record.request_bytes(),
        response_bytes,
        request_id: &f.request_id,
        trace_id: record.trace.get().map(|t| t.trace_id.to_string()),
        peer_identity: record.peer_identity.as_deref(),
        error: f.error,
    };
    // Serialized straight from the struct: no intermediate JSON value tree.
    let mut s = serde_json::to_string(&entry).unwrap_or_default();
    s.push('\n');
    s
}

/// One JSON line, fields in this order; absent values are `null`.
#[derive(serde::Serialize)]
struct JsonEntry<'a> {
    time: &'a str,
    listener: &'a str,
    route: Option<&'a str>,
    method: Option<&'a str>,
    authority: Option<&'a str>,
    path: Option<&'a str>,
    protocol: Option<String>,
    status: u16,
    duration_ms: f64,
    upstream_cluster: Option<&'a str>,
    upstream_endpoint: Option<&'a str>,
    attempts: u32,
    request_bytes: u64,
    response_bytes: u64,
    request_id: &'a str,
    trace_id: Option<String>,
    peer_identity: Option<&'a str>,
    error: Option<&'static str>,
}

/// Envoy-like: `[time] "METHOD authority path PROTO" status error req_bytes resp_bytes ms listener route cluster endpoint attempts request_id peer_identity`.
fn text_line(
    listener: &str,
    record: &RequestRecord,
    status: http::StatusCode,
    response_bytes: u64,
    elapsed: Duration,
) -> String {
    let f = fields(record);
    let mut s = String::with_capacity(256);
    let _ = write!(s, "[{}] ", f.time);
    match &record.line {
        Some(l) => {
            let _ = write!(
                s,
                "\"{} {}{} {:?}\" ",
                l.method, l.authority, l.path, l.protocol
            );
        }
        None => s.push_str("\"-\" "),
    }
    let dash = |v: &str| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.to_owned()
        }
    };
    let _ = writeln!(
        s,
        "{} {} {} {} {:.3} {} {} {} {} {} {} {}",
        status.as_u16(),
        f.error.unwrap_or("-"),
        record.request_bytes(),
        response_bytes,
        elapsed.as_secs_f64() * 1e3,
        dash(listener),
        dash(f.route),
        dash(f.cluster),
        f.endpoint.as_deref().unwrap_or("-"),
        record.attempts.load(std::sync::atomic::Ordering::Relaxed),
        dash(&f.request_id),
        record.peer_identity.as_deref().unwrap_or("-"),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::RequestLine;

    fn record() -> RequestRecord {
        let r = RequestRecord::new(Some(RequestLine {
            method: http::Method::GET,
            authority: "api.example.com".into(),
            path: "/v1/x?y=1".into(),
            protocol: http::Version::HTTP_11,
        }));
        r.add_request_bytes(12);
        let _ = r.request_id.set(http::HeaderValue::from_static("rid-1"));
        let _ = r.error.set(crate::http::ProxyError::NoRoute);
        r
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let line = json_line(
            "edge",
            &record(),
            http::StatusCode::NOT_FOUND,
            29,
            Duration::from_micros(1500),
        );
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["listener"], "edge");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["authority"], "api.example.com");
        assert_eq!(v["path"], "/v1/x?y=1");
        assert_eq!(v["status"], 404);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["request_bytes"], 12);
        assert_eq!(v["response_bytes"], 29);
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v["error"], "no-route");
        assert_eq!(v["attempts"], 0);
    }

    #[test]
    fn text_lines_use_dashes_for_what_is_missing() {
        let line = text_line(
            "edge",
            &record(),
            http::StatusCode::NOT_FOUND,
            29,
            Duration::from_millis(2),
        );
        assert!(line.contains("\"GET api.example.com/v1/x?y=1 HTTP/1.1\" 404 no-route 12 29 2.000 edge - - - 0 rid-1 -\n"), "{line}");
    }
}
