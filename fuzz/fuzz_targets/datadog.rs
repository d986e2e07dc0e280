//! `Format::Datadog`: extract over header maps built from the input, the format's
//! string-level decoders on every value, and the round trips (see `src/lib.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracebridge::codec::Format;

fuzz_target!(|data: &[u8]| tracebridge_fuzz::run(Format::Datadog, data));
