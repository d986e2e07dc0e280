//! Golden cross-format tests: one fixed context injected in each of the 13 formats,
//! the exact headers written (a golden table, so any change in output is a visible
//! diff) and what each format reads back; then the no-loss chains through a W3C-only
//! hop (SkyWalking and EagleEye ids the neutral model cannot hold travel in the
//! gateway's `tb` tracestate member).
//!
//! The golden values were checked independently of the codecs: the decimal ids, the
//! `grpc-trace-bin` bytes, the base64 `sw8` fields and the `sw8` parent segment id
//! (wire-formats §11.5, with the collector mapping giving back the hop's span id) were
//! recomputed with a few lines of Python.

use http::{HeaderMap, HeaderName, HeaderValue};
use tracebridge::codec::{skywalking, tracecontext, Format};
use tracebridge::mediate::carry;
use tracebridge::model::{BaggageEntry, Hop, Sampling, SpanId, TraceContext, TraceId};

const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
/// The caller's span: never written, the hop's span replaces it.
const CALLER_SPAN: u64 = 0x00f067aa0ba902b7;
const HOP_SPAN: u64 = 0xb7ad6b7169203331;

/// 128-bit trace id, sampled, not debug, two baggage entries.
fn ctx() -> TraceContext {
    TraceContext {
        trace_id: TraceId::new(TRACE),
        parent_id: SpanId::new(CALLER_SPAN),
        sampling: Sampling::Sampled,
        debug: false,
        baggage: vec![entry("tenant", "acme"), entry("user", "alice")],
        ..TraceContext::default()
    }
}

fn entry(key: &str, value: &str) -> BaggageEntry {
    BaggageEntry {
        key: key.into(),
        value: value.into(),
        properties: String::new(),
    }
}

fn hop() -> Hop<'static> {
    Hop {
        span_id: SpanId::new(HOP_SPAN).unwrap(),
        service: "gateway",
        instance: "gateway-0",
        endpoint: "GET:/api/orders",
        peer_address: "orders.svc:8080",
        call_index: 1,
    }
}

fn inject(format: Format, ctx: &TraceContext, hop: &Hop<'_>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let injected = carry::inject(format, ctx, hop, &mut h);
    assert_eq!(injected.baggage_dropped, 0, "{format}: dropped baggage");
    h
}

fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            let v = v.to_str().expect("visible ASCII");
            (n.as_str().to_string(), v.to_string())
        })
        .collect()
}

/// What a format can carry of the fixed context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceWidth {
    /// All 128 bits.
    Full,
    /// The low 64 bits only (left-padded on extract).
    Low64,
    /// No trace id at all (W3C baggage).
    None,
}

/// (format, trace id it carries, whether it carries baggage), per each codec's doc.
const CARRIES: [(Format, TraceWidth, bool); 13] = [
    (Format::TraceContext, TraceWidth::Full, false),
    (Format::B3, TraceWidth::Full, false),
    (Format::B3Multi, TraceWidth::Full, false),
    (Format::Jaeger, TraceWidth::Full, true), // uberctx-*
    (Format::SkyWalking, TraceWidth::Full, true), // sw8-correlation
    (Format::Datadog, TraceWidth::Full, false), // low half + _dd.p.tid
    (Format::XRay, TraceWidth::Full, false),
    (Format::Gcp, TraceWidth::Full, false),
    (Format::GrpcTraceBin, TraceWidth::Full, false),
    (Format::OtTrace, TraceWidth::Low64, true), // 64-bit interop; ot-baggage-*
    (Format::EagleEye, TraceWidth::Full, true), // EagleEye-UserData
    (Format::Instana, TraceWidth::Full, false),
    (Format::Baggage, TraceWidth::None, true),
];

/// The exact headers each format writes for [`ctx`] continued by [`hop`], in the order
/// the codec writes them.
const GOLDEN: [(Format, &[(&str, &str)]); 13] = [
    (
        Format::TraceContext,
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
        )],
    ),
    (
        Format::B3,
        &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-1")],
    ),
    (
        Format::B3Multi,
        &[
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "b7ad6b7169203331"),
            ("x-b3-sampled", "1"),
        ],
    ),
    (
        Format::Jaeger,
        &[
            (
                "uber-trace-id",
                "4bf92f3577b34da6a3ce929d0e0e4736:b7ad6b7169203331:0:1",
            ),
            ("uberctx-tenant", "acme"),
            ("uberctx-user", "alice"),
        ],
    ),
    (
        Format::SkyWalking,
        &[
            (
                "sw8",
                // 1-b64(trace hex)-b64(segment)-1-b64(gateway)-b64(gateway-0)
                //   -b64(GET:/api/orders)-b64(orders.svc:8080); segment
                // 1563f9ec672e7407a3ce929d0e0e4736 = (span ^ low ^ 1_le) || low.
                "1-NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY=\
                 -MTU2M2Y5ZWM2NzJlNzQwN2EzY2U5MjlkMGUwZTQ3MzY=-1-Z2F0ZXdheQ==\
                 -Z2F0ZXdheS0w-R0VUOi9hcGkvb3JkZXJz-b3JkZXJzLnN2Yzo4MDgw",
            ),
            ("sw8-correlation", "dGVuYW50:YWNtZQ==,dXNlcg==:YWxpY2U="),
        ],
    ),
    (
        Format::Datadog,
        &[
            ("x-datadog-trace-id", "11803532876627986230"),
            ("x-datadog-parent-id", "13235353014750950193"),
            ("x-datadog-sampling-priority", "1"),
            ("x-datadog-tags", "_dd.p.tid=4bf92f3577b34da6"),
        ],
    ),
    (
        Format::XRay,
        &[(
            "x-amzn-trace-id",
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=b7ad6b7169203331;Sampled=1",
        )],
    ),
    (
        Format::Gcp,
        &[(
            "x-cloud-trace-context",
            "4bf92f3577b34da6a3ce929d0e0e4736/13235353014750950193;o=1",
        )],
    ),
    (
        Format::GrpcTraceBin,
        // 00 | 00 trace(16) | 01 span(8) | 02 01, unpadded base64.
        &[("grpc-trace-bin", "AABL+S81d7NNpqPOkp0ODkc2Abeta3FpIDMxAgE")],
    ),
    (
        Format::OtTrace,
        &[
            ("ot-tracer-traceid", "a3ce929d0e0e4736"),
            ("ot-tracer-spanid", "b7ad6b7169203331"),
            ("ot-tracer-sampled", "true"),
            ("ot-baggage-tenant", "acme"),
            ("ot-baggage-user", "alice"),
        ],
    ),
    (
        Format::EagleEye,
        &[
            ("eagleeye-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("eagleeye-spanid", "13235353014750950193"),
            ("eagleeye-rpcid", "0.1"),
            ("eagleeye-sampled", "1"),
            ("eagleeye-pappname", "gateway"),
            ("eagleeye-prpc", "GET:/api/orders"),
            ("eagleeye-userdata", "tenant=acme&user=alice"),
        ],
    ),
    (
        Format::Instana,
        &[
            ("x-instana-t", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-instana-s", "b7ad6b7169203331"),
            ("x-instana-l", "1"),
        ],
    ),
    (Format::Baggage, &[("baggage", "tenant=acme,user=alice")]),
];

#[test]
fn tables_cover_every_format_once() {
    for f in Format::ALL {
        assert_eq!(CARRIES.iter().filter(|c| c.0 == f).count(), 1, "{f}");
        assert_eq!(GOLDEN.iter().filter(|g| g.0 == f).count(), 1, "{f}");
    }
}

#[test]
fn golden_headers() {
    for (format, want) in GOLDEN {
        let got = pairs(&inject(format, &ctx(), &hop()));
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{format}");
    }
}

#[test]
fn injected_headers_are_clean_and_owned_by_their_format() {
    for format in Format::ALL {
        let h = inject(format, &ctx(), &hop());
        assert!(!h.is_empty(), "{format} wrote nothing");
        for (name, value) in &h {
            let n = name.as_str();
            assert_eq!(n, n.to_ascii_lowercase(), "{format}: {n}");
            assert!(
                !value
                    .as_bytes()
                    .iter()
                    .any(|b| matches!(b, b'\r' | b'\n' | 0)),
                "{format}: {n}: {value:?}"
            );
            assert!(
                value.as_bytes().iter().all(|&b| (0x20..0x7f).contains(&b)),
                "{format}: {n}: {value:?} is not visible ASCII"
            );
            // Mediation strips a format's headers by these lists: every header written
            // must be in them.
            let owned = format.headers().contains(name)
                || format.prefixes().iter().any(|p| n.starts_with(p));
            assert!(owned, "{format} wrote {n}, not in its headers()/prefixes()");
            assert_eq!(h.get_all(name).iter().count(), 1, "{format}: {n} repeated");
        }
    }
}

#[test]
fn each_format_reads_back_what_it_wrote() {
    let want_baggage = ctx().baggage;
    for (format, width, carries_baggage) in CARRIES {
        let h = inject(format, &ctx(), &hop());
        let got = format
            .extract(&h)
            .unwrap_or_else(|e| panic!("{format}: {e}"))
            .unwrap_or_else(|| panic!("{format}: nothing extracted"));
        let (trace, parent, sampling) = match width {
            TraceWidth::Full => (TraceId::new(TRACE), Some(HOP_SPAN), Sampling::Sampled),
            TraceWidth::Low64 => (
                TraceId::new(TRACE & u128::from(u64::MAX)),
                Some(HOP_SPAN),
                Sampling::Sampled,
            ),
            // Baggage alone carries no trace and no decision.
            TraceWidth::None => (None, None, Sampling::Deferred),
        };
        assert_eq!(got.trace_id, trace, "{format}: trace id");
        assert_eq!(
            got.parent_id.map(SpanId::get),
            parent,
            "{format}: parent id"
        );
        assert_eq!(got.sampling, sampling, "{format}: sampling");
        assert!(!got.debug, "{format}: debug");
        if carries_baggage {
            assert_eq!(got.baggage, want_baggage, "{format}: baggage");
        } else {
            assert!(
                got.baggage.is_empty(),
                "{format}: baggage {:?}",
                got.baggage
            );
        }
    }
}

/// No format reads another's headers: a request with only format A's headers is
/// "absent" for every other format (nothing to link, nothing invalid).
#[test]
fn formats_do_not_read_each_others_headers() {
    for a in Format::ALL {
        let h = inject(a, &ctx(), &hop());
        for b in Format::ALL.into_iter().filter(|&b| b != a) {
            assert_eq!(b.extract(&h), Ok(None), "{b} read the headers of {a}");
        }
    }
}

/// All 13 formats in one request: each reads exactly what it read alone.
#[test]
fn all_formats_in_one_request() {
    let mut all = HeaderMap::new();
    for f in Format::ALL {
        f.inject(&ctx(), &hop(), &mut all);
    }
    let expected: usize = GOLDEN.iter().map(|(_, h)| h.len()).sum();
    assert_eq!(all.len(), expected, "no format overwrote another's header");
    for f in Format::ALL {
        let alone = f.extract(&inject(f, &ctx(), &hop()));
        assert_eq!(f.extract(&all), alone, "{f}");
    }
}

/// The same context, not sampled, deferred and debug: the sampling part of each golden
/// value (the rest is covered by the table above).
#[test]
fn golden_sampling_variants() {
    /// The header's value when not sampled, deferred, and debug.
    type Values = [Option<&'static str>; 3];
    let rows: &[(Format, &str, Values)] = &[
        (
            Format::TraceContext,
            "traceparent",
            [
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00"),
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00"),
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"),
            ],
        ),
        (
            Format::B3,
            "b3",
            [
                Some("4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-0"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-d"),
            ],
        ),
        (Format::B3Multi, "x-b3-sampled", [Some("0"), None, None]),
        (Format::B3Multi, "x-b3-flags", [None, None, Some("1")]),
        (
            Format::Jaeger,
            "uber-trace-id",
            [
                Some("4bf92f3577b34da6a3ce929d0e0e4736:b7ad6b7169203331:0:0"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736:b7ad6b7169203331:0:0"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736:b7ad6b7169203331:0:3"),
            ],
        ),
        (
            Format::Datadog,
            "x-datadog-sampling-priority",
            [Some("0"), None, Some("2")],
        ),
        (
            Format::XRay,
            "x-amzn-trace-id",
            [
                Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=b7ad6b7169203331;Sampled=0"),
                Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=b7ad6b7169203331;Sampled=?"),
                Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=b7ad6b7169203331;Sampled=1"),
            ],
        ),
        (
            Format::Gcp,
            "x-cloud-trace-context",
            [
                Some("4bf92f3577b34da6a3ce929d0e0e4736/13235353014750950193;o=0"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736/13235353014750950193"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736/13235353014750950193;o=1"),
            ],
        ),
        (
            Format::GrpcTraceBin,
            "grpc-trace-bin",
            [
                Some("AABL+S81d7NNpqPOkp0ODkc2Abeta3FpIDMxAgA"),
                Some("AABL+S81d7NNpqPOkp0ODkc2Abeta3FpIDMxAgA"),
                Some("AABL+S81d7NNpqPOkp0ODkc2Abeta3FpIDMxAgE"),
            ],
        ),
        (
            Format::OtTrace,
            "ot-tracer-sampled",
            [Some("false"), None, Some("true")],
        ),
        (
            Format::EagleEye,
            "eagleeye-sampled",
            [Some("0"), None, Some("1")],
        ),
        (
            Format::Instana,
            "x-instana-l",
            [Some("0"), Some("0"), Some("1")],
        ),
    ];
    let variants = [
        (Sampling::NotSampled, false),
        (Sampling::Deferred, false),
        (Sampling::Sampled, true),
    ];
    for &(format, name, values) in rows {
        for ((sampling, is_debug), want) in variants.into_iter().zip(values) {
            let c = TraceContext {
                sampling,
                debug: is_debug,
                ..ctx()
            };
            let h = inject(format, &c, &hop());
            let got = h.get(name).map(|v| v.to_str().unwrap());
            assert_eq!(
                got, want,
                "{format} {name} for {sampling:?} debug={is_debug}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// No-loss chains through a W3C-only hop.

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn hop_at(span: u64, call_index: u32) -> Hop<'static> {
    Hop {
        span_id: SpanId::new(span).unwrap(),
        call_index,
        ..hop()
    }
}

/// Gateway A receives `sw8` with a Java-agent trace id (vector sw8-008), sends W3C only;
/// gateway B receives that W3C and sends `sw8` again: the original SkyWalking trace id
/// string comes back, not the W3C hex id it maps to.
#[test]
fn skywalking_survives_a_w3c_hop() {
    const JAVA_ID: &str = "56a5e1c519ae4c76a2b8b11d92cead7f.12.16563474296430001";
    let incoming = map(&[
        (
            "sw8",
            "1-NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDE=\
             -NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDI=\
             -1-c3ZjLWE=-aW5zdC0x-R0VUOi9vcmRlcnM=-Z2F0ZXdheTo4MDgw",
        ),
        ("sw8-correlation", "dGVzdDE=:dDE=,dGVzdDI=:dDI="),
    ]);
    let at_a = Format::SkyWalking.extract(&incoming).unwrap().unwrap();
    let trace = TraceId::new(0x56a5e1c515ae4c7613e51e7cf616977f);
    assert_eq!(at_a.trace_id, trace, "collector mapping of the Java id");
    assert_eq!(
        at_a.originals.skywalking.as_ref().unwrap().trace_id,
        JAVA_ID
    );

    // A → B: W3C only (plus W3C baggage, which carries the correlation).
    let mut wire = inject(Format::TraceContext, &at_a, &hop_at(0x1111, 1));
    Format::Baggage.inject(&at_a, &hop_at(0x1111, 1), &mut wire);
    assert_eq!(
        wire.get("traceparent").unwrap(),
        "00-56a5e1c515ae4c7613e51e7cf616977f-0000000000001111-01"
    );
    // `tb` = "sw:" + base64url(JAVA_ID), no padding.
    assert_eq!(
        wire.get("tracestate").unwrap(),
        "tb=sw:NTZhNWUxYzUxOWFlNGM3NmEyYjhiMTFkOTJjZWFkN2YuMTIuMTY1NjM0NzQyOTY0MzAwMDE"
    );
    let mut at_b = carry::extract(Format::TraceContext, &wire)
        .unwrap()
        .unwrap();
    at_b.baggage = Format::Baggage.extract(&wire).unwrap().unwrap().baggage;
    assert_eq!(at_b.trace_id, trace);
    assert!(at_b.tracestate.is_empty(), "tb is consumed, not forwarded");

    // B → SkyWalking service.
    let out = inject(Format::SkyWalking, &at_b, &hop_at(0x2222, 1));
    let sw8 = skywalking::decode(out.get("sw8").unwrap().to_str().unwrap()).unwrap();
    assert_eq!(
        sw8.trace_id, JAVA_ID,
        "original SkyWalking trace id re-emitted"
    );
    assert!(sw8.sampled);
    let back = Format::SkyWalking.extract(&out).unwrap().unwrap();
    assert_eq!(back.trace_id, trace);
    assert_eq!(back.parent_id, SpanId::new(0x2222), "parent = B's span");
    assert_eq!(
        back.baggage,
        vec![entry("test1", "t1"), entry("test2", "t2")]
    );
}

/// EagleEye → W3C → EagleEye: the original TraceID comes back, and the RpcID is the
/// child of the one in the `tb` member (A's outgoing call), for a hex-shaped TraceID
/// (mapped by padding) and an opaque one (mapped by SHA-256).
#[test]
fn eagleeye_survives_a_w3c_hop() {
    for (trace_id, tb_ee) in [
        (
            "0ad1348f1403169275002100356696",
            "MGFkMTM0OGYxNDAzMTY5Mjc1MDAyMTAwMzU2Njk2",
        ),
        ("ac1e0a2b-17000000-0042", "YWMxZTBhMmItMTcwMDAwMDAtMDA0Mg"),
    ] {
        let incoming = map(&[
            ("EagleEye-TraceID", trace_id),
            ("EagleEye-RpcID", "0.2.1"),
            ("EagleEye-Sampled", "1"),
            ("EagleEye-UserData", "tenant=acme"),
        ]);
        let at_a = Format::EagleEye.extract(&incoming).unwrap().unwrap();
        let trace = at_a.trace_id.unwrap();

        // A's third outgoing call goes W3C only.
        let wire = inject(Format::TraceContext, &at_a, &hop_at(0x1111, 3));
        assert_eq!(
            wire.get("tracestate").unwrap().to_str().unwrap(),
            format!("tb=ee:{tb_ee};rpc:0.2.1.3"),
            "{trace_id}"
        );
        let at_b = carry::extract(Format::TraceContext, &wire)
            .unwrap()
            .unwrap();
        assert_eq!(at_b.trace_id, Some(trace), "{trace_id}");
        let ee = at_b.originals.eagleeye.as_deref().unwrap();
        assert_eq!(
            (ee.trace_id.as_str(), ee.rpc_id.as_str()),
            (trace_id, "0.2.1.3")
        );

        // B's second outgoing call goes EagleEye.
        let out = inject(Format::EagleEye, &at_b, &hop_at(0x2222, 2));
        let get = |n: &str| out.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(get("eagleeye-traceid").as_deref(), Some(trace_id));
        assert_eq!(get("eagleeye-rpcid").as_deref(), Some("0.2.1.3.2"));
        assert_eq!(get("eagleeye-spanid").as_deref(), Some("8738")); // 0x2222
        assert_eq!(get("eagleeye-sampled").as_deref(), Some("1"));
        let back = Format::EagleEye.extract(&out).unwrap().unwrap();
        assert_eq!(back.trace_id, Some(trace), "{trace_id}");
        assert_eq!(back.parent_id, SpanId::new(0x2222));
    }
}

/// A `tb` member from a context with both originals carries both, and B re-emits each
/// native format from it.
#[test]
fn both_originals_share_one_tb_member() {
    let mut at_a = Format::EagleEye
        .extract(&map(&[
            ("EagleEye-TraceID", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("EagleEye-RpcID", "0"),
        ]))
        .unwrap()
        .unwrap();
    // The same trace id as a SkyWalking UUID string: it maps to the same W3C id.
    at_a.originals.skywalking = Format::SkyWalking
        .extract(&map(&[(
            "sw8",
            // svc / inst / /api / h:80: SkyWalking agents reject empty fields (issue 17).
            "1-NGJmOTJmMzUtNzdiMy00ZGE2LWEzY2UtOTI5ZDBlMGU0NzM2-YQ==-0-c3Zj-aW5zdA==-L2FwaQ==-aDo4MA==",
        )]))
        .unwrap()
        .unwrap()
        .originals
        .skywalking;
    let wire = inject(Format::TraceContext, &at_a, &hop_at(7, 1));
    let ts = wire.get("tracestate").unwrap().to_str().unwrap();
    assert_eq!(
        ts,
        "tb=sw:NGJmOTJmMzUtNzdiMy00ZGE2LWEzY2UtOTI5ZDBlMGU0NzM2;\
         ee:NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY;rpc:0.1"
    );
    let ts = tracecontext::decode_tracestate(ts).unwrap();
    assert_eq!(ts.len(), 1);
    let at_b = carry::extract(Format::TraceContext, &wire)
        .unwrap()
        .unwrap();
    let sw8 = inject(Format::SkyWalking, &at_b, &hop_at(8, 1));
    let sw8 = skywalking::decode(sw8.get("sw8").unwrap().to_str().unwrap()).unwrap();
    assert_eq!(sw8.trace_id, "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
    let ee = inject(Format::EagleEye, &at_b, &hop_at(8, 1));
    assert_eq!(ee.get("eagleeye-rpcid").unwrap(), "0.1.1");
}
