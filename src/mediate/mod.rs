//! Per-request propagation policy, pure: which incoming context wins, what to inject,
//! what to strip. No pingora, no I/O.

pub mod extract;
