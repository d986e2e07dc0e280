//! Strict number and id parsers and formatters shared by the codecs: byte-level, no
//! allocation, no `from_str_radix` (which accepts a sign and any width; wire-formats §1.4).
//! One implementation of each: the codecs call these rather than keep their own.

use sha2::{Digest, Sha256};

use super::DecodeError;
use crate::model::{SpanId, TraceId};

/// Marks a byte that is not a digit in the hex tables.
const NOT_HEX: u8 = 0xff;

/// Value of each byte as a lowercase hex digit, [`NOT_HEX`] otherwise.
static HEX_LOWER: [u8; 256] = hex_table(false);

/// Value of each byte as a hex digit of either case, [`NOT_HEX`] otherwise.
static HEX_ANY_CASE: [u8; 256] = hex_table(true);

const fn hex_table(upper: bool) -> [u8; 256] {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        if upper {
            t[b'A' as usize + i] = 10 + i as u8;
        }
        i += 1;
    }
    t
}

/// 1 to 16 digits through `table` (one lookup per digit, one check at the end).
#[inline]
fn hex_digits(b: &[u8], table: &[u8; 256]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let (mut v, mut seen) = (0u64, 0u8);
    for &c in b {
        let d = table[usize::from(c)];
        seen |= d;
        v = (v << 4) | u64::from(d & 0x0f);
    }
    // A bad digit is NOT_HEX, whose high bits survive the OR.
    (seen & 0xf0 == 0).then_some(v)
}

/// 1 to 16 digits: the leading `len % 8` through the table, then 8 at a time
/// ([`hex8`]); upper case accepted when `any_case`.
#[inline]
fn hex_swar(b: &[u8], any_case: bool) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let (head, blocks) = b.split_at(b.len() % 8);
    let mut v = if head.is_empty() {
        0
    } else {
        let table = if any_case { &HEX_ANY_CASE } else { &HEX_LOWER };
        hex_digits(head, table)?
    };
    for block in blocks.chunks_exact(8) {
        v = (v << 32) | u64::from(hex8(block.try_into().ok()?, any_case)?);
    }
    Some(v)
}

/// Eight hex digits, all at once in one u64 (SWAR): each byte is checked to be in `0-9`
/// or `a-f` (or `A-F` when `any_case`) with carry-free additions, turned into its nibble,
/// and the nibbles are packed big-endian.
#[inline]
fn hex8(block: [u8; 8], any_case: bool) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_le_bytes(block);
    // For a byte b < 0x80, b + (0x80 - lo) has its high bit set iff b >= lo, and
    // b + (0x7f - hi) iff b > hi; neither sum carries into the next byte.
    let at_least = |lo: u64| x.wrapping_add(ONES * (0x80 - lo));
    let above = |hi: u64| x.wrapping_add(ONES * (0x7f - hi));
    let digit = at_least(0x30) & !above(0x39);
    let mut letter = at_least(0x61) & !above(0x66);
    if any_case {
        letter |= at_least(0x41) & !above(0x46);
    }
    if x & HIGH != 0 || (digit | letter) & HIGH != HIGH {
        return None;
    }
    // `0`-`9` are 0x30-0x39, `a`-`f` 0x61-0x66 and `A`-`F` 0x41-0x46: the low nibble, plus
    // 9 for a letter (bit 6 set).
    let nibbles = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // First digit in the high byte, then fold pairs of nibbles, bytes, half-words.
    let v = nibbles.swap_bytes();
    let v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    let v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    let v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    u32::try_from(v).ok()
}

/// 1 to 32 digits, as two 64-bit halves (cheaper than 128-bit shifts).
#[inline]
fn hex_halves(b: &[u8], half: impl Fn(&[u8]) -> Option<u64>) -> Option<u128> {
    match b.len().checked_sub(16) {
        None | Some(0) => half(b).map(u128::from),
        Some(split) if split <= 16 => {
            let (hi, lo) = b.split_at(split);
            Some(u128::from(half(hi)?) << 64 | u128::from(half(lo)?))
        }
        Some(_) => None,
    }
}

/// Lowercase hex of 1 to 32 digits as u128. Uppercase, empty, too long → `None`.
/// (Text or bytes: a parser that validates every byte needs no UTF-8 check first.)
pub fn hex_u128(s: impl AsRef<[u8]>) -> Option<u128> {
    hex_halves(s.as_ref(), |half| hex_swar(half, false))
}

/// Lowercase hex of 1 to 16 digits as u64.
pub fn hex_u64(s: impl AsRef<[u8]>) -> Option<u64> {
    hex_swar(s.as_ref(), false)
}

/// Lowercase hex of exactly `width` digits as u128 (`width` ≤ 32).
pub fn hex_exact_u128(s: impl AsRef<[u8]>, width: usize) -> Option<u128> {
    let b = s.as_ref();
    if b.len() != width {
        return None;
    }
    match <&[u8; 32]>::try_from(b) {
        // The common width, straight through four 8-digit blocks.
        Ok(b) => {
            let (hi, lo) = b.split_at(16);
            Some(u128::from(hex16(hi)?) << 64 | u128::from(hex16(lo)?))
        }
        Err(_) => hex_u128(b),
    }
}

/// Lowercase hex of exactly 16 digits as u64.
pub fn hex_exact_u64(s: impl AsRef<[u8]>) -> Option<u64> {
    hex16(s.as_ref())
}

/// Exactly 16 lowercase digits, as two 8-digit blocks.
#[inline]
fn hex16(b: &[u8]) -> Option<u64> {
    let b = <&[u8; 16]>::try_from(b).ok()?;
    let (hi, lo) = b.split_at(8);
    let hi = hex8(hi.try_into().ok()?, false)?;
    let lo = hex8(lo.try_into().ok()?, false)?;
    Some(u64::from(hi) << 32 | u64::from(lo))
}

/// 1 to `max` hex digits of either case (`max` ≤ 32) as u128 (Instana ids, the
/// SkyWalking collector mapping).
pub fn hex_any_case(s: impl AsRef<[u8]>, max: usize) -> Option<u128> {
    let b = s.as_ref();
    if b.len() > max {
        return None;
    }
    hex_halves(b, |half| hex_swar(half, true))
}

/// The value of one hex digit of either case (Go's `hex.Decode`, for the SkyWalking
/// collector mapping, which stops at the first bad digit).
pub fn hex_digit_any_case(c: u8) -> Option<u8> {
    let d = HEX_ANY_CASE[usize::from(c)];
    (d != NOT_HEX).then_some(d)
}

/// A B3-style trace id: 16 or 32 lowercase hex, non-zero (`b3`, `x-b3-traceid`,
/// `ot-tracer-traceid` share the rule).
pub fn parse_trace_id(s: &str) -> Result<TraceId, DecodeError> {
    let v = match s.len() {
        16 => hex_exact_u64(s).map(u128::from),
        32 => hex_exact_u128(s, 32),
        _ => None,
    }
    .ok_or(DecodeError::TraceId)?;
    TraceId::new(v).ok_or(DecodeError::ZeroId)
}

/// A 64-bit span id as 16 lowercase hex, non-zero (B3 SpanId / ParentSpanId,
/// `ot-tracer-spanid`).
pub fn parse_span_id(s: &str) -> Result<SpanId, DecodeError> {
    let v = hex_exact_u64(s).ok_or(DecodeError::SpanId)?;
    SpanId::new(v).ok_or(DecodeError::ZeroId)
}

/// A trace id of 1 to 32 lowercase hex digits, left-padded to 128 bits, non-zero: what
/// readers accept from writers that drop leading zeros (`ot-tracer-traceid`, as
/// OpenTelemetry Python's OT propagator reads and writes it; `x-b3-traceid`, as Brave
/// reads it; `uber-trace-id`, as the Jaeger spec requires).
pub fn parse_short_trace_id(s: &str) -> Result<TraceId, DecodeError> {
    let v = hex_u128(s).ok_or(DecodeError::TraceId)?;
    TraceId::new(v).ok_or(DecodeError::ZeroId)
}

/// A span id of 1 to 16 lowercase hex digits, left-padded to 64 bits, non-zero (the span
/// id counterpart of [`parse_short_trace_id`]).
pub fn parse_short_span_id(s: &str) -> Result<SpanId, DecodeError> {
    let v = hex_u64(s).ok_or(DecodeError::SpanId)?;
    SpanId::new(v).ok_or(DecodeError::ZeroId)
}

/// `1` / `0`, or the legacy `true` / `false` in any case (`x-b3-sampled`,
/// `ot-tracer-sampled`); anything else, the empty value included, is invalid.
pub fn parse_sampled(s: &str) -> Result<bool, DecodeError> {
    match s {
        "1" => Ok(true),
        "0" => Ok(false),
        _ if s.eq_ignore_ascii_case("true") => Ok(true),
        _ if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(DecodeError::Sampling),
    }
}

/// `s` split at every `sep` (an ASCII byte), as `str::split` does, with a plain byte scan
/// (the general searcher's setup costs more than these short fields).
pub fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(sep, r.as_bytes()) {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `s.split_once(sep)` for an ASCII separator, with a plain byte scan.
pub fn split_once_ascii(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = memchr::memchr(sep, s.as_bytes())?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// `s` split at every `sep` into exactly `N` fields (empty ones included), `None` for
/// any other count. Looks at eight bytes at a time: on a 200-byte `sw8` value this is a
/// quarter of what `str::split` costs, which searches afresh for every field.
pub fn split_exact<const N: usize>(s: &str, sep: u8) -> Option<[&str; N]> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let bytes = s.as_bytes();
    let mut fields = [""; N];
    let (mut count, mut start) = (0, 0);
    let mut cut = |end: usize| -> Option<()> {
        // `sep` is ASCII, so every cut is a char boundary.
        *fields.get_mut(count)? = s.get(start..end)?;
        count += 1;
        start = end + 1;
        Some(())
    };
    let blocks = bytes.chunks_exact(8);
    let tail_at = bytes.len() - blocks.remainder().len();
    for (i, block) in blocks.enumerate() {
        let x = u64::from_le_bytes(block.try_into().ok()?) ^ (ONES * u64::from(sep));
        // High bit of each byte set where that byte of `x` is zero, i.e. equals `sep`
        // (exact per byte, unlike the borrow-based zero test).
        let mut hits = !(((x & LOW7) + LOW7) | x | LOW7);
        while hits != 0 {
            cut(i * 8 + hits.trailing_zeros() as usize / 8)?;
            hits &= hits - 1;
        }
    }
    for (i, &b) in bytes.iter().enumerate().skip(tail_at) {
        if b == sep {
            cut(i)?;
        }
    }
    cut(bytes.len())?;
    (count == N).then_some(fields)
}

/// Unsigned decimal u64: digits only (no sign, no spaces), at most 20, no overflow.
pub fn dec_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// `["-"] 1*20DIGIT` as i64; `None` when it does not fit (Datadog priorities and tags).
pub fn dec_i64(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = i64::try_from(dec_u64(digits)?).ok()?;
    Some(if negative { -v } else { v })
}

/// The standard base64 alphabet (RFC 4648 §4).
pub const BASE64_STANDARD: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The URL- and filename-safe base64 alphabet (RFC 4648 §5).
pub const BASE64_URL_SAFE: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of `n` bytes in base64, padded or not.
pub fn base64_len(n: usize, pad: bool) -> usize {
    if pad {
        n.div_ceil(3) * 4
    } else {
        n / 3 * 4 + [0, 2, 3][n % 3]
    }
}

/// Appends `input` in base64 with `alphabet`, `=`-padded when `pad`. Three bytes to four
/// digits in a plain loop: the `base64` engines' setup cost more than the encoding on
/// these short fields.
pub fn push_base64(out: &mut Vec<u8>, input: &[u8], alphabet: &[u8; 64], pad: bool) {
    let digit = |v: u32| alphabet[(v & 0x3f) as usize];
    let triples = input.chunks_exact(3);
    let rest = triples.remainder();
    for t in triples {
        let v = u32::from(t[0]) << 16 | u32::from(t[1]) << 8 | u32::from(t[2]);
        out.extend_from_slice(&[digit(v >> 18), digit(v >> 12), digit(v >> 6), digit(v)]);
    }
    match *rest {
        [a] => {
            let v = u32::from(a) << 16;
            out.extend_from_slice(&[digit(v >> 18), digit(v >> 12)]);
            if pad {
                out.extend_from_slice(b"==");
            }
        }
        [a, b] => {
            let v = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[digit(v >> 18), digit(v >> 12), digit(v >> 6)]);
            if pad {
                out.push(b'=');
            }
        }
        _ => {}
    }
}

/// `"00"`, `"01"`, ... `"99"`: decimal digits two at a time.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Decimal digits of `v` in `buf`, without allocating (two digits per division).
pub fn dec_bytes(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    let mut put_pair = |start: usize, n: u64| {
        let pair = n as usize * 2;
        if let (Some(dst), Some(src)) = (
            buf.get_mut(start..start + 2),
            DIGIT_PAIRS.get(pair..pair + 2),
        ) {
            dst.copy_from_slice(src);
        }
    };
    // u64::MAX has 20 digits: `start` never goes below 0.
    while v >= 100 {
        start -= 2;
        put_pair(start, v % 100);
        v /= 100;
    }
    if v >= 10 {
        start -= 2;
        put_pair(start, v);
    } else {
        start -= 1;
        if let Some(slot) = buf.get_mut(start) {
            *slot = b'0' + v as u8;
        }
    }
    buf.get(start..).unwrap_or_default()
}

/// [`dec_bytes`] as text.
pub fn dec_str(v: u64, buf: &mut [u8; 20]) -> &str {
    std::str::from_utf8(dec_bytes(v, buf)).unwrap_or("0")
}

/// Appends `v` in decimal without going through `fmt`.
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(dec_bytes(v, &mut [0; 20]));
}

/// Text the codecs built as bytes (ASCII, or UTF-8 copied from strings): one validation
/// at the end instead of one per piece.
pub fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}

/// The longest prefix of `s` with at most `max` chars.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    match s.char_indices().nth(max) {
        Some((end, _)) => s.get(..end).unwrap_or(s),
        None => s,
    }
}

/// The longest prefix of `s` with at most `max` bytes that ends on a char boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// First 16 bytes of SHA-256 over the concatenated `parts`: the deterministic trace id
/// for string ids no mapping covers (SkyWalking, EagleEye; `None` in the 2^-128 case of
/// zero).
pub fn hashed_trace_id(parts: &[&[u8]]) -> Option<TraceId> {
    let d = sha256(parts);
    let b: [u8; 16] = d.get(..16)?.try_into().ok()?;
    TraceId::new(u128::from_be_bytes(b))
}

/// First 8 bytes of SHA-256 over the concatenated `parts`: a deterministic span id.
pub fn hashed_span_id(parts: &[&[u8]]) -> Option<SpanId> {
    let d = sha256(parts);
    let b: [u8; 8] = d.get(..8)?.try_into().ok()?;
    SpanId::new(u64::from_be_bytes(b))
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Lowercase hex of `v`, `width` digits, zero-padded on the left.
pub fn to_hex(v: u128, width: usize) -> String {
    format!("{v:0width$x}")
}

/// Byte classes, one bit each in [`CLASSES`] (a range `match` compiles to a chain of
/// compares; a table lookup is one load).
const BAGGAGE_OCTET: u8 = 1;
const TCHAR: u8 = 2;

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e) {
            t[b] |= BAGGAGE_OCTET;
        }
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            t[b] |= TCHAR;
        }
        b += 1;
    }
    t
};

/// W3C `baggage-octet` (%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E): what a baggage
/// value may hold unencoded.
#[inline]
pub fn is_baggage_octet(b: u8) -> bool {
    CLASSES[usize::from(b)] & BAGGAGE_OCTET != 0
}

/// RFC 9110 `tchar`: what a token (a header name, a W3C baggage key) is made of.
#[inline]
pub fn is_tchar(b: u8) -> bool {
    CLASSES[usize::from(b)] & TCHAR != 0
}

/// The bytes a percent-encoding escapes, as a table (one load per byte): always the ASCII
/// controls, DEL and everything outside ASCII (UTF-8 is encoded byte by byte), plus the
/// set's own characters.
pub struct Escapes([bool; 256]);

impl Escapes {
    /// Controls, DEL, non-ASCII and the bytes of `extra`.
    pub const fn controls_and(extra: &[u8]) -> Self {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = b < 0x20 || b >= 0x7f;
            b += 1;
        }
        let mut i = 0;
        while i < extra.len() {
            t[extra[i] as usize] = true;
            i += 1;
        }
        Escapes(t)
    }

    /// Whether byte `b` is written `%XX`.
    #[inline]
    pub fn escapes(&self, b: u8) -> bool {
        self.0[usize::from(b)]
    }
}

/// W3C baggage values: everything but `baggage-octet`, and `%` itself. Jaeger `uberctx-*`
/// values use the same (URL) encoding.
pub static BAGGAGE_ESCAPES: Escapes = Escapes::controls_and(b" \",;\\%");

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Length of `s` percent-encoded with `set`.
#[inline]
pub fn percent_encoded_len(s: &str, set: &Escapes) -> usize {
    s.len() + 2 * s.bytes().filter(|&b| set.escapes(b)).count()
}

/// Appends `s` percent-encoded with `set` (uppercase hex, as the `percent-encoding` crate
/// writes it).
#[inline]
pub fn push_percent_encoded(out: &mut Vec<u8>, s: &str, set: &Escapes) {
    for b in s.bytes() {
        if set.escapes(b) {
            out.extend_from_slice(&[
                b'%',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0x0f)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// `s` percent-encoded with `set`, in a string of exactly its length (so a header value
/// can take it without a copy).
pub fn percent_encoded(s: &str, set: &Escapes) -> String {
    let mut out = Vec::with_capacity(percent_encoded_len(s, set));
    push_percent_encoded(&mut out, s, set);
    into_string(out)
}

/// Percent-encodes `s` for a baggage value (UTF-8 bytes outside ASCII are encoded too).
pub fn percent_encode(s: &str) -> String {
    percent_encoded(s, &BAGGAGE_ESCAPES)
}

/// Percent-decodes `s`; invalid UTF-8 after decoding becomes U+FFFD (W3C baggage rule).
/// As the `percent-encoding` crate decodes: `%` and two hex digits of either case is a
/// byte, any other `%` stays as it is. Without a `%` this is one exact-size copy.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let digits = |at: usize| hex_digit_any_case(*b.get(at)?);
        let escaped = match c {
            b'%' => digits(i + 1).zip(digits(i + 2)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the lowercase parsers must return for `s`: `from_str_radix` on 1 to 32 lowercase
    /// digits (16 for the u64 one), `None` for anything else.
    fn lowercase_reference(s: &str) -> (Option<u128>, Option<u64>) {
        let strict = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        let reference = strict.then(|| u128::from_str_radix(s, 16).unwrap());
        (
            reference,
            reference.filter(|_| s.len() <= 16).map(|v| v as u64),
        )
    }

    /// The same for either case (no u64 variant).
    fn any_case_reference(s: &str) -> Option<u128> {
        let strict = !s.is_empty() && s.len() <= 32 && s.bytes().all(|c| c.is_ascii_hexdigit());
        strict.then(|| u128::from_str_radix(s, 16).unwrap())
    }

    /// `s` with the char at `at` replaced by `c`: a near miss of a valid id.
    fn near_miss(s: &str, at: prop::sample::Index, c: char) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        let i = at.index(chars.len());
        chars[i] = c;
        chars.into_iter().collect()
    }

    proptest! {
        /// The table-driven and 8-at-a-time parsers agree with `from_str_radix` on the
        /// strict grammar and reject everything else.
        #[test]
        fn hex_matches_reference(s in "[0-9a-fA-F+ g-]{0,34}") {
            prop_assert_eq!((hex_u128(&s), hex_u64(&s)), lowercase_reference(&s));
        }

        #[test]
        fn hex_matches_reference_near_misses(
            s in "[0-9a-f]{1,32}",
            at in any::<prop::sample::Index>(),
            c in any::<char>(),
        ) {
            let s = near_miss(&s, at, c);
            prop_assert_eq!((hex_u128(&s), hex_u64(&s)), lowercase_reference(&s));
        }

        #[test]
        fn hex_any_case_matches_reference(s in "[0-9a-fA-FgG+ \\x10-\\x19-]{0,34}") {
            prop_assert_eq!(hex_any_case(&s, 32), any_case_reference(&s));
        }

        #[test]
        fn hex_any_case_near_misses(
            s in "[0-9a-fA-F]{1,32}",
            at in any::<prop::sample::Index>(),
            c in any::<char>(),
        ) {
            let s = near_miss(&s, at, c);
            prop_assert_eq!(hex_any_case(&s, 32), any_case_reference(&s));
        }
    }

    #[test]
    fn hex_is_strict() {
        assert_eq!(hex_u64("00f067aa0ba902b7"), Some(0xf067aa0ba902b7));
        assert_eq!(hex_u64("17c29"), Some(0x17c29));
        assert_eq!(hex_u64("ABC"), None, "uppercase");
        assert_eq!(hex_u64("+1"), None, "sign");
        assert_eq!(hex_u64(""), None, "empty");
        assert_eq!(hex_u64("00000000000000001"), None, "17 digits");
        assert_eq!(
            hex_exact_u128("4bf92f3577b34da6a3ce929d0e0e4736", 32),
            Some(0x4bf92f3577b34da6a3ce929d0e0e4736)
        );
        assert_eq!(
            hex_exact_u128("4bf92f3577b34da6a3ce929d0e0e473", 32),
            None,
            "31 digits"
        );
    }

    #[test]
    fn byte_classes() {
        for b in 0..=255u8 {
            let octet = matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
            assert_eq!(is_baggage_octet(b), octet, "{b:#x}");
            assert_eq!(BAGGAGE_ESCAPES.escapes(b), !octet || b == b'%', "{b:#x}");
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), tchar, "{b:#x}");
        }
    }

    #[test]
    fn ids_and_flags() {
        use DecodeError as E;
        assert_eq!(
            parse_trace_id("a3ce929d0e0e4736").map(TraceId::get),
            Ok(0xa3ce929d0e0e4736)
        );
        assert_eq!(
            parse_trace_id("a3ce929d0e0e473"),
            Err(E::TraceId),
            "15 digits"
        );
        assert_eq!(parse_trace_id(&"0".repeat(32)), Err(E::ZeroId));
        assert_eq!(
            parse_span_id("00f067aa0ba902B7"),
            Err(E::SpanId),
            "uppercase"
        );
        assert_eq!(parse_span_id("0000000000000000"), Err(E::ZeroId));
        // Short ids: left-padded, at most 32 / 16 digits, never zero, never upper case.
        assert_eq!(
            parse_short_trace_id("a3ce929d0e0e473").map(TraceId::get),
            Ok(0xa3ce929d0e0e473)
        );
        assert_eq!(parse_short_trace_id("1").map(TraceId::get), Ok(1));
        assert_eq!(parse_short_trace_id(&"a".repeat(33)), Err(E::TraceId));
        assert_eq!(parse_short_trace_id(""), Err(E::TraceId));
        assert_eq!(parse_short_trace_id("000"), Err(E::ZeroId));
        assert_eq!(parse_short_trace_id("A3"), Err(E::TraceId));
        assert_eq!(
            parse_short_span_id("942dc06bc69f265").map(SpanId::get),
            Ok(0x942dc06bc69f265)
        );
        assert_eq!(parse_short_span_id(&"a".repeat(17)), Err(E::SpanId));
        assert_eq!(parse_short_span_id("0"), Err(E::ZeroId));
        assert_eq!(parse_short_span_id(""), Err(E::SpanId));
        assert_eq!(parse_sampled("TRUE"), Ok(true));
        assert_eq!(parse_sampled("0"), Ok(false));
        assert_eq!(parse_sampled(""), Err(E::Sampling));
        assert_eq!(
            hex_any_case("E457b5a2E4D86BD1", 16),
            Some(0xe457b5a2e4d86bd1)
        );
        assert_eq!(hex_any_case("10000000000001314", 16), None, "over max");
        assert_eq!(hex_any_case("", 16), None);
        assert_eq!(hex_digit_any_case(b'F'), Some(15));
        assert_eq!(hex_digit_any_case(b'g'), None);
    }

    #[test]
    fn helpers() {
        let mut b = [0u8; 20];
        assert_eq!(dec_str(0, &mut b), "0");
        assert_eq!(dec_str(u64::MAX, &mut b), "18446744073709551615");
        assert_eq!(dec_i64("-128"), Some(-128));
        assert_eq!(dec_i64("9223372036854775808"), None, "over i64::MAX");
        assert_eq!(dec_i64("+1"), None);
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
        assert_eq!(truncate_bytes("hé", 2), "h");
        assert_eq!(truncate_bytes("hé", 3), "hé");
    }

    proptest! {
        #[test]
        fn split_exact_matches_split(s in "[a-c=-]{0,40}") {
            let parts: Vec<&str> = s.split('-').collect();
            let got = split_exact::<4>(&s, b'-');
            prop_assert_eq!(got.map(Vec::from), (parts.len() == 4).then_some(parts.clone()));
            let got = split_exact::<8>(&s, b'-');
            prop_assert_eq!(got.map(Vec::from), (parts.len() == 8).then_some(parts));
        }

        #[test]
        fn split_ascii_matches_split(s in "[a-c,]{0,20}|\\PC{0,20}") {
            let want: Vec<&str> = s.split(',').collect();
            prop_assert_eq!(split_ascii(&s, b',').collect::<Vec<_>>(), want);
        }

        #[test]
        fn split_once_ascii_matches_split_once(s in "[a-c=]{0,10}|\\PC{0,10}") {
            prop_assert_eq!(split_once_ascii(&s, b'='), s.split_once('='));
        }

        #[test]
        fn split_exact_any_text(s in any::<String>()) {
            let parts: Vec<&str> = s.split(',').collect();
            let got = split_exact::<3>(&s, b',');
            prop_assert_eq!(got.map(Vec::from), (parts.len() == 3).then_some(parts));
        }

        /// The hand-written encoder writes what the `percent-encoding` crate writes with
        /// the equivalent set, at exactly the computed length.
        #[test]
        fn percent_encoding_matches_the_crate(s in any::<String>()) {
            const BAGGAGE_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
                .add(b' ')
                .add(b'"')
                .add(b',')
                .add(b';')
                .add(b'\\')
                .add(b'%');
            let want = percent_encoding::utf8_percent_encode(&s, BAGGAGE_ENCODE).to_string();
            let got = percent_encode(&s);
            prop_assert_eq!(got.len(), percent_encoded_len(&s, &BAGGAGE_ESCAPES));
            prop_assert_eq!(got.capacity(), got.len());
            prop_assert_eq!(got, want);
        }

        /// The hand-written decoder decodes what the `percent-encoding` crate decodes.
        #[test]
        fn percent_decoding_matches_the_crate(s in "([a-zA-Z %]|%[0-9a-fA-FgG]{0,2}|%[cCeEfF][0-9a-fA-F]%[89aAbB][0-9a-fA-F]|\\PC)*") {
            let want = percent_encoding::percent_decode_str(&s).decode_utf8_lossy().into_owned();
            prop_assert_eq!(percent_decode(&s), want);
        }

        /// The hand-written base64 encoder writes what the `base64` engines write.
        #[test]
        fn base64_matches_the_crate(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
            use base64::Engine;
            for (alphabet, pad, want) in [
                (BASE64_STANDARD, true, STANDARD.encode(&bytes)),
                (BASE64_STANDARD, false, STANDARD_NO_PAD.encode(&bytes)),
                (BASE64_URL_SAFE, false, URL_SAFE_NO_PAD.encode(&bytes)),
            ] {
                let mut out = Vec::new();
                push_base64(&mut out, &bytes, alphabet, pad);
                prop_assert_eq!(out.len(), base64_len(bytes.len(), pad));
                prop_assert_eq!(into_string(out), want);
            }
        }

        #[test]
        fn decimal_matches_std(v in any::<u64>(), small in 0u64..1000) {
            for v in [v, small] {
                let mut s = Vec::new();
                push_decimal(&mut s, v);
                prop_assert_eq!(into_string(s), v.to_string());
            }
        }
    }

    #[test]
    fn decimal_is_strict() {
        assert_eq!(dec_u64("5678"), Some(5678));
        assert_eq!(dec_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(dec_u64("18446744073709551616"), None, "overflow");
        assert_eq!(dec_u64("-1"), None, "sign");
        assert_eq!(dec_u64("+1"), None, "sign");
        assert_eq!(dec_u64(""), None, "empty");
    }
}
