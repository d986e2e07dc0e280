//! The OpenTelemetry SDK environment variables that set tracebridge's propagation and
//! sampling defaults, as the SDK environment-variable specification defines them
//! (<https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>).
//!
//! Precedence, per key: a key written in the config file, else the environment variable,
//! else the built-in default. Only the top-level `[propagation]` and `[sampling]` tables
//! take defaults from the environment; upstream and route tables override them as usual.
//!
//! | variable | sets | when the file has no |
//! |---|---|---|
//! | `OTEL_PROPAGATORS` | `propagation.extract` and `propagation.inject` (each on its own) | `extract` / `inject` key |
//! | `OTEL_TRACES_SAMPLER` | `sampling.strategy` | `strategy` key |
//! | `OTEL_TRACES_SAMPLER_ARG` | `sampling.ratio` (the `*traceidratio` samplers) | `ratio` key |
//!
//! `OTEL_PROPAGATORS` is a comma list; the spec's names (`tracecontext`, `baggage`, `b3`
//! = single header, `b3multi`, `jaeger`, `xray`, `ottrace`, `none`) are tracebridge's
//! format ids, and every other tracebridge format id is accepted too (the spec lets an
//! implementation know more values). The list is used as written, deduplicated:
//! - as the extract order, where tracebridge's rule is "the first valid context wins"
//!   (an SDK's composite propagator runs every extractor and lets the later ones win);
//! - as the inject list, exactly — without `preserve`, since an SDK injects exactly its
//!   propagators (and with `strip_unlisted`, other trace headers are removed);
//! - `none` alone means no propagation at all (both lists empty).
//!
//! Samplers map onto `[sampling]` like this:
//!
//! | `OTEL_TRACES_SAMPLER` | `strategy` | `ratio` |
//! |---|---|---|
//! | `always_on` | `always` | — |
//! | `always_off` | `never` | — |
//! | `traceidratio` | `ratio` | `OTEL_TRACES_SAMPLER_ARG`, default 1.0 |
//! | `parentbased_always_on` | `parent` | 1.0 |
//! | `parentbased_always_off` | `parent` | 0.0 |
//! | `parentbased_traceidratio` | `parent` | `OTEL_TRACES_SAMPLER_ARG`, default 1.0 |
//! | `jaeger_remote`, `parentbased_jaeger_remote`, `xray` | no equivalent: warned about and ignored | |
//!
//! The spec's rules for bad values are followed: an empty variable counts as unset;
//! names are matched case-insensitively; an unknown name is warned about and ignored
//! (an unknown propagator is left out of the list, an unknown sampler leaves the
//! default); an invalid `OTEL_TRACES_SAMPLER_ARG` is warned about and treated as unset.

use super::raw::RawConfig;
use crate::codec::Format;
use crate::mediate::Strategy;

/// The variables read here.
pub(crate) const PROPAGATORS: &str = "OTEL_PROPAGATORS";
/// The sampler name.
pub(crate) const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// The sampler's argument.
pub(crate) const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// What the environment asks for, after the spec's rules for bad values.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EnvDefaults {
    /// Format ids, deduplicated, in order (empty for `none`).
    pub propagators: Option<Vec<String>>,
    /// A `[sampling] strategy` value.
    pub strategy: Option<Strategy>,
    /// A `[sampling] ratio` value.
    pub ratio: Option<f64>,
    /// One line per value that was ignored, and why.
    pub warnings: Vec<String>,
}

impl EnvDefaults {
    /// True when nothing is to be applied.
    pub(crate) fn is_empty(&self) -> bool {
        self.propagators.is_none() && self.strategy.is_none() && self.ratio.is_none()
    }
}

/// Reads the variables through `env` (`std::env::var` in the gateway, a table in tests).
pub(crate) fn read(env: &dyn Fn(&str) -> Option<String>) -> EnvDefaults {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut out = EnvDefaults::default();
    if let Some(list) = var(PROPAGATORS) {
        out.propagators = propagators(&list, &mut out.warnings);
    }
    if let Some(sampler) = var(SAMPLER) {
        let name = sampler.trim().to_ascii_lowercase();
        // The argument is read (and warned about) only for the samplers that take it.
        let arg = if name.ends_with("traceidratio") {
            ratio_arg(var(SAMPLER_ARG), &mut out.warnings)
        } else {
            1.0
        };
        let (strategy, ratio) = match name.as_str() {
            "always_on" => (Some(Strategy::Always), None),
            "always_off" => (Some(Strategy::Never), None),
            "traceidratio" => (Some(Strategy::Ratio), Some(arg)),
            "parentbased_always_on" => (Some(Strategy::Parent), Some(1.0)),
            "parentbased_always_off" => (Some(Strategy::Parent), Some(0.0)),
            "parentbased_traceidratio" => (Some(Strategy::Parent), Some(arg)),
            "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
                out.warnings.push(format!(
                    "{SAMPLER}={sampler}: a remote sampler has no equivalent in tracebridge; ignored"
                ));
                (None, None)
            }
            _ => {
                out.warnings.push(format!(
                    "{SAMPLER}={sampler}: unknown sampler; ignored (expected always_on, \
                     always_off, traceidratio, parentbased_always_on, parentbased_always_off \
                     or parentbased_traceidratio)"
                ));
                (None, None)
            }
        };
        out.strategy = strategy;
        out.ratio = ratio;
    }
    out
}

fn propagators(list: &str, warnings: &mut Vec<String>) -> Option<Vec<String>> {
    let mut formats: Vec<Format> = Vec::new();
    let mut none = false;
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.eq_ignore_ascii_case("none") {
            none = true;
            continue;
        }
        match item.parse::<Format>() {
            Ok(f) if !formats.contains(&f) => formats.push(f),
            Ok(_) => {}
            Err(_) => warnings.push(format!(
                "{PROPAGATORS}: unknown propagator {item:?} left out (known: none, {})",
                Format::ALL.map(Format::as_str).join(", ")
            )),
        }
    }
    if none && !formats.is_empty() {
        warnings.push(format!(
            "{PROPAGATORS}: \"none\" listed with other propagators; \"none\" ignored"
        ));
    }
    if formats.is_empty() && !none {
        // Nothing usable: as if the variable were not set.
        return None;
    }
    Some(formats.iter().map(|f| f.as_str().to_string()).collect())
}

fn ratio_arg(arg: Option<String>, warnings: &mut Vec<String>) -> f64 {
    let Some(text) = arg else { return 1.0 };
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => r,
        _ => {
            warnings.push(format!(
                "{SAMPLER_ARG}={text}: not a probability between 0 and 1; ignored (1.0)"
            ));
            1.0
        }
    }
}

/// Applies `defaults` to the keys the file's text does not set, and returns those keys
/// (for the log). `file` is the file as a TOML table (to tell a key written with its
/// default value from an absent key).
pub(crate) fn apply(
    raw: &mut RawConfig,
    file: &toml::Table,
    defaults: &EnvDefaults,
) -> Vec<&'static str> {
    let has = |table: &str, key: &str| {
        file.get(table)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(key))
    };
    let mut applied = Vec::new();
    if let Some(list) = &defaults.propagators {
        if !has("propagation", "extract") {
            raw.propagation.extract = list.clone();
            applied.push("propagation.extract");
        }
        if !has("propagation", "inject") {
            raw.propagation.inject = list.clone();
            applied.push("propagation.inject");
        }
    }
    if let Some(strategy) = defaults.strategy {
        if !has("sampling", "strategy") {
            raw.sampling.strategy = strategy.into();
            applied.push("sampling.strategy");
        }
    }
    if let Some(ratio) = defaults.ratio {
        if !has("sampling", "ratio") {
            raw.sampling.ratio = ratio;
            applied.push("sampling.ratio");
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Named;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn strings(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn propagator_lists_follow_the_spec() {
        // (OTEL_PROPAGATORS, the list applied, warnings, why)
        let rows: &[(&str, Option<Vec<String>>, usize, &str)] = &[
            ("", None, 0, "empty = unset"),
            (
                "tracecontext,baggage",
                strings(&["tracecontext", "baggage"]),
                0,
                "the spec default",
            ),
            (
                " B3Multi , jaeger,b3multi",
                strings(&["b3multi", "jaeger"]),
                0,
                "case-insensitive, trimmed, deduplicated",
            ),
            (
                "b3,xray,ottrace",
                strings(&["b3", "xray", "ottrace"]),
                0,
                "b3 is the single header",
            ),
            (
                "datadog,skywalking",
                strings(&["datadog", "skywalking"]),
                0,
                "tracebridge's own ids",
            ),
            ("none", strings(&[]), 0, "no propagation"),
            (
                "zipkin,b3multi",
                strings(&["b3multi"]),
                1,
                "unknown left out",
            ),
            ("zipkin", None, 1, "nothing usable: as if unset"),
            (
                "none,jaeger",
                strings(&["jaeger"]),
                1,
                "none with others is ignored",
            ),
        ];
        for (value, list, warnings, why) in rows {
            let mut w = Vec::new();
            let got = if value.is_empty() {
                read(&|_| Some(String::new())).propagators
            } else {
                propagators(value, &mut w)
            };
            assert_eq!(&got, list, "{why}");
            assert_eq!(w.len(), *warnings, "{why}: {w:?}");
        }
    }

    /// (variables, strategy, ratio, warnings)
    type SamplerRow = (
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
        Option<f64>,
        usize,
    );

    #[test]
    fn samplers_map_onto_strategies() {
        let rows: &[SamplerRow] = &[
            (
                &[("OTEL_TRACES_SAMPLER", "always_on")],
                Some("always"),
                None,
                0,
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "ALWAYS_OFF")],
                Some("never"),
                None,
                0,
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ],
                Some("ratio"),
                Some(0.25),
                0,
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "traceidratio")],
                Some("ratio"),
                Some(1.0),
                0,
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                Some("parent"),
                Some(1.0),
                1,
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
                Some("parent"),
                Some(1.0),
                0,
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
                Some("parent"),
                Some(0.0),
                0,
            ),
            (&[("OTEL_TRACES_SAMPLER", "jaeger_remote")], None, None, 1),
            (&[("OTEL_TRACES_SAMPLER", "sometimes")], None, None, 1),
            // The argument alone does nothing (it only applies with a sampler).
            (&[("OTEL_TRACES_SAMPLER_ARG", "0.5")], None, None, 0),
        ];
        for (vars, strategy, ratio, warnings) in rows {
            let got = read(&env(vars));
            assert_eq!(got.strategy.map(Named::name), *strategy, "{vars:?}");
            assert_eq!(got.ratio, *ratio, "{vars:?}");
            assert_eq!(
                got.warnings.len(),
                *warnings,
                "{vars:?}: {:?}",
                got.warnings
            );
        }
    }

    #[test]
    fn a_key_in_the_file_wins_over_the_environment() {
        let text = "[propagation]\ninject = [\"tracecontext\"]\n[sampling]\nratio = 0.5\n";
        let mut raw: RawConfig = toml::from_str(text).unwrap();
        let file: toml::Table = text.parse().unwrap();
        let defaults = read(&env(&[
            ("OTEL_PROPAGATORS", "b3multi,jaeger"),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ]));
        apply(&mut raw, &file, &defaults);
        assert_eq!(
            raw.propagation.extract,
            ["b3multi", "jaeger"],
            "env over default"
        );
        assert_eq!(raw.propagation.inject, ["tracecontext"], "file over env");
        assert_eq!(raw.sampling.strategy, "parent", "env over default");
        assert_eq!(raw.sampling.ratio, 0.5, "file over env");
        // A key written with the default value still counts as written.
        let text = "[propagation]\nextract = [\"tracecontext\"]\n";
        let mut raw: RawConfig = toml::from_str(text).unwrap();
        apply(&mut raw, &text.parse().unwrap(), &defaults);
        assert_eq!(raw.propagation.extract, ["tracecontext"]);
    }
}
