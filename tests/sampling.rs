//! Sampling a fleet agrees on (issue 21), through the real gateway in front of a real
//! origin: OpenTelemetry consistent probability sampling (`ot=th` / `rv` in
//! `tracestate`), decided by `R ≥ T` and written upstream; a fleet of gateways with the
//! same ratio deciding the same way.

mod support;

use serde_json::Value;
use support::{client, one_route, Origin, TestGateway};

/// The headers the origin received, by name (the origin answers with them as JSON).
fn send(gw: &TestGateway, headers: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let body = support::origin_answer(gw, headers);
    body["headers"].as_object().expect("headers").clone()
}

fn header<'a>(h: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    h.get(name).and_then(Value::as_str)
}

/// (trace id, sampled flag, random flag) of the `traceparent` the origin received.
fn traceparent(h: &serde_json::Map<String, Value>) -> (String, bool, bool) {
    let tp = header(h, "traceparent").expect("traceparent");
    let flags = u8::from_str_radix(&tp[53..55], 16).unwrap();
    (tp[3..35].to_owned(), flags & 1 == 1, flags & 2 == 2)
}

fn gateway(origin: &Origin, sampling: &str) -> TestGateway {
    TestGateway::start(&one_route(
        origin.addr,
        1,
        &format!("[sampling]\n{sampling}\n"),
        "",
    ))
}

/// `R ≥ T` the way the specification lets anyone check it on the wire: the last 14 hex
/// digits of the trace id (or `rv`) against the `th` digits, compared as strings.
fn kept_by(randomness_hex: &str, th: &str) -> bool {
    assert_eq!(randomness_hex.len(), 14);
    randomness_hex >= th
}

/// The `th` of an `ot` member value, if any.
fn th_of(ot: &str) -> Option<&str> {
    ot.split(';').find_map(|m| m.strip_prefix("th:"))
}

fn tp(trace: &str, flags: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-{flags}")
}

#[test]
fn ratio_decides_by_the_low_56_bits_and_writes_th_first() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 0.25");
    // 0.25 → T = c0000000000000 (tracestate-handling.md's `ot=th:c` example).
    let cases = [
        ("4bf92f3577b34da6a3c0000000000000", true, "R = T: kept"),
        ("4bf92f3577b34da6a3ffffffffffffff", true, "highest R"),
        ("4bf92f3577b34da6a3bfffffffffffff", false, "R = T - 1"),
        (
            "4bf92f3577b34da6ff00000000000001",
            false,
            "bits above the 56 do not count",
        ),
    ];
    for (trace, want, why) in cases {
        // The incoming flag says sampled: `ratio` ignores it, as ProbabilitySampler does.
        let h = send(
            &gw,
            &[
                ("traceparent", &tp(trace, "03")),
                ("tracestate", "a=1,ot=th:8;p:3,b=2"),
            ],
        );
        let (out_trace, sampled, _) = traceparent(&h);
        assert_eq!(out_trace, trace);
        assert_eq!(sampled, want, "{trace}: {why}");
        let ts = header(&h, "tracestate").expect("tracestate");
        // The changed `ot` member moves to the front; the others keep their order; its
        // other sub-keys stay.
        if want {
            assert_eq!(ts, "ot=th:c;p:3,a=1,b=2", "{why}");
        } else {
            assert_eq!(ts, "ot=p:3,a=1,b=2", "not sampled: th removed ({why})");
        }
    }
    // Without any tracestate: sampled → `ot=th:c` alone; not sampled → none at all.
    let h = send(
        &gw,
        &[("traceparent", &tp("4bf92f3577b34da6a3c0000000000000", "02"))],
    );
    assert_eq!(header(&h, "tracestate"), Some("ot=th:c"));
    let h = send(
        &gw,
        &[("traceparent", &tp("4bf92f3577b34da6a30000000000000f", "01"))],
    );
    assert_eq!(header(&h, "tracestate"), None);
}

#[test]
fn explicit_randomness_replaces_the_trace_id_and_is_kept() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 0.5");
    // Trace id says keep (ff...), rv says drop; and the other way round.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp("4bf92f3577b34da6a3ffffffffffffff", "03")),
            ("tracestate", "ot=rv:7fffffffffffff"),
        ],
    );
    assert!(!traceparent(&h).1, "rv 7fff.. < th 8");
    assert_eq!(header(&h, "tracestate"), Some("ot=rv:7fffffffffffff"));
    let h = send(
        &gw,
        &[
            ("traceparent", &tp("4bf92f3577b34da6a300000000000001", "00")),
            ("tracestate", "x=y,ot=rv:80000000000000"),
        ],
    );
    assert!(traceparent(&h).1, "rv 8000.. ≥ th 8");
    assert_eq!(
        header(&h, "tracestate"),
        Some("ot=th:8;rv:80000000000000,x=y")
    );
}

#[test]
fn parent_honours_a_consistent_threshold_and_erases_an_inconsistent_one() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "ratio = 0.25");
    let kept = "4bf92f3577b34da6a3ffffffffffffff";
    let low = "4bf92f3577b34da6a300000000000001";
    // Sampled, R ≥ th: the threshold goes on unchanged and the member stays in place.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp(kept, "01")),
            ("tracestate", "a=1,ot=th:8,b=2"),
        ],
    );
    assert!(traceparent(&h).1);
    assert_eq!(header(&h, "tracestate"), Some("a=1,ot=th:8,b=2"));
    // Sampled, R < th: apparently inconsistent, so the threshold is erased.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp(low, "01")),
            ("tracestate", "a=1,ot=th:8,b=2"),
        ],
    );
    assert!(traceparent(&h).1, "the parent's decision is honoured");
    assert_eq!(header(&h, "tracestate"), Some("a=1,b=2"));
    // Not sampled: no threshold goes on.
    let h = send(
        &gw,
        &[
            ("traceparent", &tp(kept, "00")),
            ("tracestate", "a=1,ot=th:8;rv:ffffffffffffff"),
        ],
    );
    assert!(!traceparent(&h).1);
    assert_eq!(header(&h, "tracestate"), Some("ot=rv:ffffffffffffff,a=1"));
    // Sampled without a threshold: the probability is unknown, none is invented.
    let h = send(
        &gw,
        &[("traceparent", &tp(kept, "01")), ("tracestate", "a=1")],
    );
    assert_eq!(header(&h, "tracestate"), Some("a=1"));
}

#[test]
fn new_roots_under_parent_use_the_ratio_threshold_on_random_ids() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "ratio = 0.25");
    let (mut kept, mut dropped) = (0, 0);
    for _ in 0..64 {
        let h = send(&gw, &[]);
        let (trace, sampled, random) = traceparent(&h);
        assert!(random, "the gateway's own ids are random (W3C level 2)");
        assert_eq!(sampled, kept_by(&trace[18..], "c"), "{trace}");
        if sampled {
            kept += 1;
            assert_eq!(header(&h, "tracestate"), Some("ot=th:c"));
        } else {
            dropped += 1;
            assert_eq!(header(&h, "tracestate"), None);
        }
    }
    // P(no kept or no dropped in 64) < 1e-7.
    assert!(kept > 0 && dropped > 0, "{kept} kept, {dropped} dropped");
}

#[test]
fn the_default_configuration_writes_no_threshold() {
    // `parent` with ratio 1 is OpenTelemetry's default parentbased_always_on.
    let origin = Origin::start("origin");
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let h = send(&gw, &[]);
    assert!(traceparent(&h).1);
    assert_eq!(header(&h, "tracestate"), None);
    // `always` and ratio 1 under `ratio` are probability 1: `th:0`.
    let gw = gateway(&origin, "strategy = \"always\"");
    assert_eq!(header(&send(&gw, &[]), "tracestate"), Some("ot=th:0"));
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 1.0");
    assert_eq!(header(&send(&gw, &[]), "tracestate"), Some("ot=th:0"));
}

#[test]
fn an_invalid_ot_member_is_dropped_and_counted() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "ratio = 0.25");
    for (value, reason) in [
        ("th:C", "threshold"),
        ("rv:123", "randomness"),
        ("th:8;th:8", "repeated"),
        ("Th:8", "malformed"),
    ] {
        let h = send(
            &gw,
            &[
                ("traceparent", &tp("4bf92f3577b34da6a3ffffffffffffff", "01")),
                ("tracestate", &format!("a=1,ot={value},b=2")),
            ],
        );
        assert!(traceparent(&h).1, "{value}: the request goes on");
        assert_eq!(header(&h, "tracestate"), Some("a=1,b=2"), "{value}");
        gw.metrics_containing(&[&format!(
            "tracebridge_sampling_ot_invalid_total{{reason=\"{reason}\"}} 1"
        )]);
    }
}

#[test]
fn the_gateway_span_records_the_threshold() {
    let origin = Origin::start("origin");
    let gw = gateway(&origin, "strategy = \"ratio\"\nratio = 0.25");
    send(
        &gw,
        &[("traceparent", &tp("4bf92f3577b34da6a3ffffffffffffff", "01"))],
    );
    send(
        &gw,
        &[
            ("traceparent", &tp("4bf92f3577b34da6a300000000000000", "01")),
            ("tracestate", "ot=rv:d0000000000000"),
        ],
    );
    let spans = gw.spans.wait_for(2);
    let states: Vec<String> = spans
        .iter()
        .map(|s| s.span_context.trace_state().header())
        .collect();
    assert!(states.contains(&"ot=th:c".to_owned()), "{states:?}");
    assert!(
        states.contains(&"ot=th:c;rv:d0000000000000".to_owned()),
        "{states:?}"
    );
}

/// Deterministic, well-spread trace ids (splitmix64), random flag on or off.
fn trace_ids(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| format!("{:016x}{:016x}", next(), next() | 1))
        .collect()
}

#[test]
fn a_fleet_of_three_gateways_makes_the_same_decision_and_writes_it() {
    let origin = Origin::start("origin");
    let fleet: Vec<TestGateway> = (0..3)
        .map(|_| gateway(&origin, "strategy = \"ratio\"\nratio = 0.1"))
        .collect();
    let ids = trace_ids(48);
    let mut thresholds = std::collections::BTreeSet::new();
    let mut kept = 0;
    for (i, trace) in ids.iter().enumerate() {
        // Half the callers are W3C level 1 (no random flag): the id is presumed random.
        let flags = if i % 2 == 0 { "03" } else { "01" };
        let outs: Vec<(bool, Option<String>)> = fleet
            .iter()
            .map(|gw| {
                let h = send(gw, &[("traceparent", &tp(trace, flags))]);
                let (t, sampled, _) = traceparent(&h);
                assert_eq!(&t, trace);
                (sampled, header(&h, "tracestate").map(str::to_owned))
            })
            .collect();
        assert!(
            outs.windows(2).all(|w| w[0] == w[1]),
            "{trace}: the fleet disagrees: {outs:?}"
        );
        let (sampled, ts) = &outs[0];
        if *sampled {
            kept += 1;
            let th = ts
                .as_deref()
                .and_then(|t| t.strip_prefix("ot="))
                .and_then(th_of);
            let th = th.unwrap_or_else(|| panic!("{trace}: sampled without th: {ts:?}"));
            assert!(kept_by(&trace[18..], th), "{trace} kept below th {th}");
            thresholds.insert(th.to_owned());
        } else {
            assert_eq!(ts, &None, "{trace}");
        }
    }
    // One threshold for the fleet: (1 - 0.1) × 2^56 = e6666666666666 (rounded).
    assert_eq!(
        thresholds.into_iter().collect::<Vec<_>>(),
        vec!["e6666666666666".to_owned()]
    );
    for trace in &ids {
        let want = kept_by(&trace[18..], "e6666666666666");
        let h = send(&fleet[1], &[("traceparent", &tp(trace, "01"))]);
        assert_eq!(traceparent(&h).1, want, "{trace}");
    }
    assert!(kept > 0 && kept < ids.len(), "{kept} of {} kept", ids.len());
}

#[test]
fn a_chain_of_gateways_keeps_the_first_decision_and_threshold() {
    // Edge (ratio) → second gateway (parent): what the edge wrote upstream is honoured.
    let origin = Origin::start("origin");
    let edge = gateway(&origin, "strategy = \"ratio\"\nratio = 0.5");
    let inner = gateway(&origin, "ratio = 0.01");
    for trace in trace_ids(16) {
        let h = send(&edge, &[("traceparent", &tp(&trace, "02"))]);
        let (_, sampled, _) = traceparent(&h);
        let mut next = vec![("traceparent", header(&h, "traceparent").unwrap().to_owned())];
        if let Some(ts) = header(&h, "tracestate") {
            next.push(("tracestate", ts.to_owned()));
        }
        let pairs: Vec<(&str, &str)> = next.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let h2 = send(&inner, &pairs);
        assert_eq!(traceparent(&h2).1, sampled, "{trace}");
        assert_eq!(
            header(&h2, "tracestate"),
            header(&h, "tracestate"),
            "{trace}: th passes through the parent-based hop"
        );
    }
}

// ---- Part 2: the edge keeps its own span of unsampled errors and slow requests ----

/// A one-trick upstream: answers up to `n` requests with `status` after `delay`,
/// keeping each request head it read. The thread ends after `n` connections (or 10 s
/// without one).
struct RawUpstream {
    addr: std::net::SocketAddr,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawUpstream {
    fn start(status: u16, delay: std::time::Duration, n: usize) -> RawUpstream {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut served = 0;
            while served < n && std::time::Instant::now() < deadline {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                served += 1;
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                std::thread::sleep(delay);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        RawUpstream { addr, heads }
    }

    /// The `traceparent` of the `i`-th request head.
    fn traceparent(&self, i: usize) -> String {
        let heads = self.heads.lock().unwrap();
        heads[i]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("traceparent")
                    .then(|| v.trim().to_owned())
            })
            .expect("traceparent")
    }
}

fn keep_gateway(upstream: std::net::SocketAddr, sampling: &str) -> TestGateway {
    TestGateway::start(&one_route(
        upstream,
        1,
        &format!("[sampling]\n{sampling}\n"),
        "",
    ))
}

fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request").status().as_u16()
}

fn str_attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[test]
fn keep_errors_exports_the_span_of_an_unsampled_5xx_without_changing_what_went_upstream() {
    let up = RawUpstream::start(503, std::time::Duration::ZERO, 2);
    let gw = keep_gateway(up.addr, "strategy = \"never\"\nkeep_errors = true");
    assert_eq!(
        get(
            &gw,
            "/err",
            &[("traceparent", &tp("4bf92f3577b34da6a3ce929d0e0e4736", "01"))]
        ),
        503
    );
    let spans = gw.spans.wait_for(1);
    let span = &spans[0];
    assert_eq!(
        str_attr(span, "tracebridge.sampling.kept").as_deref(),
        Some("error")
    );
    assert_eq!(
        str_attr(span, "http.response.status_code").as_deref(),
        Some("503")
    );
    // The upstream saw the unsampled decision, and the kept span is the parent it saw.
    let sent = up.traceparent(0);
    assert!(sent.ends_with("-00"), "{sent}");
    assert_eq!(
        sent,
        format!(
            "00-{:032x}-{:016x}-00",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )
    );
    assert_eq!(
        format!("{:016x}", span.parent_span_id),
        "00f067aa0ba902b7",
        "a child of the caller"
    );
    // A 2xx is not kept.
    let ok = Origin::start("origin");
    let gw = keep_gateway(ok.addr, "strategy = \"never\"\nkeep_errors = true");
    assert_eq!(get(&gw, "/ok", &[]), 200);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(gw.spans.all().is_empty(), "a success is not kept");
}

#[test]
fn keep_errors_covers_proxy_failures_and_is_rate_limited_like_roots() {
    // Nothing listens there: every request fails with a 502.
    let dead: std::net::SocketAddr = ([127, 0, 0, 1], support::DEAD_PORT).into();
    let gw = keep_gateway(
        dead,
        "strategy = \"never\"\nkeep_errors = true\nmax_traces_per_second = 1",
    );
    for _ in 0..5 {
        assert_eq!(get(&gw, "/dead", &[]), 502);
    }
    let spans = gw.spans.wait_for(1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let n = gw.spans.all().len();
    assert!((1..=2).contains(&n), "{n} kept of 5 with a cap of 1/s");
    assert_eq!(
        str_attr(&spans[0], "tracebridge.sampling.kept").as_deref(),
        Some("error")
    );
    assert!(str_attr(&spans[0], "error.type").is_some());
}

#[test]
fn keep_slower_than_exports_slow_unsampled_spans_only() {
    let slow = RawUpstream::start(200, std::time::Duration::from_millis(300), 1);
    let gw = keep_gateway(
        slow.addr,
        "strategy = \"ratio\"\nratio = 0.0\nkeep_slower_than = \"200ms\"",
    );
    assert_eq!(get(&gw, "/slow", &[]), 200);
    let spans = gw.spans.wait_for(1);
    assert_eq!(
        str_attr(&spans[0], "tracebridge.sampling.kept").as_deref(),
        Some("slow")
    );
    assert!(slow.traceparent(0).ends_with("-02"), "propagated unsampled");
    // Fast: not kept.
    let fast = Origin::start("origin");
    let gw = keep_gateway(
        fast.addr,
        "strategy = \"ratio\"\nratio = 0.0\nkeep_slower_than = \"200ms\"",
    );
    assert_eq!(get(&gw, "/fast", &[]), 200);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(gw.spans.all().is_empty());
}

#[test]
fn a_sampled_span_is_exported_once_and_not_marked_kept() {
    let up = RawUpstream::start(500, std::time::Duration::ZERO, 1);
    let gw = keep_gateway(up.addr, "keep_errors = true");
    assert_eq!(get(&gw, "/", &[]), 500);
    gw.spans.wait_for(1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let spans = gw.spans.all();
    assert_eq!(spans.len(), 1);
    assert_eq!(str_attr(&spans[0], "tracebridge.sampling.kept"), None);
}

#[test]
fn keep_slower_than_must_be_a_positive_duration() {
    for (value, needle) in [("soon", "invalid duration"), ("0s", "must be more than 0")] {
        let text = format!(
            "[sampling]\nkeep_slower_than = \"{value}\"\n[upstreams.o]\npeers = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"o\"\nsampling = {{ keep_slower_than = \"{value}\" }}\n"
        );
        let err = tracebridge::config::load_str(&text, None, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("sampling.keep_slower_than: {needle}")),
            "{value}: {err}"
        );
        assert!(
            err.contains(&format!("routes[0].sampling.keep_slower_than: {needle}")),
            "{value}: {err}"
        );
    }
}

/// One `tracebridge` process (the real binary) on free ports; killed when dropped.
struct Process {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Process {
    fn start(origin: std::net::SocketAddr, sampling: &str) -> Process {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, admin) = (free(), free());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n\
                 threads = 1\npid_file = \"{pid}\"\nupgrade_sock = \"{sock}\"\n\
                 [telemetry]\nexporter = \"none\"\n[sampling]\n{sampling}\n\
                 [upstreams.o]\npeers = [\"{origin}\"]\n[[routes]]\nupstream = \"o\"\n",
                pid = dir.path().join("pid").display(),
                sock = dir.path().join("upgrade.sock").display(),
            ),
        )
        .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tracebridge"))
            .arg("--config")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the tracebridge binary");
        let p = Process {
            child,
            port,
            _dir: dir,
        };
        support::poll_until(std::time::Duration::from_secs(10), || {
            client()
                .get(format!("http://127.0.0.1:{admin}/readyz"))
                .send()
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
                .ok_or_else(|| format!("gateway process on {port} not ready"))
        });
        p
    }

    fn send(&self, parent: &str) -> (bool, Option<String>) {
        let resp = client()
            .get(format!("http://127.0.0.1:{}/", self.port))
            .header("traceparent", parent)
            .send()
            .expect("request");
        let body: Value = serde_json::from_str(&resp.text().unwrap()).expect("json");
        let h = body["headers"].as_object().expect("headers");
        (traceparent(h).1, header(h, "tracestate").map(str::to_owned))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // This test started the process: it ends it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn three_gateway_processes_agree_with_each_other_and_with_the_th_they_write() {
    let origin = Origin::start("origin");
    let fleet: Vec<Process> = (0..3)
        .map(|_| Process::start(origin.addr, "strategy = \"ratio\"\nratio = 0.25"))
        .collect();
    let mut kept = 0;
    let ids = trace_ids(32);
    for trace in &ids {
        let outs: Vec<(bool, Option<String>)> =
            fleet.iter().map(|p| p.send(&tp(trace, "01"))).collect();
        assert!(outs.windows(2).all(|w| w[0] == w[1]), "{trace}: {outs:?}");
        let (sampled, ts) = &outs[0];
        assert_eq!(*sampled, kept_by(&trace[18..], "c"), "{trace}");
        assert_eq!(ts.as_deref(), sampled.then_some("ot=th:c"), "{trace}");
        kept += usize::from(*sampled);
    }
    assert!(kept > 0 && kept < ids.len(), "{kept} of {}", ids.len());
}

#[test]
fn the_threshold_and_the_kept_reason_reach_an_otlp_collector() {
    use support::{otlp_attr, CollectorMode, OtlpReceiver};
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let up = RawUpstream::start(503, std::time::Duration::ZERO, 3);
    let gw = TestGateway::start(&one_route(
        up.addr,
        1,
        &format!(
            "[sampling]\nstrategy = \"ratio\"\nratio = 0.25\nkeep_errors = true\n\
             [telemetry]\nexporter = \"otlp\"\nendpoint = \"http://{}\"\nbatch_delay = \"50ms\"\n",
            rx.addr
        ),
        "",
    ));
    // Kept by the ratio (R = ff.. ≥ c0..), and an unsampled one kept for its 503.
    for trace in [
        "4bf92f3577b34da6a3ffffffffffffff",
        "4bf92f3577b34da6a300000000000001",
    ] {
        assert_eq!(get(&gw, "/", &[("traceparent", &tp(trace, "01"))]), 503);
    }
    let spans = rx.wait_for(2);
    let by_trace = |end: &str| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| {
                s.trace_id
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .ends_with(end)
            })
            .unwrap_or_else(|| panic!("no span for ..{end}"))
    };
    let sampled = by_trace("ffffffffffffff");
    assert_eq!(sampled.trace_state, "ot=th:c");
    assert_eq!(
        otlp_attr(&sampled.attributes, "tracebridge.sampling.kept"),
        None
    );
    let kept = by_trace("00000000000001");
    assert_eq!(
        kept.trace_state, "",
        "kept, not by probability: no threshold"
    );
    assert_eq!(
        otlp_attr(&kept.attributes, "tracebridge.sampling.kept").as_deref(),
        Some("error")
    );
}
