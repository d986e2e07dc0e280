//! Shared helpers for integration tests: the real gateway booted in-process on free
//! loopback ports, real origin servers, and a blocking HTTP client.
#![allow(dead_code)] // each test binary uses a different subset

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::oneshot;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracebridge::config;
use tracebridge::reload::ConfigHandle;
use tracebridge::server::{self, StartOptions};
use tracebridge::telemetry::tracer::Identity;
use tracebridge::telemetry::Telemetry;

pub mod otlp;
#[allow(unused_imports)] // each test binary uses a different subset
pub use otlp::{otlp_attr, poll_until, Background, CollectorMode, OriginBody, OtlpReceiver};

/// Spans the gateway exported, collected in memory (the test side of the exporter).
#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<std::sync::Mutex<Vec<SpanData>>>);

impl SpanExporter for Spans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

impl Spans {
    /// Every span exported so far.
    pub fn all(&self) -> Vec<SpanData> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until at least `n` spans were exported (spans end in the logging phase,
    /// just after the response), then returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<SpanData> {
        poll_until(Duration::from_secs(5), || {
            let all = self.all();
            if all.len() >= n {
                Ok(all)
            } else {
                Err(format!("only {} of {n} spans exported", all.len()))
            }
        })
    }
}

/// A loopback port nothing listens on, for an upstream that refuses connections: port
/// 1 (tcpmux, unused). A [`free_port`] would do only until another test running in
/// parallel binds it, and then the "dead" upstream answers.
pub const DEAD_PORT: u16 = 1;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A gateway config (for [`TestGateway::start`]) with one upstream `origin` at
/// `origin` and one route `main` to it: `threads` workers, `sections` right after
/// `threads` (more `[server]` keys, or whole sections), `route` as more keys of the
/// route.
pub fn one_route(origin: SocketAddr, threads: usize, sections: &str, route: &str) -> String {
    format!(
        r#"
        [server]
        listen = ["{{listen}}"]
        admin_listen = "{{admin}}"
        threads = {threads}
        {sections}
        [upstreams.origin]
        peers = ["{origin}"]
        [[routes]]
        name = "main"
        upstream = "origin"
        {route}
        "#
    )
}

/// `{listen}` / `{admin}` replaced, and the in-memory span exporter unless the
/// config names its own `[telemetry]`. With `TRACEBRIDGE_TEST_PATH=fallback` in the
/// environment every gateway runs with `[server] fast_path = false`, so the same
/// suites and assertions check both proxy paths (`.ci/run` runs them both ways).
fn render(template: &str, port: u16, admin_port: u16) -> String {
    let mut text = template
        .replace("{listen}", &format!("127.0.0.1:{port}"))
        .replace("{admin}", &format!("127.0.0.1:{admin_port}"));
    if fallback_path() && !text.contains("fast_path") {
        text = text.replacen("[server]", "[server]\nfast_path = false", 1);
    }
    if !text.contains("[telemetry]") {
        text.push_str("\n[telemetry]\nexporter = \"none\"\n");
    }
    text
}

/// Whether this run checks the fallback path (`TRACEBRIDGE_TEST_PATH=fallback`);
/// otherwise the default, the fast path.
pub fn fallback_path() -> bool {
    match std::env::var("TRACEBRIDGE_TEST_PATH").as_deref() {
        Ok("fallback") => true,
        Ok("fast") | Err(_) => false,
        Ok(other) => panic!("TRACEBRIDGE_TEST_PATH={other}: expected fast or fallback"),
    }
}

/// Shuts the in-process server down when the test drops the gateway.
struct TestSignal(std::sync::Mutex<Option<oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for TestSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().unwrap().take();
        match rx {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending::<()>().await,
        }
        ShutdownSignal::FastShutdown
    }
}

/// The real gateway, running in this process on free ports.
pub struct TestGateway {
    /// Proxy port (plain TCP).
    pub port: u16,
    /// Admin port.
    pub admin_port: u16,
    /// The live config.
    pub handle: Arc<ConfigHandle>,
    /// Spans the gateway exported.
    pub spans: Spans,
    /// The config file watcher, for gateways started from a file.
    _watcher: Option<notify::RecommendedWatcher>,
    _server: Background,
}

impl TestGateway {
    /// Boots a gateway on `toml`, where `{listen}` and `{admin}` are replaced by free
    /// loopback addresses. Waits until `/readyz` answers 200. Spans are collected in
    /// `spans` unless the config names a real exporter (then `[telemetry] exporter`
    /// must be given explicitly: the default for tests is in-memory).
    pub fn start(toml: &str) -> TestGateway {
        Self::boot(toml, None, false)
    }

    /// Like [`TestGateway::start`], but the config lives in the file `path` (written
    /// with the placeholders replaced) and the file is watched for live reloads.
    /// Returns the gateway and the text with the placeholders replaced, for edits.
    pub fn start_file(path: &std::path::Path, toml: &str) -> TestGateway {
        Self::boot(toml, Some(path), false)
    }

    /// `template` with this gateway's addresses (and the in-memory exporter default).
    pub fn render(&self, template: &str) -> String {
        render(template, self.port, self.admin_port)
    }

    /// Boots on fresh free ports. A port found free can be taken before the gateway
    /// binds it (by another test's outgoing connection, which draws its local port from
    /// the same range), so a bind conflict is retried on other ports.
    /// Like [`TestGateway::start`], but with the span pipeline the config names built
    /// as the binary builds it, `exporter = "none"` included (`spans` stays empty).
    pub fn start_real_telemetry(toml: &str) -> TestGateway {
        Self::boot(toml, None, true)
    }

    fn boot(toml: &str, file: Option<&std::path::Path>, real_telemetry: bool) -> TestGateway {
        let mut attempts = 0;
        loop {
            match Self::try_boot(toml, file, real_telemetry) {
                Err(server::StartError::Bind { addr, source })
                    if source.kind() == std::io::ErrorKind::AddrInUse && attempts < 5 =>
                {
                    attempts += 1;
                    eprintln!("{addr} was taken before the gateway bound it; new ports");
                }
                other => return other.expect("build"),
            }
        }
    }

    fn try_boot(
        toml: &str,
        file: Option<&std::path::Path>,
        real_telemetry: bool,
    ) -> Result<TestGateway, server::StartError> {
        let port = free_port();
        // Two draws can give the same port back (it was free both times): redraw.
        let admin_port = (0..100)
            .map(|_| free_port())
            .find(|p| *p != port)
            .expect("a second free port");
        let text = render(toml, port, admin_port);
        if let Some(path) = file {
            std::fs::write(path, &text).expect("write config");
        }
        let snapshot = config::load_str(&text, file, 1).unwrap_or_else(|e| panic!("{e}"));
        let spans = Spans::default();
        let settings = snapshot.telemetry.clone();
        let handle = ConfigHandle::new(snapshot, file.map(|p| p.to_path_buf()));
        let watcher = file.map(|_| {
            tracebridge::reload::watch(handle.clone(), Duration::from_millis(200)).expect("watch")
        });
        let exporter = spans.clone();
        // Tests that exercise the real pipeline (OTLP, stdout) configure an exporter;
        // the rest collect spans in memory.
        let telemetry = match settings.exporter {
            config::Exporter::None if !real_telemetry => Telemetry::new(
                &Identity {
                    service_name: settings.service_name.clone(),
                    service_instance: settings.service_instance.clone(),
                    host_name: "test-host".into(),
                    extra: vec![],
                },
                settings.max_traces_per_second,
                settings.degradation,
                |b, _, _| b.with_simple_exporter(exporter),
            ),
            _ => Telemetry::from_settings(&settings),
        };
        let built = server::build_with_telemetry(
            handle.clone(),
            StartOptions::default(),
            Arc::new(telemetry),
        )?;
        let (tx, rx) = oneshot::channel();
        let signal = TestSignal(std::sync::Mutex::new(Some(rx)));
        let thread = std::thread::spawn(move || {
            built.server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        let gw = TestGateway {
            port,
            admin_port,
            handle,
            spans,
            _watcher: watcher,
            _server: Background::new(tx, thread),
        };
        gw.wait_ready();
        Ok(gw)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = client().get(self.admin_url("/readyz")).send() {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway not ready after 10 s");
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `/metrics` text once it contains every one of `needles` (metrics are
    /// counted in the logging phase, just after the response is sent), or panics
    /// after 5 s showing the last page.
    pub fn metrics_containing(&self, needles: &[&str]) -> String {
        poll_until(Duration::from_secs(5), || {
            let text = client()
                .get(self.admin_url("/metrics"))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default();
            if needles.iter().all(|n| text.contains(n)) {
                Ok(text)
            } else {
                Err(format!("metrics never showed {needles:?}:\n{text}"))
            }
        })
    }

    /// The admin URL for `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }
}

/// A blocking client with short timeouts and no proxy.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Sends `GET /` with `headers` (a name given twice goes out as two fields), expects
/// 200, and returns the JSON the origin answers with (`headers`: what it received).
pub fn origin_answer(gw: &TestGateway, headers: &[(&str, &str)]) -> serde_json::Value {
    let mut req = client().get(gw.url("/"));
    for (k, v) in headers {
        // `header` appends: a name given twice goes out as two fields.
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status(), 200);
    serde_json::from_str(&resp.text().expect("body")).expect("json")
}

/// A real HTTP origin (hyper; HTTP/1.1 and h2c) on a free port that answers every
/// request with JSON: its own name, the method, path and the headers it received.
pub struct Origin {
    /// Its address.
    pub addr: SocketAddr,
    _server: Background,
}

impl Origin {
    /// Starts an origin named `name`.
    pub fn start(name: &'static str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| answer(name, req));
                                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Origin {
            addr,
            _server: Background::new(tx, thread),
        }
    }
}

async fn answer(name: &str, req: Request<Incoming>) -> Result<Response<OriginBody>, Infallible> {
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_string(),
            serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        );
    }
    // A gRPC-style request (content type application/grpc) gets trailers at the end.
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let version = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "origin": name,
        "method": method,
        "path": path,
        "version": version,
        "headers": headers,
        "body_len": body.len(),
    });
    let trailers = grpc.then(|| {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        t.insert("grpc-message", http::HeaderValue::from_static("ok"));
        t
    });
    Ok(Response::builder()
        .header(
            "content-type",
            if grpc {
                "application/grpc"
            } else {
                "application/json"
            },
        )
        .body(OriginBody::new(
            Some(Bytes::from(json.to_string())),
            trailers,
        ))
        .expect("response"))
}

/// An origin that accepts connections and never answers (for timeouts). The
/// connections stay open until the origin is dropped.
pub struct StallingOrigin {
    /// Its address.
    pub addr: SocketAddr,
    _listener: TcpListener,
    thread: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl StallingOrigin {
    /// Starts it.
    pub fn start() -> StallingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let accept = listener.try_clone().expect("clone");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((s, _)) = accept.accept() {
                    held.push(s);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        StallingOrigin {
            addr,
            _listener: listener,
            thread: Some(thread),
            stop,
        }
    }
}

impl Drop for StallingOrigin {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends raw bytes and reads until the peer closes or `timeout` passes.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// A tiny HTTP/1.1 server whose answers a test scripts (a CORS-aware upstream, the
/// browser test's page server).
pub mod scripted;
