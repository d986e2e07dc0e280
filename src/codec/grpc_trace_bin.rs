//! OpenCensus binary trace context in gRPC metadata: `grpc-trace-bin` (wire-formats §10;
//! [OC-BIN] `census-instrumentation/opencensus-specs` `encodings/BinaryEncoding.md`, parse rules
//! of opencensus-go `propagation.FromBinary`; gRPC `doc/PROTOCOL-HTTP2.md` "Binary-Header").
//!
//! ```text
//! header-value = base64( bytes )                 ; standard alphabet, padded or not
//! bytes        = %x00 trace-field [ span-field [ options-field ] ] *OCTET
//! trace-field  = %x00 16OCTET                    ; trace id, big-endian, not all zero
//! span-field   = %x01 8OCTET                     ; the caller's span id, not all zero
//! options-field= %x02 OCTET                      ; bit 0 = sampled
//! ```
//!
//! Choices:
//! * The version byte must be 0 and the first field must be the trace id (opencensus-go; the
//!   newer spec text allows any field order inside a version, no implementation does).
//! * Fields are read in order; after the span id, parsing stops at the first unknown field id
//!   or a truncated options field, and whatever follows is ignored (the opaque tail is not passed
//!   on). A missing span id is `Err(Missing)` (every implementation treats a zero span as
//!   invalid), a truncated one `Err(SpanId)`.
//! * Options bit 0 set = sampled; clear = not sampled (the vectors and every implementation; the
//!   spec prose calls 0 "no decision"). A missing options field is the default 0, not sampled.
//!   Other option bits are ignored.
//! * Inject writes the 29-byte form as unpadded base64 (gRPC senders SHOULD omit padding).
//!   OpenCensus cannot defer or say debug: options = 1 for sampled or debug, 0 otherwise
//!   (deferred included; mediation decides first).
//! * The header is single-valued: the first field wins. More than 128 base64 characters is
//!   `Err(TooLong)` (the real form is 39–40), which bounds the decode buffer on the stack.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use http::{HeaderName, HeaderValue};

use super::{first, text, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

const GRPC_TRACE_BIN_NAME: &str = "grpc-trace-bin";

/// `grpc-trace-bin`.
pub static GRPC_TRACE_BIN: HeaderName = HeaderName::from_static(GRPC_TRACE_BIN_NAME);
static HEADERS: [HeaderName; 1] = [HeaderName::from_static(GRPC_TRACE_BIN_NAME)];

/// Options bit: the caller recommends tracing.
pub const OPTION_SAMPLED: u8 = 0x01;

const FIELD_TRACE_ID: u8 = 0;
const FIELD_SPAN_ID: u8 = 1;
const FIELD_OPTIONS: u8 = 2;

/// Longest accepted header value, in base64 characters.
const MAX_ENCODED: usize = 128;

/// Standard alphabet, with or without padding (gRPC receivers must accept both).
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One decoded `grpc-trace-bin` context. `decode(&encode(&w)) == w` for every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrpcTraceBin {
    /// Field 0.
    pub trace_id: TraceId,
    /// Field 1: the caller's span.
    pub span_id: SpanId,
    /// Field 2, `None` when absent.
    pub options: Option<u8>,
}

/// Parses a header value: base64, then [`decode_bytes`].
pub fn decode(s: &str) -> Result<GrpcTraceBin, DecodeError> {
    if s.len() > MAX_ENCODED {
        return Err(DecodeError::TooLong);
    }
    let mut buf = [0u8; MAX_ENCODED / 4 * 3];
    let n = DECODER
        .decode_slice(s, &mut buf)
        .map_err(|_| DecodeError::Encoding)?;
    decode_bytes(buf.get(..n).ok_or(DecodeError::Encoding)?)
}

/// Parses the binary form (what in-process carriers hold).
pub fn decode_bytes(b: &[u8]) -> Result<GrpcTraceBin, DecodeError> {
    let rest = match b {
        [0, rest @ ..] => rest,
        [] => return Err(DecodeError::Malformed),
        _ => return Err(DecodeError::Version),
    };
    let rest = match rest {
        [FIELD_TRACE_ID, rest @ ..] => rest,
        _ => return Err(DecodeError::Malformed),
    };
    let (trace_id, rest) = rest.split_first_chunk::<16>().ok_or(DecodeError::TraceId)?;
    let trace_id = TraceId::new(u128::from_be_bytes(*trace_id)).ok_or(DecodeError::ZeroId)?;
    let (span_id, rest) = match rest {
        [FIELD_SPAN_ID, rest @ ..] => rest.split_first_chunk::<8>().ok_or(DecodeError::SpanId)?,
        _ => return Err(DecodeError::Missing),
    };
    let span_id = SpanId::new(u64::from_be_bytes(*span_id)).ok_or(DecodeError::ZeroId)?;
    let options = match rest {
        [FIELD_OPTIONS, options, ..] => Some(*options),
        _ => None,
    };
    Ok(GrpcTraceBin {
        trace_id,
        span_id,
        options,
    })
}

/// The binary form: 29 bytes, or 27 without options.
pub fn encode_bytes(w: &GrpcTraceBin) -> ([u8; 29], usize) {
    // Constant ranges inside a fixed-size array: these slices cannot fail. Bytes 0 (version)
    // and 1 (field 0) stay 0.
    let mut b = [0u8; 29];
    b[2..18].copy_from_slice(&w.trace_id.to_bytes());
    b[18] = FIELD_SPAN_ID;
    b[19..27].copy_from_slice(&w.span_id.to_bytes());
    match w.options {
        Some(options) => {
            b[27] = FIELD_OPTIONS;
            b[28] = options;
            (b, 29)
        }
        None => (b, 27),
    }
}

/// The header value: unpadded standard base64 of [`encode_bytes`].
pub fn encode(w: &GrpcTraceBin) -> String {
    let (b, n) = encode_bytes(w);
    let b = b.get(..n).unwrap_or_default();
    let mut out = Vec::with_capacity(text::base64_len(b.len(), false));
    text::push_base64(&mut out, b, text::BASE64_STANDARD, false);
    text::into_string(out)
}

/// The OpenCensus binary (`grpc-trace-bin`) codec.
pub struct GrpcTraceBinCodec;

impl Codec for GrpcTraceBinCodec {
    const FORMAT: Format = Format::GrpcTraceBin;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let Some(value) = first(headers, &GRPC_TRACE_BIN)? else {
            return Ok(None);
        };
        let w = decode(value)?;
        let sampled = w.options.is_some_and(|o| o & OPTION_SAMPLED != 0);
        Ok(Some(TraceContext {
            trace_id: Some(w.trace_id),
            parent_id: Some(w.span_id),
            sampling: if sampled {
                Sampling::Sampled
            } else {
                Sampling::NotSampled
            },
            ..TraceContext::default()
        }))
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let sampled = ctx.sampling == Sampling::Sampled || ctx.debug;
        let w = GrpcTraceBin {
            trace_id,
            span_id: hop.span_id,
            options: Some(if sampled { OPTION_SAMPLED } else { 0 }),
        };
        if let Ok(v) = HeaderValue::try_from(encode(&w)) {
            out.set(GRPC_TRACE_BIN.clone(), v);
        }
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{self, case_mut, hop_at, map, raw_map, rejected, run};
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use http::HeaderMap;
    use proptest::prelude::*;

    fn extract(value: &str) -> Result<Option<TraceContext>, DecodeError> {
        GrpcTraceBinCodec::extract(&map(&[(GRPC_TRACE_BIN_NAME, value)]))
    }

    /// Every `grpc-trace-bin-*` vector of tests/data/vectors.json, with the exact errors.
    #[test]
    fn vectors() {
        let mut cases = testutil::vectors("grpc-trace-bin");
        for (id, error) in [
            ("grpc-trace-bin-005", DecodeError::Version), // version byte != 0
            ("grpc-trace-bin-006", DecodeError::Malformed), // first field is not trace-id
        ] {
            case_mut(&mut cases, id).expect = rejected(error);
        }
        run(&cases, GrpcTraceBinCodec::extract, |_, _| {});
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD_NO_PAD.encode(bytes)
    }

    /// The options decoded, or why the bytes were rejected.
    type Options = Result<Option<u8>, DecodeError>;

    #[test]
    fn edge_cases() {
        let mut full = vec![0u8, 0];
        full.extend_from_slice(&0x4bf92f3577b34da6a3ce929d000e4736u128.to_be_bytes());
        full.push(1);
        full.extend_from_slice(&0x34f067aa0ba902b7u64.to_be_bytes());
        full.extend_from_slice(&[2, 1]);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = full.clone();
            f(&mut b);
            b
        };
        // (bytes, options or error, why).
        #[rustfmt::skip]
        let rows: Vec<(Vec<u8>, Options, &str)> = vec![
            (full.clone(), Ok(Some(1)), "canonical"),
            (with(&|b| b.truncate(27)), Ok(None), "options absent"),
            (with(&|b| b.truncate(28)), Ok(None), "options truncated: ignored like opencensus-go"),
            (with(&|b| b.extend_from_slice(&[3, 9, 9])), Ok(Some(1)), "unknown trailing field ignored"),
            (with(&|b| b[28] = 0xff), Ok(Some(0xff)), "other option bits kept on the wire"),
            (with(&|b| b[27] = 7), Ok(None), "unknown field in place of options stops parsing"),
            (with(&|b| b.truncate(26)), Err(DecodeError::SpanId), "span id truncated"),
            (with(&|b| b.truncate(18)), Err(DecodeError::Missing), "span id absent"),
            (with(&|b| b[18] = 2), Err(DecodeError::Missing), "options where span id belongs"),
            (with(&|b| b.truncate(10)), Err(DecodeError::TraceId), "trace id truncated"),
            (with(&|b| b[2..18].fill(0)), Err(DecodeError::ZeroId), "all-zero trace id"),
            (with(&|b| b[19..27].fill(0)), Err(DecodeError::ZeroId), "all-zero span id"),
            (vec![], Err(DecodeError::Malformed), "empty"),
            (vec![0], Err(DecodeError::Malformed), "version only"),
        ];
        for (bytes, want, why) in rows {
            assert_eq!(decode_bytes(&bytes).map(|w| w.options), want, "{why}");
            assert_eq!(
                decode(&b64(&bytes)).map(|w| w.options),
                want,
                "{why} (base64)"
            );
        }
        assert_eq!(
            extract(&format!("{}=", b64(&full)))
                .unwrap()
                .unwrap()
                .sampling,
            Sampling::Sampled,
            "padded"
        );
        let no_options = extract(&b64(&full[..27])).unwrap().unwrap();
        assert_eq!(
            no_options.sampling,
            Sampling::NotSampled,
            "missing options = default 0"
        );
        for (value, err, why) in [
            (
                "AABL-S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgE",
                DecodeError::Encoding,
                "URL-safe alphabet",
            ),
            (
                "AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgE==",
                DecodeError::Encoding,
                "too much padding",
            ),
            (
                "AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgF",
                DecodeError::Encoding,
                "non-canonical trailing bits",
            ),
            ("!!!!", DecodeError::Encoding, "not base64"),
            ("", DecodeError::Malformed, "empty value"),
        ] {
            assert_eq!(extract(value), Err(err), "{why}");
        }
        assert_eq!(
            decode(&"A".repeat(MAX_ENCODED + 1)),
            Err(DecodeError::TooLong)
        );
        // The longest accepted value decodes into the buffer.
        let long = with(&|b| b.extend(vec![9; MAX_ENCODED / 4 * 3 - 29]));
        assert_eq!(b64(&long).len(), MAX_ENCODED);
        assert_eq!(decode(&b64(&long)).map(|w| w.options), Ok(Some(1)));
        // A repeat of the same value is that value; a different second value conflicts.
        let mut h = HeaderMap::new();
        h.append(
            &GRPC_TRACE_BIN,
            HeaderValue::from_static("AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgE"),
        );
        h.append(
            &GRPC_TRACE_BIN,
            HeaderValue::from_static("AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgE"),
        );
        assert!(GrpcTraceBinCodec::extract(&h).unwrap().is_some());
        h.append(&GRPC_TRACE_BIN, HeaderValue::from_static("garbage"));
        assert_eq!(
            GrpcTraceBinCodec::extract(&h),
            Err(DecodeError::Conflicting)
        );
        assert_eq!(GrpcTraceBinCodec::extract(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn inject() {
        let mut ctx = TraceContext {
            trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d000e4736),
            parent_id: SpanId::new(7),
            sampling: Sampling::Sampled,
            ..TraceContext::default()
        };
        let mut out = HeaderMap::new();
        GrpcTraceBinCodec::inject(&ctx, &hop_at(0x34f067aa0ba902b7, 1), &mut out);
        assert_eq!(
            out[&GRPC_TRACE_BIN],
            "AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgE"
        );
        for (sampling, debug, option) in [
            (Sampling::NotSampled, false, "A"),
            (Sampling::Deferred, false, "A"),
            (Sampling::Deferred, true, "E"),
        ] {
            ctx.sampling = sampling;
            ctx.debug = debug;
            GrpcTraceBinCodec::inject(&ctx, &hop_at(0x34f067aa0ba902b7, 1), &mut out);
            assert_eq!(
                out[&GRPC_TRACE_BIN],
                format!("AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3Ag{option}").as_str(),
                "{sampling:?}"
            );
        }
        let mut out = HeaderMap::new();
        GrpcTraceBinCodec::inject(&TraceContext::default(), &hop_at(1, 1), &mut out);
        assert!(out.is_empty(), "no trace id: nothing written");
    }

    fn arb_wire() -> impl Strategy<Value = GrpcTraceBin> {
        (1u128.., 1u64.., prop::option::of(any::<u8>())).prop_map(|(t, s, options)| GrpcTraceBin {
            trace_id: TraceId::new(t).unwrap(),
            span_id: SpanId::new(s).unwrap(),
            options,
        })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(w in arb_wire()) {
            prop_assert_eq!(decode(&encode(&w)), Ok(w));
        }

        #[test]
        fn inject_extract_round_trip(w in arb_wire(), span in 1u64.., sampling in prop::sample::select(vec![Sampling::Sampled, Sampling::NotSampled])) {
            let ctx = TraceContext { trace_id: Some(w.trace_id), sampling, ..TraceContext::default() };
            let mut out = HeaderMap::new();
            GrpcTraceBinCodec::inject(&ctx, &hop_at(span, 1), &mut out);
            prop_assert_eq!(out[&GRPC_TRACE_BIN].len(), 39);
            let back = GrpcTraceBinCodec::extract(&out).unwrap().unwrap();
            prop_assert_eq!(back.trace_id, ctx.trace_id);
            prop_assert_eq!(back.parent_id, SpanId::new(span));
            prop_assert_eq!(back.sampling, sampling);
        }

        #[test]
        fn decode_never_panics(s in "\\PC*", b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&s);
            let _ = decode_bytes(&b);
            let _ = decode(&b64(&b));
        }

        #[test]
        fn extract_never_panics(b in prop::collection::vec(any::<u8>(), 0..140)) {
            let _ = GrpcTraceBinCodec::extract(&raw_map([(&GRPC_TRACE_BIN, b)]));
        }
    }
}
