//! The real gateway in front of real origins: routing, errors, echo, admin, h2c, TLS.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, free_port, raw_exchange, Origin, StallingOrigin, TestGateway, DEAD_PORT};

fn json(resp: reqwest::blocking::Response) -> Value {
    let text = resp.text().expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn routing_config(a: &Origin, b: &Origin) -> String {
    format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.a]
        peers = ["{a}"]
        [upstreams.b]
        peers = ["{b}"]
        [upstreams.demo]
        kind = "echo"
        [[routes]]
        name = "api-root"
        host = "api.example.com"
        path_prefix = "/"
        upstream = "a"
        [[routes]]
        name = "api-orders"
        host = "api.example.com"
        path_prefix = "/orders"
        upstream = "b"
        [[routes]]
        name = "wild"
        host = "*.shop.test"
        path_prefix = "/"
        upstream = "b"
        [[routes]]
        name = "echo"
        host = "echo.test"
        path_prefix = "/"
        upstream = "demo"
        "#,
        a = a.addr,
        b = b.addr
    )
}

#[test]
fn host_prefix_and_longest_prefix_routing() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let gw = TestGateway::start(&routing_config(&a, &b));
    let c = client();
    let get = |host: &str, path: &str| {
        json(
            c.get(gw.url(path))
                .header("host", host)
                .send()
                .expect("request"),
        )
    };
    let v = get("api.example.com", "/users");
    assert_eq!(v["origin"], "a");
    assert_eq!(v["path"], "/users");
    assert_eq!(
        get("api.example.com", "/orders/42")["origin"],
        "b",
        "longest prefix wins"
    );
    assert_eq!(
        get("API.example.com:8080", "/")["origin"],
        "a",
        "host is case-insensitive, port ignored"
    );
    assert_eq!(get("x.shop.test", "/cart")["origin"], "b", "wildcard host");
}

#[test]
fn no_route_is_404_with_a_short_body() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let gw = TestGateway::start(&routing_config(&a, &b));
    let r = client()
        .get(gw.url("/"))
        .header("host", "unknown.test")
        .send()
        .expect("request");
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().unwrap(), "{\"error\":\"no route\"}\n");
}

#[test]
fn echo_describes_the_forwarded_request() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let gw = TestGateway::start(&routing_config(&a, &b));
    let r = client()
        .post(gw.url("/x/y?z=1"))
        .header("host", "echo.test")
        .header("x-one", "1")
        .header("x-two", "a")
        .body("payload")
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v = json(r);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/x/y?z=1");
    assert_eq!(v["headers"]["x-one"], "1");
    assert_eq!(v["headers"]["host"], "echo.test");
}

#[test]
fn repeated_headers_show_as_arrays_in_echo() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let gw = TestGateway::start(&routing_config(&a, &b));
    let raw = raw_exchange(
        format!("127.0.0.1:{}", gw.port).parse().unwrap(),
        b"GET / HTTP/1.1\r\nHost: echo.test\r\nX-Rep: 1\r\nX-Rep: 2\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&raw);
    let body = text.split("\r\n\r\n").nth(1).expect("body");
    let v: Value = serde_json::from_str(body.trim()).expect("json");
    assert_eq!(v["headers"]["x-rep"], serde_json::json!(["1", "2"]));
}

#[test]
fn unreachable_upstream_is_502() {
    let dead = DEAD_PORT;
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.dead]
        peers = ["127.0.0.1:{dead}"]
        [[routes]]
        upstream = "dead"
        "#
    ));
    let started = Instant::now();
    let r = client().get(gw.url("/")).send().expect("request");
    assert_eq!(r.status(), 502);
    assert_eq!(r.text().unwrap(), "{\"error\":\"upstream unreachable\"}\n");
    assert!(started.elapsed() < Duration::from_secs(3), "no hang");
    // One try plus the one bounded retry, both refused.
    gw.metrics_containing(&[
        r#"tracebridge_upstream_failures_total{kind="connect",upstream="dead"} 2"#,
        r#"tracebridge_requests_total{route="route0",status_class="5xx"} 1"#,
    ]);
}

#[test]
fn connect_failure_is_retried_once_on_the_next_peer() {
    let dead = DEAD_PORT;
    let live = Origin::start("live");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.pool]
        peers = ["127.0.0.1:{dead}", "{live}"]
        [[routes]]
        upstream = "pool"
        "#,
        live = live.addr
    ));
    let c = client();
    for _ in 0..4 {
        let r = c.get(gw.url("/")).send().expect("request");
        assert_eq!(r.status(), 200, "GET is retried on the live peer");
    }
    // POST is not idempotent: when round robin picks the dead peer it is not retried.
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            c.post(gw.url("/"))
                .body("x")
                .send()
                .expect("post")
                .status()
                .as_u16()
        })
        .collect();
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[test]
fn stalled_upstream_is_504() {
    let stall = StallingOrigin::start();
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.slow]
        peers = ["{addr}"]
        read_timeout = "300ms"
        [[routes]]
        upstream = "slow"
        "#,
        addr = stall.addr
    ));
    let started = Instant::now();
    let r = client().get(gw.url("/")).send().expect("request");
    assert_eq!(r.status(), 504);
    assert_eq!(r.text().unwrap(), "{\"error\":\"upstream timed out\"}\n");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn admin_endpoints() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let gw = TestGateway::start(&routing_config(&a, &b));
    let c = client();
    let r = c.get(gw.admin_url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "ok\n");
    assert_eq!(c.get(gw.admin_url("/readyz")).send().unwrap().status(), 200);
    c.get(gw.url("/"))
        .header("host", "api.example.com")
        .send()
        .unwrap();
    gw.metrics_containing(&[
        r#"tracebridge_requests_total{route="api-root",status_class="2xx"} 1"#,
        "tracebridge_config_generation 1",
    ]);
    let cfg = json(c.get(gw.admin_url("/config")).send().unwrap());
    assert_eq!(cfg["generation"], 1);
    assert_eq!(cfg["source"], "<built-in>");
    assert_eq!(cfg["sha256"].as_str().unwrap().len(), 64);
    assert!(cfg["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(c.get(gw.admin_url("/nope")).send().unwrap().status(), 404);
}

#[test]
fn h2c_round_trip_downstream_and_upstream() {
    let origin = Origin::start("h2");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.h2]
        peers = ["{addr}"]
        protocol = "h2c"
        [[routes]]
        upstream = "h2"
        "#,
        addr = origin.addr
    ));
    let c = reqwest::blocking::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .get(gw.url("/grpc.Service/Method"))
        .send()
        .expect("h2c request");
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "client ⇄ gateway over h2c"
    );
    let v = json(r);
    assert_eq!(v["version"], "HTTP/2.0", "gateway ⇄ origin over h2c");
    assert_eq!(v["path"], "/grpc.Service/Method");
}

#[test]
fn tls_listener_negotiates_h2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let origin = Origin::start("behind-tls");
    let tls_port = free_port();
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [[server.tls]]
        listen = "127.0.0.1:{tls_port}"
        cert = "{cert}"
        key = "{key}"
        [upstreams.o]
        peers = ["{addr}"]
        [[routes]]
        upstream = "o"
        "#,
        cert = cert_path.display(),
        key = key_path.display(),
        addr = origin.addr
    ));
    let c = reqwest::blocking::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = c
        .get(format!("https://localhost:{tls_port}/secure"))
        .send()
        .expect("tls request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let v = json(r);
    assert_eq!(v["origin"], "behind-tls");
    assert_eq!(v["path"], "/secure");
    drop(gw);
}

#[test]
fn malformed_request_gets_400_not_a_crash() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let gw = TestGateway::start(&routing_config(&a, &b));
    let addr = format!("127.0.0.1:{}", gw.port).parse().unwrap();
    let raw = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: echo.test\r\nBad Header\r\n\r\n",
        Duration::from_secs(3),
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // and the gateway still serves
    let r = client()
        .get(gw.url("/"))
        .header("host", "echo.test")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// An origin that answers an HTTP/1.1 Upgrade with 101 and then echoes bytes.
fn upgrade_origin() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&req)
            .to_ascii_lowercase()
            .contains("upgrade: websocket"));
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    });
    (addr, t)
}

#[test]
fn websocket_upgrade_passes_through() {
    use std::io::{Read, Write};
    let (addr, origin) = upgrade_origin();
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.ws]
        peers = ["{addr}"]
        [[routes]]
        upstream = "ws"
        "#
    ));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the 101");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(b"\x81\x04ping").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"\x81\x04ping",
        "bytes flow both ways after the upgrade"
    );
    origin.join().unwrap();
}

#[test]
fn grpc_trailers_pass_through_h2c() {
    use http_body_util::BodyExt;
    let origin = Origin::start("grpc");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.grpc]
        peers = ["{addr}"]
        protocol = "h2c"
        [[routes]]
        upstream = "grpc"
        "#,
        addr = origin.addr
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = gw.port;
    let (status, trailers) = rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post(format!(
            "http://127.0.0.1:{port}/helloworld.Greeter/SayHello"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\0",
        )))
        .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let collected = resp.into_body().collect().await.unwrap();
        (status, collected.trailers().cloned())
    });
    assert_eq!(status, 200);
    let trailers = trailers.expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
}

#[test]
fn tls_upstream_round_trip() {
    // Gateway B terminates TLS in front of the echo upstream; gateway A forwards to B
    // over TLS. The echo answer proves the request crossed the TLS hop.
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls_port = free_port();
    let _b = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [[server.tls]]
        listen = "127.0.0.1:{tls_port}"
        cert = "{cert}"
        key = "{key}"
        [upstreams.echo]
        kind = "echo"
        [[routes]]
        upstream = "echo"
        "#,
        cert = cert_path.display(),
        key = key_path.display(),
    ));
    let a = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.b]
        peers = ["127.0.0.1:{tls_port}"]
        tls = true
        sni = "localhost"
        tls_verify = false
        [[routes]]
        upstream = "b"
        "#
    ));
    let r = client().get(a.url("/via-tls")).send().expect("request");
    assert_eq!(r.status(), 200);
    let v = json(r);
    assert_eq!(v["path"], "/via-tls");
    assert_eq!(v["method"], "GET");
}

#[test]
fn health_checks_take_a_dead_peer_out_of_rotation() {
    let dead = DEAD_PORT;
    let live = Origin::start("live");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.pool]
        peers = ["127.0.0.1:{dead}", "{live}"]
        retry_on_connect_failure = false
        [upstreams.pool.health_check]
        kind = "tcp"
        interval = "100ms"
        [[routes]]
        upstream = "pool"
        "#,
        live = live.addr
    ));
    // Wait for the first check round to mark the dead peer down.
    std::thread::sleep(Duration::from_millis(600));
    let c = client();
    for i in 0..6 {
        let r = c.post(gw.url("/")).body("x").send().expect("request");
        assert_eq!(r.status(), 200, "request {i} went to the dead peer");
    }
}
