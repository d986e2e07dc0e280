//! What recording one request in the coverage view costs on the request path
//! (`Coverage::record`, called once per request in the logging phase): a route of an
//! 8-route config, a `tracecontext` context in, `tracecontext` + `baggage` out. Target:
//! well under 100 ns per request.
//!
//! - `uncontended`: one thread;
//! - `with invalid + conflict`: the extra (shared) counters of a messy request;
//! - `unrouted`: a request that matched no route (the counting only; the extraction a
//!   404 gets is the mediation bench's business);
//! - `busy thread on another route`: a second thread records on another route all the
//!   while: what sharing the two vCPUs costs by itself;
//! - `contended`: the second thread records on the same route (each thread adds to its
//!   own shard of the route's counters, so this should match the line above).
//!
//! Run: `cargo bench --bench coverage`
//!
//! Machine: 2-vCPU KVM guest (AMD EPYC, 1 thread per core), shared with other builds
//! (load average ≈ 3 during the run); release profile.
//! Baseline (criterion median): uncontended 20 ns, with invalid + conflict 26 ns,
//! unrouted 11 ns, busy thread on another route 40 ns, contended 36 ns. On the same
//! machine under load average ≈ 7 the numbers roughly doubled (contended ≈ 60-97 ns:
//! CPU oversubscription, the other-route line rose as much).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tracebridge::codec::{Format, FormatSet};
use tracebridge::config;
use tracebridge::telemetry::coverage::{Coverage, Observation};

fn snapshot() -> config::Snapshot {
    let mut text = String::from("[upstreams.demo]\nkind = \"echo\"\n");
    for i in 0..8 {
        text.push_str(&format!(
            "[[routes]]\nname = \"route{i}\"\npath_prefix = \"/r{i}\"\nupstream = \"demo\"\n"
        ));
    }
    config::load_str(&text, None, 1).expect("config")
}

fn set(formats: &[Format]) -> FormatSet {
    let mut s = FormatSet::default();
    for f in formats {
        s.insert(*f);
    }
    s
}

fn bench(c: &mut Criterion) {
    let snapshot = Arc::new(snapshot());
    let coverage = Arc::new(Coverage::new());
    let typical = Observation {
        incoming: Some(Format::TraceContext),
        injected: set(&[Format::TraceContext, Format::Baggage]),
        ..Observation::default()
    };
    let messy = Observation {
        incoming: Some(Format::TraceContext),
        invalid: set(&[Format::B3]),
        conflicts: 1,
        injected: set(&[Format::TraceContext, Format::Baggage]),
        preflight: false,
        ..Observation::default()
    };
    // The first request of a generation builds its table: keep it out of the timing.
    coverage.record(&snapshot, Some(3), &typical);

    c.bench_function("coverage record: uncontended", |b| {
        b.iter(|| coverage.record(black_box(&snapshot), black_box(Some(3)), &typical))
    });
    c.bench_function("coverage record: with invalid + conflict", |b| {
        b.iter(|| coverage.record(black_box(&snapshot), black_box(Some(3)), &messy))
    });
    c.bench_function("coverage record: unrouted", |b| {
        b.iter(|| coverage.record(black_box(&snapshot), black_box(None), &typical))
    });

    // A second thread records all the while: on another route (what sharing two
    // vCPUs costs by itself), then on the same route (the counters' share on top).
    for (name, other_route) in [
        ("coverage record: busy thread on another route", 5),
        (
            "coverage record: contended (busy thread on the same route)",
            3,
        ),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let other = {
            let (stop, coverage, snapshot) = (stop.clone(), coverage.clone(), snapshot.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1000 {
                        coverage.record(&snapshot, Some(other_route), &typical);
                    }
                }
            })
        };
        c.bench_function(name, |b| {
            b.iter(|| coverage.record(black_box(&snapshot), black_box(Some(3)), &typical))
        });
        stop.store(true, Ordering::Relaxed);
        let _ = other.join();
    }
    black_box(coverage.report());
}

criterion_group!(benches, bench);
criterion_main!(benches);
