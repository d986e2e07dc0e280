//! The config file as written: serde structs mirroring the TOML, nothing checked
//! beyond types and key names. Every key has a default, so an empty file is a valid
//! (if useless) config; `validate` decides what is acceptable.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Listeners, threads and process settings.
    pub server: RawServer,
    /// Services behind the gateway, by name. ("Upstream" is proxy vocabulary: the service
    /// the gateway forwards to. Tracing documents often call the *caller* upstream.)
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// Routing rules; the most specific match wins (see `router`).
    pub routes: Vec<RawRoute>,
    /// The gateway's own identity and where its spans go.
    pub telemetry: RawTelemetry,
    /// Sampling of the gateway span (and so of the trace, for new roots).
    pub sampling: RawSampling,
    /// Trace-context propagation defaults; upstreams and routes override any key.
    pub propagation: RawPropagation,
    /// One JSON line per request, with its trace ids.
    pub access_log: RawAccessLog,
}

/// `[access_log]`: off by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAccessLog {
    /// Write one JSON line per request when it ends: time, route, method, path, status,
    /// duration, upstream address, bytes sent, trace / span / incoming parent ids,
    /// extracted and injected formats.
    pub enabled: bool,
    /// File to append the lines to; empty = standard output. Its directory must exist;
    /// the file is created if missing and opened again on every reload (rotate by
    /// renaming the file, then reloading).
    pub path: String,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    /// `service.name` of the gateway's spans; also the SkyWalking parent service and the
    /// EagleEye `pAppName` it writes.
    pub service_name: String,
    /// `service.instance.id`; also the SkyWalking parent instance. Empty = the host name.
    pub service_instance: String,
    /// `"otlp"`, `"stdout"` (one JSON object per span per line) or `"none"`.
    pub exporter: String,
    /// OTLP transport: `"http/protobuf"` or `"grpc"`.
    pub protocol: String,
    /// OTLP base URL (`http://collector:4318`); empty = `http://localhost:4318` for
    /// HTTP, `http://localhost:4317` for gRPC. `/v1/traces` is appended for HTTP.
    pub endpoint: String,
    /// Extra OTLP request headers (authentication, tenant).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Timeout of one export call.
    pub timeout: String,
    /// `"none"` or `"gzip"`.
    pub compression: String,
    /// Spans the export queue holds; when full, new spans are dropped and counted.
    pub queue_size: usize,
    /// Spans per export call at most.
    pub batch_size: usize,
    /// Longest a span waits in the queue before its batch is sent.
    pub batch_delay: String,
    /// Dynamic degradation: stop making spans (propagation only) when the export
    /// queue stays above this share of its size for `degrade_after`.
    pub degrade_high_water: f64,
    /// Recover when the queue stays below this share for `degrade_after`.
    pub degrade_low_water: f64,
    /// Also degrade when more spans than this start per second; 0 = no limit.
    pub degrade_max_spans_per_second: f64,
    /// How long a condition must hold before switching either way.
    pub degrade_after: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            service_name: "tracebridge".to_string(),
            service_instance: String::new(),
            exporter: "stdout".to_string(),
            protocol: "http/protobuf".to_string(),
            endpoint: String::new(),
            headers: Default::default(),
            timeout: "10s".to_string(),
            compression: "none".to_string(),
            queue_size: 2048,
            batch_size: 512,
            batch_delay: "1s".to_string(),
            degrade_high_water: 0.8,
            degrade_low_water: 0.2,
            degrade_max_spans_per_second: 0.0,
            degrade_after: "1s".to_string(),
        }
    }
}

/// `[sampling]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSampling {
    /// `"parent"` (honour the incoming decision; `ratio` for new roots), `"always"`,
    /// `"never"` or `"ratio"` (`ratio` for every trace, by trace id).
    pub strategy: String,
    /// Probability of sampling a new root (or every trace with `"ratio"`), 0.0 to 1.0.
    pub ratio: f64,
    /// Cap on new sampled roots per second, process-wide; 0 = no cap.
    pub max_traces_per_second: f64,
}

impl Default for RawSampling {
    fn default() -> Self {
        RawSampling {
            strategy: "parent".to_string(),
            ratio: 1.0,
            max_traces_per_second: 0.0,
        }
    }
}

/// A partial `sampling` table on an upstream or a route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSamplingOverride {
    /// Overrides `[sampling].strategy`.
    pub strategy: Option<String>,
    /// Overrides `[sampling].ratio`.
    pub ratio: Option<f64>,
}

/// `[propagation]`: the defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPropagation {
    /// Formats to read, in precedence order: the first valid context wins.
    pub extract: Vec<String>,
    /// Formats to write; `"preserve"` adds the format(s) that arrived.
    pub inject: Vec<String>,
    /// Remove every known trace header that is not re-injected.
    pub strip_unlisted: bool,
    /// `"continue"`, `"restart"` (new trace, incoming context kept as a link) or
    /// `"continue_unsampled"` (keep the ids, ignore the incoming sampled/debug flags).
    pub trust: String,
    /// Make a gateway span; `false` = propagation only (the incoming parent passes through).
    pub span: bool,
    /// Add a W3C `traceresponse` header to responses.
    pub response_header: bool,
    /// Client-address forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`,
    /// `Forwarded`): `"append"` (extend a trusted proxy's chain, start a new one for
    /// anyone else), `"replace"` (one hop: the resolved client) or `"off"` (untouched).
    pub forwarded: String,
    /// CIDRs whose requests get `trust = "continue"` whatever `trust` says (internal
    /// callers); everyone else gets `trust`. Matched against the client address
    /// resolved with `[server] trusted_proxies`.
    pub trusted_networks: Vec<String>,
    /// Budget in bytes (`name: value\r\n`) for all trace headers injected into one
    /// request, over every format; baggage is dropped first, ids never. 0 = none.
    pub max_injected_bytes: usize,
    /// Budget in header lines for the same; 0 = none.
    pub max_injected_headers: usize,
}

impl Default for RawPropagation {
    fn default() -> Self {
        RawPropagation {
            extract: [
                "tracecontext",
                "b3",
                "b3multi",
                "jaeger",
                "skywalking",
                "datadog",
                "xray",
                "gcp",
                "grpc-trace-bin",
                "ottrace",
                "eagleeye",
                "instana",
                "baggage",
            ]
            .map(String::from)
            .to_vec(),
            inject: ["preserve", "tracecontext", "baggage"]
                .map(String::from)
                .to_vec(),
            strip_unlisted: true,
            trust: "continue".to_string(),
            span: true,
            response_header: false,
            forwarded: "append".to_string(),
            trusted_networks: Vec::new(),
            max_injected_bytes: crate::mediate::policy::DEFAULT_MAX_INJECTED_BYTES,
            max_injected_headers: crate::mediate::policy::DEFAULT_MAX_INJECTED_HEADERS,
        }
    }
}

/// A partial `propagation` table on an upstream or a route: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPropagationOverride {
    /// Overrides `extract`.
    pub extract: Option<Vec<String>>,
    /// Overrides `inject`.
    pub inject: Option<Vec<String>>,
    /// Overrides `strip_unlisted`.
    pub strip_unlisted: Option<bool>,
    /// Overrides `trust`.
    pub trust: Option<String>,
    /// Overrides `span`.
    pub span: Option<bool>,
    /// Overrides `response_header`.
    pub response_header: Option<bool>,
    /// Overrides `forwarded`.
    pub forwarded: Option<String>,
    /// Overrides `trusted_networks`.
    pub trusted_networks: Option<Vec<String>>,
    /// Overrides `max_injected_bytes`.
    pub max_injected_bytes: Option<usize>,
    /// Overrides `max_injected_headers`.
    pub max_injected_headers: Option<usize>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Plain-TCP listen addresses; each serves HTTP/1.1 and (if `h2c`) HTTP/2 cleartext.
    pub listen: Vec<String>,
    /// Accept HTTP/2 with prior knowledge on the plain listeners.
    pub h2c: bool,
    /// TLS listeners (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls: Vec<RawTlsListener>,
    /// The admin listener (health, readiness, metrics, config). Keep it on loopback.
    pub admin_listen: String,
    /// Bearer token required by `POST /reload` when set (set it when the admin
    /// listener is exposed beyond loopback).
    pub admin_token: String,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// CIDRs of proxies (load balancers, CDNs) whose `X-Forwarded-For` names the client;
    /// from any other peer the forwarding headers are ignored and replaced. Empty =
    /// trust no one.
    pub trusted_proxies: Vec<String>,
    /// On SIGTERM: how long in-flight requests may take to finish. The gateway exits as
    /// soon as no connection is left, so an idle gateway stops at once.
    pub grace_period: String,
    /// After an upgrade's (SIGQUIT) grace period: how long to wait for the runtimes to
    /// finish. SIGTERM's drain ends when the connections do, so it does not use it.
    pub shutdown_timeout: String,
    /// Unix socket over which listening sockets pass to a new process on `--upgrade`.
    pub upgrade_sock: String,
    /// Where the process id is written (used by the zero-downtime upgrade recipe).
    pub pid_file: String,
    /// How long a client has to send a whole request header, from the connection's
    /// accept (first request) or from the first byte (later keep-alive requests). A
    /// deadline, not a per-read timeout: a client trickling bytes is cut at it. nginx's
    /// `client_header_timeout` (60 s).
    pub header_timeout: String,
    /// How long a keep-alive connection may sit idle between requests; `"0s"` turns
    /// keep-alive off. nginx's `keepalive_timeout` (75 s).
    pub keepalive_timeout: String,
    /// Most downstream connections open at once. At the cap a new connection evicts
    /// the oldest idle one (as nginx does); with none idle it is closed at once.
    /// `0` (default) = half the open-file limit minus 32, as each proxied client also
    /// needs an upstream socket (nginx's `worker_connections` counts both the same way).
    pub max_connections: usize,
    /// Accept a config without `[[routes]]` (every request answered 404). Off, so that a
    /// file cut short by an editor never replaces a working config.
    pub allow_no_routes: bool,
    /// Let a reload remove the `admin_token` of the serving config. Off, so that a file
    /// rewritten without the line does not silently open `POST /reload`.
    pub allow_admin_token_removal: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: vec!["127.0.0.1:8080".to_string()],
            h2c: true,
            tls: Vec::new(),
            admin_listen: "127.0.0.1:9901".to_string(),
            admin_token: String::new(),
            threads: 2,
            trusted_proxies: Vec::new(),
            grace_period: "10s".to_string(),
            shutdown_timeout: "5s".to_string(),
            upgrade_sock: "/tmp/tracebridge_upgrade.sock".to_string(),
            pid_file: "/tmp/tracebridge.pid".to_string(),
            header_timeout: "60s".to_string(),
            keepalive_timeout: "75s".to_string(),
            max_connections: 0,
            allow_no_routes: false,
            allow_admin_token_removal: false,
        }
    }
}

/// One `[[server.tls]]` listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTlsListener {
    /// Listen address, `host:port`.
    pub listen: String,
    /// PEM certificate chain file.
    pub cert: String,
    /// PEM private key file.
    pub key: String,
}

/// Default of `[upstreams.NAME] max_concurrent_streams` (why: on the field).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: i64 = 100;

/// `[upstreams.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    /// `"http"` (forward to `peers`) or `"echo"` (built-in: answer with the request as it
    /// would have been forwarded).
    pub kind: String,
    /// `host:port` of each peer; resolved when the config is loaded. Round-robin.
    pub peers: Vec<String>,
    /// `"http1"`, `"h2c"` (HTTP/2 cleartext, needed for gRPC without TLS) or `"h2"`
    /// (HTTP/2 over TLS; implies `tls`).
    pub protocol: String,
    /// Connect to the peers over TLS.
    pub tls: bool,
    /// TLS server name; defaults to the host part of the peer.
    pub sni: String,
    /// Verify the peer's certificate (and host name).
    pub tls_verify: bool,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: String,
    /// Timeout for each read from the peer.
    pub read_timeout: String,
    /// Timeout for each write to the peer.
    pub write_timeout: String,
    /// How long an idle keep-alive connection stays in the pool.
    pub idle_timeout: String,
    /// Retry once on another peer when connecting fails (idempotent methods only).
    pub retry_on_connect_failure: bool,
    /// For `h2c` / `h2`: how many requests (gRPC calls) share one HTTP/2 connection at
    /// once; a further concurrent request opens another connection. pingora's own
    /// default is 1 (a connection per in-flight call). 100 is the floor RFC 9113
    /// §6.5.2 recommends servers advertise and pingora's own server default; Envoy
    /// (`http2_protocol_options.max_concurrent_streams`) defaults to 2^31-1 and lets the
    /// server's SETTINGS decide. The lower of this and the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` applies. Signed so a negative value gets a
    /// clear validation message rather than a type error.
    pub max_concurrent_streams: i64,
    /// Active health checking; absent = every peer is assumed healthy.
    pub health_check: Option<RawHealthCheck>,
    /// Propagation overrides for every route to this upstream.
    pub propagation: RawPropagationOverride,
    /// Sampling overrides for every route to this upstream.
    pub sampling: RawSamplingOverride,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            kind: "http".to_string(),
            peers: Vec::new(),
            protocol: "http1".to_string(),
            tls: false,
            sni: String::new(),
            tls_verify: true,
            connect_timeout: "1s".to_string(),
            read_timeout: "30s".to_string(),
            write_timeout: "30s".to_string(),
            idle_timeout: "60s".to_string(),
            retry_on_connect_failure: true,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            health_check: None,
            propagation: RawPropagationOverride::default(),
            sampling: RawSamplingOverride::default(),
        }
    }
}

/// `[upstreams.NAME.health_check]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealthCheck {
    /// `"tcp"` (connect succeeds) or `"http"` (a GET answers 2xx).
    pub kind: String,
    /// Time between checks.
    pub interval: String,
    /// For `"http"`: the path to GET.
    pub path: String,
    /// For `"http"`: the Host header to send.
    pub host: String,
    /// Consecutive successes before a peer counts as healthy again.
    pub healthy_threshold: usize,
    /// Consecutive failures before a peer counts as unhealthy.
    pub unhealthy_threshold: usize,
}

impl Default for RawHealthCheck {
    fn default() -> Self {
        RawHealthCheck {
            kind: "tcp".to_string(),
            interval: "5s".to_string(),
            path: "/".to_string(),
            host: "localhost".to_string(),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRoute {
    /// Route name: metric label and span attribute. Defaults to `route<index>`.
    pub name: String,
    /// Host to match: exact (`api.example.com`) or a suffix wildcard (`*.example.com`).
    /// Empty = any host.
    pub host: String,
    /// Path prefix to match; the longest matching prefix wins.
    pub path_prefix: String,
    /// Methods to match (uppercase); empty = any.
    pub methods: Vec<String>,
    /// A request header that must be present (and equal `value`, if set).
    pub header: Option<RawHeaderMatch>,
    /// The upstream this route forwards to.
    pub upstream: String,
    /// Propagation overrides for this route (over the upstream's, over the defaults).
    pub propagation: RawPropagationOverride,
    /// Sampling overrides for this route.
    pub sampling: RawSamplingOverride,
}

impl Default for RawRoute {
    fn default() -> Self {
        RawRoute {
            name: String::new(),
            host: String::new(),
            path_prefix: "/".to_string(),
            methods: Vec::new(),
            header: None,
            upstream: String::new(),
            propagation: RawPropagationOverride::default(),
            sampling: RawSamplingOverride::default(),
        }
    }
}

/// `header = { name = "...", value = "..." }` in a route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// Exact value; absent = the header only has to be present.
    pub value: Option<String>,
}
