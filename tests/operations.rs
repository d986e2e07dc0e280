//! What an operator sees, through the real gateway: failures in the log (a dead OTLP
//! collector, a dead health-checked peer, a 502), the metrics an operator expects, the
//! admin index, and the OpenTelemetry environment variables (through the built binary,
//! since the environment is process-wide).

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use support::{
    client, free_port, one_route, poll_until, CollectorMode, Origin, OtlpReceiver, StallingOrigin,
    TestGateway, DEAD_PORT,
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
fn a_collector_answering_500_is_logged_with_its_status_once() {
    capture_logs();
    let origin = Origin::start("o");
    let receiver = OtlpReceiver::start(CollectorMode::Fail);
    let endpoint = format!("http://{}", receiver.addr);
    let telemetry = format!(
        "[telemetry]\nexporter = \"otlp\"\nendpoint = \"{endpoint}\"\nbatch_size = 1\n\
         batch_delay = \"5ms\"\n"
    );
    let gw = TestGateway::start(&one_route(origin.addr, 1, &telemetry, ""));
    let http = client();
    poll_until(Duration::from_secs(10), || {
        http.get(gw.url("/")).send().map_err(|e| e.to_string())?;
        (receiver.request_count() >= 4)
            .then_some(())
            .ok_or("fewer than 4 export calls".to_string())
    });
    let ours = format!("span export to {endpoint}/v1/traces");
    let lines = poll_until(Duration::from_secs(5), || {
        let lines = lines_with(&ours);
        (!lines.is_empty())
            .then_some(lines.clone())
            .ok_or("no line".to_string())
    });
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(" failing: the collector answered 500 Internal Server Error;"),
        "{}",
        lines[0]
    );
    receiver.set_mode(CollectorMode::Ok);
    poll_until(Duration::from_secs(10), || {
        http.get(gw.url("/")).send().map_err(|e| e.to_string())?;
        let lines = lines_with(&ours);
        (lines.len() == 2 && lines[1].contains(" recovered after "))
            .then_some(())
            .ok_or(format!("{lines:#?}"))
    });
}

#[test]
fn a_502_after_a_retry_is_logged_once() {
    capture_logs();
    let dead: SocketAddr = ([127, 0, 0, 1], DEAD_PORT).into();
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
    // An address of its own (all of 127/8 is loopback): the log lines are found by it,
    // and other tests' requests to 127.0.0.1's dead port log too.
    let dead: SocketAddr = ([127, 0, 0, 2], DEAD_PORT).into();
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
    // The peer comes back (a TCP check only needs the connect): one more line.
    let _listener = std::net::TcpListener::bind(dead).expect("rebind the peer's port");
    let back = poll_until(Duration::from_secs(10), || {
        let lines = lines_with(&dead.to_string());
        (lines.len() >= 2)
            .then(|| lines[1].clone())
            .ok_or(format!("{lines:#?}"))
    });
    assert!(
        back.ends_with(&format!("upstream origin peer {dead} becomes healthy")),
        "{back}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines_with(&dead.to_string()).len(), 2);
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

// ---------------------------------------------------------------------------------
// Item 6: the OpenTelemetry environment variables, and `translate --config`. The
// environment is process-wide, so these run the built binary with its own.
// ---------------------------------------------------------------------------------

/// The built binary running a gateway; killed when dropped.
struct Binary {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts `tracebridge --config` on `sections` (more TOML after `[server]`) with
    /// every request routed to `origin`, and `env` set. Waits for `/readyz`.
    fn start(origin: SocketAddr, sections: &str, env: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n\
                 threads = 1\npid_file = \"{pid}\"\nupgrade_sock = \"{sock}\"\n\
                 [telemetry]\nexporter = \"none\"\n{sections}\n\
                 [upstreams.origin]\npeers = [\"{origin}\"]\n[[routes]]\nname = \"main\"\nupstream = \"origin\"\n",
                pid = dir.path().join("pid").display(),
                sock = dir.path().join("upgrade.sock").display(),
            ),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tracebridge"));
        command
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for var in [
            "OTEL_PROPAGATORS",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let child = command.spawn().expect("spawn tracebridge");
        let mut binary = Binary {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = client()
                .get(format!("http://127.0.0.1:{admin}/readyz"))
                .send()
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return binary;
            }
            if let Ok(Some(status)) = binary.child.try_wait() {
                panic!("gateway exited: {status}");
            }
            assert!(Instant::now() < deadline, "gateway not ready after 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The headers the origin received for a GET with `headers`.
    fn forwarded(&self, headers: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
        let mut req = client().get(format!("http://127.0.0.1:{}/", self.port));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body: serde_json::Value = req.send().unwrap().json().unwrap();
        body["headers"].as_object().unwrap().clone()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const B3_TRACE: &str = "a3ce929d0e0e47364bf92f3577b34da6";

fn header<'a>(h: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.as_str())
}

#[test]
fn otel_propagators_and_sampler_set_the_defaults_when_the_file_has_none() {
    let origin = Origin::start("o");
    let gw = Binary::start(
        origin.addr,
        "",
        &[
            ("OTEL_PROPAGATORS", "b3multi,jaeger"),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ],
    );
    // traceparent is not in the extract list: a new root, unsampled
    // (parentbased_always_off), written as b3multi and jaeger only.
    let h = gw.forwarded(&[("traceparent", TRACEPARENT)]);
    assert_eq!(header(&h, "traceparent"), None, "stripped: {h:?}");
    let trace = header(&h, "x-b3-traceid").expect("b3multi written");
    assert_ne!(trace, TRACE, "not continued from traceparent");
    assert_eq!(header(&h, "x-b3-sampled"), Some("0"), "{h:?}");
    let uber = header(&h, "uber-trace-id").expect("jaeger written");
    assert!(
        uber.starts_with(&format!("{trace}:")) && uber.ends_with(":0"),
        "{uber}"
    );
    // A sampled B3 parent is continued and its decision honoured (parent-based).
    let h = gw.forwarded(&[
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "1"),
    ]);
    assert_eq!(header(&h, "x-b3-traceid"), Some(B3_TRACE));
    assert_eq!(header(&h, "x-b3-sampled"), Some("1"));
    assert!(header(&h, "uber-trace-id").unwrap().starts_with(B3_TRACE));
    assert_eq!(header(&h, "traceparent"), None);
}

#[test]
fn a_key_in_the_file_wins_over_the_otel_environment() {
    let origin = Origin::start("o");
    let gw = Binary::start(
        origin.addr,
        "[propagation]\ninject = [\"tracecontext\"]\n[sampling]\nstrategy = \"always\"\n",
        &[
            ("OTEL_PROPAGATORS", "b3multi,jaeger"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    // extract is not in the file: the environment's order (b3multi before the
    // default's tracecontext) picks the B3 trace; inject and the strategy are in the
    // file: only traceparent is written, sampled.
    let h = gw.forwarded(&[
        ("traceparent", TRACEPARENT),
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "0"),
    ]);
    let tp = header(&h, "traceparent").expect("tracecontext written");
    assert!(tp.starts_with(&format!("00-{B3_TRACE}-")), "{tp}");
    assert!(tp.ends_with("-01"), "strategy = always from the file: {tp}");
    assert_eq!(header(&h, "x-b3-traceid"), None, "{h:?}");
    assert_eq!(header(&h, "uber-trace-id"), None, "{h:?}");
}

/// `tracebridge translate --config FILE ARGS...` with `env`: exit code and stdout.
fn translate(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracebridge"));
    command
        .arg("translate")
        .arg("--config")
        .arg(config)
        .args(args);
    for var in [
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    ] {
        command.env_remove(var);
    }
    let out = command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn translate_with_a_config_simulates_the_route() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let mut file = std::fs::File::create(&path).unwrap();
    write!(
        file,
        "[propagation]\ninject = [\"b3multi\"]\n\
         [upstreams.e]\nkind = \"echo\"\n\
         [[routes]]\nname = \"main\"\nupstream = \"e\"\n\
         [[routes]]\nname = \"edge\"\npath_prefix = \"/edge\"\nupstream = \"e\"\n\
         propagation = {{ inject = [\"jaeger\"], trust = \"restart\" }}\n"
    )
    .unwrap();
    drop(file);
    let tp = format!("traceparent: {TRACEPARENT}");
    // The main route continues the trace and writes b3multi only (traceparent stripped).
    let (code, out) = translate(&path, &["--route", "main", "-H", &tp, "--json"], &[]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["trust"], "continue");
    assert_eq!(j["continued_from"], "tracecontext");
    assert_eq!(j["inject"], serde_json::json!(["b3multi"]));
    assert_eq!(j["headers"]["x-b3-traceid"], TRACE);
    assert_eq!(j["headers"].get("traceparent"), None, "{j}");
    // The edge route (chosen by path here) restarts: a new trace, the incoming one a
    // link, written as jaeger only.
    let (code, out) = translate(&path, &["--path", "/edge/x", "-H", &tp, "--json"], &[]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["route"], "edge");
    assert_eq!(j["trust"], "restart");
    assert_eq!(j["new_trace"], true);
    assert_eq!(j["links"][0]["trace_id"], TRACE);
    let new_trace = j["trace_id"].as_str().unwrap();
    assert_ne!(new_trace, TRACE);
    assert!(j["headers"]["uber-trace-id"]
        .as_str()
        .unwrap()
        .starts_with(new_trace));
    assert_eq!(j["headers"].get("x-b3-traceid"), None, "{j}");
    // The text form says the same in `#` lines before the headers.
    let (code, out) = translate(&path, &["--route", "edge", "-H", &tp], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("# inject: jaeger; strip_unlisted: true\n"),
        "{out}"
    );
    assert!(
        out.contains("# trust: restart; new trace (tracecontext arrived, kept as a link)"),
        "{out}"
    );
    assert!(out.contains("\nuber-trace-id: "), "{out}");
    // The extract list comes from OTEL_PROPAGATORS where the file has none.
    let (code, out) = translate(
        &path,
        &["--route", "main", "-H", &tp, "--json"],
        &[("OTEL_PROPAGATORS", "jaeger")],
    );
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["extract"], serde_json::json!(["jaeger"]));
    assert_eq!(j["inject"], serde_json::json!(["b3multi"]), "the file's");
    assert_eq!(j["new_trace"], true, "traceparent is not read");
    // An unknown route is a clear error.
    let (code, out) = translate(&path, &["--route", "nope", "-H", &tp], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("no route named \"nope\""), "{out}");
}
