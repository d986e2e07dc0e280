//! Request ids (issue 21, part 3), through the real gateway: recorded on the span and
//! the access log, generated from the trace and span ids, set upstream and returned,
//! a trace started from a 128-bit request id, and bad values never recorded or echoed.

mod support;

use std::time::Duration;

use opentelemetry_sdk::trace::SpanData;
use serde_json::Value;
use support::{client, one_route, poll_until, Origin, TestGateway};

const UUID: &str = "fceb3265-4be8-45f0-b410-e4b5ccc39dd4";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Answer {
    /// Headers the origin received.
    upstream: serde_json::Map<String, Value>,
    /// Headers of the response.
    response: reqwest::header::HeaderMap,
}

fn send(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200);
    let response = resp.headers().clone();
    let body: Value = serde_json::from_str(&resp.text().unwrap()).expect("json");
    Answer {
        upstream: body["headers"].as_object().expect("headers").clone(),
        response,
    }
}

impl Answer {
    fn upstream(&self, name: &str) -> Option<&str> {
        self.upstream.get(name).and_then(Value::as_str)
    }

    fn response(&self, name: &str) -> Option<&str> {
        self.response.get(name).and_then(|v| v.to_str().ok())
    }

    /// (trace id, parent id) of the upstream's `traceparent`.
    fn ids(&self) -> (String, String) {
        let tp = self.upstream("traceparent").expect("traceparent");
        (tp[3..35].to_owned(), tp[36..52].to_owned())
    }
}

fn gateway(origin: &Origin, log: &std::path::Path, keys: &str) -> TestGateway {
    TestGateway::start(&one_route(
        origin.addr,
        1,
        &format!(
            "[propagation]\n{keys}\n[access_log]\nenabled = true\npath = \"{}\"\n",
            log.display()
        ),
        "",
    ))
}

fn log_line(log: &std::path::Path, path: &str) -> Value {
    poll_until(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["path"] == path)
            .ok_or_else(|| format!("no access log line for {path}:\n{text}"))
    })
}

fn span_for(gw: &TestGateway, path: &str) -> SpanData {
    poll_until(Duration::from_secs(5), || {
        gw.spans
            .all()
            .into_iter()
            .find(|s| {
                s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "url.path" && kv.value.as_str() == path)
            })
            .ok_or_else(|| format!("no span for {path}"))
    })
}

fn request_id_attr(span: &SpanData) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "tracebridge.request_id")
        .map(|kv| kv.value.as_str().into_owned())
}

#[test]
fn a_valid_request_id_is_recorded_on_the_span_and_the_access_log() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = gateway(&origin, &log, "");
    let a = send(&gw, "/valid", &[("x-request-id", UUID)]);
    assert_eq!(a.upstream("x-request-id"), Some(UUID), "passed through");
    assert_eq!(
        a.response("x-request-id"),
        None,
        "not generating: not returned"
    );
    assert_eq!(log_line(&log, "/valid")["request_id"], UUID);
    assert_eq!(
        request_id_attr(&span_for(&gw, "/valid")).as_deref(),
        Some(UUID)
    );
    // None: no field, no attribute.
    send(&gw, "/none", &[]);
    assert_eq!(log_line(&log, "/none").get("request_id"), None);
    assert_eq!(request_id_attr(&span_for(&gw, "/none")), None);
}

#[test]
fn a_bad_request_id_is_never_recorded_or_echoed() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let bad = "<script>alert(1)</script>";
    let long = "a".repeat(201);
    let gw = gateway(&origin, &log, "");
    send(&gw, "/bad", &[("x-request-id", bad)]);
    assert_eq!(log_line(&log, "/bad").get("request_id"), None);
    assert_eq!(request_id_attr(&span_for(&gw, "/bad")), None);
    send(&gw, "/long", &[("x-request-id", &long)]);
    assert_eq!(log_line(&log, "/long").get("request_id"), None);

    // Generating: the bad value is replaced upstream and never returned.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = gateway(&origin, &log, "request_id_generate = true");
    let a = send(&gw, "/bad", &[("x-request-id", bad)]);
    let (trace, span) = a.ids();
    let made = format!("{trace}-{span}");
    assert_eq!(a.upstream("x-request-id"), Some(made.as_str()));
    assert_eq!(a.response("x-request-id"), Some(made.as_str()));
    assert_eq!(log_line(&log, "/bad")["request_id"], made.as_str());
}

#[test]
fn generated_ids_join_the_trace_and_go_upstream_and_back() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = gateway(&origin, &log, "request_id_generate = true");
    let a = send(&gw, "/made", &[("traceparent", TRACEPARENT)]);
    let (trace, span) = a.ids();
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    let made = format!("{trace}-{span}");
    assert_eq!(a.upstream("x-request-id"), Some(made.as_str()));
    assert_eq!(a.response("x-request-id"), Some(made.as_str()));
    assert_eq!(log_line(&log, "/made")["request_id"], made.as_str());
    let s = span_for(&gw, "/made");
    assert_eq!(request_id_attr(&s).as_deref(), Some(made.as_str()));
    assert_eq!(format!("{:016x}", s.span_context.span_id()), span);
    // A valid incoming id is kept, and returned.
    let a = send(&gw, "/kept", &[("x-request-id", "req-42")]);
    assert_eq!(a.upstream("x-request-id"), Some("req-42"));
    assert_eq!(a.response("x-request-id"), Some("req-42"));
}

#[test]
fn another_header_name_per_route() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        "",
        r#"propagation = { request_id_header = "x-correlation-id", request_id_generate = true }"#,
    ));
    let a = send(&gw, "/", &[("x-request-id", "ignored")]);
    let (trace, span) = a.ids();
    assert_eq!(
        a.upstream("x-correlation-id"),
        Some(format!("{trace}-{span}").as_str())
    );
    assert_eq!(a.upstream("x-request-id"), Some("ignored"), "not ours");
}

#[test]
fn a_128_bit_request_id_starts_the_trace() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = gateway(&origin, &log, "request_id_trace = true");
    let a = send(&gw, "/uuid", &[("x-request-id", UUID)]);
    assert_eq!(a.ids().0, UUID.replace('-', ""));
    let tp = a.upstream("traceparent").unwrap();
    assert!(tp.ends_with("-01"), "not marked random: {tp}");
    let s = span_for(&gw, "/uuid");
    assert_eq!(
        format!("{:032x}", s.span_context.trace_id()),
        UUID.replace('-', "")
    );
    let a = send(
        &gw,
        "/hex",
        &[("x-request-id", "F5AE2621FFFF2E7D5000BB8F04EF278A")],
    );
    assert_eq!(a.ids().0, "f5ae2621ffff2e7d5000bb8f04ef278a");
    // A trace context wins over the request id.
    let a = send(
        &gw,
        "/ctx",
        &[("x-request-id", UUID), ("traceparent", TRACEPARENT)],
    );
    assert_eq!(a.ids().0, "4bf92f3577b34da6a3ce929d0e0e4736");
    // Not a 128-bit id: a fresh trace.
    let a = send(&gw, "/other", &[("x-request-id", "req-42")]);
    assert_ne!(a.ids().0, UUID.replace('-', ""));

    // Off by default, and not under trust = "restart".
    let plain = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    assert_ne!(
        send(&plain, "/", &[("x-request-id", UUID)]).ids().0,
        UUID.replace('-', "")
    );
    let restart = TestGateway::start(&one_route(
        origin.addr,
        1,
        "[propagation]\nrequest_id_trace = true\ntrust = \"restart\"\n",
        "",
    ));
    assert_ne!(
        send(&restart, "/", &[("x-request-id", UUID)]).ids().0,
        UUID.replace('-', "")
    );
}

#[test]
fn header_names_that_cannot_be_request_ids_are_refused() {
    for (name, why) in [
        ("traceparent", "a trace header"),
        ("uberctx-id", "a trace prefix"),
        ("content-length", "framing"),
        ("bad name", "not a header name"),
    ] {
        let text = format!(
            "[propagation]\nrequest_id_header = \"{name}\"\n[upstreams.o]\npeers = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"o\"\n"
        );
        let err = tracebridge::config::load_str(&text, None, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("propagation.request_id_header"),
            "{name}: {why}: {err}"
        );
    }
}
