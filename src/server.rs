//! Assembles the pingora server: the proxy service on every listener, the admin
//! service, and the health checker; binds the listeners up front.
//!
//! pingora binds inside a service thread and only panics that thread when a port is
//! taken, leaving a process that looks alive but serves nothing. So the listeners are
//! bound here, before the server starts: a taken port is a clear start-up error (exit
//! code 1 from `main`). The bound sockets are handed to pingora through its listening
//! socket table — the same table a zero-downtime upgrade (`--upgrade`) fills from the
//! old process, in which case nothing is bound here.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{
    ListenFds, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch,
};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service as ListeningService;
use pingora::services::Service;

use crate::admin::{Admin, Readiness};
use crate::config::UpstreamKind;
use crate::proxy::fast::Front;
use crate::proxy::limits::{Limited, OpenConnections};
use crate::proxy::Gateway;
use crate::reload::ConfigHandle;
use crate::telemetry::{Metrics, Telemetry};
use pingora::listeners::{L4BufferSettings, ListenerConfig};

/// How the process was asked to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Take the listening sockets over from a running instance (pingora's zero-downtime
    /// upgrade): start the new binary with `--upgrade`, then send SIGQUIT to the old one.
    pub upgrade: bool,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound (in use, no permission, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS listener's certificate or key could not be loaded.
    #[error("cannot load TLS certificate or key for {addr}: {message}")]
    Tls {
        /// The listener address.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The metrics registry refused a metric (a programming error).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A server ready to `run`, with the handles tests and `main` need.
pub struct Built {
    /// The pingora server.
    pub server: Server,
    /// Set once the proxy listeners are bound.
    pub readiness: Arc<Readiness>,
    /// The gateway's metrics.
    pub metrics: Arc<Metrics>,
    /// The span pipeline: flush it after the server stops.
    pub telemetry: Arc<Telemetry>,
    /// Client connections open now.
    pub open_connections: Arc<OpenConnections>,
    /// Stops the proxy listeners (and idle keep-alive connections) when a drain starts.
    drain: Arc<tokio::sync::watch::Sender<bool>>,
    config: Arc<ConfigHandle>,
}

impl Built {
    /// `signal` with SIGTERM turned into a drain (see [`DrainOnTerm`]).
    pub fn drain_on_term(
        &self,
        signal: Box<dyn ShutdownSignalWatch + Send + Sync>,
    ) -> Box<dyn ShutdownSignalWatch> {
        Box::new(DrainOnTerm {
            inner: signal,
            config: self.config.clone(),
            readiness: self.readiness.clone(),
            open: self.open_connections.clone(),
            drain: self.drain.clone(),
        })
    }

    /// Runs the server until `signal` stops it, SIGTERM draining as [`DrainOnTerm`] says.
    pub fn run(self, signal: Box<dyn ShutdownSignalWatch + Send + Sync>) {
        let shutdown_signal = self.drain_on_term(signal);
        self.server.run(RunArgs { shutdown_signal });
    }
}

/// Builds the whole gateway over `config`, with the span pipeline of its `[telemetry]`.
pub fn build(config: Arc<ConfigHandle>, opts: StartOptions) -> Result<Built, StartError> {
    let telemetry = Arc::new(Telemetry::from_settings(&config.load().telemetry));
    build_with_telemetry(config, opts, telemetry)
}

/// Builds the whole gateway over `config` with a given span pipeline (tests pass an
/// in-memory exporter).
pub fn build_with_telemetry(
    config: Arc<ConfigHandle>,
    opts: StartOptions,
    telemetry: Arc<Telemetry>,
) -> Result<Built, StartError> {
    let snapshot = config.load();
    let settings = &snapshot.server;
    let metrics = Arc::new(Metrics::new()?);
    metrics.config_generation.set(snapshot.generation as i64);
    let readiness = Arc::new(Readiness::default());

    let conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(settings.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.shutdown_timeout.as_secs()),
        upgrade_sock: settings.upgrade_sock.clone(),
        pid_file: settings.pid_file.clone(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: opts.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let gateway = Gateway::new(config.clone(), metrics.clone(), telemetry.clone());
    let core = gateway.core();
    let mut app = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2c = settings.h2c;
    // HTTP/2 connections get the keep-alive idle timeout from pingora (the HTTP/1
    // deadlines of `Limited` do not apply to them); set at start-up only.
    options.h2_idle_timeout = Some(settings.keepalive_timeout).filter(|d| !d.is_zero());
    app.server_options = Some(options);
    let open_connections = OpenConnections::new(metrics.downstream_connections.clone());
    let mut proxy = ListeningService::new(
        "tracebridge proxy".to_string(),
        Limited::new(
            Front::new(core, app),
            config.clone(),
            &metrics,
            open_connections.clone(),
        ),
    );
    proxy.threads = Some(settings.threads);
    let mut proxy_addrs = Vec::new();
    for addr in &settings.listen {
        // No L4 read buffer on plain listeners: pingora's default is a 64 KiB
        // zero-filled `BufReader` per connection, which made up most of the memory of
        // 1,000 keep-alive connections, and its extra copy bought nothing here: the
        // HTTP/1 parser reads into a buffer of its own. TLS listeners keep the default
        // (TLS reads records of up to 16 KiB, where the buffer saves system calls).
        proxy
            .add_listener(ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::default().read(0)));
        proxy_addrs.push(addr.clone());
    }
    for tls in &settings.tls {
        let mut tls_settings =
            TlsSettings::intermediate(&tls.cert, &tls.key).map_err(|e| StartError::Tls {
                addr: tls.listen.clone(),
                message: e.to_string(),
            })?;
        tls_settings.enable_h2();
        proxy.add_tls_with_settings(&tls.listen, None, tls_settings);
        proxy_addrs.push(tls.listen.clone());
    }

    let mut admin = ListeningService::new(
        "tracebridge admin".to_string(),
        Admin::new(
            config.clone(),
            metrics.clone(),
            telemetry.clone(),
            readiness.clone(),
        ),
    );
    admin.threads = Some(1);
    admin.add_tcp(&settings.admin_listen);

    let (drain, drain_rx) = tokio::sync::watch::channel(false);
    let mut bound_proxy =
        PreBound::new(proxy, &proxy_addrs, opts.upgrade, Some(readiness.clone()))?;
    bound_proxy.drain = Some(drain_rx);
    let bound_admin = PreBound::new(
        admin,
        std::slice::from_ref(&settings.admin_listen),
        opts.upgrade,
        None,
    )?;
    server.add_service(bound_proxy);
    server.add_service(bound_admin);
    server.add_service(background_service(
        "tracebridge health",
        HealthChecker {
            config: config.clone(),
        },
    ));
    server.add_service(background_service(
        "tracebridge sighup",
        ReloadOnHangup {
            config: config.clone(),
        },
    ));
    Ok(Built {
        server,
        readiness,
        metrics,
        telemetry,
        open_connections,
        drain: Arc::new(drain),
        config,
    })
}

/// SIGTERM as a drain that ends when the last client connection does.
///
/// pingora's own SIGTERM handling closes every listener at once — the admin listener
/// too, so `/readyz` cannot say "draining" — then sleeps the whole grace period
/// whatever is in flight. Here, on SIGTERM: the drain is logged, `/readyz` answers 503,
/// the proxy listeners close and idle keep-alive connections are closed (as nginx's
/// graceful shutdown does), in-flight requests finish (with `Connection: close`), and
/// the process stops as soon as no client connection is left, or when `grace_period`
/// ends. The admin listener stays up until then. Other signals pass through to pingora
/// unchanged (SIGQUIT keeps pingora's upgrade hand-over and grace period).
struct DrainOnTerm {
    inner: Box<dyn ShutdownSignalWatch + Send + Sync>,
    config: Arc<ConfigHandle>,
    readiness: Arc<Readiness>,
    open: Arc<OpenConnections>,
    drain: Arc<tokio::sync::watch::Sender<bool>>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnTerm {
    async fn recv(&self) -> ShutdownSignal {
        let signal = self.inner.recv().await;
        if !matches!(signal, ShutdownSignal::GracefulTerminate) {
            return signal;
        }
        let grace = self.config.load().server.grace_period;
        let started = Instant::now();
        log::info!(
            "SIGTERM: draining for up to {} (grace_period): /readyz answers 503, new connections are refused, {} client connections open",
            humantime::format_duration(grace),
            self.open.get()
        );
        self.readiness.set_draining();
        let _ = self.drain.send(true);
        let drained = async {
            while self.open.get() > 0 && started.elapsed() < grace {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            () = drained => {}
            // A second signal (SIGINT) stops at once.
            _ = self.inner.recv() => log::info!("stopping at once: another signal during the drain"),
        }
        match self.open.get() {
            0 => log::info!(
                "drained in {:.1?}: no client connection left; stopping",
                started.elapsed()
            ),
            n => log::warn!("grace period over: closing {n} client connections"),
        }
        // The drain is done: pingora's graceful path would sleep the grace period again.
        ShutdownSignal::FastShutdown
    }
}

/// Resolves when `watch` turns true; never when its sender is gone without that.
async fn fired(mut watch: tokio::sync::watch::Receiver<bool>) {
    if watch.wait_for(|on| *on).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A listening service whose sockets were bound before the server started.
struct PreBound<S> {
    inner: S,
    bound: Vec<(String, TcpListener)>,
    readiness: Option<Arc<Readiness>>,
    /// A drain that stops this service before pingora's shutdown does.
    drain: Option<tokio::sync::watch::Receiver<bool>>,
}

impl<S: Service> PreBound<S> {
    fn new(
        inner: S,
        addrs: &[String],
        upgrade: bool,
        readiness: Option<Arc<Readiness>>,
    ) -> Result<Self, StartError> {
        let mut bound = Vec::new();
        // On --upgrade the old process still owns the ports and hands them over.
        if !upgrade {
            for addr in addrs {
                let bind_error = |source| StartError::Bind {
                    addr: addr.clone(),
                    source,
                };
                let listener = TcpListener::bind(addr.as_str()).map_err(bind_error)?;
                // pingora's runtime polls the socket: it must not block.
                listener.set_nonblocking(true).map_err(bind_error)?;
                bound.push((addr.clone(), listener));
            }
        }
        Ok(PreBound {
            inner,
            bound,
            readiness,
            drain: None,
        })
    }
}

#[async_trait]
impl<S: Service> Service for PreBound<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let Some(fds) = &fds {
            let mut table = fds.lock();
            for (addr, listener) in self.bound.drain(..) {
                if table.get(&addr).is_none() {
                    table.add(addr, listener.into_raw_fd());
                }
            }
        }
        if let Some(r) = &self.readiness {
            r.set_ready();
        }
        // The service sees one shutdown watch: on at pingora's shutdown or at the drain.
        let shutdown = match self.drain.take() {
            Some(drain) => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    tokio::select! {
                        () = fired(shutdown) => {}
                        () = fired(drain) => {}
                    }
                    let _ = tx.send(true);
                });
                rx
            }
            None => shutdown,
        };
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await;
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

/// Reloads the config on SIGHUP.
struct ReloadOnHangup {
    config: Arc<ConfigHandle>,
}

#[async_trait]
impl BackgroundService for ReloadOnHangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot listen for SIGHUP: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    log::info!("SIGHUP: reloading the config");
                    // A file read and compile: off the async worker.
                    let config = self.config.clone();
                    let _ = tokio::task::spawn_blocking(move || config.reload()).await;
                }
            }
        }
    }
}

/// Runs the active health checks of the current config's upstreams, each at its own
/// interval. Reads the snapshot every tick, so reloaded upstreams are picked up.
struct HealthChecker {
    config: Arc<ConfigHandle>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Last run per (generation, upstream index).
        let mut last: HashMap<(u64, usize), Instant> = HashMap::new();
        loop {
            let snapshot = self.config.load();
            last.retain(|(generation, _), _| *generation == snapshot.generation);
            for (i, upstream) in snapshot.upstreams.iter().enumerate() {
                let UpstreamKind::Http(up) = &upstream.kind else {
                    continue;
                };
                let Some(interval) = up.spec.health_check.as_ref().map(|h| h.interval) else {
                    continue;
                };
                let key = (snapshot.generation, i);
                if last.get(&key).is_none_or(|t| t.elapsed() >= interval) {
                    last.insert(key, Instant::now());
                    up.lb.backends().run_health_check(true).await;
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}
