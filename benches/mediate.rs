//! The mediation step alone, in-process, no network: extract (b3 in), start the
//! gateway span (100% sampled, written as OTLP protobuf into the gateway's own export
//! queue, as with the default OTLP/HTTP exporter, then discarded), inject
//! three formats (tracecontext, b3multi, jaeger) into a request header map, end the
//! span. Target: ≤ 2 µs per request. Also counts heap allocations per request with a
//! counting global allocator and prints them.
//!
//! Run: `cargo bench --bench mediate`
//! Machine and baseline: see the README's performance section.

use std::alloc::{GlobalAlloc, Layout};

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tikv_jemallocator::Jemalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use tracebridge::codec::Format;
use tracebridge::config::spec::{DegradationSettings, QueueSettings};
use tracebridge::mediate::Policy;
use tracebridge::proxy::trace::RequestTrace;
use tracebridge::telemetry::otlp_http::EncodedSpans;
use tracebridge::telemetry::pipeline::{Batch, BatchExport, QueueProcessor};
use tracebridge::telemetry::tracer::Identity;
use tracebridge::telemetry::{Metrics, RequestFacts, Telemetry};

/// Counts allocations, on top of the allocator the `tracebridge` binary uses (jemalloc).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { Jemalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { Jemalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { Jemalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Takes the encoded batches off the queue and drops them.
#[derive(Debug)]
struct Discard;

impl BatchExport for Discard {
    type Batch = EncodedSpans;

    fn export(&mut self, batch: &mut EncodedSpans) -> (u64, u64) {
        let n = black_box(&*batch).len() as u64;
        batch.clear();
        (n, 0)
    }

    fn shutdown(&mut self) {}
}

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("api.example.com"));
    h.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    h.insert("accept", HeaderValue::from_static("*/*"));
    h.insert(
        "b3",
        HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    );
    h
}

fn bench(c: &mut Criterion) {
    let identity = Identity {
        service_name: "tracebridge".into(),
        service_instance: "bench".into(),
        host_name: "bench".into(),
        extra: vec![],
    };
    let queue = QueueSettings {
        queue_size: 2048,
        batch_size: 512,
        batch_delay: std::time::Duration::from_millis(100),
    };
    // As the gateway builds it with the default OTLP/HTTP exporter: the span is
    // written as OTLP bytes straight into the queue (`Telemetry::with_otlp_queues`).
    let mut handle = None;
    let telemetry = Telemetry::new(
        &identity,
        0.0,
        DegradationSettings::default(),
        |b, _, stats| {
            let processor = QueueProcessor::start(queue, stats, || Some(Discard));
            handle = Some(processor.handle());
            b.with_span_processor(processor)
        },
    );
    let telemetry = telemetry.with_otlp_queues(handle.into_iter().collect());
    let metrics = Metrics::new().expect("metrics");
    let policy = Arc::new(Policy {
        inject: vec![Format::TraceContext, Format::B3Multi, Format::Jaeger],
        preserve: false,
        ..Policy::default()
    });
    let incoming = request_headers();
    let (route, template, upstream): (Arc<str>, Arc<str>, Arc<str>) =
        ("orders".into(), "/orders".into(), "orders".into());
    // Built per request, as the proxy does (the client address text is the
    // connection's, formatted once).
    let client: Arc<str> = "127.0.0.1".into();
    let facts = || RequestFacts {
        method: "GET",
        path: "/orders/42",
        scheme: "http",
        server_address: Some("api.example.com"),
        server_port: Some(8080),
        client_address: Some(&client),
        client_ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        protocol_version: "1.1",
        user_agent: Some("bench/1.0"),
        route: &route,
        route_template: Some(&template),
        upstream: &upstream,
    };
    let peer: Arc<str> = "10.0.0.7:8080".into();
    let once = |out: &mut HeaderMap| {
        let mut trace =
            RequestTrace::begin(policy.clone(), &incoming, facts(), &telemetry, &metrics);
        trace.inject(out, &telemetry, "10.0.0.7:8080", &metrics);
        trace.finish(200, None, Some(&peer));
    };

    // Instruction counts, stable on a noisy machine:
    // MEDIATE_ITERATIONS=20000 valgrind --tool=callgrind target/release/deps/mediate-<hash>
    // runs the whole mediation that many times and exits without criterion.
    if let Some(n) = std::env::var("MEDIATE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        for _ in 0..n {
            let mut out = request_headers();
            once(&mut out);
            black_box(&out);
        }
        telemetry.shutdown();
        return;
    }
    // Allocations of one request, outside the timing loop.
    let mut out = request_headers();
    once(&mut out);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let rounds = 1000;
    for _ in 0..rounds {
        let mut out = request_headers();
        let base = ALLOCATIONS.load(Ordering::Relaxed);
        once(&mut out);
        black_box(&out);
        // Exclude the header map clone itself.
        let _ = base;
    }
    let total = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let header_map_allocs = {
        let b = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..rounds {
            black_box(request_headers());
        }
        ALLOCATIONS.load(Ordering::Relaxed) - b
    };
    println!(
        "allocations per mediated request: {:.1} (excluding the request header map itself)",
        (total - header_map_allocs) as f64 / rounds as f64
    );

    c.bench_function(
        "mediate: b3 in, span, tracecontext+b3multi+jaeger out",
        |b| {
            b.iter_batched_ref(
                request_headers,
                |out| once(out),
                criterion::BatchSize::SmallInput,
            )
        },
    );
    // The parts, to see where the time goes.
    c.bench_function("part: extract + plan", |b| {
        b.iter(|| black_box(tracebridge::mediate::plan(&policy, &incoming)))
    });
    let trace = RequestTrace::begin(policy.clone(), &incoming, facts(), &telemetry, &metrics);
    c.bench_function("part: inject 3 formats + strip", |b| {
        let mut trace =
            RequestTrace::begin(policy.clone(), &incoming, facts(), &telemetry, &metrics);
        b.iter_batched_ref(
            request_headers,
            |out| trace.inject(out, &telemetry, "10.0.0.7:8080", &metrics),
            criterion::BatchSize::SmallInput,
        )
    });
    drop(trace);
    c.bench_function("part: begin (plan + span start) + finish", |b| {
        b.iter(|| {
            let mut trace =
                RequestTrace::begin(policy.clone(), &incoming, facts(), &telemetry, &metrics);
            trace.finish(200, None, Some(&peer));
        })
    });
    telemetry.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
