//! The gateway span of one request: started from mediation's [`Plan`] and the request
//! facts, marked on every retry, finished with the outcome.
//!
//! Attribute names follow the OpenTelemetry HTTP server semantic conventions
//! (`opentelemetry-semantic-conventions`); the gateway's own attributes share the
//! `tracebridge.` prefix, and the SkyWalking / EagleEye originals use the names the
//! OpenTelemetry Collector's SkyWalking receiver uses. Nothing here knows pingora: a
//! proxy path hands in plain facts, so the span can be unit-tested with an in-memory
//! exporter and shared by every proxy path.

use std::sync::Arc;

use opentelemetry::trace::{Link, Span as _, SpanKind, Status};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::Telemetry;
use crate::codec::Format;
use crate::mediate::Plan;
use crate::model::{SpanId, TraceContext, TraceId};

/// Attribute and event names of our own, all under one prefix.
pub mod attr {
    /// The route's name.
    pub const ROUTE: &str = "tracebridge.route";
    /// The upstream's name.
    pub const UPSTREAM: &str = "tracebridge.upstream";
    /// The peer address the last attempt went to.
    pub const UPSTREAM_ADDRESS: &str = "tracebridge.upstream.address";
    /// The format the context was continued from, or [`NO_FORMAT`].
    pub const EXTRACTED_FORMAT: &str = "tracebridge.extracted_format";
    /// [`EXTRACTED_FORMAT`] of a request that brought no context.
    pub const NO_FORMAT: &str = crate::telemetry::labels::NONE;
    /// The formats written into the outgoing request.
    pub const INJECTED_FORMATS: &str = "tracebridge.injected_formats";
    /// A link's format.
    pub const LINK_FORMAT: &str = "tracebridge.link.format";
    /// Why a link was made: `restart` or `conflict`.
    pub const LINK_REASON: &str = "tracebridge.link.reason";
    /// Jaeger's `jaeger-debug-id`.
    pub const JAEGER_DEBUG_ID: &str = "jaeger.debug_id";
    /// The event added on each retry.
    pub const RETRY_EVENT: &str = "retry";
    /// The retry event's attempt number (2 for the first retry).
    pub const ATTEMPT: &str = "tracebridge.attempt";
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

/// How the request ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome<'a> {
    /// The status the client got; 0 when none was sent.
    pub status: u16,
    /// The gateway's error kind (`connect`, `timeout`, ...), if it failed the request.
    pub error: Option<&'a str>,
    /// The formats written into the outgoing request.
    pub injected: &'a [Format],
    /// The peer the last attempt went to.
    pub upstream_address: Option<&'a Arc<str>>,
}

/// The remote parent a plan continues: trace id, parent span id (absent for an AWS
/// ALB's `Root=` only), sampled.
pub fn remote_parent(plan: &Plan) -> Option<(TraceId, Option<SpanId>, bool)> {
    plan.parent.as_ref().and_then(|p| {
        p.trace_id
            .map(|t| (t, p.parent_id, p.sampling.decision() == Some(true)))
    })
}

/// The gateway's span for one request.
#[derive(Debug)]
pub struct GatewaySpan {
    span: opentelemetry_sdk::trace::Span,
}

impl GatewaySpan {
    /// Starts the span: a child of the plan's remote parent, sampled as its directive
    /// says, with the request's attributes and the plan's links.
    pub fn start(
        telemetry: &Telemetry,
        plan: &Plan,
        facts: RequestFacts<'_>,
        path: &Arc<str>,
    ) -> GatewaySpan {
        let span = telemetry.start(
            builder(plan, facts, path),
            remote_parent(plan),
            plan.directive,
        );
        telemetry.span_started();
        GatewaySpan { span }
    }

    /// The span's trace id, span id (`None` only if the SDK handed out a zero id) and
    /// sampling decision.
    pub fn ids(&self) -> (Option<TraceId>, Option<SpanId>, bool) {
        let sc = self.span.span_context();
        (
            TraceId::new(u128::from_be_bytes(sc.trace_id().to_bytes())),
            SpanId::new(u64::from_be_bytes(sc.span_id().to_bytes())),
            sc.is_sampled(),
        )
    }

    /// Marks attempt number `attempt` (2 for the first retry) with a `retry` event.
    pub fn retry(&mut self, attempt: u32) {
        self.span.add_event(
            attr::RETRY_EVENT,
            vec![KeyValue::new(attr::ATTEMPT, i64::from(attempt))],
        );
    }

    /// Ends the span with the outcome.
    pub fn finish(mut self, outcome: Outcome<'_>) {
        let span = &mut self.span;
        let status = outcome.status;
        if status > 0 {
            span.set_attribute(KeyValue::new(
                semconv::HTTP_RESPONSE_STATUS_CODE,
                i64::from(status),
            ));
        }
        let injected: Vec<StringValue> =
            outcome.injected.iter().map(|f| f.as_str().into()).collect();
        span.set_attribute(KeyValue::new(
            attr::INJECTED_FORMATS,
            Value::Array(injected.into()),
        ));
        if let Some(addr) = outcome.upstream_address {
            span.set_attribute(KeyValue::new(
                attr::UPSTREAM_ADDRESS,
                StringValue::from(addr.clone()),
            ));
        }
        match outcome.error {
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

fn builder(
    plan: &Plan,
    facts: RequestFacts<'_>,
    path: &Arc<str>,
) -> opentelemetry::trace::SpanBuilder {
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
    opentelemetry::trace::SpanBuilder::from_name(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .with_links(links)
}
