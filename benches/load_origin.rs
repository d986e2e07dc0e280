//! The origin of the whole-proxy load benchmark (`bash benches/load/run.sh`): answers
//! every HTTP/1.1 request with `200 ok`, on one thread, keep-alive without limit.
//!
//! ```sh
//! cargo bench --bench load_origin -- --listen 127.0.0.1:8081
//! ```
//!
//! Why not nginx `return 200`, which was the origin until 2026-12-07: the origin shares
//! the load CPU with wrk, and nginx parses every header byte by byte (about 14
//! instructions a byte). A contestant that sends more headers upstream then takes load
//! CPU from wrk: under `b3-3`, nginx as origin ran 7,666 instructions per request behind
//! nginx (which passes one `b3` header on) and 13,780 behind tracebridge (which sends the
//! request's trace context in three formats and the forwarding headers), with the load
//! CPU 95-98 % busy, so req/s measured the origin as well as the contestant. This
//! origin looks for the end of the head (`memchr`'s vectorised search) and parses the
//! head only for methods other than `GET` and `HEAD`, so what it costs hardly
//! depends on the headers a contestant adds (1,259 and 1,506 instructions a request in
//! the same measurement), and the contestant alone decides req/s.
//!
//! What it accepts: requests with no body or a `Content-Length` body up to 16 MiB,
//! pipelined or not. A head over 64 KiB, a `Transfer-Encoding`, a larger or unreadable
//! `Content-Length`, or (for a method with a body) a head `httparse` refuses gets a 400
//! and the connection is closed. Runs until killed. Cargo's
//! `--bench` argument is ignored; without `--listen` it exits at once, so a plain
//! `cargo bench` does not hang.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The answer, shaped like nginx's `return 200 "ok\n"` (the origin before this one), so
/// the contestants relay the same response head as before: the date goes between the
/// two halves.
const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: load_origin\r\nDate: ";
const OK_TAIL: &[u8] =
    b"\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let mut listen: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next().map(|v| v.parse()) {
                Some(Ok(a)) => listen = Some(a),
                _ => {
                    eprintln!("load_origin: --listen needs an address");
                    return ExitCode::from(2);
                }
            },
            "--bench" => {}
            other => {
                eprintln!("load_origin: unknown argument {other}");
                eprintln!("usage: load_origin --listen ADDR");
                return ExitCode::from(2);
            }
        }
    }
    let Some(addr) = listen else {
        // `cargo bench` with no filter runs every bench: don't serve forever then.
        println!(
            "load_origin: not a benchmark, the origin of benches/load/run.sh; give --listen ADDR"
        );
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load_origin: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("load_origin: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("load_origin: answering 200 on {addr}");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream));
                }
                // Out of descriptors and the like: the client retries; keep serving.
                Err(e) => eprintln!("load_origin: accept: {e}"),
            }
        }
    })
}

/// Answers the requests of one connection until the client closes it.
async fn serve(mut stream: TcpStream) {
    let end_of_head = memmem::Finder::new(b"\r\n\r\n");
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut date = Date::default();
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Every complete request in the buffer, answered in order with one write.
        let mut at = 0;
        let mut bad = false;
        // A complete head waiting for its body: the buffer may then hold more than a head.
        let mut body_pending = false;
        while let Some(end) = end_of_head.find(&buf[at..]) {
            let head = &buf[at..at + end + 4];
            let Some(body) = body_length(head).filter(|&b| b <= MAX_BODY) else {
                bad = true;
                break;
            };
            if buf.len() - at < head.len() + body {
                body_pending = true;
                break;
            }
            at += head.len() + body;
            out.extend_from_slice(OK_HEAD);
            out.extend_from_slice(date.now());
            out.extend_from_slice(OK_TAIL);
        }
        bad |= !body_pending && buf.len() - at > MAX_HEAD;
        buf.drain(..at);
        if bad {
            out.extend_from_slice(BAD);
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() || bad {
                return;
            }
            out.clear();
        }
    }
}

/// The `Date` header's value, formatted again only when the second changes.
#[derive(Default)]
struct Date {
    second: u64,
    text: String,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

/// The length of the body after `head`: none for `GET` and `HEAD` (all the benchmark
/// sends; a body on them is not served), else its `Content-Length` (`httparse` reads the
/// head), 0 without one; `None` for a `Transfer-Encoding` (not served), a `Content-Length`
/// that is not a number or a head `httparse` refuses.
fn body_length(head: &[u8]) -> Option<usize> {
    if head.starts_with(b"GET ") || head.starts_with(b"HEAD ") {
        return Some(0);
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).ok()?.is_complete().then_some(())?;
    let mut length = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
    }
    Some(length)
}
