//! The OpenTelemetry SDK side of the gateway span: provider, sampler, ids.
//!
//! Sampling is decided per request by mediation ([`SamplingDirective`]) and applied by
//! [`GatewaySampler`], which the SDK calls with the parent context: the directive
//! travels in that context. The same [`Telemetry::decide`] serves propagation-only
//! routes, which make no span, so both paths agree.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider,
    ShouldSample,
};
use opentelemetry_sdk::Resource;

use crate::mediate::SamplingDirective;
use crate::model::{SpanId, TraceId};

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

/// True when `trace_id` falls under `ratio`; the same rule as the OpenTelemetry
/// `TraceIdRatioBased` sampler (the low 63 bits of the low half), so every gateway and
/// every SDK agree on the same trace.
pub fn ratio_sampled(trace_id: u128, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    ((trace_id as u64) >> 1) < bound
}

/// Applies a directive; shared by the SDK sampler and propagation-only requests.
pub fn decide(directive: SamplingDirective, trace_id: u128, limiter: &RateLimiter) -> bool {
    match directive {
        SamplingDirective::Decided(d) => d,
        SamplingDirective::Ratio(r) => ratio_sampled(trace_id, r),
        SamplingDirective::Root(r) => ratio_sampled(trace_id, r) && limiter.allow(),
    }
}

/// The SDK sampler: reads the request's [`SamplingDirective`] from the parent context.
#[derive(Debug, Clone)]
pub struct GatewaySampler {
    limiter: Arc<RateLimiter>,
}

impl ShouldSample for GatewaySampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: opentelemetry::trace::TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let directive = parent_context
            .and_then(|cx| cx.get::<SamplingDirective>().copied())
            .unwrap_or(SamplingDirective::Root(1.0));
        let id = u128::from_be_bytes(trace_id.to_bytes());
        let decision = if decide(directive, id, &self.limiter) {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        }
    }
}

thread_local! {
    /// A trace id the next span built on this thread must use (see [`Telemetry::start`]).
    static NEXT_TRACE_ID: std::cell::Cell<Option<u128>> = const { std::cell::Cell::new(None) };
}

/// Random ids, except that a root span may be told to continue a known trace id.
#[derive(Debug, Default)]
struct GatewayIds(RandomIdGenerator);

impl IdGenerator for GatewayIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        match NEXT_TRACE_ID.with(|c| c.take()) {
            Some(id) => opentelemetry::trace::TraceId::from_bytes(id.to_be_bytes()),
            None => self.0.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.0.new_span_id()
    }
}

/// The gateway's tracer and everything it shares across requests.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    limiter: Arc<RateLimiter>,
    ids: RandomIdGenerator,
    /// `service.name`.
    pub service_name: String,
    /// `service.instance.id`.
    pub service_instance: String,
}

impl Telemetry {
    /// A provider whose spans go to `configure` (which adds processors / exporters to
    /// the builder it receives).
    pub fn new(
        service_name: &str,
        service_instance: &str,
        max_traces_per_second: f64,
        configure: impl FnOnce(
            opentelemetry_sdk::trace::TracerProviderBuilder,
        ) -> opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> Telemetry {
        use opentelemetry::trace::TracerProvider as _;
        let limiter = Arc::new(RateLimiter::new(max_traces_per_second));
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new(
                    opentelemetry_semantic_conventions::attribute::SERVICE_NAME,
                    service_name.to_string(),
                ),
                KeyValue::new(
                    opentelemetry_semantic_conventions::attribute::SERVICE_INSTANCE_ID,
                    service_instance.to_string(),
                ),
                KeyValue::new(
                    opentelemetry_semantic_conventions::attribute::SERVICE_VERSION,
                    env!("CARGO_PKG_VERSION"),
                ),
            ])
            .build();
        let builder = SdkTracerProvider::builder()
            .with_sampler(GatewaySampler {
                limiter: limiter.clone(),
            })
            .with_id_generator(GatewayIds::default())
            .with_resource(resource);
        let provider = configure(builder).build();
        let tracer = provider.tracer("tracebridge");
        Telemetry {
            provider,
            tracer,
            limiter,
            ids: RandomIdGenerator::default(),
            service_name: service_name.to_string(),
            service_instance: service_instance.to_string(),
        }
    }

    /// Starts a span from `builder` under `parent_cx`. A parent that has a trace id but
    /// no span id (an AWS ALB's `Root=` only) cannot be an SDK parent: the span becomes
    /// a root that keeps `root_trace_id`.
    pub fn start(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent_cx: &Context,
        root_trace_id: Option<TraceId>,
    ) -> opentelemetry_sdk::trace::Span {
        use opentelemetry::trace::Tracer as _;
        if !parent_cx.has_active_span() {
            if let Some(t) = root_trace_id {
                NEXT_TRACE_ID.with(|c| c.set(Some(t.get())));
            }
        }
        let span = self.tracer.build_with_context(builder, parent_cx);
        NEXT_TRACE_ID.with(|c| c.set(None));
        span
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
        if let Err(e) = self.provider.shutdown() {
            log::warn!("span pipeline shutdown: {e}");
        }
    }

    /// Exports everything pending now.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

/// The remote parent as the SDK wants it, with the directive riding along.
pub fn parent_context(
    parent: Option<(TraceId, Option<SpanId>, bool)>,
    directive: SamplingDirective,
) -> Context {
    use opentelemetry::trace::{SpanContext, TraceFlags};
    let cx = Context::new().with_value(directive);
    match parent {
        Some((trace_id, Some(span_id), sampled)) => {
            let sc = SpanContext::new(
                opentelemetry::trace::TraceId::from_bytes(trace_id.to_bytes()),
                opentelemetry::trace::SpanId::from_bytes(span_id.to_bytes()),
                if sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                true,
                TraceState::default(),
            );
            cx.with_remote_span_context(sc)
        }
        _ => cx,
    }
}
