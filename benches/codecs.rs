//! Extract and inject for every format, side by side with the OpenTelemetry propagators
//! that exist without an exporter stack.
//!
//! Run: `cargo bench --bench codecs` (quicker, and good enough for ratios:
//! `cargo bench --bench codecs -- --warm-up-time 1 --measurement-time 3`).
//!
//! Machine: 2 cores (`nproc`), `lscpu | grep 'Model name'` = "AMD EPYC", a shared VM where
//! other builds run at the same time: compare the columns of one run, not separate runs.
//!
//! Inputs:
//! - Extract reads the valid vector of `tests/data/vectors.json` named in [`CASES`] (a
//!   realistic one: 128-bit ids, a decision, baggage and originals where the format has
//!   them). Instana has no vector there; its row uses `instana-001` of the codec's own
//!   table (`src/codec/instana.rs`).
//! - Inject writes the context extracted from the same vector, made sampled, with a
//!   128-bit trace id and exactly two baggage entries (so the originals are the ones that
//!   format really carries: the Datadog origin and tags, the SkyWalking and EagleEye ids).
//!   The baggage keys are lowercase (`user-id`, `server-node`): keys with upper case
//!   cannot travel as `uberctx-*` / `ot-baggage-*` header names and would be dropped.
//! - Inject measures the codec, not `HeaderMap` growth: one map is reused and `clear()`ed
//!   at the start of every iteration (clearing keeps the map's capacity; the cost of
//!   dropping the previous iteration's values is part of the measurement, as it is part
//!   of what an inject allocates).
//! - The OpenTelemetry side goes through a small `HeaderMap` carrier written here (the
//!   same `get` / `to_str` and `HeaderName::from_bytes` / `HeaderValue::from_str` that
//!   `opentelemetry-http`'s `HeaderExtractor` / `HeaderInjector` do), extracting with
//!   `extract` and injecting with `inject_context` a context that propagator extracted
//!   from the same headers.
//! - `opentelemetry-jaeger-propagator` 0.32 implements the `TextMapPropagator` of
//!   `opentelemetry` 0.32, which this package cannot name (the crate re-exports nothing
//!   of it and only 0.33 is a direct dependency), so the Jaeger row has no OpenTelemetry
//!   column; see README "Performance".
//!
//! Profiling: `CODECS_PROFILE="extract/skywalking 2000" valgrind --tool=callgrind
//! --toggle-collect='*profile_*' target/release/deps/codecs-<hash>` runs one row's tracebridge
//! side that many times and nothing else (`extract/xray/otel 2000`: the OpenTelemetry
//! side); `Ir` below is instructions per call measured that way, which does not move with
//! the machine's load. `perf stat -e task-clock` over the same mode gives CPU time per
//! call, which does not count the time other processes hold the cores (wall time does).
//!
//! Results. ns = CPU time per call: `perf stat -e task-clock` over
//! `CODECS_PROFILE="<row> 1000000"`, the same run with 0 iterations subtracted, best of 3
//! (with the load average at 8-10, criterion's wall times were 2-2.5x these; at a load of
//! about 1 they agree within a few per cent, see README "Performance"). Ir = instructions
//! per call (callgrind), allocs = heap allocations per call, ratio = OpenTelemetry ns / ours.
//! Both tables were measured in the same hour at a load average of 1-2.
//!
//! Before: the codecs as they were when this bench was added.
//!
//! ```text
//! format          extract ns     Ir  allocs  OTel ns  ratio  inject ns    Ir  allocs  OTel ns  ratio
//! tracecontext           113   1502       0      266   2.3x        101  1057       1      304   3.0x
//! baggage                297   5202       8      894   3.0x        182  2682       4      253   1.4x
//! b3                     102   1702       0        -      -        113  1427       2        -      -
//! b3multi                162   2187       0        -      -        246  2749       3        -      -
//! jaeger*                297   4644       5      391   1.3x        436  6418      11      224   0.5x
//! ottrace                219   2915       3        -      -        540  6385      10        -      -
//! xray                   188   3064       0      411   2.2x        117  1453       1      405   3.5x
//! datadog                407   5239       7        -      -        408  4345       6        -      -
//! gcp                    113   1560       0        -      -        152  1839       2        -      -
//! skywalking             703  12340      12        -      -        429  6896       3        -      -
//! eagleeye               298   6770       3        -      -        812  9596      12        -      -
//! grpc-trace-bin          75   1106       0        -      -        110  1387       1        -      -
//! instana                205   2374       0        -      -        193  1849       2        -      -
//! ```
//!
//! After the optimisations of this branch:
//!
//! ```text
//! format          extract ns     Ir  allocs  OTel ns  ratio  inject ns    Ir  allocs  OTel ns  ratio
//! tracecontext            86   1056       0      267   3.1x         94   904       1      306   3.2x
//! baggage                276   4196       7      860   3.1x        108  1346       1      255   2.4x
//! b3                      69   1184       0        -      -         90   982       1        -      -
//! b3multi                148   1863       0        -      -        209  1794       2        -      -
//! jaeger*                205   3409       3      382   1.9x        393  4529       5      248   0.6x
//! ottrace                182   2427       3        -      -        464  4925       6        -      -
//! xray                   136   2152       0      445   3.3x        107  1059       1      398   3.7x
//! datadog                353   4384       5        -      -        421  4174       4        -      -
//! gcp                     86   1238       0        -      -        119  1156       1        -      -
//! skywalking             632  10292      12        -      -        359  5677       2        -      -
//! eagleeye               279   6407       3        -      -        634  6436       6        -      -
//! grpc-trace-bin          72   1106       0        -      -        112  1348       1        -      -
//! instana                177   1822       0        -      -        190  1814       2        -      -
//! ```
//!
//! `*` The Jaeger OpenTelemetry columns were measured with `opentelemetry` 0.32 added as a
//! dev-dependency for the run (not committed, see above). That propagator writes no
//! baggage and reads `uberctx-*` into its trace state: trace-only (`jaeger-002`, no
//! baggage) the after figures are extract 124 ns vs 260 ns, inject 99 ns vs 221 ns.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use serde_json::Value;
use tracebridge::codec::Format;
use tracebridge::model::{BaggageEntry, Hop, Sampling, SpanId, TraceContext, TraceId};

/// (format, vector id). The order is the README table's.
const CASES: &[(Format, &str)] = &[
    (Format::TraceContext, "w3c-001"),
    (Format::Baggage, "w3c-baggage-001"),
    (Format::B3, "b3-013"),
    (Format::B3Multi, "b3-003"),
    (Format::Jaeger, "jaeger-011"),
    (Format::OtTrace, "ot-002"),
    (Format::XRay, "xray-001"),
    (Format::Datadog, "datadog-001"),
    (Format::Gcp, "xcloud-001"),
    (Format::SkyWalking, "sw8-008"),
    (Format::EagleEye, "eagleeye-001"),
    (Format::GrpcTraceBin, "grpc-trace-bin-001"),
    (Format::Instana, "instana-001"),
];

/// `instana-001` of `src/codec/instana.rs` (OTel JS propagator test).
const INSTANA_001: &[(&str, &str)] = &[
    ("x-instana-t", "80f198ee56343ba864fe8b2a57d3eff7"),
    ("x-instana-s", "e457b5a2e4d86bd1"),
    ("x-instana-l", "1"),
];

/// The hop every inject continues.
const HOP: Hop<'static> = Hop {
    span_id: match SpanId::new(0x53995c3f42cd8ad8) {
        Some(s) => s,
        None => panic!("non-zero"),
    },
    service: "tracebridge",
    instance: "tracebridge-7f9c",
    endpoint: "GET /api/orders",
    peer_address: "orders.svc:8080",
    call_index: 1,
};

fn vectors() -> Vec<Value> {
    let text = include_str!("../tests/data/vectors.json");
    let doc: Value = serde_json::from_str(text).expect("vectors.json");
    doc["vectors"].as_array().expect("vectors").clone()
}

/// The headers of a vector as the proxy would hand them over (names lowercase, repeated
/// fields in order).
fn headers_of(vectors: &[Value], id: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    if id == "instana-001" {
        for (k, v) in INSTANA_001 {
            map.append(*k, HeaderValue::from_static(v));
        }
        return map;
    }
    let v = vectors
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"));
    assert_eq!(v["valid"], Value::Bool(true), "{id} is not a valid vector");
    for (name, value) in v["headers"].as_object().expect("headers") {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).expect("name");
        let values: Vec<&str> = match value {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            other => panic!("bad header value {other}"),
        };
        for v in values {
            map.append(name.clone(), HeaderValue::from_str(v).expect("value"));
        }
    }
    map
}

/// The context injected for `format`: what its vector extracts, sampled, with a 128-bit
/// trace id and two baggage entries.
fn inject_context(format: Format, headers: &HeaderMap) -> TraceContext {
    let mut ctx = format
        .extract(headers)
        .expect("valid vector")
        .unwrap_or_default();
    if ctx.trace_id.is_none_or(|t| t.high64() == 0) {
        ctx.trace_id = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736);
    }
    ctx.sampling = Sampling::Sampled;
    ctx.baggage = vec![
        BaggageEntry {
            key: "user-id".into(),
            value: "alice".into(),
            properties: String::new(),
        },
        BaggageEntry {
            key: "server-node".into(),
            value: "DF 28".into(),
            properties: String::new(),
        },
    ];
    ctx
}

/// `opentelemetry-http`'s `HeaderExtractor`, without the crate.
struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// `opentelemetry-http`'s `HeaderInjector`, without the crate.
struct Inject<'a>(&'a mut HeaderMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The OpenTelemetry propagator for `format`, where one exists without an exporter stack
/// and with the `opentelemetry` version this package links.
fn otel(format: Format) -> Option<Box<dyn TextMapPropagator>> {
    match format {
        Format::TraceContext => Some(Box::new(TraceContextPropagator::new())),
        Format::Baggage => Some(Box::new(BaggagePropagator::new())),
        Format::XRay => Some(Box::new(XrayPropagator::new())),
        _ => None,
    }
}

/// Everything one row measures, built once.
struct Case {
    format: Format,
    headers: HeaderMap,
    ctx: TraceContext,
    otel: Option<(Box<dyn TextMapPropagator>, Context)>,
}

fn cases() -> Vec<Case> {
    let vectors = vectors();
    let mut out = HeaderMap::new();
    CASES
        .iter()
        .map(|&(format, id)| {
            let headers = headers_of(&vectors, id);
            let ctx = inject_context(format, &headers);
            let otel = otel(format).map(|p| {
                let cx = if format == Format::Baggage {
                    let mut h = HeaderMap::new();
                    h.insert(
                        "baggage",
                        HeaderValue::from_static("user-id=alice,server-node=DF%2028"),
                    );
                    p.extract(&Extract(&h))
                } else {
                    p.extract(&Extract(&headers))
                };
                (p, cx)
            });
            // Both sides produce what the row claims to measure.
            assert!(matches!(format.extract(&headers), Ok(Some(_))), "{id}");
            out.clear();
            format.inject(&ctx, &HOP, &mut out);
            assert!(!out.is_empty(), "{format}: inject wrote nothing");
            if let Some((p, cx)) = &otel {
                out.clear();
                p.inject_context(cx, &mut Inject(&mut out));
                assert!(!out.is_empty(), "{format}: OTel inject wrote nothing");
            }
            Case {
                format,
                headers,
                ctx,
                otel,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut out = HeaderMap::with_capacity(32);
    for case in cases() {
        let Case {
            format,
            headers,
            ctx,
            otel,
        } = &case;
        let format = *format;

        let mut g = c.benchmark_group(format!("extract/{format}"));
        g.bench_function(BenchmarkId::from_parameter("tracebridge"), |b| {
            b.iter(|| format.extract(black_box(headers)))
        });
        if let Some((p, _)) = otel {
            g.bench_function(BenchmarkId::from_parameter("otel"), |b| {
                b.iter(|| p.extract(&Extract(black_box(headers))))
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("inject/{format}"));
        g.bench_function(BenchmarkId::from_parameter("tracebridge"), |b| {
            b.iter(|| {
                out.clear();
                format.inject(black_box(ctx), black_box(&HOP), &mut out)
            })
        });
        if let Some((p, cx)) = otel {
            g.bench_function(BenchmarkId::from_parameter("otel"), |b| {
                b.iter(|| {
                    out.clear();
                    p.inject_context(black_box(cx), &mut Inject(&mut out))
                })
            });
        }
        g.finish();
    }
}

/// `CODECS_PROFILE="inject/skywalking 100000"` runs that many iterations of one row's
/// tracebridge side and nothing else (`extract/tracecontext/otel 100000`: the
/// OpenTelemetry side), for `valgrind --tool=callgrind --toggle-collect='*profile_*'`
/// (instruction counts divided by the iterations are stable on a noisy machine where
/// times are not) or `perf stat -e task-clock` (CPU time, which unlike wall time does not
/// count the time other processes hold the cores).
fn profile(spec: &str) {
    let (row, n) = spec
        .split_once(' ')
        .expect("\"<direction>/<format>[/otel] <iterations>\"");
    let n: u64 = n.trim().parse().expect("iterations");
    let mut parts = row.split('/');
    let (Some(direction), Some(format)) = (parts.next(), parts.next()) else {
        panic!("<direction>/<format>[/otel]");
    };
    let side = parts.next().unwrap_or("tracebridge");
    let format: Format = format.parse().expect("format");
    let case = cases()
        .into_iter()
        .find(|c| c.format == format)
        .expect("a row for that format");
    match (direction, side) {
        ("extract", "tracebridge") => profile_extract(&case, n),
        ("inject", "tracebridge") => profile_inject(&case, n),
        ("extract", "otel") => profile_otel_extract(&case, n),
        ("inject", "otel") => profile_otel_inject(&case, n),
        other => panic!("{other:?}: extract or inject, tracebridge or otel"),
    }
}

#[inline(never)]
fn profile_extract(case: &Case, n: u64) {
    for _ in 0..n {
        black_box(case.format.extract(black_box(&case.headers)).ok());
    }
}

#[inline(never)]
fn profile_inject(case: &Case, n: u64) {
    let mut out = HeaderMap::with_capacity(32);
    for _ in 0..n {
        out.clear();
        black_box(
            case.format
                .inject(black_box(&case.ctx), black_box(&HOP), &mut out),
        );
    }
}

#[inline(never)]
fn profile_otel_extract(case: &Case, n: u64) {
    let (p, _) = case.otel.as_ref().expect("an OpenTelemetry propagator");
    for _ in 0..n {
        black_box(p.extract(&Extract(black_box(&case.headers))));
    }
}

#[inline(never)]
fn profile_otel_inject(case: &Case, n: u64) {
    let (p, cx) = case.otel.as_ref().expect("an OpenTelemetry propagator");
    let mut out = HeaderMap::with_capacity(32);
    for _ in 0..n {
        out.clear();
        p.inject_context(black_box(cx), &mut Inject(&mut out));
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("CODECS_PROFILE") {
        profile(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
