//! The HTTP/1 fast path (issue 19) through the real gateway: what only it does
//! (pipelining, the front door's rejections, the upstream pool and its stale-connection
//! retry, hand-over to pingora and back on one connection) and the response framings
//! it relays. The shared behaviour is checked by every other suite on both paths
//! (`TRACEBRIDGE_TEST_PATH=fallback`); these configs name `fast_path` themselves.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{poll_until, TestGateway};

/// What a [`ScriptedOrigin`] does with one request.
enum Act {
    /// Write these bytes and keep the connection.
    Respond(Vec<u8>),
    /// Write these bytes and close.
    RespondClose(Vec<u8>),
    /// Close without answering.
    Close,
}

type Script = dyn Fn(usize, usize, &[u8]) -> Act + Send + Sync;

/// A raw HTTP/1 origin: each request head (and its `Content-Length` body) goes to the
/// script with the connection's and the request's index; every request is recorded.
struct ScriptedOrigin {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedOrigin {
    fn start(script: impl Fn(usize, usize, &[u8]) -> Act + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (r, c, s) = (requests.clone(), connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let index = c.fetch_add(1, Ordering::SeqCst);
                        let (script, r, s) = (script.clone(), r.clone(), s.clone());
                        std::thread::spawn(move || serve(stream, index, &*script, &r, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ScriptedOrigin {
            addr,
            requests,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        let r = self.requests.lock().unwrap();
        r.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut s: TcpStream,
    conn: usize,
    script: &Script,
    log: &Mutex<Vec<Vec<u8>>>,
    stop: &AtomicBool,
) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = Vec::new();
    let mut index = 0;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
                log.lock().unwrap().push(request.clone());
                match script(conn, index, &request) {
                    Act::Respond(bytes) => s.write_all(&bytes).unwrap_or(()),
                    Act::RespondClose(bytes) => {
                        let _ = s.write_all(&bytes);
                        return;
                    }
                    Act::Close => return,
                }
                index += 1;
                continue;
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn ok(body: &str) -> Act {
    Act::Respond(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Origin: yes\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A gateway on the fast path with one route to `origin`, plus `sections`.
fn gateway(origin: SocketAddr, sections: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        fast_path = true
        [upstreams.origin]
        peers = ["{origin}"]
        [[routes]]
        name = "main"
        upstream = "origin"
        {sections}
        "#
    ))
}

/// Sends `bytes` on a fresh connection and reads the answer ([`read_responses`]).
fn exchange(port: u16, bytes: &[u8], responses: usize) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(bytes).unwrap();
    read_responses(&mut s, responses)
}

/// Reads until `responses` complete `Content-Length` responses came (0: until the
/// peer has been quiet for 200 ms), or the peer closed; bounded by 5 s.
fn read_responses(s: &mut TcpStream, responses: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut quiet = false;
    while Instant::now() < deadline && (complete(&out) < responses || (responses == 0 && !quiet)) {
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => quiet = !out.is_empty(),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How many complete `Content-Length` responses `bytes` holds.
fn complete(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(end) = find(&bytes[at..], b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[at..at + end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        if bytes.len() < at + end + 4 + len {
            break;
        }
        at += end + 4 + len;
        n += 1;
    }
    n
}

fn metric(gw: &TestGateway, series: &str) -> f64 {
    let text = support::client()
        .get(gw.admin_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn pipelined_requests_are_all_answered_in_order_on_one_upstream_connection() {
    let origin = ScriptedOrigin::start(|_, i, req| {
        let line = String::from_utf8_lossy(req)
            .lines()
            .next()
            .unwrap()
            .to_string();
        ok(&format!("{i} {line}"))
    });
    let gw = gateway(origin.addr, "");
    let got = exchange(
        gw.port,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
        3,
    );
    let order: Vec<_> = ["0 GET /a", "1 GET /b", "2 GET /c"]
        .iter()
        .map(|m| {
            got.find(m)
                .unwrap_or_else(|| panic!("{m} missing in {got}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {got}");
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
    assert_eq!(
        metric(
            &gw,
            "tracebridge_fast_path_delegated_total{reason=\"route\"}"
        ),
        0.0
    );
}

#[test]
fn the_upstream_gets_one_head_with_the_trace_context_and_the_clients_own_header_spelling() {
    let origin = ScriptedOrigin::start(|_, _, _| ok("fine"));
    let gw = gateway(origin.addr, "");
    let got = exchange(
        gw.port,
        b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nX-Custom-Case: Kept\r\nConnection: keep-alive\r\nX-Tight:v\r\nb3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\nX-Spaced:  w \t\r\nContent-Length: 5\r\n\r\nhello",
        1,
    );
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    let sent = &origin.requests()[0];
    // The client's lines as they came (spelling and spacing), in order, without the
    // hop-by-hop one and the trace header mediation rewrites; then mediation's headers.
    assert!(
        sent.starts_with("POST /p?q=1 HTTP/1.1\r\nHost: x\r\nX-Custom-Case: Kept\r\nX-Tight:v\r\nX-Spaced:  w \t\r\nContent-Length: 5\r\n"),
        "spelling kept: {sent}"
    );
    assert!(
        !sent.to_ascii_lowercase().contains("connection:"),
        "hop-by-hop dropped: {sent}"
    );
    assert!(
        sent.contains("traceparent: 00-80f198ee56343ba864fe8b2a57d3eff7-"),
        "trace continued: {sent}"
    );
    assert!(sent.contains("x-forwarded-for: 127.0.0.1\r\n"), "{sent}");
    assert!(sent.ends_with("\r\n\r\nhello"), "body: {sent}");
}

/// The fast path reuses a connection's forwarding headers from one request to the next
/// (`ForwardingMemo`): only while they cannot differ.
#[test]
fn forwarding_headers_follow_each_keep_alive_request_host_and_a_trusted_proxys_chain() {
    let origin = ScriptedOrigin::start(|_, _, _| ok("fine"));
    let gw = gateway(origin.addr, "");
    let got = exchange(
        gw.port,
        b"GET /1 HTTP/1.1\r\nHost: a.example\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.example\r\n\r\nGET /3 HTTP/1.1\r\nHost: b.example\r\n\r\n",
        3,
    );
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 3, "{got}");
    let hosts: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| {
            let lower = r.to_ascii_lowercase();
            let xfh = lower
                .lines()
                .find_map(|l| l.strip_prefix("x-forwarded-host: "))
                .unwrap_or("-")
                .to_string();
            assert!(
                lower.contains(&format!("forwarded: for=127.0.0.1;host={xfh};proto=http")),
                "{r}"
            );
            xfh
        })
        .collect();
    assert_eq!(hosts, ["a.example", "a.example", "b.example"]);

    // From a trusted proxy the chain it sends is part of the value: never reused.
    let origin = ScriptedOrigin::start(|_, _, _| ok("fine"));
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        fast_path = true
        trusted_proxies = ["127.0.0.1/32"]
        [upstreams.origin]
        peers = ["{}"]
        [[routes]]
        name = "main"
        upstream = "origin"
        "#,
        origin.addr
    ));
    exchange(
        gw.port,
        b"GET /1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.2\r\n\r\n",
        2,
    );
    let sent = origin.requests();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].contains("x-forwarded-for: 192.0.2.1, 127.0.0.1\r\n"),
        "{}",
        sent[0]
    );
    assert!(
        sent[1].contains("x-forwarded-for: 192.0.2.2, 127.0.0.1\r\n"),
        "{}",
        sent[1]
    );
}

#[test]
fn a_pooled_connection_the_origin_closed_under_the_request_is_retried_once_for_a_get_only() {
    // Every connection's second request is read and dropped without an answer: the race
    // of a keep-alive connection the origin closes just as the gateway reuses it.
    let origin = ScriptedOrigin::start(|_, i, _| if i == 0 { ok("first") } else { Act::Close });
    let gw = gateway(origin.addr, "");
    let client = support::client();
    for _ in 0..2 {
        let r = client.get(gw.url("/get")).send().unwrap();
        assert_eq!(r.status(), 200, "retried on a fresh connection");
    }
    assert_eq!(origin.connections.load(Ordering::SeqCst), 2);
    let post = client.post(gw.url("/post")).body("x").send().unwrap();
    assert_eq!(post.status(), 502, "a POST is never sent twice");
    let posts = origin
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn smuggling_shapes_are_refused_at_the_front_door_with_400_and_close() {
    let origin = ScriptedOrigin::start(|_, _, _| ok("never"));
    let gw = gateway(origin.addr, "");
    for bad in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    ] {
        let got = support::raw_exchange(
            std::net::SocketAddr::from(([127, 0, 0, 1], gw.port)),
            bad,
            Duration::from_secs(5),
        );
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
        assert!(got.contains("connection: close"), "{got}");
    }
    assert!(origin.requests().is_empty(), "nothing reached the origin");
    assert_eq!(
        metric(&gw, "tracebridge_fast_path_rejected_total{status=\"400\"}"),
        5.0
    );
}

#[test]
fn chunked_until_close_head_and_1xx_responses_are_relayed_as_framed() {
    let origin = ScriptedOrigin::start(|_, _, req| {
        let line = String::from_utf8_lossy(req)
            .lines()
            .next()
            .unwrap()
            .to_string();
        match line.as_str() {
            "GET /chunked HTTP/1.1" => Act::Respond(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            ),
            "GET /early HTTP/1.1" => Act::Respond(
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            ),
            "HEAD /head HTTP/1.1" => {
                Act::Respond(b"HTTP/1.1 200 OK\r\nX-A:1\r\nKeep-Alive: timeout=5\r\nContent-Length: 1000\r\nX-B:  2 \r\n\r\n".to_vec())
            }
            _ => Act::RespondClose(b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec()),
        }
    });
    let gw = gateway(origin.addr, "");
    let chunked = exchange(gw.port, b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    assert!(
        chunked.ends_with("\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
        "{chunked}"
    );
    assert!(
        chunked.contains("Transfer-Encoding: chunked\r\n"),
        "{chunked}"
    );
    let early = exchange(gw.port, b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n", 2);
    assert!(
        early.starts_with("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK"),
        "{early}"
    );
    // HEAD then GET on one connection: the HEAD's Content-Length frames no body.
    let head = exchange(
        gw.port,
        b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\n",
        1,
    );
    // The upstream's lines as they came, but for the hop-by-hop one.
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nX-A:1\r\nContent-Length: 1000\r\nX-B:  2 \r\n"),
        "{head}"
    );
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.ends_with("\r\n\r\nuntil close"), "{all}");
    assert!(
        all.contains("connection: close\r\n"),
        "the client learns the end: {all}"
    );
}

#[test]
fn a_request_for_pingora_is_handed_over_and_the_connection_comes_back() {
    let origin = ScriptedOrigin::start(|_, _, _| ok("fast"));
    let gw = gateway(
        origin.addr,
        r#"
        [upstreams.e]
        kind = "echo"
        [[routes]]
        name = "echo"
        path_prefix = "/echo"
        upstream = "e"
        "#,
    );
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_responses(&mut s, 1).starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let second = read_responses(&mut s, 1);
    assert!(second.ends_with("fast"), "{second}");
    poll_until(Duration::from_secs(5), || {
        let delegated = metric(
            &gw,
            "tracebridge_fast_path_delegated_total{reason=\"route\"}",
        );
        (delegated == 1.0)
            .then_some(())
            .ok_or(format!("delegated {delegated}"))
    });
    assert_eq!(
        origin.requests().len(),
        1,
        "the second request took the fast path"
    );
}

#[test]
fn with_the_fast_path_off_every_connection_goes_to_pingora() {
    let origin = ScriptedOrigin::start(|_, _, _| ok("slow"));
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        fast_path = false
        [upstreams.origin]
        peers = ["{}"]
        [[routes]]
        name = "main"
        upstream = "origin"
        "#,
        origin.addr
    ));
    // pingora answers only the first of pipelined requests: the fast path is not serving.
    let got = exchange(
        gw.port,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        2,
    );
    assert_eq!(complete(got.as_bytes()), 1, "{got}");
    assert_eq!(
        metric(
            &gw,
            "tracebridge_fast_path_delegated_total{reason=\"disabled\"}"
        ),
        1.0
    );
}
