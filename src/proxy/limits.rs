//! Downstream connection limits: a deadline for each request header, an idle timeout
//! between keep-alive requests, and a cap on open connections.
//!
//! pingora 0.9 has no such deadline. Its HTTP/1 reader times out each *read* (60 s on a
//! connection's first request, then none at all: `respect_keepalive` makes keep-alive
//! "infinite" for HTTP/1.1), and its h2c preface check reads 24 bytes with no timeout.
//! A client that sends nothing, or a byte every 50 s, or nothing after a response, held
//! its connection (and a file descriptor) for good.
//!
//! So every accepted connection is wrapped in a [`ClientStream`] before pingora's HTTP
//! code reads it. The wrapper fails reads past a deadline that follows the request:
//! armed at accept for `header_timeout`, cleared once the header is parsed
//! ([`header_received`], from `early_request_filter`), re-armed for `keepalive_timeout`
//! when a response is done ([`request_done`], from `logging`), and moved to
//! `header_timeout` from the first byte of the next request — nginx's
//! `client_header_timeout` and `keepalive_timeout`. It is a deadline, not a per-read
//! timeout, so trickling bytes does not extend it.
//!
//! [`Limited`] wraps pingora's `ServerApp`: it admits at most `max_connections`
//! connections and holds a guard for each one's lifetime. At the cap, a new connection
//! takes the place of the oldest one with no request under way (never sent a byte, or
//! idle keep-alive), as nginx does when its `worker_connections` run out; when every
//! connection is busy, the new one is closed at once (Envoy's
//! `max_downstream_connections`). So idle sockets cannot lock new clients out. HTTP/2 connections (TLS ALPN `h2` or the
//! h2c preface) are not given deadlines: pingora's `h2_idle_timeout` covers them.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::fast::head::H2_PREFACE;
use super::fast::Front;
use crate::reload::ConfigHandle;
use crate::telemetry::Metrics;

/// Open-file descriptors kept back from the automatic cap: listeners, the admin
/// listener, the config watcher, the span exporter, log files.
const FD_RESERVE: usize = 32;
/// The automatic cap when the open-file limit cannot be read.
const FALLBACK_CAP: usize = 10_000;

// The connection state is one atomic word: the phase in the top two bits, whether the
// client sent bytes since the deadline was armed in the next, and the deadline (in ms
// since the accept) below.
const PHASE_SHIFT: u32 = 62;
const OPEN: u64 = 0; // no deadline: body, response, upgraded or HTTP/2
const HEADER: u64 = 1; // reading a request header
const IDLE: u64 = 2; // between keep-alive requests
const EXPIRED: u64 = 3; // the deadline passed; every read fails from now on
const BYTES_SEEN: u64 = 1 << 61;
const DEADLINE_MASK: u64 = BYTES_SEEN - 1;
/// The deadline of a keep-alive request's header until a read of it has to wait: most
/// heads arrive whole, and their requests read the clock once fewer (see `poll_fill`).
const UNARMED: u64 = DEADLINE_MASK;

/// The automatic `max_connections`: half the soft open-file limit (each proxied client
/// also holds an upstream socket) after a small reserve.
pub(crate) fn auto_max_connections() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| soft_open_files(&text))
        .map_or(FALLBACK_CAP, cap_for_open_files)
}

/// The cap for a soft open-file limit of `limit` (`None` = unlimited).
fn cap_for_open_files(limit: Option<usize>) -> usize {
    match limit {
        Some(n) => (n.saturating_sub(FD_RESERVE) / 2).max(1),
        None => FALLBACK_CAP * 100,
    }
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text: `Some(None)` when unlimited.
fn soft_open_files(text: &str) -> Option<Option<usize>> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(None)
    } else {
        soft.parse().ok().map(Some)
    }
}

/// Per-connection deadline state, shared by the stream and its [`Limited`] frame.
#[derive(Debug)]
struct ConnState {
    state: AtomicU64,
    base: Instant,
    /// Fired to close the connection to make room for a new one.
    evict: tokio::sync::Notify,
}

impl ConnState {
    fn ms_since_base(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.base).as_millis() as u64).min(UNARMED - 1)
    }

    /// Arms the deadline `timeout` from now, rounded up to a granule of a sixteenth of
    /// the timeout (at most a second): requests that follow each other within a granule
    /// get the same deadline, so the connection's timer is not moved for each of them
    /// (a timer wheel update per request). A 60 s timeout is kept to within a second.
    /// `now` is the caller's clock reading, so a request reads the clock fewer times.
    fn arm(&self, phase: u64, timeout: Duration, now: Instant) {
        let granule = (timeout.as_millis() as u64 / 16).clamp(1, 1000);
        let deadline = self
            .ms_since_base(now + timeout)
            .div_ceil(granule)
            .saturating_mul(granule)
            .min(UNARMED - 1);
        self.state
            .store((phase << PHASE_SHIFT) | deadline, Ordering::Release);
    }

    fn phase(word: u64) -> u64 {
        word >> PHASE_SHIFT
    }

    /// Accepted, and no byte read since: the header deadline armed at the accept.
    fn fresh(&self) -> bool {
        let word = self.state.load(Ordering::Acquire);
        Self::phase(word) == HEADER && word & BYTES_SEEN == 0
    }

    /// No request is under way: waiting for the first byte of one, or idle.
    fn awaiting_request(&self) -> bool {
        let word = self.state.load(Ordering::Acquire);
        match Self::phase(word) {
            IDLE | EXPIRED => true,
            HEADER => word & BYTES_SEEN == 0,
            _ => false,
        }
    }
}

/// A client connection with a request-header deadline and a keep-alive idle timeout.
pub(crate) struct ClientStream {
    inner: Stream,
    conn: Arc<ConnState>,
    /// The header deadline armed at the first byte after an idle period.
    header_timeout: Duration,
    /// Bytes read ahead by [`Peek::try_peek`], served before the socket.
    peeked: BytesMut,
    /// The timer, and the deadline (ms) it is set for; reset rather than reallocated
    /// for each keep-alive request.
    timer: Option<(Pin<Box<tokio::time::Sleep>>, u64)>,
    header_timeouts: IntCounter,
    idle_timeouts: IntCounter,
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("inner", &self.inner)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl ClientStream {
    /// Reads from the socket under the current deadline.
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let word = self.conn.state.load(Ordering::Acquire);
        let phase = ConnState::phase(word);
        if phase == OPEN {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if phase == EXPIRED {
            return Poll::Ready(self.expired(word));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    if phase == IDLE {
                        // The next request began: its header has `header_timeout`,
                        // armed when a read of it has to wait.
                        let header = (HEADER << PHASE_SHIFT) | BYTES_SEEN | UNARMED;
                        self.conn.state.store(header, Ordering::Release);
                    } else {
                        self.conn.state.fetch_or(BYTES_SEEN, Ordering::AcqRel);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let mut word = word;
                if word & DEADLINE_MASK == UNARMED {
                    // The header stalls: its deadline counts from now, which is right
                    // after the read that brought its first bytes (the caller parses
                    // them and reads again at once).
                    self.conn.arm(HEADER, self.header_timeout, Instant::now());
                    word = self.conn.state.fetch_or(BYTES_SEEN, Ordering::AcqRel) | BYTES_SEEN;
                }
                let deadline = word & DEADLINE_MASK;
                let when =
                    tokio::time::Instant::from(self.conn.base + Duration::from_millis(deadline));
                let (timer, at) = self
                    .timer
                    .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(when)), deadline));
                if *at != deadline {
                    timer.as_mut().reset(when);
                    *at = deadline;
                }
                ready!(timer.as_mut().poll(cx));
                self.timer = None;
                let header = phase == HEADER;
                if header {
                    self.header_timeouts.inc();
                } else {
                    self.idle_timeouts.inc();
                }
                let expired = (EXPIRED << PHASE_SHIFT) | u64::from(header);
                self.conn.state.store(expired, Ordering::Release);
                log::debug!(
                    "closing a client connection: {}",
                    if header {
                        "request header not complete in time"
                    } else {
                        "idle keep-alive"
                    }
                );
                Poll::Ready(self.expired(expired))
            }
        }
    }

    /// What a read returns once the deadline passed: end of stream after an idle
    /// keep-alive period (pingora then closes quietly), an error during a header.
    fn expired(&self, word: u64) -> io::Result<()> {
        if word & 1 == 1 {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "request header not complete within server.header_timeout ({})",
                    humantime::format_duration(self.header_timeout)
                ),
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.peeked.is_empty() {
            let n = this.peeked.len().min(buf.remaining());
            buf.put_slice(&this.peeked[..n]);
            this.peeked.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.poll_fill(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for ClientStream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for ClientStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for ClientStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for ClientStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for ClientStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for ClientStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for ClientStream {
    /// Reads ahead (under the header deadline) and keeps the bytes for the next reads.
    /// Stops as soon as the bytes cannot be the HTTP/2 preface — the only thing pingora
    /// peeks for — so a short HTTP/1 request is not held waiting for 24 bytes.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        while self.peeked.len() < buf.len() && H2_PREFACE.starts_with(&self.peeked) {
            let mut chunk = [0u8; 64];
            let want = (buf.len() - self.peeked.len()).min(chunk.len());
            let mut read = ReadBuf::new(&mut chunk[..want]);
            poll_fn(|cx| self.poll_fill(cx, &mut read)).await?;
            if read.filled().is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.peeked.extend_from_slice(read.filled());
        }
        let n = self.peeked.len().min(buf.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        if &self.peeked[..] == H2_PREFACE {
            // HTTP/2: pingora's h2_idle_timeout takes over.
            self.conn
                .state
                .store(OPEN << PHASE_SHIFT, Ordering::Release);
        }
        Ok(true)
    }
}

impl ClientStream {
    /// The request header is complete: no deadline while the request is served.
    pub(crate) fn header_received(&self) {
        self.conn
            .state
            .store(OPEN << PHASE_SHIFT, Ordering::Release);
    }

    /// The response is done: the connection may now sit idle for `keepalive_timeout`.
    /// `now`: the caller's clock reading at the end of the response.
    pub(crate) fn request_done(&self, keepalive_timeout: Duration, now: Instant) {
        self.conn.arm(IDLE, keepalive_timeout, now);
    }
}

/// The client connection under `session`, when it is an HTTP/1 [`ClientStream`].
fn client_stream(session: &pingora::proxy::Session) -> Option<&ClientStream> {
    let stream = session.stream()?;
    (**stream).as_any().downcast_ref::<ClientStream>()
}

/// The request header is complete: no deadline while the request is served.
pub(crate) fn header_received(session: &pingora::proxy::Session) {
    if let Some(c) = client_stream(session) {
        c.header_received();
    }
}

/// The response is done: the connection may now sit idle for `keepalive_timeout`.
pub(crate) fn request_done(
    session: &pingora::proxy::Session,
    keepalive_timeout: Duration,
    now: Instant,
) {
    if let Some(c) = client_stream(session) {
        c.request_done(keepalive_timeout, now);
    }
}

/// How many of the oldest connections are looked at for one to evict, so a cap full
/// of busy connections costs a bounded scan per refused connection.
const EVICTION_SCAN: usize = 64;

/// Open downstream connections, counted against the cap, oldest first.
#[derive(Debug)]
pub struct OpenConnections {
    count: AtomicUsize,
    gauge: IntGauge,
    next_id: AtomicU64,
    by_age: Mutex<BTreeMap<u64, Weak<ConnState>>>,
}

impl OpenConnections {
    /// A counter that mirrors itself into `gauge`.
    pub fn new(gauge: IntGauge) -> Arc<Self> {
        Arc::new(OpenConnections {
            count: AtomicUsize::new(0),
            gauge,
            next_id: AtomicU64::new(0),
            by_age: Mutex::new(BTreeMap::new()),
        })
    }

    /// Connections open now.
    pub fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Counts `conn` in, if fewer than `cap` are open or an idle one could be evicted
    /// for it; `evicted` tells which happened.
    fn admit(self: &Arc<Self>, cap: usize, conn: &Arc<ConnState>) -> Option<(OpenGuard, bool)> {
        let under_cap = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok();
        let evicted = !under_cap && self.evict_idle();
        if !under_cap && !evicted {
            return None;
        }
        if evicted {
            // The evicted connection's slot is handed over; its count drops when its
            // task ends, a moment later.
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        self.gauge.inc();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut by_age) = self.by_age.lock() {
            by_age.insert(id, Arc::downgrade(conn));
        }
        Some((OpenGuard(self.clone(), id), evicted))
    }

    /// Tells the oldest connection with no request under way to close (nginx reuses
    /// idle keep-alive and not-yet-used connections the same way when its
    /// `worker_connections` run out). True if one was found.
    fn evict_idle(&self) -> bool {
        let Ok(mut by_age) = self.by_age.lock() else {
            return false;
        };
        let victim = by_age.iter().take(EVICTION_SCAN).find_map(|(id, conn)| {
            let conn = conn.upgrade()?;
            conn.awaiting_request().then_some((*id, conn))
        });
        match victim {
            Some((id, conn)) => {
                by_age.remove(&id);
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One admitted connection; released when the connection ends.
struct OpenGuard(Arc<OpenConnections>, u64);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Ok(mut by_age) = self.0.by_age.lock() {
            by_age.remove(&self.1);
        }
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

/// The proxy ([`Front`]: the fast path, pingora's proxy behind it) behind the
/// connection cap and the deadlines.
pub(crate) struct Limited {
    inner: Front,
    config: Arc<ConfigHandle>,
    open: Arc<OpenConnections>,
    auto_cap: usize,
    over_limit: IntCounter,
    evicted: IntCounter,
    header_timeouts: IntCounter,
    idle_timeouts: IntCounter,
}

impl Limited {
    /// `inner` limited by the `[server]` settings of the live config (read at each
    /// accept, so a reload applies to new connections).
    pub(crate) fn new(
        inner: Front,
        config: Arc<ConfigHandle>,
        metrics: &Metrics,
        open: Arc<OpenConnections>,
    ) -> Self {
        let closed = |reason: &str| metrics.downstream_closed.with_label_values(&[reason]);
        Limited {
            inner,
            config,
            open,
            auto_cap: auto_max_connections(),
            over_limit: closed("over_limit"),
            evicted: closed("evicted"),
            header_timeouts: closed("header_timeout"),
            idle_timeouts: closed("idle_timeout"),
        }
    }
}

/// How long a connection accepted just before shutdown has to show its first request
/// before the drain closes it as idle.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Resolves when shutdown begins while `conn` has no request under way. pingora drops
/// such connections itself once they wait in its request reader, but not while it
/// peeks for the h2c preface, which would hold a drain until the header deadline. A
/// connection busy at that moment is left to pingora: it closes it after the response.
///
/// A connection that has not yet sent a byte since its accept gets
/// [`FIRST_REQUEST_GRACE`] first. A client sends its request right after the connect,
/// so the bytes are usually on the way, just not read yet. Closing such a connection
/// would fail a request sent to a listening socket: about one in 10,000 during a
/// zero-downtime upgrade's hand-over (`tests/deploy.rs`). Keep-alive connections idle
/// between requests are closed at once, as nginx closes them.
async fn idle_at_shutdown(conn: &ConnState, mut shutdown: ShutdownWatch) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
    if conn.fresh() {
        tokio::time::sleep(FIRST_REQUEST_GRACE).await;
    }
    if !conn.awaiting_request() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when `conn` is told to make room while it still has no request under way
/// (a request may have begun between the choice and this task's turn: it is served).
async fn evicted_while_idle(conn: &ConnState) {
    loop {
        conn.evict.notified().await;
        if conn.awaiting_request() {
            return;
        }
    }
}

/// `main`'s output, or `None` once `side` completes first. Like a biased `select!`,
/// except that `side` is polled only when its own waker fired rather than on every
/// wake of the task: a connection's task wakes a few times per request, and polling
/// the shutdown watch and the eviction `Notify` each time (each takes a lock) was
/// about 600 instructions per keep-alive request.
async fn until<T>(main: impl Future<Output = T>, side: impl Future<Output = ()>) -> Option<T> {
    let mut main = std::pin::pin!(main);
    let mut side = std::pin::pin!(side);
    // Starts fired, so the first poll registers `side`'s waiters.
    let flag = Arc::new(SideWake {
        fired: AtomicBool::new(true),
        task: Mutex::new(None),
    });
    let side_waker = Waker::from(flag.clone());
    let mut registered: Option<Waker> = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = main.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        // The task's waker for `side`'s wake-ups, updated only when it changed
        // (tokio's is the same for the life of the task).
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            if let Ok(mut task) = flag.task.lock() {
                *task = Some(cx.waker().clone());
            }
            registered = Some(cx.waker().clone());
        }
        if flag.fired.swap(false, Ordering::AcqRel)
            && side
                .as_mut()
                .poll(&mut Context::from_waker(&side_waker))
                .is_ready()
        {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// The waker [`until`] gives its side future: notes that it fired and wakes the task.
struct SideWake {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Ok(task) = self.task.lock() {
            if let Some(w) = task.as_ref() {
                w.wake_by_ref();
            }
        }
    }
}

#[async_trait]
impl ServerApp for Limited {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let snapshot = self.config.load();
        let server = &snapshot.server;
        let cap = match server.max_connections {
            0 => self.auto_cap,
            n => n,
        };
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let conn = Arc::new(ConnState {
            state: AtomicU64::new(OPEN << PHASE_SHIFT),
            base: Instant::now(),
            evict: tokio::sync::Notify::new(),
        });
        if !h2 {
            conn.arm(HEADER, server.header_timeout, conn.base);
        }
        let Some((_guard, evicted)) = self.open.admit(cap, &conn) else {
            // Dropping the stream closes it; the connections already open keep working.
            self.over_limit.inc();
            log::debug!("over server.max_connections ({cap}): closing a new connection");
            return None;
        };
        if evicted {
            self.evicted.inc();
        }
        let client = ClientStream {
            inner: stream,
            conn: conn.clone(),
            header_timeout: server.header_timeout,
            peeked: BytesMut::new(),
            timer: None,
            header_timeouts: self.header_timeouts.clone(),
            idle_timeouts: self.idle_timeouts.clone(),
        };
        drop(snapshot);
        let closing = async {
            tokio::select! {
                () = idle_at_shutdown(&conn, shutdown.clone()) => {}
                () = evicted_while_idle(&conn) => {}
            }
        };
        until(self.inner.serve(client, h2, shutdown), closing)
            .await
            .flatten()
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_open_file_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            128                  4096                 files\n";
        assert_eq!(soft_open_files(text), Some(Some(128)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(soft_open_files(unlimited), Some(None));
        // Reason: no such line (not Linux, or a format we do not know).
        assert_eq!(soft_open_files("Max processes 10 10 processes\n"), None);
    }

    #[test]
    fn the_automatic_cap_leaves_room_for_upstream_sockets() {
        // 128 descriptors: 48 clients, each with an upstream socket, plus the reserve.
        assert_eq!(cap_for_open_files(Some(128)), 48);
        assert_eq!(cap_for_open_files(Some(1024)), 496);
        assert_eq!(cap_for_open_files(Some(10)), 1);
        assert!(cap_for_open_files(None) >= FALLBACK_CAP);
    }

    fn conn(phase: u64) -> Arc<ConnState> {
        let c = Arc::new(ConnState {
            state: AtomicU64::new(0),
            base: Instant::now(),
            evict: tokio::sync::Notify::new(),
        });
        c.arm(phase, Duration::from_secs(1), Instant::now());
        c
    }

    fn busy() -> Arc<ConnState> {
        let c = conn(HEADER);
        c.state.fetch_or(BYTES_SEEN, Ordering::AcqRel);
        c
    }

    #[test]
    fn the_cap_admits_up_to_its_size_and_releases_on_drop() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let open = OpenConnections::new(gauge.clone());
        let (a, b, c) = (busy(), busy(), busy());
        let (ga, _) = open.admit(2, &a).unwrap();
        let (gb, _) = open.admit(2, &b).unwrap();
        // Reason: both admitted connections are busy, none can be evicted.
        assert!(open.admit(2, &c).is_none());
        assert_eq!((open.get(), gauge.get()), (2, 2));
        drop(ga);
        let _gc = open.admit(2, &c).unwrap();
        drop(gb);
        assert_eq!((open.get(), gauge.get()), (1, 1));
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_is_evicted() {
        let open = OpenConnections::new(IntGauge::new("g", "g").unwrap());
        let (old_busy, old_idle, young_idle) = (busy(), conn(IDLE), conn(HEADER));
        let _g1 = open.admit(3, &old_busy).unwrap();
        let _g2 = open.admit(3, &old_idle).unwrap();
        let _g3 = open.admit(3, &young_idle).unwrap();
        let newcomer = busy();
        let (_g4, evicted) = open.admit(3, &newcomer).unwrap();
        assert!(evicted);
        let fired = |c: &ConnState| {
            let waiter = c.evict.notified();
            futures_executor::block_on(async {
                tokio::select! {
                    biased;
                    () = waiter => true,
                    () = std::future::ready(()) => false,
                }
            })
        };
        assert!(fired(&old_idle), "the oldest idle connection goes first");
        assert!(!fired(&old_busy) && !fired(&young_idle));
    }

    #[test]
    fn a_request_is_under_way_once_header_bytes_arrived() {
        let conn = conn(HEADER);
        assert!(conn.awaiting_request());
        conn.state.fetch_or(BYTES_SEEN, Ordering::AcqRel);
        assert!(!conn.awaiting_request());
        conn.arm(IDLE, Duration::from_secs(1), Instant::now());
        assert!(conn.awaiting_request());
        conn.state.store(OPEN << PHASE_SHIFT, Ordering::Release);
        assert!(!conn.awaiting_request());
    }
}
