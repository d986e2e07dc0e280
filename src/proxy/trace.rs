//! The trace side of one request: mediation applied to pingora's request, the gateway
//! span started and ended, and the headers written into each outgoing request.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{Link, Span as _, SpanKind, Status};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;
use pingora::http::RequestHeader;

use crate::codec::{Format, FormatSet, HeaderSink};
use crate::mediate::{self, HeaderEdit, Plan, Policy};
use crate::model::{Hop, SpanId, TraceContext, TraceId};
use crate::telemetry::coverage::Observation;
use crate::telemetry::{Metrics, Telemetry};

/// Attribute names of our own, all under one prefix.
mod attr {
    pub const ROUTE: &str = "tracebridge.route";
    pub const UPSTREAM: &str = "tracebridge.upstream";
    pub const UPSTREAM_ADDRESS: &str = "tracebridge.upstream.address";
    pub const EXTRACTED_FORMAT: &str = "tracebridge.extracted_format";
    /// [`EXTRACTED_FORMAT`] of a request that brought no context.
    pub const NO_FORMAT: &str = "none";
    pub const INJECTED_FORMATS: &str = "tracebridge.injected_formats";
    pub const LINK_FORMAT: &str = "tracebridge.link.format";
    pub const LINK_REASON: &str = "tracebridge.link.reason";
    pub const JAEGER_DEBUG_ID: &str = "jaeger.debug_id";
}

/// The request facts the span describes.
pub struct RequestFacts<'a> {
    /// Method.
    pub method: &'a str,
    /// Path (no query).
    pub path: &'a str,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host the client addressed, without port.
    pub server_address: Option<&'a str>,
    /// Port of the listener.
    pub server_port: Option<u16>,
    /// Client IP (moved into the span): the peer, or from a trusted proxy the address
    /// its `X-Forwarded-For` names (`mediate::forwarded::client_address`).
    pub client_address: Option<String>,
    /// The same address, for trust by network.
    pub client_ip: Option<std::net::IpAddr>,
    /// `1.1` or `2`.
    pub protocol_version: &'static str,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Route name. The three config names are shared with the span, not copied.
    pub route: &'a Arc<str>,
    /// Route path prefix (`http.route`); `None` when no route matched.
    pub route_template: Option<&'a Arc<str>>,
    /// Upstream name.
    pub upstream: &'a Arc<str>,
}

/// Per-request trace state, from the first filter to the span's end.
pub struct RequestTrace {
    policy: Arc<Policy>,
    /// The context every injected format carries.
    pub outgoing: TraceContext,
    /// The formats written into each outgoing request.
    pub formats: Vec<Format>,
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
    /// span's `url.path` shares it).
    endpoint: Arc<str>,
    /// The formats whose headers the request carries (for stripping).
    present: FormatSet,
    /// Outgoing calls made so far (retries count).
    calls: u32,
    /// Peer selections so far: each one after the first is a retry.
    attempts: u32,
    span: Option<opentelemetry_sdk::trace::Span>,
}

fn sw_attributes(ctx: &TraceContext, out: &mut Vec<KeyValue>) {
    if let Some(sw) = &ctx.originals.skywalking {
        // The names the OpenTelemetry Collector's SkyWalking receiver uses.
        out.push(KeyValue::new("sw8.trace_id", sw.trace_id.clone()));
        out.push(KeyValue::new(
            "sw8.parent_segment_id",
            sw.segment_id.clone(),
        ));
        out.push(KeyValue::new(
            "sw8.parent_span_id",
            i64::from(sw.span_index),
        ));
        out.push(KeyValue::new("parent.service", sw.service.clone()));
        out.push(KeyValue::new(
            "parent.service.instance",
            sw.instance.clone(),
        ));
        out.push(KeyValue::new("parent.endpoint", sw.endpoint.clone()));
        out.push(KeyValue::new(
            "network.AddressUsedAtPeer",
            sw.address.clone(),
        ));
    }
    if let Some(ee) = &ctx.originals.eagleeye {
        out.push(KeyValue::new("eagleeye.trace_id", ee.trace_id.clone()));
        out.push(KeyValue::new("eagleeye.rpc_id", ee.rpc_id.clone()));
    }
    if let Some(id) = &ctx.originals.jaeger_debug_id {
        out.push(KeyValue::new(attr::JAEGER_DEBUG_ID, id.clone()));
    }
}

fn otel_trace_id(t: TraceId) -> opentelemetry::trace::TraceId {
    opentelemetry::trace::TraceId::from_bytes(t.to_bytes())
}

fn link(format: Format, ctx: &TraceContext, reason: &'static str) -> Option<Link> {
    let trace = ctx.trace_id?;
    let span = ctx
        .parent_id
        .map_or(opentelemetry::trace::SpanId::INVALID, |s| {
            opentelemetry::trace::SpanId::from_bytes(s.to_bytes())
        });
    let sc = opentelemetry::trace::SpanContext::new(
        otel_trace_id(trace),
        span,
        opentelemetry::trace::TraceFlags::default(),
        true,
        Default::default(),
    );
    Some(Link::new(
        sc,
        vec![
            KeyValue::new(attr::LINK_FORMAT, format.as_str()),
            KeyValue::new(attr::LINK_REASON, reason),
        ],
        0,
    ))
}

impl RequestTrace {
    /// Extracts, applies trust and sampling, and starts the gateway span.
    pub fn begin(
        policy: Arc<Policy>,
        headers: &HeaderMap,
        facts: RequestFacts<'_>,
        telemetry: &Telemetry,
        metrics: &Metrics,
    ) -> RequestTrace {
        let endpoint: Arc<str> = facts.path.into();
        let plan = mediate::plan_with(&policy, policy.trust_for(facts.client_ip), headers);
        count_extraction(&plan, facts.route, metrics);
        let observation = Observation {
            incoming: plan.incoming.map(|(f, _)| f),
            invalid: formats_of(&plan.invalid),
            conflicts: u32::try_from(plan.conflicts).unwrap_or(u32::MAX),
            injected: FormatSet::default(),
            preflight: false,
        };
        let formats = mediate::formats_to_inject(&policy, &plan);
        let parent = plan.parent.as_ref().and_then(|p| {
            p.trace_id
                .map(|t| (t, p.parent_id, p.sampling.decision() == Some(true)))
        });
        // Degraded (the span pipeline cannot keep up): propagation only, by itself.
        let (trace_id, span_id, sampled, span) = if policy.span && !telemetry.degraded() {
            let span = start_span(&plan, parent, facts, &endpoint, telemetry);
            metrics.spans_started.inc();
            telemetry.span_started();
            let sc = span.span_context();
            let trace_id = TraceId::new(u128::from_be_bytes(sc.trace_id().to_bytes()));
            let span_id = SpanId::new(u64::from_be_bytes(sc.span_id().to_bytes()));
            match (trace_id, span_id) {
                (Some(t), Some(s)) => (t, s, sc.is_sampled(), Some(span)),
                // The SDK never hands out zero ids; fall back to fresh ones regardless.
                _ => (
                    telemetry.new_trace_id(),
                    telemetry.new_span_id(),
                    sc.is_sampled(),
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
        RequestTrace {
            outgoing: mediate::outgoing(&plan, trace_id, sampled, new_trace),
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
        }
    }

    /// Writes the context into one outgoing request (every attempt is a new call).
    pub fn inject(
        &mut self,
        req: &mut dyn HeaderEdit,
        telemetry: &Telemetry,
        peer_address: &str,
        metrics: &Metrics,
    ) {
        self.calls += 1;
        if self.calls > 1 {
            if let Some(span) = &mut self.span {
                span.add_event(
                    "retry",
                    vec![KeyValue::new("tracebridge.attempt", i64::from(self.calls))],
                );
            }
        }
        let hop = Hop {
            span_id: self.span_id,
            service: &telemetry.service_name,
            instance: &telemetry.service_instance,
            endpoint: &self.endpoint,
            peer_address,
            call_index: self.calls,
        };
        let budget = mediate::Budget {
            bytes: self.policy.max_injected_bytes,
            headers: self.policy.max_injected_headers,
        };
        let report = mediate::inject_within(
            &self.formats,
            self.policy.strip_unlisted,
            self.present,
            &self.outgoing,
            &hop,
            budget,
            req,
        );
        for f in &report.formats {
            metrics.injected_for(*f).inc();
            self.observation.injected.insert(*f);
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
    /// gets an event on the span.
    pub fn attempt(&mut self) {
        self.attempts += 1;
        if self.attempts > 1 {
            if let Some(span) = &mut self.span {
                span.add_event(
                    "retry",
                    vec![KeyValue::new(
                        "tracebridge.attempt",
                        i64::from(self.attempts),
                    )],
                );
            }
        }
    }

    /// `traceresponse` for the response, when the route asks for it.
    pub fn response_header(&self) -> Option<HeaderValue> {
        self.policy
            .response_header
            .then(|| mediate::traceresponse(self.trace_id, self.span_id, self.sampled))
    }

    /// Ends the span with the outcome.
    pub fn finish(
        &mut self,
        status: u16,
        error: Option<&str>,
        upstream_address: Option<&Arc<str>>,
    ) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        if status > 0 {
            span.set_attribute(KeyValue::new(
                semconv::HTTP_RESPONSE_STATUS_CODE,
                i64::from(status),
            ));
        }
        let injected: Vec<StringValue> = self.formats.iter().map(|f| f.as_str().into()).collect();
        span.set_attribute(KeyValue::new(
            attr::INJECTED_FORMATS,
            Value::Array(injected.into()),
        ));
        if let Some(addr) = upstream_address {
            span.set_attribute(KeyValue::new(
                attr::UPSTREAM_ADDRESS,
                StringValue::from(addr.clone()),
            ));
        }
        match error {
            Some(e) => {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, e.to_string()));
                span.set_status(Status::error(e.to_string()));
            }
            None if status >= 500 => {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, status.to_string()));
                span.set_status(Status::error(format!("HTTP {status}")));
            }
            None => {}
        }
        span.end();
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
        None => metrics.missing.with_label_values(&[route]).inc(),
    }
    metrics.conflicts.inc_by(plan.conflicts as u64);
}

/// `http.request.method`: the registered methods without an allocation.
fn method_value(method: &str) -> StringValue {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|m| **m == method) {
        Some(m) => StringValue::from(*m),
        None => StringValue::from(method.to_string()),
    }
}

fn start_span(
    plan: &Plan,
    parent: Option<(TraceId, Option<SpanId>, bool)>,
    facts: RequestFacts<'_>,
    path: &Arc<str>,
    telemetry: &Telemetry,
) -> opentelemetry_sdk::trace::Span {
    // Sized for the common case so the list is allocated once.
    let mut attributes = Vec::with_capacity(16);
    attributes.extend([
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, method_value(facts.method)),
        KeyValue::new(semconv::URL_PATH, StringValue::from(path.clone())),
        KeyValue::new(semconv::URL_SCHEME, facts.scheme),
        KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, facts.protocol_version),
    ]);
    if let Some(template) = facts.route_template {
        attributes.push(KeyValue::new(
            semconv::HTTP_ROUTE,
            StringValue::from(template.clone()),
        ));
    }
    attributes.extend([
        KeyValue::new(attr::ROUTE, StringValue::from(facts.route.clone())),
        KeyValue::new(attr::UPSTREAM, StringValue::from(facts.upstream.clone())),
    ]);
    if let Some(host) = facts.server_address {
        attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_string()));
    }
    if let Some(port) = facts.server_port {
        attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
    }
    if let Some(client) = facts.client_address {
        attributes.push(KeyValue::new(semconv::CLIENT_ADDRESS, client));
    }
    if let Some(ua) = facts.user_agent {
        attributes.push(KeyValue::new(semconv::USER_AGENT_ORIGINAL, ua.to_string()));
    }
    // `none` rather than no attribute, so dashboards can group the requests that
    // arrived without context (the same word as the metrics' `route="none"`).
    let extracted = plan.format.map_or(attr::NO_FORMAT, Format::as_str);
    attributes.push(KeyValue::new(attr::EXTRACTED_FORMAT, extracted));
    sw_attributes(&plan.carried, &mut attributes);
    // On restart the incoming context comes first, then the conflicts.
    let restarted = plan.links.len() - plan.conflicts;
    let links: Vec<Link> = plan
        .links
        .iter()
        .enumerate()
        .filter_map(|(i, (f, ctx))| {
            link(*f, ctx, if i < restarted { "restart" } else { "conflict" })
        })
        .collect();
    // Semantic conventions: `{method} {http.route}`, or `{method}` alone without a route.
    let name = match facts.route_template {
        Some(_) => format!("{} {}", facts.method, facts.route),
        None => facts.method.to_string(),
    };
    let builder = opentelemetry::trace::SpanBuilder::from_name(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .with_links(links);
    telemetry.start(builder, parent, plan.directive)
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
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    fn remove(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}
