//! The browser edge, pure: CORS for the trace headers, `Server-Timing`, and the trace
//! id in responses (issue 20). The proxy hands in the request and response headers and
//! applies the edits returned here; nothing in this file does I/O.
//!
//! Two CORS modes (per route, over upstream, over `[propagation]`):
//! - *augment*: the upstream does CORS. Its answer to a preflight, when it allows the
//!   page's origin, gets the trace headers the browser asked for added to
//!   `Access-Control-Allow-Headers` (only those of the route's `extract` formats), so
//!   an application that knows nothing of tracing keeps working. Nothing else is
//!   widened: an origin the upstream refuses stays refused.
//! - *answer*: the gateway answers preflights itself from `allow_origins` (exact
//!   origins, `*.example.com` patterns, `*` without credentials) and adds
//!   `Access-Control-Allow-Origin` to the actual responses, for upstreams that do no
//!   CORS (as Envoy's and Kong's CORS filters do).
//!
//! In both, a cross-origin response the page may read gets the gateway's own response
//! headers added to `Access-Control-Expose-Headers`, so the page can read the trace.

use core::time::Duration;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::codec::{value_str, Format, HeaderSource};
use crate::model::named::named_enum;
use crate::model::{Named, SpanId, TraceId};

/// `Server-Timing` (W3C Server Timing).
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
/// `Timing-Allow-Origin` (W3C Resource Timing): lets a cross-origin page read the
/// timing entries, `serverTiming` included.
pub const TIMING_ALLOW_ORIGIN: HeaderName = HeaderName::from_static("timing-allow-origin");
/// W3C Trace Context Level 2 `traceresponse`.
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

named_enum! {
    /// How the gateway takes part in CORS (`[propagation.cors] mode`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CorsMode("mode") {
        /// No CORS handling: preflights and responses pass through untouched.
        Off = "off",
        /// The upstream does CORS; the gateway adds the trace headers to what it allows.
        Augment = "augment",
        /// The gateway answers preflights itself and adds `Access-Control-Allow-Origin`.
        Answer = "answer",
    }
}

/// One `allow_origins` / `timing_allow_origin` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any origin (never with credentials).
    Any,
    /// An exact origin, `https://app.example.com[:port]`, lowercase.
    Exact(String),
    /// `[scheme://]*.suffix[:port]`: any subdomain of `suffix` (not `suffix` itself, as
    /// a route's `*.example.com` host), over `scheme` or, without one, http and https.
    Subdomains {
        /// `https`, `http`, or `None` for both.
        scheme: Option<String>,
        /// `example.com` or `example.com:8443`, lowercase.
        suffix: String,
    },
}

impl OriginPattern {
    /// Parses one entry; `Err` says why, for a validation message.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        let t = text.trim().to_ascii_lowercase();
        if t == "*" {
            return Ok(OriginPattern::Any);
        }
        let (scheme, rest) = match t.split_once("://") {
            Some((s, rest)) if s == "http" || s == "https" => (Some(s.to_string()), rest),
            Some(_) => return Err(format!("{text:?}: the scheme must be http or https")),
            None => (None, t.as_str()),
        };
        let bad = || {
            format!(
                "{text:?}: expected an origin such as \"https://app.example.com\", a pattern \
                 such as \"*.example.com\" or \"https://*.example.com\", or \"*\""
            )
        };
        if let Some(suffix) = rest.strip_prefix("*.") {
            if !host_port(suffix) {
                return Err(bad());
            }
            return Ok(OriginPattern::Subdomains {
                scheme,
                suffix: suffix.to_string(),
            });
        }
        match scheme {
            Some(s) if host_port(rest) => Ok(OriginPattern::Exact(format!("{s}://{rest}"))),
            _ => Err(bad()),
        }
    }

    /// Whether `origin` (the request's `Origin`, lowercase) matches.
    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => o == origin,
            OriginPattern::Subdomains { scheme, suffix } => {
                let Some((s, host)) = origin.split_once("://") else {
                    return false;
                };
                let scheme_ok = match scheme {
                    Some(want) => s == want,
                    None => s == "http" || s == "https",
                };
                // `a.example.com` under `example.com`: a non-empty label part before it.
                scheme_ok
                    && host
                        .strip_suffix(suffix.as_str())
                        .and_then(|head| head.strip_suffix('.'))
                        .is_some_and(|head| {
                            !head.is_empty()
                                && head
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                        })
            }
        }
    }

    /// The entry as written back (admin `/config`, `check`).
    pub fn as_text(&self) -> String {
        match self {
            OriginPattern::Any => "*".to_string(),
            OriginPattern::Exact(o) => o.clone(),
            OriginPattern::Subdomains {
                scheme: Some(s),
                suffix,
            } => format!("{s}://*.{suffix}"),
            OriginPattern::Subdomains {
                scheme: None,
                suffix,
            } => format!("*.{suffix}"),
        }
    }
}

/// `host` or `host:port` with DNS-ish host characters (or a bracketed IPv6 address).
fn host_port(s: &str) -> bool {
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let v6_ok = !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return v6_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    !host.is_empty()
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && port.is_none_or(port_ok)
}

/// The effective CORS settings of a route (`[propagation.cors]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    /// Off, augment or answer.
    pub mode: CorsMode,
    /// Answer mode: the origins allowed.
    pub allow_origins: Vec<OriginPattern>,
    /// Answer mode: `Access-Control-Allow-Methods`.
    pub allow_methods: Vec<Method>,
    /// Answer mode: request headers allowed besides the route's trace headers.
    pub allow_headers: Vec<HeaderName>,
    /// Answer mode: response headers a page may read besides the gateway's own.
    pub expose_headers: Vec<HeaderName>,
    /// Answer mode: `Access-Control-Max-Age`.
    pub max_age: Duration,
    /// Answer mode: `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            mode: CorsMode::Off,
            allow_origins: Vec::new(),
            allow_methods: DEFAULT_METHODS.to_vec(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: DEFAULT_MAX_AGE,
            allow_credentials: false,
        }
    }
}

/// Default `allow_methods`: the methods an API serves (Kong's default list without
/// `TRACE` and `CONNECT`, which no page can send).
pub const DEFAULT_METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Default `max_age`: 10 minutes, Chromium's cap for a preflight cache entry was 10
/// minutes until 2023 (now 2 hours); short enough that a config change reaches pages.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);

/// The effective browser-edge settings of a route.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Browser {
    /// CORS for the trace headers.
    pub cors: Cors,
    /// Add `Server-Timing: traceparent;desc="00-{trace}-{span}-{flags}"`.
    pub server_timing: bool,
    /// Add the gateway's own and the upstream's durations as `Server-Timing` metrics.
    pub server_timing_durations: bool,
    /// A response header carrying the trace id (`x-trace-id`); `None` = off.
    pub trace_id_header: Option<HeaderName>,
    /// Origins sent `Timing-Allow-Origin` (empty = none).
    pub timing_allow_origin: Vec<OriginPattern>,
}

/// A partial `cors` table of an upstream or a route: `None` keeps the value under it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorsOverride {
    /// `mode`; absent in a table that is present = `augment` over `off`.
    pub mode: Option<CorsMode>,
    /// `allow_origins`.
    pub allow_origins: Option<Vec<OriginPattern>>,
    /// `allow_methods`.
    pub allow_methods: Option<Vec<Method>>,
    /// `allow_headers`.
    pub allow_headers: Option<Vec<HeaderName>>,
    /// `expose_headers`.
    pub expose_headers: Option<Vec<HeaderName>>,
    /// `max_age`.
    pub max_age: Option<Duration>,
    /// `allow_credentials`.
    pub allow_credentials: Option<bool>,
}

/// The browser keys of an upstream's or a route's `propagation` table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BrowserOverride {
    /// The `cors` table, when written.
    pub cors: Option<CorsOverride>,
    /// `server_timing`.
    pub server_timing: Option<bool>,
    /// `server_timing_durations`.
    pub server_timing_durations: Option<bool>,
    /// `trace_id_header` (`Some(None)` = written as `""`: off).
    pub trace_id_header: Option<Option<HeaderName>>,
    /// `timing_allow_origin`.
    pub timing_allow_origin: Option<Vec<OriginPattern>>,
}

impl CorsOverride {
    /// `base` with the keys written here replaced. A table written without `mode`
    /// turns CORS on (augment) where it was off: writing a `cors` table means CORS is
    /// configured.
    pub fn apply(&self, base: &Cors) -> Cors {
        let mode = match (self.mode, base.mode) {
            (Some(m), _) => m,
            (None, CorsMode::Off) => CorsMode::Augment,
            (None, m) => m,
        };
        Cors {
            mode,
            allow_origins: self
                .allow_origins
                .clone()
                .unwrap_or_else(|| base.allow_origins.clone()),
            allow_methods: self
                .allow_methods
                .clone()
                .unwrap_or_else(|| base.allow_methods.clone()),
            allow_headers: self
                .allow_headers
                .clone()
                .unwrap_or_else(|| base.allow_headers.clone()),
            expose_headers: self
                .expose_headers
                .clone()
                .unwrap_or_else(|| base.expose_headers.clone()),
            max_age: self.max_age.unwrap_or(base.max_age),
            allow_credentials: self.allow_credentials.unwrap_or(base.allow_credentials),
        }
    }
}

impl BrowserOverride {
    /// `base` with the keys written here replaced.
    pub fn apply(&self, base: &Browser) -> Browser {
        Browser {
            cors: self
                .cors
                .as_ref()
                .map_or_else(|| base.cors.clone(), |c| c.apply(&base.cors)),
            server_timing: self.server_timing.unwrap_or(base.server_timing),
            server_timing_durations: self
                .server_timing_durations
                .unwrap_or(base.server_timing_durations),
            trace_id_header: self
                .trace_id_header
                .clone()
                .unwrap_or_else(|| base.trace_id_header.clone()),
            timing_allow_origin: self
                .timing_allow_origin
                .clone()
                .unwrap_or_else(|| base.timing_allow_origin.clone()),
        }
    }
}

/// The ids the response names: the gateway span (the upstream's parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The trace id.
    pub trace_id: TraceId,
    /// The gateway span id (on a propagation-only route, the incoming parent).
    pub span_id: SpanId,
    /// The one sampling decision.
    pub sampled: bool,
}

/// Durations for `Server-Timing`, up to the response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// From the request header to the response header.
    pub total: Duration,
    /// From the first attempt to reach the upstream to its response header; `None` when
    /// the gateway answered itself.
    pub upstream: Option<Duration>,
}

/// One response, as the edge rules see it.
#[derive(Debug)]
pub struct Exchange<'a, Q = HeaderMap, R = HeaderMap> {
    /// The request method.
    pub method: &'a Method,
    /// The request headers.
    pub request: &'a Q,
    /// The response status.
    pub status: u16,
    /// The response headers so far (the upstream's, or the gateway's own).
    pub response: &'a R,
    /// The trace ids, when the request is traced.
    pub ids: Option<Ids>,
    /// Durations so far.
    pub timing: Timing,
}

/// A CORS preflight (Fetch standard): `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &impl HeaderSource) -> bool {
    method == Method::OPTIONS
        && headers.contains(&ORIGIN)
        && headers.contains(&ACCESS_CONTROL_REQUEST_METHOD)
}

/// The request's one `Origin`, lowercase (browsers serialize it so; a second value
/// or a non-ASCII one is no origin).
fn origin(request: &impl HeaderSource) -> Option<String> {
    let mut all = request.values(&ORIGIN);
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    value_str(first)
        .ok()
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

/// Whether `name` is a header of one of `formats` (a fixed name, or under a prefix
/// such as `uberctx-`).
fn is_trace_header(name: &str, formats: &[Format]) -> bool {
    formats.iter().any(|f| {
        f.headers().iter().any(|h| h.as_str() == name)
            || f.prefixes()
                .iter()
                .any(|p| name.len() > p.len() && name.starts_with(p))
    })
}

/// The comma-separated tokens of every value of `name`, lowercase.
fn tokens(headers: &impl HeaderSource, name: &HeaderName) -> Vec<String> {
    headers
        .values(name)
        .filter_map(|v| value_str(v).ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The existing values of `name` (joined) with `extra` appended where not yet listed
/// (case-insensitive); `None` when nothing is added.
fn merged(headers: &impl HeaderSource, name: &HeaderName, extra: &[&str]) -> Option<HeaderValue> {
    let have = tokens(headers, name);
    let mut add: Vec<&str> = Vec::new();
    for e in extra {
        let lower = e.to_ascii_lowercase();
        if !have.contains(&lower) && !add.iter().any(|a| a.eq_ignore_ascii_case(e)) {
            add.push(e);
        }
    }
    if add.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = headers
        .values(name)
        .filter_map(|v| value_str(v).ok())
        .map(str::to_string)
        .filter(|v| !v.is_empty())
        .collect();
    parts.extend(add.iter().map(|s| s.to_string()));
    HeaderValue::from_str(&parts.join(", ")).ok()
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for `origin` in answer mode, or `None`
    /// when it is not allowed. An `Origin` is reflected only when an exact entry or a
    /// pattern matches it; `*` answers `*` and never with credentials (the Fetch
    /// standard refuses that pair, and reflecting any origin with credentials would
    /// hand every site the user's session).
    fn allowed(&self, origin: &str) -> Option<String> {
        let specific = self
            .allow_origins
            .iter()
            .any(|p| !matches!(p, OriginPattern::Any) && p.matches(origin));
        if specific {
            Some(origin.to_string())
        } else if !self.allow_credentials && self.allow_origins.contains(&OriginPattern::Any) {
            Some("*".to_string())
        } else {
            None
        }
    }
}

fn value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// Answer mode: the gateway's own answer to a preflight (status 204, these headers),
/// or `None` when the request is not a preflight or the route does not answer them.
/// An origin that is not allowed gets a 204 without `Access-Control-Allow-Origin`: the
/// browser refuses the call and the upstream never sees it. That is what Kong's cors
/// plugin does (204 for every preflight unless `preflight_continue`); Envoy's filter
/// forwards such a preflight instead, which answer mode exists to spare the upstream.
pub fn answer_preflight(
    settings: &Browser,
    extract: &[Format],
    method: &Method,
    request: &impl HeaderSource,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let cors = &settings.cors;
    if cors.mode != CorsMode::Answer || !is_preflight(method, request) {
        return None;
    }
    let mut out = vec![(
        VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    )];
    let Some(allowed) = origin(request).and_then(|o| cors.allowed(&o)) else {
        return Some(out);
    };
    out.extend(value(&allowed).map(|v| (ACCESS_CONTROL_ALLOW_ORIGIN, v)));
    if cors.allow_credentials {
        out.push((
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    let methods: Vec<&str> = cors.allow_methods.iter().map(Method::as_str).collect();
    out.extend(value(&methods.join(", ")).map(|v| (ACCESS_CONTROL_ALLOW_METHODS, v)));
    // The requested headers that are allowed, as asked; the browser refuses the call
    // if one it asked for is missing.
    let granted: Vec<String> = tokens(request, &ACCESS_CONTROL_REQUEST_HEADERS)
        .into_iter()
        .filter(|h| {
            is_trace_header(h, extract) || cors.allow_headers.iter().any(|a| a.as_str() == h)
        })
        .collect();
    if !granted.is_empty() {
        out.extend(value(&granted.join(", ")).map(|v| (ACCESS_CONTROL_ALLOW_HEADERS, v)));
    }
    out.push((
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    ));
    Some(out)
}

/// The `Server-Timing` entries the gateway adds, merged after the upstream's. An
/// upstream's own `traceparent` entry (its SDK names its own span, a child of the
/// gateway's) is kept and not doubled: a page reads the first entry of a name.
fn server_timing(
    settings: &Browser,
    x: &Exchange<'_, impl HeaderSource, impl HeaderSource>,
) -> Option<HeaderValue> {
    let mut ours = Vec::new();
    let theirs: Vec<&str> = x
        .response
        .values(&SERVER_TIMING)
        .filter_map(|v| value_str(v).ok())
        .filter(|v| !v.is_empty())
        .collect();
    let named = |metric: &str| {
        theirs.iter().flat_map(|v| v.split(',')).any(|entry| {
            entry
                .split(';')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(metric))
        })
    };
    if let (true, Some(ids)) = (settings.server_timing, x.ids) {
        if !named("traceparent") {
            let tp = super::traceresponse(ids.trace_id, ids.span_id, ids.sampled);
            ours.push(format!(
                "traceparent;desc=\"{}\"",
                tp.to_str().unwrap_or_default()
            ));
        }
    }
    if settings.server_timing_durations {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        match x.timing.upstream {
            Some(up) => {
                let own = x.timing.total.saturating_sub(up);
                ours.push(format!("gateway;dur={:.3}", ms(own)));
                ours.push(format!("upstream;dur={:.3}", ms(up)));
            }
            None => ours.push(format!("gateway;dur={:.3}", ms(x.timing.total))),
        }
    }
    if ours.is_empty() {
        return None;
    }
    let all: Vec<String> = theirs.iter().map(|s| s.to_string()).chain(ours).collect();
    value(&all.join(", "))
}

impl Browser {
    /// Whether any rule here can change a response (the proxy skips the work if not).
    pub fn is_active(&self) -> bool {
        self.cors.mode != CorsMode::Off
            || self.server_timing
            || self.server_timing_durations
            || self.trace_id_header.is_some()
            || !self.timing_allow_origin.is_empty()
    }

    /// The response header edits for one response, each a value to set (replacing
    /// every value of its name; merged values include what the upstream sent):
    /// - every response (browsers, apps, curl alike): `Server-Timing`, the trace id
    ///   header, `Timing-Allow-Origin` for the origins configured;
    /// - augment mode, a preflight the upstream answered 2xx allowing the origin: the
    ///   requested trace headers (of `extract`) added to `Access-Control-Allow-Headers`;
    /// - answer mode, an allowed origin: `Access-Control-Allow-Origin` (and
    ///   `-Credentials`, `Vary: Origin`);
    /// - a cross-origin response the page may read (its `Access-Control-Allow-Origin`
    ///   names the origin or `*`): the gateway's own headers added to
    ///   `Access-Control-Expose-Headers` (`traceresponse` when `traceresponse` is on).
    pub fn response_edits(
        &self,
        extract: &[Format],
        traceresponse: bool,
        x: &Exchange<'_, impl HeaderSource, impl HeaderSource>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        if let Some(v) = server_timing(self, x) {
            out.push((SERVER_TIMING, v));
        }
        if let (Some(name), Some(ids)) = (&self.trace_id_header, x.ids) {
            out.extend(value(&ids.trace_id.to_string()).map(|v| (name.clone(), v)));
        }
        let origin = origin(x.request);
        if let Some(o) = &origin {
            if self.timing_allow_origin.contains(&OriginPattern::Any) {
                out.push((TIMING_ALLOW_ORIGIN, HeaderValue::from_static("*")));
            } else if self.timing_allow_origin.iter().any(|p| p.matches(o)) {
                out.extend(
                    merged(x.response, &TIMING_ALLOW_ORIGIN, &[o])
                        .map(|v| (TIMING_ALLOW_ORIGIN, v)),
                );
            }
        } else if self.timing_allow_origin.contains(&OriginPattern::Any) {
            // A navigation or a same-origin load sends no Origin; `*` costs nothing.
            out.push((TIMING_ALLOW_ORIGIN, HeaderValue::from_static("*")));
        }
        let Some(origin) = origin else {
            return out;
        };
        let preflight = is_preflight(x.method, x.request);
        // What the response allows, after the answer-mode edits.
        let mut acao: Option<String> = x
            .response
            .values(&ACCESS_CONTROL_ALLOW_ORIGIN)
            .next()
            .and_then(|v| value_str(v).ok())
            .map(str::to_ascii_lowercase);
        match self.cors.mode {
            CorsMode::Off => return out,
            CorsMode::Answer if !preflight => {
                if let Some(allowed) = self.cors.allowed(&origin) {
                    out.extend(value(&allowed).map(|v| (ACCESS_CONTROL_ALLOW_ORIGIN, v)));
                    if self.cors.allow_credentials {
                        out.push((
                            ACCESS_CONTROL_ALLOW_CREDENTIALS,
                            HeaderValue::from_static("true"),
                        ));
                    }
                    if allowed != "*" {
                        out.extend(merged(x.response, &VARY, &["Origin"]).map(|v| (VARY, v)));
                    }
                    acao = Some(allowed);
                }
            }
            CorsMode::Answer => {}
            CorsMode::Augment => {}
        }
        let readable = acao.as_deref().is_some_and(|a| a == "*" || a == origin);
        if !readable {
            return out;
        }
        if preflight {
            if self.cors.mode == CorsMode::Augment && (200..300).contains(&x.status) {
                out.extend(self.augment_preflight(extract, x));
            }
            return out;
        }
        let mut expose: Vec<HeaderName> = Vec::new();
        if traceresponse && x.ids.is_some() {
            expose.push(TRACERESPONSE);
        }
        if self.server_timing || self.server_timing_durations {
            expose.push(SERVER_TIMING);
        }
        expose.extend(self.trace_id_header.iter().cloned());
        if self.cors.mode == CorsMode::Answer {
            expose.extend(self.cors.expose_headers.iter().cloned());
        }
        let expose: Vec<&str> = expose.iter().map(HeaderName::as_str).collect();
        out.extend(
            merged(x.response, &ACCESS_CONTROL_EXPOSE_HEADERS, &expose)
                .map(|v| (ACCESS_CONTROL_EXPOSE_HEADERS, v)),
        );
        out
    }

    /// The upstream's `Access-Control-Allow-Headers` with the requested trace headers
    /// it does not allow yet. `*` allows them already, except for a credentialed
    /// response, where it is a literal name (Fetch standard).
    fn augment_preflight(
        &self,
        extract: &[Format],
        x: &Exchange<'_, impl HeaderSource, impl HeaderSource>,
    ) -> Option<(HeaderName, HeaderValue)> {
        let credentialed = x
            .response
            .values(&ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case(b"true"));
        let allowed = tokens(x.response, &ACCESS_CONTROL_ALLOW_HEADERS);
        if !credentialed && allowed.iter().any(|a| a == "*") {
            return None;
        }
        let requested = tokens(x.request, &ACCESS_CONTROL_REQUEST_HEADERS);
        let add: Vec<&str> = requested
            .iter()
            .filter(|h| is_trace_header(h, extract))
            .map(String::as_str)
            .collect();
        merged(x.response, &ACCESS_CONTROL_ALLOW_HEADERS, &add)
            .map(|v| (ACCESS_CONTROL_ALLOW_HEADERS, v))
    }

    /// The settings in words, one `key=value` list (for `check`).
    pub fn summary(&self) -> String {
        let c = &self.cors;
        let mut parts = vec![format!("cors={}", c.mode.name())];
        if c.mode == CorsMode::Answer {
            let origins: Vec<String> = c.allow_origins.iter().map(OriginPattern::as_text).collect();
            parts.push(format!("allow_origins=[{}]", origins.join(" ")));
            let methods: Vec<&str> = c.allow_methods.iter().map(Method::as_str).collect();
            parts.push(format!("allow_methods=[{}]", methods.join(" ")));
            let headers: Vec<&str> = c.allow_headers.iter().map(HeaderName::as_str).collect();
            parts.push(format!("allow_headers=[{}]", headers.join(" ")));
            let expose: Vec<&str> = c.expose_headers.iter().map(HeaderName::as_str).collect();
            parts.push(format!("expose_headers=[{}]", expose.join(" ")));
            parts.push(format!("max_age={}s", c.max_age.as_secs()));
            parts.push(format!("allow_credentials={}", c.allow_credentials));
        }
        parts.push(format!("server_timing={}", self.server_timing));
        parts.push(format!(
            "server_timing_durations={}",
            self.server_timing_durations
        ));
        parts.push(format!(
            "trace_id_header={}",
            self.trace_id_header
                .as_ref()
                .map_or("-", HeaderName::as_str)
        ));
        let tao: Vec<String> = self
            .timing_allow_origin
            .iter()
            .map(OriginPattern::as_text)
            .collect();
        parts.push(format!("timing_allow_origin=[{}]", tao.join(" ")));
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://app.example.com";

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ids() -> Ids {
        Ids {
            trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap(),
            span_id: SpanId::new(0x00f067aa0ba902b7).unwrap(),
            sampled: true,
        }
    }

    fn get<'a>(edits: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        edits
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    fn origins(list: &[&str]) -> Vec<OriginPattern> {
        list.iter()
            .map(|o| OriginPattern::parse(o).unwrap())
            .collect()
    }

    fn augment() -> Browser {
        Browser {
            cors: Cors {
                mode: CorsMode::Augment,
                ..Cors::default()
            },
            ..Browser::default()
        }
    }

    fn answer(list: &[&str], credentials: bool) -> Browser {
        Browser {
            cors: Cors {
                mode: CorsMode::Answer,
                allow_origins: origins(list),
                allow_headers: vec![HeaderName::from_static("content-type")],
                allow_credentials: credentials,
                ..Cors::default()
            },
            ..Browser::default()
        }
    }

    fn edits(
        b: &Browser,
        method: Method,
        request: &HeaderMap,
        status: u16,
        response: &HeaderMap,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let x = Exchange {
            method: &method,
            request,
            status,
            response,
            ids: Some(ids()),
            timing: Timing {
                total: Duration::from_micros(5_500),
                upstream: Some(Duration::from_micros(5_000)),
            },
        };
        b.response_edits(&Format::ALL, true, &x)
    }

    fn preflight(asked: &str) -> HeaderMap {
        headers(&[
            ("origin", PAGE),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", asked),
        ])
    }

    #[test]
    fn origin_patterns_parse_and_match() {
        // (pattern, origin, matches, why)
        let rows = [
            (
                "https://app.example.com",
                "https://app.example.com",
                true,
                "exact",
            ),
            (
                "https://app.example.com",
                "http://app.example.com",
                false,
                "exact: scheme counts",
            ),
            (
                "https://app.example.com",
                "https://app.example.com:8443",
                false,
                "exact: port counts",
            ),
            (
                "HTTPS://App.Example.com",
                "https://app.example.com",
                true,
                "case-insensitive",
            ),
            (
                "*.example.com",
                "https://a.example.com",
                true,
                "any scheme of two",
            ),
            (
                "*.example.com",
                "http://a.b.example.com",
                true,
                "deeper subdomain",
            ),
            (
                "*.example.com",
                "https://example.com",
                false,
                "not the domain itself",
            ),
            (
                "*.example.com",
                "https://evilexample.com",
                false,
                "a label boundary",
            ),
            (
                "*.example.com",
                "https://a.example.com.evil.io",
                false,
                "a suffix, not a substring",
            ),
            (
                "*.example.com",
                "https://a.example.com:8443",
                false,
                "no port unless written",
            ),
            (
                "*.example.com",
                "ftp://a.example.com",
                false,
                "http(s) only",
            ),
            (
                "https://*.example.com",
                "http://a.example.com",
                false,
                "scheme written",
            ),
            (
                "http://*.localhost:8080",
                "http://app.localhost:8080",
                true,
                "port written",
            ),
            (
                "http://127.0.0.1:3000",
                "http://127.0.0.1:3000",
                true,
                "loopback",
            ),
            ("*", "null", true, "any"),
            ("https://app.example.com", "null", false, "an opaque origin"),
        ];
        for (pattern, origin, want, why) in rows {
            let p = OriginPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(origin), want, "{pattern} vs {origin}: {why}");
        }
        for bad in [
            "example.com",
            "ftp://x.com",
            "https://",
            "*.",
            "https://a.com/path",
            "*.*.com",
            "https://a.com:0",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            OriginPattern::parse("https://*.Example.com")
                .unwrap()
                .as_text(),
            "https://*.example.com"
        );
    }

    #[test]
    fn augment_adds_only_the_requested_trace_headers_to_an_allowing_answer() {
        let req = preflight("content-type, traceparent, tracestate, x-b3-traceid, uberctx-user");
        let resp = headers(&[
            ("access-control-allow-origin", PAGE),
            ("access-control-allow-headers", "Content-Type"),
            ("access-control-allow-methods", "PUT"),
        ]);
        let e = edits(&augment(), Method::OPTIONS, &req, 204, &resp);
        assert_eq!(
            get(&e, "access-control-allow-headers"),
            Some("Content-Type, traceparent, tracestate, x-b3-traceid, uberctx-user"),
            "merged after the upstream's list; content-type was the upstream's call"
        );
        assert_eq!(
            get(&e, "access-control-allow-origin"),
            None,
            "never widened"
        );
        assert_eq!(get(&e, "access-control-allow-methods"), None);
        // Only the route's extract formats count as trace headers.
        let x = Exchange {
            method: &Method::OPTIONS,
            request: &req,
            status: 204,
            response: &resp,
            ids: None,
            timing: Timing::default(),
        };
        let only_w3c = augment().response_edits(&[Format::TraceContext], false, &x);
        assert_eq!(
            get(&only_w3c, "access-control-allow-headers"),
            Some("Content-Type, traceparent, tracestate")
        );
    }

    #[test]
    fn augment_leaves_a_denying_or_failing_preflight_alone() {
        let req = preflight("traceparent");
        // (response headers, status, why)
        type Row<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
        let rows: [Row; 4] = [
            (
                &[],
                204,
                "no Access-Control-Allow-Origin: the upstream refuses",
            ),
            (
                &[("access-control-allow-origin", "https://other.example.com")],
                204,
                "another origin",
            ),
            (
                &[("access-control-allow-origin", PAGE)],
                403,
                "not an ok status",
            ),
            (&[("access-control-allow-origin", "null")], 204, "null"),
        ];
        for (resp, status, why) in rows {
            let e = edits(&augment(), Method::OPTIONS, &req, status, &headers(resp));
            assert_eq!(get(&e, "access-control-allow-headers"), None, "{why}");
            assert_eq!(get(&e, "access-control-allow-origin"), None, "{why}");
        }
    }

    #[test]
    fn augment_adds_nothing_where_the_upstream_already_allows_everything() {
        let req = preflight("traceparent");
        let all = headers(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-headers", "*"),
        ]);
        let e = edits(&augment(), Method::OPTIONS, &req, 200, &all);
        assert_eq!(get(&e, "access-control-allow-headers"), None, "* covers it");
        let listed = headers(&[
            ("access-control-allow-origin", PAGE),
            ("access-control-allow-headers", "TraceParent"),
        ]);
        let e = edits(&augment(), Method::OPTIONS, &req, 200, &listed);
        assert_eq!(
            get(&e, "access-control-allow-headers"),
            None,
            "already listed"
        );
        // With credentials `*` is a literal name (Fetch): the header is added.
        let credentialed = headers(&[
            ("access-control-allow-origin", PAGE),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-headers", "*"),
        ]);
        let e = edits(&augment(), Method::OPTIONS, &req, 200, &credentialed);
        assert_eq!(
            get(&e, "access-control-allow-headers"),
            Some("*, traceparent")
        );
    }

    #[test]
    fn a_preflight_for_a_non_trace_header_passes_through_untouched() {
        let req = preflight("x-api-key");
        let resp = headers(&[("access-control-allow-origin", PAGE)]);
        let e = edits(&augment(), Method::OPTIONS, &req, 204, &resp);
        assert_eq!(get(&e, "access-control-allow-headers"), None);
        assert!(
            e.iter()
                .all(|(n, _)| !n.as_str().starts_with("access-control-")),
            "{e:?}"
        );
        // Answer mode grants only what is configured: the browser then refuses.
        let a = answer_preflight(
            &answer(&[PAGE], false),
            &Format::ALL,
            &Method::OPTIONS,
            &req,
        )
        .unwrap();
        assert_eq!(get(&a, "access-control-allow-headers"), None);
        assert_eq!(get(&a, "access-control-allow-origin"), Some(PAGE));
        // Not a preflight: no answer.
        let plain = headers(&[("origin", PAGE)]);
        assert!(answer_preflight(
            &answer(&[PAGE], false),
            &Format::ALL,
            &Method::OPTIONS,
            &plain
        )
        .is_none());
        assert!(answer_preflight(&augment(), &Format::ALL, &Method::OPTIONS, &req).is_none());
    }

    #[test]
    fn answer_mode_answers_allowed_origins_exactly_and_by_pattern() {
        let b = answer(&["https://app.example.com", "*.shop.example"], false);
        let req = preflight("traceparent, content-type, x-secret");
        let a = answer_preflight(&b, &Format::ALL, &Method::OPTIONS, &req).unwrap();
        assert_eq!(get(&a, "access-control-allow-origin"), Some(PAGE));
        assert_eq!(
            get(&a, "access-control-allow-headers"),
            Some("traceparent, content-type")
        );
        assert_eq!(
            get(&a, "access-control-allow-methods"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        assert_eq!(get(&a, "access-control-max-age"), Some("600"));
        assert_eq!(get(&a, "access-control-allow-credentials"), None);
        let mut by_pattern = req.clone();
        by_pattern.insert(ORIGIN, HeaderValue::from_static("https://eu.shop.example"));
        let a = answer_preflight(&b, &Format::ALL, &Method::OPTIONS, &by_pattern).unwrap();
        assert_eq!(
            get(&a, "access-control-allow-origin"),
            Some("https://eu.shop.example")
        );
        let mut refused = req.clone();
        refused.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        let a = answer_preflight(&b, &Format::ALL, &Method::OPTIONS, &refused).unwrap();
        assert_eq!(
            get(&a, "access-control-allow-origin"),
            None,
            "204 without: refused"
        );
        assert!(get(&a, "vary").is_some());
        // Actual response: ACAO, Vary merged, the gateway's headers exposed.
        let b = Browser {
            server_timing: true,
            trace_id_header: Some(HeaderName::from_static("x-trace-id")),
            cors: Cors {
                expose_headers: vec![HeaderName::from_static("x-app")],
                ..b.cors
            },
            ..b
        };
        let e = edits(
            &b,
            Method::GET,
            &headers(&[("origin", PAGE)]),
            200,
            &headers(&[("vary", "Accept-Encoding")]),
        );
        assert_eq!(get(&e, "access-control-allow-origin"), Some(PAGE));
        assert_eq!(get(&e, "vary"), Some("Accept-Encoding, Origin"));
        assert_eq!(
            get(&e, "access-control-expose-headers"),
            Some("traceresponse, server-timing, x-trace-id, x-app")
        );
        let e = edits(
            &b,
            Method::GET,
            &headers(&[("origin", "https://evil.example")]),
            200,
            &HeaderMap::new(),
        );
        assert_eq!(get(&e, "access-control-allow-origin"), None);
        assert_eq!(get(&e, "access-control-expose-headers"), None);
    }

    #[test]
    fn credentials_never_reflect_an_arbitrary_origin() {
        let b = answer(&["*", PAGE], true);
        let req = preflight("traceparent");
        let a = answer_preflight(&b, &Format::ALL, &Method::OPTIONS, &req).unwrap();
        assert_eq!(get(&a, "access-control-allow-origin"), Some(PAGE));
        assert_eq!(get(&a, "access-control-allow-credentials"), Some("true"));
        let mut other = req.clone();
        other.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        let a = answer_preflight(&b, &Format::ALL, &Method::OPTIONS, &other).unwrap();
        assert_eq!(
            get(&a, "access-control-allow-origin"),
            None,
            "* is not reflected"
        );
        // Without credentials `*` answers `*`, never the origin.
        let open = answer(&["*"], false);
        let e = edits(
            &open,
            Method::GET,
            &headers(&[("origin", "https://x.test")]),
            200,
            &HeaderMap::new(),
        );
        assert_eq!(get(&e, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&e, "vary"), None);
        assert_eq!(get(&e, "access-control-allow-credentials"), None);
    }

    #[test]
    fn expose_only_where_the_page_may_read_the_response() {
        let b = Browser {
            server_timing: true,
            ..augment()
        };
        let req = headers(&[("origin", PAGE)]);
        let allowing = headers(&[
            ("access-control-allow-origin", PAGE),
            ("access-control-expose-headers", "X-Total, TraceResponse"),
        ]);
        let e = edits(&b, Method::GET, &req, 200, &allowing);
        assert_eq!(
            get(&e, "access-control-expose-headers"),
            Some("X-Total, TraceResponse, server-timing")
        );
        let e = edits(&b, Method::GET, &req, 200, &HeaderMap::new());
        assert_eq!(
            get(&e, "access-control-expose-headers"),
            None,
            "upstream denies"
        );
        assert!(get(&e, "server-timing").is_some(), "still timed");
        let off = Browser {
            server_timing: true,
            ..Browser::default()
        };
        let e = edits(&off, Method::GET, &req, 200, &allowing);
        assert_eq!(get(&e, "access-control-expose-headers"), None, "cors off");
    }

    #[test]
    fn server_timing_merges_with_the_upstreams() {
        let b = Browser {
            server_timing: true,
            server_timing_durations: true,
            ..Browser::default()
        };
        let none = HeaderMap::new();
        let e = edits(
            &b,
            Method::GET,
            &none,
            200,
            &headers(&[("server-timing", "db;dur=53, app;dur=47.2")]),
        );
        assert_eq!(
            get(&e, "server-timing"),
            Some(
                "db;dur=53, app;dur=47.2, \
                 traceparent;desc=\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\", \
                 gateway;dur=0.500, upstream;dur=5.000"
            )
        );
        let theirs = headers(&[("server-timing", "traceparent;desc=\"00-aa-bb-01\"")]);
        let e = edits(&b, Method::GET, &none, 200, &theirs);
        assert_eq!(
            get(&e, "server-timing"),
            Some("traceparent;desc=\"00-aa-bb-01\", gateway;dur=0.500, upstream;dur=5.000"),
            "the upstream's own traceparent entry is kept, not doubled"
        );
        // The gateway's own answer (no upstream): its duration only.
        let x = Exchange {
            method: &Method::GET,
            request: &none,
            status: 404,
            response: &none,
            ids: None,
            timing: Timing {
                total: Duration::from_millis(2),
                upstream: None,
            },
        };
        let e = b.response_edits(&Format::ALL, false, &x);
        assert_eq!(get(&e, "server-timing"), Some("gateway;dur=2.000"));
    }

    #[test]
    fn non_browser_clients_get_the_trace_id_and_timing_without_cors() {
        let b = Browser {
            server_timing: true,
            trace_id_header: Some(HeaderName::from_static("x-trace-id")),
            timing_allow_origin: origins(&["*"]),
            ..augment()
        };
        let e = edits(
            &b,
            Method::GET,
            &HeaderMap::new(),
            200,
            &headers(&[("x-trace-id", "old")]),
        );
        assert_eq!(
            get(&e, "x-trace-id"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(get(&e, "server-timing").is_some());
        assert_eq!(get(&e, "timing-allow-origin"), Some("*"));
        assert!(e
            .iter()
            .all(|(n, _)| !n.as_str().starts_with("access-control-")));
        // Timing-Allow-Origin by origin list: the matching origin only.
        let listed = Browser {
            timing_allow_origin: origins(&["*.example.com"]),
            ..Browser::default()
        };
        let e = edits(
            &listed,
            Method::GET,
            &headers(&[("origin", PAGE)]),
            200,
            &HeaderMap::new(),
        );
        assert_eq!(get(&e, "timing-allow-origin"), Some(PAGE));
        let e = edits(
            &listed,
            Method::GET,
            &headers(&[("origin", "https://x.test")]),
            200,
            &HeaderMap::new(),
        );
        assert_eq!(get(&e, "timing-allow-origin"), None);
        assert!(edits(
            &Browser::default(),
            Method::GET,
            &HeaderMap::new(),
            200,
            &HeaderMap::new()
        )
        .is_empty());
    }

    #[test]
    fn overrides_apply_key_by_key_and_a_cors_table_turns_augment_on() {
        let base = Browser::default();
        let table = BrowserOverride {
            cors: Some(CorsOverride::default()),
            ..BrowserOverride::default()
        };
        assert_eq!(table.apply(&base).cors.mode, CorsMode::Augment);
        let answering = BrowserOverride {
            cors: Some(CorsOverride {
                mode: Some(CorsMode::Answer),
                allow_origins: Some(origins(&[PAGE])),
                ..CorsOverride::default()
            }),
            server_timing: Some(true),
            ..BrowserOverride::default()
        }
        .apply(&base);
        // A route that only changes max_age keeps answer mode and the origins.
        let route = BrowserOverride {
            cors: Some(CorsOverride {
                max_age: Some(Duration::from_secs(5)),
                ..CorsOverride::default()
            }),
            trace_id_header: Some(None),
            ..BrowserOverride::default()
        }
        .apply(&answering);
        assert_eq!(route.cors.mode, CorsMode::Answer);
        assert_eq!(route.cors.allow_origins, origins(&[PAGE]));
        assert_eq!(route.cors.max_age, Duration::from_secs(5));
        assert!(route.server_timing);
        assert!(route.is_active());
        assert!(!Browser::default().is_active());
    }

    proptest::proptest! {
        /// Whatever a page, a client or an upstream sends: no panic, every edit a valid
        /// header, and a credentialed answer never names an origin that is not listed.
        #[test]
        fn any_headers_are_handled(
            origin in "[ -~\u{80}-\u{ff}]{0,60}",
            asked in "[ -~]{0,80}",
            allowed in "[ -~]{0,80}",
            acao in "[ -~]{0,40}",
            pattern in "[a-z*.:/0-9]{0,30}",
        ) {
            let mut req = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(origin.as_bytes()) {
                req.insert(ORIGIN, v);
            }
            req.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("PUT"));
            if let Ok(v) = HeaderValue::from_str(&asked) {
                req.insert(ACCESS_CONTROL_REQUEST_HEADERS, v);
            }
            let mut resp = HeaderMap::new();
            for (name, text) in [
                (ACCESS_CONTROL_ALLOW_HEADERS, &allowed),
                (ACCESS_CONTROL_ALLOW_ORIGIN, &acao),
                (SERVER_TIMING, &allowed),
            ] {
                if let Ok(v) = HeaderValue::from_str(text) {
                    resp.insert(name, v);
                }
            }
            let mut b = answer(&[PAGE], true);
            b.cors.allow_origins.extend(OriginPattern::parse(&pattern).ok());
            b.cors.allow_origins.retain(|p| *p != OriginPattern::Any);
            b.server_timing = true;
            for mode in [CorsMode::Augment, CorsMode::Answer] {
                b.cors.mode = mode;
                for method in [Method::OPTIONS, Method::GET] {
                    let _ = edits(&b, method.clone(), &req, 204, &resp);
                    if let Some(a) = answer_preflight(&b, &Format::ALL, &method, &req) {
                        if let Some(o) = get(&a, "access-control-allow-origin") {
                            proptest::prop_assert!(
                                b.cors.allow_origins.iter().any(|p| p.matches(o)),
                                "{o} reflected"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_request_headers_never_panic() {
        let b = answer(&["*"], false);
        let mut req = HeaderMap::new();
        req.append(ORIGIN, HeaderValue::from_bytes(b"https://\xff").unwrap());
        req.append(ORIGIN, HeaderValue::from_static("https://a.test"));
        req.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("PUT"),
        );
        req.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_bytes(b",,\xfe, ,").unwrap(),
        );
        let a = answer_preflight(&b, &Format::ALL, &Method::OPTIONS, &req).unwrap();
        assert_eq!(
            get(&a, "access-control-allow-origin"),
            None,
            "two origins: none"
        );
        let resp = headers(&[("access-control-allow-origin", "*")]);
        let _ = edits(&augment(), Method::OPTIONS, &req, 200, &resp);
    }
}
