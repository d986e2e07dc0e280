//! Trace-context codecs: one file per format (STYLE.md §2), the try-order and the
//! dispatch over the closed [`Format`] enum here.
//!
//! Two layers per format: wire ⇄ string (`decode` / `encode`, pure and lossless) and
//! wire ⇄ model (`extract` / `inject` over an `http::HeaderMap`).

mod b3_state;
mod carrier;
mod error;
mod format;
mod item_baggage;
pub mod text;

#[cfg(test)]
pub(crate) mod testutil;

pub mod b3;
pub mod b3multi;
pub mod baggage;
pub mod datadog;
pub mod dd_member;
pub mod eagleeye;
pub mod gcp;
pub mod grpc_trace_bin;
pub mod instana;
pub mod jaeger;
pub mod ot_member;
pub mod ottrace;
pub mod skywalking;
pub mod tracecontext;
pub mod xray;

pub use carrier::{
    exactly_one, exactly_one_value, first, header_value, is_field_value, joined, trim_ows,
    trim_ows_bytes, value_str, HeaderSink, HeaderSource, Injected,
};
pub use error::DecodeError;
pub use format::{Codec, Format, UnknownFormat};

use std::sync::OnceLock;

use http::HeaderName;

use crate::model::{Hop, TraceContext};

/// Expands `$body` once per format with `$codec` bound to that format's codec type.
macro_rules! dispatch {
    ($format:expr, $codec:ident => $body:expr) => {
        match $format {
            Format::TraceContext => {
                type $codec = tracecontext::TraceContextCodec;
                $body
            }
            Format::Baggage => {
                type $codec = baggage::BaggageCodec;
                $body
            }
            Format::B3 => {
                type $codec = b3::B3Codec;
                $body
            }
            Format::B3Multi => {
                type $codec = b3multi::B3MultiCodec;
                $body
            }
            Format::Jaeger => {
                type $codec = jaeger::JaegerCodec;
                $body
            }
            Format::OtTrace => {
                type $codec = ottrace::OtTraceCodec;
                $body
            }
            Format::XRay => {
                type $codec = xray::XRayCodec;
                $body
            }
            Format::Datadog => {
                type $codec = datadog::DatadogCodec;
                $body
            }
            Format::Gcp => {
                type $codec = gcp::GcpCodec;
                $body
            }
            Format::SkyWalking => {
                type $codec = skywalking::SkyWalkingCodec;
                $body
            }
            Format::EagleEye => {
                type $codec = eagleeye::EagleEyeCodec;
                $body
            }
            Format::GrpcTraceBin => {
                type $codec = grpc_trace_bin::GrpcTraceBinCodec;
                $body
            }
            Format::Instana => {
                type $codec = instana::InstanaCodec;
                $body
            }
        }
    };
}

impl Format {
    /// See [`Codec::extract`].
    pub fn extract(self, headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        dispatch!(self, C => C::extract(headers))
    }

    /// See [`Codec::inject`].
    pub fn inject(self, ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        dispatch!(self, C => C::inject(ctx, hop, out))
    }

    /// See [`Codec::headers`].
    pub fn headers(self) -> &'static [HeaderName] {
        dispatch!(self, C => C::headers())
    }

    /// See [`Codec::PREFIXES`].
    pub fn prefixes(self) -> &'static [&'static str] {
        dispatch!(self, C => C::PREFIXES)
    }
}

impl Format {
    /// Number of formats.
    pub const COUNT: usize = Format::ALL.len();

    /// A dense index in `0..COUNT` (declaration order), for per-format tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A set of formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatSet(u16);

impl FormatSet {
    /// Adds `f`.
    pub fn insert(&mut self, f: Format) {
        self.0 |= 1 << f.index();
    }

    /// True when `f` is in the set.
    pub fn contains(self, f: Format) -> bool {
        self.0 & (1 << f.index()) != 0
    }

    /// True when no format is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The formats in the set, in the default precedence order ([`Format::ALL`]).
    pub fn iter(self) -> impl Iterator<Item = Format> {
        Format::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// Distinct formats in order, held inline: the formats one request injects, without an
/// allocation per request. At most one of each format, so [`Format::ALL`] bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatList {
    len: u8,
    items: [Format; Format::ALL.len()],
}

impl Default for FormatList {
    fn default() -> Self {
        FormatList {
            len: 0,
            items: Format::ALL,
        }
    }
}

impl FormatList {
    /// Appends `f` unless it is already in the list.
    pub fn push(&mut self, f: Format) {
        if !self.contains(&f) {
            // Distinct formats never outnumber `Format::ALL`, the array's length.
            self.items[usize::from(self.len)] = f;
            self.len += 1;
        }
    }
}

impl std::ops::Deref for FormatList {
    type Target = [Format];

    fn deref(&self) -> &[Format] {
        &self.items[..usize::from(self.len)]
    }
}

impl<'a> IntoIterator for &'a FormatList {
    type Item = &'a Format;
    type IntoIter = std::slice::Iter<'a, Format>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<&[Format]> for FormatList {
    fn from(formats: &[Format]) -> Self {
        let mut list = FormatList::default();
        for &f in formats {
            list.push(f);
        }
        list
    }
}

/// Which formats have at least one of their headers in `headers`, in one pass over the
/// fields (names in any case): extraction and stripping then touch only those formats, instead of looking up
/// every known header name of all 13 formats on every request.
pub fn present(headers: &impl HeaderSource) -> FormatSet {
    struct Owners {
        /// Every owned header name and its format, by the name's length: a name is
        /// compared with the two or three of its length instead of hashed.
        by_len: Vec<Vec<(&'static str, Format)>>,
        /// First bytes of every owned name and prefix: most ordinary headers (`host`,
        /// `accept`, `cookie`, `content-*`) are rejected on their first byte.
        first: [bool; 256],
    }
    static OWNERS: OnceLock<Owners> = OnceLock::new();
    let owners = OWNERS.get_or_init(|| {
        let mut by_len: Vec<Vec<(&'static str, Format)>> = Vec::new();
        let mut first = [false; 256];
        for f in Format::ALL {
            for name in f.headers() {
                let text = name.as_str();
                if by_len.len() <= text.len() {
                    by_len.resize_with(text.len() + 1, Vec::new);
                }
                by_len[text.len()].push((text, f));
                first[usize::from(text.as_bytes()[0])] = true;
            }
            for prefix in f.prefixes() {
                first[usize::from(prefix.as_bytes()[0])] = true;
            }
        }
        Owners { by_len, first }
    });
    let mut set = FormatSet::default();
    for (name, _) in headers.fields() {
        let Some(&first) = name.first() else {
            continue;
        };
        if !owners.first[usize::from(first.to_ascii_lowercase())] {
            continue;
        }
        let mut owned = owners.by_len.get(name.len()).into_iter().flatten();
        if let Some((_, f)) = owned.find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)) {
            set.insert(*f);
        } else {
            for f in Format::ALL {
                if f.prefixes()
                    .iter()
                    .any(|p| starts_with_ignore_case(name, p))
                {
                    set.insert(f);
                }
            }
        }
    }
    set
}

/// Whether the header name `name` (any case) starts with `prefix` (lowercase).
pub fn starts_with_ignore_case(name: &[u8], prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::testutil::{self, run};
    use super::*;
    use http::HeaderMap;

    /// The B3 precedence of mediation over the two B3 codecs: `b3` first, `x-b3-*` when `b3`
    /// gave no context; an invalid vector is reported invalid by at least one of them.
    fn b3_then_multi(h: &HeaderMap) -> Result<Option<TraceContext>, DecodeError> {
        match (Format::B3.extract(h), Format::B3Multi.extract(h)) {
            (Ok(Some(single)), _) => Ok(Some(single)),
            (_, Ok(Some(multi))) => Ok(Some(multi)),
            (_, Err(e)) | (Err(e), _) => Err(e),
            (Ok(None), Ok(None)) => Ok(None),
        }
    }

    #[test]
    fn a_format_list_keeps_order_drops_repeats_and_holds_every_format() {
        let mut list = FormatList::from(&[Format::Jaeger, Format::B3, Format::Jaeger][..]);
        list.push(Format::TraceContext);
        list.push(Format::B3);
        assert_eq!(&*list, [Format::Jaeger, Format::B3, Format::TraceContext]);
        let mut all = FormatList::default();
        for f in Format::ALL.into_iter().chain(Format::ALL) {
            all.push(f);
        }
        assert_eq!(&*all, Format::ALL);
    }

    /// Every `b3-*` vector of tests/data/vectors.json, through both B3 codecs.
    #[test]
    fn b3_vectors() {
        run(&testutil::vectors("b3"), b3_then_multi, |_, _| {});
    }

    #[test]
    fn b3_019_is_resolved_by_precedence_not_by_either_codec() {
        let mut cases = testutil::vectors("b3");
        let h = &testutil::case_mut(&mut cases, "b3-019").headers;
        assert_eq!(
            Format::B3.extract(h),
            Err(DecodeError::Malformed),
            "trailing dash"
        );
        assert!(matches!(Format::B3Multi.extract(h), Ok(Some(_))));
    }

    #[test]
    fn every_owned_header_and_prefix_is_detected() {
        for f in Format::ALL {
            for name in f.headers() {
                let mut h = HeaderMap::new();
                h.insert(name.clone(), http::HeaderValue::from_static("x"));
                assert!(present(&h).contains(f), "{name} → {f}");
            }
            for prefix in f.prefixes() {
                let mut h = HeaderMap::new();
                let name = HeaderName::from_bytes(format!("{prefix}key").as_bytes()).unwrap();
                h.insert(name, http::HeaderValue::from_static("x"));
                assert!(present(&h).contains(f), "{prefix}* → {f}");
            }
        }
        let mut h = HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("x"));
        assert!(present(&h).is_empty());
    }
}
