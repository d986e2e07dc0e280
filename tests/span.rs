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
