//! The pingora `ProxyHttp` implementation: routing, the echo upstream, peer
//! selection with one bounded retry, and error responses.
//!
//! Every request loads the config snapshot once, in its first filter, and keeps it in
//! its context to the end: one generation per request.

mod dial;
mod echo;
mod edge;
pub(crate) mod limits;
pub mod trace;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use log::{warn, Level};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error, ErrorSource, ErrorType};

use crate::config::validate::Protocol;
use crate::config::{HttpUpstream, Snapshot, UpstreamKind};
use crate::mediate::forwarded;
use crate::model::TraceId;
use crate::reload::ConfigHandle;
use crate::telemetry::access_log::{self, Entry};
use crate::telemetry::coverage::{self, Observation};
use crate::telemetry::metrics::{status_class, Metrics, NO_ROUTE};
use crate::telemetry::RequestFacts;
use crate::telemetry::Telemetry;
use trace::{RequestTrace, UpstreamHeaders};

/// The gateway's proxy logic, shared by every worker thread.
pub struct Gateway {
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
    /// Orders the requests taking streams from each multiplexed upstream pool.
    dial_gates: dial::DialGates,
}

impl Gateway {
    /// A gateway reading its config from `config`.
    pub fn new(
        config: Arc<ConfigHandle>,
        metrics: Arc<Metrics>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Gateway {
            config,
            metrics,
            telemetry,
            dial_gates: dial::DialGates::default(),
        }
    }
}

/// Per-request state.
pub struct RequestCtx {
    /// The config generation this request uses from start to end.
    snapshot: Arc<Snapshot>,
    /// Index of the matched route.
    route: Option<usize>,
    /// The upstream to forward to, when it has real peers.
    upstream: Option<Arc<HttpUpstream>>,
    /// Retries done so far (at most one, on connection failure).
    retries: u8,
    /// When the request header was read.
    started: Instant,
    /// Trace context in and out, and the gateway span.
    trace: Option<RequestTrace>,
    /// The peer of the current attempt, as dialled (`host:port`).
    peer_address: Option<Arc<str>>,
    /// Why the request failed, for the span's `error.type`.
    error: Option<&'static str>,
    /// Held from peer selection until this request holds an upstream HTTP/2 stream.
    dial: Option<dial::DialTicket>,
    /// The status `fail_to_proxy` decided, for the logging phase when no response
    /// could be written (the client left: 499).
    failure_status: Option<u16>,
    /// The forwarding headers (`X-Forwarded-*`, `Forwarded`) every attempt sets.
    forwarding: Vec<(HeaderName, HeaderValue)>,
    /// When the first attempt to reach the upstream began (upstream duration metric).
    upstream_started: Option<Instant>,
    /// The status the upstream answered with (0 = no answer).
    upstream_status: u16,
    /// Counts this request in `tracebridge_requests_in_flight` until the context drops.
    _in_flight: crate::telemetry::metrics::InFlight,
}

impl RequestCtx {
    /// When the request and its first upstream attempt started (`Server-Timing`).
    fn clock(&self) -> edge::Clock {
        edge::Clock {
            started: self.started,
            upstream_started: self.upstream_started,
        }
    }

    fn route_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.route(i))
            .map_or(NO_ROUTE, |r| &*r.name)
    }

    fn upstream_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.route(i))
            .and_then(|r| self.snapshot.upstreams.get(r.upstream))
            .map_or("none", |u| &*u.name)
    }
}

/// The request facts the gateway span records; `template` is `None` without a route.
fn facts<'a>(
    session: &'a Session,
    route: &'a Arc<str>,
    template: Option<&'a Arc<str>>,
    upstream: &'a Arc<str>,
    client: Option<IpAddr>,
) -> RequestFacts<'a> {
    let req = session.req_header();
    let host = req
        .uri
        .host()
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    RequestFacts {
        method: req.method.as_str(),
        path: req.uri.path(),
        scheme: if tls { "https" } else { "http" },
        server_address: host,
        server_port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port()),
        client_address: client.map(|ip| ip.to_string()),
        client_ip: client,
        protocol_version: if session.is_http2() { "2" } else { "1.1" },
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        route,
        route_template: template,
        upstream,
    }
}

/// Sends a complete short response from the gateway itself, with `traceresponse`
/// when the policy asks for it.
async fn respond(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    traceresponse: Option<HeaderValue>,
    edge: Vec<(HeaderName, HeaderValue)>,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("server", "tracebridge")?;
    if let Some(v) = traceresponse {
        resp.insert_header("traceresponse", v)?;
    }
    for (name, value) in edge {
        resp.insert_header(name, value)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// nginx's status for a request its client closed before the response ("client
/// closed request"). No client ever sees it; logs, metrics and the span record it.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Whether `e` means the client left: it closed its connection, or reset its HTTP/2
/// stream (a cancelled gRPC call, an expired deadline). Nothing can be sent to it any
/// more. A downstream HTTP/2 error while proxying is always the stream going away: the
/// request was already parsed and routed.
fn client_went_away(e: &Error) -> bool {
    matches!(e.esource(), ErrorSource::Downstream)
        && matches!(
            e.etype(),
            ErrorType::WriteError
                | ErrorType::ReadError
                | ErrorType::ConnectionClosed
                | ErrorType::H2Error
        )
}

/// The final status already sent to the client, if any (an informational 1xx other
/// than 101 is not final).
fn final_status_sent(session: &Session) -> Option<u16> {
    session
        .response_written()
        .map(|r| r.status)
        .filter(|s| !s.is_informational() || s.as_u16() == 101)
        .map(|s| s.as_u16())
}

/// The body of every response the gateway makes itself (404 no route, 502, 504, ...):
/// `{"error":"<message>","trace_id":"<32 hex>"}` and a newline. `trace_id` only when
/// the request has a trace and its policy sends `traceresponse` (exposing ids to
/// clients is what that switch opts into), as Kong's error bodies carry a
/// `request_id`.
fn error_body(message: &str, trace_id: Option<TraceId>) -> Bytes {
    let mut v = serde_json::json!({ "error": message });
    if let Some(t) = trace_id {
        v["trace_id"] = String::from_utf8_lossy(&t.to_hex()).into_owned().into();
    }
    let mut body = v.to_string().into_bytes();
    body.push(b'\n');
    Bytes::from(body)
}

/// The trace id for an error body and `traceresponse`, when the policy exposes them.
fn exposed(trace: Option<&RequestTrace>) -> (Option<TraceId>, Option<HeaderValue>) {
    let header = trace.and_then(RequestTrace::response_header);
    (
        trace.filter(|_| header.is_some()).map(|t| t.trace_id),
        header,
    )
}

/// How a proxy failure is reported: status, message, metric kind.
fn classify(e: &Error) -> (u16, &'static str, &'static str) {
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

/// Sets the forwarding headers on an outgoing request (each replaces every incoming
/// value of its name).
fn set_forwarding(req: &mut RequestHeader, headers: &[(HeaderName, HeaderValue)]) {
    for (name, value) in headers {
        // Only fails on invalid names or values; these were built valid.
        let _ = req.insert_header(name.clone(), value.clone());
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            snapshot: self.config.load(),
            route: None,
            upstream: None,
            retries: 0,
            started: Instant::now(),
            trace: None,
            peer_address: None,
            error: None,
            dial: None,
            failure_status: None,
            forwarding: Vec::new(),
            upstream_started: None,
            upstream_status: 0,
            _in_flight: self.metrics.in_flight(),
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        limits::header_received(session);
        if ctx.snapshot.server.keepalive_timeout.is_zero() {
            // keepalive_timeout = 0 turns keep-alive off, as in nginx.
            session.set_keepalive(None);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        // new_ctx runs when the connection is ready for a request; reload the snapshot
        // here so a keep-alive connection idle across a reload starts on the newest one.
        ctx.snapshot = self.config.load();
        ctx.started = Instant::now();
        let req = session.req_header();
        let host = req.uri.host().or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        ctx.route = ctx
            .snapshot
            .router
            .find(host, req.uri.path(), &req.method, &req.headers);
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_canonical());
        let trusted_proxies = &ctx.snapshot.server.trusted_proxies;
        let client = peer.map(|p| forwarded::client_address(p, &req.headers, trusted_proxies));
        let Some(route) = ctx.route.and_then(|i| ctx.snapshot.router.route(i)) else {
            // No route, so no route policy: the `[propagation]` defaults give the span,
            // the access log entry and `traceresponse`, as for a proxied request.
            let none: Arc<str> = Arc::from(NO_ROUTE);
            let trace = RequestTrace::begin(
                ctx.snapshot.defaults.clone(),
                &req.headers,
                facts(session, &none, None, &none, client),
                &self.telemetry,
                &self.metrics,
            );
            let (trace_id, header) = exposed(Some(&trace));
            ctx.trace = Some(trace);
            let body = error_body("no route", trace_id);
            let edge = edge::own_response(ctx.trace.as_ref(), req, ctx.clock(), 404);
            respond(session, 404, "application/json", body, header, edge).await?;
            return Ok(true);
        };
        if let Some(peer) = peer {
            let arrival = forwarded::Arrival {
                peer,
                trusted: forwarded::contains(trusted_proxies, peer),
                client: client.unwrap_or(peer),
                scheme: if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
                    "https"
                } else {
                    "http"
                },
                host: req
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| req.uri.authority().map(|a| a.as_str())),
            };
            ctx.forwarding = forwarded::headers(route.policy.forwarded, &arrival, &req.headers);
        }
        let Some(upstream) = ctx.snapshot.upstreams.get(route.upstream) else {
            return Error::e_explain(ErrorType::InternalError, "route names a missing upstream");
        };
        let trace = RequestTrace::begin(
            route.policy.clone(),
            &session.req_header().headers,
            facts(
                session,
                &route.name,
                Some(&route.path_prefix),
                &upstream.name,
                client,
            ),
            &self.telemetry,
            &self.metrics,
        );
        ctx.trace = Some(trace);
        if edge::answer_preflight(session, ctx.trace.as_ref()).await? {
            return Ok(true);
        }
        match &upstream.kind {
            UpstreamKind::Http(up) => {
                ctx.upstream = Some(up.clone());
                Ok(false)
            }
            UpstreamKind::Echo => {
                // Exactly what a real upstream would receive after every filter.
                let mut forwarded = session.req_header().clone();
                ctx.peer_address = Some(Arc::from("echo"));
                set_forwarding(&mut forwarded, &ctx.forwarding);
                if let Some(trace) = &mut ctx.trace {
                    let mut target = UpstreamHeaders(&mut forwarded);
                    trace.inject(&mut target, &self.telemetry, "echo", &self.metrics);
                }
                let body = echo::describe(&forwarded);
                // The echo upstream does not read the request body; close the
                // connection rather than leave an unread body in it.
                if !session.is_body_empty() {
                    session.set_keepalive(None);
                }
                let header = ctx.trace.as_ref().and_then(RequestTrace::response_header);
                let (req, clock) = (session.req_header(), ctx.clock());
                let edge = edge::own_response(ctx.trace.as_ref(), req, clock, 200);
                respond(session, 200, "application/json", body.into(), header, edge).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        if let Some(trace) = &mut ctx.trace {
            trace.attempt();
        }
        ctx.upstream_started.get_or_insert_with(Instant::now);
        let Some(upstream) = &ctx.upstream else {
            return Error::e_explain(ErrorType::InternalError, "no upstream selected");
        };
        // A retry's ticket is released before the next one is taken.
        ctx.dial = None;
        match upstream.select() {
            Some((peer, address)) => {
                ctx.peer_address = Some(address);
                let spec = &upstream.spec;
                if spec.protocol != Protocol::Http1 && spec.max_concurrent_streams > 1 {
                    ctx.dial = self
                        .dial_gates
                        .enter(peer.reuse_hash(), spec.connect_timeout)
                        .await;
                }
                Ok(Box::new(peer))
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

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.dial = None;
        let kind = classify(&e).2;
        self.metrics
            .upstream_failures
            .with_label_values(&[ctx.upstream_name(), kind])
            .inc();
        let retry_allowed = ctx
            .upstream
            .as_ref()
            .is_some_and(|u| u.spec.retry_on_connect_failure);
        // One bounded retry, on the next peer (round robin), for idempotent methods
        // only: a request that never reached a peer is safe to send again.
        if retry_allowed && ctx.retries == 0 && session.req_header().method.is_idempotent() {
            ctx.retries += 1;
            e.set_retry(true);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&Digest>,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // This request holds its stream: the next one may look for a free stream.
        ctx.dial = None;
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        set_forwarding(upstream_request, &ctx.forwarding);
        let peer = ctx.peer_address.as_deref().unwrap_or("-");
        if let Some(trace) = &mut ctx.trace {
            trace.inject(
                &mut UpstreamHeaders(upstream_request),
                &self.telemetry,
                peer,
                &self.metrics,
            );
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        ctx.upstream_status = upstream_response.status.as_u16();
        if let Some(value) = ctx.trace.as_ref().and_then(RequestTrace::response_header) {
            upstream_response.insert_header("traceresponse", value)?;
        }
        let (req, status) = (session.req_header(), ctx.upstream_status);
        let target = &mut edge::DownstreamHeaders(upstream_response);
        edge::finish(ctx.trace.as_ref(), req, ctx.clock(), status, target);
        Ok(())
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        // fail_to_proxy writes the one log line per failed request itself.
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Self::CTX,
        _error: &Error,
        _context: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        // pingora would also warn about every attempt that is retried, so a request
        // that fails on both peers logged twice. Each attempt is counted
        // (`tracebridge_upstream_failures_total`) and fail_to_proxy's one line says
        // how many tries there were.
        true
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let (status, body, kind) = classify(e);
        // Connect-phase failures were counted per attempt in fail_to_connect, and
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
            final_status_sent(session).unwrap_or(CLIENT_CLOSED_REQUEST)
        } else {
            ctx.error = Some(kind);
            status
        };
        ctx.failure_status = Some(code);
        log::log!(
            if gone { Level::Info } else { Level::Warn },
            "{} {} route={} upstream={} status={} tries={} error=\"{}\"",
            session.req_header().method,
            session.req_header().uri.path(),
            ctx.route_name(),
            ctx.upstream_name(),
            code,
            u16::from(ctx.retries) + 1,
            e
        );
        if !gone {
            let (trace_id, header) = exposed(ctx.trace.as_ref());
            let body = error_body(body, trace_id);
            let mut resp = ResponseHeader::build(code, Some(4))
                .unwrap_or_else(|_| pingora::protocols::http::ServerSession::generate_error(code));
            let _ = resp.insert_header("content-type", "application/json");
            let _ = resp.insert_header("content-length", body.len().to_string());
            if let Some(v) = header {
                let _ = resp.insert_header("traceresponse", v);
            }
            let (req, clock) = (session.req_header(), ctx.clock());
            let mut target = edge::DownstreamHeaders(&mut resp);
            edge::finish(ctx.trace.as_ref(), req, clock, code, &mut target);
            if let Err(err) = session.write_error_response(resp, body).await {
                warn!("failed to send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        limits::request_done(session, ctx.snapshot.server.keepalive_timeout);
        // What the client got; else what fail_to_proxy decided (499 for a client that
        // left), so the access log, the metric and the span agree with its log line.
        let status = final_status_sent(session)
            .or(ctx.failure_status)
            .unwrap_or(0);
        if let Some(trace) = &mut ctx.trace {
            trace.finish(status, ctx.error, ctx.peer_address.as_ref());
        }
        let route = ctx.route_name();
        self.metrics
            .requests
            .with_label_values(&[route, status_class(status)])
            .inc();
        let elapsed = ctx.started.elapsed();
        self.metrics
            .request_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        if let Some(started) = ctx.upstream_started {
            // Without an answer from the upstream, the class of the gateway's own 502/504.
            let upstream_status = if ctx.upstream_status > 0 {
                ctx.upstream_status
            } else {
                status
            };
            self.metrics
                .upstream_request_duration
                .with_label_values(&[ctx.upstream_name(), status_class(upstream_status)])
                .observe(started.elapsed().as_secs_f64());
        }
        let trace = ctx.trace.as_ref();
        let mut observation = trace.map_or_else(Observation::default, |t| t.observation);
        let req = session.req_header();
        observation.preflight = coverage::is_cors_preflight(&req.method, &req.headers);
        self.metrics
            .coverage
            .record(&ctx.snapshot, ctx.route, &observation);
        if let Some(sink) = &ctx.snapshot.access_log {
            let now = SystemTime::now();
            let entry = Entry {
                time: now.checked_sub(elapsed).unwrap_or(now),
                route,
                method: req.method.as_str(),
                path: req.uri.path(),
                status,
                duration_ms: elapsed,
                upstream_address: ctx.peer_address.as_deref(),
                bytes_sent: session.body_bytes_sent(),
                trace_id: trace.map(|t| t.trace_id),
                span_id: trace.map(|t| t.span_id),
                parent_id: trace.and_then(|t| t.incoming_parent),
                sampled: trace.map(|t| t.sampled),
                extracted_format: observation.incoming.map(|f| f.as_str()),
                injected_formats: trace
                    .filter(|t| !t.observation.injected.is_empty())
                    .map(|t| t.formats.iter().map(|f| f.as_str()).collect())
                    .unwrap_or_default(),
            };
            access_log::write(sink, &entry, &self.metrics);
        }
    }
}
