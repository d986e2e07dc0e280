//! Issue 19 item 4: the fast path's HTTP/1 head parser (`src/proxy/fast/head.rs`) against
//! pingora 0.9.1's own reader (what the fallback runs), on the same bytes, in-process
//! (`tracebridge::proxy::fast::differential`).
//!
//! The rule: whenever the fast parser says Fast, pingora accepts the same bytes with the
//! same method, target, headers and body framing; whenever pingora rejects, the fast parser
//! does not say Fast. The fast parser may be *stricter* — every input where it rejects what
//! pingora accepts is listed below as `Stricter` with the reason. Silently different
//! framing is never allowed.
//!
//! The expectations are pinned per input, so loosening a rule of the fast parser (say,
//! dropping its bare-LF check) fails here even where the two parsers would still agree.

mod support;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use support::{one_route, raw_exchange, Background, TestGateway};
use tokio::sync::oneshot;
use tracebridge::proxy::fast::differential::{check, compare, fast_verdict, Verdict};

/// What an input must produce.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Fast, and pingora accepts it the same way.
    Fast,
    /// The fast parser hands it to pingora, with this reason (pingora may accept or reject).
    Delegate(&'static str),
    /// Both refuse it.
    BothReject,
    /// The fast parser refuses what pingora accepts: why that is right.
    Stricter(&'static str),
    /// Neither sees a complete head.
    Incomplete,
}
use Expect::*;

fn corpus() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let b = |s: &[u8]| s.to_vec();
    let many = |n: usize| {
        let mut v = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..n {
            v.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    };
    vec![
        // --- plain requests both take the same way ---
        ("simple get", b(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), Fast),
        ("query", b(b"GET /a/b?c=d&e=f HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"), Fast),
        ("post with body", b(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), Fast),
        ("http/1.0 without host", b(b"GET / HTTP/1.0\r\n\r\n"), Fast),
        ("http/1.0 keep-alive", b(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n"), Fast),
        ("leading crlf", b(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        ("pipelined", b(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        ("pipelined after a body", b(b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        ("obs-text value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xff\xfe\r\n\r\n"), Fast),
        ("utf-8 target", b(b"GET /caf\xc3\xa9/\xe2\x98\x83 HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        ("interleaved duplicates", b(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n"), Fast),
        ("extension method", b(b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        ("lowercase method", b(b"get / HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        ("content-length 0", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), Fast),
        ("content-length leading zeros", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567"), Fast),
        ("content-length with ows", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t 5 \t\r\n\r\nhello"), Fast),
        ("content-length odd case", b(b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 2\r\n\r\nhi"), Fast),
        ("content_length is just a header", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n"), Fast),
        ("tab inside a value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n"), Fast),
        ("every tchar in a name", b(b"GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"), Fast),
        ("empty value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY:   \r\n\r\n"), Fast),
        ("empty host", b(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), Fast),
        ("ipv6 host", b(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), Fast),
        ("256 headers", many(255), Fast),
        ("100 kib value", [&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..], &vec![b'v'; 100 * 1024], b"\r\n\r\n"].concat(), Fast),
        ("json in the path", b(b"GET /{\"a\":1}|x?q={}`|^ HTTP/1.1\r\nHost: a\r\n\r\n"), Fast),
        // --- request smuggling classics ---
        ("cl.te", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"), Stricter("CL with TE: pingora frames by TE and drops CL; an origin that frames by CL would not (RFC 9112 6.1 allows rejecting, nginx does)")),
        ("te.cl", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"), Stricter("same as cl.te, other order")),
        ("te chunked", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), Delegate("transfer-encoding")),
        ("te chunked, identity", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"), Delegate("transfer-encoding")),
        ("te identity, chunked", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n"), Delegate("transfer-encoding")),
        ("te gzip", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), Delegate("transfer-encoding")),
        ("te xchunked", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), Delegate("transfer-encoding")),
        ("te twice", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"), Delegate("transfer-encoding")),
        ("te with htab ows", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n"), Delegate("transfer-encoding")),
        ("te with obs-fold", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n"), BothReject),
        ("te space before colon", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), BothReject),
        ("te tab before colon", b(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n"), BothReject),
        ("te in http/1.0", b(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), BothReject),
        ("cl duplicated equal", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), Stricter("several Content-Length: nginx rejects any duplicate; pingora/hyper collapse equal ones")),
        ("cl list equal", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"), Stricter("a Content-Length list: as a duplicate, and not 1*DIGIT")),
        ("cl duplicated differing", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), BothReject),
        ("cl list differing", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), BothReject),
        ("cl plus sign", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"), BothReject),
        ("cl hex", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"), BothReject),
        ("cl negative", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), BothReject),
        ("cl two numbers", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), BothReject),
        ("cl overflow", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), BothReject),
        ("cl empty", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), BothReject),
        ("cl underscore", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n"), BothReject),
        ("cl leading space", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5\r\n\r\nhello"), Fast),
        ("cl with obs-fold", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n 5\r\n\r\n"), BothReject),
        ("cl over the fast limit", b(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"), Delegate("body over fast-path limit")),
        // --- line endings and bytes ---
        ("bare lf everywhere", b(b"GET / HTTP/1.1\nHost: a\nX: b\n\n"), Stricter("bare LF line endings: an origin or a front proxy may not see these lines where httparse does (RFC 9112 2.2)")),
        ("bare lf after a field", b(b"GET / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n"), Stricter("bare LF hides a Transfer-Encoding from a CRLF-only parser")),
        ("bare lf final line", b(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), Stricter("bare LF as the empty line")),
        ("bare lf before the request line", b(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("RFC 9112 2.2 only says a server SHOULD ignore a leading CRLF")),
        ("bare lf after the request line", b(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), Stricter("bare LF ends the request line")),
        ("bare cr in a value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), BothReject),
        ("bare cr after the request line", b(b"GET / HTTP/1.1\rHost: a\r\n\r\n"), BothReject),
        ("bare cr as the final line", b(b"GET / HTTP/1.1\r\nHost: a\r\n\rX"), BothReject),
        ("nul in a value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), BothReject),
        ("nul in a name", b(b"GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n"), BothReject),
        ("ctl in a value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), BothReject),
        ("del in a value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"), BothReject),
        ("esc in a value", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n"), BothReject),
        ("high byte in a name", b(b"GET / HTTP/1.1\r\nHost: a\r\nH\xc3\xb4st: a\r\n\r\n"), BothReject),
        ("empty name", b(b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), BothReject),
        ("name without colon", b(b"GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n"), BothReject),
        ("obs-fold", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), BothReject),
        ("obs-fold with tab", b(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), BothReject),
        ("space before the first field", b(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"), BothReject),
        ("separator in a name", b(b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), BothReject),
        // --- request line and target ---
        ("absolute-form", b(b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n"), Delegate("absolute-form target")),
        ("absolute-form other host", b(b"GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n"), Delegate("absolute-form target")),
        ("asterisk-form", b(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), Delegate("asterisk-form target")),
        ("connect", b(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), Delegate("connect")),
        ("h2 preface", b(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Delegate("http/2 preface")),
        ("http/0.9", b(b"GET /\r\n\r\n"), BothReject),
        ("http/1.2", b(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), BothReject),
        ("http/2.0 request line", b(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), BothReject),
        ("lowercase version", b(b"GET / http/1.1\r\nHost: a\r\n\r\n"), BothReject),
        ("space after the version", b(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), BothReject),
        ("bad method char", b(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), BothReject),
        ("empty method", b(b" / HTTP/1.1\r\nHost: a\r\n\r\n"), BothReject),
        ("space in the target", b(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("space in the request line: pingora percent-encodes it (/a%20b); nginx >= 1.21.1 answers 400")),
        ("two spaces before the target", b(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("pingora encodes the extra space into the target (%20/), which is no longer origin-form")),
        ("ctl in the target", b(b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("control byte in the target: pingora percent-encodes it")),
        ("tab in the target", b(b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("tab in the target: pingora percent-encodes it")),
        ("bare cr in the target", b(b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("bare CR in the request line: pingora percent-encodes it")),
        ("fragment", b(b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), Stricter("a fragment is not part of a request-target (RFC 9112 3.2); pingora strips it, so the two paths would forward different targets")),
        ("less-than in the path", b(b"GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n"), BothReject),
        ("quote in the query", b(b"GET /?a=\"b HTTP/1.1\r\nHost: a\r\n\r\n"), BothReject),
        ("target over 64 kib", [&b"GET /"[..], &vec![b'a'; 65_535], b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat(), BothReject),
        // --- host ---
        ("missing host", b(b"GET / HTTP/1.1\r\n\r\n"), Stricter("HTTP/1.1 without Host: RFC 9112 3.2 says 400, nginx does")),
        ("two hosts", b(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), BothReject),
        ("host with userinfo", b(b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"), BothReject),
        ("host with a space", b(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), Stricter("Host outside the authority characters (nginx: invalid host header)")),
        ("host with a slash", b(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), Stricter("Host outside the authority characters")),
        ("unicode host", b(b"GET / HTTP/1.1\r\nHost: \xc3\xa9xample.com\r\n\r\n"), Stricter("Host with raw UTF-8 (IDNs travel as punycode)")),
        // --- not for the fast path ---
        ("expect", b(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"), Delegate("expect")),
        ("websocket", b(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), Delegate("upgrade")),
        ("connection upgrade", b(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n"), Delegate("upgrade")),
        ("upgrade on http/1.0", b(b"GET / HTTP/1.0\r\nUpgrade: h2c\r\n\r\n"), Delegate("upgrade")),
        // --- limits ---
        ("257 headers", many(256), BothReject),
        ("head over 1 mib", [&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..], &vec![b'v'; 1_100_000], b"\r\n\r\n"].concat(), BothReject),
        ("partial head", b(b"GET / HTTP/1.1\r\nHost: a\r\n"), Incomplete),
        ("partial request line", b(b"GET /index.ht"), Incomplete),
        ("empty", b(b""), Incomplete),
    ]
}

#[test]
fn corpus_agrees_with_pingora() {
    let corpus = corpus();
    assert!(corpus.len() >= 60, "{} inputs", corpus.len());
    let mut failures = Vec::new();
    let mut stricter = Vec::new();
    for (name, bytes, expect) in &corpus {
        let (fast, pingora, agreed) = compare(bytes).unwrap();
        if let Err(d) = &agreed {
            failures.push(format!("{name}: {d:?}"));
        }
        let ok = match expect {
            Fast => matches!(fast, Verdict::Accepted(_)),
            Delegate(reason) => fast == Verdict::Delegated(reason),
            BothReject => {
                matches!(fast, Verdict::Rejected(_)) && matches!(pingora, Verdict::Rejected(_))
            }
            Stricter(why) => {
                stricter.push(format!("{name}: fast {fast:?}; {why}"));
                matches!(fast, Verdict::Rejected(_)) && matches!(pingora, Verdict::Accepted(_))
            }
            Incomplete => fast == Verdict::Incomplete && pingora == Verdict::Incomplete,
        };
        if !ok {
            let show = |v: &Verdict| match v {
                Verdict::Accepted(view) => format!(
                    "Accepted({} {:?})",
                    view.method,
                    String::from_utf8_lossy(&view.target)
                ),
                other => format!("{other:?}"),
            };
            failures.push(format!(
                "{name}: expected {expect:?}, fast {}, pingora {}",
                show(&fast),
                show(&pingora)
            ));
        }
    }
    // The list the lead reads: where the fast path refuses what the fallback accepts.
    eprintln!(
        "fast parser stricter than pingora on {} inputs:\n  {}",
        stricter.len(),
        stricter.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} of {} inputs:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}

/// Every one-byte edit (replace, insert, delete) of a few requests, every byte value:
/// a bounded, deterministic sweep for the same rule as the fuzz target.
#[test]
fn one_byte_edits_never_frame_differently() {
    let bases: [&[u8]; 3] = [
        b"POST /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX: y\r\n\r\nabc",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"PUT /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: h\r\n\r\n0\r\n\r\n",
    ];
    let mut checked = 0usize;
    let mut fast_seen = 0usize;
    for base in bases {
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for at in 0..base.len() {
            let mut deleted = base.to_vec();
            deleted.remove(at);
            inputs.push(deleted);
            for byte in 0..=255u8 {
                let mut replaced = base.to_vec();
                replaced[at] = byte;
                inputs.push(replaced);
                let mut inserted = base.to_vec();
                inserted.insert(at, byte);
                inputs.push(inserted);
            }
        }
        for input in inputs {
            let (fast, pingora, agreed) = compare(&input).unwrap();
            assert_eq!(
                agreed,
                Ok(()),
                "{:?}: fast {fast:?}, pingora {pingora:?}",
                String::from_utf8_lossy(&input)
            );
            fast_seen += usize::from(matches!(fast, Verdict::Accepted(_)));
            checked += 1;
        }
    }
    // The sweep must exercise the Fast side, or it proves nothing.
    assert!(
        fast_seen > 1000,
        "only {fast_seen} of {checked} edits were Fast"
    );
}

/// The check itself catches a disagreement (so the tests above cannot pass vacuously).
#[test]
fn check_catches_a_different_view() {
    let a = fast_verdict(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    let b = fast_verdict(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(check(&a, &b).is_err());
    assert!(check(&a, &Verdict::Rejected("no".into())).is_err());
    assert!(check(&a, &a).is_ok());
    assert!(check(&Verdict::Rejected("x".into()), &a).is_ok());
}

/// An HTTP/1.1 origin (hyper, as lenient as a typical one: it frames by Transfer-Encoding
/// when both are present and accepts bare LF) that records the target of every request it
/// sees and answers `x-seen: <target>`.
struct RecordingOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _server: Background,
}

impl RecordingOrigin {
    fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (tx, mut rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let record = record.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                    let record = record.clone();
                                    async move {
                                        let target = req.uri().to_string();
                                        let body = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                                        record.lock().unwrap().push(target.clone());
                                        Ok::<_, Infallible>(hyper::Response::builder()
                                            .header("x-seen", target)
                                            .header("x-body-len", body.to_string())
                                            .body(Full::new(Bytes::from_static(b"ok")))
                                            .unwrap())
                                    }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        RecordingOrigin {
            addr,
            seen,
            _server: Background::new(tx, thread),
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// How many responses in `raw` say the origin saw `target`.
fn responses_for(raw: &[u8], target: &str) -> usize {
    let needle = format!("x-seen: {target}\r\n");
    raw.windows(needle.len())
        .filter(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        .count()
}

/// Smuggling attempts, each hiding `GET /smuggled` where one framing sees a body and
/// another a second request.
fn attacks() -> Vec<(&'static str, Vec<u8>)> {
    const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let chunk = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let cl_te_body = format!("0\r\n\r\n{SMUGGLED}");
    let n = cl_te_body.len();
    let post = "POST /a HTTP/1.1\r\nHost: a\r\n";
    vec![
        ("cl.te", format!("{post}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{cl_te_body}")),
        ("te.cl", format!("{post}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}")),
        ("te space colon", format!("{post}Content-Length: {n}\r\nTransfer-Encoding : chunked\r\n\r\n{cl_te_body}")),
        ("te obs-fold", format!("{post}Content-Length: {n}\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n{cl_te_body}")),
        ("te behind bare lf", format!("{post}X: y\nTransfer-Encoding: chunked\r\n\r\n{cl_te_body}")),
        ("cl behind bare lf", format!("{post}X: y\nContent-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len())),
        ("te chunked, identity", format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n{cl_te_body}")),
        ("te in http/1.0", format!("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n{cl_te_body}")),
        ("cl differing", format!("{post}Content-Length: 0\r\nContent-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len())),
        ("cl list", format!("{post}Content-Length: 0, {}\r\n\r\n{SMUGGLED}", SMUGGLED.len())),
        ("cl plus", format!("{post}Content-Length: +{}\r\n\r\n{SMUGGLED}", SMUGGLED.len())),
        ("get with a body", format!("GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len())),
        ("bare cr", format!("{post}X: y\rContent-Length: 0\r\nContent-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len())),
        ("pipelined (legitimate)", format!("GET /a HTTP/1.1\r\nHost: a\r\n\r\n{SMUGGLED}")),
    ]
    .into_iter()
    .map(|(name, text)| (name, text.into_bytes()))
    .collect()
}

/// Through the real gateway to a real origin: every request the origin sees is one the
/// client got a response for (no request hidden from the gateway reaches the origin), and
/// the next client still gets its own response (no poisoned upstream connection). Holds for
/// whichever path the gateway takes a request on.
#[test]
fn smuggling_attempts_never_reach_the_origin_unseen() {
    let origin = RecordingOrigin::start();
    let gw = TestGateway::start(&one_route(origin.addr, 1, "", ""));
    let gateway: SocketAddr = format!("127.0.0.1:{}", gw.port).parse().unwrap();
    let idle = Duration::from_millis(500);
    let mut smuggled_forwarded = Vec::new();
    for (name, attack) in attacks() {
        origin.take();
        let raw = raw_exchange(gateway, &attack, idle);
        let seen = origin.take();
        let status: Vec<String> = String::from_utf8_lossy(&raw)
            .lines()
            .filter(|l| l.starts_with("HTTP/"))
            .map(str::to_owned)
            .collect();
        eprintln!("{name}: client got {status:?}, origin saw {seen:?}");
        for target in &seen {
            let seen_n = seen.iter().filter(|t| *t == target).count();
            assert!(
                responses_for(&raw, target) >= seen_n,
                "{name}: the origin saw {target} {seen_n} time(s), the client got {} response(s):\n{}",
                responses_for(&raw, target),
                String::from_utf8_lossy(&raw)
            );
        }
        if seen.iter().any(|t| t == "/smuggled") {
            smuggled_forwarded.push(name);
        }
        let after = raw_exchange(
            gateway,
            b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        assert_eq!(
            responses_for(&after, "/after"),
            1,
            "{name}: the next request got someone else's response:\n{}",
            String::from_utf8_lossy(&after)
        );
        assert_eq!(origin.take(), vec!["/after".to_string()], "{name}");
    }
    // Which inputs the gateway itself framed as two requests (answering both): allowed, and
    // it depends on the path (pingora reads bare LF as a line end, the fast path refuses it).
    eprintln!("forwarded /smuggled as a request of its own: {smuggled_forwarded:?}");
}
