//! tracebridge: an L7 reverse proxy on pingora that reads distributed-tracing context
//! in any format, emits its own gateway span and writes the context in the formats the
//! service behind it expects.
//!
//! Dependencies point one way, from pure to impure (STYLE.md §1; `.ci/imports.sh` checks it):
//! `model → codec → mediate → config → telemetry → reload → proxy / admin → server → main`.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod cli;
pub mod codec;
pub mod config;
pub mod mediate;
pub mod model;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod telemetry;
pub mod translate;
