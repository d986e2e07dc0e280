//! Trace and span identifiers.

use std::fmt;

/// A 128-bit trace id. Never zero: every constructor rejects zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// A 64-bit span id. Never zero: every constructor rejects zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

/// Eight lowercase hex digits of `v`, most significant first, computed in one u64: the
/// nibbles are spread one per byte, then each becomes `'0' + n`, plus `'a' - '0' - 10`
/// where `n > 9`.
fn hex8(v: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = u64::from(v);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // (n + 6) has bit 4 set exactly when n > 9.
    let letters = ((x + ONES * 6) >> 4) & ONES;
    (x + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

/// 16 lowercase hex digits of `v`.
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    let (hi, lo) = out.split_at_mut(8);
    hi.copy_from_slice(&hex8((v >> 32) as u32));
    lo.copy_from_slice(&hex8(v as u32));
    out
}

impl TraceId {
    /// `None` for the invalid all-zero id.
    pub const fn new(v: u128) -> Option<Self> {
        if v == 0 {
            None
        } else {
            Some(TraceId(v))
        }
    }

    /// The id as an integer.
    pub const fn get(self) -> u128 {
        self.0
    }

    /// The low 64 bits (what 64-bit formats carry); zero when only the high half is set.
    pub const fn low64(self) -> u64 {
        self.0 as u64
    }

    /// The high 64 bits (Datadog `_dd.p.tid`); zero for a left-padded 64-bit id.
    pub const fn high64(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// 32 lowercase hex digits, big-endian.
    pub fn to_hex(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let (hi, lo) = out.split_at_mut(16);
        hi.copy_from_slice(&hex16(self.high64()));
        lo.copy_from_slice(&hex16(self.low64()));
        out
    }

    /// The 16 big-endian bytes.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl SpanId {
    /// `None` for the invalid all-zero id.
    pub const fn new(v: u64) -> Option<Self> {
        if v == 0 {
            None
        } else {
            Some(SpanId(v))
        }
    }

    /// The id as an integer.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// 16 lowercase hex digits, big-endian.
    pub fn to_hex(self) -> [u8; 16] {
        hex16(self.0)
    }

    /// The 8 big-endian bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hex digits are ASCII by construction.
        f.write_str(std::str::from_utf8(&self.to_hex()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_matches_fmt(v in 1..=u128::MAX) {
            let t = TraceId::new(v).unwrap();
            prop_assert_eq!(t.to_hex().to_vec(), format!("{v:032x}").into_bytes());
            let s = SpanId::new(v as u64 | 1).unwrap();
            prop_assert_eq!(s.to_hex().to_vec(), format!("{:016x}", v as u64 | 1).into_bytes());
        }
    }

    #[test]
    fn zero_ids_are_rejected() {
        assert!(TraceId::new(0).is_none());
        assert!(SpanId::new(0).is_none());
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        let t = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.high64(), 0x4bf92f3577b34da6);
        assert_eq!(t.low64(), 0xa3ce929d0e0e4736);
        let s = SpanId::new(0xf067aa0ba902b7).unwrap();
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert_eq!(
            TraceId::new(1).unwrap().to_string(),
            "00000000000000000000000000000001"
        );
    }
}
