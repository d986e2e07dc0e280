//! HTTP/1 message heads for the fast path (issue 19): pure — bytes in, decisions out. No I/O,
//! no pingora types, no allocation once the caller's `Vec<HeaderSpan>` is warm.
//!
//! [`parse_request`] runs `httparse` once over the buffer (a bounded header array on the
//! stack), then one pass over the header spans applies the rules below. Its job is to never
//! frame a request differently from pingora's own HTTP/1 reader (the fallback) or from an
//! origin behind the gateway: what it is unsure of it *delegates* to pingora, what is unsafe
//! it *rejects*.
//!
//! | input | answer | why |
//! |---|---|---|
//! | `Content-Length` and `Transfer-Encoding` together | 400 | RFC 9112 §6.1 lets a server reject it or frame by TE alone; nginx rejects it ("client sent Content-Length and Transfer-Encoding headers at the same time"). pingora frames by TE and drops CL — an origin that frames by CL would see a different request, the CL.TE smuggling classic. |
//! | several `Content-Length` (lines or a comma list), even equal | 400 | RFC 9110 §8.6 allows collapsing equal ones, pingora and hyper do; nginx rejects any duplicate (`ngx_http_process_unique_header_line`). We follow nginx: nothing legitimate sends two. |
//! | `Content-Length` not all digits, empty, or over `u64` | 400 | RFC 9110 §8.6 grammar `1*DIGIT`; `+5`, `0x5`, `5 5`, `-1` are not lengths. |
//! | HTTP/1.0 with `Transfer-Encoding` | 400 | RFC 9112 §6.1: faulty framing; pingora and nginx reject it too. |
//! | other `Transfer-Encoding`, `Upgrade`, `Connection: upgrade`, `Expect`, `CONNECT`, absolute- or asterisk-form target, the HTTP/2 preface, a body over [`MAX_FAST_BODY`] | delegate | well-formed, pingora's machinery handles them. |
//! | obs-fold, bare CR, bare LF as a line ending (anywhere: before the request line, after it, after a field, the final empty line), NUL / CTL / DEL in a value, a name that is not a token, whitespace before the colon, an empty name | 400 | RFC 9112 §2.2, §5.1, §5.2. `httparse` rejects all of these *except bare LF*, which it accepts as a line ending, so a second check looks at every line end. |
//! | head over [`MAX_HEAD_BYTES`], more than [`MAX_HEADERS`] fields, a field name over 64 KiB | 431 | pingora's own limits; RFC 6585 §5. |
//! | request target over 65,534 bytes | 414 | the `http` crate's URI limit: pingora cannot hold a longer one. |
//! | a request line `httparse` rejects (space or CTL in the target, HTTP/0.9) | 400 | nginx ≥ 1.21.1 rejects these too. pingora instead percent-encodes the target and accepts (see `escape_illegal_request_line`): stricter here, listed in `tests/http1_differential.rs`. |
//! | `HTTP/x.y` other than 1.0 and 1.1 | 505 | RFC 9110 §15.6.6; pingora answers 400, nginx 505 for major versions above 1. |
//! | origin-form target with a byte the `http` crate's URI rejects, or a `#` | 400 | pingora cannot build the request (it would answer 400); a fragment is not part of a request-target (RFC 9112 §3.2) and pingora silently strips it, which would make the two paths forward different targets. |
//! | HTTP/1.1 without `Host`, several `Host`, a `Host` outside the RFC 3986 authority characters | 400 | RFC 9112 §3.2 ("MUST respond with 400"); nginx does the same. pingora rejects duplicates and `@` but accepts a missing Host. |
//!
//! Cost: about 1,890 instructions (callgrind, release) for `parse_request` on a 3-header GET,
//! about 1,100 of them inside httparse; measured on 2026-12-06 with this file compiled alone
//! (`#[path]` into a scratch binary) and `--toggle-collect` on the call.
//!
//! [`parse_response`] and [`ChunkedEnd`] serve the relay: how the upstream's response body is
//! framed (RFC 9112 §6.3), and where a chunked body ends as its bytes pass through unchanged.

use std::mem::MaybeUninit;
use std::ops::Range;

use http::HeaderName;

use crate::codec::HeaderSource;

/// Longest request head (request line, fields and the final CRLF): pingora 0.9.1's own limit
/// (`MAX_HEADER_SIZE` in `pingora-core/src/protocols/http/v1/common.rs`), so neither path accepts
/// a head the other refuses for size. Longer → 431.
pub const MAX_HEAD_BYTES: usize = 1_048_575;

/// Most header fields in a head: pingora 0.9.1's `MAX_HEADERS` (same file). More → 431.
pub const MAX_HEADERS: usize = 256;

/// Largest `Content-Length` body the fast path proxies itself; larger ones are delegated.
pub const MAX_FAST_BODY: u64 = 64 * 1024;

/// Longest origin-form request target: the `http` crate's URI limit (`u16::MAX - 1`); pingora
/// cannot represent a longer one. Longer → 414 (nginx answers 414 for an over-long request line).
pub const MAX_TARGET_BYTES: usize = 65_534;

/// Longest header field name: the `http` crate's `HeaderName` limit; pingora rejects longer.
const MAX_NAME_BYTES: usize = 65_535;

/// The HTTP/2 connection preface (RFC 9113 §3.4): h2c with prior knowledge, handed to pingora.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Chunk extensions allowed over a whole chunked body, and the trailer section: hyper's limits
/// (`CHUNKED_EXTENSIONS_LIMIT`, `TRAILER_LIMIT`, 16 KiB each), so a peer cannot make the relay
/// scan without end for a line ending.
const MAX_CHUNK_EXT_BYTES: usize = 16 * 1024;
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// One header of a parsed head: byte ranges into the buffer that was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Range<usize>,
    pub value: Range<usize>,
    /// What the name is, classified once while parsing.
    pub known: Known,
}

/// A parsed request's header lines as the core reads them (extraction, routing, the
/// browser edge): the head and its spans, with no `HeaderMap` built per request. The
/// parser let through only token names and values a `HeaderValue` accepts (it rejects
/// CTL, DEL and NUL bytes), which is what [`HeaderSource`] promises.
#[derive(Debug, Clone, Copy)]
pub struct Lines<'a> {
    pub head: &'a [u8],
    pub spans: &'a [HeaderSpan],
}

impl HeaderSource for Lines<'_> {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
        let name = name.as_str().as_bytes();
        self.spans
            .iter()
            .filter(move |s| {
                s.name.len() == name.len() && self.head[s.name.clone()].eq_ignore_ascii_case(name)
            })
            .map(|s| &self.head[s.value.clone()])
    }

    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|s| (&self.head[s.name.clone()], &self.head[s.value.clone()]))
    }
}

/// A request head the fast path may proxy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: http::Method,
    /// Origin-form only (`/...`), a range into the buffer.
    pub target: Range<usize>,
    pub http10: bool,
    /// Bytes of the head including the final CRLFCRLF (and any CRLFs before the request line).
    pub head_len: usize,
    /// `Content-Length`; 0 when absent.
    pub body_len: u64,
    /// The client asked to close: `Connection: close`, or HTTP/1.0 without keep-alive.
    pub close: bool,
    /// Index into the header spans of the (single) `Host` header.
    pub host: Option<usize>,
}

/// What [`parse_request`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a complete head yet, and not over any limit: read more.
    Partial,
    /// A simple request the fast path may proxy itself. `headers` (the out-parameter) holds its
    /// headers in order.
    Fast(RequestHead),
    /// Well-formed as far as we can tell, but not for the fast path: hand the bytes to pingora
    /// unchanged.
    Delegate(&'static str),
    /// Unsafe or malformed: the gateway answers `status` and closes. `reason` is a short
    /// lowercase phrase for the log and the JSON error body.
    Reject { status: u16, reason: &'static str },
}

const fn reject(status: u16, reason: &'static str) -> Parsed {
    Parsed::Reject { status, reason }
}

/// Offset of `part` (a subslice of `buf`) in `buf`.
#[inline]
fn offset(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

#[inline]
fn range(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = offset(buf, part);
    start..start + part.len()
}

/// Whether the line whose content ends at `end` ends in CRLF. `httparse` trims trailing
/// SP/HT from values and guarantees a line ending (`\r\n` or a bare `\n`) follows them.
#[inline]
fn crlf_after(buf: &[u8], mut end: usize) -> bool {
    while let Some(b' ' | b'\t') = buf.get(end) {
        end += 1;
    }
    buf.get(end) == Some(&b'\r')
}

/// The comma-separated tokens of a list-valued field (RFC 9110 §5.6.1), trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// `Connection` options that matter to framing and keep-alive.
#[derive(Default, Clone, Copy)]
struct ConnectionOptions {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
}

impl ConnectionOptions {
    fn add(&mut self, value: &[u8]) {
        // One token is by far the common case: no splitting.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep_alive = true;
            return;
        }
        if value.eq_ignore_ascii_case(b"close") {
            self.close = true;
            return;
        }
        for t in tokens(value) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

/// `1*DIGIT` without overflow (RFC 9110 §8.6); no sign, no spaces, no hex.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Which header fields the framing rules and the relay look at, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`: hop-by-hop, nothing else.
    OtherHopByHop,
    Other,
}

impl Known {
    /// A hop-by-hop field (RFC 9110 §7.6.1), never relayed as it came.
    pub fn hop_by_hop(self) -> bool {
        matches!(
            self,
            Known::Connection | Known::Upgrade | Known::TransferEncoding | Known::OtherHopByHop
        )
    }
}

#[inline]
fn classify(name: &[u8]) -> Known {
    // The length picks at most two candidates, so most fields cost one comparison of
    // lengths.
    let (candidate, known): (&[u8], Known) = match name.len() {
        2 => (b"te", Known::OtherHopByHop),
        4 => (b"host", Known::Host),
        6 => (b"expect", Known::Expect),
        7 if lower_eq(name, b"trailer") => return Known::OtherHopByHop,
        7 => (b"upgrade", Known::Upgrade),
        10 if lower_eq(name, b"keep-alive") => return Known::OtherHopByHop,
        10 => (b"connection", Known::Connection),
        14 => (b"content-length", Known::ContentLength),
        16 => (b"proxy-connection", Known::OtherHopByHop),
        17 => (b"transfer-encoding", Known::TransferEncoding),
        _ => return Known::Other,
    };
    if lower_eq(name, candidate) {
        known
    } else {
        Known::Other
    }
}

/// `name` equals `lower` (lowercase letters and `-`) ignoring ASCII case, for a `name`
/// made of token characters (httparse checked them): OR-ing 0x20 lowercases a letter
/// and leaves every other token character as it is, or turns it into a byte `lower`
/// does not contain (`^` → `~`, `_` → DEL). Eight bytes at a time: this runs for every
/// request and response header.
#[inline]
fn lower_eq(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() {
        return false;
    }
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let word = |b: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    if name.len() < 8 {
        return name.iter().zip(lower).all(|(a, b)| a | 0x20 == *b);
    }
    // Whole words, then one that ends at the last byte (overlapping the one before).
    let mut at = 0;
    while at + 8 <= name.len() {
        if word(name, at) | FOLD != word(lower, at) {
            return false;
        }
        at += 8;
    }
    let last = name.len() - 8;
    at == name.len() || word(name, last) | FOLD == word(lower, last)
}

/// Byte classes of an origin-form target, mirroring the `http` crate's `PathAndQuery` parser
/// (`http-1.x/src/uri/path.rs`, which pingora uses to build the request): a target it refuses
/// must not take the fast path, or the two paths would disagree.
const T_INVALID: u8 = 0;
const T_VALID: u8 = 1;
const T_QUERY: u8 = 2;
const T_FRAGMENT: u8 = 3;

const fn path_class(b: u8) -> u8 {
    match b {
        b'?' => T_QUERY,
        b'#' => T_FRAGMENT,
        0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E => T_VALID,
        b'"' | b'{' | b'}' => T_VALID,
        // httparse has already checked that the target is UTF-8.
        0x80..=0xFF => T_VALID,
        _ => T_INVALID,
    }
}

const fn query_class(b: u8) -> u8 {
    match b {
        b'#' => T_FRAGMENT,
        0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E => T_VALID,
        0x80..=0xFF => T_VALID,
        _ => T_INVALID,
    }
}

const fn table(query: bool) -> [u8; 256] {
    let mut t = [T_INVALID; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if query {
            query_class(i as u8)
        } else {
            path_class(i as u8)
        };
        i += 1;
    }
    t
}

static PATH_MAP: [u8; 256] = table(false);
static QUERY_MAP: [u8; 256] = table(true);

/// Checks an origin-form target (it starts with `/`).
fn check_target(target: &[u8]) -> Result<(), Parsed> {
    if target.len() > MAX_TARGET_BYTES {
        return Err(reject(414, "request target too long"));
    }
    let mut map = &PATH_MAP;
    for &b in target {
        match map[usize::from(b)] {
            T_VALID => {}
            T_QUERY => map = &QUERY_MAP,
            T_FRAGMENT => return Err(reject(400, "fragment in request target")),
            _ => return Err(reject(400, "invalid request target")),
        }
    }
    Ok(())
}

const fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'%'
        )
}

/// [`host_byte`] as a table: one load per byte on the request path.
static HOST_MAP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = host_byte(i as u8);
        i += 1;
    }
    t
};

/// `Host` = uri-host [ ":" port ] (RFC 9110 §7.2): the characters of a reg-name, an IP
/// literal and a port. `@` (userinfo), `/`, spaces, controls and obs-text are refused, as
/// nginx's `ngx_http_validate_host` refuses them: a router must not see one name where the
/// origin sees another. Empty is allowed (RFC 9112 §3.2).
fn valid_host(value: &[u8]) -> bool {
    value.iter().all(|&b| HOST_MAP[usize::from(b)])
}

/// What a Version error from httparse was about: a well-formed `HTTP/d...` version we do not
/// speak (505), or a broken request line (400).
fn version_error(buf: &[u8]) -> Parsed {
    let line_start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let line = &buf[line_start..];
    let line = match line.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    // method SP target SP version: httparse got as far as the version, so two single spaces.
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.nth(2).unwrap_or_default();
    match version {
        [b'H', b'T', b'T', b'P', b'/', d, ..] if d.is_ascii_digit() => {
            reject(505, "unsupported http version")
        }
        _ => reject(400, "invalid request line"),
    }
}

/// Whether the head contains a line that starts with SP or HT (obs-fold, RFC 9112 §5.2): only
/// to name the reason once httparse has already refused the head.
fn has_obs_fold(buf: &[u8]) -> bool {
    buf.windows(2)
        .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'))
}

/// Parses a request head at the start of `buf`. `headers` is cleared and refilled (reused
/// across requests of a connection: no allocation once warm). See the module doc for the rules.
pub fn parse_request(buf: &[u8], headers: &mut Vec<HeaderSpan>) -> Parsed {
    headers.clear();
    // Every keep-alive request is first looked for in the empty buffer the last one left.
    if buf.is_empty() {
        return Parsed::Partial;
    }

    // h2c with prior knowledge: pingora's HTTP/2 server takes it.
    if buf.first() == Some(&b'P') {
        if buf.len() < H2_PREFACE.len() {
            if H2_PREFACE.starts_with(buf) {
                return Parsed::Partial;
            }
        } else if buf.starts_with(H2_PREFACE) {
            return Parsed::Delegate("http/2 preface");
        }
    }

    // Uninitialised slots: httparse writes only the headers it finds, so the 256-slot array
    // costs nothing to set up (EMPTY_HEADER would be 256 stores on every request).
    let mut raw = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD_BYTES {
                reject(431, "request header too large")
            } else {
                Parsed::Partial
            };
        }
        Err(e) => {
            return match e {
                httparse::Error::TooManyHeaders => reject(431, "too many headers"),
                httparse::Error::Version => version_error(buf),
                httparse::Error::HeaderName if has_obs_fold(buf) => reject(400, "obs-fold"),
                httparse::Error::HeaderName => reject(400, "invalid header name"),
                httparse::Error::HeaderValue => reject(400, "invalid header value"),
                httparse::Error::NewLine => reject(400, "invalid line ending"),
                httparse::Error::Token | httparse::Error::Status => {
                    reject(400, "invalid request line")
                }
            };
        }
    };
    if head_len > MAX_HEAD_BYTES {
        return reject(431, "request header too large");
    }

    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return reject(400, "invalid request line");
    };
    let http10 = version == 0;
    let method_start = offset(buf, method.as_bytes());
    let target = range(buf, target.as_bytes());

    // Bare LF: httparse accepts `\n` alone as a line ending. Check every line end it found:
    // the empty lines it skipped before the request line, the request line (the version
    // is the 8 bytes after the single space that follows the target), each field, and the
    // final empty line.
    let leading_ok = buf[..method_start]
        .chunks(2)
        .all(|pair| pair == b"\r\n".as_slice());
    if !leading_ok
        || buf.get(target.end + 9) != Some(&b'\r')
        || buf.get(head_len.wrapping_sub(2)) != Some(&b'\r')
    {
        return reject(400, "bare lf line ending");
    }

    let mut body_len: Option<u64> = None;
    let mut content_lengths = 0u32;
    let mut transfer_encoding = false;
    let mut host: Option<usize> = None;
    let mut hosts = 0u32;
    let mut connection = ConnectionOptions::default();
    let mut upgrade = false;
    let mut expect = false;
    headers.reserve(req.headers.len());
    for (index, h) in req.headers.iter().enumerate() {
        let name = range(buf, h.name.as_bytes());
        let value = range(buf, h.value);
        if !crlf_after(buf, value.end) {
            return reject(400, "bare lf line ending");
        }
        if name.len() > MAX_NAME_BYTES {
            return reject(431, "header name too long");
        }
        let known = classify(h.name.as_bytes());
        match known {
            Known::Other | Known::OtherHopByHop => {}
            Known::Host => {
                hosts += 1;
                host = Some(index);
            }
            Known::ContentLength => {
                content_lengths += 1;
                match digits(h.value) {
                    Some(n) => body_len = Some(n),
                    None => return reject(400, "invalid content-length"),
                }
            }
            Known::TransferEncoding => transfer_encoding = true,
            Known::Connection => connection.add(h.value),
            Known::Upgrade => upgrade = true,
            Known::Expect => expect = true,
        }
        headers.push(HeaderSpan { name, value, known });
    }

    // Framing first: these are unsafe whichever path would take the request.
    if content_lengths > 1 {
        return reject(400, "multiple content-length");
    }
    if transfer_encoding && body_len.is_some() {
        return reject(400, "content-length with transfer-encoding");
    }
    if transfer_encoding && http10 {
        return reject(400, "transfer-encoding in http/1.0");
    }
    if hosts > 1 {
        return reject(400, "multiple host");
    }
    if let Some(i) = host {
        let v = &headers[i].value;
        if !valid_host(&buf[v.start..v.end]) {
            return reject(400, "invalid host");
        }
    }

    // Well-formed but not ours: pingora's machinery handles these.
    let target_bytes = &buf[target.start..target.end];
    if method == "CONNECT" {
        return Parsed::Delegate("connect");
    }
    if target_bytes.first() != Some(&b'/') {
        return Parsed::Delegate(if target_bytes == b"*" {
            "asterisk-form target"
        } else {
            "absolute-form target"
        });
    }
    if transfer_encoding {
        return Parsed::Delegate("transfer-encoding");
    }
    if upgrade || connection.upgrade {
        return Parsed::Delegate("upgrade");
    }
    if expect {
        return Parsed::Delegate("expect");
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > MAX_FAST_BODY {
        return Parsed::Delegate("body over fast-path limit");
    }

    // Origin-form from here on.
    if hosts == 0 && !http10 {
        return reject(400, "missing host");
    }
    if let Err(rejected) = check_target(target_bytes) {
        return rejected;
    }
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return reject(400, "invalid method");
    };

    Parsed::Fast(RequestHead {
        method,
        target,
        http10,
        head_len,
        body_len,
        close: connection.close || (http10 && !connection.keep_alive),
        host,
    })
}

/// How the upstream's response body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Read until the upstream closes (no framing header, or a non-chunked transfer coding).
    UntilClose,
}

/// A parsed upstream response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub head_len: usize,
    /// Where the status line's CRLF begins.
    pub status_line_end: usize,
    pub framing: Framing,
    /// The upstream connection cannot be reused after this response.
    pub close: bool,
    pub http10: bool,
}

/// Parses an upstream response head at the start of `buf`. `Ok(None)` = incomplete.
/// `head_request`: the request was HEAD (no body whatever the headers say). 1xx other than
/// 101 are returned as-is (the caller relays them and parses again); a 101 is an error, as the
/// fast path never asks for an upgrade. Errors = malformed upstream response (the caller
/// answers 502): several differing `Content-Length`, `Content-Length` with
/// `Transfer-Encoding`, `Transfer-Encoding` in HTTP/1.0, invalid bytes, too big.
///
/// Strict where pingora's upstream reader (`pingora-core/src/protocols/http/v1/client.rs`) is
/// lenient, because the fast path relays the head's bytes unchanged where pingora rewrites
/// them: RFC 9112 §5.1 and §5.2 require a proxy to remove whitespace before a colon and to
/// replace obs-fold (or answer 502) before forwarding a response, and a bare LF passed on
/// could end a line for us and not for the client. So all three are errors here (502), as
/// are invalid bytes. Equal duplicate `Content-Length`s collapse (RFC 9110 §8.6, as pingora
/// and hyper do).
pub fn parse_response(
    buf: &[u8],
    headers: &mut Vec<HeaderSpan>,
    head_request: bool,
) -> Result<Option<ResponseHead>, &'static str> {
    headers.clear();
    // Every response is first looked for before anything is read.
    if buf.is_empty() {
        return Ok(None);
    }
    let mut raw = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let strict = httparse::ParserConfig::default();
    let head_len = match strict.parse_response_with_uninit_headers(&mut resp, buf, &mut raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD_BYTES {
                Err("response header too large")
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
        Err(_) => return Err("malformed response head"),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err("response header too large");
    }
    // Bare LF: the status line (httparse skips no empty lines before it), then each field
    // below, then the final empty line.
    let status_lf = memchr::memchr(b'\n', buf).unwrap_or(0);
    if status_lf == 0
        || buf[status_lf - 1] != b'\r'
        || buf.get(head_len.wrapping_sub(2)) != Some(&b'\r')
    {
        return Err("bare lf in response head");
    }
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err("malformed response head");
    };
    if status == 101 {
        return Err("unexpected 101 switching protocols");
    }
    let http10 = version == 0;

    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut connection = ConnectionOptions::default();
    headers.reserve(resp.headers.len());
    for h in resp.headers.iter() {
        let value_end = offset(buf, h.value) + h.value.len();
        if !crlf_after(buf, value_end) {
            return Err("bare lf in response head");
        }
        let known = classify(h.name.as_bytes());
        match known {
            Known::ContentLength => {
                // A comma list of equal values is one value (RFC 9110 §8.6).
                let mut any = false;
                for v in h.value.split(|&b| b == b',') {
                    let n = digits(v.trim_ascii()).ok_or("invalid content-length")?;
                    if length.is_some_and(|l| l != n) {
                        return Err("differing content-length");
                    }
                    length = Some(n);
                    any = true;
                }
                if !any {
                    return Err("invalid content-length");
                }
            }
            Known::TransferEncoding => {
                transfer_encoding = true;
                // Chunked must be the final coding of the last field (RFC 9112 §6.3).
                chunked = tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            }
            Known::Connection => connection.add(h.value),
            _ => {}
        }
        headers.push(HeaderSpan {
            name: range(buf, h.name.as_bytes()),
            value: range(buf, h.value),
            known,
        });
    }

    if transfer_encoding && length.is_some() {
        return Err("content-length with transfer-encoding");
    }
    if transfer_encoding && http10 {
        return Err("transfer-encoding in http/1.0 response");
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::Empty
    } else if transfer_encoding {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let close =
        connection.close || (http10 && !connection.keep_alive) || framing == Framing::UntilClose;
    Ok(Some(ResponseHead {
        status,
        head_len,
        status_line_end: status_lf - 1,
        framing,
        close,
        http10,
    }))
}

/// Where the parser is inside a chunked body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex digits of a chunk size.
    #[default]
    Size,
    /// After the digits: BWS before `;` or the CR.
    SizeSpace,
    /// Inside chunk extensions, up to the CR.
    Ext,
    /// Expecting the LF of the chunk-size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final CRLF.
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Finds the end of a chunked body as its bytes pass through unchanged (RFC 9112 §7.1:
/// chunk-size lines with extensions, the last chunk, trailers, the final CRLF). Strict about
/// CRLF: a bare LF could end a line for the client but not for us. Bounded: chunk extensions
/// over 16 KiB in total, a trailer section over 16 KiB, a size over 16 hex digits are errors.
#[derive(Debug, Default)]
pub struct ChunkedEnd {
    state: ChunkState,
    /// Size of the current chunk, then the data bytes left in it.
    remaining: u64,
    digits: u8,
    ext_bytes: usize,
    trailer_bytes: usize,
    /// Chunk data bytes seen so far (the body without its framing).
    data: u64,
}

impl ChunkedEnd {
    /// The body's data bytes so far, without the chunk framing (what a client decoding
    /// the body receives; the access log's `bytes_sent`).
    pub fn data_bytes(&self) -> u64 {
        self.data
    }

    /// Feeds the next bytes; `Ok(Some(n))` = the body ended after the first `n` bytes of
    /// `bytes` (`Some(0)` once it has already ended).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, &'static str> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == ChunkState::Done {
                return Ok(Some(0));
            }
            if self.state == ChunkState::Data {
                let avail = (bytes.len() - i) as u64;
                let take = avail.min(self.remaining);
                self.remaining -= take;
                self.data += take;
                // `take` ≤ `avail`, which came from a usize.
                i += usize::try_from(take).unwrap_or(bytes.len() - i);
                if self.remaining == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match self.state {
                ChunkState::Size => match hex(b) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > 16 {
                            return Err("chunk size too large");
                        }
                        self.remaining = (self.remaining << 4) | u64::from(d);
                        ChunkState::Size
                    }
                    None if self.digits == 0 => return Err("invalid chunk size"),
                    None => match b {
                        b'\r' => ChunkState::SizeLf,
                        b';' => ChunkState::Ext,
                        b' ' | b'\t' => ChunkState::SizeSpace,
                        _ => return Err("invalid chunk size"),
                    },
                },
                ChunkState::SizeSpace => match b {
                    b' ' | b'\t' => ChunkState::SizeSpace,
                    b';' => ChunkState::Ext,
                    b'\r' => ChunkState::SizeLf,
                    _ => return Err("invalid chunk size"),
                },
                ChunkState::Ext => {
                    self.ext_bytes += 1;
                    if self.ext_bytes > MAX_CHUNK_EXT_BYTES {
                        return Err("chunk extensions too large");
                    }
                    match b {
                        b'\r' => ChunkState::SizeLf,
                        b'\t' => ChunkState::Ext,
                        0..=0x1F | 0x7F => return Err("invalid chunk extension"),
                        _ => ChunkState::Ext,
                    }
                }
                ChunkState::SizeLf => match b {
                    b'\n' if self.remaining == 0 => ChunkState::TrailerStart,
                    b'\n' => ChunkState::Data,
                    _ => return Err("invalid chunk size line ending"),
                },
                ChunkState::Data | ChunkState::Done => return Err("chunked state"),
                ChunkState::DataCr => match b {
                    b'\r' => ChunkState::DataLf,
                    _ => return Err("missing crlf after chunk data"),
                },
                ChunkState::DataLf => match b {
                    b'\n' => {
                        self.digits = 0;
                        ChunkState::Size
                    }
                    _ => return Err("missing crlf after chunk data"),
                },
                ChunkState::TrailerStart => match b {
                    b'\r' => ChunkState::EndLf,
                    _ => self.trailer_byte(b)?,
                },
                ChunkState::Trailer => self.trailer_byte(b)?,
                ChunkState::TrailerLf => match b {
                    b'\n' => ChunkState::TrailerStart,
                    _ => return Err("invalid trailer line ending"),
                },
                ChunkState::EndLf => match b {
                    b'\n' => {
                        self.state = ChunkState::Done;
                        return Ok(Some(i));
                    }
                    _ => return Err("invalid end of chunked body"),
                },
            };
        }
        if self.state == ChunkState::Done {
            return Ok(Some(0));
        }
        Ok(None)
    }

    /// One byte of a trailer line (after its first byte was found not to be the final CR).
    fn trailer_byte(&mut self, b: u8) -> Result<ChunkState, &'static str> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err("trailer section too large");
        }
        match b {
            b'\r' => Ok(ChunkState::TrailerLf),
            b'\t' => Ok(ChunkState::Trailer),
            0..=0x1F | 0x7F => Err("invalid trailer byte"),
            _ => Ok(ChunkState::Trailer),
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::strategy::Strategy;

    /// Every name `classify` knows, and what it is.
    const KNOWN_NAMES: [(&str, Known); 10] = [
        ("host", Known::Host),
        ("content-length", Known::ContentLength),
        ("transfer-encoding", Known::TransferEncoding),
        ("connection", Known::Connection),
        ("upgrade", Known::Upgrade),
        ("expect", Known::Expect),
        ("keep-alive", Known::OtherHopByHop),
        ("proxy-connection", Known::OtherHopByHop),
        ("te", Known::OtherHopByHop),
        ("trailer", Known::OtherHopByHop),
    ];

    fn parse(buf: &[u8]) -> (Parsed, Vec<HeaderSpan>) {
        let mut headers = Vec::new();
        let parsed = parse_request(buf, &mut headers);
        (parsed, headers)
    }

    fn fast(buf: &[u8]) -> RequestHead {
        match parse(buf).0 {
            Parsed::Fast(head) => head,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn simple_get_is_fast_with_spans() {
        let buf =
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Empty:\r\n\r\nrest";
        let (parsed, headers) = parse(buf);
        let Parsed::Fast(head) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(head.method, http::Method::GET);
        assert_eq!(&buf[head.target.clone()], b"/a?b=c");
        assert!(!head.http10);
        assert_eq!(head.head_len, buf.len() - 4);
        assert_eq!(head.body_len, 0);
        assert!(!head.close);
        assert_eq!(head.host, Some(0));
        let pairs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|h| (&buf[h.name.clone()], &buf[h.value.clone()]))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (&b"Host"[..], &b"example.com"[..]),
                (b"Accept", b"*/*"),
                (b"X-Empty", b""),
            ]
        );
    }

    #[test]
    fn keep_alive_and_close() {
        let cases: &[(&[u8], bool, &str)] = &[
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                false,
                "1.1 defaults to keep-alive",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                true,
                "close",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
                true,
                "close in a list",
            ),
            (b"GET / HTTP/1.0\r\n\r\n", true, "1.0 defaults to close"),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                false,
                "1.0 keep-alive",
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                true,
                "close wins",
            ),
        ];
        for (buf, close, why) in cases {
            assert_eq!(fast(buf).close, *close, "{why}");
        }
        assert!(fast(b"GET / HTTP/1.0\r\n\r\n").http10);
    }

    #[test]
    fn content_length_body() {
        let head = fast(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(head.body_len, 5);
        assert_eq!(head.method, http::Method::POST);
        assert_eq!(
            fast(b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  007 \r\n\r\n").body_len,
            7
        );
        let at_limit =
            format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {MAX_FAST_BODY}\r\n\r\n");
        assert_eq!(fast(at_limit.as_bytes()).body_len, MAX_FAST_BODY);
    }

    #[test]
    fn partial_heads_ask_for_more() {
        let full = b"GET /x HTTP/1.1\r\nHost: a\r\nAccept: b\r\n\r\n";
        for end in 0..full.len() {
            assert_eq!(
                parse(&full[..end]).0,
                Parsed::Partial,
                "prefix of {end} bytes"
            );
        }
        // The h2 preface's prefixes too.
        assert_eq!(parse(b"PRI * HTTP/2").0, Parsed::Partial);
    }

    #[test]
    fn leading_crlf_is_skipped() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let head = fast(buf);
        assert_eq!(head.head_len, buf.len());
        assert_eq!(&buf[head.target], b"/");
    }

    /// Every reject rule, with its reason: (input, status, reason).
    #[test]
    fn rejects() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_TARGET_BYTES)
        );
        let many_headers = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS)
        );
        let long_name = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}: v\r\n\r\n",
            "n".repeat(MAX_NAME_BYTES + 1)
        );
        let huge_value = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(MAX_HEAD_BYTES)
        );
        let huge_partial = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}",
            "v".repeat(MAX_HEAD_BYTES)
        );
        let cases: Vec<(&[u8], u16, &str)> = vec![
            // framing
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "content-length with transfer-encoding"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "content-length with transfer-encoding"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, "multiple content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "multiple content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400, "invalid content-length"),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "transfer-encoding in http/1.0"),
            // line structure
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400, "obs-fold"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n", 400, "obs-fold"),
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare lf line ending"),
            (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "bare lf line ending"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b \n\r\n", 400, "bare lf line ending"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX:\n\r\n", 400, "bare lf line ending"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare lf line ending"),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400, "bare lf line ending"),
            (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare lf line ending"),
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "invalid header value"),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "invalid line ending"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n", 400, "invalid line ending"),
            // bytes
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400, "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400, "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400, "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n", 400, "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", 400, "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\xc3\xa9: b\r\n\r\n", 400, "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", 400, "invalid header name"),
            // request line
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request line"),
            (b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request line"),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request line"),
            (b"GET /\r\n\r\n", 400, "invalid request line"),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request line"),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "unsupported http version"),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported http version"),
            (b"GET / HTTP/0.9\r\n\r\n", 505, "unsupported http version"),
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "invalid line ending"),
            (b"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400, "invalid request line"),
            // target
            (b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment in request target"),
            (b"GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request target"),
            (b"GET /a`b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request target"),
            (b"GET /a?\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request target"),
            (long_target.as_bytes(), 414, "request target too long"),
            // host
            (b"GET / HTTP/1.1\r\n\r\n", 400, "missing host"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, "multiple host"),
            (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "invalid host"),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid host"),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid host"),
            (b"GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400, "invalid host"),
            // limits
            (many_headers.as_bytes(), 431, "too many headers"),
            (long_name.as_bytes(), 431, "header name too long"),
            (huge_value.as_bytes(), 431, "request header too large"),
            (huge_partial.as_bytes(), 431, "request header too large"),
        ];
        for (buf, status, reason) in cases {
            let shown = String::from_utf8_lossy(&buf[..buf.len().min(120)]).into_owned();
            assert_eq!(parse(buf).0, Parsed::Reject { status, reason }, "{shown:?}");
        }
    }

    #[test]
    fn delegates() {
        let big = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            MAX_FAST_BODY + 1
        );
        let cases: Vec<(&[u8], &str)> = vec![
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                "transfer-encoding",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                "transfer-encoding",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                "transfer-encoding",
            ),
            (
                b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                "upgrade",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\n\r\n",
                "upgrade",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                "expect",
            ),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "connect"),
            (b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", "connect"),
            (
                b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
                "absolute-form target",
            ),
            (b"GET http://a/x HTTP/1.1\r\n\r\n", "absolute-form target"),
            (
                b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
                "asterisk-form target",
            ),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http/2 preface"),
            (big.as_bytes(), "body over fast-path limit"),
        ];
        for (buf, reason) in cases {
            assert_eq!(
                parse(buf).0,
                Parsed::Delegate(reason),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn accepted_edges() {
        // obs-text and HTAB inside values, a high-byte UTF-8 target, extension methods,
        // an empty Host, HTTP/1.0 without Host, characters the http crate allows.
        for buf in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xff\tz\r\n\r\n"[..],
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET /{\"a\"}|x?q={}`|^ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /?a=b?c HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            fast(buf);
        }
        let head = fast(b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.method.as_str(), "PURGE");
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let buf = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut at = 0;
        let mut targets = Vec::new();
        while at < buf.len() {
            let head = fast(&buf[at..]);
            targets.push(buf[at + head.target.start..at + head.target.end].to_vec());
            at += head.head_len + head.body_len as usize;
        }
        assert_eq!(
            targets,
            vec![b"/1".to_vec(), b"/2".to_vec(), b"/3".to_vec()]
        );
    }

    #[test]
    fn headers_vec_is_reused() {
        let mut headers = Vec::with_capacity(8);
        let before = headers.as_ptr();
        for _ in 0..3 {
            assert!(matches!(
                parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n", &mut headers),
                Parsed::Fast(_)
            ));
            assert_eq!(headers.len(), 2);
        }
        assert_eq!(headers.as_ptr(), before);
        // A rejected head leaves no stale spans behind.
        let _ = parse_request(b"GET / HTTP/1.1\r\n\r\n", &mut headers);
        assert!(headers.is_empty());
    }

    fn response(buf: &[u8], head_request: bool) -> Result<Option<ResponseHead>, &'static str> {
        parse_response(buf, &mut Vec::new(), head_request)
    }

    fn framing(buf: &[u8]) -> (Framing, bool) {
        match response(buf, false) {
            Ok(Some(head)) => (head.framing, head.close),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn response_framing() {
        let cases: &[(&[u8], Framing, bool)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                Framing::Length(5),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Framing::Chunked,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Framing::UntilClose,
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, true),
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                Framing::Empty,
                false,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Framing::Empty,
                false,
            ),
            (b"HTTP/1.1 100 Continue\r\n\r\n", Framing::Empty, false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                Framing::Length(0),
                true,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                Framing::Length(1),
                true,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
                Framing::Length(1),
                false,
            ),
        ];
        for (buf, expected, close) in cases {
            assert_eq!(
                framing(buf),
                (*expected, *close),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        let head = response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Empty);
        assert_eq!(head.head_len, 38);
        assert_eq!(head.status, 200);
    }

    #[test]
    fn response_errors_and_partial() {
        let too_many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        let cases: Vec<(&[u8], &str)> = vec![
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "differing content-length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                "differing content-length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "invalid content-length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                "content-length with transfer-encoding",
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "transfer-encoding in http/1.0 response",
            ),
            // Relayed unchanged, so what pingora's reader tolerates is refused (RFC 9112 §5).
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n 6\r\n\r\n",
                "malformed response head",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n",
                "malformed response head",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX : y\r\nContent-Length: 1\r\n\r\n",
                "malformed response head",
            ),
            (
                b"HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
                "bare lf in response head",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: y\nContent-Length: 1\r\n\r\n",
                "bare lf in response head",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\n",
                "bare lf in response head",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
                "malformed response head",
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                "unexpected 101 switching protocols",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n",
                "malformed response head",
            ),
            (b"HTTP/2 200\r\n\r\n", "malformed response head"),
            (too_many.as_bytes(), "too many response headers"),
        ];
        for (buf, reason) in cases {
            assert_eq!(
                response(buf, false),
                Err(reason),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nContent-Le", false), Ok(None));
    }

    /// Feeds `body` in pieces of `step` bytes; returns where the body ended.
    fn chunked_end(body: &[u8], step: usize) -> Result<Option<usize>, &'static str> {
        let mut end = ChunkedEnd::default();
        let mut at = 0;
        for piece in body.chunks(step) {
            if let Some(n) = end.feed(piece)? {
                return Ok(Some(at + n));
            }
            at += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_end_finds_the_end_in_any_split() {
        let bodies: &[&[u8]] = &[
            b"0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5;name=value\r\nhello\r\nA ; x\r\n0123456789\r\n000\r\n\r\n",
            b"3\r\nabc\r\n0\r\nExpires: never\r\nX: y\r\n\r\n",
            b"1\r\n\r\r\n0;last\r\n\r\n",
        ];
        for body in bodies {
            let mut with_next = body.to_vec();
            with_next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            for step in 1..=with_next.len() {
                assert_eq!(
                    chunked_end(&with_next, step),
                    Ok(Some(body.len())),
                    "{:?} in pieces of {step}",
                    String::from_utf8_lossy(body)
                );
            }
            assert_eq!(chunked_end(&body[..body.len() - 1], 3), Ok(None));
        }
        let mut done = ChunkedEnd::default();
        assert_eq!(done.feed(b"0\r\n\r\n"), Ok(Some(5)));
        assert!(done.is_done());
        assert_eq!(done.feed(b"more"), Ok(Some(0)));
    }

    #[test]
    fn chunked_end_rejects() {
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_EXT_BYTES));
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILER_BYTES));
        let cases: Vec<(&[u8], &str)> = vec![
            (b"x\r\n", "invalid chunk size"),
            (b"\r\n", "invalid chunk size"),
            (b"-1\r\n", "invalid chunk size"),
            (b"5x\r\n", "invalid chunk size"),
            (b"5 x\r\n", "invalid chunk size"),
            (b"11111111111111111\r\n", "chunk size too large"),
            (b"5\nhello\r\n", "invalid chunk size"),
            (b"5\rhello\r\n", "invalid chunk size line ending"),
            (b"5\r\nhello\n0\r\n\r\n", "missing crlf after chunk data"),
            (b"5\r\nhelloX\r\n", "missing crlf after chunk data"),
            (b"1;a\0\r\n", "invalid chunk extension"),
            (b"0\r\nX: y\n\r\n", "invalid trailer byte"),
            (b"0\r\n\n", "invalid trailer byte"),
            (b"0\r\n\rX", "invalid end of chunked body"),
            (long_ext.as_bytes(), "chunk extensions too large"),
            (long_trailer.as_bytes(), "trailer section too large"),
        ];
        for (body, reason) in cases {
            assert_eq!(
                chunked_end(body, 7),
                Err(reason),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// Request-like bytes: a valid head with random bytes spliced in, so most inputs get
    /// past the request line.
    fn request_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (
            0usize..60,
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<bool>(),
        )
            .prop_map(|(at, noise, replace)| {
                let mut v =
                    b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX: y\r\n\r\nhi".to_vec();
                let at = at.min(v.len());
                if replace {
                    let end = (at + noise.len()).min(v.len());
                    v.splice(at..end, noise);
                } else {
                    v.splice(at..at, noise);
                }
                v
            })
    }

    proptest::proptest! {
        /// Never panics; a Fast head's ranges lie inside it, in order.
        #[test]
        fn parse_request_is_total(buf in proptest::prop_oneof![
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            request_like(),
        ]) {
            let mut headers = Vec::new();
            if let Parsed::Fast(head) = parse_request(&buf, &mut headers) {
                proptest::prop_assert!(head.head_len <= buf.len());
                proptest::prop_assert!(head.target.end <= head.head_len);
                for h in &headers {
                    proptest::prop_assert!(h.name.end < h.value.start);
                    proptest::prop_assert!(h.value.end <= head.head_len);
                }
                proptest::prop_assert!(head.body_len <= MAX_FAST_BODY);
            }
        }

        /// Never panics, with or without HEAD.
        #[test]
        fn parse_response_is_total(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            for head_request in [false, true] {
                if let Ok(Some(head)) = parse_response(&buf, &mut Vec::new(), head_request) {
                    proptest::prop_assert!(head.head_len <= buf.len());
                }
            }
        }

        /// The word-wise name comparison agrees with `eq_ignore_ascii_case` on every
        /// token-character name, near misses of the known names included.
        #[test]
        fn classify_agrees_with_a_plain_case_insensitive_match(
            name in proptest::prop_oneof![
                "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}",
                proptest::sample::select(KNOWN_NAMES.map(|(n, _)| n).to_vec())
                    .prop_flat_map(|n| (proptest::strategy::Just(n), 0..n.len(), "[!#$%&'*+.^_`|~0-9A-Za-z-]"))
                    .prop_map(|(n, i, c)| { let mut s = n.to_string(); s.replace_range(i..=i, &c); s }),
                proptest::sample::select(KNOWN_NAMES.map(|(n, _)| n).to_vec())
                    .prop_map(|n| n.to_ascii_uppercase()),
            ]
        ) {
            let want = KNOWN_NAMES
                .iter()
                .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
                .map_or(Known::Other, |(_, k)| *k);
            proptest::prop_assert_eq!(classify(name.as_bytes()), want, "{}", name);
        }

        /// The end of a chunked body does not depend on how its bytes are split.
        #[test]
        fn chunked_end_ignores_splits(
            buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            step in 1usize..8,
        ) {
            let whole = ChunkedEnd::default().feed(&buf);
            proptest::prop_assert_eq!(whole, chunked_end(&buf, step));
        }
    }
}
