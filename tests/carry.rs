//! Native ids across a W3C-only hop, through two real gateways (issue 18 item 2): the `tb`
//! tracestate member is mediation policy (`mediate::carry`), so the W3C codec alone no
//! longer writes or reads it; these fail if mediation stops carrying it.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use support::{one_route, Origin, TestGateway};
use tracebridge::codec::skywalking;

/// A gateway whose one route to `origin` writes exactly `inject`.
fn gateway(origin: &Origin, inject: &str) -> TestGateway {
    let route = format!("propagation = {{ inject = [{inject}] }}");
    TestGateway::start(&one_route(origin.addr, 1, "", &route))
}

/// Sends `headers` and returns what the origin received.
fn send(gw: &TestGateway, headers: &[(&str, &str)]) -> Value {
    support::origin_answer(gw, headers)["headers"].clone()
}

fn got<'a>(h: &'a Value, name: &str) -> &'a str {
    h[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} not received: {h}"))
}

/// SkyWalking → gateway A (W3C only) → gateway B (sw8): the Java agent's trace id string
/// comes back, not the W3C hex id it maps to.
#[test]
fn skywalking_trace_id_crosses_a_w3c_only_hop() {
    const JAVA_ID: &str = "56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001";
    let origin = Origin::start("origin");
    let a = gateway(&origin, r#""tracecontext""#);
    let b = gateway(&origin, r#""skywalking""#);
    let sw8 = "1-NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDE=\
               -NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDI=\
               -1-c3ZjLWE=-aW5zdC0x-R0VUOi9vcmRlcnM=-Z2F0ZXdheTo4MDgw";
    let at_a = send(&a, &[("sw8", sw8)]);
    assert!(at_a.get("sw8").is_none(), "A writes W3C only: {at_a}");
    let tracestate = got(&at_a, "tracestate");
    assert_eq!(
        tracestate,
        format!("tb=sw:{}", URL_SAFE_NO_PAD.encode(JAVA_ID)),
        "A's own member"
    );
    let traceparent = got(&at_a, "traceparent");
    assert!(
        traceparent.starts_with("00-56a5e1c515ae4c7613e51e7cf616977f-"),
        "{traceparent}"
    );

    let at_b = send(
        &b,
        &[("traceparent", traceparent), ("tracestate", tracestate)],
    );
    let sw8 = skywalking::decode(got(&at_b, "sw8")).expect("sw8 from B");
    assert_eq!(sw8.trace_id, JAVA_ID, "original trace id re-emitted by B");
    assert!(at_b.get("tracestate").is_none(), "tb consumed: {at_b}");
}

/// EagleEye → gateway A (W3C only) → gateway B (EagleEye): the TraceID comes back and the
/// RpcID tree continues below A's outgoing call.
#[test]
fn eagleeye_ids_cross_a_w3c_only_hop() {
    const TRACE: &str = "0ad1348f1403169275002100356696";
    let origin = Origin::start("origin");
    let a = gateway(&origin, r#""tracecontext""#);
    let b = gateway(&origin, r#""eagleeye", "tracecontext""#);
    let at_a = send(
        &a,
        &[("EagleEye-TraceID", TRACE), ("EagleEye-RpcID", "0.1")],
    );
    let tracestate = got(&at_a, "tracestate");
    let prefix = format!("tb=ee:{};rpc:0.1.", URL_SAFE_NO_PAD.encode(TRACE));
    let a_call = tracestate
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{tracestate} does not start with {prefix}"));
    assert!(
        !a_call.is_empty() && a_call.bytes().all(|c| c.is_ascii_digit()),
        "{tracestate}"
    );

    let at_b = send(
        &b,
        &[
            ("traceparent", got(&at_a, "traceparent")),
            ("tracestate", tracestate),
        ],
    );
    assert_eq!(got(&at_b, "eagleeye-traceid"), TRACE);
    let rpc = got(&at_b, "eagleeye-rpcid");
    assert!(
        rpc.starts_with(&format!("0.1.{a_call}.")),
        "B's call is a child of A's: {rpc}"
    );
    // B writes its own member again for its own call, never A's forwarded as is.
    let again = got(&at_b, "tracestate");
    assert!(
        again.starts_with(&format!(
            "tb=ee:{};rpc:{rpc}",
            URL_SAFE_NO_PAD.encode(TRACE)
        )),
        "{again}"
    );
}
