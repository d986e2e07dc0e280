//! Configuration: parse → validate → compile, three separate stages.
//!
//! 1. [`parse`]: TOML text → [`raw::RawConfig`] (serde; every unknown key and mistyped
//!    value reported with its key path and line, and the nearest valid key);
//! 2. [`validate::validate`]: every semantic problem collected with its key path, peer
//!    names resolved;
//! 3. [`compile::compile`]: the immutable [`Snapshot`] the request path reads (router,
//!    balancers, peer templates), so a request never touches config text.

pub(crate) mod compile;
pub(crate) mod log_sink;
pub(crate) mod otel_env;
pub(crate) mod raw;
pub(crate) mod router;
pub mod spec;
pub(crate) mod suggest;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use compile::{HttpUpstream, Snapshot, Source, Upstream, UpstreamKind};
pub use log_sink::LogSink;
pub use router::{Route, Router};
pub use spec::{Exporter, TelemetrySettings};
pub use validate::{AccessLogSettings, ConfigError, Problem, ServerSettings};

/// The built-in default config: the same text as `conf/tracebridge.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/tracebridge.toml");

/// The largest config file read, in bytes. A Kubernetes ConfigMap holds at most 1 MiB;
/// 10,000 routes with per-route overrides take 2.3 MiB. Parsing holds the whole document
/// tree in memory (a 4 MiB file of routes peaks at 170 MiB, about 40 bytes per byte), so
/// an unbounded file could take gigabytes before validation refuses it.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Unknown keys and wrongly typed values reported at most (each costs one more pass).
const MAX_KEY_PROBLEMS: usize = 100;

/// Stage 1: TOML text to raw structs. Every unknown key and every wrongly typed value is
/// reported with its key path and line; a syntax error stops parsing, with its line.
pub fn parse(text: &str) -> Result<raw::RawConfig, Vec<Problem>> {
    let parsed = parse_collecting(text)?;
    if parsed.problems.is_empty() {
        Ok(parsed.raw)
    } else {
        Err(parsed.problems)
    }
}

/// A parsed file: the raw config without the keys that were wrong, and what was wrong.
struct Parsed {
    raw: raw::RawConfig,
    /// Unknown keys and type errors, in file order.
    problems: Vec<Problem>,
    /// Key paths left out of `raw` (their defaults apply), so that validation does not
    /// report them a second time (`routes[0].upstream: is required` after
    /// `routes[0].upstream: invalid type`).
    removed: Vec<String>,
}

/// Stage 1, collecting. serde's `deny_unknown_fields` stops at the first unknown key, so
/// each one found is reported, removed from the document, and the document deserialized
/// again, until it goes through. The set of valid keys is thus always the raw structs'
/// own (serde lists them in its error, which gives the "did you mean"): nothing to keep
/// in step by hand. (`serde_ignored` finds every unknown key in one pass, but needs
/// `deny_unknown_fields` off on every struct and does not say which keys were valid.)
fn parse_collecting(text: &str) -> Result<Parsed, Vec<Problem>> {
    if text.trim().is_empty() {
        // An editor that truncates before writing leaves this for a moment; as a config
        // it would remove every route and the admin token.
        return Err(vec![Problem {
            path: String::new(),
            message: "the file is empty".to_string(),
            line: None,
        }]);
    }
    // The common case, a valid file, in one pass.
    let first = match toml::from_str::<raw::RawConfig>(text) {
        Ok(raw) => {
            return Ok(Parsed {
                raw,
                problems: Vec::new(),
                removed: Vec::new(),
            })
        }
        Err(e) => e,
    };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map(|span| line_at(text, span.start));
        vec![Problem {
            path: String::new(),
            message: e.message().trim().to_string(),
            line,
        }]
    })?;
    let doc = toml_edit::ImDocument::parse(text).ok();
    let mut problems = Vec::new();
    let mut removed = Vec::new();
    for _ in 0..MAX_KEY_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, raw::RawConfig>(toml::Value::Table(
            table.clone(),
        )) {
            Ok(raw) => {
                if problems.is_empty() {
                    // The table went through where the text did not: never accept what
                    // the one-pass parse refused.
                    problems.push(Problem {
                        path: String::new(),
                        message: first.message().trim().to_string(),
                        line: first.span().map(|span| line_at(text, span.start)),
                    });
                }
                problems.sort_by_key(|p: &Problem| p.line);
                return Ok(Parsed {
                    raw,
                    problems,
                    removed,
                });
            }
            Err(e) => e,
        };
        let segments: Vec<Segment> = error
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                _ => None,
            })
            .collect();
        let message = key_message(error.inner().message().trim());
        let line = doc
            .as_ref()
            .and_then(|d| key_span(d.as_item(), &segments))
            .map(|span| line_at(text, span.start));
        problems.push(Problem {
            path: render_path(&segments),
            message,
            line,
        });
        // A bad array element takes its whole array out: removing only the element would
        // shift the indices of the next problems.
        let cut = segments
            .iter()
            .rposition(|s| matches!(s, Segment::Key(_)))
            .map(|i| &segments[..=i]);
        match cut.filter(|c| remove_key(&mut table, c)) {
            Some(c) => removed.push(render_path(c)),
            None => return Err(problems),
        }
    }
    problems.push(Problem {
        path: String::new(),
        message: format!(
            "more than {MAX_KEY_PROBLEMS} unknown or mistyped keys; the rest are not listed"
        ),
        line: None,
    });
    Err(problems)
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `routes[0].propagation.inject`.
fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// serde's "unknown field `injct`, expected one of `extract`, `inject`, …" as "unknown
/// key `injct`; did you mean `inject`?" (or the list of valid keys when none is close).
fn key_message(serde_message: &str) -> String {
    let Some(rest) = serde_message.strip_prefix("unknown field `") else {
        return serde_message.to_string();
    };
    let Some((key, expected)) = rest.split_once('`') else {
        return serde_message.to_string();
    };
    // The backquoted names after "expected".
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match suggest::nearest(key, valid.iter().copied()) {
        Some(near) => format!("unknown key `{key}`; did you mean `{near}`?"),
        None if valid.is_empty() => format!("unknown key `{key}`"),
        None => format!(
            "unknown key `{key}`; valid keys here: {}",
            valid
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Removes the key at `path` (ending with a key) from `table`; false if it is not there.
fn remove_key(table: &mut toml::Table, path: &[Segment]) -> bool {
    let Some((Segment::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut node: Option<&mut toml::Table> = Some(table);
    let mut value: Option<&mut toml::Value> = None;
    for s in parents {
        value = match (s, node.take(), value.take()) {
            (Segment::Key(k), Some(t), _) => t.get_mut(k),
            (Segment::Key(k), None, Some(toml::Value::Table(t))) => t.get_mut(k),
            (Segment::Index(i), None, Some(toml::Value::Array(a))) => a.get_mut(*i),
            _ => None,
        };
        if value.is_none() {
            return false;
        }
    }
    let target = match (node, value) {
        (Some(t), _) => t,
        (None, Some(toml::Value::Table(t))) => t,
        _ => return false,
    };
    target.remove(last).is_some()
}

/// Where the key (or array element) at `path` is written in the file.
fn key_span(root: &toml_edit::Item, path: &[Segment]) -> Option<std::ops::Range<usize>> {
    enum Node<'a> {
        Item(&'a toml_edit::Item),
        Table(&'a toml_edit::Table),
        Value(&'a toml_edit::Value),
    }
    let mut node = Node::Item(root);
    let mut span = None;
    for s in path {
        node = match (s, node) {
            (Segment::Key(k), node) => {
                let table: &dyn toml_edit::TableLike = match node {
                    Node::Item(i) => i.as_table_like()?,
                    Node::Table(t) => t,
                    Node::Value(v) => v.as_inline_table()?,
                };
                let (key, item) = table.get_key_value(k)?;
                span = key.span().or_else(|| item.span());
                Node::Item(item)
            }
            (Segment::Index(i), Node::Item(toml_edit::Item::ArrayOfTables(a))) => {
                let t = a.get(*i)?;
                span = t.span().or(span);
                Node::Table(t)
            }
            (Segment::Index(i), Node::Item(item)) => {
                let v = item.as_array()?.get(*i)?;
                span = v.span().or(span);
                Node::Value(v)
            }
            (Segment::Index(i), Node::Value(v)) => {
                let v = v.as_array()?.get(*i)?;
                span = v.span().or(span);
                Node::Value(v)
            }
            (Segment::Index(_), Node::Table(_)) => return span,
        };
    }
    span
}

/// Whether `problem` is about a key that parsing already reported and removed.
fn under_removed(problem: &Problem, removed: &[String]) -> bool {
    removed.iter().any(|r| {
        problem
            .path
            .strip_prefix(r.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// All three stages over `text`; `path` is `None` for the built-in config.
pub fn load_str(text: &str, path: Option<&Path>, generation: u64) -> Result<Snapshot, ConfigError> {
    load_str_reusing(text, path, generation, None)
}

/// [`load_str`] for a reload: upstreams whose settings equal those in `previous` keep
/// their compiled balancer (and its health state). A reload may not drop the serving
/// config's `admin_token` unless the new config says so (see [`reload_guard`]).
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
    let parsed = parse_collecting(text).map_err(error)?;
    let mut raw = parsed.raw;
    let defaults = otel_env::read(env);
    for warning in &defaults.warnings {
        log::warn!("{warning}");
    }
    if !defaults.is_empty() {
        // Only the keys the file leaves out take the environment's value, so the file
        // is looked at as a table too (it parsed as TOML, so it does again).
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
    let mut problems = parsed.problems;
    let validated = match validate::validate(&raw) {
        Ok(v) if problems.is_empty() => v,
        Ok(_) => return Err(error(problems)),
        Err(semantic) => {
            problems.extend(
                semantic
                    .into_iter()
                    .filter(|p| !under_removed(p, &parsed.removed)),
            );
            return Err(error(problems));
        }
    };
    if let Some(previous) = previous {
        reload_guard(previous, &validated).map_err(error)?;
    }
    compile::compile(validated, source.clone(), generation, previous).map_err(error)
}

/// What a valid config may still not do to the one serving: drop its `admin_token`
/// (which would open `POST /reload` to anyone who reaches the admin listener) unless
/// `server.allow_admin_token_removal` says it is meant. A file cut short or rewritten
/// without the line would otherwise do it silently.
fn reload_guard(previous: &Snapshot, next: &validate::Validated) -> Result<(), Vec<Problem>> {
    if !previous.server.admin_token.is_empty()
        && next.server.admin_token.is_empty()
        && !next.server.allow_admin_token_removal
    {
        return Err(vec![Problem {
            path: "server.admin_token".to_string(),
            message: "the serving config has a token and this one has none, which would \
                      open POST /reload; set server.allow_admin_token_removal = true to \
                      drop it"
                .to_string(),
            line: None,
        }]);
    }
    Ok(())
}

/// Reads `path` and loads it.
pub fn load_file(path: &Path, generation: u64) -> Result<Snapshot, ConfigError> {
    let text = read_file(path)?;
    load_str(&text, Some(path), generation)
}

/// Reads a config file: a regular file (symlinks followed) of at most
/// [`MAX_FILE_BYTES`]. A FIFO would block the read until a writer comes (forever, for
/// `check` and start-up), a device may never end (`/dev/zero`): both are refused
/// without reading, as is a directory.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    read_regular(path).map_err(|message| ConfigError {
        source_name: path.display().to_string(),
        problems: vec![Problem {
            path: String::new(),
            message,
            line: None,
        }],
    })
}

fn read_regular(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| format!("cannot read the file: {e}");
    // Checked before opening (opening some devices has effects), and again on the open
    // file, in case the path was swapped in between.
    check_regular(&std::fs::metadata(path).map_err(cannot)?)?;
    // O_NONBLOCK: were a FIFO swapped in after the check, open would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    check_regular(&file.metadata().map_err(cannot)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "cannot read the file: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn too_large() -> String {
    format!(
        "cannot read the file: larger than {} MiB, the most a config file may be",
        MAX_FILE_BYTES >> 20
    )
}

fn check_regular(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "cannot read the file: it is {what}; a config must be a regular file"
    ))
}

/// Which config the gateway runs on when started without `--config`: `./tracebridge.toml`
/// if it exists, else the built-in default (`None`). A `./tracebridge.toml` that is not a
/// regular file is still chosen, so that reading it says what is wrong with it.
pub fn default_path() -> Option<PathBuf> {
    let local = PathBuf::from("tracebridge.toml");
    local.exists().then_some(local)
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

    /// `text` is refused with exactly the problems `want` (each a message prefix).
    fn assert_problems(text: &str, want: &[&str]) {
        let err = load_str(text, None, 1).unwrap_err();
        let msgs: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        for w in want {
            assert!(
                msgs.iter().any(|m| m.starts_with(w)),
                "{w} not in {msgs:#?}"
            );
        }
        assert_eq!(msgs.len(), want.len(), "{msgs:#?}");
    }

    /// One route, which every config needs (unless `server.allow_no_routes`).
    const ROUTE: &str = "\n[upstreams.u]\nkind = \"echo\"\n[[routes]]\nupstream = \"u\"\n";

    /// `text` with [`ROUTE`] appended.
    fn routed(text: &str) -> String {
        format!("{text}{ROUTE}")
    }

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
        let text = routed("[telemetry]\nqueue_size = 100\nbatch_size = 101\n");
        let err = load_str(&text, None, 1).unwrap_err();
        assert_eq!(
            err.problems[0].to_string(),
            "telemetry.batch_size: must not exceed telemetry.queue_size"
        );
        assert!(load_str(
            &routed("[telemetry]\nqueue_size = 100\nbatch_size = 100\n"),
            None,
            1
        )
        .is_ok());
    }

    #[test]
    fn unknown_key_reports_its_line() {
        let err =
            load_str(&routed("[server]\nthreads = 1\nlisten_on = []\n"), None, 1).unwrap_err();
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
        let text = routed("[access_log]\npath = \"/nonexistent-dir/x.log\"\n");
        assert!(load_str(&text, None, 1).unwrap().access_log.is_none());
    }

    #[test]
    fn access_log_directory_must_exist() {
        let text = routed("[access_log]\nenabled = true\npath = \"/nonexistent-dir/x.log\"\n");
        let err = load_str(&text, None, 1).unwrap_err();
        assert_eq!(
            err.problems[0].to_string(),
            "access_log.path: directory /nonexistent-dir does not exist"
        );
        let dir = tempfile::tempdir().unwrap();
        let text = routed(&format!(
            "[access_log]\nenabled = true\npath = \"{}\"\n",
            dir.path().display()
        ));
        let err = load_str(&text, None, 1).unwrap_err();
        assert!(err.problems[0].message.ends_with("is a directory"), "{err}");
    }

    #[test]
    fn access_log_file_is_created_or_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let text = routed(&format!(
            "[access_log]\nenabled = true\npath = \"{}\"\n",
            path.display()
        ));
        let sink = load_str(&text, None, 1).unwrap().access_log.unwrap();
        assert!(path.is_file(), "created when the config is compiled");
        sink.write_line(b"one\n").unwrap();
        // A reload opens it again and appends.
        let again = load_str(&text, None, 2).unwrap().access_log.unwrap();
        again.write_line(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        let stdout = load_str(&routed("[access_log]\nenabled = true\n"), None, 1).unwrap();
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
        let text =
            "[upstreams.x]\npeers = [\"no-such-host.invalid:80\"]\n[[routes]]\nupstream = \"x\"\n";
        let err = load_str(text, None, 1).unwrap_err();
        assert!(err.problems[0].message.contains("cannot resolve"), "{err}");
    }

    fn h2_upstream(extra: &str) -> String {
        routed(&format!(
            "[upstreams.g]\npeers = [\"127.0.0.1:50051\"]\nprotocol = \"h2c\"\n{extra}"
        ))
    }

    #[test]
    fn h2_streams_per_connection_default_to_100_and_reach_the_peer() {
        for (extra, want) in [("", 100), ("max_concurrent_streams = 7\n", 7)] {
            let s = load_str(&h2_upstream(extra), None, 1).unwrap();
            let UpstreamKind::Http(up) = &s.upstreams[0].kind else {
                panic!("http upstream expected");
            };
            assert_eq!(up.spec.max_concurrent_streams, want);
            let (address, _) = up.select().unwrap();
            let peer = up.peer(address);
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
        assert_problems(
            text,
            &[
                "server.trusted_proxies[1]: invalid network \"not-a-net\"",
                "propagation.forwarded: unknown mode \"prepend\"",
                "propagation.trusted_networks[0]: invalid network \"10.0.0.0/33\"",
                "propagation.max_injected_bytes: must be 0 (no budget) or at least 2048",
                "propagation.max_injected_headers: must be 0 (no budget) or at least 32",
                "routes[0].propagation.forwarded: unknown mode \"x\"",
                "routes[0].propagation.trusted_networks[0]: invalid network \"::1/129\"",
                "routes[0].propagation.max_injected_bytes: must be 0 (no budget) or at least 2048",
            ],
        );
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

    #[test]
    fn browser_keys_are_validated_with_their_paths() {
        let text = r#"
            [propagation]
            trace_id_header = "content-length"
            timing_allow_origin = ["ftp://x"]
            [propagation.cors]
            mode = "answer"
            allow_credentials = true
            allow_origins = ["*", "example.com"]
            allow_methods = ["get"]
            allow_headers = ["bad header"]
            max_age = "48h"
            [upstreams.u]
            kind = "echo"
            [upstreams.u.propagation.cors]
            mode = "reply"
            [[routes]]
            upstream = "u"
            [[routes]]
            path_prefix = "/r"
            upstream = "u"
            propagation = { trace_id_header = "bad name", cors = { allow_origins = [] } }
        "#;
        assert_problems(
            text,
            &[
                "propagation.trace_id_header: \"content-length\" is a header the gateway or HTTP",
                "propagation.timing_allow_origin[0]: invalid origin \"ftp://x\"",
                "propagation.cors.allow_origins[1]: invalid origin \"example.com\"",
                "propagation.cors.allow_methods[0]: invalid method \"get\"",
                "propagation.cors.allow_headers[0]: invalid header name \"bad header\"",
                "propagation.cors.max_age: must be at most 24h",
                "propagation.cors.allow_origins: \"*\" with allow_credentials = true",
                "upstreams.u.propagation.cors.mode: unknown mode \"reply\": expected \"off\", \"augment\" or \"answer\"",
                "routes[1].propagation.trace_id_header: invalid header name \"bad name\"",
                "routes[1].propagation.cors.allow_origins: mode \"answer\" needs at least one origin",
            ],
        );
    }

    #[test]
    fn browser_keys_compile_route_over_upstream_over_defaults() {
        use crate::mediate::browser::{CorsMode, OriginPattern};
        let text = r#"
            [propagation]
            server_timing = true
            [propagation.cors]
            allow_origins = ["https://app.example.com"]
            [upstreams.u]
            kind = "echo"
            propagation = { trace_id_header = "X-Trace-Id", cors = { mode = "answer" } }
            [[routes]]
            name = "a"
            upstream = "u"
            [[routes]]
            name = "b"
            path_prefix = "/b"
            upstream = "u"
            propagation = { server_timing = false, cors = { mode = "off" }, trace_id_header = "" }
        "#;
        let s = load_str(text, None, 1).unwrap();
        let d = &s.defaults.browser;
        assert_eq!(
            d.cors.mode,
            CorsMode::Augment,
            "a cors table turns augment on"
        );
        assert!(d.server_timing);
        let a = &s.router.route(0).unwrap().policy.browser;
        assert_eq!(a.cors.mode, CorsMode::Answer);
        assert_eq!(
            a.cors.allow_origins,
            [OriginPattern::Exact("https://app.example.com".into())]
        );
        assert_eq!(
            a.trace_id_header.as_ref().map(|h| h.as_str()),
            Some("x-trace-id")
        );
        assert!(a.server_timing);
        let b = &s.router.route(1).unwrap().policy.browser;
        assert_eq!(b.cors.mode, CorsMode::Off);
        assert_eq!(b.trace_id_header, None);
        assert!(!b.server_timing);
        // Nothing configured: nothing active.
        let plain = load_str(&routed("[server]\n"), None, 1).unwrap();
        assert!(!plain.router.route(0).unwrap().policy.browser.is_active());
    }

    #[test]
    fn every_problem_is_reported_even_with_unknown_keys() {
        let text = r#"[server]
grace_period = "soon"
bogus_knob = 1

[upstreams.orders]
peers = ["127.0.0.1:9000"]
conect_timeout = "1s"

[[routes]]
upstream = "ordrs"
propagation = { injct = ["b3"], extract = ["zipkin"] }
"#;
        let err = load_str(text, None, 1).unwrap_err();
        let msgs: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 6, "{msgs:#?}");
        // The valid keys are the raw struct's own, whatever keys are added to it.
        assert!(
            msgs[0].starts_with(
                "line 3: server.bogus_knob: unknown key `bogus_knob`; valid keys here: `listen`, \
                 `h2c`, "
            ) && msgs[0].contains("`admin_token`"),
            "{msgs:#?}"
        );
        assert_eq!(
            msgs[1..],
            [
                "line 7: upstreams.orders.conect_timeout: unknown key `conect_timeout`; did you \
                 mean `connect_timeout`?",
                "line 11: routes[0].propagation.injct: unknown key `injct`; did you mean `inject`?",
                "server.grace_period: invalid duration \"soon\" (expected number at 0); write \
                 e.g. \"1s\" or \"250ms\"",
                "routes[0].upstream: no upstream named \"ordrs\"",
                "routes[0].propagation.extract[0]: unknown format \"zipkin\"; did you mean `b3` \
                 or `b3multi`?",
            ],
            "{msgs:#?}"
        );
    }

    #[test]
    fn a_mistyped_value_is_reported_once_beside_the_rest() {
        let text = "[server]\nthreads = \"two\"\nlisten = [1]\n[[routes]]\nupstream = 7\n";
        let err = load_str(text, None, 1).unwrap_err();
        let msgs: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("line 2: server.threads: invalid type"),
            "{msgs:#?}"
        );
        assert!(
            msgs[1].starts_with("line 3: server.listen[0]: invalid type"),
            "{msgs:#?}"
        );
        // Not also "routes[0].upstream: is required": the key was reported and left out.
        assert!(
            msgs[2].starts_with("line 5: routes[0].upstream: invalid type"),
            "{msgs:#?}"
        );
    }

    #[test]
    fn the_number_of_key_problems_listed_is_bounded() {
        let text: String = (0..150).map(|i| format!("bogus{i} = {i}\n")).collect();
        let problems = parse(&text).unwrap_err();
        assert_eq!(problems.len(), MAX_KEY_PROBLEMS + 1);
        // Top-level keys: whatever sections the raw config has.
        assert!(
            problems[0]
                .to_string()
                .starts_with("line 1: bogus0: unknown key `bogus0`; valid keys here: `server`, "),
            "{problems:?}"
        );
        assert!(problems[MAX_KEY_PROBLEMS]
            .message
            .starts_with("more than 100"));
    }

    #[test]
    fn a_valid_file_still_parses_in_one_pass() {
        let raw = parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(raw.routes.len(), 1);
        assert!(
            parse("[server]\nthreads = 2\n").is_ok(),
            "validation is stage 2"
        );
    }

    #[test]
    fn every_raw_struct_rejects_unknown_keys() {
        // parse_collecting finds unknown keys through serde's deny_unknown_fields: a raw
        // struct without it would accept any key silently. Each deserialized struct's
        // attributes (from its derive to its `struct` line) must carry it.
        let src = include_str!("raw.rs");
        let mut checked = Vec::new();
        let mut attrs: Option<String> = None;
        for line in src.lines().map(str::trim_start) {
            if line.starts_with("#[derive(") && line.contains("Deserialize") {
                attrs = Some(String::new());
            } else if let Some(a) = attrs.as_mut() {
                if line.starts_with("pub struct ") || line.starts_with("struct ") {
                    checked.push(line.to_string());
                    assert!(a.contains("deny_unknown_fields"), "{line} lacks it");
                    attrs = None;
                } else if line.starts_with("pub enum ") || line.starts_with("enum ") {
                    attrs = None;
                } else {
                    a.push_str(line);
                }
            }
        }
        assert!(checked.len() >= 12, "{checked:?}");
    }

    #[test]
    fn an_empty_file_is_not_a_config() {
        for text in ["", "\n", "  \n\t\n"] {
            let err = load_str(text, None, 1).unwrap_err();
            assert_eq!(err.problems.len(), 1);
            assert_eq!(err.problems[0].message, "the file is empty");
        }
        // Comments only: valid TOML, but no route.
        let err = load_str("# nothing yet\n", None, 1).unwrap_err();
        assert!(
            err.problems[0].to_string().starts_with("routes: no route"),
            "{err}"
        );
    }

    #[test]
    fn routes_are_required_unless_opted_out() {
        let err = load_str("[upstreams.u]\nkind = \"echo\"\n", None, 1).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].path, "routes");
        let s = load_str("[server]\nallow_no_routes = true\n", None, 1).unwrap();
        assert_eq!(s.router.len(), 0);
    }

    #[test]
    fn a_reload_keeps_the_admin_token_unless_told() {
        let with = routed("[server]\nadmin_token = \"s3cret\"\n");
        let serving = load_str(&with, None, 1).unwrap();
        let err = load_str_reusing(ROUTE, None, 2, Some(&serving)).unwrap_err();
        assert_eq!(err.problems[0].path, "server.admin_token", "{err}");
        // Start-up has nothing to compare with, and the opt-in and a new token pass.
        assert!(load_str(ROUTE, None, 1).is_ok());
        let opt_in = routed("[server]\nallow_admin_token_removal = true\n");
        assert!(load_str_reusing(&opt_in, None, 2, Some(&serving)).is_ok());
        let other = routed("[server]\nadmin_token = \"other\"\n");
        assert!(load_str_reusing(&other, None, 2, Some(&serving)).is_ok());
        let unset = load_str(ROUTE, None, 1).unwrap();
        assert!(load_str_reusing(ROUTE, None, 2, Some(&unset)).is_ok());
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ok.toml");
        std::fs::write(&file, DEFAULT_CONFIG).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_file(&link).unwrap(),
            DEFAULT_CONFIG,
            "symlinks followed"
        );
        let fifo = dir.path().join("fifo.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // (reason, path, expected message end)
        let rows = [
            (
                "a FIFO would block",
                fifo.as_path(),
                "it is a FIFO; a config must be a regular file",
            ),
            (
                "a device never ends",
                Path::new("/dev/zero"),
                "it is a device; a config must be a regular file",
            ),
            (
                "a directory",
                dir.path(),
                "it is a directory; a config must be a regular file",
            ),
        ];
        for (why, path, want) in rows {
            let err = read_file(path).unwrap_err();
            assert!(err.problems[0].message.ends_with(want), "{why}: {err}");
        }
        let big = dir.path().join("big.toml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = read_file(&big).unwrap_err();
        assert!(
            err.problems[0].message.contains("larger than 4 MiB"),
            "{err}"
        );
        f.set_len(MAX_FILE_BYTES).unwrap();
        assert!(read_file(&big).is_ok(), "the limit itself is allowed");
    }
}
