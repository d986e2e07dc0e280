//! W3C Baggage: `baggage` (wire-formats §3; [W3C-BAG] <https://www.w3.org/TR/baggage/>,
//! `w3c/baggage` `baggage/HTTP_HEADER_FORMAT.md`).
//!
//! ```text
//! baggage-string = list-member 0*179( OWS "," OWS list-member )
//! list-member    = key OWS "=" OWS value *( OWS ";" OWS property )
//! property       = key OWS "=" OWS value / key OWS
//! key            = token                    ; RFC 9110 tchar, case-sensitive
//! value          = *baggage-octet           ; may be empty; percent-encoded UTF-8
//! baggage-octet  = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
//! ```
//!
//! Choices where the spec leaves room:
//! * Repeated `baggage` fields are one list, combined in order.
//! * An invalid member (bad key, a value with SP / DQUOTE / `\` / CTL / non-ASCII, a bad
//!   property, no `=`) is dropped on its own; the others are kept (the spec allows dropping the
//!   member or the whole header). Bytes are checked directly, so a field that is not visible ASCII
//!   loses only its bad members. Empty members (`a=1,,b=2`, a trailing `,`) are skipped silently.
//! * A header whose members are all invalid is `Err(Malformed)` (present but unusable); a
//!   header with no member at all (empty, only OWS or commas) counts as absent (`Ok(None)`).
//! * The value is split from the key on the first `=` (`k=a=b` is `a=b`), percent-decoded
//!   (invalid UTF-8 becomes U+FFFD). Properties stay percent-encoded, as received, in
//!   [`BaggageEntry::properties`] without the leading `;`; only OWS around `;` and `=` is removed
//!   (`p1;k=v`), and empty properties (a trailing `;`) are dropped.
//! * At most 180 members (the ABNF's cap) are read; later ones are ignored.
//! * Inject writes members in order while the result stays within 64 members and 8192 bytes;
//!   a member that does not fit is dropped whole and counted, and later smaller members may
//!   still fit. Entries whose key is not a token are dropped and counted too; properties that
//!   are not valid are left off the member. `baggage` is written even when `ctx.trace_id` is
//!   `None` (baggage is independent of the trace), never as an empty header.
//! * Extract returns a context with `trace_id: None` and deferred sampling: baggage alone
//!   carries no trace.

use http::HeaderName;

use super::text::{is_baggage_octet, is_tchar};
use super::{text, trim_ows_bytes, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Baggage, BaggageEntry, Hop, TraceContext};

const BAGGAGE_NAME: &str = "baggage";

/// `baggage`.
pub static BAGGAGE: HeaderName = HeaderName::from_static(BAGGAGE_NAME);
static HEADERS: [HeaderName; 1] = [HeaderName::from_static(BAGGAGE_NAME)];

/// Members a sender must propagate at least; inject sends no more.
pub const MAX_MEMBERS: usize = 64;
/// Bytes a sender must propagate at least; inject sends no more.
pub const MAX_BYTES: usize = 8192;
/// Members read from one header (the ABNF allows 180).
const MAX_PARSED: usize = 180;

/// Parses a `baggage` value: the valid members in order. `Err(Malformed)` when there is at least
/// one member and none is valid.
pub fn decode(s: &str) -> Result<Baggage, DecodeError> {
    decode_fields(std::iter::once(s.as_bytes()))
}

/// Formats entries as a `baggage` value within the W3C limits (see [`encode_members`]).
pub fn encode(entries: &[BaggageEntry]) -> String {
    encode_members(entries).0
}

/// Formats entries as a `baggage` value within [`MAX_MEMBERS`] and [`MAX_BYTES`], returning
/// the value and how many entries were left out (limits, or a key that is not a token).
///
/// The value is written straight into a string sized for every entry (values
/// percent-encoded in place), which is its exact length unless something is left out or
/// properties lose OWS: the common case becomes a header value without a copy.
pub fn encode_members(entries: &[BaggageEntry]) -> (String, usize) {
    let (value, dropped) = encode_bytes(entries);
    (text::into_string(value), dropped)
}

/// [`encode_members`] as bytes.
fn encode_bytes(entries: &[BaggageEntry]) -> (Vec<u8>, usize) {
    let value_len = |e: &BaggageEntry| text::percent_encoded_len(&e.value, &text::BAGGAGE_ESCAPES);
    let props_len = |e: &BaggageEntry| match e.properties.len() {
        0 => 0,
        n => 1 + n,
    };
    let total = entries
        .iter()
        .map(|e| e.key.len() + 1 + value_len(e) + props_len(e) + 1)
        .sum::<usize>()
        .saturating_sub(1);
    // When every entry fits (normalised properties never grow), no limit can leave one
    // out and the per-entry size check is skipped.
    let all_fit = entries.len() <= MAX_MEMBERS && total <= MAX_BYTES;
    let mut out = Vec::with_capacity(total.min(MAX_BYTES));
    let (mut kept, mut dropped) = (0, 0);
    for e in entries {
        if kept == MAX_MEMBERS || !is_token(e.key.as_bytes()) {
            dropped += 1;
            continue;
        }
        let properties = if e.properties.is_empty() {
            String::new()
        } else {
            normalize_properties(e.properties.as_bytes()).unwrap_or_default()
        };
        let sep = usize::from(kept > 0);
        if !all_fit {
            let props_len = if properties.is_empty() {
                0
            } else {
                1 + properties.len()
            };
            let len = e.key.len() + 1 + value_len(e) + props_len;
            if out.len() + sep + len > MAX_BYTES {
                dropped += 1;
                continue;
            }
        }
        if sep == 1 {
            out.push(b',');
        }
        out.extend_from_slice(e.key.as_bytes());
        out.push(b'=');
        text::push_percent_encoded(&mut out, &e.value, &text::BAGGAGE_ESCAPES);
        if !properties.is_empty() {
            out.push(b';');
            out.extend_from_slice(properties.as_bytes());
        }
        kept += 1;
    }
    (out, dropped)
}

/// Parses the fields of a (possibly repeated) `baggage` header as one list.
fn decode_fields<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Result<Baggage, DecodeError> {
    let mut out = Baggage::new();
    let mut invalid = false;
    for field in fields {
        for member in field.split(|&b| b == b',') {
            let member = trim_ows_bytes(member);
            if member.is_empty() {
                continue;
            }
            match parse_member(member) {
                Some(entry) if out.len() < MAX_PARSED => out.push(entry),
                Some(_) => {}
                None => invalid = true,
            }
        }
    }
    if out.is_empty() && invalid {
        return Err(DecodeError::Malformed);
    }
    Ok(out)
}

/// One trimmed, non-empty member; `None` when invalid.
fn parse_member(member: &[u8]) -> Option<BaggageEntry> {
    let (pair, properties) = match member.iter().position(|&b| b == b';') {
        Some(i) => (
            member.get(..i)?,
            normalize_properties(member.get(i + 1..)?)?,
        ),
        None => (member, String::new()),
    };
    let eq = pair.iter().position(|&b| b == b'=')?;
    let key = trim_ows_bytes(pair.get(..eq)?);
    let value = trim_ows_bytes(pair.get(eq + 1..)?);
    if !is_token(key) || !value.iter().all(|&b| is_baggage_octet(b)) {
        return None;
    }
    Some(BaggageEntry {
        key: ascii(key)?.to_owned(),
        value: text::percent_decode(ascii(value)?),
        properties,
    })
}

/// Properties (the text after the value's `;`) with OWS removed; `None` when one is invalid.
fn normalize_properties(props: &[u8]) -> Option<String> {
    let mut out = String::new();
    for prop in props.split(|&b| b == b';') {
        let prop = trim_ows_bytes(prop);
        if prop.is_empty() {
            continue;
        }
        let (key, value) = match prop.iter().position(|&b| b == b'=') {
            Some(i) => (
                trim_ows_bytes(prop.get(..i)?),
                Some(trim_ows_bytes(prop.get(i + 1..)?)),
            ),
            None => (prop, None),
        };
        if !is_token(key) {
            return None;
        }
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(ascii(key)?);
        if let Some(value) = value {
            if !value.iter().all(|&b| is_baggage_octet(b)) {
                return None;
            }
            out.push('=');
            out.push_str(ascii(value)?);
        }
    }
    Some(out)
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_tchar(c))
}

/// Bytes already checked to be ASCII as text.
fn ascii(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

/// The W3C Baggage codec.
pub struct BaggageCodec;

impl Codec for BaggageCodec {
    const FORMAT: Format = Format::Baggage;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let baggage = decode_fields(headers.values(&BAGGAGE))?;
        if baggage.is_empty() {
            return Ok(None);
        }
        Ok(Some(TraceContext {
            baggage,
            ..TraceContext::default()
        }))
    }

    fn inject(ctx: &TraceContext, _hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        if ctx.baggage.is_empty() {
            return Injected::default();
        }
        let (value, baggage_dropped) = encode_bytes(&ctx.baggage);
        if !value.is_empty() {
            out.set_vec(&BAGGAGE, value);
        }
        // A key that is not a token (from `sw8-correlation` or `EagleEye-UserData`, which
        // allow any text) is dropped whatever the limits: reason `key`, not `limit`.
        let baggage_dropped_key = if baggage_dropped == 0 {
            0
        } else {
            let bad_keys = ctx.baggage.iter().filter(|e| !is_token(e.key.as_bytes()));
            bad_keys.count()
        };
        Injected {
            baggage_dropped,
            baggage_dropped_key,
            ..Injected::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{self, hop, map, raw_map, run, Case};
    use http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    /// Extracts from one `baggage` field per element.
    fn extract(fields: &[&str]) -> Result<Option<TraceContext>, DecodeError> {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|f| (BAGGAGE_NAME, *f)).collect();
        BaggageCodec::extract(&map(&pairs))
    }

    fn entry(k: &str, v: &str, p: &str) -> BaggageEntry {
        BaggageEntry {
            key: k.into(),
            value: v.into(),
            properties: p.into(),
        }
    }

    /// Every `w3c-baggage-*` vector of tests/data/vectors.json (keys and values in order),
    /// and the properties it does not write down: each entry's, in order.
    #[test]
    fn vectors() {
        let properties: &[(&str, &[&str])] = &[
            (
                "w3c-baggage-004",
                &["property1;property2", "", "propertyKey=propertyValue"],
            ),
            ("w3c-baggage-005", &["SomeProp", "ValueProp=PropVal"]),
            ("w3c-baggage-006", &["SomeProp", "ValueProp=PropVal"]),
        ];
        let cases: Vec<Case<&[&str]>> = testutil::vectors("w3c-baggage")
            .into_iter()
            .map(|c| {
                let props = properties.iter().find(|(id, _)| *id == c.id);
                c.with_native(props.map_or(&[][..], |(_, p)| *p))
            })
            .collect();
        run(&cases, BaggageCodec::extract, |props, ctx| {
            let got: Vec<&str> = ctx.baggage.iter().map(|e| e.properties.as_str()).collect();
            if props.is_empty() {
                assert!(got.iter().all(|p| p.is_empty()), "{got:?}");
            } else {
                assert_eq!(got, *props);
            }
        });
    }

    #[test]
    fn edge_cases() {
        // (input, kept keys; None = Err(Malformed)), with the reason.
        let rows: &[(&str, Option<&[&str]>, &str)] = &[
            (
                "a=1,b c=2,d=3",
                Some(&["a", "d"]),
                "a key with a space is dropped alone",
            ),
            (
                "a=x y,b=2",
                Some(&["b"]),
                "a value with a space is dropped alone",
            ),
            ("a=\"q\",b=2", Some(&["b"]), "DQUOTE is not a baggage-octet"),
            (
                "a=x\\y,b=2",
                Some(&["b"]),
                "backslash is not a baggage-octet",
            ),
            ("a,b=2", Some(&["b"]), "a member without '=' is invalid"),
            ("=1,b=2", Some(&["b"]), "empty key"),
            (
                "a=1;p q,b=2",
                Some(&["b"]),
                "an invalid property invalidates its member",
            ),
            (
                "a=1;p=x y,b=2",
                Some(&["b"]),
                "an invalid property value invalidates its member",
            ),
            ("a=,b=", Some(&["a", "b"]), "empty values are valid"),
            ("a=1,,b=2,", Some(&["a", "b"]), "empty members are skipped"),
            (
                "Key=1,key=2",
                Some(&["Key", "key"]),
                "keys are case-sensitive",
            ),
            ("a=1;", Some(&["a"]), "a trailing ';' is dropped"),
            ("foo", None, "nothing valid"),
            ("a b=1, =2", None, "nothing valid"),
        ];
        for (input, keys, why) in rows {
            let got = decode(input).map(|b| b.into_iter().map(|e| e.key).collect::<Vec<_>>());
            let want = keys
                .map(|k| k.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .ok_or(DecodeError::Malformed);
            assert_eq!(got, want, "{input:?}: {why}");
        }
        assert_eq!(
            extract(&["foo"]),
            Err(DecodeError::Malformed),
            "all invalid"
        );
        assert_eq!(extract(&[""]), Ok(None), "empty header counts as absent");
        assert_eq!(extract(&[" , ", ""]), Ok(None), "only separators");
        assert_eq!(BaggageCodec::extract(&HeaderMap::new()), Ok(None));
        assert_eq!(
            decode("k=%zz%C3").unwrap()[0].value,
            "%zz\u{fffd}",
            "bad escapes kept, bad UTF-8 replaced"
        );
        // A field with non-ASCII loses only its bad members.
        let mut h = HeaderMap::new();
        h.append(
            &BAGGAGE,
            HeaderValue::from_bytes(b"a=\xc3\xa9,b=2").unwrap(),
        );
        let ctx = BaggageCodec::extract(&h).unwrap().unwrap();
        assert_eq!(ctx.baggage, vec![entry("b", "2", "")]);
        let many = (0..200)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(decode(&many).unwrap().len(), MAX_PARSED);
    }

    #[test]
    fn inject_encodes_and_counts() {
        let ctx = TraceContext {
            baggage: vec![
                entry("userId", "Amélie", ""),
                entry("bad key", "x", ""),
                entry("k", "a,b;c d\"e\\f%g", "p1;q=1"),
                entry("p", "v", "bad prop"),
            ],
            ..TraceContext::default()
        };
        let mut out = HeaderMap::new();
        let injected = BaggageCodec::inject(&ctx, &hop(), &mut out);
        assert_eq!(injected.baggage_dropped, 1);
        assert_eq!(
            injected.baggage_drops(),
            [("limit", 0), ("key", 1), ("value", 0)],
            "`bad key` is not a token"
        );
        assert_eq!(
            out[&BAGGAGE],
            "userId=Am%C3%A9lie,k=a%2Cb%3Bc%20d%22e%5Cf%25g;p1;q=1,p=v"
        );
        // Written without a trace id; nothing written for no baggage.
        assert!(ctx.trace_id.is_none());
        let mut out = HeaderMap::new();
        assert_eq!(
            BaggageCodec::inject(&TraceContext::default(), &hop(), &mut out),
            Injected::default()
        );
        assert!(out.is_empty());
        // w3c-baggage-007: the reference implementation's own encoding is reproduced.
        let (s, _) = encode_members(&[entry("SomeKey", "\t \"';=asdf!@#$%^&*()", "")]);
        assert_eq!(decode(&s).unwrap()[0].value, "\t \"';=asdf!@#$%^&*()");
    }

    #[test]
    fn inject_limits() {
        let many: Baggage = (0..70).map(|i| entry(&format!("k{i}"), "v", "")).collect();
        let (s, dropped) = encode_members(&many);
        assert_eq!((decode(&s).unwrap().len(), dropped), (64, 6));
        // Bytes: a member that would cross 8192 is dropped whole; a later small one still fits.
        let big = "x".repeat(5000);
        let list = vec![
            entry("a", &big, ""),
            entry("b", &big, ""),
            entry("c", "1", ""),
        ];
        let (s, dropped) = encode_members(&list);
        assert!(s.len() <= MAX_BYTES);
        assert_eq!(dropped, 1);
        let keys: Vec<String> = decode(&s).unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["a", "c"]);
        let mut out = HeaderMap::new();
        let ctx = TraceContext {
            baggage: list,
            ..TraceContext::default()
        };
        assert_eq!(
            BaggageCodec::inject(&ctx, &hop(), &mut out).baggage_dropped,
            1
        );
        // Exactly 8192 bytes is allowed.
        let exact = vec![entry("k", &"y".repeat(MAX_BYTES - 2), "")];
        assert_eq!(encode_members(&exact).1, 0);
        let over = vec![entry("k", &"y".repeat(MAX_BYTES - 1), "")];
        assert_eq!(encode_members(&over), (String::new(), 1));
        let mut out = HeaderMap::new();
        let ctx = TraceContext {
            baggage: over,
            ..TraceContext::default()
        };
        assert_eq!(
            BaggageCodec::inject(&ctx, &hop(), &mut out).baggage_dropped,
            1
        );
        assert!(out.is_empty(), "never an empty header");
    }

    fn arb_entry() -> impl Strategy<Value = BaggageEntry> {
        let key = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}";
        let props = prop::option::of("[a-z]{1,5}(=[a-z%0-9]{0,5})?(;[A-Z]{1,3})?");
        (key, any::<String>(), props).prop_map(|(key, value, props)| BaggageEntry {
            key,
            value,
            properties: props.unwrap_or_default(),
        })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(list in prop::collection::vec(arb_entry(), 0..20)) {
            let (s, dropped) = encode_members(&list);
            prop_assume!(dropped == 0);
            prop_assert_eq!(decode(&s), Ok(list));
        }

        #[test]
        fn inject_extract_round_trip(list in prop::collection::vec(arb_entry(), 1..80)) {
            let ctx = TraceContext { baggage: list.clone(), ..TraceContext::default() };
            let mut out = HeaderMap::new();
            let injected = BaggageCodec::inject(&ctx, &hop(), &mut out);
            let back = BaggageCodec::extract(&out).unwrap().unwrap_or_default();
            prop_assert!(out.get(&BAGGAGE).map_or(0, |v| v.len()) <= MAX_BYTES);
            prop_assert!(back.baggage.len() <= MAX_MEMBERS);
            prop_assert_eq!(back.baggage.len() + injected.baggage_dropped, list.len());
            prop_assert!(back.baggage.iter().all(|e| list.contains(e)));
        }

        #[test]
        fn decode_never_panics(s in "\\PC*") {
            let _ = decode(&s);
        }

        #[test]
        fn extract_never_panics(fields in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..3)) {
            let _ = BaggageCodec::extract(&raw_map(fields.iter().map(|f| (&BAGGAGE, f))));
        }
    }
}
