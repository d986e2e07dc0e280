//! One caller at a time takes a stream from an upstream HTTP/2 connection pool, so a
//! burst of calls fills the connection being opened instead of each opening its own.
//!
//! pingora's h2 connector looks for a pooled connection with a free stream and, finding
//! none, dials a new one. The new connection enters the pool only once it is connected
//! and handshaken, so every call that arrives meanwhile dials as well: with 100 streams
//! per connection, a burst of 200 concurrent calls opened 27 to 50 connections instead
//! of 2 (`tests/grpc.rs`). Envoy's connection pool avoids this by counting the streams
//! a connection being established will carry, and opens only as many connections as
//! the pending streams need; pingora has no such hook, so the gateway orders the
//! callers instead: each request to a multiplexed upstream holds its pool's gate from
//! `upstream_peer` until it holds a stream (`connected_to_upstream`) or the connect
//! failed (`fail_to_connect`). Taking a stream from a pooled connection holds the gate
//! for microseconds; a dial holds it for one connect and handshake.
//!
//! A gate is waited for at most one connect timeout, then the request goes ahead
//! without it: behind a peer that swallows connection attempts, requests cannot queue
//! for longer than one more connect timeout each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Held while a request takes its upstream stream; dropping it lets the next one in.
pub(super) type DialTicket = tokio::sync::OwnedMutexGuard<()>;

/// Above this many pools, gates nobody holds or waits for are dropped (upstream peers
/// and their option sets change with reloads; the map must not grow with them).
const PRUNE_ABOVE: usize = 256;

/// One gate per upstream connection pool (pingora's `reuse_hash` of the peer).
#[derive(Debug, Default)]
pub(super) struct DialGates {
    gates: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl DialGates {
    /// Waits, at most `wait`, for the gate of pool `pool`. `None` after `wait`: go
    /// ahead unordered.
    pub(super) async fn enter(&self, pool: u64, wait: Duration) -> Option<DialTicket> {
        let gate = {
            // A panic elsewhere while holding this lock leaves a consistent map.
            let mut gates = self
                .gates
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if gates.len() >= PRUNE_ABOVE && !gates.contains_key(&pool) {
                // Only the map holds an idle gate; a held or awaited one has more owners.
                gates.retain(|_, g| Arc::strong_count(g) > 1);
            }
            gates.entry(pool).or_default().clone()
        };
        tokio::time::timeout(wait, gate.lock_owned()).await.ok()
    }

    /// How many gates exist (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn one_holder_per_pool_and_pools_are_independent() {
        rt().block_on(async {
            let gates = DialGates::default();
            let wait = Duration::from_millis(50);
            let first = gates.enter(1, wait).await;
            assert!(first.is_some());
            assert!(gates.enter(2, wait).await.is_some(), "another pool");
            assert!(
                gates.enter(1, wait).await.is_none(),
                "held: the wait ends after `wait`"
            );
            drop(first);
            assert!(gates.enter(1, wait).await.is_some(), "released");
        });
    }

    #[test]
    fn unused_gates_are_pruned() {
        rt().block_on(async {
            let gates = DialGates::default();
            let wait = Duration::from_millis(50);
            let held = gates.enter(0, wait).await;
            for pool in 1..PRUNE_ABOVE as u64 {
                let _ = gates.enter(pool, wait).await;
            }
            assert_eq!(gates.len(), PRUNE_ABOVE);
            let _ = gates.enter(u64::MAX, wait).await;
            assert_eq!(gates.len(), 2, "the held gate and the new one");
            drop(held);
        });
    }
}
