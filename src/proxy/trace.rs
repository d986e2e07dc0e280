//! The trace side of one request: mediation applied to pingora's request, the gateway
//! span started and ended, and the headers written into each outgoing request.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::codec::{Format, FormatList, FormatSet, HeaderSink, HeaderSource};
use crate::mediate::{self, HeaderEdit, Mode, Plan, Policy};
use crate::model::{Hop, SpanId, TraceContext, TraceId};
use crate::telemetry::coverage::Observation;
use crate::telemetry::span::RequestFacts;
use crate::telemetry::span::{remote_parent, GatewaySpan, Outcome};
use crate::telemetry::{Metrics, Telemetry};

/// Per-request trace state, from the first filter to the span's end.
pub struct RequestTrace {
    policy: Arc<Policy>,
    /// The context every injected format carries.
    pub outgoing: TraceContext,
    /// The formats written into each outgoing request.
    pub formats: FormatList,
    /// The id the upstream sees as its parent: the gateway span's, or the incoming
    /// parent on propagation-only routes.
    pub span_id: SpanId,
    /// The trace id carried.
    pub trace_id: TraceId,
    /// The one sampling decision.
    pub sampled: bool,
    /// What arrived and what was written, for the coverage view and the access log.
    pub observation: Observation,
    /// The span id of the incoming context (continued or, on `restart`, linked).
    pub incoming_parent: Option<SpanId>,
    /// The endpoint named in SkyWalking / EagleEye headers (the request path; the
    /// span's `url.path` shares it). Only made when a span or one of those formats
    /// needs it: `None` is an empty endpoint.
    endpoint: Option<Arc<str>>,
    /// The formats whose headers the request carries (for stripping).
    present: FormatSet,
    /// Outgoing calls made so far (retries count).
    calls: u32,
    /// Peer selections so far: each one after the first is a retry.
    attempts: u32,
    /// Boxed: most requests have none (nothing exports, or propagation only), and a
    /// span inline would double the size of every request's trace state, which is
    /// moved a few times per request.
    span: Option<Box<GatewaySpan>>,
    /// The request id: the valid incoming one, or the one the gateway made.
    request_id: Option<HeaderValue>,
    /// The gateway made `request_id` (so it goes upstream).
    request_id_made: bool,
}

impl RequestTrace {
    /// Extracts, applies trust and sampling, and starts the gateway span.
    pub fn begin(
        policy: Arc<Policy>,
        headers: &impl HeaderSource,
        facts: RequestFacts<'_>,
        telemetry: &Telemetry,
        metrics: &Metrics,
    ) -> RequestTrace {
        let mut plan = mediate::plan_with(&policy, policy.trust_for(facts.client_ip), headers);
        count_extraction(&plan, facts.route, metrics);
        warn_presumed_random(&plan);
        let observation = Observation {
            incoming: plan.incoming.map(|(f, _)| f),
            invalid: formats_of(&plan.invalid),
            conflicts: u32::try_from(plan.conflicts).unwrap_or(u32::MAX),
            injected: FormatSet::default(),
            preflight: false,
            would_inject: FormatSet::default(),
            would_strip: FormatSet::default(),
        };
        let formats = mediate::formats_to_inject(&policy, &plan);
        let mut endpoint: Option<Arc<str>> = formats
            .iter()
            .any(|f| matches!(f, Format::SkyWalking | Format::EagleEye))
            .then(|| facts.path.into());
        let parent = remote_parent(&plan);
        // Degraded (the span pipeline cannot keep up): propagation only, by itself.
        let (trace_id, span_id, sampled, span) = if policy.span && !telemetry.exports() {
            // A span nobody exports is not built; its ids are drawn the same way.
            let (t, s, sampled) = telemetry.span_ids(parent, plan.directive);
            (t, s, sampled, None)
        } else if policy.span && !telemetry.degraded() {
            let path = endpoint.get_or_insert_with(|| facts.path.into());
            let span = Box::new(GatewaySpan::start_keeping(
                telemetry,
                &plan,
                facts,
                path,
                policy.keep,
            ));
            metrics.spans_started.inc();
            match span.ids() {
                (Some(t), Some(s), sampled) => (t, s, sampled, Some(span)),
                // The SDK never hands out zero ids; fall back to fresh ones regardless.
                (_, _, sampled) => (
                    telemetry.new_trace_id(),
                    telemetry.new_span_id(),
                    sampled,
                    Some(span),
                ),
            }
        } else {
            // Propagation only: no span; the upstream's parent is the incoming parent.
            let trace_id = parent.map_or_else(|| telemetry.new_trace_id(), |(t, _, _)| t);
            let span_id = parent
                .and_then(|(_, s, _)| s)
                .unwrap_or_else(|| telemetry.new_span_id());
            (
                trace_id,
                span_id,
                telemetry.decide(plan.directive, trace_id),
                None,
            )
        };
        let new_trace = plan.parent.as_ref().and_then(|p| p.trace_id) != Some(trace_id);
        // Only a lookup when the header is absent and nothing is generated.
        let rid = &policy.request_id;
        let incoming_id = rid
            .header
            .as_ref()
            .and_then(|name| mediate::request_id::read(headers, name));
        let request_id_made = incoming_id.is_none() && rid.generate && rid.header.is_some();
        let request_id = match incoming_id {
            // `read` let through only the few characters ids use: a valid value.
            Some(v) => HeaderValue::from_bytes(v).ok(),
            None if request_id_made => Some(mediate::request_id::generate(trace_id, span_id)),
            None => None,
        };
        let mut span = span;
        if let (Some(span), Some(id)) = (&mut span, &request_id) {
            span.request_id(id.to_str().unwrap_or_default());
        }
        RequestTrace {
            outgoing: mediate::outgoing(&mut plan, trace_id, sampled, new_trace, &formats),
            formats,
            span_id,
            trace_id,
            sampled,
            observation,
            incoming_parent: plan.incoming.and_then(|(_, parent)| parent),
            endpoint,
            present: plan.present,
            calls: 0,
            attempts: 0,
            span,
            policy,
            request_id,
            request_id_made,
        }
    }

    /// Writes the context into one outgoing request (every attempt is a new call, so
    /// SkyWalking's and EagleEye's call index counts it). The retry event is recorded
    /// by [`Self::attempt`] alone: a retry after the connection was up passes through
    /// both hooks, and recording in both made two events for one retry.
    pub fn inject<E: HeaderEdit + ?Sized>(
        &mut self,
        req: &mut E,
        telemetry: &Telemetry,
        peer_address: &str,
        metrics: &Metrics,
    ) {
        self.calls += 1;
        if self.policy.mode == Mode::Observe {
            // Nothing on the wire: what mediate mode would write and remove is recorded
            // instead (coverage, metrics and access log read it at the end).
            let o = &mut self.observation;
            for f in &self.formats {
                o.would_inject.insert(*f);
            }
            o.would_strip =
                mediate::would_strip(&self.formats, self.policy.strip_unlisted, self.present);
            return;
        }
        let hop = Hop {
            span_id: self.span_id,
            service: &telemetry.service_name,
            instance: &telemetry.service_instance,
            endpoint: self.endpoint.as_deref().unwrap_or_default(),
            peer_address,
            call_index: self.calls,
        };
        let budget = mediate::Budget {
            bytes: self.policy.max_injected_bytes,
            headers: self.policy.max_injected_headers,
        };
        if let (true, Some(name), Some(id)) = (
            self.request_id_made,
            &self.policy.request_id.header,
            &self.request_id,
        ) {
            req.set(name.clone(), id.clone());
        }
        let report = mediate::inject_within(
            &self.formats,
            self.policy.strip_unlisted,
            self.present,
            &self.outgoing,
            &hop,
            budget,
            req,
        );
        for &f in self.formats.iter() {
            metrics.injected_for(f).inc();
            self.observation.injected.insert(f);
        }
        for (format, injected) in &report.baggage_dropped {
            for (reason, n) in injected.baggage_drops() {
                if n > 0 {
                    metrics
                        .baggage_dropped
                        .with_label_values(&[format.as_str(), reason])
                        .inc_by(n as u64);
                }
            }
        }
        if let Some((dropped, limit)) = report.budget_dropped {
            metrics
                .budget_dropped
                .with_label_values(&[limit.as_str()])
                .inc_by(dropped as u64);
        }
    }

    /// Records that a peer is being picked; every pick after the first is a retry and
    /// gets an event on the span. Every retry picks a peer (a connect failure never
    /// reaches [`Self::inject`]), so this is the one place that records it.
    pub fn attempt(&mut self) {
        self.attempts += 1;
        if self.attempts > 1 {
            if let Some(span) = &mut self.span {
                span.retry(self.attempts);
            }
        }
    }

    /// The route's effective policy (the browser edge reads its response settings).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `traceresponse` for the response, when the route asks for it.
    pub fn response_header(&self) -> Option<HeaderValue> {
        self.policy
            .response_header
            .then(|| mediate::traceresponse(self.trace_id, self.span_id, self.sampled))
    }

    /// The request id (valid incoming, or made by the gateway), for the access log.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|v| v.to_str().ok())
    }

    /// Headers the request-id settings add to the response: the request id, when the
    /// route generates them (so the client learns the id it can quote).
    pub fn response_headers(&self, out: &mut dyn HeaderSink) {
        if let (true, Some(name), Some(id)) = (
            self.policy.request_id.generate,
            &self.policy.request_id.header,
            &self.request_id,
        ) {
            out.set(name.clone(), id.clone());
        }
    }

    /// Ends the span with the outcome.
    pub fn finish(
        &mut self,
        status: u16,
        error: Option<&str>,
        upstream_address: Option<&Arc<str>>,
    ) {
        if let Some(span) = self.span.take() {
            let (injected, would_inject): (&[Format], &[Format]) =
                if self.policy.mode == Mode::Observe {
                    (&[], &self.formats)
                } else {
                    (&self.formats, &[])
                };
            span.finish(Outcome {
                status,
                error,
                injected,
                would_inject,
                upstream_address,
            });
        }
    }
}

/// The OpenTelemetry SDK spec ("Compatibility warnings for ProbabilitySampler") asks a
/// sampler to warn, the first time, that it presumes a trace id without the W3C random
/// flag (and without `rv`) to be random.
fn warn_presumed_random(plan: &Plan) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    let presumes = match plan.directive {
        mediate::SamplingDirective::Root(rule) | mediate::SamplingDirective::Ratio(rule) => {
            rule.randomness.is_none()
                && rule.threshold != mediate::consistent::Threshold::ALWAYS
                && plan.parent.is_some()
                && !plan.carried.random
        }
        mediate::SamplingDirective::Decided { .. } => false,
    };
    if presumes && !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "consistent probability sampling is presuming incoming trace ids are random \
             although the W3C random flag is not set; upgrade callers to W3C Trace Context \
             Level 2 (logged once)"
        );
    }
}

/// The formats named in `list`.
fn formats_of<T>(list: &[(Format, T)]) -> FormatSet {
    let mut set = FormatSet::default();
    for (f, _) in list {
        set.insert(*f);
    }
    set
}

fn count_extraction(plan: &Plan, route: &str, metrics: &Metrics) {
    for (format, reason) in &plan.invalid {
        metrics
            .invalid
            .with_label_values(&[format.as_str(), reason.as_str()])
            .inc();
    }
    match plan.format {
        Some(f) => metrics.extracted_for(f).inc(),
        None => metrics.missing_context(route),
    }
    metrics.conflicts.inc_by(plan.conflicts as u64);
    if plan.baggage_dropped.any() {
        for (reason, n) in plan.baggage_dropped.by_reason() {
            if n > 0 {
                metrics
                    .baggage_filtered
                    .with_label_values(&[reason])
                    .inc_by(u64::from(n));
            }
        }
    }
    if let Some(e) = plan.ot_invalid {
        metrics.ot_invalid.with_label_values(&[e.as_str()]).inc();
    }
}

/// pingora's request header as a mediation target: edits go through its own methods so
/// its header-case map stays in sync.
pub struct UpstreamHeaders<'a>(pub &'a mut RequestHeader);

impl HeaderSink for UpstreamHeaders<'_> {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        // insert_header only fails on invalid names or values; codecs build valid ones.
        let _ = self.0.insert_header(name, value);
    }
}

impl HeaderEdit for UpstreamHeaders<'_> {
    fn names_with_prefix(&self, prefix: &str) -> Vec<HeaderName> {
        mediate::prefixed(&self.0.headers, prefix)
    }

    fn remove(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}
