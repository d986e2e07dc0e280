//! Every metric the gateway exports, declared in this one file. Counters end in
//! `_total`; labels come from closed sets (route and upstream names from the config,
//! status classes, failure kinds), never ids or raw paths.

use std::sync::atomic::Ordering;

use super::pipeline::PipelineStats;
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
    /// `tracebridge_config_reloads_total{result}`: `ok` or `error`.
    pub config_reloads: IntCounterVec,
    /// `tracebridge_spans_exported_total`.
    pub spans_exported: IntCounter,
    /// `tracebridge_spans_dropped_total{reason}`: `queue_full`, `export_failed`, `shutdown`.
    pub spans_dropped: IntCounterVec,
    /// `tracebridge_degraded`: 1 while the gateway makes no spans (propagation only).
    pub degraded: IntGauge,
    /// `tracebridge_span_queue_depth`: spans waiting for export.
    pub span_queue_depth: IntGauge,
    /// `tracebridge_access_log_errors_total`: access log lines that could not be written.
    pub access_log_errors: IntCounter,
    /// `tracebridge_downstream_connections`: client connections open now.
    pub downstream_connections: IntGauge,
    /// `tracebridge_downstream_connections_closed_total{reason}`: connections the gateway
    /// closed on a client: `header_timeout`, `idle_timeout`, `evicted`, `over_limit`.
    pub downstream_closed: IntCounterVec,
    /// The per-route coverage view (`GET /coverage`): counters of the same request
    /// path, kept per route name rather than exported to Prometheus.
    pub coverage: Coverage,
    /// `injected` and `extracted` resolved per format once, so the request path does
    /// not hash label values.
    injected_by_format: Vec<IntCounter>,
    extracted_by_format: Vec<IntCounter>,
}

/// The `reason` label values of `tracebridge_downstream_connections_closed_total`.
pub const DOWNSTREAM_CLOSE_REASONS: [&str; 4] =
    ["header_timeout", "idle_timeout", "evicted", "over_limit"];

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
        let config_reloads = counter_vec(
            "tracebridge_config_reloads_total",
            "Config reloads, by result (ok or error: the old config kept serving).",
            &["result"],
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        let spans_exported = IntCounter::new(
            "tracebridge_spans_exported_total",
            "Spans handed to the exporter successfully.",
        )?;
        let spans_dropped = counter_vec(
            "tracebridge_spans_dropped_total",
            "Spans dropped: export queue full, export failed (collector down, 5xx, 429, timeout), shut down.",
            &["reason"],
        )?;
        let degraded = IntGauge::new(
            "tracebridge_degraded",
            "Whether the span pipeline is overloaded and the gateway only propagates context (0 or 1).",
        )?;
        let span_queue_depth = IntGauge::new(
            "tracebridge_span_queue_depth",
            "Spans waiting in the export queue.",
        )?;
        let access_log_errors = IntCounter::new(
            "tracebridge_access_log_errors_total",
            "Access log lines that could not be written (the request is not affected).",
        )?;
        let downstream_connections = IntGauge::new(
            "tracebridge_downstream_connections",
            "Client connections open.",
        )?;
        let downstream_closed = counter_vec(
            "tracebridge_downstream_connections_closed_total",
            "Client connections the gateway closed: header not complete in time (header_timeout), idle keep-alive (idle_timeout), idle and evicted for a new connection at server.max_connections (evicted), refused at server.max_connections with none idle (over_limit).",
            &["reason"],
        )?;
        for reason in DOWNSTREAM_CLOSE_REASONS {
            // Present at zero from the start, so a dashboard sees the series.
            downstream_closed.with_label_values(&[reason]);
        }
        registry.register(Box::new(downstream_connections.clone()))?;
        registry.register(Box::new(downstream_closed.clone()))?;
        for c in [
            &conflicts,
            &baggage_dropped,
            &spans_started,
            &spans_exported,
            &access_log_errors,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(spans_dropped.clone()))?;
        registry.register(Box::new(degraded.clone()))?;
        registry.register(Box::new(span_queue_depth.clone()))?;
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
            config_reloads,
            spans_exported,
            spans_dropped,
            degraded,
            span_queue_depth,
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
            downstream_connections,
            downstream_closed,
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

    /// Copies the span pipeline's own counters into the exported metrics (they are
    /// kept as atomics on the export path and read here, at scrape time).
    pub fn sync_pipeline(&self, stats: &PipelineStats, degraded: bool) {
        let set = |c: &IntCounter, v: u64| {
            c.reset();
            c.inc_by(v);
        };
        set(&self.spans_exported, stats.exported.load(Ordering::Relaxed));
        for (reason, v) in [
            ("queue_full", &stats.dropped_queue_full),
            ("export_failed", &stats.dropped_export_failed),
            ("shutdown", &stats.dropped_shutdown),
        ] {
            set(
                &self.spans_dropped.with_label_values(&[reason]),
                v.load(Ordering::Relaxed),
            );
        }
        self.degraded.set(i64::from(degraded));
        self.span_queue_depth
            .set(stats.depth.load(Ordering::Relaxed) as i64);
    }

    /// Copies the reload counters and the serving generation (kept by the config
    /// handle) into the exported metrics, at scrape time.
    pub fn sync_config(&self, generation: u64, ok: u64, failed: u64) {
        self.config_generation.set(generation as i64);
        for (result, v) in [("ok", ok), ("error", failed)] {
            let c = self.config_reloads.with_label_values(&[result]);
            c.reset();
            c.inc_by(v);
        }
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
