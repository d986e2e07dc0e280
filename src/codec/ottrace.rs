//! OpenTracing basic-tracer propagation: `ot-tracer-*`, `ot-baggage-*` (wire-formats §6).
//! There is no formal spec; the references are opentelemetry-go-contrib
//! `propagators/ot/ot_propagator.go` and OTel Java `OtTracePropagator`.
//!
//! ```text
//! ot-tracer-traceid = 1*32HEXDIGLC              ; left-padded to 128 bits
//! ot-tracer-spanid  = 1*16HEXDIGLC              ; the caller's span, left-padded
//! ot-tracer-sampled = "true" / "false" / "1" / "0"  ; any case; absent = no decision
//! ot-baggage-{key}  = value                     ; verbatim, one item per header
//! ```
//!
//! Choices:
//! - Ids may lack leading zeros: OpenTelemetry Python's OT propagator writes
//!   `hex(id)[2:][-16:]` (a 15-digit span id about one time in 16) and reads 1–32 / 1–16
//!   digits; OTel Java and go-contrib take only 16 / 32 and so lose those traces. We read
//!   what Python reads (left-padded; all zeros stays invalid) and always write padded ids.
//! - Trace and span id come together: one without the other, or `ot-tracer-sampled` without
//!   them, is invalid (`Missing`; go-contrib's "require either both traceID and spanID or
//!   none", and a decision alone means nothing in OT).
//! - Absent `ot-tracer-sampled` is [`Sampling::Deferred`]: the wire says nothing, and a codec
//!   never invents a decision. Current go-contrib and OTel Java read it as "not sampled"
//!   (OTel has no deferred state; early go-contrib used its deferred flag). No vector covers
//!   it. An empty value is invalid, like any value outside the four words.
//! - Baggage: keys are the lowercase header-name suffix; values are verbatim both ways,
//!   as go-contrib and OTel Java write them (no percent-encoding); see
//!   `item_baggage.rs` for limits and what is dropped.
//! - Inject writes the trace id as its low 64 bits, 16 hex, for interop with 64-bit OT
//!   tracers (go-contrib does the same). The high half is lost on this hop: mediation should
//!   also inject a 128-bit format (`traceparent`, `b3`) to keep it. When the low half is zero
//!   the full 32 hex go out instead, since a zero id would be rejected.
//! - Inject writes `ot-tracer-sampled: true|false` (`true` when debug: OT has no debug and
//!   debug implies sampled) and leaves it out when deferred (§14: "omit"). Baggage is
//!   written even without a trace id.
//!
//! The id and `sampled` parsers are shared with `x-b3-*` ([`super::text::parse_short_trace_id`]
//! and its neighbours): the rules are identical.

use http::{HeaderName, HeaderValue};

use super::item_baggage::{self, Values};
use super::text::{parse_sampled, parse_short_span_id, parse_short_trace_id};
use super::{first, header_value, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

/// `ot-tracer-traceid`.
pub static OT_TRACER_TRACEID: HeaderName = HeaderName::from_static("ot-tracer-traceid");
/// `ot-tracer-spanid`.
pub static OT_TRACER_SPANID: HeaderName = HeaderName::from_static("ot-tracer-spanid");
/// `ot-tracer-sampled`.
pub static OT_TRACER_SAMPLED: HeaderName = HeaderName::from_static("ot-tracer-sampled");

static HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("ot-tracer-traceid"),
    HeaderName::from_static("ot-tracer-spanid"),
    HeaderName::from_static("ot-tracer-sampled"),
];

/// The per-item baggage header prefix.
pub const BAGGAGE_PREFIX: &str = "ot-baggage-";

/// The raw `ot-tracer-*` values (trimmed), `None` where a header is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields<'a> {
    /// `ot-tracer-traceid`.
    pub trace_id: Option<&'a str>,
    /// `ot-tracer-spanid`.
    pub span_id: Option<&'a str>,
    /// `ot-tracer-sampled`.
    pub sampled: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// First value of each header.
    pub fn from_headers(headers: &'a impl HeaderSource) -> Result<Self, DecodeError> {
        Ok(Fields {
            trace_id: first(headers, &OT_TRACER_TRACEID)?,
            span_id: first(headers, &OT_TRACER_SPANID)?,
            sampled: first(headers, &OT_TRACER_SAMPLED)?,
        })
    }

    /// Each header name with its value, in header order.
    pub fn pairs(&self) -> [(&'static HeaderName, Option<&'a str>); 3] {
        [
            (&OT_TRACER_TRACEID, self.trace_id),
            (&OT_TRACER_SPANID, self.span_id),
            (&OT_TRACER_SAMPLED, self.sampled),
        ]
    }
}

/// A decoded set of `ot-tracer-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtTrace {
    /// The trace id (a 64-bit one left-padded).
    pub trace_id: TraceId,
    /// The caller's span id: the gateway span's parent.
    pub span_id: SpanId,
    /// `ot-tracer-sampled`; `None` when absent.
    pub sampled: Option<bool>,
}

/// Validates the `ot-tracer-*` values.
pub fn decode(f: &Fields<'_>) -> Result<OtTrace, DecodeError> {
    let (Some(trace), Some(span)) = (f.trace_id, f.span_id) else {
        return Err(DecodeError::Missing);
    };
    Ok(OtTrace {
        trace_id: parse_short_trace_id(trace)?,
        span_id: parse_short_span_id(span)?,
        sampled: f.sampled.map(parse_sampled).transpose()?,
    })
}

/// The encoded values of one [`OtTrace`], in fixed buffers; read them through
/// [`Encoded::fields`].
#[derive(Debug, Clone, Copy)]
pub struct Encoded {
    trace_id: [u8; 32],
    /// The trace id needs all 32 digits (its high half is not zero).
    wide: bool,
    span_id: [u8; 16],
    sampled: Option<&'static str>,
}

impl Encoded {
    /// The digits of `ot-tracer-traceid`: 16 when the trace id fits in 64 bits.
    fn trace_digits(&self) -> &[u8] {
        if self.wide {
            &self.trace_id[..]
        } else {
            &self.trace_id[16..]
        }
    }

    /// The header values.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            trace_id: std::str::from_utf8(self.trace_digits()).ok(),
            span_id: std::str::from_utf8(&self.span_id).ok(),
            sampled: self.sampled,
        }
    }
}

/// Formats the headers: the trace id as 16 hex when it fits in 64 bits, else 32 (lossless;
/// [`OtTraceCodec`] truncates to 64 bits before encoding).
pub fn encode(w: &OtTrace) -> Encoded {
    Encoded {
        trace_id: w.trace_id.to_hex(),
        wide: w.trace_id.high64() != 0,
        span_id: w.span_id.to_hex(),
        sampled: w.sampled.map(|s| if s { "true" } else { "false" }),
    }
}

impl From<OtTrace> for TraceContext {
    fn from(w: OtTrace) -> Self {
        TraceContext {
            trace_id: Some(w.trace_id),
            parent_id: Some(w.span_id),
            sampling: Sampling::from_decision(w.sampled),
            ..TraceContext::default()
        }
    }
}

/// The OpenTracing (`ot-tracer-*`) codec.
pub struct OtTraceCodec;

impl Codec for OtTraceCodec {
    const FORMAT: Format = Format::OtTrace;
    const PREFIXES: &'static [&'static str] = &[BAGGAGE_PREFIX];

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let fields = Fields::from_headers(headers)?;
        let absent = fields == Fields::default();
        let mut ctx = if absent {
            TraceContext::default()
        } else {
            decode(&fields)?.into()
        };
        item_baggage::extract(headers, BAGGAGE_PREFIX, Values::Verbatim, &mut ctx.baggage);
        if absent && ctx.baggage.is_empty() {
            return Ok(None);
        }
        Ok(Some(ctx))
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        if let Some(trace_id) = ctx.trace_id {
            let wire = OtTrace {
                trace_id: TraceId::new(u128::from(trace_id.low64())).unwrap_or(trace_id),
                span_id: hop.span_id,
                sampled: if ctx.debug {
                    Some(true)
                } else {
                    ctx.sampling.decision()
                },
            };
            let encoded = encode(&wire);
            if let Ok(v) = HeaderValue::from_bytes(encoded.trace_digits()) {
                out.set(OT_TRACER_TRACEID.clone(), v);
            }
            if let Ok(v) = HeaderValue::from_bytes(&encoded.span_id) {
                out.set(OT_TRACER_SPANID.clone(), v);
            }
            // `true` / `false`: static values, no allocation.
            if let Some(v) = encoded.sampled.and_then(header_value) {
                out.set(OT_TRACER_SAMPLED.clone(), v);
            }
        }
        item_baggage::inject(&ctx.baggage, BAGGAGE_PREFIX, Values::Verbatim, out)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::testutil::{self, entry, hop, map, raw_map, run};

    const T: &str = "a1ce929d0e0e4736a3ce929d0e0e4736";
    const S: &str = "00f067aa0ba902b7";

    /// Every `ot-*` vector of tests/data/vectors.json.
    #[test]
    fn vectors() {
        run(&testutil::vectors("ot"), OtTraceCodec::extract, |_, _| {});
    }

    fn f<'a>(
        trace_id: Option<&'a str>,
        span_id: Option<&'a str>,
        sampled: Option<&'a str>,
    ) -> Fields<'a> {
        Fields {
            trace_id,
            span_id,
            sampled,
        }
    }

    #[test]
    fn decode_table() {
        use DecodeError as E;
        let w = |sampled| {
            Ok(OtTrace {
                trace_id: TraceId::new(0xa1ce929d0e0e4736a3ce929d0e0e4736).unwrap(),
                span_id: SpanId::new(0x00f067aa0ba902b7).unwrap(),
                sampled,
            })
        };
        let rows: &[(Fields<'_>, Result<OtTrace, DecodeError>, &str)] = &[
            (
                f(Some(T), Some(S), None),
                w(None),
                "absent sampled is no decision",
            ),
            (f(Some(T), Some(S), Some("TRUE")), w(Some(true)), "any case"),
            (
                f(Some(T), Some(S), Some("False")),
                w(Some(false)),
                "any case",
            ),
            (
                f(Some(T), Some(S), Some("")),
                Err(E::Sampling),
                "empty sampled",
            ),
            (
                f(Some(T), Some(S), Some("d")),
                Err(E::Sampling),
                "no debug in OT",
            ),
            (
                f(Some(T), None, Some("1")),
                Err(E::Missing),
                "trace id without span id",
            ),
            (
                f(None, Some(S), Some("1")),
                Err(E::Missing),
                "span id without trace id",
            ),
            (
                f(None, None, Some("1")),
                Err(E::Missing),
                "a decision alone",
            ),
            (
                f(Some("0000000000000000"), Some(S), None),
                Err(E::ZeroId),
                "zero trace id",
            ),
            (
                f(Some(T), Some("0000000000000000"), None),
                Err(E::ZeroId),
                "zero span id",
            ),
            (
                f(Some("A1CE929D0E0E4736"), Some(S), None),
                Err(E::TraceId),
                "upper-case trace id",
            ),
            (
                f(Some(T), Some("f067aa0ba902b7"), None),
                Ok(OtTrace {
                    trace_id: TraceId::new(0xa1ce929d0e0e4736a3ce929d0e0e4736).unwrap(),
                    span_id: SpanId::new(0x00f067aa0ba902b7).unwrap(),
                    sampled: None,
                }),
                "span id without leading zeros (OTel Python)",
            ),
            (
                f(Some("3ce929d0e0e4736"), Some(S), None),
                Ok(OtTrace {
                    trace_id: TraceId::new(0x3ce929d0e0e4736).unwrap(),
                    span_id: SpanId::new(0x00f067aa0ba902b7).unwrap(),
                    sampled: None,
                }),
                "15-digit trace id",
            ),
            (
                f(Some(T), Some("0"), None),
                Err(E::ZeroId),
                "a short zero span id",
            ),
            (f(Some(T), Some(""), None), Err(E::SpanId), "empty span id"),
        ];
        for (fields, want, why) in rows {
            assert_eq!(decode(fields), *want, "{fields:?}: {why}");
        }
    }

    #[test]
    fn extract_cases() {
        assert_eq!(OtTraceCodec::extract(&HeaderMap::new()), Ok(None));
        let deferred =
            OtTraceCodec::extract(&map(&[("ot-tracer-traceid", T), ("ot-tracer-spanid", S)]))
                .unwrap()
                .unwrap();
        assert_eq!(deferred.sampling, Sampling::Deferred);
        let items = OtTraceCodec::extract(&map(&[("OT-Baggage-User", "a%20b")]))
            .unwrap()
            .unwrap();
        assert_eq!((items.trace_id, items.sampling), (None, Sampling::Deferred));
        assert_eq!(
            items.baggage,
            vec![entry("user", "a%20b")],
            "key lower-cased, value verbatim"
        );
        let bad = map(&[("ot-tracer-traceid", T), ("ot-baggage-k", "v")]);
        assert_eq!(OtTraceCodec::extract(&bad), Err(DecodeError::Missing));
    }

    fn injected(ctx: &TraceContext) -> (HeaderMap, Injected) {
        let mut h = HeaderMap::new();
        let r = OtTraceCodec::inject(ctx, &hop(), &mut h);
        (h, r)
    }

    #[test]
    fn inject_table() {
        let base = TraceContext {
            trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736),
            parent_id: SpanId::new(7),
            ..TraceContext::default()
        };
        let rows: &[(Sampling, bool, Option<&str>)] = &[
            (Sampling::Sampled, false, Some("true")),
            (Sampling::NotSampled, false, Some("false")),
            (Sampling::Deferred, false, None),
            (Sampling::NotSampled, true, Some("true")),
        ];
        for (sampling, debug, sampled) in rows {
            let (h, _) = injected(&TraceContext {
                sampling: *sampling,
                debug: *debug,
                ..base.clone()
            });
            let get = |n: &HeaderName| h.get(n).map(|v| v.to_str().unwrap());
            assert_eq!(
                get(&OT_TRACER_TRACEID),
                Some("a3ce929d0e0e4736"),
                "low 64 bits only"
            );
            assert_eq!(get(&OT_TRACER_SPANID), Some("1122334455667788"));
            assert_eq!(
                get(&OT_TRACER_SAMPLED),
                *sampled,
                "{sampling:?} debug={debug}"
            );
        }
        let high_only = TraceContext {
            trace_id: TraceId::new(1 << 64),
            ..base.clone()
        };
        let (h, _) = injected(&high_only);
        assert_eq!(
            h.get(&OT_TRACER_TRACEID).unwrap(),
            "00000000000000010000000000000000",
            "a zero low half keeps 128 bits"
        );
        assert!(injected(&TraceContext {
            trace_id: None,
            ..base
        })
        .0
        .is_empty());
    }

    #[test]
    fn inject_baggage() {
        let ctx = TraceContext {
            trace_id: TraceId::new(1),
            sampling: Sampling::Sampled,
            baggage: vec![
                entry("user", "a b=c"),
                entry("Upper", "x"),
                entry("name", "Amélie"),
                entry("pad", " x"),
            ],
            ..TraceContext::default()
        };
        let (h, r) = injected(&ctx);
        assert_eq!(
            r.baggage_dropped, 3,
            "upper-case key, non-ASCII value, value with edge whitespace"
        );
        assert_eq!(r.baggage_drops(), [("limit", 0), ("key", 1), ("value", 2)]);
        assert_eq!(h.get("ot-baggage-user").unwrap(), "a b=c");
        let back = OtTraceCodec::extract(&h).unwrap().unwrap();
        assert_eq!(back.baggage, vec![entry("user", "a b=c")]);
        assert_eq!(back.trace_id, TraceId::new(1));
        assert_eq!(back.sampling, Sampling::Sampled);
    }

    #[test]
    fn inject_then_extract() {
        for sampling in [Sampling::Sampled, Sampling::NotSampled, Sampling::Deferred] {
            let ctx = TraceContext {
                trace_id: TraceId::new(0xabc),
                sampling,
                ..TraceContext::default()
            };
            let back = OtTraceCodec::extract(&injected(&ctx).0).unwrap().unwrap();
            assert_eq!(
                (back.trace_id, back.parent_id, back.sampling),
                (ctx.trace_id, Some(hop().span_id), sampling)
            );
        }
    }

    fn arb_wire() -> impl Strategy<Value = OtTrace> {
        (
            1..=u128::MAX,
            any::<bool>(),
            1..=u64::MAX,
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(t, narrow, s, sampled)| OtTrace {
                trace_id: TraceId::new(if narrow { t & u128::from(u64::MAX) } else { t })
                    .or(TraceId::new(t))
                    .unwrap(),
                span_id: SpanId::new(s).unwrap(),
                sampled,
            })
    }

    fn arb_value() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{0,34}",
            "(0|1|true|FALSE|x)"
        ])
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(w in arb_wire()) {
            prop_assert_eq!(decode(&encode(&w).fields()), Ok(w));
        }

        #[test]
        fn decode_never_panics(a in arb_value(), b in arb_value(), c in arb_value()) {
            let _ = decode(&f(a.as_deref(), b.as_deref(), c.as_deref()));
        }

        #[test]
        fn extract_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 4)) {
            let names = [&OT_TRACER_TRACEID, &OT_TRACER_SPANID, &OT_TRACER_SAMPLED, &HeaderName::from_static("ot-baggage-k")];
            let _ = OtTraceCodec::extract(&raw_map(names.into_iter().zip(&values)));
        }
    }
}
