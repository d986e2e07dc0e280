//! Why a present trace header was rejected. A closed set: each variant's
//! [`DecodeError::as_str`] is a metric label value.

/// The reason an extractor rejected headers that were present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// A header that must appear once appeared several times (`traceparent`).
    #[error("header repeated")]
    Repeated,
    /// A single-valued header appeared several times with different values.
    #[error("conflicting repeated header")]
    Conflicting,
    /// The value is not valid visible ASCII / UTF-8.
    #[error("invalid characters")]
    Charset,
    /// Wrong structure: separators, field count, trailing data.
    #[error("malformed value")]
    Malformed,
    /// A version field that is unknown or forbidden.
    #[error("unsupported version")]
    Version,
    /// The trace id has the wrong width, case or alphabet.
    #[error("invalid trace id")]
    TraceId,
    /// The span id has the wrong width, case or alphabet.
    #[error("invalid span id")]
    SpanId,
    /// An id is all zeros.
    #[error("all-zero id")]
    ZeroId,
    /// The sampling / flags field has a value outside its set.
    #[error("invalid sampling flags")]
    Sampling,
    /// Base64, percent-encoding or UTF-8 inside a field failed to decode.
    #[error("invalid encoding")]
    Encoding,
    /// A required companion header or field is missing.
    #[error("missing field")]
    Missing,
    /// The value exceeds the format's size limit.
    #[error("value too long")]
    TooLong,
}

impl DecodeError {
    /// Every reason, for pre-registering metric label sets.
    pub const ALL: [DecodeError; 12] = [
        DecodeError::Repeated,
        DecodeError::Conflicting,
        DecodeError::Charset,
        DecodeError::Malformed,
        DecodeError::Version,
        DecodeError::TraceId,
        DecodeError::SpanId,
        DecodeError::ZeroId,
        DecodeError::Sampling,
        DecodeError::Encoding,
        DecodeError::Missing,
        DecodeError::TooLong,
    ];

    /// The metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DecodeError::Repeated => "repeated",
            DecodeError::Conflicting => "conflicting",
            DecodeError::Charset => "charset",
            DecodeError::Malformed => "malformed",
            DecodeError::Version => "version",
            DecodeError::TraceId => "trace_id",
            DecodeError::SpanId => "span_id",
            DecodeError::ZeroId => "zero_id",
            DecodeError::Sampling => "sampling",
            DecodeError::Encoding => "encoding",
            DecodeError::Missing => "missing",
            DecodeError::TooLong => "too_long",
        }
    }
}
