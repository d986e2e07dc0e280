//! Datadog state in `tracestate` (issue 21, part 4), checked with the real `ddtrace`
//! Python library on both ends: ddtrace writes the headers a Datadog-instrumented caller
//! sends, the real gateway mediates them, and ddtrace reads what the upstream received,
//! as a Datadog-instrumented service behind the gateway would.
//!
//! Needs `python3` with `ddtrace` (`pip install ddtrace`; `.ci/run` installs it). Without
//! it these tests fail: they never skip.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{client, one_route, Origin, TestGateway};

/// Injects a ddtrace `Context` (`inject`) or extracts one (`extract`), in the propagation
/// style of `DD_TRACE_PROPAGATION_STYLE`; JSON in on stdin, JSON out on stdout.
const SCRIPT: &str = r#"
import json, sys
from ddtrace.propagation.http import HTTPPropagator
from ddtrace.trace import Context
mode = sys.argv[1]
data = json.load(sys.stdin)
if mode == "inject":
    ctx = Context(trace_id=int(data["trace_id"], 16), span_id=int(data["span_id"], 16),
                  sampling_priority=data["priority"], dd_origin=data["origin"], meta=data["meta"])
    headers = {}
    HTTPPropagator.inject(ctx, headers)
    print(json.dumps(headers))
else:
    ctx = HTTPPropagator.extract(data)
    print(json.dumps({
        "trace_id": "%032x" % (ctx.trace_id or 0),
        "span_id": "%016x" % (ctx.span_id or 0),
        "priority": ctx.sampling_priority,
        "origin": ctx.dd_origin,
        "meta": {k: v for k, v in ctx._meta.items() if k.startswith("_dd.")},
    }))
"#;

/// Runs the script under ddtrace; fails the test (never skips) when python3 or ddtrace
/// is missing. The child is waited for at most 60 s and killed after that.
fn ddtrace(mode: &str, style: &str, input: &Value) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("dd.py");
    std::fs::write(&script, SCRIPT).expect("script");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(mode)
        .env("DD_TRACE_PROPAGATION_STYLE", style)
        // No agent, no telemetry, no remote config: nothing leaves loopback.
        .env("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
        .env("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
        .env("DD_REMOTE_CONFIGURATION_ENABLED", "false")
        .env("DD_TRACE_ENABLED", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the ddtrace round trips (tests/datadog_tracestate.rs)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write stdin");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ddtrace script still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ddtrace script failed (pip install ddtrace?):\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

const TRACE: &str = "640cfd8d00000000abcdef0123456789";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A Datadog-instrumented caller's context: USER_KEEP, a RUM origin, a decision maker and
/// a user id tag (with `=`, which tracestate writes as `~`), a 128-bit trace id.
fn caller() -> Value {
    json!({
        "trace_id": TRACE,
        "span_id": CALLER_SPAN,
        "priority": 2,
        "origin": "rum",
        "meta": {"_dd.p.dm": "-4", "_dd.p.usr.id": "baz64=="},
    })
}

/// Sends `headers` through `gw`; the headers the upstream received, as a JSON object.
fn through(gw: &TestGateway, headers: &Value) -> Value {
    let mut req = client().get(gw.url("/"));
    for (k, v) in headers.as_object().expect("headers") {
        req = req.header(k.as_str(), v.as_str().expect("string header"));
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_str(&resp.text().unwrap()).expect("json");
    body["headers"].clone()
}

fn gateway(origin: &Origin, keys: &str) -> TestGateway {
    TestGateway::start(&one_route(
        origin.addr,
        1,
        &format!("[propagation]\n{keys}\n"),
        "",
    ))
}

/// The parent id the upstream saw in `traceparent`.
fn parent_of(received: &Value) -> String {
    received["traceparent"].as_str().expect("traceparent")[36..52].to_owned()
}

fn assert_caller_state(seen: &Value, why: &str) {
    assert_eq!(seen["trace_id"], TRACE, "{why}: the 128-bit id: {seen}");
    assert_eq!(seen["priority"], 2, "{why}: USER_KEEP: {seen}");
    assert_eq!(seen["origin"], "rum", "{why}: {seen}");
    assert_eq!(seen["meta"]["_dd.p.dm"], "-4", "{why}: {seen}");
    assert_eq!(seen["meta"]["_dd.p.usr.id"], "baz64==", "{why}: {seen}");
}

#[test]
fn datadog_headers_reach_a_ddtrace_service_behind_a_w3c_only_hop() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "inject = [\"tracecontext\"]");
    let sent = ddtrace("inject", "datadog", &caller());
    assert!(sent.get("x-datadog-trace-id").is_some(), "{sent}");
    let received = through(&gw, &sent);
    assert!(
        received.get("x-datadog-trace-id").is_none(),
        "W3C only: {received}"
    );
    let ts = received["tracestate"].as_str().expect("tracestate");
    assert!(ts.starts_with("dd="), "{ts}");
    let seen = ddtrace("extract", "tracecontext", &received);
    assert_caller_state(&seen, "datadog → tracecontext");
    // `p` names the last parent, as a Datadog tracer writes its active span: the
    // gateway's span, the same parent `traceparent` names.
    assert_eq!(seen["meta"]["_dd.parent_id"], parent_of(&received).as_str());
    assert_eq!(seen["span_id"], parent_of(&received).as_str());
}

#[test]
fn a_dd_member_comes_back_as_datadog_headers() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "inject = [\"datadog\"]");
    let sent = ddtrace("inject", "tracecontext", &caller());
    assert!(
        sent["tracestate"]
            .as_str()
            .unwrap_or_default()
            .contains("dd="),
        "{sent}"
    );
    let received = through(&gw, &sent);
    assert!(
        received.get("traceparent").is_none(),
        "Datadog only: {received}"
    );
    let seen = ddtrace("extract", "datadog", &received);
    assert_caller_state(&seen, "tracecontext → datadog");
}

#[test]
fn a_w3c_only_gateway_passes_datadog_state_on_with_its_own_parent() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "inject = [\"tracecontext\"]");
    let sent = ddtrace("inject", "tracecontext", &caller());
    let mut with_other = sent.clone();
    with_other["tracestate"] = json!(format!(
        "{},congo=t61rcWkgMzE",
        sent["tracestate"].as_str().unwrap()
    ));
    let received = through(&gw, &with_other);
    let ts = received["tracestate"].as_str().expect("tracestate");
    assert!(
        ts.starts_with("dd=") && ts.ends_with(",congo=t61rcWkgMzE"),
        "{ts}"
    );
    let seen = ddtrace("extract", "tracecontext", &received);
    assert_caller_state(&seen, "tracecontext → tracecontext");
    assert_eq!(seen["meta"]["_dd.parent_id"], parent_of(&received).as_str());
}

#[test]
fn both_formats_on_one_hop_agree_for_ddtrace() {
    // A W3C caller without Datadog state; the gateway writes Datadog and W3C: the `dd`
    // member says what the `x-datadog-*` headers say.
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "inject = [\"tracecontext\", \"datadog\"]");
    let received = through(
        &gw,
        &json!({"traceparent": format!("00-{TRACE}-{CALLER_SPAN}-01")}),
    );
    let ts = received["tracestate"].as_str().expect("tracestate");
    assert!(ts.starts_with("dd=s:1;"), "{ts}");
    let w3c = ddtrace("extract", "tracecontext", &received);
    let dd = ddtrace("extract", "datadog", &received);
    for key in ["trace_id", "span_id", "priority"] {
        assert_eq!(w3c[key], dd[key], "{key}: {w3c} vs {dd}");
    }
    assert_eq!(w3c["trace_id"], TRACE);
}

#[test]
fn the_gateways_own_decision_wins_and_drops_the_stale_decision_maker() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        "[propagation]\ninject = [\"tracecontext\"]\ntrust = \"continue_unsampled\"\n[sampling]\nratio = 0.0\n",
        "",
    ));
    let sent = ddtrace("inject", "datadog", &caller());
    let received = through(&gw, &sent);
    let seen = ddtrace("extract", "tracecontext", &received);
    assert_eq!(seen["trace_id"], TRACE);
    assert_eq!(seen["priority"], 0, "not sampled by the gateway: {seen}");
    assert_eq!(seen["origin"], "rum");
    assert!(seen["meta"].get("_dd.p.dm").is_none(), "{seen}");
    assert_eq!(seen["meta"]["_dd.p.usr.id"], "baz64==");
}
