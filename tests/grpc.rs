//! gRPC at scale through the real gateway: many concurrent calls multiplexed onto few
//! upstream HTTP/2 connections without cross-talk, and a cancelled call recorded the
//! same way (499) in the access log, the metrics, the span and the log line.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::trace::Status;
use opentelemetry::Value;
use support::{poll_until, Background, OriginBody, StallingOrigin, TestGateway};
use tokio::sync::oneshot;

/// How long the origin holds each unary call before answering: until `until_calls`
/// calls have arrived, and at most `at_most`.
#[derive(Debug, Clone, Copy)]
struct Hold {
    until_calls: usize,
    at_most: Duration,
}

/// What the origin does with a call.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Read the whole request, hold it, answer one JSON message (see [`GrpcOrigin`]).
    Unary(Hold),
    /// Bidirectional streaming: answer at once, echo each request message as it
    /// arrives, end with `grpc-status: 5` (NOT_FOUND) once the client's stream ends.
    /// Response headers say what arrived: `x-call-id`, `grpc-timeout`, trace headers.
    EchoStream,
}

/// An origin response body: fixed, or the request's data frames echoed as they
/// arrive and then trailers.
enum Reply {
    Fixed(OriginBody),
    Echo(Incoming, Option<http::HeaderMap>),
}

impl hyper::body::Body for Reply {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        use std::task::Poll;
        match self.get_mut() {
            Reply::Fixed(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|never| match never {}))),
            Reply::Echo(inner, trailers) => loop {
                match std::pin::Pin::new(&mut *inner).poll_frame(cx) {
                    Poll::Ready(None) => {
                        return Poll::Ready(
                            trailers.take().map(|t| Ok(hyper::body::Frame::trailers(t))),
                        )
                    }
                    // Request trailers (gRPC clients send none) are not echoed.
                    Poll::Ready(Some(Ok(f))) if !f.is_data() => continue,
                    other => return other,
                }
            },
        }
    }
}

/// What the gRPC origin has seen.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// Calls received so far.
    calls: AtomicUsize,
    /// Calls in progress now, and the most at once.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// A real gRPC-style origin over h2c (hyper, HTTP/2 only) that holds each call as its
/// [`Hold`] says (so a burst really overlaps), then answers with a JSON body naming the
/// call id, the request body and the trace headers it received, the connection it came
/// on, and a `grpc-message` trailer naming the call again.
struct GrpcOrigin {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _server: Background,
}

impl GrpcOrigin {
    fn start(mode: Mode) -> GrpcOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        let (tx, mut rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let conn = state.connections.fetch_add(1, Ordering::SeqCst);
                            let state = state.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| {
                                    answer(req, conn, mode, state.clone())
                                });
                                // More streams than any test opens, so the origin is
                                // never what limits multiplexing.
                                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                    .max_concurrent_streams(1000)
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        GrpcOrigin {
            addr,
            seen,
            _server: Background::new(tx, thread),
        }
    }

    fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }
}

async fn answer(
    req: Request<Incoming>,
    conn: usize,
    mode: Mode,
    seen: Arc<Seen>,
) -> Result<Response<Reply>, Infallible> {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    let hold = match mode {
        Mode::Unary(hold) => hold,
        Mode::EchoStream => return Ok(echo_stream(req, conn)),
    };
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, traceparent, b3, bin) = (
        header("x-call-id"),
        header("traceparent"),
        header("b3"),
        header("grpc-trace-bin"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + hold.at_most;
    while seen.calls.load(Ordering::SeqCst) < hold.until_calls
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    let json = serde_json::json!({
        "id": id,
        "body": String::from_utf8_lossy(&body),
        "traceparent": traceparent,
        "b3": b3,
        "grpc-trace-bin": bin,
        "connection": conn,
    });
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    if let Ok(v) = http::HeaderValue::from_str(&format!("call-{id}")) {
        trailers.insert("grpc-message", v);
    }
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .body(Reply::Fixed(OriginBody::new(
            Some(Bytes::from(json.to_string())),
            Some(trailers),
        )))
        .expect("response"))
}

fn echo_stream(req: Request<Incoming>, conn: usize) -> Response<Reply> {
    let mut resp = Response::builder()
        .header("content-type", "application/grpc")
        .header("x-connection", conn.to_string());
    for name in [
        "x-call-id",
        "grpc-timeout",
        "traceparent",
        "b3",
        "grpc-trace-bin",
    ] {
        if let Some(v) = req.headers().get(name) {
            resp = resp.header(format!("x-seen-{name}"), v);
        }
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
    trailers.insert(
        "grpc-message",
        http::HeaderValue::from_static("no such thing"),
    );
    resp.body(Reply::Echo(req.into_body(), Some(trailers)))
        .expect("response")
}

/// An h2c (prior knowledge) client connection to the gateway; the connection task runs
/// on the current runtime.
async fn h2_client<B>(port: u16) -> SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake with the gateway");
    tokio::spawn(conn);
    sender
}

/// A unary gRPC request: POST, `application/grpc`, `te: trailers`, a framed message.
fn grpc_request(
    port: u16,
    path: &str,
    headers: &[(&str, String)],
    message: &[u8],
) -> Request<Full<Bytes>> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    let mut b = Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(Bytes::from(framed))).unwrap()
}

const CALLS: usize = 200;
const CLIENT_CONNECTIONS: usize = 4;

/// The trace id the client sends on call `i` (distinct per call).
fn trace_id(i: usize) -> String {
    format!(
        "{:032x}",
        0x4bf9_2f35_77b3_4da6_a3ce_0000_0000_0000u128 + i as u128
    )
}

/// What one call got back: status, body JSON, `grpc-message` trailer.
type Answer = (u16, serde_json::Value, String);

/// Sends `CALLS` concurrent unary calls over `CLIENT_CONNECTIONS` client connections
/// to a gateway whose upstream has `max_streams` (None = the default), and returns the
/// origin and the answers by call id. Bounded: 60 s for the whole burst.
fn burst(max_streams: Option<usize>) -> (GrpcOrigin, HashMap<usize, Answer>) {
    // Every call is held until all have arrived, so all are in flight at once however
    // slowly a loaded machine delivers them.
    let origin = GrpcOrigin::start(Mode::Unary(Hold {
        until_calls: CALLS,
        at_most: Duration::from_secs(20),
    }));
    let setting = max_streams.map_or(String::new(), |n| format!("max_concurrent_streams = {n}"));
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 2
        [upstreams.grpc]
        peers = ["{addr}"]
        protocol = "h2c"
        {setting}
        [upstreams.grpc.propagation]
        inject = ["tracecontext", "b3", "grpc-trace-bin"]
        [[routes]]
        name = "main"
        upstream = "grpc"
        "#,
        addr = origin.addr
    ));
    let port = gw.port;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answers = rt.block_on(async move {
        let mut senders = Vec::new();
        for _ in 0..CLIENT_CONNECTIONS {
            senders.push(h2_client(port).await);
        }
        let mut calls = Vec::new();
        for i in 0..CALLS {
            let mut sender = senders[i % CLIENT_CONNECTIONS].clone();
            calls.push(tokio::spawn(async move {
                let req = grpc_request(
                    port,
                    "/helloworld.Greeter/SayHello",
                    &[
                        ("x-call-id", i.to_string()),
                        (
                            "traceparent",
                            format!("00-{}-00f067aa0ba902b7-01", trace_id(i)),
                        ),
                    ],
                    format!("call-{i}").as_bytes(),
                );
                let resp = sender.send_request(req).await.expect("call answered");
                let status = resp.status().as_u16();
                let collected = resp.into_body().collect().await.expect("body and trailers");
                let message = collected
                    .trailers()
                    .and_then(|t| t.get("grpc-message"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let json: serde_json::Value =
                    serde_json::from_slice(&collected.to_bytes()).expect("origin JSON");
                (i, (status, json, message))
            }));
        }
        let all = async {
            let mut answers = HashMap::new();
            for c in calls {
                let (i, a) = c.await.expect("call task");
                answers.insert(i, a);
            }
            answers
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("the burst finished within 60 s")
    });
    drop(gw);
    (origin, answers)
}

/// Every call got its own answer: its id, its message, its trace (in all three
/// injected formats) and its trailer, none of another call's.
fn assert_no_cross_talk(answers: &HashMap<usize, Answer>) {
    assert_eq!(answers.len(), CALLS);
    for (i, (status, json, message)) in answers {
        let trace = trace_id(*i);
        assert_eq!(*status, 200, "call {i}: {json}");
        assert_eq!(
            json["id"],
            i.to_string(),
            "call {i} got another call's answer"
        );
        assert!(
            json["body"]
                .as_str()
                .unwrap()
                .ends_with(&format!("call-{i}")),
            "call {i} body: {json}"
        );
        assert_eq!(*message, format!("call-{i}"), "call {i}'s trailer");
        let tp = json["traceparent"].as_str().unwrap();
        assert_eq!(&tp[3..35], trace, "call {i} traceparent {tp}");
        assert_ne!(
            &tp[36..52],
            "00f067aa0ba902b7",
            "the gateway span is the parent"
        );
        let b3 = json["b3"].as_str().unwrap();
        assert_eq!(b3, format!("{trace}-{}-1", &tp[36..52]), "call {i} b3");
        let bin = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(
                json["grpc-trace-bin"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('='),
            )
            .expect("grpc-trace-bin is base64");
        // version 0, field 0 (trace id, 16 bytes), field 1 (span id, 8 bytes), ...
        assert_eq!(hex(&bin[2..18]), trace, "call {i} grpc-trace-bin trace id");
        assert_eq!(
            hex(&bin[19..27]),
            &tp[36..52],
            "call {i} grpc-trace-bin span id"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_burst_of_200_calls_shares_few_upstream_connections_without_cross_talk() {
    let (origin, answers) = burst(None);
    assert_no_cross_talk(&answers);
    let peak = origin.seen.peak_in_flight.load(Ordering::SeqCst);
    let connections = origin.connections();
    eprintln!("default: {connections} upstream connections, peak {peak} calls in flight");
    // The calls really overlapped (else few connections would prove nothing)...
    assert!(peak > 100, "only {peak} calls were in flight at once");
    // ...and 100 streams per connection (the default) need ceil(200 / 100) = 2
    // connections; pingora's default of one stream per connection opened 200, and
    // 100 streams without ordering the dials (src/proxy/dial.rs) 27 to 50.
    assert!(
        connections <= 2 + 2,
        "{connections} upstream connections for {CALLS} concurrent calls"
    );
}

#[test]
fn max_concurrent_streams_bounds_the_streams_on_each_upstream_connection() {
    let (origin, answers) = burst(Some(25));
    assert_no_cross_talk(&answers);
    let peak = origin.seen.peak_in_flight.load(Ordering::SeqCst);
    let connections = origin.connections();
    eprintln!("25 per connection: {connections} upstream connections, peak {peak} in flight");
    // Had a connection carried more than 25 calls at once, fewer would have done.
    assert!(
        connections >= peak.div_ceil(25),
        "{connections} connections carried {peak} calls at once"
    );
    assert!(
        connections <= CALLS.div_ceil(25) + 2,
        "{connections} upstream connections for {CALLS} calls at 25 per connection"
    );
}

/// Log lines (info and above) of every gateway in this test binary, captured by a
/// logger installed once.
fn captured_logs() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                captured_logs()
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", r.level(), r.args()));
            }
        }
        fn flush(&self) {}
    }
    LINES.get_or_init(|| {
        let _ = log::set_boxed_logger(Box::new(Capture));
        log::set_max_level(log::LevelFilter::Info);
        Mutex::new(Vec::new())
    })
}

/// The captured log lines that mention `needle`.
fn logs_mentioning(needle: &str) -> Vec<String> {
    captured_logs()
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// A gateway with a JSON access log in `dir` and one route `main` to `upstream`
/// (`[upstreams.origin]` keys).
fn gateway_with_access_log(dir: &std::path::Path, upstream: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [access_log]
        enabled = true
        path = "{log}"
        [upstreams.origin]
        {upstream}
        [[routes]]
        name = "main"
        upstream = "origin"
        "#,
        log = dir.join("access.log").display()
    ))
}

/// The access log line for `path`, once written (the logging phase runs when the
/// request ends).
fn access_log_line(dir: &std::path::Path, path: &str) -> serde_json::Value {
    poll_until(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["path"] == path)
            .ok_or_else(|| format!("no access log line for {path}:\n{text}"))
    })
}

/// A cancelled request agrees everywhere: 499 in the access log, the `4xx` metric
/// class, the span's status code (not an error: the client chose to leave), and one
/// log line saying 499, none saying 400.
fn assert_recorded_as_499(gw: &TestGateway, dir: &std::path::Path, path: &str) {
    let line = access_log_line(dir, path);
    assert_eq!(line["status"], 499, "{line}");
    gw.metrics_containing(&["tracebridge_requests_total{route=\"main\",status_class=\"4xx\"} 1"]);
    let spans = gw.spans.wait_for(1);
    let span = spans
        .iter()
        .find(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.value == Value::from(path.to_string()))
        })
        .unwrap_or_else(|| panic!("no span for {path}"));
    let status_code = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.response.status_code")
        .map(|kv| kv.value.clone());
    assert_eq!(status_code, Some(Value::I64(499)));
    assert_eq!(
        span.status,
        Status::Unset,
        "a client leaving is no gateway error"
    );
    let lines = poll_until(Duration::from_secs(5), || {
        let l = logs_mentioning(path);
        if l.is_empty() {
            Err(format!("no log line mentions {path}"))
        } else {
            Ok(l)
        }
    });
    assert_eq!(lines.len(), 1, "one line per failed request: {lines:#?}");
    assert!(lines[0].contains("status=499"), "{lines:#?}");
    assert!(
        logs_mentioning("failed to send the error response").is_empty(),
        "nothing is written to a client that left"
    );
}

#[test]
fn a_cancelled_grpc_call_is_recorded_as_499_everywhere() {
    captured_logs();
    let origin = GrpcOrigin::start(Mode::Unary(Hold {
        until_calls: usize::MAX,
        at_most: Duration::from_secs(30),
    }));
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with_access_log(
        dir.path(),
        &format!("peers = [\"{}\"]\nprotocol = \"h2c\"", origin.addr),
    );
    let path = "/helloworld.Greeter/Cancelled";
    let port = gw.port;
    let seen = origin.seen.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The client connection stays open: the call is cancelled with RST_STREAM(CANCEL),
    // as a gRPC client cancels a call or gives up at its deadline.
    let _sender = rt.block_on(async move {
        let mut sender = h2_client(port).await;
        let call = tokio::spawn({
            let mut sender = sender.clone();
            async move {
                let req = grpc_request(port, path, &[("x-call-id", "1".into())], b"x");
                let _ = sender.send_request(req).await;
            }
        });
        let reached = tokio::time::timeout(Duration::from_secs(5), async {
            while seen.calls.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(reached.is_ok(), "the call never reached the origin");
        call.abort();
        let _ = call.await;
        sender
            .ready()
            .await
            .expect("the client connection is still open");
        sender
    });
    assert_recorded_as_499(&gw, dir.path(), path);
}

#[test]
fn an_http1_client_that_hangs_up_before_the_response_is_recorded_as_499() {
    use std::io::Write;
    captured_logs();
    let origin = StallingOrigin::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with_access_log(dir.path(), &format!("peers = [\"{}\"]", origin.addr));
    let path = "/hangs-up";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Closed once the gateway is waiting for the origin (which never answers).
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    assert_recorded_as_499(&gw, dir.path(), path);
}

/// A request body fed message by message from a channel (a client stream).
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|m| m.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A gRPC message frame: uncompressed, 4-byte length, payload.
fn framed(payload: &str) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload.as_bytes());
    Bytes::from(out)
}

/// Reads response data until `want` bytes came (a proxy may split or join frames).
async fn read_exactly(body: &mut Incoming, want: usize) -> Bytes {
    let mut got = Vec::new();
    while got.len() < want {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the echo came within 5 s")
            .expect("the stream is still open")
            .expect("a frame");
        let data = frame.into_data().expect("data before trailers");
        got.extend_from_slice(&data);
    }
    Bytes::from(got)
}

#[test]
fn two_streaming_calls_share_one_upstream_connection_message_by_message() {
    let origin = GrpcOrigin::start(Mode::EchoStream);
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 2
        [upstreams.grpc]
        peers = ["{addr}"]
        protocol = "h2c"
        [upstreams.grpc.propagation]
        inject = ["tracecontext", "b3", "grpc-trace-bin"]
        [[routes]]
        upstream = "grpc"
        "#,
        addr = origin.addr
    ));
    let port = gw.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut calls = Vec::new();
        for name in ["a", "b"] {
            let mut sender = h2_client::<ChannelBody>(port).await;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let req = Request::post(format!("http://127.0.0.1:{port}/chat.Chat/Talk"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("grpc-timeout", "5S")
                .header("x-call-id", name)
                .body(ChannelBody(rx))
                .unwrap();
            // The origin answers before any message: the headers come back at once.
            let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
                .await
                .expect("response headers within 5 s")
                .expect("response");
            assert_eq!(resp.status(), 200);
            let h = resp.headers().clone();
            let seen = |k: &str| {
                h.get(format!("x-seen-{k}"))
                    .map(|v| v.to_str().unwrap().to_string())
            };
            assert_eq!(seen("x-call-id").as_deref(), Some(name));
            assert_eq!(
                seen("grpc-timeout").as_deref(),
                Some("5S"),
                "the deadline reaches the origin"
            );
            for k in ["traceparent", "b3", "grpc-trace-bin"] {
                assert!(seen(k).is_some(), "{k} injected on call {name}");
            }
            calls.push((name, tx, resp.into_body(), h, sender));
        }
        // Interleaved: each message is echoed on its own call before the next is sent.
        for round in 0..3 {
            for (name, tx, body, _, _) in &mut calls {
                let msg = framed(&format!("{name}-{round}"));
                tx.send(msg.clone()).await.unwrap();
                assert_eq!(
                    read_exactly(body, msg.len()).await,
                    msg,
                    "call {name} round {round}"
                );
            }
        }
        for (name, tx, mut body, h, _sender) in calls {
            drop(tx); // the client's half of the stream ends
                      // Every message was echoed, so what follows is the trailers.
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("trailers within 5 s")
                .unwrap_or_else(|| panic!("call {name} ended without trailers"))
                .expect("a frame");
            let trailers = frame
                .into_trailers()
                .unwrap_or_else(|f| panic!("call {name}: data after the echoes: {f:?}"));
            assert_eq!(
                trailers["grpc-status"], "5",
                "the error status of call {name}"
            );
            assert_eq!(trailers["grpc-message"], "no such thing");
            assert_eq!(
                h["x-connection"], "0",
                "both calls on the first upstream connection"
            );
        }
    });
    assert_eq!(
        origin.connections(),
        1,
        "two concurrent calls, one upstream connection"
    );
}
