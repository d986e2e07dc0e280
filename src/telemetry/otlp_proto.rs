//! The OTLP protobuf writer: a finished span straight to the bytes of its
//! `opentelemetry.proto.trace.v1.Span` message, with no intermediate structs. Pure
//! (no I/O): the batching and transport are in [`super::otlp_http`].
//!
//! The bytes are exactly those prost writes for opentelemetry-proto's own conversion
//! of the same span (`otlp_http`'s tests compare them byte for byte), so a collector
//! sees no difference. The varint and field writers are a few lines here rather than
//! prost's `#[doc(hidden)]` encoding module.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
pub(crate) const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// OTLP `SpanFlags`: the parent's remoteness is known, and it is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

pub(crate) fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn key(buf: &mut Vec<u8>, tag: u32, wire: u32) {
    varint(buf, u64::from(tag << 3 | wire));
}

/// A length-delimited field, written even when empty (a oneof member).
fn len_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    key(buf, tag, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// A `trace_state` field: the W3C `tracestate` text (`k=v,k=v`, what
/// `TraceState::header` returns), written straight from the entries. `header()` builds
/// it with a `format!` per entry and a join, about 1,000 instructions for each span
/// that carries a sampling threshold.
fn trace_state_field(buf: &mut Vec<u8>, tag: u32, state: &TraceState) {
    let entries = state.into_iter().len();
    let len = state
        .into_iter()
        .map(|(k, v)| k.len() + 1 + v.len())
        .sum::<usize>()
        + entries.saturating_sub(1);
    if len == 0 {
        return;
    }
    key(buf, tag, LEN);
    varint(buf, len as u64);
    for (i, (k, v)) in state.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(k.as_bytes());
        buf.push(b'=');
        buf.extend_from_slice(v.as_bytes());
    }
}

/// A proto3 `string`/`bytes` field: left out when empty, as prost does.
pub(crate) fn bytes_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        len_field(buf, tag, bytes);
    }
}

fn uint_field(buf: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(buf, tag, VARINT);
        varint(buf, v);
    }
}

fn fixed64_field(buf: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(buf, tag, FIXED64);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32_field(buf: &mut Vec<u8>, tag: u32, v: u32) {
    if v != 0 {
        key(buf, tag, FIXED32);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// An embedded message whose size is not computed in advance (events, links, value
/// kinds newer than this code): its body is written in place, then its length is
/// inserted in front of it.
pub(crate) fn message(buf: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, tag, LEN);
    let start = buf.len();
    body(buf);
    let len = buf.len() - start;
    varint(buf, len as u64);
    let prefix = buf.len() - start - len;
    buf[start..].rotate_right(prefix);
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `AnyValue` fields: string 1, bool 2, int 3, double 4, array 5 (`ArrayValue`,
/// `repeated AnyValue values = 1`). Oneof members are written even when zero.
fn any_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => bool_value(buf, *b),
        Value::I64(i) => int_value(buf, *i),
        Value::F64(f) => double_value(buf, *f),
        Value::String(s) => len_field(buf, 1, s.as_str().as_bytes()),
        Value::Array(array) => match array_len(array) {
            Some(len) => array_value(buf, array, len),
            None => message(buf, 5, |buf| array_items(buf, array)),
        },
        other => len_field(buf, 1, other.to_string().as_bytes()),
    }
}

/// An `ArrayValue` whose items take `len` bytes (from [`array_len`]).
fn array_value(buf: &mut Vec<u8>, array: &Array, len: usize) {
    key(buf, 5, LEN);
    varint(buf, len as u64);
    array_items(buf, array);
}

/// The `AnyValue` items of an `ArrayValue`, each behind its key and length.
fn array_items(buf: &mut Vec<u8>, array: &Array) {
    let item = |buf: &mut Vec<u8>, len: usize| {
        key(buf, 1, LEN);
        varint(buf, len as u64);
    };
    match array {
        Array::Bool(items) => items.iter().for_each(|b| {
            item(buf, BOOL_VALUE_LEN);
            bool_value(buf, *b);
        }),
        Array::I64(items) => items.iter().for_each(|i| {
            item(buf, int_value_len(*i));
            int_value(buf, *i);
        }),
        Array::F64(items) => items.iter().for_each(|f| {
            item(buf, DOUBLE_VALUE_LEN);
            double_value(buf, *f);
        }),
        Array::String(items) => items.iter().for_each(|s| {
            let s = s.as_str().as_bytes();
            item(buf, framed_len(s.len()));
            len_field(buf, 1, s);
        }),
        // A kind of array newer than this code: its text, rather than nothing.
        other => message(buf, 1, |buf| {
            len_field(buf, 1, other.to_string().as_bytes())
        }),
    }
}

fn bool_value(buf: &mut Vec<u8>, b: bool) {
    key(buf, 2, VARINT);
    varint(buf, u64::from(b));
}

fn int_value(buf: &mut Vec<u8>, i: i64) {
    key(buf, 3, VARINT);
    varint(buf, i as u64);
}

fn double_value(buf: &mut Vec<u8>, f: f64) {
    key(buf, 4, FIXED64);
    buf.extend_from_slice(&f.to_bits().to_le_bytes());
}

pub(crate) fn varint_len(v: u64) -> usize {
    // 7 bits a byte; 0 still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The size of a length-delimited field (a tag below 16) around `len` bytes.
fn framed_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The size of a proto3 `string`/`bytes` field of `len` bytes: nothing when empty.
fn bytes_field_len(len: usize) -> usize {
    match len {
        0 => 0,
        n => framed_len(n),
    }
}

/// The encoded size of a scalar `AnyValue` (arrays: [`array_len`]); `None` for a kind
/// newer than this code (then written through [`message`], which measures it
/// afterwards).
fn scalar_value_len(v: &Value) -> Option<usize> {
    Some(match v {
        Value::Bool(_) => BOOL_VALUE_LEN,
        Value::I64(i) => int_value_len(*i),
        Value::F64(_) => DOUBLE_VALUE_LEN,
        Value::String(s) => framed_len(s.as_str().len()),
        _ => return None,
    })
}

/// Sizes of the scalar `AnyValue`s [`bool_value`], [`int_value`] and [`double_value`]
/// write: a one-byte key, then a varint or eight bytes.
const BOOL_VALUE_LEN: usize = 2;
const DOUBLE_VALUE_LEN: usize = 9;
fn int_value_len(i: i64) -> usize {
    1 + varint_len(i as u64)
}

/// The encoded size of an `ArrayValue`'s items.
fn array_len(array: &Array) -> Option<usize> {
    Some(match array {
        Array::Bool(items) => items.len() * framed_len(BOOL_VALUE_LEN),
        Array::I64(items) => items.iter().map(|i| framed_len(int_value_len(*i))).sum(),
        Array::F64(items) => items.len() * framed_len(DOUBLE_VALUE_LEN),
        Array::String(items) => items
            .iter()
            .map(|s| framed_len(framed_len(s.as_str().len())))
            .sum(),
        _ => return None,
    })
}

/// `KeyValue { string key = 1; AnyValue value = 2; }`. Attributes are most of a
/// span, so their sizes are computed up front and each is written in one pass (a
/// length written after its body would have to be moved in front of it).
pub(crate) fn key_value(buf: &mut Vec<u8>, tag: u32, k: &str, v: &Value) {
    // An array's items are measured once, here, and written by `array_value`.
    let sizes = match v {
        Value::Array(array) => {
            array_len(array).map(|items| (framed_len(items), Some((array, items))))
        }
        scalar => scalar_value_len(scalar).map(|len| (len, None)),
    };
    let Some((value_len, array)) = sizes else {
        return message(buf, tag, |buf| {
            bytes_field(buf, 1, k.as_bytes());
            message(buf, 2, |buf| any_value(buf, v));
        });
    };
    let len = bytes_field_len(k.len()) + framed_len(value_len);
    key(buf, tag, LEN);
    varint(buf, len as u64);
    bytes_field(buf, 1, k.as_bytes());
    key(buf, 2, LEN);
    varint(buf, value_len as u64);
    match array {
        Some((array, items)) => array_value(buf, array, items),
        None => any_value(buf, v),
    }
}

/// The common attributes first, those whose every length fits one byte: a short
/// non-empty key with a short string, an integer or a few short strings. They are all
/// the attributes of a gateway span, so they are checked and written before any
/// general sizing; through [`key_value`], the port, the status code and the array of
/// injected formats cost about 380 instructions each. The gateway span's 14 attributes
/// took 2,400 instructions, 1,920 since (callgrind, whole gateway under load).
fn attributes(buf: &mut Vec<u8>, tag: u32, attrs: &[KeyValue]) {
    for kv in attrs {
        let k = kv.key.as_str();
        match &kv.value {
            Value::String(s) if short_string(buf, tag, k, s.as_str()) => {}
            Value::I64(i) if short_int(buf, tag, k, *i) => {}
            Value::Array(Array::String(items)) if short_strings(buf, tag, k, items) => {}
            v => key_value(buf, tag, k, v),
        }
    }
}

/// A one-byte protobuf field key.
const fn field(tag: u32, wire: u32) -> u8 {
    (tag << 3 | wire) as u8
}

/// Writes a `KeyValue`'s key, length, key field and the value field's key and length
/// when every length fits one byte, for an `AnyValue` of `any_len` bytes; the caller
/// then writes the `AnyValue`. `false`, with nothing written, otherwise. Inlined: as a
/// call it cost the gateway span's 14 attributes about 340 instructions more.
#[inline(always)]
fn short_key_value_head(buf: &mut Vec<u8>, tag: u32, k: &str, any_len: usize) -> bool {
    // KeyValue body: key field (2 + k) + value field (2 + AnyValue).
    let len = 4 + k.len() + any_len;
    if k.is_empty() || len >= 0x80 {
        return false;
    }
    buf.reserve(2 + len);
    // Multi-byte headers are single stores, where a push per byte would reload the
    // vector's length each time (a byte store may alias it).
    buf.extend_from_slice(&[field(tag, LEN), len as u8, field(1, LEN), k.len() as u8]);
    buf.extend_from_slice(k.as_bytes());
    buf.extend_from_slice(&[field(2, LEN), any_len as u8]);
    true
}

#[inline(always)]
fn short_string(buf: &mut Vec<u8>, tag: u32, k: &str, v: &str) -> bool {
    if !short_key_value_head(buf, tag, k, 2 + v.len()) {
        return false;
    }
    buf.extend_from_slice(&[field(1, LEN), v.len() as u8]);
    buf.extend_from_slice(v.as_bytes());
    true
}

fn short_int(buf: &mut Vec<u8>, tag: u32, k: &str, i: i64) -> bool {
    if !short_key_value_head(buf, tag, k, int_value_len(i)) {
        return false;
    }
    int_value(buf, i);
    true
}

fn short_strings(buf: &mut Vec<u8>, tag: u32, k: &str, items: &[StringValue]) -> bool {
    short_str_items(buf, tag, k, items.iter().map(StringValue::as_str))
}

fn short_strs(buf: &mut Vec<u8>, tag: u32, k: &str, items: &[&str]) -> bool {
    short_str_items(buf, tag, k, items.iter().copied())
}

fn short_str_items<'s>(
    buf: &mut Vec<u8>,
    tag: u32,
    k: &str,
    items: impl Iterator<Item = &'s str> + Clone,
) -> bool {
    // Each item: its key and length, then an AnyValue of 2 + s.
    let items_len: usize = items.clone().map(|s| 4 + s.len()).sum();
    if !short_key_value_head(buf, tag, k, 2 + items_len) {
        return false;
    }
    buf.extend_from_slice(&[field(5, LEN), items_len as u8]);
    for s in items {
        let n = s.len() as u8;
        buf.extend_from_slice(&[field(1, LEN), 2 + n, field(1, LEN), n]);
        buf.extend_from_slice(s.as_bytes());
    }
    true
}

fn span_flags(context: &SpanContext, parent_is_remote: bool) -> u32 {
    flags(context.trace_flags().to_u8(), parent_is_remote)
}

/// OTLP `Span.flags`: the W3C trace flags, and that the parent's remoteness is known.
fn flags(trace_flags: u8, parent_is_remote: bool) -> u32 {
    let mut flags = u32::from(trace_flags) | HAS_IS_REMOTE;
    if parent_is_remote {
        flags |= IS_REMOTE;
    }
    flags
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Appends the `Span` message of `span` (without a key or length): fields in tag
/// order, defaults left out, as prost writes them.
pub(crate) fn encode_span(span: &SpanData, buf: &mut Vec<u8>) {
    {
        let context = &span.span_context;
        bytes_field(buf, 1, &context.trace_id().to_bytes());
        bytes_field(buf, 2, &context.span_id().to_bytes());
        trace_state_field(buf, 3, context.trace_state());
        if span.parent_span_id != SpanId::INVALID {
            bytes_field(buf, 4, &span.parent_span_id.to_bytes());
        }
        bytes_field(buf, 5, span.name.as_bytes());
        uint_field(buf, 6, kind(&span.span_kind));
        fixed64_field(buf, 7, nanos(span.start_time));
        fixed64_field(buf, 8, nanos(span.end_time));
        attributes(buf, 9, &span.attributes);
        uint_field(buf, 10, u64::from(span.dropped_attributes_count));
        for event in span.events.iter() {
            message(buf, 11, |buf| {
                fixed64_field(buf, 1, nanos(event.timestamp));
                bytes_field(buf, 2, event.name.as_bytes());
                attributes(buf, 3, &event.attributes);
                uint_field(buf, 4, u64::from(event.dropped_attributes_count));
            });
        }
        uint_field(buf, 12, u64::from(span.events.dropped_count));
        for link in span.links.iter() {
            message(buf, 13, |buf| {
                let context = &link.span_context;
                bytes_field(buf, 1, &context.trace_id().to_bytes());
                bytes_field(buf, 2, &context.span_id().to_bytes());
                trace_state_field(buf, 3, context.trace_state());
                attributes(buf, 4, &link.attributes);
                uint_field(buf, 5, u64::from(link.dropped_attributes_count));
                fixed32_field(buf, 6, span_flags(context, context.is_remote()));
            });
        }
        uint_field(buf, 14, u64::from(span.links.dropped_count));
        status_and_flags(
            buf,
            &span.status,
            span_flags(context, span.parent_span_is_remote),
        );
    }
}

/// The last fields of a `Span`: its `Status { string message = 2; StatusCode code = 3; }`
/// (always present) and its flags.
fn status_and_flags(buf: &mut Vec<u8>, status: &Status, flags: u32) {
    let (code, description) = match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    let description_len = bytes_field_len(description.len());
    key(buf, 15, LEN);
    varint(
        buf,
        (description_len + if code != 0 { 2 } else { 0 }) as u64,
    );
    bytes_field(buf, 2, description.as_bytes());
    uint_field(buf, 3, code);
    fixed32_field(buf, 16, flags);
}

/// What a [`SpanWriter`] starts from: the fields of a span known when it starts.
pub(crate) struct SpanStart<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The W3C `tracestate` text of the span's own context (empty: none).
    pub trace_state: &'a str,
    /// The remote parent's span id; `None` for a root.
    pub parent: Option<[u8; 8]>,
    /// The name, in parts joined without a separator.
    pub name: &'a [&'a str],
    pub kind: SpanKind,
    pub start: SystemTime,
    pub sampled: bool,
}

/// A span written to its OTLP `Span` bytes while it happens, with no SDK span and no
/// `SpanData` in between: [`SpanWriter::start`] writes the fields known at the start
/// and keeps room for the end time, the attributes follow as they are known, then any
/// events, and [`SpanWriter::finish`] fills in the end time and writes the status and
/// flags. The bytes are those [`encode_span`] writes for the same `SpanData` (fields in
/// tag order; `span`'s tests compare the two), so a collector sees no difference.
#[derive(Debug)]
pub(crate) struct SpanWriter {
    buf: Vec<u8>,
    /// Where the end time's eight bytes go.
    end_at: usize,
    flags: u32,
}

impl SpanWriter {
    /// Writes the start of the span into `buf` (cleared first).
    pub(crate) fn start(mut buf: Vec<u8>, s: SpanStart<'_>) -> SpanWriter {
        buf.clear();
        bytes_field(&mut buf, 1, &s.trace_id);
        bytes_field(&mut buf, 2, &s.span_id);
        bytes_field(&mut buf, 3, s.trace_state.as_bytes());
        if let Some(parent) = &s.parent {
            bytes_field(&mut buf, 4, parent);
        }
        let name_len: usize = s.name.iter().map(|part| part.len()).sum();
        if name_len > 0 {
            key(&mut buf, 5, LEN);
            varint(&mut buf, name_len as u64);
            for part in s.name {
                buf.extend_from_slice(part.as_bytes());
            }
        }
        uint_field(&mut buf, 6, kind(&s.kind));
        fixed64_field(&mut buf, 7, nanos(s.start));
        // The end time (a time after 1970, so never the zero prost would leave out).
        key(&mut buf, 8, FIXED64);
        let end_at = buf.len();
        buf.extend_from_slice(&[0; 8]);
        SpanWriter {
            buf,
            end_at,
            flags: flags(u8::from(s.sampled), s.parent.is_some()),
        }
    }

    /// A string attribute.
    pub(crate) fn string(&mut self, k: &str, v: &str) {
        if !short_string(&mut self.buf, 9, k, v) {
            key_value(&mut self.buf, 9, k, &Value::String(v.to_owned().into()));
        }
    }

    /// An integer attribute.
    pub(crate) fn int(&mut self, k: &str, i: i64) {
        if !short_int(&mut self.buf, 9, k, i) {
            key_value(&mut self.buf, 9, k, &Value::I64(i));
        }
    }

    /// A string array attribute.
    pub(crate) fn strings(&mut self, k: &str, items: &[&str]) {
        if !short_strs(&mut self.buf, 9, k, items) {
            let items: Vec<StringValue> = items.iter().map(|s| s.to_string().into()).collect();
            key_value(&mut self.buf, 9, k, &Value::Array(Array::String(items)));
        }
    }

    /// An event with one integer attribute. Events follow every attribute.
    pub(crate) fn event(&mut self, at: SystemTime, name: &str, k: &str, i: i64) {
        message(&mut self.buf, 11, |buf| {
            fixed64_field(buf, 1, nanos(at));
            bytes_field(buf, 2, name.as_bytes());
            if !short_int(buf, 3, k, i) {
                key_value(buf, 3, k, &Value::I64(i));
            }
        });
    }

    /// The whole `Span` message (without its key and length).
    pub(crate) fn finish(mut self, end: SystemTime, status: &Status) -> Vec<u8> {
        let end = nanos(end).to_le_bytes();
        self.buf[self.end_at..self.end_at + 8].copy_from_slice(&end);
        status_and_flags(&mut self.buf, status, self.flags);
        self.buf
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Byte-for-byte comparisons with prost's encoding of opentelemetry-proto's own
    //! conversion; the span builders are shared with `otlp_http`'s tests.

    use super::*;
    use opentelemetry::trace::{Event, Link, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use proptest::prelude::*;
    use prost::Message;
    use std::borrow::Cow;
    use std::time::Duration;

    pub(crate) fn context(
        trace: u128,
        span: u64,
        flags: u8,
        state: &str,
        remote: bool,
    ) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::new(flags),
            remote,
            state.parse::<TraceState>().unwrap_or_default(),
        )
    }

    pub(crate) fn span(
        name: &'static str,
        attrs: Vec<KeyValue>,
        parent: u64,
        remote: bool,
        status: Status,
    ) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        SpanData {
            span_context: context(
                0x0af7651916cd43dd8448eb211c80319c,
                0xb7ad6b7169203331,
                1,
                "",
                false,
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: remote,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: start + Duration::from_micros(1500),
            attributes: attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("tracebridge").build(),
        }
    }

    pub(crate) fn gateway_attrs() -> Vec<KeyValue> {
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.path", "/api/orders"),
            KeyValue::new("http.response.status_code", 200i64),
            KeyValue::new("tracebridge.extracted", ""),
            KeyValue::new("flag", false),
            KeyValue::new("zero", 0i64),
            KeyValue::new("negative", -42i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new(
                "tracebridge.injected",
                Value::Array(Array::String(vec!["tracecontext".into(), "b3multi".into()])),
            ),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.5]))),
        ]
    }

    /// What prost writes for opentelemetry-proto's own conversion of `span`.
    fn reference(span: &SpanData) -> Vec<u8> {
        ProtoSpan::from(span.clone()).encode_to_vec()
    }

    /// Our bytes for `span`.
    fn ours(span: &SpanData) -> Vec<u8> {
        let mut buf = vec![];
        encode_span(span, &mut buf);
        buf
    }

    #[test]
    fn a_gateway_span_is_byte_for_byte_what_prost_writes() {
        for (parent, remote, status) in [
            (0, false, Status::Unset),
            (0x00f067aa0ba902b7, true, Status::Ok),
            (0x00f067aa0ba902b7, false, Status::error("upstream refused")),
        ] {
            let s = span("GET /api", gateway_attrs(), parent, remote, status);
            assert_eq!(ours(&s), reference(&s), "{s:?}");
        }
    }

    #[test]
    fn events_links_tracestate_and_counts_are_encoded_too() {
        let mut s = span("op", vec![KeyValue::new("k", "v")], 7, true, Status::Unset);
        s.span_context = context(1, 2, 0, "vendor=abc,other=1", false);
        s.span_kind = SpanKind::Client;
        s.dropped_attributes_count = 3;
        s.events.events = vec![Event::new(
            "retry",
            UNIX_EPOCH + Duration::from_secs(5),
            vec![KeyValue::new("attempt", 2i64)],
            1,
        )];
        s.events.dropped_count = 4;
        s.links.links = vec![Link::new(
            context(9, 8, 1, "a=b", true),
            vec![KeyValue::new("why", "follows")],
            6,
        )];
        s.links.dropped_count = 5;
        assert_eq!(ours(&s), reference(&s));
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            (-200i64..200).prop_map(Value::I64),
            any::<f64>().prop_map(Value::F64),
            ".{0,40}".prop_map(|s| Value::String(s.into())),
            proptest::collection::vec(".{0,8}", 0..4)
                .prop_map(|v| Value::Array(Array::String(v.into_iter().map(Into::into).collect()))),
            proptest::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
            proptest::collection::vec(any::<bool>(), 0..4)
                .prop_map(|v| Value::Array(Array::Bool(v))),
            proptest::collection::vec(any::<f64>(), 0..4).prop_map(|v| Value::Array(Array::F64(v))),
        ]
    }

    proptest! {
        #[test]
        fn any_attributes_encode_as_prost_does(
            attrs in proptest::collection::vec(("[a-z.]{0,20}", value()), 0..20),
            parent in any::<u64>(),
            remote in any::<bool>(),
        ) {
            let attrs = attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
            let status = match parent % 3 {
                0 => Status::Unset,
                1 => Status::Ok,
                _ => Status::error(format!("{parent}")),
            };
            let s = span("x", attrs, parent, remote, status);
            prop_assert_eq!(ours(&s), reference(&s));
        }

        #[test]
        fn varint_len_is_the_written_length(v in any::<u64>(), shift in 0u32..64) {
            for v in [v, v >> shift] {
                let mut buf = vec![];
                varint(&mut buf, v);
                prop_assert_eq!(varint_len(v), buf.len());
            }
        }
    }
}
