//! The harness every fuzz target shares: one target per format, `run(format, data)`.
//!
//! **Input**: up to [`MAX_LINES`] lines `name: value` (one optional space after the `:`).
//! The name is any header name (case-insensitive), or a single digit `0`–`9` that picks
//! one of the format's own names (its [`Format::headers`], then `{prefix}k` for each of
//! its [`Format::prefixes`]) so the fuzzer reaches them without guessing. The value is
//! the raw bytes, through `HeaderValue::from_bytes` (obs-text allowed; a line whose value
//! has CR, LF, NUL or other controls is skipped, as no HTTP parser would deliver it).
//! Repeated names are appended in order. Seeds in `corpus/<target>/` use this format.
//!
//! **Invariants** (a failed assertion is a crash):
//! - extract and every string-level decoder never panic, whatever the bytes;
//! - the wire layer is lossless: `decode(encode(w)) == w` for every decoded `w` (within
//!   the documented output limits, which a few decoders do not apply on input);
//! - on `Ok(Some(ctx))`, inject → extract in the same format gives back the trace id
//!   (its low 64 bits for `ottrace`, per its doc), the hop's span as the parent, the
//!   sampling decision, debug where the format carries it, the baggage when none was
//!   dropped and the native originals; the injected headers belong to the format and are
//!   clean;
//! - the same context injected in every other format reads back there with the trace id
//!   that format carries and the hop's span as parent;
//! - SkyWalking and EagleEye ids survive a W3C-only hop (`tb` tracestate member) while
//!   they fit in it;
//! - the `ot` and `dd` tracestate members' decoders never panic, and a `th` read writes
//!   back to itself.

use http::{HeaderMap, HeaderName, HeaderValue};
use tracebridge::codec::{
    b3, b3multi, baggage, datadog, eagleeye, gcp, grpc_trace_bin, instana, jaeger, ottrace,
    skywalking, tracecontext, xray, Format,
};
use tracebridge::mediate::carry;
use tracebridge::model::{Hop, Sampling, SpanId, TraceContext, TraceId};

mod http1;
pub use http1::run_http1;

/// Lines read from one input.
pub const MAX_LINES: usize = 32;

const HOP_SPAN: u64 = 0xb7ad_6b71_6920_3331;

fn hop() -> Hop<'static> {
    Hop {
        span_id: SpanId::new(HOP_SPAN).unwrap_or_else(|| unreachable!()),
        service: "gateway",
        instance: "gateway-0",
        endpoint: "GET:/api/orders",
        peer_address: "orders.svc:8080",
        call_index: 1,
    }
}

/// The fuzz target body for `format`.
pub fn run(format: Format, data: &[u8]) {
    let lines = parse_lines(format, data);
    let mut headers = HeaderMap::new();
    for (name, value) in &lines {
        headers.append(name.clone(), value.clone());
    }
    check_extract(format, &headers);
    check_strings(format, &lines, &headers);
}

/// The format's own header names, in digit-alias order.
fn own_names(format: Format) -> Vec<HeaderName> {
    let mut names = format.headers().to_vec();
    for p in format.prefixes() {
        if let Ok(n) = HeaderName::from_bytes(format!("{p}k").as_bytes()) {
            names.push(n);
        }
    }
    names
}

/// The `name: value` lines of `data` that make a valid header.
pub fn parse_lines(format: Format, data: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
    let names = own_names(format);
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n').take(MAX_LINES) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let name = match name.trim_ascii() {
            [d @ b'0'..=b'9'] if !names.is_empty() => {
                names[usize::from(d - b'0') % names.len()].clone()
            }
            other => match HeaderName::from_bytes(other) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            out.push((name, value));
        }
    }
    out
}

fn owned(format: Format, name: &HeaderName) -> bool {
    format.headers().contains(name)
        || format
            .prefixes()
            .iter()
            .any(|p| name.as_str().starts_with(p))
}

/// The trace id `format` gives back after injecting `t`.
fn carried(format: Format, t: TraceId) -> TraceId {
    match format {
        // ottrace.rs: the low 64 bits, or all 128 when the low half is zero.
        Format::OtTrace => TraceId::new(u128::from(t.low64())).unwrap_or(t),
        _ => t,
    }
}

/// Formats whose inject writes baggage, and whether they do so without a trace id.
fn baggage_support(format: Format) -> Option<bool> {
    match format {
        Format::Baggage | Format::Jaeger | Format::OtTrace => Some(true),
        Format::SkyWalking | Format::EagleEye => Some(false),
        _ => None,
    }
}

/// Formats that can say "no decision" and read it back as such.
fn carries_deferred(format: Format) -> bool {
    matches!(
        format,
        Format::B3
            | Format::B3Multi
            | Format::XRay
            | Format::Datadog
            | Format::OtTrace
            | Format::EagleEye
    )
}

fn carries_debug(format: Format) -> bool {
    matches!(format, Format::B3 | Format::B3Multi | Format::Jaeger)
}

/// Extract; on a context, inject → extract in the same format.
pub fn check_extract(format: Format, headers: &HeaderMap) {
    let Ok(Some(ctx)) = format.extract(headers) else {
        return;
    };
    let hop = hop();
    let mut out = HeaderMap::new();
    let injected = format.inject(&ctx, &hop, &mut out);
    for (name, value) in &out {
        assert!(owned(format, name), "{format} wrote {name}");
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "{format} wrote {name}: {value:?}"
        );
    }
    let back = match format.extract(&out) {
        Ok(back) => back,
        Err(e) => panic!("{format}: own output rejected ({e}): {out:?}\nfrom {ctx:?}"),
    };
    match (ctx.trace_id, &back) {
        (Some(t), Some(b)) => {
            let why = || format!("{format}: {out:?}\nfrom {ctx:?}\nback {b:?}");
            assert_eq!(b.trace_id, Some(carried(format, t)), "{}", why());
            assert_eq!(b.parent_id, Some(hop.span_id), "{}", why());
            if ctx.sampling != Sampling::Deferred || carries_deferred(format) {
                assert_eq!(b.sampling, ctx.sampling, "{}", why());
            }
            if carries_debug(format) {
                assert_eq!(b.debug, ctx.debug, "{}", why());
            }
            check_originals(format, &ctx, b, t);
        }
        (Some(_), None) => panic!("{format}: nothing extracted from {out:?}\nfrom {ctx:?}"),
        (None, Some(b)) => assert_eq!(b.trace_id, None, "{format}: {out:?}"),
        (None, None) => {}
    }
    let writes_baggage = match baggage_support(format) {
        Some(without_trace) => ctx.trace_id.is_some() || without_trace,
        None => false,
    };
    if writes_baggage && injected.baggage_dropped == 0 {
        let got = back.map(|b| b.baggage).unwrap_or_default();
        assert_eq!(got, ctx.baggage, "{format}: baggage through {out:?}");
    }
    check_other_formats(format, &ctx);
    if let Some(t) = ctx.trace_id {
        check_w3c_hop(format, &ctx, t);
    }
}

/// The context injected in every other format reads back there with the same trace id
/// (as far as that format carries it) and the hop's span as parent.
fn check_other_formats(from: Format, ctx: &TraceContext) {
    let hop = hop();
    for to in Format::ALL.into_iter().filter(|&f| f != from) {
        let mut out = HeaderMap::new();
        to.inject(ctx, &hop, &mut out);
        let back = match to.extract(&out) {
            Ok(back) => back,
            Err(e) => panic!("{from} -> {to}: rejected ({e}): {out:?}\nfrom {ctx:?}"),
        };
        let Some(t) = ctx.trace_id else {
            assert!(back.is_none_or(|b| b.trace_id.is_none()), "{from} -> {to}");
            continue;
        };
        // Baggage carries no trace; Datadog cannot write a zero low half (datadog.rs).
        if to == Format::Baggage || (to == Format::Datadog && t.low64() == 0) {
            assert!(back.is_none_or(|b| b.trace_id.is_none()), "{from} -> {to}");
            continue;
        }
        let why = || format!("{from} -> {to}: {out:?}\nfrom {ctx:?}");
        let b = back.unwrap_or_else(|| panic!("{}: nothing extracted", why()));
        assert_eq!(b.trace_id, Some(carried(to, t)), "{}", why());
        assert_eq!(b.parent_id, Some(hop.span_id), "{}", why());
    }
}

/// SkyWalking and EagleEye ids the model cannot hold survive a W3C-only hop (the `tb`
/// tracestate member, `mediate::carry`), while they fit in it: the W3C codec drops a member
/// over 256 characters.
fn check_w3c_hop(format: Format, ctx: &TraceContext, t: TraceId) {
    let short = match format {
        Format::SkyWalking => ctx
            .originals
            .skywalking
            .as_deref()
            .is_some_and(|sw| sw.trace_id.len() <= 150),
        Format::EagleEye => ctx
            .originals
            .eagleeye
            .as_deref()
            .is_some_and(|ee| ee.rpc_id.len() <= 100),
        _ => return,
    };
    let hop = hop();
    let mut w3c = HeaderMap::new();
    carry::inject(Format::TraceContext, ctx, &hop, &mut w3c);
    let mid = match carry::extract(Format::TraceContext, &w3c) {
        Ok(Some(mid)) => mid,
        other => panic!("{format} -> w3c: {other:?} from {w3c:?}"),
    };
    assert_eq!(mid.trace_id, Some(t), "{format} -> w3c: {w3c:?}");
    let mut out = HeaderMap::new();
    format.inject(&mid, &hop, &mut out);
    let back = match format.extract(&out) {
        Ok(Some(back)) => back,
        other => panic!("{format} -> w3c -> {format}: {other:?} from {out:?}"),
    };
    assert_eq!(back.trace_id, Some(t), "w3c -> {format}: {out:?}");
    if !short {
        return;
    }
    let why = || format!("{format} -> {w3c:?} -> {out:?}");
    match format {
        Format::SkyWalking => {
            let (sw, b) = (
                ctx.originals.skywalking.as_deref(),
                back.originals.skywalking.as_deref(),
            );
            assert_eq!(b.map(|b| &b.trace_id), sw.map(|s| &s.trace_id), "{}", why());
        }
        Format::EagleEye => {
            let (Some(ee), Some(b)) = (
                ctx.originals.eagleeye.as_deref(),
                back.originals.eagleeye.as_deref(),
            ) else {
                panic!("{}: originals lost", why());
            };
            assert_eq!(b.trace_id, ee.trace_id, "{}", why());
            // A's call 1 went over W3C; B's call 1 is its child.
            let a_call = ee.child_rpc_id(hop.call_index);
            assert_eq!(
                b.rpc_id,
                format!("{a_call}.{}", hop.call_index),
                "{}",
                why()
            );
        }
        _ => {}
    }
}

/// The native fields a format re-emits from its own originals.
fn check_originals(format: Format, ctx: &TraceContext, back: &TraceContext, t: TraceId) {
    match format {
        Format::SkyWalking => {
            let (Some(sw), Some(b)) = (
                ctx.originals.skywalking.as_deref(),
                back.originals.skywalking.as_deref(),
            ) else {
                panic!("skywalking: originals lost: {back:?}");
            };
            // The original string, unless it was too long to re-send.
            let hex = t.to_string();
            assert!(
                b.trace_id == sw.trace_id || b.trace_id == hex,
                "skywalking: trace id {:?} from {:?}",
                b.trace_id,
                sw.trace_id
            );
            assert_eq!(b.extension, sw.extension, "skywalking: sw8-x");
        }
        Format::EagleEye => {
            let (Some(ee), Some(b)) = (
                ctx.originals.eagleeye.as_deref(),
                back.originals.eagleeye.as_deref(),
            ) else {
                panic!("eagleeye: originals lost: {back:?}");
            };
            assert_eq!(b.trace_id, ee.trace_id, "eagleeye: TraceID");
            let child = ee.child_rpc_id(1);
            let want = if child.len() <= eagleeye::MAX_RPC_ID_LEN {
                child
            } else {
                ee.rpc_id.clone()
            };
            assert_eq!(b.rpc_id, want, "eagleeye: RpcID");
        }
        Format::XRay => {
            assert_eq!(back.originals.xray, ctx.originals.xray, "xray: extra parts");
        }
        Format::TraceContext => {
            assert_eq!(back.random, ctx.random, "tracecontext: random flag");
        }
        _ => {}
    }
}

/// The value as text, when it is UTF-8 (obs-text that is not UTF-8 cannot reach a
/// `&str` decoder).
fn text(v: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(v.as_bytes()).ok()
}

/// The first value of `name` among the lines, as text.
fn first<'a>(lines: &'a [(HeaderName, HeaderValue)], name: &HeaderName) -> Option<&'a str> {
    lines
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| text(v))
}

/// The `ot` (OpenTelemetry sampling) and `dd` (Datadog) tracestate members: the decoders
/// never panic, a threshold read writes back to itself, and rewriting `th` keeps a valid
/// value valid.
fn check_vendor_member(key: &str, value: &str) {
    use tracebridge::codec::{dd_member, ot_member};
    match key {
        "ot" => {
            if let Ok(v) = ot_member::decode(value) {
                if let Some(th) = v.th {
                    let mut buf = [0u8; 14];
                    let again = th.encode(&mut buf).map(str::to_owned);
                    let back = again.as_deref().map(ot_member::Threshold::decode);
                    assert_eq!(back, Some(Ok(th)), "{value}");
                }
                let rewritten = ot_member::with_threshold(value, None);
                assert!(
                    rewritten.is_empty() || ot_member::decode(&rewritten).is_ok(),
                    "{value} -> {rewritten}"
                );
            }
        }
        "dd" => {
            let _ = dd_member::decode(value);
        }
        _ => {}
    }
}

/// The string-level decoders of `format` over every value, with their round trips.
pub fn check_strings(format: Format, lines: &[(HeaderName, HeaderValue)], headers: &HeaderMap) {
    let values = || lines.iter().filter_map(|(_, v)| text(v));
    match format {
        Format::TraceContext => {
            for s in values() {
                if let Ok(w) = tracecontext::decode(s) {
                    assert_eq!(tracecontext::decode(&tracecontext::encode(&w)), Ok(w));
                }
                if let Ok(ts) = tracecontext::decode_tracestate(s) {
                    let again = tracecontext::encode_tracestate(&ts);
                    assert_eq!(
                        tracecontext::decode_tracestate(&again),
                        Ok(ts.clone()),
                        "{again}"
                    );
                    for (k, v) in &ts {
                        check_vendor_member(k, v);
                    }
                }
                check_vendor_member("ot", s);
                check_vendor_member("dd", s);
            }
        }
        Format::Baggage => {
            for s in values() {
                if let Ok(entries) = baggage::decode(s) {
                    let (again, dropped) = baggage::encode_members(&entries);
                    if dropped == 0 {
                        assert_eq!(baggage::decode(&again), Ok(entries), "{again}");
                    }
                }
            }
        }
        Format::B3 => {
            for s in values() {
                if let Ok(w) = b3::decode(s) {
                    assert_eq!(b3::decode(&b3::encode(&w)), Ok(w));
                }
            }
        }
        Format::B3Multi => {
            let f = b3multi::Fields {
                trace_id: first(lines, &b3multi::X_B3_TRACEID),
                span_id: first(lines, &b3multi::X_B3_SPANID),
                parent_span_id: first(lines, &b3multi::X_B3_PARENTSPANID),
                sampled: first(lines, &b3multi::X_B3_SAMPLED),
                flags: first(lines, &b3multi::X_B3_FLAGS),
            };
            if let Ok(w) = b3multi::decode(&f) {
                assert_eq!(b3multi::decode(&b3multi::encode(&w).fields()), Ok(w));
            }
        }
        Format::Jaeger => {
            for s in values() {
                if let Ok(w) = jaeger::decode(s) {
                    let again = jaeger::encode(&w);
                    assert_eq!(jaeger::decode(&again), Ok(w), "{again}");
                }
                jaeger::decode_baggage(s, &mut Vec::new());
            }
        }
        Format::OtTrace => {
            let f = ottrace::Fields {
                trace_id: first(lines, &ottrace::OT_TRACER_TRACEID),
                span_id: first(lines, &ottrace::OT_TRACER_SPANID),
                sampled: first(lines, &ottrace::OT_TRACER_SAMPLED),
            };
            if let Ok(w) = ottrace::decode(&f) {
                assert_eq!(ottrace::decode(&ottrace::encode(&w).fields()), Ok(w));
            }
        }
        Format::XRay => {
            for s in values() {
                if let Ok(w) = xray::decode(s) {
                    let again = xray::encode(&w);
                    assert_eq!(xray::decode(&again), Ok(w), "{again}");
                }
            }
        }
        Format::Datadog => {
            let f = datadog::Fields {
                trace_id: first(lines, &datadog::X_DATADOG_TRACE_ID),
                parent_id: first(lines, &datadog::X_DATADOG_PARENT_ID),
                sampling_priority: first(lines, &datadog::X_DATADOG_SAMPLING_PRIORITY),
                origin: first(lines, &datadog::X_DATADOG_ORIGIN),
                tags: first(lines, &datadog::X_DATADOG_TAGS),
            };
            if let Ok(Some(w)) = datadog::decode(&f) {
                let again = datadog::encode(&w);
                assert_eq!(datadog::decode(&again.fields()), Ok(Some(w)), "{again:?}");
            }
            for s in values() {
                let tags = datadog::decode_tags(s);
                if let Some(again) = datadog::encode_tags(tags.iter().map(|(k, v)| (&**k, &**v))) {
                    assert_eq!(datadog::decode_tags(&again), tags, "{again}");
                }
            }
        }
        Format::Gcp => {
            for s in values() {
                if let Ok(w) = gcp::decode(s) {
                    assert_eq!(gcp::decode(&gcp::encode(&w)), Ok(w));
                }
            }
        }
        Format::SkyWalking => {
            for s in values() {
                if let Ok(w) = skywalking::decode(s) {
                    let again = skywalking::encode(&w);
                    // Canonical padding can push a lenient input over the size limit.
                    if again.len() < skywalking::MAX_LEN {
                        assert_eq!(skywalking::decode(&again), Ok(w), "{again}");
                    }
                }
                let entries = skywalking::decode_correlation(s);
                let (again, dropped) = skywalking::encode_correlation(&entries);
                if dropped == 0 {
                    assert_eq!(skywalking::decode_correlation(&again), entries, "{again}");
                }
            }
        }
        Format::EagleEye => {
            if let Ok(Some(w)) = eagleeye::decode(headers) {
                let mut again = HeaderMap::new();
                eagleeye::encode(w.clone(), &mut again);
                assert_eq!(eagleeye::decode(&again), Ok(Some(w)), "{again:?}");
            }
            for s in values() {
                let _ = (eagleeye::check_trace_id(s), eagleeye::check_rpc_id(s));
                let entries = eagleeye::decode_user_data(s);
                let (again, dropped) = eagleeye::encode_user_data(&entries);
                if dropped == 0 {
                    assert_eq!(eagleeye::decode_user_data(&again), entries, "{again}");
                }
            }
        }
        Format::GrpcTraceBin => {
            for (_, v) in lines {
                if let Ok(w) = grpc_trace_bin::decode_bytes(v.as_bytes()) {
                    let (b, n) = grpc_trace_bin::encode_bytes(&w);
                    assert_eq!(grpc_trace_bin::decode_bytes(&b[..n]), Ok(w));
                }
            }
            for s in values() {
                if let Ok(w) = grpc_trace_bin::decode(s) {
                    let again = grpc_trace_bin::encode(&w);
                    assert_eq!(grpc_trace_bin::decode(&again), Ok(w), "{again}");
                }
            }
        }
        Format::Instana => {
            let f = instana::Fields {
                trace_id: first(lines, &instana::X_INSTANA_T),
                span_id: first(lines, &instana::X_INSTANA_S),
                level: first(lines, &instana::X_INSTANA_L),
            };
            if let Ok(Some(w)) = instana::decode(&f) {
                let again = instana::encode(&w);
                assert_eq!(instana::decode(&again.fields()), Ok(Some(w)), "{again:?}");
            }
            for s in values() {
                if let Ok(l) = instana::decode_level(s) {
                    let again = instana::encode_level(&l);
                    assert_eq!(instana::decode_level(&again), Ok(l), "{again}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn inputs(dir: &str) -> Vec<(Format, std::path::PathBuf)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out = Vec::new();
        for target in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if !target.path().is_dir() {
                continue; // regressions/README.md
            }
            let name = target.file_name().to_string_lossy().into_owned();
            if name == HTTP1 {
                continue; // not a format: replayed by http1_seeds_pass
            }
            let format: Format = name.parse().unwrap_or_else(|_| panic!("{dir}/{name}"));
            for file in std::fs::read_dir(target.path()).unwrap().flatten() {
                // Inputs libFuzzer added (SHA-1 names, not committed) are not replayed.
                if file.file_name().len() == 40 {
                    continue;
                }
                out.push((format, file.path()));
            }
        }
        out
    }

    /// Every committed seed and regression input passes the harness, without the fuzzer:
    /// `cargo test` in this directory (stable, no sanitizer).
    #[test]
    fn seeds_and_regressions_pass() {
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            for (format, path) in inputs(dir) {
                run(format, &std::fs::read(&path).unwrap());
                n += 1;
            }
        }
        assert!(n >= 232, "{n} inputs");
    }

    /// The `http1_request` target's directory under `corpus/` and `regressions/`.
    const HTTP1: &str = "http1_request";

    /// Every committed `http1_request` seed and regression passes its harness.
    #[test]
    fn http1_seeds_pass() {
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(HTTP1);
            for file in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                if file.file_name().len() == 40 {
                    continue;
                }
                run_http1(&std::fs::read(file.path()).unwrap());
                n += 1;
            }
        }
        assert!(n >= 60, "{n} inputs");
    }

    /// The harness reads the seeds as intended: each target's `golden` seed extracts a
    /// context with a trace id (only baggage for `baggage`).
    #[test]
    fn golden_seeds_extract() {
        for format in Format::ALL {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("corpus")
                .join(format.as_str())
                .join("golden");
            let lines = parse_lines(format, &std::fs::read(&path).unwrap());
            let mut headers = HeaderMap::new();
            for (name, value) in lines {
                headers.append(name, value);
            }
            let ctx = format.extract(&headers).unwrap().unwrap();
            assert_eq!(
                ctx.trace_id.is_some(),
                format != Format::Baggage,
                "{format}"
            );
        }
    }

    #[test]
    fn digit_names_pick_the_format_own_headers() {
        let lines = parse_lines(
            Format::Jaeger,
            b"0: a\n3:b\nX-Other : c\nbad name: d\nnocolon\n",
        );
        let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["uber-trace-id", "uberctx-k", "x-other"]);
        assert_eq!(lines[1].1, "b");
        // Controls make no header value.
        assert!(parse_lines(Format::B3, b"b3: a\x00b\n").is_empty());
    }
}
