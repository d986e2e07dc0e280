//! The browser edge (issue 20) through the real gateway: CORS for the trace headers in
//! augment and answer mode against upstreams that answer preflights in various ways,
//! `Server-Timing`, the trace id response header, the gateway's own responses, and
//! the effective settings in admin `/config` and `check`. The real browser is in
//! `tests/browser.rs`.

mod support;

use std::process::Command;

use reqwest::blocking::Response;
use reqwest::Method;
use support::scripted::{Reply, Scripted, Seen};
use support::{client, one_route, TestGateway, DEAD_PORT};

const PAGE: &str = "https://app.example.com";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An upstream that does its own CORS: preflights get `preflight`, everything else
/// 200 with `actual`.
fn cors_upstream(preflight: &'static [(&str, &str)], actual: &'static [(&str, &str)]) -> Scripted {
    Scripted::start(move |req: &Seen| {
        if req.method == "OPTIONS" {
            Reply::new(204, preflight, "")
        } else {
            Reply::new(200, actual, "{}")
        }
    })
}

fn send(gw: &TestGateway, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = client().request(method, gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request")
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
}

fn preflight(gw: &TestGateway, origin: &str, asked: &str) -> Response {
    send(
        gw,
        Method::OPTIONS,
        "/api",
        &[
            ("origin", origin),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", asked),
        ],
    )
}

#[test]
fn augment_adds_the_requested_trace_headers_to_an_allowing_upstream_preflight() {
    let up = cors_upstream(
        &[
            ("access-control-allow-origin", PAGE),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-headers", "content-type"),
        ],
        &[],
    );
    let gw = TestGateway::start(&one_route(
        up.addr,
        1,
        "",
        r#"propagation = { cors = { mode = "augment" } }"#,
    ));
    let r = preflight(&gw, PAGE, "content-type,traceparent,tracestate,b3");
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("content-type, traceparent, tracestate, b3"),
        "the trace headers the browser asked for, after the upstream's own"
    );
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    assert_eq!(
        header(&r, "access-control-allow-methods").as_deref(),
        Some("GET, PUT"),
        "untouched"
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "augment forwards the preflight");
    assert_eq!(seen[0].method, "OPTIONS");
}

#[test]
fn augment_never_widens_a_denying_upstream_and_leaves_an_open_one_alone() {
    let deny = cors_upstream(&[("access-control-allow-headers", "content-type")], &[]);
    let gw = TestGateway::start(&one_route(
        deny.addr,
        1,
        "",
        r#"propagation = { cors = {} }"#,
    ));
    let r = preflight(&gw, PAGE, "traceparent");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("content-type"),
        "an origin the upstream refuses stays refused"
    );
    let other = cors_upstream(
        &[
            ("access-control-allow-origin", "https://other.example.com"),
            ("access-control-allow-headers", "content-type"),
        ],
        &[],
    );
    let gw = TestGateway::start(&one_route(
        other.addr,
        1,
        "",
        r#"propagation = { cors = {} }"#,
    ));
    let r = preflight(&gw, PAGE, "traceparent");
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("content-type"),
        "allowed for another origin only"
    );
    let open = cors_upstream(
        &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-headers", "*"),
        ],
        &[],
    );
    let gw = TestGateway::start(&one_route(
        open.addr,
        1,
        "",
        r#"propagation = { cors = {} }"#,
    ));
    let r = preflight(&gw, PAGE, "traceparent");
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("*")
    );
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[test]
fn a_preflight_for_a_non_trace_header_passes_through_untouched() {
    let up = cors_upstream(
        &[
            ("access-control-allow-origin", PAGE),
            ("access-control-allow-headers", "content-type"),
        ],
        &[],
    );
    let gw = TestGateway::start(&one_route(
        up.addr,
        1,
        "",
        r#"propagation = { cors = {}, trace_id_header = "x-trace-id" }"#,
    ));
    let r = preflight(&gw, PAGE, "x-api-key");
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("content-type")
    );
    let cors: Vec<&str> = r
        .headers()
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("access-control-"))
        .collect();
    assert_eq!(
        cors,
        [
            "access-control-allow-origin",
            "access-control-allow-headers"
        ],
        "nothing added"
    );
}

#[test]
fn a_cross_origin_response_exposes_the_gateway_headers_and_merges_server_timing() {
    let up = cors_upstream(
        &[],
        &[
            ("access-control-allow-origin", PAGE),
            ("access-control-expose-headers", "x-total"),
            ("server-timing", "app;dur=3"),
        ],
    );
    let gw = TestGateway::start(&one_route(
        up.addr,
        1,
        "",
        r#"[routes.propagation]
        response_header = true
        server_timing = true
        server_timing_durations = true
        trace_id_header = "X-Trace-Id"
        [routes.propagation.cors]"#,
    ));
    let r = send(
        &gw,
        Method::GET,
        "/api",
        &[("origin", PAGE), ("traceparent", TRACEPARENT)],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-expose-headers").as_deref(),
        Some("x-total, traceresponse, server-timing, x-trace-id")
    );
    // The span id the page reads is the parent the upstream saw.
    let sent = up.seen()[0]
        .header("traceparent")
        .expect("continued")
        .to_string();
    assert!(sent.starts_with(&format!("00-{TRACE}-")), "{sent}");
    let timing = header(&r, "server-timing").expect("server-timing");
    let want = format!("app;dur=3, traceparent;desc=\"{sent}\", gateway;dur=");
    assert!(timing.starts_with(&want), "{timing}");
    assert!(timing.contains(", upstream;dur="), "{timing}");
    assert_eq!(header(&r, "traceresponse").as_deref(), Some(sent.as_str()));
    assert_eq!(header(&r, "x-trace-id").as_deref(), Some(TRACE));
    // Not readable by the page (no ACAO for its origin): nothing exposed.
    let r = send(
        &gw,
        Method::GET,
        "/api",
        &[("origin", "https://evil.example")],
    );
    assert_eq!(
        header(&r, "access-control-expose-headers").as_deref(),
        Some("x-total"),
        "the upstream's own list only"
    );
}

#[test]
fn answer_mode_answers_preflights_itself_for_exact_and_wildcard_origins() {
    let up = cors_upstream(&[], &[("vary", "accept-encoding")]);
    let gw = TestGateway::start(&one_route(
        up.addr,
        1,
        "",
        r#"[routes.propagation]
        trace_id_header = "x-trace-id"
        [routes.propagation.cors]
        mode = "answer"
        allow_origins = ["https://app.example.com", "*.shop.example"]
        allow_headers = ["content-type"]
        max_age = "1m"
        allow_credentials = true"#,
    ));
    let r = preflight(&gw, PAGE, "traceparent, content-type, x-secret");
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    assert_eq!(
        header(&r, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        header(&r, "access-control-allow-headers").as_deref(),
        Some("traceparent, content-type"),
        "x-secret is not allowed: the browser refuses the call"
    );
    assert_eq!(header(&r, "access-control-max-age").as_deref(), Some("60"));
    let eu = "https://eu.shop.example";
    let r = preflight(&gw, eu, "traceparent");
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(eu)
    );
    for refused in ["https://shop.example", "https://evil.example", "null"] {
        let r = preflight(&gw, refused, "traceparent");
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "access-control-allow-origin"), None, "{refused}");
        assert_eq!(header(&r, "access-control-allow-credentials"), None);
    }
    assert!(up.seen().is_empty(), "no preflight reached the upstream");
    // The actual call: the origin allowed (never `*` with credentials), Vary merged.
    let r = send(
        &gw,
        Method::PUT,
        "/api",
        &[("origin", eu), ("traceparent", TRACEPARENT)],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(eu)
    );
    assert_eq!(
        header(&r, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        header(&r, "vary").as_deref(),
        Some("accept-encoding, Origin")
    );
    assert_eq!(
        header(&r, "access-control-expose-headers").as_deref(),
        Some("x-trace-id")
    );
    let r = send(
        &gw,
        Method::GET,
        "/api",
        &[("origin", "https://evil.example")],
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(up.seen().len(), 2);
}

#[test]
fn apps_and_curl_get_the_trace_id_and_server_timing_without_cors() {
    let up = cors_upstream(&[], &[]);
    let gw = TestGateway::start(&one_route(
        up.addr,
        1,
        r#"[propagation]
        server_timing = true
        trace_id_header = "x-trace-id"
        timing_allow_origin = ["*"]"#,
        "",
    ));
    let r = send(&gw, Method::GET, "/", &[("traceparent", TRACEPARENT)]);
    assert_eq!(header(&r, "x-trace-id").as_deref(), Some(TRACE));
    let timing = header(&r, "server-timing").expect("server-timing");
    assert!(
        timing.starts_with(&format!("traceparent;desc=\"00-{TRACE}-")),
        "{timing}"
    );
    assert_eq!(header(&r, "timing-allow-origin").as_deref(), Some("*"));
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers()
    );
}

#[test]
fn the_gateways_own_responses_carry_the_edge_headers() {
    // Nothing listens on the upstream port: 502 from the gateway itself.
    let dead = ([127, 0, 0, 1], DEAD_PORT).into();
    let text = one_route(
        dead,
        1,
        r#"[propagation]
        trace_id_header = "x-trace-id"
        server_timing = true
        [propagation.cors]
        mode = "answer"
        allow_origins = ["https://app.example.com"]"#,
        r#"path_prefix = "/api""#,
    );
    let gw = TestGateway::start(&text);
    for (path, status) in [("/api", 502), ("/nowhere", 404)] {
        let r = send(&gw, Method::GET, path, &[("origin", PAGE)]);
        assert_eq!(r.status(), status);
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some(PAGE),
            "{path}: a page may read the gateway's error"
        );
        let id = header(&r, "x-trace-id").expect("trace id");
        assert_eq!(id.len(), 32);
        let timing = header(&r, "server-timing").expect("server-timing");
        assert!(timing.contains(&id), "{timing}");
        assert_eq!(
            header(&r, "access-control-expose-headers").as_deref(),
            Some("server-timing, x-trace-id")
        );
    }
}

#[test]
fn admin_config_and_check_show_the_effective_settings_per_route() {
    let up = cors_upstream(&[], &[]);
    let text = one_route(
        up.addr,
        1,
        r#"[propagation]
        server_timing = true
        [propagation.cors]
        allow_origins = ["*.example.com"]"#,
        r#"propagation = { trace_id_header = "x-trace-id", cors = { mode = "answer" } }"#,
    );
    let gw = TestGateway::start(&text);
    let cfg: serde_json::Value = client()
        .get(gw.admin_url("/config"))
        .send()
        .and_then(|r| r.json())
        .expect("/config");
    let edge = &cfg["edge"];
    assert_eq!(edge["defaults"]["cors"]["mode"], "augment");
    let main = &edge["routes"]["main"];
    assert_eq!(main["cors"]["mode"], "answer");
    assert_eq!(main["cors"]["allow_origins"][0], "*.example.com");
    assert_eq!(main["cors"]["max_age_seconds"], 600);
    assert_eq!(main["server_timing"], true);
    assert_eq!(main["trace_id_header"], "x-trace-id");
    assert_eq!(main["traceresponse"], false);
    // `check` prints the same per route, before its `ok` line.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, gw.render(&text)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tracebridge"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with(
            "route main: traceresponse=false cors=answer allow_origins=[*.example.com] \
             allow_methods=[GET HEAD POST PUT PATCH DELETE] allow_headers=[] expose_headers=[] \
             max_age=600s allow_credentials=false server_timing=true \
             server_timing_durations=false trace_id_header=x-trace-id timing_allow_origin=[]\n"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with(": ok\n"), "{stdout}");
}
