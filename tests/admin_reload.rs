//! `POST /reload` runs the reload off the admin service's one thread: `/healthz` keeps
//! answering while a large config loads.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, TestGateway};
use tracebridge::config::validate::MAX_ROUTES;

const HEADER: &str = r#"
[server]
listen = ["{listen}"]
admin_listen = "{admin}"
threads = 1
"#;

/// A valid config about as large as the limits allow (`MAX_ROUTES` routes, each with its
/// own upstream and override tables; under `MAX_FILE_BYTES`): loading it takes seconds
/// on a debug build, the honest slow reload (file read, parse, validation of every key,
/// compile of the router and upstreams).
fn large_config() -> String {
    let mut text = HEADER.to_string();
    for i in 0..MAX_ROUTES {
        let net = i % 256;
        text.push_str(&format!(
            r#"[upstreams.u{i}]
kind = "echo"
propagation = {{ trusted_networks = ["10.{net}.0.0/16"] }}
[[routes]]
name = "r{i}"
path_prefix = "/p{i}"
upstream = "u{i}"
methods = ["GET"]
header = {{ name = "x-tenant", value = "t{i}" }}
propagation = {{ extract = ["b3", "tracecontext"], inject = ["preserve", "b3"], trust = "restart", trusted_networks = ["10.0.0.0/8"] }}
sampling = {{ strategy = "ratio", ratio = 0.5 }}
"#
        ));
    }
    text
}

#[test]
fn healthz_answers_while_a_slow_reload_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let small = format!("{HEADER}[upstreams.e]\nkind = \"echo\"\n[[routes]]\nupstream = \"e\"\n");
    let gw = TestGateway::start_file(&path, &small);
    let large = gw.render(&large_config());
    assert!(
        large.len() as u64 <= tracebridge::config::MAX_FILE_BYTES,
        "{} bytes",
        large.len()
    );
    std::fs::write(&path, large).unwrap();

    let url = gw.admin_url("/reload");
    let reloading = std::thread::spawn(move || {
        let started = Instant::now();
        let resp = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap()
            .post(url)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().unwrap()).unwrap_or(Value::Null);
        (status, body, started.elapsed())
    });

    // Ask `/healthz` until the reload has answered (bounded in count and time).
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut latencies = Vec::new();
    while !reloading.is_finished() && Instant::now() < deadline && latencies.len() < 100_000 {
        let started = Instant::now();
        let ok = client()
            .get(gw.admin_url("/healthz"))
            .send()
            .is_ok_and(|r| r.status() == 200);
        latencies.push((started.elapsed(), ok));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body, took) = reloading.join().unwrap();
    // The file watcher may have taken the new text first (the POST then waits for it
    // on the reload lock, off the admin thread all the same, and finds it unchanged).
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.handle.load().router.len(), MAX_ROUTES);

    // `/healthz` answers in about a millisecond; queued behind the reload it would wait
    // about as long as the reload. A quarter of the reload (and at most a second) tells
    // the two apart on a fast machine as on one busy with other builds.
    let bound = (took / 4).min(Duration::from_secs(1));
    let slowest = latencies.iter().map(|(d, _)| *d).max().unwrap_or_default();
    eprintln!(
        "reload took {took:?}; /healthz answered {} times meanwhile, slowest {slowest:?}",
        latencies.len()
    );
    assert!(
        slowest < bound,
        "/healthz took {slowest:?} while the reload ran ({took:?} in all)"
    );
    assert!(
        latencies.iter().all(|(_, ok)| *ok),
        "a /healthz failed during the reload"
    );
    assert!(latencies.len() >= 3, "only {} probes", latencies.len());
}
