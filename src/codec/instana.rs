//! Instana: `X-INSTANA-T`, `X-INSTANA-S`, `X-INSTANA-L`. Not in wire-formats.md; the rules
//! come from Instana's own tracers and the OpenTelemetry propagator Instana maintains:
//!
//! - [GO-SENSOR] `instana/go-sensor` `propagation.go` (`extractTraceContext`, `parseLevel`,
//!   `injectTraceContext`), `util.go` (`ParseID`, `ParseLongID`, `FormatID`),
//!   `propagation_test.go`;
//! - [NODE] `instana/nodejs` `packages/core/src/tracing/tracingHeaders.js` (`fromHeaders`,
//!   `readLevelAndCorrelation`) and `instrumentation/protocols/httpClient.js`;
//! - [OTEL-JS] `open-telemetry/opentelemetry-js-contrib`
//!   `propagators/opentelemetry-propagator-instana/{README.md,src/InstanaPropagator.ts,test/}`,
//!   which points to IBM's "Tracing headers" documentation
//!   (<https://www.ibm.com/docs/en/obi/current?topic=monitoring-traces#tracing-headers>).
//!
//! ```text
//! X-INSTANA-T = 1*32HEXDIG   ; trace id, 16 or 32 digits in practice, shorter ones left-padded
//! X-INSTANA-S = 1*16HEXDIG   ; the caller's span id, left-padded
//! X-INSTANA-L = level [ OWS "," OWS "correlationType=" type OWS ";" OWS "correlationId=" id ]
//! level       = "0" / "1"    ; 0 = suppressed (not traced), 1 = traced
//! ```
//!
//! Rules and their sources:
//! - Hex digits of either case are accepted: [GO-SENSOR] parses with `strconv.ParseUint(s, 16, 64)`,
//!   [OTEL-JS] validates with the case-insensitive OTel API regexes. Ids are written lowercase.
//! - T is 1 to 32 digits and S 1 to 16 digits, left-padded ([OTEL-JS] `padStart`, [GO-SENSOR]
//!   parses any shorter id). Longer values are rejected, as [OTEL-JS] does; [GO-SENSOR] would
//!   also accept extra leading zeros. An all-zero or empty id is rejected.
//! - A missing or empty `X-INSTANA-L` means level 1: Instana traces unless told not to
//!   ([NODE] `isSuppressed`, [OTEL-JS] `level || '1'`, [GO-SENSOR] `Suppressed` defaults to
//!   false). So T/S without L extract as [`Sampling::Sampled`], not deferred: it is Instana's
//!   own decision, not the absence of one.
//! - `X-INSTANA-L` must match the grammar above; [GO-SENSOR] and [NODE] log and ignore a
//!   malformed level (tracing on), this codec rejects the headers (`Err(Sampling)` for a bad
//!   level, `Err(Malformed)` for a bad correlation part). Type and id are non-empty, without
//!   `,`, `;` or white space, in that order ([GO-SENSOR]'s state machine).
//! - `X-INSTANA-L: 0` suppresses: [`Sampling::NotSampled`], the correlation part is dropped
//!   ([NODE] and [GO-SENSOR]). With both T and S the trace is kept (as [GO-SENSOR] does; [NODE]
//!   ignores them) so the trace id survives an unsampled hop. `X-INSTANA-L: 0` alone, or with
//!   only one of T/S, is a decision-only context (`trace_id: None`), as [OTEL-JS] extracts it.
//! - With level 1 a correlation part (`correlationType=web;correlationId=…`, set by Instana's
//!   website monitoring) makes Instana start a new trace: T/S are ignored ([NODE] "force
//!   starting a new span", [GO-SENSOR] "reset the trace IDs if a correlation ID has been
//!   provided"). This codec still validates them, then returns a decision-only Sampled
//!   context carrying the correlation in [`Instana::correlation`] as
//!   `correlationType=<type>;correlationId=<id>`, for the gateway span. It is never
//!   propagated ([NODE]: "will not be propagated downstream").
//! - `X-INSTANA-L: 1` alone is likewise a decision-only Sampled context.
//! - With level 1 and no correlation, T and S go together: one without the other is
//!   `Err(Missing)` ([GO-SENSOR] `ErrSpanContextCorrupted`).
//! - Inject writes T (32 digits when the high half is not 0, else 16), S = the gateway span
//!   id and L = `1` / `0`; a deferred decision is written as `0`, since a missing L means
//!   "traced". Instana's tracers send only `X-INSTANA-L: 0` when suppressed; this codec keeps
//!   T/S beside `0` so that the trace id survives (accepted by [GO-SENSOR], ignored by [NODE]).
//! - Not handled: `X-INSTANA-B-*` baggage ([GO-SENSOR] only) and `X-INSTANA-SYNTHETIC`.

use http::{HeaderName, HeaderValue};

use super::text::{hex_any_case, split_once_ascii};
use super::{first, trim_ows, Codec, DecodeError, Format, HeaderSink, HeaderSource, Injected};
use crate::model::{Hop, Instana, Sampling, SpanId, TraceContext, TraceId};

const T: &str = "x-instana-t";
const S: &str = "x-instana-s";
const L: &str = "x-instana-l";

/// `X-INSTANA-T`: the trace id.
pub static X_INSTANA_T: HeaderName = HeaderName::from_static(T);
/// `X-INSTANA-S`: the caller's span id.
pub static X_INSTANA_S: HeaderName = HeaderName::from_static(S);
/// `X-INSTANA-L`: the level and the optional website-monitoring correlation.
pub static X_INSTANA_L: HeaderName = HeaderName::from_static(L);

static HEADERS: [HeaderName; 3] = [
    HeaderName::from_static(T),
    HeaderName::from_static(S),
    HeaderName::from_static(L),
];

const CORRELATION_TYPE: &str = "correlationType=";
const CORRELATION_ID: &str = "correlationId=";

/// The raw `X-INSTANA-*` values of one request, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields<'a> {
    /// `X-INSTANA-T`.
    pub trace_id: Option<&'a str>,
    /// `X-INSTANA-S`.
    pub span_id: Option<&'a str>,
    /// `X-INSTANA-L`.
    pub level: Option<&'a str>,
}

/// The decoded headers, each as present on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanaHeaders {
    /// `X-INSTANA-T`.
    pub trace_id: Option<TraceId>,
    /// `X-INSTANA-S`.
    pub span_id: Option<SpanId>,
    /// `X-INSTANA-L`; `None` when absent or empty.
    pub level: Option<Level>,
}

/// One `X-INSTANA-L` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// `1` = traced, `0` = suppressed.
    pub traced: bool,
    /// The website-monitoring correlation after the `,`.
    pub correlation: Option<Correlation>,
}

/// `correlationType=<kind>;correlationId=<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// `web`, `mobile`, ...
    pub kind: String,
    /// The beacon's id.
    pub id: String,
}

impl Correlation {
    fn to_wire(&self) -> String {
        let mut out = String::with_capacity(
            CORRELATION_TYPE.len() + CORRELATION_ID.len() + 1 + self.kind.len() + self.id.len(),
        );
        out.push_str(CORRELATION_TYPE);
        out.push_str(&self.kind);
        out.push(';');
        out.push_str(CORRELATION_ID);
        out.push_str(&self.id);
        out
    }
}

/// The header values [`encode`] produces; `None` = header not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `X-INSTANA-T`.
    pub trace_id: Option<String>,
    /// `X-INSTANA-S`.
    pub span_id: Option<String>,
    /// `X-INSTANA-L`.
    pub level: Option<String>,
}

impl Encoded {
    /// The values as [`decode`] reads them.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            trace_id: self.trace_id.as_deref(),
            span_id: self.span_id.as_deref(),
            level: self.level.as_deref(),
        }
    }
}

/// Parses the headers; `Ok(None)` when none is present (an empty `X-INSTANA-L` counts as
/// absent).
pub fn decode(f: &Fields<'_>) -> Result<Option<InstanaHeaders>, DecodeError> {
    let level = f.level.filter(|l| !l.is_empty());
    if f.trace_id.is_none() && f.span_id.is_none() && level.is_none() {
        return Ok(None);
    }
    let trace_id = match f.trace_id {
        None => None,
        Some(t) => Some(
            TraceId::new(hex_any_case(t, 32).ok_or(DecodeError::TraceId)?)
                .ok_or(DecodeError::ZeroId)?,
        ),
    };
    let span_id = match f.span_id {
        None => None,
        Some(s) => {
            let v = hex_any_case(s, 16).ok_or(DecodeError::SpanId)?;
            Some(SpanId::new(v as u64).ok_or(DecodeError::ZeroId)?)
        }
    };
    Ok(Some(InstanaHeaders {
        trace_id,
        span_id,
        level: level.map(decode_level).transpose()?,
    }))
}

/// Writes the header values.
pub fn encode(h: &InstanaHeaders) -> Encoded {
    Encoded {
        trace_id: h.trace_id.map(|t| ascii(trace_hex(&t.to_hex(), t))),
        span_id: h.span_id.map(|s| ascii(&s.to_hex())),
        level: h.level.as_ref().map(encode_level),
    }
}

/// Parses one `X-INSTANA-L` value.
pub fn decode_level(s: &str) -> Result<Level, DecodeError> {
    let (level, correlation) = match split_once_ascii(s, b',') {
        None => (s, None),
        Some((level, rest)) => (trim_ows(level), Some(decode_correlation(trim_ows(rest))?)),
    };
    let traced = match level {
        "1" => true,
        "0" => false,
        _ => return Err(DecodeError::Sampling),
    };
    Ok(Level {
        traced,
        correlation,
    })
}

/// Writes one `X-INSTANA-L` value.
pub fn encode_level(l: &Level) -> String {
    let digit = if l.traced { "1" } else { "0" };
    match &l.correlation {
        None => digit.to_string(),
        Some(c) => [digit, ",", &c.to_wire()].concat(),
    }
}

fn decode_correlation(s: &str) -> Result<Correlation, DecodeError> {
    let (kind, id) = split_once_ascii(s, b';').ok_or(DecodeError::Malformed)?;
    let kind = trim_ows(kind)
        .strip_prefix(CORRELATION_TYPE)
        .ok_or(DecodeError::Malformed)?;
    let id = trim_ows(id)
        .strip_prefix(CORRELATION_ID)
        .ok_or(DecodeError::Malformed)?;
    if !valid_token(kind) || !valid_token(id) {
        return Err(DecodeError::Malformed);
    }
    Ok(Correlation {
        kind: kind.to_string(),
        id: id.to_string(),
    })
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b';')
}

/// The 16 low digits for a 64-bit id, all 32 otherwise.
fn trace_hex(hex: &[u8; 32], t: TraceId) -> &[u8] {
    if t.high64() == 0 {
        hex.get(16..).unwrap_or(hex)
    } else {
        hex
    }
}

fn ascii(digits: &[u8]) -> String {
    std::str::from_utf8(digits).unwrap_or_default().to_string()
}

/// Wire → model, applying Instana's rules (see the module doc).
pub fn to_context(h: InstanaHeaders) -> Result<TraceContext, DecodeError> {
    let (traced, correlation) = match h.level {
        None => (true, None),
        Some(l) => (l.traced, l.correlation.filter(|_| l.traced)),
    };
    let (trace_id, parent_id) = if correlation.is_some() {
        (None, None)
    } else {
        match (h.trace_id, h.span_id) {
            (Some(t), Some(s)) => (Some(t), Some(s)),
            (None, None) => (None, None),
            _ if !traced => (None, None),
            _ => return Err(DecodeError::Missing),
        }
    };
    let mut ctx = TraceContext {
        trace_id,
        parent_id,
        sampling: if traced {
            Sampling::Sampled
        } else {
            Sampling::NotSampled
        },
        ..TraceContext::default()
    };
    if let Some(c) = correlation {
        ctx.originals.instana = Some(Box::new(Instana {
            correlation: Some(c.to_wire()),
        }));
    }
    Ok(ctx)
}

/// The Instana codec.
pub struct InstanaCodec;

impl Codec for InstanaCodec {
    const FORMAT: Format = Format::Instana;

    fn headers() -> &'static [HeaderName] {
        &HEADERS
    }

    fn extract(headers: &impl HeaderSource) -> Result<Option<TraceContext>, DecodeError> {
        let fields = Fields {
            trace_id: first(headers, &X_INSTANA_T)?,
            span_id: first(headers, &X_INSTANA_S)?,
            level: first(headers, &X_INSTANA_L)?,
        };
        decode(&fields)?.map(to_context).transpose()
    }

    fn inject(ctx: &TraceContext, hop: &Hop<'_>, out: &mut dyn HeaderSink) -> Injected {
        let Some(trace_id) = ctx.trace_id else {
            return Injected::default();
        };
        let hex = trace_id.to_hex();
        if let Ok(v) = HeaderValue::from_bytes(trace_hex(&hex, trace_id)) {
            out.set(X_INSTANA_T.clone(), v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&hop.span_id.to_hex()) {
            out.set(X_INSTANA_S.clone(), v);
        }
        let level = if ctx.sampling == Sampling::Sampled {
            "1"
        } else {
            "0"
        };
        out.set(X_INSTANA_L.clone(), HeaderValue::from_static(level));
        Injected::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::{hop_at, map, raw_map};
    use http::HeaderMap;
    use proptest::prelude::*;

    fn hop() -> Hop<'static> {
        hop_at(0xe457_b5a2_e4d8_6bd1, 1)
    }

    struct Expect {
        trace: Option<&'static str>,
        parent: Option<&'static str>,
        sampled: bool,
        correlation: Option<&'static str>,
    }

    const fn ok(
        trace: Option<&'static str>,
        parent: Option<&'static str>,
        sampled: bool,
    ) -> Result<Expect, &'static str> {
        Ok(Expect {
            trace,
            parent,
            sampled,
            correlation: None,
        })
    }

    /// (id, headers, expected context or the reason it is invalid, source).
    type Row = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Result<Expect, &'static str>,
        &'static str,
    );

    /// The instana vectors, written from the sources in the module doc.
    const VECTORS: &[Row] = &[
        ("instana-001", &[("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "1")],
            ok(Some("80f198ee56343ba864fe8b2a57d3eff7"), Some("e457b5a2e4d86bd1"), true),
            "OTEL-JS test 'extracts context with trace ID, span ID, and sampled=true'"),
        ("instana-002", &[("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "0")],
            ok(Some("80f198ee56343ba864fe8b2a57d3eff7"), Some("e457b5a2e4d86bd1"), false),
            "OTEL-JS 'sampled=false'; GO-SENSOR 'tracing disabled' keeps the ids"),
        ("instana-003", &[("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "e457b5a2e4d86bd1")],
            ok(Some("80f198ee56343ba864fe8b2a57d3eff7"), Some("e457b5a2e4d86bd1"), true),
            "OTEL-JS 'assumes level=1 when level header is missing'"),
        ("instana-004", &[("X-INSTANA-L", "0")], ok(None, None, false),
            "OTEL-JS 'extracts sampled=false from X-INSTANA-L=0, even if trace ID and span ID are missing'; GO-SENSOR 'tracing disabled, no trace context'"),
        ("instana-005", &[("X-INSTANA-T", "4aaba1a52cf8ee09"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "1")],
            ok(Some("00000000000000004aaba1a52cf8ee09"), Some("e457b5a2e4d86bd1"), true), "OTEL-JS 'left-pads a 64-bit trace ID'"),
        ("instana-006", &[("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "7b5a2e4d86bd1"), ("X-INSTANA-L", "1")],
            ok(Some("80f198ee56343ba864fe8b2a57d3eff7"), Some("0007b5a2e4d86bd1"), true), "OTEL-JS 'left-pads the span ID if necessary'"),
        ("instana-007", &[("x-instana-t", "10000000000001314"), ("X-INSTANA-S", "2435"), ("X-Instana-L", "1")],
            ok(Some("00000000000000010000000000001314"), Some("0000000000002435"), true), "GO-SENSOR TestTracer_Extract_TextMap 'tracing enabled'"),
        ("instana-008", &[("X-Instana-T", "0000000000002435"), ("X-Instana-S", "0000000000003546"), ("X-Instana-L", "1,correlationType=web;correlationId=1234")],
            Ok(Expect { trace: None, parent: None, sampled: true, correlation: Some("correlationType=web;correlationId=1234") }),
            "GO-SENSOR TestTracer_Extract_HTTPHeaders_WithEUMCorrelation: ids reset; NODE ignores X-INSTANA-T/-S"),
        ("instana-009", &[("X-Instana-L", "1,correlationType=web;correlationId=1234")],
            Ok(Expect { trace: None, parent: None, sampled: true, correlation: Some("correlationType=web;correlationId=1234") }),
            "GO-SENSOR 'tracing enabled, no instana headers'"),
        ("instana-010", &[("x-instana-t", "10000000000001314"), ("X-INSTANA-S", "2435"), ("X-Instana-L", "0,correlationType=web;correlationId=1234")],
            ok(Some("00000000000000010000000000001314"), Some("0000000000002435"), false),
            "GO-SENSOR 'tracing disabled, with correlation data': suppressed, correlation dropped"),
        ("instana-011", &[("X-INSTANA-L", "1")], ok(None, None, true), "level only: decision-only context (NODE starts a traced trace)"),
        ("instana-012", &[("X-INSTANA-T", "80F198EE56343BA864FE8B2A57D3EFF7"), ("X-INSTANA-S", "E457B5A2E4D86BD1")],
            ok(Some("80f198ee56343ba864fe8b2a57d3eff7"), Some("e457b5a2e4d86bd1"), true),
            "upper-case hex: GO-SENSOR strconv.ParseUint, OTEL-JS /i regex"),
        ("instana-013", &[("X-INSTANA-L", "1 , correlationType=web ; correlationId=abc")],
            Ok(Expect { trace: None, parent: None, sampled: true, correlation: Some("correlationType=web;correlationId=abc") }),
            "GO-SENSOR parseLevel skips OWS around ',' and ';'"),
        ("instana-014", &[("X-INSTANA-T", "1314"), ("X-INSTANA-L", "0")], ok(None, None, false),
            "L=0 with a lone id: decision only (NODE ignores T/S when suppressed)"),
        ("instana-015", &[("X-INSTANA-T", "ghjklmnopqrstuvwxyz0123456789abc"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "1")],
            Err("malformed trace id (OTEL-JS 'handles malformed trace ID', GO-SENSOR 'malformed trace id')"), ""),
        ("instana-016", &[("X-INSTANA-T", "0f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "ghjklmnopqrstuv"), ("X-INSTANA-L", "1")],
            Err("malformed span id (OTEL-JS 'handles malformed span ID')"), ""),
        ("instana-017", &[("X-INSTANA-T", "00000000000000000000000000000000"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "1")],
            Err("all-zero trace id (OTEL-JS 'handles invalid trace ID')"), ""),
        ("instana-018", &[("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "0000000000000000"), ("X-INSTANA-L", "1")],
            Err("all-zero span id (OTEL-JS 'handles invalid span ID')"), ""),
        ("instana-019", &[("X-INSTANA-S", "1314"), ("X-INSTANA-L", "1")], Err("span id without trace id (GO-SENSOR 'missing trace id')"), ""),
        ("instana-020", &[("X-INSTANA-T", "1314"), ("X-INSTANA-L", "1")], Err("trace id without span id (GO-SENSOR 'missing span id')"), ""),
        ("instana-021", &[("X-INSTANA-T", "1314")], Err("trace id without span id, level defaults to 1"), ""),
        ("instana-022", &[("X-INSTANA-T", "080f198ee56343ba864fe8b2a57d3eff7"), ("X-INSTANA-S", "e457b5a2e4d86bd1")],
            Err("33 hex digits: over 128 bits (OTEL-JS rejects; GO-SENSOR would accept leading zeros)"), ""),
        ("instana-023", &[("X-INSTANA-T", "80f198ee56343ba8"), ("X-INSTANA-S", "0e457b5a2e4d86bd1")], Err("17 hex digits span id"), ""),
        ("instana-024", &[("X-INSTANA-T", "80f198ee56343ba8"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "2")],
            Err("level outside 0/1 (GO-SENSOR and NODE ignore it and trace)"), ""),
        ("instana-025", &[("X-INSTANA-T", "80f198ee56343ba8"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "1,foo")],
            Err("correlation part without correlationType= (GO-SENSOR errMalformedHeader)"), ""),
        ("instana-026", &[("X-INSTANA-L", "1,correlationId=1234;correlationType=web")], Err("correlation keys out of order (GO-SENSOR)"), ""),
        ("instana-027", &[("X-INSTANA-L", "1,correlationType=web;correlationId=")], Err("empty correlation id"), ""),
        ("instana-028", &[("X-INSTANA-L", "1,correlationType=web")], Err("correlation id missing"), ""),
        ("instana-029", &[("X-INSTANA-T", ""), ("X-INSTANA-S", "e457b5a2e4d86bd1")], Err("empty trace id (GO-SENSOR ParseUint error)"), ""),
        ("instana-030", &[("X-INSTANA-T", "+80f198ee56343ba8"), ("X-INSTANA-S", "e457b5a2e4d86bd1")], Err("sign is not a hex digit"), ""),
        ("instana-031", &[("X-INSTANA-T", "0x80f198ee56343ba8"), ("X-INSTANA-S", "e457b5a2e4d86bd1")], Err("0x prefix is not hex"), ""),
    ];

    #[test]
    fn vectors() {
        for (id, headers, expected, source) in VECTORS {
            let got = InstanaCodec::extract(&map(headers));
            match expected {
                Ok(e) => {
                    let ctx = got
                        .unwrap_or_else(|err| panic!("{id} ({source}): {err}"))
                        .unwrap();
                    assert_eq!(
                        ctx.trace_id.map(|t| t.to_string()).as_deref(),
                        e.trace,
                        "{id}"
                    );
                    assert_eq!(
                        ctx.parent_id.map(|p| p.to_string()).as_deref(),
                        e.parent,
                        "{id}"
                    );
                    assert_eq!(ctx.sampling.decision(), Some(e.sampled), "{id}");
                    let correlation = ctx
                        .originals
                        .instana
                        .as_ref()
                        .and_then(|i| i.correlation.as_deref());
                    assert_eq!(correlation, e.correlation, "{id}");
                    assert!(!ctx.debug && !ctx.random, "{id}");
                }
                Err(reason) => assert!(got.is_err(), "{id} must be rejected: {reason}"),
            }
        }
    }

    #[test]
    fn reasons() {
        let reason = |pairs: &[(&str, &str)]| InstanaCodec::extract(&map(pairs)).unwrap_err();
        assert_eq!(
            reason(&[("x-instana-t", "xyz"), ("x-instana-s", "1")]),
            DecodeError::TraceId
        );
        assert_eq!(
            reason(&[("x-instana-t", "1"), ("x-instana-s", "xyz")]),
            DecodeError::SpanId
        );
        assert_eq!(
            reason(&[("x-instana-t", "0"), ("x-instana-s", "1")]),
            DecodeError::ZeroId
        );
        assert_eq!(reason(&[("x-instana-t", "1")]), DecodeError::Missing);
        assert_eq!(reason(&[("x-instana-l", "x")]), DecodeError::Sampling);
        assert_eq!(reason(&[("x-instana-l", "1,x")]), DecodeError::Malformed);
    }

    #[test]
    fn absent_or_empty_level_is_none() {
        assert_eq!(InstanaCodec::extract(&HeaderMap::new()), Ok(None));
        assert_eq!(
            InstanaCodec::extract(&map(&[("x-instana-l", "")])),
            Ok(None)
        );
    }

    #[test]
    fn inject_widths_and_levels() {
        let ctx = |t: u128, sampling| TraceContext {
            trace_id: TraceId::new(t),
            parent_id: SpanId::new(3),
            sampling,
            ..TraceContext::default()
        };
        let cases = [
            (
                0x80f198ee56343ba864fe8b2a57d3eff7,
                Sampling::Sampled,
                "80f198ee56343ba864fe8b2a57d3eff7",
                "1",
            ),
            (
                0x4aaba1a52cf8ee09,
                Sampling::NotSampled,
                "4aaba1a52cf8ee09",
                "0",
            ),
            (
                0x4aaba1a52cf8ee09,
                Sampling::Deferred,
                "4aaba1a52cf8ee09",
                "0",
            ),
        ];
        for (t, sampling, trace, level) in cases {
            let mut out = HeaderMap::new();
            InstanaCodec::inject(&ctx(t, sampling), &hop(), &mut out);
            assert_eq!(out.get("x-instana-t").unwrap(), trace);
            assert_eq!(out.get("x-instana-s").unwrap(), "e457b5a2e4d86bd1");
            assert_eq!(out.get("x-instana-l").unwrap(), level);
        }
    }

    #[test]
    fn correlation_is_never_injected() {
        let mut ctx = InstanaCodec::extract(&map(&[(
            "x-instana-l",
            "1,correlationType=web;correlationId=1234",
        )]))
        .unwrap()
        .unwrap();
        ctx.trace_id = TraceId::new(7);
        let mut out = HeaderMap::new();
        InstanaCodec::inject(&ctx, &hop(), &mut out);
        assert_eq!(out.get("x-instana-l").unwrap(), "1");
    }

    #[test]
    fn inject_without_trace_id_writes_nothing() {
        let mut out = HeaderMap::new();
        InstanaCodec::inject(
            &TraceContext {
                sampling: Sampling::NotSampled,
                ..TraceContext::default()
            },
            &hop(),
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn round_trip_through_headers() {
        for (_, headers, expected, _) in VECTORS {
            let ctx = match expected {
                Ok(e) if e.trace.is_some() => {
                    InstanaCodec::extract(&map(headers)).unwrap().unwrap()
                }
                _ => continue,
            };
            let mut out = HeaderMap::new();
            InstanaCodec::inject(&ctx, &hop(), &mut out);
            let back = InstanaCodec::extract(&out).unwrap().unwrap();
            assert_eq!(back.trace_id, ctx.trace_id);
            assert_eq!(back.parent_id, Some(hop().span_id));
            assert_eq!(back.sampling, ctx.sampling);
        }
    }

    fn arb_headers() -> impl Strategy<Value = InstanaHeaders> {
        let token = "[!-+\\--:<-~]{1,12}";
        let correlation =
            proptest::option::of((token, token).prop_map(|(kind, id)| Correlation { kind, id }));
        let level = proptest::option::of((any::<bool>(), correlation).prop_map(
            |(traced, correlation)| Level {
                traced,
                correlation,
            },
        ));
        (
            proptest::option::of(1u128..),
            proptest::option::of(1u64..),
            level,
        )
            .prop_map(|(t, s, level)| InstanaHeaders {
                trace_id: t.and_then(TraceId::new),
                span_id: s.and_then(SpanId::new),
                level,
            })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(h in arb_headers()) {
            let encoded = encode(&h);
            let expected = if h.trace_id.is_none() && h.span_id.is_none() && h.level.is_none() { None } else { Some(h) };
            prop_assert_eq!(decode(&encoded.fields()), Ok(expected));
        }

        #[test]
        fn decode_never_panics(a in "\\PC*", b in "\\PC*", c in "\\PC*") {
            if let Ok(Some(h)) = decode(&Fields { trace_id: Some(&a), span_id: Some(&b), level: Some(&c) }) {
                let _ = to_context(h);
            }
            let _ = decode_level(&c);
        }

        #[test]
        fn extract_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 3)) {
            let _ = InstanaCodec::extract(&raw_map(HEADERS.iter().zip(&values)));
        }
    }
}
