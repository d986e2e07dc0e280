//! Extraction policy: which of the contexts that arrived becomes the parent.
//!
//! Formats are tried in the configured order and the first one that yields a valid
//! context with a trace id wins. A later valid context that carries a *different*
//! trace id is not merged: it becomes a link (two agents during a migration, or a stale
//! `b3` next to fresh `x-b3-*` headers). Invalid headers are treated as absent and
//! reported with their reason. Baggage is merged from every valid context, the first
//! format to name a key keeping it. A context without ids (`b3: 0`, `x-b3-sampled: 0`)
//! contributes only its sampling decision, used when no format carries ids.

use crate::codec::{DecodeError, Format, FormatList, FormatSet, HeaderSource};
use crate::model::{Sampling, TraceContext};

/// Everything extraction found in one request's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// The winning context and its format: the first valid one with a trace id, or,
    /// when none has ids, the first that carried a decision or baggage.
    pub primary: Option<(Format, TraceContext)>,
    /// Valid contexts of other formats whose trace id differs from the primary's.
    pub links: Vec<(Format, TraceContext)>,
    /// Formats whose headers were present but invalid, with the reason.
    pub invalid: Vec<(Format, DecodeError)>,
    /// Every format that yielded a valid context agreeing with the primary (what
    /// `preserve` re-injects), in extraction order.
    pub arrived: FormatList,
    /// Every format with at least one header in the map, valid or not (what
    /// stripping must look at).
    pub present: FormatSet,
}

/// Runs `formats` in order over `headers`.
pub(crate) fn extract(formats: &[Format], headers: &impl HeaderSource) -> Extraction {
    let mut out = Extraction::default();
    // Contexts without ids, kept until we know whether any format has ids.
    let mut idless: Option<(Format, TraceContext)> = None;
    let present = crate::codec::present(headers);
    out.present = present;
    for &format in formats {
        if !present.contains(format) {
            continue;
        }
        let ctx = match super::carry::extract(format, headers) {
            Ok(Some(ctx)) => ctx,
            Ok(None) => continue,
            Err(reason) => {
                out.invalid.push((format, reason));
                continue;
            }
        };
        match (&mut out.primary, ctx.trace_id) {
            (None, Some(_)) => {
                let mut ctx = ctx;
                if let Some((_, early)) = idless.take() {
                    merge_baggage(&mut ctx, early.baggage);
                }
                out.primary = Some((format, ctx));
                out.arrived.push(format);
            }
            (Some((_, primary)), Some(trace_id)) => {
                if primary.trace_id == Some(trace_id) {
                    merge_baggage(primary, ctx.baggage);
                    out.arrived.push(format);
                } else {
                    out.links.push((format, ctx));
                }
            }
            (Some((_, primary)), None) => {
                merge_baggage(primary, ctx.baggage);
                out.arrived.push(format);
            }
            (None, None) => match &mut idless {
                None => {
                    idless = Some((format, ctx));
                    out.arrived.push(format);
                }
                Some((_, first)) => {
                    out.arrived.push(format);
                    if first.sampling == Sampling::Deferred {
                        first.sampling = ctx.sampling;
                        first.debug |= ctx.debug;
                    }
                    merge_baggage(first, ctx.baggage);
                }
            },
        }
    }
    if out.primary.is_none() {
        out.primary = idless;
    }
    out
}

/// Appends the entries of `more` whose key `ctx` does not have yet.
fn merge_baggage(ctx: &mut TraceContext, more: crate::model::Baggage) {
    for entry in more {
        if !ctx.baggage.iter().any(|b| b.key == entry.key) {
            ctx.baggage.push(entry);
        }
    }
}
