//! Configuration: parse → validate → compile, three separate stages.
//!
//! 1. [`parse`]: TOML text → [`raw::RawConfig`] (serde, unknown keys rejected, with the
//!    line of the offending key);
//! 2. [`validate::validate`]: every semantic problem collected with its key path, peer
//!    names resolved;
//! 3. [`compile::compile`]: the immutable [`Snapshot`] the request path reads (router,
//!    balancers, peer templates), so a request never touches config text.

pub mod compile;
pub mod log_sink;
pub mod otel_env;
pub mod raw;
pub mod router;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use compile::{HttpUpstream, Snapshot, Source, Upstream, UpstreamKind};
pub use log_sink::LogSink;
pub use router::{Route, Router};
pub use validate::{
    AccessLogSettings, ConfigError, Exporter, Problem, ServerSettings, TelemetrySettings,
};

/// The built-in default config: the same text as `conf/tracebridge.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/tracebridge.toml");

/// Stage 1: TOML text to raw structs. A syntax error, a wrong type or an unknown key
/// stops parsing (serde reports one at a time), with its line.
pub fn parse(text: &str) -> Result<raw::RawConfig, Vec<Problem>> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        vec![Problem {
            path: String::new(),
            message: e.message().trim().to_string(),
            line,
        }]
    })
}

/// All three stages over `text`; `path` is `None` for the built-in config.
pub fn load_str(text: &str, path: Option<&Path>, generation: u64) -> Result<Snapshot, ConfigError> {
    load_str_reusing(text, path, generation, None)
}

/// [`load_str`] for a reload: upstreams whose settings equal those in `previous` keep
/// their compiled balancer (and its health state).
pub fn load_str_reusing(
    text: &str,
    path: Option<&Path>,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    load_str_with_env(text, path, generation, previous, &env)
}

/// [`load_str_reusing`] with the process environment replaced by `env`: the
/// OpenTelemetry variables of [`otel_env`] set the defaults of the keys the file leaves
/// out.
pub fn load_str_with_env(
    text: &str,
    path: Option<&Path>,
    generation: u64,
    previous: Option<&Snapshot>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Snapshot, ConfigError> {
    let source = Source {
        path: path.map(Path::to_path_buf),
        sha256: sha256_hex(text),
        loaded_at: SystemTime::now(),
    };
    let error = |problems| ConfigError {
        source_name: source.name(),
        problems,
    };
    let mut raw = parse(text).map_err(error)?;
    let defaults = otel_env::read(env);
    for warning in &defaults.warnings {
        log::warn!("{warning}");
    }
    if !defaults.is_empty() {
        // Only the keys the file leaves out take the environment's value, so the file
        // is looked at as a table too (parsing succeeded once, so it does again).
        if let Ok(file) = text.parse::<toml::Table>() {
            let applied = otel_env::apply(&mut raw, &file, &defaults);
            if !applied.is_empty() {
                log::info!(
                    "{}: {} from the OpenTelemetry environment variables",
                    source.name(),
                    applied.join(", ")
                );
            }
        }
    }
    let validated = validate::validate(&raw).map_err(error)?;
    compile::compile(validated, source.clone(), generation, previous).map_err(error)
}

/// Reads `path` and loads it.
pub fn load_file(path: &Path, generation: u64) -> Result<Snapshot, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, Some(path), generation),
        Err(e) => Err(ConfigError {
            source_name: path.display().to_string(),
            problems: vec![Problem {
                path: String::new(),
                message: format!("cannot read the file: {e}"),
                line: None,
            }],
        }),
    }
}

/// Which config the gateway runs on when started without `--config`: `./tracebridge.toml`
/// if it exists, else the built-in default (`None`).
pub fn default_path() -> Option<PathBuf> {
    let local = PathBuf::from("tracebridge.toml");
    local.is_file().then_some(local)
}

/// SHA-256 of a config text, lowercase hex (shown by `/config`, compared on reload).
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_loads() {
        let s = load_str(DEFAULT_CONFIG, None, 1).unwrap();
        assert_eq!(s.server.listen, vec!["127.0.0.1:8080"]);
        assert_eq!(s.server.admin_listen, "127.0.0.1:9901");
        assert_eq!(s.router.len(), 1);
        assert!(matches!(s.upstreams[0].kind, UpstreamKind::Echo));
        assert_eq!(s.source.sha256.len(), 64);
    }

    #[test]
    fn a_batch_larger_than_the_queue_is_refused() {
        let text = "[telemetry]\nqueue_size = 100\nbatch_size = 101\n";
        let err = load_str(text, None, 1).unwrap_err();
        assert_eq!(
            err.problems[0].to_string(),
            "telemetry.batch_size: must not exceed telemetry.queue_size"
        );
        assert!(load_str("[telemetry]\nqueue_size = 100\nbatch_size = 100\n", None, 1).is_ok());
    }

    #[test]
    fn unknown_key_reports_its_line() {
        let err = load_str("[server]\nthreads = 1\nlisten_on = []\n", None, 1).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].line, Some(3));
        assert!(err.problems[0].message.contains("listen_on"), "{err}");
    }

    #[test]
    fn every_semantic_problem_is_collected() {
        let text = r#"
            [server]
            grace_period = "soon"
            [upstreams.orders]
            peers = ["127.0.0.1:notaport"]
            [[routes]]
            upstream = "ordrs"
        "#;
        let err = load_str(text, None, 1).unwrap_err();
        let msgs: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(msgs[0].starts_with("server.grace_period: invalid duration"));
        assert!(msgs[1].starts_with("upstreams.orders.peers[0]: invalid peer"));
        assert_eq!(msgs[2], "routes[0].upstream: no upstream named \"ordrs\"");
    }

    #[test]
    fn access_log_is_off_by_default() {
        assert!(load_str(DEFAULT_CONFIG, None, 1)
            .unwrap()
            .access_log
            .is_none());
        // Disabled: the path is not looked at.
        let text = "[access_log]\npath = \"/nonexistent-dir/x.log\"\n";
        assert!(load_str(text, None, 1).unwrap().access_log.is_none());
    }

    #[test]
    fn access_log_directory_must_exist() {
        let text = "[access_log]\nenabled = true\npath = \"/nonexistent-dir/x.log\"\n";
        let err = load_str(text, None, 1).unwrap_err();
        assert_eq!(
            err.problems[0].to_string(),
            "access_log.path: directory /nonexistent-dir does not exist"
        );
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[access_log]\nenabled = true\npath = \"{}\"\n",
            dir.path().display()
        );
        let err = load_str(&text, None, 1).unwrap_err();
        assert!(err.problems[0].message.ends_with("is a directory"), "{err}");
    }

    #[test]
    fn access_log_file_is_created_or_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let text = format!(
            "[access_log]\nenabled = true\npath = \"{}\"\n",
            path.display()
        );
        let sink = load_str(&text, None, 1).unwrap().access_log.unwrap();
        assert!(path.is_file(), "created when the config is compiled");
        sink.write_line(b"one\n").unwrap();
        // A reload opens it again and appends.
        let again = load_str(&text, None, 2).unwrap().access_log.unwrap();
        again.write_line(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        let stdout = load_str("[access_log]\nenabled = true\n", None, 1).unwrap();
        assert_eq!(stdout.access_log.unwrap().name(), "stdout");
    }

    #[test]
    fn route_name_none_is_reserved() {
        let text =
            "[upstreams.u]\nkind = \"echo\"\n[[routes]]\nname = \"none\"\nupstream = \"u\"\n";
        let err = load_str(text, None, 1).unwrap_err();
        assert_eq!(
            err.problems[0].to_string(),
            "routes[0].name: \"none\" is reserved for requests that match no route"
        );
    }

    #[test]
    fn unresolvable_peer_is_a_config_error() {
        let text = "[upstreams.x]\npeers = [\"no-such-host.invalid:80\"]\n";
        let err = load_str(text, None, 1).unwrap_err();
        assert!(err.problems[0].message.contains("cannot resolve"), "{err}");
    }
}
