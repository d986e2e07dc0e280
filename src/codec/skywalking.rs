//! Apache SkyWalking: `sw8`, `sw8-correlation`, `sw8-x` (wire-formats §11).
//!
//! Spec: Cross Process Propagation Headers Protocol v3 and Cross Process Correlation
//! Headers Protocol v1 (`apache/skywalking` `docs/en/api/x-process-propagation-headers-v3.md`,
//! `x-process-correlation-headers-v1.md`).
//!
//! ```text
//! sw8             = sample "-" b64(trace-id) "-" b64(parent-segment-id) "-" parent-span-index
//!                   "-" b64(parent-service) "-" b64(parent-instance) "-" b64(parent-endpoint)
//!                   "-" b64(target-address)
//! sample          = "0" / "1"
//! parent-span-index = 1*DIGIT                      ; i32, >= 0
//! sw8-correlation = element *( "," element )
//! element         = b64(key) ":" b64(value)
//! sw8-x           = opaque, forwarded verbatim
//! ```
//!
//! Choices where the sources are silent or disagree:
//! - **Exactly 8 fields** (Rust agent, vectors `sw8-003/004`), not the Java agent's
//!   `split("-", 8)`, which folds a ninth field into the eighth.
//! - **Sample must be `0` or `1`** (spec and Rust agent, vector `sw8-005`); the Java agent
//!   never reads the field. `1` ("sample and report") → `Sampled`, `0` → `NotSampled`.
//! - **Base64**: standard alphabet. Input may be padded, partially padded or unpadded (the
//!   Java agent's `java.util.Base64` decoder also takes unpadded input) and non-zero
//!   trailing bits are ignored: lenient input, canonical output — padded base64, which the
//!   Rust agent requires. Every field must decode to UTF-8.
//! - **Every string field must be non-empty** (`Missing`): trace id, segment id, service,
//!   instance, endpoint and address. The Java agent's `ContextCarrier.isValid()` (and the
//!   Python agent's `Carrier.is_valid`) reject a carrier with any of them empty, so the
//!   service behind such a caller starts a new trace; continuing it here would make the
//!   gateway the only hop that disagrees. (The Rust agent accepts empty fields.)
//! - **Span index**: decimal digits only (no sign, leading zeros tolerated), at most
//!   `i32::MAX`; anything else is `SpanId`.
//! - **Size**: a value of 2 KiB or more is `TooLong` (the agents' default limit). Field
//!   limits (service ≤ 50 chars, ...) are enforced on inject only.
//! - **Ids** map exactly as the OpenTelemetry Collector's SkyWalking receiver maps them
//!   (§11.4, `swTraceIDToTraceID` / `segmentIDToSpanID`), so the gateway's W3C ids match
//!   what an OTel backend shows for SkyWalking data. Where that mapping yields zero (short or
//!   arbitrary ids such as `1` or `3.4.5`), the deterministic fallback is: trace id = the
//!   first 16 bytes of SHA-256 of the id string, parent id = the first 8 bytes of SHA-256 of
//!   `segment "|" span-index` (recommendation of §11.4, not from a source). The collector
//!   panics on a Java-style id with a single `.`; we treat it as "mapping yields zero".
//! - **`sw8-correlation`** is read only together with a valid `sw8` (the Java agent
//!   extracts correlation only from a valid carrier); alone it is ignored. Decoding follows
//!   the Java agent: elements that are not exactly `b64:b64` with non-empty, valid UTF-8
//!   key and value are skipped, a repeated key replaces the earlier value, and reading stops
//!   once 3 keys are held (nginx-lua drops all of them instead). A correlation header that
//!   is not visible ASCII is ignored; it never invalidates the trace context.
//! - **`sw8-x`** is kept verbatim (trimmed) when it is visible ASCII and at most 256 bytes,
//!   and re-emitted with the original trace id.
//! - **Inject** (§11.5): sample `1` for sampled or deferred, `0` for not sampled; the
//!   original trace id string when `ctx.originals.skywalking` still maps to `ctx.trace_id`
//!   (and the value stays under 2 KiB), else the W3C id as 32 lowercase hex; a parent
//!   segment id built so the collector mapping gives back `hop.span_id` (see
//!   [`segment_id_for`]); service / instance truncated to 50 chars, endpoint to 149 chars,
//!   address to 255 bytes (char boundaries), an empty one replaced by `-` because the Java
//!   agent drops carriers with empty fields. `sw8-correlation`: at most 3 entries with
//!   non-empty key and value of at most 128 bytes each, first occurrence of a key only;
//!   the rest is dropped and counted.

use std::borrow::Cow;

use super::text::{
    dec_bytes, dec_str, hashed_span_id, hashed_trace_id, hex_any_case, hex_digit_any_case,
    push_base64, split_ascii, split_exact, truncate_bytes, truncate_chars, BASE64_STANDARD,
};
use super::{
    first, header_value, value_str, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected,
};
use crate::model::{
    BaggageEntry, Hop, Originals, Sampling, SkyWalking, SpanId, TraceContext, TraceId,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// The trace context header.
pub static SW8: HeaderName = HeaderName::from_static("sw8");
/// User key/values propagated with the trace (baggage).
pub static SW8_CORRELATION: HeaderName = HeaderName::from_static("sw8-correlation");
/// Extension flags (tracing mode, send timestamp), forwarded verbatim.
pub static SW8_X: HeaderName = HeaderName::from_static("sw8-x");

static HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("sw8"),
    HeaderName::from_static("sw8-correlation"),
    HeaderName::from_static("sw8-x"),
];

/// An `sw8` value must stay below this many bytes.
pub const MAX_LEN: usize = 2048;
/// Longest parent service / instance name emitted, in chars.
pub const MAX_SERVICE_CHARS: usize = 50;
/// Longest parent endpoint emitted, in chars (the spec says "< 150").
pub const MAX_ENDPOINT_CHARS: usize = 149;
/// Longest target address emitted, in bytes (a DNS name plus `:port`).
pub const MAX_ADDRESS_BYTES: usize = 255;
/// `sw8-correlation` element limit (Java agent `ELEMENT_MAX_NUMBER`).
pub const MAX_CORRELATION_ENTRIES: usize = 3;
/// `sw8-correlation` value limit in bytes (Java agent `VALUE_MAX_LENGTH`, applied to keys too).
pub const MAX_CORRELATION_VALUE: usize = 128;
/// Longest `sw8-x` value kept for re-emission.
pub const MAX_EXTENSION_LEN: usize = 256;
/// Emitted for an empty service / instance / endpoint / address.
const PLACEHOLDER: &str = "-";

/// One `sw8` value, fields base64-decoded. Borrowed when built for injection, owned when
/// decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sw8<'a> {
    /// Field 1: `1` = sample and report, `0` = most likely ignored.
    pub sampled: bool,
    /// Field 2: the literal trace id string, non-empty.
    pub trace_id: Cow<'a, str>,
    /// Field 3: the caller's segment id, non-empty.
    pub segment_id: Cow<'a, str>,
    /// Field 4: index of the caller's exit span in its segment, ≥ 0.
    pub span_index: i32,
    /// Field 5: the caller's service.
    pub service: Cow<'a, str>,
    /// Field 6: the caller's service instance.
    pub instance: Cow<'a, str>,
    /// Field 7: the caller's first entry endpoint.
    pub endpoint: Cow<'a, str>,
    /// Field 8: the address the caller used to reach this hop.
    pub address: Cow<'a, str>,
}

/// Parses an `sw8` value (already trimmed of OWS).
pub fn decode(value: &str) -> Result<Sw8<'static>, DecodeError> {
    if value.len() >= MAX_LEN {
        return Err(DecodeError::TooLong);
    }
    let [sample, trace, segment, span, service, instance, endpoint, address] =
        split_exact::<8>(value, b'-').ok_or(DecodeError::Malformed)?;
    let sampled = match sample {
        "1" => true,
        "0" => false,
        _ => return Err(DecodeError::Sampling),
    };
    let trace_id = b64_text(trace)?;
    let segment_id = b64_text(segment)?;
    let span_index = super::text::dec_u64(span)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or(DecodeError::SpanId)?;
    let [service, instance, endpoint, address] =
        [service, instance, endpoint, address].map(b64_text);
    let w = Sw8 {
        sampled,
        trace_id: Cow::Owned(trace_id),
        segment_id: Cow::Owned(segment_id),
        span_index,
        service: Cow::Owned(service?),
        instance: Cow::Owned(instance?),
        endpoint: Cow::Owned(endpoint?),
        address: Cow::Owned(address?),
    };
    // `isValid()` of the Java agent: no empty string field.
    let fields = [
        &w.trace_id,
        &w.segment_id,
        &w.service,
        &w.instance,
        &w.endpoint,
        &w.address,
    ];
    if fields.iter().any(|f| f.is_empty()) {
        return Err(DecodeError::Missing);
    }
    Ok(w)
}

/// Serialises `w` with canonical padded base64.
pub fn encode(w: &Sw8<'_>) -> String {
    // Base64, digits and `-` only: always UTF-8.
    String::from_utf8(encode_bytes(w)).unwrap_or_default()
}

/// [`encode`] as bytes, built in one exact-size allocation.
fn encode_bytes(w: &Sw8<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(w));
    out.push(if w.sampled { b'1' } else { b'0' });
    for f in [&w.trace_id, &w.segment_id] {
        out.push(b'-');
        push_b64(&mut out, f.as_bytes());
    }
    out.push(b'-');
    if w.span_index < 0 {
        out.push(b'-'); // never valid; only for a hand-built wire value
    }
    let mut idx = [0u8; 20];
    out.extend_from_slice(dec_bytes(u64::from(w.span_index.unsigned_abs()), &mut idx));
    for f in [&w.service, &w.instance, &w.endpoint, &w.address] {
        out.push(b'-');
        push_b64(&mut out, f.as_bytes());
    }
    out
}

/// Appends padded standard base64 of `input`.
fn push_b64(out: &mut Vec<u8>, input: &[u8]) {
    push_base64(out, input, BASE64_STANDARD, true);
}

/// Exact length of [`encode`]'s output.
fn encoded_len(w: &Sw8<'_>) -> usize {
    let b64 = |s: &str| s.len().div_ceil(3) * 4;
    let mut idx = [0u8; 20];
    let digits = dec_bytes(u64::from(w.span_index.unsigned_abs()), &mut idx).len();
    1 + 7
        + usize::from(w.span_index < 0)
        + digits
        + b64(&w.trace_id)
        + b64(&w.segment_id)
        + b64(&w.service)
        + b64(&w.instance)
        + b64(&w.endpoint)
        + b64(&w.address)
}

fn b64_text(field: &str) -> Result<String, DecodeError> {
    let bytes = b64_decode(field.as_bytes()).ok_or(DecodeError::Encoding)?;
    String::from_utf8(bytes).map_err(|_| DecodeError::Encoding)
}

/// Decodes standard base64 with padding canonical, partial or absent and trailing bits
/// ignored (the tests pin this to a `base64` engine so configured). Hand-written because
/// on these short fields the engine's per-call setup cost more than the decoding.
fn b64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let body_len = input.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let pad = input.len() - body_len;
    let body = input.get(..body_len)?;
    let tail = body_len % 4;
    let padding_ok = match tail {
        0 => pad == 0,
        2 => pad <= 2,
        3 => pad <= 1,
        _ => false,
    };
    if !padding_ok {
        return None;
    }
    // Sized up front and filled by index: no capacity check per quad, and one test of
    // the digits for the whole field (an invalid one is 0xff, whose top bits survive).
    let whole = body_len / 4 * 3;
    let len = whole + tail.saturating_sub(1);
    // malloc + a short memset: measured cheaper than `vec![0; len]`, whose calloc costs
    // more than the zeroing it saves on these short fields.
    #[allow(clippy::slow_vector_initialization)]
    let mut out = Vec::with_capacity(len);
    out.resize(len, 0);
    let (head, last) = out.split_at_mut(whole);
    let quads = body.chunks_exact(4);
    let rest = quads.remainder();
    let mut seen = 0u8;
    for (dst, q) in head.chunks_exact_mut(3).zip(quads) {
        let &[a, b, c, d] = q else {
            return None;
        };
        let [a, b, c, d] = [a, b, c, d].map(|c| B64_VALUES[usize::from(c)]);
        seen |= a | b | c | d;
        let v = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        dst.copy_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
    }
    if seen > 63 {
        return None;
    }
    match (rest, last) {
        ([], []) => {}
        (&[a, b], [x]) => *x = (sextet(a)? << 2 | sextet(b)? >> 4) as u8,
        (&[a, b, c], [x, y]) => {
            let v = sextet(a)? << 12 | sextet(b)? << 6 | sextet(c)?;
            (*x, *y) = ((v >> 10) as u8, (v >> 2) as u8);
        }
        _ => return None,
    }
    Some(out)
}

fn sextet(c: u8) -> Option<u32> {
    let v = B64_VALUES[usize::from(c)];
    (v < 64).then_some(u32::from(v))
}

/// Standard base64 digit values; `0xff` for anything else.
static B64_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Parses an `sw8-correlation` value into baggage (see the module doc for the rules).
pub fn decode_correlation(value: &str) -> Vec<BaggageEntry> {
    let mut out = Vec::new();
    add_correlation(value, &mut out);
    out
}

/// Adds the elements of one `sw8-correlation` field to `into`, which may already hold the
/// elements of earlier fields (repeated headers count as one list).
fn add_correlation(value: &str, into: &mut Vec<BaggageEntry>) {
    for element in split_ascii(value, b',') {
        if into.len() >= MAX_CORRELATION_ENTRIES {
            break; // like the Java agent: once full, later elements (repeats too) are ignored
        }
        // Exactly one `:`.
        let Some([key, val]) = split_exact::<2>(super::trim_ows(element), b':') else {
            continue;
        };
        if key.is_empty() || val.is_empty() {
            continue;
        }
        let (Ok(key), Ok(val)) = (b64_text(key), b64_text(val)) else {
            continue;
        };
        if key.is_empty() || val.is_empty() {
            continue;
        }
        if let Some(existing) = into.iter_mut().find(|e| e.key == key) {
            existing.value = val;
        } else {
            into.push(BaggageEntry {
                key,
                value: val,
                properties: String::new(),
            });
        }
    }
}

/// Builds an `sw8-correlation` value from `baggage` within the limits; returns it with the
/// number of entries left out. The value is empty when nothing fits.
pub fn encode_correlation(baggage: &[BaggageEntry]) -> (String, usize) {
    let fits = |e: &BaggageEntry| {
        !e.key.is_empty()
            && !e.value.is_empty()
            && e.key.len() <= MAX_CORRELATION_VALUE
            && e.value.len() <= MAX_CORRELATION_VALUE
    };
    let mut kept: [Option<&BaggageEntry>; MAX_CORRELATION_ENTRIES] =
        [None; MAX_CORRELATION_ENTRIES];
    let (mut n, mut len) = (0, 0);
    for e in baggage.iter().filter(|e| fits(e)) {
        if n == MAX_CORRELATION_ENTRIES {
            break;
        }
        if kept.iter().flatten().any(|k| k.key == e.key) {
            continue;
        }
        if let Some(slot) = kept.get_mut(n) {
            *slot = Some(e);
            n += 1;
            len += e.key.len().div_ceil(3) * 4 + e.value.len().div_ceil(3) * 4 + 2;
        }
    }
    // `key:value` pairs joined by `,`: exactly the length, so the header value takes the
    // buffer without a copy.
    let mut out = Vec::with_capacity(len.saturating_sub(1));
    for e in kept.iter().flatten() {
        if !out.is_empty() {
            out.push(b',');
        }
        push_b64(&mut out, e.key.as_bytes());
        out.push(b':');
        push_b64(&mut out, e.value.as_bytes());
    }
    let out = String::from_utf8(out).unwrap_or_default();
    (out, baggage.len() - n)
}

impl Sw8<'_> {
    /// The neutral context: W3C ids by the collector mapping (or the fallback), the fields
    /// in `originals.skywalking`. Baggage and `sw8-x` come from the other headers.
    pub fn into_context(self) -> Result<TraceContext, DecodeError> {
        let trace_id = trace_id_of(&self.trace_id)?;
        let parent_id = parent_id_of(&self.segment_id, self.span_index)?;
        Ok(TraceContext {
            trace_id: Some(trace_id),
            parent_id: Some(parent_id),
            sampling: if self.sampled {
                Sampling::Sampled
            } else {
                Sampling::NotSampled
            },
            originals: Originals {
                skywalking: Some(Box::new(SkyWalking {
                    trace_id: self.trace_id.into_owned(),
                    segment_id: self.segment_id.into_owned(),
                    span_index: self.span_index,
                    service: self.service.into_owned(),
                    instance: self.instance.into_owned(),
                    endpoint: self.endpoint.into_owned(),
                    address: self.address.into_owned(),
                    extension: None,
                })),
                ..Originals::default()
            },
            ..TraceContext::default()
        })
    }
}

/// The W3C trace id of a SkyWalking trace id string: the collector mapping, or the
/// SHA-256 fallback where that yields zero.
pub fn trace_id_of(trace_id: &str) -> Result<TraceId, DecodeError> {
    TraceId::new(collector_trace_id(trace_id))
        .or_else(|| hashed_trace_id(&[trace_id.as_bytes()]))
        .ok_or(DecodeError::ZeroId)
}

/// The W3C parent id of the caller's exit span `(segment, span_index)`: the collector
/// mapping, or the SHA-256 fallback where that yields zero.
pub fn parent_id_of(segment_id: &str, span_index: i32) -> Result<SpanId, DecodeError> {
    if let Some(id) = SpanId::new(collector_span_id(segment_id, span_index)) {
        return Ok(id);
    }
    let mut buf = [0u8; 20];
    let idx = dec_str(u64::from(span_index.unsigned_abs()), &mut buf);
    let sign: &[u8] = if span_index < 0 { b"-" } else { b"" };
    hashed_span_id(&[segment_id.as_bytes(), b"|", sign, idx.as_bytes()]).ok_or(DecodeError::ZeroId)
}

/// The collector's `swTraceIDToTraceID`: an RFC 4122 parse for ids of up to 36 bytes,
/// [`uuidish`] for longer ones; 0 where it fails.
pub fn collector_trace_id(trace_id: &str) -> u128 {
    let b = trace_id.as_bytes();
    if b.len() <= 36 {
        parse_uuid(b).map_or(0, u128::from_be_bytes)
    } else {
        uuidish(trace_id, 0)
    }
}

/// The collector's `segmentIDToSpanID`: the 16 bytes of [`uuidish`] with the span index
/// folded to 8 (`u[i] ^ u[i + 8]`); 0 for segments shorter than 32 bytes.
pub fn collector_span_id(segment_id: &str, span_index: i32) -> u64 {
    if segment_id.len() < 32 {
        return 0;
    }
    let u = uuidish(segment_id, span_index as u32);
    (u >> 64) as u64 ^ u as u64
}

/// The collector's `swStringToUUID`: the first 32 chars as hex (Go `hex.Decode`: either
/// case; on an invalid digit the bytes decoded so far are returned as they are), the first
/// 4 bytes XORed with `extra` (little-endian); then for `{hex}.{mid}.{last}` bytes 4..8
/// XORed with `mid` and 8..16 with `last` ([`go_atoi`], little-endian two's
/// complement). Any other shape after the 32 hex digits gives all zeros.
fn uuidish(s: &str, extra: u32) -> u128 {
    let Some(head) = s.as_bytes().get(..32) else {
        return 0;
    };
    // The usual case, 32 valid digits, in one go; Go's partial decoding otherwise.
    let u = match hex_any_case(head, 32) {
        Some(u) => u,
        None => {
            let mut u = [0u8; 16];
            go_hex_decode(&mut u, head);
            return u128::from_be_bytes(u);
        }
    };
    let v = u ^ (u128::from(extra.swap_bytes()) << 96);
    // The 32 bytes are hex digits, so 32 is a char boundary.
    let Some(rest) = s.get(32..) else {
        return 0;
    };
    if rest.is_empty() {
        return v;
    }
    // Short: a byte scan beats the general searchers.
    let Some(rest) = rest.strip_prefix('.') else {
        return 0; // no `.` at 32
    };
    let Some(dot) = rest.bytes().rposition(|b| b == b'.') else {
        return 0; // only one `.` (where the collector would panic on s[33:32])
    };
    let (Some(mid), Some(last)) = (rest.get(..dot), rest.get(dot + 1..)) else {
        return 0;
    };
    let (Some(mid), Some(last)) = (go_atoi(mid), go_atoi(last)) else {
        return 0;
    };
    // Little-endian into bytes 4..8 and 8..16 of the big-endian value.
    v ^ (u128::from((mid as u32).swap_bytes()) << 64) ^ u128::from((last as u64).swap_bytes())
}

/// `github.com/google/uuid` `Parse` for its two forms of at most 36 chars: dashed
/// (`8-4-4-4-12`) and 32 hex digits, either case.
fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let mut u = [0u8; 16];
    match s.len() {
        32 => go_hex_decode(&mut u, s).then_some(u),
        36 => {
            let mut hex = [0u8; 32];
            let mut n = 0;
            for (i, &c) in s.iter().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    if c != b'-' {
                        return None;
                    }
                } else {
                    *hex.get_mut(n)? = c;
                    n += 1;
                }
            }
            go_hex_decode(&mut u, &hex).then_some(u)
        }
        _ => None,
    }
}

/// Go's `encoding/hex.Decode` into a fixed buffer: case-insensitive pairs, stops at the
/// first invalid digit leaving the bytes decoded so far (text.rs's parsers are
/// all-or-nothing, which is not what the collector does with a bad digit).
fn go_hex_decode(dst: &mut [u8], src: &[u8]) -> bool {
    for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
        let &[hi, lo] = pair else {
            return false;
        };
        let (Some(h), Some(l)) = (hex_digit_any_case(hi), hex_digit_any_case(lo)) else {
            return false;
        };
        *d = (h << 4) | l;
    }
    true
}

/// Go's `strconv.Atoi` (64-bit `int`): an optional sign, then decimal digits (any number
/// of leading zeros), within the `i64` range.
fn go_atoi(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s.as_bytes()),
    };
    if digits.is_empty() {
        return None;
    }
    // Not text::dec_u64: Go takes any number of leading zeros. 19 digits cannot overflow.
    let short = digits.len() <= 19;
    let mut v: u64 = 0;
    for &c in digits {
        let d = u64::from(c.wrapping_sub(b'0'));
        if d > 9 {
            return None;
        }
        v = if short {
            v * 10 + d
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// The 32-hex parent segment id that makes the collector mapping give back `span_id` for
/// exit index `k` (§11.5, vector `sw8-009`): `(X ⊕ B ⊕ (k LE ‖ 0⁴)) ‖ B` with `X` the
/// span id and `B` the low 8 bytes of the trace id, so one request's calls share the
/// segment's low half and the id stays deterministic.
pub fn segment_id_for(trace_id: TraceId, span_id: SpanId, k: u32) -> [u8; 32] {
    let b = trace_id.low64();
    let high = span_id.get() ^ b ^ (u64::from(k.swap_bytes()) << 32);
    let v = (u128::from(high) << 64) | u128::from(b);
    TraceId::new(v).map_or([b'0'; 32], TraceId::to_hex)
}

/// Whether `ctx` carries SkyWalking originals that belong to its trace id.
fn originals_for(ctx: &TraceContext, trace_id: TraceId) -> Option<&SkyWalking> {
    ctx.originals
        .skywalking
        .as_deref()
        .filter(|sw| trace_id_of(&sw.trace_id).ok() == Some(trace_id))
}

/// `s`, or the placeholder when empty, cut to `max` chars.
fn non_empty(s: &str, max_chars: usize) -> &str {
    if s.is_empty() {
        PLACEHOLDER
    } else {
        truncate_chars(s, max_chars)
    }
}

/// Apache SkyWalking `sw8` / `sw8-correlation` / `sw8-x`.
pub struct SkyWalkingCodec;

impl Codec for SkyWalkingCodec {
    const FORMAT: Format = Format::SkyWalking;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let Some(value) = first(headers, &SW8)? else {
            return Ok(None);
        };
        let mut ctx = decode(value)?.into_context()?;
        for field in headers.values(&SW8_CORRELATION) {
            if let Ok(s) = value_str(field) {
                add_correlation(s, &mut ctx.baggage);
            }
        }
        if let Some(sw) = ctx.originals.skywalking.as_deref_mut() {
            sw.extension = first(headers, &SW8_X)
                .ok()
                .flatten()
                .filter(|x| !x.is_empty() && x.len() <= MAX_EXTENSION_LEN)
                .map(str::to_owned);
        }
        Ok(Some(ctx))
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let original = originals_for(ctx, trace_id);
        let k = i32::try_from(hop.call_index).unwrap_or(i32::MAX);
        let hex_trace = trace_id.to_hex();
        let segment = segment_id_for(trace_id, hop.span_id, k.unsigned_abs());
        let (Ok(hex_trace), Ok(segment)) = (
            std::str::from_utf8(&hex_trace),
            std::str::from_utf8(&segment),
        ) else {
            return Injected::default();
        };
        let mut wire = Sw8 {
            sampled: ctx.sampling != Sampling::NotSampled,
            trace_id: Cow::Borrowed(original.map_or(hex_trace, |sw| sw.trace_id.as_str())),
            segment_id: Cow::Borrowed(segment),
            span_index: k,
            service: Cow::Borrowed(non_empty(hop.service, MAX_SERVICE_CHARS)),
            instance: Cow::Borrowed(non_empty(hop.instance, MAX_SERVICE_CHARS)),
            endpoint: Cow::Borrowed(non_empty(hop.endpoint, MAX_ENDPOINT_CHARS)),
            address: Cow::Borrowed(if hop.peer_address.is_empty() {
                PLACEHOLDER
            } else {
                truncate_bytes(hop.peer_address, MAX_ADDRESS_BYTES)
            }),
        };
        if encoded_len(&wire) >= MAX_LEN {
            // Only an oversized original id can get here; the hex id maps to the same trace.
            wire.trace_id = Cow::Borrowed(hex_trace);
        }
        set(out, &SW8, encode_bytes(&wire));

        let (correlation, baggage_dropped) = encode_correlation(&ctx.baggage);
        if !correlation.is_empty() {
            set(out, &SW8_CORRELATION, correlation);
        }
        if let Some(x) = original.and_then(|sw| sw.extension.as_deref()) {
            if let Ok(v) = HeaderValue::from_str(x) {
                out.set(SW8_X.clone(), v);
            }
        }
        Injected {
            baggage_dropped,
            ..Injected::default()
        }
    }
}

/// Writes a value the codec built (visible ASCII by construction; skipped otherwise).
/// The buffers are built at their exact length, so the value takes them without a copy.
fn set(out: &mut dyn HeaderSink, name: &HeaderName, value: impl Into<Bytes>) {
    if let Some(v) = header_value(value) {
        out.set(name.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::alphabet;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;
    use http::HeaderMap;

    /// Standard base64, encoding padded: the grammar `b64_decode` and `push_b64`
    /// implement by hand (differential properties pin them to it).
    const B64: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_encode_padding(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    use crate::codec::testutil::{
        self, case_mut, hex128, hex64, hop_at, map, pairs, raw_map, rejected, run, valid, Case,
    };
    use proptest::prelude::*;

    /// Cases beyond tests/data/vectors.json (§16 and the module doc), with the exact error.
    fn edge_cases() -> Vec<Case> {
        vec![
            Case::new("edge-unpadded-base64", &[("sw8", "1-MQ-NQ-3-bWVzaA-aW5zdGFuY2U-L2FwaS92MS9oZWFsdGg-ZXhhbXBsZS5jb206ODA4MA")], valid("6b86b273ff34fce19d6b804eff5a3f57", "25082377d59eefc4", Sampling::Sampled, &[]), "unpadded base64 accepted like the Java agent"),
            Case::new("edge-correlation-4-entries", &[
                    ("sw8", "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA=="),
                    ("sw8-correlation", "YQ==:MQ==,Yg==:Mg==,YQ==:Mw==,Yw==:Mw==,ZA==:NA=="),
                ], valid("6b86b273ff34fce19d6b804eff5a3f57", "25082377d59eefc4", Sampling::Sampled, &[("a", "3"), ("b", "2"), ("c", "3")]), "first 3 distinct keys kept, repeated key replaces (Java agent); nginx-lua would drop all"),
            Case::new("edge-correlation-malformed-elements", &[
                    ("sw8", "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA=="),
                    ("sw8-correlation", "YQ==,:MQ==,Yg==:,!!:MQ==,YQ==:MQ==:Mg==, Yw==:Mw== ,/w==:MQ=="),
                    ("sw8-correlation", "ZA==:NA=="),
                ], valid("6b86b273ff34fce19d6b804eff5a3f57", "25082377d59eefc4", Sampling::Sampled, &[("c", "3"), ("d", "4")]), "elements without `:`, empty halves, bad base64, extra `:`, non-UTF-8 skipped; \
                         repeated header fields form one list"),
            Case::new("edge-sample-empty", &[("sw8", "-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Sampling), "empty sample flag"),
            Case::new("edge-bad-base64", &[("sw8", "1-M!==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Encoding), "trace id is not base64"),
            Case::new("edge-not-utf8", &[("sw8", "1-/w==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Encoding), "trace id decodes to 0xff, not UTF-8"),
            Case::new("edge-empty-trace", &[("sw8", "1--NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Missing), "empty trace id (Java isValid)"),
            Case::new("edge-empty-segment", &[("sw8", "1-MQ==--3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Missing), "empty segment id (Java isValid)"),
            Case::new("edge-empty-service", &[("sw8", "1-MQ==-NQ==-3--aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Missing), "empty parent service (Java / Python isValid)"),
            Case::new("edge-empty-instance", &[("sw8", "1-MQ==-NQ==-3-bWVzaA==--L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Missing), "empty parent instance (Java / Python isValid)"),
            Case::new("edge-empty-endpoint", &[("sw8", "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=--ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Missing), "empty parent endpoint (Java / Python isValid)"),
            Case::new("edge-empty-address", &[("sw8", "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-")], rejected(DecodeError::Missing), "empty target address (Java / Python isValid)"),
            Case::new("edge-negative-span", &[("sw8", "1-MQ==-NQ==--1-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::Malformed), "a `-` sign splits into 9 fields"),
            Case::new("edge-signed-span", &[("sw8", "1-MQ==-NQ==-+3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::SpanId), "sign not allowed"),
            Case::new("edge-span-overflow", &[("sw8", "1-MQ==-NQ==-2147483648-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==")], rejected(DecodeError::SpanId), "span index above i32::MAX"),
            Case::new("edge-empty-service-fields", &[("sw8", "1-MQ==-NQ==-0----")], rejected(DecodeError::Missing), "empty service/instance/endpoint/address: the Java and Python agents' \
                         isValid() reject it (the Rust agent would accept it)"),
        ]
    }

    /// Every `sw8-*` vector of tests/data/vectors.json and the edge cases. Every context keeps
    /// its SkyWalking originals (tests/vectors.rs checks their fields against the vectors).
    #[test]
    fn vectors() {
        let mut cases = testutil::vectors("sw8");
        // vectors.json expects null ids (the collector mapping yields zero for `1`, `3.4.5`);
        // we assert the documented fallback: SHA-256(trace id)[..16] and
        // SHA-256("segment|span")[..8].
        for (id, trace, parent) in [
            (
                "sw8-001",
                "6b86b273ff34fce19d6b804eff5a3f57",
                "25082377d59eefc4",
            ),
            (
                "sw8-002",
                "60357c4f0d42324abbbdf950a57ba777",
                "34507927d7622640",
            ),
        ] {
            case_mut(&mut cases, id).expect = valid(trace, parent, Sampling::Sampled, &[]);
        }
        for (id, error) in [
            ("sw8-003", DecodeError::Malformed),
            ("sw8-004", DecodeError::Malformed),
            ("sw8-005", DecodeError::Sampling),
        ] {
            case_mut(&mut cases, id).expect = rejected(error);
        }
        cases.extend(edge_cases());
        run(&cases, SkyWalkingCodec::extract, |_, ctx| {
            assert!(ctx.originals.skywalking.is_some(), "{ctx:?}");
        });
    }

    #[test]
    fn correlation_full_ignores_later_repeats() {
        // a:1,b:2,c:3,a:9 → the Java agent stops at 3 keys, so a stays 1.
        let got = decode_correlation("YQ==:MQ==,Yg==:Mg==,Yw==:Mw==,YQ==:OQ==");
        assert_eq!(pairs(&got), [("a", "1"), ("b", "2"), ("c", "3")]);
    }

    #[test]
    fn absent_headers() {
        assert_eq!(SkyWalkingCodec::extract(&HeaderMap::new()), Ok(None));
        let only_side = map(&[("sw8-correlation", "YQ==:MQ=="), ("sw8-x", "1-")]);
        assert_eq!(
            SkyWalkingCodec::extract(&only_side),
            Ok(None),
            "correlation alone is ignored"
        );
    }

    #[test]
    fn repeats_must_agree_and_charset() {
        let v = "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==";
        assert!(SkyWalkingCodec::extract(&map(&[("sw8", v), ("sw8", v)]))
            .unwrap()
            .is_some());
        let h = map(&[("sw8", v), ("sw8", "garbage")]);
        assert_eq!(SkyWalkingCodec::extract(&h), Err(DecodeError::Conflicting));
        let mut h = HeaderMap::new();
        h.insert(&SW8, HeaderValue::from_bytes(b"1-\xff").unwrap());
        assert_eq!(SkyWalkingCodec::extract(&h), Err(DecodeError::Charset));
        let long = format!("1-{}-NQ==-3-----", "A".repeat(MAX_LEN));
        assert_eq!(decode(&long), Err(DecodeError::TooLong));
    }

    #[test]
    fn extension_kept_and_bad_correlation_ignored() {
        let mut h = map(&[
            (
                "sw8",
                "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==",
            ),
            ("sw8-x", " 0- "),
        ]);
        h.append(&SW8_CORRELATION, HeaderValue::from_bytes(b"\xff").unwrap());
        let ctx = SkyWalkingCodec::extract(&h).unwrap().unwrap();
        assert!(ctx.baggage.is_empty());
        assert_eq!(
            ctx.originals.skywalking.unwrap().extension.as_deref(),
            Some("0-")
        );
        let h = map(&[
            (
                "sw8",
                "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==",
            ),
            ("sw8-x", &"1".repeat(MAX_EXTENSION_LEN + 1)),
        ]);
        let ctx = SkyWalkingCodec::extract(&h).unwrap().unwrap();
        assert_eq!(
            ctx.originals.skywalking.unwrap().extension,
            None,
            "oversized sw8-x dropped"
        );
    }

    #[test]
    fn collector_mapping() {
        let t = |s| format!("{:032x}", collector_trace_id(s));
        assert_eq!(
            t("de5980b8-fce3-4a37-aab9-b4ac3af7eedd"),
            "de5980b8fce34a37aab9b4ac3af7eedd"
        );
        assert_eq!(
            t("DE5980B8-FCE3-4A37-AAB9-B4AC3AF7EEDD"),
            "de5980b8fce34a37aab9b4ac3af7eedd"
        );
        assert_eq!(
            t("de5980b8fce34a37aab9b4ac3af7eedd"),
            "de5980b8fce34a37aab9b4ac3af7eedd"
        );
        assert_eq!(
            t("56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001"),
            "56a5e1c515ae4c7613e51e7cf616977f"
        );
        assert_eq!(collector_trace_id("1"), 0);
        assert_eq!(
            collector_trace_id("de5980b8xfce3-4a37-aab9-b4ac3af7eedd"),
            0,
            "dash misplaced"
        );
        assert_eq!(
            collector_trace_id("de5980b8-fce3-4a37-aab9-b4ac3af7eedz"),
            0,
            "not hex"
        );
        assert_eq!(
            collector_trace_id(&"a".repeat(33)),
            0,
            "33 chars is no UUID form"
        );
        // > 36 chars: uuidish; partial hex decode keeps the decoded prefix.
        assert_eq!(
            t("56a5e1c5zzae4c76a2b8b11d92cead7f.12.16563474296430001"),
            "56a5e1c5000000000000000000000000"
        );
        assert_eq!(
            t("56a5e1c519ae4c76a2b8b11d92cead7\u{e9}.12.16563474296430001"),
            "56a5e1c519ae4c76a2b8b11d92cead00",
            "byte 32 inside a char: the bytes are decoded, not the chars"
        );
        assert_eq!(
            collector_trace_id("56a5e1c519ae4c76a2b8b11d92cead7f.1216563474296430001"),
            0,
            "one dot"
        );
        assert_eq!(
            collector_trace_id("56a5e1c519ae4c76a2b8b11d92cead7f.x.16563474296430001"),
            0
        );
        assert_eq!(
            collector_trace_id("56a5e1c519ae4c76a2b8b11d92cead7f_12.16563474296430001"),
            0
        );
        // Go Atoi accepts a sign: -1 is all-ones in two's complement.
        assert_eq!(
            t("00000000000000000000000000000000.-1.-1"),
            "00000000ffffffffffffffffffffffff"
        );

        let s = |seg, k| format!("{:016x}", collector_span_id(seg, k));
        assert_eq!(
            s("56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430002", 1),
            "4740ffb9e3b8db09"
        );
        assert_eq!(s("0123456789abcdef0123456789abcdef", 2), "0200000000000000");
        // Dashed-UUID segments stop decoding after 4 bytes and ignore the index (collector quirk).
        assert_eq!(
            s("de5980b8-fce3-4a37-aab9-b4ac3af7eedd", 1),
            "de5980b800000000"
        );
        assert_eq!(
            s("de5980b8-fce3-4a37-aab9-b4ac3af7eedd", 7),
            "de5980b800000000"
        );
        assert_eq!(collector_span_id("1.2.3", 4), 0);
    }

    #[test]
    fn go_atoi_matches_strconv() {
        assert_eq!(go_atoi("12"), Some(12));
        assert_eq!(go_atoi("+12"), Some(12));
        assert_eq!(go_atoi("-12"), Some(-12));
        assert_eq!(
            go_atoi("0000000000000000000000012"),
            Some(12),
            "leading zeros"
        );
        assert_eq!(go_atoi("9223372036854775807"), Some(i64::MAX));
        assert_eq!(go_atoi("9223372036854775808"), None);
        assert_eq!(go_atoi("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(go_atoi("-9223372036854775809"), None);
        for bad in ["", "+", "-", "1_0", " 1", "1 ", "0x1", "--1", "1.0"] {
            assert_eq!(go_atoi(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn zero_mapping_falls_back_to_hash() {
        // All-zero UUID maps to zero: fallback.
        let id = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            trace_id_of(id),
            Ok(hashed_trace_id(&[id.as_bytes()]).unwrap())
        );
        let zero_seg = "00000000000000000000000000000000";
        assert_eq!(collector_span_id(zero_seg, 0), 0);
        assert_eq!(
            parent_id_of(zero_seg, 0),
            Ok(hashed_span_id(&[zero_seg.as_bytes(), b"|0"]).unwrap())
        );
    }

    #[test]
    fn segment_construction_matches_sw8_009() {
        let seg = segment_id_for(
            hex128("4bf92f3577b34da6a3ce929d0e0e4736"),
            hex64("00f067aa0ba902b7"),
            1,
        );
        assert_eq!(&seg, b"a23ef53705a74581a3ce929d0e0e4736");
    }

    /// The parent service, instance, endpoint and address of sw8-009.
    fn hop<'a>(span: u64, k: u32) -> Hop<'a> {
        Hop {
            service: "gateway",
            instance: "gateway-7f9c",
            endpoint: "GET:/api/orders",
            peer_address: "orders.svc:8080",
            ..hop_at(span, k)
        }
    }

    fn ctx_with(trace: TraceId, original: Option<&str>) -> TraceContext {
        TraceContext {
            trace_id: Some(trace),
            parent_id: SpanId::new(7),
            sampling: Sampling::Sampled,
            originals: Originals {
                skywalking: original.map(|t| {
                    Box::new(SkyWalking {
                        trace_id: t.to_string(),
                        segment_id: "seg".into(),
                        span_index: 1,
                        extension: Some("1-1656347429643".into()),
                        ..SkyWalking::default()
                    })
                }),
                ..Originals::default()
            },
            ..TraceContext::default()
        }
    }

    #[test]
    fn inject_reproduces_sw8_009() {
        let ctx = ctx_with(hex128("4bf92f3577b34da6a3ce929d0e0e4736"), None);
        let mut out = HeaderMap::new();
        SkyWalkingCodec::inject(&ctx, &hop(0x00f067aa0ba902b7, 1), &mut out);
        assert_eq!(
            out.get(&SW8).unwrap(),
            "1-NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY=-YTIzZWY1MzcwNWE3NDU4MWEzY2U5MjlkMGUwZTQ3MzY=-1-Z2F0ZXdheQ==-Z2F0ZXdheS03Zjlj-R0VUOi9hcGkvb3JkZXJz-b3JkZXJzLnN2Yzo4MDgw"
        );
        assert!(out.get(&SW8_X).is_none() && out.get(&SW8_CORRELATION).is_none());
    }

    #[test]
    fn inject_extract_round_trip() {
        let java = "56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001";
        let cases = [
            (hex128("4bf92f3577b34da6a3ce929d0e0e4736"), None),
            (trace_id_of(java).unwrap(), Some(java)),
            (trace_id_of("1").unwrap(), Some("1")),
            (
                trace_id_of("de5980b8-fce3-4a37-aab9-b4ac3af7eedd").unwrap(),
                Some("de5980b8-fce3-4a37-aab9-b4ac3af7eedd"),
            ),
        ];
        for (trace, original) in cases {
            for k in [0, 1, 2, 1000, u32::MAX] {
                let ctx = ctx_with(trace, original);
                let mut out = HeaderMap::new();
                SkyWalkingCodec::inject(&ctx, &hop(0xdeadbeef, k), &mut out);
                let back = SkyWalkingCodec::extract(&out).unwrap().unwrap();
                assert_eq!(back.trace_id, Some(trace), "{original:?}");
                assert_eq!(
                    back.parent_id,
                    SpanId::new(0xdeadbeef),
                    "{original:?} k={k}"
                );
                let sw = back.originals.skywalking.unwrap();
                let hex = trace.to_string();
                assert_eq!(
                    sw.trace_id,
                    original.unwrap_or(&hex),
                    "original re-emitted verbatim"
                );
                assert_eq!(sw.span_index, i32::try_from(k).unwrap_or(i32::MAX));
                assert_eq!(
                    sw.extension.as_deref(),
                    original.map(|_| "1-1656347429643"),
                    "sw8-x follows the original"
                );
            }
        }
    }

    #[test]
    fn inject_ignores_originals_of_another_trace() {
        let ctx = ctx_with(hex128("4bf92f3577b34da6a3ce929d0e0e4736"), Some("3.4.5"));
        let mut out = HeaderMap::new();
        SkyWalkingCodec::inject(&ctx, &hop(1, 1), &mut out);
        let sw = decode(out.get(&SW8).unwrap().to_str().unwrap()).unwrap();
        assert_eq!(sw.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(out.get(&SW8_X).is_none());
    }

    #[test]
    fn inject_sampling() {
        for (sampling, want) in [
            (Sampling::Sampled, "1-"),
            (Sampling::Deferred, "1-"),
            (Sampling::NotSampled, "0-"),
        ] {
            let mut ctx = ctx_with(hex128("1"), None);
            ctx.sampling = sampling;
            ctx.debug = true;
            let mut out = HeaderMap::new();
            SkyWalkingCodec::inject(&ctx, &hop(1, 1), &mut out);
            assert!(
                out.get(&SW8).unwrap().to_str().unwrap().starts_with(want),
                "{sampling:?}"
            );
        }
    }

    #[test]
    fn inject_without_trace_id_writes_nothing() {
        let mut ctx = ctx_with(hex128("1"), None);
        ctx.trace_id = None;
        ctx.baggage = vec![BaggageEntry {
            key: "k".into(),
            value: "v".into(),
            properties: String::new(),
        }];
        let mut out = HeaderMap::new();
        assert_eq!(
            SkyWalkingCodec::inject(&ctx, &hop(1, 1), &mut out),
            Injected::default()
        );
        assert!(out.is_empty());
    }

    #[test]
    fn inject_field_limits() {
        let ctx = ctx_with(hex128("1"), None);
        let long_service = "é".repeat(60);
        let long_endpoint = "/".repeat(200);
        let long_addr = format!("{}:80", "h".repeat(300));
        let h = Hop {
            span_id: SpanId::new(9).unwrap(),
            service: &long_service,
            instance: "",
            endpoint: &long_endpoint,
            peer_address: &long_addr,
            call_index: 3,
        };
        let mut out = HeaderMap::new();
        SkyWalkingCodec::inject(&ctx, &h, &mut out);
        let sw = decode(out.get(&SW8).unwrap().to_str().unwrap()).unwrap();
        assert_eq!(sw.service.chars().count(), MAX_SERVICE_CHARS);
        assert_eq!(sw.instance, PLACEHOLDER);
        assert_eq!(sw.endpoint.chars().count(), MAX_ENDPOINT_CHARS);
        assert_eq!(sw.address.len(), MAX_ADDRESS_BYTES);
        let empty = Hop {
            service: "",
            instance: "",
            endpoint: "",
            peer_address: "",
            ..h
        };
        let mut out = HeaderMap::new();
        SkyWalkingCodec::inject(&ctx, &empty, &mut out);
        let sw = decode(out.get(&SW8).unwrap().to_str().unwrap()).unwrap();
        assert_eq!(
            [&*sw.service, &*sw.instance, &*sw.endpoint, &*sw.address],
            [PLACEHOLDER; 4]
        );
    }

    #[test]
    fn inject_oversized_original_uses_hex() {
        let original = format!("{}.1.2", "a".repeat(32)) + &"0".repeat(1500);
        let trace = trace_id_of(&original).unwrap();
        let ctx = ctx_with(trace, Some(&original));
        let mut out = HeaderMap::new();
        SkyWalkingCodec::inject(&ctx, &hop(5, 1), &mut out);
        let v = out.get(&SW8).unwrap().to_str().unwrap();
        assert!(v.len() < MAX_LEN);
        let back = SkyWalkingCodec::extract(&out).unwrap().unwrap();
        assert_eq!(back.trace_id, Some(trace));
        assert_eq!(
            back.originals.skywalking.unwrap().trace_id,
            trace.to_string()
        );
    }

    #[test]
    fn inject_correlation_limits() {
        let e = |k: &str, v: &str| BaggageEntry {
            key: k.into(),
            value: v.into(),
            properties: "p".into(),
        };
        let mut ctx = ctx_with(hex128("1"), None);
        ctx.baggage = vec![
            e("a", "1"),
            e("", "x"),
            e("b", ""),
            e("big", &"v".repeat(MAX_CORRELATION_VALUE + 1)),
            e("a", "dup"),
            e("c", &"v".repeat(MAX_CORRELATION_VALUE)),
            e("d", "4"),
            e("e", "5"),
        ];
        let mut out = HeaderMap::new();
        let injected = SkyWalkingCodec::inject(&ctx, &hop(1, 1), &mut out);
        assert_eq!(injected.baggage_dropped, 5);
        let back = decode_correlation(out.get(&SW8_CORRELATION).unwrap().to_str().unwrap());
        let keys: Vec<_> = back.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(back.first().unwrap().value, "1");
    }

    /// A non-empty field: an empty one makes the whole `sw8` invalid.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(".{1,40}").unwrap()
    }

    prop_compose! {
        fn wire()(
            sampled in any::<bool>(),
            trace in text(),
            segment in text(),
            span_index in 0..=i32::MAX,
            service in text(), instance in text(), endpoint in text(), address in text(),
        ) -> Sw8<'static> {
            Sw8 {
                sampled,
                trace_id: trace.into(),
                segment_id: segment.into(),
                span_index,
                service: service.into(),
                instance: instance.into(),
                endpoint: endpoint.into(),
                address: address.into(),
            }
        }
    }

    #[test]
    fn b64_decode_edges() {
        for (input, want) in [
            ("", Some(&b""[..])),
            ("MQ==", Some(b"1")),
            ("MQ=", Some(b"1")),
            ("MQ", Some(b"1")),
            ("MTI", Some(b"12")),
            ("MTI=", Some(b"12")),
            ("MTIz", Some(b"123")),
            ("MR==", Some(b"1")),
            ("MQ===", None),
            ("MTIz=", None),
            ("M", None),
            ("M===", None),
            ("====", None),
            ("M=Q=", None),
            ("MQ-=", None),
            ("MTI==", None),
        ] {
            assert_eq!(b64_decode(input.as_bytes()).as_deref(), want, "{input:?}");
            assert_eq!(
                B64.decode(input).ok().as_deref(),
                want,
                "engine on {input:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn b64_decode_matches_engine(s in "[A-Za-z0-9+/=!-]{0,24}") {
            prop_assert_eq!(b64_decode(s.as_bytes()), B64.decode(&s).ok());
        }

        #[test]
        fn b64_decode_matches_engine_on_valid(bytes in proptest::collection::vec(any::<u8>(), 0..40), cut in 0usize..3) {
            let mut s = B64.encode(&bytes);
            s.truncate(s.len() - cut.min(s.bytes().rev().take_while(|&c| c == b'=').count()));
            prop_assert_eq!(b64_decode(s.as_bytes()), Some(bytes));
        }

        #[test]
        fn decode_encode_round_trip(w in wire()) {
            let s = encode(&w);
            prop_assert_eq!(s.len(), encoded_len(&w));
            prop_assert_eq!(decode(&s), Ok(w));
        }

        #[test]
        fn correlation_round_trip(
            entries in proptest::collection::vec(("[^\\x00]{1,20}", "[^\\x00]{1,40}"), 0..6)
        ) {
            let baggage: Vec<BaggageEntry> = entries
                .iter()
                .map(|(k, v)| BaggageEntry { key: k.clone(), value: v.clone(), properties: String::new() })
                .collect();
            let (s, dropped) = encode_correlation(&baggage);
            let back = decode_correlation(&s);
            prop_assert_eq!(back.len() + dropped, baggage.len());
            for e in &back {
                prop_assert!(baggage.iter().any(|b| b.key == e.key && b.value == e.value));
            }
        }

        #[test]
        fn decode_never_panics(s in "\\PC*") {
            let _ = decode(&s);
            let _ = decode_correlation(&s);
            let _ = collector_trace_id(&s);
            let _ = collector_span_id(&s, 3);
        }

        #[test]
        fn decode_never_panics_on_near_valid(
            parts in proptest::collection::vec("[0-9A-Za-z+/=.\\-]{0,12}", 0..10)
        ) {
            let _ = decode(&parts.join("-"));
            let joined = parts.join(".");
            let _ = collector_trace_id(&joined);
            let _ = collector_span_id(&format!("{}{}", "a".repeat(32), joined), 1);
        }

        #[test]
        fn extract_never_panics(
            sw8 in proptest::collection::vec(any::<u8>(), 0..200),
            corr in proptest::collection::vec(any::<u8>(), 0..100),
            x in proptest::collection::vec(any::<u8>(), 0..50),
        ) {
            let _ = SkyWalkingCodec::extract(&raw_map([(&SW8, sw8), (&SW8_CORRELATION, corr), (&SW8_X, x)]));
        }

        #[test]
        fn inject_extract_round_trip_any(
            trace in 1..=u128::MAX,
            span in 1..=u64::MAX,
            k in any::<u32>(),
            // Empty ones too: inject must never write an empty field.
            service in ".{0,40}", instance in ".{0,40}", endpoint in ".{0,40}", peer in ".{0,40}",
            original in proptest::option::of("[ -~]{1,60}"),
        ) {
            let trace = match &original {
                Some(o) => trace_id_of(o).unwrap(),
                None => TraceId::new(trace).unwrap(),
            };
            let ctx = ctx_with(trace, original.as_deref());
            let h = Hop {
                span_id: SpanId::new(span).unwrap(),
                service: &service, instance: &instance, endpoint: &endpoint, peer_address: &peer,
                call_index: k,
            };
            let mut out = HeaderMap::new();
            SkyWalkingCodec::inject(&ctx, &h, &mut out);
            let v = out.get(&SW8).unwrap();
            prop_assert!(v.len() < MAX_LEN);
            let back = SkyWalkingCodec::extract(&out).unwrap().unwrap();
            prop_assert_eq!(back.trace_id, Some(trace));
            prop_assert_eq!(back.parent_id, Some(h.span_id));
        }
    }
}
