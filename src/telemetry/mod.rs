//! Telemetry: the gateway span (OpenTelemetry SDK), its exporters, metrics, the
//! coverage view and the access log.

pub mod access_log;
pub mod coverage;
pub mod metrics;
pub mod otlp;
pub mod otlp_http;
pub mod pipeline;
pub mod stdout;
pub mod tracer;

pub use metrics::Metrics;
pub use tracer::Telemetry;
