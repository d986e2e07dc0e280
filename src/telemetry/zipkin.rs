//! The Zipkin v2 JSON exporter (`kind = "zipkin"` in `[[telemetry.exporters]]`): each
//! batch is posted as one JSON array to `POST /api/v2/spans`, the format Zipkin itself
//! and the Zipkin receivers of Jaeger, SkyWalking OAP and the OpenTelemetry Collector
//! accept, so an old backend keeps receiving the gateway's spans during a migration.
//!
//! The mapping follows the OpenTelemetry specification's "OpenTelemetry to Zipkin
//! Transformation" (`specification/trace/sdk_exporters/zipkin.md`) and the generic
//! rules of `common/mapping-to-non-otlp.md`; the JSON fields are those of
//! `zipkin2-api.yaml` (openzipkin/zipkin-api):
//!
//! - `traceId` 32 lowercase hex, `id` and `parentId` (absent for a root) 16;
//! - `kind`: `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER`; INTERNAL is omitted;
//! - `timestamp` and `duration` in whole microseconds (`duration` at least 1);
//! - `localEndpoint.serviceName` = the resource's `service.name`;
//! - `remoteEndpoint`: for a SERVER (or CONSUMER) span the peer that called, from
//!   `client.address` / `network.peer.address` (+ `client.port` /
//!   `network.peer.port`); for CLIENT / PRODUCER the spec's ranking (`peer.service`,
//!   `server.address`, `network.peer.address`…);
//! - every attribute a tag, as a string (booleans `true` / `false`, arrays as a JSON
//!   list); `otel.scope.name` / `otel.scope.version`; `otel.status_code` (`OK` /
//!   `ERROR`, absent when unset) and `error` (the description, `""` when none) for
//!   ERROR only; `otel.dropped_{attributes,events,links}_count` when non-zero;
//! - events as `annotations` (`name`, or `name: {"k":"v",…}` with attributes);
//! - fields with nothing to say are left out, as the spec asks.
//!
//! Spans are queued as `SpanData` and encoded on the exporter thread, never on a
//! request's.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use serde_json::{json, Map};

use super::pipeline::{BatchExport, FailureLog, SdkSpans, FAILURE_REPORT_INTERVAL};
use crate::config::spec::ZipkinSettings;

/// Whole microseconds since the epoch (0 before it).
fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A tag value: primitives as text, arrays as a JSON list (the spec's rule).
fn tag(v: &Value) -> String {
    // opentelemetry's `Value` prints arrays as a JSON list (`["a","b"]`), booleans
    // as `true` / `false`.
    v.as_str().into_owned()
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// An endpoint from an address and an optional port: `ipv4` / `ipv6` when the address
/// is an IP, `serviceName` otherwise (a host name or `peer.service`).
fn endpoint(address: &str, port: Option<&Value>) -> serde_json::Value {
    let mut e = Map::new();
    match address.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            e.insert("ipv4".into(), ip.to_string().into());
        }
        Ok(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            // The schema prefers ipv4 for mapped addresses.
            Some(v4) => {
                e.insert("ipv4".into(), v4.to_string().into());
            }
            None => {
                e.insert("ipv6".into(), ip.to_string().into());
            }
        },
        Err(_) => {
            e.insert("serviceName".into(), address.to_lowercase().into());
        }
    }
    if let Some(Value::I64(p)) = port {
        // "Please don't set to zero."
        if (1..=65535).contains(p) {
            e.insert("port".into(), (*p).into());
        }
    }
    serde_json::Value::Object(e)
}

/// The other side of the span: the caller for SERVER / CONSUMER spans, the callee by the
/// spec's ranking for CLIENT / PRODUCER; `None` for INTERNAL or when nothing names it.
fn remote_endpoint(span: &SpanData) -> Option<serde_json::Value> {
    let text = |k: &str| attr(span, k).map(|v| v.as_str().into_owned());
    match span.span_kind {
        SpanKind::Server | SpanKind::Consumer => {
            for (addr, port) in [
                ("client.address", "client.port"),
                ("network.peer.address", "network.peer.port"),
            ] {
                if let Some(a) = text(addr) {
                    return Some(endpoint(&a, attr(span, port)));
                }
            }
            None
        }
        SpanKind::Client | SpanKind::Producer => {
            for (addr, port) in [
                ("peer.service", ""),
                ("server.address", "server.port"),
                ("net.peer.name", "net.peer.port"),
                ("network.peer.address", "network.peer.port"),
                ("peer.hostname", ""),
                ("peer.address", ""),
                ("db.name", ""),
            ] {
                if let Some(a) = text(addr) {
                    return Some(endpoint(&a, attr(span, port)));
                }
            }
            None
        }
        SpanKind::Internal => None,
    }
}

/// One span as a Zipkin v2 JSON object; `service` is the resource's `service.name`.
pub fn span_json(span: &SpanData, service: &str) -> serde_json::Value {
    let ctx = &span.span_context;
    let mut out = Map::new();
    out.insert("traceId".into(), format!("{:032x}", ctx.trace_id()).into());
    out.insert("id".into(), format!("{:016x}", ctx.span_id()).into());
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        out.insert(
            "parentId".into(),
            format!("{:016x}", span.parent_span_id).into(),
        );
    }
    out.insert("name".into(), span.name.as_ref().into());
    let kind = match span.span_kind {
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    };
    if let Some(kind) = kind {
        out.insert("kind".into(), kind.into());
    }
    let start = micros(span.start_time);
    out.insert("timestamp".into(), start.into());
    let took = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO);
    let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    out.insert("duration".into(), took.max(1).into());
    out.insert("localEndpoint".into(), json!({ "serviceName": service }));
    if let Some(remote) = remote_endpoint(span) {
        out.insert("remoteEndpoint".into(), remote);
    }
    if !span.events.is_empty() {
        let annotations: Vec<serde_json::Value> = span
            .events
            .iter()
            .map(|e| {
                let value = if e.attributes.is_empty() {
                    e.name.to_string()
                } else {
                    let attrs: Map<String, serde_json::Value> = e
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.to_string(), tag(&kv.value).into()))
                        .collect();
                    format!("{}: {}", e.name, serde_json::Value::Object(attrs))
                };
                json!({ "timestamp": micros(e.timestamp), "value": value })
            })
            .collect();
        out.insert("annotations".into(), annotations.into());
    }
    let mut tags = Map::new();
    for kv in &span.attributes {
        tags.insert(kv.key.to_string(), tag(&kv.value).into());
    }
    let scope = &span.instrumentation_scope;
    tags.insert("otel.scope.name".into(), scope.name().into());
    if let Some(v) = scope.version() {
        tags.insert("otel.scope.version".into(), v.into());
    }
    match &span.status {
        Status::Unset => {}
        Status::Ok => {
            tags.insert("otel.status_code".into(), "OK".into());
        }
        Status::Error { description } => {
            tags.insert("otel.status_code".into(), "ERROR".into());
            tags.insert("error".into(), description.to_string().into());
        }
    }
    for (key, n) in [
        (
            "otel.dropped_attributes_count",
            span.dropped_attributes_count,
        ),
        ("otel.dropped_events_count", span.events.dropped_count),
        ("otel.dropped_links_count", span.links.dropped_count),
    ] {
        if n > 0 {
            tags.insert(key.into(), n.to_string().into());
        }
    }
    out.insert("tags".into(), tags.into());
    serde_json::Value::Object(out)
}

/// Why a Zipkin post failed.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    /// No answer: connection refused, timeout, reset.
    #[error("no answer ({0})")]
    Send(reqwest::Error),
    /// A non-2xx status.
    #[error("the server answered {0}")]
    Status(reqwest::StatusCode),
}

/// Posts batches of spans as Zipkin v2 JSON.
pub struct ZipkinExporter {
    client: reqwest::blocking::Client,
    endpoint: String,
    headers: reqwest::header::HeaderMap,
    service: String,
    failures: FailureLog,
}

impl ZipkinExporter {
    /// A client for `settings`, naming `resource`'s `service.name` as every span's
    /// local endpoint. Build it on the exporter thread, outside any tokio runtime (the
    /// blocking client runs its own).
    pub fn new(settings: &ZipkinSettings, resource: &Resource) -> Result<Self, String> {
        let (client, headers) = super::otlp_http::http_client(
            "Zipkin",
            &settings.headers,
            "application/json",
            settings.timeout,
        )?;
        let service = resource
            .get(&Key::from_static_str("service.name"))
            .map_or_else(|| "tracebridge".to_string(), |v| v.as_str().into_owned());
        Ok(ZipkinExporter {
            client,
            endpoint: settings.endpoint.clone(),
            headers,
            service,
            failures: FailureLog::new(settings.endpoint.clone(), FAILURE_REPORT_INTERVAL),
        })
    }

    /// The request body for `spans`: a JSON array (`ListOfSpans`).
    pub fn body(&self, spans: &[SpanData]) -> Vec<u8> {
        let list: Vec<serde_json::Value> =
            spans.iter().map(|s| span_json(s, &self.service)).collect();
        serde_json::to_vec(&list).unwrap_or_else(|_| b"[]".to_vec())
    }

    fn post(&self, body: Vec<u8>) -> Result<(), ZipkinError> {
        let status = super::otlp_http::post(&self.client, &self.endpoint, &self.headers, body)
            .map_err(ZipkinError::Send)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ZipkinError::Status(status))
        }
    }
}

impl BatchExport for ZipkinExporter {
    type Batch = SdkSpans;

    fn export(&mut self, batch: &mut SdkSpans) -> (u64, u64) {
        let (mut exported, mut failed) = (0, 0);
        while let Some(chunk) = batch.next_chunk() {
            let n = chunk.len() as u64;
            let body = self.body(&chunk);
            match self.post(body) {
                Ok(()) => {
                    self.failures.observe(n, Ok(()));
                    exported += n;
                }
                Err(e) => {
                    self.failures.observe(n, Err(&e));
                    failed += n;
                }
            }
        }
        (exported, failed)
    }

    fn shutdown(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::otlp_proto::tests::span;
    use opentelemetry::KeyValue;

    #[test]
    fn a_server_span_maps_as_the_spec_says() {
        let mut s = span(
            "GET /orders",
            vec![
                KeyValue::new("client.address", "192.0.2.7"),
                KeyValue::new("http.response.status_code", 502_i64),
                KeyValue::new(
                    "tracebridge.injected_formats",
                    Value::Array(
                        vec![
                            opentelemetry::StringValue::from("tracecontext"),
                            opentelemetry::StringValue::from("b3"),
                        ]
                        .into(),
                    ),
                ),
                KeyValue::new("flag", true),
            ],
            0x00f0_67aa_0ba9_02b7,
            true,
            Status::error("upstream unreachable"),
        );
        s.events.events.push(opentelemetry::trace::Event::new(
            "retry",
            s.start_time + Duration::from_micros(10),
            vec![KeyValue::new("tracebridge.attempt", 2_i64)],
            0,
        ));
        let v = span_json(&s, "edge");
        assert_eq!(v["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["id"], "b7ad6b7169203331");
        assert_eq!(v["parentId"], "00f067aa0ba902b7");
        assert_eq!(v["kind"], "SERVER");
        assert_eq!(v["timestamp"], 1_700_000_000_123_456_u64);
        assert_eq!(v["duration"], 1500);
        assert_eq!(v["localEndpoint"], json!({"serviceName": "edge"}));
        assert_eq!(v["remoteEndpoint"], json!({"ipv4": "192.0.2.7"}));
        let tags = &v["tags"];
        assert_eq!(tags["http.response.status_code"], "502");
        assert_eq!(
            tags["tracebridge.injected_formats"],
            r#"["tracecontext","b3"]"#
        );
        assert_eq!(tags["flag"], "true");
        assert_eq!(tags["otel.status_code"], "ERROR");
        assert_eq!(tags["error"], "upstream unreachable");
        assert_eq!(tags["otel.scope.name"], "tracebridge");
        assert_eq!(
            v["annotations"],
            json!([{"timestamp": 1_700_000_000_123_466_u64, "value": "retry: {\"tracebridge.attempt\":\"2\"}"}])
        );
    }

    #[test]
    fn unset_status_internal_kind_and_roots_leave_fields_out() {
        let mut s = span("work", vec![], 0, false, Status::Unset);
        s.span_kind = SpanKind::Internal;
        s.end_time = s.start_time;
        let v = span_json(&s, "edge");
        let obj = v.as_object().unwrap();
        for absent in ["parentId", "kind", "remoteEndpoint", "annotations"] {
            assert!(!obj.contains_key(absent), "{absent}: {v}");
        }
        assert_eq!(v["duration"], 1, "rounded up to the schema's minimum");
        assert!(v["tags"].get("otel.status_code").is_none());
        assert!(v["tags"].get("error").is_none());
        let ok = span("ok", vec![], 0, false, Status::Ok);
        let v = span_json(&ok, "edge");
        assert_eq!(v["tags"]["otel.status_code"], "OK");
        assert!(v["tags"].get("error").is_none());
    }

    #[test]
    fn endpoints_from_addresses() {
        assert_eq!(
            endpoint("2001:db8::1", Some(&Value::I64(443))),
            json!({"ipv6": "2001:db8::1", "port": 443})
        );
        assert_eq!(
            endpoint("::ffff:10.0.0.1", Some(&Value::I64(0))),
            json!({"ipv4": "10.0.0.1"})
        );
        assert_eq!(endpoint("Orders", None), json!({"serviceName": "orders"}));
        let mut s = span(
            "call",
            vec![
                KeyValue::new("server.address", "db.internal"),
                KeyValue::new("server.port", 5432_i64),
                KeyValue::new("peer.service", "billing"),
            ],
            0,
            false,
            Status::Unset,
        );
        s.span_kind = SpanKind::Client;
        assert_eq!(
            remote_endpoint(&s),
            Some(json!({"serviceName": "billing"})),
            "peer.service ranks first"
        );
    }
}
