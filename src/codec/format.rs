//! The closed set of formats and the trait every format's codec implements.

use std::fmt;
use std::str::FromStr;

use http::HeaderName;

use super::{DecodeError, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, TraceContext};

/// Every trace-context format the gateway reads and writes. The ids returned by
/// [`Format::as_str`] are the ones used in config, CLI, logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// W3C Trace Context: `traceparent`, `tracestate`.
    TraceContext,
    /// W3C Baggage: `baggage`.
    Baggage,
    /// Zipkin B3 single header: `b3`.
    B3,
    /// Zipkin B3 multi headers: `x-b3-*`.
    B3Multi,
    /// Jaeger native: `uber-trace-id`, `uberctx-*`, `jaeger-debug-id`, `jaeger-baggage`.
    Jaeger,
    /// OpenTracing basic tracer: `ot-tracer-*`, `ot-baggage-*`.
    OtTrace,
    /// AWS X-Ray: `x-amzn-trace-id`.
    XRay,
    /// Datadog: `x-datadog-*`.
    Datadog,
    /// Google Cloud Trace: `x-cloud-trace-context`.
    Gcp,
    /// Apache SkyWalking: `sw8`, `sw8-correlation`, `sw8-x`.
    SkyWalking,
    /// Alibaba EagleEye: `eagleeye-*`.
    EagleEye,
    /// OpenCensus binary: `grpc-trace-bin`.
    GrpcTraceBin,
    /// Instana: `x-instana-t`, `x-instana-s`, `x-instana-l`.
    Instana,
}

impl Format {
    /// Every format, in the default extraction precedence (wire-formats §15.1, with
    /// `instana` and `baggage` last).
    pub const ALL: [Format; 13] = [
        Format::TraceContext,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
        Format::SkyWalking,
        Format::Datadog,
        Format::XRay,
        Format::Gcp,
        Format::GrpcTraceBin,
        Format::OtTrace,
        Format::EagleEye,
        Format::Instana,
        Format::Baggage,
    ];

    /// The canonical id.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::TraceContext => "tracecontext",
            Format::Baggage => "baggage",
            Format::B3 => "b3",
            Format::B3Multi => "b3multi",
            Format::Jaeger => "jaeger",
            Format::OtTrace => "ottrace",
            Format::XRay => "xray",
            Format::Datadog => "datadog",
            Format::Gcp => "gcp",
            Format::SkyWalking => "skywalking",
            Format::EagleEye => "eagleeye",
            Format::GrpcTraceBin => "grpc-trace-bin",
            Format::Instana => "instana",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an unknown format id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Accepts the canonical ids and the aliases of PRODUCT.md, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let f = match s.trim().to_ascii_lowercase().as_str() {
            "tracecontext" | "w3c" => Format::TraceContext,
            "baggage" => Format::Baggage,
            "b3" | "b3-single" => Format::B3,
            "b3multi" | "b3-multi" => Format::B3Multi,
            "jaeger" => Format::Jaeger,
            "ottrace" | "ot" => Format::OtTrace,
            "xray" | "aws" => Format::XRay,
            "datadog" => Format::Datadog,
            "gcp" | "cloudtrace" => Format::Gcp,
            "skywalking" | "sw8" => Format::SkyWalking,
            "eagleeye" => Format::EagleEye,
            "grpc-trace-bin" | "opencensus" => Format::GrpcTraceBin,
            "instana" => Format::Instana,
            _ => return Err(UnknownFormat(s.to_string())),
        };
        Ok(f)
    }
}

/// One format's codec: the header-map level (extract / inject) over the format's own
/// string-level `decode` / `encode` functions.
pub trait Codec {
    /// Which format this is.
    const FORMAT: Format;

    /// Every exact header name the format owns, lowercase (stripped when the format is
    /// not re-injected). Return a `static` array: `HeaderName` cannot live in a `const`.
    fn headers() -> &'static [HeaderName];

    /// Header-name prefixes the format owns (`uberctx-`, `ot-baggage-`), lowercase.
    const PREFIXES: &'static [&'static str] = &[];

    /// `Ok(None)` when the format's headers are absent, `Ok(ctx)` when valid,
    /// `Err(reason)` when present but invalid. Never panics, whatever the bytes.
    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError>;

    /// Writes the format's headers for `ctx` continued by `hop` into `out`.
    ///
    /// `ctx.trace_id` is set (mediation never injects without one). A deferred sampling
    /// decision is written as deferred where the format can say so, and as "not
    /// sampled" where it cannot (mediation resolves deferral before that matters).
    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected;
}
