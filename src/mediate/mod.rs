//! Per-request propagation policy, pure: which incoming context wins, what the
//! sampling decision depends on, what to inject and what to strip. No pingora, no
//! OpenTelemetry SDK, no I/O: the proxy feeds headers in and applies the result.
//!
//! The steps of one request:
//! 1. [`plan`]: extract with the route's policy and apply trust → a [`Plan`]: the
//!    remote parent (if any), links, and a [`SamplingDirective`];
//! 2. the proxy starts the gateway span (or, propagation-only, picks the ids) and
//!    resolves the directive into one decision;
//! 3. [`outgoing`]: the context every injected format carries;
//! 4. [`inject`] into each outgoing request: strip stale headers, write each format.

pub mod extract;
pub mod policy;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::codec::{DecodeError, Format, FormatSet, HeaderSink, Injected};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

pub use extract::Extraction;
pub use policy::{Policy, PolicyOverride, Strategy, Trust};

/// How the sampling decision must be made once the trace id is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplingDirective {
    /// Decided already (an incoming decision honoured, a debug flag, `always`/`never`).
    Decided(bool),
    /// A new root (or a deferred / distrusted incoming decision): sample with this
    /// probability by trace id, subject to the process-wide rate limit.
    Root(f64),
    /// `strategy = "ratio"`: with this probability by trace id, no rate limit.
    Ratio(f64),
}

/// What extraction and trust decided for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The format the continued context came from (`None` for a new root).
    pub format: Option<Format>,
    /// The context that arrived with a trace id, whatever trust made of it (continued,
    /// or under `restart` only linked): its format and the parent span id it named.
    /// `None` when no format carried a trace id (the request is a blind spot).
    pub incoming: Option<(Format, Option<SpanId>)>,
    /// The remote parent to continue: has a trace id; `None` = new root.
    pub parent: Option<TraceContext>,
    /// What carries over into the new context whatever happens to the ids: baggage,
    /// and (when continuing) tracestate, originals, debug and random flags.
    pub carried: TraceContext,
    /// Contexts to attach as span links: conflicting formats, and on `restart` the
    /// incoming context itself.
    pub links: Vec<(Format, TraceContext)>,
    /// How many links are conflicts (a different trace id in another format).
    pub conflicts: usize,
    /// Formats present but invalid, with the reason.
    pub invalid: Vec<(Format, DecodeError)>,
    /// Formats that arrived with a valid, agreeing context (for `preserve`).
    pub arrived: Vec<Format>,
    /// How to decide sampling.
    pub directive: SamplingDirective,
    /// Every format with headers in the request (stripping looks only at these).
    pub present: FormatSet,
}

impl Default for SamplingDirective {
    fn default() -> Self {
        SamplingDirective::Root(1.0)
    }
}

/// Step 1: extraction and trust.
pub fn plan(policy: &Policy, headers: &HeaderMap) -> Plan {
    let Extraction {
        primary,
        links,
        invalid,
        arrived,
        present,
    } = extract::extract(&policy.extract, headers);
    let conflicts = links.len();
    let mut plan = Plan {
        links,
        conflicts,
        invalid,
        arrived,
        present,
        ..Plan::default()
    };
    // The decision the incoming headers ask for, if they may.
    let mut asked: Option<bool> = None;
    plan.incoming = primary
        .as_ref()
        .filter(|(_, ctx)| ctx.trace_id.is_some())
        .map(|(format, ctx)| (*format, ctx.parent_id));
    match primary {
        None => {}
        Some((format, ctx)) if policy.trust == Trust::Restart => {
            plan.carried.baggage = ctx.baggage.clone();
            if ctx.trace_id.is_some() {
                plan.links.insert(0, (format, ctx));
            }
        }
        Some((format, mut ctx)) => {
            let trusted = policy.trust == Trust::Continue;
            if trusted {
                asked = if ctx.debug {
                    Some(true)
                } else {
                    ctx.sampling.decision()
                };
            } else {
                ctx.debug = false;
            }
            plan.carried = TraceContext {
                trace_id: None,
                parent_id: None,
                sampling: Sampling::Deferred,
                debug: ctx.debug,
                random: ctx.random,
                tracestate: std::mem::take(&mut ctx.tracestate),
                baggage: std::mem::take(&mut ctx.baggage),
                originals: std::mem::take(&mut ctx.originals),
            };
            if ctx.trace_id.is_some() {
                plan.format = Some(format);
                plan.parent = Some(ctx);
            }
        }
    }
    plan.directive = match policy.strategy {
        Strategy::Always => SamplingDirective::Decided(true),
        Strategy::Never => SamplingDirective::Decided(false),
        // A debug flag forces sampling whatever the ratio, if trust allows it.
        Strategy::Ratio if asked == Some(true) && plan.carried.debug => {
            SamplingDirective::Decided(true)
        }
        Strategy::Ratio => SamplingDirective::Ratio(policy.ratio),
        Strategy::Parent => match asked {
            Some(decision) => SamplingDirective::Decided(decision),
            None => SamplingDirective::Root(policy.ratio),
        },
    };
    plan
}

/// Step 3: the context every injected format carries, once the gateway knows the
/// trace id and the one sampling decision. The span id travels in the [`Hop`].
pub fn outgoing(plan: &Plan, trace_id: TraceId, sampled: bool, new_trace: bool) -> TraceContext {
    let mut ctx = plan.carried.clone();
    ctx.trace_id = Some(trace_id);
    ctx.sampling = if sampled {
        Sampling::Sampled
    } else {
        Sampling::NotSampled
    };
    ctx.debug &= sampled;
    if new_trace {
        // Our own ids are random (W3C level 2), and nothing of another trace carries over.
        ctx.random = true;
        ctx.tracestate.clear();
        ctx.originals = Default::default();
    }
    ctx
}

/// A request header map the proxy lets mediation edit.
pub trait HeaderEdit: HeaderSink {
    /// The current headers.
    fn headers(&self) -> &HeaderMap;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
}

impl HeaderEdit for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }

    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
}

/// What [`inject`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InjectReport {
    /// The formats written, in order.
    pub formats: Vec<Format>,
    /// The formats that left baggage entries out, with what they dropped and why (empty,
    /// and not allocated, in the common case).
    pub baggage_dropped: Vec<(Format, Injected)>,
}

/// The formats to write: the policy's list, plus with `preserve` the ones that
/// arrived, without duplicates, in that order.
pub fn formats_to_inject(policy: &Policy, plan: &Plan) -> Vec<Format> {
    let mut out = policy.inject.clone();
    if policy.preserve {
        for f in &plan.arrived {
            if !out.contains(f) {
                out.push(*f);
            }
        }
    }
    out
}

/// Step 4: writes `ctx` continued by `hop` in every format of `formats`, after
/// removing that format's old headers; with `strip_unlisted`, removes every other
/// known trace header too, so no stale context leaks to the upstream.
///
/// `present` is [`Plan::present`] of the same request: the formats whose headers
/// `req` carries. The proxy never changes trace headers between extraction and
/// injection (each attempt starts from a copy of the incoming request), so the scan
/// done for extraction serves stripping too.
pub fn inject(
    formats: &[Format],
    strip_unlisted: bool,
    present: FormatSet,
    ctx: &TraceContext,
    hop: &Hop<'_>,
    req: &mut dyn HeaderEdit,
) -> InjectReport {
    for format in Format::ALL {
        if present.contains(format) && (strip_unlisted || formats.contains(&format)) {
            strip(format, req);
        }
    }
    let mut report = InjectReport::default();
    for &format in formats {
        let injected = format.inject(ctx, hop, req);
        if injected.baggage_dropped > 0 {
            report.baggage_dropped.push((format, injected));
        }
        report.formats.push(format);
    }
    report
}

/// Removes every header `format` owns, including prefixed per-item headers.
fn strip(format: Format, req: &mut dyn HeaderEdit) {
    for name in format.headers() {
        if req.headers().contains_key(name) {
            req.remove(name);
        }
    }
    for prefix in format.prefixes() {
        let doomed: Vec<HeaderName> = req
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with(prefix))
            .cloned()
            .collect();
        for name in &doomed {
            req.remove(name);
        }
    }
}

/// W3C `traceresponse` value for the response: `00-{trace}-{span}-{flags}`.
pub fn traceresponse(
    trace_id: TraceId,
    span_id: crate::model::SpanId,
    sampled: bool,
) -> HeaderValue {
    let mut v = Vec::with_capacity(55);
    v.extend_from_slice(b"00-");
    v.extend_from_slice(&trace_id.to_hex());
    v.push(b'-');
    v.extend_from_slice(&span_id.to_hex());
    v.extend_from_slice(if sampled { b"-01" } else { b"-00" });
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(&v).unwrap_or_else(|_| HeaderValue::from_static("00"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn incoming_names_what_arrived_whatever_trust_does_with_it() {
        let h = headers(&[("traceparent", TRACEPARENT)]);
        let parent = SpanId::new(0x00f0_67aa_0ba9_02b7);
        for trust in [Trust::Continue, Trust::ContinueUnsampled, Trust::Restart] {
            let policy = Policy {
                trust,
                ..Policy::default()
            };
            let plan = plan(&policy, &h);
            assert_eq!(
                plan.incoming,
                Some((Format::TraceContext, parent)),
                "{trust:?}"
            );
        }
    }

    #[test]
    fn no_incoming_without_a_trace_id() {
        let policy = Policy::default();
        // Baggage alone, a bare sampling decision, an invalid header: no trace arrived.
        for pairs in [
            &[("baggage", "k=v")][..],
            &[("b3", "1")][..],
            &[("traceparent", "00-zz")][..],
            &[][..],
        ] {
            assert_eq!(plan(&policy, &headers(pairs)).incoming, None, "{pairs:?}");
        }
    }
}
