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
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{Link, Span as _, SpanKind, Status};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::tracer::Keeper;
use super::Telemetry;
use crate::codec::Format;
use crate::mediate::Keep;
use crate::mediate::Plan;
use crate::model::{SpanId, TraceContext, TraceId};

/// Attribute and event names of our own, all under one prefix.
pub(crate) mod attr {
    /// The route's name.
    pub(crate) const ROUTE: &str = "tracebridge.route";
    /// The upstream's name.
    pub(crate) const UPSTREAM: &str = "tracebridge.upstream";
    /// The peer address the last attempt went to.
    pub(crate) const UPSTREAM_ADDRESS: &str = "tracebridge.upstream.address";
    /// The format the context was continued from, or [`NO_FORMAT`].
    pub(crate) const EXTRACTED_FORMAT: &str = "tracebridge.extracted_format";
    /// [`EXTRACTED_FORMAT`] of a request that brought no context.
    pub(crate) const NO_FORMAT: &str = crate::telemetry::labels::NONE;
    /// The formats written into the outgoing request.
    pub(crate) const INJECTED_FORMATS: &str = "tracebridge.injected_formats";
    /// Observe mode: the formats mediate mode would have written (nothing was).
    pub(crate) const WOULD_INJECT_FORMATS: &str = "tracebridge.would_inject_formats";
    /// A link's format.
    pub(crate) const LINK_FORMAT: &str = "tracebridge.link.format";
    /// Why a link was made: `restart` or `conflict`.
    pub(crate) const LINK_REASON: &str = "tracebridge.link.reason";
    /// Jaeger's `jaeger-debug-id`.
    pub(crate) const JAEGER_DEBUG_ID: &str = "jaeger.debug_id";
    /// The request id (`request_id_header`), when valid or made by the gateway.
    pub(crate) const REQUEST_ID: &str = "tracebridge.request_id";
    /// Why an unsampled request's span was exported anyway: `error` or `slow`.
    pub(crate) const SAMPLING_KEPT: &str = "tracebridge.sampling.kept";
    /// The event added on each retry.
    pub(crate) const RETRY_EVENT: &str = "retry";
    /// The retry event's attempt number (2 for the first retry).
    pub(crate) const ATTEMPT: &str = "tracebridge.attempt";
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
    /// Shared, so a connection formats its peer's address once for all its requests.
    pub client_address: Option<&'a Arc<str>>,
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
    /// Observe mode: the formats mediate mode would have written; empty otherwise.
    pub would_inject: &'a [Format],
    /// The peer the last attempt went to.
    pub upstream_address: Option<&'a Arc<str>>,
}

/// The remote parent a plan continues: trace id, parent span id (absent for an AWS
/// ALB's `Root=` only), sampled.
pub(crate) fn remote_parent(plan: &Plan) -> Option<(TraceId, Option<SpanId>, bool)> {
    plan.parent.as_ref().and_then(|p| {
        p.trace_id
            .map(|t| (t, p.parent_id, p.sampling.decision() == Some(true)))
    })
}

/// The gateway's span for one request.
#[derive(Debug)]
pub struct GatewaySpan {
    span: opentelemetry_sdk::trace::Span,
    /// An unsampled span that `keep_errors` / `keep_slower_than` may still export:
    /// what to build it from at the end.
    keepable: Option<Box<Keepable>>,
}

/// What an unsampled span needs to be started after the fact when the edge keeps it.
#[derive(Debug)]
struct Keepable {
    builder: opentelemetry::trace::SpanBuilder,
    parent: Option<(TraceId, Option<SpanId>, bool)>,
    keep: Keep,
    started: Instant,
    keeper: Keeper,
    /// Retry events seen meanwhile (attempt numbers).
    retries: Vec<u32>,
}

/// Why an unsampled span was kept (`tracebridge.sampling.kept`).
fn kept_reason(
    keep: Keep,
    outcome: &Outcome<'_>,
    took: std::time::Duration,
) -> Option<&'static str> {
    if keep.errors && (outcome.error.is_some() || outcome.status >= 500) {
        Some("error")
    } else if keep.slower_than.is_some_and(|d| took >= d) {
        Some("slow")
    } else {
        None
    }
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
        Self::start_keeping(telemetry, plan, facts, path, Keep::default())
    }

    /// [`Self::start`] for a route with `keep` rules: an unsampled span keeps what it
    /// needs to be exported at the end if the request fails or is slow. The builder is
    /// copied only when a rule is on.
    pub fn start_keeping(
        telemetry: &Telemetry,
        plan: &Plan,
        facts: RequestFacts<'_>,
        path: &Arc<str>,
        keep: Keep,
    ) -> GatewaySpan {
        let b = builder(plan, facts, path);
        let copy = keep.active().then(|| b.clone());
        let parent = remote_parent(plan);
        let span = telemetry.start(b, parent, plan.directive);
        telemetry.span_started();
        let keepable = copy
            .filter(|_| !span.span_context().is_sampled())
            .map(|builder| {
                Box::new(Keepable {
                    builder: builder.with_start_time(SystemTime::now()),
                    parent,
                    keep,
                    started: Instant::now(),
                    keeper: telemetry.keeper(),
                    retries: Vec::new(),
                })
            });
        GatewaySpan { span, keepable }
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

    /// Records the request id.
    pub fn request_id(&mut self, id: &str) {
        let kv = KeyValue::new(attr::REQUEST_ID, id.to_owned());
        if let Some(k) = &mut self.keepable {
            k.builder
                .attributes
                .get_or_insert_with(Vec::new)
                .push(kv.clone());
        }
        self.span.set_attribute(kv);
    }

    /// Marks attempt number `attempt` (2 for the first retry) with a `retry` event.
    pub fn retry(&mut self, attempt: u32) {
        if let Some(k) = &mut self.keepable {
            k.retries.push(attempt);
        }
        self.span.add_event(
            attr::RETRY_EVENT,
            vec![KeyValue::new(attr::ATTEMPT, i64::from(attempt))],
        );
    }

    /// Ends the span with the outcome. An unsampled span a keep rule matches is started
    /// now with the same ids and start time, marked with why, and exported (within the
    /// rate limit); what was propagated stays as it was.
    pub fn finish(self, outcome: Outcome<'_>) {
        let GatewaySpan { mut span, keepable } = self;
        if let Some(k) = keepable {
            let reason = kept_reason(k.keep, &outcome, k.started.elapsed());
            let (ids, keeper) = (span_ids(&span), k.keeper.clone());
            if let (Some(reason), (Some(trace_id), Some(span_id))) = (reason, ids) {
                if keeper.allow() {
                    let mut kept = keeper.start(k.builder, k.parent, trace_id, span_id);
                    kept.set_attribute(KeyValue::new(attr::SAMPLING_KEPT, reason));
                    for attempt in k.retries {
                        kept.add_event(
                            attr::RETRY_EVENT,
                            vec![KeyValue::new(attr::ATTEMPT, i64::from(attempt))],
                        );
                    }
                    span = kept;
                }
            }
        }
        record_outcome(&mut span, outcome);
        span.end();
    }
}

fn span_ids(span: &opentelemetry_sdk::trace::Span) -> (Option<TraceId>, Option<SpanId>) {
    let sc = span.span_context();
    (
        TraceId::new(u128::from_be_bytes(sc.trace_id().to_bytes())),
        SpanId::new(u64::from_be_bytes(sc.span_id().to_bytes())),
    )
}

/// The outcome's attributes and status on `span`.
fn record_outcome(span: &mut opentelemetry_sdk::trace::Span, outcome: Outcome<'_>) {
    let status = outcome.status;
    if status > 0 {
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
    }
    let injected: Vec<StringValue> = outcome.injected.iter().map(|f| f.as_str().into()).collect();
    span.set_attribute(KeyValue::new(
        attr::INJECTED_FORMATS,
        Value::Array(injected.into()),
    ));
    if !outcome.would_inject.is_empty() {
        let would: Vec<StringValue> = outcome
            .would_inject
            .iter()
            .map(|f| f.as_str().into())
            .collect();
        span.set_attribute(KeyValue::new(
            attr::WOULD_INJECT_FORMATS,
            Value::Array(would.into()),
        ));
    }
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
        attributes.push(KeyValue::new(
            semconv::CLIENT_ADDRESS,
            StringValue::from(client.clone()),
        ));
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
    // `{method} {route name}` (docs/configuration.md), or `{method}` alone without a
    // route. The semantic conventions' `{method} {http.route}` would name the span after
    // the route's path prefix, which `http.route` already records; the name says which
    // configured route served it.
    let name = match facts.route_template {
        Some(_) => [facts.method, " ", facts.route].concat(),
        None => facts.method.to_string(),
    };
    opentelemetry::trace::SpanBuilder::from_name(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .with_links(links)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http::{HeaderMap, HeaderValue};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};

    use super::*;
    use crate::config::spec::DegradationSettings;
    use crate::mediate::{self, Policy, Trust};
    use crate::telemetry::tracer::Identity;

    /// Keeps every exported span in memory (the simple processor exports on `end`).
    #[derive(Debug, Clone, Default)]
    struct Memory(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Memory {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn telemetry() -> (Telemetry, Memory) {
        let memory = Memory::default();
        let exporter = memory.clone();
        let identity = Identity {
            service_name: "gw".into(),
            service_instance: "gw-1".into(),
            host_name: "host".into(),
            extra: vec![],
        };
        let t = Telemetry::new(&identity, 0.0, DegradationSettings::default(), |b, _, _| {
            b.with_simple_exporter(exporter)
        });
        (t, memory)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// Starts, optionally retries, and finishes one span for `incoming`; returns it.
    fn one_span(
        policy: &Policy,
        incoming: &[(&'static str, &'static str)],
        route_template: Option<&Arc<str>>,
        retries: &[u32],
        outcome: Outcome<'_>,
    ) -> SpanData {
        let (telemetry, memory) = telemetry();
        let plan = mediate::plan(policy, &headers(incoming));
        let route: Arc<str> = "main".into();
        let upstream: Arc<str> = "orders".into();
        let path: Arc<str> = "/orders/42".into();
        let client: Arc<str> = "192.0.2.7".into();
        let facts = RequestFacts {
            method: "GET",
            path: &path,
            scheme: "http",
            server_address: Some("shop.example"),
            server_port: Some(8080),
            client_address: Some(&client),
            client_ip: None,
            protocol_version: "1.1",
            user_agent: Some("curl/8"),
            route: &route,
            route_template,
            upstream: &upstream,
        };
        let mut span = GatewaySpan::start(&telemetry, &plan, facts, &path);
        for attempt in retries {
            span.retry(*attempt);
        }
        span.finish(outcome);
        let spans = memory.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1);
        spans.into_iter().next().unwrap()
    }

    fn attr(span: &SpanData, key: &str) -> Option<Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    fn text(span: &SpanData, key: &str) -> Option<String> {
        attr(span, key).map(|v| v.as_str().into_owned())
    }

    #[test]
    fn a_continued_span_carries_the_semantic_conventions() {
        let template: Arc<str> = "/orders".into();
        let address: Arc<str> = "10.0.0.1:80".into();
        let span = one_span(
            &Policy::default(),
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
            Some(&template),
            &[],
            Outcome {
                status: 200,
                error: None,
                injected: &[Format::TraceContext, Format::B3],
                would_inject: &[],
                upstream_address: Some(&address),
            },
        );
        assert_eq!(span.name, "GET main");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(span.span_context.is_sampled());
        for (key, want) in [
            (semconv::HTTP_REQUEST_METHOD, "GET"),
            (semconv::URL_PATH, "/orders/42"),
            (semconv::URL_SCHEME, "http"),
            (semconv::HTTP_ROUTE, "/orders"),
            (semconv::SERVER_ADDRESS, "shop.example"),
            (semconv::CLIENT_ADDRESS, "192.0.2.7"),
            (semconv::USER_AGENT_ORIGINAL, "curl/8"),
            (semconv::NETWORK_PROTOCOL_VERSION, "1.1"),
            (attr::ROUTE, "main"),
            (attr::UPSTREAM, "orders"),
            (attr::UPSTREAM_ADDRESS, "10.0.0.1:80"),
            (attr::EXTRACTED_FORMAT, "tracecontext"),
        ] {
            assert_eq!(text(&span, key).as_deref(), Some(want), "{key}");
        }
        assert_eq!(attr(&span, semconv::SERVER_PORT), Some(Value::I64(8080)));
        assert_eq!(
            attr(&span, semconv::HTTP_RESPONSE_STATUS_CODE),
            Some(Value::I64(200))
        );
        assert_eq!(
            attr(&span, attr::INJECTED_FORMATS),
            Some(Value::Array(
                vec![StringValue::from("tracecontext"), StringValue::from("b3")].into()
            ))
        );
        assert_eq!(attr(&span, semconv::ERROR_TYPE), None);
        assert_eq!(span.status, Status::Unset);
        assert!(span.events.is_empty());
        assert!(span.links.is_empty());
    }

    #[test]
    fn retries_are_events_and_a_failure_is_an_error() {
        let span = one_span(
            &Policy::default(),
            &[],
            None,
            &[2],
            Outcome {
                status: 502,
                error: Some("connect"),
                injected: &[],
                would_inject: &[],
                upstream_address: None,
            },
        );
        // No route template: the name is the method alone, and a context-less request
        // is a new root marked `none`.
        assert_eq!(span.name, "GET");
        assert_eq!(span.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert_eq!(text(&span, attr::EXTRACTED_FORMAT).as_deref(), Some("none"));
        assert_eq!(attr(&span, semconv::HTTP_ROUTE), None);
        let events: Vec<_> = span.events.iter().collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, attr::RETRY_EVENT);
        assert_eq!(
            events[0].attributes,
            vec![KeyValue::new(attr::ATTEMPT, 2_i64)]
        );
        assert_eq!(text(&span, semconv::ERROR_TYPE).as_deref(), Some("connect"));
        assert!(matches!(span.status, Status::Error { .. }));
        // Without an error kind, a 5xx from the upstream is the error.
        let span = one_span(
            &Policy::default(),
            &[],
            None,
            &[],
            Outcome {
                status: 503,
                ..Outcome::default()
            },
        );
        assert_eq!(text(&span, semconv::ERROR_TYPE).as_deref(), Some("503"));
        assert_eq!(
            span.status,
            Status::Error {
                description: "HTTP 503".into()
            }
        );
    }

    #[test]
    fn skywalking_and_eagleeye_originals_become_attributes() {
        let span = one_span(
            &Policy::default(),
            &[(
                "sw8",
                "1-NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDE=-\
                     NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDI=-1-\
                     c3ZjLWE=-aW5zdC0x-R0VUOi9vcmRlcnM=-Z2F0ZXdheTo4MDgw",
            )],
            None,
            &[],
            Outcome::default(),
        );
        for (key, want) in [
            (
                "sw8.trace_id",
                "56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001",
            ),
            ("parent.service", "svc-a"),
            ("parent.service.instance", "inst-1"),
            ("parent.endpoint", "GET:/orders"),
            ("network.AddressUsedAtPeer", "gateway:8080"),
        ] {
            assert_eq!(text(&span, key).as_deref(), Some(want), "{key}");
        }
        assert_eq!(attr(&span, "sw8.parent_span_id"), Some(Value::I64(1)));
        // No status sent: no status code attribute.
        assert_eq!(attr(&span, semconv::HTTP_RESPONSE_STATUS_CODE), None);
        // EagleEye alone (with sw8 too, its other trace id would be a conflict).
        let span = one_span(
            &Policy::default(),
            &[
                ("eagleeye-traceid", "eac0a8020216868084400006973d000a"),
                ("eagleeye-rpcid", "0.1"),
            ],
            None,
            &[],
            Outcome::default(),
        );
        assert_eq!(
            text(&span, attr::EXTRACTED_FORMAT).as_deref(),
            Some("eagleeye")
        );
        assert_eq!(
            text(&span, "eagleeye.trace_id").as_deref(),
            Some("eac0a8020216868084400006973d000a")
        );
        assert_eq!(text(&span, "eagleeye.rpc_id").as_deref(), Some("0.1"));
    }

    #[test]
    fn restart_links_the_incoming_context_instead_of_continuing_it() {
        let policy = Policy {
            trust: Trust::Restart,
            ..Policy::default()
        };
        let span = one_span(
            &policy,
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
            None,
            &[],
            Outcome::default(),
        );
        assert_ne!(
            span.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let links: Vec<_> = span.links.iter().collect();
        assert_eq!(links.len(), 1);
        assert_eq!(
            links[0].span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            links[0].attributes,
            vec![
                KeyValue::new(attr::LINK_FORMAT, "tracecontext"),
                KeyValue::new(attr::LINK_REASON, "restart"),
            ]
        );
    }
}
