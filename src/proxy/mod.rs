//! The pingora `ProxyHttp` implementation: routing, the echo upstream, peer
//! selection with one bounded retry, and error responses.
//!
//! Every request loads the config snapshot once, in its first filter, and keeps it in
//! its context to the end: one generation per request.

mod echo;

use std::sync::Arc;
use std::time::Instant;

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
use crate::telemetry::metrics::{status_class, Metrics, NO_ROUTE};

/// The gateway's proxy logic, shared by every worker thread.
pub struct Gateway {
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// A gateway reading its config from `config`.
    pub fn new(config: Arc<ConfigHandle>, metrics: Arc<Metrics>) -> Self {
        Gateway { config, metrics }
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
}

impl RequestCtx {
    fn route_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.route(i))
            .map_or(NO_ROUTE, |r| r.name.as_str())
    }

    fn upstream_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.route(i))
            .and_then(|r| self.snapshot.upstreams.get(r.upstream))
            .map_or("none", |u| u.name.as_str())
    }
}

/// The request header as it leaves the gateway. Real upstreams get it in
/// `upstream_request_filter`; the echo upstream describes exactly this, so what it
/// shows is what a real upstream would have received.
fn prepare_upstream_request(_req: &mut RequestHeader, _ctx: &RequestCtx) {
    // Trace-context mediation (extract → span → inject) plugs in here.
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
        }
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
            respond(
                session,
                404,
                "text/plain",
                Bytes::from_static(b"no route\n"),
            )
            .await?;
            return Ok(true);
        };
        let upstream_index = route.upstream;
        match ctx.snapshot.upstreams.get(upstream_index).map(|u| &u.kind) {
            Some(UpstreamKind::Http(up)) => {
                ctx.upstream = Some(up.clone());
                Ok(false)
            }
            Some(UpstreamKind::Echo) => {
                let mut forwarded = session.req_header().clone();
                prepare_upstream_request(&mut forwarded, ctx);
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
        let Some(upstream) = &ctx.upstream else {
            return Error::e_explain(ErrorType::InternalError, "no upstream selected");
        };
        match upstream.select() {
            Some(peer) => Ok(Box::new(peer)),
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
        prepare_upstream_request(upstream_request, ctx);
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
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route_name();
        self.metrics
            .requests
            .with_label_values(&[route, status_class(status)])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
    }
}
