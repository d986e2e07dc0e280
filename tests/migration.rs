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
