//! The browser edge in a real browser (issue 20): headless Chromium driven over
//! WebDriver by Debian's `chromedriver`.
//!
//! Why WebDriver: it is plain HTTP + JSON, so the blocking `reqwest` client the tests
//! already use drives it; the DevTools protocol would need a WebSocket client crate.
//!
//! The scenario: a page served from one loopback origin (a tiny server here) makes a
//! cross-origin `fetch` with `traceparent` (and a JSON body), as the OpenTelemetry
//! fetch instrumentation does, through the gateway to an upstream on another port.
//! With the feature on, the browser sends the call (the preflight passed), the upstream
//! receives the continued trace, and the page reads the gateway's span id from
//! `traceresponse` and `Server-Timing` (and, by `Timing-Allow-Origin`, the resource
//! timing entry's `serverTiming`). A second page, served through the gateway,
//! reads `performance.getEntriesByType('navigation')[0].serverTiming`. With the feature
//! off, the same page shows the browser blocking the call.
//!
//! Chromium must be installed (`.ci/run` installs `chromium` and `chromium-driver`): if
//! it cannot be started the test fails with the reason, it never skips. Every wait is
//! bounded; chromedriver runs in its own process group, so the guard that ends the
//! session also kills exactly the processes this test started (chromedriver and the
//! Chromium it launched), on panic too.

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::scripted::{Reply, Scripted, Seen};
use support::{free_port, TestGateway};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The page: `callApi(url)` does what the OpenTelemetry fetch instrumentation does (a
/// `traceparent` header on a cross-origin call) and reports what the page could read.
const PAGE: &str = r#"<!doctype html>
<html><head><title>edge</title></head><body>
<script>
window.callApi = async function (url) {
  const traceparent = "00-TRACE-PARENT-01";
  try {
    const r = await fetch(url, {
      method: "PUT",
      headers: { "traceparent": traceparent, "content-type": "application/json" },
      body: "{}",
    });
    await r.text();
    // The resource timing entry (its serverTiming needs Timing-Allow-Origin across
    // origins); it is queued when the body is done, so wait for it a little.
    let entry = null;
    for (let i = 0; i < 40 && !entry; i++) {
      entry = performance.getEntriesByName(url).pop() || null;
      if (!entry) await new Promise(ok => setTimeout(ok, 25));
    }
    return {
      resource_server_timing: entry ? entry.serverTiming.map(e => e.name) : null,
      sent: true,
      status: r.status,
      traceresponse: r.headers.get("traceresponse"),
      server_timing: r.headers.get("server-timing"),
      trace_id: r.headers.get("x-trace-id"),
    };
  } catch (e) {
    return { sent: false, reason: String(e) };
  }
};
window.navigationTiming = function () {
  const nav = performance.getEntriesByType("navigation")[0];
  return (nav ? nav.serverTiming : []).map(e => ({ name: e.name, description: e.description }));
};
</script>
</body></html>
"#;

/// Runs `f` until it returns `Some`, every 50 ms, for at most `limit`.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// chromedriver and one Chromium session; ends both on drop.
struct Browser {
    driver: Child,
    base: String,
    session: Option<String>,
    /// Chromium's own process id, as chromedriver reports it.
    chromium: Option<u32>,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or panics with the reason.
    fn start() -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Chromium inherits it, so the guard can end both.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): install chromium and chromium-driver \
                     (apt-get install -y chromium chromium-driver; .ci/run does)"
                )
            });
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            chromium: None,
            http,
            _profile: profile,
        };
        let status = format!("{}/status", browser.base);
        let ready = wait_for(Duration::from_secs(15), || {
            let v: Value = browser.http.get(&status).send().ok()?.json().ok()?;
            (v["value"]["ready"] == true).then_some(())
        });
        assert!(
            ready.is_some(),
            "chromedriver on port {port} not ready after 15 s"
        );
        let binary = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| panic!("no Chromium binary: install chromium (.ci/run does)"));
        let args = [
            "--headless=new".to_string(),
            // Root (CI containers) cannot use Chromium's sandbox.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--no-first-run".to_string(),
            "--no-proxy-server".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-breakpad".to_string(),
            "--disable-crash-reporter".to_string(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": binary, "args": args },
            // The console, where Chromium says why it blocked a call.
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let created: Value = browser
            .http
            .post(format!("{}/session", browser.base))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("chromedriver did not answer the new session: {e}"));
        let Some(id) = created["value"]["sessionId"].as_str() else {
            panic!("Chromium could not be started: {}", created["value"]);
        };
        browser.session = Some(id.to_string());
        browser.chromium = created["value"]["capabilities"]["goog:processID"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        browser.post("timeouts", json!({ "script": 15000, "pageLoad": 15000 }));
        browser
    }

    fn post(&self, what: &str, body: Value) -> Value {
        let id = self.session.as_deref().expect("session");
        let url = format!("{}/session/{id}/{what}", self.base);
        let v: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("webdriver {what}: {e}"));
        if v["value"]["error"].is_string() && v["value"]["message"].is_string() {
            panic!("webdriver {what}: {}", v["value"]);
        }
        v["value"].clone()
    }

    /// Loads `url` (returns when the page has loaded).
    fn open(&self, url: &str) {
        self.post("url", json!({ "url": url }));
    }

    /// The console messages since the last call (chromedriver's log endpoint).
    fn console(&self) -> String {
        let v = self.post("se/log", json!({ "type": "browser" }));
        let lines: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["message"].as_str()).collect())
            .unwrap_or_default();
        lines.join("\n")
    }

    /// Runs `script` in the page; it ends by calling `done(value)`.
    fn run(&self, script: &str) -> Value {
        let body = format!("const done = arguments[arguments.length - 1]; {script}");
        self.post("execute/async", json!({ "script": body, "args": [] }))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            // Closes Chromium cleanly (bounded by the client's timeout).
            let _ = self
                .http
                .delete(format!("{}/session/{id}", self.base))
                .send();
        }
        // Let Chromium finish its shutdown (at most 5 s) before the group is killed.
        if let Some(pid) = self.chromium {
            wait_for(Duration::from_secs(5), || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                let gone = stat.is_none_or(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                });
                gone.then_some(())
            });
        }
        // Whatever is left of the group this test started: chromedriver, Chromium.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The gateway in front of `api` (an application doing its own CORS for the page
/// origin, allowing `content-type` only), `plain` (no CORS at all) and `pages`.
fn gateway(api: &Scripted, plain: &Scripted, pages: &Scripted, feature: bool) -> TestGateway {
    let edge = if feature {
        format!(
            r#"server_timing = true
            trace_id_header = "x-trace-id"
            timing_allow_origin = ["{0}"]
            [propagation.cors]
            mode = "augment"
            [[routes]]
            name = "plain"
            path_prefix = "/plain"
            upstream = "plain"
            [routes.propagation.cors]
            mode = "answer"
            allow_origins = ["{0}"]
            allow_headers = ["content-type"]"#,
            pages.origin()
        )
    } else {
        r#"[[routes]]
        name = "plain"
        path_prefix = "/plain"
        upstream = "plain""#
            .to_string()
    };
    TestGateway::start(&format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = 1
        [upstreams.api]
        peers = ["{}"]
        [upstreams.plain]
        peers = ["{}"]
        [upstreams.pages]
        peers = ["{}"]
        [[routes]]
        name = "api"
        path_prefix = "/api"
        upstream = "api"
        [[routes]]
        name = "pages"
        path_prefix = "/"
        upstream = "pages"
        [propagation]
        response_header = true
        {edge}
        "#,
        api.addr, plain.addr, pages.addr
    ))
}

/// The calls the upstream received other than preflights, with their `traceparent`.
fn calls(upstream: &Scripted) -> Vec<Option<String>> {
    upstream
        .seen()
        .iter()
        .filter(|s| s.method != "OPTIONS")
        .map(|s| s.header("traceparent").map(String::from))
        .collect()
}

/// The span id in `00-{trace}-{span}-{flags}`.
fn span_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(2).unwrap_or_default()
}

#[test]
fn a_real_browser_reads_the_trace_only_with_the_browser_edge_on() {
    let page = PAGE.replace("TRACE", TRACE).replace("PARENT", PARENT);
    let pages = Scripted::start(move |_: &Seen| {
        Reply::new(200, &[("content-type", "text/html")], page.clone())
    });
    let page_origin = pages.origin();
    let api_origin = page_origin.clone();
    let api = Scripted::start(move |req: &Seen| {
        let allow = [
            ("access-control-allow-origin", api_origin.as_str()),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-headers", "content-type"),
            ("content-type", "application/json"),
        ];
        let status = if req.method == "OPTIONS" { 204 } else { 200 };
        Reply::new(status, &allow, if status == 200 { "{}" } else { "" })
    });
    let plain =
        Scripted::start(|_: &Seen| Reply::new(200, &[("content-type", "application/json")], "{}"));
    let browser = Browser::start();
    let call = |gw: &TestGateway, path: &str| {
        browser.open(&format!("{page_origin}/app.html"));
        let script = format!("callApi({:?}).then(done);", gw.url(path));
        browser.run(&script)
    };
    let navigation = |gw: &TestGateway| {
        browser.open(&gw.url("/app.html"));
        browser.run("done(navigationTiming());")
    };

    // Feature on.
    let on = gateway(&api, &plain, &pages, true);
    for (path, upstream) in [("/api/orders", &api), ("/plain/orders", &plain)] {
        let seen = call(&on, path);
        eprintln!("feature on, {path}: the page saw {seen}");
        assert_eq!(
            seen["sent"], true,
            "{path}: the browser sent the call: {seen}"
        );
        assert_eq!(seen["status"], 200, "{seen}");
        let got = calls(upstream);
        assert_eq!(got.len(), 1, "{path}: the upstream got the call: {got:?}");
        let continued = got[0].clone().expect("traceparent at the upstream");
        assert!(
            continued.starts_with(&format!("00-{TRACE}-")),
            "{path}: the upstream continues the page's trace: {continued}"
        );
        let span = span_of(&continued);
        assert_ne!(span, PARENT, "the gateway span is the upstream's parent");
        let tr = seen["traceresponse"]
            .as_str()
            .expect("page read traceresponse");
        assert_eq!(
            span_of(tr),
            span,
            "{path}: traceresponse names the gateway span"
        );
        let timing = seen["server_timing"]
            .as_str()
            .expect("page read Server-Timing");
        assert!(
            timing.contains(&format!("traceparent;desc=\"00-{TRACE}-{span}-01\"")),
            "{path}: {timing}"
        );
        assert_eq!(seen["trace_id"], TRACE);
        assert_eq!(
            seen["resource_server_timing"],
            json!(["traceparent"]),
            "{path}: Timing-Allow-Origin lets the page read the resource's serverTiming"
        );
    }
    let entries = navigation(&on);
    eprintln!("feature on, page through the gateway: serverTiming = {entries}");
    let tp = entries
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "traceparent"))
        .unwrap_or_else(|| panic!("no traceparent in the navigation's serverTiming: {entries}"));
    let desc = tp["description"].as_str().expect("description");
    assert!(desc.starts_with("00-") && desc.len() == 55, "{desc}");
    let nav_parent = pages
        .seen()
        .iter()
        .find(|s| s.path == "/app.html" && s.header("traceparent").is_some())
        .and_then(|s| s.header("traceparent").map(String::from))
        .expect("the page request was traced");
    // Trace and span ids; the flags may differ in W3C level 2's random bit, which
    // `traceresponse` and `Server-Timing` (sampled bit only) leave out.
    assert_eq!(
        desc[..52],
        nav_parent[..52],
        "the page names the span its server saw as parent"
    );
    drop(on);

    // Feature off: the same page, the same calls.
    let off = gateway(&api, &plain, &pages, false);
    let before = (calls(&api).len(), calls(&plain).len());
    let _ = browser.console();
    let why = [
        // The application allows its own headers, not the trace headers.
        (
            "/api/orders",
            "Request header field traceparent is not allowed by Access-Control-Allow-Headers",
        ),
        // The upstream does no CORS at all.
        ("/plain/orders", "No 'Access-Control-Allow-Origin' header"),
    ];
    for (path, reason) in why {
        let seen = call(&off, path);
        let console = browser.console();
        eprintln!("feature off, {path}: the page saw {seen}; the console said: {console}");
        assert_eq!(
            seen["sent"], false,
            "{path}: the browser blocks the call: {seen}"
        );
        assert!(console.contains(reason), "{path}: {console}");
    }
    assert_eq!(
        (calls(&api).len(), calls(&plain).len()),
        before,
        "no call reached an upstream: the preflight failed"
    );
    let entries = navigation(&off);
    eprintln!("feature off, page through the gateway: serverTiming = {entries}");
    assert_eq!(entries, json!([]), "no Server-Timing without the feature");
}
