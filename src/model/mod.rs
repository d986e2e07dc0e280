//! The neutral trace-context model every codec extracts into and injects from.
//!
//! Pure data, `std` only: no header maps, no I/O. One [`TraceContext`] is what the
//! gateway knows about the caller's trace; one [`Hop`] is what it knows about the
//! outgoing call it is about to make. Whatever a wire format carries that the neutral
//! fields cannot hold is kept in [`Originals`], so the native header can be re-emitted
//! without loss.

mod ids;
pub(crate) mod named;
mod originals;

pub use ids::{SpanId, TraceId};
pub use named::Named;
pub use originals::{Datadog, EagleEye, Instana, Originals, SkyWalking, XRay};

/// A sampling decision as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sampling {
    /// The caller recorded (or asks the callee to record) the trace.
    Sampled,
    /// The caller decided not to record.
    NotSampled,
    /// No decision was made: B3 "defer", X-Ray `Sampled=?` or absent, Datadog without a
    /// priority. A codec never turns this into a decision; mediation does.
    #[default]
    Deferred,
}

impl Sampling {
    /// `Some(true)` / `Some(false)` for a decision, `None` when deferred.
    pub fn decision(self) -> Option<bool> {
        match self {
            Sampling::Sampled => Some(true),
            Sampling::NotSampled => Some(false),
            Sampling::Deferred => None,
        }
    }

    /// The inverse of [`Sampling::decision`].
    pub fn from_decision(decision: Option<bool>) -> Self {
        match decision {
            Some(true) => Sampling::Sampled,
            Some(false) => Sampling::NotSampled,
            None => Sampling::Deferred,
        }
    }
}

/// One W3C baggage member (or its equivalent in another format), in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaggageEntry {
    /// The key, case preserved (W3C baggage keys are case-sensitive).
    pub key: String,
    /// The decoded value (percent-decoding already applied).
    pub value: String,
    /// W3C baggage properties after the value (`;prop;k=v`), verbatim without the
    /// leading `;`, empty when there are none. Only the W3C format can carry them.
    pub properties: String,
}

/// Ordered baggage: W3C `baggage`, `uberctx-*`, `ot-baggage-*`, `sw8-correlation`,
/// `EagleEye-UserData` all translate into and out of this list.
pub type Baggage = Vec<BaggageEntry>;

/// W3C `tracestate` members, left-most first. Only ever filled from a valid
/// `traceparent`'s companion header.
pub type TraceState = Vec<(String, String)>;

/// What the gateway knows about the caller's trace after extracting one format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// The trace id; `None` for carriers that hold only a decision or only baggage
    /// (`b3: 0`, `x-b3-sampled: 0`, `jaeger-baggage`, `baggage`).
    pub trace_id: Option<TraceId>,
    /// The caller's span id, which becomes the gateway span's parent. `None` when the
    /// format has a trace id but no parent (an AWS ALB's `Root=` only).
    pub parent_id: Option<SpanId>,
    /// The caller's sampling decision.
    pub sampling: Sampling,
    /// Debug / force-sampling flag (B3 `d`, `X-B3-Flags: 1`, Jaeger `0x02` with `0x01`).
    pub debug: bool,
    /// W3C Level 2 random-trace-id flag: the right-most 7 bytes of the trace id are random.
    pub random: bool,
    /// W3C `tracestate` members kept from the caller.
    pub tracestate: TraceState,
    /// Baggage carried by the format.
    pub baggage: Baggage,
    /// Native fields the neutral model cannot hold.
    pub originals: Originals,
}

/// The facts about one outgoing call that injection needs besides the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop<'a> {
    /// The gateway's own span id: the parent the service behind the gateway sees.
    pub span_id: SpanId,
    /// The gateway's service name (SkyWalking parent service, EagleEye `pAppName`).
    pub service: &'a str,
    /// The gateway instance (pod or host name; SkyWalking parent service instance).
    pub instance: &'a str,
    /// The gateway's own entry operation: the matched route or the request path.
    pub endpoint: &'a str,
    /// The upstream `host:port` exactly as the gateway dials it.
    pub peer_address: &'a str,
    /// 1-based index of this outgoing call for the inbound request (retries count);
    /// SkyWalking exit-span index and the last component of the EagleEye child RpcID.
    pub call_index: u32,
}
