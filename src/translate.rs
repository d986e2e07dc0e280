//! `tracebridge translate`: convert trace headers between formats offline, to debug a
//! migration. Pure: header lines in, header lines (or JSON) out.
//!
//! With `--config`, [`simulate`] runs one route's policy instead of `--from`/`--to`:
//! its extract order, trust, sampling, inject list and stripping, as the gateway would
//! for a request with these headers (see [`Simulation`]).
//!
//! Extraction is the gateway's own policy ([`crate::mediate::extract`]). No span is
//! made: the output keeps the incoming parent span id, so the translated headers name
//! the same caller span. When the input has a trace id but no parent (an X-Ray header
//! with only `Root=`), the low 64 bits of the trace id stand in for it, so the output
//! stays deterministic.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use crate::codec::{DecodeError, Format};
use crate::config::Snapshot;
use crate::mediate::extract::{extract, Extraction};
use crate::mediate::{self, Policy};
use crate::model::{Hop, Named, Sampling, SpanId, TraceContext, TraceId};

const UNUSED_SPAN: SpanId = match SpanId::new(1) {
    Some(id) => id,
    None => panic!("1 is a valid span id"),
};

/// Why a translation produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A header line is not `name: value`, or not a valid header.
    #[error("line {line}: {message}")]
    Input {
        /// 1-based line (or `-H` argument) number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Headers of some formats were present but invalid, and none was valid.
    #[error("invalid trace context: {}", list(.0))]
    Invalid(Vec<(Format, DecodeError)>),
    /// No trace header of the `--from` formats was present.
    #[error("no trace context found")]
    NotFound,
    /// `--route` names no route, or no route matches `--host` / `--path`.
    #[error("{0}")]
    NoRoute(String),
}

fn list(invalid: &[(Format, DecodeError)]) -> String {
    invalid
        .iter()
        .map(|(f, e)| format!("{f}: {e} ({})", e.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses `name: value` lines (blank lines and `#` comments skipped) into a header map,
/// repeated names appended in order.
pub fn parse_headers<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<HeaderMap, TranslateError> {
    let mut map = HeaderMap::new();
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let err = |message: String| TranslateError::Input {
            line: i + 1,
            message,
        };
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| err(format!("expected `name: value`, got {line:?}")))?;
        let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| err(format!("invalid header name {:?}", name.trim())))?;
        let value = HeaderValue::from_str(value.trim_start())
            .map_err(|_| err(format!("invalid header value for {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Parses a comma list of format ids; `all` means every format in default order. A
/// format named twice keeps its first position (`b3,all` = b3 first, then the rest), so
/// it is extracted once and reported once.
pub fn parse_formats(list: &str) -> Result<Vec<Format>, String> {
    let mut out: Vec<Format> = Vec::new();
    let mut add = |f: Format| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.eq_ignore_ascii_case("all") {
            Format::ALL.into_iter().for_each(&mut add);
        } else {
            add(item.parse::<Format>().map_err(|e| e.to_string())?);
        }
    }
    if out.is_empty() {
        return Err("empty format list".to_string());
    }
    Ok(out)
}

/// The result of a translation.
#[derive(Debug, Clone)]
pub struct Translation {
    /// Which format the context came from.
    pub format: Format,
    /// The extracted context.
    pub context: TraceContext,
    /// Valid contexts of other formats with a different trace id.
    pub links: Vec<(Format, TraceContext)>,
    /// The headers written, in `--to` order.
    pub headers: HeaderMap,
}

/// Extracts with `from`, injects every format of `to`.
pub fn translate(
    input: &HeaderMap,
    from: &[Format],
    to: &[Format],
) -> Result<Translation, TranslateError> {
    let Extraction {
        primary,
        links,
        invalid,
        ..
    } = extract(from, input);
    let Some((format, context)) = primary else {
        return Err(if invalid.is_empty() {
            TranslateError::NotFound
        } else {
            TranslateError::Invalid(invalid)
        });
    };
    // Without any id (a decision or baggage only) the codecs write baggage alone, and
    // the span id is unused.
    let span_id = context
        .parent_id
        .or_else(|| context.trace_id.and_then(|t| SpanId::new(t.low64())))
        .unwrap_or(UNUSED_SPAN);
    let hop = Hop {
        span_id,
        service: "tracebridge",
        instance: "translate",
        endpoint: "translate",
        peer_address: "-",
        call_index: 1,
    };
    let mut headers = HeaderMap::new();
    for f in to {
        mediate::carry::inject(*f, &context, &hop, &mut headers);
    }
    Ok(Translation {
        format,
        context,
        links,
        headers,
    })
}

/// Which route of a config to simulate: by name, or the one a request for `host` and
/// `path` (default `/`) with these headers would match (method GET).
#[derive(Debug, Clone, Default)]
pub struct RouteQuery<'a> {
    /// `--route NAME`.
    pub name: Option<&'a str>,
    /// `--host H`.
    pub host: Option<&'a str>,
    /// `--path P`.
    pub path: Option<&'a str>,
}

/// What a route of the config would do with a request carrying the input headers.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The route's name.
    pub route: String,
    /// Its upstream's name.
    pub upstream: String,
    /// The route's effective policy (route over upstream over defaults, after the
    /// OpenTelemetry environment variables).
    pub policy: Policy,
    /// The format the trace was continued from (`None`: a new trace).
    pub continued_from: Option<Format>,
    /// The context that arrived, whatever trust made of it.
    pub incoming: Option<Format>,
    /// The trace the upstream would see.
    pub trace_id: TraceId,
    /// The parent span id the upstream would see: a fresh one for the gateway's span,
    /// or the incoming parent with `span = false`.
    pub span_id: SpanId,
    /// The sampling decision carried (the process-wide rate limit is not simulated).
    pub sampled: bool,
    /// Span links: conflicting formats, and the incoming context on `restart`.
    pub links: Vec<(Format, TraceContext)>,
    /// Invalid headers, treated as absent.
    pub invalid: Vec<(Format, DecodeError)>,
    /// The formats written, in order (`preserve` resolved).
    pub formats: Vec<Format>,
    /// The input headers as the upstream would receive them: stale trace headers
    /// stripped, the formats written.
    pub headers: HeaderMap,
}

impl RouteQuery<'_> {
    /// The index of the route in `snapshot`.
    pub fn find(&self, snapshot: &Snapshot, input: &HeaderMap) -> Result<usize, TranslateError> {
        let router = &snapshot.router;
        if let Some(name) = self.name {
            return (0..router.len())
                .find(|&i| router.route(i).is_some_and(|r| &*r.name == name))
                .ok_or_else(|| {
                    let names: Vec<String> = (0..router.len())
                        .filter_map(|i| router.route(i).map(|r| r.name.to_string()))
                        .collect();
                    TranslateError::NoRoute(format!(
                        "no route named {name:?} in {} (routes: {})",
                        snapshot.source.name(),
                        names.join(", ")
                    ))
                });
        }
        let path = self.path.unwrap_or("/");
        router
            .find(self.host, path, &http::Method::GET, input)
            .ok_or_else(|| {
                TranslateError::NoRoute(format!(
                    "no route of {} matches host {} path {path}",
                    snapshot.source.name(),
                    self.host.unwrap_or("(any)")
                ))
            })
    }
}

/// Runs route `index` of `snapshot` over `input`: extraction in the route's order, its
/// trust, sampling and inject list, as the gateway would. Ids the gateway would make
/// (a new trace, its span) are random here too.
pub fn simulate(
    snapshot: &Snapshot,
    index: usize,
    input: &HeaderMap,
) -> Result<Simulation, TranslateError> {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    let route = snapshot
        .router
        .route(index)
        .ok_or_else(|| TranslateError::NoRoute(format!("no route {index}")))?;
    let policy: &Policy = &route.policy;
    let mut plan = mediate::plan(policy, input);
    let formats = mediate::formats_to_inject(policy, &plan).to_vec();
    let ids = RandomIdGenerator::default();
    let random_trace = || loop {
        if let Some(t) = TraceId::new(u128::from_be_bytes(ids.new_trace_id().to_bytes())) {
            return t;
        }
    };
    let random_span = || loop {
        if let Some(s) = SpanId::new(u64::from_be_bytes(ids.new_span_id().to_bytes())) {
            return s;
        }
    };
    let parent = plan.parent.as_ref();
    let trace_id = parent.and_then(|p| p.trace_id).unwrap_or_else(random_trace);
    let span_id = match (policy.span, parent.and_then(|p| p.parent_id)) {
        // Propagation only: the incoming parent passes through.
        (false, Some(incoming)) => incoming,
        _ => random_span(),
    };
    // No rate limit here: one request, no process.
    let sampled = plan.directive.decide(trace_id.get(), || true);
    let new_trace = parent.and_then(|p| p.trace_id) != Some(trace_id);
    let outgoing = mediate::outgoing(&mut plan, trace_id, sampled, new_trace, &formats);
    let upstream = snapshot
        .upstreams
        .get(route.upstream)
        .map_or_else(String::new, |u| u.name.to_string());
    let hop = Hop {
        span_id,
        service: &snapshot.telemetry.service_name,
        instance: &snapshot.telemetry.service_instance,
        endpoint: &route.path_prefix,
        peer_address: "-",
        call_index: 1,
    };
    let mut headers = input.clone();
    mediate::inject(
        &formats,
        policy.strip_unlisted,
        plan.present,
        &outgoing,
        &hop,
        &mut headers,
    );
    Ok(Simulation {
        route: route.name.to_string(),
        upstream,
        policy: policy.clone(),
        continued_from: plan.format,
        incoming: plan.incoming.map(|(f, _)| f),
        trace_id,
        span_id,
        sampled,
        links: plan.links,
        invalid: plan.invalid,
        formats,
        headers,
    })
}

fn format_list(formats: &[Format]) -> Vec<&'static str> {
    formats.iter().map(|f| f.as_str()).collect()
}

impl Simulation {
    /// `#` comment lines saying what the route does, then the headers as the upstream
    /// would receive them (the comments are skipped when the output is read back).
    pub fn to_lines(&self) -> String {
        let p = &self.policy;
        let mut out = format!("# route {} -> upstream {}\n", self.route, self.upstream);
        out.push_str(&format!(
            "# extract: {} (the first valid context wins)\n",
            format_list(&p.extract).join(", ")
        ));
        out.push_str(&format!(
            "# inject: {}{}; strip_unlisted: {}\n",
            format_list(&p.inject).join(", "),
            if p.preserve { " + preserve" } else { "" },
            p.strip_unlisted
        ));
        let what = match (self.continued_from, self.incoming) {
            (Some(f), _) => format!("continued from {f}"),
            (None, Some(f)) => format!("new trace ({f} arrived, kept as a link)"),
            (None, None) => "new trace (no context arrived)".to_string(),
        };
        out.push_str(&format!(
            "# trust: {}; {what}; sampled: {}\n",
            p.trust.name(),
            self.sampled
        ));
        out.push_str(&to_lines(&self.headers));
        out
    }

    /// The same as JSON: `route`, `upstream`, `extract`, `inject`, `preserve`,
    /// `strip_unlisted`, `trust`, `span`, `continued_from`, `new_trace`, `trace_id`,
    /// `span_id`, `sampled`, `injected`, `links`, `invalid`, `headers`.
    pub fn to_json(&self) -> Value {
        let p = &self.policy;
        let mut headers = Map::new();
        for (name, value) in &self.headers {
            headers.insert(
                name.as_str().to_string(),
                json!(String::from_utf8_lossy(value.as_bytes())),
            );
        }
        json!({
            "route": self.route,
            "upstream": self.upstream,
            "extract": format_list(&p.extract),
            "inject": format_list(&p.inject),
            "preserve": p.preserve,
            "strip_unlisted": p.strip_unlisted,
            "trust": p.trust.name(),
            "span": p.span,
            "continued_from": self.continued_from.map(Format::as_str),
            "new_trace": self.continued_from.is_none(),
            "trace_id": self.trace_id.to_string(),
            "span_id": self.span_id.to_string(),
            "sampled": self.sampled,
            "injected": format_list(&self.formats),
            "links": self.links.iter().map(|(f, l)| json!({
                "format": f.as_str(),
                "trace_id": l.trace_id.map(|x| x.to_string()),
            })).collect::<Vec<_>>(),
            "invalid": self.invalid.iter().map(|(f, e)| json!({
                "format": f.as_str(),
                "reason": e.as_str(),
            })).collect::<Vec<_>>(),
            "headers": headers,
        })
    }
}

/// `name: value` lines, one per header value.
pub fn to_lines(headers: &HeaderMap) -> String {
    let mut out = String::new();
    for (name, value) in headers {
        out.push_str(name.as_str());
        out.push_str(": ");
        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
        out.push('\n');
    }
    out
}

/// `{"extracted": {...}, "headers": {...}}`.
pub fn to_json(t: &Translation) -> Value {
    let c = &t.context;
    let mut extracted = Map::new();
    extracted.insert("format".into(), json!(t.format.as_str()));
    extracted.insert("trace_id".into(), json!(c.trace_id.map(|x| x.to_string())));
    extracted.insert("span_id".into(), json!(c.parent_id.map(|x| x.to_string())));
    extracted.insert(
        "sampled".into(),
        match c.sampling {
            Sampling::Sampled => json!(true),
            Sampling::NotSampled => json!(false),
            Sampling::Deferred => Value::Null,
        },
    );
    extracted.insert("debug".into(), json!(c.debug));
    extracted.insert("random".into(), json!(c.random));
    // Baggage is an ordered multimap (`uberctx-k` and `jaeger-baggage: k=...` both
    // kept); one-value-per-key formats send the first value, so that is the one shown.
    let mut baggage = Map::new();
    for b in &c.baggage {
        if !baggage.contains_key(&b.key) {
            baggage.insert(b.key.clone(), json!(b.value));
        }
    }
    extracted.insert("baggage".into(), Value::Object(baggage));
    if !c.tracestate.is_empty() {
        extracted.insert(
            "tracestate".into(),
            json!(c.tracestate.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>()),
        );
    }
    if let Some(sw) = &c.originals.skywalking {
        extracted.insert(
            "skywalking".into(),
            json!({
                "trace_id": sw.trace_id, "segment_id": sw.segment_id, "span_index": sw.span_index,
                "service": sw.service, "instance": sw.instance, "endpoint": sw.endpoint,
                "address": sw.address,
            }),
        );
    }
    if let Some(ee) = &c.originals.eagleeye {
        extracted.insert(
            "eagleeye".into(),
            json!({"trace_id": ee.trace_id, "rpc_id": ee.rpc_id}),
        );
    }
    if !t.links.is_empty() {
        extracted.insert(
            "links".into(),
            json!(t
                .links
                .iter()
                .map(|(f, l)| json!({"format": f.as_str(), "trace_id": l.trace_id.map(|x| x.to_string())}))
                .collect::<Vec<_>>()),
        );
    }
    let mut headers = Map::new();
    for (name, value) in &t.headers {
        headers.insert(
            name.as_str().to_string(),
            json!(String::from_utf8_lossy(value.as_bytes())),
        );
    }
    json!({ "extracted": extracted, "headers": headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_formats_keeps_the_first_of_repeated_formats() {
        // Regression: `dedup` only removed adjacent repeats, so `b3,all` extracted b3
        // twice and reported an invalid `b3` twice.
        let got = parse_formats("b3,all").unwrap();
        assert_eq!(got.len(), Format::ALL.len());
        assert_eq!(got[0], Format::B3);
        assert_eq!(got.iter().filter(|&&f| f == Format::B3).count(), 1);
        assert_eq!(parse_formats("all,all").unwrap(), Format::ALL.to_vec());
        assert_eq!(
            parse_formats("w3c, tracecontext ,b3,W3C").unwrap(),
            vec![Format::TraceContext, Format::B3]
        );
        assert!(parse_formats(" , ").is_err());
        assert!(parse_formats("b3,nope").is_err());
    }

    fn snapshot(text: &str, env: &[(&'static str, &'static str)]) -> Snapshot {
        let env = env.to_vec();
        let lookup = move |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        crate::config::load_str_with_env(text, None, 1, None, &lookup).unwrap()
    }

    const CONFIG: &str = "[upstreams.e]\nkind = \"echo\"\n\
        [[routes]]\nname = \"main\"\nupstream = \"e\"\n\
        [[routes]]\nname = \"edge\"\nhost = \"edge.example\"\nupstream = \"e\"\n\
        propagation = { trust = \"continue_unsampled\", inject = [\"b3\"] }\n";

    #[test]
    fn simulate_runs_the_route_policy_with_the_environment_defaults() {
        let input = parse_headers([
            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "uber-trace-id: 1111111111111111:2222222222222222:0:1",
        ])
        .unwrap();
        let s = snapshot(CONFIG, &[("OTEL_PROPAGATORS", "jaeger,b3multi")]);
        let main = RouteQuery {
            name: Some("main"),
            ..RouteQuery::default()
        };
        let sim = simulate(&s, main.find(&s, &input).unwrap(), &input).unwrap();
        // The environment's list: jaeger wins, traceparent is not read at all (no
        // link) and, not written, is stripped.
        assert_eq!(sim.continued_from, Some(Format::Jaeger));
        assert_eq!(sim.formats, [Format::Jaeger, Format::B3Multi]);
        assert!(sim.links.is_empty());
        assert!(sim.headers.get("traceparent").is_none(), "stripped");
        assert_eq!(
            sim.headers["x-b3-traceid"],
            "00000000000000001111111111111111"
        );
        // The edge route (by host) keeps the ids but makes its own decision
        // (continue_unsampled; the default ratio 1.0 samples).
        let edge = RouteQuery {
            host: Some("EDGE.example:443"),
            ..RouteQuery::default()
        };
        let sim = simulate(&s, edge.find(&s, &input).unwrap(), &input).unwrap();
        assert_eq!(sim.route, "edge");
        assert_eq!(sim.formats, [Format::B3]);
        assert!(sim
            .to_lines()
            .contains("# trust: continue_unsampled; continued from jaeger"));
        // Without the environment the default order reads traceparent first.
        let s = snapshot(CONFIG, &[]);
        let sim = simulate(&s, 0, &input).unwrap();
        assert_eq!(sim.continued_from, Some(Format::TraceContext));
        assert!(RouteQuery {
            name: Some("nope"),
            ..RouteQuery::default()
        }
        .find(&s, &input)
        .is_err());
    }
}
