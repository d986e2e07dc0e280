//! Telemetry: the gateway span (OpenTelemetry SDK), its exporters, metrics, the
//! coverage view and the access log.

pub(crate) mod access_log;
pub mod coverage;
pub(crate) mod exporters;
pub(crate) mod labels;
pub mod log_to_trace;
pub(crate) mod metrics;
pub(crate) mod otlp;
pub mod otlp_http;
pub(crate) mod otlp_proto;
pub mod pipeline;
pub(crate) mod request_series;
pub(crate) mod span;
pub(crate) mod stdout;
pub mod tracer;
pub mod zipkin;

pub use metrics::Metrics;
pub use span::{GatewaySpan, Outcome, RequestFacts};
pub use tracer::Telemetry;
