//! Stage 3 of 3: build the immutable [`Snapshot`] the request path reads.
//!
//! Everything a request needs is pre-built here — the router, the load balancers, a
//! peer template per upstream with its timeouts and TLS settings — so that a request
//! never parses config, resolves names or allocates config-derived state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::listeners::ALPN;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::upstreams::peer::HttpPeer;

use super::log_sink::LogSink;
use super::router::Router;
use super::validate::{
    HttpUpstreamSpec, Problem, Protocol, ServerSettings, TelemetrySettings, UpstreamKindSpec,
    Validated,
};

/// Where a snapshot's text came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file path, or `None` for the built-in default config.
    pub path: Option<PathBuf>,
    /// SHA-256 of the source text, lowercase hex.
    pub sha256: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

impl Source {
    /// The path for messages, or `<built-in>`.
    pub fn name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "<built-in>".to_string(),
        }
    }
}

/// One config generation, compiled. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Snapshot {
    /// Monotonic generation number (1 for the config the process started with).
    pub generation: u64,
    /// Where the text came from.
    pub source: Source,
    /// `[server]`: listeners and threads are read at start-up only.
    pub server: ServerSettings,
    /// `[telemetry]`: read at start-up only (the span pipeline is built once).
    pub telemetry: TelemetrySettings,
    /// The routes.
    pub router: Router,
    /// The upstreams, sorted by name; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
    /// The `[propagation]` defaults: the policy of requests that match no route.
    pub defaults: Arc<crate::mediate::Policy>,
    /// The access log, opened; `None` when disabled. Each generation opens its own, so
    /// a reload reopens the file (log rotation).
    pub access_log: Option<LogSink>,
    /// What validation found allowed but probably not meant (routes that never match);
    /// printed by `check`, logged at start-up and on reload.
    pub warnings: Vec<Problem>,
}

/// A compiled upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Its name (metric label, span attribute; shared with every span that names it).
    pub name: Arc<str>,
    /// What it is.
    pub kind: UpstreamKind,
}

/// Echo or real peers.
#[derive(Debug)]
pub enum UpstreamKind {
    /// The built-in echo service.
    Echo,
    /// Real peers behind a load balancer.
    Http(Arc<HttpUpstream>),
}

/// Real peers, their balancer and the peer template.
pub struct HttpUpstream {
    /// The validated settings.
    pub spec: HttpUpstreamSpec,
    /// Round-robin over the peers, skipping unhealthy ones when health checks run.
    pub lb: LoadBalancer<RoundRobin>,
    /// Options shared by every peer; the address is filled in per request.
    template: HttpPeer,
    /// Each peer's address as text (span attribute, access log), formatted once here
    /// rather than per request; deduplicated and sorted, as pingora's balancer holds them.
    addresses: Vec<(SocketAddr, Arc<str>)>,
    /// The round-robin position when no health check runs (see [`Self::select`]).
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl HttpUpstream {
    /// The next peer to try and its address as text, or `None` when every peer is
    /// unhealthy.
    pub fn select(&self) -> Option<(SocketAddr, Arc<str>)> {
        // Without a health check every peer is always ready: the same round robin over
        // the same sorted peer list as pingora's balancer, without its per-pick health
        // lookup (a SipHash of the backend), which was 5 % of a fast-path request.
        if self.spec.health_check.is_none() {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.addresses.get(i % self.addresses.len().max(1)).cloned();
        }
        let backend = self.lb.select(b"", 256)?;
        let address = match self.addresses.iter().find(|(a, _)| backend.addr == *a) {
            Some((_, text)) => text.clone(),
            None => backend.addr.to_string().into(),
        };
        Some((backend.addr, address))
    }

    /// The peer at `address` with this upstream's options (timeouts, TLS).
    pub fn peer(&self, address: SocketAddr) -> HttpPeer {
        let mut peer = self.template.clone();
        peer._address = address;
        peer
    }
}

/// Builds a snapshot from validated specs. Validation already checked everything that
/// can fail in practice; what is left is reported the same way.
pub(crate) fn compile(
    v: Validated,
    source: Source,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut upstreams = Vec::with_capacity(v.upstreams.len());
    for u in v.upstreams {
        let unchanged = |spec: &HttpUpstreamSpec| {
            previous?
                .upstreams
                .iter()
                .find(|p| *p.name == *u.name)
                .and_then(|p| match &p.kind {
                    UpstreamKind::Http(h) if h.spec == *spec => Some(h.clone()),
                    _ => None,
                })
        };
        let kind = match u.kind {
            UpstreamKindSpec::Echo => UpstreamKind::Echo,
            UpstreamKindSpec::Http(spec) => match unchanged(&spec) {
                Some(kept) => UpstreamKind::Http(kept),
                None => match http_upstream(&u.name, *spec) {
                    Ok(h) => UpstreamKind::Http(Arc::new(h)),
                    Err(message) => {
                        problems.push(Problem {
                            path: format!("upstreams.{}.peers", u.name),
                            message,
                            line: None,
                        });
                        continue;
                    }
                },
            },
        };
        upstreams.push(Upstream {
            name: u.name.into(),
            kind,
        });
    }
    let access_log = match (&v.access_log.enabled, &v.access_log.path) {
        (false, _) => None,
        (true, None) => Some(LogSink::stdout()),
        (true, Some(path)) => match LogSink::append(path) {
            Ok(sink) => Some(sink),
            Err(e) => {
                problems.push(Problem {
                    path: "access_log.path".to_string(),
                    message: format!("cannot open {} for appending: {e}", path.display()),
                    line: None,
                });
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Snapshot {
        generation,
        source,
        server: v.server,
        telemetry: v.telemetry,
        router: Router::new(&v.routes),
        upstreams,
        defaults: Arc::new(v.defaults),
        access_log,
        warnings: v.warnings,
    })
}

/// A health check that names its peer and failure in a few words. pingora logs each
/// health flip as `{backend_summary} becomes unhealthy, {error}`, and by default the
/// summary is the `Backend`'s debug dump and a connect error's context the whole peer
/// template (over a kilobyte on one line). This wrapper gives it `upstream NAME peer
/// ADDR` and the root cause (`Connection refused (os error 111)`), so an operator sees
/// one short line per flip.
struct NamedCheck {
    upstream: String,
    inner: Box<dyn HealthCheck + Send + Sync>,
}

/// `e`'s root cause in words, without the peer dumps of the outer contexts.
fn health_failure(e: &pingora::Error) -> Box<pingora::Error> {
    let root = e.root_cause();
    let why = if root.is::<pingora::Error>() {
        e.context
            .as_ref()
            .map_or_else(|| e.etype().as_str().to_string(), |c| c.to_string())
    } else {
        root.to_string()
    };
    pingora::Error::explain(e.etype().clone(), why)
}

#[async_trait::async_trait]
impl HealthCheck for NamedCheck {
    async fn check(&self, target: &pingora::lb::Backend) -> pingora::Result<()> {
        self.inner
            .check(target)
            .await
            .map_err(|e| health_failure(&e))
    }

    async fn health_status_change(&self, target: &pingora::lb::Backend, healthy: bool) {
        self.inner.health_status_change(target, healthy).await;
    }

    fn backend_summary(&self, target: &pingora::lb::Backend) -> String {
        format!("upstream {} peer {}", self.upstream, target.addr)
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.inner.health_threshold(success)
    }
}

fn http_upstream(name: &str, spec: HttpUpstreamSpec) -> Result<HttpUpstream, String> {
    // Addresses are already resolved, so this does no DNS.
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(spec.peers.iter().copied())
        .map_err(|e| format!("cannot build the peer set: {e}"))?;
    if let Some(hc) = &spec.health_check {
        let check: Box<dyn HealthCheck + Send + Sync> = match &hc.http {
            None => {
                let mut tcp = TcpHealthCheck::new();
                tcp.consecutive_success = hc.healthy_threshold;
                tcp.consecutive_failure = hc.unhealthy_threshold;
                tcp.peer_template.options.connection_timeout = Some(spec.connect_timeout);
                tcp
            }
            Some((path, host)) => {
                let mut http = HttpHealthCheck::new(host, spec.tls);
                http.consecutive_success = hc.healthy_threshold;
                http.consecutive_failure = hc.unhealthy_threshold;
                http.peer_template.options.connection_timeout = Some(spec.connect_timeout);
                http.peer_template.options.read_timeout = Some(spec.read_timeout);
                http.peer_template.options.verify_cert = spec.tls_verify;
                http.peer_template.options.verify_hostname = spec.tls_verify;
                if let Ok(uri) = path.parse() {
                    http.req.set_uri(uri);
                }
                Box::new(http)
            }
        };
        lb.set_health_check(Box::new(NamedCheck {
            upstream: name.to_string(),
            inner: check,
        }));
        lb.health_check_frequency = Some(hc.interval);
    }
    let first = *spec.peers.first().ok_or("at least one peer is required")?;
    let mut template = HttpPeer::new(first, spec.tls, spec.sni.clone());
    let o = &mut template.options;
    o.connection_timeout = Some(spec.connect_timeout);
    o.total_connection_timeout = Some(spec.connect_timeout);
    o.read_timeout = Some(spec.read_timeout);
    o.write_timeout = Some(spec.write_timeout);
    o.idle_timeout = Some(spec.idle_timeout);
    o.verify_cert = spec.tls_verify;
    o.verify_hostname = spec.tls_verify;
    // Several calls share one HTTP/2 connection, as Envoy and gRPC clients do; pingora's
    // default of 1 opens a connection per in-flight call.
    o.max_h2_streams = spec.max_concurrent_streams;
    o.alpn = match spec.protocol {
        // Cleartext with a minimum of HTTP/2 is how pingora speaks h2c.
        Protocol::H2c | Protocol::H2 => ALPN::H2,
        Protocol::Http1 => ALPN::H1,
    };
    let mut peers = spec.peers.clone();
    peers.sort();
    peers.dedup();
    let addresses = peers
        .iter()
        .map(|a| {
            (
                pingora::protocols::l4::socket::SocketAddr::Inet(*a),
                a.to_string().into(),
            )
        })
        .collect();
    Ok(HttpUpstream {
        spec,
        lb,
        template,
        addresses,
        next: std::sync::atomic::AtomicUsize::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::{Error, ErrorType};

    #[test]
    fn a_health_failure_is_its_root_cause_without_the_peer_dump() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let mut inner = Error::because(
            ErrorType::ConnectRefused,
            "Fail to connect to 127.0.0.1:9",
            io,
        );
        inner = inner.more_context("Fail to connect to BasicPeer { options: PeerOptions { .. } }");
        let short = health_failure(&inner);
        assert_eq!(short.etype(), &ErrorType::ConnectRefused);
        assert_eq!(
            short.to_string(),
            " ConnectRefused context: connection refused"
        );
        // No foreign cause (a non-2xx answer): the context is the reason.
        let status = Error::explain(
            ErrorType::CustomCode("non 200 code", 503),
            "during http healthcheck",
        );
        assert!(health_failure(&status)
            .to_string()
            .ends_with("context: during http healthcheck"));
    }
}
