//! Carrying native ids across W3C-only hops: the gateway's own `tracestate` member.
//!
//! The neutral model cannot hold a SkyWalking string trace id or an EagleEye RpcID, so a hop
//! that speaks only W3C would lose them. Whether and how to keep them is this gateway's
//! policy, not part of any format: the W3C codec only offers a vendor member slot
//! ([`tracecontext::OwnMember`]), and the member's content is built and read here, so
//! `codec/tracecontext.rs` stays W3C and nothing else.
//!
//! Key [`OWN_KEY`] (`tb`, valid under both W3C key grammars):
//!
//! ```text
//! tb-value = part *( ";" part )                ; parts in any order, each tag at most once
//! part     = "sw:" b64 / "ee:" b64 / "rpc:" rpc / tag ":" *tb-chr    ; unknown tags ignored
//! b64      = 1*( ALPHA / DIGIT / "-" / "_" )   ; base64url, no padding, of a UTF-8 string
//! rpc      = 1*DIGIT *( "." 1*DIGIT )          ; an EagleEye RpcID
//! ```
//!
//! `sw` is the SkyWalking trace id (`ctx.originals.skywalking.trace_id`), `ee` the EagleEye
//! TraceID and `rpc` the EagleEye RpcID of *this* outgoing call
//! ([`EagleEye::child_rpc_id`]`(hop.call_index)`), so the next hop is the server side of it.
//! * Inject ([`inject`] with [`Format::TraceContext`]): any `tb` member already in
//!   `ctx.tracestate` is dropped; the new one (only when there are originals) goes first,
//!   then the W3C codec's limits apply (32 members, 512 characters: it goes last among long
//!   members). The member is left out if its value would exceed 256 characters (the W3C value
//!   limit), and the `rpc` part is left out if the child RpcID is not a valid one
//!   ([`eagleeye::check_rpc_id`], e.g. over 256 characters).
//! * Extract ([`extract`] with [`Format::TraceContext`]): a `tb` member becomes
//!   `ctx.originals.skywalking` (trace id only, other fields empty/0) and
//!   `ctx.originals.eagleeye` (trace id and RpcID), and is removed from `ctx.tracestate`. A
//!   malformed one (bad base64, not UTF-8, repeated tag, `rpc` without `ee`, empty part, an
//!   EagleEye TraceID or RpcID the EagleEye codec would reject) is dropped too, without
//!   originals. Only the first `tb` member is read. The originals are as trustworthy as the
//!   caller's `tracestate`: the SkyWalking and EagleEye codecs re-emit an original only while
//!   it still maps to `ctx.trace_id`.
//!
//! Datadog's own `dd` member (`codec::dd_member`) is handled here too: read into the Datadog
//! originals on extract (and removed, when it parses), and written first on inject whenever
//! the context has Datadog state, as Datadog's tracers write it.
//!
//! Every other format goes through [`extract`] / [`inject`] unchanged, so mediation (and the
//! `translate` command) calls these instead of [`Format::extract`] / [`Format::inject`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::codec::tracecontext::{self, OwnMember};
use crate::codec::{
    dd_member, eagleeye, text, DecodeError, Format, HeaderSink, HeaderSource, Injected,
};
use crate::model::{EagleEye, Hop, Originals, SkyWalking, TraceContext};

/// The gateway's own `tracestate` key.
pub const OWN_KEY: &str = "tb";

/// [`Format::extract`], and for W3C the `tb` member moved into the originals.
pub fn extract(
    format: Format,
    headers: &impl HeaderSource,
) -> Result<Option<TraceContext>, DecodeError> {
    let mut got = format.extract(headers);
    if format == Format::TraceContext {
        if let Ok(Some(ctx)) = &mut got {
            take_own_member(ctx);
            take_dd_member(ctx);
        }
    }
    got
}

/// [`Format::inject`], and for W3C with the `tb` member of this hop first.
pub fn inject(
    format: Format,
    ctx: &TraceContext,
    hop: &Hop<'_>,
    out: &mut dyn HeaderSink,
) -> Injected {
    if format != Format::TraceContext {
        return format.inject(ctx, hop, out);
    }
    let value = own_member(&ctx.originals, hop);
    let own = OwnMember {
        key: OWN_KEY,
        value: value.as_deref(),
    };
    // Datadog's own member, written as its tracers do, whenever the context has Datadog
    // state; without any, a caller's `dd` member passes through as it came.
    let dd = ctx
        .originals
        .datadog
        .is_some()
        .then(|| dd_member::encode(ctx, hop))
        .flatten();
    match &dd {
        Some(v) => {
            let dd = OwnMember {
                key: dd_member::KEY,
                value: Some(v),
            };
            tracecontext::inject_with(ctx, hop, &[dd, own], out)
        }
        None => tracecontext::inject_with(ctx, hop, &[own], out),
    }
}

/// The value of the gateway's own member for this hop, `None` when there is nothing to keep.
/// (The W3C codec leaves out a value that is not valid, e.g. over 256 characters.)
fn own_member(originals: &Originals, hop: &Hop<'_>) -> Option<String> {
    let sw = originals
        .skywalking
        .as_deref()
        .filter(|s| !s.trace_id.is_empty());
    let ee = originals
        .eagleeye
        .as_deref()
        .filter(|e| !e.trace_id.is_empty());
    if sw.is_none() && ee.is_none() {
        return None;
    }
    let b64 = |v: &mut Vec<u8>, s: &str| {
        text::push_base64(v, s.as_bytes(), text::BASE64_URL_SAFE, false);
    };
    let mut v = Vec::with_capacity(64);
    if let Some(sw) = sw {
        v.extend_from_slice(b"sw:");
        b64(&mut v, &sw.trace_id);
    }
    if let Some(ee) = ee {
        if !v.is_empty() {
            v.push(b';');
        }
        v.extend_from_slice(b"ee:");
        b64(&mut v, &ee.trace_id);
        let rpc = ee.child_rpc_id(hop.call_index);
        if eagleeye::check_rpc_id(&rpc).is_ok() {
            v.extend_from_slice(b";rpc:");
            v.extend_from_slice(rpc.as_bytes());
        }
    }
    Some(text::into_string(v))
}

/// Reads a `tb` value back into originals; `None` when malformed.
fn parse_own_member(value: &str) -> Option<(Option<SkyWalking>, Option<EagleEye>)> {
    let (mut sw, mut ee, mut rpc) = (None, None, None);
    for part in text::split_ascii(value, b';') {
        let (tag, body) = text::split_once_ascii(part, b':')?;
        let slot = match tag {
            "sw" => &mut sw,
            "ee" => &mut ee,
            "rpc" => &mut rpc,
            _ => continue,
        };
        if body.is_empty() || slot.is_some() {
            return None;
        }
        *slot = Some(body);
    }
    let utf8 =
        |b64: &str| -> Option<String> { String::from_utf8(URL_SAFE_NO_PAD.decode(b64).ok()?).ok() };
    let sw = match sw {
        Some(b64) => Some(SkyWalking {
            trace_id: utf8(b64)?,
            ..SkyWalking::default()
        }),
        None => None,
    };
    let ee = match (ee, rpc) {
        (Some(b64), rpc) => {
            let trace_id = utf8(b64)?;
            eagleeye::check_trace_id(&trace_id).ok()?;
            if let Some(rpc) = rpc {
                eagleeye::check_rpc_id(rpc).ok()?;
            }
            Some(EagleEye {
                trace_id,
                rpc_id: rpc.map(str::to_owned).unwrap_or_default(),
                sampled: None,
            })
        }
        (None, Some(_)) => return None,
        (None, None) => None,
    };
    Some((sw, ee))
}

/// Moves a `dd` member that parses out of `ctx.tracestate` into the Datadog originals, so
/// a Datadog hop further on gets its priority, origin and tags back; one that does not
/// parse stays where it is.
fn take_dd_member(ctx: &mut TraceContext) {
    let Some(pos) = ctx.tracestate.iter().position(|(k, _)| k == dd_member::KEY) else {
        return;
    };
    if let Some(dd) = dd_member::decode(&ctx.tracestate[pos].1) {
        ctx.tracestate.remove(pos);
        ctx.originals.datadog = Some(Box::new(dd));
    }
}

/// Moves the first `tb` member out of `ctx.tracestate` into `ctx.originals`; drops any other.
fn take_own_member(ctx: &mut TraceContext) {
    let Some(pos) = ctx.tracestate.iter().position(|(k, _)| k == OWN_KEY) else {
        return;
    };
    let (_, value) = ctx.tracestate.remove(pos);
    ctx.tracestate.retain(|(k, _)| k != OWN_KEY);
    if let Some((sw, ee)) = parse_own_member(&value) {
        ctx.originals.skywalking = sw.map(Box::new);
        ctx.originals.eagleeye = ee.map(Box::new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{ctx_with, hop_at, map, ts};
    use crate::codec::tracecontext::{decode_tracestate, TRACESTATE};
    use crate::model::{Sampling, SpanId};
    use http::HeaderMap;

    const TP: &str = "00-12345678901234567890123456789012-1234567890123456-00";

    fn originals(sw: Option<&str>, ee: Option<(&str, &str)>) -> Originals {
        Originals {
            skywalking: sw.map(|t| {
                Box::new(SkyWalking {
                    trace_id: t.into(),
                    segment_id: "seg".into(),
                    span_index: 3,
                    ..SkyWalking::default()
                })
            }),
            eagleeye: ee.map(|(t, r)| {
                Box::new(EagleEye {
                    trace_id: t.into(),
                    rpc_id: r.into(),
                    sampled: Some("1".into()),
                })
            }),
            ..Originals::default()
        }
    }

    #[test]
    fn own_member_round_trip() {
        let mut ctx = ctx_with(Sampling::Sampled, false, false);
        ctx.originals = originals(
            Some("a.b.c"),
            Some(("0ad1348f1403169275002100356696", "0.1")),
        );
        ctx.tracestate = ts(&[("tb", "sw:stale"), ("foo", "1"), ("bar", "2")]);
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &ctx, &hop_at(5, 2), &mut out);
        assert_eq!(
            out[&TRACESTATE],
            "tb=sw:YS5iLmM;ee:MGFkMTM0OGYxNDAzMTY5Mjc1MDAyMTAwMzU2Njk2;rpc:0.1.2,foo=1,bar=2"
        );
        let back = extract(Format::TraceContext, &out).unwrap().unwrap();
        assert_eq!(back.tracestate, ts(&[("foo", "1"), ("bar", "2")]));
        assert_eq!(
            back.originals,
            originals_back("a.b.c", "0ad1348f1403169275002100356696", "0.1.2")
        );
        // Only the EagleEye part; the rpc of the next call is a child of the one we received.
        ctx.originals = originals(None, Some(("ee1", "")));
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &ctx, &hop_at(5, 1), &mut out);
        assert_eq!(out[&TRACESTATE], "tb=ee:ZWUx;rpc:0.1,foo=1,bar=2");
        let mut back = extract(Format::TraceContext, &out).unwrap().unwrap();
        assert_eq!(back.originals.eagleeye.as_ref().unwrap().rpc_id, "0.1");
        back.parent_id = SpanId::new(9);
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &back, &hop_at(6, 3), &mut out);
        assert_eq!(out[&TRACESTATE], "tb=ee:ZWUx;rpc:0.1.3,foo=1,bar=2");
    }

    /// The point of `tb`: SkyWalking and EagleEye ids come back out natively after a hop that
    /// carries only W3C headers (gateway A → W3C-only service → gateway B).
    #[test]
    fn native_ids_survive_a_w3c_only_hop() {
        use crate::codec::eagleeye::EagleEyeCodec;
        use crate::codec::skywalking::{SkyWalkingCodec, SW8};
        use crate::codec::Codec;
        // SkyWalking: the sw8 trace id string "1" (sw8-001) is re-emitted two hops later.
        let sw8 =
            "1-MQ==-NQ==-3-bWVzaA==-aW5zdGFuY2U=-L2FwaS92MS9oZWFsdGg=-ZXhhbXBsZS5jb206ODA4MA==";
        let at_a = SkyWalkingCodec::extract(&map(&[("sw8", sw8)]))
            .unwrap()
            .unwrap();
        let mut w3c_only = HeaderMap::new();
        inject(Format::TraceContext, &at_a, &hop_at(0xa, 1), &mut w3c_only);
        let at_b = extract(Format::TraceContext, &w3c_only).unwrap().unwrap();
        assert_eq!(at_b.trace_id, at_a.trace_id);
        let mut out = HeaderMap::new();
        SkyWalkingCodec::inject(&at_b, &hop_at(0xb, 1), &mut out);
        let back = SkyWalkingCodec::extract(&out).unwrap().unwrap();
        assert_eq!(
            back.originals.skywalking.unwrap().trace_id,
            "1",
            "{:?}",
            out[&SW8]
        );
        // EagleEye: TraceID and the RpcID tree continue (A called with 0.1.2; B is its server).
        let ee = map(&[
            ("EagleEye-TraceID", "0ad1348f1403169275002100356696"),
            ("EagleEye-RpcID", "0.1"),
        ]);
        let at_a = EagleEyeCodec::extract(&ee).unwrap().unwrap();
        let mut w3c_only = HeaderMap::new();
        inject(Format::TraceContext, &at_a, &hop_at(0xa, 2), &mut w3c_only);
        let at_b = extract(Format::TraceContext, &w3c_only).unwrap().unwrap();
        let mut out = HeaderMap::new();
        EagleEyeCodec::inject(&at_b, &hop_at(0xb, 1), &mut out);
        assert_eq!(out[&eagleeye::TRACE_ID], "0ad1348f1403169275002100356696");
        assert_eq!(out[&eagleeye::RPC_ID], "0.1.2.1");
    }

    fn originals_back(sw: &str, ee: &str, rpc: &str) -> Originals {
        Originals {
            skywalking: Some(Box::new(SkyWalking {
                trace_id: sw.into(),
                ..SkyWalking::default()
            })),
            eagleeye: Some(Box::new(EagleEye {
                trace_id: ee.into(),
                rpc_id: rpc.into(),
                sampled: None,
            })),
            ..Originals::default()
        }
    }

    /// (`tb` value, Some((sw trace id, (ee trace id, rpc id))) or None when malformed).
    type OwnRow = (
        &'static str,
        Option<(Option<&'static str>, Option<(&'static str, &'static str)>)>,
    );

    #[test]
    fn own_member_parsing() {
        let rows: &[OwnRow] = &[
            ("sw:YS5iLmM", Some((Some("a.b.c"), None))),
            ("rpc:0.1;ee:ZWUx", Some((None, Some(("ee1", "0.1"))))),
            ("ee:ZWUx", Some((None, Some(("ee1", ""))))),
            ("sw:YS5iLmM;dd:future", Some((Some("a.b.c"), None))),
            ("", None),
            ("sw", None),
            ("sw:", None),
            ("sw:YS5iLmM;sw:YS5iLmM", None),
            ("rpc:0.1", None),
            ("ee:ZWUx;rpc:0..1", None),
            ("ee:ZWUx;rpc:x", None),
            ("ee:YSBi", None), // "a b": not an EagleEye TraceID
            ("sw:YS5i*mM", None),
            ("sw:_w", None), // 0xff: not UTF-8
            ("sw:YS5iLmM=", None),
        ];
        for (value, want) in rows {
            let got = parse_own_member(value)
                .map(|(sw, ee)| (sw.map(|s| s.trace_id), ee.map(|e| (e.trace_id, e.rpc_id))));
            let want = want.map(|(sw, ee)| {
                (
                    sw.map(String::from),
                    ee.map(|(t, r)| (t.to_string(), r.to_string())),
                )
            });
            assert_eq!(got, want, "{value:?}");
        }
        // A malformed own member is dropped without originals; the rest is kept.
        let h = map(&[
            ("traceparent", TP),
            ("tracestate", "foo=1,tb=sw:*,tb=sw:YS5iLmM,bar=2"),
        ]);
        let ctx = extract(Format::TraceContext, &h).unwrap().unwrap();
        assert_eq!(ctx.tracestate, ts(&[("foo", "1"), ("bar", "2")]));
        assert_eq!(ctx.originals, Originals::default());
    }

    #[test]
    fn own_member_limits() {
        let mut ctx = ctx_with(Sampling::Sampled, false, false);
        // Too long (> 256 chars): skipped, the others still go out.
        ctx.originals = originals(Some(&"x".repeat(200)), None);
        ctx.tracestate = ts(&[("foo", "1")]);
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &ctx, &hop_at(5, 1), &mut out);
        assert_eq!(out[&TRACESTATE], "foo=1");
        // A child RpcID the EagleEye codec would reject (> 256 chars): the rpc part is left out.
        ctx.originals = originals(None, Some(("e", &format!("1{}", ".1".repeat(127)))));
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &ctx, &hop_at(5, 1), &mut out);
        assert_eq!(out[&TRACESTATE], "tb=ee:ZQ,foo=1");
        // 32 members at most, cut from the right, ours first.
        ctx.originals = originals(Some("s"), None);
        ctx.tracestate = (1..=32)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &ctx, &hop_at(5, 1), &mut out);
        let sent = decode_tracestate(out[&TRACESTATE].to_str().unwrap()).unwrap();
        assert_eq!(sent.len(), 32);
        assert_eq!(sent[0], ("tb".to_string(), "sw:cw".to_string()));
        assert_eq!(sent[31].0, "k31");
        // Invalid members in the context are never sent.
        ctx.originals = Originals::default();
        ctx.tracestate = ts(&[("Foo", "1"), ("bar", "a,b"), ("ok", "1")]);
        let mut out = HeaderMap::new();
        inject(Format::TraceContext, &ctx, &hop_at(5, 1), &mut out);
        assert_eq!(out[&TRACESTATE], "ok=1");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC*") {
            let _ = parse_own_member(&s);
        }
    }
}
