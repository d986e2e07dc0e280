//! The access log: one JSON object per request per line, written when the request ends,
//! carrying the ids that join it to its trace. Off by default (`[access_log]`).
//!
//! ```json
//! {"time":"2025-01-31T09:12:03.517Z","route":"api","method":"GET","path":"/orders/7",
//!  "status":200,"duration_ms":1.284,"upstream_address":"10.0.0.7:8080","bytes_sent":512,
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"5e0c63257de34c92",
//!  "parent_id":"00f067aa0ba902b7","sampled":true,"extracted_format":"tracecontext",
//!  "injected_formats":["tracecontext","b3multi"]}
//! ```
//!
//! (One line in the file; wrapped here.) `time` is when the request header arrived (RFC
//! 3339, UTC, milliseconds). `span_id` is the parent id the upstream saw (the gateway
//! span's, or the incoming parent's on propagation-only routes); `parent_id` is the span
//! id that arrived. Requests that matched no route have `route = "none"` and null ids.
//! How lines reach the disk, and why that is cheap enough, is described in
//! [`crate::config::log_sink`]. A failed write never fails the request: it counts in
//! `tracebridge_access_log_errors_total`, and the first failure per opened file is
//! logged.

use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::config::LogSink;
use crate::model::{SpanId, TraceId};
use crate::telemetry::Metrics;

/// One access log line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry<'a> {
    /// When the request header arrived.
    #[serde(serialize_with = "rfc3339_millis")]
    pub time: SystemTime,
    /// Route name, `none` when no route matched.
    pub route: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Request path (without the query).
    pub path: &'a str,
    /// Response status sent downstream; 0 when none was sent (client gone).
    pub status: u16,
    /// From the request header to the end of the response.
    #[serde(serialize_with = "millis")]
    pub duration_ms: Duration,
    /// The peer of the last attempt (`host:port`, or `echo`); null when not forwarded.
    pub upstream_address: Option<&'a str>,
    /// Response body bytes sent downstream.
    pub bytes_sent: usize,
    /// The trace id carried (and forwarded).
    #[serde(serialize_with = "hex")]
    pub trace_id: Option<TraceId>,
    /// The parent id the upstream saw.
    #[serde(serialize_with = "hex")]
    pub span_id: Option<SpanId>,
    /// The span id of the incoming context, if one arrived.
    #[serde(serialize_with = "hex")]
    pub parent_id: Option<SpanId>,
    /// The sampling decision forwarded.
    pub sampled: Option<bool>,
    /// The format the incoming context was read from.
    pub extracted_format: Option<&'static str>,
    /// The formats written into the outgoing request.
    pub injected_formats: Vec<&'static str>,
    /// Observe mode: the formats mediate mode would have written (omitted otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_inject: Vec<&'static str>,
    /// Observe mode: the formats present that mediate mode would have removed
    /// (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_strip: Vec<&'static str>,
    /// The request id (valid incoming, or made by the gateway); left out when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

fn rfc3339_millis<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    // Microsecond resolution, in milliseconds.
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

fn hex<S: Serializer, T: std::fmt::Display>(id: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

impl Entry<'_> {
    /// The line, newline-terminated.
    pub(crate) fn to_line(&self) -> Vec<u8> {
        let mut line = Vec::with_capacity(512);
        // Writing plain fields into a Vec cannot fail; an empty object is the fallback.
        if serde_json::to_writer(&mut line, self).is_err() {
            line.clear();
            line.extend_from_slice(b"{}");
        }
        line.push(b'\n');
        line
    }
}

/// Writes `entry` to `sink`; a failure is counted (and logged the first time), never
/// returned: the request it describes is already answered.
pub(crate) fn write(sink: &LogSink, entry: &Entry<'_>, metrics: &Metrics) {
    if let Err(e) = sink.write_line(&entry.to_line()) {
        metrics.access_log_errors.inc();
        if sink.first_failure() {
            log::warn!(
                "access log {}: cannot write ({e}); later failures are only counted in \
                 tracebridge_access_log_errors_total",
                sink.name()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object() {
        let entry = Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            route: "api",
            method: "GET",
            path: "/a\"b",
            status: 200,
            duration_ms: Duration::from_micros(1284),
            upstream_address: Some("127.0.0.1:80"),
            bytes_sent: 42,
            trace_id: TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: SpanId::new(0x5e0c_6325_7de3_4c92),
            parent_id: None,
            sampled: Some(true),
            extracted_format: None,
            injected_formats: vec!["tracecontext", "b3"],
            would_inject: Vec::new(),
            would_strip: Vec::new(),
            request_id: None,
        };
        let line = entry.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2023-11-14T22:13:20.123Z",
                "route": "api",
                "method": "GET",
                "path": "/a\"b",
                "status": 200,
                "duration_ms": 1.284,
                "upstream_address": "127.0.0.1:80",
                "bytes_sent": 42,
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "5e0c63257de34c92",
                "parent_id": null,
                "sampled": true,
                "extracted_format": null,
                "injected_formats": ["tracecontext", "b3"],
            })
        );
    }

    #[test]
    fn a_failed_write_is_counted_not_raised() {
        let metrics = Metrics::new().unwrap();
        // Linux's "disk full" device: every write fails with ENOSPC.
        let Ok(sink) = LogSink::append(std::path::Path::new("/dev/full")) else {
            return;
        };
        let entry = Entry {
            time: SystemTime::now(),
            route: "none",
            method: "GET",
            path: "/",
            status: 404,
            duration_ms: Duration::ZERO,
            upstream_address: None,
            bytes_sent: 0,
            trace_id: None,
            span_id: None,
            parent_id: None,
            sampled: None,
            extracted_format: None,
            injected_formats: Vec::new(),
            would_inject: Vec::new(),
            would_strip: Vec::new(),
            request_id: None,
        };
        write(&sink, &entry, &metrics);
        write(&sink, &entry, &metrics);
        assert_eq!(metrics.access_log_errors.get(), 2);
        assert!(
            !sink.first_failure(),
            "the first failure was reported already"
        );
    }
}
