//! Stage 2 of 3: check a parsed [`RawConfig`] completely and turn it into typed specs.
//!
//! Every problem is collected with its key path (`routes[2].upstream: no upstream named
//! "ordrs"`), so a user fixes a broken file in one pass. Peer names are resolved here,
//! at load time: an unresolvable peer is a config error, never a panic on a worker
//! thread when the first request needs it.

use std::collections::HashSet;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::raw::Protocol;
use super::raw::{
    Choice, HealthCheckKind, RawAccessLog, RawConfig, RawCors, RawHealthCheck, RawPropagation,
    RawPropagationOverride, RawRoute, RawSampling, RawSamplingOverride, RawServer, RawTelemetry,
    RawUpstream, UpstreamKindName,
};
use super::spec::{
    DegradationSettings, ExporterEntryKind, ExporterKind, ExporterSpec, LogFields, LogFormat,
    LogsSettings, OtlpFileSettings, OtlpProtocol, QueueSettings, ZipkinSettings,
    DEFAULT_ZIPKIN_ENDPOINT,
};
pub use super::spec::{Exporter, TelemetrySettings};
use crate::codec::Format;
use crate::mediate::baggage_filter::{BaggageFilter, KeyPattern, RestartBaggage};
use crate::mediate::browser::{Browser, BrowserOverride, CorsMode, CorsOverride, OriginPattern};
use crate::mediate::{ForwardedMode, Mode, Policy, PolicyOverride, Strategy, Trust};
use crate::model::Named;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `upstreams.orders.peers[1]`; empty for file-level problems.
    pub path: String,
    /// What is wrong, a lowercase fragment.
    pub message: String,
    /// 1-based line in the file, when the parser knows it.
    pub line: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the config came from (a path, or `<built-in>`).
    pub source_name: String,
    /// All problems, in file order as far as it is known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Validated `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Plain-TCP listen addresses, as written (pingora keys its socket table by them).
    pub listen: Vec<String>,
    /// Accept h2c on the plain listeners.
    pub h2c: bool,
    /// Serve simple HTTP/1 requests on the fast path.
    pub fast_path: bool,
    /// TLS listeners.
    pub tls: Vec<TlsListener>,
    /// Admin listen address.
    pub admin_listen: String,
    /// Bearer token for `POST /reload` (empty = none).
    pub admin_token: String,
    /// Proxy worker threads.
    pub threads: usize,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Grace period on SIGTERM.
    pub grace_period: Duration,
    /// Runtime shutdown timeout after the grace period.
    pub shutdown_timeout: Duration,
    /// Upgrade socket path.
    pub upgrade_sock: String,
    /// Pid file path.
    pub pid_file: String,
    /// Deadline for a whole request header (`header_timeout`).
    pub header_timeout: Duration,
    /// Idle time allowed between keep-alive requests; zero = no keep-alive.
    pub keepalive_timeout: Duration,
    /// Cap on open downstream connections; 0 = derived from the open-file limit.
    pub max_connections: usize,
    /// A reload may remove the serving config's `admin_token`.
    pub allow_admin_token_removal: bool,
}

/// A validated TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// Listen address.
    pub listen: String,
    /// Certificate chain path (checked readable).
    pub cert: String,
    /// Private key path (checked readable).
    pub key: String,
}

/// A validated upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: UpstreamKindSpec,
    /// Its propagation and sampling overrides.
    pub policy: PolicyOverride,
}

/// The two kinds of upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamKindSpec {
    /// The built-in echo service.
    Echo,
    /// Real peers.
    Http(Box<HttpUpstreamSpec>),
}

/// A validated `kind = "http"` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUpstreamSpec {
    /// Resolved peer addresses, in order (a name that resolves to several adds all).
    pub peers: Vec<SocketAddr>,
    /// Peer names as written, for logs and SNI.
    pub peer_names: Vec<String>,
    /// Wire protocol.
    pub protocol: Protocol,
    /// TLS on.
    pub tls: bool,
    /// SNI (defaults to the host part of the first peer).
    pub sni: String,
    /// Verify certificates.
    pub tls_verify: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
    /// Keep-alive idle timeout.
    pub idle_timeout: Duration,
    /// One retry on connect failure for idempotent methods.
    pub retry_on_connect_failure: bool,
    /// Concurrent streams per HTTP/2 connection (h2c / h2 only).
    pub max_concurrent_streams: usize,
    /// Active health check.
    pub health_check: Option<HealthCheckSpec>,
}

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// HTTP (path, host) or plain TCP.
    pub http: Option<(String, String)>,
    /// Interval between checks.
    pub interval: Duration,
    /// Successes to become healthy.
    pub healthy_threshold: usize,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: usize,
}

/// A validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// Name (unique).
    pub name: String,
    /// Host pattern, lowercase; empty = any.
    pub host: String,
    /// Path prefix.
    pub path_prefix: String,
    /// Methods, uppercase; empty = any.
    pub methods: Vec<http::Method>,
    /// Header condition: lowercase name, optional exact value.
    pub header: Option<(http::HeaderName, Option<String>)>,
    /// Index into the validated upstream list.
    pub upstream: usize,
    /// The effective propagation policy (route over upstream over defaults).
    pub policy: Policy,
}

/// Validated `[access_log]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessLogSettings {
    /// Write one line per request.
    pub enabled: bool,
    /// The file to append to; `None` = standard output.
    pub path: Option<PathBuf>,
}

/// The output of validation: everything typed, nothing built yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// `[server]`.
    pub server: ServerSettings,
    /// `[telemetry]`.
    pub telemetry: TelemetrySettings,
    /// Upstreams, sorted by name.
    pub upstreams: Vec<UpstreamSpec>,
    /// Routes, in file order.
    pub routes: Vec<RouteSpec>,
    /// `[access_log]`.
    pub access_log: AccessLogSettings,
    /// The `[propagation]` / `[sampling]` defaults (for requests that match no route).
    pub defaults: Policy,
    /// Things that are allowed but probably not meant (a route that can never match).
    pub warnings: Vec<Problem>,
}

/// Most `[[routes]]` a config may have. Routing cost does not grow with the number of
/// routes, but loading does (a million routes took 3.8 GB and seconds); 10,000 is well
/// above what one ingress serves (the reload bench uses 1,000). Measured on a debug
/// build: 10,000 routes with per-route overrides (2.3 MiB) load in 4.3 s at 97 MiB peak,
/// and the first request is routed in 7 ms.
pub const MAX_ROUTES: usize = 10_000;

/// Most `[upstreams.NAME]` a config may have (each is compiled into a balancer).
pub const MAX_UPSTREAMS: usize = 10_000;

/// Collects problems while walking the config.
struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
            line: None,
        });
    }

    fn duration(&mut self, path: String, text: &str) -> Duration {
        match parse_duration(text) {
            Ok(d) => d,
            Err(msg) => {
                self.push(path, msg);
                Duration::ZERO
            }
        }
    }

    /// The value of a closed-set key; `None` when the text is none of `T`'s names, which
    /// is reported with the names from `T`'s one table.
    fn choice<T: Named>(&mut self, path: impl Into<String>, value: &Choice<T>) -> Option<T> {
        match value {
            Choice::Known(value) => Some(*value),
            Choice::Unknown(text) => {
                self.push(
                    path,
                    format!("unknown {} {text:?}: expected {}", T::WHAT, T::expected()),
                );
                None
            }
        }
    }

    fn positive_duration(&mut self, path: String, text: &str) -> Duration {
        let d = self.duration(path.clone(), text);
        if d.is_zero() && parse_duration(text).is_ok() {
            self.push(path, "must be greater than zero");
        }
        d
    }
}

/// Parses a duration written as a string: `"1s"`, `"250ms"`, `"1m 30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. \"1s\" or \"250ms\""))
}

/// Validates everything; `Err` carries every problem found.
pub fn validate(raw: &RawConfig) -> Result<Validated, Vec<Problem>> {
    let mut c = Collector {
        problems: Vec::new(),
    };
    // Checking each of a hundred thousand entries would only bury this one problem.
    for (key, n, max) in [
        ("routes", raw.routes.len(), MAX_ROUTES),
        ("upstreams", raw.upstreams.len(), MAX_UPSTREAMS),
    ] {
        if n > max {
            c.push(key, format!("{n} entries; at most {max} are allowed"));
        }
    }
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    if raw.routes.is_empty() && !raw.server.allow_no_routes {
        c.push(
            "routes",
            "no route: every request would be answered 404; add a [[routes]] entry, or set \
             server.allow_no_routes = true if that is meant",
        );
    }
    let server = server(&mut c, &raw.server);
    let telemetry = telemetry(&mut c, &raw.telemetry, &raw.sampling);
    let defaults = default_policy(&mut c, &raw.propagation, &raw.sampling);
    let upstreams: Vec<UpstreamSpec> = raw
        .upstreams
        .iter()
        .map(|(name, u)| upstream(&mut c, name, u))
        .collect();
    let routes = routes(&mut c, &raw.routes, &upstreams, &defaults);
    let access_log = access_log(&mut c, &raw.access_log);
    if c.problems.is_empty() {
        let warnings = unreachable_routes(&routes);
        Ok(Validated {
            server,
            telemetry,
            upstreams,
            routes,
            access_log,
            defaults,
            warnings,
        })
    } else {
        Err(c.problems)
    }
}

fn listen_address(c: &mut Collector, path: String, addr: &str) {
    if addr.parse::<SocketAddr>().is_err() {
        c.push(
            path,
            format!("invalid listen address {addr:?}: expected ip:port, e.g. \"127.0.0.1:8080\""),
        );
    }
}

fn readable_file(c: &mut Collector, path: String, file: &str) {
    if file.is_empty() {
        c.push(path, "is required");
    } else {
        match std::fs::metadata(file) {
            Err(e) => c.push(path, format!("cannot read {file:?}: {e}")),
            // A FIFO would block start-up in the TLS setup, as it would for the config.
            Ok(m) if !m.is_file() => c.push(path, format!("{file:?} is not a regular file")),
            Ok(_) => {}
        }
    }
}

fn server(c: &mut Collector, s: &RawServer) -> ServerSettings {
    let mut seen = HashSet::new();
    if s.listen.is_empty() && s.tls.is_empty() {
        c.push("server.listen", "no listener: give at least one address");
    }
    for (i, addr) in s.listen.iter().enumerate() {
        listen_address(c, format!("server.listen[{i}]"), addr);
        if !seen.insert(addr.as_str()) {
            c.push(
                format!("server.listen[{i}]"),
                format!("{addr:?} is listed twice"),
            );
        }
    }
    let tls = s
        .tls
        .iter()
        .enumerate()
        .map(|(i, t)| {
            listen_address(c, format!("server.tls[{i}].listen"), &t.listen);
            if !seen.insert(t.listen.as_str()) {
                c.push(
                    format!("server.tls[{i}].listen"),
                    format!("{:?} is already used by another listener", t.listen),
                );
            }
            readable_file(c, format!("server.tls[{i}].cert"), &t.cert);
            readable_file(c, format!("server.tls[{i}].key"), &t.key);
            TlsListener {
                listen: t.listen.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
            }
        })
        .collect();
    listen_address(c, "server.admin_listen".into(), &s.admin_listen);
    if seen.contains(s.admin_listen.as_str()) {
        c.push(
            "server.admin_listen",
            format!("{:?} is already used by a proxy listener", s.admin_listen),
        );
    }
    if s.threads == 0 {
        c.push("server.threads", "must be at least 1");
    }
    ServerSettings {
        listen: s.listen.clone(),
        h2c: s.h2c,
        fast_path: s.fast_path,
        tls,
        admin_listen: s.admin_listen.clone(),
        admin_token: s.admin_token.clone(),
        threads: s.threads.max(1),
        trusted_proxies: networks(c, "server.trusted_proxies", &s.trusted_proxies),
        grace_period: c.duration("server.grace_period".into(), &s.grace_period),
        shutdown_timeout: c.duration("server.shutdown_timeout".into(), &s.shutdown_timeout),
        upgrade_sock: s.upgrade_sock.clone(),
        pid_file: s.pid_file.clone(),
        header_timeout: c.positive_duration("server.header_timeout".into(), &s.header_timeout),
        keepalive_timeout: c.duration("server.keepalive_timeout".into(), &s.keepalive_timeout),
        max_connections: s.max_connections,
        allow_admin_token_removal: s.allow_admin_token_removal,
    }
}

fn upstream(c: &mut Collector, name: &str, u: &RawUpstream) -> UpstreamSpec {
    let at = |key: &str| format!("upstreams.{name}.{key}");
    if !is_identifier(name) {
        c.push(
            format!("upstreams.{name}"),
            "name must be letters, digits, '-' or '_'",
        );
    }
    let kind = match c.choice(at("kind"), &u.kind) {
        Some(UpstreamKindName::Echo) => {
            if !u.peers.is_empty() {
                c.push(at("peers"), "an echo upstream has no peers");
            }
            UpstreamKindSpec::Echo
        }
        Some(UpstreamKindName::Http) => UpstreamKindSpec::Http(Box::new(http_upstream(c, name, u))),
        // Reported; the peers of an upstream of unknown kind are not looked at.
        None => UpstreamKindSpec::Echo,
    };
    UpstreamSpec {
        name: name.to_string(),
        kind,
        policy: policy_override(
            c,
            &format!("upstreams.{name}"),
            u.mode.as_ref(),
            &u.propagation,
            &u.sampling,
        ),
    }
}

fn telemetry(c: &mut Collector, t: &RawTelemetry, s: &RawSampling) -> TelemetrySettings {
    if t.service_name.is_empty() {
        c.push("telemetry.service_name", "must not be empty");
    }
    // The telemetry words stay strings in the raw layer (the OpenTelemetry environment
    // fills them in, see `otel_env`), so they are read here, trimmed as env values are.
    let exporter = match c.choice("telemetry.exporter", &Choice::from(t.exporter.trim())) {
        Some(ExporterKind::Otlp) => Exporter::Otlp(otlp(c, t)),
        Some(ExporterKind::Stdout) => Exporter::Stdout,
        Some(ExporterKind::None) | None => Exporter::None,
    };
    if t.queue_size == 0 {
        c.push("telemetry.queue_size", "must be at least 1");
    }
    if t.batch_size == 0 {
        c.push("telemetry.batch_size", "must be at least 1");
    }
    // The queue holds the batch being assembled (as the OpenTelemetry batch processor's
    // max_queue_size does), so a batch larger than the queue could never fill.
    if t.batch_size > t.queue_size {
        c.push(
            "telemetry.batch_size",
            "must not exceed telemetry.queue_size",
        );
    }
    for (key, v) in [
        ("telemetry.degrade_high_water", t.degrade_high_water),
        ("telemetry.degrade_low_water", t.degrade_low_water),
    ] {
        if !(0.0..=1.0).contains(&v) {
            c.push(key, format!("must be between 0.0 and 1.0, got {v}"));
        }
    }
    if t.degrade_low_water > t.degrade_high_water {
        c.push(
            "telemetry.degrade_low_water",
            "must not exceed degrade_high_water",
        );
    }
    let queue = QueueSettings {
        queue_size: t.queue_size.max(1),
        batch_size: t.batch_size.max(1),
        batch_delay: c.positive_duration("telemetry.batch_delay".into(), &t.batch_delay),
    };
    let degradation = DegradationSettings {
        high_water: t.degrade_high_water,
        low_water: t.degrade_low_water,
        max_spans_per_second: t.degrade_max_spans_per_second.max(0.0),
        hold: c.duration("telemetry.degrade_after".into(), &t.degrade_after),
    };
    if !(s.max_traces_per_second >= 0.0 && s.max_traces_per_second.is_finite()) {
        c.push("sampling.max_traces_per_second", "must be a number ≥ 0");
    }
    let service_instance = if t.service_instance.is_empty() {
        host_name()
    } else {
        t.service_instance.clone()
    };
    let (exporter, exporters) = if t.exporters.is_empty() {
        let name = match &exporter {
            Exporter::Otlp(_) => "otlp",
            Exporter::Zipkin(_) => "zipkin",
            Exporter::Stdout => "stdout",
            Exporter::None => "none",
        };
        let list = (exporter != Exporter::None)
            .then(|| ExporterSpec {
                name: name.to_string(),
                exporter: exporter.clone(),
                queue,
                from_env: true,
            })
            .into_iter()
            .collect();
        (exporter, list)
    } else {
        // The default `exporter` is "stdout": anything else (or an endpoint) was
        // written, and would be silently shadowed by the list.
        if t.exporter.trim() != "stdout" || !t.endpoint.is_empty() {
            c.push(
                "telemetry.exporters",
                "the one-exporter keys (exporter, endpoint) and [[telemetry.exporters]] \
                 are exclusive: move the exporter into the list",
            );
        }
        let list = exporter_list(c, t, queue);
        let first = list.first().map_or(Exporter::None, |e| e.exporter.clone());
        (first, list)
    };
    TelemetrySettings {
        service_name: t.service_name.clone(),
        service_instance,
        exporter,
        exporters,
        logs: logs_to_traces(c, &t.logs_to_traces),
        max_traces_per_second: s.max_traces_per_second.max(0.0),
        queue,
        degradation,
    }
}

fn access_log(c: &mut Collector, a: &RawAccessLog) -> AccessLogSettings {
    let path = (!a.path.is_empty()).then(|| PathBuf::from(&a.path));
    if let (true, Some(file)) = (a.enabled, &path) {
        // `log` alone has the empty parent: the working directory.
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            c.push(
                "access_log.path",
                format!("directory {} does not exist", dir.display()),
            );
        } else if file.is_dir() {
            c.push(
                "access_log.path",
                format!("{} is a directory", file.display()),
            );
        }
    }
    AccessLogSettings {
        enabled: a.enabled,
        path,
    }
}

fn otlp(c: &mut Collector, t: &RawTelemetry) -> OtlpFileSettings {
    let protocol = c
        .choice("telemetry.protocol", &Choice::from(t.protocol.trim()))
        .unwrap_or(OtlpProtocol::HttpProtobuf);
    let url_ok = t.endpoint.starts_with("http://") || t.endpoint.starts_with("https://");
    if !t.endpoint.is_empty() && !url_ok {
        c.push("telemetry.endpoint", "must be an http:// or https:// URL");
    }
    let compression = c
        .choice("telemetry.compression", &Choice::from(t.compression.trim()))
        .unwrap_or_default();
    OtlpFileSettings {
        protocol,
        endpoint: t.endpoint.clone(),
        headers: t.headers.clone(),
        timeout: c.positive_duration("telemetry.timeout".into(), &t.timeout),
        compression,
    }
}

/// `[telemetry.logs_to_traces]`.
fn logs_to_traces(c: &mut Collector, l: &super::raw::RawLogsToTraces) -> LogsSettings {
    let at = |key: &str| format!("telemetry.logs_to_traces.{key}");
    let format = c
        .choice(at("format"), &Choice::<LogFormat>::from(l.format.trim()))
        .unwrap_or(LogFormat::Json);
    let mut fields = LogFields::default();
    match l.time_at.as_str() {
        "start" => {}
        "end" => fields.time_at_end = true,
        other => c.push(
            at("time_at"),
            format!("unknown time_at {other:?}: expected \"start\" or \"end\""),
        ),
    }
    match LogFields::unit(&l.duration_unit) {
        Some(u) => fields.duration_unit = u,
        None => c.push(
            at("duration_unit"),
            format!(
                "unknown unit {:?}: expected \"s\", \"ms\" or \"us\"",
                l.duration_unit
            ),
        ),
    }
    for (key, field) in &l.fields {
        if key.starts_with("header:") {
            c.push(
                format!("{}.{key}", at("fields")),
                "trace headers go in headers",
            );
        } else if let Err(e) = fields.set(key, field) {
            c.push(format!("{}.{key}", at("fields")), e);
        }
    }
    for (header, field) in &l.headers {
        if let Err(e) = fields.set(&format!("header:{header}"), field) {
            c.push(format!("{}.{header}", at("headers")), e);
        }
    }
    LogsSettings { format, fields }
}

/// `[[telemetry.exporters]]`: each entry's kind, name (unique, a metric label),
/// endpoint and queue, with `[telemetry]`'s queue and timeout as defaults.
fn exporter_list(
    c: &mut Collector,
    t: &RawTelemetry,
    defaults: QueueSettings,
) -> Vec<ExporterSpec> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, e) in t.exporters.iter().enumerate() {
        let at = |key: &str| format!("telemetry.exporters[{i}].{key}");
        let Some(kind) = c.choice(
            at("kind"),
            &Choice::<ExporterEntryKind>::from(e.kind.trim()),
        ) else {
            continue;
        };
        let name = if e.name.is_empty() {
            kind.name().to_string()
        } else {
            e.name.clone()
        };
        if !is_identifier(&name) {
            c.push(at("name"), "must be letters, digits, '-' or '_'");
        }
        if !names.insert(name.clone()) {
            c.push(
                at("name"),
                format!("{name:?} is already the name of another exporter (name them apart)"),
            );
        }
        let url_ok = e.endpoint.starts_with("http://") || e.endpoint.starts_with("https://");
        if !e.endpoint.is_empty() && !url_ok {
            c.push(at("endpoint"), "must be an http:// or https:// URL");
        }
        let timeout = c.positive_duration(at("timeout"), e.timeout.as_ref().unwrap_or(&t.timeout));
        if kind != ExporterEntryKind::Otlp && !(e.protocol.is_empty() && e.compression.is_empty()) {
            c.push(at("protocol"), "protocol and compression are OTLP keys");
        }
        let exporter = match kind {
            ExporterEntryKind::Otlp => Exporter::Otlp(OtlpFileSettings {
                protocol: if e.protocol.trim().is_empty() {
                    OtlpProtocol::HttpProtobuf
                } else {
                    c.choice(at("protocol"), &Choice::from(e.protocol.trim()))
                        .unwrap_or(OtlpProtocol::HttpProtobuf)
                },
                endpoint: e.endpoint.clone(),
                headers: e.headers.clone(),
                timeout,
                compression: c
                    .choice(at("compression"), &Choice::from(e.compression.trim()))
                    .unwrap_or_default(),
            }),
            ExporterEntryKind::Zipkin => Exporter::Zipkin(ZipkinSettings {
                endpoint: if e.endpoint.is_empty() {
                    DEFAULT_ZIPKIN_ENDPOINT.to_string()
                } else {
                    e.endpoint.clone()
                },
                headers: e.headers.clone(),
                timeout,
            }),
            ExporterEntryKind::Stdout => Exporter::Stdout,
        };
        let queue_size = e.queue_size.unwrap_or(defaults.queue_size);
        let batch_size = e.batch_size.unwrap_or(defaults.batch_size);
        if queue_size == 0 {
            c.push(at("queue_size"), "must be at least 1");
        }
        if batch_size == 0 || batch_size > queue_size {
            c.push(at("batch_size"), "must be between 1 and the queue_size");
        }
        let batch_delay = match &e.batch_delay {
            Some(d) => c.positive_duration(at("batch_delay"), d),
            None => defaults.batch_delay,
        };
        out.push(ExporterSpec {
            name,
            exporter,
            queue: QueueSettings {
                queue_size: queue_size.max(1),
                batch_size: batch_size.max(1),
                batch_delay,
            },
            from_env: false,
        });
    }
    out
}

/// The machine's host name (Linux), for `service.instance.id` and `host.name`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn formats(
    c: &mut Collector,
    at: &str,
    list: &[String],
    allow_preserve: bool,
) -> (Vec<Format>, bool) {
    let mut out = Vec::new();
    let mut preserve = false;
    for (i, item) in list.iter().enumerate() {
        if allow_preserve && item == "preserve" {
            preserve = true;
            continue;
        }
        match item.parse::<Format>() {
            Ok(f) if out.contains(&f) => {
                c.push(format!("{at}[{i}]"), format!("{item:?} is listed twice"))
            }
            Ok(f) => out.push(f),
            Err(_) => c.push(
                format!("{at}[{i}]"),
                match super::suggest::format(item, allow_preserve) {
                    Some(near) => format!("unknown format {item:?}; did you mean {near}?"),
                    None => format!(
                        "unknown format {item:?}: expected one of {}{}",
                        Format::ALL.map(Format::as_str).join(", "),
                        if allow_preserve { ", preserve" } else { "" }
                    ),
                },
            ),
        }
    }
    (out, preserve)
}

fn trust(c: &mut Collector, at: &str, value: &Choice<Trust>) -> Trust {
    c.choice(at, value).unwrap_or(Trust::Continue)
}

/// A CIDR list; a bare address is a single-host network (as nginx `set_real_ip_from`).
fn networks(c: &mut Collector, at: &str, list: &[String]) -> Vec<ipnet::IpNet> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let s = s.trim();
            match s.parse::<ipnet::IpNet>() {
                Ok(net) => Some(net.trunc()),
                Err(_) => match s.parse::<std::net::IpAddr>() {
                    Ok(ip) => Some(ipnet::IpNet::from(ip)),
                    Err(_) => {
                        c.push(
                            format!("{at}[{i}]"),
                            format!("invalid network {s:?}: expected a CIDR such as \"10.0.0.0/8\" or an address"),
                        );
                        None
                    }
                },
            }
        })
        .collect()
}

fn forwarded_mode(c: &mut Collector, at: &str, value: &Choice<ForwardedMode>) -> ForwardedMode {
    c.choice(at, value).unwrap_or(ForwardedMode::Append)
}

fn strategy(c: &mut Collector, at: &str, value: &Choice<Strategy>) -> Strategy {
    c.choice(at, value).unwrap_or(Strategy::Parent)
}

fn ratio(c: &mut Collector, at: &str, r: f64) -> f64 {
    if !(0.0..=1.0).contains(&r) {
        c.push(at, format!("must be between 0.0 and 1.0, got {r}"));
    }
    r.clamp(0.0, 1.0)
}

fn default_policy(c: &mut Collector, p: &RawPropagation, s: &RawSampling) -> Policy {
    let (extract, _) = formats(c, "propagation.extract", &p.extract, false);
    let (inject, preserve) = formats(c, "propagation.inject", &p.inject, true);
    Policy {
        extract,
        inject,
        preserve,
        strip_unlisted: p.strip_unlisted,
        trust: trust(c, "propagation.trust", &p.trust),
        span: p.span,
        response_header: p.response_header,
        strategy: strategy(c, "sampling.strategy", &s.strategy),
        ratio: ratio(c, "sampling.ratio", s.ratio),
        forwarded: forwarded_mode(c, "propagation.forwarded", &p.forwarded),
        trusted_networks: networks(c, "propagation.trusted_networks", &p.trusted_networks),
        max_injected_bytes: budget(
            c,
            "propagation.max_injected_bytes",
            p.max_injected_bytes,
            MIN_INJECTED_BYTES,
        ),
        max_injected_headers: budget(
            c,
            "propagation.max_injected_headers",
            p.max_injected_headers,
            MIN_INJECTED_HEADERS,
        ),
        browser: {
            let keys = BrowserKeys {
                cors: p.cors.as_ref(),
                server_timing: Some(p.server_timing),
                server_timing_durations: Some(p.server_timing_durations),
                trace_id_header: Some(&p.trace_id_header),
                timing_allow_origin: Some(&p.timing_allow_origin),
            };
            let browser = browser_override(c, "propagation", &keys).apply(&Browser::default());
            check_browser(c, "propagation.cors", &browser);
            browser
        },
        // Set per upstream or route only: a whole gateway in observe mode is every
        // route in it.
        mode: Mode::Mediate,
        baggage: BaggageFilter {
            allow: p
                .baggage_allow
                .as_ref()
                .map(|l| key_patterns(c, "propagation.baggage_allow", l)),
            deny: key_patterns(c, "propagation.baggage_deny", &p.baggage_deny),
            restart: restart_baggage(c, "propagation.restart_baggage", &p.restart_baggage),
        },
        request_id: crate::mediate::request_id::RequestIdPolicy {
            header: request_id_header(c, "propagation.request_id_header", &p.request_id_header),
            generate: p.request_id_generate,
            trace: p.request_id_trace,
        },
        keep: crate::mediate::Keep {
            errors: s.keep_errors,
            slower_than: keep_slower_than(c, "sampling.keep_slower_than", &s.keep_slower_than),
        },
    }
}

/// `keep_slower_than`: `""` = off; otherwise a positive duration.
fn keep_slower_than(c: &mut Collector, at: &str, text: &str) -> Option<Duration> {
    if text.trim().is_empty() {
        return None;
    }
    match parse_duration(text) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            c.push(at, "must be more than 0 (\"\" turns it off)");
            None
        }
        Err(msg) => {
            c.push(at, msg);
            None
        }
    }
}

/// The browser keys of one `propagation` table, as written.
struct BrowserKeys<'a> {
    cors: Option<&'a RawCors>,
    server_timing: Option<bool>,
    server_timing_durations: Option<bool>,
    trace_id_header: Option<&'a String>,
    timing_allow_origin: Option<&'a Vec<String>>,
}

/// Response headers `trace_id_header` may not name: framing and connection headers,
/// and those the gateway writes itself.
const RESERVED_RESPONSE_HEADERS: [&str; 10] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "set-cookie",
    "traceresponse",
    "server-timing",
    "timing-allow-origin",
    "vary",
];

/// `baggage_allow` / `baggage_deny` entries.
fn key_patterns(c: &mut Collector, at: &str, list: &[String]) -> Vec<KeyPattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, k)| {
            let p = KeyPattern::parse(k);
            if p.is_none() {
                c.push(
                    format!("{at}[{i}]"),
                    format!(
                        "invalid baggage key pattern {k:?}: a W3C baggage key (token \
                         characters), optionally ending in * for a prefix"
                    ),
                );
            }
            p
        })
        .collect()
}

/// Request headers `request_id_header` may not name: framing and connection headers,
/// and every trace format's own (injection rewrites those).
fn request_id_header(c: &mut Collector, at: &str, h: &str) -> Option<http::HeaderName> {
    let h = h.trim().to_ascii_lowercase();
    if h.is_empty() {
        return None;
    }
    const FRAMING: [&str; 8] = [
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "host",
        "te",
        "trailer",
    ];
    match http::HeaderName::from_bytes(h.as_bytes()) {
        Ok(name)
            if FRAMING.contains(&name.as_str())
                || Format::ALL.iter().any(|f| {
                    f.headers().contains(&name)
                        || f.prefixes().iter().any(|p| name.as_str().starts_with(p))
                }) =>
        {
            c.push(
                at,
                format!("{h:?} is a framing or trace header; pick another name such as \"x-request-id\""),
            );
            None
        }
        Ok(name) => Some(name),
        Err(_) => {
            c.push(at, format!("invalid header name {h:?}"));
            None
        }
    }
}

fn restart_baggage(c: &mut Collector, at: &str, value: &Choice<RestartBaggage>) -> RestartBaggage {
    c.choice(at, value).unwrap_or(RestartBaggage::Keep)
}

fn origin_patterns(c: &mut Collector, at: &str, list: &[String]) -> Vec<OriginPattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, o)| match OriginPattern::parse(o) {
            Ok(p) => Some(p),
            Err(msg) => {
                c.push(format!("{at}[{i}]"), format!("invalid origin {msg}"));
                None
            }
        })
        .collect()
}

fn header_names(c: &mut Collector, at: &str, list: &[String]) -> Vec<http::HeaderName> {
    list.iter()
        .enumerate()
        .filter_map(|(i, h)| {
            match http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()) {
                Ok(name) => Some(name),
                Err(_) => {
                    c.push(format!("{at}[{i}]"), format!("invalid header name {h:?}"));
                    None
                }
            }
        })
        .collect()
}

/// Preflight caches are capped by browsers (Chromium at 2 hours, Firefox at 24): a
/// longer `max_age` would only look as if it worked.
const MAX_CORS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

fn cors_override(c: &mut Collector, at: &str, r: &RawCors) -> CorsOverride {
    let key = |k: &str| format!("{at}.{k}");
    CorsOverride {
        mode: r.mode.as_ref().and_then(|m| c.choice(key("mode"), m)),
        allow_origins: r
            .allow_origins
            .as_ref()
            .map(|l| origin_patterns(c, &key("allow_origins"), l)),
        allow_methods: r.allow_methods.as_ref().map(|l| {
            l.iter()
                .enumerate()
                .filter_map(|(i, m)| match http::Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                    _ => {
                        c.push(
                            format!("{at}.allow_methods[{i}]"),
                            format!("invalid method {m:?}: expected an uppercase HTTP method"),
                        );
                        None
                    }
                })
                .collect()
        }),
        allow_headers: r
            .allow_headers
            .as_ref()
            .map(|l| header_names(c, &key("allow_headers"), l)),
        expose_headers: r
            .expose_headers
            .as_ref()
            .map(|l| header_names(c, &key("expose_headers"), l)),
        max_age: r.max_age.as_ref().map(|t| {
            let d = c.duration(key("max_age"), t);
            if d > MAX_CORS_MAX_AGE {
                c.push(
                    key("max_age"),
                    "must be at most 24h (browsers cap it: Chromium at 2h, Firefox at 24h)",
                );
            }
            d
        }),
        allow_credentials: r.allow_credentials,
    }
}

fn browser_override(c: &mut Collector, at: &str, k: &BrowserKeys<'_>) -> BrowserOverride {
    let path = |key: &str| format!("{at}.{key}");
    let trace_id_header = k.trace_id_header.map(|h| {
        let h = h.trim().to_ascii_lowercase();
        if h.is_empty() {
            return None;
        }
        match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name)
                if RESERVED_RESPONSE_HEADERS.contains(&name.as_str())
                    || name.as_str().starts_with("access-control-") =>
            {
                c.push(
                    path("trace_id_header"),
                    format!("{h:?} is a header the gateway or HTTP itself writes; pick another name such as \"x-trace-id\""),
                );
                None
            }
            Ok(name) => Some(name),
            Err(_) => {
                c.push(path("trace_id_header"), format!("invalid header name {h:?}"));
                None
            }
        }
    });
    BrowserOverride {
        cors: k.cors.map(|r| cors_override(c, &path("cors"), r)),
        server_timing: k.server_timing,
        server_timing_durations: k.server_timing_durations,
        trace_id_header,
        timing_allow_origin: k
            .timing_allow_origin
            .map(|l| origin_patterns(c, &path("timing_allow_origin"), l)),
    }
}

/// Rules over the effective CORS settings (after the overrides), reported at `at`.
fn check_browser(c: &mut Collector, at: &str, b: &Browser) {
    if b.cors.mode != CorsMode::Answer {
        return;
    }
    if b.cors.allow_origins.is_empty() {
        c.push(
            format!("{at}.allow_origins"),
            "mode \"answer\" needs at least one origin (or \"*\"): with none, every preflight is refused",
        );
    }
    if b.cors.allow_credentials && b.cors.allow_origins.contains(&OriginPattern::Any) {
        c.push(
            format!("{at}.allow_origins"),
            "\"*\" with allow_credentials = true would let any site make credentialed calls; \
             list the origins (browsers refuse \"*\" with credentials too)",
        );
    }
}

/// The smallest byte budget accepted: every format's ids (about 1.3 KB with all 13)
/// must fit, or the budget would only ever be exceeded.
const MIN_INJECTED_BYTES: usize = 2048;
/// The smallest header budget accepted, for the same reason (about 30 lines).
const MIN_INJECTED_HEADERS: usize = 32;

fn budget(c: &mut Collector, at: &str, v: usize, min: usize) -> usize {
    if v != 0 && v < min {
        c.push(
            at,
            format!("must be 0 (no budget) or at least {min}, so every format's ids fit"),
        );
    }
    v
}

fn policy_override(
    c: &mut Collector,
    at: &str,
    mode: Option<&Choice<Mode>>,
    p: &RawPropagationOverride,
    s: &RawSamplingOverride,
) -> PolicyOverride {
    PolicyOverride {
        mode: mode.and_then(|m| c.choice(format!("{at}.mode"), m)),
        extract: p
            .extract
            .as_ref()
            .map(|l| formats(c, &format!("{at}.propagation.extract"), l, false).0),
        inject: p
            .inject
            .as_ref()
            .map(|l| formats(c, &format!("{at}.propagation.inject"), l, true)),
        strip_unlisted: p.strip_unlisted,
        trust: p
            .trust
            .as_ref()
            .map(|t| trust(c, &format!("{at}.propagation.trust"), t)),
        span: p.span,
        response_header: p.response_header,
        strategy: s
            .strategy
            .as_ref()
            .map(|t| strategy(c, &format!("{at}.sampling.strategy"), t)),
        ratio: s
            .ratio
            .map(|r| ratio(c, &format!("{at}.sampling.ratio"), r)),
        forwarded: p
            .forwarded
            .as_ref()
            .map(|m| forwarded_mode(c, &format!("{at}.propagation.forwarded"), m)),
        trusted_networks: p
            .trusted_networks
            .as_ref()
            .map(|l| networks(c, &format!("{at}.propagation.trusted_networks"), l)),
        max_injected_bytes: p.max_injected_bytes.map(|v| {
            let at = format!("{at}.propagation.max_injected_bytes");
            budget(c, &at, v, MIN_INJECTED_BYTES)
        }),
        max_injected_headers: p.max_injected_headers.map(|v| {
            let at = format!("{at}.propagation.max_injected_headers");
            budget(c, &at, v, MIN_INJECTED_HEADERS)
        }),
        browser: browser_override(
            c,
            &format!("{at}.propagation"),
            &BrowserKeys {
                cors: p.cors.as_ref(),
                server_timing: p.server_timing,
                server_timing_durations: p.server_timing_durations,
                trace_id_header: p.trace_id_header.as_ref(),
                timing_allow_origin: p.timing_allow_origin.as_ref(),
            },
        ),
        baggage_allow: p
            .baggage_allow
            .as_ref()
            .map(|l| key_patterns(c, &format!("{at}.propagation.baggage_allow"), l)),
        baggage_deny: p
            .baggage_deny
            .as_ref()
            .map(|l| key_patterns(c, &format!("{at}.propagation.baggage_deny"), l)),
        restart_baggage: p
            .restart_baggage
            .as_ref()
            .map(|v| restart_baggage(c, &format!("{at}.propagation.restart_baggage"), v)),
        request_id_header: p
            .request_id_header
            .as_ref()
            .map(|h| request_id_header(c, &format!("{at}.propagation.request_id_header"), h)),
        request_id_generate: p.request_id_generate,
        request_id_trace: p.request_id_trace,
        keep_errors: s.keep_errors,
        keep_slower_than: s
            .keep_slower_than
            .as_ref()
            .map(|t| keep_slower_than(c, &format!("{at}.sampling.keep_slower_than"), t)),
    }
}

fn http_upstream(c: &mut Collector, name: &str, u: &RawUpstream) -> HttpUpstreamSpec {
    let at = |key: &str| format!("upstreams.{name}.{key}");
    if u.peers.is_empty() {
        c.push(at("peers"), "at least one peer is required");
    }
    let mut peers = Vec::new();
    for (i, p) in u.peers.iter().enumerate() {
        match resolve_peer(p) {
            Ok(addrs) => peers.extend(addrs),
            Err(msg) => c.push(format!("upstreams.{name}.peers[{i}]"), msg),
        }
    }
    let protocol = c
        .choice(at("protocol"), &u.protocol)
        .unwrap_or(Protocol::Http1);
    let tls = u.tls || protocol == Protocol::H2;
    if protocol == Protocol::H2c && u.tls {
        c.push(
            at("protocol"),
            "\"h2c\" is cleartext HTTP/2: use \"h2\" with tls",
        );
    }
    let sni = if u.sni.is_empty() {
        u.peers
            .first()
            .and_then(|p| {
                p.rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default()
    } else {
        u.sni.clone()
    };
    let health_check = u
        .health_check
        .as_ref()
        .map(|h| health_check(c, &at("health_check"), h));
    HttpUpstreamSpec {
        peers,
        peer_names: u.peers.clone(),
        protocol,
        tls,
        sni,
        tls_verify: u.tls_verify,
        connect_timeout: c.positive_duration(at("connect_timeout"), &u.connect_timeout),
        read_timeout: c.positive_duration(at("read_timeout"), &u.read_timeout),
        write_timeout: c.positive_duration(at("write_timeout"), &u.write_timeout),
        idle_timeout: c.duration(at("idle_timeout"), &u.idle_timeout),
        retry_on_connect_failure: u.retry_on_connect_failure,
        max_concurrent_streams: max_concurrent_streams(c, &at("max_concurrent_streams"), u),
        health_check,
    }
}

/// The largest stream count HTTP/2 can express (RFC 9113 §6.5.2: a 31-bit value in
/// practice, since client stream ids are odd 31-bit numbers); Envoy's valid range for
/// `max_concurrent_streams` ends at the same value.
const MAX_CONCURRENT_STREAMS_LIMIT: i64 = (1 << 31) - 1;

fn max_concurrent_streams(c: &mut Collector, at: &str, u: &RawUpstream) -> usize {
    let n = u.max_concurrent_streams;
    if !(1..=MAX_CONCURRENT_STREAMS_LIMIT).contains(&n) {
        c.push(
            at,
            format!("must be between 1 and {MAX_CONCURRENT_STREAMS_LIMIT}, got {n}"),
        );
        return 1;
    }
    usize::try_from(n).unwrap_or(1)
}

fn health_check(c: &mut Collector, at: &str, h: &RawHealthCheck) -> HealthCheckSpec {
    let http = match c.choice(format!("{at}.kind"), &h.kind) {
        Some(HealthCheckKind::Tcp) | None => None,
        Some(HealthCheckKind::Http) => {
            if !h.path.starts_with('/') {
                c.push(format!("{at}.path"), "must start with '/'");
            }
            Some((h.path.clone(), h.host.clone()))
        }
    };
    if h.healthy_threshold == 0 {
        c.push(format!("{at}.healthy_threshold"), "must be at least 1");
    }
    if h.unhealthy_threshold == 0 {
        c.push(format!("{at}.unhealthy_threshold"), "must be at least 1");
    }
    HealthCheckSpec {
        http,
        interval: c.positive_duration(format!("{at}.interval"), &h.interval),
        healthy_threshold: h.healthy_threshold.max(1),
        unhealthy_threshold: h.unhealthy_threshold.max(1),
    }
}

/// Resolves `host:port` now, so that request handling never does DNS or panics on it.
fn resolve_peer(peer: &str) -> Result<Vec<SocketAddr>, String> {
    if peer
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!("invalid peer {peer:?}: expected host:port"));
    }
    match peer.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("peer {peer:?} resolves to no address"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(format!("cannot resolve peer {peer:?}: {e}")),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Routes that can never match, as warnings. The router tries a host group's routes of
/// one `path_prefix` by number of conditions, then in file order (see `router`), so a
/// route is unreachable exactly when an earlier route with the same host, prefix and
/// kinds of condition matches every request it would: the same methods or more (or
/// any), and the same header condition or a looser one (presence only).
fn unreachable_routes(routes: &[RouteSpec]) -> Vec<Problem> {
    use std::collections::HashMap;
    let mut groups: HashMap<(&str, &str, bool, bool), Vec<usize>> = HashMap::new();
    let mut warnings = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let key = (
            r.host.as_str(),
            r.path_prefix.as_str(),
            r.methods.is_empty(),
            r.header.is_none(),
        );
        let earlier = groups.entry(key).or_default();
        let covering = earlier.iter().copied().find(|&j| covers(&routes[j], r));
        if let Some(j) = covering {
            let other = &routes[j];
            let what = if same_match(other, r) {
                "duplicates"
            } else {
                "is shadowed by"
            };
            warnings.push(Problem {
                path: format!("routes[{i}]"),
                message: format!(
                    "route {:?} {what} routes[{j}] ({:?}), which matches every request it \
                     would and comes first: it never matches",
                    r.name, other.name
                ),
                line: None,
            });
        }
        earlier.push(i);
    }
    warnings
}

/// Whether every request `b` matches is matched by `a` (same host and prefix assumed).
fn covers(a: &RouteSpec, b: &RouteSpec) -> bool {
    let methods = a.methods.is_empty() || b.methods.iter().all(|m| a.methods.contains(m));
    let header = match (&a.header, &b.header) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((an, av)), Some((bn, bv))) => an == bn && (av.is_none() || av == bv),
    };
    methods && header
}

fn same_match(a: &RouteSpec, b: &RouteSpec) -> bool {
    covers(a, b) && covers(b, a)
}

fn routes(
    c: &mut Collector,
    raw: &[RawRoute],
    upstreams: &[UpstreamSpec],
    defaults: &Policy,
) -> Vec<RouteSpec> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = |key: &str| format!("routes[{i}].{key}");
        let name = if r.name.is_empty() {
            format!("route{i}")
        } else {
            r.name.clone()
        };
        if !is_identifier(&name) {
            c.push(at("name"), "must be letters, digits, '-' or '_'");
        } else if name == "none" {
            // The label of requests that match no route, in metrics and /coverage.
            c.push(
                at("name"),
                "\"none\" is reserved for requests that match no route",
            );
        }
        if !names.insert(name.clone()) {
            c.push(at("name"), format!("duplicate route name {name:?}"));
        }
        let host = r.host.to_ascii_lowercase();
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                c.push(at("host"), format!("invalid host pattern {:?}", r.host));
            }
        } else if host.contains('*') {
            c.push(
                at("host"),
                format!(
                    "invalid host pattern {:?}: only a leading \"*.\" is allowed",
                    r.host
                ),
            );
        }
        if !r.path_prefix.starts_with('/') {
            c.push(at("path_prefix"), "must start with '/'");
        }
        let methods = r
            .methods
            .iter()
            .enumerate()
            .filter_map(|(k, m)| match http::Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                _ => {
                    c.push(
                        format!("routes[{i}].methods[{k}]"),
                        format!("invalid method {m:?}: expected an uppercase HTTP method"),
                    );
                    None
                }
            })
            .collect();
        let header = r.header.as_ref().and_then(|h| {
            match http::HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes()) {
                Ok(name) => Some((name, h.value.clone())),
                Err(_) => {
                    c.push(
                        at("header.name"),
                        format!("invalid header name {:?}", h.name),
                    );
                    None
                }
            }
        });
        let upstream = if r.upstream.is_empty() {
            c.push(at("upstream"), "is required");
            0
        } else {
            match upstreams.iter().position(|u| u.name == r.upstream) {
                Some(idx) => idx,
                None => {
                    c.push(
                        at("upstream"),
                        format!("no upstream named {:?}", r.upstream),
                    );
                    0
                }
            }
        };
        let route_override = policy_override(
            c,
            &format!("routes[{i}]"),
            r.mode.as_ref(),
            &r.propagation,
            &r.sampling,
        );
        let base = upstreams
            .get(upstream)
            .map_or_else(|| defaults.clone(), |u| u.policy.apply(defaults));
        let policy = route_override.apply(&base);
        // The defaults were checked on their own; a route is checked where its
        // upstream or itself made CORS other than the defaults, at the route's path.
        if policy.browser.cors != defaults.browser.cors {
            check_browser(c, &format!("routes[{i}].propagation.cors"), &policy.browser);
        }
        out.push(RouteSpec {
            name,
            host,
            path_prefix: r.path_prefix.clone(),
            methods,
            header,
            upstream,
            policy,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_routes(routes: Vec<RawRoute>) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.upstreams.insert(
            "e".into(),
            RawUpstream {
                kind: "echo".into(),
                ..RawUpstream::default()
            },
        );
        raw.routes = routes;
        raw
    }

    fn route(
        name: &str,
        prefix: &str,
        methods: &[&str],
        header: Option<(&str, Option<&str>)>,
    ) -> RawRoute {
        RawRoute {
            name: name.into(),
            path_prefix: prefix.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            header: header.map(|(n, v)| super::super::raw::RawHeaderMatch {
                name: n.into(),
                value: v.map(String::from),
            }),
            upstream: "e".into(),
            ..RawRoute::default()
        }
    }

    #[test]
    fn tls_files_must_be_regular_files() {
        let mut raw = echo_routes(vec![route("", "/", &[], None)]);
        raw.server.tls.push(super::super::raw::RawTlsListener {
            listen: "127.0.0.1:8443".into(),
            cert: "/dev/zero".into(),
            key: "/nonexistent/key.pem".into(),
        });
        let problems: Vec<String> = validate(&raw)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems[0],
            "server.tls[0].cert: \"/dev/zero\" is not a regular file"
        );
        assert!(
            problems[1].starts_with("server.tls[0].key: cannot read"),
            "{problems:?}"
        );
    }

    #[test]
    fn too_many_routes_is_one_clear_problem() {
        let many = vec![route("", "/", &[], None); MAX_ROUTES + 1];
        let problems = validate(&echo_routes(many)).unwrap_err();
        assert_eq!(problems.len(), 1, "not one per route: {problems:?}");
        assert_eq!(
            problems[0].to_string(),
            "routes: 10001 entries; at most 10000 are allowed"
        );
        let at_limit = (0..MAX_ROUTES)
            .map(|i| route("", &format!("/{i}"), &[], None))
            .collect();
        assert!(validate(&echo_routes(at_limit)).is_ok());
    }

    #[test]
    fn routes_that_never_match_are_warned_about() {
        // (routes, warnings expected, why)
        let get = Some(("x-canary", Some("1")));
        let rows: Vec<(Vec<RawRoute>, Vec<&str>, &str)> = vec![
            (
                vec![route("a", "/api", &[], None), route("b", "/api", &[], None)],
                vec!["routes[1]: route \"b\" duplicates routes[0] (\"a\")"],
                "same match twice: the first wins",
            ),
            (
                vec![
                    route("a", "/api", &["GET", "POST"], None),
                    route("b", "/api", &["GET"], None),
                ],
                vec!["routes[1]: route \"b\" is shadowed by routes[0] (\"a\")"],
                "a broader method set comes first",
            ),
            (
                vec![
                    route("a", "/api", &[], Some(("x-canary", None))),
                    route("b", "/api", &[], get),
                ],
                vec!["routes[1]: route \"b\" is shadowed by routes[0] (\"a\")"],
                "header presence covers any value",
            ),
            (
                vec![
                    route("a", "/api", &[], None),
                    route("b", "/api", &["GET"], None),
                ],
                vec![],
                "more conditions win whatever the order",
            ),
            (
                vec![
                    route("a", "/api", &["GET"], None),
                    route("b", "/api", &["GET", "POST"], None),
                ],
                vec![],
                "b still gets POST",
            ),
            (
                vec![
                    route("a", "/api", &[], get),
                    route("b", "/api", &[], Some(("x-canary", None))),
                ],
                vec![],
                "b still gets other values",
            ),
            (
                vec![route("a", "/", &[], None), route("b", "/api", &[], None)],
                vec![],
                "a longer prefix wins",
            ),
        ];
        for (routes, want, why) in rows {
            let v = validate(&echo_routes(routes)).unwrap();
            let got: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
            assert_eq!(got.len(), want.len(), "{why}: {got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.starts_with(w), "{why}: {g}");
            }
        }
    }
}
