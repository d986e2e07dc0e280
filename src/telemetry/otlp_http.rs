//! The OTLP/HTTP span exporter (`protocol = "http/protobuf"`, the default): spans are
//! written straight to their protobuf bytes when they end, the export queue holds
//! bytes, and the exporter thread only frames a batch and posts it.
//!
//! Why not opentelemetry-otlp's HTTP exporter (gRPC still uses its tonic exporter):
//! it converts each `SpanData` into opentelemetry-proto structs on the exporter
//! thread (a `String` per attribute key and value, a `Vec` per id) before encoding
//! them. Under load (`benches/load/run.sh`, one pinned worker) that conversion cost
//! about 2.5 µs per span, and freeing the request thread's allocations on another
//! thread pushed the request thread's allocator onto its slow path: throughput with
//! export was 0.90× the same gateway without it, against the ≥ 0.95× target.
//!
//! The span bytes come from [`super::otlp_proto`] (pure); this file holds the batch
//! of encoded spans and the transport. The tests compare whole request bodies with
//! prost's encoding of opentelemetry-proto's own conversion, byte for byte.

use std::io::Write;
use std::time::Duration;

use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

use super::otlp::OtlpSettings;
use super::otlp_proto::{
    bytes_field, encode_span, key, key_value, message, varint, varint_len, LEN,
};
use super::pipeline::{Batch, BatchExport, FailureLog, FAILURE_REPORT_INTERVAL};
use crate::config::spec::{Compression, QueueSettings};

thread_local! {
    /// The request thread's buffer for encoding one span, reused from span to span.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Spans waiting for export, already encoded: the bytes of every span, and where each
/// export call's share of them ends (a call carries at most `batch_size` spans).
#[derive(Debug, Default)]
pub struct EncodedSpans {
    /// `head_room` bytes kept free for the request's framing, then the spans.
    bytes: Vec<u8>,
    head_room: usize,
    spans: usize,
    /// Offsets in `bytes` where a new call starts (after every `batch_size` spans).
    cuts: Vec<usize>,
    batch_size: usize,
}

impl EncodedSpans {
    /// The byte ranges of the export calls, `batch_size` spans each at most.
    fn chunks(&self) -> impl Iterator<Item = (&[u8], usize)> {
        let ends = self.cuts.iter().copied().chain([self.bytes.len()]);
        let starts = [self.head_room]
            .into_iter()
            .chain(self.cuts.iter().copied());
        let last = self.spans - self.cuts.len() * self.batch_size;
        let counts = (0..self.cuts.len()).map(|_| self.batch_size).chain([last]);
        starts
            .zip(ends)
            .zip(counts)
            .map(|((s, e), n)| (&self.bytes[s..e], n))
            .filter(|(_, n)| *n > 0)
    }

    /// From now on, keeps `head_room` bytes free in front of the spans (from the next
    /// [`Batch::clear`] on, which this does).
    fn keep_head_room(&mut self, head_room: usize) {
        self.head_room = head_room;
        self.clear();
    }

    /// The batch as one request body without copying its spans: `head(spans_len)` is
    /// written into the room in front of them and `tail` after them, and the buffer
    /// is handed over whole (the batch gets a new one of the same capacity). `None`,
    /// with nothing changed, when the batch makes more than one call or the head
    /// does not fit its room.
    fn take_body(
        &mut self,
        head: impl FnOnce(usize) -> Vec<u8>,
        tail: &[u8],
    ) -> Option<(bytes::Bytes, usize)> {
        if !self.cuts.is_empty() || self.spans == 0 {
            return None;
        }
        let head = head(self.bytes.len() - self.head_room);
        let start = self.head_room.checked_sub(head.len())?;
        self.bytes[start..self.head_room].copy_from_slice(&head);
        self.bytes.extend_from_slice(tail);
        let capacity = self.bytes.capacity();
        let whole = std::mem::replace(&mut self.bytes, Vec::with_capacity(capacity));
        let spans = self.spans;
        self.clear();
        Some((bytes::Bytes::from(whole).slice(start..), spans))
    }
}

impl Batch for EncodedSpans {
    /// The encoded span, made on the request's thread outside the queue's lock (in
    /// that thread's reused scratch buffer, handed back by `push`); the `SpanData` is
    /// freed there too, where the allocator's thread cache takes it back cheaply.
    type Item = Vec<u8>;

    fn prepare(span: SpanData) -> Vec<u8> {
        let mut buf = SCRATCH.take();
        buf.clear();
        encode_span(&span, &mut buf);
        buf
    }

    fn with_capacity(settings: &QueueSettings) -> Self {
        let spans = settings.batch_size.min(settings.queue_size);
        EncodedSpans {
            bytes: Vec::with_capacity(spans * 512),
            head_room: 0,
            spans: 0,
            cuts: Vec::with_capacity(settings.queue_size / settings.batch_size.max(1) + 1),
            batch_size: settings.batch_size.max(1),
        }
    }

    fn push(&mut self, item: Vec<u8>) {
        if self.spans > 0 && self.spans % self.batch_size == 0 {
            self.cuts.push(self.bytes.len());
        }
        // `ScopeSpans.spans` (field 2): a batch is the concatenation of these.
        key(&mut self.bytes, 2, LEN);
        varint(&mut self.bytes, item.len() as u64);
        self.bytes.extend_from_slice(&item);
        self.spans += 1;
        // `push` runs right after `prepare`, on the same thread.
        SCRATCH.set(item);
    }

    fn len(&self) -> usize {
        self.spans
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.bytes.resize(self.head_room, 0);
        self.cuts.clear();
        self.spans = 0;
    }

    fn split_partial(&mut self, rest: &mut Self) {
        let tail = self.spans % self.batch_size;
        if let (Some(&start), true) = (self.cuts.last(), tail > 0) {
            rest.bytes.extend_from_slice(&self.bytes[start..]);
            rest.spans += tail;
            self.bytes.truncate(start);
            self.cuts.pop();
            self.spans -= tail;
        }
    }
}

/// Posts encoded batches as `ExportTraceServiceRequest`s.
pub struct OtlpHttpExporter {
    client: reqwest::blocking::Client,
    endpoint: String,
    headers: reqwest::header::HeaderMap,
    gzip: bool,
    /// `ResourceSpans.resource` (field 1), encoded once.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url` (field 3), encoded once (empty when there is none).
    resource_schema: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), encoded once.
    scope: Vec<u8>,
    /// Logs the start, continuation and end of a run of failed calls.
    failures: FailureLog,
}

impl std::fmt::Debug for OtlpHttpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpExporter")
            .field("endpoint", &self.endpoint)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// Why an export call failed (the spans of the call are counted as dropped). The
/// messages leave the endpoint out: the failure log line names it once.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No answer: connection refused, timeout, reset.
    #[error("no answer ({})", cause_chain(.1))]
    Send(String, reqwest::Error),
    /// The collector answered with a non-2xx status (500, 429 …).
    #[error("the collector answered {1}")]
    Status(String, reqwest::StatusCode),
    /// gzip failed (out of memory).
    #[error("gzip: {0}")]
    Gzip(std::io::Error),
}

/// The causes under a reqwest error ("tcp connect error: Connection refused (os error
/// 111)"), which its own message ("error sending request for url …") leaves out.
fn cause_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        cause = c.source();
    }
    if e.is_timeout() && !parts.iter().any(|p| p.contains("timed out")) {
        parts.insert(0, "timed out".to_string());
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// A blocking HTTP client for an exporter (`what` names it in warnings) and the
/// headers of its every request: the configured `headers` (an invalid one is left out
/// with a warning) and `Content-Type`. Build it outside any tokio runtime (the blocking
/// client runs its own).
pub(crate) fn http_client(
    what: &str,
    headers: &std::collections::BTreeMap<String, String>,
    content_type: &'static str,
    timeout: Duration,
) -> Result<(reqwest::blocking::Client, reqwest::header::HeaderMap), String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        match (
            reqwest::header::HeaderName::try_from(k.as_str()),
            reqwest::header::HeaderValue::try_from(v.as_str()),
        ) {
            (Ok(k), Ok(v)) => {
                map.insert(k, v);
            }
            _ => log::warn!("{what} header {k:?} is not a valid HTTP header; left out"),
        }
    }
    map.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static(content_type),
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("tracebridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    Ok((client, map))
}

/// POSTs `body` to `endpoint` with `headers` and reads the (small) answer, so the
/// connection can be reused; the answer's status.
pub(crate) fn post(
    client: &reqwest::blocking::Client,
    endpoint: &str,
    headers: &reqwest::header::HeaderMap,
    body: impl Into<reqwest::blocking::Body>,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let response = client
        .post(endpoint)
        .headers(headers.clone())
        .body(body)
        .send()?;
    let status = response.status();
    let _ = response.bytes();
    Ok(status)
}

impl OtlpHttpExporter {
    /// A client for `settings` sending spans of `resource`, made by the tracer named
    /// `scope`. Build and drop it outside any tokio runtime (the blocking client runs
    /// its own).
    pub fn new(settings: &OtlpSettings, resource: &Resource, scope: &str) -> Result<Self, String> {
        let (client, mut headers) = http_client(
            "OTLP",
            &settings.headers,
            "application/x-protobuf",
            settings.timeout,
        )?;
        if settings.compression == Compression::Gzip {
            headers.insert(
                reqwest::header::CONTENT_ENCODING,
                reqwest::header::HeaderValue::from_static("gzip"),
            );
        }
        let mut encoded_resource = Vec::new();
        message(&mut encoded_resource, 1, |buf| {
            for (k, v) in resource.iter() {
                key_value(buf, 1, k.as_str(), v);
            }
        });
        let mut encoded_scope = Vec::new();
        message(&mut encoded_scope, 1, |buf| {
            bytes_field(buf, 1, scope.as_bytes())
        });
        Ok(OtlpHttpExporter {
            client,
            endpoint: settings.endpoint.clone(),
            headers,
            gzip: settings.compression == Compression::Gzip,
            resource: encoded_resource,
            resource_schema: {
                let mut field = Vec::new();
                bytes_field(
                    &mut field,
                    3,
                    resource.schema_url().unwrap_or_default().as_bytes(),
                );
                field
            },
            scope: encoded_scope,
            failures: FailureLog::new(settings.endpoint.clone(), FAILURE_REPORT_INTERVAL),
        })
    }

    /// What goes in front of `spans_len` bytes of encoded spans in an
    /// `ExportTraceServiceRequest { resource_spans: [{ resource, scope_spans: [{
    /// scope, spans }], schema_url }] }` (`resource_schema` goes after them).
    fn head(&self, spans_len: usize) -> Vec<u8> {
        let scope_spans_len = self.scope.len() + spans_len;
        let resource_spans_len = self.resource.len()
            + 1
            + varint_len(scope_spans_len as u64)
            + scope_spans_len
            + self.resource_schema.len();
        let mut head = Vec::with_capacity(self.head_room());
        key(&mut head, 1, LEN);
        varint(&mut head, resource_spans_len as u64);
        head.extend_from_slice(&self.resource);
        key(&mut head, 2, LEN);
        varint(&mut head, scope_spans_len as u64);
        head.extend_from_slice(&self.scope);
        head
    }

    /// The longest [`Self::head`]: two one-byte keys, two lengths of at most five bytes.
    fn head_room(&self) -> usize {
        12 + self.resource.len() + self.scope.len()
    }

    /// The whole request around already encoded spans, copied into a new buffer.
    pub fn request_body(&self, spans: &[u8]) -> Vec<u8> {
        let head = self.head(spans.len());
        let mut body = Vec::with_capacity(head.len() + spans.len() + self.resource_schema.len());
        body.extend_from_slice(&head);
        body.extend_from_slice(spans);
        body.extend_from_slice(&self.resource_schema);
        body
    }

    fn gzip(body: &[u8]) -> Result<Vec<u8>, ExportError> {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::default(),
        );
        gz.write_all(body)
            .and_then(|()| gz.finish())
            .map_err(ExportError::Gzip)
    }

    fn post(&self, body: impl Into<reqwest::blocking::Body>) -> Result<(), ExportError> {
        let status = post(&self.client, &self.endpoint, &self.headers, body)
            .map_err(|e| ExportError::Send(self.endpoint.clone(), e))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Status(self.endpoint.clone(), status))
        }
    }
}

impl BatchExport for OtlpHttpExporter {
    type Batch = EncodedSpans;

    /// A batch of one call, uncompressed (the common case under load), is posted from
    /// its own buffer: the framing goes into room kept in front of the spans, and the
    /// buffer becomes the request body as it is, where copying it into a new body
    /// would move about 300 KB per 512 spans once more through the gateway's caches.
    /// Other batches (the first two, before they have that room; several calls'
    /// worth; gzip) are framed by copying.
    fn export(&mut self, batch: &mut EncodedSpans) -> (u64, u64) {
        let (mut exported, mut failed) = (0, 0);
        let mut failures =
            std::mem::replace(&mut self.failures, FailureLog::new("", Duration::ZERO));
        let mut count = |n: usize, result: Result<(), ExportError>| match result {
            Ok(()) => {
                failures.observe(n as u64, Ok(()));
                exported += n as u64;
            }
            Err(e) => {
                failures.observe(n as u64, Err(&e));
                failed += n as u64;
            }
        };
        let in_place = if self.gzip {
            None
        } else {
            batch.take_body(|len| self.head(len), &self.resource_schema)
        };
        if let Some((body, n)) = in_place {
            count(n, self.post(body));
        } else {
            for (spans, n) in batch.chunks() {
                let body = self.request_body(spans);
                let result = if self.gzip {
                    Self::gzip(&body).and_then(|gz| self.post(gz))
                } else {
                    self.post(body)
                };
                count(n, result);
            }
        }
        self.failures = failures;
        batch.keep_head_room(self.head_room());
        (exported, failed)
    }

    fn shutdown(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::otlp_proto::tests::{gateway_attrs, span};
    use opentelemetry::trace::Status;
    use opentelemetry::KeyValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use prost::Message;

    #[test]
    fn a_request_decodes_to_what_the_sdk_conversion_makes() {
        let attrs = [
            KeyValue::new("service.name", "gw"),
            KeyValue::new("host.name", "h1"),
        ];
        for resource in [
            Resource::builder_empty()
                .with_attributes(attrs.clone())
                .build(),
            Resource::builder_empty()
                .with_schema_url(attrs.clone(), "https://opentelemetry.io/schemas/1.26.0")
                .build(),
        ] {
            let settings = OtlpSettings {
                protocol: crate::config::spec::OtlpProtocol::HttpProtobuf,
                endpoint: "http://127.0.0.1:9/v1/traces".into(),
                headers: Default::default(),
                timeout: Duration::from_secs(1),
                compression: Compression::None,
            };
            let exporter =
                OtlpHttpExporter::new(&settings, &resource, "tracebridge").expect("client");
            let spans: Vec<SpanData> = (0..3)
                .map(|i| span("GET /", gateway_attrs(), i, i == 1, Status::Unset))
                .collect();
            let mut batch = EncodedSpans::with_capacity(&QueueSettings {
                queue_size: 10,
                batch_size: 10,
                batch_delay: Duration::from_secs(1),
            });
            spans
                .iter()
                .for_each(|s| batch.push(EncodedSpans::prepare(s.clone())));
            let (bytes, n) = batch.chunks().next().expect("one chunk");
            assert_eq!(n, 3);
            let body = exporter.request_body(bytes);
            assert_eq!(body.len(), body.capacity(), "lengths computed up front");
            let got = ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
            let want = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(
                    spans.clone(),
                    &ResourceAttributesWithSchema::from(&resource),
                ),
            };
            assert_eq!(got, want);

            // Framed in place once the batch keeps room for the head: the same request.
            let in_place = |batch: &mut EncodedSpans| {
                batch.take_body(|len| exporter.head(len), &exporter.resource_schema)
            };
            assert!(in_place(&mut batch).is_none(), "no room yet");
            batch.keep_head_room(exporter.head_room());
            spans
                .iter()
                .for_each(|s| batch.push(EncodedSpans::prepare(s.clone())));
            let (body, n) = in_place(&mut batch).expect("one call, head in its room");
            assert_eq!(n, 3);
            let got = ExportTraceServiceRequest::decode(body).expect("decodes");
            assert_eq!(got, want);
            assert_eq!((batch.len(), batch.chunks().count()), (0, 0), "emptied");
        }
    }

    #[test]
    fn a_batch_is_cut_into_calls_of_batch_size() {
        let mut batch = EncodedSpans::with_capacity(&QueueSettings {
            queue_size: 10,
            batch_size: 3,
            batch_delay: Duration::from_secs(1),
        });
        assert_eq!(batch.chunks().count(), 0, "an empty batch makes no call");
        let s = span("GET /", gateway_attrs(), 0, false, Status::Unset);
        for _ in 0..7 {
            batch.push(EncodedSpans::prepare(s.clone()));
        }
        let counts: Vec<usize> = batch.chunks().map(|(_, n)| n).collect();
        assert_eq!(counts, vec![3, 3, 1]);
        assert!(
            batch.take_body(|_| Vec::new(), &[]).is_none(),
            "several calls are never one body"
        );
        for (bytes, n) in batch.chunks() {
            let decoded = ScopeSpans::decode(bytes).expect("each chunk is whole spans");
            assert_eq!(decoded.spans.len(), n);
        }
        let mut rest = EncodedSpans::with_capacity(&QueueSettings {
            queue_size: 10,
            batch_size: 3,
            batch_delay: Duration::from_secs(1),
        });
        batch.split_partial(&mut rest);
        let counts: Vec<usize> = batch.chunks().map(|(_, n)| n).collect();
        assert_eq!(counts, vec![3, 3], "the whole calls stay");
        let moved: Vec<usize> = rest.chunks().map(|(_, n)| n).collect();
        assert_eq!(moved, vec![1], "the last span moves");
        for (bytes, n) in batch.chunks().chain(rest.chunks()) {
            let decoded = ScopeSpans::decode(bytes).expect("each chunk is whole spans");
            assert_eq!(decoded.spans.len(), n);
        }
        batch.clear();
        assert_eq!((batch.len(), batch.chunks().count()), (0, 0));
    }
}
