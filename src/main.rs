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
