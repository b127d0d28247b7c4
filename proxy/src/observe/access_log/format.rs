//! One access log line per request, JSON or text, appended to a reusable buffer.

use std::io::Write as _;
use std::time::Duration;

use meshwork_config::model::AccessLogFormat;

use crate::observe::RequestRecord;

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
    out: &mut Vec<u8>,
    listener: &str,
    record: &RequestRecord,
    status: http::StatusCode,
    response_bytes: u64,
    elapsed: Duration,
) {
    let f = fields(record);
    let line = record.line.as_ref();
    let entry = JsonEntry {
        time: &f.time,
        listener,
        route: (!f.route.is_empty()).then_some(f.route),
        method: line.map(|l| l.method.as_str()),
        authority: line.map(|l| l.authority.as_str()),
        path: line.map(|l| l.path.as_str()),
        protocol: line.map(|l| protocol_name(l.protocol)),
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
    if serde_json::to_writer(&mut *out, &entry).is_ok() {
        out.push(b'\n');
    }
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
    protocol: Option<&'static str>,
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
    let _ = write!(s, "[{}] ", f.time);
    match &record.line {
        Some(l) => {
            let _ = write!(
                s,
                "\"{} {}{} {}\" ",
                l.method,
                l.authority,
                l.path,
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
        dash(f.cluster),
        f.endpoint.as_deref().unwrap_or("-"),
        record.attempts.load(std::sync::atomic::Ordering::Relaxed),
        dash(&f.request_id),
        record.peer_identity.as_deref().unwrap_or("-"),
    );
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
        let mut line = Vec::new();
        json_line(
            &mut line,
            "edge",
            &record(),
            http::StatusCode::NOT_FOUND,
            29,
            Duration::from_micros(1500),
        );
        let line = String::from_utf8(line).unwrap();
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
        let mut line = Vec::new();
        text_line(
            &mut line,
            "edge",
            &record(),
            http::StatusCode::NOT_FOUND,
            29,
            Duration::from_millis(2),
        );
        let line = String::from_utf8(line).unwrap();
        assert!(line.contains("\"GET api.example.com/v1/x?y=1 HTTP/1.1\" 404 no-route 12 29 2.000 edge - - - 0 rid-1 -\n"), "{line}");
    }
}
