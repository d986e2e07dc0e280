//! Telemetry: the gateway span (OpenTelemetry SDK), its exporters, and metrics.

pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod stdout;
pub mod tracer;

pub use metrics::Metrics;
pub use tracer::Telemetry;
