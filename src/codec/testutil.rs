//! What the codecs' unit tests share: hops, header maps, ids from hex, baggage entries,
//! and the vector rows and checks of the B3, Jaeger and OT tests.

use http::header::AsHeaderName;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::model::{BaggageEntry, Hop, SpanId, TraceContext, TraceId};

/// The hop of the `call_index`-th outgoing call made by span `span_id`: service `gw`,
/// instance `gw-0`, endpoint `/`, peer `origin:80` (tests that read those fields set
/// their own with `..hop_at(..)`).
pub fn hop_at(span_id: u64, call_index: u32) -> Hop<'static> {
    Hop {
        span_id: SpanId::new(span_id).unwrap(),
        service: "gw",
        instance: "gw-0",
        endpoint: "/",
        peer_address: "origin:80",
        call_index,
    }
}

/// The hop most inject tests continue: span id `1122334455667788`, first call.
pub fn hop() -> Hop<'static> {
    hop_at(0x1122334455667788, 1)
}

/// A trace id from hex (any width up to 32 digits, non-zero).
pub fn hex128(hex: &str) -> TraceId {
    TraceId::new(u128::from_str_radix(hex, 16).unwrap()).unwrap()
}

/// A span id from hex (any width up to 16 digits, non-zero).
pub fn hex64(hex: &str) -> SpanId {
    SpanId::new(u64::from_str_radix(hex, 16).unwrap()).unwrap()
}

/// A baggage entry without properties.
pub fn entry(key: &str, value: &str) -> BaggageEntry {
    BaggageEntry {
        key: key.into(),
        value: value.into(),
        properties: String::new(),
    }
}

/// A header map of `(name, value)` pairs; names in any case, a repeated name becomes
/// repeated fields, in order.
pub fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A header map of arbitrary bytes for "never panics" properties: the fields whose bytes
/// can be a header value, appended in order; the others are left out.
pub fn raw_map<'a, B: AsRef<[u8]>>(
    fields: impl IntoIterator<Item = (&'a HeaderName, B)>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, bytes) in fields {
        if let Ok(v) = HeaderValue::from_bytes(bytes.as_ref()) {
            h.append(name.clone(), v);
        }
    }
    h
}

/// The first value of `name` as text.
pub fn get(h: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

/// The expected outcome of a valid vector, in the vocabulary of vectors.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub trace: Option<&'static str>,
    pub span: Option<&'static str>,
    pub sampled: Option<bool>,
    pub debug: bool,
    pub baggage: &'static [(&'static str, &'static str)],
}

/// One vector: `Ok(expect)` when valid, `Err(reason)` when it must be rejected.
pub struct Row {
    pub id: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub expect: Result<Expect, &'static str>,
}

pub const fn ok(
    trace: Option<&'static str>,
    span: Option<&'static str>,
    sampled: Option<bool>,
    debug: bool,
) -> Result<Expect, &'static str> {
    Ok(Expect {
        trace,
        span,
        sampled,
        debug,
        baggage: &[],
    })
}

/// Baggage as `(key, value)` pairs, properties left out.
pub fn pairs(baggage: &[BaggageEntry]) -> Vec<(&str, &str)> {
    baggage
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect()
}

fn hex<T: std::fmt::Display>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// Asserts that `ctx` is what `expect` describes.
pub fn check(id: &str, ctx: &TraceContext, expect: &Expect) {
    assert_eq!(
        hex::<TraceId>(ctx.trace_id).as_deref(),
        expect.trace,
        "{id}: trace id"
    );
    assert_eq!(
        hex::<SpanId>(ctx.parent_id).as_deref(),
        expect.span,
        "{id}: parent id"
    );
    assert_eq!(ctx.sampling.decision(), expect.sampled, "{id}: sampled");
    assert_eq!(ctx.debug, expect.debug, "{id}: debug");
    assert!(!ctx.random, "{id}: random is W3C-only");
    assert_eq!(pairs(&ctx.baggage), expect.baggage, "{id}: baggage");
}
