//! The B3 sampling state and its mapping to the model, shared by the two B3 encodings:
//! the single `b3` header ([`super::b3`]) and the `x-b3-*` headers ([`super::b3multi`]).
//! A helper like [`super::item_baggage`], not a format: neither codec file imports the
//! other.

use crate::model::{Sampling, SpanId, TraceContext, TraceId};

/// A B3 sampling state (`X-B3-Sampled` / `X-B3-Flags` in the multi encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `0`: the caller decided not to record.
    Deny,
    /// `1`: the caller records.
    Accept,
    /// `d`: debug, which implies accept.
    Debug,
}

/// The model's sampling and debug flag for a B3 state (shared with `x-b3-*`).
pub(crate) fn to_sampling(state: Option<State>) -> (Sampling, bool) {
    match state {
        None => (Sampling::Deferred, false),
        Some(State::Deny) => (Sampling::NotSampled, false),
        Some(State::Accept) => (Sampling::Sampled, false),
        Some(State::Debug) => (Sampling::Sampled, true),
    }
}

/// The B3 state to send for `ctx`: debug wins, deferred stays deferred.
pub(crate) fn from_sampling(ctx: &TraceContext) -> Option<State> {
    if ctx.debug {
        return Some(State::Debug);
    }
    match ctx.sampling {
        Sampling::Sampled => Some(State::Accept),
        Sampling::NotSampled => Some(State::Deny),
        Sampling::Deferred => None,
    }
}

/// The context a B3 carrier describes (shared with `x-b3-*`): the caller's SpanId is the
/// parent; no ids for a decision-only carrier.
pub(crate) fn to_context(ids: Option<(TraceId, SpanId)>, state: Option<State>) -> TraceContext {
    let (sampling, debug) = to_sampling(state);
    TraceContext {
        trace_id: ids.map(|(t, _)| t),
        parent_id: ids.map(|(_, s)| s),
        sampling,
        debug,
        ..TraceContext::default()
    }
}
