//! The OpenTelemetry `ot` member of W3C `tracestate`: the sampling threshold `th` and the
//! explicit randomness `rv` of consistent probability sampling (OpenTelemetry
//! specification `specification/trace/tracestate-handling.md`, "TraceState Handling";
//! OTEP 235). String level only: what the values mean for a sampling decision is
//! mediation policy (`mediate::consistent`).
//!
//! ```text
//! ot-value    = list-member *( ";" list-member )   ; at most 256 characters
//! list-member = key ":" value                       ; keys unique
//! key         = lcalpha *( lcalpha / DIGIT )
//! value       = *( ucalpha / lcalpha / DIGIT / "." / "_" / "-" )
//! th-value    = 1*14( DIGIT / %x61-66 )             ; lowercase hex, trailing zeros optional
//! rv-value    = 14( DIGIT / %x61-66 )               ; exactly 14 lowercase hex digits
//! ```
//!
//! * `th` is extended with trailing zeros to 14 digits and read as a 56-bit rejection
//!   threshold `T`; `th:0` rejects nothing (100 %). It is written in its shortest form:
//!   trailing zeros removed, `0` for zero ("Converting integer threshold to a T-value").
//! * `rv` is a 56-bit randomness value `R` used instead of the trace id's low 56 bits.
//! * Sub-keys the gateway does not know (`p`, `r`, `foo`, ...) are valid and kept as they
//!   are; a value that breaks the grammar, repeats a key, exceeds 256 characters or has a
//!   malformed `th` / `rv` is invalid as a whole ([`OtError`]).

/// The `tracestate` key.
pub const KEY: &str = "ot";
/// Longest `ot` value (the whole sub-key list).
pub const MAX_LEN: usize = 256;
/// 2^56: the number of distinct 56-bit values (`MaxAdjustedCount` in the specification).
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// The low 56 bits.
pub const RANDOMNESS_MASK: u64 = MAX_ADJUSTED_COUNT - 1;
/// Hex digits in a full-width threshold or randomness value.
const DIGITS: usize = 14;

/// A 56-bit rejection threshold `T`, or [`Threshold::NEVER`] (2^56, rejects everything; not
/// expressible as `th`, the specification's "zero probability is not probability sampling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u64);

impl Threshold {
    /// `th:0`: every span is kept.
    pub const ALWAYS: Threshold = Threshold(0);
    /// Every span is rejected (ratio 0).
    pub const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    /// `t` when it is at most 2^56.
    pub const fn new(t: u64) -> Option<Threshold> {
        if t <= MAX_ADJUSTED_COUNT {
            Some(Threshold(t))
        } else {
            None
        }
    }

    /// The threshold as an integer in `0..=2^56`.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `R >= T`: whether randomness `r` (56 bits) is kept by this threshold.
    pub const fn keeps(self, r: u64) -> bool {
        r & RANDOMNESS_MASK >= self.0
    }

    /// Reads a `th` value.
    pub fn decode(s: &str) -> Result<Threshold, OtError> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > DIGITS || !b.iter().all(is_lower_hex) {
            return Err(OtError::Threshold);
        }
        let v = super::text::hex_u64(b).ok_or(OtError::Threshold)?;
        // Extend with trailing zeros to 14 digits (4 bits per missing digit).
        Ok(Threshold(v << (4 * (DIGITS - b.len()))))
    }

    /// The shortest `th` value (without `th:`), into `buf`; `None` for [`Threshold::NEVER`].
    pub fn encode(self, buf: &mut [u8; DIGITS]) -> Option<&str> {
        if self.0 >= MAX_ADJUSTED_COUNT {
            return None;
        }
        if self.0 == 0 {
            buf[0] = b'0';
            return std::str::from_utf8(&buf[..1]).ok();
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, d) in buf.iter_mut().enumerate() {
            *d = HEX[((self.0 >> (4 * (DIGITS - 1 - i))) & 0xf) as usize];
        }
        let len = DIGITS - buf.iter().rev().take_while(|&&d| d == b'0').count();
        std::str::from_utf8(&buf[..len]).ok()
    }
}

/// Why an `ot` value is invalid (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum OtError {
    /// Over [`MAX_LEN`] characters.
    #[error("ot value longer than 256 characters")]
    TooLong,
    /// A member without `:`, an empty or invalid key, a character outside the value set.
    #[error("ot value does not follow the grammar")]
    Malformed,
    /// The same sub-key twice.
    #[error("ot sub-key repeated")]
    Repeated,
    /// `th` not 1 to 14 lowercase hex digits.
    #[error("invalid ot th")]
    Threshold,
    /// `rv` not exactly 14 lowercase hex digits.
    #[error("invalid ot rv")]
    Randomness,
}

impl OtError {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OtError::TooLong => "too_long",
            OtError::Malformed => "malformed",
            OtError::Repeated => "repeated",
            OtError::Threshold => "threshold",
            OtError::Randomness => "randomness",
        }
    }
}

/// What an `ot` value says about sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OtValue {
    /// `th`, when present.
    pub th: Option<Threshold>,
    /// `rv`, when present (56 bits).
    pub rv: Option<u64>,
}

fn is_lower_hex(c: &u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(c)
}

fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    match b.split_first() {
        Some((first, rest)) => {
            first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }
        None => false,
    }
}

fn valid_value(v: &str) -> bool {
    v.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The members of a value that passed [`decode`], as (key, value).
fn members(s: &str) -> impl Iterator<Item = (&str, &str)> {
    super::text::split_ascii(s, b';').filter_map(|m| super::text::split_once_ascii(m, b':'))
}

/// Parses an `ot` value (see the module doc for what is invalid).
pub fn decode(s: &str) -> Result<OtValue, OtError> {
    if s.len() > MAX_LEN {
        return Err(OtError::TooLong);
    }
    let mut out = OtValue::default();
    // Keys seen so far, for uniqueness without allocating: a value of at most 256
    // characters has at most 64 members of `k:` plus `;`, so rescanning is cheap.
    for (i, member) in super::text::split_ascii(s, b';').enumerate() {
        let (key, value) = super::text::split_once_ascii(member, b':').ok_or(OtError::Malformed)?;
        if !valid_key(key) || !valid_value(value) {
            return Err(OtError::Malformed);
        }
        if members(s).take(i).any(|(k, _)| k == key) {
            return Err(OtError::Repeated);
        }
        match key {
            "th" => out.th = Some(Threshold::decode(value)?),
            "rv" => {
                let b = value.as_bytes();
                if b.len() != DIGITS || !b.iter().all(is_lower_hex) {
                    return Err(OtError::Randomness);
                }
                out.rv = Some(super::text::hex_u64(b).ok_or(OtError::Randomness)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The `ot` value `old` (already valid, or `""` for none) with `th` set to `th` (first) or
/// removed (`None`), every other sub-key kept in its order. `""` when nothing is left. When
/// the result would exceed [`MAX_LEN`], `th` is left out: the specification advises not
/// to set a value that does not fit, and a stale threshold must not stay.
pub fn with_threshold(old: &str, th: Option<Threshold>) -> String {
    let mut buf = [0u8; DIGITS];
    let th = th.and_then(|t| t.encode(&mut buf));
    let rest = || members(old).filter(|(k, _)| *k != "th");
    let rest_len: usize = rest().map(|(k, v)| k.len() + v.len() + 2).sum();
    let th_len = th.map_or(0, |t| t.len() + 4);
    let th = th.filter(|_| rest_len + th_len <= MAX_LEN + 1);
    let mut out = String::with_capacity(rest_len + th_len);
    if let Some(t) = th {
        out.push_str("th:");
        out.push_str(t);
    }
    for (k, v) in rest() {
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(k);
        out.push(':');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn th(s: &str) -> u64 {
        Threshold::decode(s).unwrap().get()
    }

    fn enc(t: u64) -> Option<String> {
        let mut buf = [0u8; DIGITS];
        Threshold::new(t)?.encode(&mut buf).map(str::to_owned)
    }

    /// The examples of tracestate-handling.md and tracestate-probability-sampling.md.
    #[test]
    fn specification_examples() {
        // "ot=th:c": extended to c0000000000000, 75 % rejected.
        assert_eq!(th("c"), 0xc0_0000_0000_0000);
        // "ot=th:0": 100 % sampling.
        assert_eq!(th("0"), 0);
        // 1 % at 5 digits: "ot=th:fd70a4" = 71337018784743424.
        assert_eq!(th("fd70a4"), 71_337_018_784_743_424);
        assert_eq!(enc(0x00fd_70a4_0000_0000).as_deref(), Some("fd70a4"));
        // The encoding drops trailing zeros; zero is "0".
        assert_eq!(enc(0xc0_0000_0000_0000).as_deref(), Some("c"));
        assert_eq!(enc(0x80_0000_0000_0000).as_deref(), Some("8"));
        assert_eq!(enc(0).as_deref(), Some("0"));
        assert_eq!(enc(1).as_deref(), Some("00000000000001"));
        assert_eq!(enc(MAX_ADJUSTED_COUNT), None, "ratio 0 has no th");
        // "ot=rv:6e6d1a75832a2f": thresholds 6e6d1a75832a2f down to 0 keep it.
        let v = decode("rv:6e6d1a75832a2f").unwrap();
        assert_eq!(v.rv, Some(0x6e6d1a75832a2f));
        assert!(Threshold::decode("6e6d1a75832a2f")
            .unwrap()
            .keeps(0x6e6d1a75832a2f));
        assert!(!Threshold::decode("6e6d1a75832a3")
            .unwrap()
            .keeps(0x6e6d1a75832a2f));
        // Other concerns' sub-keys are valid ("ot=p:8;r:62", "ot=foo:bar;k1:13").
        assert_eq!(decode("p:8;r:62"), Ok(OtValue::default()));
        assert_eq!(decode("foo:bar;k1:13"), Ok(OtValue::default()));
    }

    #[test]
    fn invalid_values_with_reasons() {
        let cases: &[(&str, OtError, &str)] = &[
            ("th:", OtError::Threshold, "th needs 1 digit"),
            ("th:fffffffffffffff", OtError::Threshold, "15 digits"),
            ("th:C", OtError::Threshold, "uppercase"),
            ("th:g", OtError::Threshold, "not hex"),
            ("rv:6e6d1a75832a2", OtError::Randomness, "13 digits"),
            ("rv:6e6d1a75832a2f0", OtError::Randomness, "15 digits"),
            ("rv:6E6D1A75832A2F", OtError::Randomness, "uppercase"),
            ("th:c;th:8", OtError::Repeated, "th twice"),
            ("p:8;p:8", OtError::Repeated, "any key twice"),
            ("th", OtError::Malformed, "no colon"),
            ("", OtError::Malformed, "empty list"),
            ("th:c;", OtError::Malformed, "empty member"),
            ("Th:c", OtError::Malformed, "uppercase key"),
            ("1k:c", OtError::Malformed, "key starts with a digit"),
            ("k:a b", OtError::Malformed, "space in a value"),
            ("k:a:b", OtError::Malformed, "colon in a value"),
        ];
        for (value, want, why) in cases {
            assert_eq!(decode(value), Err(*want), "{value:?}: {why}");
        }
        let long = format!("th:c;x:{}", "a".repeat(250));
        assert_eq!(decode(&long), Err(OtError::TooLong));
        assert_eq!(
            decode(&long[..256]).map(|v| v.th),
            Ok(Threshold::decode("c").ok())
        );
    }

    #[test]
    fn rewriting_keeps_other_sub_keys_in_order() {
        let c = Threshold::decode("c").ok();
        assert_eq!(with_threshold("", c), "th:c");
        assert_eq!(
            with_threshold("rv:6e6d1a75832a2f", c),
            "th:c;rv:6e6d1a75832a2f"
        );
        assert_eq!(with_threshold("p:8;th:8;r:62", c), "th:c;p:8;r:62");
        assert_eq!(with_threshold("p:8;th:8;r:62", None), "p:8;r:62");
        assert_eq!(with_threshold("th:8", None), "");
        assert_eq!(with_threshold("", Some(Threshold::NEVER)), "");
        // No room for th: left out rather than exceeding 256 characters.
        let full = format!("x:{}", "a".repeat(252));
        assert_eq!(with_threshold(&full, c), full);
    }

    proptest! {
        #[test]
        fn threshold_round_trips(t in 0..MAX_ADJUSTED_COUNT) {
            let s = enc(t).unwrap();
            prop_assert!(!s.is_empty() && s.len() <= 14);
            prop_assert!(s == "0" || !s.ends_with('0'));
            prop_assert_eq!(th(&s), t);
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,300}") {
            let _ = decode(&s);
        }

        #[test]
        fn rewritten_values_decode(
            keys in proptest::collection::vec(("[a-z][a-z0-9]{0,3}", "[a-zA-Z0-9._-]{0,8}"), 0..8),
            t in proptest::option::of(0..MAX_ADJUSTED_COUNT),
        ) {
            let mut seen = std::collections::HashSet::new();
            let old: Vec<String> = keys
                .iter()
                .filter(|(k, _)| k != "th" && k != "rv" && seen.insert(k.clone()))
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            let old = old.join(";");
            let new = with_threshold(&old, t.and_then(Threshold::new));
            if !new.is_empty() {
                let v = decode(&new).unwrap();
                prop_assert_eq!(v.th, t.and_then(Threshold::new));
            }
        }
    }
}
