//! AWS X-Ray: `X-Amzn-Trace-Id` (wire-formats §7, [XRAY]; AWS X-Ray developer guide
//! "Tracing header", <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>).
//!
//! ```text
//! X-Amzn-Trace-Id = part *( ";" part ) [ ";" ]        ; parts in any order, OWS around parts
//! part            = key "=" value
//! Root            = "1-" 1*8HEXDIG "-" 24HEXDIG         ; lowercase; 128-bit trace id
//! Parent          = 16HEXDIG                            ; lowercase; the caller's segment id
//! Sampled         = "1" / "0" / "?"                     ; "?" = decision requested
//! other keys      = Self, Lineage, ...                  ; forwarded unchanged
//! ```
//!
//! The trace id is the 32 hex digits of `Root` without `1-` and the second `-`
//! (`1-58406520-a006649127e371903a2de979` ⇔ `58406520a006649127e371903a2de979`, §13).
//!
//! Deliberate choices:
//! - `Root` is required; `Parent` is optional: an AWS load balancer adds only `Root=`, and
//!   the gateway continues that trace as a root span (`parent_id: None`, `xray-007`).
//!   go-contrib returns no context at all in that case.
//! - `Sampled=?` and a missing `Sampled` are [`Sampling::Deferred`] (as opentelemetry-rust-contrib;
//!   go-contrib reads both as not sampled, java-contrib rejects `?`). Any other value is
//!   rejected. On inject a deferred decision is written as `Sampled=?`.
//! - A part without `=` rejects the header, as go-contrib and java-contrib do
//!   (opentelemetry-rust-contrib skips the part). An empty part is only tolerated as the
//!   optional trailing `;`. `Root`, `Parent` or `Sampled` given twice is rejected as
//!   ambiguous (the libraries silently keep the last one).
//! - Keys are matched exactly and case-sensitively (`Root`, not `root`, not `RootX`, which
//!   java-contrib and go-contrib accept through a prefix match).
//! - The epoch part of `Root` may have its leading zeros stripped (1 to 8 hex digits, as
//!   java-contrib accepts); it is left-padded. The 24-digit unique part must be complete.
//!   go-contrib insists on exactly 35 characters. Inject always writes 8 digits.
//! - Hex is lowercase only (OTel `TraceIDFromHex` / `SpanIDFromHex` behaviour).
//! - Every other key (`Self`, `Lineage`, ...) is kept in [`XRay::extra`] in arrival order and
//!   re-emitted unchanged after `Sampled` on inject. Like java-contrib, the extra parts are
//!   limited to [`EXTRA_BUDGET`] bytes (`key=value` lengths summed): a part that does not
//!   fit is skipped and later smaller parts may still go, both on extract and on inject.
//! - `random` stays false. §13 allows the W3C random flag for X-Ray ids (random low 96
//!   bits), but an `X-Amzn-Trace-Id` may carry an id minted elsewhere (a left-padded 64-bit
//!   id relayed by a translating propagator), and a wrong flag is worse than a missing one.

use http::HeaderName;

use super::text::{
    hex_exact_u128, hex_exact_u64, hex_u128, into_string, split_ascii, split_once_ascii,
};
use super::{first, trim_ows, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId, XRay};

const TRACE_HEADER: &str = "x-amzn-trace-id";

/// `X-Amzn-Trace-Id`.
pub static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static(TRACE_HEADER);

static HEADERS: [HeaderName; 1] = [HeaderName::from_static(TRACE_HEADER)];

/// Most bytes of extra `key=value` parts carried (java-contrib's baggage limit, §15.9).
pub const EXTRA_BUDGET: usize = 256;

const ROOT: &str = "Root";
const PARENT: &str = "Parent";
const SAMPLED: &str = "Sampled";

/// `Root=1-{8}-{24};Parent={16};Sampled={c}`.
const CORE_LEN: usize = 5 + 35 + 8 + 16 + 9 + 1;

/// The `Sampled` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XRaySampled {
    /// `1`.
    Yes,
    /// `0`.
    No,
    /// `?`: the caller asks the receiver to decide.
    Requested,
}

impl XRaySampled {
    fn as_byte(self) -> u8 {
        match self {
            XRaySampled::Yes => b'1',
            XRaySampled::No => b'0',
            XRaySampled::Requested => b'?',
        }
    }
}

/// One `X-Amzn-Trace-Id` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XRayHeader {
    /// `Root`, as a 128-bit id.
    pub trace_id: TraceId,
    /// `Parent`, absent when a load balancer started the trace.
    pub parent_id: Option<SpanId>,
    /// `Sampled`, absent when not sent.
    pub sampled: Option<XRaySampled>,
    /// Every other part in arrival order, OWS around key and value removed.
    pub extra: Vec<(String, String)>,
}

/// Parses one header value; OWS around parts, keys and values is ignored.
pub fn decode(s: &str) -> Result<XRayHeader, DecodeError> {
    let mut trace_id = None;
    let mut parent_id = None;
    let mut sampled = None;
    let mut extra = Vec::new();
    let mut parts = split_ascii(s, b';').peekable();
    while let Some(part) = parts.next() {
        let part = trim_ows(part);
        if part.is_empty() {
            if parts.peek().is_none() {
                break;
            }
            return Err(DecodeError::Malformed);
        }
        let (key, value) = split_once_ascii(part, b'=').ok_or(DecodeError::Malformed)?;
        let (key, value) = (trim_ows(key), trim_ows(value));
        match key {
            ROOT => set_once(&mut trace_id, parse_root(value)?)?,
            PARENT => {
                let id = hex_exact_u64(value).ok_or(DecodeError::SpanId)?;
                set_once(&mut parent_id, SpanId::new(id).ok_or(DecodeError::ZeroId)?)?
            }
            SAMPLED => set_once(&mut sampled, parse_sampled(value)?)?,
            _ if valid_extra(key, value) => extra.push((key.to_string(), value.to_string())),
            _ => return Err(DecodeError::Malformed),
        }
    }
    Ok(XRayHeader {
        trace_id: trace_id.ok_or(DecodeError::Missing)?,
        parent_id,
        sampled,
        extra,
    })
}

/// Writes the header value; `Root` first, then `Parent`, `Sampled` and the extra parts.
pub fn encode(h: &XRayHeader) -> String {
    let extra_len: usize = h.extra.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(CORE_LEN + extra_len);
    write_value(
        &mut out,
        h.trace_id,
        h.parent_id,
        h.sampled,
        h.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    into_string(out)
}

fn write_value<'a>(
    out: &mut Vec<u8>,
    trace_id: TraceId,
    parent_id: Option<SpanId>,
    sampled: Option<XRaySampled>,
    extra: impl Iterator<Item = (&'a str, &'a str)>,
) {
    let hex = trace_id.to_hex();
    let (epoch, unique) = hex.split_at(8);
    out.extend_from_slice(b"Root=1-");
    out.extend_from_slice(epoch);
    out.push(b'-');
    out.extend_from_slice(unique);
    if let Some(parent) = parent_id {
        out.extend_from_slice(b";Parent=");
        out.extend_from_slice(&parent.to_hex());
    }
    if let Some(sampled) = sampled {
        out.extend_from_slice(b";Sampled=");
        out.push(sampled.as_byte());
    }
    for (key, value) in extra {
        out.push(b';');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::Malformed);
    }
    *slot = Some(value);
    Ok(())
}

/// `1-{1..8 hex}-{24 hex}` → the 128-bit id.
fn parse_root(v: &str) -> Result<TraceId, DecodeError> {
    let (version, rest) = split_once_ascii(v, b'-').ok_or(DecodeError::TraceId)?;
    if version != "1" {
        let numeric = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
        return Err(if numeric {
            DecodeError::Version
        } else {
            DecodeError::TraceId
        });
    }
    let (epoch, unique) = split_once_ascii(rest, b'-').ok_or(DecodeError::TraceId)?;
    if epoch.len() > 8 {
        return Err(DecodeError::TraceId);
    }
    let epoch = hex_u128(epoch).ok_or(DecodeError::TraceId)?;
    let unique = hex_exact_u128(unique, 24).ok_or(DecodeError::TraceId)?;
    TraceId::new((epoch << 96) | unique).ok_or(DecodeError::ZeroId)
}

fn parse_sampled(v: &str) -> Result<XRaySampled, DecodeError> {
    match v {
        "1" => Ok(XRaySampled::Yes),
        "0" => Ok(XRaySampled::No),
        "?" => Ok(XRaySampled::Requested),
        _ => Err(DecodeError::Sampling),
    }
}

/// An extra part that can be forwarded as is: a non-empty key of visible ASCII without
/// `=` or `;`, a value of visible ASCII without `;` (OWS inside is kept).
fn valid_extra(key: &str, value: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'=' && b != b';')
        && value
            .bytes()
            .all(|b| (b.is_ascii_graphic() || b == b' ' || b == b'\t') && b != b';')
}

/// Whether the extra part fits what is left of [`EXTRA_BUDGET`] (and takes its room): a
/// part that does not fit is skipped and later ones may still go (java-contrib's rule).
/// Parts named like the core keys or not forwardable are skipped too.
fn fits(used: &mut usize, key: &str, value: &str) -> bool {
    let size = key.len() + 1 + value.len();
    let core = key == ROOT || key == PARENT || key == SAMPLED;
    if core || *used + size > EXTRA_BUDGET || !valid_extra(key, value) {
        return false;
    }
    *used += size;
    true
}

/// The extra parts that fit [`EXTRA_BUDGET`], in order.
fn within_budget(extra: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    let mut used = 0;
    extra
        .iter()
        .filter(move |(key, value)| fits(&mut used, key, value))
        .map(|(key, value)| (key.as_str(), value.as_str()))
}

/// Wire → model.
pub fn to_context(h: XRayHeader) -> TraceContext {
    let sampling = match h.sampled {
        Some(XRaySampled::Yes) => Sampling::Sampled,
        Some(XRaySampled::No) => Sampling::NotSampled,
        Some(XRaySampled::Requested) | None => Sampling::Deferred,
    };
    let mut ctx = TraceContext {
        trace_id: Some(h.trace_id),
        parent_id: h.parent_id,
        sampling,
        ..TraceContext::default()
    };
    let mut used = 0;
    let extra: Vec<(String, String)> = h
        .extra
        .into_iter()
        .filter(|(key, value)| fits(&mut used, key, value))
        .collect();
    if !extra.is_empty() {
        ctx.originals.xray = Some(Box::new(XRay { extra }));
    }
    ctx
}

/// The AWS X-Ray codec.
pub struct XRayCodec;

impl Codec for XRayCodec {
    const FORMAT: Format = Format::XRay;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        match first(headers, &X_AMZN_TRACE_ID)? {
            None => Ok(None),
            Some(v) => decode(v).map(|h| Some(to_context(h))),
        }
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let sampled = match ctx.sampling {
            Sampling::Sampled => XRaySampled::Yes,
            Sampling::NotSampled => XRaySampled::No,
            Sampling::Deferred => XRaySampled::Requested,
        };
        let extra = ctx
            .originals
            .xray
            .as_deref()
            .map_or(&[][..], |x| x.extra.as_slice());
        // Exactly the length (`;key=value` per part that fits): a header value takes the
        // string without a copy.
        let extra_len: usize = within_budget(extra)
            .map(|(k, v)| 1 + k.len() + 1 + v.len())
            .sum();
        let mut value = Vec::with_capacity(CORE_LEN + extra_len);
        write_value(
            &mut value,
            trace_id,
            Some(hop.span_id),
            Some(sampled),
            within_budget(extra),
        );
        out.set_vec(&X_AMZN_TRACE_ID, value);
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{self, edge, hop_at, raw_map, run, Case, Edge};
    use http::HeaderMap;
    use http::HeaderValue;
    use proptest::prelude::*;

    const HOP_SPAN: u64 = 0x00f0_67aa_0ba9_02b7;

    fn hop() -> Hop<'static> {
        hop_at(HOP_SPAN, 1)
    }

    fn map(value: &str) -> HeaderMap {
        crate::codec::testutil::map(&[("X-Amzn-Trace-Id", value)])
    }

    /// (id, header value, expected (trace, parent, sampled) or the reason it is invalid).
    type Row = (&'static str, &'static str, Edge);

    /// Edge cases beyond the vectors (wire-formats §7, §16).
    const EDGES: &[Row] = &[
        (
            "spaces around parts",
            " Root=1-abcdef12-1234567890abcdef12345678 ; Parent=1234567890abcdef ;Sampled=1 ; ",
            Ok((
                "abcdef121234567890abcdef12345678",
                Some("1234567890abcdef"),
                Some(true),
            )),
        ),
        (
            "any order",
            "Sampled=0;Parent=1234567890abcdef;Root=1-abcdef12-1234567890abcdef12345678",
            Ok((
                "abcdef121234567890abcdef12345678",
                Some("1234567890abcdef"),
                Some(false),
            )),
        ),
        (
            "epoch with leading zeros stripped (java-contrib)",
            "Root=1-bcdef12-1234567890abcdef12345678;Parent=1234567890abcdef",
            Ok((
                "0bcdef121234567890abcdef12345678",
                Some("1234567890abcdef"),
                None,
            )),
        ),
        (
            "lineage kept",
            "Root=1-abcdef12-1234567890abcdef12345678;Lineage=a87bd80c:1|68fd508a:5;Sampled=1",
            Ok(("abcdef121234567890abcdef12345678", None, Some(true))),
        ),
        (
            "empty epoch",
            "Root=1--1234567890abcdef12345678;Sampled=1",
            Err("epoch part missing"),
        ),
        (
            "epoch too long",
            "Root=1-abcdef123-1234567890abcdef12345678;Sampled=1",
            Err("epoch part over 8 digits"),
        ),
        (
            "unique part too long",
            "Root=1-abcdef12-1234567890abcdef123456789;Sampled=1",
            Err("unique part over 24 digits"),
        ),
        (
            "upper-case trace id",
            "Root=1-ABCDEF12-1234567890abcdef12345678;Sampled=1",
            Err("hex must be lowercase"),
        ),
        (
            "upper-case parent",
            "Root=1-abcdef12-1234567890abcdef12345678;Parent=1234567890ABCDEF",
            Err("hex must be lowercase"),
        ),
        (
            "zero trace id",
            "Root=1-00000000-000000000000000000000000;Sampled=1",
            Err("all-zero trace id"),
        ),
        (
            "zero parent",
            "Root=1-abcdef12-1234567890abcdef12345678;Parent=0000000000000000",
            Err("all-zero parent id"),
        ),
        (
            "short parent",
            "Root=1-abcdef12-1234567890abcdef12345678;Parent=1234567890abcde",
            Err("parent must be 16 hex"),
        ),
        (
            "sampled 2",
            "Root=1-abcdef12-1234567890abcdef12345678;Sampled=2",
            Err("sampled outside 1/0/?"),
        ),
        (
            "sampled empty",
            "Root=1-abcdef12-1234567890abcdef12345678;Sampled=",
            Err("sampled outside 1/0/?"),
        ),
        (
            "root twice",
            "Root=1-abcdef12-1234567890abcdef12345678;Root=1-abcdef12-1234567890abcdef12345679",
            Err("ambiguous duplicate Root"),
        ),
        (
            "empty middle part",
            "Root=1-abcdef12-1234567890abcdef12345678;;Sampled=1",
            Err("empty part"),
        ),
        (
            "lower-case key",
            "root=1-abcdef12-1234567890abcdef12345678;Sampled=1",
            Err("keys are case-sensitive: no Root"),
        ),
        (
            "prefix key",
            "RootX=1-abcdef12-1234567890abcdef12345678;Sampled=1",
            Err("keys match exactly: no Root"),
        ),
        (
            "empty key",
            "Root=1-abcdef12-1234567890abcdef12345678;=x",
            Err("empty key"),
        ),
        ("empty", "", Err("no Root")),
    ];

    /// Every `xray-*` vector of tests/data/vectors.json.
    #[test]
    fn vectors() {
        run(&testutil::vectors("xray"), XRayCodec::extract, |_, _| {});
    }

    #[test]
    fn edges() {
        let cases: Vec<Case> = EDGES
            .iter()
            .map(|(id, value, row)| edge(id, &[("X-Amzn-Trace-Id", value)], row))
            .collect();
        run(&cases, XRayCodec::extract, |_, _| {});
    }

    #[test]
    fn reasons() {
        let reason = |v: &str| decode(v).unwrap_err();
        assert_eq!(
            reason("Root=2-abcdef12-1234567890abcdef12345678"),
            DecodeError::Version
        );
        assert_eq!(reason("Root=1-abc-123"), DecodeError::TraceId);
        assert_eq!(reason("Sampled=1"), DecodeError::Missing);
        assert_eq!(
            reason("Root=1-abcdef12-1234567890abcdef12345678;Broken"),
            DecodeError::Malformed
        );
        assert_eq!(
            reason("Root=1-abcdef12-1234567890abcdef12345678;Parent=x"),
            DecodeError::SpanId
        );
        assert_eq!(
            reason("Root=1-abcdef12-1234567890abcdef12345678;Sampled=x"),
            DecodeError::Sampling
        );
        assert_eq!(
            reason("Root=1-00000000-000000000000000000000000"),
            DecodeError::ZeroId
        );
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(XRayCodec::extract(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn repeats_must_agree() {
        let v = "Root=1-abcdef12-1234567890abcdef12345678;Sampled=1";
        let mut h = map(v);
        h.append("x-amzn-trace-id", HeaderValue::from_static(v));
        assert!(XRayCodec::extract(&h).unwrap().is_some());
        h.append("x-amzn-trace-id", HeaderValue::from_static("garbage"));
        assert_eq!(XRayCodec::extract(&h), Err(DecodeError::Conflicting));
    }

    #[test]
    fn extra_parts_are_kept_in_order_and_forwarded() {
        let v = "Root=1-58406520-a006649127e371903a2de979;Self=1-58406520-bf42676c05e20ba4a90e448e;Parent=4c721bf33e3caf8f;Sampled=1;Lineage=a87bd80c:1";
        let ctx = XRayCodec::extract(&map(v)).unwrap().unwrap();
        let extra = &ctx.originals.xray.as_ref().unwrap().extra;
        assert_eq!(
            extra,
            &vec![
                (
                    "Self".to_string(),
                    "1-58406520-bf42676c05e20ba4a90e448e".to_string()
                ),
                ("Lineage".to_string(), "a87bd80c:1".to_string()),
            ]
        );
        let mut out = HeaderMap::new();
        XRayCodec::inject(&ctx, &hop(), &mut out);
        assert_eq!(
            out.get("x-amzn-trace-id").unwrap(),
            "Root=1-58406520-a006649127e371903a2de979;Parent=00f067aa0ba902b7;Sampled=1;\
             Self=1-58406520-bf42676c05e20ba4a90e448e;Lineage=a87bd80c:1"
        );
    }

    #[test]
    fn extra_budget_is_256_bytes() {
        let big = "v".repeat(240);
        let v = format!("Root=1-58406520-a006649127e371903a2de979;A={big};B={big};C=small");
        let ctx = XRayCodec::extract(&map(&v)).unwrap().unwrap();
        let keys: Vec<&str> = ctx
            .originals
            .xray
            .as_ref()
            .unwrap()
            .extra
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["A", "C"], "B does not fit after A, C still does");

        // Inject applies the same budget to originals built elsewhere, and skips parts that
        // are not forwardable.
        let mut ctx = ctx;
        ctx.originals.xray = Some(Box::new(XRay {
            extra: vec![
                ("A".into(), big.clone()),
                ("B".into(), big),
                ("Root".into(), "x".into()),
                ("Bad;Key".into(), "x".into()),
                ("K".into(), "line\r\nbreak".into()),
                ("C".into(), "small".into()),
            ],
        }));
        let mut out = HeaderMap::new();
        XRayCodec::inject(&ctx, &hop(), &mut out);
        let written = out
            .get("x-amzn-trace-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(written.ends_with(";C=small"), "{written}");
        assert_eq!(written.matches(";A=").count(), 1);
        assert!(!written.contains(";B=") && !written.contains("Bad") && !written.contains(";K="));
    }

    #[test]
    fn inject_sampling() {
        let ctx = |sampling| TraceContext {
            trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736),
            sampling,
            ..TraceContext::default()
        };
        for (sampling, expected) in [
            (Sampling::Sampled, "Sampled=1"),
            (Sampling::NotSampled, "Sampled=0"),
            (Sampling::Deferred, "Sampled=?"),
        ] {
            let mut out = HeaderMap::new();
            XRayCodec::inject(&ctx(sampling), &hop(), &mut out);
            assert_eq!(
                out.get("x-amzn-trace-id").unwrap().to_str().unwrap(),
                format!(
                    "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;{expected}"
                )
            );
        }
    }

    #[test]
    fn inject_without_trace_id_writes_nothing() {
        let mut out = HeaderMap::new();
        XRayCodec::inject(&TraceContext::default(), &hop(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn round_trip_through_headers() {
        for v in [
            "Root=1-abcdef12-1234567890abcdef12345678;Parent=1234567890abcdef;Sampled=1",
            "Root=1-abcdef12-1234567890abcdef12345678;Sampled=0;Self=1-58406520-bf42676c05e20ba4a90e448e",
            "Root=1-00000000-000000000000000000000001;Parent=1234567890abcdef",
        ] {
            let ctx = XRayCodec::extract(&map(v)).unwrap().unwrap();
            let mut out = HeaderMap::new();
            XRayCodec::inject(&ctx, &hop(), &mut out);
            let back = XRayCodec::extract(&out).unwrap().unwrap();
            assert_eq!(back.trace_id, ctx.trace_id);
            assert_eq!(back.parent_id, Some(hop().span_id));
            assert_eq!(back.sampling, ctx.sampling);
            assert_eq!(back.originals, ctx.originals);
        }
    }

    fn arb_header() -> impl Strategy<Value = XRayHeader> {
        let key = "[A-Za-z][A-Za-z0-9_.-]{0,10}".prop_filter("core key", |k| {
            ![ROOT, PARENT, SAMPLED].contains(&k.as_str())
        });
        let value = "[!-:<-~]([ !-:<-~]{0,20}[!-:<-~])?|";
        (
            1u128..,
            proptest::option::of(1u64..),
            proptest::option::of(prop_oneof![
                Just(XRaySampled::Yes),
                Just(XRaySampled::No),
                Just(XRaySampled::Requested)
            ]),
            proptest::collection::vec((key, value), 0..4),
        )
            .prop_map(|(t, p, sampled, extra)| XRayHeader {
                trace_id: TraceId::new(t).unwrap(),
                parent_id: p.and_then(SpanId::new),
                sampled,
                extra,
            })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(h in arb_header()) {
            prop_assert_eq!(decode(&encode(&h)), Ok(h));
        }

        #[test]
        fn decode_never_panics(s in "\\PC*") {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_near_misses(s in "(Root|Parent|Sampled|Self)?=?[0-9a-f?;= -]{0,60}") {
            let _ = decode(&s);
        }

        #[test]
        fn extract_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = XRayCodec::extract(&raw_map([(&X_AMZN_TRACE_ID, bytes)]));
        }
    }
}
