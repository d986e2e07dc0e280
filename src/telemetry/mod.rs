//! Telemetry: the gateway span (OpenTelemetry SDK), its exporters, metrics, the
//! coverage view and the access log.

pub mod access_log;
pub mod coverage;
pub mod exporters;
pub mod labels;
pub mod metrics;
pub mod otlp;
pub mod otlp_http;
pub mod otlp_proto;
pub mod pipeline;
pub mod span;
pub mod stdout;
pub mod tracer;

pub use metrics::Metrics;
pub use span::{GatewaySpan, Outcome, RequestFacts};
pub use tracer::Telemetry;
