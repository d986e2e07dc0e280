//! Telemetry: metrics now; spans, exporters and the access log plug in here.

pub mod metrics;

pub use metrics::Metrics;
