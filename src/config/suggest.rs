//! "Did you mean …?" for config mistakes: the nearest valid key, and the format id a
//! user means when they write another tool's name for it (`zipkin` → `b3` / `b3multi`).
//!
//! Pure functions over strings. Distances are Damerau–Levenshtein (a swapped pair of
//! letters is one edit), as `cargo` and `clap` suggest subcommands and keys.

use crate::codec::Format;

/// The candidate closest to `word`, if it is close enough to be what was meant: at
/// most a third of the word's letters differ (at least one edit is always allowed), or
/// one is the other with a prefix or suffix added (`timeout` → `read_timeout`).
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    let budget = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            let d = strsim::damerau_levenshtein(&word_lower, &c.to_ascii_lowercase());
            let contained = word_lower.len() >= 3
                && (c.contains(word_lower.as_str()) || word_lower.contains(c));
            (d <= budget || contained).then_some((d, c))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Names of other tracers and propagators, and the format ids that read or write their
/// headers. Zipkin's B3 comes as one header or as several; OpenTelemetry's default is
/// W3C Trace Context; OpenTracing's "ot" headers are `ottrace`.
const OTHER_NAMES: &[(&str, &[&str])] = &[
    ("zipkin", &["b3", "b3multi"]),
    ("opentelemetry", &["tracecontext"]),
    ("otel", &["tracecontext"]),
    ("otlp", &["tracecontext"]),
    ("traceparent", &["tracecontext"]),
    ("tracestate", &["tracecontext"]),
    ("opentracing", &["ottrace"]),
    ("lightstep", &["ottrace"]),
    ("x-ray", &["xray"]),
    ("aws-xray", &["xray"]),
    ("stackdriver", &["gcp"]),
    ("google", &["gcp"]),
    ("cloud-trace", &["gcp"]),
    ("dd", &["datadog"]),
    ("uber", &["jaeger"]),
    ("grpc", &["grpc-trace-bin"]),
];

/// What to suggest for an unknown format name: `` `b3` or `b3multi` ``, or `None`.
/// `preserve` is a candidate where the list accepts it.
pub(crate) fn format(word: &str, allow_preserve: bool) -> Option<String> {
    let lower = word.trim().to_ascii_lowercase();
    if let Some((_, ids)) = OTHER_NAMES.iter().find(|(name, _)| *name == lower) {
        return Some(one_of(ids.iter().copied()));
    }
    let ids = Format::ALL.map(Format::as_str);
    let preserve: &[&str] = if allow_preserve { &["preserve"] } else { &[] };
    nearest(&lower, ids.iter().copied().chain(preserve.iter().copied())).map(|id| one_of([id]))
}

/// `` `a` ``, `` `a` or `b` ``.
fn one_of<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_key() {
        let keys = ["extract", "inject", "strip_unlisted", "trust", "span"];
        // (typed, expected, why)
        let rows: &[(&str, Option<&str>, &str)] = &[
            ("injct", Some("inject"), "one letter missing"),
            ("ijnect", Some("inject"), "two letters swapped"),
            ("Inject", Some("inject"), "case"),
            ("strip", Some("strip_unlisted"), "a prefix of the key"),
            ("bogus_knob", None, "nothing close"),
            ("x", None, "one letter is no evidence"),
        ];
        for (typed, want, why) in rows {
            assert_eq!(nearest(typed, keys), *want, "{typed}: {why}");
        }
    }

    #[test]
    fn format_suggestions() {
        let rows: &[(&str, bool, Option<&str>, &str)] = &[
            (
                "zipkin",
                false,
                Some("`b3` or `b3multi`"),
                "Zipkin's headers are B3",
            ),
            (
                "Zipkin",
                false,
                Some("`b3` or `b3multi`"),
                "case-insensitive",
            ),
            (
                "opentelemetry",
                false,
                Some("`tracecontext`"),
                "OTel's default",
            ),
            (
                "opentracing",
                false,
                Some("`ottrace`"),
                "OpenTracing's ot headers",
            ),
            ("skywalkng", false, Some("`skywalking`"), "a typo"),
            ("b3mutli", false, Some("`b3multi`"), "swapped letters"),
            (
                "presrve",
                true,
                Some("`preserve`"),
                "inject accepts preserve",
            ),
            ("presrve", false, None, "extract does not"),
            ("carrier-pigeon", false, None, "nothing close"),
        ];
        for (typed, preserve, want, why) in rows {
            assert_eq!(format(typed, *preserve).as_deref(), *want, "{typed}: {why}");
        }
    }
}
