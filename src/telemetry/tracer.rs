//! The OpenTelemetry SDK side of the gateway span: provider, sampler, ids.
//!
//! Sampling is decided per request by mediation ([`SamplingDirective`]) and applied by
//! [`GatewaySampler`], which the SDK calls with the parent context: the directive
//! travels in that context. The same [`Telemetry::decide`] serves propagation-only
//! routes, which make no span, so both paths agree.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::pipeline::{PipelineStats, QueueHandle};

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider,
    ShouldSample,
};
use opentelemetry_sdk::Resource;

use crate::codec::ot_member::KEY as OT_KEY;
use crate::config::spec::DegradationSettings;
use crate::mediate::consistent::span_value;
use crate::mediate::SamplingDirective;
use crate::model::{SpanId, TraceId};

/// The instrumentation scope of the gateway's spans (the tracer's name).
pub const SCOPE_NAME: &str = "tracebridge";

/// Sampled-roots-per-second cap shared by every request of the process.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `per_second` ≤ 0 means no limit.
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            per_second,
            state: Mutex::new((per_second.max(1.0), Instant::now())),
        }
    }

    /// Takes one token if available (token bucket, burst = one second's worth).
    pub fn allow(&self) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        let burst = self.per_second.max(1.0);
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Applies a directive (OpenTelemetry consistent probability sampling, see
/// `mediate::consistent`); shared by the SDK sampler and propagation-only requests.
pub fn decide(directive: SamplingDirective, trace_id: u128, limiter: &RateLimiter) -> bool {
    directive.decide(trace_id, || limiter.allow())
}

/// The SDK sampler: applies the request's [`SamplingDirective`], which
/// [`Telemetry::start`] leaves in a thread-local for the duration of the SDK call (the
/// sampler runs synchronously inside it). A `Context` value would do the same at the
/// cost of a map allocation per request.
#[derive(Debug, Clone)]
pub struct GatewaySampler {
    limiter: Arc<RateLimiter>,
}

impl ShouldSample for GatewaySampler {
    fn should_sample(
        &self,
        _parent_context: Option<&Context>,
        trace_id: opentelemetry::trace::TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let directive = NEXT_SPAN.with(|c| c.get().directive).unwrap_or_default();
        let id = u128::from_be_bytes(trace_id.to_bytes());
        let sampled = decide(directive, id, &self.limiter);
        // The span records the threshold the way OpenTelemetry SDKs do: `ot=th:...` in
        // its own trace state, which the Collector reads for adjusted counts.
        let trace_state = with_trace_state(directive, sampled, |state, _| state.clone());
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state,
        }
    }
}

thread_local! {
    /// The last `ot` trace state made on this thread and what it was made from: a
    /// gateway's spans mostly carry the same threshold, and making one formats,
    /// validates and copies it.
    static LAST_OT: std::cell::RefCell<Option<OtState>> = const { std::cell::RefCell::new(None) };
}

/// A span's `ot=th:…` trace state, as the SDK holds it and as `tracestate` text.
struct OtState {
    key: (crate::mediate::consistent::Threshold, Option<u64>),
    state: TraceState,
    text: String,
}

/// Calls `f` with the trace state of a span sampled (or not) by `directive`, and its
/// text: `ot=th:…` when the decision has a threshold, else empty (also if the text
/// were invalid, which the threshold's encoding rules out).
pub(crate) fn with_trace_state<R>(
    directive: SamplingDirective,
    sampled: bool,
    f: impl FnOnce(&TraceState, &str) -> R,
) -> R {
    let Some(th) = directive.threshold(sampled) else {
        return f(&TraceState::NONE, "");
    };
    let key = (th, directive.randomness());
    LAST_OT.with(|last| {
        let mut last = last.borrow_mut();
        if !matches!(&*last, Some(ot) if ot.key == key) {
            let state = span_value(Some(th), key.1)
                .and_then(|v| TraceState::from_key_value([(OT_KEY, v)]).ok())
                .unwrap_or_default();
            let text = state.header();
            *last = Some(OtState { key, state, text });
        }
        match &*last {
            Some(ot) => f(&ot.state, &ot.text),
            None => f(&TraceState::NONE, ""),
        }
    })
}

/// What [`Telemetry::start`] tells the sampler and the id generator about the span
/// being built on this thread.
#[derive(Debug, Clone, Copy, Default)]
struct NextSpan {
    /// The trace id a root span must continue (a propagation format's id with no
    /// parent span id).
    trace_id: Option<u128>,
    /// The request's sampling directive.
    directive: Option<SamplingDirective>,
    /// The span id the span must have: a kept span reuses the one the upstream saw as
    /// its parent; a span rebuilt from a log line has the one derived from the line.
    span_id: Option<u64>,
}

thread_local! {
    static NEXT_SPAN: std::cell::Cell<NextSpan> = const {
        std::cell::Cell::new(NextSpan { trace_id: None, directive: None, span_id: None })
    };
}

/// Random ids, except that a root span may be told to continue a known trace id.
#[derive(Debug, Default)]
struct GatewayIds(RandomIdGenerator);

impl IdGenerator for GatewayIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        match NEXT_SPAN.with(|c| c.get().trace_id) {
            Some(id) => opentelemetry::trace::TraceId::from_bytes(id.to_be_bytes()),
            None => self.0.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        match NEXT_SPAN.with(|c| c.get().span_id) {
            Some(id) => opentelemetry::trace::SpanId::from_bytes(id.to_be_bytes()),
            None => self.0.new_span_id(),
        }
    }
}

/// Who the gateway is, for the span resource and the per-hop facts it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `service.name`.
    pub service_name: String,
    /// `service.instance.id`.
    pub service_instance: String,
    /// `host.name`.
    pub host_name: String,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub extra: Vec<(String, String)>,
}

impl Identity {
    /// The OpenTelemetry resource of the gateway's spans.
    pub fn resource(&self) -> Resource {
        use opentelemetry_semantic_conventions::attribute as a;
        let mut attrs: Vec<KeyValue> = self
            .extra
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        attrs.extend([
            KeyValue::new(a::SERVICE_NAME, self.service_name.clone()),
            KeyValue::new(a::SERVICE_INSTANCE_ID, self.service_instance.clone()),
            KeyValue::new(a::SERVICE_VERSION, env!("CARGO_PKG_VERSION")),
            KeyValue::new(a::HOST_NAME, self.host_name.clone()),
        ]);
        Resource::builder_empty().with_attributes(attrs).build()
    }
}

/// The queues of the OTLP/HTTP exporters, for spans encoded outside the SDK: each
/// takes one span's OTLP `Span` bytes.
pub type OtlpQueues = Arc<[QueueHandle<Vec<u8>>]>;

/// One exporter's name (its metrics' `exporter` label) and queue statistics.
pub type NamedStats = (String, Arc<PipelineStats>);

/// The gateway's tracer and everything it shares across requests.
#[derive(Debug)]
pub struct Telemetry {
    /// Spans go somewhere (`exporter` is not `none`); otherwise no span object is built.
    exports: bool,
    /// Every exporter is OTLP/HTTP: their queues, which take spans encoded while they
    /// happen (`span::GatewaySpan`) instead of SDK spans.
    otlp_queues: Option<OtlpQueues>,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    limiter: Arc<RateLimiter>,
    ids: RandomIdGenerator,
    /// Export queue statistics (empty when spans go to a processor without a queue);
    /// with several exporters, the first one's.
    pub stats: Arc<PipelineStats>,
    /// Every exporter's name and queue statistics, when built from settings
    /// ([`Self::set_exporters`]); unset for a provider configured by hand.
    exporters: Arc<OnceLock<Vec<NamedStats>>>,
    degraded: Arc<AtomicBool>,
    spans_started: Arc<AtomicU64>,
    monitor_stop: Arc<AtomicBool>,
    /// `service.name`.
    pub service_name: String,
    /// `service.instance.id`.
    pub service_instance: String,
}

impl Telemetry {
    /// A provider whose spans go where `configure` says: it receives the builder, the
    /// resource and the statistics block a [`QueueProcessor`](super::pipeline::QueueProcessor) should fill.
    pub fn new(
        identity: &Identity,
        max_traces_per_second: f64,
        degradation: DegradationSettings,
        configure: impl FnOnce(
            opentelemetry_sdk::trace::TracerProviderBuilder,
            &Resource,
            Arc<PipelineStats>,
        ) -> opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> Telemetry {
        use opentelemetry::trace::TracerProvider as _;
        let limiter = Arc::new(RateLimiter::new(max_traces_per_second));
        let resource = identity.resource();
        let stats = Arc::new(PipelineStats::default());
        let builder = SdkTracerProvider::builder()
            .with_sampler(GatewaySampler {
                limiter: limiter.clone(),
            })
            .with_id_generator(GatewayIds::default())
            .with_resource(resource.clone());
        let provider = configure(builder, &resource, stats.clone()).build();
        let tracer = provider.tracer(SCOPE_NAME);
        let telemetry = Telemetry {
            exports: true,
            otlp_queues: None,
            provider,
            tracer,
            limiter,
            ids: RandomIdGenerator::default(),
            stats,
            exporters: Arc::new(OnceLock::new()),
            degraded: Arc::new(AtomicBool::new(false)),
            spans_started: Arc::new(AtomicU64::new(0)),
            monitor_stop: Arc::new(AtomicBool::new(false)),
            service_name: identity.service_name.clone(),
            service_instance: identity.service_instance.clone(),
        };
        telemetry.start_monitor(degradation);
        telemetry
    }

    /// Names every exporter and its queue statistics (the metrics' `exporter` label;
    /// degradation looks at every queue). Set once, after the provider is built.
    pub(crate) fn set_exporters(&self, list: Vec<(String, Arc<PipelineStats>)>) {
        let _ = self.exporters.set(list);
    }

    /// Every exporter's name and queue statistics; empty for a provider configured by
    /// hand (then [`Self::stats`] is all there is).
    pub fn exporters(&self) -> &[(String, Arc<PipelineStats>)] {
        self.exporters.get().map_or(&[], Vec::as_slice)
    }

    /// True while the gateway is degraded to propagation only.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Counts a started span (for the started-spans rate of degradation).
    pub fn span_started(&self) {
        self.spans_started.fetch_add(1, Ordering::Relaxed);
    }

    /// Watches the export queue and the span rate every 100 ms and switches
    /// degradation on and off with hysteresis: a condition must hold for `hold`.
    fn start_monitor(&self, d: DegradationSettings) {
        let (stats, exporters, degraded, started, stop) = (
            self.stats.clone(),
            self.exporters.clone(),
            self.degraded.clone(),
            self.spans_started.clone(),
            self.monitor_stop.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("tracebridge-degrade".into())
            .spawn(move || {
                let tick = std::time::Duration::from_millis(100);
                let mut since: Option<Instant> = None;
                let mut last_started = started.load(Ordering::Relaxed);
                let mut last_tick = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    let fill_of = |s: &PipelineStats| {
                        let capacity = s.capacity.load(Ordering::Relaxed).max(1) as f64;
                        s.depth.load(Ordering::Relaxed) as f64 / capacity
                    };
                    // With several exporters, the emptiest queue: one dead backend
                    // (its queue full, its spans dropped and counted) must not stop the
                    // spans every other backend still takes.
                    let fill = match exporters.get() {
                        Some(list) if !list.is_empty() => list
                            .iter()
                            .map(|(_, s)| fill_of(s))
                            .fold(f64::INFINITY, f64::min),
                        _ => fill_of(&stats),
                    };
                    let now_started = started.load(Ordering::Relaxed);
                    let rate = (now_started - last_started) as f64
                        / last_tick.elapsed().as_secs_f64().max(1e-3);
                    last_started = now_started;
                    last_tick = Instant::now();
                    let overloaded = fill > d.high_water
                        || (d.max_spans_per_second > 0.0 && rate > d.max_spans_per_second);
                    let calm = fill < d.low_water
                        && (d.max_spans_per_second <= 0.0 || rate < d.max_spans_per_second * 0.5);
                    let is_degraded = degraded.load(Ordering::Relaxed);
                    let wants_switch = if is_degraded { calm } else { overloaded };
                    if !wants_switch {
                        since = None;
                        continue;
                    }
                    let start = *since.get_or_insert_with(Instant::now);
                    if start.elapsed() >= d.hold {
                        degraded.store(!is_degraded, Ordering::Relaxed);
                        since = None;
                        if is_degraded {
                            log::warn!("span pipeline recovered: gateway spans are made again");
                        } else {
                            log::warn!(
                                "span pipeline overloaded (queue {:.0}% full, {rate:.0} spans/s): \
                                 propagation only until it recovers",
                                fill * 100.0
                            );
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start the degradation monitor: {e}");
        }
    }

    /// Starts a span from `builder` as a child of the remote `parent` (trace id,
    /// span id, sampled), sampled as `directive` says. A parent that has a trace id
    /// but no span id (an AWS ALB's `Root=` only) cannot be an SDK parent: the span
    /// becomes a root that keeps that trace id.
    pub fn start(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent: Option<(TraceId, Option<SpanId>, bool)>,
        directive: SamplingDirective,
    ) -> opentelemetry_sdk::trace::Span {
        use opentelemetry::trace::Tracer as _;
        let (parent_cx, root_trace_id) = match parent {
            Some((trace_id, Some(span_id), sampled)) => {
                (remote_parent(trace_id, span_id, sampled), None)
            }
            Some((trace_id, None, _)) => (Context::new(), Some(trace_id.get())),
            None => (Context::new(), None),
        };
        NEXT_SPAN.with(|c| {
            c.set(NextSpan {
                trace_id: root_trace_id,
                directive: Some(directive),
                span_id: None,
            })
        });
        let span = self.tracer.build_with_context(builder, &parent_cx);
        NEXT_SPAN.with(|c| c.take());
        span
    }

    /// Starts a span recorded after the fact (`tracebridge logs-to-traces`): always
    /// sampled (the log line is the record), with the span id `span_id`, as a child of
    /// `parent` (trace id, parent span id) or, without a parent span id, a root of
    /// `parent`'s trace id or else of `root_trace`. The builder carries the start time;
    /// end the span with `end_with_timestamp`.
    pub fn start_recorded(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent: Option<(TraceId, Option<SpanId>)>,
        root_trace: TraceId,
        span_id: SpanId,
    ) -> opentelemetry_sdk::trace::Span {
        let (parent_cx, root) = match parent {
            Some((trace_id, Some(parent_id))) => (remote_parent(trace_id, parent_id, true), None),
            Some((trace_id, None)) => (Context::new(), Some(trace_id.get())),
            None => (Context::new(), Some(root_trace.get())),
        };
        build_with_ids(&self.tracer, builder, &parent_cx, root, span_id)
    }

    /// The gateway's tracer (span builders for [`Self::start_recorded`]).
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// What a span that may be kept after the fact needs (see [`Keeper`]).
    pub fn keeper(&self) -> Keeper {
        Keeper {
            tracer: self.tracer.clone(),
            limiter: self.limiter.clone(),
        }
    }

    /// Whether spans are exported. With `exporter = "none"` nothing would read a span,
    /// so the gateway builds none: [`Self::span_ids`] draws the ids the span would have
    /// had, and the upstream still sees the gateway as its parent.
    pub fn exports(&self) -> bool {
        self.exports
    }

    /// The queues of the OTLP/HTTP exporters when every exporter is one (see
    /// [`Self::with_otlp_queues`]).
    pub(crate) fn otlp_queues(&self) -> Option<&OtlpQueues> {
        self.otlp_queues.as_ref()
    }

    /// Gateway spans go straight into `queues` as OTLP bytes, bypassing the SDK's span
    /// objects: only for a pipeline whose every exporter is OTLP/HTTP (the others
    /// take SDK `SpanData`), where the queues are the same ones its span processors
    /// feed (so flush, shutdown and the counters cover both).
    pub fn with_otlp_queues(mut self, queues: OtlpQueues) -> Self {
        self.otlp_queues = Some(queues);
        self
    }

    /// Marks this pipeline as exporting nothing (`exporter = "none"`).
    pub(crate) fn without_export(mut self) -> Self {
        self.exports = false;
        self
    }

    /// The ids and the sampling decision the SDK gives a gateway span (see
    /// [`Self::start`]): the parent's trace id, or a known trace id to continue, or a
    /// new one; a new span id; the request's directive applied to that trace id.
    pub fn span_ids(
        &self,
        parent: Option<(TraceId, Option<SpanId>, bool)>,
        directive: SamplingDirective,
    ) -> (TraceId, SpanId, bool) {
        let trace_id = parent.map_or_else(|| self.new_trace_id(), |(t, _, _)| t);
        (
            trace_id,
            self.new_span_id(),
            self.decide(directive, trace_id),
        )
    }

    /// Applies a directive for a request that makes no span.
    pub fn decide(&self, directive: SamplingDirective, trace_id: TraceId) -> bool {
        decide(directive, trace_id.get(), &self.limiter)
    }

    /// A fresh random trace id (propagation-only requests with no incoming context).
    pub fn new_trace_id(&self) -> TraceId {
        loop {
            let id = u128::from_be_bytes(self.ids.new_trace_id().to_bytes());
            if let Some(t) = TraceId::new(id) {
                return t;
            }
        }
    }

    /// A fresh random span id.
    pub fn new_span_id(&self) -> SpanId {
        loop {
            let id = u64::from_be_bytes(self.ids.new_span_id().to_bytes());
            if let Some(s) = SpanId::new(id) {
                return s;
            }
        }
    }

    /// Flushes and stops the span pipeline (graceful shutdown).
    pub fn shutdown(&self) {
        self.monitor_stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            log::warn!("span pipeline shutdown: {e}");
        }
    }

    /// Exports everything pending now.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

/// Starts, after the fact, the span of an unsampled request the edge keeps (an error,
/// a slow request): with the ids the request already propagated, under the rate limit
/// of new roots.
#[derive(Debug, Clone)]
pub struct Keeper {
    tracer: SdkTracer,
    limiter: Arc<RateLimiter>,
}

impl Keeper {
    /// Takes a token of the process-wide rate limit (`max_traces_per_second`).
    pub fn allow(&self) -> bool {
        self.limiter.allow()
    }

    /// Starts a sampled span from `builder` with exactly `trace_id` and `span_id`, as a
    /// child of `parent` (trace id, span id, sampled) when it has a span id.
    pub fn start(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent: Option<(TraceId, Option<SpanId>, bool)>,
        trace_id: TraceId,
        span_id: SpanId,
    ) -> opentelemetry_sdk::trace::Span {
        let parent_cx = match parent {
            Some((t, Some(s), sampled)) => remote_parent(t, s, sampled),
            _ => Context::new(),
        };
        build_with_ids(
            &self.tracer,
            builder,
            &parent_cx,
            Some(trace_id.get()),
            span_id,
        )
    }
}

/// Builds `builder` as a sampled span with exactly `span_id`, in `trace_id` (`None`: the
/// parent's), as a child of `parent_cx`: a kept span, or one rebuilt from a log line.
/// Not a probability decision, so no threshold.
fn build_with_ids(
    tracer: &SdkTracer,
    builder: opentelemetry::trace::SpanBuilder,
    parent_cx: &Context,
    trace_id: Option<u128>,
    span_id: SpanId,
) -> opentelemetry_sdk::trace::Span {
    use opentelemetry::trace::Tracer as _;
    NEXT_SPAN.with(|c| {
        c.set(NextSpan {
            trace_id,
            directive: Some(SamplingDirective::Decided {
                sampled: true,
                threshold: None,
                randomness: None,
            }),
            span_id: Some(span_id.get()),
        })
    });
    let span = tracer.build_with_context(builder, parent_cx);
    NEXT_SPAN.with(|c| c.take());
    span
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.monitor_stop.store(true, Ordering::Relaxed);
    }
}

/// The remote parent as the SDK wants it.
fn remote_parent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Context {
    use opentelemetry::trace::{SpanContext, TraceFlags};
    Context::new().with_remote_span_context(SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(trace_id.to_bytes()),
        opentelemetry::trace::SpanId::from_bytes(span_id.to_bytes()),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    ))
}
