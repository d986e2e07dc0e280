//! Every metric the gateway exports, declared in this one file. Counters end in
//! `_total`; labels come from closed sets (route and upstream names from the config,
//! status classes, failure kinds), never ids or raw paths.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::pipeline::PipelineStats;
use super::request_series::{Collect, Family, RequestSeries};
use crate::codec::Format;
use crate::telemetry::coverage::{Coverage, Observation};
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets of both duration histograms: 0.5 ms to 10 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The gateway's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// Tells this registry's series apart in the per-thread cache of [`Self::observe_request`].
    id: u64,
    /// `tracebridge_requests_total{route,status_class}`,
    /// `tracebridge_request_duration_seconds{route}` and
    /// `tracebridge_upstream_request_duration_seconds{upstream,status_class}` (from the
    /// first attempt to reach an upstream to the end of the response), kept per thread.
    requests: Arc<RequestSeries>,
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
    /// `tracebridge_propagation_baggage_dropped_total{format,reason}`: entries a format
    /// left out (`limit`: its size limits; `key` / `value`: it cannot carry them).
    pub baggage_dropped: IntCounterVec,
    /// `tracebridge_propagation_budget_dropped_total{reason}`: baggage members left out
    /// of a request to keep its injected trace headers within `max_injected_bytes`
    /// (`bytes`) or `max_injected_headers` (`headers`).
    pub budget_dropped: IntCounterVec,
    /// `tracebridge_observe_would_inject_total{route,format}`: requests on observe-mode
    /// routes that mediate mode would have written this format into.
    pub would_inject: IntCounterVec,
    /// `tracebridge_observe_would_strip_total{route,format}`: requests on observe-mode
    /// routes whose headers of this format mediate mode would have removed.
    pub would_strip: IntCounterVec,
    /// `tracebridge_sampling_ot_invalid_total{reason}`: incoming `tracestate` `ot`
    /// members dropped as invalid (`malformed`, `repeated`, `too_long`, `threshold`,
    /// `randomness`).
    pub ot_invalid: IntCounterVec,
    /// `tracebridge_propagation_baggage_filtered_total{reason}`: incoming baggage
    /// members a route let not through (`restart`: `restart_baggage = "drop"`;
    /// `not_allowed`: outside `baggage_allow`; `denied`: in `baggage_deny`).
    pub baggage_filtered: IntCounterVec,
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
    /// `tracebridge_exporter_spans_exported_total{exporter}`: per exporter.
    pub exporter_exported: IntCounterVec,
    /// `tracebridge_exporter_spans_dropped_total{exporter,reason}`: per exporter, the
    /// reasons of `tracebridge_spans_dropped_total`.
    pub exporter_dropped: IntCounterVec,
    /// `tracebridge_exporter_queue_depth{exporter}`: spans waiting in its queue.
    pub exporter_queue_depth: IntGaugeVec,
    /// `tracebridge_access_log_errors_total`: access log lines that could not be written.
    pub access_log_errors: IntCounter,
    /// `tracebridge_build_info{version}`: always 1; the labels say what runs.
    pub build_info: IntGaugeVec,
    /// `tracebridge_requests_in_flight`: requests read and not yet finished.
    pub requests_in_flight: IntGauge,
    /// `tracebridge_upstream_peers{upstream}`: peers of each upstream of the serving config.
    pub upstream_peers: IntGaugeVec,
    /// `tracebridge_upstream_peers_healthy{upstream}`: of those, the ones requests go to.
    pub upstream_peers_healthy: IntGaugeVec,
    /// `tracebridge_config_last_reload_successful`: 0 while the newest reload attempt
    /// was rejected (the previous config keeps serving), else 1.
    pub config_last_reload_successful: IntGauge,
    /// `tracebridge_config_last_reload_success_timestamp_seconds`: when the serving
    /// config was loaded (Unix time).
    pub config_last_reload_success_timestamp: Gauge,
    /// `tracebridge_downstream_connections`: client connections open now.
    pub downstream_connections: IntGauge,
    /// `tracebridge_downstream_connections_closed_total{reason}`: connections the gateway
    /// closed on a client: `header_timeout`, `idle_timeout`, `evicted`, `over_limit`.
    pub downstream_closed: IntCounterVec,
    /// `tracebridge_fast_path_delegated_total{reason}`: HTTP/1 requests (or, for `h2`
    /// and `h2c`, whole connections) the fast path handed to pingora-proxy, by why.
    pub fast_path_delegated: IntCounterVec,
    /// `tracebridge_fast_path_rejected_total{status}`: request heads the HTTP/1 front
    /// door refused (400, 414, 431, 505) before either path served them.
    pub fast_path_rejected: IntCounterVec,
    /// The per-route coverage view (`GET /coverage`): counters of the same request
    /// path, kept per route name rather than exported to Prometheus.
    pub coverage: Coverage,
    /// `injected` and `extracted` resolved per format once, so the request path does
    /// not hash label values.
    injected_by_format: Vec<IntCounter>,
    extracted_by_format: Vec<IntCounter>,
}

/// The `reason` label values of `tracebridge_downstream_connections_closed_total`.
pub(crate) const DOWNSTREAM_CLOSE_REASONS: [&str; 4] =
    ["header_timeout", "idle_timeout", "evicted", "over_limit"];

pub(crate) use super::labels::NO_ROUTE;

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = RequestSeries::new(
            Family {
                name: "tracebridge_requests_total",
                help: "Requests handled, by route and status class.",
            },
            Family {
                name: "tracebridge_request_duration_seconds",
                help: "Time from the request header to the end of the response, by route.",
            },
            Family {
                name: "tracebridge_upstream_request_duration_seconds",
                help:
                    "Time from the first attempt to reach an upstream to the end of the response, \
                       by upstream and status class (the gateway's 502/504 when no answer came).",
            },
            &DURATION_BUCKETS,
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
        let baggage_dropped = counter_vec(
            "tracebridge_propagation_baggage_dropped_total",
            "Baggage entries a format left out: over its size limits (limit), or a key or value it cannot carry (key, value).",
            &["format", "reason"],
        )?;
        let spans_started = IntCounter::new(
            "tracebridge_spans_started_total",
            "Gateway spans started, sampled or not.",
        )?;
        let budget_dropped = counter_vec(
            "tracebridge_propagation_budget_dropped_total",
            "Baggage members left out of a request to keep its injected trace headers within the budget, by the limit reached.",
            &["reason"],
        )?;
        let would_inject = counter_vec(
            "tracebridge_observe_would_inject_total",
            "Requests on observe-mode routes that mediate mode would have written this format into (nothing was written).",
            &["route", "format"],
        )?;
        let would_strip = counter_vec(
            "tracebridge_observe_would_strip_total",
            "Requests on observe-mode routes whose headers of this format mediate mode would have removed (nothing was removed).",
            &["route", "format"],
        )?;
        let ot_invalid = counter_vec(
            "tracebridge_sampling_ot_invalid_total",
            "Incoming tracestate ot members (OpenTelemetry sampling threshold and randomness) dropped as invalid, by reason.",
            &["reason"],
        )?;
        let baggage_filtered = counter_vec(
            "tracebridge_propagation_baggage_filtered_total",
            "Incoming baggage members a route did not let through, by reason (restart, not_allowed, denied).",
            &["reason"],
        )?;
        for c in [
            &would_inject,
            &would_strip,
            &baggage_filtered,
            &extracted,
            &missing,
            &invalid,
            &injected,
            &baggage_dropped,
            &budget_dropped,
            &ot_invalid,
        ] {
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
        let exporter_exported = counter_vec(
            "tracebridge_exporter_spans_exported_total",
            "Spans each exporter handed over successfully (with several exporters every span goes to each).",
            &["exporter"],
        )?;
        let exporter_dropped = counter_vec(
            "tracebridge_exporter_spans_dropped_total",
            "Spans each exporter dropped: its queue full, its export failed, shut down.",
            &["exporter", "reason"],
        )?;
        let exporter_queue_depth = IntGaugeVec::new(
            Opts::new(
                "tracebridge_exporter_queue_depth",
                "Spans waiting in each exporter's queue.",
            ),
            &["exporter"],
        )?;
        registry.register(Box::new(exporter_exported.clone()))?;
        registry.register(Box::new(exporter_dropped.clone()))?;
        registry.register(Box::new(exporter_queue_depth.clone()))?;
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
        let fast_path_delegated = counter_vec(
            "tracebridge_fast_path_delegated_total",
            "HTTP/1 requests the fast path handed to pingora-proxy (the fallback), by reason: what the head parser delegates (transfer-encoding, upgrade, expect, ...), http/1.0, a route to an echo, TLS or HTTP/2 upstream (route), and whole connections: h2 (ALPN), h2c (preface), disabled (server.fast_path = false).",
            &["reason"],
        )?;
        registry.register(Box::new(fast_path_delegated.clone()))?;
        let fast_path_rejected = counter_vec(
            "tracebridge_fast_path_rejected_total",
            "HTTP/1 request heads refused before any path served them (malformed or ambiguous framing: 400, 414, 431, 505), by status.",
            &["status"],
        )?;
        registry.register(Box::new(fast_path_rejected.clone()))?;
        for c in [
            &conflicts,
            &spans_started,
            &spans_exported,
            &access_log_errors,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(spans_dropped.clone()))?;
        registry.register(Box::new(degraded.clone()))?;
        registry.register(Box::new(span_queue_depth.clone()))?;
        registry.register(Box::new(Collect(requests.clone())))?;
        registry.register(Box::new(upstream_failures.clone()))?;
        registry.register(Box::new(config_generation.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "tracebridge_build_info",
                "Always 1; the version label says which tracebridge is running.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let requests_in_flight = IntGauge::new(
            "tracebridge_requests_in_flight",
            "Requests whose header was read and whose response is not finished.",
        )?;
        let upstream_peers = IntGaugeVec::new(
            Opts::new(
                "tracebridge_upstream_peers",
                "Peers of each upstream of the serving config.",
            ),
            &["upstream"],
        )?;
        let upstream_peers_healthy = IntGaugeVec::new(
            Opts::new(
                "tracebridge_upstream_peers_healthy",
                "Peers of each upstream that requests go to (all of them without a health check).",
            ),
            &["upstream"],
        )?;
        let config_last_reload_successful = IntGauge::new(
            "tracebridge_config_last_reload_successful",
            "Whether the newest config reload attempt succeeded (0: rejected, the previous config serves).",
        )?;
        let config_last_reload_success_timestamp = Gauge::new(
            "tracebridge_config_last_reload_success_timestamp_seconds",
            "When the serving config was loaded, in Unix seconds.",
        )?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(requests_in_flight.clone()))?;
        registry.register(Box::new(upstream_peers.clone()))?;
        registry.register(Box::new(upstream_peers_healthy.clone()))?;
        registry.register(Box::new(config_last_reload_successful.clone()))?;
        registry.register(Box::new(config_last_reload_success_timestamp.clone()))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
        // process_max_fds, process_start_time_seconds ... (Linux: read from /proc).
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
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
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
            requests,
            upstream_failures,
            config_generation,
            extracted,
            missing,
            invalid,
            injected,
            conflicts,
            baggage_dropped,
            budget_dropped,
            would_inject,
            would_strip,
            ot_invalid,
            baggage_filtered,
            spans_started,
            exporter_exported,
            exporter_dropped,
            exporter_queue_depth,
            access_log_errors,
            build_info,
            requests_in_flight,
            upstream_peers,
            upstream_peers_healthy,
            config_last_reload_successful,
            config_last_reload_success_timestamp,
            downstream_connections,
            downstream_closed,
            fast_path_delegated,
            fast_path_rejected,
            coverage: Coverage::new(),
        })
    }

    /// `tracebridge_propagation_injected_total{format}` for `f`.
    pub fn injected_for(&self, f: Format) -> &IntCounter {
        &self.injected_by_format[f.index()]
    }

    /// Counts what an observe-mode request of `route` would have changed; nothing for a
    /// mediate-mode request (both sets empty: one branch).
    pub fn observed(&self, route: &str, obs: &Observation) {
        if obs.would_inject.is_empty() && obs.would_strip.is_empty() {
            return;
        }
        for f in obs.would_inject.iter() {
            self.would_inject
                .with_label_values(&[route, f.as_str()])
                .inc();
        }
        for f in obs.would_strip.iter() {
            self.would_strip
                .with_label_values(&[route, f.as_str()])
                .inc();
        }
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

    /// Copies every exporter's counters into the exported metrics, at scrape time: the
    /// unlabelled totals summed over the exporters (so one exporter reads as before),
    /// and the `exporter`-labelled series. Without named exporters (a provider
    /// configured by hand), `primary` alone gives the totals.
    pub fn sync_exporters(
        &self,
        primary: &PipelineStats,
        exporters: &[(String, std::sync::Arc<PipelineStats>)],
        degraded: bool,
    ) {
        if exporters.is_empty() {
            self.sync_pipeline(primary, degraded);
            return;
        }
        let total = PipelineStats::default();
        for (name, s) in exporters {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let add = |into: &std::sync::atomic::AtomicU64, v: u64| {
                into.fetch_add(v, Ordering::Relaxed);
            };
            add(&total.exported, load(&s.exported));
            add(&total.dropped_queue_full, load(&s.dropped_queue_full));
            add(&total.dropped_export_failed, load(&s.dropped_export_failed));
            add(&total.dropped_shutdown, load(&s.dropped_shutdown));
            total
                .depth
                .fetch_add(s.depth.load(Ordering::Relaxed), Ordering::Relaxed);
            let set = |c: &IntCounter, v: u64| {
                c.reset();
                c.inc_by(v);
            };
            set(
                &self.exporter_exported.with_label_values(&[name]),
                load(&s.exported),
            );
            for (reason, v) in [
                ("queue_full", &s.dropped_queue_full),
                ("export_failed", &s.dropped_export_failed),
                ("shutdown", &s.dropped_shutdown),
            ] {
                set(
                    &self.exporter_dropped.with_label_values(&[name, reason]),
                    load(v),
                );
            }
            self.exporter_queue_depth
                .with_label_values(&[name])
                .set(s.depth.load(Ordering::Relaxed) as i64);
        }
        self.sync_pipeline(&total, degraded);
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

    /// Copies the outcome of the newest reload and the serving config's load time
    /// into the exported metrics, at scrape time.
    pub fn sync_reload_state(&self, last_ok: bool, loaded_at: std::time::SystemTime) {
        self.config_last_reload_successful.set(i64::from(last_ok));
        let secs = loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.config_last_reload_success_timestamp.set(secs);
    }

    /// Sets the peer gauges from the serving config's upstreams, at scrape time.
    /// Upstreams that a reload removed disappear from the page.
    pub fn sync_upstreams(&self, snapshot: &crate::config::Snapshot) {
        use crate::config::UpstreamKind;
        self.upstream_peers.reset();
        self.upstream_peers_healthy.reset();
        for u in &snapshot.upstreams {
            let UpstreamKind::Http(h) = &u.kind else {
                continue;
            };
            let backends = h.lb.backends();
            let all = backends.get_backend();
            let healthy = all.iter().filter(|b| backends.ready(b)).count();
            self.upstream_peers
                .with_label_values(&[&u.name])
                .set(all.len() as i64);
            self.upstream_peers_healthy
                .with_label_values(&[&u.name])
                .set(healthy as i64);
        }
    }

    /// A guard that counts one request in flight until it is dropped (whatever way
    /// the request ends).
    pub fn in_flight(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
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

/// One request in [`Metrics::requests_in_flight`] while it lives.
#[derive(Debug)]
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

static NEXT_METRICS_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `missing` counters kept per thread; beyond it the oldest is dropped (label values
/// stay in the registry, only the shortcut goes).
const MISSING_PER_THREAD: usize = 64;

thread_local! {
    /// `missing{route}` counters resolved per thread (see [`Metrics::missing_context`]).
    static MISSING: std::cell::RefCell<Vec<(u64, Box<str>, IntCounter)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Metrics {
    /// Counts a request of `route` that arrived without trace context, through a
    /// counter resolved once per thread and route, as [`Self::observe_request`] does:
    /// a request without context is the common case of an edge.
    pub fn missing_context(&self, route: &str) {
        MISSING.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, _, counter)) = cache
                .iter()
                .find(|(m, r, _)| *m == self.id && **r == *route)
            {
                counter.inc();
                return;
            }
            if cache.len() >= MISSING_PER_THREAD {
                cache.remove(0);
            }
            let counter = self.missing.with_label_values(&[route]);
            counter.inc();
            cache.push((self.id, route.into(), counter));
        });
    }

    /// Counts one finished request of `route` to `upstream` with the status the client
    /// got and its duration, and the upstream's part (its status, or the gateway's
    /// own when it gave none, and the time from the first attempt), if it was reached.
    pub fn observe_request(
        &self,
        route: &str,
        upstream: &str,
        status: u16,
        elapsed: std::time::Duration,
        upstream_part: Option<(u16, std::time::Duration)>,
    ) {
        self.requests
            .observe(route, upstream, status, elapsed, upstream_part);
    }
}
