//! Reload cost and routing cost at scale.
//!
//! - reload: a config with 1,000 routes and 200 upstreams, read → parse → validate →
//!   compile → swap (`ConfigHandle::reload` on a file whose content alternates, so every
//!   iteration really swaps). Target ≤ 50 ms.
//! - routing: `Router::find` for a request with 1,000 routes (100 hosts × 10 path
//!   prefixes) against the same request with 1 route. Target ratio ≤ 1.2.
//!
//! Run: `cargo bench --bench reload`. Machine and results: README, performance section.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method};
use tracebridge::config;
use tracebridge::reload::ConfigHandle;

fn big_config(variant: u32) -> String {
    let mut t = String::from(
        "[server]\nlisten = [\"127.0.0.1:18080\"]\nadmin_listen = \"127.0.0.1:19901\"\n\
         [telemetry]\nexporter = \"none\"\n",
    );
    for u in 0..200 {
        t.push_str(&format!(
            "[upstreams.u{u}]\npeers = [\"127.0.0.1:{}\"]\nread_timeout = \"{}s\"\n",
            20000 + u,
            30 + variant
        ));
    }
    for r in 0..1000 {
        t.push_str(&format!(
            "[[routes]]\nname = \"r{r}\"\nhost = \"h{}.example.com\"\npath_prefix = \"/p{}\"\nupstream = \"u{}\"\n",
            r / 10,
            r % 10,
            r % 200
        ));
    }
    t
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.toml");
    std::fs::write(&path, big_config(0)).expect("write");
    let snapshot = config::load_file(&path, 1).expect("valid");
    let handle = ConfigHandle::new(snapshot, Some(path.clone()));
    let (a, b) = (big_config(1), big_config(2));
    let mut flip = false;
    c.bench_function(
        "reload: 1000 routes, 200 upstreams (read to swap)",
        |bench| {
            bench.iter(|| {
                flip = !flip;
                std::fs::write(&path, if flip { &a } else { &b }).expect("write");
                black_box(handle.reload().expect("reload"))
            })
        },
    );

    let headers = HeaderMap::new();
    let big = handle.load();
    let one = config::load_str(
        "[upstreams.u]\npeers = [\"127.0.0.1:20000\"]\n[[routes]]\nhost = \"h57.example.com\"\n\
         path_prefix = \"/p7\"\nupstream = \"u\"\n[telemetry]\nexporter = \"none\"\n",
        None,
        1,
    )
    .expect("valid");
    let mut group = c.benchmark_group("routing");
    group.bench_function("1 route", |bench| {
        bench.iter(|| {
            black_box(one.router.find(
                black_box(Some("h57.example.com")),
                black_box("/p7/items/1"),
                &Method::GET,
                &headers,
            ))
        })
    });
    group.bench_function("1000 routes", |bench| {
        bench.iter(|| {
            black_box(big.router.find(
                black_box(Some("h57.example.com")),
                black_box("/p7/items/1"),
                &Method::GET,
                &headers,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
