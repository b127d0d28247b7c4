//! One access log line per request, JSON or text, appended to a reusable buffer.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshwork_config::model::AccessLogFormat;

use super::json::JsonObject;
use crate::observe::{AttemptRecord, RequestRecord};

/// Appends the line for one request (newline included) to `out`.
pub fn line(
    format: AccessLogFormat,
    out: &mut Vec<u8>,
    listener: &str,
    record: &RequestRecord,
    status: http::StatusCode,
    response_bytes: u64,
    elapsed: Duration,
) {
    match format {
        AccessLogFormat::Json => json_line(out, listener, record, status, response_bytes, elapsed),
        AccessLogFormat::Text => text_line(out, listener, record, status, response_bytes, elapsed),
    }
}

struct Fields<'a> {
    route: &'a str,
    /// The last attempt: its cluster and endpoint are reported together.
    attempt: Option<AttemptRecord>,
    attempts: u32,
    /// `won` or `lost` when a hedge was sent.
    hedge: Option<&'static str>,
    error: Option<&'static str>,
    request_id: Cow<'a, str>,
}

impl Fields<'_> {
    fn cluster(&self) -> &str {
        self.attempt.as_ref().map_or("", |a| a.cluster.name())
    }

    fn endpoint(&self) -> Option<&str> {
        let endpoint = self.attempt.as_ref()?.endpoint.as_ref()?;
        Some(&endpoint.address_text)
    }
}

fn fields(record: &RequestRecord) -> Fields<'_> {
    Fields {
        route: record.route.get().map_or("", |r| r.name()),
        attempt: record.last_attempt(),
        attempts: record.attempts_sent(),
        hedge: match record.hedges() {
            (0, _) => None,
            (_, true) => Some("won"),
            (_, false) => Some("lost"),
        },
        error: record.error.get().map(|e| e.reason()),
        request_id: record
            .request_id
            .get()
            .map(|id| id.to_str_lossy())
            .unwrap_or_default(),
    }
}

thread_local! {
    /// `YYYY-MM-DDTHH:MM:SS` of the last second formatted on this thread.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 UTC with milliseconds (`2026-12-02T17:11:30.123Z`); the date and time of day
/// are formatted once per second per thread.
fn write_time(out: &mut Vec<u8>, t: SystemTime) {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let whole = UNIX_EPOCH + Duration::from_secs(secs);
        let text = humantime::format_rfc3339_seconds(whole).to_string();
        prefix.copy_from_slice(&text.as_bytes()[..19]);
        SECOND.set((secs, prefix));
    }
    out.extend_from_slice(&prefix);
    let millis = since_epoch.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

fn json_line(
    out: &mut Vec<u8>,
    listener: &str,
    record: &RequestRecord,
    status: http::StatusCode,
    response_bytes: u64,
    elapsed: Duration,
) {
    let f = fields(record);
    let line = record.line.as_ref();
    out.reserve(512);
    let mut o = JsonObject::new(out);
    o.raw_str("time", |out| write_time(out, record.wall_start))
        .str("listener", listener)
        .opt_str("route", (!f.route.is_empty()).then_some(f.route))
        .opt_str("method", line.map(|l| l.method.as_str()))
        .opt_str("authority", line.map(|l| l.authority()).as_deref())
        .opt_str("path", line.map(|l| l.path()))
        .opt_str("protocol", line.map(|l| protocol_name(l.protocol)))
        .uint("status", u64::from(status.as_u16()))
        .millis("duration_ms", elapsed)
        .opt_str(
            "upstream_cluster",
            (!f.cluster().is_empty()).then_some(f.cluster()),
        )
        .opt_str("upstream_endpoint", f.endpoint())
        .uint("attempts", u64::from(f.attempts))
        .opt_str("hedge", f.hedge)
        .uint("request_bytes", record.request_bytes())
        .uint("response_bytes", response_bytes)
        .str("request_id", &f.request_id);
    match record.trace.get() {
        Some(t) => o.raw_str("trace_id", |out| {
            out.extend_from_slice(&crate::trace::context::trace_id_hex(t.trace_id));
        }),
        None => o.null("trace_id"),
    };
    o.opt_str("peer_identity", record.peer_identity.as_deref())
        .opt_str("error", f.error);
    o.end();
}

/// `HTTP/1.1`, as `http::Version`'s `Debug` writes it, without formatting per line.
fn protocol_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn dash(v: &str) -> &str {
    if v.is_empty() { "-" } else { v }
}

/// Envoy-like: `[time] "METHOD authority path PROTO" status error req_bytes resp_bytes ms listener route cluster endpoint attempts request_id peer_identity`.
fn text_line(
    out: &mut Vec<u8>,
    listener: &str,
    record: &RequestRecord,
    status: http::StatusCode,
    response_bytes: u64,
    elapsed: Duration,
) {
    let f = fields(record);
    let s = out;
    s.push(b'[');
    write_time(s, record.wall_start);
    s.extend_from_slice(b"] ");
    match &record.line {
        Some(l) => {
            let _ = write!(
                s,
                "\"{} {}{} {}\" ",
                l.method,
                l.authority(),
                l.path(),
                protocol_name(l.protocol)
            );
        }
        None => s.extend_from_slice(b"\"-\" "),
    }
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
        dash(f.cluster()),
        f.endpoint().unwrap_or("-"),
        f.attempts,
        dash(&f.request_id),
        record.peer_identity.as_deref().unwrap_or("-"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::RequestLine;

    fn record() -> RequestRecord {
        let req = http::Request::get("/v1/x?y=1")
            .header(http::header::HOST, "api.example.com")
            .body(())
            .unwrap();
        let r = RequestRecord::new(Some(RequestLine::new(&req)));
        r.add_request_bytes(12);
        let _ = r.request_id.set(crate::http::request_id::RequestId::Client(
            http::HeaderValue::from_static("rid-1"),
        ));
        let _ = r.error.set(crate::http::ProxyError::NoRoute);
        r
    }

    #[test]
    fn times_match_rfc3339_with_milliseconds_within_and_across_seconds() {
        let base = UNIX_EPOCH + Duration::from_secs(1_796_317_552);
        for offset_ms in [0, 1, 999, 1000, 1001, 1500, 86_400_000, 7, 0] {
            let t = base + Duration::from_millis(offset_ms) + Duration::from_micros(999);
            let mut out = Vec::new();
            write_time(&mut out, t);
            let expected = humantime::format_rfc3339_millis(t).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    /// The line for a 404 of [`record`] on listener `edge`, 29 bytes answered.
    fn line_of(format: AccessLogFormat, elapsed: Duration) -> String {
        let mut out = Vec::new();
        line(
            format,
            &mut out,
            "edge",
            &record(),
            http::StatusCode::NOT_FOUND,
            29,
            elapsed,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let line = line_of(AccessLogFormat::Json, Duration::from_micros(1500));
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
        let line = line_of(AccessLogFormat::Text, Duration::from_millis(2));
        assert!(line.contains("\"GET api.example.com/v1/x?y=1 HTTP/1.1\" 404 no-route 12 29 2.000 edge - - - 0 rid-1 -\n"), "{line}");
    }
}
