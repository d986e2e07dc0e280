//! Zipkin B3, multi-header encoding: `x-b3-*` (wire-formats §4; source \[B3\]:
//! openzipkin/b3-propagation README, "Multiple Headers").
//!
//! ```text
//! x-b3-traceid      = 1*32HEXDIGLC   ; with x-b3-spanid, or neither; left-padded
//! x-b3-spanid       = 1*16HEXDIGLC   ; left-padded
//! x-b3-parentspanid = 1*16HEXDIGLC   ; only together with the ids
//! x-b3-sampled      = "1" / "0"                 ; absent = defer
//!                   / "true" / "false"          ; legacy, accepted, never sent
//! x-b3-flags        = "1"                       ; debug; any other value is ignored
//! ```
//!
//! Choices:
//! - Ids may lack leading zeros. The README says 16 or 32 hex and the OpenTelemetry
//!   propagators (Go, Java, Python, JS) take only those widths, but Brave, Zipkin's own
//!   tracer, reads `x-b3-*` ids of up to 32 / 16 digits and left-pads them
//!   (`TraceContext.Builder.parseTraceId`): writers that drop leading zeros exist (the
//!   OT-trace trap, issue 17), so we read what Brave reads (from one digit; all zeros
//!   stays invalid) and always write 16 / 32 digits. The single `b3` header stays strict,
//!   as Brave's `B3SingleFormat` is.
//! - Without trace and span id the headers are a decision only (`x-b3-sampled: 0` for a
//!   health check, `x-b3-flags: 1`): extract returns a context with `trace_id: None` and
//!   that decision. `x-b3-flags` with a value other than `1` and nothing else carries
//!   nothing and counts as absent.
//! - `x-b3-flags: 1` is debug and implies accept, whatever `x-b3-sampled` says (`b3-006`).
//! - The legacy `true` / `false` are accepted ASCII-case-insensitively (the README allows
//!   lenient acceptance; go-contrib takes lowercase only, Java any case). They are *not*
//!   accepted by the single header (`b3-035`). `d` is single-header only (`b3-024`).
//! - ParentSpanId is validated and dropped, as in [`super::b3`]: the caller's SpanId is
//!   the parent.
//! - Inject writes `x-b3-traceid` (always 32 hex), `x-b3-spanid`, `x-b3-sampled: 1|0`
//!   (omitted when deferred, and when debug: the README says not to send both) and
//!   `x-b3-flags: 1` for debug. It never writes `x-b3-parentspanid`: the gateway's span is
//!   the parent of the next hop and the parent of our span is not needed downstream
//!   (go-contrib does the same); mediation strips a stale inbound one since it is listed in
//!   [`Codec::headers`].
//!
//! Id and state rules are shared with [`super::b3`] (the id parsers live in [`super::text`]).

use http::HeaderName;

use super::b3_state::{from_sampling, to_context, State};
use super::text::{parse_sampled, parse_short_span_id, parse_short_trace_id};
use super::{first, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, SpanId, TraceContext, TraceId};

/// `X-B3-TraceId`.
pub static X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `X-B3-SpanId`.
pub static X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `X-B3-ParentSpanId`.
pub static X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `X-B3-Sampled`.
pub static X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// `X-B3-Flags`.
pub static X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

static HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-b3-traceid"),
    HeaderName::from_static("x-b3-spanid"),
    HeaderName::from_static("x-b3-parentspanid"),
    HeaderName::from_static("x-b3-sampled"),
    HeaderName::from_static("x-b3-flags"),
];

/// The raw `x-b3-*` values (trimmed), `None` where a header is absent: the string level
/// of a format that spans several headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields<'a> {
    /// `x-b3-traceid`.
    pub trace_id: Option<&'a str>,
    /// `x-b3-spanid`.
    pub span_id: Option<&'a str>,
    /// `x-b3-parentspanid`.
    pub parent_span_id: Option<&'a str>,
    /// `x-b3-sampled`.
    pub sampled: Option<&'a str>,
    /// `x-b3-flags`.
    pub flags: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// First value of each header ("first value wins").
    pub fn from_headers(headers: &'a impl HeaderSource) -> Result<Self, DecodeError> {
        Ok(Fields {
            trace_id: first(headers, &X_B3_TRACEID)?,
            span_id: first(headers, &X_B3_SPANID)?,
            parent_span_id: first(headers, &X_B3_PARENTSPANID)?,
            sampled: first(headers, &X_B3_SAMPLED)?,
            flags: first(headers, &X_B3_FLAGS)?,
        })
    }

    /// Each header name with its value, in header order.
    pub fn pairs(&self) -> [(&'static HeaderName, Option<&'a str>); 5] {
        [
            (&X_B3_TRACEID, self.trace_id),
            (&X_B3_SPANID, self.span_id),
            (&X_B3_PARENTSPANID, self.parent_span_id),
            (&X_B3_SAMPLED, self.sampled),
            (&X_B3_FLAGS, self.flags),
        ]
    }
}

/// A decoded set of `x-b3-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct B3Multi {
    /// TraceId and SpanId, which come together or not at all.
    pub ids: Option<(TraceId, SpanId)>,
    /// ParentSpanId; only valid with `ids`.
    pub parent_span_id: Option<SpanId>,
    /// `x-b3-sampled`; `None` = defer.
    pub sampled: Option<bool>,
    /// `x-b3-flags: 1`.
    pub debug: bool,
}

/// Validates the `x-b3-*` values.
pub fn decode(f: &Fields<'_>) -> Result<B3Multi, DecodeError> {
    let ids = match (f.trace_id, f.span_id) {
        (Some(t), Some(s)) => Some((parse_short_trace_id(t)?, parse_short_span_id(s)?)),
        (None, None) => None,
        _ => return Err(DecodeError::Missing),
    };
    let parent_span_id = match f.parent_span_id {
        Some(_) if ids.is_none() => return Err(DecodeError::Missing),
        p => p.map(parse_short_span_id).transpose()?,
    };
    Ok(B3Multi {
        ids,
        parent_span_id,
        sampled: f.sampled.map(parse_sampled).transpose()?,
        debug: f.flags == Some("1"),
    })
}

/// The encoded values of one [`B3Multi`], in fixed buffers (no allocation); read them
/// through [`Encoded::fields`].
#[derive(Debug, Clone, Copy)]
pub struct Encoded {
    trace_id: Option<[u8; 32]>,
    span_id: Option<[u8; 16]>,
    parent_span_id: Option<[u8; 16]>,
    sampled: Option<&'static str>,
    flags: Option<&'static str>,
}

impl Encoded {
    /// The header values.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            trace_id: self
                .trace_id
                .as_ref()
                .and_then(|b| std::str::from_utf8(b).ok()),
            span_id: self
                .span_id
                .as_ref()
                .and_then(|b| std::str::from_utf8(b).ok()),
            parent_span_id: self
                .parent_span_id
                .as_ref()
                .and_then(|b| std::str::from_utf8(b).ok()),
            sampled: self.sampled,
            flags: self.flags,
        }
    }
}

/// Formats the headers: TraceId always as 32 hex, `x-b3-sampled` as `1`/`0` (exactly
/// what the value says, even next to debug: the wire layer is lossless; [`B3MultiCodec`]
/// applies the "no sampled with debug" rule).
pub fn encode(w: &B3Multi) -> Encoded {
    Encoded {
        trace_id: w.ids.map(|(t, _)| t.to_hex()),
        span_id: w.ids.map(|(_, s)| s.to_hex()),
        parent_span_id: w.ids.and(w.parent_span_id).map(SpanId::to_hex),
        sampled: w.sampled.map(|s| if s { "1" } else { "0" }),
        flags: w.debug.then_some("1"),
    }
}

impl B3Multi {
    /// The equivalent single-header state: debug wins over `x-b3-sampled`.
    fn state(&self) -> Option<State> {
        if self.debug {
            return Some(State::Debug);
        }
        self.sampled
            .map(|s| if s { State::Accept } else { State::Deny })
    }
}

impl From<B3Multi> for TraceContext {
    fn from(w: B3Multi) -> Self {
        to_context(w.ids, w.state())
    }
}

/// The `x-b3-*` multi-header codec.
pub struct B3MultiCodec;

impl Codec for B3MultiCodec {
    const FORMAT: Format = Format::B3Multi;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let fields = Fields::from_headers(headers)?;
        if fields == Fields::default() {
            return Ok(None);
        }
        let w = decode(&fields)?;
        if w.ids.is_none() && w.state().is_none() {
            return Ok(None);
        }
        Ok(Some(w.into()))
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let state = from_sampling(ctx);
        let wire = B3Multi {
            ids: Some((trace_id, hop.span_id)),
            parent_span_id: None,
            sampled: match state {
                Some(State::Accept) => Some(true),
                Some(State::Deny) => Some(false),
                Some(State::Debug) | None => None,
            },
            debug: state == Some(State::Debug),
        };
        let encoded = encode(&wire);
        if let Some(v) = encoded.trace_id {
            out.set_bytes(&X_B3_TRACEID, &v);
        }
        if let Some(v) = encoded.span_id {
            out.set_bytes(&X_B3_SPANID, &v);
        }
        if let Some(v) = encoded.sampled {
            out.set_bytes(&X_B3_SAMPLED, v.as_bytes());
        }
        if let Some(v) = encoded.flags {
            out.set_bytes(&X_B3_FLAGS, v.as_bytes());
        }
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::testutil::{hop, map, raw_map};
    use crate::model::Sampling;

    // The `b3-*` vectors run in `codec::tests::b3_vectors`, through both codecs in precedence order.

    const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const S: &str = "00f067aa0ba902b7";

    fn f<'a>(
        trace_id: Option<&'a str>,
        span_id: Option<&'a str>,
        parent: Option<&'a str>,
        sampled: Option<&'a str>,
        flags: Option<&'a str>,
    ) -> Fields<'a> {
        Fields {
            trace_id,
            span_id,
            parent_span_id: parent,
            sampled,
            flags,
        }
    }

    #[test]
    fn decode_table() {
        use DecodeError as E;
        let t = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
        let s = SpanId::new(0x00f067aa0ba902b7).unwrap();
        let ids = Some((t, s));
        let w = |parent_span_id: Option<u64>, sampled, debug| {
            Ok(B3Multi {
                ids,
                parent_span_id: parent_span_id.and_then(SpanId::new),
                sampled,
                debug,
            })
        };
        let decision = |sampled, debug| {
            Ok(B3Multi {
                ids: None,
                parent_span_id: None,
                sampled,
                debug,
            })
        };
        let rows: &[(Fields<'_>, Result<B3Multi, DecodeError>, &str)] = &[
            (
                f(Some(T), Some(S), None, None, None),
                w(None, None, false),
                "defer",
            ),
            (
                f(Some(T), Some(S), None, Some("TRUE"), None),
                w(None, Some(true), false),
                "legacy true, any case",
            ),
            (
                f(Some(T), Some(S), None, Some("False"), None),
                w(None, Some(false), false),
                "legacy false, any case",
            ),
            (
                f(Some(T), Some(S), Some("00000000000000cd"), Some("1"), None),
                w(Some(0xcd), Some(true), false),
                "parent kept in the wire value",
            ),
            (
                f(Some(T), Some(S), None, Some("0"), Some("1")),
                w(None, Some(false), true),
                "flags recorded next to sampled",
            ),
            (
                f(Some(T), Some(S), None, None, Some("0")),
                w(None, None, false),
                "flags other than 1 ignored",
            ),
            (
                f(Some(T), Some(S), None, None, Some("debug")),
                w(None, None, false),
                "garbage flags ignored",
            ),
            (
                f(None, None, None, Some("1"), None),
                decision(Some(true), false),
                "decision only",
            ),
            (
                f(None, None, None, None, Some("1")),
                decision(None, true),
                "debug only",
            ),
            (
                f(None, Some(S), None, Some("1"), None),
                Err(E::Missing),
                "span id without trace id",
            ),
            (
                f(None, None, Some(S), Some("1"), None),
                Err(E::Missing),
                "parent without ids",
            ),
            (
                f(Some(T), Some(S), Some("0000000000000000"), None, None),
                Err(E::ZeroId),
                "all-zero parent",
            ),
            (
                f(Some(T), Some(S), Some("cd"), None, None),
                w(Some(0xcd), None, false),
                "short parent, left-padded (Brave)",
            ),
            (
                f(Some(T), Some(S), Some("00000000000000cd0"), None, None),
                Err(E::SpanId),
                "parent longer than 16 hex",
            ),
            (
                f(
                    Some("a3ce929d0e0e473"),
                    Some("f067aa0ba902b7"),
                    None,
                    None,
                    None,
                ),
                Ok(B3Multi {
                    ids: TraceId::new(0xa3ce929d0e0e473).zip(SpanId::new(0xf067aa0ba902b7)),
                    parent_span_id: None,
                    sampled: None,
                    debug: false,
                }),
                "ids without leading zeros, left-padded (Brave)",
            ),
            (
                f(Some("0"), Some(S), None, None, None),
                Err(E::ZeroId),
                "short zero trace id",
            ),
            (
                f(Some(T), Some(S), None, Some(""), None),
                Err(E::Sampling),
                "empty sampled",
            ),
            (
                f(Some(T), Some(S), None, Some("yes"), None),
                Err(E::Sampling),
                "garbage sampled",
            ),
            (
                f(Some(""), Some(S), None, None, None),
                Err(E::TraceId),
                "empty trace id",
            ),
        ];
        for (fields, want, why) in rows {
            assert_eq!(decode(fields), *want, "{fields:?}: {why}");
        }
    }

    #[test]
    fn extract_cases() {
        assert_eq!(B3MultiCodec::extract(&HeaderMap::new()), Ok(None));
        assert_eq!(
            B3MultiCodec::extract(&map(&[("x-b3-flags", "0")])),
            Ok(None),
            "carries nothing"
        );
        let debug = B3MultiCodec::extract(&map(&[("x-b3-flags", "1")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (debug.trace_id, debug.sampling, debug.debug),
            (None, Sampling::Sampled, true)
        );
        let h = map(&[
            ("x-b3-traceid", T),
            ("x-b3-spanid", S),
            ("x-b3-parentspanid", "00000000000000cd"),
        ]);
        let ctx = B3MultiCodec::extract(&h).unwrap().unwrap();
        assert_eq!(
            ctx.parent_id,
            SpanId::new(0x00f067aa0ba902b7),
            "SpanId, not ParentSpanId, is the parent"
        );
        assert_eq!(ctx.sampling, Sampling::Deferred);
        let agree = map(&[
            ("x-b3-traceid", T),
            ("x-b3-traceid", T),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(
            B3MultiCodec::extract(&agree).unwrap().unwrap().sampling,
            Sampling::Sampled
        );
        let conflict = map(&[
            ("x-b3-traceid", T),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
            ("x-b3-sampled", "0"),
        ]);
        assert_eq!(
            B3MultiCodec::extract(&conflict),
            Err(DecodeError::Conflicting)
        );
        assert!(
            B3MultiCodec::extract(&map(&[("b3", "1")]))
                .unwrap()
                .is_none(),
            "the single header is not ours"
        );
    }

    fn injected(ctx: &TraceContext) -> HeaderMap {
        let mut h = HeaderMap::new();
        assert_eq!(
            B3MultiCodec::inject(ctx, &hop(), &mut h),
            Injected::default()
        );
        h
    }

    #[test]
    fn inject_table() {
        let base = TraceContext {
            trace_id: TraceId::new(0xa3ce929d0e0e4736),
            parent_id: SpanId::new(7),
            ..TraceContext::default()
        };
        let rows: &[(Sampling, bool, Option<&str>, Option<&str>)] = &[
            (Sampling::Deferred, false, None, None),
            (Sampling::Sampled, false, Some("1"), None),
            (Sampling::NotSampled, false, Some("0"), None),
            (Sampling::Sampled, true, None, Some("1")),
            (Sampling::NotSampled, true, None, Some("1")),
        ];
        for (sampling, debug, sampled, flags) in rows {
            let h = injected(&TraceContext {
                sampling: *sampling,
                debug: *debug,
                ..base.clone()
            });
            let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap());
            assert_eq!(
                get("x-b3-traceid"),
                Some("0000000000000000a3ce929d0e0e4736")
            );
            assert_eq!(get("x-b3-spanid"), Some("1122334455667788"));
            assert_eq!(get("x-b3-parentspanid"), None, "never sent");
            assert_eq!(get("x-b3-sampled"), *sampled, "{sampling:?} debug={debug}");
            assert_eq!(get("x-b3-flags"), *flags, "{sampling:?} debug={debug}");
        }
        assert!(injected(&TraceContext {
            trace_id: None,
            ..base
        })
        .is_empty());
    }

    #[test]
    fn inject_then_extract() {
        for (sampling, debug) in [
            (Sampling::Deferred, false),
            (Sampling::Sampled, false),
            (Sampling::NotSampled, false),
            (Sampling::Sampled, true),
        ] {
            let ctx = TraceContext {
                trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736),
                sampling,
                debug,
                ..TraceContext::default()
            };
            let back = B3MultiCodec::extract(&injected(&ctx)).unwrap().unwrap();
            assert_eq!(back.trace_id, ctx.trace_id);
            assert_eq!(back.parent_id, Some(hop().span_id));
            assert_eq!((back.sampling, back.debug), (sampling, debug));
        }
    }

    fn arb_wire() -> impl Strategy<Value = B3Multi> {
        (
            proptest::option::of((1..=u128::MAX, 1..=u64::MAX)),
            proptest::option::of(1..=u64::MAX),
            proptest::option::of(any::<bool>()),
            any::<bool>(),
        )
            .prop_map(|(ids, parent, sampled, debug)| {
                let ids = ids.map(|(t, s)| (TraceId::new(t).unwrap(), SpanId::new(s).unwrap()));
                B3Multi {
                    ids,
                    parent_span_id: ids.and(parent.and_then(SpanId::new)),
                    sampled,
                    debug,
                }
            })
    }

    fn arb_value() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{0,34}",
            "(0|1|d|true|false|TRUE)"
        ])
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(w in arb_wire()) {
            prop_assert_eq!(decode(&encode(&w).fields()), Ok(w));
        }

        #[test]
        fn decode_never_panics(a in arb_value(), b in arb_value(), c in arb_value(), d in arb_value(), e in arb_value()) {
            let _ = decode(&f(a.as_deref(), b.as_deref(), c.as_deref(), d.as_deref(), e.as_deref()));
        }

        #[test]
        fn extract_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 5)) {
            let _ = B3MultiCodec::extract(&raw_map(HEADERS.iter().zip(&values)));
        }
    }
}
