//! Baggage carried as one header per item, `{prefix}{key}: {value}`: Jaeger `uberctx-*`
//! (wire-formats §5) and OpenTracing `ot-baggage-*` (§6). Shared by [`super::jaeger`] and
//! [`super::ottrace`], which differ only in the prefix and the value encoding.
//!
//! Choices:
//! - Extract: the key is the header-name suffix, so it is lowercase (HTTP names are
//!   case-insensitive and `HeaderMap` stores them lowercase). A repeated header keeps its
//!   first value; a header named exactly the prefix, or whose first value is not visible
//!   ASCII, is skipped: one bad item never invalidates the others or the trace context.
//!   Extract keeps every item (the proxy's header-size limit bounds them).
//! - Inject: W3C baggage keys are case-sensitive tokens, header names are not; a key that
//!   is not a lowercase header-name token (empty, upper case such as `userId`, separators,
//!   non-ASCII) would come back different or not at all, so it is dropped from this format
//!   and counted with reason `key` rather than lower-cased: `uberctx-userid` would reach
//!   the service as a different key, which is worse than none (Jaeger's docs ask for
//!   lowercase keys for this reason; OTel Python's OT propagator skips keys that are not
//!   header tokens, OTel Java and go-contrib write them as they are and the case is lost).
//!   The entry stays in every other format injected with it (W3C `baggage`,
//!   `sw8-correlation`, `EagleEye-UserData`). A key already written is dropped and counted
//!   (`key`) too: one header holds one value, and the first one is what a reader of the
//!   ordered baggage takes. A value `Verbatim` cannot carry is counted as `value`. W3C
//!   properties have no place here and are left out (not counted).
//! - Limits: the W3C baggage minimums (64 entries, 8192 bytes counted as `key=value` text),
//!   which OTel Java also applies to Jaeger baggage. Entries are taken in order; one that
//!   would exceed a limit is dropped and counted, and later, smaller ones may still fit.

use http::{HeaderName, HeaderValue};

use super::{header_value, text, value_str, HeaderSink, HeaderSource, Injected};
use crate::model::{Baggage, BaggageEntry};

/// Most entries written per request (W3C baggage minimum).
pub(crate) const MAX_ENTRIES: usize = 64;
/// Most bytes written per request, counted as `key=value` per entry (W3C baggage minimum).
pub(crate) const MAX_BYTES: usize = 8192;

/// URL encoding of `uberctx-*` values: the W3C baggage escapes, and `+` (a form decoder
/// reads a bare `+` as a space).
static URL_ESCAPES: text::Escapes = text::Escapes::controls_and(b" \",;\\%+");

/// How item values are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Values {
    /// URL-encoded, as Jaeger clients do with HTTP headers: `%XX` escapes, and `+` for a
    /// space on input (Go `url.QueryEscape`, Java `URLEncoder`), so a literal `+` is
    /// always sent as `%2B`.
    UrlEncoded,
    /// Verbatim (OpenTracing: go-contrib and OTel Java write `m.Value()` as is); a value
    /// that cannot be a header value as is (not visible ASCII, or leading/trailing
    /// whitespace that receivers trim) is dropped and counted on inject.
    Verbatim,
}

impl Values {
    /// The value a header carries, decoded.
    pub(crate) fn decode(self, raw: &str) -> String {
        match self {
            Values::UrlEncoded if raw.contains('+') => text::percent_decode(&raw.replace('+', " ")),
            Values::UrlEncoded => text::percent_decode(raw),
            Values::Verbatim => raw.to_string(),
        }
    }

    /// The header value for `value`, in a string of exactly its length; `None` when this
    /// encoding cannot carry it.
    fn encode(self, value: &str) -> Option<String> {
        match self {
            Values::UrlEncoded => Some(text::percent_encoded(value, &URL_ESCAPES)),
            Values::Verbatim => is_verbatim_value(value).then(|| value.to_string()),
        }
    }
}

/// Visible ASCII with inner SP/HTAB only: what survives a header hop unchanged.
fn is_verbatim_value(v: &str) -> bool {
    let b = v.as_bytes();
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    b.iter().all(|&c| c == b'\t' || (b' '..=b'~').contains(&c))
        && !b.first().is_some_and(ows)
        && !b.last().is_some_and(ows)
}

/// RFC 9110 `tchar` without upper-case letters: a key that survives as a header-name suffix.
fn is_lowercase_token(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|c| text::is_tchar(c) && !c.is_ascii_uppercase())
}

/// Appends every `{prefix}{key}` header of `headers` to `out` (the key lowercase, as a
/// `HeaderName` has it), in the order the names first appear; a repeated name keeps its
/// first value.
pub(crate) fn extract(
    headers: &impl HeaderSource,
    prefix: &str,
    values: Values,
    out: &mut Baggage,
) {
    for (i, (name, value)) in headers.fields().enumerate() {
        if !super::starts_with_ignore_case(name, prefix) {
            continue;
        }
        // The first field of a name decides, usable or not (a map's first value).
        let repeated = || {
            headers
                .fields()
                .take(i)
                .any(|(earlier, _)| earlier.eq_ignore_ascii_case(name))
        };
        // A name is a token: ASCII.
        let Ok(key) = std::str::from_utf8(&name[prefix.len()..]) else {
            continue;
        };
        if key.is_empty() || repeated() {
            continue;
        }
        let key = key.to_ascii_lowercase();
        let Ok(raw) = value_str(value) else {
            continue;
        };
        out.push(BaggageEntry {
            key,
            value: values.decode(raw),
            properties: String::new(),
        });
    }
}

/// Writes one `{prefix}{key}` header per entry within the limits; returns how many entries
/// were dropped, and why.
pub(crate) fn inject(
    baggage: &[BaggageEntry],
    prefix: &str,
    values: Values,
    out: &mut dyn HeaderSink,
) -> Injected {
    let mut report = Injected::default();
    if baggage.is_empty() {
        return report;
    }
    // The keys written so far, on the stack (at most MAX_ENTRIES of them).
    let mut written: [&str; MAX_ENTRIES] = [""; MAX_ENTRIES];
    let mut count = 0;
    let mut bytes = 0;
    for entry in baggage {
        let fresh = written
            .get(..count)
            .is_some_and(|w| !w.contains(&entry.key.as_str()));
        let header = if !fresh || !is_lowercase_token(&entry.key) {
            Err(Unfit::Key)
        } else if count >= MAX_ENTRIES {
            Err(Unfit::Limit)
        } else {
            item(entry, prefix, values).and_then(|h| {
                if bytes + h.2 <= MAX_BYTES {
                    Ok(h)
                } else {
                    Err(Unfit::Limit)
                }
            })
        };
        match (header, written.get_mut(count)) {
            (Ok((name, value, size)), Some(slot)) => {
                out.set(name, value);
                *slot = &entry.key;
                count += 1;
                bytes += size;
            }
            (Err(Unfit::Key), _) => report.baggage_dropped_key += 1,
            (Err(Unfit::Value), _) => report.baggage_dropped_value += 1,
            (Err(Unfit::Limit), _) | (Ok(_), None) => {}
        }
    }
    report.baggage_dropped = baggage.len() - count;
    report
}

/// Why one entry cannot be written.
enum Unfit {
    /// Not a lowercase header-name token, or already written.
    Key,
    /// The value encoding cannot carry it.
    Value,
    /// Over the entry or byte limit.
    Limit,
}

/// The header for one entry (its key already checked) and its size as `key=value`.
fn item(
    entry: &BaggageEntry,
    prefix: &str,
    values: Values,
) -> Result<(HeaderName, HeaderValue, usize), Unfit> {
    let value = values.encode(&entry.value).ok_or(Unfit::Value)?;
    let size = entry.key.len() + 1 + value.len();
    // `HeaderName::from_bytes` copies whatever it is given: build the name on the stack
    // when it is short, so that copy is its only allocation.
    let mut buf = [0u8; 64];
    let name_len = prefix.len() + entry.key.len();
    let name = match buf.get_mut(..name_len) {
        Some(short) => {
            let (head, tail) = short.split_at_mut(prefix.len());
            head.copy_from_slice(prefix.as_bytes());
            tail.copy_from_slice(entry.key.as_bytes());
            HeaderName::from_bytes(short)
        }
        None => HeaderName::from_bytes([prefix, entry.key.as_str()].concat().as_bytes()),
    }
    .map_err(|_| Unfit::Key)?;
    Ok((name, header_value(value).ok_or(Unfit::Value)?, size))
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::testutil::entry;

    #[test]
    fn url_encoded_values() {
        let rows: &[(&str, &str, &str)] = &[
            ("value%201%20%2F%20blah", "value 1 / blah", "jaeger-011"),
            ("a+b", "a b", "form encoding: + is a space"),
            ("a%2Bb", "a+b", "an escaped + stays a +"),
            ("50%", "50%", "a lone % is kept"),
            ("Am%C3%A9lie", "Amélie", "UTF-8"),
            ("%FF", "\u{FFFD}", "invalid UTF-8 becomes U+FFFD"),
        ];
        for (raw, want, why) in rows {
            assert_eq!(Values::UrlEncoded.decode(raw), *want, "{why}");
        }
        for value in ["value 1 / blah", "a+b", "50% off", "Amélie", "k=v,x;y", ""] {
            let enc = Values::UrlEncoded.encode(value).unwrap();
            assert!(HeaderValue::from_str(&enc).is_ok());
            assert_eq!(Values::UrlEncoded.decode(&enc), value);
        }
    }

    proptest! {
        /// What the encoding was before it had its own table: W3C baggage escapes, then
        /// `+` as `%2B`.
        #[test]
        fn url_encoding_is_baggage_encoding_with_plus(s in any::<String>()) {
            let want = text::percent_encode(&s).replace('+', "%2B");
            prop_assert_eq!(Values::UrlEncoded.encode(&s), Some(want));
        }
    }

    #[test]
    fn verbatim_values() {
        assert_eq!(
            Values::Verbatim.encode("a b=c,d").as_deref(),
            Some("a b=c,d")
        );
        for bad in [" lead", "trail\t", "Amélie", "cr\r\nlf", "nul\0"] {
            assert_eq!(Values::Verbatim.encode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys() {
        for good in ["k", "key-1", "a.b_c~!#$%&'*+^`|"] {
            assert!(is_lowercase_token(good), "{good}");
        }
        for bad in ["", "Key", "a b", "a=b", "a:b", "é", "a/b"] {
            assert!(!is_lowercase_token(bad), "{bad}");
        }
    }

    #[test]
    fn extract_first_value_and_skips() {
        let mut h = HeaderMap::new();
        h.append("uberctx-a", HeaderValue::from_static("1"));
        h.append("uberctx-a", HeaderValue::from_static("2"));
        h.append("uberctx-", HeaderValue::from_static("no key"));
        h.append("uberctx-bad", HeaderValue::from_bytes(b"\xff").unwrap());
        h.append(
            HeaderName::from_bytes(b"UBERCTX-B").unwrap(),
            HeaderValue::from_static("  x  "),
        );
        h.append("other", HeaderValue::from_static("y"));
        let mut out = Baggage::new();
        extract(&h, "uberctx-", Values::UrlEncoded, &mut out);
        assert_eq!(out, vec![entry("a", "1"), entry("b", "x")]);
    }

    #[test]
    fn inject_limits_and_keys() {
        let mut baggage = vec![entry("Upper", "x"), entry("", "x"), entry("a b", "x")];
        baggage.extend((0..70).map(|i| entry(&format!("k{i}"), "v")));
        let mut h = HeaderMap::new();
        let dropped = inject(&baggage, "ot-baggage-", Values::Verbatim, &mut h);
        assert_eq!(h.len(), MAX_ENTRIES);
        assert_eq!(dropped.baggage_dropped, 3 + 70 - MAX_ENTRIES);
        assert_eq!(
            dropped.baggage_drops(),
            [("limit", 70 - MAX_ENTRIES), ("key", 3), ("value", 0)]
        );
        assert_eq!(h.get("ot-baggage-k0").unwrap(), "v");
        assert!(h.get("ot-baggage-k64").is_none());

        let big = "x".repeat(5000);
        let baggage = vec![
            entry("a", &big),
            entry("b", &big),
            entry("c", "small"),
            entry("c", "again"),
        ];
        let mut h = HeaderMap::new();
        assert_eq!(
            inject(&baggage, "uberctx-", Values::UrlEncoded, &mut h).baggage_drops(),
            [("limit", 1), ("key", 1), ("value", 0)],
            "b does not fit, c is already written"
        );
        assert_eq!(
            h.get("uberctx-c").unwrap(),
            "small",
            "the first value of a key"
        );
        assert!(
            h.get("uberctx-a").is_some()
                && h.get("uberctx-b").is_none()
                && h.get("uberctx-c").is_some()
        );

        let exact = vec![entry("k", &"x".repeat(MAX_BYTES - 2))];
        let mut h = HeaderMap::new();
        assert_eq!(
            inject(&exact, "uberctx-", Values::UrlEncoded, &mut h),
            Injected::default(),
            "exactly at the limit"
        );
        let mut h = HeaderMap::new();
        let camel = vec![
            entry("userId", "1"),
            entry("name", "Amélie"),
            entry("ok", "v"),
        ];
        let r = inject(&camel, "ot-baggage-", Values::Verbatim, &mut h);
        assert_eq!(
            r.baggage_drops(),
            [("limit", 0), ("key", 1), ("value", 1)],
            "an upper-case key is dropped, not lower-cased; a non-ASCII verbatim value too"
        );
        assert_eq!(r.baggage_dropped, 2);
        assert!(h.get("ot-baggage-userid").is_none());
        assert_eq!(h.get("ot-baggage-ok").unwrap(), "v");
    }

    /// Any characters, short enough that ten entries stay under [`MAX_BYTES`] encoded.
    fn any_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn inject_extract_round_trip(items in proptest::collection::btree_map("[a-z0-9_.-]{1,12}", any_text(), 0..10)) {
            let baggage: Baggage = items.iter().map(|(k, v)| entry(k, v)).collect();
            let mut h = HeaderMap::new();
            prop_assert_eq!(inject(&baggage, "uberctx-", Values::UrlEncoded, &mut h), Injected::default());
            let mut back = Baggage::new();
            extract(&h, "uberctx-", Values::UrlEncoded, &mut back);
            back.sort_by(|a, b| a.key.cmp(&b.key));
            prop_assert_eq!(back, baggage);
        }

        #[test]
        fn inject_never_writes_invalid_headers(key in any::<String>(), value in any::<String>()) {
            for values in [Values::UrlEncoded, Values::Verbatim] {
                let mut h = HeaderMap::new();
                let r = inject(&[entry(&key, &value)], "ot-baggage-", values, &mut h);
                prop_assert_eq!(r.baggage_dropped + h.len(), 1);
                prop_assert_eq!(r.baggage_dropped_key + r.baggage_dropped_value, r.baggage_dropped);
                for (name, v) in &h {
                    prop_assert!(name.as_str().starts_with("ot-baggage-"));
                    prop_assert!(v.to_str().is_ok());
                }
            }
        }
    }
}
