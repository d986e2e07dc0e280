//! The config file as written: serde structs mirroring the TOML, nothing checked
//! beyond types and key names. Every key has a default, so an empty file is a valid
//! (if useless) config; `validate` decides what is acceptable.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::mediate::baggage_filter::RestartBaggage;
use crate::mediate::browser::CorsMode;
use crate::mediate::{ForwardedMode, Mode, Strategy, Trust};
use crate::model::named::named_enum;
use crate::model::Named;

/// A key whose value is one of a closed set (`trust`, `kind`, `protocol`, …), as
/// written: one of `T`'s names, or text that is none of them. The text is kept rather
/// than refused by serde, so that validation reports it with its key path and `T`'s
/// names next to every other problem (see `validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<T> {
    /// A valid name.
    Known(T),
    /// Anything else, as written.
    Unknown(String),
}

impl<T: Named> Choice<T> {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        match self {
            Choice::Known(value) => value.name(),
            Choice::Unknown(text) => text,
        }
    }
}

impl<T: Named> From<T> for Choice<T> {
    fn from(value: T) -> Self {
        Choice::Known(value)
    }
}

impl<T: Named> From<&str> for Choice<T> {
    fn from(text: &str) -> Self {
        T::from_name(text).map_or_else(|| Choice::Unknown(text.to_string()), Choice::Known)
    }
}

impl<T: Named> PartialEq<&str> for Choice<T> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<'de, T: Named> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A string of any content; only a value of another type is serde's to refuse.
        String::deserialize(deserializer).map(|text| Choice::from(text.as_str()))
    }
}

named_enum! {
    /// `[upstreams.NAME] kind`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum UpstreamKindName("kind") {
        /// Forward to `peers`.
        Http = "http",
        /// The built-in echo service.
        Echo = "echo",
    }
}

named_enum! {
    /// How the gateway talks to an upstream's peers (`[upstreams.NAME] protocol`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Protocol("protocol") {
        /// HTTP/1.1 (over TLS if `tls`, with h2 offered by ALPN).
        Http1 = "http1" | "http/1.1",
        /// HTTP/2 with prior knowledge over cleartext.
        H2c = "h2c",
        /// HTTP/2 over TLS.
        H2 = "h2",
    }
}

named_enum! {
    /// `[upstreams.NAME.health_check] kind`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum HealthCheckKind("kind") {
        /// The connection succeeds.
        Tcp = "tcp",
        /// A GET of `path` answers 2xx.
        Http = "http",
    }
}

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
    /// Several exporters at once (`[[telemetry.exporters]]`), each with its own queue
    /// and counters; when given, `exporter` / `protocol` / `endpoint` / `headers` /
    /// `compression` (the one-exporter shorthand) must be left out.
    pub exporters: Vec<RawExporter>,
    /// Defaults of `tracebridge logs-to-traces`.
    pub logs_to_traces: RawLogsToTraces,
}

/// `[telemetry.logs_to_traces]`: how `tracebridge logs-to-traces` reads a log by
/// default (its command line overrides every key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogsToTraces {
    /// `"alb"`, `"tracebridge"` or `"json"` (generic JSON lines, `fields` below).
    pub format: String,
    /// `"start"` (the logged time is when the request arrived, Envoy's `%START_TIME%`)
    /// or `"end"` (when the response ended, nginx's `$time_iso8601`).
    pub time_at: String,
    /// Unit of the logged duration: `"s"` (nginx `$request_time`), `"ms"` (Envoy
    /// `%DURATION%`) or `"us"`.
    pub duration_unit: String,
    /// JSON field names: `time`, `duration`, `method`, `path`, `status`, `host`,
    /// `user_agent`, `client` (each defaults to its own name).
    pub fields: BTreeMap<String, String>,
    /// Trace headers the log carries, header name → JSON field (e.g. `traceparent =
    /// "http_traceparent"`); empty = every trace header name as a field of that name.
    pub headers: BTreeMap<String, String>,
}

impl Default for RawLogsToTraces {
    fn default() -> Self {
        RawLogsToTraces {
            format: "json".to_string(),
            time_at: "start".to_string(),
            duration_unit: "s".to_string(),
            fields: BTreeMap::new(),
            headers: BTreeMap::new(),
        }
    }
}

/// One `[[telemetry.exporters]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExporter {
    /// The `exporter` label of its metrics; default: its `kind`. Unique.
    pub name: String,
    /// `"otlp"`, `"zipkin"` or `"stdout"`.
    pub kind: String,
    /// OTLP only: `"http/protobuf"` (default) or `"grpc"`.
    pub protocol: String,
    /// OTLP: base URL (default `http://localhost:4318`, gRPC `:4317`); Zipkin: the full
    /// URL (default `http://localhost:9411/api/v2/spans`).
    pub endpoint: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export call; default `[telemetry] timeout`.
    pub timeout: Option<String>,
    /// OTLP only: `"none"` (default) or `"gzip"`.
    pub compression: String,
    /// Its queue; default `[telemetry] queue_size`.
    pub queue_size: Option<usize>,
    /// Default `[telemetry] batch_size`.
    pub batch_size: Option<usize>,
    /// Default `[telemetry] batch_delay`.
    pub batch_delay: Option<String>,
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
            exporters: Vec::new(),
            logs_to_traces: RawLogsToTraces::default(),
        }
    }
}

/// `[sampling]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSampling {
    /// `"parent"` (honour the incoming decision; `ratio` for new roots), `"always"`,
    /// `"never"` or `"ratio"` (`ratio` for every trace, by trace id).
    pub strategy: Choice<Strategy>,
    /// Probability of sampling a new root (or every trace with `"ratio"`), 0.0 to 1.0.
    pub ratio: f64,
    /// Cap on new sampled roots per second, process-wide; 0 = no cap.
    pub max_traces_per_second: f64,
    /// Export the gateway's own span of an unsampled request that failed (5xx, proxy
    /// failure); the propagated decision is not changed. Under the same cap as roots.
    pub keep_errors: bool,
    /// Export the gateway's own span of an unsampled request at least this slow
    /// (`"500ms"`); `""` = off. Under the same cap as roots.
    pub keep_slower_than: String,
}

impl Default for RawSampling {
    fn default() -> Self {
        RawSampling {
            strategy: Strategy::Parent.into(),
            ratio: 1.0,
            max_traces_per_second: 0.0,
            keep_errors: false,
            keep_slower_than: String::new(),
        }
    }
}

/// A partial `sampling` table on an upstream or a route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSamplingOverride {
    /// Overrides `[sampling].strategy`.
    pub strategy: Option<Choice<Strategy>>,
    /// Overrides `[sampling].ratio`.
    pub ratio: Option<f64>,
    /// Overrides `[sampling].keep_errors`.
    pub keep_errors: Option<bool>,
    /// Overrides `[sampling].keep_slower_than` (`""` turns it off).
    pub keep_slower_than: Option<String>,
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
    pub trust: Choice<Trust>,
    /// Make a gateway span; `false` = propagation only (the incoming parent passes through).
    pub span: bool,
    /// Add a W3C `traceresponse` header to responses.
    pub response_header: bool,
    /// Client-address forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`,
    /// `Forwarded`): `"append"` (extend a trusted proxy's chain, start a new one for
    /// anyone else), `"replace"` (one hop: the resolved client) or `"off"` (untouched).
    pub forwarded: Choice<ForwardedMode>,
    /// CIDRs whose requests get `trust = "continue"` whatever `trust` says (internal
    /// callers); everyone else gets `trust`. Matched against the client address
    /// resolved with `[server] trusted_proxies`.
    pub trusted_networks: Vec<String>,
    /// Budget in bytes (`name: value\r\n`) for all trace headers injected into one
    /// request, over every format; baggage is dropped first, ids never. 0 = none.
    pub max_injected_bytes: usize,
    /// Budget in header lines for the same; 0 = none.
    pub max_injected_headers: usize,
    /// CORS for the trace headers; absent = off, a table without `mode` = `"augment"`.
    pub cors: Option<RawCors>,
    /// Add `Server-Timing: traceparent;desc="00-{trace}-{span}-{flags}"` to responses
    /// (the entry the OpenTelemetry JS document-load instrumentation reads).
    pub server_timing: bool,
    /// Add the gateway's own and the upstream's durations to `Server-Timing`.
    pub server_timing_durations: bool,
    /// A response header carrying the trace id (e.g. `"x-trace-id"`); `""` = none.
    pub trace_id_header: String,
    /// Origins sent `Timing-Allow-Origin` (`"*"`, exact origins, `*.example.com`), so a
    /// cross-origin page may read the timing (and `serverTiming`); `[]` = none.
    pub timing_allow_origin: Vec<String>,
    /// Incoming baggage keys allowed through: exact keys, or prefixes ending in `*`
    /// (`"app.*"`). Absent = every key; `[]` = none. Others are dropped and counted.
    pub baggage_allow: Option<Vec<String>>,
    /// Incoming baggage keys never let through (exact, or `prefix*`); wins over
    /// `baggage_allow`.
    pub baggage_deny: Vec<String>,
    /// What `trust = "restart"` does with incoming baggage: `"keep"` (carried into the
    /// new trace, filtered) or `"drop"`.
    pub restart_baggage: Choice<RestartBaggage>,
    /// The request-id header: recorded on the span and the access log when valid;
    /// `""` = off.
    pub request_id_header: String,
    /// Make a request id (`{trace id}-{span id}`) when there is no valid one, set it
    /// upstream, and return the request id in the response.
    pub request_id_generate: bool,
    /// Start the trace of a request without trace context from its request id when that
    /// is a 128-bit id (32 hex digits or a UUID).
    pub request_id_trace: bool,
}

/// `[propagation.cors]` (and `cors = { ... }` in an override): every key optional, the
/// table under it (or the built-in default) fills the rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCors {
    /// `"augment"` (the upstream does CORS; the requested trace headers are added to
    /// what it allows), `"answer"` (the gateway answers preflights from this table) or
    /// `"off"`.
    pub mode: Option<Choice<CorsMode>>,
    /// Answer mode: allowed origins, exact (`"https://app.example.com"`), by pattern
    /// (`"*.example.com"`, `"https://*.example.com"`) or `"*"` (not with credentials).
    pub allow_origins: Option<Vec<String>>,
    /// Answer mode: `Access-Control-Allow-Methods` (uppercase).
    pub allow_methods: Option<Vec<String>>,
    /// Answer mode: request headers allowed besides the route's trace headers (e.g.
    /// `content-type` for JSON bodies).
    pub allow_headers: Option<Vec<String>>,
    /// Answer mode: response headers a page may read besides the gateway's own.
    pub expose_headers: Option<Vec<String>>,
    /// Answer mode: how long a browser may cache the preflight answer (`"10m"`).
    pub max_age: Option<String>,
    /// Answer mode: `Access-Control-Allow-Credentials: true` (cookies, auth).
    pub allow_credentials: Option<bool>,
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
            trust: Trust::Continue.into(),
            span: true,
            response_header: false,
            forwarded: ForwardedMode::Append.into(),
            trusted_networks: Vec::new(),
            max_injected_bytes: crate::mediate::policy::DEFAULT_MAX_INJECTED_BYTES,
            max_injected_headers: crate::mediate::policy::DEFAULT_MAX_INJECTED_HEADERS,
            cors: None,
            server_timing: false,
            server_timing_durations: false,
            trace_id_header: String::new(),
            timing_allow_origin: Vec::new(),
            baggage_allow: None,
            baggage_deny: Vec::new(),
            restart_baggage: RestartBaggage::Keep.into(),
            request_id_header: crate::mediate::request_id::DEFAULT_HEADER.to_owned(),
            request_id_generate: false,
            request_id_trace: false,
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
    pub trust: Option<Choice<Trust>>,
    /// Overrides `span`.
    pub span: Option<bool>,
    /// Overrides `response_header`.
    pub response_header: Option<bool>,
    /// Overrides `forwarded`.
    pub forwarded: Option<Choice<ForwardedMode>>,
    /// Overrides `trusted_networks`.
    pub trusted_networks: Option<Vec<String>>,
    /// Overrides `max_injected_bytes`.
    pub max_injected_bytes: Option<usize>,
    /// Overrides `max_injected_headers`.
    pub max_injected_headers: Option<usize>,
    /// Overrides `cors`, key by key.
    pub cors: Option<RawCors>,
    /// Overrides `server_timing`.
    pub server_timing: Option<bool>,
    /// Overrides `server_timing_durations`.
    pub server_timing_durations: Option<bool>,
    /// Overrides `trace_id_header` (`""` turns it off).
    pub trace_id_header: Option<String>,
    /// Overrides `timing_allow_origin`.
    pub timing_allow_origin: Option<Vec<String>>,
    /// Overrides `baggage_allow` (`["*"]` lets every key through again).
    pub baggage_allow: Option<Vec<String>>,
    /// Overrides `baggage_deny`.
    pub baggage_deny: Option<Vec<String>>,
    /// Overrides `restart_baggage`.
    pub restart_baggage: Option<Choice<RestartBaggage>>,
    /// Overrides `request_id_header` (`""` turns request ids off).
    pub request_id_header: Option<String>,
    /// Overrides `request_id_generate`.
    pub request_id_generate: Option<bool>,
    /// Overrides `request_id_trace`.
    pub request_id_trace: Option<bool>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Plain-TCP listen addresses; each serves HTTP/1.1 and (if `h2c`) HTTP/2 cleartext.
    pub listen: Vec<String>,
    /// Accept HTTP/2 with prior knowledge on the plain listeners.
    pub h2c: bool,
    /// Serve simple HTTP/1 requests on the fast path (parsed and proxied without
    /// pingora-proxy's per-request machinery; everything else goes to pingora on the same
    /// connection). `false` sends every request through pingora-proxy. Read per
    /// connection, so a reload applies to new connections.
    pub fast_path: bool,
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
            fast_path: true,
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
pub(crate) const DEFAULT_MAX_CONCURRENT_STREAMS: i64 = 100;

/// `[upstreams.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    /// `"http"` (forward to `peers`) or `"echo"` (built-in: answer with the request as it
    /// would have been forwarded).
    pub kind: Choice<UpstreamKindName>,
    /// `host:port` of each peer; resolved when the config is loaded. Round-robin.
    pub peers: Vec<String>,
    /// `"http1"`, `"h2c"` (HTTP/2 cleartext, needed for gRPC without TLS) or `"h2"`
    /// (HTTP/2 over TLS; implies `tls`). `"http/1.1"` is accepted for `"http1"`.
    pub protocol: Choice<Protocol>,
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
    /// `"mediate"` (default: write and strip trace headers) or `"observe"` (change no
    /// header; extract, count and span as usual and record what mediate would write),
    /// for every route to this upstream; a route's own `mode` wins.
    pub mode: Option<Choice<Mode>>,
    /// Propagation overrides for every route to this upstream.
    pub propagation: RawPropagationOverride,
    /// Sampling overrides for every route to this upstream.
    pub sampling: RawSamplingOverride,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            kind: UpstreamKindName::Http.into(),
            peers: Vec::new(),
            protocol: Protocol::Http1.into(),
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
            mode: None,
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
    pub kind: Choice<HealthCheckKind>,
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
            kind: HealthCheckKind::Tcp.into(),
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
    /// `"mediate"` or `"observe"` for this route (over its upstream's `mode`; absent =
    /// the upstream's, else `"mediate"`).
    pub mode: Option<Choice<Mode>>,
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
            mode: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A bad value of every closed-set key, at every level it can be written: each is
    /// reported in one pass, with its key path (no line: validation's, not serde's) and
    /// the names from its type's one table, byte for byte the messages of the
    /// hand-written lists these tables replaced.
    #[test]
    fn every_bad_choice_is_reported_with_its_path_and_the_valid_names() {
        let text = r#"
            [propagation]
            trust = "trusting"
            forwarded = "prepend"
            [sampling]
            strategy = "sometimes"
            [upstreams.a]
            kind = "grpc"
            propagation = { trust = "Continue" }
            sampling = { strategy = "" }
            [upstreams.b]
            peers = ["127.0.0.1:1"]
            protocol = "h3"
            health_check = { kind = "udp" }
            [[routes]]
            upstream = "b"
            propagation = { forwarded = "x" }
        "#;
        let err = crate::config::load_str(text, None, 1).unwrap_err();
        let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        let want = [
            r#"propagation.trust: unknown trust "trusting": expected "continue", "restart" or "continue_unsampled""#,
            r#"sampling.strategy: unknown strategy "sometimes": expected "parent", "always", "never" or "ratio""#,
            r#"propagation.forwarded: unknown mode "prepend": expected "append", "replace" or "off""#,
            r#"upstreams.a.kind: unknown kind "grpc": expected "http" or "echo""#,
            r#"upstreams.a.propagation.trust: unknown trust "Continue": expected "continue", "restart" or "continue_unsampled""#,
            r#"upstreams.a.sampling.strategy: unknown strategy "": expected "parent", "always", "never" or "ratio""#,
            r#"upstreams.b.protocol: unknown protocol "h3": expected "http1", "h2c" or "h2""#,
            r#"upstreams.b.health_check.kind: unknown kind "udp": expected "tcp" or "http""#,
            r#"routes[0].propagation.forwarded: unknown mode "x": expected "append", "replace" or "off""#,
        ];
        assert_eq!(got, want);
    }

    /// A value of another type is still serde's to refuse, with its path and line.
    #[test]
    fn a_choice_of_the_wrong_type_is_a_parse_problem() {
        let err = crate::config::parse("[propagation]\ntrust = 1\n").unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "line 2: propagation.trust: invalid type: integer `1`, expected a string"
        );
    }

    /// Every name of every table (aliases too) is accepted where the key is written,
    /// and the default of each key is one of them.
    #[test]
    fn every_name_in_the_tables_parses() {
        fn each<T: Named + std::fmt::Debug>(key: impl Fn(&RawConfig) -> &Choice<T>, toml: &str) {
            for &(name, value) in T::NAMES {
                let raw = crate::config::parse(&toml.replace("NAME", name)).unwrap();
                assert_eq!(*key(&raw), Choice::Known(value), "{name}");
            }
            assert!(matches!(key(&RawConfig::default()), Choice::Known(_)));
        }
        let upstream = |raw: &RawConfig| raw.upstreams["u"].clone();
        each(|r| &r.propagation.trust, "[propagation]\ntrust = \"NAME\"");
        each(
            |r| &r.propagation.forwarded,
            "[propagation]\nforwarded = \"NAME\"",
        );
        each(|r| &r.sampling.strategy, "[sampling]\nstrategy = \"NAME\"");
        for &(name, value) in UpstreamKindName::NAMES {
            let raw = crate::config::parse(&format!("[upstreams.u]\nkind = \"{name}\"")).unwrap();
            assert_eq!(upstream(&raw).kind, Choice::Known(value));
        }
        for &(name, value) in Protocol::NAMES {
            let raw =
                crate::config::parse(&format!("[upstreams.u]\nprotocol = \"{name}\"")).unwrap();
            assert_eq!(upstream(&raw).protocol, Choice::Known(value));
        }
        assert!(Protocol::NAMES.contains(&("http/1.1", Protocol::Http1)));
        for &(name, value) in HealthCheckKind::NAMES {
            let text = format!("[upstreams.u]\nhealth_check = {{ kind = \"{name}\" }}");
            let raw = crate::config::parse(&text).unwrap();
            let kind = upstream(&raw).health_check.map(|h| h.kind);
            assert_eq!(kind, Some(Choice::Known(value)));
        }
        let defaults = RawUpstream::default();
        assert_eq!(defaults.kind, "http");
        assert_eq!(defaults.protocol, "http1");
        assert_eq!(RawHealthCheck::default().kind, "tcp");
    }
}
