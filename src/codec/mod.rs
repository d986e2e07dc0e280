//! Trace-context codecs: one file per format (STYLE.md §2), the try-order and the
//! dispatch over the closed [`Format`] enum here.
//!
//! Two layers per format: wire ⇄ string (`decode` / `encode`, pure and lossless) and
//! wire ⇄ model (`extract` / `inject` over an `http::HeaderMap`).

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
pub mod eagleeye;
pub mod gcp;
pub mod grpc_trace_bin;
pub mod instana;
pub mod jaeger;
pub mod ottrace;
pub mod skywalking;
pub mod tracecontext;
pub mod xray;

pub use carrier::{
    exactly_one, exactly_one_value, first, header_value, joined, trim_ows, trim_ows_bytes,
    value_str, with_prefix, HeaderSink, Injected,
};
pub use error::DecodeError;
pub use format::{Codec, Format, UnknownFormat};

use http::{HeaderMap, HeaderName};

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
    pub fn extract(self, headers: &HeaderMap) -> Result<Option<TraceContext>, DecodeError> {
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
