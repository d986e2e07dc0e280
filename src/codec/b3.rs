//! Zipkin B3, single-header encoding: `b3` (wire-formats §4; source \[B3\]:
//! openzipkin/b3-propagation README, "Single Header").
//!
//! ```text
//! b3       = ids [ "-" state [ "-" parent ] ] / state
//! ids      = trace-id "-" span-id
//! trace-id = 16HEXDIGLC / 32HEXDIGLC        ; 64-bit ids are left-padded to 128
//! span-id  = 16HEXDIGLC
//! parent   = 16HEXDIGLC                     ; ParentSpanId
//! state    = "0" / "1" / "d"                ; deny / accept / debug; absent = defer
//! ```
//!
//! Choices:
//! - `b3: 0` (or `1`, `d`) alone is a decision without ids: extract returns a context
//!   with `trace_id: None` and that decision (the mediation layer decides what a
//!   decision without a trace means).
//! - `d` means debug, and debug implies accept: the context is `Sampled` + `debug`
//!   (opentelemetry-rust maps `d` to a flag *without* the sampled bit; we follow the spec).
//! - Only `0`, `1`, `d` are states. `true`/`false` are legacy values accepted leniently by
//!   the multi-header codec only (see [`super::b3multi`]); here they are invalid, as are
//!   unknown states (`q`: Java accepts it as "not sampled", the spec and Go reject it).
//! - ParentSpanId is validated (16 hex, non-zero) and then dropped: in B3 client and server
//!   share one span id, so the caller's *SpanId* is what becomes the gateway span's parent.
//! - An empty `b3` value is malformed, not absent (go-contrib treats it as absent; the
//!   outcome for the request is the same, only the metric differs).
//! - When `b3` is invalid, the mediation layer's precedence falls back to the `x-b3-*`
//!   headers (vector `b3-019`): this codec alone returns the error.
//! - Inject writes `{32-hex trace}-{16-hex span}[-{1|0|d}]`: always 128-bit (B3 allows it),
//!   the state omitted when deferred, `d` whenever `ctx.debug` is set (debug wins over the
//!   decision), and never a ParentSpanId (go-contrib does the same; the next hop's parent
//!   is our span id, which the second field already says).
//!
//! The state ⇄ model mapping here is shared with [`super::b3multi`]; the id and `sampled`
//! parsers, shared with [`super::ottrace`] too (same rules), live in [`super::text`].

use http::{HeaderMap, HeaderName};

use super::text::{into_string, parse_span_id, parse_trace_id, split_ascii};
use super::{first, header_value, Codec, DecodeError, Format, HeaderSink, Injected};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

/// The single B3 header.
pub static B3: HeaderName = HeaderName::from_static("b3");

static HEADERS: [HeaderName; 1] = [HeaderName::from_static("b3")];

/// A B3 sampling state (`X-B3-Sampled` / `X-B3-Flags` in the multi encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `0`: the caller decided not to record.
    Deny,
    /// `1`: the caller records.
    Accept,
    /// `d`: debug, which implies accept.
    Debug,
}

/// One `b3` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Single {
    /// `b3: {state}` — a decision without ids.
    Decision(State),
    /// `b3: {trace}-{span}[-{state}[-{parent}]]`.
    Context {
        /// TraceId (a 64-bit one left-padded).
        trace_id: TraceId,
        /// SpanId: the caller's span, the gateway span's parent.
        span_id: SpanId,
        /// `None` = defer.
        state: Option<State>,
        /// ParentSpanId; only expressible together with a state, so [`encode`] leaves it
        /// out when `state` is `None`.
        parent_span_id: Option<SpanId>,
    },
}

fn parse_state(s: &str) -> Result<State, DecodeError> {
    match s {
        "0" => Ok(State::Deny),
        "1" => Ok(State::Accept),
        "d" => Ok(State::Debug),
        _ => Err(DecodeError::Sampling),
    }
}

/// Parses one `b3` value (already trimmed of OWS).
pub fn decode(s: &str) -> Result<B3Single, DecodeError> {
    if s.len() == 1 {
        return parse_state(s).map(B3Single::Decision);
    }
    let mut parts = split_ascii(s, b'-');
    let (Some(trace), Some(span)) = (parts.next(), parts.next()) else {
        return Err(DecodeError::Malformed);
    };
    let state = parts.next();
    let parent = parts.next();
    if parts.next().is_some() || [Some(trace), Some(span), state, parent].contains(&Some("")) {
        return Err(DecodeError::Malformed);
    }
    Ok(B3Single::Context {
        trace_id: parse_trace_id(trace)?,
        span_id: parse_span_id(span)?,
        state: state.map(parse_state).transpose()?,
        parent_span_id: parent.map(parse_span_id).transpose()?,
    })
}

fn state_char(state: State) -> u8 {
    match state {
        State::Deny => b'0',
        State::Accept => b'1',
        State::Debug => b'd',
    }
}

/// Formats one `b3` value; the TraceId always as 32 hex.
pub fn encode(b3: &B3Single) -> String {
    into_string(encode_bytes(b3))
}

/// [`encode`] as bytes, in a buffer of exactly their length (a header value takes it
/// without a copy).
fn encode_bytes(b3: &B3Single) -> Vec<u8> {
    match *b3 {
        B3Single::Decision(state) => vec![state_char(state)],
        B3Single::Context {
            trace_id,
            span_id,
            state,
            parent_span_id,
        } => {
            let len = 32
                + 1
                + 16
                + match (state, parent_span_id) {
                    (None, _) => 0,
                    (Some(_), None) => 2,
                    (Some(_), Some(_)) => 2 + 17,
                };
            let mut out = Vec::with_capacity(len);
            out.extend_from_slice(&trace_id.to_hex());
            out.push(b'-');
            out.extend_from_slice(&span_id.to_hex());
            if let Some(state) = state {
                out.extend_from_slice(&[b'-', state_char(state)]);
                if let Some(parent) = parent_span_id {
                    out.push(b'-');
                    out.extend_from_slice(&parent.to_hex());
                }
            }
            out
        }
    }
}

/// The model's sampling and debug flag for a B3 state (shared with `x-b3-*`).
pub(crate) fn to_sampling(state: Option<State>) -> (Sampling, bool) {
    match state {
        None => (Sampling::Deferred, false),
        Some(State::Deny) => (Sampling::NotSampled, false),
        Some(State::Accept) => (Sampling::Sampled, false),
        Some(State::Debug) => (Sampling::Sampled, true),
    }
}

/// The B3 state to send for `ctx`: debug wins, deferred stays deferred.
pub(crate) fn from_sampling(ctx: &TraceContext) -> Option<State> {
    if ctx.debug {
        return Some(State::Debug);
    }
    match ctx.sampling {
        Sampling::Sampled => Some(State::Accept),
        Sampling::NotSampled => Some(State::Deny),
        Sampling::Deferred => None,
    }
}

/// The context a B3 carrier describes (shared with `x-b3-*`): the caller's SpanId is the
/// parent; no ids for a decision-only carrier.
pub(crate) fn to_context(ids: Option<(TraceId, SpanId)>, state: Option<State>) -> TraceContext {
    let (sampling, debug) = to_sampling(state);
    TraceContext {
        trace_id: ids.map(|(t, _)| t),
        parent_id: ids.map(|(_, s)| s),
        sampling,
        debug,
        ..TraceContext::default()
    }
}

impl From<B3Single> for TraceContext {
    fn from(b3: B3Single) -> Self {
        match b3 {
            B3Single::Decision(state) => to_context(None, Some(state)),
            B3Single::Context {
                trace_id,
                span_id,
                state,
                ..
            } => to_context(Some((trace_id, span_id)), state),
        }
    }
}

/// The `b3` single-header codec.
pub struct B3Codec;

impl Codec for B3Codec {
    const FORMAT: Format = Format::B3;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &HeaderMap) -> Result<Option<TraceContext>, DecodeError> {
        match first(headers, &B3)? {
            None => Ok(None),
            Some(v) => decode(v).map(|w| Some(w.into())),
        }
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let wire = B3Single::Context {
            trace_id,
            span_id: hop.span_id,
            state: from_sampling(ctx),
            parent_span_id: None,
        };
        if let Some(v) = header_value(encode_bytes(&wire)) {
            out.set(B3.clone(), v);
        }
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::b3multi::B3MultiCodec;
    use crate::codec::testutil::{check, hop, map, ok, raw_map, Row};
    use http::HeaderValue;

    const T128: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const S: &str = "00f067aa0ba902b7";

    /// Every `b3-*` vector of vectors.json. Both encodings are tried the way the
    /// mediation layer's precedence does: `b3` first, `x-b3-*` if `b3` gave no context.
    const VECTORS: &[Row] = &[
        Row {
            id: "b3-001",
            headers: &[("x-b3-traceid", T128), ("x-b3-spanid", S)],
            expect: ok(Some(T128), Some(S), None, false),
        },
        Row {
            id: "b3-002",
            headers: &[
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "0"),
            ],
            expect: ok(Some(T128), Some(S), Some(false), false),
        },
        Row {
            id: "b3-003",
            headers: &[
                ("X-B3-TraceId", T128),
                ("X-B3-SpanId", S),
                ("X-B3-Sampled", "1"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-004",
            headers: &[
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "true"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-005",
            headers: &[
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-flags", "1"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), true),
        },
        Row {
            id: "b3-006",
            headers: &[
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "0"),
                ("x-b3-flags", "1"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), true),
        },
        Row {
            id: "b3-007",
            headers: &[
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "1"),
                ("x-b3-flags", "2"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-008",
            headers: &[
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "1"),
                ("x-b3-parentspanid", "00f067aa0ba90200"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-009",
            headers: &[("x-b3-sampled", "0")],
            expect: ok(None, None, Some(false), false),
        },
        Row {
            id: "b3-010",
            headers: &[("x-b3-traceid", "a3ce929d0e0e4736"), ("x-b3-spanid", S)],
            expect: ok(
                Some("0000000000000000a3ce929d0e0e4736"),
                Some(S),
                None,
                false,
            ),
        },
        Row {
            id: "b3-011",
            headers: &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")],
            expect: ok(Some(T128), Some(S), None, false),
        },
        Row {
            id: "b3-012",
            headers: &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0")],
            expect: ok(Some(T128), Some(S), Some(false), false),
        },
        Row {
            id: "b3-013",
            headers: &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-014",
            headers: &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d")],
            expect: ok(Some(T128), Some(S), Some(true), true),
        },
        Row {
            id: "b3-015",
            headers: &[(
                "b3",
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00000000000000cd",
            )],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-016",
            headers: &[("b3", "0")],
            expect: ok(None, None, Some(false), false),
        },
        Row {
            id: "b3-017",
            headers: &[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7")],
            expect: ok(
                Some("0000000000000000a3ce929d0e0e4736"),
                Some(S),
                None,
                false,
            ),
        },
        Row {
            id: "b3-018",
            headers: &[
                ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "0"),
            ],
            expect: ok(Some(T128), Some(S), Some(true), false),
        },
        Row {
            id: "b3-019",
            headers: &[
                ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"),
                ("x-b3-traceid", T128),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "0"),
            ],
            expect: ok(Some(T128), Some(S), Some(false), false),
        },
        Row {
            id: "b3-020",
            headers: &[
                ("x-b3-traceid", "ab00000000000000000000000000000000"),
                ("x-b3-spanid", "cd00000000000000"),
                ("x-b3-sampled", "1"),
            ],
            expect: Err("trace id 34 hex"),
        },
        Row {
            id: "b3-021",
            headers: &[
                ("x-b3-traceid", "ab0000000000000000000000000000"),
                ("x-b3-spanid", "cd00000000000000"),
                ("x-b3-sampled", "1"),
            ],
            // Was "trace id 30 hex (only 16 or 32 allowed)": `x-b3-*` ids may lack leading
            // zeros, as Brave reads them (issue 17; see `b3multi.rs`).
            expect: ok(
                Some("00ab0000000000000000000000000000"),
                Some("cd00000000000000"),
                Some(true),
                false,
            ),
        },
        Row {
            id: "b3-022",
            headers: &[
                ("x-b3-traceid", "ab000000000000000000000000000000"),
                ("x-b3-spanid", "cd0000000000000000"),
                ("x-b3-sampled", "1"),
            ],
            expect: Err("span id 18 hex"),
        },
        Row {
            id: "b3-023",
            headers: &[
                ("x-b3-traceid", "ab000000000000000000000000000000"),
                ("x-b3-spanid", "cd00000000000000"),
                ("x-b3-sampled", "10"),
            ],
            expect: Err("bad sampled value"),
        },
        Row {
            id: "b3-024",
            headers: &[
                ("x-b3-traceid", "ab000000000000000000000000000000"),
                ("x-b3-spanid", "cd00000000000000"),
                ("x-b3-sampled", "d"),
            ],
            expect: Err("'d' is only valid in the single header"),
        },
        Row {
            id: "b3-025",
            headers: &[
                ("x-b3-traceid", "AB000000000000000000000000000000"),
                ("x-b3-spanid", "cd00000000000000"),
                ("x-b3-sampled", "1"),
            ],
            expect: Err("upper-case trace id"),
        },
        Row {
            id: "b3-026",
            headers: &[
                ("x-b3-traceid", "00000000000000000000000000000000"),
                ("x-b3-spanid", "cd00000000000000"),
                ("x-b3-sampled", "1"),
            ],
            expect: Err("all-zero trace id"),
        },
        Row {
            id: "b3-027",
            headers: &[
                ("x-b3-traceid", "ab000000000000000000000000000000"),
                ("x-b3-spanid", "0000000000000000"),
                ("x-b3-sampled", "1"),
            ],
            expect: Err("all-zero span id"),
        },
        Row {
            id: "b3-028",
            headers: &[
                ("x-b3-traceid", "ab000000000000000000000000000000"),
                ("x-b3-sampled", "1"),
            ],
            expect: Err("trace id without span id"),
        },
        Row {
            id: "b3-029",
            headers: &[(
                "b3",
                "ab00000000000000000000000000000000-cd00000000000000-1",
            )],
            expect: Err("single: trace id 34 hex"),
        },
        Row {
            id: "b3-030",
            headers: &[(
                "b3",
                "00-ab000000000000000000000000000000-cd00000000000000-01",
            )],
            expect: Err("single: a traceparent value is not a b3 value"),
        },
        Row {
            id: "b3-031",
            headers: &[(
                "b3",
                "ab000000000000000000000000000000-cd00000000000000-1-cd0000000000000000",
            )],
            expect: Err("single: parent span id 18 hex"),
        },
        Row {
            id: "b3-032",
            headers: &[("b3", "ab000000000000000000000000000000-cd00000000000000-q")],
            expect: Err("single: bogus sampling state"),
        },
        Row {
            id: "b3-033",
            headers: &[("b3", "ab000000000000000000000000000000-CD00000000000000-1")],
            expect: Err("single: upper-case span id"),
        },
        Row {
            id: "b3-034",
            headers: &[("b3", "00000000000000000000000000000000-0000000000000000-1")],
            expect: Err("single: all-zero ids"),
        },
        Row {
            id: "b3-035",
            headers: &[(
                "b3",
                "ab000000000000000000000000000000-cd00000000000000-true",
            )],
            expect: Err("single: 'true' is not a single-header sampling state"),
        },
    ];

    /// The precedence rule of the mediation layer, for these two codecs.
    fn b3_then_multi(
        h: &HeaderMap,
    ) -> (
        Result<Option<TraceContext>, DecodeError>,
        Result<Option<TraceContext>, DecodeError>,
    ) {
        let single = B3Codec::extract(h);
        let multi = B3MultiCodec::extract(h);
        (single, multi)
    }

    #[test]
    fn vectors() {
        for row in VECTORS {
            let (single, multi) = b3_then_multi(&map(row.headers));
            let chosen = match &single {
                Ok(Some(ctx)) => Some(ctx),
                _ => multi.as_ref().ok().and_then(|c| c.as_ref()),
            };
            match &row.expect {
                Ok(expect) => check(
                    row.id,
                    chosen.unwrap_or_else(|| {
                        panic!("{}: no context ({single:?}, {multi:?})", row.id)
                    }),
                    expect,
                ),
                Err(reason) => {
                    assert!(chosen.is_none(), "{}: accepted, but {reason}", row.id);
                    assert!(
                        single.is_err() || multi.is_err(),
                        "{}: not reported as invalid ({reason})",
                        row.id
                    );
                }
            }
        }
    }

    #[test]
    fn b3_019_is_resolved_by_precedence_not_by_either_codec() {
        let row = VECTORS.iter().find(|r| r.id == "b3-019").unwrap();
        let h = map(row.headers);
        assert_eq!(
            B3Codec::extract(&h),
            Err(DecodeError::Malformed),
            "trailing dash"
        );
        assert!(matches!(B3MultiCodec::extract(&h), Ok(Some(_))));
    }

    #[test]
    fn decode_table() {
        use DecodeError as E;
        let t = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
        let s = SpanId::new(0x00f067aa0ba902b7).unwrap();
        let p = SpanId::new(0xcd).unwrap();
        let ctx = |state, parent_span_id| {
            Ok(B3Single::Context {
                trace_id: t,
                span_id: s,
                state,
                parent_span_id,
            })
        };
        let rows: &[(&str, Result<B3Single, DecodeError>, &str)] = &[
            ("0", Ok(B3Single::Decision(State::Deny)), "decision only"),
            ("1", Ok(B3Single::Decision(State::Accept)), "decision only"),
            (
                "d",
                Ok(B3Single::Decision(State::Debug)),
                "decision only, debug",
            ),
            ("q", Err(E::Sampling), "unknown lone state"),
            ("", Err(E::Malformed), "empty"),
            ("true", Err(E::Malformed), "a lone non-state word"),
            (T128, Err(E::Malformed), "trace id without span id"),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                ctx(None, None),
                "defer",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-00000000000000cd",
                ctx(Some(State::Debug), Some(p)),
                "debug with parent",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00000000000000cd",
                Err(E::Sampling),
                "parent without state",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-",
                Err(E::Malformed),
                "trailing dash after state",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00000000000000cd-x",
                Err(E::Malformed),
                "five fields",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736--1",
                Err(E::Malformed),
                "empty span id",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-0000000000000000",
                Err(E::ZeroId),
                "all-zero parent",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00000000000000CD",
                Err(E::SpanId),
                "upper-case parent",
            ),
            (
                "+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                Err(E::TraceId),
                "sign in trace id",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b",
                Err(E::SpanId),
                "15-hex span id",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-10",
                Err(E::Sampling),
                "two-char state",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-D",
                Err(E::Sampling),
                "upper-case debug",
            ),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736 -00f067aa0ba902b7",
                Err(E::TraceId),
                "inner whitespace",
            ),
        ];
        for (input, want, why) in rows {
            assert_eq!(decode(input), *want, "{input:?}: {why}");
        }
    }

    #[test]
    fn decision_only_and_debug_contexts() {
        let d = B3Codec::extract(&map(&[("b3", "d")])).unwrap().unwrap();
        assert_eq!(
            (d.trace_id, d.parent_id, d.sampling, d.debug),
            (None, None, Sampling::Sampled, true)
        );
        let one = B3Codec::extract(&map(&[("b3", "1")])).unwrap().unwrap();
        assert_eq!(
            (one.trace_id, one.sampling, one.debug),
            (None, Sampling::Sampled, false)
        );
        assert_eq!(B3Codec::extract(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn identical_repeats_agree_and_ows_is_trimmed() {
        let v = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1";
        let h = map(&[
            (
                "b3",
                " \t4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1 ",
            ),
            ("b3", v),
        ]);
        let ctx = B3Codec::extract(&h).unwrap().unwrap();
        assert_eq!(ctx.sampling, Sampling::Sampled);
        let h = map(&[("b3", v), ("b3", "garbage")]);
        assert_eq!(B3Codec::extract(&h), Err(DecodeError::Conflicting));
        let mut bad = HeaderMap::new();
        bad.insert(&B3, HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(B3Codec::extract(&bad), Err(DecodeError::Charset));
    }

    fn injected(ctx: &TraceContext) -> HeaderMap {
        let mut h = HeaderMap::new();
        let r = B3Codec::inject(ctx, &hop(), &mut h);
        assert_eq!(r, Injected::default());
        h
    }

    #[test]
    fn inject_table() {
        let base = TraceContext {
            trace_id: TraceId::new(0xa3ce929d0e0e4736),
            parent_id: SpanId::new(7),
            ..TraceContext::default()
        };
        let rows: &[(Sampling, bool, &str)] = &[
            (
                Sampling::Deferred,
                false,
                "0000000000000000a3ce929d0e0e4736-1122334455667788",
            ),
            (
                Sampling::Sampled,
                false,
                "0000000000000000a3ce929d0e0e4736-1122334455667788-1",
            ),
            (
                Sampling::NotSampled,
                false,
                "0000000000000000a3ce929d0e0e4736-1122334455667788-0",
            ),
            (
                Sampling::Sampled,
                true,
                "0000000000000000a3ce929d0e0e4736-1122334455667788-d",
            ),
            (
                Sampling::Deferred,
                true,
                "0000000000000000a3ce929d0e0e4736-1122334455667788-d",
            ),
        ];
        for (sampling, debug, want) in rows {
            let ctx = TraceContext {
                sampling: *sampling,
                debug: *debug,
                ..base.clone()
            };
            let h = injected(&ctx);
            assert_eq!(h.len(), 1);
            assert_eq!(h.get("b3").unwrap(), want, "{sampling:?} debug={debug}");
        }
        assert!(
            injected(&TraceContext {
                trace_id: None,
                ..base
            })
            .is_empty(),
            "no trace id, nothing written"
        );
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
                parent_id: SpanId::new(1),
                sampling,
                debug,
                ..TraceContext::default()
            };
            let back = B3Codec::extract(&injected(&ctx)).unwrap().unwrap();
            assert_eq!(back.trace_id, ctx.trace_id);
            assert_eq!(
                back.parent_id,
                SpanId::new(0x1122334455667788),
                "the hop's span is the next parent"
            );
            assert_eq!((back.sampling, back.debug), (sampling, debug));
        }
    }

    fn arb_state() -> impl Strategy<Value = State> {
        prop_oneof![Just(State::Deny), Just(State::Accept), Just(State::Debug)]
    }

    fn arb_b3() -> impl Strategy<Value = B3Single> {
        let ids = (
            1..=u128::MAX,
            1..=u64::MAX,
            proptest::option::of(arb_state()),
            1..=u64::MAX,
            any::<bool>(),
        );
        prop_oneof![
            arb_state().prop_map(B3Single::Decision),
            ids.prop_map(|(t, s, state, p, has_parent)| B3Single::Context {
                trace_id: TraceId::new(t).unwrap(),
                span_id: SpanId::new(s).unwrap(),
                state,
                parent_span_id: (state.is_some() && has_parent).then(|| SpanId::new(p).unwrap()),
            }),
        ]
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(w in arb_b3()) {
            prop_assert_eq!(decode(&encode(&w)), Ok(w));
        }

        #[test]
        fn decode_never_panics(s in any::<String>()) {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_near_misses(s in "[0-9a-fdA-F-]{0,70}") {
            let _ = decode(&s);
        }

        #[test]
        fn extract_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = B3Codec::extract(&raw_map([(&B3, bytes)]));
        }
    }
}
