//! Strict number and id parsers shared by the codecs: byte-level, no allocation, no
//! `from_str_radix` (which accepts a sign and any width; wire-formats §1.4).

/// Value of one lowercase hex digit.
#[inline]
fn hex_lc(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex of 1 to 32 digits as u128. Uppercase, empty, too long → `None`.
pub fn hex_u128(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in b {
        v = (v << 4) | hex_lc(c)? as u128;
    }
    Some(v)
}

/// Lowercase hex of 1 to 16 digits as u64.
pub fn hex_u64(s: &str) -> Option<u64> {
    if s.len() > 16 {
        return None;
    }
    hex_u128(s).map(|v| v as u64)
}

/// Lowercase hex of exactly `width` digits as u128 (`width` ≤ 32).
pub fn hex_exact_u128(s: &str, width: usize) -> Option<u128> {
    if s.len() != width {
        return None;
    }
    hex_u128(s)
}

/// Lowercase hex of exactly 16 digits as u64.
pub fn hex_exact_u64(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    hex_u64(s)
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

/// Lowercase hex of `v`, `width` digits, zero-padded on the left.
pub fn to_hex(v: u128, width: usize) -> String {
    format!("{v:0width$x}")
}

/// Characters a W3C baggage value may carry unencoded are `baggage-octet`
/// (%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E); everything else, and `%` itself,
/// is percent-encoded. Jaeger `uberctx-*` values use the same (URL) encoding.
const BAGGAGE_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Percent-encodes `s` for a baggage value (UTF-8 bytes outside ASCII are encoded too).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, BAGGAGE_ENCODE).to_string()
}

/// Percent-decodes `s`; invalid UTF-8 after decoding becomes U+FFFD (W3C baggage rule).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn decimal_is_strict() {
        assert_eq!(dec_u64("5678"), Some(5678));
        assert_eq!(dec_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(dec_u64("18446744073709551616"), None, "overflow");
        assert_eq!(dec_u64("-1"), None, "sign");
        assert_eq!(dec_u64("+1"), None, "sign");
        assert_eq!(dec_u64(""), None, "empty");
    }
}
