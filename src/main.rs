//! The `tracebridge` binary: parses the command line, loads the config and starts the
//! server. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tracebridge::config::{self, Snapshot};
use tracebridge::reload::{self, ConfigHandle};
use tracebridge::server::{self, StartOptions};

/// Trace-context mediating reverse proxy.
///
/// Without --config it runs on ./tracebridge.toml if present, else on the built-in
/// default config (listen 127.0.0.1:8080, admin 127.0.0.1:9901, everything to the
/// built-in echo upstream).
///
/// Signals: SIGTERM drains (readyz 503, in-flight requests finish) and stops when the
/// last client connection ends, at most after `server.grace_period`; SIGINT stops at once;
/// SIGQUIT hands the listening sockets to a new process started with --upgrade
/// (zero-downtime binary upgrade).
#[derive(Parser, Debug)]
#[command(name = "tracebridge", version, about, long_about)]
struct Cli {
    /// Config file (TOML).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,

    /// Take over the listening sockets of a running instance (send it SIGQUIT next).
    #[arg(short, long)]
    upgrade: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config file: print every problem, exit 0 when valid, 1 when not.
    Check,
    /// Translate trace headers between formats, keeping the incoming parent span id.
    ///
    /// Reads `-H 'name: value'` arguments, or `name: value` lines from stdin when no
    /// -H is given. Prints the translated headers as `name: value` lines (or JSON with
    /// --json). Exit 1: the headers were invalid; exit 2: no trace context found.
    ///
    /// With --config, simulates one route of that config instead of --from/--to: its
    /// extract order, trust, sampling and inject list (and the OpenTelemetry
    /// environment variables), printing the headers as the upstream would receive them
    /// after `#` lines saying what the route did. The route is --route NAME, or the one
    /// a GET for --host and --path (default /) matches.
    Translate {
        /// A request header, `name: value`; repeatable.
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// Formats to read, in precedence order: a comma list of format ids, or `all`
        /// (default).
        #[arg(long, value_name = "FORMATS", conflicts_with = "config")]
        from: Option<String>,
        /// Formats to write: a comma list of format ids, or `all` (default).
        #[arg(long, value_name = "FORMATS", conflicts_with = "config")]
        to: Option<String>,
        /// With --config: the route to simulate, by name.
        #[arg(long, value_name = "NAME", requires = "config", conflicts_with_all = ["host", "path"])]
        route: Option<String>,
        /// With --config: the Host of the request whose route is simulated.
        #[arg(long, value_name = "HOST", requires = "config")]
        host: Option<String>,
        /// With --config: the path of the request whose route is simulated.
        #[arg(long, value_name = "PATH", requires = "config")]
        path: Option<String>,
        /// Print JSON instead of header lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the coverage table of a running gateway: per route, the formats that
    /// arrive, how many requests carry no trace context, invalid headers, conflicts and
    /// the formats injected (the admin listener's `GET /coverage`).
    ///
    /// Exit 1 when the admin listener cannot be reached or answers with an error.
    Coverage {
        /// The admin listener's URL.
        #[arg(long, default_value = "http://127.0.0.1:9901", value_name = "URL")]
        admin: String,
    },
    /// Turn access log lines that carry trace context into spans, one per line, sent
    /// over the config's exporters (`[telemetry]`, `[[telemetry.exporters]]`).
    ///
    /// For the hops that can only log: a managed load balancer (AWS ALB access logs, the
    /// trace_id field holding X-Amzn-Trace-Id), a proxy logging `traceparent` or `b3` as
    /// JSON (nginx, Envoy), or tracebridge's own access log. A span gets the logged
    /// start time and duration, HTTP attributes, the logged context as its parent, and
    /// a span id derived from the line (the same file gives the same spans). Bad lines
    /// are reported with their number and counted, never fatal. Defaults come from
    /// `[telemetry.logs_to_traces]`; a config without routes needs
    /// `server.allow_no_routes = true`.
    LogsToTraces {
        /// The log file; `-` or none reads standard input.
        file: Option<PathBuf>,
        /// `alb`, `tracebridge` or `json`.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
        /// `json`: where a value is, `KEY=FIELD`: KEY is time, duration, method, path,
        /// status, host, user_agent, client, or header:NAME for a logged trace header
        /// (header:traceparent=http_traceparent); repeatable.
        #[arg(long = "field", value_name = "KEY=FIELD")]
        fields: Vec<String>,
        /// `json`: the logged time is the request's `start` or the response's `end`.
        #[arg(long, value_name = "start|end")]
        time_at: Option<String>,
        /// `json`: unit of the logged duration, `s`, `ms` or `us`.
        #[arg(long, value_name = "UNIT")]
        duration_unit: Option<String>,
        /// Keep reading a growing file (until stopped, like `tail -f`).
        #[arg(long)]
        follow: bool,
        /// A progress line on stderr every this many lines (0: none).
        #[arg(long, default_value_t = 100_000, value_name = "LINES")]
        progress_every: u64,
    },
}

/// The `logs-to-traces` options given on the command line, over the config's.
struct LogsArgs<'a> {
    format: Option<&'a str>,
    fields: &'a [String],
    time_at: Option<&'a str>,
    duration_unit: Option<&'a str>,
}

fn logs_settings(
    base: &tracebridge::config::spec::LogsSettings,
    args: &LogsArgs<'_>,
) -> Result<tracebridge::config::spec::LogsSettings, String> {
    use tracebridge::config::spec::{LogFields, LogFormat};
    use tracebridge::model::Named;
    let mut s = base.clone();
    if let Some(f) = args.format {
        s.format = LogFormat::from_name(f)
            .ok_or_else(|| format!("unknown --format {f:?}: expected {}", LogFormat::expected()))?;
    }
    for pair in args.fields {
        let (key, field) = pair
            .split_once('=')
            .ok_or_else(|| format!("--field {pair:?}: expected KEY=FIELD"))?;
        s.fields
            .set(key.trim(), field.trim())
            .map_err(|e| format!("--field {pair:?}: {e}"))?;
    }
    match args.time_at {
        None => {}
        Some("start") => s.fields.time_at_end = false,
        Some("end") => s.fields.time_at_end = true,
        Some(other) => return Err(format!("--time-at {other:?}: expected start or end")),
    }
    if let Some(u) = args.duration_unit {
        s.fields.duration_unit = LogFields::unit(u)
            .ok_or_else(|| format!("--duration-unit {u:?}: expected s, ms or us"))?;
    }
    Ok(s)
}

fn run_logs_to_traces(
    snapshot: &Snapshot,
    file: Option<&std::path::Path>,
    args: &LogsArgs<'_>,
    options: tracebridge::telemetry::log_to_trace::Options,
) -> ExitCode {
    use std::io::BufRead;
    use tracebridge::telemetry::{log_to_trace, Telemetry};
    let settings = match logs_settings(&snapshot.telemetry.logs, args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut input: Box<dyn BufRead> = match file {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("error: cannot open {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let telemetry = Telemetry::from_settings(&snapshot.telemetry);
    let result = log_to_trace::run(
        &settings,
        &telemetry,
        &mut input,
        options,
        &mut std::io::stderr(),
    );
    // Every span made is exported before the process ends.
    telemetry.shutdown();
    match result {
        Ok(s) => {
            eprintln!(
                "logs-to-traces: {} lines, {} spans, {} bad lines",
                s.lines, s.spans, s.bad
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: reading the log: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_coverage(admin: &str) -> ExitCode {
    match tracebridge::cli::admin_get(
        admin,
        "/coverage",
        "text/plain",
        std::time::Duration::from_secs(5),
    ) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The input headers of `translate`: the -H arguments, else stdin. `Err` is the
/// message to print (a bad header line or an unreadable stdin: exit 1 either way).
fn translate_input(headers: &[String]) -> Result<http::HeaderMap, String> {
    use std::io::Read;
    use tracebridge::translate;
    let parsed = if headers.is_empty() {
        let mut stdin = String::new();
        std::io::stdin()
            .read_to_string(&mut stdin)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        translate::parse_headers(stdin.lines())
    } else {
        translate::parse_headers(headers.iter().map(String::as_str))
    };
    parsed.map_err(|e| e.to_string())
}

/// `translate --config`: one route of the config, simulated.
fn run_simulation(
    path: &std::path::Path,
    headers: &[String],
    query: tracebridge::translate::RouteQuery<'_>,
    as_json: bool,
) -> ExitCode {
    use tracebridge::translate;
    let snapshot = match config::load_file(path, 1) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: invalid config {e}");
            return ExitCode::FAILURE;
        }
    };
    let input = match translate_input(headers) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = query
        .find(&snapshot, &input)
        .and_then(|i| translate::simulate(&snapshot, i, &input));
    match result {
        Ok(s) if as_json => {
            println!("{:#}", s.to_json());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            print!("{}", s.to_lines());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_translate(headers: &[String], from: &str, to: &str, as_json: bool) -> ExitCode {
    use tracebridge::translate::{self, TranslateError};
    let (from, to) = match (translate::parse_formats(from), translate::parse_formats(to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let input = match translate_input(headers) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = translate::translate(&input, &from, &to);
    match result {
        Ok(t) if as_json => {
            println!("{:#}", translate::to_json(&t));
            ExitCode::SUCCESS
        }
        Ok(t) => {
            print!("{}", translate::to_lines(&t.headers));
            ExitCode::SUCCESS
        }
        Err(e @ TranslateError::NotFound) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The config file to use, or `None` for the built-in one.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config.clone().or_else(config::default_path)
}

fn load(path: Option<&PathBuf>) -> Result<Snapshot, config::ConfigError> {
    match path {
        Some(p) => config::load_file(p, 1),
        None => config::load_str(config::DEFAULT_CONFIG, None, 1),
    }
}

/// jemalloc rather than glibc's malloc: the request path allocates small objects on
/// the worker threads and the span export thread frees them. glibc serves those frees
/// under the allocating thread's arena lock, so the request path waits on futexes (the
/// mediation bench: 42,000 context switches and 1.54 s of CPU for 300,000 requests,
/// against 590 and 0.90 s with jemalloc). mimalloc was as fast but doubled the peak RSS
/// with 1,000 connections (138 MiB against 70 MiB); jemalloc's is glibc's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Translate {
        headers,
        from,
        to,
        route,
        host,
        path,
        json,
    }) = &cli.command
    {
        if let Some(config) = &cli.config {
            // Warnings about the OpenTelemetry environment variables go to stderr.
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
                .init();
            let query = tracebridge::translate::RouteQuery {
                name: route.as_deref(),
                host: host.as_deref(),
                path: path.as_deref(),
            };
            return run_simulation(config, headers, query, *json);
        }
        return run_translate(
            headers,
            from.as_deref().unwrap_or("all"),
            to.as_deref().unwrap_or("all"),
            *json,
        );
    }
    if let Some(Command::Coverage { admin }) = &cli.command {
        return run_coverage(admin);
    }
    // pingora_load_balancing at info: its one other line, "... becomes healthy", is
    // the recovery of a health-checked peer.
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("warn,tracebridge=info,pingora_load_balancing=info"),
    )
    .init();
    let path = config_path(&cli);
    let snapshot = match load(path.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: invalid config {e}");
            return ExitCode::FAILURE;
        }
    };
    // Allowed but probably not meant (a route that never matches): said, not refused.
    for w in &snapshot.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(Command::LogsToTraces {
        file,
        format,
        fields,
        time_at,
        duration_unit,
        follow,
        progress_every,
    }) = &cli.command
    {
        let args = LogsArgs {
            format: format.as_deref(),
            fields,
            time_at: time_at.as_deref(),
            duration_unit: duration_unit.as_deref(),
        };
        let options = tracebridge::telemetry::log_to_trace::Options {
            follow: *follow,
            progress_every: *progress_every,
            poll: std::time::Duration::from_millis(200),
        };
        return run_logs_to_traces(&snapshot, file.as_deref(), &args, options);
    }
    if let Some(Command::Check) = cli.command {
        // The effective browser-edge settings of each route that has any (issue 20).
        for i in 0..snapshot.router.len() {
            if let Some(r) = snapshot.router.route(i) {
                let p = &r.policy;
                if p.browser.is_active() || p.response_header {
                    let tr = p.response_header;
                    println!(
                        "route {}: traceresponse={tr} {}",
                        r.name,
                        p.browser.summary()
                    );
                }
            }
        }
        println!("{}: ok", snapshot.source.name());
        return ExitCode::SUCCESS;
    }
    let source = snapshot.source.name();
    let listen = snapshot.server.listen.join(", ");
    let admin = snapshot.server.admin_listen.clone();
    let handle = ConfigHandle::new(snapshot, path);
    let built = match server::build(
        handle.clone(),
        StartOptions {
            upgrade: cli.upgrade,
        },
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Config file changes reload live (the built-in config has no file).
    let _watcher = handle.path().map(|_| {
        reload::watch(handle.clone(), std::time::Duration::from_millis(200))
            .map_err(|e| log::error!("not watching the config file: {e}"))
    });
    log::info!(
        "tracebridge {} on {listen} (admin {admin}), config {source}",
        env!("CARGO_PKG_VERSION")
    );
    built.run(Box::new(pingora::server::UnixShutdownSignalWatch));
    // As pingora's `run_forever`: the runtimes are down, exit without unwinding them.
    std::process::exit(0)
}
