//! Datadog's `dd` member of W3C `tracestate`: the Datadog state a W3C hop carries, as
//! Datadog's tracers write and read it (dd-trace-py `ddtrace/propagation/http.py`
//! `_TraceContext`, `ddtrace/internal/utils/http.py` `w3c_get_dd_list_member`; Datadog
//! docs "Trace Context Propagation").
//!
//! ```text
//! dd-value = part *( ";" part )            ; at most 256 characters
//! part     = "s:" ["-"] 1*DIGIT            ; sampling priority
//!          / "o:" value                    ; origin, "=" written as "~"
//!          / "p:" 16HEXDIGLC               ; the last Datadog parent span id
//!          / "t." key ":" value            ; propagated tag `_dd.p.<key>`, "=" as "~"
//!          / key ":" value                 ; others: ignored
//! ```
//!
//! * Written: `s` (the priority the `x-datadog-*` codec would send for this context:
//!   the original when it agrees with the decision), `o`, `p` (the gateway's span id, the
//!   parent the next hop sees, as a Datadog tracer writes its active span), `t.dm` (only
//!   with the original priority, as in `x-datadog-tags`), `t.tid` (the high half of a
//!   128-bit id), then the other `_dd.p.*` tags while the value stays within 256
//!   characters. Characters a tracestate value cannot hold (`,` `;` `~`, anything outside
//!   0x20–0x7E) become `_`, and `=` becomes `~` (dd-trace-py `w3c_encode_tag`).
//! * Read: `s`, `o` and `t.*` become the context's Datadog originals (`t.tid` is not kept:
//!   the 128-bit `traceparent` id already holds it); `~` is read back as `=`. A value that
//!   does not parse (a non-integer `s`, a part without `:`) is not read at all.

use super::datadog::{priority, valid_tag, DECISION_MAKER, TAG_PREFIX, TID};
use crate::model::{Datadog, Hop, TraceContext};

/// The `tracestate` key.
pub const KEY: &str = "dd";
/// Longest `dd` value.
pub const MAX_LEN: usize = 256;

/// Reads a `dd` value into Datadog originals; `None` when it does not parse.
pub fn decode(value: &str) -> Option<Datadog> {
    let mut dd = Datadog::default();
    if value.len() > MAX_LEN {
        return None;
    }
    for part in super::text::split_ascii(value, b';') {
        let (key, v) = super::text::split_once_ascii(part, b':')?;
        match key {
            "s" => dd.priority = Some(super::text::dec_i64(v)?.try_into().ok()?),
            "o" if !v.is_empty() => dd.origin = Some(v.replace('~', "=")),
            "p" => {
                super::text::hex_exact_u64(v)?;
            }
            _ => {
                if let Some(tail) = key.strip_prefix("t.") {
                    let key = format!("{TAG_PREFIX}{tail}");
                    let v = v.replace('~', "=");
                    // Only what `x-datadog-tags` could carry again.
                    if key != TID && valid_tag(&key, &v) {
                        dd.tags.push((key, v));
                    }
                }
            }
        }
    }
    Some(dd)
}

/// `c` when a tracestate value may hold it, else `_`.
fn clean(c: char, also: &[char]) -> char {
    if !(' '..='~').contains(&c) || matches!(c, ',' | ';' | '~') || also.contains(&c) {
        '_'
    } else if c == '=' {
        '~'
    } else {
        c
    }
}

fn push_clean(out: &mut String, s: &str, also: &[char]) {
    out.extend(s.chars().map(|c| clean(c, also)));
}

/// The `dd` value for `ctx` on `hop`; `None` without a trace id.
pub fn encode(ctx: &TraceContext, hop: &Hop<'_>) -> Option<String> {
    let trace_id = ctx.trace_id?;
    let dd = ctx.originals.datadog.as_deref();
    let original = dd.and_then(|d| d.priority);
    let prio = priority(ctx, original);
    let keeps_original = prio.is_some() && prio == original;
    let mut out = String::with_capacity(64);
    let sep = |out: &mut String| {
        if !out.is_empty() {
            out.push(';');
        }
    };
    if let Some(p) = prio {
        sep(&mut out);
        out.push_str("s:");
        out.push_str(&p.to_string());
    }
    if let Some(o) = dd
        .and_then(|d| d.origin.as_deref())
        .filter(|o| !o.is_empty())
    {
        sep(&mut out);
        out.push_str("o:");
        push_clean(&mut out, o, &[]);
    }
    sep(&mut out);
    out.push_str("p:");
    out.push_str(&hop.span_id.to_string());
    if trace_id.high64() != 0 {
        out.push_str(";t.tid:");
        out.push_str(&format!("{:016x}", trace_id.high64()));
    }
    let tags = dd.map_or(&[][..], |d| d.tags.as_slice());
    for (k, v) in tags {
        if k == TID || (k == DECISION_MAKER && !keeps_original) {
            continue;
        }
        let Some(tail) = k.strip_prefix(TAG_PREFIX) else {
            continue;
        };
        let mut part = String::with_capacity(tail.len() + v.len() + 4);
        part.push_str(";t.");
        push_clean(&mut part, tail, &[' ', ':']);
        part.push(':');
        push_clean(&mut part, v, &[]);
        // A tag that does not fit is left out, as dd-trace-py does.
        if out.len() + part.len() <= MAX_LEN {
            out.push_str(&part);
        }
    }
    // A tracestate value cannot end in a space.
    while out.ends_with(' ') {
        out.pop();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Sampling, TraceId};

    fn hop() -> Hop<'static> {
        crate::codec::testutil::hop_at(0x00f0_67aa_0ba9_02b7, 1)
    }

    fn ctx(sampling: Sampling, dd: Option<Datadog>) -> TraceContext {
        let mut c = TraceContext {
            trace_id: TraceId::new(0x640c_fd8d_0000_0000_abcd_ef01_2345_6789),
            sampling,
            ..TraceContext::default()
        };
        c.originals.datadog = dd.map(Box::new);
        c
    }

    /// dd-trace-py 4.16's own output for s 2, origin rum, `_dd.p.dm=-4`,
    /// `_dd.p.usr.id=baz64==`: `dd=s:2;o:rum;t.dm:-4;t.usr.id:baz64~~`.
    #[test]
    fn reads_what_ddtrace_writes() {
        let dd = decode("s:2;o:rum;t.dm:-4;t.usr.id:baz64~~").unwrap();
        assert_eq!(dd.priority, Some(2));
        assert_eq!(dd.origin.as_deref(), Some("rum"));
        assert_eq!(
            dd.tags,
            vec![
                ("_dd.p.dm".to_owned(), "-4".to_owned()),
                ("_dd.p.usr.id".to_owned(), "baz64==".to_owned())
            ]
        );
        // p and t.tid are read but not kept; unknown keys are ignored.
        let dd = decode("p:00f067aa0ba902b7;s:-1;t.tid:640cfd8d00000000;x:y").unwrap();
        assert_eq!(dd.priority, Some(-1));
        assert!(dd.tags.is_empty());
        for (bad, why) in [
            ("s:x", "priority not an integer"),
            ("s", "no colon"),
            ("p:123", "short parent"),
        ] {
            assert_eq!(decode(bad), None, "{bad}: {why}");
        }
    }

    #[test]
    fn writes_what_ddtrace_writes() {
        let dd = Datadog {
            priority: Some(2),
            origin: Some("rum".into()),
            tags: vec![
                ("_dd.p.dm".into(), "-4".into()),
                ("_dd.p.usr.id".into(), "baz64==".into()),
            ],
        };
        let v = encode(&ctx(Sampling::Sampled, Some(dd.clone())), &hop()).unwrap();
        assert_eq!(
            v,
            "s:2;o:rum;p:00f067aa0ba902b7;t.tid:640cfd8d00000000;t.dm:-4;t.usr.id:baz64~~"
        );
        // The gateway decided otherwise: its priority, and no stale decision maker.
        let v = encode(&ctx(Sampling::NotSampled, Some(dd)), &hop()).unwrap();
        assert_eq!(
            v,
            "s:0;o:rum;p:00f067aa0ba902b7;t.tid:640cfd8d00000000;t.usr.id:baz64~~"
        );
        // No Datadog state: priority from the decision.
        let v = encode(&ctx(Sampling::Sampled, None), &hop()).unwrap();
        assert_eq!(v, "s:1;p:00f067aa0ba902b7;t.tid:640cfd8d00000000");
        // Characters a tracestate value cannot hold.
        let odd = Datadog {
            origin: Some("a,b;c~d=e\u{e9}".into()),
            ..Datadog::default()
        };
        let v = encode(&ctx(Sampling::Deferred, Some(odd)), &hop()).unwrap();
        assert_eq!(v, "o:a_b_c_d~e_;p:00f067aa0ba902b7;t.tid:640cfd8d00000000");
        assert_eq!(decode(&v).unwrap().origin.as_deref(), Some("a_b_c_d=e_"));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(s in "\\PC{0,300}") {
            let _ = decode(&s);
        }

        /// Whatever Datadog state a context holds, the member written is a valid
        /// tracestate value of at most 256 characters that reads back.
        #[test]
        fn written_members_read_back(
            priority in proptest::option::of(-3i32..4),
            origin in proptest::option::of("\\PC{0,20}"),
            tags in proptest::collection::vec(("[a-z.]{1,8}", "[ -~]{0,12}"), 0..12),
        ) {
            let dd = Datadog {
                priority,
                origin,
                tags: tags.into_iter().map(|(k, v)| (format!("_dd.p.{k}"), v)).collect(),
            };
            let v = encode(&ctx(Sampling::Sampled, Some(dd)), &hop()).unwrap();
            proptest::prop_assert!(v.len() <= MAX_LEN);
            proptest::prop_assert!(v.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'='));
            proptest::prop_assert!(decode(&v).is_some(), "{}", v);
        }
    }

    #[test]
    fn stays_within_256_characters() {
        let tags = (0..20)
            .map(|i| (format!("_dd.p.k{i}"), "v".repeat(20)))
            .collect();
        let dd = Datadog {
            priority: Some(1),
            origin: None,
            tags,
        };
        let v = encode(&ctx(Sampling::Sampled, Some(dd)), &hop()).unwrap();
        assert!(v.len() <= MAX_LEN, "{}", v.len());
        assert!(v.contains("t.k0:"), "the first tags are kept");
        assert!(decode(&v).is_some());
    }
}
