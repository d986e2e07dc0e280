//! The `stdout` span exporter: one JSON object per span per line, the embedded
//! default, so a newcomer sees the gateway span next to the echo answer.

use std::io::Write;

use opentelemetry::trace::Status;
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{json, Map};

/// Writes spans to standard output as JSON lines.
#[derive(Debug, Default)]
pub(crate) struct StdoutExporter;

fn value(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => json!(b),
        Value::I64(i) => json!(i),
        Value::F64(f) => json!(f),
        Value::String(s) => json!(s.as_str()),
        Value::Array(opentelemetry::Array::String(items)) => {
            json!(items.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        }
        other => json!(other.to_string()),
    }
}

fn attributes<'a>(
    kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
) -> Map<String, serde_json::Value> {
    kvs.map(|kv| (kv.key.to_string(), value(&kv.value)))
        .collect()
}

fn nanos(t: std::time::SystemTime) -> u128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// One span as a JSON object.
pub(crate) fn span_json(span: &SpanData) -> serde_json::Value {
    let parent = span.parent_span_id;
    json!({
        "trace_id": span.span_context.trace_id().to_string(),
        "span_id": span.span_context.span_id().to_string(),
        "parent_span_id": (parent != opentelemetry::trace::SpanId::INVALID).then(|| parent.to_string()),
        "name": span.name.as_ref(),
        "kind": format!("{:?}", span.span_kind).to_lowercase(),
        "start_time_unix_nano": nanos(span.start_time).to_string(),
        "end_time_unix_nano": nanos(span.end_time).to_string(),
        "status": match &span.status {
            Status::Unset => json!("unset"),
            Status::Ok => json!("ok"),
            Status::Error { description } => json!({"error": description.as_ref()}),
        },
        "attributes": attributes(span.attributes.iter()),
        "events": span.events.iter().map(|e| json!({
            "name": e.name.as_ref(),
            "time_unix_nano": nanos(e.timestamp).to_string(),
            "attributes": attributes(e.attributes.iter()),
        })).collect::<Vec<_>>(),
        "links": span.links.iter().map(|l| json!({
            "trace_id": l.span_context.trace_id().to_string(),
            "span_id": l.span_context.span_id().to_string(),
            "attributes": attributes(l.attributes.iter()),
        })).collect::<Vec<_>>(),
    })
}

impl SpanExporter for StdoutExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for span in &batch {
            out.push_str(&span_json(span).to_string());
            out.push('\n');
        }
        // A closed stdout must not fail the pipeline: spans are best-effort output.
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
        Ok(())
    }
}
