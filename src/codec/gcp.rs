//! Google Cloud Trace: `X-Cloud-Trace-Context` (wire-formats §9, [GCP];
//! <https://cloud.google.com/trace/docs/trace-context#legacy-http-header>).
//!
//! ```text
//! X-Cloud-Trace-Context = TRACE_ID "/" SPAN_ID [ ";o=" OPTION ]
//! TRACE_ID = 32 lowercase hex, not all zero
//! SPAN_ID  = 1*20 DIGIT, decimal u64, not 0          ; big-endian: 139592093 ⇔ 000000000852019d
//! OPTION   = DIGIT
//! ```
//!
//! This is the Go propagator's regular expression
//! (`GoogleCloudPlatform/opentelemetry-operations-go` `propagator/propagator.go`:
//! `^([0-9a-f]{32})/([0-9]{1,20})(;o=([0-9]))?$`) plus its zero and overflow checks:
//! nothing else may follow, no OWS inside, the span id may have leading zeros.
//!
//! Deliberate choices:
//! - `o=1` is sampled; `o=0` and a missing `;o=` are not sampled (the Go propagator and the
//!   vectors `xcloud-002`/`xcloud-003`). The propagators have no "deferred": the header
//!   never extracts as [`Sampling::Deferred`].
//! - Any other digit counts as sampled, as in the Go propagator (`traceFlags == "0" || ""`
//!   is the only "not sampled" test). Google documents only `0` and `1`.
//! - Inject writes `;o=1` / `;o=0`, and leaves `;o=` out for a deferred decision: Google's
//!   front ends then apply their own sampling, which is the closest the header comes to
//!   "deferred" (§14). An OTel propagator downstream reads that as not sampled, which is
//!   the fallback the codec contract asks for anyway.

use http::HeaderName;

use super::text::{dec_bytes, dec_u64, hex_exact_u128, into_string, split_once_ascii};
use super::{first, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

const HEADER: &str = "x-cloud-trace-context";

/// `X-Cloud-Trace-Context`.
pub static X_CLOUD_TRACE_CONTEXT: HeaderName = HeaderName::from_static(HEADER);

static HEADERS: [HeaderName; 1] = [HeaderName::from_static(HEADER)];

/// One `X-Cloud-Trace-Context` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudTraceContext {
    /// TRACE_ID.
    pub trace_id: TraceId,
    /// SPAN_ID, the caller's span.
    pub span_id: SpanId,
    /// The `o=` digit (0–9), `None` when `;o=` is absent.
    pub options: Option<u8>,
}

impl CloudTraceContext {
    /// Whether the options say "trace this request".
    pub fn sampled(&self) -> bool {
        matches!(self.options, Some(d) if d != 0)
    }
}

/// Parses one header value.
pub fn decode(s: &str) -> Result<CloudTraceContext, DecodeError> {
    let (trace, rest) = split_once_ascii(s, b'/').ok_or(DecodeError::Malformed)?;
    let trace = hex_exact_u128(trace, 32).ok_or(DecodeError::TraceId)?;
    let trace_id = TraceId::new(trace).ok_or(DecodeError::ZeroId)?;
    let (span, options) = match split_once_ascii(rest, b';') {
        None => (rest, None),
        Some((span, options)) => match options.as_bytes() {
            [b'o', b'=', d @ b'0'..=b'9'] => (span, Some(d - b'0')),
            _ => return Err(DecodeError::Sampling),
        },
    };
    let span = dec_u64(span).ok_or(DecodeError::SpanId)?;
    let span_id = SpanId::new(span).ok_or(DecodeError::ZeroId)?;
    Ok(CloudTraceContext {
        trace_id,
        span_id,
        options,
    })
}

/// Writes the header value.
pub fn encode(c: &CloudTraceContext) -> String {
    into_string(encode_bytes(c))
}

/// [`encode`] as bytes, in a buffer of exactly their length (for
/// [`HeaderSink::set_vec`]: a header value takes it without a copy).
fn encode_bytes(c: &CloudTraceContext) -> Vec<u8> {
    let mut digits = [0u8; 20];
    let span = dec_bytes(c.span_id.get(), &mut digits);
    let options = if c.options.is_some() { 4 } else { 0 };
    let mut out = Vec::with_capacity(32 + 1 + span.len() + options);
    out.extend_from_slice(&c.trace_id.to_hex());
    out.push(b'/');
    out.extend_from_slice(span);
    if let Some(d) = c.options {
        out.extend_from_slice(&[b';', b'o', b'=', b'0' + d % 10]);
    }
    out
}

/// Wire → model.
pub fn to_context(c: CloudTraceContext) -> TraceContext {
    TraceContext {
        trace_id: Some(c.trace_id),
        parent_id: Some(c.span_id),
        sampling: if c.sampled() {
            Sampling::Sampled
        } else {
            Sampling::NotSampled
        },
        ..TraceContext::default()
    }
}

/// The Google Cloud Trace codec.
pub struct GcpCodec;

impl Codec for GcpCodec {
    const FORMAT: Format = Format::Gcp;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        match first(headers, &X_CLOUD_TRACE_CONTEXT)? {
            None => Ok(None),
            Some(v) => decode(v).map(|c| Some(to_context(c))),
        }
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let wire = CloudTraceContext {
            trace_id,
            span_id: hop.span_id,
            options: match ctx.sampling {
                Sampling::Sampled => Some(1),
                Sampling::NotSampled => Some(0),
                Sampling::Deferred => None,
            },
        };
        out.set_vec(&X_CLOUD_TRACE_CONTEXT, encode_bytes(&wire));
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{self, edge, hop_at, raw_map, run, Case};
    use http::HeaderMap;
    use proptest::prelude::*;

    /// The gateway span is 139592093 in decimal.
    fn hop() -> Hop<'static> {
        hop_at(0x0000_0000_0852_019d, 1)
    }

    /// (id, header name as sent, value, expected (trace, span, sampled) or the reason it is invalid).
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        Result<(&'static str, &'static str, bool), &'static str>,
    );

    const EDGES: &[Row] = &[
        (
            "max span id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/18446744073709551615;o=1",
            Ok(("d36a105d7002f0dee73c0dfb9553764a", "ffffffffffffffff", true)),
        ),
        (
            "leading zeros in span id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/000139592093;o=1",
            Ok(("d36a105d7002f0dee73c0dfb9553764a", "000000000852019d", true)),
        ),
        (
            "other digit counts as sampled (Go propagator)",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1;o=3",
            Ok(("d36a105d7002f0dee73c0dfb9553764a", "0000000000000001", true)),
        ),
        (
            "surrounding OWS is trimmed",
            "x-cloud-trace-context",
            " d36a105d7002f0dee73c0dfb9553764a/1;o=1 ",
            Ok(("d36a105d7002f0dee73c0dfb9553764a", "0000000000000001", true)),
        ),
        (
            "zero span id with leading zeros",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/000;o=1",
            Err("span id 0"),
        ),
        (
            "21 digits",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/000000000000139592093",
            Err("span id over 20 digits"),
        ),
        (
            "signed span id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/+139592093",
            Err("sign not allowed"),
        ),
        (
            "hex span id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/852019d",
            Err("span id is decimal"),
        ),
        (
            "empty span id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/;o=1",
            Err("span id required"),
        ),
        (
            "no span id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a",
            Err("missing '/'"),
        ),
        (
            "short trace id",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764/1;o=1",
            Err("31 hex digits"),
        ),
        (
            "two option digits",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1;o=10",
            Err("one digit only"),
        ),
        (
            "option not a digit",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1;o=x",
            Err("one digit only"),
        ),
        (
            "empty option",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1;o=",
            Err("one digit only"),
        ),
        (
            "upper-case O",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1;O=1",
            Err("the key is 'o'"),
        ),
        (
            "space before option",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1; o=1",
            Err("no OWS inside"),
        ),
        (
            "trailing separator",
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/1;o=1;",
            Err("nothing may follow"),
        ),
        ("empty", "x-cloud-trace-context", "", Err("empty value")),
    ];

    /// Every `xcloud-*` vector of tests/data/vectors.json.
    #[test]
    fn vectors() {
        run(&testutil::vectors("xcloud"), GcpCodec::extract, |_, _| {});
    }

    /// Cases beyond vectors.json.
    #[test]
    fn edges() {
        let cases: Vec<Case> = EDGES
            .iter()
            .map(|(id, name, value, row)| {
                let row = row.map(|(trace, span, sampled)| (trace, Some(span), Some(sampled)));
                edge(id, &[(name, value)], &row)
            })
            .collect();
        run(&cases, GcpCodec::extract, |_, _| {});
    }

    #[test]
    fn reasons() {
        let reason = |v: &str| decode(v).unwrap_err();
        assert_eq!(
            reason("00000000000000000000000000000000/1"),
            DecodeError::ZeroId
        );
        assert_eq!(
            reason("d36a105d7002f0dee73c0dfb9553764a/0"),
            DecodeError::ZeroId
        );
        assert_eq!(
            reason("D36A105D7002F0DEE73C0DFB9553764A/1"),
            DecodeError::TraceId
        );
        assert_eq!(
            reason("d36a105d7002f0dee73c0dfb9553764a/18446744073709551616"),
            DecodeError::SpanId
        );
        assert_eq!(
            reason("d36a105d7002f0dee73c0dfb9553764a/1;o=x"),
            DecodeError::Sampling
        );
        assert_eq!(
            reason("d36a105d7002f0dee73c0dfb9553764a"),
            DecodeError::Malformed
        );
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(GcpCodec::extract(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn inject_sampling() {
        let ctx = |sampling| TraceContext {
            trace_id: TraceId::new(0xd36a105d7002f0dee73c0dfb9553764a),
            parent_id: SpanId::new(7),
            sampling,
            ..TraceContext::default()
        };
        for (sampling, expected) in [
            (
                Sampling::Sampled,
                "d36a105d7002f0dee73c0dfb9553764a/139592093;o=1",
            ),
            (
                Sampling::NotSampled,
                "d36a105d7002f0dee73c0dfb9553764a/139592093;o=0",
            ),
            (
                Sampling::Deferred,
                "d36a105d7002f0dee73c0dfb9553764a/139592093",
            ),
        ] {
            let mut out = HeaderMap::new();
            GcpCodec::inject(&ctx(sampling), &hop(), &mut out);
            assert_eq!(out.get("x-cloud-trace-context").unwrap(), expected);
        }
    }

    #[test]
    fn inject_without_trace_id_writes_nothing() {
        let mut out = HeaderMap::new();
        GcpCodec::inject(&TraceContext::default(), &hop(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn round_trip_through_headers() {
        for sampling in [Sampling::Sampled, Sampling::NotSampled] {
            let ctx = TraceContext {
                trace_id: TraceId::new(1),
                sampling,
                ..TraceContext::default()
            };
            let mut out = HeaderMap::new();
            GcpCodec::inject(&ctx, &hop(), &mut out);
            let back = GcpCodec::extract(&out).unwrap().unwrap();
            assert_eq!(back.trace_id, ctx.trace_id);
            assert_eq!(back.parent_id, Some(hop().span_id));
            assert_eq!(back.sampling, sampling);
        }
    }

    fn arb_wire() -> impl Strategy<Value = CloudTraceContext> {
        (1u128.., 1u64.., proptest::option::of(0u8..=9)).prop_map(|(t, s, options)| {
            CloudTraceContext {
                trace_id: TraceId::new(t).unwrap(),
                span_id: SpanId::new(s).unwrap(),
                options,
            }
        })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(c in arb_wire()) {
            prop_assert_eq!(decode(&encode(&c)), Ok(c));
        }

        #[test]
        fn decode_never_panics(s in "\\PC*") {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_near_misses(s in "[0-9a-f]{0,33}/?[0-9]{0,22}(;o=[0-9x]{0,2})?") {
            let _ = decode(&s);
        }

        #[test]
        fn extract_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = GcpCodec::extract(&raw_map([(&X_CLOUD_TRACE_CONTEXT, bytes)]));
        }
    }
}
