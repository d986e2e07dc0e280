//! Idle upstream connections of the fast path: one list per worker thread and peer,
//! last in first out.
//!
//! pingora's pool spawns a task per idle connection to watch it (an LRU node, a
//! oneshot, two timers) and waits for that task on reuse. Here an idle connection is
//! only a socket in a thread-local list: whether the peer closed it or sent stray bytes
//! is checked at checkout with one readiness poll that makes no system call (a socket
//! the peer closed, or one with unread bytes, is readable; a healthy idle one is not).
//! Connections older than the upstream's `idle_timeout` are dropped at checkout and
//! checkin, so an idle socket lives at most that long while requests flow.
//!
//! Thread-local because the fast path's tasks stay on the worker thread that accepted
//! their connection (pingora's `work_stealing = false`); with work stealing a
//! connection may come back to another thread's list, which is still correct.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::protocols::l4::socket::SocketAddr;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

/// Idle connections kept per peer and worker thread (pingora's default pool size).
pub(super) const MAX_IDLE_PER_PEER: usize = 128;

struct Idle {
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static IDLE: RefCell<Vec<(SocketAddr, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// An idle connection to `peer` that is still usable at `now`, if any. `now` is the
/// caller's clock read (the request's start: a few microseconds old), not a new one.
pub(super) fn checkout(
    peer: &SocketAddr,
    idle_timeout: Duration,
    now: Instant,
) -> Option<TcpStream> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let (_, list) = idle.iter_mut().find(|(p, _)| p == peer)?;
        while let Some(mut conn) = list.pop() {
            if now.saturating_duration_since(conn.since) < idle_timeout && quiet(&mut conn.stream) {
                return Some(conn.stream);
            }
        }
        None
    })
}

/// Keeps `stream` for the next request to `peer`.
/// `since`: when it went idle, or a caller's earlier clock reading.
pub(super) fn checkin(
    peer: &SocketAddr,
    stream: TcpStream,
    idle_timeout: Duration,
    since: Instant,
) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = match idle.iter().position(|(p, _)| p == peer) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((peer.clone(), Vec::new()));
                let last = idle.len() - 1;
                &mut idle[last].1
            }
        };
        // The oldest are at the front: expired ones go first, then any over the bound.
        let expired = list
            .iter()
            .take_while(|c| since.saturating_duration_since(c.since) >= idle_timeout)
            .count();
        let over = (list.len() - expired + 1).saturating_sub(MAX_IDLE_PER_PEER);
        list.drain(..expired + over);
        list.push(Idle { stream, since });
    });
}

/// Whether an idle connection has nothing to read: not closed by the peer, no stray
/// bytes. One poll with a no-op waker; a readable socket is never reused.
fn quiet(stream: &mut TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}
