//! What an operator sees, through the real gateway: failures in the log (a dead OTLP
//! collector, a dead health-checked peer, a 502), the metrics an operator expects, the
//! admin index, and the OpenTelemetry environment variables (through the built binary,
//! since the environment is process-wide).

mod support;

use std::net::SocketAddr;
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime};

use support::{
    client, free_port, one_route, poll_until, CollectorMode, Origin, OtlpReceiver, StallingOrigin,
    TestGateway,
};

/// Every log line of this test binary, as `LEVEL target: message`. Tests run in
/// threads of one process and share the logger, so each test looks only at the lines
/// that name its own ports or paths.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            LINES.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&CAPTURE).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The captured lines containing `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// The value of the first sample line starting with `series ` in a metrics page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn metrics(gw: &TestGateway) -> String {
    client()
        .get(gw.admin_url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// Item 4: failures are logged, once.
// ---------------------------------------------------------------------------------

#[test]
fn a_dead_collector_is_logged_when_it_fails_and_once_more_when_it_recovers() {
    capture_logs();
    let origin = Origin::start("o");
    let collector: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let endpoint = format!("http://{collector}");
    let telemetry = format!(
        "[telemetry]\nexporter = \"otlp\"\nendpoint = \"{endpoint}\"\nbatch_size = 1\n\
         batch_delay = \"5ms\"\ntimeout = \"2s\"\n"
    );
    let gw = TestGateway::start(&one_route(origin.addr, 1, &telemetry, ""));
    let http = client();
    let failed_calls = |gw: &TestGateway| {
        sample(
            &metrics(gw),
            "tracebridge_spans_dropped_total{reason=\"export_failed\"}",
        )
        .unwrap_or(0.0)
    };
    // Six spans, one export call each (batch_size = 1), each refused.
    for _ in 0..6 {
        assert_eq!(http.get(gw.url("/")).send().unwrap().status(), 200);
    }
    poll_until(Duration::from_secs(10), || {
        let n = failed_calls(&gw);
        (n >= 6.0).then_some(()).ok_or(format!("{n} spans dropped"))
    });
    let ours = format!("span export to {endpoint}/v1/traces");
    let lines = lines_with(&ours);
    assert_eq!(lines.len(), 1, "one line for six failed calls: {lines:#?}");
    assert!(lines[0].starts_with("WARN "), "{}", lines[0]);
    assert!(lines[0].contains(" failing: no answer ("), "{}", lines[0]);
    assert!(lines[0].contains("refused"), "the root cause: {}", lines[0]);

    // The collector comes back on the same address.
    let receiver = OtlpReceiver::start_on(collector, CollectorMode::Ok).expect("rebind collector");
    poll_until(Duration::from_secs(10), || {
        http.get(gw.url("/")).send().map_err(|e| e.to_string())?;
        (receiver.span_count() > 0)
            .then_some(())
            .ok_or("no span arrived yet".to_string())
    });
    let lines = poll_until(Duration::from_secs(5), || {
        let lines = lines_with(&ours);
        (lines.len() >= 2)
            .then_some(lines.clone())
            .ok_or(format!("{lines:#?}"))
    });
    // More successful exports: nothing more.
    for _ in 0..3 {
        http.get(gw.url("/")).send().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lines_with(&ours), lines, "quiet once recovered");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].starts_with("INFO "), "{}", lines[1]);
    assert!(lines[1].contains(" recovered after "), "{}", lines[1]);
    assert!(lines[1].contains("failed meanwhile"), "{}", lines[1]);
}

#[test]
fn a_502_after_a_retry_is_logged_once() {
    capture_logs();
    let dead: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let gw = TestGateway::start(&one_route(dead, 1, "", ""));
    let path = format!("/logged-once-{}", gw.port);
    let r = client().get(gw.url(&path)).send().unwrap();
    assert_eq!(r.status(), 502);
    // GET is idempotent: the connect failure was retried once (two attempts), and
    // pingora's warning about the retried attempt no longer comes on top.
    let lines = lines_with(&path);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("status=502 tries=2"), "{}", lines[0]);
}

#[test]
fn a_failing_health_check_logs_one_short_line() {
    capture_logs();
    let dead: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    // A TCP health check every 50 ms on a peer that refuses connections.
    let text = one_route(dead, 1, "", "").replace(
        "[[routes]]",
        "[upstreams.origin.health_check]\ninterval = \"50ms\"\n[[routes]]",
    );
    let gw = TestGateway::start(&text);
    let needle = format!("peer {dead} ");
    let first = poll_until(Duration::from_secs(10), || {
        lines_with(&needle)
            .into_iter()
            .next()
            .ok_or("no health line yet".to_string())
    });
    // Several more checks fail; pingora logs only the flip.
    std::thread::sleep(Duration::from_millis(400));
    let lines = lines_with(&dead.to_string());
    assert_eq!(lines, vec![first.clone()], "one line per flip");
    assert!(
        first.contains(&format!("upstream origin peer {dead} becomes unhealthy, ")),
        "{first}"
    );
    assert!(
        first.ends_with("Connection refused (os error 111)"),
        "{first}"
    );
    assert!(first.len() < 200, "no peer dump: {first}");
    assert_eq!(
        client().get(gw.url("/")).send().unwrap().status(),
        502,
        "no healthy peer"
    );
}

// ---------------------------------------------------------------------------------
// Item 5: the metrics an operator expects, and the admin index.
// ---------------------------------------------------------------------------------

#[test]
fn metrics_show_process_build_upstream_in_flight_peer_health_and_reload_state() {
    let origin = Origin::start("o");
    let slow = StallingOrigin::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let template = format!(
        "{}\n[upstreams.origin.health_check]\ninterval = \"50ms\"\n\
         [upstreams.slow]\npeers = [\"{}\"]\nread_timeout = \"1s\"\n\
         [[routes]]\nname = \"slow\"\npath_prefix = \"/slow\"\nupstream = \"slow\"\n",
        one_route(origin.addr, 2, "", ""),
        slow.addr
    );
    let gw = TestGateway::start_file(&path, &template);
    let http = client();
    assert_eq!(http.get(gw.url("/")).send().unwrap().status(), 200);
    // A request held by the stalling origin is in flight until its read timeout.
    let held = {
        let url = gw.url("/slow");
        std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()))
    };
    let page = poll_until(Duration::from_secs(5), || {
        let page = metrics(&gw);
        (sample(&page, "tracebridge_requests_in_flight") == Some(1.0))
            .then_some(page.clone())
            .ok_or(format!("in flight never 1:\n{page}"))
    });
    assert_eq!(held.join().unwrap().unwrap(), 504);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &page,
            &format!("tracebridge_build_info{{version=\"{version}\"}}")
        ),
        Some(1.0)
    );
    // The prometheus crate counts CPU in whole seconds: present, maybe still 0.
    assert!(
        sample(&page, "process_cpu_seconds_total").is_some(),
        "{page}"
    );
    for family in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let v = sample(&page, family).unwrap_or_else(|| panic!("{family} missing:\n{page}"));
        assert!(v > 0.0, "{family} = {v}");
    }
    assert_eq!(
        sample(&page, "tracebridge_upstream_peers{upstream=\"origin\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            "tracebridge_upstream_peers_healthy{upstream=\"origin\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "tracebridge_config_last_reload_successful"),
        Some(1.0)
    );
    let loaded = sample(
        &page,
        "tracebridge_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - 60.0..=now).contains(&loaded), "{loaded} vs {now}");

    let page = poll_until(Duration::from_secs(5), || {
        let page = metrics(&gw);
        (sample(&page, "tracebridge_requests_in_flight") == Some(0.0))
            .then_some(page.clone())
            .ok_or(format!("in flight never back to 0:\n{page}"))
    });
    assert_eq!(
        sample(
            &page,
            "tracebridge_upstream_request_duration_seconds_count{status_class=\"2xx\",upstream=\"origin\"}"
        ),
        Some(1.0),
        "{page}"
    );
    // The stalled request: the gateway's 504, after about the 1 s read timeout.
    assert_eq!(
        sample(
            &page,
            "tracebridge_upstream_request_duration_seconds_count{status_class=\"5xx\",upstream=\"slow\"}"
        ),
        Some(1.0),
        "{page}"
    );
    let slow_sum = sample(
        &page,
        "tracebridge_upstream_request_duration_seconds_sum{status_class=\"5xx\",upstream=\"slow\"}",
    )
    .unwrap();
    assert!((0.9..5.0).contains(&slow_sum), "{slow_sum}");

    // A rejected reload: 0 until a good one; the timestamp stays the serving config's.
    std::fs::write(&path, "[server\n").unwrap();
    let r = http.post(gw.admin_url("/reload")).send().unwrap();
    assert_eq!(r.status(), 400);
    let page = metrics(&gw);
    assert_eq!(
        sample(&page, "tracebridge_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &page,
            "tracebridge_config_last_reload_success_timestamp_seconds"
        ),
        Some(loaded)
    );
    // The origin goes away: its peer turns unhealthy on the page.
    drop(origin);
    poll_until(Duration::from_secs(5), || {
        let page = metrics(&gw);
        (sample(
            &page,
            "tracebridge_upstream_peers_healthy{upstream=\"origin\"}",
        ) == Some(0.0))
        .then_some(())
        .ok_or(format!("peer still healthy:\n{page}"))
    });
    // A new text (not byte-for-byte the serving one, which a reload would skip).
    std::fs::write(&path, gw.render(&template) + "# fixed\n").unwrap();
    // The watcher may reload it first; either way the next page says 1.
    let _ = http.post(gw.admin_url("/reload")).send().unwrap();
    let page = poll_until(Duration::from_secs(5), || {
        let page = metrics(&gw);
        (sample(&page, "tracebridge_config_last_reload_successful") == Some(1.0))
            .then_some(page.clone())
            .ok_or(page.to_string())
    });
    assert!(
        sample(
            &page,
            "tracebridge_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > loaded
    );
}

#[test]
fn the_admin_index_lists_every_endpoint() {
    let origin = Origin::start("o");
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let r = client().get(gw.admin_url("/")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let body = r.text().unwrap();
    for endpoint in [
        "GET  /healthz",
        "GET  /readyz",
        "GET  /metrics",
        "GET  /config",
        "POST /reload",
        "GET  /coverage",
    ] {
        assert!(body.contains(endpoint), "{endpoint} missing:\n{body}");
    }
    // Every path listed answers (POST /reload aside).
    for line in body.lines().filter(|l| l.starts_with("GET ")) {
        let path = line.split_whitespace().nth(1).unwrap();
        let status = client().get(gw.admin_url(path)).send().unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
}
