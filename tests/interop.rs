//! Interop with what real tracing libraries put on the wire (issue 17), through the real
//! gateway in front of a real origin: ids without leading zeros (OpenTelemetry Python's OT
//! propagator), conflicting repeated headers, `sw8` with empty fields (SkyWalking agents'
//! `isValid`), the span of a request without context, and baggage keys a per-item format
//! cannot carry.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::trace::SpanData;
use serde_json::Value;
use support::{one_route, origin_answer as send, Origin, TestGateway};
use tracebridge::codec::Format;

/// A gateway with one route to `origin`; `route` adds keys to the route.
fn gateway(origin: &Origin, route: &str) -> TestGateway {
    TestGateway::start(&one_route(origin.addr, 1, "", route))
}

/// What the origin received as `name`.
fn got<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body["headers"][name].as_str()
}

/// The headers the origin received.
fn received(body: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in body["headers"].as_object().expect("headers") {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v.as_str().expect("text")).expect("value"),
        );
    }
    h
}

/// `(trace id, parent id)` of the `traceparent` the origin received.
fn traceparent(body: &Value) -> (String, String) {
    let tp = got(body, "traceparent").expect("traceparent injected");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    (parts[1].to_string(), parts[2].to_string())
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// The one span the gateway exported.
fn only_span(gw: &TestGateway) -> SpanData {
    let spans = gw.spans.wait_for(1);
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans.into_iter().next().expect("span")
}

#[test]
fn ot_ids_without_leading_zeros_continue_the_trace() {
    let origin = Origin::start("origin");
    // `preserve` writes `ot-tracer-*` back, so the padding on the way out is visible.
    let gw = gateway(&origin, "");
    // What OpenTelemetry Python's OTTracePropagator writes for a trace id and a span id
    // whose first hex digit is 0: `hex(id)[2:][-16:]`, 15 digits each.
    let body = send(
        &gw,
        &[
            ("ot-tracer-traceid", "3ce929d0e0e4736"),
            ("ot-tracer-spanid", "942dc06bc69f265"),
            ("ot-tracer-sampled", "true"),
        ],
    );
    let (trace, parent) = traceparent(&body);
    assert_eq!(trace, "000000000000000003ce929d0e0e4736", "trace continued");
    let span = only_span(&gw);
    assert_eq!(
        span.parent_span_id.to_string(),
        "0942dc06bc69f265",
        "the short span id is the gateway span's parent"
    );
    assert_eq!(parent, span.span_context.span_id().to_string());
    assert_eq!(
        attr(&span, "tracebridge.extracted_format").map(|v| v.as_str().into_owned()),
        Some("ottrace".to_string())
    );
    // Written padded.
    assert_eq!(got(&body, "ot-tracer-traceid"), Some("03ce929d0e0e4736"));
    assert_eq!(got(&body, "ot-tracer-spanid").map(str::len), Some(16));
    assert_eq!(got(&body, "ot-tracer-sampled"), Some("true"));
}

#[test]
fn b3_multi_ids_without_leading_zeros_continue_the_trace() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "");
    // Brave reads `x-b3-*` ids of 1–32 / 1–16 digits; so do we.
    let body = send(
        &gw,
        &[
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb612"),
            ("x-b3-spanid", "a2fb4a1d1a96d31"),
            ("x-b3-sampled", "1"),
        ],
    );
    let (trace, _) = traceparent(&body);
    assert_eq!(trace, "0463ac35c9f6413ad48485a3953bb612");
    assert_eq!(
        only_span(&gw).parent_span_id.to_string(),
        "0a2fb4a1d1a96d31"
    );
    assert_eq!(
        got(&body, "x-b3-traceid"),
        Some("0463ac35c9f6413ad48485a3953bb612"),
        "written as 32 digits"
    );
}

#[test]
fn conflicting_duplicate_trace_headers_are_invalid_and_counted() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "");
    let first = "463ac35c9f6413ad48485a3953bb6124";
    let second = "80f198ee56343ba864fe8b2a57d3eff7";
    let body = send(
        &gw,
        &[
            ("x-b3-traceid", first),
            ("x-b3-traceid", second),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ],
    );
    let (trace, _) = traceparent(&body);
    assert!(
        trace != first && trace != second,
        "a new trace, not a guess between two parents: {trace}"
    );
    assert!(
        got(&body, "x-b3-traceid").is_none(),
        "the invalid headers are not forwarded"
    );
    gw.metrics_containing(&[
        r#"tracebridge_propagation_invalid_total{format="b3multi",reason="conflicting"} 1"#,
    ]);
    let span = only_span(&gw);
    assert_eq!(
        attr(&span, "tracebridge.extracted_format").map(|v| v.as_str().into_owned()),
        Some("none".to_string())
    );

    // The same value twice is one value: the trace continues.
    let body = send(
        &gw,
        &[
            ("x-b3-traceid", first),
            ("x-b3-traceid", first),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ],
    );
    assert_eq!(traceparent(&body).0, first);

    // Any single-valued trace header: two different `uber-trace-id` values.
    let body = send(
        &gw,
        &[
            (
                "uber-trace-id",
                "a1ce929d0e0e4736a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
            ),
            (
                "uber-trace-id",
                "b1ce929d0e0e4736a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
            ),
        ],
    );
    assert!(!traceparent(&body)
        .0
        .ends_with("ce929d0e0e4736a3ce929d0e0e4736"));
    gw.metrics_containing(&[
        r#"tracebridge_propagation_invalid_total{format="jaeger",reason="conflicting"} 1"#,
    ]);
}

/// `sw8-009` of the wire-format vectors: trace `4bf92f3577b34da6a3ce929d0e0e4736`,
/// service `gateway`, instance `gateway-7f9c`, endpoint `GET:/api/orders`, address
/// `orders.svc:8080`; `{service}` etc. replaced by the base64 fields.
fn sw8(service: &str, instance: &str, endpoint: &str, address: &str) -> String {
    format!(
        "1-NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY=-\
         YTIzZWY1MzcwNWE3NDU4MWEzY2U5MjlkMGUwZTQ3MzY=-1-{service}-{instance}-{endpoint}-{address}"
    )
}

#[test]
fn sw8_with_an_empty_field_is_rejected_counted_and_never_written() {
    let origin = Origin::start("origin");
    let gw = gateway(
        &origin,
        r#"propagation = { inject = ["tracecontext", "skywalking"] }"#,
    );
    let (svc, inst, ep, addr) = (
        "Z2F0ZXdheQ==",
        "Z2F0ZXdheS03Zjlj",
        "R0VUOi9hcGkvb3JkZXJz",
        "b3JkZXJzLnN2Yzo4MDgw",
    );
    // Control: complete, it continues the trace.
    let body = send(&gw, &[("sw8", &sw8(svc, inst, ep, addr))]);
    assert_eq!(traceparent(&body).0, "4bf92f3577b34da6a3ce929d0e0e4736");

    let empties = [
        sw8("", inst, ep, addr),
        sw8(svc, "", ep, addr),
        sw8(svc, inst, "", addr),
        sw8(svc, inst, ep, ""),
    ];
    for value in &empties {
        let body = send(&gw, &[("sw8", value)]);
        assert_ne!(
            traceparent(&body).0,
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "{value}: a SkyWalking agent would not continue it, neither do we"
        );
        // What we write instead is complete: a SkyWalking agent's isValid() accepts it.
        let out = received(&body);
        let ctx = Format::SkyWalking.extract(&out);
        assert!(
            matches!(ctx, Ok(Some(_))),
            "{value}: wrote {out:?}: {ctx:?}"
        );
    }
    gw.metrics_containing(&[
        r#"tracebridge_propagation_invalid_total{format="skywalking",reason="missing"} 4"#,
    ]);
}

#[test]
fn a_request_without_context_names_extracted_format_none() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "");
    send(&gw, &[]);
    let span = only_span(&gw);
    assert_eq!(
        attr(&span, "tracebridge.extracted_format").map(|v| v.as_str().into_owned()),
        Some("none".to_string())
    );
}

#[test]
fn an_upper_case_baggage_key_is_dropped_from_per_item_formats_counted_and_kept_in_baggage() {
    let origin = Origin::start("origin");
    let gw = gateway(
        &origin,
        r#"propagation = { inject = ["jaeger", "ottrace", "tracecontext", "baggage"] }"#,
    );
    let body = send(
        &gw,
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("baggage", "userId=1,plan=pro"),
        ],
    );
    assert_eq!(got(&body, "uberctx-plan"), Some("pro"));
    assert_eq!(got(&body, "ot-baggage-plan"), Some("pro"));
    for name in ["uberctx-userid", "ot-baggage-userid"] {
        assert!(
            got(&body, name).is_none(),
            "not lower-cased into another key: {body}"
        );
    }
    let baggage = got(&body, "baggage").expect("W3C baggage written");
    assert!(
        baggage.split(',').any(|m| m.trim() == "userId=1"),
        "kept where it fits: {baggage}"
    );
    gw.metrics_containing(&[
        r#"tracebridge_propagation_baggage_dropped_total{format="jaeger",reason="key"} 1"#,
        r#"tracebridge_propagation_baggage_dropped_total{format="ottrace",reason="key"} 1"#,
    ]);
}
