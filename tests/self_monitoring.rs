//! Self-monitoring through the real gateway: the coverage view (`GET /coverage` and
//! `tracebridge coverage`).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{client, free_port, Origin, TestGateway};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One route `main` under `/api` to `origin`; anything else is a 404.
fn config(origin: &Origin, extra: &str) -> String {
    format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        {extra}
        [upstreams.origin]
        peers = ["{}"]
        [[routes]]
        name = "main"
        path_prefix = "/api"
        upstream = "origin"
        propagation = {{ inject = ["preserve", "tracecontext", "b3multi"] }}
        "#,
        origin.addr
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
