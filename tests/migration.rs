//! The migration toolkit (issue 22), through the real gateway: observe mode.
//!
//! Both proxy paths run these assertions (`TRACEBRIDGE_TEST_PATH=fallback`).

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Value;
use support::{client, poll_until, TestGateway};

/// An origin that records every request head exactly as the bytes arrived (request
/// line and header lines, up to the blank line) and answers `200 ok`. Keep-alive
/// connections are served until the peer closes them; every read is bounded in time
/// and size; the threads stop when it is dropped.
struct RawOrigin {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawOrigin {
    fn start() -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (heads2, stop2) = (heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (heads, stop) = (heads2.clone(), stop2.clone());
                        std::thread::spawn(move || serve_raw(stream, &heads, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawOrigin {
            addr,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    fn heads(&self) -> Vec<Vec<u8>> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_raw(mut stream: TcpStream, heads: &Mutex<Vec<Vec<u8>>>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && buf.len() < 64 * 1024 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            // GET requests only: no body follows the head.
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            heads.lock().unwrap().push(head);
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
            continue;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Sends `request` on a new connection to `addr` and reads the response until its
/// two-byte body `ok` arrived (at most 5 s); the response bytes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !out.ends_with(b"\r\n\r\nok") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// A request as a legacy client sends it: mixed-case names, three tracing systems'
/// headers (B3 multi and Jaeger agreeing on one trace, X-Ray naming another), and
/// ordinary headers around them.
const LEGACY_REQUEST: &[u8] = b"GET /orders/7?expand=lines HTTP/1.1\r\n\
Host: legacy.example\r\n\
User-Agent: legacy-client/2.3\r\n\
Accept: application/json\r\n\
X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n\
X-B3-SpanId: e457b5a2e4d86bd1\r\n\
X-B3-Sampled: 1\r\n\
uber-trace-id: 80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1\r\n\
X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n\
X-Request-Id: r-42\r\n\
\r\n";

/// The config of the test: one route to the raw origin in `mode`, with the
/// forwarding headers off (they are not tracing: `forwarded` governs them in either
/// mode) and the access log in `log`.
fn config(origin: SocketAddr, mode: &str, log: &std::path::Path) -> String {
    format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [access_log]
        enabled = true
        path = "{}"
        [upstreams.legacy]
        peers = ["{origin}"]
        [[routes]]
        name = "main"
        upstream = "legacy"
        mode = "{mode}"
        propagation = {{ forwarded = "off" }}
        "#,
        log.display()
    )
}

fn lowercase_names(head: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect()
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Observe mode: the upstream receives byte for byte the head a direct client sends;
/// the gateway span, metrics, coverage and access log still happen and record what
/// mediate mode would write and strip; after a reload to `mediate`, the upstream gets
/// exactly those formats and loses exactly those headers.
#[test]
fn observe_mode_forwards_the_request_untouched_and_reports_what_mediate_would_do() {
    let origin = RawOrigin::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let conf = dir.path().join("gateway.toml");
    let gw = TestGateway::start_file(&conf, &config(origin.addr, "observe", &log));
    let gateway: SocketAddr = format!("127.0.0.1:{}", gw.port).parse().unwrap();

    // The same bytes, once straight to the origin and once through the gateway.
    let direct = exchange(origin.addr, LEGACY_REQUEST);
    assert!(
        direct.ends_with(b"ok"),
        "{}",
        String::from_utf8_lossy(&direct)
    );
    let proxied = exchange(gateway, LEGACY_REQUEST);
    assert!(
        proxied.ends_with(b"ok"),
        "{}",
        String::from_utf8_lossy(&proxied)
    );
    let heads = origin.heads();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0], LEGACY_REQUEST, "the direct client's head as sent");
    assert_eq!(
        String::from_utf8_lossy(&heads[1]),
        String::from_utf8_lossy(&heads[0]),
        "observe mode: the upstream sees the direct client's bytes"
    );

    // The gateway span: a child of the incoming B3 context (the parent the upstream
    // still names), injecting nothing, saying what it would have injected.
    let spans = gw.spans.wait_for(1);
    let span = &spans[0];
    assert_eq!(
        format!("{:032x}", span.span_context.trace_id()),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    assert_eq!(format!("{:016x}", span.parent_span_id), "e457b5a2e4d86bd1");
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(
        attr("tracebridge.extracted_format"),
        Some(Value::from("b3multi"))
    );
    let injected = attr("tracebridge.injected_formats").expect("injected attribute");
    assert_eq!(injected.as_str(), "[]", "nothing injected");
    let would = attr("tracebridge.would_inject_formats").expect("would attribute");
    assert_eq!(
        would.as_str(),
        r#"["tracecontext","baggage","b3multi","jaeger"]"#
    );

    // Metrics, per route and format.
    gw.metrics_containing(&[
        r#"tracebridge_observe_would_inject_total{format="tracecontext",route="main"} 1"#,
        r#"tracebridge_observe_would_inject_total{format="jaeger",route="main"} 1"#,
        r#"tracebridge_observe_would_strip_total{format="xray",route="main"} 1"#,
        r#"tracebridge_propagation_extracted_total{format="b3multi"} 1"#,
    ]);

    // The access log line.
    let line = poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().next().map(String::from))
            .ok_or_else(|| "no access log line yet".to_string())
    });
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["injected_formats"], serde_json::json!([]));
    assert_eq!(entry["extracted_format"], "b3multi");
    assert_eq!(entry["parent_id"], "e457b5a2e4d86bd1");
    assert_eq!(
        entry["would_inject"],
        serde_json::json!(["tracecontext", "b3multi", "jaeger", "baggage"])
    );
    assert_eq!(entry["would_strip"], serde_json::json!(["xray"]));

    // The coverage view: a "would change" column, no injection.
    let coverage: serde_json::Value = client()
        .get(gw.admin_url("/coverage"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let main = &coverage["routes"]["main"];
    assert_eq!(main["injected"], serde_json::json!({}));
    let would_inject = keys(&main["would_inject"]);
    assert_eq!(
        would_inject,
        ["b3multi", "baggage", "jaeger", "tracecontext"]
            .map(String::from)
            .into()
    );
    assert_eq!(main["would_strip"], serde_json::json!({"xray": 1}));
    let table = client()
        .get(gw.admin_url("/coverage"))
        .header("accept", "text/plain")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        table.lines().next().unwrap().ends_with("WOULD CHANGE"),
        "{table}"
    );
    assert!(
        table.contains("+b3multi 1, +baggage 1, +jaeger 1, +tracecontext 1, -xray 1"),
        "{table}"
    );

    // Flip the route to mediate with a reload: the upstream now gets what observe mode
    // said it would.
    std::fs::write(&conf, gw.render(&config(origin.addr, "mediate", &log))).unwrap();
    gw.handle.reload().expect("reload");
    let _ = exchange(gateway, LEGACY_REQUEST);
    let heads = origin.heads();
    assert_eq!(heads.len(), 3);
    let before = lowercase_names(LEGACY_REQUEST);
    let after = lowercase_names(&heads[2]);
    assert!(after.contains("traceparent"), "{after:?}");
    assert!(!after.contains("x-amzn-trace-id"), "stripped: {after:?}");
    assert_eq!(
        before.difference(&after).cloned().collect::<Vec<_>>(),
        ["x-amzn-trace-id"],
        "exactly what observe mode said it would strip"
    );
    let coverage: serde_json::Value = poll_until(Duration::from_secs(5), || {
        let v: serde_json::Value = client()
            .get(gw.admin_url("/coverage"))
            .send()
            .map_err(|e| e.to_string())?
            .json()
            .map_err(|e| e.to_string())?;
        if v["routes"]["main"]["requests"] == 2 {
            Ok(v)
        } else {
            Err(format!("{v}"))
        }
    });
    assert_eq!(
        keys(&coverage["routes"]["main"]["injected"]),
        would_inject,
        "mediate mode injects what observe mode reported"
    );
}

/// `mode` is checked with every other problem, at its key path, on routes and
/// upstreams.
#[test]
fn a_bad_mode_is_reported_at_its_path() {
    let text = r#"
        [upstreams.a]
        kind = "echo"
        mode = "shadow"
        [[routes]]
        upstream = "a"
        mode = "Observe"
    "#;
    let err = tracebridge::config::load_str(text, None, 1).unwrap_err();
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            r#"upstreams.a.mode: unknown mode "shadow": expected "mediate" or "observe""#,
            r#"routes[0].mode: unknown mode "Observe": expected "mediate" or "observe""#,
        ]
    );
}

// ---------------------------------------------------------------------------------
// Dual export: OTLP (HTTP and gRPC) and Zipkin v2 JSON at once.
// ---------------------------------------------------------------------------------

use support::{CollectorMode, Origin, OtlpReceiver, StallingOrigin};

/// Why a Zipkin span breaks `zipkin2-api.yaml` (openzipkin/zipkin-api), or `Ok`.
/// Checks every field the schema defines for `Span`, `Endpoint` and `Annotation`:
/// required fields, types, id patterns and lengths, the `kind` enum, `duration ≥ 1`,
/// `port` not zero, string-only tags, and no field the schema does not know.
fn zipkin_schema_check(span: &serde_json::Value) -> Result<(), String> {
    let obj = span.as_object().ok_or("a span is an object")?;
    let hex = |v: &serde_json::Value, min: usize, max: usize, what: &str| -> Result<(), String> {
        let s = v.as_str().ok_or(format!("{what} is a string"))?;
        let ok = (min..=max).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then_some(())
            .ok_or(format!("{what} {s:?}: [a-f0-9]{{{min},{max}}}"))
    };
    const KNOWN: [&str; 13] = [
        "traceId",
        "name",
        "parentId",
        "id",
        "kind",
        "timestamp",
        "duration",
        "debug",
        "shared",
        "localEndpoint",
        "remoteEndpoint",
        "annotations",
        "tags",
    ];
    for key in obj.keys() {
        if !KNOWN.contains(&key.as_str()) {
            return Err(format!("unknown field {key}"));
        }
    }
    hex(
        obj.get("traceId").ok_or("traceId is required")?,
        16,
        32,
        "traceId",
    )?;
    hex(obj.get("id").ok_or("id is required")?, 16, 16, "id")?;
    if let Some(p) = obj.get("parentId") {
        hex(p, 16, 16, "parentId")?;
    }
    if let Some(n) = obj.get("name") {
        n.as_str().ok_or("name is a string")?;
    }
    if let Some(k) = obj.get("kind") {
        let k = k.as_str().ok_or("kind is a string")?;
        if !["CLIENT", "SERVER", "PRODUCER", "CONSUMER"].contains(&k) {
            return Err(format!("kind {k}"));
        }
    }
    if let Some(t) = obj.get("timestamp") {
        t.as_u64().ok_or("timestamp is an integer")?;
    }
    if let Some(d) = obj.get("duration") {
        if d.as_u64().ok_or("duration is an integer")? < 1 {
            return Err("duration minimum is 1".into());
        }
    }
    for flag in ["debug", "shared"] {
        if let Some(b) = obj.get(flag) {
            b.as_bool().ok_or(format!("{flag} is a boolean"))?;
        }
    }
    for which in ["localEndpoint", "remoteEndpoint"] {
        let Some(e) = obj.get(which) else { continue };
        let e = e.as_object().ok_or(format!("{which} is an object"))?;
        for (k, v) in e {
            match k.as_str() {
                "serviceName" => {
                    v.as_str().ok_or("serviceName is a string")?;
                }
                "ipv4" => {
                    v.as_str()
                        .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
                        .ok_or(format!("{which}.ipv4 {v}"))?;
                }
                "ipv6" => {
                    v.as_str()
                        .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
                        .ok_or(format!("{which}.ipv6 {v}"))?;
                }
                "port" => {
                    let p = v.as_u64().ok_or("port is an integer")?;
                    if p == 0 || p > 65535 {
                        return Err(format!("{which}.port {p}"));
                    }
                }
                other => return Err(format!("{which}: unknown field {other}")),
            }
        }
    }
    if let Some(a) = obj.get("annotations") {
        for a in a.as_array().ok_or("annotations is an array")? {
            a.get("timestamp")
                .and_then(serde_json::Value::as_u64)
                .ok_or("annotation.timestamp is a required integer")?;
            a.get("value")
                .and_then(serde_json::Value::as_str)
                .ok_or("annotation.value is a required string")?;
        }
    }
    if let Some(t) = obj.get("tags") {
        for (k, v) in t.as_object().ok_or("tags is an object")? {
            v.as_str().ok_or(format!("tag {k} is not a string"))?;
        }
    }
    Ok(())
}

/// A Zipkin v2 server's span intake (`POST /api/v2/spans`, JSON): every span is checked
/// against the schema; valid ones are kept, anything else answers 400 and is recorded
/// as a problem. Connections are kept alive; reads are bounded in size and time.
struct ZipkinReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<serde_json::Value>>>,
    problems: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ZipkinReceiver {
    fn start() -> ZipkinReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, p2, stop2) = (spans.clone(), problems.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, p, stop) = (s2.clone(), p2.clone(), stop2.clone());
                        std::thread::spawn(move || zipkin_conn(stream, &s, &p, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ZipkinReceiver {
            addr,
            spans,
            problems,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/api/v2/spans", self.addr)
    }

    fn wait_for(&self, n: usize) -> Vec<serde_json::Value> {
        poll_until(Duration::from_secs(10), || {
            let problems = self.problems.lock().unwrap().clone();
            if !problems.is_empty() {
                panic!("zipkin receiver rejected spans: {problems:?}");
            }
            let spans = self.spans.lock().unwrap().clone();
            if spans.len() >= n {
                Ok(spans)
            } else {
                Err(format!("zipkin receiver got {} of {n} spans", spans.len()))
            }
        })
    }
}

impl Drop for ZipkinReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn zipkin_conn(
    mut stream: TcpStream,
    spans: &Mutex<Vec<serde_json::Value>>,
    problems: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && buf.len() < 4 << 20 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body: Vec<u8> = buf.drain(..end + 4 + length).skip(end + 4).collect();
                let verdict = check_post(&head, &body);
                let status = match verdict {
                    Ok(list) => {
                        spans.lock().unwrap().extend(list);
                        "202 Accepted"
                    }
                    Err(why) => {
                        problems.lock().unwrap().push(why);
                        "400 Bad Request"
                    }
                };
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                if stream.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// The request line, content type and body of a span post: the spans, or why not.
fn check_post(head: &str, body: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    if !head.starts_with("post /api/v2/spans http/1.1") {
        return Err(format!(
            "request line: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    if !head.contains("content-type: application/json") {
        return Err("content type is not application/json".into());
    }
    let list: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let list = list.as_array().ok_or("the body is a ListOfSpans (array)")?;
    for span in list {
        zipkin_schema_check(span).map_err(|e| format!("{e}: {span}"))?;
    }
    Ok(list.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One request through a gateway with three exporters (OTLP/HTTP, OTLP/gRPC, Zipkin):
/// each backend gets the one span with the same trace, span and parent ids and the
/// same times, and the Zipkin span passes the Zipkin v2 schema with the mapping of the
/// OpenTelemetry specification.
#[test]
fn dual_export_sends_one_span_to_otlp_and_zipkin_with_the_same_ids() {
    let origin = Origin::start("svc");
    let http = OtlpReceiver::start(CollectorMode::Ok);
    let grpc = OtlpReceiver::start(CollectorMode::Ok);
    let zipkin = ZipkinReceiver::start();
    let toml = support::one_route(
        origin.addr,
        1,
        &format!(
            r#"[telemetry]
            service_name = "edge-gateway"
            batch_delay = "50ms"
            [[telemetry.exporters]]
            name = "new"
            kind = "otlp"
            endpoint = "http://{}"
            [[telemetry.exporters]]
            name = "new_grpc"
            kind = "otlp"
            protocol = "grpc"
            endpoint = "http://{}"
            [[telemetry.exporters]]
            name = "old"
            kind = "zipkin"
            endpoint = "{}"
            "#,
            http.addr,
            grpc.addr,
            zipkin.endpoint()
        ),
        "",
    );
    let gw = TestGateway::start(&toml);
    let resp = client()
        .get(gw.url("/orders/7"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let z = zipkin.wait_for(1);
    let (_, h) = http.wait_for(1).remove(0);
    let (_, g) = grpc.wait_for(1).remove(0);
    let z = &z[0];
    for (what, span) in [("http", &h), ("grpc", &g)] {
        assert_eq!(z["traceId"], hex(&span.trace_id), "{what}");
        assert_eq!(z["id"], hex(&span.span_id), "{what}");
        assert_eq!(z["parentId"], hex(&span.parent_span_id), "{what}");
        assert_eq!(z["timestamp"], span.start_time_unix_nano / 1000, "{what}");
        let micros = (span.end_time_unix_nano - span.start_time_unix_nano) / 1000;
        assert_eq!(z["duration"], micros.max(1), "{what}");
        assert_eq!(z["name"], span.name.as_str(), "{what}");
    }
    assert_eq!(z["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(z["parentId"], "00f067aa0ba902b7");
    assert_eq!(z["kind"], "SERVER");
    assert_eq!(z["localEndpoint"]["serviceName"], "edge-gateway");
    assert_eq!(z["remoteEndpoint"]["ipv4"], "127.0.0.1", "the peer");
    assert_eq!(z["tags"]["http.request.method"], "GET");
    assert_eq!(z["tags"]["http.response.status_code"], "200");
    assert_eq!(z["tags"]["tracebridge.extracted_format"], "tracecontext");
    assert_eq!(z["tags"]["otel.scope.name"], "tracebridge");
    assert!(z["tags"].get("error").is_none(), "no error tag on success");
    // Per-exporter counters.
    gw.metrics_containing(&[
        r#"tracebridge_exporter_spans_exported_total{exporter="new"} 1"#,
        r#"tracebridge_exporter_spans_exported_total{exporter="new_grpc"} 1"#,
        r#"tracebridge_exporter_spans_exported_total{exporter="old"} 1"#,
    ]);
}

/// A Zipkin backend that never answers fills and drops its own queue; the OTLP backend
/// beside it still gets every span (and the gateway does not degrade over it).
#[test]
fn a_dead_zipkin_backend_costs_the_otlp_backend_no_span() {
    let origin = Origin::start("svc");
    let otlp = OtlpReceiver::start(CollectorMode::Ok);
    let dead = StallingOrigin::start();
    let toml = support::one_route(
        origin.addr,
        1,
        &format!(
            r#"[telemetry]
            batch_delay = "20ms"
            degrade_after = "100ms"
            # The dead backend first: it is the one whose queue a single-queue
            # pipeline would watch.
            [[telemetry.exporters]]
            name = "old"
            kind = "zipkin"
            endpoint = "http://{}/api/v2/spans"
            timeout = "2s"
            queue_size = 2
            batch_size = 1
            [[telemetry.exporters]]
            name = "new"
            kind = "otlp"
            endpoint = "http://{}"
            "#,
            dead.addr, otlp.addr
        ),
        "",
    );
    let gw = TestGateway::start(&toml);
    const N: usize = 20;
    for _ in 0..N {
        let resp = client().get(gw.url("/")).send().unwrap();
        assert_eq!(resp.status(), 200);
        // Spread over more than the degradation hold: a monitor reading the dead
        // queue would have stopped the spans by the end.
        std::thread::sleep(Duration::from_millis(40));
    }
    assert_eq!(
        otlp.wait_for(N).len(),
        N,
        "every span reached the live backend"
    );
    let metrics = gw.metrics_containing(&[
        &format!(r#"tracebridge_exporter_spans_exported_total{{exporter="new"}} {N}"#),
        r#"tracebridge_exporter_spans_dropped_total{exporter="old",reason="queue_full"}"#,
        "tracebridge_degraded 0",
    ]);
    let dropped: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                r#"tracebridge_exporter_spans_dropped_total{exporter="old",reason="queue_full"}"#,
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        dropped >= (N - 4) as u64,
        "the dead backend's own queue dropped: {dropped}"
    );
    assert!(metrics.contains(
        r#"tracebridge_exporter_spans_dropped_total{exporter="new",reason="queue_full"} 0"#
    ));
}

/// The list is checked with every other problem: kinds, duplicate names, OTLP-only
/// keys, queue sizes, and the list beside the one-exporter keys.
#[test]
fn exporter_list_problems_are_reported_at_their_paths() {
    let text = r#"
        [upstreams.a]
        kind = "echo"
        [[routes]]
        upstream = "a"
        [telemetry]
        exporter = "otlp"
        [[telemetry.exporters]]
        kind = "jaeger"
        [[telemetry.exporters]]
        kind = "zipkin"
        compression = "gzip"
        [[telemetry.exporters]]
        kind = "zipkin"
        endpoint = "zipkin:9411"
        queue_size = 1
        batch_size = 5
    "#;
    let err = tracebridge::config::load_str(text, None, 1).unwrap_err();
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let want = [
        r#"telemetry.exporters[0].kind: unknown kind "jaeger": expected "otlp", "zipkin" or "stdout""#,
        "telemetry.exporters[1].protocol: protocol and compression are OTLP keys",
        r#"telemetry.exporters[2].name: "zipkin" is already the name of another exporter (name them apart)"#,
        "telemetry.exporters[2].endpoint: must be an http:// or https:// URL",
        "telemetry.exporters[2].batch_size: must be between 1 and the queue_size",
        "telemetry.exporters: the one-exporter keys (exporter, endpoint) and [[telemetry.exporters]] are exclusive: move the exporter into the list",
    ];
    for w in want {
        assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
    }
    // Without the list, the shorthand is one exporter named by its kind.
    let ok = tracebridge::config::load_str(
        "[upstreams.a]\nkind = \"echo\"\n[[routes]]\nupstream = \"a\"\n[telemetry]\nexporter = \"otlp\"\n",
        None,
        1,
    )
    .unwrap();
    let names: Vec<&str> = ok
        .telemetry
        .exporters
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["otlp"]);
}

/// The shipped dual-export configs load with two exporters, the new backend over OTLP
/// and the old one over Zipkin (the compose one with its compose-only peer name
/// moved to loopback).
#[test]
fn the_dual_export_configs_load_with_both_exporters() {
    use tracebridge::config::Exporter;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, zipkin_url) in [
        (
            "conf/examples/dual-export.toml",
            "http://127.0.0.1:9411/api/v2/spans",
        ),
        (
            "deploy/compose/gateway/dual-export.toml",
            "http://zipkin:9411/api/v2/spans",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap()
            .replace("service-b:8002", "127.0.0.1:8002");
        let snapshot =
            tracebridge::config::load_str(&text, None, 1).unwrap_or_else(|e| panic!("{file}: {e}"));
        let list = &snapshot.telemetry.exporters;
        assert_eq!(list.len(), 2, "{file}");
        assert!(matches!(list[0].exporter, Exporter::Otlp(_)), "{file}");
        match &list[1].exporter {
            Exporter::Zipkin(z) => assert_eq!(z.endpoint, zipkin_url, "{file}"),
            other => panic!("{file}: {other:?}"),
        }
        assert_eq!(
            (list[0].name.as_str(), list[1].name.as_str()),
            ("new", "old")
        );
    }
    let compose =
        std::fs::read_to_string(root.join("deploy/compose/docker-compose.dual-export.yml"))
            .unwrap();
    assert!(compose.contains(r#"command: ["--config", "/etc/tracebridge/dual-export.toml"]"#));
}

// ---------------------------------------------------------------------------------
// Log-to-trace: `tracebridge logs-to-traces`.
// ---------------------------------------------------------------------------------

use std::process::{Child, Command, Stdio};

use support::otlp_attr;

/// Runs the binary with `args` and waits at most 30 s for it (killed after that);
/// (exit success, stderr).
fn run_binary(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracebridge"))
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracebridge");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status.is_some_and(|s| s.success()), err)
}

/// A logs-to-traces config: spans to `receiver` as service `service`, no routes.
fn logs_config(dir: &std::path::Path, receiver: SocketAddr, service: &str) -> String {
    let path = dir.join(format!("{service}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
            [server]
            allow_no_routes = true
            [telemetry]
            service_name = "{service}"
            exporter = "otlp"
            endpoint = "http://{receiver}"
            batch_delay = "50ms"
            "#
        ),
    )
    .unwrap();
    path.display().to_string()
}

type OtlpSpan = opentelemetry_proto::tonic::trace::v1::Span;

fn service_of(resource: &opentelemetry_proto::tonic::resource::v1::Resource) -> String {
    otlp_attr(&resource.attributes, "service.name").unwrap_or_default()
}

fn spans_of(rx: &OtlpReceiver, service: &str, n: usize) -> Vec<OtlpSpan> {
    poll_until(Duration::from_secs(10), || {
        let spans: Vec<OtlpSpan> = rx
            .spans()
            .into_iter()
            .filter(|(r, _)| service_of(r) == service)
            .map(|(_, s)| s)
            .collect();
        if spans.len() >= n {
            Ok(spans)
        } else {
            Err(format!("{} of {n} {service} spans", spans.len()))
        }
    })
}

fn nanos(t: &str) -> u64 {
    let t = humantime::parse_rfc3339(t).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// An ALB entry as AWS documents the format, for a request whose `X-Amzn-Trace-Id`
/// Root is `root` (`-` for none), received at `created` and answered at `time`.
fn alb_line(time: &str, created: &str, root: &str, status: u16) -> String {
    format!(
        r#"https {time} app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 {status} {status} 0 57 "GET https://www.example.com:443/orders/7?x=1 HTTP/1.1" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "{root}" "www.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 {created} "authenticate,forward" "-" "-" "10.0.0.1:80" "{status}" "-" "-" TID_1234abcd5678ef90"#
    )
}

/// The three formats through the real binary: an ALB log (the load balancer in front
/// of the gateway), an nginx JSON log logging `traceparent`, and the gateway's own
/// access log. Each line's span joins the trace the gateway exported for the same
/// request; bad lines are reported by number; a second run makes the same span ids.
#[test]
fn logs_become_spans_that_join_the_gateway_traces() {
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let origin = Origin::start("svc");
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("gateway-access.log");
    let gw = TestGateway::start(&support::one_route(
        origin.addr,
        1,
        &format!(
            r#"[telemetry]
            service_name = "gateway"
            exporter = "otlp"
            endpoint = "http://{}"
            batch_delay = "50ms"
            [access_log]
            enabled = true
            path = "{}"
            "#,
            rx.addr,
            access.display()
        ),
        "",
    ));
    // What an ALB forwards to the gateway: its Root, no parent.
    let alb_root = "Root=1-5759e988-bd862e3fe1be46a994272793";
    // What a traced client sends through an nginx in front.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (name, value) in [("x-amzn-trace-id", alb_root), ("traceparent", traceparent)] {
        let resp = client()
            .get(gw.url("/orders/7"))
            .header(name, value)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let gateway_spans = spans_of(&rx, "gateway", 2);
    let gateway_traces: BTreeSet<String> = gateway_spans.iter().map(|s| hex(&s.trace_id)).collect();
    assert_eq!(
        gateway_traces,
        BTreeSet::from([
            "5759e988bd862e3fe1be46a994272793".to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736".to_string()
        ])
    );

    // The ALB log: one entry per request, a line that is no entry, one without trace.
    let alb = dir.path().join("alb.log");
    std::fs::write(
        &alb,
        [
            alb_line(
                "2026-01-05T10:00:00.250000Z",
                "2026-01-05T10:00:00.079000Z",
                alb_root,
                200,
            ),
            "this is not an access log entry".to_string(),
            alb_line(
                "2026-01-05T10:00:01.500000Z",
                "2026-01-05T10:00:01.000000Z",
                "-",
                503,
            ),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    let config = logs_config(dir.path(), rx.addr, "alb");
    let args = [
        "--config",
        &config,
        "logs-to-traces",
        "--format",
        "alb",
        "--progress-every",
        "2",
        alb.to_str().unwrap(),
    ];
    let (ok, stderr) = run_binary(&args);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("logs-to-traces: line 2: not an ALB access log entry: 7 fields"),
        "{stderr}"
    );
    assert!(
        stderr.contains("logs-to-traces: progress: 2 lines, 1 spans, 1 bad"),
        "{stderr}"
    );
    assert!(
        stderr.contains("logs-to-traces: 3 lines, 2 spans, 1 bad lines"),
        "{stderr}"
    );
    let spans = spans_of(&rx, "alb", 2);
    let joined = spans
        .iter()
        .find(|s| hex(&s.trace_id) == "5759e988bd862e3fe1be46a994272793")
        .expect("the ALB span in the gateway's trace");
    assert!(joined.parent_span_id.is_empty(), "the ALB names no parent");
    assert_eq!(
        joined.start_time_unix_nano,
        nanos("2026-01-05T10:00:00.079Z")
    );
    assert_eq!(joined.end_time_unix_nano, nanos("2026-01-05T10:00:00.250Z"));
    assert_eq!(joined.name, "GET");
    assert_eq!(joined.kind, 2, "SERVER");
    let attr = |s: &OtlpSpan, k: &str| otlp_attr(&s.attributes, k);
    assert_eq!(attr(joined, "url.path").as_deref(), Some("/orders/7"));
    assert_eq!(
        attr(joined, "server.address").as_deref(),
        Some("www.example.com")
    );
    assert_eq!(
        attr(joined, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(joined, "client.address").as_deref(),
        Some("192.168.131.39")
    );
    assert_eq!(
        attr(joined, "tracebridge.log.format").as_deref(),
        Some("alb")
    );
    let failed = spans
        .iter()
        .find(|s| attr(s, "http.response.status_code").as_deref() == Some("503"))
        .unwrap();
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(2),
        "5xx: ERROR"
    );
    // The same file again: the same span ids.
    let first_ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    let (ok, stderr) = run_binary(&args);
    assert!(ok, "{stderr}");
    let again: BTreeSet<String> = spans_of(&rx, "alb", 4)
        .iter()
        .map(|s| hex(&s.span_id))
        .collect();
    assert_eq!(again, first_ids, "re-running makes the same spans");

    // nginx logging `$http_traceparent` as JSON (escape=json), fields mapped on the
    // command line; `$time_iso8601` is the end of the request.
    let nginx = dir.path().join("nginx.json");
    std::fs::write(
        &nginx,
        format!(
            "{}\n",
            serde_json::json!({
                "time_iso8601": "2026-01-05T10:00:02+00:00",
                "request_time": "0.012",
                "request_method": "GET",
                "request_uri": "/orders/7?x=1",
                "status": "200",
                "http_traceparent": traceparent,
            })
        ),
    )
    .unwrap();
    let config = logs_config(dir.path(), rx.addr, "nginx");
    let (ok, stderr) = run_binary(&[
        "--config",
        &config,
        "logs-to-traces",
        "--format",
        "json",
        "--time-at",
        "end",
        "--field",
        "time=time_iso8601",
        "--field",
        "duration=request_time",
        "--field",
        "method=request_method",
        "--field",
        "path=request_uri",
        "--field",
        "header:traceparent=http_traceparent",
        nginx.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let n = &spans_of(&rx, "nginx", 1)[0];
    assert_eq!(hex(&n.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        hex(&n.parent_span_id),
        "00f067aa0ba902b7",
        "the client's span"
    );
    assert_eq!(n.end_time_unix_nano, nanos("2026-01-05T10:00:02Z"));
    assert_eq!(n.end_time_unix_nano - n.start_time_unix_nano, 12_000_000);

    // The gateway's own access log: each line joins the span the gateway exported.
    poll_until(Duration::from_secs(5), || {
        let lines = std::fs::read_to_string(&access)
            .unwrap_or_default()
            .lines()
            .count();
        (lines == 2)
            .then_some(())
            .ok_or(format!("{lines} access log lines"))
    });
    let config = logs_config(dir.path(), rx.addr, "gateway-log");
    let (ok, stderr) = run_binary(&[
        "--config",
        &config,
        "logs-to-traces",
        "--format",
        "tracebridge",
        access.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let from_log: BTreeSet<String> = spans_of(&rx, "gateway-log", 2)
        .iter()
        .map(|s| hex(&s.trace_id))
        .collect();
    assert_eq!(from_log, gateway_traces);
}

/// The process this test started, ended when the test ends (passed or not).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--follow` reads lines appended to a growing file (and a line written in two
/// parts as one).
#[test]
fn logs_to_traces_follows_a_growing_file() {
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("alb.log");
    std::fs::write(&log, "").unwrap();
    let config = logs_config(dir.path(), rx.addr, "follow");
    let _child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_tracebridge"))
            .args([
                "--config",
                &config,
                "logs-to-traces",
                "--format",
                "alb",
                "--follow",
                log.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let line = alb_line(
        "2026-01-05T10:00:00.250000Z",
        "2026-01-05T10:00:00.079000Z",
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        200,
    );
    let (first, second) = line.split_at(40);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(first.as_bytes()).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    f.write_all(second.as_bytes()).unwrap();
    f.write_all(b"\n").unwrap();
    f.flush().unwrap();
    let spans = spans_of(&rx, "follow", 1);
    assert_eq!(hex(&spans[0].trace_id), "5759e988bd862e3fe1be46a994272793");
}

/// `[telemetry.logs_to_traces]` is checked with every other problem.
#[test]
fn logs_to_traces_config_problems_are_reported() {
    let text = r#"
        [server]
        allow_no_routes = true
        [telemetry.logs_to_traces]
        format = "apache"
        time_at = "middle"
        duration_unit = "minutes"
        fields = { latency = "request_time", time = "ts" }
        headers = { "x-custom" = "x", traceparent = "http_traceparent" }
    "#;
    let err = tracebridge::config::load_str(text, None, 1).unwrap_err();
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    for want in [
        r#"telemetry.logs_to_traces.format: unknown format "apache": expected "alb", "tracebridge" or "json""#,
        r#"telemetry.logs_to_traces.time_at: unknown time_at "middle": expected "start" or "end""#,
        r#"telemetry.logs_to_traces.duration_unit: unknown unit "minutes": expected "s", "ms" or "us""#,
        r#"telemetry.logs_to_traces.fields.latency: unknown field "latency": expected one of time, duration, method, path, status, host, user_agent, client or header:NAME"#,
        r#"telemetry.logs_to_traces.headers.x-custom: "x-custom" is not a trace header of any format"#,
    ] {
        assert!(
            got.iter().any(|g| g == want),
            "missing {want:?} in {got:#?}"
        );
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example =
        tracebridge::config::load_file(&root.join("conf/examples/logs-to-traces.toml"), 1).unwrap();
    let logs = &example.telemetry.logs;
    assert_eq!(logs.format, tracebridge::config::spec::LogFormat::Json);
    assert!(logs.fields.time_at_end);
    assert_eq!(
        logs.fields.headers,
        [("traceparent".to_string(), "http_traceparent".to_string())]
    );
}

/// `mode` on an upstream applies to every route to it; a route's own `mode` wins.
#[test]
fn an_upstream_mode_is_inherited_and_a_route_mode_wins() {
    use tracebridge::mediate::Mode;
    let snapshot = tracebridge::config::load_str(
        r#"
        [upstreams.legacy]
        kind = "echo"
        mode = "observe"
        [[routes]]
        name = "inherits"
        path_prefix = "/a"
        upstream = "legacy"
        [[routes]]
        name = "flipped"
        path_prefix = "/b"
        upstream = "legacy"
        mode = "mediate"
        "#,
        None,
        1,
    )
    .unwrap();
    let mode = |name: &str| {
        (0..snapshot.router.len())
            .filter_map(|i| snapshot.router.route(i))
            .find(|r| &*r.name == name)
            .map(|r| r.policy.mode)
    };
    assert_eq!(mode("inherits"), Some(Mode::Observe));
    assert_eq!(mode("flipped"), Some(Mode::Mediate));
    assert_eq!(snapshot.defaults.mode, Mode::Mediate);
}

/// Standard input (`-`): a gateway access log line piped in becomes a span.
#[test]
fn logs_to_traces_reads_standard_input() {
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let config = logs_config(dir.path(), rx.addr, "stdin");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_tracebridge"))
            .args([
                "--config",
                &config,
                "logs-to-traces",
                "--format",
                "tracebridge",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let line = r#"{"time":"2025-01-31T09:12:03.013Z","route":"checkout","method":"GET","path":"/checkout/1","status":200,"duration_ms":2.765,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"afbab40caaadedda","parent_id":"00f067aa0ba902b7","sampled":true}"#;
    {
        let mut stdin = child.0.stdin.take().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        // Dropped: end of input, the command flushes and exits.
    }
    let span = &spans_of(&rx, "stdin", 1)[0];
    assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        2_765_000
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "did not exit at the end of its input"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
