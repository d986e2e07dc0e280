//! The fast path's HTTP/1 request-head parser against pingora 0.9.1's own reader on random
//! bytes (issue 19 item 4): whenever the fast parser would proxy a head itself, pingora
//! accepts it with the same method, target, headers and body framing. Also drives the
//! response-head parser and the chunked-body scanner over the same bytes (see
//! `src/lib.rs`, `run_http1`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracebridge_fuzz::run_http1(data));
