//! The gateway as an internet-facing ingress, through the real gateway and a real
//! origin: client-address forwarding and trusted proxies, trust by network, the
//! gateway's own responses correlated, and one budget for all injected trace headers.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::SpanData;
use serde_json::Value;
use support::{client, one_route, Origin, TestGateway, DEAD_PORT};
use tracebridge::codec::Format;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn json(resp: reqwest::blocking::Response) -> Value {
    let text = resp.text().expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The headers the origin received.
fn seen(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200);
    json(resp)["headers"].clone()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            OtelValue::String(s) => s.as_str().to_string(),
            other => other.to_string(),
        })
}

fn trace_id_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).expect("trace id")
}

#[test]
fn forwarding_headers_are_added_and_a_clients_own_are_replaced() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let host = format!("127.0.0.1:{}", gw.port);
    // A client that is not a trusted proxy claims another address, scheme and host.
    let h = seen(
        &gw,
        "/",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("forwarded", "for=6.6.6.6;proto=https"),
        ],
    );
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], host.as_str());
    assert_eq!(
        h["forwarded"],
        format!("for=127.0.0.1;host=\"{host}\";proto=http").as_str()
    );
    // The span names the real peer, not the claimed one.
    let spans = gw.spans.wait_for(1);
    assert_eq!(
        attr(&spans[0], "client.address").as_deref(),
        Some("127.0.0.1")
    );
}

#[test]
fn a_trusted_proxys_chain_names_the_client_and_is_extended() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "",
    ));
    let h = seen(
        &gw,
        "/",
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example"),
            ("forwarded", "for=203.0.113.7;proto=https"),
        ],
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "https", "the first proxy saw TLS");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(
        h["forwarded"],
        "for=203.0.113.7;proto=https, for=127.0.0.1;host=shop.example;proto=https"
    );
    let spans = gw.spans.wait_for(1);
    assert_eq!(
        attr(&spans[0], "client.address").as_deref(),
        Some("203.0.113.7")
    );
}

#[test]
fn forwarding_mode_is_chosen_per_route() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        trusted_proxies = ["127.0.0.1"]
        [upstreams.origin]
        peers = ["{addr}"]
        [[routes]]
        name = "replace"
        path_prefix = "/r"
        upstream = "origin"
        propagation = {{ forwarded = "replace" }}
        [[routes]]
        name = "off"
        path_prefix = "/o"
        upstream = "origin"
        propagation = {{ forwarded = "off" }}
        "#,
        addr = origin.addr
    ));
    let chain = [("x-forwarded-for", "203.0.113.7, 10.9.9.9")];
    // Replace: one hop, the client resolved through the trusted peer.
    let h = seen(&gw, "/r", &chain);
    assert_eq!(h["x-forwarded-for"], "10.9.9.9", "{h}");
    assert!(h["forwarded"]
        .as_str()
        .unwrap()
        .starts_with("for=10.9.9.9;"));
    // Off: the gateway neither adds nor removes anything.
    let h = seen(&gw, "/o", &chain);
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 10.9.9.9", "{h}");
    assert!(h.get("forwarded").is_none() && h.get("x-forwarded-proto").is_none());
}

#[test]
fn trust_by_network_decides_whether_the_incoming_trace_is_continued() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        r#"trusted_proxies = ["127.0.0.1"]
        [propagation]
        trust = "restart"
        trusted_networks = ["203.0.113.0/24"]"#,
        "",
    ));
    let from = |client: &str| {
        let h = seen(
            &gw,
            "/",
            &[("traceparent", TRACEPARENT), ("x-forwarded-for", client)],
        );
        trace_id_of(h["traceparent"].as_str().expect("traceparent")).to_string()
    };
    assert_eq!(from("203.0.113.7"), TRACE, "internal caller: continued");
    assert_ne!(from("198.51.100.1"), TRACE, "external caller: restarted");
    // Without a trusted proxy in front, a client's own X-Forwarded-For cannot put it
    // inside the networks.
    let direct = TestGateway::start(&one_route(
        origin.addr,
        1,
        "[propagation]\ntrust = \"restart\"\ntrusted_networks = [\"203.0.113.0/24\"]",
        "",
    ));
    let h = seen(
        &direct,
        "/",
        &[
            ("traceparent", TRACEPARENT),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    );
    assert_ne!(trace_id_of(h["traceparent"].as_str().unwrap()), TRACE);
}

/// The lines of `path` once there are `n`, or panics after 5 s.
fn log_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        assert!(Instant::now() < deadline, "only got:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_404_for_no_route_is_correlated() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        &format!(
            "[propagation]\nresponse_header = true\n[access_log]\nenabled = true\npath = \"{}\"",
            log.display()
        ),
        "host = \"api.test\"",
    ));
    let resp = client()
        .get(gw.url("/nowhere"))
        .header("traceparent", TRACEPARENT)
        .send()
        .expect("request");
    assert_eq!(resp.status(), 404);
    let tr = resp.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(trace_id_of(&tr), TRACE, "continued with the defaults: {tr}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        resp.text().unwrap(),
        format!("{{\"error\":\"no route\",\"trace_id\":\"{TRACE}\"}}\n")
    );
    let spans = gw.spans.wait_for(1);
    let span = &spans[0];
    assert_eq!(span.name, "GET");
    assert_eq!(attr(span, "tracebridge.route").as_deref(), Some("none"));
    assert_eq!(attr(span, "http.route"), None);
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some("404")
    );
    assert_eq!(
        format!("{:032x}", span.span_context.trace_id()),
        TRACE,
        "the span is in the caller's trace"
    );
    assert_eq!(
        tr.split('-').nth(2).unwrap(),
        format!("{:016x}", span.span_context.span_id()),
        "traceresponse names the span"
    );
    let lines = log_lines(&log, 1);
    assert_eq!(lines[0]["route"], "none");
    assert_eq!(lines[0]["status"], 404);
    assert_eq!(lines[0]["trace_id"], TRACE);
}

#[test]
fn the_gateways_502_is_correlated() {
    let dead = DEAD_PORT;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [propagation]
        response_header = true
        [access_log]
        enabled = true
        path = "{log}"
        [upstreams.dead]
        peers = ["127.0.0.1:{dead}"]
        retry_on_connect_failure = false
        [[routes]]
        name = "main"
        upstream = "dead"
        "#,
        log = log.display()
    ));
    let resp = client().get(gw.url("/")).send().expect("request");
    assert_eq!(resp.status(), 502);
    let tr = resp.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_string();
    let trace = trace_id_of(&tr).to_string();
    assert_eq!(trace.len(), 32);
    let body = json(resp);
    assert_eq!(body["error"], "upstream unreachable");
    assert_eq!(body["trace_id"], trace.as_str());
    let spans = gw.spans.wait_for(1);
    assert_eq!(format!("{:032x}", spans[0].span_context.trace_id()), trace);
    assert_eq!(
        attr(&spans[0], "http.response.status_code").as_deref(),
        Some("502")
    );
    let lines = log_lines(&log, 1);
    assert_eq!(lines[0]["status"], 502);
    assert_eq!(lines[0]["trace_id"], trace.as_str());
}

#[test]
fn a_cors_preflight_is_not_a_request_without_context() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let c = client();
    let preflight = c
        .request(reqwest::Method::OPTIONS, gw.url("/api"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "traceparent")
        .send()
        .expect("preflight");
    assert!(preflight.status().as_u16() < 500);
    c.get(gw.url("/api")).send().expect("request");
    let v = support::poll_until(Duration::from_secs(5), || {
        let v: Value = json(c.get(gw.admin_url("/coverage")).send().expect("coverage"));
        if v["routes"]["main"]["requests"] == 1 && v["routes"]["main"]["preflights"] == 1 {
            Ok(v)
        } else {
            Err(format!("coverage: {v}"))
        }
    });
    assert_eq!(
        v["routes"]["main"]["incoming"],
        serde_json::json!({"none": 1}),
        "only the real request is a blind spot"
    );
}

/// `(bytes, headers)` of the trace headers in `headers` (name + value + 4 per line).
fn trace_header_size(headers: &Value) -> (usize, usize) {
    let mut bytes = 0;
    let mut lines = 0;
    for (name, value) in headers.as_object().expect("headers") {
        let ours = Format::ALL.iter().any(|f| {
            f.headers().iter().any(|h| h.as_str() == name)
                || f.prefixes().iter().any(|p| name.starts_with(p))
        });
        if ours {
            bytes += name.len() + value.as_str().unwrap().len() + 4;
            lines += 1;
        }
    }
    (bytes, lines)
}

#[test]
fn ten_kb_of_baggage_into_every_format_stays_within_the_budget() {
    let origin = Origin::start("origin");
    let every: Vec<String> = Format::ALL
        .iter()
        .map(|f| format!("\"{}\"", f.as_str()))
        .collect();
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        "",
        &format!("propagation = {{ inject = [{}] }}", every.join(", ")),
    ));
    // 10 KB of baggage: 200 members of about 50 bytes.
    let baggage: Vec<String> = (0..200)
        .map(|i| format!("member{i:03}={}", "v".repeat(40)))
        .collect();
    let baggage = baggage.join(",");
    assert!(baggage.len() > 10_000);
    let h = seen(
        &gw,
        "/",
        &[("traceparent", TRACEPARENT), ("baggage", &baggage)],
    );
    let (bytes, lines) = trace_header_size(&h);
    assert!(bytes <= 8192, "{bytes} bytes of trace headers");
    assert!(lines <= 64, "{lines} trace headers");
    // The ids made it in every format, baggage was cut (not dropped entirely).
    assert_eq!(trace_id_of(h["traceparent"].as_str().unwrap()), TRACE);
    for f in Format::ALL {
        if f == Format::Baggage {
            continue;
        }
        let first = f.headers()[0].as_str();
        assert!(h.get(first).is_some(), "{} ids missing: {h}", f.as_str());
    }
    let kept = h["baggage"].as_str().expect("some baggage kept");
    assert!(kept.starts_with("member000="), "the first members are kept");
    assert!(!kept.contains("member199="), "the last members are dropped");
    let metrics =
        gw.metrics_containing(&["tracebridge_propagation_budget_dropped_total{reason=\"bytes\"}"]);
    let dropped: u64 = metrics
        .lines()
        .find(|l| l.starts_with("tracebridge_propagation_budget_dropped_total{reason=\"bytes\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(dropped > 0 && dropped < 200, "{dropped}");
}
