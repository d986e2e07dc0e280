//! Mediation through the real gateway in front of a real origin: every incoming format
//! to every outgoing format, new roots, malformed input, conflicts, trust modes,
//! propagation-only, overrides, and lossless round trips across two gateways.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::trace::SpanData;
use serde_json::Value;
use support::{client, one_route, Origin, TestGateway};
use tracebridge::codec::Format;
use tracebridge::model::{Sampling, TraceContext};

/// A representative valid incoming header set per format, all sampled, with a
/// baggage entry `k1=v1` where the format carries baggage.
fn incoming(format: Format) -> Vec<(&'static str, &'static str)> {
    match format {
        Format::TraceContext => vec![
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
        Format::Baggage => vec![("baggage", "k1=v1")],
        Format::B3 => vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        Format::B3Multi => vec![
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ],
        Format::Jaeger => vec![
            (
                "uber-trace-id",
                "a1ce929d0e0e4736a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
            ),
            ("uberctx-k1", "v1"),
        ],
        Format::OtTrace => vec![
            ("ot-tracer-traceid", "a1ce929d0e0e4736a3ce929d0e0e4736"),
            ("ot-tracer-spanid", "00f067aa0ba902b7"),
            ("ot-tracer-sampled", "true"),
            ("ot-baggage-k1", "v1"),
        ],
        Format::XRay => vec![(
            "x-amzn-trace-id",
            "Root=1-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f;Sampled=1",
        )],
        Format::Datadog => vec![
            ("x-datadog-trace-id", "7277407061855694839"),
            ("x-datadog-parent-id", "5678"),
            ("x-datadog-sampling-priority", "1"),
            ("x-datadog-tags", "_dd.p.tid=80f198ee56343ba8"),
        ],
        Format::Gcp => vec![(
            "x-cloud-trace-context",
            "d36a105d7002f0dee73c0dfb9553764a/139592093;o=1",
        )],
        Format::SkyWalking => vec![
            (
                "sw8",
                "1-NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDE=-\
                 NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDI=-1-\
                 c3ZjLWE=-aW5zdC0x-R0VUOi9vcmRlcnM=-Z2F0ZXdheTo4MDgw",
            ),
            ("sw8-correlation", "azE=:djE="),
        ],
        Format::EagleEye => vec![
            ("eagleeye-traceid", "eac0a8020216868084400006973d000a"),
            ("eagleeye-rpcid", "0.1"),
            ("eagleeye-userdata", "k1=v1"),
        ],
        Format::GrpcTraceBin => {
            vec![("grpc-trace-bin", "AABL+S81d7NNpqPOkp0ADkc2ATTwZ6oLqQK3AgE=")]
        }
        Format::Instana => vec![
            ("x-instana-t", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-instana-s", "00f067aa0ba902b7"),
            ("x-instana-l", "1"),
        ],
    }
}

/// Formats that carry baggage.
fn carries_baggage(f: Format) -> bool {
    matches!(
        f,
        Format::Baggage | Format::Jaeger | Format::OtTrace | Format::SkyWalking | Format::EagleEye
    )
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The headers the origin received, from its JSON answer.
fn received(body: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in body["headers"].as_object().expect("headers") {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
        );
    }
    h
}

fn send(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200, "{path}");
    serde_json::from_str(&resp.text().unwrap()).expect("json")
}

fn span_ids(span: &SpanData) -> (String, String, Option<String>) {
    let parent = span.parent_span_id;
    (
        span.span_context.trace_id().to_string(),
        span.span_context.span_id().to_string(),
        (parent != opentelemetry::trace::SpanId::INVALID).then(|| parent.to_string()),
    )
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn baggage_of(ctx: &TraceContext, key: &str) -> Option<String> {
    ctx.baggage
        .iter()
        .find(|b| b.key == key)
        .map(|b| b.value.clone())
}

fn matrix_config(origin: &Origin) -> String {
    let mut text = format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.origin]
        peers = ["{}"]
        "#,
        origin.addr
    );
    for f in Format::ALL {
        text.push_str(&format!(
            "[[routes]]\nname = \"to-{f}\"\npath_prefix = \"/to/{f}/\"\nupstream = \"origin\"\n\
             propagation = {{ inject = [\"{f}\"] }}\n"
        ));
    }
    text
}

#[test]
fn every_incoming_format_to_every_outgoing_format() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&matrix_config(&origin));
    let mut failures = Vec::new();
    let mut exported = 0;
    for inf in Format::ALL {
        let headers = incoming(inf);
        let in_ctx = inf
            .extract(&header_map(&headers))
            .expect("valid input")
            .expect("context");
        for outf in Format::ALL {
            let body = send(&gw, &format!("/to/{outf}/x"), &headers);
            exported += 1;
            let spans = gw.spans.wait_for(exported);
            let span = &spans[exported - 1];
            let (span_trace, span_id, span_parent) = span_ids(span);
            let out_ctx = match outf.extract(&received(&body)) {
                // Baggage out of a format without baggage: nothing to write.
                Ok(None) if outf == Format::Baggage && !carries_baggage(inf) => continue,
                Ok(Some(ctx)) => ctx,
                other => {
                    failures.push(format!("{inf}→{outf}: nothing readable arrived: {other:?}"));
                    continue;
                }
            };
            let mut fail = |what: String| failures.push(format!("{inf}→{outf}: {what}"));
            // The gateway span continues the incoming trace (a new root for baggage only).
            if let Some(t) = in_ctx.trace_id {
                if span_trace != t.to_string() {
                    fail(format!("span trace {span_trace}, want {t}"));
                }
            }
            if span_parent != in_ctx.parent_id.map(|p| p.to_string()) {
                fail(format!(
                    "span parent {span_parent:?}, want {:?}",
                    in_ctx.parent_id
                ));
            }
            if outf == Format::Baggage {
                if carries_baggage(inf) && baggage_of(&out_ctx, "k1").as_deref() != Some("v1") {
                    fail(format!("baggage lost: {:?}", out_ctx.baggage));
                }
                continue;
            }
            let out_trace = out_ctx.trace_id.map(|t| t.to_string()).unwrap_or_default();
            let trace_ok = if outf == Format::OtTrace {
                // OpenTracing carries the low 64 bits only.
                out_trace[16..] == span_trace[16..]
            } else {
                out_trace == span_trace
            };
            if !trace_ok {
                fail(format!(
                    "outgoing trace {out_trace}, span trace {span_trace}"
                ));
            }
            if out_ctx.parent_id.map(|p| p.to_string()) != Some(span_id.clone()) {
                fail(format!(
                    "outgoing parent {:?}, span id {span_id}",
                    out_ctx.parent_id
                ));
            }
            if out_ctx.sampling != Sampling::Sampled {
                fail(format!("outgoing sampling {:?}", out_ctx.sampling));
            }
            if carries_baggage(inf)
                && carries_baggage(outf)
                && baggage_of(&out_ctx, "k1").as_deref() != Some("v1")
            {
                fail(format!("baggage lost: {:?}", out_ctx.baggage));
            }
            // Only the one configured format arrives: everything else was stripped.
            for other in Format::ALL {
                if other != outf
                    && other != Format::Baggage
                    && matches!(other.extract(&received(&body)), Ok(Some(c)) if c.trace_id.is_some())
                {
                    fail(format!("stale {other} context forwarded"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(exported, 169);
}

fn single_route(origin: &Origin, extra: &str) -> String {
    one_route(origin.addr, 1, extra, "")
}

#[test]
fn no_incoming_context_starts_a_root_in_every_format() {
    let origin = Origin::start("origin");
    let all: Vec<String> = Format::ALL.iter().map(|f| format!("\"{f}\"")).collect();
    let gw = TestGateway::start(&single_route(
        &origin,
        &format!("[propagation]\ninject = [{}]", all.join(", ")),
    ));
    let body = send(&gw, "/", &[]);
    let span = &gw.spans.wait_for(1)[0];
    let (trace, span_id, parent) = span_ids(span);
    assert_eq!(parent, None, "a root span");
    let h = received(&body);
    for f in Format::ALL {
        if f == Format::Baggage {
            continue;
        }
        let ctx = f
            .extract(&h)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .unwrap_or_else(|| panic!("{f}: absent"));
        let t = ctx.trace_id.unwrap().to_string();
        if f == Format::OtTrace {
            assert_eq!(t[16..], trace[16..], "{f}");
        } else {
            assert_eq!(t, trace, "{f}");
        }
        assert_eq!(ctx.parent_id.unwrap().to_string(), span_id, "{f}");
        assert_eq!(ctx.sampling, Sampling::Sampled, "{f}");
    }
    let metrics =
        gw.metrics_containing(&[r#"tracebridge_propagation_missing_total{route="main"} 1"#]);
    assert!(metrics.contains("tracebridge_spans_started_total 1"));
}

#[test]
fn malformed_input_is_dropped_and_a_fresh_context_injected() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(&origin, ""));
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/vectors.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut cases: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for v in doc["vectors"].as_array().unwrap() {
        if v["valid"].as_bool() == Some(false) {
            let mut pairs = Vec::new();
            for (k, val) in v["headers"].as_object().unwrap() {
                match val {
                    Value::Array(a) => pairs.extend(
                        a.iter()
                            .map(|x| (k.clone(), x.as_str().unwrap().to_string())),
                    ),
                    other => pairs.push((k.clone(), other.as_str().unwrap().to_string())),
                }
            }
            cases.push((v["id"].as_str().unwrap().to_string(), pairs));
        }
    }
    let big = "a".repeat(8 * 1024);
    let members: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
    let nasty: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "8KiB traceparent",
            vec![("traceparent".into(), big.clone())],
        ),
        ("8KiB b3", vec![("b3".into(), big.clone())]),
        (
            "8KiB baggage value",
            vec![("baggage".into(), format!("k={big}"))],
        ),
        (
            "33 tracestate members",
            vec![
                (
                    "traceparent".into(),
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                ),
                ("tracestate".into(), members.join(",")),
            ],
        ),
        (
            "duplicate traceparent",
            vec![
                (
                    "traceparent".into(),
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                ),
                (
                    "traceparent".into(),
                    "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01".into(),
                ),
            ],
        ),
        (
            "non-ascii sw8",
            vec![("sw8".into(), "1-é-é-1-é-é-é-é".into())],
        ),
        (
            "non-ascii uber-trace-id",
            vec![("uber-trace-id".into(), "ä:ö:0:1".into())],
        ),
        ("empty b3", vec![("b3".into(), String::new())]),
    ];
    for (name, pairs) in nasty {
        cases.push((name.to_string(), pairs));
    }
    let mut failures = Vec::new();
    for (id, pairs) in &cases {
        let mut req = client().get(gw.url("/"));
        for (k, v) in pairs {
            req = req.header(k.as_str(), HeaderValue::from_bytes(v.as_bytes()).unwrap());
        }
        let resp = req.send().expect("request");
        if resp.status() != 200 {
            failures.push(format!("{id}: status {}", resp.status()));
            continue;
        }
        let body: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
        let h = received(&body);
        // Nothing invalid is forwarded: every format reads cleanly or is absent.
        for f in Format::ALL {
            if let Err(e) = f.extract(&h) {
                failures.push(format!("{id}: forwarded an invalid {f} header ({e})"));
            }
        }
        match Format::TraceContext.extract(&h) {
            Ok(Some(ctx)) if ctx.trace_id.is_some() => {}
            other => failures.push(format!("{id}: no fresh traceparent: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    gw.metrics_containing(&[
        r#"tracebridge_propagation_invalid_total{format="tracecontext",reason="repeated"}"#,
    ]);
}

#[test]
fn a_different_trace_in_another_format_becomes_a_link() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(&origin, ""));
    send(
        &gw,
        "/",
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ],
    );
    let span = &gw.spans.wait_for(1)[0];
    assert_eq!(
        span.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(span.links.len(), 1);
    let link = &span.links[0];
    assert_eq!(
        link.span_context.trace_id().to_string(),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    assert_eq!(link.span_context.span_id().to_string(), "e457b5a2e4d86bd1");
    assert!(link
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "tracebridge.link.reason" && kv.value.as_str() == "conflict"));
    gw.metrics_containing(&["tracebridge_propagation_conflicts_total 1"]);
}

#[test]
fn restart_starts_a_new_trace_and_links_the_incoming_one() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(&origin, "[propagation]\ntrust = \"restart\""));
    let body = send(
        &gw,
        "/",
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "k1=v1"),
        ],
    );
    let span = &gw.spans.wait_for(1)[0];
    let (trace, span_id, parent) = span_ids(span);
    assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(parent, None);
    assert_eq!(
        span.links[0].span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let out = Format::TraceContext
        .extract(&received(&body))
        .unwrap()
        .unwrap();
    assert_eq!(out.trace_id.unwrap().to_string(), trace);
    assert_eq!(out.parent_id.unwrap().to_string(), span_id);
    assert!(
        out.tracestate.is_empty(),
        "incoming tracestate dropped: {:?}",
        out.tracestate
    );
    let bag = Format::Baggage.extract(&received(&body)).unwrap().unwrap();
    assert_eq!(
        baggage_of(&bag, "k1").as_deref(),
        Some("v1"),
        "baggage survives a restart"
    );
}

#[test]
fn continue_unsampled_ignores_incoming_sampled_and_debug_flags() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(
        &origin,
        "[propagation]\ntrust = \"continue_unsampled\"\n[sampling]\nratio = 0.0",
    ));
    for incoming in [
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"),
    ] {
        let body = send(&gw, "/", &[incoming]);
        let out = Format::TraceContext
            .extract(&received(&body))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.sampling,
            Sampling::NotSampled,
            "{incoming:?}: our own decision (ratio 0)"
        );
        let want = if incoming.0 == "b3" {
            "80f198ee56343ba864fe8b2a57d3eff7"
        } else {
            "4bf92f3577b34da6a3ce929d0e0e4736"
        };
        assert_eq!(out.trace_id.unwrap().to_string(), want, "ids kept");
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(gw.spans.all().is_empty(), "unsampled: no span exported");
}

#[test]
fn debug_forces_sampling_and_unsampled_requests_still_propagate() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(&origin, "[sampling]\nratio = 0.0"));
    // Debug under trust = continue: sampled whatever the ratio.
    let body = send(
        &gw,
        "/",
        &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")],
    );
    let out = Format::B3.extract(&received(&body)).unwrap().unwrap();
    assert_eq!(out.sampling, Sampling::Sampled);
    assert!(out.debug, "debug travels on in b3 (preserved)");
    assert_eq!(gw.spans.wait_for(1).len(), 1);
    // A deferred decision is resolved before injecting a format that cannot defer:
    // ratio 0 → not sampled, and the traceparent says so.
    let body = send(
        &gw,
        "/",
        &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")],
    );
    let tp = Format::TraceContext
        .extract(&received(&body))
        .unwrap()
        .unwrap();
    assert_eq!(tp.sampling, Sampling::NotSampled);
    let b3 = Format::B3.extract(&received(&body)).unwrap().unwrap();
    assert_eq!(
        b3.sampling,
        Sampling::NotSampled,
        "all formats agree on one decision"
    );
    assert_eq!(tp.parent_id, b3.parent_id);
    assert_ne!(
        tp.parent_id.unwrap().to_string(),
        "e457b5a2e4d86bd1",
        "new parent even unsampled"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        gw.spans.all().len(),
        1,
        "the unsampled request exported no span"
    );
}

#[test]
fn propagation_only_passes_the_incoming_parent_through() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(
        &origin,
        "[propagation]\nspan = false\ninject = [\"tracecontext\", \"b3multi\"]",
    ));
    let body = send(
        &gw,
        "/",
        &[(
            "uber-trace-id",
            "a1ce929d0e0e4736a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
        )],
    );
    let h = received(&body);
    for f in [Format::TraceContext, Format::B3Multi] {
        let ctx = f.extract(&h).unwrap().unwrap();
        assert_eq!(
            ctx.trace_id.unwrap().to_string(),
            "a1ce929d0e0e4736a3ce929d0e0e4736"
        );
        assert_eq!(
            ctx.parent_id.unwrap().to_string(),
            "00f067aa0ba902b7",
            "{f}: parent passes through"
        );
        assert_eq!(ctx.sampling, Sampling::Sampled);
    }
    assert!(h.get("uber-trace-id").is_none(), "not listed: stripped");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(gw.spans.all().is_empty(), "no gateway span");
}

#[test]
fn route_overrides_upstream_overrides_defaults() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [propagation]
        inject = ["tracecontext"]
        [upstreams.origin]
        peers = ["{addr}"]
        [upstreams.origin.propagation]
        inject = ["b3multi"]
        [upstreams.other]
        peers = ["{addr}"]
        [[routes]]
        name = "route-level"
        path_prefix = "/route"
        upstream = "origin"
        propagation = {{ inject = ["jaeger"], strip_unlisted = false }}
        [[routes]]
        name = "upstream-level"
        path_prefix = "/upstream"
        upstream = "origin"
        [[routes]]
        name = "defaults"
        path_prefix = "/defaults"
        upstream = "other"
        "#,
        addr = origin.addr
    ));
    let b3 = [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")];
    let h = received(&send(&gw, "/route", &b3));
    assert!(h.contains_key("uber-trace-id"));
    assert!(!h.contains_key("traceparent") && !h.contains_key("x-b3-traceid"));
    assert!(
        h.contains_key("b3"),
        "strip_unlisted = false on the route keeps the incoming b3"
    );
    let h = received(&send(&gw, "/upstream", &b3));
    assert!(
        h.contains_key("x-b3-traceid") && !h.contains_key("traceparent") && !h.contains_key("b3")
    );
    let h = received(&send(&gw, "/defaults", &b3));
    assert!(
        h.contains_key("traceparent") && !h.contains_key("x-b3-traceid") && !h.contains_key("b3")
    );
}

#[test]
fn span_follows_http_semantic_conventions() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(&origin, ""));
    send(
        &gw,
        "/orders/42?x=1",
        &[
            ("user-agent", "test-agent"),
            ("sw8", incoming(Format::SkyWalking)[0].1),
        ],
    );
    let span = &gw.spans.wait_for(1)[0];
    assert_eq!(span.name, "GET main");
    assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Server);
    let s = |k: &str| attr(span, k).map(|v| v.as_str().into_owned());
    assert_eq!(s("http.request.method").as_deref(), Some("GET"));
    assert_eq!(s("url.path").as_deref(), Some("/orders/42"));
    assert_eq!(s("url.scheme").as_deref(), Some("http"));
    assert_eq!(s("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(s("client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(s("network.protocol.version").as_deref(), Some("1.1"));
    assert_eq!(s("user_agent.original").as_deref(), Some("test-agent"));
    assert_eq!(s("http.route").as_deref(), Some("/"));
    assert_eq!(s("tracebridge.route").as_deref(), Some("main"));
    assert_eq!(s("tracebridge.upstream").as_deref(), Some("origin"));
    assert_eq!(
        s("tracebridge.upstream.address").as_deref(),
        Some(origin.addr.to_string().as_str())
    );
    assert_eq!(
        s("tracebridge.extracted_format").as_deref(),
        Some("skywalking")
    );
    assert_eq!(
        s("sw8.trace_id").as_deref(),
        Some("56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001")
    );
    assert_eq!(s("parent.service").as_deref(), Some("svc-a"));
    assert!(matches!(
        attr(span, "http.response.status_code"),
        Some(opentelemetry::Value::I64(200))
    ));
    assert!(
        matches!(attr(span, "server.port"), Some(opentelemetry::Value::I64(p)) if *p == i64::from(gw.port))
    );
}

#[test]
fn failed_requests_mark_the_span_as_error() {
    let dead = support::DEAD_PORT;
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
    let r = client().get(gw.url("/")).send().unwrap();
    assert_eq!(r.status(), 502);
    let span = &gw.spans.wait_for(1)[0];
    assert!(matches!(
        span.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert_eq!(
        attr(span, "error.type")
            .map(|v| v.as_str().into_owned())
            .as_deref(),
        Some("connect")
    );
    assert_eq!(span.events.len(), 1, "one event for the one retry");
    assert_eq!(span.events[0].name, "retry");
}

/// Gateway 1 (in front) turns the native format into W3C only; gateway 2 turns W3C back
/// into the native format. The native ids must come out as they went in.
fn two_gateways(first_inject: &str, second_inject: &str, headers: &[(&str, &str)]) -> HeaderMap {
    let origin = Origin::start("origin");
    let gw2 = TestGateway::start(&single_route(
        &origin,
        &format!("[propagation]\ninject = [{second_inject}]"),
    ));
    let gw1 = TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [propagation]
        inject = [{first_inject}]
        [upstreams.gw2]
        peers = ["127.0.0.1:{}"]
        [[routes]]
        upstream = "gw2"
        "#,
        gw2.port
    ));
    received(&send(&gw1, "/", headers))
}

#[test]
fn skywalking_ids_survive_a_w3c_only_hop_between_two_gateways() {
    let sw8 = incoming(Format::SkyWalking);
    let h = two_gateways("\"tracecontext\"", "\"skywalking\"", &sw8[..1]);
    assert!(!h.contains_key("traceparent"));
    let ctx = Format::SkyWalking.extract(&h).unwrap().unwrap();
    let sw = ctx.originals.skywalking.expect("sw8 arrived");
    assert_eq!(
        sw.trace_id,
        "56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001"
    );
    assert_eq!(
        ctx.trace_id.unwrap().to_string(),
        "56a5e1c515ae4c7613e51e7cf616977f"
    );
    assert_eq!(sw.service, "tracebridge");
}

#[test]
fn eagleeye_ids_survive_a_w3c_only_hop_between_two_gateways() {
    let ee = incoming(Format::EagleEye);
    let h = two_gateways("\"tracecontext\"", "\"eagleeye\"", &ee);
    let ctx = Format::EagleEye.extract(&h).unwrap().unwrap();
    let e = ctx.originals.eagleeye.expect("eagleeye arrived");
    assert_eq!(e.trace_id, "eac0a8020216868084400006973d000a");
    // Inbound 0.1; gateway 1's first call is 0.1.1; gateway 2's first call 0.1.1.1.
    assert_eq!(e.rpc_id, "0.1.1.1");
}

#[test]
fn traceresponse_when_asked() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&single_route(
        &origin,
        "[propagation]\nresponse_header = true",
    ));
    let r = client()
        .get(gw.url("/"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .unwrap();
    let tr = r.headers()["traceresponse"].to_str().unwrap().to_string();
    let span = &gw.spans.wait_for(1)[0];
    let (trace, span_id, _) = span_ids(span);
    assert_eq!(tr, format!("00-{trace}-{span_id}-01"));
}
