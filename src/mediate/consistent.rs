//! OpenTelemetry consistent probability sampling, so every gateway replica and every SDK
//! behind it make the same decision for a trace without talking to each other.
//!
//! Followed: OpenTelemetry specification `specification/trace/tracestate-probability-sampling.md`
//! ("Decision algorithm", "Parent-based threshold", "General requirements", "Converting
//! integer threshold to a T-value"), `tracestate-handling.md` (the `ot` grammar, `th`,
//! `rv`, the 256-character rule) and `sdk.md` ("ProbabilitySampler", "ParentBased",
//! "Presumption of TraceID randomness", "Do not overwrite explicit randomness"); W3C Trace
//! Context Level 2 (the random flag, the low 56 bits of the trace id).
//!
//! * Randomness `R`: the incoming `ot` member's `rv` when it has one, else the low 56 bits
//!   of the trace id. A trace id the gateway made is random (it sets the W3C random flag);
//!   an incoming id without the random flag is *presumed* random, as `sdk.md` says all
//!   samplers SHOULD (the alternative rule for non-random ids, a root inserting `rv`, is
//!   a MAY for roots only, and the gateway's own roots are random).
//! * Threshold `T` = 2^56 − round(ratio × 2^56), at full 56-bit precision (the
//!   Collector's `pkg/sampling` `ProbabilityToThreshold` default); written in its
//!   shortest hex form (`0.25` → `th:c`, `1.0` → `th:0`). Ratio 0 is "never", not
//!   probability sampling: no threshold.
//! * Sampled when `R ≥ T`.
//! * Written threshold (see [`SamplingDirective::threshold`](super::SamplingDirective)):
//!   `strategy = "ratio"` → `T`; `"always"` → `th:0`; `"parent"` honouring an incoming
//!   decision → the incoming `th` when the decision is consistent with it (`R ≥ th`),
//!   else erased; a new root under `"parent"` → `T` when `ratio` < 1 (with the default
//!   ratio 1 the gateway acts as OpenTelemetry's default `parentbased_always_on`, whose
//!   AlwaysOn writes no threshold, so the default configuration's wire output is
//!   unchanged); a debug flag (not a probability) or "not sampled" → erased.
//! * Every other `ot` sub-key (`rv` included: it is never erased or changed) and every
//!   other `tracestate` member is kept. A changed `ot` member moves to the front, as W3C
//!   requires of a modified member; an unchanged one stays where it was.
//! * An invalid `ot` value is removed from the carried `tracestate` and reported by
//!   [`take_incoming`]; the request continues.

use crate::codec::ot_member::{self, MAX_ADJUSTED_COUNT, RANDOMNESS_MASK};
use crate::model::TraceState;

pub use crate::codec::ot_member::{OtError, OtValue, Threshold};

/// `T` for sampling probability `ratio` (clamped to 0..=1; NaN counts as 0).
pub fn threshold_for(ratio: f64) -> Threshold {
    if ratio >= 1.0 {
        return Threshold::ALWAYS;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return Threshold::NEVER;
    }
    // Scaling by a power of two is exact; rounding to the nearest integer is the
    // Collector's `math.Round(fraction * MaxAdjustedCount)`.
    let kept = (ratio * MAX_ADJUSTED_COUNT as f64).round() as u64;
    Threshold::new(MAX_ADJUSTED_COUNT.saturating_sub(kept)).unwrap_or(Threshold::NEVER)
}

/// `R` for a trace: explicit randomness, else the trace id's low 56 bits.
pub fn randomness(trace_id: u128, rv: Option<u64>) -> u64 {
    rv.unwrap_or(trace_id as u64 & RANDOMNESS_MASK)
}

/// One probability decision: a threshold and, when the trace carries one, its explicit
/// randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `T`.
    pub threshold: Threshold,
    /// `rv` of the continued trace.
    pub randomness: Option<u64>,
}

impl Rule {
    /// `R ≥ T` for this trace id.
    pub fn keeps(self, trace_id: u128) -> bool {
        self.threshold.keeps(randomness(trace_id, self.randomness))
    }
}

/// Reads the first `ot` member of a continued context's `tracestate`. An invalid one (or
/// a repeated `ot` key) is removed with every other `ot` member and its reason returned;
/// `Ok(default)` when there is none. Allocates nothing.
pub fn take_incoming(tracestate: &mut TraceState) -> Result<OtValue, OtError> {
    let mut found = tracestate
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == ot_member::KEY)
        .map(|(i, _)| i);
    let Some(first) = found.next() else {
        return Ok(OtValue::default());
    };
    let parsed = if found.next().is_some() {
        Err(OtError::Repeated)
    } else {
        ot_member::decode(&tracestate[first].1)
    };
    if parsed.is_err() {
        tracestate.retain(|(k, _)| k != ot_member::KEY);
    }
    parsed
}

/// Sets the `ot` member's `th` to `th` (or removes it), keeping its other sub-keys; the
/// member moves to the front when it changes and is dropped when nothing is left in it.
/// Nothing is allocated when there is no `ot` member and no threshold to write, or when
/// the threshold is already the one there.
pub fn stamp(tracestate: &mut TraceState, th: Option<Threshold>) {
    let pos = tracestate.iter().position(|(k, _)| k == ot_member::KEY);
    let old = match pos {
        Some(i) => tracestate[i].1.as_str(),
        None if th.is_none() => return,
        None => "",
    };
    // The member was checked by `take_incoming`; anything else is rewritten.
    if pos.is_some() && ot_member::decode(old).map(|v| v.th) == Ok(th) {
        return;
    }
    let new = ot_member::with_threshold(old, th);
    if let Some(i) = pos {
        tracestate.remove(i);
    }
    if !new.is_empty() {
        tracestate.insert(0, (ot_member::KEY.to_owned(), new));
    }
}

/// The `ot` value for the gateway span's own trace state: `th` and, when the decision
/// used explicit randomness, `rv`. `None` without a threshold.
pub fn span_value(th: Option<Threshold>, rv: Option<u64>) -> Option<String> {
    let mut v = ot_member::with_threshold("", th);
    if v.is_empty() {
        return None;
    }
    if let Some(rv) = rv {
        v.push_str(";rv:");
        v.push_str(&format!("{:014x}", rv & RANDOMNESS_MASK));
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(t: Threshold) -> String {
        let mut buf = [0u8; 14];
        t.encode(&mut buf).unwrap_or("none").to_owned()
    }

    /// The table of tracestate-probability-sampling.md ("Converting floating-point
    /// probability to threshold value") at full precision: the exact powers of two give
    /// the same digits at every precision; the others start with the 5-digit column.
    #[test]
    fn thresholds_of_the_specification_table() {
        for (ratio, want) in [
            (1.0, "0"),
            (0.5, "8"),
            (0.25, "c"),
            (0.125, "e"),
            (0.0625, "f"),
        ] {
            assert_eq!(hex(threshold_for(ratio)), want, "{ratio}");
        }
        for (ratio, five) in [
            (1.0 / 3.0, "aaaa"),
            (0.2, "cccc"),
            (0.1, "e666"),
            (0.01, "fd70a"),
            (0.001, "ffbe7"),
            (0.0001, "fff97"),
        ] {
            let t = hex(threshold_for(ratio));
            assert!(t.starts_with(five), "{ratio}: {t}");
            let exact = (1.0 - ratio) * MAX_ADJUSTED_COUNT as f64;
            assert!(
                (threshold_for(ratio).get() as f64 - exact).abs() <= 16.0,
                "{ratio}"
            );
        }
        assert_eq!(threshold_for(0.0), Threshold::NEVER);
        assert_eq!(threshold_for(f64::NAN), Threshold::NEVER);
        assert_eq!(
            threshold_for(2f64.powi(-58)),
            Threshold::NEVER,
            "below 2^-56"
        );
        assert_eq!(threshold_for(2f64.powi(-56)).get(), MAX_ADJUSTED_COUNT - 1);
    }

    #[test]
    fn decisions_follow_r_at_least_t() {
        let quarter = Rule {
            threshold: threshold_for(0.25),
            randomness: None,
        };
        // The low 56 bits of the trace id: c0000000000000 is the first value kept.
        assert!(quarter.keeps(0xffff_ffff_ffff_ffff_ffc0_0000_0000_0000));
        assert!(!quarter.keeps(0x0000_0000_0000_0000_00bf_ffff_ffff_ffff));
        // The top byte of the low half is not randomness.
        assert!(!quarter.keeps(0x0000_0000_0000_0000_ff00_0000_0000_0000));
        // Explicit randomness wins over the trace id.
        let rv = Rule {
            randomness: Some(0x6e6d1a75832a2f),
            ..quarter
        };
        assert!(!rv.keeps(u128::MAX));
        let half = Rule {
            threshold: threshold_for(0.5),
            randomness: Some(0x80_0000_0000_0000 - 1),
        };
        assert!(!half.keeps(u128::MAX));
        assert!(Rule {
            threshold: Threshold::ALWAYS,
            randomness: None
        }
        .keeps(1));
        assert!(!Rule {
            threshold: Threshold::NEVER,
            randomness: None
        }
        .keeps(u128::MAX));
    }

    fn ts(pairs: &[(&str, &str)]) -> TraceState {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stamping_moves_a_changed_member_to_the_front() {
        let c = threshold_for(0.25);
        let mut t = ts(&[("a", "1"), ("ot", "rv:6e6d1a75832a2f"), ("b", "2")]);
        stamp(&mut t, Some(c));
        assert_eq!(
            t,
            ts(&[("ot", "th:c;rv:6e6d1a75832a2f"), ("a", "1"), ("b", "2")])
        );
        // Unchanged: stays where it is.
        let mut t = ts(&[("a", "1"), ("ot", "th:c"), ("b", "2")]);
        let before = t.clone();
        stamp(&mut t, Some(c));
        assert_eq!(t, before);
        // Not sampled: th goes, rv stays, at the front (changed).
        let mut t = ts(&[("a", "1"), ("ot", "th:c;rv:6e6d1a75832a2f")]);
        stamp(&mut t, None);
        assert_eq!(t, ts(&[("ot", "rv:6e6d1a75832a2f"), ("a", "1")]));
        // Nothing left: the member goes.
        let mut t = ts(&[("a", "1"), ("ot", "th:8")]);
        stamp(&mut t, None);
        assert_eq!(t, ts(&[("a", "1")]));
        // Added.
        let mut t = ts(&[("a", "1")]);
        stamp(&mut t, Some(Threshold::ALWAYS));
        assert_eq!(t, ts(&[("ot", "th:0"), ("a", "1")]));
        let mut t = TraceState::new();
        stamp(&mut t, None);
        assert!(t.is_empty());
    }

    #[test]
    fn invalid_incoming_members_are_removed_with_a_reason() {
        let mut t = ts(&[("a", "1"), ("ot", "th:zz"), ("b", "2")]);
        assert_eq!(take_incoming(&mut t), Err(OtError::Threshold));
        assert_eq!(t, ts(&[("a", "1"), ("b", "2")]));
        let mut t = ts(&[("ot", "th:c"), ("ot", "th:8")]);
        assert_eq!(take_incoming(&mut t), Err(OtError::Repeated));
        assert!(t.is_empty());
        let mut t = ts(&[("ot", "th:c;rv:6e6d1a75832a2f")]);
        let v = take_incoming(&mut t).unwrap();
        assert_eq!(v.th, Some(threshold_for(0.25)));
        assert_eq!(v.rv, Some(0x6e6d1a75832a2f));
        assert_eq!(t.len(), 1, "a valid member stays");
    }

    #[test]
    fn span_values() {
        assert_eq!(span_value(None, Some(5)), None);
        assert_eq!(
            span_value(Some(threshold_for(0.25)), Some(0x6e6d1a75832a2f)).as_deref(),
            Some("th:c;rv:6e6d1a75832a2f")
        );
        assert_eq!(
            span_value(Some(Threshold::ALWAYS), None).as_deref(),
            Some("th:0")
        );
    }

    proptest! {
        /// For any ratio and trace id: the decision is `R ≥ T` with T = (1 − ratio)·2^56
        /// (within rounding), and it equals the specification's lexicographic test of the
        /// trace id's last 14 hex digits against the `th` written upstream.
        #[test]
        fn decision_equals_the_rule(ratio in 0.0f64..=1.0, trace_id in 1..=u128::MAX, rv in proptest::option::of(0..MAX_ADJUSTED_COUNT)) {
            let t = threshold_for(ratio);
            let rule = Rule { threshold: t, randomness: rv };
            let r = randomness(trace_id, rv);
            prop_assert_eq!(rule.keeps(trace_id), r >= t.get());
            let exact = (1.0 - ratio) * MAX_ADJUSTED_COUNT as f64;
            prop_assert!((t.get() as f64 - exact).abs() <= 16.0);
            let r_hex = match rv {
                Some(v) => format!("{v:014x}"),
                None => format!("{trace_id:032x}")[18..].to_owned(),
            };
            let mut buf = [0u8; 14];
            match t.encode(&mut buf) {
                Some(th) => prop_assert_eq!(rule.keeps(trace_id), r_hex.as_str() >= th),
                None => prop_assert!(!rule.keeps(trace_id)),
            }
        }
    }
}
