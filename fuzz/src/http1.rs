//! The `http1_request` target's body: the fast path's HTTP/1 parsers on raw bytes.
//!
//! **Invariants** (a failed assertion is a crash):
//! - `parse_request` and pingora 0.9.1's `HttpSession::read_request` agree by issue 19's
//!   rule (`tracebridge::proxy::fast::differential::check`): whenever the fast parser says
//!   Fast, pingora accepts the bytes with the same method, target, headers, framing and head
//!   length;
//! - a Fast head's spans lie inside the head, in order;
//! - `parse_response` never panics, with or without `head_request`, and a head it returns
//!   lies inside the bytes;
//! - `ChunkedEnd` finds the same end whether the bytes come at once or one at a time.

use tracebridge::proxy::fast::differential::compare;
use tracebridge::proxy::fast::head::{parse_request, parse_response, ChunkedEnd, Parsed};

/// The fuzz target body.
pub fn run_http1(data: &[u8]) {
    let (fast, pingora, agreed) = match compare(data) {
        Ok(verdicts) => verdicts,
        // No runtime for pingora: nothing to compare (not the parsers' fault).
        Err(_) => return,
    };
    assert!(
        agreed.is_ok(),
        "{:?}\nfast: {fast:?}\npingora: {pingora:?}\n{agreed:?}",
        String::from_utf8_lossy(data)
    );

    let mut spans = Vec::new();
    if let Parsed::Fast(head) = parse_request(data, &mut spans) {
        assert!(head.head_len <= data.len());
        assert!(head.target.end <= head.head_len);
        let mut last = head.target.end;
        for s in &spans {
            assert!(last <= s.name.start && s.name.end < s.value.start);
            assert!(s.value.start <= s.value.end && s.value.end <= head.head_len);
            last = s.value.end;
        }
    }

    for head_request in [false, true] {
        if let Ok(Some(head)) = parse_response(data, &mut spans, head_request) {
            assert!(head.head_len <= data.len());
            assert!(spans.iter().all(|s| s.value.end <= head.head_len));
        }
    }

    let whole = ChunkedEnd::default().feed(data);
    let mut bytewise = ChunkedEnd::default();
    let mut one_at_a_time = Ok(None);
    for (i, b) in data.iter().enumerate() {
        match bytewise.feed(std::slice::from_ref(b)) {
            Ok(Some(n)) => {
                one_at_a_time = Ok(Some(i + n));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                one_at_a_time = Err(e);
                break;
            }
        }
    }
    assert_eq!(whole, one_at_a_time, "{:?}", String::from_utf8_lossy(data));
}
