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

pub mod baggage_filter;
pub mod browser;
pub mod carry;
pub mod consistent;
pub(crate) mod extract;
pub(crate) mod forwarded;
pub(crate) mod policy;
pub mod request_id;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::codec::{
    is_field_value, starts_with_ignore_case, DecodeError, Format, FormatList, FormatSet,
    HeaderSink, HeaderSource, Injected,
};
use crate::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

pub use extract::Extraction;
pub use forwarded::ForwardedMode;
pub use policy::{Keep, Mode, Policy, PolicyOverride, Strategy, Trust};

/// How the sampling decision must be made once the trace id is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplingDirective {
    /// Decided already (an incoming decision honoured, a debug flag, `always`/`never`).
    Decided {
        /// The decision.
        sampled: bool,
        /// The consistent-sampling threshold that goes with a positive decision: `th:0`
        /// for `always`, an incoming `th` consistent with the decision; `None` erases it.
        threshold: Option<consistent::Threshold>,
        /// The continued trace's explicit randomness (`ot` `rv`).
        randomness: Option<u64>,
    },
    /// A new root (or a deferred / distrusted incoming decision): sample by the
    /// consistent-probability rule, subject to the process-wide rate limit.
    Root(consistent::Rule),
    /// `strategy = "ratio"`: by the consistent-probability rule, no rate limit.
    Ratio(consistent::Rule),
}

impl SamplingDirective {
    /// Applies the directive to `trace_id`. `allow_root` (the rate limit) is asked only
    /// for a new root the rule keeps.
    pub fn decide(self, trace_id: u128, allow_root: impl FnOnce() -> bool) -> bool {
        match self {
            SamplingDirective::Decided { sampled, .. } => sampled,
            SamplingDirective::Ratio(rule) => rule.keeps(trace_id),
            SamplingDirective::Root(rule) => rule.keeps(trace_id) && allow_root(),
        }
    }

    /// The threshold to propagate (`ot=th:`) with the decision `sampled`; `None` = none
    /// (erased). See [`consistent`] for the rules.
    pub fn threshold(self, sampled: bool) -> Option<consistent::Threshold> {
        if !sampled {
            return None;
        }
        match self {
            SamplingDirective::Decided { threshold, .. } => threshold,
            SamplingDirective::Ratio(rule) => Some(rule.threshold),
            // The default ratio 1 under `parent` is OpenTelemetry's default
            // `parentbased_always_on`, which writes no threshold.
            SamplingDirective::Root(rule) => {
                (rule.threshold != consistent::Threshold::ALWAYS).then_some(rule.threshold)
            }
        }
    }

    /// The explicit randomness (`rv`) of the continued trace, if any.
    pub fn randomness(self) -> Option<u64> {
        match self {
            SamplingDirective::Decided { randomness, .. } => randomness,
            SamplingDirective::Root(rule) | SamplingDirective::Ratio(rule) => rule.randomness,
        }
    }
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
    pub arrived: FormatList,
    /// How to decide sampling.
    pub directive: SamplingDirective,
    /// Every format with headers in the request (stripping looks only at these).
    pub present: FormatSet,
    /// The continued `tracestate`'s `ot` member was invalid and was dropped: why.
    pub ot_invalid: Option<consistent::OtError>,
    /// Incoming baggage members the route's baggage filter dropped, by reason.
    pub baggage_dropped: baggage_filter::Dropped,
}

impl Default for SamplingDirective {
    fn default() -> Self {
        SamplingDirective::Root(consistent::Rule {
            threshold: consistent::Threshold::ALWAYS,
            randomness: None,
        })
    }
}

/// Step 1: extraction and trust, with the route's `trust`.
pub fn plan(policy: &Policy, headers: &impl HeaderSource) -> Plan {
    plan_with(policy, policy.trust, headers)
}

/// Step 1 with the trust chosen for this request ([`Policy::trust_for`]: by the
/// client's network, else the route's).
pub fn plan_with(policy: &Policy, trust: Trust, headers: &impl HeaderSource) -> Plan {
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
    // The continued trace's `ot` member: its threshold and explicit randomness.
    let mut ot = consistent::OtValue::default();
    plan.incoming = primary
        .as_ref()
        .filter(|(_, ctx)| ctx.trace_id.is_some())
        .map(|(format, ctx)| (*format, ctx.parent_id));
    match primary {
        None => {}
        Some((format, ctx)) if trust == Trust::Restart => {
            match policy.baggage.restart {
                baggage_filter::RestartBaggage::Keep => plan.carried.baggage = ctx.baggage.clone(),
                baggage_filter::RestartBaggage::Drop => {
                    plan.baggage_dropped.restart =
                        u32::try_from(ctx.baggage.len()).unwrap_or(u32::MAX);
                }
            }
            if ctx.trace_id.is_some() {
                plan.links.insert(0, (format, ctx));
            }
        }
        Some((format, mut ctx)) => {
            let trusted = trust == Trust::Continue;
            if trusted {
                asked = if ctx.debug {
                    Some(true)
                } else {
                    ctx.sampling.decision()
                };
            } else {
                ctx.debug = false;
            }
            let mut tracestate = std::mem::take(&mut ctx.tracestate);
            if !tracestate.is_empty() && ctx.trace_id.is_some() {
                match consistent::take_incoming(&mut tracestate) {
                    Ok(v) => ot = v,
                    Err(e) => plan.ot_invalid = Some(e),
                }
            }
            plan.carried = TraceContext {
                trace_id: None,
                parent_id: None,
                sampling: Sampling::Deferred,
                debug: ctx.debug,
                random: ctx.random,
                tracestate,
                baggage: std::mem::take(&mut ctx.baggage),
                originals: std::mem::take(&mut ctx.originals),
            };
            if ctx.trace_id.is_some() {
                plan.format = Some(format);
                plan.parent = Some(ctx);
            }
        }
    }
    policy
        .baggage
        .apply(&mut plan.carried.baggage, &mut plan.baggage_dropped);
    if policy.request_id.trace && plan.parent.is_none() && trust != Trust::Restart {
        let id = policy
            .request_id
            .header
            .as_ref()
            .and_then(|name| request_id::read(headers, name))
            .and_then(request_id::trace_id);
        if let Some(trace_id) = id {
            // A trace id with no parent span: the gateway span is a root that keeps it.
            plan.parent = Some(TraceContext {
                trace_id: Some(trace_id),
                ..TraceContext::default()
            });
        }
    }
    let rule = consistent::Rule {
        threshold: consistent::threshold_for(policy.ratio),
        randomness: ot.rv,
    };
    let decided =
        |sampled: bool, threshold: Option<consistent::Threshold>| SamplingDirective::Decided {
            sampled,
            threshold,
            randomness: ot.rv,
        };
    plan.directive = match policy.strategy {
        Strategy::Always => decided(true, Some(consistent::Threshold::ALWAYS)),
        Strategy::Never => decided(false, None),
        // A debug flag forces sampling whatever the ratio, if trust allows it: not a
        // probability decision, so no threshold.
        Strategy::Ratio if asked == Some(true) && plan.carried.debug => decided(true, None),
        Strategy::Ratio => SamplingDirective::Ratio(rule),
        Strategy::Parent => match asked {
            // Parent-based: the incoming threshold goes on when the decision is
            // consistent with it (`R ≥ th`), else it is erased (the specification's
            // "General requirements").
            Some(true) if !plan.carried.debug => {
                let trace_id = plan.parent.as_ref().and_then(|p| p.trace_id);
                let consistent_th = ot.th.filter(|th| {
                    trace_id.is_some_and(|t| th.keeps(consistent::randomness(t.get(), ot.rv)))
                });
                decided(true, consistent_th)
            }
            Some(decision) => decided(decision, None),
            None => SamplingDirective::Root(rule),
        },
    };
    plan
}

/// Step 3: the context every injected format carries, once the gateway knows the
/// trace id and the one sampling decision. The span id travels in the [`Hop`]. When
/// `formats` (what the hop writes) has W3C, the `ot` member's threshold is set for the
/// decision ([`consistent::stamp`]); otherwise `tracestate` is left as it came. When it
/// has W3C and Datadog, the context gets Datadog state (if it had none), so W3C carries
/// Datadog's `dd` member too ([`carry`]).
///
/// The context is made from [`Plan::carried`], which it takes (leaving the default):
/// this is its last use, and a clone and a drop of a context (tracestate, baggage, the
/// native fields) cost a request as much as the rest of this step.
pub fn outgoing(
    plan: &mut Plan,
    trace_id: TraceId,
    sampled: bool,
    new_trace: bool,
    formats: &[Format],
) -> TraceContext {
    let tracecontext = formats.contains(&Format::TraceContext);
    let mut ctx = std::mem::take(&mut plan.carried);
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
    if tracecontext {
        consistent::stamp(&mut ctx.tracestate, plan.directive.threshold(sampled));
        if ctx.originals.datadog.is_none() && formats.contains(&Format::Datadog) {
            ctx.originals.datadog = Some(Box::default());
        }
    }
    ctx
}

/// A request header map the proxy lets mediation edit.
pub trait HeaderEdit: HeaderSink {
    /// The names present now that start with `prefix` (a per-item format's headers).
    fn names_with_prefix(&self, prefix: &str) -> Vec<HeaderName>;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
}

/// The names in `headers` that start with `prefix` (lowercase), each once.
pub fn prefixed(headers: &impl HeaderSource, prefix: &str) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for (name, _) in headers.fields() {
        if !starts_with_ignore_case(name, prefix) {
            continue;
        }
        match HeaderName::from_bytes(name) {
            Ok(name) if !names.contains(&name) => names.push(name),
            _ => {}
        }
    }
    names
}

impl HeaderEdit for HeaderMap {
    fn names_with_prefix(&self, prefix: &str) -> Vec<HeaderName> {
        prefixed(self, prefix)
    }

    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
}

/// What [`inject`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InjectReport {
    /// The formats that left baggage entries out, with what they dropped and why (empty,
    /// and not allocated, in the common case).
    pub baggage_dropped: Vec<(Format, Injected)>,
    /// Baggage members left out of every format to stay within the request's
    /// [`Budget`], and the limit that forced it.
    pub budget_dropped: Option<(usize, BudgetLimit)>,
    /// Trace header lines written.
    pub headers: usize,
    /// Their size on the wire (`name: value\r\n`).
    pub bytes: usize,
}

/// One budget for all the trace headers injected into one request, over every format
/// (each format's own baggage limits apply per format, so without it a large
/// incoming baggage is multiplied by the number of formats). 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Bytes on the wire, `name: value\r\n` per header.
    pub bytes: usize,
    /// Header lines.
    pub headers: usize,
}

impl Budget {
    /// No limit.
    pub const NONE: Budget = Budget {
        bytes: 0,
        headers: 0,
    };

    /// The limit `t` exceeds, bytes first; `None` when within.
    fn exceeded(self, t: Tally) -> Option<BudgetLimit> {
        if self.bytes > 0 && t.bytes > self.bytes {
            Some(BudgetLimit::Bytes)
        } else if self.headers > 0 && t.headers > self.headers {
            Some(BudgetLimit::Headers)
        } else {
            None
        }
    }
}

/// Which limit of a [`Budget`] was reached (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLimit {
    /// `max_injected_bytes`.
    Bytes,
    /// `max_injected_headers`.
    Headers,
}

impl BudgetLimit {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetLimit::Bytes => "bytes",
            BudgetLimit::Headers => "headers",
        }
    }
}

/// Size of what was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    bytes: usize,
    headers: usize,
}

impl Tally {
    fn add(&mut self, name: &HeaderName, value_len: usize) {
        self.headers += 1;
        self.bytes += name.as_str().len() + value_len + 4;
    }
}

impl HeaderSink for Tally {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.add(&name, value.len());
    }

    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        let ok = is_field_value(value);
        if ok {
            self.add(name, value.len());
        }
        ok
    }

    fn set_vec(&mut self, name: &HeaderName, value: Vec<u8>) -> bool {
        self.set_bytes(name, &value)
    }
}

/// Writes through to the request and counts. Generic over the request, as the
/// functions that make it are, so that a proxy path's edit is called directly, not
/// through a second trait object after the codec's.
struct Tee<'a, E: ?Sized> {
    req: &'a mut E,
    tally: Tally,
}

impl<E: HeaderEdit + ?Sized> HeaderSink for Tee<'_, E> {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.tally.add(&name, value.len());
        self.req.set(name, value);
    }

    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        let set = self.req.set_bytes(name, value);
        if set {
            self.tally.add(name, value.len());
        }
        set
    }

    fn set_vec(&mut self, name: &HeaderName, value: Vec<u8>) -> bool {
        let len = value.len();
        let set = self.req.set_vec(name, value);
        if set {
            self.tally.add(name, len);
        }
        set
    }
}

/// The formats to write: the policy's list, plus with `preserve` the ones that
/// arrived, without duplicates, in that order.
pub fn formats_to_inject(policy: &Policy, plan: &Plan) -> FormatList {
    let mut out = FormatList::from(&policy.inject[..]);
    if policy.preserve {
        for &f in &plan.arrived {
            out.push(f);
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
pub fn inject<E: HeaderEdit + ?Sized>(
    formats: &[Format],
    strip_unlisted: bool,
    present: FormatSet,
    ctx: &TraceContext,
    hop: &Hop<'_>,
    req: &mut E,
) -> InjectReport {
    inject_within(
        formats,
        strip_unlisted,
        present,
        ctx,
        hop,
        Budget::NONE,
        req,
    )
}

/// The formats [`inject`] would remove without writing them again: those present in
/// the request that are not in `formats`, when `strip_unlisted`. Observe mode reports
/// them ("would strip") instead of touching the request.
pub fn would_strip(formats: &[Format], strip_unlisted: bool, present: FormatSet) -> FormatSet {
    let mut out = FormatSet::default();
    if strip_unlisted {
        for f in present.iter() {
            if !formats.contains(&f) {
                out.insert(f);
            }
        }
    }
    out
}

/// [`inject`] within `budget`. Over budget, whole baggage members are left out of every
/// format, the last-listed first (the first members are usually the oldest, set
/// nearest the trace's root), until everything fits; the ids, sampling and
/// `tracestate` are never left out, even when they alone exceed the budget. The common
/// case (within budget) writes once and only counts; over budget, the number of
/// members kept is found by bisection over dry runs that only count.
pub fn inject_within<E: HeaderEdit + ?Sized>(
    formats: &[Format],
    strip_unlisted: bool,
    present: FormatSet,
    ctx: &TraceContext,
    hop: &Hop<'_>,
    budget: Budget,
    req: &mut E,
) -> InjectReport {
    for format in Format::ALL {
        if present.contains(format) && (strip_unlisted || formats.contains(&format)) {
            strip(format, req);
        }
    }
    let mut report = write_all(formats, ctx, hop, req);
    let Some(limit) = budget.exceeded(Tally {
        bytes: report.bytes,
        headers: report.headers,
    }) else {
        return report;
    };
    if ctx.baggage.is_empty() {
        return report;
    }
    // Undo, find how many members fit, write again.
    for &format in formats {
        strip(format, req);
    }
    let mut trimmed = ctx.clone();
    let fits = |keep: usize, trimmed: &mut TraceContext| {
        trimmed.baggage.truncate(keep);
        let mut tally = Tally::default();
        for &format in formats {
            carry::inject(format, trimmed, hop, &mut tally);
        }
        budget.exceeded(tally).is_none()
    };
    // Invariant: `lo` members fit (0 always "fits": ids are never dropped), `hi` do not.
    let (mut lo, mut hi) = (0, ctx.baggage.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        trimmed.baggage.clone_from(&ctx.baggage);
        if fits(mid, &mut trimmed) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    trimmed.baggage.clone_from(&ctx.baggage);
    trimmed.baggage.truncate(lo);
    report = write_all(formats, &trimmed, hop, req);
    report.budget_dropped = Some((ctx.baggage.len() - lo, limit));
    report
}

fn write_all<E: HeaderEdit + ?Sized>(
    formats: &[Format],
    ctx: &TraceContext,
    hop: &Hop<'_>,
    req: &mut E,
) -> InjectReport {
    let mut tee = Tee {
        req,
        tally: Tally::default(),
    };
    let mut report = InjectReport::default();
    for &format in formats {
        let injected = carry::inject(format, ctx, hop, &mut tee);
        if injected.baggage_dropped > 0 {
            report.baggage_dropped.push((format, injected));
        }
    }
    report.headers = tee.tally.headers;
    report.bytes = tee.tally.bytes;
    report
}

/// Removes every header `format` owns, including prefixed per-item headers.
fn strip<E: HeaderEdit + ?Sized>(format: Format, req: &mut E) {
    // Only formats whose headers are there (they arrived, or were just written) are
    // stripped: most of their names are present, so removing each costs less than
    // asking first.
    for name in format.headers() {
        req.remove(name);
    }
    for prefix in format.prefixes() {
        for name in &req.names_with_prefix(prefix) {
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

    fn big_baggage_context() -> TraceContext {
        let mut ctx = TraceContext {
            trace_id: TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            sampling: Sampling::Sampled,
            ..TraceContext::default()
        };
        // 10 KB of baggage, as in the issue: 200 members of ~50 bytes.
        for i in 0..200 {
            ctx.baggage.push(crate::model::BaggageEntry {
                key: format!("key{i}"),
                value: "v".repeat(44),
                properties: String::new(),
            });
        }
        ctx
    }

    fn hop() -> Hop<'static> {
        Hop {
            span_id: SpanId::new(0x00f0_67aa_0ba9_02b7).unwrap(),
            service: "gw",
            instance: "gw-1",
            endpoint: "/",
            peer_address: "10.0.0.1:80",
            call_index: 1,
        }
    }

    fn wire_size(h: &HeaderMap) -> (usize, usize) {
        let bytes = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        (bytes, h.len())
    }

    /// Observe mode's "would strip" is exactly the set of formats whose headers a real
    /// injection removes and does not write again, with and without `strip_unlisted`.
    #[test]
    fn would_strip_matches_what_inject_removes() {
        let incoming = headers(&[
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            (
                "uber-trace-id",
                "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",
            ),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793",
            ),
            ("x-other", "kept"),
        ]);
        let policy = Policy::default();
        let mut p = plan(&policy, &incoming);
        let formats = formats_to_inject(&policy, &p);
        let ctx = outgoing(
            &mut p,
            TraceId::new(0x80f1_98ee_5634_3ba8_64fe_8b2a_57d3_eff7).unwrap(),
            true,
            false,
            &formats,
        );
        for strip_unlisted in [true, false] {
            let mut out = incoming.clone();
            inject(&formats, strip_unlisted, p.present, &ctx, &hop(), &mut out);
            let gone: Vec<Format> = Format::ALL
                .into_iter()
                .filter(|f| p.present.contains(*f))
                .filter(|f| !out.contains_key(&f.headers()[0]))
                .collect();
            let want: Vec<Format> = would_strip(&formats, strip_unlisted, p.present)
                .iter()
                .collect();
            assert_eq!(gone, want, "strip_unlisted = {strip_unlisted}");
        }
        assert_eq!(
            would_strip(&formats, true, p.present)
                .iter()
                .collect::<Vec<_>>(),
            [Format::XRay],
            "b3 won and jaeger agreed with it (both preserved); x-ray named another trace"
        );
    }

    #[test]
    fn the_budget_drops_baggage_first_and_never_the_ids() {
        let ctx = big_baggage_context();
        let hop = hop();
        let mut unlimited = HeaderMap::new();
        let full = inject(
            &Format::ALL,
            true,
            FormatSet::default(),
            &ctx,
            &hop,
            &mut unlimited,
        );
        assert_eq!(wire_size(&unlimited), (full.bytes, full.headers));
        assert!(
            full.bytes > 8192,
            "the amplification: {} bytes, {} headers",
            full.bytes,
            full.headers
        );
        assert_eq!(full.budget_dropped, None);

        let budget = Budget {
            bytes: 8192,
            headers: 64,
        };
        let mut out = HeaderMap::new();
        let r = inject_within(
            &Format::ALL,
            true,
            FormatSet::default(),
            &ctx,
            &hop,
            budget,
            &mut out,
        );
        assert_eq!(
            wire_size(&out),
            (r.bytes, r.headers),
            "counted what was written"
        );
        assert!(r.bytes <= 8192 && r.headers <= 64, "{r:?}");
        let (dropped, limit) = r.budget_dropped.unwrap();
        assert_eq!(limit, BudgetLimit::Bytes);
        assert!(dropped > 0 && dropped < 200, "some baggage kept: {dropped}");
        // Every format's id headers are there, with the same trace id.
        for f in Format::ALL {
            if f == Format::Baggage {
                continue;
            }
            assert!(out.contains_key(&f.headers()[0]), "{f:?} ids dropped");
        }
        let tp = out["traceparent"].to_str().unwrap();
        assert!(tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{tp}");
        // What is kept is the first members, in every baggage format.
        let kept = crate::codec::Format::Baggage
            .extract(&out)
            .unwrap()
            .unwrap()
            .baggage;
        assert_eq!(kept[..], ctx.baggage[..kept.len()]);
        // As much as fits: one more member would not.
        let mut more = ctx.clone();
        more.baggage.truncate(200 - dropped + 1);
        let mut probe = HeaderMap::new();
        let over = inject(
            &Format::ALL,
            true,
            FormatSet::default(),
            &more,
            &hop,
            &mut probe,
        );
        assert!(budget
            .exceeded(Tally {
                bytes: over.bytes,
                headers: over.headers
            })
            .is_some());
    }

    #[test]
    fn the_header_count_is_a_budget_too() {
        let ctx = big_baggage_context();
        let budget = Budget {
            bytes: 0,
            headers: 40,
        };
        let mut out = HeaderMap::new();
        let r = inject_within(
            &Format::ALL,
            true,
            FormatSet::default(),
            &ctx,
            &hop(),
            budget,
            &mut out,
        );
        assert!(out.len() <= 40, "{}", out.len());
        assert_eq!(r.budget_dropped.map(|(_, l)| l), Some(BudgetLimit::Headers));
    }

    #[test]
    fn ids_alone_over_budget_are_still_written() {
        let ctx = big_baggage_context();
        let budget = Budget {
            bytes: 100,
            headers: 1,
        };
        let mut out = HeaderMap::new();
        let r = inject_within(
            &[Format::TraceContext, Format::Baggage],
            true,
            FormatSet::default(),
            &ctx,
            &hop(),
            budget,
            &mut out,
        );
        assert!(out.contains_key("traceparent"));
        assert!(!out.contains_key("baggage"));
        assert_eq!(r.budget_dropped, Some((200, BudgetLimit::Bytes)));
    }

    #[test]
    fn within_budget_nothing_is_dropped() {
        let mut ctx = big_baggage_context();
        ctx.baggage.truncate(3);
        let mut out = HeaderMap::new();
        let r = inject_within(
            &Format::ALL,
            true,
            FormatSet::default(),
            &ctx,
            &hop(),
            Budget {
                bytes: 8192,
                headers: 64,
            },
            &mut out,
        );
        assert_eq!(r.budget_dropped, None);
        assert_eq!(
            Format::Baggage.extract(&out).unwrap().unwrap().baggage,
            ctx.baggage
        );
    }

    /// Strategy, ratio, traceparent, tracestate, decision, threshold, why.
    type Case = (
        Strategy,
        f64,
        &'static str,
        &'static str,
        Option<bool>,
        Option<&'static str>,
        &'static str,
    );

    /// The threshold each strategy propagates (tracestate-probability-sampling.md,
    /// "Parent-based threshold", "General requirements").
    #[test]
    fn thresholds_by_strategy() {
        let th = |s: &str| consistent::Threshold::decode(s).ok();
        let kept = "00-4bf92f3577b34da6a3ffffffffffffff-00f067aa0ba902b7-01";
        let low = "00-4bf92f3577b34da6a300000000000001-00f067aa0ba902b7-01";
        let unsampled = "00-4bf92f3577b34da6a3ffffffffffffff-00f067aa0ba902b7-00";
        let cases: &[Case] = &[
            (
                Strategy::Parent,
                1.0,
                kept,
                "ot=th:8",
                Some(true),
                Some("8"),
                "consistent: kept",
            ),
            (
                Strategy::Parent,
                1.0,
                low,
                "ot=th:8",
                Some(true),
                None,
                "inconsistent: erased",
            ),
            (
                Strategy::Parent,
                1.0,
                unsampled,
                "ot=th:8",
                Some(false),
                None,
                "not sampled",
            ),
            (
                Strategy::Parent,
                1.0,
                kept,
                "x=1",
                Some(true),
                None,
                "no threshold: none",
            ),
            (
                Strategy::Always,
                1.0,
                low,
                "ot=th:8",
                Some(true),
                Some("0"),
                "always: th:0",
            ),
            (
                Strategy::Never,
                1.0,
                kept,
                "ot=th:8",
                Some(false),
                None,
                "never",
            ),
            (
                Strategy::Ratio,
                0.25,
                kept,
                "ot=th:8",
                Some(true),
                Some("c"),
                "ratio: its own",
            ),
            (
                Strategy::Ratio,
                0.25,
                low,
                "ot=th:8",
                Some(false),
                None,
                "ratio: dropped",
            ),
        ];
        for &(strategy, ratio, tp, ts, sampled, want, why) in cases {
            let policy = Policy {
                strategy,
                ratio,
                ..Policy::default()
            };
            let h = headers(&[("traceparent", tp), ("tracestate", ts)]);
            let p = plan(&policy, &h);
            let trace_id = p.parent.as_ref().and_then(|c| c.trace_id).unwrap();
            let decided = p.directive.decide(trace_id.get(), || true);
            assert_eq!(Some(decided), sampled, "{why}");
            assert_eq!(p.directive.threshold(decided), want.and_then(th), "{why}");
        }
        // A new root under `parent` writes the ratio's threshold, except at ratio 1.
        for (ratio, want) in [(0.25, th("c")), (1.0, None)] {
            let policy = Policy {
                ratio,
                ..Policy::default()
            };
            let p = plan(&policy, &HeaderMap::new());
            assert_eq!(p.directive.threshold(true), want, "{ratio}");
        }
    }

    #[test]
    fn trust_chosen_per_request_overrides_the_route() {
        let h = headers(&[("traceparent", TRACEPARENT)]);
        let policy = Policy {
            trust: Trust::Restart,
            ..Policy::default()
        };
        assert_eq!(plan(&policy, &h).parent, None, "restart: new root");
        let continued = plan_with(&policy, Trust::Continue, &h);
        assert_eq!(continued.format, Some(Format::TraceContext));
        assert!(continued.parent.is_some());
    }

    #[test]
    fn every_formats_ids_fit_the_smallest_budget_config_accepts() {
        let mut ctx = big_baggage_context();
        ctx.baggage.clear();
        let mut out = HeaderMap::new();
        let r = inject(
            &Format::ALL,
            true,
            FormatSet::default(),
            &ctx,
            &hop(),
            &mut out,
        );
        // config::validate accepts budgets from 2048 bytes / 32 headers.
        assert!(
            r.bytes <= 2048 && r.headers <= 32,
            "{} bytes, {} headers",
            r.bytes,
            r.headers
        );
    }
}
