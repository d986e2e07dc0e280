//! Config validation and safe reload (issue 17, items 7, 14 and 16), through the built
//! binary and the real gateway: `check` lists every problem even beside unknown keys,
//! with "did you mean"; routes that never match are warned about; an empty or
//! truncated file never replaces a working config (truncate-then-write under load
//! fails no request); a reload cannot drop the admin token by omission; a FIFO or a
//! device as config file is refused at once, and so are oversized files and configs.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{client, one_route, poll_until, Origin, TestGateway};
use tracebridge::config;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracebridge"))
}

/// Runs the binary with `args`, killing it after `limit` (a hang is a failure, never
/// a stuck test).
fn run_bounded(args: &[&std::ffi::OsStr], limit: Duration) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check(path: &Path) -> Output {
    run_bounded(
        &["check".as_ref(), "--config".as_ref(), path.as_os_str()],
        Duration::from_secs(20),
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_reports_unknown_keys_beside_every_other_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    // The issue's file: before, only "line 6: unknown field" was reported.
    std::fs::write(
        &path,
        r#"
[server]
grace_period = "ten seconds"

[server.limits_that_do_not_exist]
bogus_knob = 1

[propagation]
injct = ["b3"]
extract = ["zipkin", "tracecontext"]

[upstreams.orders]
peers = ["127.0.0.1:9000"]

[[routes]]
name = "orders"
upstream = "ordrs"
"#,
    )
    .unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for want in [
        "5 problems",
        "line 5: server.limits_that_do_not_exist: unknown key `limits_that_do_not_exist`",
        "line 9: propagation.injct: unknown key `injct`; did you mean `inject`?",
        "server.grace_period: invalid duration",
        "propagation.extract[0]: unknown format \"zipkin\"; did you mean `b3` or `b3multi`?",
        "routes[0].upstream: no upstream named \"ordrs\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn check_warns_about_routes_that_never_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shadowed.toml");
    std::fs::write(
        &path,
        r#"
[upstreams.e]
kind = "echo"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "e"

[[routes]]
name = "api-again"
path_prefix = "/api"
upstream = "e"

[[routes]]
name = "reads"
path_prefix = "/v1"
methods = ["GET", "HEAD"]
upstream = "e"

[[routes]]
name = "gets"
path_prefix = "/v1"
methods = ["GET"]
upstream = "e"
"#,
    )
    .unwrap();
    let out = check(&path);
    let err = stderr(&out);
    assert!(out.status.success(), "warnings do not fail check: {err}");
    assert!(
        err.contains("warning: routes[1]: route \"api-again\" duplicates routes[0] (\"api\")"),
        "{err}"
    );
    assert!(
        err.contains("warning: routes[3]: route \"gets\" is shadowed by routes[2] (\"reads\")"),
        "{err}"
    );
    assert_eq!(err.matches("warning:").count(), 2, "{err}");
}

#[test]
fn a_fifo_or_a_device_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tracebridge.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for path in [fifo.as_path(), link.as_path()] {
        let out = check(path);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("it is a FIFO; a config must be a regular file"),
            "{}",
            stderr(&out)
        );
    }
    // Start-up reads the file the same way (and would block forever on a FIFO).
    let out = run_bounded(
        &["--config".as_ref(), fifo.as_os_str()],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it is a FIFO"), "{}", stderr(&out));
    // A device never ends.
    let out = check(Path::new("/dev/zero"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it is a device"), "{}", stderr(&out));
}

#[test]
fn an_oversized_file_or_config_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(config::MAX_FILE_BYTES + 1).unwrap();
    let out = check(&big);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("larger than 4 MiB, the most a config file may be"),
        "{}",
        stderr(&out)
    );
    // One route more than the limit, in a file well under the size cap.
    let mut text = String::from("[upstreams.e]\nkind = \"echo\"\n");
    for i in 0..=config::validate::MAX_ROUTES {
        text.push_str(&format!(
            "[[routes]]\npath_prefix = \"/{i}\"\nupstream = \"e\"\n"
        ));
    }
    let many = dir.path().join("many.toml");
    std::fs::write(&many, &text).unwrap();
    let out = check(&many);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("1 problem"), "{err}");
    assert!(
        err.contains("routes: 10001 entries; at most 10000 are allowed"),
        "{err}"
    );
}

#[test]
fn an_empty_file_or_one_without_routes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    std::fs::write(&path, "").unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the file is empty"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&path, "[upstreams.e]\nkind = \"echo\"\n").unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("routes: no route"),
        "{}",
        stderr(&out)
    );
    // The documented opt-in.
    std::fs::write(&path, "[server]\nallow_no_routes = true\n").unwrap();
    assert!(check(&path).status.success());
}

/// Requests in a loop until `stop` (bounded by `limit`), counting non-2xx answers and
/// connection errors.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, threads: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let (url, stop, served, failures) =
                    (url.clone(), stop.clone(), served.clone(), failures.clone());
                std::thread::spawn(move || {
                    let c = client();
                    let deadline = Instant::now() + limit;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match c.get(&url).send() {
                            Ok(r) if r.status().is_success() => {
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures.lock().unwrap().push(format!("{}", r.status())),
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            served,
            failures,
            threads,
        }
    }

    /// Stops the loop; (served, failures).
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.served.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn truncate_then_write_under_load_fails_no_request() {
    let origin = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let template = one_route(origin.addr, 2, "admin_token = \"s3cret\"", "");
    let gw = TestGateway::start_file(&path, &template);
    let first = gw.render(&template);
    // The edited config: same route, another name.
    let edited = first.replace("name = \"main\"", "name = \"edited\"");
    let load = Load::start(gw.url("/"), 2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    // An editor that truncates, then writes 0.5 s later (the issue's pattern) ...
    std::fs::File::create(&path).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&path, &edited).unwrap();
    // ... and one that writes in two pieces, the first a valid TOML file with no route.
    let cut = edited.find("[[routes]]").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(&path, &first[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&path, &first).unwrap();
    let want = config::sha256_hex(&first);
    poll_until(Duration::from_secs(10), || {
        let s = gw.handle.load();
        if s.source.sha256 == want && s.generation >= 3 {
            Ok(())
        } else {
            Err(format!(
                "the final file never applied: generation {}",
                s.generation
            ))
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let (served, failures) = load.finish();
    eprintln!(
        "truncate-then-write under load: {served} requests served, {} failed, {} reloads \
         rejected",
        failures.len(),
        gw.handle.reloads_failed.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        served + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(served > 50, "traffic flowed: {served}");
    // The token survived every intermediate state.
    assert_eq!(gw.handle.load().server.admin_token, "s3cret");
}

#[test]
fn a_reload_cannot_drop_the_admin_token_by_omission() {
    let origin = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let template = one_route(origin.addr, 2, "admin_token = \"s3cret\"", "");
    let gw = TestGateway::start_file(&path, &template);
    let reload = |token: Option<&str>| {
        let mut req = client().post(gw.admin_url("/reload"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap().status().as_u16()
    };
    // Rewritten without the token line: the watcher's reload is rejected ...
    let without = gw.render(&template).replace("admin_token = \"s3cret\"", "");
    std::fs::write(&path, &without).unwrap();
    poll_until(Duration::from_secs(10), || match gw.handle.last_error() {
        Some(e) if e.message.contains("server.admin_token") => Ok(()),
        other => Err(format!("no rejection seen: {other:?}")),
    });
    // ... so POST /reload still needs the token, and with it is rejected too.
    assert_eq!(gw.handle.load().generation, 1);
    assert_eq!(reload(None), 401);
    assert_eq!(reload(Some("s3cret")), 400);
    // Said explicitly, it applies.
    let opt_in = gw.render(&template).replace(
        "admin_token = \"s3cret\"",
        "allow_admin_token_removal = true",
    );
    std::fs::write(&path, &opt_in).unwrap();
    poll_until(Duration::from_secs(10), || {
        let s = gw.handle.load();
        if s.server.admin_token.is_empty() {
            Ok(())
        } else {
            Err(format!("still generation {}", s.generation))
        }
    });
    assert_eq!(reload(None), 200);
}

#[test]
fn a_file_written_in_pieces_is_read_once_whole() {
    // Two routes; the first piece alone is a valid config with only route `a`.
    let origin = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let template = one_route(
        origin.addr,
        2,
        "",
        "path_prefix = \"/a\"\n[[routes]]\nname = \"b\"\npath_prefix = \"/b\"\nupstream = \"origin\"",
    );
    let gw = TestGateway::start_file(&path, &template);
    let whole = gw.render(&template);
    let cut = whole.rfind("[[routes]]").unwrap();
    let load = Load::start(gw.url("/b"), 2, Duration::from_secs(30));
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        // A writer that pauses longer than the event debounce (200 ms) mid-file: the
        // content has not settled when the events have.
        std::fs::write(&path, &whole[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, &whole.as_bytes()[cut..]).unwrap();
        drop(f);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let (served, failures) = load.finish();
    eprintln!(
        "written in pieces: {served} requests served, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        served + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(served > 50, "traffic flowed: {served}");
    assert_eq!(gw.handle.load().router.len(), 2);
}

#[test]
fn a_reload_shows_its_route_warnings_in_config_status() {
    let origin = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracebridge.toml");
    let template = one_route(origin.addr, 2, "", "");
    let gw = TestGateway::start_file(&path, &template);
    let status = || -> serde_json::Value {
        serde_json::from_str(
            &client()
                .get(gw.admin_url("/config"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(status()["warnings"], serde_json::json!([]));
    // The same route twice: valid, the second never matches.
    let doubled = gw.render(&format!(
        "{template}\n[[routes]]\nname = \"again\"\nupstream = \"origin\"\n"
    ));
    std::fs::write(&path, doubled).unwrap();
    let warnings = poll_until(Duration::from_secs(10), || {
        let w = status()["warnings"].clone();
        if w.as_array().is_some_and(|a| !a.is_empty()) {
            Ok(w)
        } else {
            Err(format!("no warning after the reload: {w}"))
        }
    });
    assert_eq!(
        warnings[0].as_str().unwrap(),
        "routes[1]: route \"again\" duplicates routes[0] (\"main\"), which matches every \
         request it would and comes first: it never matches"
    );
}
