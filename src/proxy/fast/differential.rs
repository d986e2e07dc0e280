//! The differential check of issue 19 item 4: the fast path's [`parse_request`] and pingora
//! 0.9.1's own HTTP/1 server-side reader (`HttpSession::read_request`, what the fallback
//! `HttpProxy` runs) on the same bytes, each reduced to a comparable [`Verdict`].
//!
//! Used by `tests/http1_differential.rs` (a corpus of tricky requests) and the cargo-fuzz
//! target `fuzz/fuzz_targets/http1_request.rs` (random bytes). Not part of the gateway.
//!
//! pingora is fed through `std::io::Cursor<Vec<u8>>`, an in-memory stream pingora-core
//! itself implements its `IO` trait for (`pingora-core/src/protocols/mod.rs`, `ext_io_impl`):
//! it yields the bytes, then end of stream, so an incomplete head shows as "connection
//! closed while reading the header".
//!
//! Headers are compared grouped by lowercased name in order of first appearance, values in
//! order: pingora keeps them in an `http::HeaderMap`, which loses how fields of *different*
//! names interleaved (never part of framing).

use std::cell::RefCell;
use std::io::Cursor;

use pingora::protocols::http::v1::server::HttpSession;
use pingora::ErrorType;

use super::head::{parse_request, HeaderSpan, Parsed};

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body (RFC 9112 §6.3).
    None,
    ContentLength(u64),
    Chunked,
}

/// An accepted request head, as both parsers can report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub method: String,
    pub target: Vec<u8>,
    /// (lowercased name, value), grouped by name in order of first appearance.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub framing: BodyFraming,
    /// Bytes of the head, as the parser consumed them.
    pub head_len: usize,
}

/// What one parser made of some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A complete head, accepted.
    Accepted(View),
    /// The fast path hands it to pingora (only [`fast_verdict`] says this).
    Delegated(&'static str),
    /// Refused; the reason.
    Rejected(String),
    /// No complete head in the bytes.
    Incomplete,
}

/// Groups (name, value) pairs by lowercased name, in order of each name's first appearance.
fn grouped(pairs: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut values: Vec<Vec<Vec<u8>>> = Vec::new();
    for (mut name, value) in pairs {
        name.make_ascii_lowercase();
        match names.iter().position(|n| *n == name) {
            Some(i) => values[i].push(value),
            None => {
                names.push(name);
                values.push(vec![value]);
            }
        }
    }
    names
        .into_iter()
        .zip(values)
        .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v)))
        .collect()
}

/// [`parse_request`]'s verdict on `buf`.
pub fn fast_verdict(buf: &[u8]) -> Verdict {
    let mut spans: Vec<HeaderSpan> = Vec::new();
    match parse_request(buf, &mut spans) {
        Parsed::Partial => Verdict::Incomplete,
        Parsed::Delegate(reason) => Verdict::Delegated(reason),
        Parsed::Reject { status, reason } => Verdict::Rejected(format!("{status} {reason}")),
        Parsed::Fast(head) => {
            let has_length = spans
                .iter()
                .any(|h| buf[h.name.clone()].eq_ignore_ascii_case(b"content-length"));
            Verdict::Accepted(View {
                method: head.method.as_str().to_owned(),
                target: buf[head.target.clone()].to_vec(),
                headers: grouped(
                    spans
                        .iter()
                        .map(|h| (buf[h.name.clone()].to_vec(), buf[h.value.clone()].to_vec())),
                ),
                framing: if has_length {
                    BodyFraming::ContentLength(head.body_len)
                } else {
                    BodyFraming::None
                },
                head_len: head.head_len,
            })
        }
    }
}

/// The body framing pingora 0.9.1 gives an accepted request: its `init_body_reader` rule
/// (chunked when `Transfer-Encoding` is present and ends in chunked — `read_request` has
/// already refused any other — else the reconciled `Content-Length`, else none).
fn pingora_framing(headers: &http::HeaderMap) -> BodyFraming {
    if let Some(te) = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let last = te
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if last.eq_ignore_ascii_case(b"chunked") {
            return BodyFraming::Chunked;
        }
    }
    // read_request has checked that every value is digits and all are equal.
    let length = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .find_map(|v| {
            std::str::from_utf8(v.trim_ascii())
                .ok()?
                .parse::<u64>()
                .ok()
        });
    match length {
        Some(n) => BodyFraming::ContentLength(n),
        None => BodyFraming::None,
    }
}

async fn pingora_read(buf: &[u8]) -> Verdict {
    let mut session = HttpSession::new(Box::new(Cursor::new(buf.to_vec())));
    match session.read_request().await {
        Ok(None) => Verdict::Incomplete,
        Err(e) if *e.etype() == ErrorType::ConnectionClosed => Verdict::Incomplete,
        Err(e) => Verdict::Rejected(e.to_string()),
        Ok(Some(head_len)) => {
            let req = session.req_header();
            Verdict::Accepted(View {
                method: req.method.as_str().to_owned(),
                target: req.raw_path().to_vec(),
                headers: grouped(
                    req.headers
                        .iter()
                        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())),
                ),
                framing: pingora_framing(&req.headers),
                head_len,
            })
        }
    }
}

thread_local! {
    /// One runtime per thread: building one per input would dominate a fuzzing run.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// pingora 0.9.1's verdict on `buf` (its `HttpSession::read_request` over an in-memory
/// stream). Blocks on a current-thread runtime: call it outside any async context.
pub fn pingora_verdict(buf: &[u8]) -> std::io::Result<Verdict> {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        let runtime = match slot.take() {
            Some(runtime) => runtime,
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        };
        let verdict = runtime.block_on(pingora_read(buf));
        *slot = Some(runtime);
        Ok(verdict)
    })
}

/// A way the two verdicts on the same bytes disagree that issue 19 forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disagreement {
    /// The fast path would proxy a head pingora refuses.
    FastButPingoraRejects { pingora: String },
    /// The fast path would proxy a head pingora sees differently (method, target, headers,
    /// framing or length).
    DifferentView { fast: Box<View>, pingora: Box<View> },
    /// The fast path would proxy a head pingora finds incomplete.
    FastButPingoraIncomplete,
}

/// The rule of issue 19 item 4: whenever the fast path says Fast, pingora accepts the same
/// bytes with the same method, target, headers and framing. (Whenever pingora rejects, the
/// fast path is therefore not Fast.) The fast path may be stricter: Reject or Delegate where
/// pingora accepts.
pub fn check(fast: &Verdict, pingora: &Verdict) -> Result<(), Disagreement> {
    let Verdict::Accepted(fast) = fast else {
        return Ok(());
    };
    match pingora {
        Verdict::Accepted(p) if p == fast => Ok(()),
        Verdict::Accepted(p) => Err(Disagreement::DifferentView {
            fast: Box::new(fast.clone()),
            pingora: Box::new(p.clone()),
        }),
        Verdict::Rejected(reason) => Err(Disagreement::FastButPingoraRejects {
            pingora: reason.clone(),
        }),
        Verdict::Incomplete | Verdict::Delegated(_) => Err(Disagreement::FastButPingoraIncomplete),
    }
}

/// Both verdicts on `buf`, and whether they obey [`check`].
pub fn compare(buf: &[u8]) -> std::io::Result<(Verdict, Verdict, Result<(), Disagreement>)> {
    let fast = fast_verdict(buf);
    let pingora = pingora_verdict(buf)?;
    let agreed = check(&fast, &pingora);
    Ok((fast, pingora, agreed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simple_get_agrees() {
        let buf = b"GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n";
        let (fast, pingora, agreed) = compare(buf).unwrap();
        assert_eq!(agreed, Ok(()));
        let Verdict::Accepted(view) = fast else {
            panic!("{fast:?}")
        };
        assert_eq!(Verdict::Accepted(view.clone()), pingora);
        assert_eq!(view.headers[1], (b"a".to_vec(), b"1".to_vec()));
        assert_eq!(view.headers[2], (b"a".to_vec(), b"3".to_vec()));
    }

    #[test]
    fn pingora_rejects_and_incomplete_are_seen() {
        assert_eq!(
            pingora_verdict(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(),
            Verdict::Incomplete
        );
        assert!(matches!(
            pingora_verdict(b"GET / HTTP/1.1\r\nX: a\0\r\n\r\n").unwrap(),
            Verdict::Rejected(_)
        ));
    }
}
