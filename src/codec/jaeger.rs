//! Jaeger native propagation: `uber-trace-id`, `uberctx-*`, `jaeger-baggage`,
//! `jaeger-debug-id` (wire-formats §5; source \[JAEGER\]: Jaeger client-libraries docs
//! v1.63, "Propagation Format", and jaeger-client-go `constants.go`).
//!
//! ```text
//! uber-trace-id   = trace-id ":" span-id ":" parent-id ":" flags
//!                 / <the same, URL-encoded>         ; only when the value has no ":"
//! trace-id        = 1*32HEXDIGLC                    ; left-padded to 128 bits, non-zero
//! span-id         = 1*16HEXDIGLC                    ; left-padded to 64 bits, non-zero
//! parent-id       = *<any char but ":">             ; deprecated, ignored
//! flags           = 1*2HEXDIGLC                     ; 0x01 sampled, 0x02 debug, 0x08 firehose
//! uberctx-{key}   = URL-encoded value               ; one baggage item per header
//! jaeger-baggage  = item *( OWS "," OWS item ), item = key OWS "=" OWS value
//! jaeger-debug-id = correlation id                  ; forces a debug trace when no trace
//! ```
//!
//! Choices:
//! - Hex is lowercase only, like every id in this gateway (go-contrib's `TraceIDFromHex`
//!   agrees). Flags are 1–2 *hex* digits as the spec says: `ff` is sampled + debug,
//!   `10` is 0x10 = not sampled; OTel Java and Rust parse them as decimal and go-contrib
//!   takes any length (`120`): we follow the spec (`jaeger-005`, `jaeger-020`).
//! - The parent field is ignored whatever it holds (`jaeger-008`), but kept in the wire
//!   value so that decode/encode is lossless.
//! - A value without `:` is URL-decoded first (OTel Java and Rust do this, `jaeger-010`).
//! - Debug counts only together with sampled (`jaeger-004`); firehose (0x08) has no place
//!   in the model and is dropped.
//! - `uberctx-*`: key = the lowercase header-name suffix, value URL-decoded with `+` as a
//!   space (Go `url.QueryUnescape`, Java `URLDecoder`); see `item_baggage.rs`.
//! - `jaeger-baggage` is only ever baggage (`jaeger-012`): comma-separated `k=v` items, each
//!   trimmed; items without exactly one `=` or with an empty key are skipped, as OTel Java
//!   and jaeger-client-go do; values are URL-decoded like `uberctx-*` values. All fields of a
//!   repeated header are read. Its items come *after* the `uberctx-*` ones and duplicates
//!   are kept (baggage is an ordered multimap), so a reader that wants one value per key and
//!   takes the first one gets the `uberctx-*` value.
//! - `jaeger-debug-id` (non-empty, visible ASCII, verbatim) is kept in
//!   `originals.jaeger_debug_id` for the gateway span. Without `uber-trace-id` it makes the
//!   context `Sampled` + `debug` with no ids, as Jaeger tracers do; with a trace it changes
//!   nothing else (Jaeger only honours it for a new trace). It is never injected.
//! - A carrier that yields nothing usable (only empty `jaeger-debug-id`, only unusable
//!   baggage items) counts as absent.
//! - Inject: `{32-hex trace}:{16-hex span}:0:{flags}` with flags `3` when `ctx.debug` (debug
//!   implies sampled), `1` when sampled, else `0`: Jaeger cannot express "deferred", which
//!   goes out as not sampled (mediation decides before that matters). Baggage goes out as
//!   `uberctx-*` only, within the limits of `item_baggage.rs`; it is written even
//!   without a trace id (a Jaeger tracer accepts baggage-only carriers).

use std::borrow::Cow;

use http::HeaderName;

use super::item_baggage::{self, Values};
use super::text::{
    hex_u64, into_string, parse_short_span_id, parse_short_trace_id, percent_decode, split_ascii,
    split_once_ascii,
};
use super::{
    first, trim_ows, value_str, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected,
};
use crate::model::{Baggage, BaggageEntry, Hop, Sampling, SpanId, TraceContext, TraceId};

/// `uber-trace-id`.
pub static UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");
/// `jaeger-debug-id`.
pub static JAEGER_DEBUG_ID: HeaderName = HeaderName::from_static("jaeger-debug-id");
/// `jaeger-baggage`.
pub static JAEGER_BAGGAGE: HeaderName = HeaderName::from_static("jaeger-baggage");

static HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("uber-trace-id"),
    HeaderName::from_static("jaeger-debug-id"),
    HeaderName::from_static("jaeger-baggage"),
];

/// The per-item baggage header prefix.
pub const BAGGAGE_PREFIX: &str = "uberctx-";

const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

/// One `uber-trace-id` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UberTraceId<'a> {
    /// The trace id (shorter ids left-padded).
    pub trace_id: TraceId,
    /// The caller's span id: the gateway span's parent.
    pub span_id: SpanId,
    /// The deprecated parent field, verbatim (never contains `:`).
    pub parent: Cow<'a, str>,
    /// The flags byte.
    pub flags: u8,
}

/// Parses one `uber-trace-id` value (already trimmed of OWS).
pub fn decode(s: &str) -> Result<UberTraceId<'_>, DecodeError> {
    if !s.contains(':') && s.contains('%') {
        let decoded = percent_decode(s);
        return parse(&decoded).map(|w| UberTraceId {
            parent: Cow::Owned(w.parent.into_owned()),
            ..w
        });
    }
    parse(s)
}

fn parse(s: &str) -> Result<UberTraceId<'_>, DecodeError> {
    let mut parts = split_ascii(s, b':');
    let (Some(trace), Some(span), Some(parent), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(DecodeError::Malformed);
    };
    // Variable length, left-padded: the spec's MUST, and the parsers `ot-tracer-*` and
    // `x-b3-*` share.
    let trace_id = parse_short_trace_id(trace)?;
    let span_id = parse_short_span_id(span)?;
    let flags = match flags.len() {
        1 | 2 => hex_u64(flags).ok_or(DecodeError::Sampling)? as u8,
        _ => return Err(DecodeError::Sampling),
    };
    Ok(UberTraceId {
        trace_id,
        span_id,
        parent: Cow::Borrowed(parent),
        flags,
    })
}

/// Formats one `uber-trace-id` value: trace id as 32 hex, span id as 16, flags as 1–2 hex.
pub fn encode(w: &UberTraceId<'_>) -> String {
    into_string(encode_bytes(w))
}

/// [`encode`] as bytes, in a buffer of exactly their length (for
/// [`HeaderSink::set_vec`]: a header value takes it without a copy).
fn encode_bytes(w: &UberTraceId<'_>) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let flag_digits = if w.flags > 0x0f { 2 } else { 1 };
    let mut out = Vec::with_capacity(32 + 1 + 16 + 1 + w.parent.len() + 1 + flag_digits);
    out.extend_from_slice(&w.trace_id.to_hex());
    out.push(b':');
    out.extend_from_slice(&w.span_id.to_hex());
    out.push(b':');
    out.extend_from_slice(w.parent.as_bytes());
    out.push(b':');
    if w.flags > 0x0f {
        out.push(HEX[usize::from(w.flags >> 4)]);
    }
    out.push(HEX[usize::from(w.flags & 0x0f)]);
    out
}

/// Appends the items of one `jaeger-baggage` value to `out`, skipping malformed ones.
pub fn decode_baggage(s: &str, out: &mut Baggage) {
    for item in split_ascii(s, b',') {
        let Some((key, value)) = split_once_ascii(item, b'=') else {
            continue;
        };
        let key = trim_ows(key);
        if key.is_empty() || value.contains('=') {
            continue;
        }
        out.push(BaggageEntry {
            key: key.to_string(),
            value: Values::UrlEncoded.decode(trim_ows(value)),
            properties: String::new(),
        });
    }
}

impl From<UberTraceId<'_>> for TraceContext {
    fn from(w: UberTraceId<'_>) -> Self {
        let sampled = w.flags & FLAG_SAMPLED != 0;
        TraceContext {
            trace_id: Some(w.trace_id),
            parent_id: Some(w.span_id),
            sampling: Sampling::from_decision(Some(sampled)),
            debug: sampled && w.flags & FLAG_DEBUG != 0,
            ..TraceContext::default()
        }
    }
}

/// The flags to send for `ctx` (no "deferred" in Jaeger).
fn flags(ctx: &TraceContext) -> u8 {
    match (ctx.debug, ctx.sampling) {
        (true, _) => FLAG_SAMPLED | FLAG_DEBUG,
        (false, Sampling::Sampled) => FLAG_SAMPLED,
        (false, Sampling::NotSampled | Sampling::Deferred) => 0,
    }
}

/// The Jaeger codec.
pub struct JaegerCodec;

impl Codec for JaegerCodec {
    const FORMAT: Format = Format::Jaeger;
    const PREFIXES: &'static [&'static str] = &[BAGGAGE_PREFIX];

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let mut ctx = match first(headers, &UBER_TRACE_ID)? {
            Some(v) => TraceContext::from(decode(v)?),
            None => TraceContext::default(),
        };
        let debug_id = headers
            .values(&JAEGER_DEBUG_ID)
            .next()
            .and_then(|v| value_str(v).ok())
            .filter(|id| !id.is_empty());
        if let Some(id) = debug_id {
            if ctx.trace_id.is_none() {
                ctx.sampling = Sampling::Sampled;
                ctx.debug = true;
            }
            ctx.originals.jaeger_debug_id = Some(id.to_string());
        }
        item_baggage::extract(
            headers,
            BAGGAGE_PREFIX,
            Values::UrlEncoded,
            &mut ctx.baggage,
        );
        for v in headers.values(&JAEGER_BAGGAGE) {
            if let Ok(s) = value_str(v) {
                decode_baggage(s, &mut ctx.baggage);
            }
        }
        if ctx.trace_id.is_none() && debug_id.is_none() && ctx.baggage.is_empty() {
            return Ok(None);
        }
        Ok(Some(ctx))
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        if let Some(trace_id) = ctx.trace_id {
            let wire = UberTraceId {
                trace_id,
                span_id: hop.span_id,
                parent: Cow::Borrowed("0"),
                flags: flags(ctx),
            };
            out.set_vec(&UBER_TRACE_ID, encode_bytes(&wire));
        }
        item_baggage::inject(&ctx.baggage, BAGGAGE_PREFIX, Values::UrlEncoded, out)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::testutil::{self, entry, hop, map, pairs, raw_map, run};
    use http::HeaderValue;

    /// Every `jaeger-*` vector of tests/data/vectors.json.
    #[test]
    fn vectors() {
        run(
            &testutil::vectors("jaeger"),
            JaegerCodec::extract,
            |_, _| {},
        );
    }

    /// trace id, span id, parent field, flags.
    type Fields<'a> = (u128, u64, &'a str, u8);

    #[test]
    fn decode_table() {
        use DecodeError as E;
        let rows: &[(&str, Result<Fields<'_>, DecodeError>, &str)] = &[
            ("1:2:0:1", Ok((1, 2, "0", 1)), "one-digit ids"),
            (
                "a:b::0f",
                Ok((0xa, 0xb, "", 0x0f)),
                "empty parent, two-digit flags",
            ),
            ("a:b:0:10", Ok((0xa, 0xb, "0", 0x10)), "flags are hex: 0x10"),
            ("a%3Ab%3A0%3A1", Ok((0xa, 0xb, "0", 1)), "URL-encoded"),
            (
                "a%3ab%3a0%3a1",
                Ok((0xa, 0xb, "0", 1)),
                "URL-encoded, lower-case escapes",
            ),
            (
                "a:b:0%3A1",
                Err(E::Malformed),
                "partly encoded: not decoded since ':' is present",
            ),
            ("a:b:0:FF", Err(E::Sampling), "upper-case flags"),
            ("A:b:0:1", Err(E::TraceId), "upper-case trace id"),
            ("a:B:0:1", Err(E::SpanId), "upper-case span id"),
            ("0:b:0:1", Err(E::ZeroId), "zero trace id"),
            ("a:0000000000000000:0:1", Err(E::ZeroId), "zero span id"),
            (":b:0:1", Err(E::TraceId), "empty trace id"),
            ("a::0:1", Err(E::SpanId), "empty span id"),
            ("a:b:0:", Err(E::Sampling), "empty flags"),
            ("a:b:0:-1", Err(E::Sampling), "signed flags"),
            ("a:b:0:+1", Err(E::Sampling), "signed flags"),
            ("a : b:0:1", Err(E::TraceId), "inner whitespace"),
            ("", Err(E::Malformed), "empty"),
            ("%", Err(E::Malformed), "a lone escape"),
        ];
        for (input, want, why) in rows {
            let got = decode(input).map(|w| {
                (
                    w.trace_id.get(),
                    w.span_id.get(),
                    w.parent.into_owned(),
                    w.flags,
                )
            });
            let want = (*want).map(|(t, s, p, f)| (t, s, p.to_string(), f));
            assert_eq!(got, want, "{input:?}: {why}");
        }
    }

    #[test]
    fn debug_id() {
        let only = JaegerCodec::extract(&map(&[("jaeger-debug-id", "abc-123")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (only.trace_id, only.parent_id, only.sampling, only.debug),
            (None, None, Sampling::Sampled, true)
        );
        assert_eq!(only.originals.jaeger_debug_id.as_deref(), Some("abc-123"));

        let with_trace = map(&[("uber-trace-id", "a:b:0:0"), ("jaeger-debug-id", "abc-123")]);
        let ctx = JaegerCodec::extract(&with_trace).unwrap().unwrap();
        assert_eq!(
            (ctx.sampling, ctx.debug),
            (Sampling::NotSampled, false),
            "the trace's own decision stands"
        );
        assert_eq!(ctx.originals.jaeger_debug_id.as_deref(), Some("abc-123"));

        assert_eq!(
            JaegerCodec::extract(&map(&[("jaeger-debug-id", "")])),
            Ok(None),
            "empty id is nothing"
        );

        let mut h = HeaderMap::new();
        JaegerCodec::inject(&only, &hop(), &mut h);
        assert!(
            h.is_empty(),
            "no trace id, no baggage: nothing, and never the debug id"
        );
        JaegerCodec::inject(&ctx, &hop(), &mut h);
        assert!(h.get(&JAEGER_DEBUG_ID).is_none());
        assert_eq!(
            h.get(&UBER_TRACE_ID).unwrap(),
            "0000000000000000000000000000000a:1122334455667788:0:0"
        );
    }

    #[test]
    fn baggage_sources_combine() {
        let mut h = map(&[
            ("uber-trace-id", "a:b:0:1"),
            ("uberctx-k", "from+uberctx"),
            (
                "jaeger-baggage",
                " k = from%20list , bad, =nokey, a=b=c ,x=1",
            ),
            ("jaeger-baggage", "y="),
        ]);
        h.append(
            "jaeger-baggage",
            HeaderValue::from_bytes(b"z=\xff").unwrap(),
        );
        let ctx = JaegerCodec::extract(&h).unwrap().unwrap();
        let got = pairs(&ctx.baggage);
        assert_eq!(
            got,
            [
                ("k", "from uberctx"),
                ("k", "from list"),
                ("x", "1"),
                ("y", "")
            ]
        );

        assert_eq!(
            JaegerCodec::extract(&map(&[("jaeger-baggage", "junk")])),
            Ok(None),
            "nothing usable"
        );
        let items = JaegerCodec::extract(&map(&[("uberctx-only", "v")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (items.trace_id, items.sampling, items.baggage.len()),
            (None, Sampling::Deferred, 1)
        );
    }

    #[test]
    fn invalid_trace_header_fails_whole_carrier() {
        let h = map(&[
            ("uber-trace-id", "junk"),
            ("uberctx-k", "v"),
            ("jaeger-debug-id", "x"),
        ]);
        assert_eq!(JaegerCodec::extract(&h), Err(DecodeError::Malformed));
        let same = map(&[("uber-trace-id", "a:b:0:1"), ("uber-trace-id", "a:b:0:1")]);
        assert!(JaegerCodec::extract(&same).unwrap().is_some());
        let conflict = map(&[("uber-trace-id", "a:b:0:1"), ("uber-trace-id", "junk")]);
        assert_eq!(
            JaegerCodec::extract(&conflict),
            Err(DecodeError::Conflicting)
        );
    }

    #[test]
    fn inject_table() {
        let base = TraceContext {
            trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736),
            parent_id: SpanId::new(7),
            ..TraceContext::default()
        };
        let rows: &[(Sampling, bool, &str)] = &[
            (Sampling::Sampled, false, "1"),
            (Sampling::NotSampled, false, "0"),
            (Sampling::Deferred, false, "0"),
            (Sampling::Sampled, true, "3"),
            (Sampling::NotSampled, true, "3"),
        ];
        for (sampling, debug, flags) in rows {
            let mut h = HeaderMap::new();
            JaegerCodec::inject(
                &TraceContext {
                    sampling: *sampling,
                    debug: *debug,
                    ..base.clone()
                },
                &hop(),
                &mut h,
            );
            let want = format!("4bf92f3577b34da6a3ce929d0e0e4736:1122334455667788:0:{flags}");
            assert_eq!(
                h.get(&UBER_TRACE_ID).unwrap().to_str().unwrap(),
                want,
                "{sampling:?} debug={debug}"
            );
            assert_eq!(h.len(), 1);
        }
    }

    #[test]
    fn inject_baggage() {
        let ctx = TraceContext {
            trace_id: TraceId::new(1),
            baggage: vec![
                entry("key1", "value 1 / blah"),
                entry("Upper", "x"),
                entry("plus", "a+b"),
            ],
            ..TraceContext::default()
        };
        let mut h = HeaderMap::new();
        let r = JaegerCodec::inject(&ctx, &hop(), &mut h);
        assert_eq!(r.baggage_dropped, 1, "upper-case key");
        assert_eq!(h.get("uberctx-key1").unwrap(), "value%201%20/%20blah");
        assert_eq!(h.get("uberctx-plus").unwrap(), "a%2Bb");
        let back = JaegerCodec::extract(&h).unwrap().unwrap();
        assert_eq!(
            back.baggage,
            vec![entry("key1", "value 1 / blah"), entry("plus", "a+b")]
        );

        let mut h = HeaderMap::new();
        JaegerCodec::inject(
            &TraceContext {
                trace_id: None,
                ..ctx
            },
            &hop(),
            &mut h,
        );
        assert_eq!(h.len(), 2, "baggage without a trace");
    }

    #[test]
    fn inject_then_extract() {
        for (sampling, debug) in [
            (Sampling::Sampled, false),
            (Sampling::NotSampled, false),
            (Sampling::Sampled, true),
        ] {
            let ctx = TraceContext {
                trace_id: TraceId::new(0xabc),
                sampling,
                debug,
                ..TraceContext::default()
            };
            let mut h = HeaderMap::new();
            JaegerCodec::inject(&ctx, &hop(), &mut h);
            let back = JaegerCodec::extract(&h).unwrap().unwrap();
            assert_eq!(
                (back.trace_id, back.parent_id),
                (ctx.trace_id, Some(hop().span_id))
            );
            assert_eq!((back.sampling, back.debug), (sampling, debug));
        }
    }

    fn arb_wire() -> impl Strategy<Value = UberTraceId<'static>> {
        (1..=u128::MAX, 1..=u64::MAX, "[^:]{0,20}", any::<u8>()).prop_map(
            |(t, s, parent, flags)| UberTraceId {
                trace_id: TraceId::new(t).unwrap(),
                span_id: SpanId::new(s).unwrap(),
                parent: Cow::Owned(parent),
                flags,
            },
        )
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(w in arb_wire()) {
            let s = encode(&w);
            prop_assert_eq!(decode(&s), Ok(w));
        }

        #[test]
        fn decode_never_panics(s in any::<String>()) {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_near_misses(s in "[0-9a-fA-F:%3]{0,60}") {
            let _ = decode(&s);
        }

        #[test]
        fn extract_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 4)) {
            let names = [&UBER_TRACE_ID, &JAEGER_DEBUG_ID, &JAEGER_BAGGAGE, &HeaderName::from_static("uberctx-k")];
            let _ = JaegerCodec::extract(&raw_map(names.into_iter().zip(&values)));
        }
    }
}
