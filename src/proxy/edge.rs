//! The browser edge's glue (issue 20): the rules of [`crate::mediate::browser`]
//! applied by the request [`super::core`] to every response, on both proxy paths: an
//! answered preflight, the upstream's response, and the gateway's own responses.

use std::time::Instant;

use http::{HeaderName, HeaderValue, Method};

use super::trace::RequestTrace;
use crate::codec::{HeaderSink, HeaderSource};
use crate::mediate::browser::{self, Exchange, Ids, Timing};

/// When the request and its first upstream attempt started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// The request header arrived.
    pub(super) started: Instant,
    /// The first attempt to reach the upstream began; `None` for the gateway's own answers.
    pub(super) upstream_started: Option<Instant>,
}

impl Clock {
    fn timing(self) -> Timing {
        let now = Instant::now();
        Timing {
            total: now.saturating_duration_since(self.started),
            upstream: self
                .upstream_started
                .map(|u| now.saturating_duration_since(u)),
        }
    }
}

/// Sets the browser-edge headers on a response about to go to the client: `status`
/// and `response`, the headers it has so far (the upstream's, or the gateway's own).
pub(super) fn finish(
    trace: Option<&RequestTrace>,
    request: (&Method, &impl HeaderSource),
    clock: Clock,
    status: u16,
    response: &impl HeaderSource,
    out: &mut dyn HeaderSink,
) {
    let Some(trace) = trace.filter(|t| t.policy().browser.is_active()) else {
        return;
    };
    let policy = trace.policy();
    let x = Exchange {
        method: request.0,
        request: request.1,
        status,
        response,
        ids: Some(Ids {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            sampled: trace.sampled,
        }),
        timing: clock.timing(),
    };
    let edits = policy
        .browser
        .response_edits(&policy.extract, policy.response_header, &x);
    for (name, value) in edits {
        out.set(name, value);
    }
}

/// Answer mode: the headers of the gateway's own `204` to a CORS preflight; `None`
/// when the route does not answer preflights or the request is not one.
pub(super) fn answer_preflight(
    trace: Option<&RequestTrace>,
    request: (&Method, &impl HeaderSource),
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let policy = trace?.policy();
    browser::answer_preflight(&policy.browser, &policy.extract, request.0, request.1)
}
