//! The pingora `ProxyHttp` implementation (the fallback path): pingora's session
//! described to the shared request [`core`], the echo upstream, peer selection with
//! one bounded retry, and error responses.
//!
//! Every request loads the config snapshot once, in its first filter, and keeps it in
//! its context to the end: one generation per request.

pub(crate) mod core;
mod dial;
mod echo;
mod edge;
pub mod fast;
pub(crate) mod limits;
pub mod trace;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use log::warn;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error, ErrorType};

use crate::codec::HeaderSink;
use crate::config::validate::Protocol;
use crate::reload::ConfigHandle;
use crate::telemetry::Metrics;
use crate::telemetry::Telemetry;
pub use core::RequestCtx;
use core::{Arrival, Core, Done, Reply, Routed};
use trace::UpstreamHeaders;

/// The gateway's proxy logic, shared by every worker thread.
pub struct Gateway {
    core: Arc<Core>,
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
            core: Arc::new(Core {
                config,
                metrics,
                telemetry,
            }),
            dial_gates: dial::DialGates::default(),
        }
    }

    /// The request core this gateway shares with the fast path.
    pub(crate) fn core(&self) -> Arc<Core> {
        self.core.clone()
    }
}

/// pingora's request as the core's [`Arrival`].
fn arrival(session: &Session) -> Arrival<'_, HeaderMap> {
    let req = session.req_header();
    Arrival {
        method: &req.method,
        path: req.uri.path(),
        authority: req.uri.authority().map(|a| a.as_str()),
        headers: &req.headers,
        host_header: req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok()),
        peer: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        peer_text: None,
        tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        local_port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port()),
        http2: session.is_http2(),
    }
}

/// pingora's response header for one of the gateway's own replies.
fn reply_header(reply: &Reply) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(reply.status, Some(4 + reply.headers.len()))?;
    if !reply.body.is_empty() {
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", reply.body.len().to_string())?;
    }
    resp.insert_header("server", "tracebridge")?;
    for (name, value) in &reply.headers {
        resp.insert_header(name.clone(), value.clone())?;
    }
    Ok(resp)
}

/// Sends a complete short response from the gateway itself.
async fn respond(session: &mut Session, reply: Reply) -> Result<()> {
    let resp = reply_header(&reply)?;
    let empty = reply.body.is_empty();
    session.write_response_header(Box::new(resp), empty).await?;
    if !empty {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
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

/// pingora's response header as a header sink.
struct ResponseHeaders<'a>(&'a mut ResponseHeader);

impl HeaderSink for ResponseHeaders<'_> {
    fn set(&mut self, name: http::HeaderName, value: HeaderValue) {
        // insert_header only fails on invalid names or values; these are built valid.
        let _ = self.0.insert_header(name, value);
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        self.core.new_ctx()
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
        *ctx = self.core.new_ctx();
        let arrival = arrival(session);
        self.core.route(ctx, &arrival);
        match self.core.begin(ctx, &arrival, None) {
            Routed::Upstream(_) => Ok(false),
            Routed::Reply(reply) => {
                respond(session, reply).await?;
                Ok(true)
            }
            Routed::Echo => {
                // Exactly what a real upstream would receive after every filter.
                let mut forwarded = session.req_header().clone();
                ctx.peer_address = Some(Arc::from("echo"));
                self.core
                    .prepare_upstream(ctx, &mut UpstreamHeaders(&mut forwarded));
                let body = echo::describe(&forwarded);
                // The echo upstream does not read the request body; close the
                // connection rather than leave an unread body in it.
                if !session.is_body_empty() {
                    session.set_keepalive(None);
                }
                let req = session.req_header();
                let mut reply = self.core.reply(ctx, 200, "", (&req.method, &req.headers));
                reply.body = Bytes::from(body);
                respond(session, reply).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        // A retry's ticket is released before the next one is taken.
        ctx.dial = None;
        let address = self.core.pick_peer(ctx)?;
        let Some(upstream) = &ctx.upstream else {
            return Error::e_explain(ErrorType::InternalError, "no upstream selected");
        };
        let peer = upstream.peer(address);
        let spec = &upstream.spec;
        if spec.protocol != Protocol::Http1 && spec.max_concurrent_streams > 1 {
            ctx.dial = self
                .dial_gates
                .enter(peer.reuse_hash(), spec.connect_timeout)
                .await;
        }
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.dial = None;
        let retry = self
            .core
            .connect_failed(ctx, &e, &session.req_header().method);
        e.set_retry(retry);
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
        self.core
            .prepare_upstream(ctx, &mut UpstreamHeaders(upstream_request));
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        let req = session.req_header();
        let mut added = Vec::new();
        self.core.upstream_answered(
            ctx,
            status,
            (&req.method, &req.headers),
            &upstream_response.headers,
            &mut added,
        );
        let mut target = ResponseHeaders(upstream_response);
        for (name, value) in added {
            target.set(name, value);
        }
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
        let req = session.req_header();
        let reply = self.core.failed(
            ctx,
            e,
            (&req.method, &req.headers),
            req.uri.path(),
            final_status_sent(session),
        );
        let code = ctx.failure_status.unwrap_or(500);
        if let Some(reply) = reply {
            let resp = reply_header(&reply)
                .unwrap_or_else(|_| pingora::protocols::http::ServerSession::generate_error(code));
            if let Err(err) = session.write_error_response(resp, reply.body).await {
                warn!("failed to send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let req = session.req_header();
        let done = Done {
            status: final_status_sent(session).unwrap_or(0),
            method: &req.method,
            path: req.uri.path(),
            headers: &req.headers,
            bytes_sent: session.body_bytes_sent(),
        };
        let ended = self.core.finish(ctx, &done);
        limits::request_done(session, ctx.snapshot.server.keepalive_timeout, ended);
    }
}
