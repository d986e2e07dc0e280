//! Datadog: `x-datadog-*` (wire-formats §8 and §13, [DD]: dd-trace-rs
//! `datadog-opentelemetry/src/propagation/datadog.rs`; Datadog docs "Trace and Span ID Formats").
//!
//! ```text
//! x-datadog-trace-id          = 1*20DIGIT       ; u64, the low 64 bits of the trace id, not 0
//! x-datadog-parent-id         = 1*20DIGIT       ; u64, the caller's span id; 0 = none
//! x-datadog-sampling-priority = ["-"] 1*DIGIT   ; -1 USER_REJECT, 0 AUTO_REJECT, 1 AUTO_KEEP, 2 USER_KEEP
//! x-datadog-origin            = *VCHAR          ; synthetics, rum, lambda, ...
//! x-datadog-tags              = tag *( "," tag ) ; at most 512 characters
//! tag                         = "_dd.p." key-char-tail "=" value
//! key chars after `_dd.p.`    = %x21-2B / %x2D-3C / %x3E-7E   ; no space, ',' or '='
//! value chars                 = %x20-2B / %x2D-7E             ; no ','
//! ```
//!
//! The high 64 bits of a 128-bit trace id travel as `_dd.p.tid=<16 lowercase hex>`:
//! trace id = `(tid << 64) | x-datadog-trace-id` (§13).
//!
//! Deliberate choices:
//! - Ids are strict unsigned decimal u64 ([`dec_u64`]): no sign, no `+`, at most 20 digits,
//!   no overflow. Some tracers (Node.js, Go) accept a signed `-N`; a strict parser rejects it.
//!   A malformed `x-datadog-parent-id` rejects the headers (dd-trace-rs reads it as 0);
//!   a missing or `0` parent id is a context without parent.
//! - `x-datadog-trace-id` is required: any other `x-datadog-*` header without it is
//!   `Err(Missing)`; none of them is `Ok(None)`.
//! - Sampled ⇔ priority > 0. A missing priority, or one that is not an integer, leaves the
//!   decision [`Sampling::Deferred`] (dd-trace-rs: no priority); the context stays valid.
//! - The optional headers (priority, origin, tags) are ignored, not fatal, when their bytes
//!   are not visible ASCII.
//! - Tags: only well-formed `_dd.p.*` pairs are kept, in order (a repeated key keeps its
//!   first position and its last value, as dd-trace-rs's map does); everything else is
//!   dropped pair by pair. `_dd.p.dm` is dropped unless it is an integer in -128..=0
//!   (dd-trace-rs parses it as a non-positive `i8`). A tags header longer than
//!   [`MAX_TAGS_LEN`] is ignored entirely (`_dd.propagation_error=extract_max_size`), and
//!   with it `_dd.p.tid`.
//! - `_dd.p.tid` counts only as exactly 16 lowercase hex digits; otherwise it is ignored
//!   (`malformed_tid`) and the trace id stays 64-bit. It is never kept in the originals:
//!   inject derives it from the trace id.
//! - [`Datadog`] originals keep the priority as received, the origin and the `_dd.p.*` tags
//!   (minus `_dd.p.tid`); they are only allocated when one of them is present.
//! - Inject: `x-datadog-trace-id` = decimal low 64 bits, `x-datadog-parent-id` = decimal
//!   gateway span id. Priority: the original one when it agrees with the context's decision
//!   (so `2` stays `2`, `-1` stays `-1`), otherwise `1` / `0`, `2` (USER_KEEP) for a debug
//!   context (§14); omitted when deferred. `_dd.p.dm` is re-emitted only with the original
//!   priority: once the gateway overrides the decision the stored decision maker is stale.
//!   `_dd.p.tid` is added when the high half is not 0. A tag set with an invalid tag or
//!   longer than [`MAX_TAGS_LEN`] suppresses the whole `x-datadog-tags` header (dd-trace-rs
//!   `inject_max_size` / `encoding_error`).
//! - A trace id whose low 64 bits are 0 cannot be written (`0` is invalid in
//!   `x-datadog-trace-id`, and no other header can carry the low half): inject writes nothing.

use http::{HeaderName, HeaderValue};

use super::text::{dec_bytes, dec_i64, dec_u64, hex_exact_u64, split_ascii};
use super::{first, header_value, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Datadog, Hop, Sampling, SpanId, TraceContext, TraceId};

const TRACE_ID: &str = "x-datadog-trace-id";
const PARENT_ID: &str = "x-datadog-parent-id";
const SAMPLING_PRIORITY: &str = "x-datadog-sampling-priority";
const ORIGIN: &str = "x-datadog-origin";
const TAGS: &str = "x-datadog-tags";

/// `x-datadog-trace-id`.
pub static X_DATADOG_TRACE_ID: HeaderName = HeaderName::from_static(TRACE_ID);
/// `x-datadog-parent-id`.
pub static X_DATADOG_PARENT_ID: HeaderName = HeaderName::from_static(PARENT_ID);
/// `x-datadog-sampling-priority`.
pub static X_DATADOG_SAMPLING_PRIORITY: HeaderName = HeaderName::from_static(SAMPLING_PRIORITY);
/// `x-datadog-origin`.
pub static X_DATADOG_ORIGIN: HeaderName = HeaderName::from_static(ORIGIN);
/// `x-datadog-tags`.
pub static X_DATADOG_TAGS: HeaderName = HeaderName::from_static(TAGS);

static HEADERS: [HeaderName; 5] = [
    HeaderName::from_static(TRACE_ID),
    HeaderName::from_static(PARENT_ID),
    HeaderName::from_static(SAMPLING_PRIORITY),
    HeaderName::from_static(ORIGIN),
    HeaderName::from_static(TAGS),
];

/// Longest `x-datadog-tags` value read or written (dd-trace-rs default, §15.9).
pub const MAX_TAGS_LEN: usize = 512;

pub(crate) const TAG_PREFIX: &str = "_dd.p.";
pub(crate) const TID: &str = "_dd.p.tid";
pub(crate) const DECISION_MAKER: &str = "_dd.p.dm";

/// `USER_KEEP`: the closest Datadog has to a debug flag.
pub const USER_KEEP: i32 = 2;
/// `AUTO_KEEP`.
pub const AUTO_KEEP: i32 = 1;
/// `AUTO_REJECT`.
pub const AUTO_REJECT: i32 = 0;

/// The raw `x-datadog-*` values of one request, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields<'a> {
    /// `x-datadog-trace-id`.
    pub trace_id: Option<&'a str>,
    /// `x-datadog-parent-id`.
    pub parent_id: Option<&'a str>,
    /// `x-datadog-sampling-priority`.
    pub sampling_priority: Option<&'a str>,
    /// `x-datadog-origin`.
    pub origin: Option<&'a str>,
    /// `x-datadog-tags`.
    pub tags: Option<&'a str>,
}

/// The decoded `x-datadog-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatadogHeaders {
    /// `x-datadog-trace-id`, never 0.
    pub trace_id: u64,
    /// `x-datadog-parent-id`; `None` when absent or 0.
    pub parent_id: Option<SpanId>,
    /// `x-datadog-sampling-priority`; `None` when absent or not an integer.
    pub sampling_priority: Option<i32>,
    /// `x-datadog-origin`; `None` when absent or empty.
    pub origin: Option<String>,
    /// The well-formed `_dd.p.*` tags, `_dd.p.tid` included, in order.
    pub tags: Vec<(String, String)>,
}

/// The header values [`encode`] produces; `None` = header not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `x-datadog-trace-id`.
    pub trace_id: String,
    /// `x-datadog-parent-id`.
    pub parent_id: Option<String>,
    /// `x-datadog-sampling-priority`.
    pub sampling_priority: Option<String>,
    /// `x-datadog-origin`.
    pub origin: Option<String>,
    /// `x-datadog-tags`.
    pub tags: Option<String>,
}

impl Encoded {
    /// The values as [`decode`] reads them.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            trace_id: Some(&self.trace_id),
            parent_id: self.parent_id.as_deref(),
            sampling_priority: self.sampling_priority.as_deref(),
            origin: self.origin.as_deref(),
            tags: self.tags.as_deref(),
        }
    }
}

/// Parses the headers; `Ok(None)` when none is present.
pub fn decode(f: &Fields<'_>) -> Result<Option<DatadogHeaders>, DecodeError> {
    Ok(check(f)?.map(|c| DatadogHeaders {
        trace_id: c.trace_id,
        parent_id: c.parent_id,
        sampling_priority: c.sampling_priority,
        origin: c.origin.map(str::to_string),
        tags: c.tags.map(decode_tags).unwrap_or_default(),
    }))
}

/// [`decode`]'s checks, without its copies: origin and tags stay borrowed.
struct Checked<'a> {
    trace_id: u64,
    parent_id: Option<SpanId>,
    sampling_priority: Option<i32>,
    /// Non-empty.
    origin: Option<&'a str>,
    /// The raw `x-datadog-tags` value.
    tags: Option<&'a str>,
}

fn check<'a>(f: &Fields<'a>) -> Result<Option<Checked<'a>>, DecodeError> {
    let Some(trace_id) = f.trace_id else {
        let others = [f.parent_id, f.sampling_priority, f.origin, f.tags];
        return if others.iter().any(Option::is_some) {
            Err(DecodeError::Missing)
        } else {
            Ok(None)
        };
    };
    let trace_id = dec_u64(trace_id).ok_or(DecodeError::TraceId)?;
    if trace_id == 0 {
        return Err(DecodeError::ZeroId);
    }
    let parent_id = match f.parent_id {
        None => None,
        Some(p) => SpanId::new(dec_u64(p).ok_or(DecodeError::SpanId)?),
    };
    Ok(Some(Checked {
        trace_id,
        parent_id,
        sampling_priority: f
            .sampling_priority
            .and_then(dec_i64)
            .and_then(|p| i32::try_from(p).ok()),
        origin: f.origin.filter(|o| !o.is_empty()),
        tags: f.tags,
    }))
}

/// Writes the header values.
pub fn encode(h: &DatadogHeaders) -> Encoded {
    Encoded {
        trace_id: h.trace_id.to_string(),
        parent_id: h.parent_id.map(|p| p.get().to_string()),
        sampling_priority: h.sampling_priority.map(|p| p.to_string()),
        origin: h.origin.clone(),
        tags: encode_tags(h.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    }
}

/// The well-formed `_dd.p.*` tags of an `x-datadog-tags` value, in order; none when the
/// value is longer than [`MAX_TAGS_LEN`].
pub fn decode_tags(s: &str) -> Vec<(String, String)> {
    collect_tags(tag_pairs(s))
}

/// The well-formed `_dd.p.*` pairs of a tags value, borrowed, repeats included; none when
/// the value is longer than [`MAX_TAGS_LEN`].
fn tag_pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let s = if s.len() > MAX_TAGS_LEN { "" } else { s };
    split_ascii(s, b',')
        .filter_map(|pair| {
            let eq = pair.bytes().position(|b| b == b'=')?;
            Some((pair.get(..eq)?, pair.get(eq + 1..)?))
        })
        .filter(|&(key, value)| {
            valid_tag(key, value) && (key != DECISION_MAKER || valid_decision_maker(value))
        })
}

/// Owned tags, a repeated key keeping its first position and its last value (as
/// dd-trace-rs's map does).
fn collect_tags<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        match tags.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => tags.push((key.to_string(), value.to_string())),
        }
    }
    tags
}

/// The `x-datadog-tags` value for `tags`; `None` when there is none, when one is invalid
/// or when the result would exceed [`MAX_TAGS_LEN`] (the whole header is then left out).
pub fn encode_tags<'a>(tags: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Option<String> {
    let mut len = 0;
    let mut count = 0;
    for (key, value) in tags.clone() {
        if !valid_tag(key, value) {
            return None;
        }
        len += key.len() + 1 + value.len();
        count += 1;
    }
    if count == 0 {
        return None;
    }
    len += count - 1;
    if len > MAX_TAGS_LEN {
        return None;
    }
    let mut out = String::with_capacity(len);
    for (key, value) in tags {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    Some(out)
}

/// §8: key tail chars `!`..`+` and `-`..`~` (we also exclude `=`, which would make the
/// pair ambiguous), value chars SP..`+` and `-`..`~`.
pub(crate) fn valid_tag(key: &str, value: &str) -> bool {
    let Some(tail) = key.strip_prefix(TAG_PREFIX) else {
        return false;
    };
    !tail.is_empty()
        && tail
            .bytes()
            .all(|b| matches!(b, b'!'..=b'+' | b'-'..=b'~') && b != b'=')
        && value
            .bytes()
            .all(|b| matches!(b, b' '..=b'+' | b'-'..=b'~'))
}

fn valid_decision_maker(v: &str) -> bool {
    matches!(dec_i64(v), Some(m) if (-128..=0).contains(&m))
}

/// Wire → model.
pub fn to_context(h: DatadogHeaders) -> TraceContext {
    let mut high = 0u64;
    let mut tags = h.tags;
    if let Some(i) = tags.iter().position(|(k, _)| k == TID) {
        let (_, tid) = tags.remove(i);
        high = hex_exact_u64(&tid).unwrap_or(0);
    }
    let origin = h.origin;
    context(
        h.trace_id,
        high,
        h.parent_id,
        h.sampling_priority,
        origin,
        tags,
    )
}

/// [`to_context`] from the borrowed values: `_dd.p.tid` is read in place, never copied.
fn context_of(c: Checked<'_>) -> TraceContext {
    // One pass: the last `_dd.p.tid` is the high half, the other tags are kept.
    let mut tid = None;
    let tags = collect_tags(tag_pairs(c.tags.unwrap_or_default()).filter(|&(k, v)| {
        if k == TID {
            tid = Some(v);
        }
        k != TID
    }));
    let high = tid.and_then(hex_exact_u64).unwrap_or(0);
    let origin = c.origin.map(str::to_string);
    context(
        c.trace_id,
        high,
        c.parent_id,
        c.sampling_priority,
        origin,
        tags,
    )
}

fn context(
    low: u64,
    high: u64,
    parent_id: Option<SpanId>,
    priority: Option<i32>,
    origin: Option<String>,
    tags: Vec<(String, String)>,
) -> TraceContext {
    let trace = (u128::from(high) << 64) | u128::from(low);
    let mut ctx = TraceContext {
        trace_id: TraceId::new(trace),
        parent_id,
        sampling: Sampling::from_decision(priority.map(|p| p > 0)),
        ..TraceContext::default()
    };
    if priority.is_some() || origin.is_some() || !tags.is_empty() {
        ctx.originals.datadog = Some(Box::new(Datadog {
            priority,
            origin,
            tags,
        }));
    }
    ctx
}

/// The priority to send: the original one when it agrees with the decision.
pub(crate) fn priority(ctx: &TraceContext, original: Option<i32>) -> Option<i32> {
    match ctx.sampling {
        Sampling::Sampled => Some(match original {
            Some(p) if p > 0 => p,
            _ if ctx.debug => USER_KEEP,
            _ => AUTO_KEEP,
        }),
        Sampling::NotSampled => Some(match original {
            Some(p) if p <= 0 => p,
            _ => AUTO_REJECT,
        }),
        Sampling::Deferred => None,
    }
}

/// The usual priorities without an allocation.
fn priority_value(p: i32) -> HeaderValue {
    match p {
        -1 => HeaderValue::from_static("-1"),
        0 => HeaderValue::from_static("0"),
        1 => HeaderValue::from_static("1"),
        2 => HeaderValue::from_static("2"),
        _ => HeaderValue::from(p),
    }
}

/// The Datadog codec.
pub struct DatadogCodec;

impl Codec for DatadogCodec {
    const FORMAT: Format = Format::Datadog;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let optional = |name: &HeaderName| first(headers, name).ok().flatten();
        let fields = Fields {
            trace_id: first(headers, &X_DATADOG_TRACE_ID)?,
            parent_id: first(headers, &X_DATADOG_PARENT_ID)?,
            sampling_priority: optional(&X_DATADOG_SAMPLING_PRIORITY),
            origin: optional(&X_DATADOG_ORIGIN),
            tags: optional(&X_DATADOG_TAGS),
        };
        Ok(check(&fields)?.map(context_of))
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        if trace_id.low64() == 0 {
            return Injected::default();
        }
        let dd = ctx.originals.datadog.as_deref();
        let original = dd.and_then(|d| d.priority);
        let priority = priority(ctx, original);
        let keeps_original = priority.is_some() && priority == original;

        // `HeaderValue::from(u64)` formats into a 20-byte `BytesMut`, which `Bytes` then
        // wraps with a second allocation; a copy of the digits is one.
        let mut digits = [0u8; 20];
        if let Ok(v) = HeaderValue::from_bytes(dec_bytes(trace_id.low64(), &mut digits)) {
            out.set(X_DATADOG_TRACE_ID.clone(), v);
        }
        if let Ok(v) = HeaderValue::from_bytes(dec_bytes(hop.span_id.get(), &mut digits)) {
            out.set(X_DATADOG_PARENT_ID.clone(), v);
        }
        if let Some(p) = priority {
            out.set(X_DATADOG_SAMPLING_PRIORITY.clone(), priority_value(p));
        }
        if let Some(origin) = dd
            .and_then(|d| d.origin.as_deref())
            .filter(|o| !o.is_empty())
        {
            if let Ok(v) = HeaderValue::from_str(origin) {
                out.set(X_DATADOG_ORIGIN.clone(), v);
            }
        }

        let hex = trace_id.to_hex();
        let tid = match (trace_id.high64(), hex.get(..16)) {
            (0, _) | (_, None) => None,
            (_, Some(high)) => std::str::from_utf8(high).ok(),
        };
        let stored = dd.map_or(&[][..], |d| d.tags.as_slice());
        let tags = stored
            .iter()
            .filter(|(k, _)| k != TID && (keeps_original || k != DECISION_MAKER))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(tid.map(|t| (TID, t)));
        if let Some(v) = encode_tags(tags).and_then(header_value) {
            out.set(X_DATADOG_TAGS.clone(), v);
        }
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{
        self, case_mut, edge, get, hop_at, map, raw_map, run, Case, Edge,
    };
    use http::HeaderMap;
    use proptest::prelude::*;

    /// The gateway span is 5678, so `x-datadog-parent-id: 5678` on inject.
    fn hop() -> Hop<'static> {
        hop_at(5678, 1)
    }

    /// (id, headers, expected (trace, parent, sampled) or the reason it is invalid).
    type Row = (&'static str, &'static [(&'static str, &'static str)], Edge);

    const EDGES: &[Row] = &[
        (
            "no parent id",
            &[("x-datadog-trace-id", "1234")],
            Ok(("000000000000000000000000000004d2", None, None)),
        ),
        (
            "parent id 0 = no parent",
            &[("x-datadog-trace-id", "1234"), ("x-datadog-parent-id", "0")],
            Ok(("000000000000000000000000000004d2", None, None)),
        ),
        (
            "priority -1",
            &[
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-sampling-priority", "-1"),
            ],
            Ok(("000000000000000000000000000004d2", None, Some(false))),
        ),
        (
            "priority 0",
            &[
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-sampling-priority", "0"),
            ],
            Ok(("000000000000000000000000000004d2", None, Some(false))),
        ),
        (
            "priority 2",
            &[
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-sampling-priority", "2"),
            ],
            Ok(("000000000000000000000000000004d2", None, Some(true))),
        ),
        (
            "max u64",
            &[("x-datadog-trace-id", "18446744073709551615")],
            Ok(("0000000000000000ffffffffffffffff", None, None)),
        ),
        (
            "upper-case tid is ignored",
            &[
                ("x-datadog-trace-id", "1"),
                ("x-datadog-tags", "_dd.p.tid=80F198EE56343BA8"),
            ],
            Ok(("00000000000000000000000000000001", None, None)),
        ),
        (
            "tid with sign is ignored",
            &[
                ("x-datadog-trace-id", "1"),
                ("x-datadog-tags", "_dd.p.tid=+0f198ee56343ba8"),
            ],
            Ok(("00000000000000000000000000000001", None, None)),
        ),
        (
            "identical trace-id repeats agree",
            &[("x-datadog-trace-id", "1"), ("x-datadog-trace-id", "1")],
            Ok(("00000000000000000000000000000001", None, None)),
        ),
        (
            "conflicting trace-id repeats",
            &[("x-datadog-trace-id", "1"), ("x-datadog-trace-id", "x")],
            Err("two different trace ids"),
        ),
        (
            "signed trace id",
            &[("x-datadog-trace-id", "-1234")],
            Err("strict: no sign"),
        ),
        (
            "plus trace id",
            &[("x-datadog-trace-id", "+1234")],
            Err("strict: no sign"),
        ),
        (
            "overflow",
            &[("x-datadog-trace-id", "18446744073709551616")],
            Err("trace id overflows u64"),
        ),
        (
            "empty trace id",
            &[("x-datadog-trace-id", "")],
            Err("empty trace id"),
        ),
        (
            "hex trace id",
            &[("x-datadog-trace-id", "4d2")],
            Err("trace id is decimal"),
        ),
        (
            "bad parent id",
            &[
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-parent-id", "abc"),
            ],
            Err("parent id must be decimal u64"),
        ),
        (
            "signed parent id",
            &[
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-parent-id", "-5"),
            ],
            Err("strict: no sign"),
        ),
        (
            "companions without trace id",
            &[("x-datadog-parent-id", "5678"), ("x-datadog-origin", "rum")],
            Err("trace id missing"),
        ),
    ];

    /// Every `datadog-*` vector of tests/data/vectors.json.
    #[test]
    fn vectors() {
        run(
            &testutil::vectors("datadog"),
            DatadogCodec::extract,
            |_, _| {},
        );
    }

    #[test]
    fn edges() {
        let cases: Vec<Case> = EDGES
            .iter()
            .map(|(id, headers, row)| edge(id, headers, row))
            .collect();
        run(&cases, DatadogCodec::extract, |_, _| {});
    }

    #[test]
    fn datadog_001_native_fields() {
        let mut cases = testutil::vectors("datadog");
        let headers = &case_mut(&mut cases, "datadog-001").headers;
        let ctx = DatadogCodec::extract(headers).unwrap().unwrap();
        assert_eq!(ctx.trace_id.unwrap().get(), 317_007_296_906_698_644_522_194);
        let dd = ctx.originals.datadog.as_deref().unwrap();
        assert_eq!(dd.priority, Some(1));
        assert_eq!(dd.origin.as_deref(), Some("synthetics"));
        assert_eq!(
            dd.tags,
            vec![("_dd.p.test".to_string(), "value".to_string())],
            "tid moved into the id, any=tag dropped"
        );
    }

    #[test]
    fn reasons() {
        let reason = |pairs: &[(&str, &str)]| DatadogCodec::extract(&map(pairs)).unwrap_err();
        assert_eq!(reason(&[("x-datadog-trace-id", "0")]), DecodeError::ZeroId);
        assert_eq!(
            reason(&[("x-datadog-trace-id", "abc")]),
            DecodeError::TraceId
        );
        assert_eq!(
            reason(&[("x-datadog-trace-id", "1"), ("x-datadog-parent-id", "x")]),
            DecodeError::SpanId
        );
        assert_eq!(
            reason(&[("x-datadog-tags", "_dd.p.a=b")]),
            DecodeError::Missing
        );
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(DatadogCodec::extract(&HeaderMap::new()), Ok(None));
        assert_eq!(
            DatadogCodec::extract(&map(&[("x-b3-traceid", "1")])),
            Ok(None)
        );
    }

    #[test]
    fn unparsable_priority_is_deferred_without_original() {
        let ctx = DatadogCodec::extract(&map(&[
            ("x-datadog-trace-id", "1"),
            ("x-datadog-sampling-priority", "1.5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(ctx.sampling, Sampling::Deferred);
        assert!(ctx.originals.datadog.is_none());
    }

    #[test]
    fn tag_filtering() {
        let tags = decode_tags(
            "_dd.p.dm=-4,_dd.p.bad key=1,_dd.p.=x,other=1,_dd.p.usr.id=a=b,noequals,_dd.p.dm=-4,_dd.p.x=,_dd.p.z=é",
        );
        let keys: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            keys,
            [("_dd.p.dm", "-4"), ("_dd.p.usr.id", "a=b"), ("_dd.p.x", "")]
        );
        assert!(
            decode_tags("_dd.p.dm=1").is_empty(),
            "positive decision maker dropped"
        );
        assert!(
            decode_tags("_dd.p.dm=abc").is_empty(),
            "non-integer decision maker dropped"
        );
        assert_eq!(
            decode_tags("_dd.p.a=1,_dd.p.b=2,_dd.p.a=3"),
            vec![
                ("_dd.p.a".into(), "3".into()),
                ("_dd.p.b".into(), "2".into())
            ]
        );
    }

    #[test]
    fn over_long_tags_are_ignored_on_extract() {
        let filler = format!("_dd.p.f={}", "x".repeat(MAX_TAGS_LEN));
        let tags = format!("_dd.p.tid=80f198ee56343ba8,{filler}");
        let ctx = DatadogCodec::extract(&map(&[
            ("x-datadog-trace-id", "7277407061855694839"),
            ("x-datadog-tags", &tags),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            ctx.trace_id.unwrap().high64(),
            0,
            "tid ignored with the rest"
        );
        assert!(ctx.originals.datadog.is_none());
        let exact = format!(
            "_dd.p.tid=80f198ee56343ba8,_dd.p.f={}",
            "x".repeat(MAX_TAGS_LEN - 35)
        );
        assert_eq!(exact.len(), MAX_TAGS_LEN);
        let ctx = DatadogCodec::extract(&map(&[
            ("x-datadog-trace-id", "1"),
            ("x-datadog-tags", &exact),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            ctx.trace_id.unwrap().high64(),
            0x80f198ee56343ba8,
            "512 characters still fit"
        );
    }

    fn ctx_with(sampling: Sampling, debug: bool, dd: Option<Datadog>) -> TraceContext {
        TraceContext {
            trace_id: TraceId::new(0x80f198ee56343ba864fe8b2a57d3eff7),
            parent_id: SpanId::new(1),
            sampling,
            debug,
            originals: crate::model::Originals {
                datadog: dd.map(Box::new),
                ..Default::default()
            },
            ..TraceContext::default()
        }
    }

    fn inject(ctx: &TraceContext) -> HeaderMap {
        let mut out = HeaderMap::new();
        DatadogCodec::inject(ctx, &hop(), &mut out);
        out
    }

    #[test]
    fn inject_128_bit_id() {
        let out = inject(&ctx_with(Sampling::Sampled, false, None));
        assert_eq!(get(&out, "x-datadog-trace-id"), Some("7277407061855694839"));
        assert_eq!(get(&out, "x-datadog-parent-id"), Some("5678"));
        assert_eq!(get(&out, "x-datadog-sampling-priority"), Some("1"));
        assert_eq!(
            get(&out, "x-datadog-tags"),
            Some("_dd.p.tid=80f198ee56343ba8")
        );
        assert_eq!(get(&out, "x-datadog-origin"), None);
    }

    #[test]
    fn inject_64_bit_id_has_no_tid() {
        let mut ctx = ctx_with(Sampling::Sampled, false, None);
        ctx.trace_id = TraceId::new(1234);
        let out = inject(&ctx);
        assert_eq!(get(&out, "x-datadog-trace-id"), Some("1234"));
        assert_eq!(get(&out, "x-datadog-tags"), None);
    }

    #[test]
    fn inject_priority() {
        let dd = |p: i32| {
            Some(Datadog {
                priority: Some(p),
                ..Datadog::default()
            })
        };
        let cases = [
            (Sampling::Sampled, false, None, Some("1")),
            (Sampling::Sampled, true, None, Some("2")),
            (Sampling::Sampled, false, dd(2), Some("2")),
            (Sampling::Sampled, false, dd(-1), Some("1")),
            (Sampling::Sampled, true, dd(-1), Some("2")),
            (Sampling::NotSampled, false, None, Some("0")),
            (Sampling::NotSampled, false, dd(-1), Some("-1")),
            (Sampling::NotSampled, false, dd(2), Some("0")),
            (Sampling::Deferred, false, dd(2), None),
            (Sampling::Deferred, true, None, None),
        ];
        for (sampling, debug, original, expected) in cases {
            let out = inject(&ctx_with(sampling, debug, original.clone()));
            assert_eq!(
                get(&out, "x-datadog-sampling-priority"),
                expected,
                "{sampling:?} debug={debug} {original:?}"
            );
        }
    }

    #[test]
    fn inject_re_emits_origin_and_tags() {
        let dd = Datadog {
            priority: Some(2),
            origin: Some("rum".into()),
            tags: vec![
                ("_dd.p.dm".into(), "-4".into()),
                ("_dd.p.usr.id".into(), "abc".into()),
            ],
        };
        let out = inject(&ctx_with(Sampling::Sampled, false, Some(dd.clone())));
        assert_eq!(get(&out, "x-datadog-origin"), Some("rum"));
        assert_eq!(
            get(&out, "x-datadog-tags"),
            Some("_dd.p.dm=-4,_dd.p.usr.id=abc,_dd.p.tid=80f198ee56343ba8")
        );

        // The gateway overrode the decision: the stored decision maker no longer applies.
        let out = inject(&ctx_with(Sampling::NotSampled, false, Some(dd)));
        assert_eq!(
            get(&out, "x-datadog-tags"),
            Some("_dd.p.usr.id=abc,_dd.p.tid=80f198ee56343ba8")
        );
    }

    #[test]
    fn inject_omits_invalid_or_over_long_tags() {
        let with_tags = |tags: Vec<(String, String)>| Datadog {
            tags,
            ..Datadog::default()
        };
        let invalid = with_tags(vec![
            ("_dd.p.ok".into(), "1".into()),
            ("_dd.p.bad".into(), "a,b".into()),
        ]);
        let out = inject(&ctx_with(Sampling::Sampled, false, Some(invalid)));
        assert_eq!(
            get(&out, "x-datadog-tags"),
            None,
            "one invalid tag suppresses the header"
        );
        assert_eq!(
            get(&out, "x-datadog-trace-id"),
            Some("7277407061855694839"),
            "the ids still go"
        );

        let long = with_tags(vec![("_dd.p.f".into(), "x".repeat(MAX_TAGS_LEN - 30))]);
        let out = inject(&ctx_with(Sampling::Sampled, false, Some(long)));
        assert_eq!(
            get(&out, "x-datadog-tags"),
            None,
            "over 512 once the tid is added"
        );
    }

    #[test]
    fn inject_skips_what_cannot_be_written() {
        let mut ctx = ctx_with(Sampling::Sampled, false, None);
        ctx.trace_id = TraceId::new(0x80f198ee56343ba8_0000000000000000);
        assert!(inject(&ctx).is_empty(), "low half 0");
        ctx.trace_id = None;
        assert!(inject(&ctx).is_empty(), "no trace id");
    }

    #[test]
    fn round_trip_through_headers() {
        for case in testutil::vectors("datadog") {
            if case.expect.is_err() {
                continue;
            }
            let ctx = DatadogCodec::extract(&case.headers).unwrap().unwrap();
            let out = inject(&ctx);
            let back = DatadogCodec::extract(&out).unwrap().unwrap();
            assert_eq!(back.trace_id, ctx.trace_id);
            assert_eq!(back.parent_id, Some(hop().span_id));
            assert_eq!(back.sampling, ctx.sampling);
            assert_eq!(back.originals, ctx.originals);
        }
    }

    fn arb_headers() -> impl Strategy<Value = DatadogHeaders> {
        let tag = ("[a-z][a-z0-9_.-]{0,8}", "[ -+\\--~]{0,12}")
            .prop_map(|(k, v)| (format!("{TAG_PREFIX}{k}"), v));
        (
            1u64..,
            proptest::option::of(1u64..),
            proptest::option::of(any::<i32>()),
            proptest::option::of("[!-~]{1,16}"),
            proptest::collection::vec(tag, 0..6),
            proptest::option::of(-128i64..=0),
        )
            .prop_map(
                |(trace_id, parent, sampling_priority, origin, raw_tags, dm)| {
                    let mut tags: Vec<(String, String)> = Vec::new();
                    for (k, v) in raw_tags {
                        if k != DECISION_MAKER && !tags.iter().any(|(t, _)| *t == k) {
                            tags.push((k, v));
                        }
                    }
                    if let Some(dm) = dm {
                        tags.push((DECISION_MAKER.to_string(), dm.to_string()));
                    }
                    DatadogHeaders {
                        trace_id,
                        parent_id: parent.and_then(SpanId::new),
                        sampling_priority,
                        origin,
                        tags,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(h in arb_headers()) {
            let encoded = encode(&h);
            prop_assert_eq!(decode(&encoded.fields()), Ok(Some(h)));
        }

        #[test]
        fn decode_never_panics(a in "\\PC*", b in "\\PC*", c in "\\PC*", d in "\\PC*", e in "\\PC*") {
            let _ = decode(&Fields { trace_id: Some(&a), parent_id: Some(&b), sampling_priority: Some(&c), origin: Some(&d), tags: Some(&e) });
            let _ = decode_tags(&e);
        }

        /// Extract's borrowed path builds exactly what decode + to_context build.
        #[test]
        fn borrowed_path_matches_decode(
            trace in "[0-9]{1,3}",
            priority in "-?[0-2x]",
            origin in "[a-z]{0,3}",
            tags in "((_dd\\.p\\.(tid|dm|a|b)|x)=(-?[0-9a-f]{1,16}|v)?,?){0,5}",
        ) {
            let f = Fields {
                trace_id: Some(&trace),
                parent_id: Some("5"),
                sampling_priority: Some(&priority),
                origin: Some(&origin),
                tags: Some(&tags),
            };
            let via_decode = decode(&f).map(|h| h.map(to_context));
            let borrowed = check(&f).map(|c| c.map(context_of));
            prop_assert_eq!(borrowed, via_decode);
        }

        #[test]
        fn extract_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 5)) {
            let _ = DatadogCodec::extract(&raw_map(HEADERS.iter().zip(&values)));
        }
    }
}
