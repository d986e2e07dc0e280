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

use super::otlp_proto::{SpanStart, SpanWriter};
use super::tracer::{with_trace_state, Keeper, OtlpQueues};
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
///
/// When every exporter is OTLP/HTTP (the default), the span is written to its OTLP
/// bytes while it happens and queued as those bytes ([`Record::Otlp`]): no SDK span,
/// `KeyValue` list or `SpanData` is made, which took three quarters of a span's cost
/// (callgrind, `b3-3-otlp`). A span with links (`restart`, conflicts) or on a route with
/// keep rules, and every span of a pipeline with another exporter, is an SDK span
/// ([`Record::Sdk`]). Both are made from the same attribute list
/// ([`request_attributes`], [`outcome_attributes`]), with the same ids, sampling and
/// trace state, and encode to the same bytes (tested).
#[derive(Debug)]
pub struct GatewaySpan {
    record: Record,
}

#[derive(Debug)]
enum Record {
    Sdk {
        span: opentelemetry_sdk::trace::Span,
        /// An unsampled span that `keep_errors` / `keep_slower_than` may still export:
        /// what to build it from at the end.
        keepable: Option<Box<Keepable>>,
    },
    Otlp {
        trace_id: TraceId,
        span_id: SpanId,
        /// The span being written: `None` when it is not sampled.
        span: Option<OtlpSpan>,
    },
}

/// A sampled span written as OTLP bytes.
#[derive(Debug)]
struct OtlpSpan {
    writer: SpanWriter,
    queues: OtlpQueues,
    /// Retry events (time, attempt): events follow the attributes, some of which are
    /// only known at the end.
    retries: Vec<(SystemTime, u32)>,
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
        let parent = remote_parent(plan);
        telemetry.span_started();
        if let Some(queues) = telemetry.otlp_queues() {
            if !keep.active() && plan.links.is_empty() {
                let (trace_id, span_id, sampled) = telemetry.span_ids(parent, plan.directive);
                let span = sampled.then(|| {
                    let parent_span = parent.and_then(|(_, span, _)| span);
                    let writer = with_trace_state(plan.directive, true, |_, trace_state| {
                        let ids = (trace_id, span_id, parent_span, trace_state);
                        start_writer(plan, &facts, path, ids, SystemTime::now())
                    });
                    OtlpSpan {
                        writer,
                        queues: queues.clone(),
                        retries: Vec::new(),
                    }
                });
                let record = Record::Otlp {
                    trace_id,
                    span_id,
                    span,
                };
                return GatewaySpan { record };
            }
        }
        let b = builder(plan, &facts, path);
        let copy = keep.active().then(|| b.clone());
        let span = telemetry.start(b, parent, plan.directive);
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
        GatewaySpan {
            record: Record::Sdk { span, keepable },
        }
    }

    /// The span's trace id, span id (`None` only if the SDK handed out a zero id) and
    /// sampling decision.
    pub fn ids(&self) -> (Option<TraceId>, Option<SpanId>, bool) {
        match &self.record {
            Record::Sdk { span, .. } => {
                let (trace_id, span_id) = span_ids(span);
                (trace_id, span_id, span.span_context().is_sampled())
            }
            Record::Otlp {
                trace_id,
                span_id,
                span,
            } => (Some(*trace_id), Some(*span_id), span.is_some()),
        }
    }

    /// Records the request id.
    pub fn request_id(&mut self, id: &str) {
        match &mut self.record {
            Record::Sdk { span, keepable } => {
                let kv = KeyValue::new(attr::REQUEST_ID, id.to_owned());
                if let Some(k) = keepable {
                    k.builder
                        .attributes
                        .get_or_insert_with(Vec::new)
                        .push(kv.clone());
                }
                span.set_attribute(kv);
            }
            Record::Otlp { span, .. } => {
                if let Some(s) = span {
                    s.writer.string(attr::REQUEST_ID, id);
                }
            }
        }
    }

    /// Marks attempt number `attempt` (2 for the first retry) with a `retry` event.
    pub fn retry(&mut self, attempt: u32) {
        match &mut self.record {
            Record::Sdk { span, keepable } => {
                if let Some(k) = keepable {
                    k.retries.push(attempt);
                }
                span.add_event(
                    attr::RETRY_EVENT,
                    vec![KeyValue::new(attr::ATTEMPT, i64::from(attempt))],
                );
            }
            Record::Otlp { span, .. } => {
                if let Some(s) = span {
                    s.retries.push((SystemTime::now(), attempt));
                }
            }
        }
    }

    /// Ends the span with the outcome. An unsampled span a keep rule matches is started
    /// now with the same ids and start time, marked with why, and exported (within the
    /// rate limit); what was propagated stays as it was.
    pub fn finish(self, outcome: Outcome<'_>) {
        let (mut span, keepable) = match self.record {
            Record::Sdk { span, keepable } => (span, keepable),
            Record::Otlp { span, .. } => {
                if let Some(s) = span {
                    let bytes = finish_writer(s.writer, &outcome, &s.retries, SystemTime::now());
                    push_all(&s.queues, bytes);
                }
                return;
            }
        };
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
    let mut attributes = Vec::new();
    outcome_attributes(&outcome, &mut attributes);
    span.set_attributes(attributes);
    if let Some(status) = outcome_status(&outcome) {
        span.set_status(status);
    }
}

/// Where a span's attributes are written: the SDK's `KeyValue` list, or the OTLP bytes
/// of a [`SpanWriter`]. One list of attributes ([`request_attributes`],
/// [`outcome_attributes`]) serves both.
trait Attributes {
    fn string(&mut self, key: &'static str, value: &str);
    fn fixed(&mut self, key: &'static str, value: &'static str);
    fn shared(&mut self, key: &'static str, value: &Arc<str>);
    fn int(&mut self, key: &'static str, value: i64);
    fn formats(&mut self, key: &'static str, value: &[Format]);
}

impl Attributes for Vec<KeyValue> {
    fn string(&mut self, key: &'static str, value: &str) {
        self.push(KeyValue::new(key, value.to_owned()));
    }

    fn fixed(&mut self, key: &'static str, value: &'static str) {
        self.push(KeyValue::new(key, value));
    }

    fn shared(&mut self, key: &'static str, value: &Arc<str>) {
        self.push(KeyValue::new(key, StringValue::from(value.clone())));
    }

    fn int(&mut self, key: &'static str, value: i64) {
        self.push(KeyValue::new(key, value));
    }

    fn formats(&mut self, key: &'static str, value: &[Format]) {
        let items: Vec<StringValue> = value.iter().map(|f| f.as_str().into()).collect();
        self.push(KeyValue::new(key, Value::Array(items.into())));
    }
}

impl Attributes for SpanWriter {
    fn string(&mut self, key: &'static str, value: &str) {
        SpanWriter::string(self, key, value);
    }

    fn fixed(&mut self, key: &'static str, value: &'static str) {
        SpanWriter::string(self, key, value);
    }

    fn shared(&mut self, key: &'static str, value: &Arc<str>) {
        SpanWriter::string(self, key, value);
    }

    fn int(&mut self, key: &'static str, value: i64) {
        SpanWriter::int(self, key, value);
    }

    fn formats(&mut self, key: &'static str, value: &[Format]) {
        let mut names = [""; Format::ALL.len()];
        match names.get_mut(..value.len()) {
            Some(names) => {
                for (name, f) in names.iter_mut().zip(value) {
                    *name = f.as_str();
                }
                SpanWriter::strings(self, key, names);
            }
            // Longer than the list of every format: a repeated one.
            None => {
                let names: Vec<&str> = value.iter().map(|f| f.as_str()).collect();
                SpanWriter::strings(self, key, &names);
            }
        }
    }
}

/// The outcome's attributes: status code, formats written, peer, error type.
fn outcome_attributes(outcome: &Outcome<'_>, out: &mut impl Attributes) {
    let status = outcome.status;
    if status > 0 {
        out.int(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
    }
    out.formats(attr::INJECTED_FORMATS, outcome.injected);
    if !outcome.would_inject.is_empty() {
        out.formats(attr::WOULD_INJECT_FORMATS, outcome.would_inject);
    }
    if let Some(addr) = outcome.upstream_address {
        out.shared(attr::UPSTREAM_ADDRESS, addr);
    }
    match outcome.error {
        Some(e) => out.string(semconv::ERROR_TYPE, e),
        None if status >= 500 => out.string(semconv::ERROR_TYPE, &status.to_string()),
        None => {}
    }
}

/// The span status of a failed request: the gateway's error kind, or a 5xx.
fn outcome_status(outcome: &Outcome<'_>) -> Option<Status> {
    match outcome.error {
        Some(e) => Some(Status::error(e.to_string())),
        None if outcome.status >= 500 => Some(Status::error(format!("HTTP {}", outcome.status))),
        None => None,
    }
}

fn sw_attributes(ctx: &TraceContext, out: &mut impl Attributes) {
    if let Some(sw) = &ctx.originals.skywalking {
        // The names the OpenTelemetry Collector's SkyWalking receiver uses.
        out.string("sw8.trace_id", &sw.trace_id);
        out.string("sw8.parent_segment_id", &sw.segment_id);
        out.int("sw8.parent_span_id", i64::from(sw.span_index));
        out.string("parent.service", &sw.service);
        out.string("parent.service.instance", &sw.instance);
        out.string("parent.endpoint", &sw.endpoint);
        out.string("network.AddressUsedAtPeer", &sw.address);
    }
    if let Some(ee) = &ctx.originals.eagleeye {
        out.string("eagleeye.trace_id", &ee.trace_id);
        out.string("eagleeye.rpc_id", &ee.rpc_id);
    }
    if let Some(id) = &ctx.originals.jaeger_debug_id {
        out.string(attr::JAEGER_DEBUG_ID, id);
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

/// The request's attributes, known when the span starts.
fn request_attributes(
    plan: &Plan,
    facts: &RequestFacts<'_>,
    path: &Arc<str>,
    out: &mut impl Attributes,
) {
    // The registered methods without an allocation.
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|m| **m == facts.method) {
        Some(m) => out.fixed(semconv::HTTP_REQUEST_METHOD, m),
        None => out.string(semconv::HTTP_REQUEST_METHOD, facts.method),
    }
    out.shared(semconv::URL_PATH, path);
    out.fixed(semconv::URL_SCHEME, facts.scheme);
    out.fixed(semconv::NETWORK_PROTOCOL_VERSION, facts.protocol_version);
    if let Some(template) = facts.route_template {
        out.shared(semconv::HTTP_ROUTE, template);
    }
    out.shared(attr::ROUTE, facts.route);
    out.shared(attr::UPSTREAM, facts.upstream);
    if let Some(host) = facts.server_address {
        out.string(semconv::SERVER_ADDRESS, host);
    }
    if let Some(port) = facts.server_port {
        out.int(semconv::SERVER_PORT, i64::from(port));
    }
    if let Some(client) = facts.client_address {
        out.shared(semconv::CLIENT_ADDRESS, client);
    }
    if let Some(ua) = facts.user_agent {
        out.string(semconv::USER_AGENT_ORIGINAL, ua);
    }
    // `none` rather than no attribute, so dashboards can group the requests that
    // arrived without context (the same word as the metrics' `route="none"`).
    let extracted = plan.format.map_or(attr::NO_FORMAT, Format::as_str);
    out.fixed(attr::EXTRACTED_FORMAT, extracted);
    sw_attributes(&plan.carried, out);
}

/// The span's name in parts, joined without a separator: `{method} {route name}`
/// (docs/configuration.md), or `{method}` alone without a route. The semantic
/// conventions' `{method} {http.route}` would name the span after the route's path
/// prefix, which `http.route` already records; the name says which configured route
/// served it.
fn name_parts<'a>(facts: &RequestFacts<'a>) -> [&'a str; 3] {
    match facts.route_template {
        Some(_) => [facts.method, " ", facts.route],
        None => [facts.method, "", ""],
    }
}

/// Starts the OTLP bytes of a sampled span with `ids` (trace id, span id, the remote
/// parent's span id, the span's own trace state text) at `start`.
fn start_writer(
    plan: &Plan,
    facts: &RequestFacts<'_>,
    path: &Arc<str>,
    ids: (TraceId, SpanId, Option<SpanId>, &str),
    start: SystemTime,
) -> SpanWriter {
    let (trace_id, span_id, parent, trace_state) = ids;
    // A span with its usual attributes takes about 700 bytes.
    let mut writer = SpanWriter::start(
        Vec::with_capacity(768),
        SpanStart {
            trace_id: trace_id.to_bytes(),
            span_id: span_id.to_bytes(),
            trace_state,
            parent: parent.map(SpanId::to_bytes),
            name: &name_parts(facts),
            kind: SpanKind::Server,
            start,
            sampled: true,
        },
    );
    request_attributes(plan, facts, path, &mut writer);
    writer
}

/// The whole OTLP span: the outcome's attributes, the retry events, the end time and
/// the status.
fn finish_writer(
    mut writer: SpanWriter,
    outcome: &Outcome<'_>,
    retries: &[(SystemTime, u32)],
    end: SystemTime,
) -> Vec<u8> {
    outcome_attributes(outcome, &mut writer);
    for (at, attempt) in retries {
        writer.event(*at, attr::RETRY_EVENT, attr::ATTEMPT, i64::from(*attempt));
    }
    writer.finish(end, &outcome_status(outcome).unwrap_or(Status::Unset))
}

/// Queues `span` into every queue (each gets its own copy).
fn push_all(queues: &OtlpQueues, span: Vec<u8>) {
    if let Some((last, rest)) = queues.split_last() {
        for q in rest {
            q.push(span.clone());
        }
        last.push(span);
    }
}

fn builder(
    plan: &Plan,
    facts: &RequestFacts<'_>,
    path: &Arc<str>,
) -> opentelemetry::trace::SpanBuilder {
    // Sized for the common case so the list is allocated once.
    let mut attributes = Vec::with_capacity(16);
    request_attributes(plan, facts, path, &mut attributes);
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
    opentelemetry::trace::SpanBuilder::from_name(name_parts(facts).concat())
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
    /// The SDK span's OTLP encoding is checked against the OTLP record's bytes for the
    /// same request (see [`assert_same_otlp_bytes`]).
    fn one_span(
        policy: &Policy,
        incoming: &[(&'static str, &'static str)],
        route_template: Option<&Arc<str>>,
        retries: &[u32],
        outcome: Outcome<'_>,
    ) -> SpanData {
        one_span_with(
            policy,
            incoming,
            Request {
                route_template,
                ..Request::default()
            },
            retries,
            outcome,
        )
    }

    /// The request facts that vary between tests.
    struct Request<'a> {
        method: &'a str,
        route_template: Option<&'a Arc<str>>,
        user_agent: Option<&'a str>,
        request_id: Option<&'a str>,
    }

    impl Default for Request<'_> {
        fn default() -> Self {
            Request {
                method: "GET",
                route_template: None,
                user_agent: Some("curl/8"),
                request_id: None,
            }
        }
    }

    fn one_span_with(
        policy: &Policy,
        incoming: &[(&'static str, &'static str)],
        request: Request<'_>,
        retries: &[u32],
        outcome: Outcome<'_>,
    ) -> SpanData {
        let (telemetry, memory) = telemetry();
        let plan = mediate::plan(policy, &headers(incoming));
        let route: Arc<str> = "main".into();
        let upstream: Arc<str> = "orders".into();
        let path: Arc<str> = "/orders/42".into();
        let client: Arc<str> = "192.0.2.7".into();
        let facts = || RequestFacts {
            method: request.method,
            path: &path,
            scheme: "http",
            server_address: Some("shop.example"),
            server_port: Some(8080),
            client_address: Some(&client),
            client_ip: None,
            protocol_version: "1.1",
            user_agent: request.user_agent,
            route: &route,
            route_template: request.route_template,
            upstream: &upstream,
        };
        let mut span = GatewaySpan::start(&telemetry, &plan, facts(), &path);
        if let Some(id) = request.request_id {
            span.request_id(id);
        }
        for attempt in retries {
            span.retry(*attempt);
        }
        span.finish(outcome);
        let spans = memory.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1);
        let data = spans.into_iter().next().unwrap();
        if plan.links.is_empty() {
            assert_same_otlp_bytes(
                &plan,
                &facts(),
                &path,
                request.request_id,
                &data,
                retries,
                &outcome,
            );
        }
        data
    }

    /// The OTLP record ([`Record::Otlp`]) of a request, given the SDK span's ids, trace
    /// state and times, is byte for byte that span's OTLP encoding.
    fn assert_same_otlp_bytes(
        plan: &Plan,
        facts: &RequestFacts<'_>,
        path: &Arc<str>,
        request_id: Option<&str>,
        data: &SpanData,
        retries: &[u32],
        outcome: &Outcome<'_>,
    ) {
        let sc = &data.span_context;
        let trace_id = TraceId::new(u128::from_be_bytes(sc.trace_id().to_bytes())).unwrap();
        let span_id = SpanId::new(u64::from_be_bytes(sc.span_id().to_bytes())).unwrap();
        let parent = (data.parent_span_id != opentelemetry::trace::SpanId::INVALID)
            .then(|| SpanId::new(u64::from_be_bytes(data.parent_span_id.to_bytes())).unwrap());
        let state = sc.trace_state().header();
        let ids = (trace_id, span_id, parent, state.as_str());
        let mut writer = start_writer(plan, facts, path, ids, data.start_time);
        if let Some(id) = request_id {
            writer.string(attr::REQUEST_ID, id);
        }
        let retries: Vec<(SystemTime, u32)> = data
            .events
            .iter()
            .zip(retries)
            .map(|(e, attempt)| (e.timestamp, *attempt))
            .collect();
        let ours = finish_writer(writer, outcome, &retries, data.end_time);
        let mut sdk = Vec::new();
        super::super::otlp_proto::encode_span(data, &mut sdk);
        assert_eq!(ours, sdk, "{data:?}");
    }

    #[test]
    fn the_otlp_record_and_the_sdk_span_encode_alike() {
        // The other tests compare every span they make; these add what they lack: a
        // sampling threshold in the trace state, a request id, an unregistered method,
        // attributes too long for the one-byte lengths, observe mode's formats.
        let always = Policy {
            strategy: crate::mediate::Strategy::Always,
            ..Policy::default()
        };
        let long_agent = "agent/".repeat(40);
        let template: Arc<str> = "/orders".into();
        let span = one_span_with(
            &always,
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
            Request {
                method: "PURGE",
                route_template: Some(&template),
                user_agent: Some(&long_agent),
                request_id: Some("req-1"),
            },
            &[2, 3],
            Outcome {
                status: 504,
                error: Some("timeout"),
                injected: &[Format::TraceContext, Format::B3Multi, Format::Jaeger],
                would_inject: &[Format::Datadog],
                upstream_address: None,
            },
        );
        assert_eq!(span.span_context.trace_state().header(), "ot=th:0");
        assert_eq!(text(&span, attr::REQUEST_ID).as_deref(), Some("req-1"));
        assert_eq!(span.name, "PURGE main");
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
