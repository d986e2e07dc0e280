//! What the codecs' unit tests share: hops, header maps, ids from hex, baggage entries,
//! and the one runner of extraction cases, fed from `tests/data/vectors.json` (the only
//! copy of the reference vectors; `tests/vectors.rs` runs them by family too) and from
//! the edge cases a codec file keeps for itself.

use std::fmt;
use std::marker::PhantomData;

use http::header::AsHeaderName;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::DecodeError;
use crate::model::{BaggageEntry, Hop, Sampling, SpanId, TraceContext, TraceId, TraceState};

/// The hop of the `call_index`-th outgoing call made by span `span_id`: service `gw`,
/// instance `gw-0`, endpoint `/`, peer `origin:80` (tests that read those fields set
/// their own with `..hop_at(..)`).
pub(crate) fn hop_at(span_id: u64, call_index: u32) -> Hop<'static> {
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
pub(crate) fn hop() -> Hop<'static> {
    hop_at(0x1122334455667788, 1)
}

/// A trace id from hex (any width up to 32 digits, non-zero).
pub(crate) fn hex128(hex: &str) -> TraceId {
    TraceId::new(u128::from_str_radix(hex, 16).unwrap()).unwrap()
}

/// A span id from hex (any width up to 16 digits, non-zero).
pub(crate) fn hex64(hex: &str) -> SpanId {
    SpanId::new(u64::from_str_radix(hex, 16).unwrap()).unwrap()
}

/// A `tracestate` list of `(key, value)` pairs.
pub(crate) fn ts(pairs: &[(&str, &str)]) -> TraceState {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The context of the W3C and `tb` tests: trace `4bf92f35…`, parent 1.
pub(crate) fn ctx_with(sampling: Sampling, debug: bool, random: bool) -> TraceContext {
    TraceContext {
        trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736),
        parent_id: SpanId::new(1),
        sampling,
        debug,
        random,
        ..TraceContext::default()
    }
}

/// A baggage entry without properties.
pub(crate) fn entry(key: &str, value: &str) -> BaggageEntry {
    BaggageEntry {
        key: key.into(),
        value: value.into(),
        properties: String::new(),
    }
}

/// A header map of `(name, value)` pairs; names in any case, a repeated name becomes
/// repeated fields, in order.
pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
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
pub(crate) fn raw_map<'a, B: AsRef<[u8]>>(
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
pub(crate) fn get(h: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

/// Baggage as `(key, value)` pairs, properties left out.
pub(crate) fn pairs(baggage: &[BaggageEntry]) -> Vec<(&str, &str)> {
    baggage
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect()
}

/// What a valid case must extract (ids as lowercase hex, as vectors.json writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect {
    pub trace: Option<String>,
    pub span: Option<String>,
    pub sampling: Sampling,
    pub debug: bool,
    /// In order.
    pub baggage: Vec<(String, String)>,
    /// W3C only (false elsewhere).
    pub random: bool,
    /// W3C only: the members kept, or `None` when the header is dropped whole (or absent).
    pub tracestate: Option<Vec<(String, String)>>,
}

/// How an invalid case must be rejected: extract returns an error (not `Ok(None)`), this
/// one when the codec's unit test pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    Any,
    Exactly(DecodeError),
}

/// One extraction case: headers in, `Ok(Some(expect))` for a context, `Ok(None)` for
/// "absent", `Err` for invalid. `native` is what a codec checks of its originals.
pub(crate) struct Case<N = ()> {
    pub id: String,
    pub headers: HeaderMap,
    pub expect: Result<Option<Expect>, Reject>,
    pub native: N,
    /// Why the case is invalid, or what it shows.
    pub why: String,
}

impl<N: Default> Case<N> {
    /// A case of a codec's own table (no originals to check until [`Case::native`]).
    pub(crate) fn new(
        id: &str,
        headers: &[(&str, &str)],
        expect: Result<Option<Expect>, Reject>,
        why: &str,
    ) -> Case<N> {
        Case {
            id: id.into(),
            headers: map(headers),
            expect,
            native: N::default(),
            why: why.into(),
        }
    }
}

impl<N> Case<N> {
    /// The same case with these originals to check.
    pub(crate) fn native(self, native: N) -> Case<N> {
        Case { native, ..self }
    }

    /// The same case with originals of another type to check.
    pub(crate) fn with_native<M>(self, native: M) -> Case<M> {
        Case {
            id: self.id,
            headers: self.headers,
            expect: self.expect,
            native,
            why: self.why,
        }
    }
}

/// A valid case without debug flag.
pub(crate) fn valid(
    trace: &str,
    span: &str,
    sampling: Sampling,
    baggage: &[(&str, &str)],
) -> Result<Option<Expect>, Reject> {
    Ok(Some(Expect {
        trace: Some(trace.into()),
        span: Some(span.into()),
        sampling,
        debug: false,
        baggage: baggage
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        random: false,
        tracestate: None,
    }))
}

/// A row of a codec's edge table: `Ok((trace, parent, sampled))` in hex (`None` sampled =
/// deferred), or `Err(why it is invalid)`.
pub(crate) type Edge = Result<(&'static str, Option<&'static str>, Option<bool>), &'static str>;

/// The case of an edge-table row: no debug, no baggage; invalid = an error.
pub(crate) fn edge(id: &str, headers: &[(&str, &str)], row: &Edge) -> Case {
    let expect = match *row {
        Ok((trace, parent, sampled)) => Ok(Some(Expect {
            trace: Some(trace.into()),
            span: parent.map(String::from),
            sampling: match sampled {
                Some(true) => Sampling::Sampled,
                Some(false) => Sampling::NotSampled,
                None => Sampling::Deferred,
            },
            debug: false,
            baggage: Vec::new(),
            random: false,
            tracestate: None,
        })),
        Err(_) => Err(Reject::Any),
    };
    Case::new(id, headers, expect, row.err().unwrap_or_default())
}

/// An invalid case rejected with exactly `e`.
pub(crate) fn rejected(e: DecodeError) -> Result<Option<Expect>, Reject> {
    Err(Reject::Exactly(e))
}

/// The case `id` of `cases`, for a codec to state where it departs from vectors.json.
pub(crate) fn case_mut<'a, N>(cases: &'a mut [Case<N>], id: &str) -> &'a mut Case<N> {
    cases
        .iter_mut()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id}"))
}

/// Runs every case through `extract`, checking ids, sampling, debug, baggage in order, the
/// W3C-only `random` flag and `tracestate`, and `native` on each context.
pub(crate) fn run<N>(
    cases: &[Case<N>],
    extract: impl Fn(&HeaderMap) -> Result<Option<TraceContext>, DecodeError>,
    native: impl Fn(&N, &TraceContext),
) {
    for case in cases {
        let (id, why) = (&case.id, &case.why);
        let got = extract(&case.headers);
        match (&case.expect, got) {
            (Err(Reject::Any), Err(_)) | (Ok(None), Ok(None)) => {}
            (Err(Reject::Exactly(want)), Err(got)) => assert_eq!(*want, got, "{id}: {why}"),
            (Ok(Some(want)), Ok(Some(ctx))) => {
                assert_eq!(
                    ctx.trace_id.map(|t| t.to_string()),
                    want.trace,
                    "{id}: trace id ({why})"
                );
                assert_eq!(
                    ctx.parent_id.map(|s| s.to_string()),
                    want.span,
                    "{id}: parent id ({why})"
                );
                assert_eq!(ctx.sampling, want.sampling, "{id}: sampling");
                assert_eq!(ctx.debug, want.debug, "{id}: debug");
                assert_eq!(ctx.random, want.random, "{id}: random");
                let tracestate = want.tracestate.clone().unwrap_or_default();
                assert_eq!(ctx.tracestate, tracestate, "{id}: tracestate");
                let baggage: Vec<(&str, &str)> = want
                    .baggage
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(pairs(&ctx.baggage), baggage, "{id}: baggage");
                native(&case.native, &ctx);
            }
            (want, got) => panic!("{id}: want {want:?}, got {got:?} ({why})"),
        }
    }
}

/// The vectors of one family (`"b3"`, `"jaeger"`, ... : the `format` field) of
/// `tests/data/vectors.json`, as cases: an invalid vector must be rejected with an error.
pub(crate) fn vectors(family: &str) -> Vec<Case> {
    static TEXT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/vectors.json"
    ));
    let doc: Doc = serde_json::from_str(TEXT).expect("tests/data/vectors.json");
    let cases: Vec<Case> = doc
        .vectors
        .into_iter()
        .filter(|v| v.format == family)
        .map(RawVector::into_case)
        .collect();
    assert!(!cases.is_empty(), "no {family} vectors");
    cases
}

#[derive(Deserialize)]
struct Doc {
    vectors: Vec<RawVector>,
}

#[derive(Deserialize)]
struct RawVector {
    id: String,
    format: String,
    headers: Ordered<OneOrMany>,
    valid: bool,
    expect: Option<RawExpect>,
    reason: Option<String>,
    notes: Option<String>,
}

#[derive(Deserialize)]
struct RawExpect {
    trace_id_hex128: Option<String>,
    span_id_hex64: Option<String>,
    sampled: Option<bool>,
    #[serde(default)]
    debug: bool,
    baggage: Option<Ordered<String>>,
    #[serde(default)]
    random: bool,
    tracestate: Option<Vec<(String, String)>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl RawVector {
    fn into_case(self) -> Case {
        let mut headers = HeaderMap::new();
        for (name, values) in self.headers.0 {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            let values = match values {
                OneOrMany::One(v) => vec![v],
                OneOrMany::Many(v) => v,
            };
            for v in values {
                headers.append(name.clone(), HeaderValue::from_str(&v).unwrap());
            }
        }
        let expect = match (self.valid, self.expect) {
            (false, _) => Err(Reject::Any),
            (true, None) => panic!("{}: valid without expect", self.id),
            (true, Some(e)) => Ok(Some(Expect {
                trace: e.trace_id_hex128,
                span: e.span_id_hex64,
                sampling: match e.sampled {
                    Some(true) => Sampling::Sampled,
                    Some(false) => Sampling::NotSampled,
                    None => Sampling::Deferred,
                },
                debug: e.debug,
                baggage: e.baggage.map(|b| b.0).unwrap_or_default(),
                random: e.random,
                tracestate: e.tracestate,
            })),
        };
        Case {
            id: self.id,
            headers,
            expect,
            native: (),
            why: self.reason.or(self.notes).unwrap_or_default(),
        }
    }
}

/// A JSON object in document order (`serde_json::Value` sorts keys; baggage order matters).
struct Ordered<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for InOrder<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(InOrder(PhantomData))
    }
}
