//! Sampling a fleet agrees on (issue 21), through the real gateway in front of a real
//! origin: OpenTelemetry consistent probability sampling (`ot=th` / `rv` in
//! `tracestate`), decided by `R ≥ T` and written upstream; a fleet of gateways with the
//! same ratio deciding the same way.

mod support;

use serde_json::Value;
use support::{client, one_route, Origin, TestGateway};

/// The headers the origin received, by name (the origin answers with them as JSON).
fn send(gw: &TestGateway, headers: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let mut req = client().get(gw.url("/"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_str(&resp.text().unwrap()).expect("json");
    body["headers"].as_object().expect("headers").clone()
}

fn header<'a>(h: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    h.get(name).and_then(Value::as_str)
}

/// (trace id, sampled flag, random flag) of the `traceparent` the origin received.
fn traceparent(h: &serde_json::Map<String, Value>) -> (String, bool, bool) {
    let tp = header(h, "traceparent").expect("traceparent");
    let flags = u8::from_str_radix(&tp[53..55], 16).unwrap();
    (tp[3..35].to_owned(), flags & 1 == 1, flags & 2 == 2)
}

fn gateway(origin: &Origin, sampling: &str) -> TestGateway {
    TestGateway::start(&one_route(
        origin.addr,
        1,
        &format!("[sampling]\n{sampling}\n"),
        "",
    ))
}

/// `R ≥ T` the way the specification lets anyone check it on the wire: the last 14 hex
/// digits of the trace id (or `rv`) against the `th` digits, compared as strings.
fn kept_by(randomness_hex: &str, th: &str) -> bool {
    assert_eq!(randomness_hex.len(), 14);
    randomness_hex >= th
}

/// The `th` of an `ot` member value, if any.
fn th_of(ot: &str) -> Option<&str> {
    ot.split(';').find_map(|m| m.strip_prefix("th:"))
}

fn tp(trace: &str, flags: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-{flags}")
}

#[test]
fn ratio_decides_by_the_low_56_bits_and_writes_th_first() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 0.25");
    // 0.25 → T = c0000000000000 (tracestate-handling.md's `ot=th:c` example).
    let cases = [
        ("4bf92f3577b34da6a3c0000000000000", true, "R = T: kept"),
        ("4bf92f3577b34da6a3ffffffffffffff", true, "highest R"),
        ("4bf92f3577b34da6a3bfffffffffffff", false, "R = T - 1"),
        (
            "4bf92f3577b34da6ff00000000000001",
            false,
            "bits above the 56 do not count",
        ),
    ];
    for (trace, want, why) in cases {
        // The incoming flag says sampled: `ratio` ignores it, as ProbabilitySampler does.
        let h = send(
            &gw,
            &[
                ("traceparent", &tp(trace, "03")),
                ("tracestate", "a=1,ot=th:8;p:3,b=2"),
            ],
        );
        let (out_trace, sampled, _) = traceparent(&h);
        assert_eq!(out_trace, trace);
        assert_eq!(sampled, want, "{trace}: {why}");
        let ts = header(&h, "tracestate").expect("tracestate");
        // The changed `ot` member moves to the front; the others keep their order; its
        // other sub-keys stay.
        if want {
            assert_eq!(ts, "ot=th:c;p:3,a=1,b=2", "{why}");
        } else {
            assert_eq!(ts, "ot=p:3,a=1,b=2", "not sampled: th removed ({why})");
        }
    }
    // Without any tracestate: sampled → `ot=th:c` alone; not sampled → none at all.
    let h = send(
        &gw,
        &[("traceparent", &tp("4bf92f3577b34da6a3c0000000000000", "02"))],
    );
    assert_eq!(header(&h, "tracestate"), Some("ot=th:c"));
    let h = send(
        &gw,
        &[("traceparent", &tp("4bf92f3577b34da6a30000000000000f", "01"))],
    );
    assert_eq!(header(&h, "tracestate"), None);
}

#[test]
fn explicit_randomness_replaces_the_trace_id_and_is_kept() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 0.5");
    // Trace id says keep (ff...), rv says drop; and the other way round.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp("4bf92f3577b34da6a3ffffffffffffff", "03")),
            ("tracestate", "ot=rv:7fffffffffffff"),
        ],
    );
    assert!(!traceparent(&h).1, "rv 7fff.. < th 8");
    assert_eq!(header(&h, "tracestate"), Some("ot=rv:7fffffffffffff"));
    let h = send(
        &gw,
        &[
            ("traceparent", &tp("4bf92f3577b34da6a300000000000001", "00")),
            ("tracestate", "x=y,ot=rv:80000000000000"),
        ],
    );
    assert!(traceparent(&h).1, "rv 8000.. ≥ th 8");
    assert_eq!(
        header(&h, "tracestate"),
        Some("ot=th:8;rv:80000000000000,x=y")
    );
}

#[test]
fn parent_honours_a_consistent_threshold_and_erases_an_inconsistent_one() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "ratio = 0.25");
    let kept = "4bf92f3577b34da6a3ffffffffffffff";
    let low = "4bf92f3577b34da6a300000000000001";
    // Sampled, R ≥ th: the threshold goes on unchanged and the member stays in place.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp(kept, "01")),
            ("tracestate", "a=1,ot=th:8,b=2"),
        ],
    );
    assert!(traceparent(&h).1);
    assert_eq!(header(&h, "tracestate"), Some("a=1,ot=th:8,b=2"));
    // Sampled, R < th: apparently inconsistent, so the threshold is erased.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp(low, "01")),
            ("tracestate", "a=1,ot=th:8,b=2"),
        ],
    );
    assert!(traceparent(&h).1, "the parent's decision is honoured");
    assert_eq!(header(&h, "tracestate"), Some("a=1,b=2"));
    // Not sampled: no threshold goes on.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp(kept, "00")),
            ("tracestate", "a=1,ot=th:8;rv:ffffffffffffff"),
        ],
    );
    assert!(!traceparent(&h).1);
    assert_eq!(header(&h, "tracestate"), Some("ot=rv:ffffffffffffff,a=1"));
    // Sampled without a threshold: the probability is unknown, none is invented.
    let h = send(
        &gw,
        &[("traceparent", &tp(kept, "01")), ("tracestate", "a=1")],
    );
    assert_eq!(header(&h, "tracestate"), Some("a=1"));
}

#[test]
fn new_roots_under_parent_use_the_ratio_threshold_on_random_ids() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "ratio = 0.25");
    let (mut kept, mut dropped) = (0, 0);
    for _ in 0..64 {
        let h = send(&gw, &[]);
        let (trace, sampled, random) = traceparent(&h);
        assert!(random, "the gateway's own ids are random (W3C level 2)");
        assert_eq!(sampled, kept_by(&trace[18..], "c"), "{trace}");
        if sampled {
            kept += 1;
            assert_eq!(header(&h, "tracestate"), Some("ot=th:c"));
        } else {
            dropped += 1;
            assert_eq!(header(&h, "tracestate"), None);
        }
    }
    // P(no kept or no dropped in 64) < 1e-7.
    assert!(kept > 0 && dropped > 0, "{kept} kept, {dropped} dropped");
}

#[test]
fn the_default_configuration_writes_no_threshold() {
    // `parent` with ratio 1 is OpenTelemetry's default parentbased_always_on.
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let h = send(&gw, &[]);
    assert!(traceparent(&h).1);
    assert_eq!(header(&h, "tracestate"), None);
    // `always` and ratio 1 under `ratio` are probability 1: `th:0`.
    let gw = gateway(&origin, "strategy = \"always\"");
    assert_eq!(header(&send(&gw, &[]), "tracestate"), Some("ot=th:0"));
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 1.0");
    assert_eq!(header(&send(&gw, &[]), "tracestate"), Some("ot=th:0"));
}

#[test]
fn an_invalid_ot_member_is_dropped_and_counted() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "ratio = 0.25");
    for (value, reason) in [
        ("th:C", "threshold"),
        ("rv:123", "randomness"),
        ("th:8;th:8", "repeated"),
        ("Th:8", "malformed"),
    ] {
        let h = send(
            &gw,
            &[
                ("traceparent", &tp("4bf92f3577b34da6a3ffffffffffffff", "01")),
                ("tracestate", &format!("a=1,ot={value},b=2")),
            ],
        );
        assert!(traceparent(&h).1, "{value}: the request goes on");
        assert_eq!(header(&h, "tracestate"), Some("a=1,b=2"), "{value}");
        gw.metrics_containing(&[&format!(
            "tracebridge_sampling_ot_invalid_total{{reason=\"{reason}\"}} 1"
        )]);
    }
}

#[test]
fn the_gateway_span_records_the_threshold() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 0.25");
    send(
        &gw,
        &[("traceparent", &tp("4bf92f3577b34da6a3ffffffffffffff", "01"))],
    );
    send(
        &gw,
        &[
            ("traceparent", &tp("4bf92f3577b34da6a300000000000000", "01")),
            ("tracestate", "ot=rv:d0000000000000"),
        ],
    );
    let spans = gw.spans.wait_for(2);
    let states: Vec<String> = spans
        .iter()
        .map(|s| s.span_context.trace_state().header())
        .collect();
    assert!(states.contains(&"ot=th:c".to_owned()), "{states:?}");
    assert!(
        states.contains(&"ot=th:c;rv:d0000000000000".to_owned()),
        "{states:?}"
    );
}

/// Deterministic, well-spread trace ids (splitmix64), random flag on or off.
fn trace_ids(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| format!("{:016x}{:016x}", next(), next() | 1))
        .collect()
}

#[test]
fn a_fleet_of_three_gateways_makes_the_same_decision_and_writes_it() {
    let origin = Origin::start("origin");
    let fleet: Vec<TestGateway> = (0..3)
        .map(|_| gateway(&origin, "strategy = \"ratio\"\nratio = 0.1"))
        .collect();
    let ids = trace_ids(48);
    let mut thresholds = std::collections::BTreeSet::new();
    let mut kept = 0;
    for (i, trace) in ids.iter().enumerate() {
        // Half the callers are W3C level 1 (no random flag): the id is presumed random.
        let flags = if i % 2 == 0 { "03" } else { "01" };
        let outs: Vec<(bool, Option<String>)> = fleet
            .iter()
            .map(|gw| {
                let h = send(gw, &[("traceparent", &tp(trace, flags))]);
                let (t, sampled, _) = traceparent(&h);
                assert_eq!(&t, trace);
                (sampled, header(&h, "tracestate").map(str::to_owned))
            })
            .collect();
        assert!(
            outs.windows(2).all(|w| w[0] == w[1]),
            "{trace}: the fleet disagrees: {outs:?}"
        );
        let (sampled, ts) = &outs[0];
        if *sampled {
            kept += 1;
            let th = ts
                .as_deref()
                .and_then(|t| t.strip_prefix("ot="))
                .and_then(th_of);
            let th = th.unwrap_or_else(|| panic!("{trace}: sampled without th: {ts:?}"));
            assert!(kept_by(&trace[18..], th), "{trace} kept below th {th}");
            thresholds.insert(th.to_owned());
        } else {
            assert_eq!(ts, &None, "{trace}");
        }
    }
    // One threshold for the fleet: (1 - 0.1) × 2^56 = e6666666666666 (rounded).
    assert_eq!(
        thresholds.into_iter().collect::<Vec<_>>(),
        vec!["e6666666666666".to_owned()]
    );
    for trace in &ids {
        let want = kept_by(&trace[18..], "e6666666666666");
        let h = send(&fleet[1], &[("traceparent", &tp(trace, "01"))]);
        assert_eq!(traceparent(&h).1, want, "{trace}");
    }
    assert!(kept > 0 && kept < ids.len(), "{kept} of {} kept", ids.len());
}

#[test]
fn a_chain_of_gateways_keeps_the_first_decision_and_threshold() {
    // Edge (ratio) → second gateway (parent): what the edge wrote upstream is honoured.
    let origin = Origin::start("origin");
    let edge = gateway(&origin, "strategy = \"ratio\"\nratio = 0.5");
    let inner = gateway(&origin, "ratio = 0.01");
    for trace in trace_ids(16) {
        let h = send(&edge, &[("traceparent", &tp(&trace, "02"))]);
        let (_, sampled, _) = traceparent(&h);
        let mut next = vec![("traceparent", header(&h, "traceparent").unwrap().to_owned())];
        if let Some(ts) = header(&h, "tracestate") {
            next.push(("tracestate", ts.to_owned()));
        }
        let pairs: Vec<(&str, &str)> = next.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let h2 = send(&inner, &pairs);
        assert_eq!(traceparent(&h2).1, sampled, "{trace}");
        assert_eq!(
            header(&h2, "tracestate"),
            header(&h, "tracestate"),
            "{trace}: th passes through the parent-based hop"
        );
    }
}
