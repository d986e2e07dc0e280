//! Self-monitoring through the real gateway: the coverage view (`GET /coverage` and
//! `tracebridge coverage`) and the JSON access log.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{client, free_port, one_route, Origin, TestGateway};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One route `main` under `/api` to `origin`; anything else is a 404.
fn config(origin: &Origin, extra: &str) -> String {
    one_route(
        origin.addr,
        1,
        extra,
        r#"path_prefix = "/api"
        propagation = { inject = ["preserve", "tracecontext", "b3multi"] }"#,
    )
}

fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request")
}

/// `/coverage` as JSON once `done` holds (requests are counted in the logging phase,
/// just after the response), or panics after 5 s showing the last answer.
fn coverage_when(gw: &TestGateway, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v: Value = client()
            .get(gw.admin_url("/coverage"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "coverage never got there: {v:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn requests(v: &Value, route: &str) -> u64 {
    v["routes"][route]["requests"].as_u64().unwrap_or(0)
}

/// Sends the known mix: on `main` 3 with traceparent, 2 with b3, 4 with nothing, 1 with
/// an invalid traceparent, 1 with a conflict (traceparent and b3 of another trace); 2
/// requests that match no route, one of them with a traceparent.
fn send_the_mix(gw: &TestGateway) {
    for _ in 0..3 {
        assert_eq!(
            get(gw, "/api/a", &[("traceparent", TRACEPARENT)]).status(),
            200
        );
    }
    for _ in 0..2 {
        let b3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
        assert_eq!(get(gw, "/api/b", &[("b3", b3)]).status(), 200);
    }
    for _ in 0..4 {
        assert_eq!(get(gw, "/api/c", &[]).status(), 200);
    }
    let invalid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz";
    assert_eq!(get(gw, "/api/d", &[("traceparent", invalid)]).status(), 200);
    let conflict = [
        ("traceparent", TRACEPARENT),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ];
    assert_eq!(get(gw, "/api/e", &conflict).status(), 200);
    assert_eq!(get(gw, "/nope", &[]).status(), 404);
    assert_eq!(
        get(gw, "/nope", &[("traceparent", TRACEPARENT)]).status(),
        404
    );
}

#[test]
fn coverage_counts_a_known_mix_of_traffic() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&config(&origin, ""));
    send_the_mix(&gw);
    let v = coverage_when(&gw, |v| {
        requests(v, "main") == 11 && requests(v, "none") == 2
    });
    assert_eq!(
        v,
        json!({"routes": {
            "main": {
                "requests": 11,
                "with_context_share": 6.0 / 11.0,
                "incoming": {"tracecontext": 4, "b3": 2, "none": 5},
                "invalid": {"tracecontext": 1},
                "conflicts": 1,
                // preserve re-injects b3 where it arrived (not where it conflicted).
                "injected": {"tracecontext": 11, "b3multi": 11, "b3": 2},
            },
            "none": {
                "requests": 2,
                "with_context_share": 0.5,
                "incoming": {"tracecontext": 1, "none": 1},
                "invalid": {},
                "conflicts": 0,
                "injected": {},
            },
        }})
    );

    let resp = client()
        .get(gw.admin_url("/coverage"))
        .header("accept", "text/plain")
        .send()
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let table = resp.text().unwrap();
    let rows: Vec<String> = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        rows,
        [
            "ROUTE REQUESTS WITH CONTEXT TOP INCOMING NONE INVALID CONFLICTS INJECTED",
            "main 11 54.5% tracecontext 4, b3 2 5 tracecontext 1 1 b3multi 11, tracecontext 11, b3 2",
            "none 2 50.0% tracecontext 1 1 - 0 -",
        ],
        "{table}"
    );
    // Columns line up: every row has its NONE count under the header's NONE.
    let lines: Vec<&str> = table.lines().collect();
    let end = lines[0].find("NONE").unwrap() + "NONE".len();
    assert_eq!(&lines[1][end - 2..end], " 5", "{table}");
    assert_eq!(&lines[2][end - 2..end], " 1", "{table}");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracebridge"))
}

#[test]
fn coverage_command_prints_the_table_of_a_running_gateway() {
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&config(&origin, ""));
    send_the_mix(&gw);
    coverage_when(&gw, |v| {
        requests(v, "main") == 11 && requests(v, "none") == 2
    });
    let out = bin()
        .args(["coverage", "--admin"])
        .arg(format!("http://127.0.0.1:{}", gw.admin_port))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let served = client()
        .get(gw.admin_url("/coverage"))
        .header("accept", "text/plain")
        .send()
        .and_then(|r| r.text())
        .unwrap();
    assert_eq!(printed, served);
    assert!(printed.starts_with("ROUTE "), "{printed}");
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("main ") && l.contains("54.5%")),
        "{printed}"
    );
}

#[test]
fn coverage_command_with_an_unreachable_admin_exits_1() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = bin()
        .args(["coverage", "--admin", &url])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: cannot connect to the admin listener at {url}: "
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

/// The lines of `path` once there are `n`, or panics after 5 s.
fn lines_when(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            assert!(text.ends_with('\n'), "{text}");
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        assert!(Instant::now() < deadline, "only got:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_rfc3339_millis(s: &str) -> bool {
    // 2025-01-31T09:12:03.517Z
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b[20..23].iter().all(u8::is_ascii_digit)
}

#[test]
fn access_log_writes_one_json_line_per_request_with_its_trace_ids() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let gw = TestGateway::start(&config(
        &origin,
        &format!(
            "[access_log]\nenabled = true\npath = \"{}\"",
            path.display()
        ),
    ));
    let continued = get(&gw, "/api/continued", &[("traceparent", TRACEPARENT)])
        .bytes()
        .unwrap();
    let continued_len = continued.len();
    let continued: Value = serde_json::from_slice(&continued).unwrap();
    let root: Value = get(&gw, "/api/root", &[]).json().unwrap();
    assert_eq!(get(&gw, "/nope", &[]).status(), 404);

    let lines = lines_when(&path, 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let by_path = |p: &str| {
        lines
            .iter()
            .find(|l| l["path"] == p)
            .unwrap_or_else(|| panic!("no line for {p}: {lines:#?}"))
    };
    let spans = gw.spans.wait_for(3);
    let span_of = |trace: &str| {
        spans
            .iter()
            .find(|s| s.span_context.trace_id().to_string() == trace)
            .unwrap_or_else(|| panic!("no span of trace {trace}"))
    };

    // Continued: the incoming trace, the gateway span, the parent that arrived.
    let line = by_path("/api/continued");
    let span = span_of("4bf92f3577b34da6a3ce929d0e0e4736");
    let forwarded = continued["headers"]["traceparent"].as_str().unwrap();
    assert_eq!(
        forwarded,
        format!(
            "00-{}-{}-01",
            line["trace_id"].as_str().unwrap(),
            line["span_id"].as_str().unwrap()
        )
    );
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["span_id"], span.span_context.span_id().to_string());
    assert_eq!(line["parent_id"], "00f067aa0ba902b7");
    assert_eq!(line["sampled"], true);
    assert_eq!(line["extracted_format"], "tracecontext");
    assert_eq!(line["injected_formats"], json!(["tracecontext", "b3multi"]));
    assert_eq!(line["route"], "main");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["upstream_address"], origin.addr.to_string());
    assert_eq!(line["bytes_sent"], continued_len);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        is_rfc3339_millis(line["time"].as_str().unwrap()),
        "{}",
        line["time"]
    );

    // A new root: the ids the gateway made, no incoming parent.
    let line = by_path("/api/root");
    let trace = line["trace_id"].as_str().unwrap();
    let span = span_of(trace);
    assert_eq!(line["span_id"], span.span_context.span_id().to_string());
    // (A new root sets the W3C level 2 random flag too: `-03`.)
    let forwarded = root["headers"]["traceparent"].as_str().unwrap();
    assert!(
        forwarded.starts_with(&format!(
            "00-{trace}-{}-",
            line["span_id"].as_str().unwrap()
        )),
        "{forwarded}"
    );
    assert_eq!(line["parent_id"], Value::Null);
    assert_eq!(line["extracted_format"], Value::Null);

    // No route: logged like a proxied request, with the ids of its own span (the
    // gateway's own responses are correlated: the `[propagation]` defaults apply).
    let line = by_path("/nope");
    assert_eq!(line["route"], "none");
    assert_eq!(line["status"], 404);
    let trace = line["trace_id"].as_str().unwrap();
    assert_eq!(
        line["span_id"],
        span_of(trace).span_context.span_id().to_string()
    );
    assert_eq!(line["upstream_address"], Value::Null);
    assert_eq!(line["injected_formats"], json!([]));
}

/// The binary on a config file, with its stdout captured; killed on drop.
struct Running {
    child: Child,
    port: u16,
}

impl Running {
    fn start(dir: &Path, origin: &Origin, access_log: &str) -> Running {
        let port = free_port();
        let admin = free_port();
        let file = dir.join("tracebridge.toml");
        std::fs::write(
            &file,
            format!(
                r#"
[server]
listen = ["127.0.0.1:{port}"]
admin_listen = "127.0.0.1:{admin}"
threads = 1
upgrade_sock = "{dir}/upgrade.sock"
pid_file = "{dir}/tracebridge.pid"
[telemetry]
exporter = "none"
{access_log}
[upstreams.origin]
peers = ["{origin}"]
[[routes]]
upstream = "origin"
"#,
                dir = dir.display(),
                origin = origin.addr
            ),
        )
        .unwrap();
        let child = bin()
            .arg("--config")
            .arg(&file)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let running = Running { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = format!("http://127.0.0.1:{admin}/readyz");
        while !client().get(&ready).send().is_ok_and(|r| r.status() == 200) {
            assert!(Instant::now() < deadline, "the gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    fn get(&self, path: &str) {
        let r = client()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .header("traceparent", TRACEPARENT)
            .send()
            .expect("request");
        assert_eq!(r.status(), 200);
    }

    /// Stops the process and returns everything it wrote to stdout.
    fn stdout(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits a little for lines that would be written after the responses.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn access_log_to_stdout_when_no_path_is_given() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let gw = Running::start(dir.path(), &origin, "[access_log]\nenabled = true");
    gw.get("/one");
    gw.get("/two");
    settle();
    let out = gw.stdout();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, path) in lines.iter().zip(["/one", "/two"]) {
        assert_eq!(line["path"], path);
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

#[test]
fn access_log_disabled_writes_nothing() {
    let origin = Origin::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = Running::start(
        dir.path(),
        &origin,
        &format!(
            "[access_log]\nenabled = false\npath = \"{}\"",
            log.display()
        ),
    );
    gw.get("/one");
    gw.get("/two");
    settle();
    assert_eq!(gw.stdout(), "");
    assert!(!log.exists(), "a disabled access log opens no file");
}
