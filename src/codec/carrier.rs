//! Reading a request's headers the way every codec must (wire-formats §15.6–15.7),
//! whoever holds them ([`HeaderSource`]), and the sink injection writes into.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::DecodeError;

/// A request's header fields, as extraction and the request rules read them: an
/// `http::HeaderMap` (pingora's path, the tests, `translate`), or the fast path's view
/// of the header lines it parsed, which spares it building a map per request.
///
/// Every value is bytes a `HeaderValue` accepts (no CR, LF, NUL or other control byte
/// but HTAB); names are tokens. A map hands names out lowercase, a view of lines as they
/// arrived: compare names ignoring ASCII case.
pub trait HeaderSource {
    /// The values of the field `name`, in the order they arrived.
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]>;

    /// Every field as `(name, value)`: a view in arrival order, a map grouped by name.
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])>;

    /// Whether the field `name` is present.
    fn contains(&self, name: &HeaderName) -> bool {
        self.values(name).next().is_some()
    }
}

impl HeaderSource for HeaderMap {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }

    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
    }

    fn contains(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }
}

/// Where injected headers go. Implemented for `http::HeaderMap` here and for pingora's
/// request header in the proxy (which must keep its case map in sync).
pub trait HeaderSink {
    /// Sets `name` to `value`, replacing any previous values.
    fn set(&mut self, name: HeaderName, value: HeaderValue);

    /// [`Self::set`] from the bytes of a value the caller built on its stack (the
    /// fixed-size ids of `traceparent` and `x-b3-*`), for a sink that writes bytes out
    /// without making a `HeaderValue` (the fast path's upstream head). A value that is not
    /// a valid field value (see [`is_field_value`]) is skipped rather than sent; the result
    /// says whether it was set.
    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        match HeaderValue::from_bytes(value) {
            Ok(v) => {
                self.set(name.clone(), v);
                true
            }
            Err(_) => false,
        }
    }

    /// [`Self::set_bytes`] for a value the caller built in a `Vec` of exactly its length:
    /// a `HeaderMap` takes the buffer over as the value, without a copy ([`header_value`]),
    /// a sink that writes bytes copies them and drops it.
    fn set_vec(&mut self, name: &HeaderName, value: Vec<u8>) -> bool {
        match header_value(value) {
            Some(v) => {
                self.set(name.clone(), v);
                true
            }
            None => false,
        }
    }
}

/// Whether `value` may be sent as a field value: the bytes `HeaderValue::from_bytes`
/// accepts (HTAB, SP and above, except DEL), so every sink takes the same values. No CR,
/// LF or NUL: a value can never end its line early or start another header.
pub fn is_field_value(value: &[u8]) -> bool {
    none_of(value, |b| (b < b' ' && b != b'\t') | (b == 0x7f))
}

/// Whether no byte of `value` is `bad`. Sixteen bytes a step, each step without a
/// branch, so the compiler checks them side by side (an id's 32 hex digits in two
/// steps); a value of 16 bytes or more ends with its last 16 bytes, overlapping the
/// step before, instead of a byte at a time.
#[inline(always)]
fn none_of(value: &[u8], bad: impl Fn(u8) -> bool) -> bool {
    let any_bad = |chunk: &[u8]| chunk.iter().fold(false, |any, &b| any | bad(b));
    if value.len() < 16 {
        return !value.iter().any(|&b| bad(b));
    }
    let mut chunks = value.chunks_exact(16);
    if chunks.any(any_bad) {
        return false;
    }
    chunks.remainder().is_empty() || !any_bad(&value[value.len() - 16..])
}

impl HeaderSink for HeaderMap {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
}

/// What one injection did besides writing headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Injected {
    /// Baggage entries left out, whatever the reason (limits, keys, values).
    pub baggage_dropped: usize,
    /// Of those, entries whose key the format cannot carry: per-item header formats
    /// (`uberctx-*`, `ot-baggage-*`) need a lowercase header-name token, one per header.
    pub baggage_dropped_key: usize,
    /// Of those, entries whose value the format cannot carry (`ot-baggage-*` values go
    /// verbatim, so they must be visible ASCII).
    pub baggage_dropped_value: usize,
}

impl Injected {
    /// Why baggage entries were dropped, as `(reason, count)`: the `reason` label of
    /// `tracebridge_propagation_baggage_dropped_total`. `limit` = a size or count limit
    /// of the format, `key` / `value` = the format cannot carry that key / value.
    pub fn baggage_drops(&self) -> [(&'static str, usize); 3] {
        let key_or_value = self.baggage_dropped_key + self.baggage_dropped_value;
        [
            ("limit", self.baggage_dropped.saturating_sub(key_or_value)),
            ("key", self.baggage_dropped_key),
            ("value", self.baggage_dropped_value),
        ]
    }
}

/// Trims the SP / HTAB that HTTP allows around a field value (§15.7).
pub fn trim_ows(s: &str) -> &str {
    // Bytes, not chars: SP and HTAB are ASCII, so the cut is always a char boundary.
    let b = s.as_bytes();
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !ows(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ows(c)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// [`trim_ows`] over bytes.
pub fn trim_ows_bytes(b: &[u8]) -> &[u8] {
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !ows(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ows(c)).map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or_default()
}

/// The value as text, trimmed; `Err(Charset)` unless it is visible ASCII (plus SP/HTAB),
/// as `HeaderValue::to_str` has it.
pub fn value_str(v: &[u8]) -> Result<&str, DecodeError> {
    if !none_of(v, |b| (b < b' ' && b != b'\t') | (b >= 0x7f)) {
        return Err(DecodeError::Charset);
    }
    std::str::from_utf8(v)
        .map(trim_ows)
        .map_err(|_| DecodeError::Charset)
}

/// The value of a single-valued vendor header (`b3`, `x-b3-traceid`, `uber-trace-id`,
/// `sw8`, ...). `Ok(None)` when absent. A header repeated with the *same* value (after
/// trimming) is that value: proxies and client libraries that add a header twice do no
/// harm. Repeated with *different* values it is `Err(Conflicting)`: the request names two
/// parents and picking one would be a guess, so the format counts as invalid, as W3C
/// Trace Context rules for a repeated `traceparent` (§15.6 said "first value wins", as
/// the B3 README does; B3 never says which of two different ids is right).
pub fn first<'a>(
    headers: &'a impl HeaderSource,
    name: &HeaderName,
) -> Result<Option<&'a str>, DecodeError> {
    let mut all = headers.values(name);
    let Some(v) = all.next() else {
        return Ok(None);
    };
    let value = value_str(v)?;
    for other in all {
        if value_str(other)? != value {
            return Err(DecodeError::Conflicting);
        }
    }
    Ok(Some(value))
}

/// The only value of a header that must not repeat (`traceparent`): a second field is
/// `Err(Repeated)`.
pub fn exactly_one<'a>(
    headers: &'a impl HeaderSource,
    name: &HeaderName,
) -> Result<Option<&'a str>, DecodeError> {
    exactly_one_value(headers, name)?.map(value_str).transpose()
}

/// [`exactly_one`] before the charset check, for a codec whose parser checks every byte.
pub fn exactly_one_value<'a>(
    headers: &'a impl HeaderSource,
    name: &HeaderName,
) -> Result<Option<&'a [u8]>, DecodeError> {
    let mut all = headers.values(name);
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(DecodeError::Repeated),
    }
}

/// All values of a list-valued header (`tracestate`, `baggage`) joined with `,` in
/// order (RFC 9110 field combination). `Ok(None)` when absent.
pub fn joined(
    headers: &impl HeaderSource,
    name: &HeaderName,
) -> Result<Option<String>, DecodeError> {
    let mut out: Option<String> = None;
    for v in headers.values(name) {
        let s = value_str(v)?;
        match &mut out {
            None => out = Some(s.to_string()),
            Some(acc) => {
                acc.push(',');
                acc.push_str(s);
            }
        }
    }
    Ok(out)
}

/// A header value from bytes the codec built itself, taken over without a copy: a
/// `String` or `Vec<u8>` whose capacity is its length becomes the value's buffer as it
/// is (one with spare capacity costs `Bytes` a second allocation, so codecs size their
/// buffers exactly), a `&'static str` allocates nothing. Text borrowed from elsewhere
/// goes through `HeaderValue::from_str` / `from_bytes` instead, which copy.
///
/// Codecs only build visible ASCII, so this never fails in practice; a value that would be
/// invalid is skipped rather than sent (returns `None`).
pub fn header_value(bytes: impl Into<Bytes>) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes.into()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_and_text_are_what_header_value_accepts() {
        for b in 0..=255u8 {
            for (len, at) in [
                (1, 0),
                (15, 14),
                (16, 0),
                (16, 15),
                (41, 1),
                (41, 31),
                (41, 40),
            ] {
                let mut v = vec![b'a'; len];
                v[at] = b;
                let header = HeaderValue::from_bytes(&v);
                assert_eq!(
                    is_field_value(&v),
                    header.is_ok(),
                    "byte {b:#04x} at {at} of {len}"
                );
                assert_eq!(
                    value_str(&v).is_ok(),
                    header.is_ok_and(|h| h.to_str().is_ok()),
                    "as text: byte {b:#04x} at {at} of {len}"
                );
            }
        }
        assert!(is_field_value(b""));
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn first_rejects_conflicting_repeats_only() {
        let name = HeaderName::from_static("x-b3-traceid");
        type Row<'a> = (
            &'a [(&'a str, &'a str)],
            Result<Option<&'a str>, DecodeError>,
            &'a str,
        );
        let rows: &[Row<'_>] = &[
            (&[], Ok(None), "absent"),
            (&[("x-b3-traceid", "a")], Ok(Some("a")), "one value"),
            (
                &[("x-b3-traceid", "a"), ("x-b3-traceid", "a")],
                Ok(Some("a")),
                "identical repeat",
            ),
            (
                &[("x-b3-traceid", "a"), ("x-b3-traceid", " a\t")],
                Ok(Some("a")),
                "identical after trimming",
            ),
            (
                &[("x-b3-traceid", "a"), ("x-b3-traceid", "b")],
                Err(DecodeError::Conflicting),
                "two different values",
            ),
            (
                &[
                    ("x-b3-traceid", "a"),
                    ("x-b3-traceid", "a"),
                    ("x-b3-traceid", "b"),
                ],
                Err(DecodeError::Conflicting),
                "a conflict after an identical repeat",
            ),
        ];
        for (pairs, want, why) in rows {
            let h = map(pairs);
            assert_eq!(first(&h, &name), *want, "{why}");
        }
    }
}
