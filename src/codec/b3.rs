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

use http::HeaderName;

pub use super::b3_state::State;
use super::b3_state::{from_sampling, to_context};
use super::text::{into_string, parse_span_id, parse_trace_id, split_ascii};
use super::{first, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, SpanId, TraceContext, TraceId};

/// The single B3 header.
pub static B3: HeaderName = HeaderName::from_static("b3");

static HEADERS: [HeaderName; 1] = [HeaderName::from_static("b3")];

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

/// [`encode`] as bytes, in a buffer of exactly their length (for
/// [`HeaderSink::set_vec`]: a header value takes it without a copy).
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

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
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
        out.set_vec(&B3, encode_bytes(&wire));
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

    const T128: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    use http::HeaderValue;

    // The `b3-*` vectors of tests/data/vectors.json run through both B3 codecs, in the
    // precedence order of mediation, in `codec::tests::b3_vectors`.

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
