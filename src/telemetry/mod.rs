//! Telemetry: the gateway span (OpenTelemetry SDK), its exporters, metrics and the
//! coverage view.

pub mod coverage;
pub mod metrics;
pub mod stdout;
pub mod tracer;

pub use metrics::Metrics;
pub use tracer::Telemetry;
