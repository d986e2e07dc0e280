//! Request ids (`x-request-id` by default, as Envoy, nginx and Heroku's router use it):
//! read, checked, generated, and optionally the start of a trace.
//!
//! * A value is kept only when the header occurs once and holds 1 to 200 characters
//!   (Heroku's router's upper bound) of `A-Z a-z 0-9 - _ . + / =` (UUIDs, hex, base64);
//!   anything else is treated as absent: never recorded, never echoed.
//! * `request_id_generate`: when there is no valid one, the gateway makes
//!   `{trace id}-{span id}` (32 + 16 lowercase hex): unique per request, and a log line
//!   carrying it finds the trace and the gateway span directly. It is set on the
//!   upstream request and, with a valid incoming one, returned in the response (Envoy's
//!   `always_set_request_id_in_response`, nginx's `add_header X-Request-ID $request_id`).
//! * `request_id_trace`: a request that brings no trace context but a request id that
//!   is a 128-bit id (32 hex digits, or a UUID `8-4-4-4-12`, either case) starts its
//!   trace with that id, so the request id and the trace id are the same (what Envoy
//!   users ask of `x-request-id`). The id is not marked random (the W3C random flag stays
//!   off): consistent sampling presumes it random, as the OpenTelemetry SDK spec says.
//!   Not under `trust = "restart"`, which trusts nothing a client sends.

use http::{HeaderName, HeaderValue};

use crate::codec::HeaderSource;
use crate::model::{SpanId, TraceId};

/// The default header.
pub const DEFAULT_HEADER: &str = "x-request-id";
/// Longest value kept.
pub const MAX_LEN: usize = 200;

/// A route's request-id settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdPolicy {
    /// The header; `None` = request ids off.
    pub header: Option<HeaderName>,
    /// Generate one when there is no valid one, set it upstream, return it.
    pub generate: bool,
    /// Start a trace from a request id that is a 128-bit id.
    pub trace: bool,
}

impl Default for RequestIdPolicy {
    fn default() -> Self {
        RequestIdPolicy {
            header: Some(HeaderName::from_static(DEFAULT_HEADER)),
            generate: false,
            trace: false,
        }
    }
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/' | b'=')
}

/// Whether `v` is a request id the gateway may record and echo.
pub fn valid(v: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&v.len()) && v.iter().all(|&b| allowed(b))
}

/// The request's id under `name`: exactly one valid value, else `None`.
pub fn read<'h>(headers: &'h impl HeaderSource, name: &HeaderName) -> Option<&'h [u8]> {
    let mut all = headers.values(name);
    let first = all.next()?;
    if all.next().is_some() || !valid(first) {
        return None;
    }
    Some(first)
}

/// The 128-bit id a request id spells: 32 hex digits or a UUID (`8-4-4-4-12`), either
/// case; `None` for anything else or all zeros.
pub fn trace_id(v: &[u8]) -> Option<TraceId> {
    let mut digits = [0u8; 32];
    match v.len() {
        32 => digits.copy_from_slice(v),
        36 => {
            let mut n = 0;
            for (i, &b) in v.iter().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    if b != b'-' {
                        return None;
                    }
                } else {
                    *digits.get_mut(n)? = b;
                    n += 1;
                }
            }
        }
        _ => return None,
    }
    let mut id: u128 = 0;
    for b in digits {
        id = id << 4 | u128::from(crate::codec::text::hex_digit_any_case(b)?);
    }
    TraceId::new(id)
}

/// The id the gateway makes: `{trace id}-{span id}`.
pub fn generate(trace_id: TraceId, span_id: SpanId) -> HeaderValue {
    let mut v = [b'-'; 49];
    v[..32].copy_from_slice(&trace_id.to_hex());
    v[33..].copy_from_slice(&span_id.to_hex());
    // Hex digits and a dash: always a valid header value.
    HeaderValue::from_bytes(&v).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn values_with_reasons() {
        for (v, ok, why) in [
            (
                "f5ae2621ffff2e7d5000bb8f04ef278a",
                true,
                "nginx $request_id",
            ),
            ("fceb3265-4be8-45f0-b410-e4b5ccc39dd4", true, "Envoy UUID"),
            ("abc+/=._-XYZ", true, "base64 and friends"),
            ("", false, "empty"),
            ("a b", false, "space"),
            ("<script>", false, "markup"),
            ("id\u{7f}", false, "control"),
            ("caf\u{e9}", false, "not ASCII"),
        ] {
            assert_eq!(valid(v.as_bytes()), ok, "{v:?}: {why}");
        }
        assert!(valid("a".repeat(200).as_bytes()));
        assert!(!valid("a".repeat(201).as_bytes()), "over 200");
    }

    #[test]
    fn a_repeated_header_is_not_an_id() {
        let name = HeaderName::from_static(DEFAULT_HEADER);
        let mut h = HeaderMap::new();
        assert_eq!(read(&h, &name), None);
        h.append(&name, HeaderValue::from_static("one"));
        assert_eq!(read(&h, &name), Some(&b"one"[..]));
        h.append(&name, HeaderValue::from_static("two"));
        assert_eq!(read(&h, &name), None);
    }

    #[test]
    fn ids_that_are_trace_ids() {
        let want = TraceId::new(0xfceb_3265_4be8_45f0_b410_e4b5_ccc3_9dd4);
        assert_eq!(trace_id(b"fceb3265-4be8-45f0-b410-e4b5ccc39dd4"), want);
        assert_eq!(trace_id(b"FCEB3265-4BE8-45F0-B410-E4B5CCC39DD4"), want);
        assert_eq!(trace_id(b"fceb32654be845f0b410e4b5ccc39dd4"), want);
        for bad in [
            &b"fceb3265-4be8-45f0-b410-e4b5ccc39dd"[..],
            b"fceb32654-be8-45f0-b410-e4b5ccc39dd4",
            b"fceb3265_4be8_45f0_b410_e4b5ccc39dd4",
            b"00000000000000000000000000000000",
            b"fceb32654be845f0b410e4b5ccc39ddg",
            b"req-1",
        ] {
            assert_eq!(trace_id(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn generated_ids_carry_the_trace_and_span() {
        let t = TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap();
        let s = SpanId::new(0x00f0_67aa_0ba9_02b7).unwrap();
        let v = generate(t, s);
        assert_eq!(v, "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7");
        assert!(valid(v.as_bytes()));
    }
}
