//! The OTLP sink of the whole-proxy load benchmark (`bash benches/load/run.sh`): the
//! test receiver of `tests/support/otlp.rs` in `Count` mode, which decodes every export
//! down to its spans and counts them without decoding or keeping them: a run of
//! millions of spans uses constant memory, and the sink, which shares the load CPU with
//! wrk and the origin, takes little of it (a full decode took enough to lower the
//! OTLP scenario's throughput by about 5 %).
//!
//! ```sh
//! cargo bench --bench load_sink -- --http 127.0.0.1:4318 --grpc 127.0.0.1:4317
//! ```
//!
//! Both addresses speak OTLP/HTTP and OTLP/gRPC (one auto HTTP/1.1 + h2c server each);
//! two are taken because exporters dial the conventional port of their transport. Both
//! count into the same totals, read with `GET /stats` on either: `{"spans":N,"requests":M}`.
//! Runs until killed. Cargo's `--bench` argument is ignored; without an address it exits
//! at once, so a plain `cargo bench` (every bench) does not hang on it.

#[allow(dead_code)] // the sink uses only part of the test receiver
#[path = "../tests/support/otlp.rs"]
mod otlp;

use std::net::SocketAddr;
use std::process::ExitCode;

use otlp::{CollectorMode, OtlpReceiver};

fn main() -> ExitCode {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--http" | "--grpc" => {
                let Some(value) = args.next() else {
                    eprintln!("load_sink: {arg} needs an address");
                    return ExitCode::from(2);
                };
                match value.parse() {
                    Ok(a) => addrs.push(a),
                    Err(e) => {
                        eprintln!("load_sink: {arg} {value}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--bench" => {}
            other => {
                eprintln!("load_sink: unknown argument {other}");
                eprintln!("usage: load_sink --http ADDR [--grpc ADDR]");
                return ExitCode::from(2);
            }
        }
    }
    if addrs.is_empty() {
        // `cargo bench` with no filter runs every bench: don't serve forever then.
        println!(
            "load_sink: not a benchmark, the OTLP sink of benches/load/run.sh; give --http ADDR"
        );
        return ExitCode::SUCCESS;
    }
    // One receiver on every address: the same counters behind each listener.
    let receiver = match OtlpReceiver::start_on_all(&addrs, CollectorMode::Count) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load_sink: cannot listen on {addrs:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listening: Vec<String> = receiver.addrs.iter().map(|a| a.to_string()).collect();
    println!("load_sink: counting OTLP spans on {}", listening.join(", "));
    loop {
        std::thread::park();
    }
}
