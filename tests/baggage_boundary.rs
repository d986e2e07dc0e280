//! Baggage at the trust boundary (issue 21, part 5), through the real gateway: per-route
//! allow and deny lists of baggage keys, `restart_baggage`, and the drops counted.

mod support;

use serde_json::Value;
use support::{one_route, Origin, TestGateway};

fn send(gw: &TestGateway, headers: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let body = support::origin_answer(gw, headers);
    body["headers"].as_object().expect("headers").clone()
}

fn header<'a>(h: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    h.get(name).and_then(Value::as_str)
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const BAGGAGE: &str = "tenant=acme,app.region=eu,app.secret.token=s3cr3t,user=bob";

#[test]
fn a_route_lets_through_only_allowed_keys_and_never_denied_ones() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        "",
        r#"propagation = { baggage_allow = ["tenant", "app.*"], baggage_deny = ["app.secret*"], inject = ["tracecontext", "baggage", "jaeger"] }"#,
    ));
    let h = send(&gw, &[("traceparent", TRACEPARENT), ("baggage", BAGGAGE)]);
    assert_eq!(header(&h, "baggage"), Some("tenant=acme,app.region=eu"));
    // Every baggage format carries the filtered list.
    assert_eq!(header(&h, "uberctx-tenant"), Some("acme"));
    assert_eq!(header(&h, "uberctx-user"), None);
    assert_eq!(header(&h, "uberctx-app.secret.token"), None);
    // Baggage arriving in another format is filtered the same way.
    let h = send(
        &gw,
        &[
            (
                "uber-trace-id",
                "a1ce929d0e0e4736a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
            ),
            ("uberctx-user", "mallory"),
            ("uberctx-tenant", "acme"),
        ],
    );
    assert_eq!(header(&h, "baggage"), Some("tenant=acme"));
    gw.metrics_containing(&[
        "tracebridge_propagation_baggage_filtered_total{reason=\"not_allowed\"} 2",
        "tracebridge_propagation_baggage_filtered_total{reason=\"denied\"} 1",
    ]);
}

#[test]
fn without_lists_every_key_passes() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let h = send(&gw, &[("traceparent", TRACEPARENT), ("baggage", BAGGAGE)]);
    assert_eq!(header(&h, "baggage"), Some(BAGGAGE));
}

#[test]
fn the_default_table_applies_and_a_route_overrides_it() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(
        origin.addr,
        1,
        "[propagation]\nbaggage_deny = [\"user\"]\n",
        r#"propagation = { baggage_allow = ["tenant"] }"#,
    ));
    let h = send(
        &gw,
        &[
            ("traceparent", TRACEPARENT),
            ("baggage", "user=bob,tenant=acme,x=1"),
        ],
    );
    assert_eq!(header(&h, "baggage"), Some("tenant=acme"));
    gw.metrics_containing(&[
        "tracebridge_propagation_baggage_filtered_total{reason=\"denied\"} 1",
        "tracebridge_propagation_baggage_filtered_total{reason=\"not_allowed\"} 1",
    ]);
}

#[test]
fn restart_can_drop_incoming_baggage() {
    let origin = Origin::start("origin");
    let drop = TestGateway::start(&one_route(
        origin.addr,
        1,
        "",
        r#"propagation = { trust = "restart", restart_baggage = "drop" }"#,
    ));
    let h = send(&drop, &[("traceparent", TRACEPARENT), ("baggage", BAGGAGE)]);
    assert!(
        !header(&h, "traceparent")
            .unwrap()
            .contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "a new trace"
    );
    assert_eq!(header(&h, "baggage"), None, "incoming baggage dropped");
    drop.metrics_containing(&[
        "tracebridge_propagation_baggage_filtered_total{reason=\"restart\"} 4",
    ]);
    // Baggage alone (no trace context) is incoming baggage too.
    let h = send(&drop, &[("baggage", "k=v")]);
    assert_eq!(header(&h, "baggage"), None);

    // The default keeps it, filtered by the lists.
    let keep = TestGateway::start(&one_route(
        origin.addr,
        1,
        "",
        r#"propagation = { trust = "restart", baggage_deny = ["user"] }"#,
    ));
    let h = send(&keep, &[("traceparent", TRACEPARENT), ("baggage", BAGGAGE)]);
    assert_eq!(
        header(&h, "baggage"),
        Some("tenant=acme,app.region=eu,app.secret.token=s3cr3t")
    );
}

#[test]
fn bad_patterns_are_reported_with_their_key_path() {
    let text = r#"
        [propagation]
        baggage_allow = ["ok", "a*b"]
        restart_baggage = "forget"
        [upstreams.o]
        peers = ["127.0.0.1:1"]
        [[routes]]
        upstream = "o"
        propagation = { baggage_deny = ["", "x y"] }
    "#;
    let err = tracebridge::config::load_str(text, None, 1)
        .unwrap_err()
        .to_string();
    for needle in [
        "propagation.baggage_allow[1]: invalid baggage key pattern \"a*b\"",
        "propagation.restart_baggage",
        "routes[0].propagation.baggage_deny[0]: invalid baggage key pattern \"\"",
        "routes[0].propagation.baggage_deny[1]: invalid baggage key pattern \"x y\"",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
}
