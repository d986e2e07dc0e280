//! The pingora `ProxyHttp` implementation: routing, the echo upstream, peer
//! selection with one bounded retry, and error responses.
//!
//! Every request loads the config snapshot once, in its first filter, and keeps it in
//! its context to the end: one generation per request.

mod echo;
pub mod limits;
pub mod trace;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use log::warn;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use crate::config::{HttpUpstream, Snapshot, UpstreamKind};
use crate::reload::ConfigHandle;
use crate::telemetry::access_log::{self, Entry};
use crate::telemetry::coverage::Observation;
use crate::telemetry::metrics::{status_class, Metrics, NO_ROUTE};
use crate::telemetry::Telemetry;
use trace::{RequestFacts, RequestTrace, UpstreamHeaders};

/// The gateway's proxy logic, shared by every worker thread.
pub struct Gateway {
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
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
    /// For a request that matched no route: what it brought (coverage view).
    unrouted: Observation,
}

impl RequestCtx {
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

/// The request facts the gateway span records.
fn facts<'a>(
    session: &'a Session,
    route: &'a crate::config::Route,
    upstream: &'a Arc<str>,
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
        client_address: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string()),
        protocol_version: if session.is_http2() { "2" } else { "1.1" },
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        route: &route.name,
        route_template: &route.path_prefix,
        upstream,
    }
}

/// Sends a complete short response from the gateway itself.
async fn respond(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("server", "tracebridge")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// How a proxy failure is reported: status, short body, metric kind.
fn classify(e: &Error) -> (u16, &'static str, &'static str) {
    match e.etype() {
        ErrorType::HTTPStatus(code) => (*code, "error\n", "other"),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            (504, "upstream timed out\n", "timeout")
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => (502, "upstream unreachable\n", "connect"),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "upstream error\n", "other"),
            ErrorSource::Downstream => (400, "bad request\n", "downstream"),
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal error\n", "other"),
        },
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
            unrouted: Observation::default(),
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
        let Some(route) = ctx.route.and_then(|i| ctx.snapshot.router.route(i)) else {
            ctx.unrouted = trace::observe_unrouted(&req.headers);
            respond(
                session,
                404,
                "text/plain",
                Bytes::from_static(b"no route\n"),
            )
            .await?;
            return Ok(true);
        };
        let Some(upstream) = ctx.snapshot.upstreams.get(route.upstream) else {
            return Error::e_explain(ErrorType::InternalError, "route names a missing upstream");
        };
        let trace = RequestTrace::begin(
            route.policy.clone(),
            &session.req_header().headers,
            facts(session, route, &upstream.name),
            &self.telemetry,
            &self.metrics,
        );
        let snapshot = ctx.snapshot.clone();
        let kind = snapshot.upstreams.get(route.upstream).map(|u| &u.kind);
        ctx.trace = Some(trace);
        match kind {
            Some(UpstreamKind::Http(up)) => {
                ctx.upstream = Some(up.clone());
                Ok(false)
            }
            Some(UpstreamKind::Echo) => {
                // Exactly what a real upstream would receive after every filter.
                let mut forwarded = session.req_header().clone();
                ctx.peer_address = Some(Arc::from("echo"));
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
                respond(session, 200, "application/json", Bytes::from(body)).await?;
                Ok(true)
            }
            None => Error::e_explain(ErrorType::InternalError, "route names a missing upstream"),
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
        let Some(upstream) = &ctx.upstream else {
            return Error::e_explain(ErrorType::InternalError, "no upstream selected");
        };
        match upstream.select() {
            Some((peer, address)) => {
                ctx.peer_address = Some(address);
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

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
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
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(value) = ctx.trace.as_ref().and_then(RequestTrace::response_header) {
            upstream_response.insert_header("traceresponse", value)?;
        }
        Ok(())
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        // fail_to_proxy writes the one log line per failed request itself.
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
        let code = if matches!(e.esource(), ErrorSource::Downstream)
            && matches!(
                e.etype(),
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
            ) {
            0 // the client is gone: nothing to answer
        } else {
            status
        };
        // A client that went away after its response is not a failed request.
        if code > 0 {
            ctx.error = Some(kind);
        }
        warn!(
            "{} {} route={} upstream={} status={} error=\"{}\"",
            session.req_header().method,
            session.req_header().uri.path(),
            ctx.route_name(),
            ctx.upstream_name(),
            code,
            e
        );
        if code > 0 {
            let mut resp = ResponseHeader::build(code, Some(3))
                .unwrap_or_else(|_| pingora::protocols::http::ServerSession::generate_error(code));
            let _ = resp.insert_header("content-type", "text/plain");
            let _ = resp.insert_header("content-length", body.len().to_string());
            if let Err(err) = session
                .write_error_response(resp, Bytes::from_static(body.as_bytes()))
                .await
            {
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
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
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
        let trace = ctx.trace.as_ref();
        let observation = trace.map_or(ctx.unrouted, |t| t.observation);
        self.metrics
            .coverage
            .record(&ctx.snapshot, ctx.route, &observation);
        if let Some(sink) = &ctx.snapshot.access_log {
            let req = session.req_header();
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
