//! A real OTLP trace receiver, decoding with opentelemetry-proto: the collector side of
//! the telemetry tests (`tests/support`) and the span sink of the load benchmark
//! (`benches/load_sink.rs`, which includes this file with `#[path]`). It depends on no
//! other test helper, only on dev-dependencies.
//!
//! One hyper server (HTTP/1.1 and h2c, auto-detected) on one port answers both
//! transports:
//!
//! - OTLP/HTTP: `POST /v1/traces`, protobuf body (`content-encoding: gzip` accepted);
//! - OTLP/gRPC: content type `application/grpc*`, the unary call
//!   `/opentelemetry.proto.collector.trace.v1.TraceService/Export` over h2c: one
//!   length-prefixed message (flag 1 = gzip), answered with a framed empty
//!   `ExportTraceServiceResponse` and `grpc-status` in the trailers;
//! - `GET /stats`: `{"spans":N,"requests":M}`, what arrived so far.
//!
//! [`CollectorMode`] decides the answer; `Count` keeps only counters, so a load run of
//! millions of spans uses constant memory.

use std::convert::Infallible;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::oneshot;

/// A response body: one data frame (if any), then optional trailers (gRPC status
/// travels in trailers).
pub struct OriginBody {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl OriginBody {
    /// `data` as one frame (none when `None`), then `trailers`.
    pub fn new(data: Option<Bytes>, trailers: Option<http::HeaderMap>) -> OriginBody {
        OriginBody { data, trailers }
    }
}

impl hyper::body::Body for OriginBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let frame = if let Some(data) = self.data.take() {
            Some(Ok(hyper::body::Frame::data(data)))
        } else {
            self.trailers
                .take()
                .map(|t| Ok(hyper::body::Frame::trailers(t)))
        };
        std::task::Poll::Ready(frame)
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CollectorMode {
    /// Success, and keep the spans.
    Ok = 0,
    /// HTTP 500 / gRPC 13 (INTERNAL).
    Fail = 1,
    /// HTTP 429 / gRPC 8 (RESOURCE_EXHAUSTED).
    Throttle = 2,
    /// Never answer (hold the request for 10 s).
    Hang = 3,
    /// Success, counting spans and requests without keeping them.
    Count = 4,
}

impl CollectorMode {
    fn from_u8(v: u8) -> CollectorMode {
        match v {
            0 => CollectorMode::Ok,
            1 => CollectorMode::Fail,
            2 => CollectorMode::Throttle,
            3 => CollectorMode::Hang,
            _ => CollectorMode::Count,
        }
    }
}

/// The spans of an export request, for [`CollectorMode::Count`]: the request is
/// decoded down to its spans, which stay undecoded byte slices of the body. A load
/// sink that decoded every attribute would take CPU from the load generator beside
/// it; this still rejects a malformed request.
fn count_spans(raw: Bytes) -> Option<u64> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Request {
        #[prost(message, repeated, tag = "1")]
        resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct ResourceSpans {
        #[prost(message, repeated, tag = "2")]
        scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct ScopeSpans {
        #[prost(bytes = "bytes", repeated, tag = "2")]
        spans: Vec<Bytes>,
    }
    let request = Request::decode(raw).ok()?;
    Some(
        request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len() as u64)
            .sum(),
    )
}

/// What every connection shares.
#[derive(Default)]
struct State {
    mode: AtomicU8,
    received: Mutex<Vec<ExportTraceServiceRequest>>,
    spans: AtomicU64,
    requests: AtomicU64,
    compressed: AtomicU64,
    /// The `x-tenant` header of the last export request (checks configured headers).
    tenant: Mutex<Option<String>>,
}

/// The receiver, running on a thread of its own until dropped.
pub struct OtlpReceiver {
    /// Its (first) address.
    pub addr: SocketAddr,
    /// Every address it listens on.
    pub addrs: Vec<SocketAddr>,
    state: Arc<State>,
    _server: Background,
}

impl OtlpReceiver {
    /// Starts it in `mode` on a free loopback port.
    pub fn start(mode: CollectorMode) -> OtlpReceiver {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), mode).expect("bind receiver")
    }

    /// Starts it in `mode` on `addr`; fails when the address cannot be bound.
    pub fn start_on(addr: SocketAddr, mode: CollectorMode) -> std::io::Result<OtlpReceiver> {
        Self::start_on_all(&[addr], mode)
    }

    /// Starts it in `mode` on every one of `addrs` (at least one), all counting into
    /// the same totals; `addr` is the first. Fails when an address cannot be bound.
    pub fn start_on_all(
        addrs: &[SocketAddr],
        mode: CollectorMode,
    ) -> std::io::Result<OtlpReceiver> {
        let mut listeners = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            listeners.push(listener);
        }
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        let addr = *addrs.first().ok_or(std::io::ErrorKind::InvalidInput)?;
        let state = Arc::new(State {
            mode: AtomicU8::new(mode as u8),
            ..State::default()
        });
        let (tx, rx) = oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                for listener in listeners {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::spawn(accept_loop(listener, shared.clone()));
                }
                // Dropping the runtime when this returns ends the accept loops.
                let _ = rx.await;
            });
        });
        Ok(OtlpReceiver {
            addr,
            addrs,
            state,
            _server: Background::new(tx, thread),
        })
    }

    /// Changes how it answers from now on.
    pub fn set_mode(&self, mode: CollectorMode) {
        self.state.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Spans received and accepted so far (every successful mode counts).
    pub fn span_count(&self) -> u64 {
        self.state.spans.load(Ordering::Relaxed)
    }

    /// Export requests received so far, whatever the answer.
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Export requests whose message came gzip-compressed.
    pub fn compressed_count(&self) -> u64 {
        self.state.compressed.load(Ordering::Relaxed)
    }

    /// The `x-tenant` header of the last export request, if it had one.
    pub fn last_tenant(&self) -> Option<String> {
        self.state.tenant.lock().unwrap().clone()
    }

    /// Every span kept so far (mode `Ok`), with its resource.
    pub fn spans(&self) -> Vec<(Resource, Span)> {
        let mut out = Vec::new();
        for req in self.state.received.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let resource = rs.resource.clone().unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((resource.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    /// Waits until at least `n` spans were kept (or panics after 10 s).
    pub fn wait_for(&self, n: usize) -> Vec<(Resource, Span)> {
        poll_until(Duration::from_secs(10), || {
            let spans = self.spans();
            if spans.len() >= n {
                Ok(spans)
            } else {
                Err(format!("receiver got {} of {n} spans", spans.len()))
            }
        })
    }
}

/// A server thread and the signal that stops it: dropping it stops the thread and
/// waits for it.
pub struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Owns `thread`, which ends when `stop` fires.
    pub fn new(stop: oneshot::Sender<()>, thread: JoinHandle<()>) -> Background {
        Background {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// gRPC status codes this receiver answers with.
const GRPC_OK: &str = "0";
const GRPC_INVALID_ARGUMENT: &str = "3";
const GRPC_RESOURCE_EXHAUSTED: &str = "8";
const GRPC_INTERNAL: &str = "13";
const GRPC_UNAVAILABLE: &str = "14";

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<OriginBody>, Infallible> {
    if req.method() == http::Method::GET && req.uri().path() == "/stats" {
        let json = format!(
            "{{\"spans\":{},\"requests\":{}}}",
            state.spans.load(Ordering::Relaxed),
            state.requests.load(Ordering::Relaxed)
        );
        return Ok(response(
            200,
            "application/json",
            Some(Bytes::from(json)),
            None,
        ));
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let grpc = header("content-type").starts_with("application/grpc");
    let gzip_body = header("content-encoding") == "gzip";
    *state.tenant.lock().unwrap() = Some(header("x-tenant")).filter(|t| !t.is_empty());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    state.requests.fetch_add(1, Ordering::Relaxed);
    // gRPC: the first byte of the length-prefixed message is its compressed flag.
    if gzip_body || (grpc && body.first() == Some(&1)) {
        state.compressed.fetch_add(1, Ordering::Relaxed);
    }
    let mode = CollectorMode::from_u8(state.mode.load(Ordering::Relaxed));
    let raw = if grpc {
        grpc_message(&body)
    } else if gzip_body {
        gunzip(&body)
    } else {
        Some(body.to_vec())
    };
    let outcome = match mode {
        CollectorMode::Ok => {
            match raw.and_then(|r| ExportTraceServiceRequest::decode(r.as_slice()).ok()) {
                Some(msg) => {
                    let n: usize = msg
                        .resource_spans
                        .iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .map(|ss| ss.spans.len())
                        .sum();
                    state.spans.fetch_add(n as u64, Ordering::Relaxed);
                    state.received.lock().unwrap().push(msg);
                    (200, GRPC_OK)
                }
                None => (400, GRPC_INVALID_ARGUMENT),
            }
        }
        CollectorMode::Count => match raw.and_then(|r| count_spans(r.into())) {
            Some(n) => {
                state.spans.fetch_add(n, Ordering::Relaxed);
                (200, GRPC_OK)
            }
            None => (400, GRPC_INVALID_ARGUMENT),
        },
        CollectorMode::Fail => (500, GRPC_INTERNAL),
        CollectorMode::Throttle => (429, GRPC_RESOURCE_EXHAUSTED),
        CollectorMode::Hang => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            (503, GRPC_UNAVAILABLE)
        }
    };
    Ok(if grpc {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static(outcome.1));
        // A framed empty ExportTraceServiceResponse: not compressed, length 0.
        let data = (outcome.1 == GRPC_OK).then(|| Bytes::from_static(&[0, 0, 0, 0, 0]));
        response(200, "application/grpc", data, Some(trailers))
    } else {
        response(
            outcome.0,
            "application/x-protobuf",
            Some(Bytes::new()),
            None,
        )
    })
}

fn response(
    status: u16,
    content_type: &'static str,
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
) -> Response<OriginBody> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(OriginBody::new(data, trailers))
        .expect("response")
}

/// The message of a unary gRPC request: a 1-byte compressed flag, a 4-byte
/// big-endian length, the message (gzip when the flag is 1).
fn grpc_message(body: &[u8]) -> Option<Vec<u8>> {
    let (&flag, rest) = body.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let message = rest.get(4..4 + len)?;
    match flag {
        0 => Some(message.to_vec()),
        1 => gunzip(message),
        _ => None,
    }
}

fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// A string (or integer, as a string) attribute of an OTLP key-value list.
pub fn otlp_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        kv.value.as_ref().and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            _ => None,
        })
    })
}

/// Calls `probe` every 10 ms until it answers `Ok`, and returns that; panics with its
/// last `Err` after `timeout`.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
