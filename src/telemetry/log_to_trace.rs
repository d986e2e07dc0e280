//! `tracebridge logs-to-traces`: access log lines that carry trace context become
//! spans, for the hops that can only log (a managed load balancer, a gateway without a
//! tracer). One span per line: the logged start time and duration, HTTP attributes,
//! the parent from the logged trace header (read by the same codecs as requests), and
//! a span id derived from the line itself (SHA-256), so converting the same file twice
//! gives the same spans, and a backend deduplicates them.
//!
//! Formats ([`LogFormat`]):
//!
//! - `alb`: AWS Application Load Balancer access log entries, space-separated with
//!   quoted fields, as AWS documents them ("Access logs for your Application Load
//!   Balancer"): `type time elb client:port target:port request_processing_time
//!   target_processing_time response_processing_time elb_status_code
//!   target_status_code received_bytes sent_bytes "request" "user_agent" ssl_cipher
//!   ssl_protocol target_group_arn "trace_id" "domain_name" "chosen_cert_arn"
//!   matched_rule_priority request_creation_time …`. `trace_id` is the
//!   `X-Amzn-Trace-Id` the load balancer sent on; the span starts at
//!   `request_creation_time` and ends at `time` (the response).
//! - `tracebridge`: the gateway's own JSON access log (`trace_id`, `parent_id`,
//!   `time`, `duration_ms`, …).
//! - `json`: JSON lines whose field names [`LogFields`] maps (nginx with
//!   `escape=json`, Envoy's `json_format`), the logged trace headers among them.
//!
//! The parsing is pure ([`parse_line`], [`line_ids`]); [`run`] reads lines and makes
//! the spans on a [`Telemetry`], whose exporters send them. A bad line is counted and
//! reported with its number, never fatal.

use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::span::remote_parent;
use super::Telemetry;
use crate::codec::Format;
use crate::config::spec::{LogFields, LogFormat, LogsSettings};
use crate::mediate::{self, Policy};
use crate::model::{Named, SpanId, TraceId};

/// The span attribute naming the log format a span was rebuilt from.
pub const LOG_FORMAT_ATTRIBUTE: &str = "tracebridge.log.format";

/// Longest line read (a longer one is a bad line).
pub const MAX_LINE: usize = 64 * 1024;

/// Why a line made no span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// Too few fields for an ALB entry.
    #[error("not an ALB access log entry: {0} fields, at least 22 expected")]
    AlbFields(usize),
    /// A field is missing or unreadable.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Longer than [`MAX_LINE`].
    #[error("longer than {MAX_LINE} bytes")]
    TooLong,
}

fn field_error(field: &str, reason: &'static str) -> LineError {
    LineError::Field {
        field: field.to_string(),
        reason,
    }
}

/// The trace context a line names.
#[derive(Debug, Clone, PartialEq)]
pub enum LoggedContext {
    /// None: the span starts a trace.
    None,
    /// Ids logged as such (tracebridge's log): the trace and the parent span, if any.
    Ids(TraceId, Option<SpanId>),
    /// Trace headers as logged, read with the codecs.
    Headers(HeaderMap),
}

/// What a line says about one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When the request arrived.
    pub start: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Method, path, status, host, user agent and client address, when logged.
    pub method: Option<String>,
    /// The path, without the query.
    pub path: Option<String>,
    /// The status sent to the client.
    pub status: Option<u16>,
    /// The host the client addressed.
    pub host: Option<String>,
    /// The user agent.
    pub user_agent: Option<String>,
    /// The client address.
    pub client: Option<String>,
    /// The logged context.
    pub context: LoggedContext,
}

/// Parses an RFC 3339 time (`2018-07-02T22:22:48.364000Z`, `…+02:00`) or epoch
/// seconds (`1700000000.123`, nginx `$msec`).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Epoch seconds, read as integers: a float would be off by tens of nanoseconds.
        let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
        let secs: u64 = secs.parse().ok()?;
        let mut nanos = 0u32;
        for (i, d) in frac.bytes().take(9).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        return UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
    }
    // The offset: `Z`, or `±hh:mm` (or `±hhmm`) at the end.
    let (base, offset_secs) = if let Some(b) = text.strip_suffix(['Z', 'z']) {
        (b, 0i64)
    } else {
        let sign_at = text.rfind(['+', '-']).filter(|&i| i > 10)?;
        let (b, off) = text.split_at(sign_at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 4 {
            return None;
        }
        let h: i64 = digits[..2].parse().ok()?;
        let m: i64 = digits[2..].parse().ok()?;
        (b, sign * (h * 3600 + m * 60))
    };
    // humantime reads `YYYY-MM-DDTHH:MM:SS[.frac]` as UTC.
    let utc = humantime::parse_rfc3339_weak(base).ok()?;
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    if offset_secs >= 0 {
        utc.checked_sub(shift)
    } else {
        utc.checked_add(shift)
    }
}

/// The span id (and, for a line without context, the trace id) a line gets: from the
/// SHA-256 of its bytes, so the same line always makes the same span.
pub fn line_ids(line: &str) -> (TraceId, SpanId) {
    let digest = Sha256::digest(line.as_bytes());
    let mut span = [0u8; 8];
    span.copy_from_slice(&digest[..8]);
    let mut trace = [0u8; 16];
    trace.copy_from_slice(&digest[8..24]);
    // A zero id is invalid; a digest of zeros is not going to happen, but stays valid.
    const ONE_SPAN: SpanId = match SpanId::new(1) {
        Some(s) => s,
        None => panic!("1 is a valid span id"),
    };
    const ONE_TRACE: TraceId = match TraceId::new(1) {
        Some(t) => t,
        None => panic!("1 is a valid trace id"),
    };
    let span_id = SpanId::new(u64::from_be_bytes(span)).unwrap_or(ONE_SPAN);
    let trace_id = TraceId::new(u128::from_be_bytes(trace)).unwrap_or(ONE_TRACE);
    (trace_id, span_id)
}

/// The parent a record names: (trace id, parent span id), read from the logged
/// headers with every codec, in the default extraction order.
pub fn parent_of(record: &Record) -> Option<(TraceId, Option<SpanId>)> {
    match &record.context {
        LoggedContext::None => None,
        LoggedContext::Ids(t, s) => Some((*t, *s)),
        LoggedContext::Headers(headers) => {
            let plan = mediate::plan(&Policy::default(), headers);
            remote_parent(&plan).map(|(t, s, _)| (t, s))
        }
    }
}

/// Splits an ALB entry on spaces, a double-quoted field being one (quotes removed).
fn alb_fields(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    out
}

fn dash(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// `(host, path)` of an absolute URL (`http://host:80/p?q`), the path without its query.
fn split_url(url: &str) -> (Option<String>, Option<String>) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = authority
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(h, _)| h);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    (
        dash(host).map(str::to_string),
        Some(path.to_string()).filter(|p| !p.is_empty()),
    )
}

fn parse_alb(line: &str) -> Result<Record, LineError> {
    let f = alb_fields(line);
    if f.len() < 22 {
        return Err(LineError::AlbFields(f.len()));
    }
    let end = parse_time(f[1]).ok_or_else(|| field_error("time", "not an ISO 8601 time"))?;
    // request_creation_time; before it existed, the three processing times (-1 when
    // not known) measure the request.
    let start = match dash(f[21]).and_then(parse_time) {
        Some(t) => t,
        None => {
            let took: f64 = f[5..8]
                .iter()
                .filter_map(|t| t.parse::<f64>().ok())
                .filter(|t| *t >= 0.0)
                .sum();
            end.checked_sub(Duration::from_secs_f64(took))
                .unwrap_or(end)
        }
    };
    let duration = end.duration_since(start).unwrap_or(Duration::ZERO);
    let mut request = f[12].splitn(3, ' ');
    let method = request.next().and_then(dash).map(str::to_string);
    let (host, path) = request.next().map_or((None, None), split_url);
    let host = dash(f[18]).map(str::to_string).or(host);
    let context = match dash(f[17]) {
        Some(id) => {
            let mut headers = HeaderMap::new();
            let value = HeaderValue::from_str(id)
                .map_err(|_| field_error("trace_id", "not a header value"))?;
            headers.insert(HeaderName::from_static("x-amzn-trace-id"), value);
            LoggedContext::Headers(headers)
        }
        None => LoggedContext::None,
    };
    Ok(Record {
        start,
        duration,
        method,
        path,
        status: dash(f[8]).and_then(|s| s.parse().ok()),
        host,
        user_agent: dash(f[13]).map(str::to_string),
        client: dash(f[3]).map(|c| c.rsplit_once(':').map_or(c, |(ip, _)| ip).to_string()),
        context,
    })
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => dash(s).map(str::to_string),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn object(line: &str) -> Result<serde_json::Map<String, Value>, LineError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(LineError::Json("a JSON value other than an object".into())),
        Err(e) => Err(LineError::Json(e.to_string())),
    }
}

fn span_duration(secs: f64, field: &str) -> Result<Duration, LineError> {
    if secs.is_finite() && secs >= 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(field_error(field, "not a duration"))
    }
}

fn parse_tracebridge(line: &str) -> Result<Record, LineError> {
    let m = object(line)?;
    let start = text(m.get("time"))
        .and_then(|t| parse_time(&t))
        .ok_or_else(|| field_error("time", "missing or not an RFC 3339 time"))?;
    let millis = number(m.get("duration_ms")).unwrap_or(0.0);
    let id = |k: &str| text(m.get(k));
    let trace = id("trace_id").and_then(|t| u128::from_str_radix(&t, 16).ok());
    let parent = id("parent_id").and_then(|s| u64::from_str_radix(&s, 16).ok());
    let context = match trace.and_then(TraceId::new) {
        Some(t) => LoggedContext::Ids(t, parent.and_then(SpanId::new)),
        None => LoggedContext::None,
    };
    Ok(Record {
        start,
        duration: span_duration(millis / 1000.0, "duration_ms")?,
        method: text(m.get("method")),
        path: text(m.get("path")),
        status: number(m.get("status")).map(|s| s as u16).filter(|s| *s > 0),
        host: None,
        user_agent: None,
        client: None,
        context,
    })
}

fn parse_json(fields: &LogFields, line: &str) -> Result<Record, LineError> {
    let m = object(line)?;
    let get = |k: &str| m.get(k);
    let duration = match number(get(&fields.duration)) {
        Some(d) => span_duration(d * fields.duration_unit, &fields.duration)?,
        None => Duration::ZERO,
    };
    let time = match get(&fields.time) {
        Some(Value::Number(n)) => parse_time(&n.to_string()),
        Some(Value::String(s)) => parse_time(s),
        _ => None,
    }
    .ok_or_else(|| field_error(&fields.time, "missing or not a time"))?;
    let start = if fields.time_at_end {
        time.checked_sub(duration).unwrap_or(time)
    } else {
        time
    };
    let mut headers = HeaderMap::new();
    let mut add = |header: &str, field: &str| {
        if let (Some(v), Ok(name)) = (text(get(field)), HeaderName::from_bytes(header.as_bytes())) {
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.append(name, v);
            }
        }
    };
    if fields.headers.is_empty() {
        for f in Format::ALL {
            for h in f.headers() {
                add(h.as_str(), h.as_str());
            }
        }
    } else {
        for (header, field) in &fields.headers {
            add(header, field);
        }
    }
    let (host, path) = match text(get(&fields.path)) {
        // A logged request URI may be absolute, and carries its query.
        Some(p) if p.contains("://") => split_url(&p),
        Some(p) => (None, split_url(&format!("x://h{p}")).1),
        None => (None, None),
    };
    Ok(Record {
        start,
        duration,
        method: text(get(&fields.method)),
        path,
        status: number(get(&fields.status))
            .map(|s| s as u16)
            .filter(|s| *s > 0),
        host: text(get(&fields.host)).or(host),
        user_agent: text(get(&fields.user_agent)),
        client: text(get(&fields.client)),
        context: if headers.is_empty() {
            LoggedContext::None
        } else {
            LoggedContext::Headers(headers)
        },
    })
}

/// One line as a record, or why not.
pub fn parse_line(settings: &LogsSettings, line: &str) -> Result<Record, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    match settings.format {
        LogFormat::Alb => parse_alb(line),
        LogFormat::Tracebridge => parse_tracebridge(line),
        LogFormat::Json => parse_json(&settings.fields, line),
    }
}

/// Makes and ends the span of `record`, from `line`.
pub fn export(telemetry: &Telemetry, format: LogFormat, line: &str, record: &Record) {
    let (root_trace, span_id) = line_ids(line);
    let method = record.method.clone().unwrap_or_else(|| "HTTP".to_string());
    let mut attributes = vec![
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, method.clone()),
        KeyValue::new(LOG_FORMAT_ATTRIBUTE, format.name()),
    ];
    let mut text = |key: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            attributes.push(KeyValue::new(key, v.clone()));
        }
    };
    text(semconv::URL_PATH, &record.path);
    text(semconv::SERVER_ADDRESS, &record.host);
    text(semconv::USER_AGENT_ORIGINAL, &record.user_agent);
    text(semconv::CLIENT_ADDRESS, &record.client);
    if let Some(status) = record.status {
        attributes.push(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
        if status >= 500 {
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, status.to_string()));
        }
    }
    let builder = telemetry
        .tracer()
        .span_builder(method)
        .with_kind(SpanKind::Server)
        .with_start_time(record.start)
        .with_attributes(attributes);
    let mut span = telemetry.start_recorded(builder, parent_of(record), root_trace, span_id);
    if record.status.is_some_and(|s| s >= 500) {
        // OpenTelemetry's HTTP server spans: 5xx is an error, 4xx is not.
        span.set_status(Status::error(""));
    }
    span.end_with_timestamp(record.start + record.duration);
}

/// How [`run`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// At the end of the input, wait for more (a growing file) instead of stopping.
    pub follow: bool,
    /// A progress line on the error output every this many lines; 0 = none.
    pub progress_every: u64,
    /// How long to wait before looking again at the end of a followed file.
    pub poll: Duration,
}

/// What [`run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read (empty lines are skipped and not counted).
    pub lines: u64,
    /// Spans made.
    pub spans: u64,
    /// Lines that made no span.
    pub bad: u64,
}

/// Bad lines reported one by one; the rest are only counted.
const REPORTED_BAD_LINES: u64 = 100;

/// Reads `input` line by line and exports one span per good line, reporting bad lines
/// (number and reason) and progress on `report`. Returns at the end of the input, or
/// never with `follow` (the process is stopped by a signal); an input error ends it.
pub fn run(
    settings: &LogsSettings,
    telemetry: &Telemetry,
    input: &mut dyn BufRead,
    options: Options,
    report: &mut dyn Write,
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    let mut number = 0u64;
    let mut buf = Vec::new();
    loop {
        let n = input.read_until(b'\n', &mut buf)?;
        let complete = buf.ends_with(b"\n");
        if n == 0 || !complete {
            if options.follow {
                // A followed file: the rest of a half-written line comes later.
                std::thread::sleep(options.poll);
                continue;
            }
            if buf.is_empty() {
                return Ok(summary);
            }
        }
        number += 1;
        let line = String::from_utf8_lossy(&buf).trim().to_string();
        buf.clear();
        if line.is_empty() {
            continue;
        }
        summary.lines += 1;
        match parse_line(settings, &line) {
            Ok(record) => {
                export(telemetry, settings.format, &line, &record);
                summary.spans += 1;
            }
            Err(e) => {
                summary.bad += 1;
                if summary.bad <= REPORTED_BAD_LINES {
                    writeln!(report, "logs-to-traces: line {number}: {e}")?;
                } else if summary.bad == REPORTED_BAD_LINES + 1 {
                    writeln!(
                        report,
                        "logs-to-traces: more bad lines: counted, no longer reported"
                    )?;
                }
            }
        }
        if options.progress_every > 0 && summary.lines % options.progress_every == 0 {
            writeln!(
                report,
                "logs-to-traces: progress: {} lines, {} spans, {} bad",
                summary.lines, summary.spans, summary.bad
            )?;
        }
        if !complete && !options.follow {
            return Ok(summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry of AWS's documented shape: an HTTP request forwarded to a target.
    const ALB: &str = r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/orders?id=7 HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90"#;

    fn at(text: &str) -> SystemTime {
        parse_time(text).unwrap()
    }

    #[test]
    fn times_in_every_logged_shape() {
        let t = UNIX_EPOCH + Duration::from_millis(1_530_570_168_364);
        assert_eq!(at("2018-07-02T22:22:48.364000Z"), t);
        assert_eq!(at("2018-07-02T22:22:48.364Z"), t);
        assert_eq!(at("2018-07-03T00:22:48.364+02:00"), t);
        assert_eq!(at("2018-07-02T20:22:48.364-0200"), t);
        assert_eq!(at("1530570168.364"), t);
        for bad in ["", "yesterday", "2018-07-02", "2018-07-02T22:22:48+2"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_alb_entry_as_aws_documents_it() {
        let settings = LogsSettings {
            format: LogFormat::Alb,
            ..LogsSettings::default()
        };
        let r = parse_line(&settings, ALB).unwrap();
        assert_eq!(r.start, at("2018-07-02T22:22:48.364Z"));
        assert_eq!(r.duration, Duration::from_micros(11_822_641));
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path.as_deref(), Some("/orders"));
        assert_eq!(r.host.as_deref(), Some("www.example.com"));
        assert_eq!(r.status, Some(200));
        assert_eq!(r.client.as_deref(), Some("192.168.131.39"));
        assert_eq!(r.user_agent.as_deref(), Some("curl/7.46.0"));
        let (trace, parent) = parent_of(&r).unwrap();
        assert_eq!(
            trace,
            TraceId::new(0x5833_7262_36d2_28ad_5d99_9231_22bb_e354).unwrap()
        );
        assert_eq!(parent, None, "Root only: the load balancer names no parent");
        // Without request_creation_time, the processing times measure it.
        let old = ALB.replace("2018-07-02T22:22:48.364000Z", "-");
        let r = parse_line(&settings, &old).unwrap();
        assert_eq!(r.duration, Duration::from_millis(1));
        assert!(matches!(
            parse_line(&settings, "http 2018-07-02T22:23:00Z app/x"),
            Err(LineError::AlbFields(3))
        ));
    }

    #[test]
    fn generic_json_with_mapped_fields_and_headers() {
        let mut fields = LogFields {
            time_at_end: true,
            duration_unit: 1.0,
            ..LogFields::default()
        };
        fields.set("time", "time_iso8601").unwrap();
        fields.set("duration", "request_time").unwrap();
        fields.set("path", "request_uri").unwrap();
        fields
            .set("header:traceparent", "http_traceparent")
            .unwrap();
        assert!(fields.set("header:x-custom", "f").is_err());
        assert!(fields.set("latency", "f").is_err());
        let settings = LogsSettings {
            format: LogFormat::Json,
            fields,
        };
        let line = r#"{"time_iso8601":"2024-05-01T10:00:01+00:00","request_time":"0.250","method":"POST","request_uri":"/api/v1/pay?x=1","status":502,"http_traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#;
        let r = parse_line(&settings, line).unwrap();
        assert_eq!(r.start, at("2024-05-01T10:00:00.750Z"));
        assert_eq!(r.duration, Duration::from_millis(250));
        assert_eq!(r.path.as_deref(), Some("/api/v1/pay"));
        assert_eq!(r.status, Some(502));
        assert_eq!(
            parent_of(&r),
            Some((
                TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap(),
                SpanId::new(0x00f0_67aa_0ba9_02b7)
            ))
        );
        for (bad, why) in [
            ("not json", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"method":"GET"}"#, "time_iso8601: missing"),
            (
                r#"{"time_iso8601":"2024-05-01T10:00:01Z","request_time":-1}"#,
                "request_time: not a duration",
            ),
        ] {
            let e = parse_line(&settings, bad).unwrap_err().to_string();
            assert!(e.starts_with(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_gateway_access_log() {
        let settings = LogsSettings {
            format: LogFormat::Tracebridge,
            ..LogsSettings::default()
        };
        let line = r#"{"time":"2025-01-31T09:12:03.013Z","route":"checkout","method":"GET","path":"/checkout/1","status":200,"duration_ms":2.765,"upstream_address":"10.0.0.7:8080","bytes_sent":189,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"afbab40caaadedda","parent_id":"00f067aa0ba902b7","sampled":true,"extracted_format":"tracecontext","injected_formats":["tracecontext","baggage"]}"#;
        let r = parse_line(&settings, line).unwrap();
        assert_eq!(r.duration, Duration::from_micros(2765));
        assert_eq!(
            r.context,
            LoggedContext::Ids(
                TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap(),
                SpanId::new(0x00f0_67aa_0ba9_02b7)
            )
        );
    }

    #[test]
    fn ids_depend_on_the_line_only() {
        assert_eq!(line_ids(ALB), line_ids(ALB));
        assert_ne!(
            line_ids(ALB).1,
            line_ids(&ALB.replace("200 200", "200 201")).1
        );
    }
}
