//! The HTTP/1 fast path: the common request proxied without pingora-proxy's
//! per-request machinery.
//!
//! [`Front`] owns every client connection after the [`super::limits`] frame. For an
//! HTTP/1 connection it runs one loop for the connection's whole life, with buffers
//! reused from request to request: it reads a request head ([`head::parse_request`]),
//! and when the request is simple — origin-form, no `Transfer-Encoding`, no upgrade, a
//! body of known length up to [`head::MAX_FAST_BODY`], HTTP/1.1, routed to a plain
//! HTTP/1 upstream — it proxies it itself through the shared request [`Core`]: the same
//! routing, mediation, span, metrics and access log as the fallback. The upstream head
//! goes out in one write on a pooled connection ([`pool`]), the response head is parsed
//! and relayed with the gateway's headers, and the body is passed through.
//!
//! Everything else is handed to pingora's `HttpProxy<Gateway>` (the fallback) on the
//! same connection with the bytes already read: HTTP/2 (ALPN `h2` or the h2c
//! preface) for the whole connection, and for one request at a time anything the
//! parser delegates (chunked or `Expect` bodies, upgrades and WebSocket, HTTP/1.0,
//! absolute-form targets, large bodies) or that routes to an echo, TLS or HTTP/2
//! upstream. When pingora is done with that request and the connection can be reused,
//! it comes back to this loop. `[server] fast_path = false` sends every connection to
//! the fallback.
//!
//! Requests the parser rejects (smuggling shapes, malformed heads, oversized heads) get
//! a 400/431/505 with `Connection: close` from here, whichever path would have served
//! them: the fast path is also the fallback's front door for HTTP/1.

#[doc(hidden)]
pub mod differential;
pub mod head;
mod pool;

use std::future::Future;
use std::net::IpAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{GetSocketDigest, Peek, Ssl, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::core::{Arrival, Core, Done, ForwardingMemo, Reply, RequestCtx, Routed};
use super::limits::ClientStream;
use super::Gateway;
use crate::codec::{is_field_value, HeaderSink};
use crate::config::validate::Protocol;
use crate::config::{HttpUpstream, UpstreamKind};
use crate::mediate::HeaderEdit;
use head::{Framing, HeaderSpan, Known, Lines, Parsed, RequestHead, ResponseHead, H2_PREFACE};

/// How long a write to a client may wait for the client to read (nginx's
/// `send_timeout`, 60 s): a client that stops reading does not hold its connection and
/// the upstream's for good.
const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// What serves client connections: the fast path, with pingora's proxy behind it.
pub(crate) struct Front {
    core: Arc<Core>,
    proxy: Arc<HttpProxy<Gateway>>,
}

impl Front {
    /// The front of `proxy`, sharing its request `core` (the gateway's).
    pub(crate) fn new(core: Arc<Core>, proxy: HttpProxy<Gateway>) -> Self {
        Front {
            core,
            proxy: Arc::new(proxy),
        }
    }

    /// pingora's cleanup of the fallback (wakes keep-alive sessions at shutdown).
    pub(crate) async fn cleanup(&self) {
        ServerApp::cleanup(&*self.proxy).await
    }

    /// Serves one client connection to its end.
    pub(crate) async fn serve(
        &self,
        mut client: ClientStream,
        h2_alpn: bool,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let (fast_path, h2c) = {
            let snapshot = self.core.config.load();
            (snapshot.server.fast_path, snapshot.server.h2c)
        };
        let mut whole_connection = match (h2_alpn, fast_path) {
            (true, _) => Some("h2"),
            (false, false) => Some("disabled"),
            (false, true) => None,
        };
        if whole_connection.is_none() && h2c && client.get_ssl_digest().is_none() {
            // As pingora does: peek for the h2c preface (the bytes stay in the stream).
            let mut preface = [0u8; H2_PREFACE.len()];
            match client.try_peek(&mut preface).await {
                Ok(_) if preface == *H2_PREFACE => whole_connection = Some("h2c"),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        if let Some(reason) = whole_connection {
            self.delegated(reason);
            return self.proxy.process_new(Box::new(client), shutdown).await;
        }
        let addresses = client.get_socket_digest();
        let peer = addresses
            .as_ref()
            .and_then(|d| d.peer_addr())
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_canonical());
        let mut conn = Conn {
            // Sized for a typical request and response head: a thousand keep-alive
            // connections hold about 12 MiB of buffers; they grow for bigger messages.
            buf: BytesMut::with_capacity(2048),
            spans: Vec::with_capacity(16),
            edits: EditList::default(),
            out: Vec::with_capacity(2048),
            rbuf: BytesMut::with_capacity(4096),
            rspans: Vec::with_capacity(16),
            added: Vec::new(),
            deadline: Deadline::new(),
            peer,
            peer_text: peer.map(|p| Arc::from(p.to_string())),
            local_port: addresses
                .as_ref()
                .and_then(|d| d.local_addr())
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
            tls: client.get_ssl_digest().is_some(),
            forwarding: ForwardingMemo::default(),
        };
        loop {
            match self.one(&mut client, &mut conn, shutdown).await {
                Next::KeepAlive => {}
                Next::Close => return None,
                Next::Delegate(reason) => {
                    self.delegated(reason);
                    client = self.delegate(client, &mut conn, shutdown).await?;
                }
            }
        }
    }

    fn delegated(&self, reason: &str) {
        self.core
            .metrics
            .fast_path_delegated
            .with_label_values(&[reason])
            .inc();
    }

    /// Hands the request at the front of `conn.buf` (and the connection) to pingora;
    /// the connection back when pingora is done with it and it can be reused.
    async fn delegate(
        &self,
        client: ClientStream,
        conn: &mut Conn,
        shutdown: &ShutdownWatch,
    ) -> Option<ClientStream> {
        let mut session = ServerSession::new_http1(Box::new(client));
        if !conn.buf.is_empty() {
            session.set_pipelined_prefix(conn.buf.split());
        }
        // What pingora's own HTTP/1 accept loop sets per request.
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let reused = self.proxy.process_new_http(session, shutdown).await?;
        let (stream, _) = reused.consume();
        stream
            .into_any()
            .downcast::<ClientStream>()
            .ok()
            .map(|c| *c)
    }

    /// Reads and serves one request.
    async fn one(
        &self,
        client: &mut ClientStream,
        conn: &mut Conn,
        shutdown: &ShutdownWatch,
    ) -> Next {
        let req = loop {
            match head::parse_request(&conn.buf, &mut conn.spans) {
                Parsed::Partial => match read_more(client, &mut conn.buf).await {
                    Ok(0) | Err(_) => return Next::Close,
                    Ok(_) => {}
                },
                // HTTP/1.0 clients (no chunked responses, keep-alive by opt-in) are rare
                // enough to leave to pingora.
                Parsed::Fast(req) if req.http10 => return Next::Delegate("http/1.0"),
                Parsed::Fast(req) => break req,
                Parsed::Delegate(reason) => return Next::Delegate(reason),
                Parsed::Reject { status, reason } => {
                    log::debug!("rejected a request head: {status} {reason}");
                    self.core
                        .metrics
                        .fast_path_rejected
                        .with_label_values(&[&status.to_string()])
                        .inc();
                    let reply = Reply {
                        status,
                        body: super::core::error_body(reason, None),
                        headers: Vec::new(),
                    };
                    let mut out = std::mem::take(&mut conn.out);
                    out.clear();
                    reply_head(&mut out, &reply, true);
                    out.extend_from_slice(&reply.body);
                    let _ = send(client, &out).await;
                    return Next::Close;
                }
            }
        };
        // The body (bounded by the parser) is read under the header deadline too.
        let total = req.head_len + req.body_len as usize;
        while conn.buf.len() < total {
            match read_more(client, &mut conn.buf).await {
                Ok(0) | Err(_) => return Next::Close,
                Ok(_) => {}
            }
        }
        client.header_received();
        let head = conn.buf.split_to(req.head_len).freeze();
        let body = conn.buf.split_to(req.body_len as usize).freeze();
        let Ok(target) = std::str::from_utf8(&head[req.target.clone()]) else {
            restore(&mut conn.buf, &head, &body);
            return Next::Delegate("target");
        };
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        // One clock reading for the request's start, its first upstream attempt and a
        // pooled connection's deadline.
        let ready = Instant::now();
        let mut ctx = self.core.new_ctx_at(ready);
        let arrival = Arrival {
            method: &req.method,
            path,
            authority: None,
            // The fields, not `conn.lines`: `begin` borrows `conn.forwarding` meanwhile.
            headers: &Lines {
                head: &head,
                spans: &conn.spans,
            },
            // The parser checked its bytes (`valid_host`): visible ASCII.
            host_header: req
                .host
                .and_then(|i| std::str::from_utf8(&head[conn.spans[i].value.clone()]).ok()),
            peer: conn.peer,
            peer_text: conn.peer_text.as_ref(),
            tls: conn.tls,
            local_port: conn.local_port,
            http2: false,
        };
        let ours = match self.core.route(&mut ctx, &arrival) {
            None => true,
            Some(UpstreamKind::Http(up)) => up.spec.protocol == Protocol::Http1 && !up.spec.tls,
            Some(UpstreamKind::Echo) => false,
        };
        if !ours {
            restore(&mut conn.buf, &head, &body);
            return Next::Delegate("route");
        }
        let keepalive = ctx.snapshot.server.keepalive_timeout;
        let mut close = req.close || keepalive.is_zero() || *shutdown.borrow();
        let (status, sent) = match self
            .core
            .begin(&mut ctx, &arrival, Some(&mut conn.forwarding))
        {
            Routed::Upstream(up) => {
                let exchange = Exchange {
                    req: &req,
                    head: &head,
                    body: &body,
                    upstream: &up,
                };
                match self
                    .forward(&mut ctx, client, conn, &exchange, ready, &mut close)
                    .await
                {
                    Ok(done) => done,
                    Err((e, sent)) => {
                        let reply = self.core.failed(
                            &mut ctx,
                            &e,
                            (&req.method, &conn.lines(&head)),
                            path,
                            sent,
                        );
                        close = true;
                        match reply {
                            Some(reply) if sent.is_none() => {
                                let written = write_reply(client, conn, &reply, true).await;
                                (if written { reply.status } else { 0 }, 0)
                            }
                            _ => (sent.unwrap_or(0), 0),
                        }
                    }
                }
            }
            Routed::Reply(reply) => {
                if !write_reply(client, conn, &reply, close).await {
                    close = true;
                }
                (reply.status, reply.body.len())
            }
            Routed::Echo => {
                // Routing said HTTP: the echo upstream never reaches here.
                let reply = self
                    .core
                    .reply(&ctx, 500, "internal error", arrival.request());
                close = true;
                let _ = write_reply(client, conn, &reply, true).await;
                (500, 0)
            }
        };
        let ended = self.core.finish(
            &mut ctx,
            &Done {
                status,
                method: &req.method,
                path,
                headers: &conn.lines(&head),
                bytes_sent: sent,
            },
        );
        drop(ctx);
        if close {
            return Next::Close;
        }
        client.request_done(keepalive, ended);
        Next::KeepAlive
    }

    /// Sends the request to a peer of its upstream and relays the response. The
    /// status the client got and the body bytes sent, or the error with the final
    /// status already sent, if any.
    async fn forward(
        &self,
        ctx: &mut RequestCtx,
        client: &mut ClientStream,
        conn: &mut Conn,
        x: &Exchange<'_>,
        ready: Instant,
        close: &mut bool,
    ) -> Result<(u16, usize), (Box<Error>, Option<u16>)> {
        let spec = &x.upstream.spec;
        let idempotent = x.req.method.is_idempotent();
        // After a pooled connection failed under the request, the retry takes a fresh one.
        let mut stale_retried = false;
        // Nothing awaited since `ready`: it is when the first attempt began.
        ctx.upstream_started.get_or_insert(ready);
        loop {
            let address = self.core.pick_peer(ctx).map_err(|e| (e, None))?;
            let pooled = if stale_retried {
                None
            } else {
                pool::checkout(&address, ready)
            };
            let reused = pooled.is_some();
            // When the request goes out: a pooled connection is written to at once.
            let (mut stream, sent_at) = match pooled {
                Some(s) => (s, ready),
                None => match connect(&address, spec.connect_timeout).await {
                    Ok(s) => (s, Instant::now()),
                    Err(e) if self.core.connect_failed(ctx, &e, &x.req.method) => continue,
                    Err(e) => return Err((e, None)),
                },
            };
            // Connected: this attempt's head, with the forwarding headers and the trace
            // context (pingora's upstream_request_filter runs at the same point).
            conn.edits.clear();
            self.core.inject(
                ctx,
                &mut Edits {
                    arrival: Lines {
                        head: x.head,
                        spans: &conn.spans,
                    },
                    edits: &mut conn.edits,
                },
            );
            let forwarding = self.core.forwarding(ctx);
            upstream_head(&mut conn.out, x, &conn.spans, &conn.edits, forwarding);
            // The body (at most MAX_FAST_BODY) goes in the same write as the head.
            conn.out.extend_from_slice(x.body);
            match self
                .exchange(ctx, client, conn, x, (&mut stream, sent_at), close)
                .await
            {
                Ok((status, sent, reusable)) => {
                    if reusable {
                        // Idle since the request went out, as far as the pool knows:
                        // an earlier time than the truth, so it expires no later.
                        pool::checkin(&address, stream, spec.idle_timeout, sent_at);
                    }
                    return Ok((status, sent));
                }
                // A pooled connection the peer closed just before our request: nothing
                // was processed, so an idempotent request is tried once more, as a new
                // attempt (pingora and nginx retry the same way).
                Err(Failure::Stale(_)) if reused && idempotent && !stale_retried => {
                    stale_retried = true;
                    ctx.retries = ctx.retries.saturating_add(1);
                }
                Err(Failure::Stale(e)) => return Err((e, None)),
                Err(Failure::Failed(e, sent)) => return Err((e, sent)),
            }
        }
    }

    /// One request on one upstream connection: the head and body out, the response
    /// back to the client. `Ok((status, body bytes sent, upstream reusable))`.
    async fn exchange(
        &self,
        ctx: &mut RequestCtx,
        client: &mut ClientStream,
        conn: &mut Conn,
        x: &Exchange<'_>,
        (upstream, sent_at): (&mut TcpStream, Instant),
        close: &mut bool,
    ) -> Result<(u16, usize, bool), Failure> {
        let spec = &x.upstream.spec;
        let stale = |e| Failure::Stale(e);
        // Usually the whole request fits the socket's send buffer: one non-blocking
        // write, with no deadline to arm. What is left waits under `write_timeout`.
        let out = &conn.out;
        let written = match upstream.try_write(out) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                return Err(stale(
                    Error::because(ErrorType::WriteError, "upstream I/O", e).into_up(),
                ))
            }
        };
        if written < out.len() {
            conn.deadline.arm(spec.write_timeout, Instant::now());
            conn.deadline
                .within(
                    ErrorType::WriteTimedout,
                    upstream.write_all(&out[written..]),
                )
                .await
                .map_err(stale)?;
        }
        conn.deadline.arm(spec.read_timeout, sent_at);
        conn.rbuf.clear();
        let head_request = x.req.method == Method::HEAD;
        let resp = loop {
            match head::parse_response(&conn.rbuf, &mut conn.rspans, head_request) {
                Ok(Some(r)) if r.status == 101 => {
                    return Err(Failure::Failed(
                        Error::explain(ErrorType::InvalidHTTPHeader, "101 without an upgrade")
                            .into_up(),
                        None,
                    ))
                }
                Ok(Some(r)) if r.status < 200 => {
                    // 1xx (103 Early Hints): relayed as they come.
                    send(client, &conn.rbuf[..r.head_len])
                        .await
                        .map_err(|e| Failure::Failed(e, None))?;
                    conn.rbuf.advance(r.head_len);
                }
                Ok(Some(r)) => break r,
                Ok(None) => {
                    let n = read_head_watching(
                        upstream,
                        &mut conn.rbuf,
                        client,
                        &mut conn.buf,
                        &mut conn.deadline,
                    )
                    .await;
                    match n {
                        Err(e) if e.esource() == &pingora::ErrorSource::Downstream => {
                            return Err(Failure::Failed(e, None))
                        }
                        Ok(0) if conn.rbuf.is_empty() => {
                            return Err(stale(
                                Error::explain(
                                    ErrorType::ConnectionClosed,
                                    "upstream closed the connection before responding",
                                )
                                .into_up(),
                            ))
                        }
                        Ok(0) => {
                            return Err(Failure::Failed(
                                Error::explain(
                                    ErrorType::InvalidHTTPHeader,
                                    "upstream closed the connection in the response head",
                                )
                                .into_up(),
                                None,
                            ))
                        }
                        Ok(_) => {}
                        Err(e) if conn.rbuf.is_empty() && e.etype() != &ErrorType::ReadTimedout => {
                            return Err(stale(e))
                        }
                        Err(e) => return Err(Failure::Failed(e, None)),
                    }
                }
                Err(reason) => {
                    return Err(Failure::Failed(
                        Error::explain(ErrorType::InvalidHTTPHeader, reason).into_up(),
                        None,
                    ))
                }
            }
        };
        if resp.framing == Framing::UntilClose {
            *close = true;
        }
        conn.added.clear();
        let arrival = Lines {
            head: x.head,
            spans: &conn.spans,
        };
        // The response lines passed the same parser checks as the request's.
        let answer = Lines {
            head: &conn.rbuf,
            spans: &conn.rspans,
        };
        self.core.upstream_answered(
            ctx,
            resp.status,
            (&x.req.method, &arrival),
            &answer,
            &mut conn.added,
        );
        response_head(
            &mut conn.out,
            &conn.rbuf,
            &resp,
            &conn.rspans,
            &conn.added,
            *close,
        );
        conn.rbuf.advance(resp.head_len);
        let sent = self
            .relay_body(client, conn, upstream, &resp, spec.read_timeout)
            .await
            .map_err(|e| Failure::Failed(e, Some(resp.status)))?;
        let reusable = !resp.close && resp.framing != Framing::UntilClose && conn.rbuf.is_empty();
        Ok((resp.status, sent, reusable))
    }

    /// Sends the response head in `conn.out` and the body after it, as framed. Body
    /// bytes sent.
    async fn relay_body(
        &self,
        client: &mut ClientStream,
        conn: &mut Conn,
        upstream: &mut TcpStream,
        resp: &ResponseHead,
        read_timeout: Duration,
    ) -> pingora::Result<usize> {
        let mut sent = 0usize;
        match resp.framing {
            Framing::Empty => {
                send(client, &conn.out).await?;
            }
            Framing::Length(len) => {
                let mut left = len;
                let first = (conn.rbuf.len() as u64).min(left) as usize;
                conn.out.extend_from_slice(&conn.rbuf[..first]);
                conn.rbuf.advance(first);
                left -= first as u64;
                sent += first;
                send_unflushed(client, &conn.out).await?;
                while left > 0 {
                    conn.rbuf.clear();
                    let n =
                        read_upstream(upstream, &mut conn.rbuf, &mut conn.deadline, read_timeout)
                            .await?;
                    if n == 0 {
                        return Error::e_explain(
                            ErrorType::ConnectionClosed,
                            "upstream closed the connection in the body",
                        )
                        .map_err(|e: Box<Error>| e.into_up());
                    }
                    let take = (conn.rbuf.len() as u64).min(left) as usize;
                    send_unflushed(client, &conn.rbuf[..take]).await?;
                    conn.rbuf.advance(take);
                    left -= take as u64;
                    sent += take;
                }
                flush(client).await?;
            }
            Framing::Chunked => {
                let mut end = head::ChunkedEnd::default();
                send_unflushed(client, &conn.out).await?;
                loop {
                    if !conn.rbuf.is_empty() {
                        let done = end.feed(&conn.rbuf).map_err(|reason| {
                            Error::explain(ErrorType::InvalidHTTPHeader, reason).into_up()
                        })?;
                        let take = done.unwrap_or(conn.rbuf.len());
                        send_unflushed(client, &conn.rbuf[..take]).await?;
                        conn.rbuf.advance(take);
                        sent = usize::try_from(end.data_bytes()).unwrap_or(usize::MAX);
                        if done.is_some() {
                            break;
                        }
                    }
                    conn.rbuf.clear();
                    if read_upstream(upstream, &mut conn.rbuf, &mut conn.deadline, read_timeout)
                        .await?
                        == 0
                    {
                        return Err(Error::explain(
                            ErrorType::ConnectionClosed,
                            "upstream closed the connection in a chunked body",
                        )
                        .into_up());
                    }
                }
                flush(client).await?;
            }
            Framing::UntilClose => {
                send_unflushed(client, &conn.out).await?;
                loop {
                    if !conn.rbuf.is_empty() {
                        send_unflushed(client, &conn.rbuf).await?;
                        sent += conn.rbuf.len();
                        conn.rbuf.clear();
                    }
                    if read_upstream(upstream, &mut conn.rbuf, &mut conn.deadline, read_timeout)
                        .await?
                        == 0
                    {
                        break;
                    }
                }
                flush(client).await?;
            }
        }
        Ok(sent)
    }
}

/// What the loop does after a request.
enum Next {
    KeepAlive,
    Close,
    /// The request at the front of the buffer goes to pingora, for this reason.
    Delegate(&'static str),
}

/// How an exchange with the upstream failed.
enum Failure {
    /// Before any response byte, on the connection's first use of this request: a
    /// pooled connection may have been closed by the peer meanwhile.
    Stale(Box<Error>),
    /// Anything else, with the status already sent to the client, if any.
    Failed(Box<Error>, Option<u16>),
}

/// Per-connection buffers, reused from request to request.
struct Conn {
    /// Bytes read from the client and not yet consumed (the next request's, when
    /// pipelined).
    buf: BytesMut,
    /// The request's header lines, as parsed (the core reads them through [`Lines`]).
    spans: Vec<HeaderSpan>,
    /// What mediation set or removed for the current attempt.
    edits: EditList,
    /// The outgoing head being built (upstream request, then client response).
    out: Vec<u8>,
    /// Bytes read from the upstream.
    rbuf: BytesMut,
    rspans: Vec<HeaderSpan>,
    /// Headers the gateway adds to the response.
    added: Vec<(HeaderName, HeaderValue)>,
    /// The upstream read and write deadlines.
    deadline: Deadline,
    peer: Option<IpAddr>,
    /// `peer` as text, formatted once for every request of the connection.
    peer_text: Option<Arc<str>>,
    local_port: Option<u16>,
    tls: bool,
    /// The forwarding headers of the previous request, reused when they still apply.
    forwarding: ForwardingMemo,
}

impl Conn {
    /// The request's header lines in `head`, as the core reads them. Made afresh where
    /// they are read: the view borrows `self`, which the exchange borrows mutably.
    fn lines<'a>(&'a self, head: &'a [u8]) -> Lines<'a> {
        Lines {
            head,
            spans: &self.spans,
        }
    }
}

/// One request's parts for the upstream exchange.
struct Exchange<'a> {
    req: &'a RequestHead,
    head: &'a Bytes,
    body: &'a Bytes,
    upstream: &'a HttpUpstream,
}

/// Puts a request split off the buffer back at its front (for the fallback).
fn restore(buf: &mut BytesMut, head: &Bytes, body: &Bytes) {
    let mut whole = BytesMut::with_capacity(head.len() + body.len() + buf.len());
    whole.extend_from_slice(head);
    whole.extend_from_slice(body);
    whole.extend_from_slice(buf);
    *buf = whole;
}

/// The upstream request head: the request line as received (origin-form, HTTP/1.1),
/// every end-to-end header line as received (spelling, order and spacing) except those
/// mediation edited or the forwarding headers replace, then mediation's values, then the
/// forwarding headers.
fn upstream_head(
    out: &mut Vec<u8>,
    x: &Exchange<'_>,
    spans: &[HeaderSpan],
    edits: &EditList,
    forwarding: &[(HeaderName, HeaderValue)],
) {
    // The names a request header may be replaced by; most headers are none of them,
    // and the length alone says so without comparing.
    let mut replacing = edits.lens;
    for (name, _) in forwarding {
        replacing.add(name.as_str().len());
    }
    out.clear();
    out.extend_from_slice(x.req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(&x.head[x.req.target.clone()]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    copy_lines(out, x.head, spans, |s, name| {
        let replaced = |n: &HeaderName| n.as_str().as_bytes().eq_ignore_ascii_case(name);
        !(s.known.hop_by_hop()
            || replacing.may_hold(name.len())
                && (edits.edits().any(|(n, _)| n.eq_ignore_ascii_case(name))
                    || forwarding.iter().any(|(n, _)| replaced(n))))
    });
    out.extend_from_slice(&edits.lines);
    for (name, value) in forwarding {
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Copies the header lines of a parsed `head` that `keep` accepts, as they arrived:
/// each consecutive run of kept lines in one copy. A field's line runs from its name to
/// the next field's name, or to the head's final CRLF: the parsers accept only CRLF line
/// ends and no folded lines, so the lines tile the head.
fn copy_lines(
    out: &mut Vec<u8>,
    head: &[u8],
    spans: &[HeaderSpan],
    mut keep: impl FnMut(&HeaderSpan, &[u8]) -> bool,
) {
    let mut run: Option<usize> = None;
    for s in spans {
        if keep(s, &head[s.name.clone()]) {
            run.get_or_insert(s.name.start);
        } else if let Some(start) = run.take() {
            out.extend_from_slice(&head[start..s.name.start]);
        }
    }
    if let Some(start) = run {
        out.extend_from_slice(&head[start..head.len() - 2]);
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    // One capacity check for the four pieces.
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The response head for the client: the upstream's status line (as HTTP/1.1) and
/// end-to-end header lines as received, the gateway's own (`added` replaces the
/// upstream's of the same name), and `Connection: close` when the connection ends
/// after it.
fn response_head(
    out: &mut Vec<u8>,
    rbuf: &[u8],
    resp: &ResponseHead,
    spans: &[HeaderSpan],
    added: &[(HeaderName, HeaderValue)],
    close: bool,
) {
    out.clear();
    // "HTTP/1.x " is 9 bytes; the status code and reason follow up to the line end.
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&rbuf[9..resp.status_line_end.max(9)]);
    out.extend_from_slice(b"\r\n");
    copy_lines(out, &rbuf[..resp.head_len], spans, |s, name| {
        let chunked_te = resp.framing == Framing::Chunked && s.known == Known::TransferEncoding;
        !((s.known.hop_by_hop() && !chunked_te)
            || added
                .iter()
                .any(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(name)))
    });
    for (name, value) in added {
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The head of a reply the gateway makes itself.
fn reply_head(out: &mut Vec<u8>, reply: &Reply, close: bool) {
    let status =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    if !reply.body.is_empty() {
        header_line(out, b"content-type", b"application/json");
        header_line(
            out,
            b"content-length",
            reply.body.len().to_string().as_bytes(),
        );
    } else if reply.status != 204 && reply.status != 304 {
        header_line(out, b"content-length", b"0");
    }
    header_line(out, b"server", b"tracebridge");
    for (name, value) in &reply.headers {
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if close {
        header_line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes one of the gateway's own replies; false when the client is gone.
async fn write_reply(
    client: &mut ClientStream,
    conn: &mut Conn,
    reply: &Reply,
    close: bool,
) -> bool {
    conn.out.clear();
    reply_head(&mut conn.out, reply, close);
    conn.out.extend_from_slice(&reply.body);
    send(client, &conn.out).await.is_ok()
}

/// What mediation set or removed for one attempt: one entry per name, the last edit
/// winning. The values set are kept as their header lines, in the order written, in
/// `lines`: the upstream head takes them in one copy. An entry holds its line's place
/// (`None`: removed), so a later edit of the same name can take the line out.
///
/// Names are kept as bytes (`names`, back to back), not as `HeaderName`s: a name is
/// written once per edit and compared only when its length matches another's, while a
/// `HeaderName` clone and drop per edit go through `Bytes`' vtable for every name the
/// `http` crate does not know (`b3`, `x-b3-*`, `uber-trace-id`).
#[derive(Debug, Default)]
struct EditList {
    items: Vec<Edit>,
    /// Every edited name, lowercase (as `HeaderName` spells it), back to back.
    names: Vec<u8>,
    /// `name: value\r\n` of every value set and not replaced since.
    lines: Vec<u8>,
    /// The lengths of the names in `items`.
    lens: NameLens,
}

/// One edited name: its place in [`EditList::names`], and its line's in
/// [`EditList::lines`] (`None`: removed).
#[derive(Debug)]
struct Edit {
    name: Range<usize>,
    line: Option<Range<usize>>,
}

impl EditList {
    fn clear(&mut self) {
        self.items.clear();
        self.names.clear();
        self.lines.clear();
        self.lens = NameLens::default();
    }

    /// The names edited, with their lines (`None`: removed).
    fn edits(&self) -> impl Iterator<Item = (&[u8], &Option<Range<usize>>)> {
        self.items
            .iter()
            .map(|e| (&self.names[e.name.clone()], &e.line))
    }

    /// Where `name` (lowercase) is in `items`.
    fn find(&self, name: &[u8]) -> Option<usize> {
        if !self.lens.may_hold(name.len()) {
            return None;
        }
        self.items
            .iter()
            .position(|e| &self.names[e.name.clone()] == name)
    }

    fn get(&self, name: &HeaderName) -> Option<&Option<Range<usize>>> {
        self.find(name.as_str().as_bytes())
            .map(|at| &self.items[at].line)
    }

    /// Sets `name` to `value`, which the caller has checked is a valid field value.
    fn set(&mut self, name: &HeaderName, value: &[u8]) {
        let name = name.as_str().as_bytes();
        let start = self.lines.len();
        header_line(&mut self.lines, name, value);
        self.record(name, Some(start..self.lines.len()));
    }

    fn record(&mut self, name: &[u8], line: Option<Range<usize>>) {
        if let Some(at) = self.find(name) {
            self.record_again(at, line);
            return;
        }
        self.lens.add(name.len());
        let start = self.names.len();
        self.names.extend_from_slice(name);
        self.items.push(Edit {
            name: start..self.names.len(),
            line,
        });
    }

    /// A name edited again (the budget's second pass, a format re-injected after its
    /// strip): its earlier line goes, the lines after it move up. Out of line and cold:
    /// a request's edits name each header once, and [`Self::record`] stays small.
    #[cold]
    #[inline(never)]
    fn record_again(&mut self, at: usize, mut line: Option<Range<usize>>) {
        if let Some(old) = self.items[at].line.take() {
            self.lines.drain(old.clone());
            let up = |r: &mut Range<usize>| {
                if r.start >= old.end {
                    *r = r.start - old.len()..r.end - old.len();
                }
            };
            self.items
                .iter_mut()
                .filter_map(|e| e.line.as_mut())
                .for_each(up);
            line.as_mut().map(up);
        }
        self.items[at].line = line;
    }
}

/// A set of header-name lengths (modulo 64): a name whose length is not in it is none
/// of the names it was made from. Mediation edits about ten names and a request carries
/// about as many; lengths tell almost all of them apart with one AND instead of a
/// search of name comparisons per name.
#[derive(Debug, Clone, Copy, Default)]
struct NameLens(u64);

impl NameLens {
    fn add(&mut self, len: usize) {
        self.0 |= 1 << (len % 64);
    }

    fn may_hold(self, len: usize) -> bool {
        self.0 & 1 << (len % 64) != 0
    }
}

/// The mediation target of the fast path: the request's headers as they arrived,
/// read-only, and the edits made for this attempt for [`upstream_head`] to write. Each
/// attempt starts again from the arrival, as pingora's does from a fresh copy of the
/// request.
struct Edits<'a> {
    arrival: Lines<'a>,
    edits: &'a mut EditList,
}

impl HeaderSink for Edits<'_> {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.edits.set(&name, value.as_bytes());
    }

    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        let ok = is_field_value(value);
        if ok {
            self.edits.set(name, value);
        }
        ok
    }

    fn set_vec(&mut self, name: &HeaderName, value: Vec<u8>) -> bool {
        self.set_bytes(name, &value)
    }
}

impl HeaderEdit for Edits<'_> {
    fn names_with_prefix(&self, prefix: &str) -> Vec<HeaderName> {
        let mut names = crate::mediate::prefixed(&self.arrival, prefix);
        names.retain(|n| self.edits.get(n).is_none());
        // Edited names were `HeaderName`s, so they parse again.
        names.extend(
            self.edits
                .edits()
                .filter(|(n, line)| line.is_some() && n.starts_with(prefix.as_bytes()))
                .filter_map(|(n, _)| HeaderName::from_bytes(n).ok()),
        );
        names
    }

    fn remove(&mut self, name: &HeaderName) {
        self.edits.record(name.as_str().as_bytes(), None);
    }
}

/// Reads more client bytes into `buf` (under the connection's deadlines).
async fn read_more(client: &mut ClientStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    client.read_buf(buf).await
}

/// A new connection to an upstream peer within `limit`. A plain tokio socket with
/// `TCP_NODELAY`, not pingora's connector: the fast path's upstreams are plain HTTP/1
/// peers with no per-peer socket options in tracebridge's config, and pingora's
/// `Stream` adds a write buffer and timing records to every read and write.
async fn connect(
    address: &pingora::protocols::l4::socket::SocketAddr,
    limit: Duration,
) -> pingora::Result<TcpStream> {
    let Some(addr) = address.as_inet() else {
        return Error::e_explain(ErrorType::ConnectError, "not an IP peer");
    };
    let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                _ => ErrorType::ConnectError,
            };
            return Err(Error::because(kind, format!("connecting to {addr}"), e).into_up());
        }
        Err(_) => {
            return Err(
                Error::explain(ErrorType::ConnectTimedout, format!("connecting to {addr}"))
                    .into_up(),
            )
        }
    };
    // Small heads go out at once (pingora sets it on its upstream sockets too).
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Reads more upstream bytes into `buf` within `limit` (nginx's
/// `proxy_read_timeout`: between two reads).
async fn read_upstream(
    upstream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: &mut Deadline,
    limit: Duration,
) -> pingora::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    deadline.arm(limit, Instant::now());
    deadline
        .within(ErrorType::ReadTimedout, upstream.read_buf(buf))
        .await
}

/// Reads response-head bytes from the upstream before the connection's deadline,
/// watching the client as pingora and nginx do: a client that closes its connection
/// ends the wait (a downstream `ConnectionClosed`, recorded as 499); bytes it sends
/// meanwhile (a pipelined request) are kept in `client_buf`. Watching costs no system
/// call: tokio marks the client socket not readable once a read drained it.
async fn read_head_watching(
    upstream: &mut TcpStream,
    rbuf: &mut BytesMut,
    client: &mut ClientStream,
    client_buf: &mut BytesMut,
    deadline: &mut Deadline,
) -> pingora::Result<usize> {
    if rbuf.capacity() - rbuf.len() < 1024 {
        rbuf.reserve(4096);
    }
    loop {
        // Pipelined bytes are bounded like a request head.
        let watch = client_buf.len() < head::MAX_HEAD_BYTES;
        tokio::select! {
            biased;
            read = upstream.read_buf(rbuf) => {
                return read.map_err(|e| Error::because(ErrorType::ReadError, "upstream I/O", e).into_up());
            }
            read = read_more(client, client_buf), if watch => match read {
                Ok(0) | Err(_) => {
                    return Err(Error::explain(
                        ErrorType::ConnectionClosed,
                        "client closed the connection before the response",
                    )
                    .into_down());
                }
                Ok(_) => {}
            },
            () = deadline.sleep.as_mut() => {
                return Err(Error::explain(ErrorType::ReadTimedout, "upstream did not answer in time").into_up());
            }
        }
    }
}

/// The upstream deadlines of a connection: one timer, reset rather than re-created,
/// and only moved when a new deadline falls outside a small granule of the current one
/// (a sixteenth of the timeout, at most a second), so that back-to-back requests leave
/// it registered as it is instead of updating the timer wheel twice each.
struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    at: tokio::time::Instant,
}

impl Deadline {
    fn new() -> Self {
        let at = tokio::time::Instant::now() + Duration::from_secs(86_400);
        Deadline {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// The deadline `limit` after `from` (up to a granule later): the caller's clock
    /// reading, so a request reads the clock fewer times.
    fn arm(&mut self, limit: Duration, from: Instant) {
        let granule = (limit / 16).clamp(Duration::from_millis(1), Duration::from_secs(1));
        let want = tokio::time::Instant::from_std(from) + limit;
        if self.at < want || self.at > want + granule {
            self.at = want + granule;
            self.sleep.as_mut().reset(self.at);
        }
    }

    /// `io` before the deadline; an I/O error or the timeout as an upstream error.
    async fn within<T>(
        &mut self,
        on_timeout: ErrorType,
        io: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> pingora::Result<T> {
        tokio::select! {
            biased;
            done = io => done.map_err(|e| Error::because(ErrorType::ReadError, "upstream I/O", e).into_up()),
            () = self.sleep.as_mut() => {
                Err(Error::explain(on_timeout, "upstream did not answer in time").into_up())
            }
        }
    }
}

/// Writes and flushes to the client; a failure means the client is gone.
async fn send(client: &mut ClientStream, bytes: &[u8]) -> pingora::Result<()> {
    send_unflushed(client, bytes).await?;
    flush(client).await
}

async fn send_unflushed(client: &mut ClientStream, bytes: &[u8]) -> pingora::Result<()> {
    let written = |r: std::io::Result<()>| {
        r.map_err(|e| Error::because(ErrorType::WriteError, "writing to the client", e).into_down())
    };
    let mut write = std::pin::pin!(client.write_all(bytes));
    // A write that completes at once (the usual case) arms no timer: no clock reading
    // and no timer wheel entry.
    if let Poll::Ready(r) = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        return written(r);
    }
    match tokio::time::timeout(CLIENT_SEND_TIMEOUT, write).await {
        Ok(r) => written(r),
        Err(_) => {
            Err(Error::explain(ErrorType::WriteTimedout, "client did not read in time").into_down())
        }
    }
}

async fn flush(client: &mut ClientStream) -> pingora::Result<()> {
    client
        .flush()
        .await
        .map_err(|e| Error::because(ErrorType::WriteError, "writing to the client", e).into_down())
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::codec::HeaderSource;
    use crate::mediate::HeaderEdit;

    /// The spans of `name:value` lines (`\n` between them), as the parser would make.
    fn spans_of(head: &[u8]) -> Vec<HeaderSpan> {
        let mut spans = Vec::new();
        let mut at = 0;
        for line in head.split(|&b| b == b'\n') {
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                spans.push(HeaderSpan {
                    name: at..at + colon,
                    value: at + colon + 1..at + line.len(),
                    known: Known::Other,
                });
            }
            at += line.len() + 1;
        }
        spans
    }

    /// The map pingora's path would hold for the same lines.
    fn map_of(lines: &Lines<'_>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines.fields() {
            map.append(
                HeaderName::from_bytes(name).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_view_of_the_lines_reads_as_a_map_does() {
        let head = b"Host:a\nB3:1\nx-a:2\nX-A:3\nUberctx-K:v";
        let spans = spans_of(head);
        let lines = Lines {
            head,
            spans: &spans,
        };
        let name = HeaderName::from_static;
        let values = |n| lines.values(&name(n)).collect::<Vec<_>>();
        assert_eq!(values("b3"), [b"1"]);
        assert_eq!(
            values("x-a"),
            [b"2", b"3"],
            "every value, in order, any case"
        );
        assert!(values("x-b").is_empty() && !lines.contains(&name("x-b")));
        assert!(lines.contains(&name("host")));
        assert_eq!(lines.fields().count(), 5);
        assert_eq!(
            crate::mediate::prefixed(&lines, "uberctx-"),
            [name("uberctx-k")],
            "names come out lowercase"
        );
        assert_eq!(
            crate::codec::present(&lines),
            crate::codec::present(&map_of(&lines))
        );
    }

    proptest::proptest! {
        /// Extraction, trust and sampling read the fast path's lines exactly as they read
        /// pingora's map of the same fields: one implementation for both paths, whatever
        /// the case of the names, repeats and the order.
        #[test]
        fn mediation_plans_alike_from_lines_and_from_a_map(
            fields in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "traceparent", "TraceParent", "tracestate", "b3", "B3",
                        "x-b3-traceid", "X-B3-SpanId", "x-b3-sampled", "uber-trace-id",
                        "uberctx-k", "UberCtx-K", "ot-baggage-a", "baggage", "Baggage",
                        "x-datadog-trace-id", "x-datadog-parent-id", "x-request-id",
                        "x-amzn-trace-id", "sw8", "grpc-trace-bin", "x-cloud-trace-context",
                    ]),
                    proptest::sample::select(vec![
                        "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
                        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
                        "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", "1", "0",
                        "k=v", "a=1,b=2", "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", " x ", "",
                        "12345", "\u{e9}",
                    ]),
                ),
                0..8,
            )
        ) {
            let mut head = Vec::new();
            for (name, value) in &fields {
                head.extend_from_slice(name.as_bytes());
                head.push(b':');
                head.extend_from_slice(value.as_bytes());
                head.push(b'\n');
            }
            let spans = spans_of(&head);
            let lines = Lines { head: &head, spans: &spans };
            let map = map_of(&lines);
            let mut policy = crate::mediate::Policy {
                extract: crate::codec::Format::ALL.to_vec(),
                ..Default::default()
            };
            policy.request_id.header = Some(HeaderName::from_static("x-request-id"));
            policy.request_id.trace = true;
            proptest::prop_assert_eq!(
                crate::mediate::plan(&policy, &lines),
                crate::mediate::plan(&policy, &map)
            );
        }
    }

    #[test]
    fn edits_read_through_to_the_arrival_and_shadow_it() {
        let head = b"uberctx-a:1\nb3:0";
        let spans = spans_of(head);
        let arrival = Lines {
            head,
            spans: &spans,
        };
        let mut edits = EditList::default();
        let mut e = Edits {
            arrival,
            edits: &mut edits,
        };
        let name = |n: &'static str| HeaderName::from_static(n);
        // Not edited (None), set (Some(true)) or removed (Some(false)).
        let edit = |e: &Edits<'_>, n: &'static str| e.edits.get(&name(n)).map(Option::is_some);
        e.set(name("uberctx-x"), HeaderValue::from_static("2"));
        assert_eq!(edit(&e, "b3"), None);
        assert_eq!(edit(&e, "uberctx-x"), Some(true));
        let mut prefixed = e.names_with_prefix("uberctx-");
        prefixed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(prefixed, [name("uberctx-a"), name("uberctx-x")]);
        e.remove(&name("uberctx-a"));
        e.remove(&name("uberctx-x"));
        e.remove(&name("b3"));
        assert_eq!(edit(&e, "b3"), Some(false));
        assert_eq!(edit(&e, "uberctx-x"), Some(false));
        assert!(e.names_with_prefix("uberctx-").is_empty());
        e.set(name("b3"), HeaderValue::from_static("1"));
        // Same lengths, other names: the length set only narrows the search.
        e.set(name("b4"), HeaderValue::from_static("2"));
        e.remove(&name("uberctx-y"));
        assert_eq!(edit(&e, "b4"), Some(true));
        assert_eq!(edit(&e, "uberctx-y"), Some(false));
        assert_eq!(edit(&e, "b3"), Some(true));
        assert!(
            !e.set_bytes(&name("x-injected"), b"1\r\nx-evil: 1"),
            "a value that would end its line is refused"
        );
        assert_eq!(edit(&e, "x-injected"), None);
        assert_eq!(
            edits.items.len(),
            5,
            "one edit per name, the last one winning"
        );
        assert_eq!(edits.edits().nth(2).map(|(n, _)| n), Some(&b"b3"[..]));
        assert_eq!(
            edits.lines, b"b3: 1\r\nb4: 2\r\n",
            "only the values set, the last one"
        );
        let mut e = Edits {
            arrival,
            edits: &mut edits,
        };
        e.set(name("b3"), HeaderValue::from_static("3"));
        e.set(name("x-c"), HeaderValue::from_static("4"));
        e.set(name("b4"), HeaderValue::from_static("5"));
        e.set(name("x-c"), HeaderValue::from_static("6"));
        assert_eq!(edits.lines, b"b3: 3\r\nb4: 5\r\nx-c: 6\r\n");
        let places: Vec<_> = edits.edits().filter_map(|(_, l)| l.clone()).collect();
        assert_eq!(
            places,
            [0..7, 7..14, 14..22],
            "each entry still finds its line"
        );
        assert_eq!(
            arrival.values(&name("b3")).collect::<Vec<_>>(),
            [b"0"],
            "the arrival itself is never changed"
        );
    }
}
