//! Every metric the gateway exports, declared in this one file. Counters end in
//! `_total`; labels come from closed sets (route and upstream names from the config,
//! status classes, failure kinds), never ids or raw paths.

use crate::codec::Format;
use crate::telemetry::coverage::Coverage;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The gateway's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// `tracebridge_requests_total{route,status_class}`.
    pub requests: IntCounterVec,
    /// `tracebridge_request_duration_seconds{route}`.
    pub request_duration: HistogramVec,
    /// `tracebridge_upstream_failures_total{upstream,kind}`.
    pub upstream_failures: IntCounterVec,
    /// `tracebridge_config_generation`.
    pub config_generation: IntGauge,
    /// `tracebridge_propagation_extracted_total{format}`: requests continued from a format.
    pub extracted: IntCounterVec,
    /// `tracebridge_propagation_missing_total{route}`: requests with no usable context.
    pub missing: IntCounterVec,
    /// `tracebridge_propagation_invalid_total{format,reason}`.
    pub invalid: IntCounterVec,
    /// `tracebridge_propagation_injected_total{format}`: outgoing requests per format written.
    pub injected: IntCounterVec,
    /// `tracebridge_propagation_conflicts_total`: other formats carrying another trace.
    pub conflicts: IntCounter,
    /// `tracebridge_propagation_baggage_dropped_total`: entries over a format's limits.
    pub baggage_dropped: IntCounter,
    /// `tracebridge_spans_started_total`: gateway spans started (sampled or not).
    pub spans_started: IntCounter,
    /// `tracebridge_access_log_errors_total`: access log lines that could not be written.
    pub access_log_errors: IntCounter,
    /// The per-route coverage view (`GET /coverage`): counters of the same request
    /// path, kept per route name rather than exported to Prometheus.
    pub coverage: Coverage,
    /// `injected` and `extracted` resolved per format once, so the request path does
    /// not hash label values.
    injected_by_format: Vec<IntCounter>,
    extracted_by_format: Vec<IntCounter>,
}

/// Route label for requests that matched no route.
pub const NO_ROUTE: &str = "none";

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tracebridge_requests_total",
                "Requests handled, by route and status class.",
            ),
            &["route", "status_class"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "tracebridge_request_duration_seconds",
                "Time from the request header to the end of the response, by route.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                "tracebridge_upstream_failures_total",
                "Failed attempts to reach an upstream, by kind (connect, timeout, no_peer, other).",
            ),
            &["upstream", "kind"],
        )?;
        let config_generation = IntGauge::new(
            "tracebridge_config_generation",
            "Generation number of the config in use.",
        )?;
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let extracted = counter_vec(
            "tracebridge_propagation_extracted_total",
            "Requests whose trace was continued from this format.",
            &["format"],
        )?;
        let missing = counter_vec(
            "tracebridge_propagation_missing_total",
            "Requests that arrived without a usable trace context (blind spots).",
            &["route"],
        )?;
        let invalid = counter_vec(
            "tracebridge_propagation_invalid_total",
            "Trace headers present but invalid, treated as absent.",
            &["format", "reason"],
        )?;
        let injected = counter_vec(
            "tracebridge_propagation_injected_total",
            "Outgoing requests that carried this format.",
            &["format"],
        )?;
        let conflicts = IntCounter::new(
            "tracebridge_propagation_conflicts_total",
            "Valid contexts of another format carrying a different trace (kept as span links).",
        )?;
        let baggage_dropped = IntCounter::new(
            "tracebridge_propagation_baggage_dropped_total",
            "Baggage entries left out because a format's size limits were reached.",
        )?;
        let spans_started = IntCounter::new(
            "tracebridge_spans_started_total",
            "Gateway spans started, sampled or not.",
        )?;
        for c in [&extracted, &missing, &invalid, &injected] {
            registry.register(Box::new(c.clone()))?;
        }
        let access_log_errors = IntCounter::new(
            "tracebridge_access_log_errors_total",
            "Access log lines that could not be written (the request is not affected).",
        )?;
        for c in [
            &conflicts,
            &baggage_dropped,
            &spans_started,
            &access_log_errors,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(upstream_failures.clone()))?;
        registry.register(Box::new(config_generation.clone()))?;
        let per_format = |vec: &IntCounterVec| {
            let mut by_index: Vec<(usize, IntCounter)> = Format::ALL
                .iter()
                .map(|f| (f.index(), vec.with_label_values(&[f.as_str()])))
                .collect();
            by_index.sort_by_key(|(i, _)| *i);
            by_index.into_iter().map(|(_, c)| c).collect::<Vec<_>>()
        };
        let injected_by_format = per_format(&injected);
        let extracted_by_format = per_format(&extracted);
        Ok(Metrics {
            injected_by_format,
            extracted_by_format,
            registry,
            requests,
            request_duration,
            upstream_failures,
            config_generation,
            extracted,
            missing,
            invalid,
            injected,
            conflicts,
            baggage_dropped,
            spans_started,
            access_log_errors,
            coverage: Coverage::new(),
        })
    }

    /// `tracebridge_propagation_injected_total{format}` for `f`.
    pub fn injected_for(&self, f: Format) -> &IntCounter {
        &self.injected_by_format[f.index()]
    }

    /// `tracebridge_propagation_extracted_total{format}` for `f`.
    pub fn extracted_for(&self, f: Format) -> &IntCounter {
        &self.extracted_by_format[f.index()]
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric data, which registration
        // already rejects; an empty page is the fallback.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        out
    }
}

/// `1xx` … `5xx`, or `other` for anything outside 100..=599 (0 = no response sent).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}
