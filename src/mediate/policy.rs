//! The compiled propagation policy of one route: the effective values of
//! `[propagation]` and `[sampling]` after route-over-upstream-over-global overrides.

// `core::net`: the address values only; `std::net` also holds sockets and DNS, which
// the pure modules must not reach (`.ci/run` checks it).
use core::net::IpAddr;

use ipnet::IpNet;

use super::baggage_filter::{BaggageFilter, KeyPattern, RestartBaggage};
use super::browser::{Browser, BrowserOverride};
use super::forwarded::{self, ForwardedMode};
use super::request_id::RequestIdPolicy;
use crate::codec::Format;
use crate::model::named::named_enum;

named_enum! {
    /// What to do with an incoming context at this route (`trust`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Trust("trust") {
        /// Continue the incoming trace and honour its sampling and debug flags.
        Continue = "continue",
        /// Start a new trace; the incoming context is kept only as a span link and its
        /// `tracestate` and originals are dropped (the W3C "restart" mutation).
        Restart = "restart",
        /// Continue the incoming ids but make our own sampling decision: a client cannot
        /// force sampling with a sampled or debug flag.
        ContinueUnsampled = "continue_unsampled",
    }
}

named_enum! {
    /// How the sampling decision is made (`[sampling] strategy`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Strategy("strategy") {
        /// Honour the incoming decision; new roots and deferred decisions use the ratio.
        Parent = "parent",
        /// Sample every request.
        Always = "always",
        /// Sample no request (context still propagates, marked not sampled).
        Never = "never",
        /// Sample by trace id with the ratio, whatever the incoming decision.
        Ratio = "ratio",
    }
}

named_enum! {
    /// What the gateway does to the request on the wire (`mode` of an upstream or a
    /// route).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mode("mode") {
        /// Write the configured formats and strip the others (the product).
        Mediate = "mediate",
        /// Write nothing: the request reaches the upstream as it arrived, while
        /// extraction, the span, metrics, coverage and the access log run as usual and
        /// record what `mediate` would have written and stripped. The zero-risk first
        /// step of a rollout (see docs/configuration.md, "Observe mode").
        Observe = "observe",
    }
}

/// The effective policy of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Formats to read, in precedence order.
    pub extract: Vec<Format>,
    /// Formats to write (without `preserve`), in order, no duplicates.
    pub inject: Vec<Format>,
    /// Also write the format(s) that arrived.
    pub preserve: bool,
    /// Remove every known trace header that is not written.
    pub strip_unlisted: bool,
    /// Trust in the incoming context.
    pub trust: Trust,
    /// Make a gateway span (false = propagation only).
    pub span: bool,
    /// Add `traceresponse` to responses.
    pub response_header: bool,
    /// Sampling strategy.
    pub strategy: Strategy,
    /// Ratio for new roots (or every trace with [`Strategy::Ratio`]).
    pub ratio: f64,
    /// What to write into the forwarding headers (`X-Forwarded-*`, `Forwarded`).
    pub forwarded: ForwardedMode,
    /// Client networks whose context is always continued, whatever `trust` says.
    pub trusted_networks: Vec<IpNet>,
    /// Budget for every trace header injected into one request: bytes on the wire
    /// (`name: value\r\n`); 0 = no budget.
    pub max_injected_bytes: usize,
    /// The same budget in header lines; 0 = no budget.
    pub max_injected_headers: usize,
    /// The browser edge: CORS for the trace headers, `Server-Timing`, the trace id
    /// response header.
    pub browser: Browser,
    /// Mediate (write the context) or only observe.
    pub mode: Mode,
    /// Which incoming baggage members pass (`baggage_allow`, `baggage_deny`,
    /// `restart_baggage`).
    pub baggage: BaggageFilter,
    /// Request ids (`request_id_header`, `request_id_generate`, `request_id_trace`).
    pub request_id: RequestIdPolicy,
    /// Which unsampled requests still export the gateway's own span.
    pub keep: Keep,
}

/// `keep_errors` / `keep_slower_than`: the edge keeps its own span of an unsampled
/// request that failed or was slow. What was propagated is not changed: the request
/// went upstream unsampled before its outcome was known, so only the gateway span is
/// exported, marked with why (`tracebridge.sampling.kept`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// 5xx responses and proxy failures.
    pub errors: bool,
    /// Requests that took at least this long.
    pub slower_than: Option<core::time::Duration>,
}

impl Keep {
    /// Whether any keep rule is on.
    pub fn active(self) -> bool {
        self.errors || self.slower_than.is_some()
    }
}

impl Policy {
    /// The trust for a request from `client` (the address [`forwarded::client_address`]
    /// resolved): `continue` inside `trusted_networks`, the route's `trust` outside
    /// them (and when the address is unknown).
    pub fn trust_for(&self, client: Option<IpAddr>) -> Trust {
        match client {
            Some(ip) if forwarded::contains(&self.trusted_networks, ip) => Trust::Continue,
            _ => self.trust,
        }
    }
}

impl Default for Policy {
    /// The documented defaults of `[propagation]` and `[sampling]`.
    fn default() -> Self {
        Policy {
            extract: Format::ALL.to_vec(),
            inject: vec![Format::TraceContext, Format::Baggage],
            preserve: true,
            strip_unlisted: true,
            trust: Trust::Continue,
            span: true,
            response_header: false,
            strategy: Strategy::Parent,
            ratio: 1.0,
            forwarded: ForwardedMode::Append,
            trusted_networks: Vec::new(),
            max_injected_bytes: DEFAULT_MAX_INJECTED_BYTES,
            max_injected_headers: DEFAULT_MAX_INJECTED_HEADERS,
            browser: Browser::default(),
            mode: Mode::Mediate,
            baggage: BaggageFilter::default(),
            request_id: RequestIdPolicy::default(),
            keep: Keep::default(),
        }
    }
}

/// Default byte budget for injected trace headers: half of Node.js's 16 KiB limit on a
/// whole request head, and one nginx `large_client_header_buffers` buffer (8 KiB), so
/// the origin's own headers still fit.
pub(crate) const DEFAULT_MAX_INJECTED_BYTES: usize = 8192;

/// Default header-line budget: well under Apache's `LimitRequestFields` (100) for the
/// whole request; every format's ids together take about 30 lines.
pub(crate) const DEFAULT_MAX_INJECTED_HEADERS: usize = 64;

/// A partial policy from an upstream's or a route's tables: `None` keeps the value
/// underneath.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOverride {
    /// `extract`.
    pub extract: Option<Vec<Format>>,
    /// `inject` as (formats, preserve).
    pub inject: Option<(Vec<Format>, bool)>,
    /// `strip_unlisted`.
    pub strip_unlisted: Option<bool>,
    /// `trust`.
    pub trust: Option<Trust>,
    /// `span`.
    pub span: Option<bool>,
    /// `response_header`.
    pub response_header: Option<bool>,
    /// `sampling.strategy`.
    pub strategy: Option<Strategy>,
    /// `sampling.ratio`.
    pub ratio: Option<f64>,
    /// `forwarded`.
    pub forwarded: Option<ForwardedMode>,
    /// `trusted_networks`.
    pub trusted_networks: Option<Vec<IpNet>>,
    /// `max_injected_bytes`.
    pub max_injected_bytes: Option<usize>,
    /// `max_injected_headers`.
    pub max_injected_headers: Option<usize>,
    /// The browser-edge keys (`cors`, `server_timing`, ...).
    pub browser: BrowserOverride,
    /// `mode`.
    pub mode: Option<Mode>,
    /// `baggage_allow`.
    pub baggage_allow: Option<Vec<KeyPattern>>,
    /// `baggage_deny`.
    pub baggage_deny: Option<Vec<KeyPattern>>,
    /// `restart_baggage`.
    pub restart_baggage: Option<RestartBaggage>,
    /// `request_id_header` (`Some(None)` = written as `""`: off).
    pub request_id_header: Option<Option<http::HeaderName>>,
    /// `request_id_generate`.
    pub request_id_generate: Option<bool>,
    /// `request_id_trace`.
    pub request_id_trace: Option<bool>,
    /// `sampling.keep_errors`.
    pub keep_errors: Option<bool>,
    /// `sampling.keep_slower_than` (`Some(None)` = written as `""`: off).
    pub keep_slower_than: Option<Option<core::time::Duration>>,
}

impl PolicyOverride {
    /// `base` with this override's keys replaced.
    pub fn apply(&self, base: &Policy) -> Policy {
        let (inject, preserve) = match &self.inject {
            Some((formats, preserve)) => (formats.clone(), *preserve),
            None => (base.inject.clone(), base.preserve),
        };
        Policy {
            extract: self.extract.clone().unwrap_or_else(|| base.extract.clone()),
            inject,
            preserve,
            strip_unlisted: self.strip_unlisted.unwrap_or(base.strip_unlisted),
            trust: self.trust.unwrap_or(base.trust),
            span: self.span.unwrap_or(base.span),
            response_header: self.response_header.unwrap_or(base.response_header),
            strategy: self.strategy.unwrap_or(base.strategy),
            ratio: self.ratio.unwrap_or(base.ratio),
            forwarded: self.forwarded.unwrap_or(base.forwarded),
            trusted_networks: self
                .trusted_networks
                .clone()
                .unwrap_or_else(|| base.trusted_networks.clone()),
            max_injected_bytes: self.max_injected_bytes.unwrap_or(base.max_injected_bytes),
            max_injected_headers: self
                .max_injected_headers
                .unwrap_or(base.max_injected_headers),
            browser: self.browser.apply(&base.browser),
            mode: self.mode.unwrap_or(base.mode),
            baggage: BaggageFilter {
                allow: match &self.baggage_allow {
                    Some(list) => Some(list.clone()),
                    None => base.baggage.allow.clone(),
                },
                deny: self
                    .baggage_deny
                    .clone()
                    .unwrap_or_else(|| base.baggage.deny.clone()),
                restart: self.restart_baggage.unwrap_or(base.baggage.restart),
            },
            request_id: RequestIdPolicy {
                header: self
                    .request_id_header
                    .clone()
                    .unwrap_or_else(|| base.request_id.header.clone()),
                generate: self.request_id_generate.unwrap_or(base.request_id.generate),
                trace: self.request_id_trace.unwrap_or(base.request_id.trace),
            },
            keep: Keep {
                errors: self.keep_errors.unwrap_or(base.keep.errors),
                slower_than: self.keep_slower_than.unwrap_or(base.keep.slower_than),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_by_network() {
        let policy = Policy {
            trust: Trust::Restart,
            trusted_networks: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            ..Policy::default()
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(policy.trust_for(ip("10.1.2.3")), Trust::Continue);
        assert_eq!(policy.trust_for(ip("fd00::5")), Trust::Continue);
        assert_eq!(policy.trust_for(ip("::ffff:10.1.2.3")), Trust::Continue);
        assert_eq!(policy.trust_for(ip("203.0.113.1")), Trust::Restart);
        assert_eq!(
            policy.trust_for(None),
            Trust::Restart,
            "unknown address: edge policy"
        );
        let plain = Policy {
            trust: Trust::ContinueUnsampled,
            ..Policy::default()
        };
        assert_eq!(
            plain.trust_for(ip("10.1.2.3")),
            Trust::ContinueUnsampled,
            "no networks: the route's trust"
        );
    }
}
