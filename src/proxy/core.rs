//! The one request core both proxy paths share: routing, the client address and
//! forwarding headers, mediation (extract → span → inject), peer choice and retry
//! accounting, the gateway's own replies, and the end of a request (span, metrics,
//! coverage, access log).
//!
//! The pingora `ProxyHttp` fallback ([`super::Gateway`]) and the HTTP/1 fast path
//! ([`super::fast`]) each read a request their own way, describe it as an
//! [`Arrival`], and call the same functions here in the same order, so a request is
//! traced, counted and logged the same whichever path served it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use log::Level;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::{Error, ErrorSource, ErrorType};

use crate::codec::{value_str, HeaderSink, HeaderSource};
use crate::config::{HttpUpstream, Snapshot, UpstreamKind};
use crate::mediate::forwarded::{self, ForwardedMode};
use crate::mediate::HeaderEdit;
use crate::model::TraceId;
use crate::reload::ConfigHandle;
use crate::telemetry::access_log::{self, Entry};
use crate::telemetry::coverage::{self, Observation};
use crate::telemetry::metrics::{InFlight, Metrics, NO_ROUTE};
use crate::telemetry::{RequestFacts, Telemetry};

use super::edge::{self, Clock};
use super::trace::RequestTrace;

/// What both paths share: the live config, the metrics and the span pipeline.
pub(crate) struct Core {
    pub(crate) config: Arc<ConfigHandle>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) telemetry: Arc<Telemetry>,
}

/// A request as it arrived, whichever path read it: its headers a map (pingora's path)
/// or the fast path's view of the lines it parsed.
pub(crate) struct Arrival<'a, H> {
    pub(crate) method: &'a Method,
    /// The path, without the query.
    pub(crate) path: &'a str,
    /// The authority of an absolute-form target (or HTTP/2's `:authority`).
    pub(crate) authority: Option<&'a str>,
    pub(crate) headers: &'a H,
    /// `Host` as text (`None`: absent or not visible ASCII), read once by the caller
    /// for routing, the span and the forwarding headers.
    pub(crate) host_header: Option<&'a str>,
    /// The TCP peer.
    pub(crate) peer: Option<IpAddr>,
    /// `peer` (canonical) as text, when the connection keeps it formatted.
    pub(crate) peer_text: Option<&'a Arc<str>>,
    pub(crate) tls: bool,
    /// The port of the listener the request came in on.
    pub(crate) local_port: Option<u16>,
    pub(crate) http2: bool,
}

impl<H: HeaderSource> Arrival<'_, H> {
    /// The method and headers, as the response rules read them.
    pub(crate) fn request(&self) -> (&Method, &H) {
        (self.method, self.headers)
    }

    /// The host the client addressed: the target's authority, else `Host` (with port).
    fn host(&self) -> Option<&str> {
        self.authority
            .map(|a| a.rsplit_once('@').map_or(a, |(_, h)| h))
            .or(self.host_header)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// Per-request state, from the first filter to the end.
pub struct RequestCtx {
    /// The config generation this request uses from start to end.
    pub(crate) snapshot: Arc<Snapshot>,
    /// Index of the matched route.
    pub(crate) route: Option<usize>,
    /// The upstream to forward to, when it has real peers.
    pub(crate) upstream: Option<Arc<HttpUpstream>>,
    /// Retries done so far (at most one, on connection failure).
    pub(crate) retries: u8,
    /// When the request header was read.
    pub(crate) started: Instant,
    /// Trace context in and out, and the gateway span.
    pub(crate) trace: Option<RequestTrace>,
    /// The peer of the current attempt, as dialled (`host:port`).
    pub(crate) peer_address: Option<Arc<str>>,
    /// Why the request failed, for the span's `error.type`.
    pub(crate) error: Option<&'static str>,
    /// The status a failure decided, for the end of the request when no response
    /// could be written (the client left: 499).
    pub(crate) failure_status: Option<u16>,
    /// The forwarding headers (`X-Forwarded-*`, `Forwarded`) every attempt sets.
    forwarding: Option<Arc<[(HeaderName, HeaderValue)]>>,
    /// When the first attempt to reach the upstream began (upstream duration metric).
    pub(crate) upstream_started: Option<Instant>,
    /// The status the upstream answered with (0 = no answer).
    pub(crate) upstream_status: u16,
    /// Held from peer selection until this request holds an upstream HTTP/2 stream
    /// (the fallback path's multiplexed upstreams).
    pub(crate) dial: Option<super::dial::DialTicket>,
    /// Counts this request in `tracebridge_requests_in_flight` until the context drops.
    _in_flight: InFlight,
}

/// The forwarding headers of a connection's last request. From a peer that is not a
/// trusted proxy they depend only on the mode, the peer, the scheme and `Host`, and
/// the peer and scheme are the connection's: a keep-alive request with the same mode
/// and `Host` reuses them instead of building four header values again.
#[derive(Default)]
pub(crate) struct ForwardingMemo {
    key: Option<(ForwardedMode, Option<Box<str>>)>,
    headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
}

impl ForwardingMemo {
    /// The headers for `mode` and `host`: the remembered ones, or `build`'s.
    fn get(
        &mut self,
        mode: ForwardedMode,
        host: Option<&str>,
        build: impl FnOnce() -> Vec<(HeaderName, HeaderValue)>,
    ) -> Arc<[(HeaderName, HeaderValue)]> {
        let hit = self
            .key
            .as_ref()
            .is_some_and(|(m, h)| *m == mode && h.as_deref() == host);
        match &self.headers {
            Some(headers) if hit => headers.clone(),
            _ => {
                let headers: Arc<[_]> = build().into();
                self.key = Some((mode, host.map(Box::from)));
                self.headers = Some(headers.clone());
                headers
            }
        }
    }
}

impl RequestCtx {
    /// When the request and its first upstream attempt started (`Server-Timing`).
    fn clock(&self) -> Clock {
        Clock {
            started: self.started,
            upstream_started: self.upstream_started,
        }
    }

    pub(crate) fn route_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.route(i))
            .map_or(NO_ROUTE, |r| &*r.name)
    }

    pub(crate) fn upstream_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.route(i))
            .and_then(|r| self.snapshot.upstreams.get(r.upstream))
            .map_or("none", |u| &*u.name)
    }
}

/// Where a routed request goes.
pub(crate) enum Routed {
    /// The gateway answers itself (no route: 404).
    Reply(Reply),
    /// The built-in echo upstream (served by the fallback path only).
    Echo,
    /// Real peers.
    Upstream(Arc<HttpUpstream>),
}

/// A complete short response the gateway makes itself: a JSON body (none for an
/// answered CORS preflight), and the headers the request's policy adds
/// (`traceresponse`, the browser edge's).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderSink for Vec<(HeaderName, HeaderValue)> {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.retain(|(n, _)| *n != name);
        self.push((name, value));
    }
}

/// How a request ended, for [`Core::finish`].
pub(crate) struct Done<'a, H> {
    /// The status the client got, 0 when none.
    pub(crate) status: u16,
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    pub(crate) headers: &'a H,
    pub(crate) bytes_sent: usize,
}

/// nginx's status for a request its client closed before the response ("client
/// closed request"). No client ever sees it; logs, metrics and the span record it.
pub(crate) const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The body of every response the gateway makes itself (404 no route, 502, 504, ...):
/// `{"error":"<message>","trace_id":"<32 hex>"}` and a newline. `trace_id` only when
/// the request has a trace and its policy sends `traceresponse` (exposing ids to
/// clients is what that switch opts into), as Kong's error bodies carry a
/// `request_id`.
pub(crate) fn error_body(message: &str, trace_id: Option<TraceId>) -> Bytes {
    let mut v = serde_json::json!({ "error": message });
    if let Some(t) = trace_id {
        v["trace_id"] = String::from_utf8_lossy(&t.to_hex()).into_owned().into();
    }
    let mut body = v.to_string().into_bytes();
    body.push(b'\n');
    Bytes::from(body)
}

/// How a proxy failure is reported: status, message, metric kind.
pub(crate) fn classify(e: &Error) -> (u16, &'static str, &'static str) {
    match e.etype() {
        ErrorType::HTTPStatus(code) => (*code, "error", "other"),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            (504, "upstream timed out", "timeout")
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => (502, "upstream unreachable", "connect"),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "upstream error", "other"),
            ErrorSource::Downstream => (400, "bad request", "downstream"),
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal error", "other"),
        },
    }
}

/// Whether `e` means the client left: it closed its connection, or reset its HTTP/2
/// stream (a cancelled gRPC call, an expired deadline). Nothing can be sent to it any
/// more. A downstream HTTP/2 error while proxying is always the stream going away: the
/// request was already parsed and routed.
pub(crate) fn client_went_away(e: &Error) -> bool {
    matches!(e.esource(), ErrorSource::Downstream)
        && matches!(
            e.etype(),
            ErrorType::WriteError
                | ErrorType::ReadError
                | ErrorType::ConnectionClosed
                | ErrorType::H2Error
        )
}

impl Core {
    /// A fresh context on the newest config generation.
    pub(crate) fn new_ctx(&self) -> RequestCtx {
        self.new_ctx_at(Instant::now())
    }

    /// A fresh context for a request that began at `started` (the caller's clock
    /// reading: the fast path reads the clock once for several uses).
    pub(crate) fn new_ctx_at(&self, started: Instant) -> RequestCtx {
        RequestCtx {
            snapshot: self.config.load(),
            route: None,
            upstream: None,
            retries: 0,
            started,
            trace: None,
            peer_address: None,
            error: None,
            failure_status: None,
            forwarding: None,
            upstream_started: None,
            upstream_status: 0,
            dial: None,
            _in_flight: self.metrics.in_flight(),
        }
    }

    /// Finds the route (kept in `ctx`) and returns the upstream it names.
    pub(crate) fn route<'s>(
        &self,
        ctx: &'s mut RequestCtx,
        arrival: &Arrival<'_, impl HeaderSource>,
    ) -> Option<&'s UpstreamKind> {
        let snapshot = &ctx.snapshot;
        ctx.route = snapshot.router.find(
            arrival.host(),
            arrival.path,
            arrival.method,
            arrival.headers,
        );
        let route = snapshot.router.route(ctx.route?)?;
        snapshot.upstreams.get(route.upstream).map(|u| &u.kind)
    }

    /// Starts the request on the route [`Self::route`] found: the client address, the
    /// forwarding headers, extraction, trust, sampling and the gateway span.
    ///
    /// `memo` carries the forwarding headers of the connection's previous request
    /// (the fast path keeps one per connection); `None` computes them afresh.
    pub(crate) fn begin(
        &self,
        ctx: &mut RequestCtx,
        arrival: &Arrival<'_, impl HeaderSource>,
        memo: Option<&mut ForwardingMemo>,
    ) -> Routed {
        // A field borrow, not an `Arc` clone: `ctx`'s other fields are set below.
        let snapshot = &ctx.snapshot;
        let trusted_proxies = &snapshot.server.trusted_proxies;
        let peer = arrival.peer.map(|p| p.to_canonical());
        // Addresses as text once per request (or per connection: `peer_text`), shared
        // by the span and the forwarding headers; borrowed, formatted only when missing.
        let formatted_peer;
        let peer_text = match (peer, arrival.peer_text) {
            (Some(_), Some(text)) => Some(text),
            (Some(p), None) => {
                formatted_peer = Arc::from(p.to_string());
                Some(&formatted_peer)
            }
            (None, _) => None,
        };
        let client = peer.map(|p| forwarded::client_address(p, arrival.headers, trusted_proxies));
        let formatted_client;
        let client_text = match (client, peer) {
            (Some(c), Some(p)) if c == p => peer_text,
            (Some(c), _) => {
                formatted_client = Arc::from(c.to_string());
                Some(&formatted_client)
            }
            (None, _) => None,
        };
        let client = client.zip(client_text);
        let route = ctx.route.and_then(|i| snapshot.router.route(i));
        let upstream = route.and_then(|r| snapshot.upstreams.get(r.upstream));
        let Some((route, upstream)) = route.zip(upstream) else {
            let none: Arc<str> = Arc::from(NO_ROUTE);
            // No route, so no route policy: the `[propagation]` defaults give the span,
            // the access log entry and `traceresponse`, as for a proxied request.
            let trace = RequestTrace::begin(
                snapshot.defaults.clone(),
                arrival.headers,
                facts(arrival, &none, None, &none, client),
                &self.telemetry,
                &self.metrics,
            );
            ctx.trace = Some(trace);
            return Routed::Reply(self.reply(ctx, 404, "no route", arrival.request()));
        };
        if let (Some(peer), Some(peer_text), Some((client, client_text))) =
            (peer, peer_text, client)
        {
            let hop = forwarded::Arrival {
                peer,
                peer_text,
                trusted: forwarded::contains(trusted_proxies, peer),
                client,
                client_text,
                scheme: arrival.scheme(),
                host: arrival.host_header.or(arrival.authority),
            };
            let mode = route.policy.forwarded;
            ctx.forwarding = match memo {
                Some(memo) if !hop.trusted => Some(memo.get(mode, hop.host, || {
                    forwarded::headers(mode, &hop, arrival.headers)
                })),
                _ => Some(forwarded::headers(mode, &hop, arrival.headers).into()),
            };
        }
        ctx.trace = Some(RequestTrace::begin(
            route.policy.clone(),
            arrival.headers,
            facts(
                arrival,
                &route.name,
                Some(&route.path_prefix),
                &upstream.name,
                client,
            ),
            &self.telemetry,
            &self.metrics,
        ));
        if let Some(headers) = edge::answer_preflight(ctx.trace.as_ref(), arrival.request()) {
            return Routed::Reply(Reply {
                status: 204,
                body: Bytes::new(),
                headers,
            });
        }
        match &upstream.kind {
            UpstreamKind::Http(up) => {
                ctx.upstream = Some(up.clone());
                Routed::Upstream(up.clone())
            }
            UpstreamKind::Echo => Routed::Echo,
        }
    }

    /// The gateway's own response with `message` to `request`, correlated with the
    /// request's trace when its policy exposes the trace.
    pub(crate) fn reply(
        &self,
        ctx: &RequestCtx,
        status: u16,
        message: &str,
        request: (&Method, &impl HeaderSource),
    ) -> Reply {
        let trace = ctx.trace.as_ref();
        let header = trace.and_then(RequestTrace::response_header);
        let trace_id = trace.filter(|_| header.is_some()).map(|t| t.trace_id);
        let mut headers = Vec::new();
        if let Some(v) = header {
            headers.push((HeaderName::from_static("traceresponse"), v));
        }
        if let Some(t) = trace {
            t.response_headers(&mut headers);
        }
        let own = HeaderMap::new();
        edge::finish(trace, request, ctx.clock(), status, &own, &mut headers);
        Reply {
            status,
            body: error_body(message, trace_id),
            headers,
        }
    }

    /// Picks the next peer of the request's upstream (an attempt; every one after the
    /// first is a retry on the span).
    pub(crate) fn pick_peer(&self, ctx: &mut RequestCtx) -> pingora::Result<SocketAddr> {
        if let Some(trace) = &mut ctx.trace {
            trace.attempt();
        }
        ctx.upstream_started.get_or_insert_with(Instant::now);
        let Some(upstream) = &ctx.upstream else {
            return Error::e_explain(ErrorType::InternalError, "no upstream selected");
        };
        match upstream.select() {
            Some((peer, address)) => {
                ctx.peer_address = Some(address);
                Ok(peer)
            }
            None => {
                self.metrics
                    .upstream_failures
                    .with_label_values(&[ctx.upstream_name(), "no_peer"])
                    .inc();
                Error::e_explain(ErrorType::HTTPStatus(502), "no healthy peer")
            }
        }
    }

    /// Counts a failed connection attempt; true when the request may be retried on the
    /// next peer: one bounded retry, for idempotent methods only (a request that never
    /// reached a peer is safe to send again).
    pub(crate) fn connect_failed(&self, ctx: &mut RequestCtx, e: &Error, method: &Method) -> bool {
        let kind = classify(e).2;
        self.metrics
            .upstream_failures
            .with_label_values(&[ctx.upstream_name(), kind])
            .inc();
        let retry_allowed = ctx
            .upstream
            .as_ref()
            .is_some_and(|u| u.spec.retry_on_connect_failure);
        if retry_allowed && ctx.retries == 0 && method.is_idempotent() {
            ctx.retries += 1;
            true
        } else {
            false
        }
    }

    /// Writes the forwarding headers and the trace context into one outgoing request.
    pub(crate) fn prepare_upstream<E: HeaderEdit + ?Sized>(
        &self,
        ctx: &mut RequestCtx,
        req: &mut E,
    ) {
        for (name, value) in self.forwarding(ctx) {
            req.set(name.clone(), value.clone());
        }
        self.inject(ctx, req);
    }

    /// The forwarding headers (`X-Forwarded-*`, `Forwarded`) for the outgoing request,
    /// each replacing every incoming value of its name. [`Self::prepare_upstream`] sets
    /// them; the fast path writes them straight into the upstream head instead.
    pub(crate) fn forwarding<'c>(&self, ctx: &'c RequestCtx) -> &'c [(HeaderName, HeaderValue)] {
        ctx.forwarding.as_deref().unwrap_or_default()
    }

    /// Writes the trace context into one outgoing request (every attempt is a call).
    pub(crate) fn inject<E: HeaderEdit + ?Sized>(&self, ctx: &mut RequestCtx, req: &mut E) {
        let peer = ctx.peer_address.as_deref().unwrap_or("-");
        if let Some(trace) = &mut ctx.trace {
            trace.inject(req, &self.telemetry, peer, &self.metrics);
        }
    }

    /// The upstream answered `request` with `status` and `response` headers: the
    /// headers the gateway sets on its response, into `out`.
    pub(crate) fn upstream_answered(
        &self,
        ctx: &mut RequestCtx,
        status: u16,
        request: (&Method, &impl HeaderSource),
        response: &impl HeaderSource,
        out: &mut dyn HeaderSink,
    ) {
        ctx.upstream_status = status;
        let trace = ctx.trace.as_ref();
        if let Some(value) = trace.and_then(RequestTrace::response_header) {
            out.set(HeaderName::from_static("traceresponse"), value);
        }
        if let Some(t) = trace {
            t.response_headers(out);
        }
        edge::finish(trace, request, ctx.clock(), status, response, out);
    }

    /// The request failed with `e`: counts it, logs the one line, and decides the
    /// status. The reply to send, unless the client is gone (`gone` is the final status
    /// it already got, if any: 499 otherwise).
    pub(crate) fn failed(
        &self,
        ctx: &mut RequestCtx,
        e: &Error,
        request: (&Method, &impl HeaderSource),
        path: &str,
        sent: Option<u16>,
    ) -> Option<Reply> {
        let method = request.0;
        let (status, message, kind) = classify(e);
        // Connect-phase failures were counted per attempt in connect_failed, and
        // HTTPStatus errors are the gateway's own answers.
        let connect_phase = kind == "connect" || matches!(e.etype(), ErrorType::ConnectTimedout);
        if e.esource() == &ErrorSource::Upstream
            && !connect_phase
            && !matches!(e.etype(), ErrorType::HTTPStatus(_))
        {
            self.metrics
                .upstream_failures
                .with_label_values(&[ctx.upstream_name(), kind])
                .inc();
        }
        // A client that left has nobody to answer: recorded as 499, as nginx does, or
        // as the status it already got when the response header had gone out (nginx
        // keeps that one too). Leaving is the client's choice, not a gateway error, so
        // it is logged at info, like nginx's "client prematurely closed connection".
        let gone = client_went_away(e);
        let code = if gone {
            sent.unwrap_or(CLIENT_CLOSED_REQUEST)
        } else {
            ctx.error = Some(kind);
            status
        };
        ctx.failure_status = Some(code);
        log::log!(
            if gone { Level::Info } else { Level::Warn },
            "{} {} route={} upstream={} status={} tries={} error=\"{}\"",
            method,
            path,
            ctx.route_name(),
            ctx.upstream_name(),
            code,
            u16::from(ctx.retries) + 1,
            e
        );
        (!gone).then(|| self.reply(ctx, code, message, request))
    }

    /// Ends the request: the span, the request metrics, coverage and the access log.
    /// Returns the clock reading it ended the request at, for the caller's keep-alive
    /// deadline.
    pub(crate) fn finish(
        &self,
        ctx: &mut RequestCtx,
        done: &Done<'_, impl HeaderSource>,
    ) -> Instant {
        // What the client got; else what a failure decided (499 for a client that
        // left), so the access log, the metric and the span agree with its log line.
        let status = Some(done.status)
            .filter(|s| *s > 0)
            .or(ctx.failure_status)
            .unwrap_or(0);
        if let Some(trace) = &mut ctx.trace {
            trace.finish(status, ctx.error, ctx.peer_address.as_ref());
        }
        let route = ctx.route_name();
        // One clock read for both durations.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(ctx.started);
        // Without an answer from the upstream, the class of the gateway's own 502/504.
        let upstream_part = ctx.upstream_started.map(|started| {
            let status = if ctx.upstream_status > 0 {
                ctx.upstream_status
            } else {
                status
            };
            (status, now.saturating_duration_since(started))
        });
        self.metrics
            .observe_request(route, ctx.upstream_name(), status, elapsed, upstream_part);
        let trace = ctx.trace.as_ref();
        let mut observation = trace.map_or_else(Observation::default, |t| t.observation);
        observation.preflight = coverage::is_cors_preflight(done.method, done.headers);
        self.metrics
            .coverage
            .record(&ctx.snapshot, ctx.route, &observation);
        self.metrics.observed(route, &observation);
        if let Some(sink) = &ctx.snapshot.access_log {
            let now = SystemTime::now();
            let entry = Entry {
                time: now.checked_sub(elapsed).unwrap_or(now),
                route,
                method: done.method.as_str(),
                path: done.path,
                status,
                duration_ms: elapsed,
                upstream_address: ctx.peer_address.as_deref(),
                bytes_sent: done.bytes_sent,
                trace_id: trace.map(|t| t.trace_id),
                span_id: trace.map(|t| t.span_id),
                parent_id: trace.and_then(|t| t.incoming_parent),
                sampled: trace.map(|t| t.sampled),
                extracted_format: observation.incoming.map(|f| f.as_str()),
                injected_formats: trace
                    .filter(|t| !t.observation.injected.is_empty())
                    .map(|t| t.formats.iter().map(|f| f.as_str()).collect())
                    .unwrap_or_default(),
                would_inject: observation
                    .would_inject
                    .iter()
                    .map(|f| f.as_str())
                    .collect(),
                would_strip: observation.would_strip.iter().map(|f| f.as_str()).collect(),
                request_id: trace.and_then(RequestTrace::request_id),
            };
            access_log::write(sink, &entry, &self.metrics);
        }
        now
    }
}

/// The request facts the gateway span records; `template` is `None` without a route.
fn facts<'a, H: HeaderSource>(
    arrival: &'a Arrival<'a, H>,
    route: &'a Arc<str>,
    template: Option<&'a Arc<str>>,
    upstream: &'a Arc<str>,
    client: Option<(IpAddr, &'a Arc<str>)>,
) -> RequestFacts<'a> {
    let host = arrival.host().map(crate::config::router::strip_port);
    RequestFacts {
        method: arrival.method.as_str(),
        path: arrival.path,
        scheme: arrival.scheme(),
        server_address: host,
        server_port: arrival.local_port,
        client_ip: client.as_ref().map(|(ip, _)| *ip),
        client_address: client.map(|(_, text)| text),
        protocol_version: if arrival.http2 { "2" } else { "1.1" },
        user_agent: arrival
            .headers
            .values(&http::header::USER_AGENT)
            .next()
            .and_then(|v| value_str(v).ok()),
        route,
        route_template: template,
        upstream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarding_memo_is_reused_only_for_the_same_mode_and_host() {
        let mut memo = ForwardingMemo::default();
        let mut built = 0;
        let mut get = |mode, host: Option<&str>| {
            memo.get(mode, host, || {
                built += 1;
                vec![(
                    forwarded::X_FORWARDED_HOST.clone(),
                    HeaderValue::from_str(host.unwrap_or("-")).unwrap(),
                )]
            })
        };
        let a = get(ForwardedMode::Append, Some("a"));
        let again = get(ForwardedMode::Append, Some("a"));
        assert!(Arc::ptr_eq(&a, &again), "same mode and host: reused");
        let b = get(ForwardedMode::Append, Some("b"));
        assert_eq!(b[0].1, "b");
        get(ForwardedMode::Replace, Some("b"));
        get(ForwardedMode::Replace, None);
        assert_eq!(built, 4, "a new host or mode builds again");
    }
}
