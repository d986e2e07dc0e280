//! The `tracebridge` binary: `check`, start-up failures, `--version`, and every file
//! in `conf/` (and the W3C conformance config in `tests/w3c/`, and the README's examples) validating.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracebridge"))
}

fn conf_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            conf_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_in_conf_validates() {
    let mut files = Vec::new();
    conf_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        &mut files,
    );
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let out = bin().arg("check").arg("--config").arg(&f).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
    }
}

/// The README's example configs are whole configs a reader may copy: each validates.
#[test]
fn every_config_in_the_readme_validates() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let f = dir.path().join(format!("readme-{i}.toml"));
        std::fs::write(&f, block).unwrap();
        let out = bin().arg("check").arg("--config").arg(&f).output().unwrap();
        assert!(
            out.status.success(),
            "README config {i}:\n{block}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn w3c_conformance_config_validates() {
    // tests/w3c/run.sh runs a copy of it with other ports; the file itself must stay valid.
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/w3c/tracebridge.toml");
    let out = bin().arg("check").arg("--config").arg(&f).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        f.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn builtin_default_is_the_conf_file() {
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/tracebridge.toml"),
    )
    .unwrap();
    assert_eq!(file, tracebridge::config::DEFAULT_CONFIG);
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
grace_period = "ten seconds"

[upstreams.orders]
peers = ["127.0.0.1:9000"]
connect_timeout = "-1s"

[[routes]]
name = "orders"
upstream = "ordrs"
"#,
    )
    .unwrap();
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problems"), "{err}");
    assert!(
        err.contains("server.grace_period: invalid duration"),
        "{err}"
    );
    assert!(
        err.contains("upstreams.orders.connect_timeout: invalid duration"),
        "{err}"
    );
    assert!(
        err.contains("routes[0].upstream: no upstream named \"ordrs\""),
        "{err}"
    );
}

#[test]
fn check_reports_syntax_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nthreads = 2\nlisten = [\"127.0.0.1:1\"\n").unwrap();
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") || err.contains("line 4"), "{err}");
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out = bin()
        .args(["check", "--config", "/nonexistent/tracebridge.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the file"));
}

#[test]
fn port_in_use_exits_1_with_a_clear_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             [upstreams.e]\nkind = \"echo\"\n[[routes]]\nupstream = \"e\"\n"
        ),
    )
    .unwrap();
    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    drop(taken);
}

#[test]
fn version_and_help() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tracebridge {}", env!("CARGO_PKG_VERSION"))
    );
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--config") && help.contains("--upgrade") && help.contains("check"));
}

/// Starts the binary on free ports with `grace_period`, waits until it serves.
fn start_gateway(dir: &Path, grace: &str) -> (std::process::Child, u16) {
    start_gateway_with(dir, grace, "[upstreams.e]\nkind = \"echo\"\n")
}

/// [`start_gateway`] with `upstream` (an `[upstreams.e]` section) instead of echo.
fn start_gateway_with(dir: &Path, grace: &str, upstream: &str) -> (std::process::Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("gw.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             grace_period = \"{grace}\"\nshutdown_timeout = \"1s\"\n\
             pid_file = \"{pid}\"\nupgrade_sock = \"{sock}\"\n\
             {upstream}[[routes]]\nupstream = \"e\"\n",
            pid = dir.join("pid").display(),
            sock = dir.join("upgrade.sock").display(),
        ),
    )
    .unwrap();
    let child = bin()
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Listening sockets are bound before the server runs; wait for an HTTP answer and
    // a moment more, so the signal handlers are installed before the test signals.
    while get_is_200(admin, "/readyz", std::time::Duration::from_secs(2)) != Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    (child, port)
}

/// `GET path` on `127.0.0.1:port` with `Connection: close`: whether the answer is a 200,
/// or `None` when the exchange failed (nothing listening yet, a reset, a timeout).
fn get_is_200(port: u16, path: &str, timeout: std::time::Duration) -> Option<bool> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.starts_with("HTTP/1.1 200"))
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(child: &mut std::process::Child, limit: std::time::Duration) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return started.elapsed();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sigterm_waits_the_configured_grace_period_and_sigint_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    // An upstream that accepts (the kernel's backlog) and never answers: a request to
    // it is in flight until the grace period ends.
    let stalled = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!(
        "[upstreams.e]\npeers = [\"{}\"]\n",
        stalled.local_addr().unwrap()
    );
    let (mut child, port) = start_gateway_with(dir.path(), "1s", &upstream);
    let in_flight =
        std::thread::spawn(move || get_is_200(port, "/", std::time::Duration::from_secs(10)));
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&child, "-TERM");
    let took = wait_exit(&mut child, std::time::Duration::from_secs(8));
    assert!(
        took >= std::time::Duration::from_millis(900),
        "grace period honoured: {took:?}"
    );
    assert_ne!(in_flight.join().unwrap(), Some(true));

    // With nothing in flight, SIGTERM does not wait out the grace period.
    let (mut child, _) = start_gateway(dir.path(), "30s");
    signal(&child, "-TERM");
    let took = wait_exit(&mut child, std::time::Duration::from_secs(5));
    assert!(
        took < std::time::Duration::from_secs(3),
        "idle drain: {took:?}"
    );

    let (mut child, _) = start_gateway(dir.path(), "30s");
    signal(&child, "-INT");
    let took = wait_exit(&mut child, std::time::Duration::from_secs(5));
    assert!(
        took < std::time::Duration::from_secs(3),
        "fast shutdown: {took:?}"
    );
}

#[test]
fn upgrade_hands_the_listening_socket_to_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let (mut old, port) = start_gateway(dir.path(), "1s");
    let get = || get_is_200(port, "/", std::time::Duration::from_secs(5));
    assert_eq!(get(), Some(true));
    // The new process waits on the upgrade socket for the old one's listeners.
    let mut new = bin()
        .arg("--config")
        .arg(dir.path().join("gw.toml"))
        .arg("--upgrade")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(&old, "-QUIT");
    // Requests keep succeeding through the handover: the socket never closes.
    let started = std::time::Instant::now();
    let mut served = 0;
    while started.elapsed() < std::time::Duration::from_secs(2) {
        assert_eq!(
            get(),
            Some(true),
            "request {served} failed during the upgrade"
        );
        served += 1;
    }
    wait_exit(&mut old, std::time::Duration::from_secs(10));
    assert_eq!(get(), Some(true), "the new process serves alone");
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new process is running"
    );
    signal(&new, "-INT");
    wait_exit(&mut new, std::time::Duration::from_secs(5));
}
