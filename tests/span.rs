//! The gateway span through the real gateway: a retry that pingora makes after the
//! connection to the upstream was up records one `retry` event, not one per hook.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{client, one_route, TestGateway};

/// A raw HTTP/1.1 origin whose first connection answers one request, keeps the
/// connection alive, then reads the next request on it and closes without answering.
/// Every later connection answers every request. pingora sees the second request fail
/// on a reused connection before any response, which it retries on a new connection.
struct DropsSecondOnFirstConnection {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Reads one request head (no body: the test sends GETs); false when the peer closed or
/// the read timed out.
fn read_head(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") && seen.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => return false,
        }
    }
    true
}

fn answer(stream: &mut TcpStream) -> bool {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        .is_ok()
}

impl DropsSecondOnFirstConnection {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut first = true;
            let mut workers = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let drop_second = std::mem::replace(&mut first, false);
                workers.push(std::thread::spawn(move || {
                    // Bounded: a connection serves at most 100 requests.
                    for n in 0..100 {
                        if !read_head(&mut stream) {
                            return;
                        }
                        if drop_second && n == 1 {
                            // The request arrived on the reused connection: close it
                            // without a byte of response.
                            return;
                        }
                        if !answer(&mut stream) {
                            return;
                        }
                    }
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        DropsSecondOnFirstConnection {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DropsSecondOnFirstConnection {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_retry_after_the_connection_was_up_records_one_retry_event() {
    let origin = DropsSecondOnFirstConnection::start();
    // One worker, so both requests share the upstream connection pool.
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let http = client();
    let first = http.get(gw.url("/one")).send().expect("first request");
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().expect("body"), "ok");
    let second = http.get(gw.url("/two")).send().expect("second request");
    assert_eq!(
        second.status(),
        200,
        "pingora retries the request that failed on the reused connection"
    );
    let spans = gw.spans.wait_for(2);
    let span = spans
        .iter()
        .find(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "url.path" && kv.value.as_str() == "/two")
        })
        .expect("the span of the second request");
    let retries: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name == "retry")
        .map(|e| {
            e.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "tracebridge.attempt")
                .map(|kv| kv.value.clone())
        })
        .collect();
    assert_eq!(
        retries,
        vec![Some(opentelemetry::Value::I64(2))],
        "one retry event, for attempt 2: {:?}",
        span.events
    );
    let first_span = spans
        .iter()
        .find(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "url.path" && kv.value.as_str() == "/one")
        })
        .expect("the span of the first request");
    assert!(first_span.events.is_empty(), "{:?}", first_span.events);
}

#[test]
fn without_an_exporter_no_span_is_built_but_the_upstream_still_gets_the_gateway_as_parent() {
    let origin = support::Origin::start("o");
    let gw = TestGateway::start_real_telemetry(&one_route(
        origin.addr,
        1,
        "[telemetry]\nexporter = \"none\"\n[propagation]\nresponse_header = true\n",
        "",
    ));
    let incoming_span = "00f067aa0ba902b7";
    let mut parents = Vec::new();
    for flags in ["01", "00"] {
        let r = client()
            .get(gw.url("/x"))
            .header(
                "traceparent",
                format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{incoming_span}-{flags}"),
            )
            .send()
            .expect("request");
        assert_eq!(r.status(), 200);
        let traceresponse = r.headers()["traceresponse"].to_str().unwrap().to_string();
        let body: serde_json::Value = r.json().unwrap();
        let sent = body["headers"]["traceparent"].as_str().unwrap().to_string();
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(
            parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
            "trace continued"
        );
        assert_ne!(parts[2], incoming_span, "a span id of the gateway's own");
        assert_eq!(
            &parts[3][1..],
            &flags[1..],
            "the caller's sampling decision: {sent}"
        );
        assert_eq!(traceresponse, sent, "traceresponse names the same parent");
        parents.push(parts[2].to_string());
    }
    assert_ne!(parents[0], parents[1], "a new span id per request");
    gw.metrics_containing(&["tracebridge_spans_started_total 0"]);
}
