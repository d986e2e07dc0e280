//! Hot reload: under steady traffic, hundreds of reloads and not one failed or mixed
//! request; bad edits keep the old config serving with the error visible; the file
//! watcher follows editors, deletions and Kubernetes ConfigMap symlink swaps;
//! `POST /reload` with and without a token; SIGHUP.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, one_route, Origin, TestGateway};

/// Config routing to `origin`, injecting only `format`: a response shows both the
/// origin and the propagation policy of the generation that served it.
fn config(origin: &Origin, format: &str) -> String {
    one_route(
        origin.addr,
        2,
        &format!("[propagation]\ninject = [\"{format}\"]"),
        "",
    )
}

fn ask(gw: &TestGateway) -> Result<(String, bool, bool), String> {
    let resp = client()
        .get(gw.url("/"))
        .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
        .send()
        .map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    let v: Value = serde_json::from_str(&resp.text().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let h = &v["headers"];
    Ok((
        v["origin"].as_str().unwrap_or_default().to_string(),
        h.get("traceparent").is_some(),
        h.get("x-b3-traceid").is_some(),
    ))
}

fn reload(gw: &TestGateway, token: Option<&str>) -> (u16, Value) {
    let mut req = client().post(gw.admin_url("/reload"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().unwrap()).unwrap_or(Value::Null),
    )
}

fn serving(gw: &TestGateway) -> Value {
    serde_json::from_str(
        &client()
            .get(gw.admin_url("/config"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn two_hundred_reloads_under_traffic_fail_no_request() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let gw = Arc::new(TestGateway::start_file(&path, &config(&a, "tracecontext")));
    let text_a = gw.render(&config(&a, "tracecontext"));
    let text_b = gw.render(&config(&b, "b3multi"));
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failures) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let traffic: Vec<_> = (0..2)
        .map(|_| {
            let (gw, stop, served, failures) =
                (gw.clone(), stop.clone(), served.clone(), failures.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match ask(&gw) {
                        // Generation A: origin a with traceparent only; B: origin b with x-b3 only.
                        Ok((o, tp, b3)) if (o == "a" && tp && !b3) || (o == "b" && !tp && b3) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    for i in 0..200 {
        std::fs::write(&path, if i % 2 == 0 { &text_b } else { &text_a }).unwrap();
        gw.handle.reload().expect("valid config reloads");
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    eprintln!(
        "reload under load: 200 reloads, {} requests served, {} failed or mixed",
        served.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed or mixed responses: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        served.load(Ordering::Relaxed) > 100,
        "traffic flowed: {}",
        served.load(Ordering::Relaxed)
    );
    // The last write was config A: every new request uses it.
    let started = Instant::now();
    assert_eq!(ask(&gw).unwrap().0, "a");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(serving(&gw)["generation"].as_u64().unwrap() >= 201);
}

#[test]
fn bad_edits_keep_the_old_config_serving_with_the_error_visible() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let gw = TestGateway::start_file(&path, &config(&a, "tracecontext"));
    let good_b = gw.render(&config(&b, "b3multi"));
    for (name, bad, needle) in [
        (
            "syntax error",
            good_b.replace("[[routes]]", "[[routes]"),
            "line",
        ),
        (
            "unknown key",
            good_b.replace("threads = 2", "threads = 2\nthreadz = 3"),
            "threadz",
        ),
        (
            "dangling upstream",
            good_b.replace("upstream = \"origin\"", "upstream = \"ordrs\""),
            "no upstream named",
        ),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let (status, body) = reload(&gw, None);
        assert_eq!(status, 400, "{name}");
        assert!(
            body["problems"].to_string().contains(needle),
            "{name}: {body}"
        );
        assert_eq!(ask(&gw).unwrap().0, "a", "{name}: the old config serves");
        let cfg = serving(&gw);
        assert_eq!(cfg["generation"], 1, "{name}");
        assert!(
            cfg["last_reload_error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{name}: {cfg}"
        );
    }
    gw.metrics_containing(&[r#"tracebridge_config_reloads_total{result="error"} "#]);
    std::fs::write(&path, &good_b).unwrap();
    let (status, body) = reload(&gw, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(ask(&gw).unwrap().0, "b");
    assert!(
        serving(&gw)["last_reload_error"].is_null(),
        "a good reload clears the error"
    );
}

fn wait_for_origin(gw: &TestGateway, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if ask(gw).map(|r| r.0).as_deref() == Ok(want) {
            return;
        }
        assert!(Instant::now() < deadline, "never switched to {want}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn file_edits_apply_by_themselves_and_a_deleted_file_changes_nothing() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let gw = TestGateway::start_file(&path, &config(&a, "tracecontext"));
    let text_b = gw.render(&config(&b, "b3multi"));
    // An editor's write-to-temp-and-rename.
    let tmp = dir.path().join(".tracebridge.toml.swp");
    std::fs::write(&tmp, &text_b).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_for_origin(&gw, "b");
    // Deleted: the old config keeps serving, the error is visible.
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(ask(&gw).unwrap().0, "b");
    assert!(serving(&gw)["last_reload_error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot read"));
    // Recreated: applies.
    std::fs::write(&path, gw.render(&config(&a, "tracecontext"))).unwrap();
    wait_for_origin(&gw, "a");
}

#[test]
fn a_configmap_symlink_swap_is_followed() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The layout kubelet gives a mounted ConfigMap.
    std::fs::create_dir(d.join("..2026_11_24_first")).unwrap();
    std::os::unix::fs::symlink("..2026_11_24_first", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tracebridge.toml", d.join("tracebridge.toml")).unwrap();
    // Written through the symlinks, read as the pod reads it.
    let gw = TestGateway::start_file(&d.join("tracebridge.toml"), &config(&a, "tracecontext"));
    assert!(d.join("..2026_11_24_first/tracebridge.toml").is_file());
    let text_b = gw.render(&config(&b, "b3multi"));
    std::fs::create_dir(d.join("..2026_11_24_second")).unwrap();
    std::fs::write(d.join("..2026_11_24_second/tracebridge.toml"), text_b).unwrap();
    std::os::unix::fs::symlink("..2026_11_24_second", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    wait_for_origin(&gw, "b");
}

#[test]
fn reload_endpoint_requires_the_token_when_set() {
    let a = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let with_token = config(&a, "tracecontext").replace(
        "threads = 2",
        "threads = 2\n        admin_token = \"s3cret\"",
    );
    let gw = TestGateway::start_file(&path, &with_token);
    assert_eq!(reload(&gw, None).0, 401);
    assert_eq!(reload(&gw, Some("wrong")).0, 401);
    let (status, body) = reload(&gw, Some("s3cret"));
    assert_eq!(status, 200);
    assert_eq!(body["changed"], false, "unchanged file: nothing swapped");
}

#[test]
fn sighup_reloads() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let port = support::free_port();
    let admin = support::free_port();
    let render = |o: &Origin, f: &str| {
        config(o, f)
            .replace("{listen}", &format!("127.0.0.1:{port}"))
            .replace("{admin}", &format!("127.0.0.1:{admin}"))
            + "\n[telemetry]\nexporter = \"none\"\n"
    };
    std::fs::write(&path, render(&a, "tracecontext")).unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tracebridge"))
        .arg("--config")
        .arg(&path)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let origin = || -> Option<String> {
        let v: Value = serde_json::from_str(&client().get(&url).send().ok()?.text().ok()?).ok()?;
        v["origin"].as_str().map(String::from)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin().is_none() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&path, render(&b, "b3multi")).unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(3);
    while origin().as_deref() != Some("b") {
        assert!(Instant::now() < deadline, "not reloaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains("SIGHUP: reloading the config"), "{stderr}");
}
