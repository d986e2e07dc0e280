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

    fn h2_upstream(extra: &str) -> String {
        format!("[upstreams.g]\npeers = [\"127.0.0.1:50051\"]\nprotocol = \"h2c\"\n{extra}")
    }

    #[test]
    fn h2_streams_per_connection_default_to_100_and_reach_the_peer() {
        for (extra, want) in [("", 100), ("max_concurrent_streams = 7\n", 7)] {
            let s = load_str(&h2_upstream(extra), None, 1).unwrap();
            let UpstreamKind::Http(up) = &s.upstreams[0].kind else {
                panic!("http upstream expected");
            };
            assert_eq!(up.spec.max_concurrent_streams, want);
            let (peer, _) = up.select().unwrap();
            assert_eq!(peer.options.max_h2_streams, want, "pingora's per-peer cap");
        }
    }

    #[test]
    fn h2_streams_per_connection_out_of_range_is_refused() {
        for bad in ["0", "-1", "2147483648"] {
            let text = h2_upstream(&format!("max_concurrent_streams = {bad}\n"));
            let err = load_str(&text, None, 1).unwrap_err();
            assert_eq!(
                err.problems[0].to_string(),
                format!(
                    "upstreams.g.max_concurrent_streams: must be between 1 and 2147483647, got {bad}"
                )
            );
        }
        assert!(load_str(
            &h2_upstream("max_concurrent_streams = 2147483647\n"),
            None,
            1
        )
        .is_ok());
    }

    #[test]
    fn ingress_keys_are_validated_with_their_paths() {
        let text = r#"
            [server]
            trusted_proxies = ["10.0.0.0/8", "not-a-net"]
            [propagation]
            forwarded = "prepend"
            trusted_networks = ["10.0.0.0/33"]
            max_injected_bytes = 100
            max_injected_headers = 3
            [upstreams.u]
            kind = "echo"
            [[routes]]
            upstream = "u"
            propagation = { forwarded = "x", trusted_networks = ["::1/129"], max_injected_bytes = 1 }
        "#;
        let err = load_str(text, None, 1).unwrap_err();
        let msgs: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        let want = [
            "server.trusted_proxies[1]: invalid network \"not-a-net\"",
            "propagation.forwarded: unknown mode \"prepend\"",
            "propagation.trusted_networks[0]: invalid network \"10.0.0.0/33\"",
            "propagation.max_injected_bytes: must be 0 (no budget) or at least 2048",
            "propagation.max_injected_headers: must be 0 (no budget) or at least 32",
            "routes[0].propagation.forwarded: unknown mode \"x\"",
            "routes[0].propagation.trusted_networks[0]: invalid network \"::1/129\"",
            "routes[0].propagation.max_injected_bytes: must be 0 (no budget) or at least 2048",
        ];
        for w in want {
            assert!(
                msgs.iter().any(|m| m.starts_with(w)),
                "{w} not in {msgs:#?}"
            );
        }
        assert_eq!(msgs.len(), want.len(), "{msgs:#?}");
    }

    #[test]
    fn ingress_keys_compile_with_overrides() {
        let text = r#"
            [server]
            trusted_proxies = ["10.0.0.1", "fd00::/8"]
            [propagation]
            trusted_networks = ["192.168.0.0/16"]
            max_injected_bytes = 0
            [upstreams.u]
            kind = "echo"
            [[routes]]
            name = "a"
            upstream = "u"
            [[routes]]
            name = "b"
            path_prefix = "/b"
            upstream = "u"
            propagation = { forwarded = "replace", trusted_networks = [], max_injected_headers = 40 }
        "#;
        let s = load_str(text, None, 1).unwrap();
        assert_eq!(
            s.server.trusted_proxies,
            ["10.0.0.1/32".parse().unwrap(), "fd00::/8".parse().unwrap()]
        );
        let a = &s.router.route(0).unwrap().policy;
        let b = &s.router.route(1).unwrap().policy;
        assert_eq!(
            a.forwarded,
            crate::mediate::ForwardedMode::Append,
            "default"
        );
        assert_eq!(a.trusted_networks.len(), 1);
        assert_eq!(b.forwarded, crate::mediate::ForwardedMode::Replace);
        assert!(
            b.trusted_networks.is_empty(),
            "a route may trust no network"
        );
        assert_eq!((a.max_injected_bytes, a.max_injected_headers), (0, 64));
        assert_eq!((b.max_injected_bytes, b.max_injected_headers), (0, 40));
        assert_eq!(s.defaults.trusted_networks, a.trusted_networks);
    }
}
