//! The browser edge's glue (issue 20): the rules of [`crate::mediate::browser`]
//! applied to pingora's responses. Three call sites in the request path, each one
//! line: an answered preflight in `request_filter`, the upstream's response in
//! `response_filter`, and the gateway's own responses (`respond`, `fail_to_proxy`).

use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::trace::RequestTrace;
use crate::codec::HeaderSink;
use crate::mediate::browser::{self, Exchange, Ids, Timing};
use crate::mediate::HeaderEdit;

/// pingora's response header as an edit target: edits go through its own methods so
/// its header-case map stays in sync.
pub(super) struct DownstreamHeaders<'a>(pub &'a mut ResponseHeader);

impl HeaderSink for DownstreamHeaders<'_> {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        // insert_header only fails on invalid names or values; the rules build valid ones.
        let _ = self.0.insert_header(name, value);
    }
}

impl HeaderEdit for DownstreamHeaders<'_> {
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    fn remove(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

/// When the request and its first upstream attempt started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// The request header arrived.
    pub started: Instant,
    /// The first attempt to reach the upstream began; `None` for the gateway's own answers.
    pub upstream_started: Option<Instant>,
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

fn ids(trace: &RequestTrace) -> Ids {
    Ids {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        sampled: trace.sampled,
    }
}

/// Sets the browser-edge headers on a response about to go to the client (`status`
/// and the headers already in `target`: the upstream's, or the gateway's own).
pub(super) fn finish(
    trace: Option<&RequestTrace>,
    request: &RequestHeader,
    clock: Clock,
    status: u16,
    target: &mut dyn HeaderEdit,
) {
    let Some(trace) = trace else { return };
    let policy = trace.policy();
    if !policy.browser.is_active() {
        return;
    }
    let x = Exchange {
        method: &request.method,
        request: &request.headers,
        status,
        response: target.headers(),
        ids: Some(ids(trace)),
        timing: clock.timing(),
    };
    let edits = policy
        .browser
        .response_edits(&policy.extract, policy.response_header, &x);
    for (name, value) in edits {
        target.set(name, value);
    }
}

/// The edits for a response the gateway makes itself (404, echo, 502/504), for
/// `respond`, which builds its header after the request is no longer borrowed.
pub(super) fn own_response(
    trace: Option<&RequestTrace>,
    request: &RequestHeader,
    clock: Clock,
    status: u16,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = HeaderMap::new();
    finish(trace, request, clock, status, &mut out);
    out.into_iter()
        .filter_map(|(name, value)| name.map(|n| (n, value)))
        .collect()
}

/// Answer mode: writes the gateway's own `204` to a CORS preflight and returns true;
/// false (nothing written) when the route does not answer preflights or the request is
/// not one.
pub(super) async fn answer_preflight(
    session: &mut Session,
    trace: Option<&RequestTrace>,
) -> Result<bool> {
    let Some(trace) = trace else { return Ok(false) };
    let policy = trace.policy();
    let req = session.req_header();
    let Some(headers) =
        browser::answer_preflight(&policy.browser, &policy.extract, &req.method, &req.headers)
    else {
        return Ok(false);
    };
    let mut resp = ResponseHeader::build(204, Some(headers.len() + 1))?;
    resp.insert_header("server", "tracebridge")?;
    for (name, value) in headers {
        resp.insert_header(name, value)?;
    }
    session.write_response_header(Box::new(resp), true).await?;
    Ok(true)
}
