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
//! Thread-local because a connection's task mostly runs on the worker thread that
//! accepted it; when tokio's work stealing moves it, a connection may come back to
//! another thread's list, which is still correct.

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
    /// When it went idle plus the upstream's `idle_timeout` (compared, not subtracted,
    /// at checkout and checkin); `None` for a timeout beyond the clock's range.
    expires: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<Vec<(SocketAddr, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// An idle connection to `peer` that is still usable at `now`, if any. `now` is the
/// caller's clock read (the request's start: a few microseconds old), not a new one.
pub(super) fn checkout(peer: &SocketAddr, now: Instant) -> Option<TcpStream> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let (_, list) = idle.iter_mut().find(|(p, _)| p == peer)?;
        while let Some(mut conn) = list.pop() {
            if conn.expires.is_none_or(|e| now < e) && quiet(&mut conn.stream) {
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
            .take_while(|c| c.expires.is_some_and(|e| e <= since))
            .count();
        let over = (list.len() - expired + 1).saturating_sub(MAX_IDLE_PER_PEER);
        list.drain(..expired + over);
        list.push(Idle {
            stream,
            expires: since.checked_add(idle_timeout),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair on 127.0.0.1: our end, and the peer's (kept open or dropped).
    async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ours = TcpStream::connect(addr).await.unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        (ours, theirs, SocketAddr::Inet(addr))
    }

    #[tokio::test]
    async fn a_connection_is_reused_until_its_idle_time_is_up_or_its_peer_closes_it() {
        let start = Instant::now();
        let later = |s| start + Duration::from_secs(s);
        let (ours, _theirs, peer) = pair().await;
        checkin(&peer, ours, Duration::from_secs(60), start);
        assert!(checkout(&peer, later(59)).is_some(), "within idle_timeout");
        assert!(checkout(&peer, later(59)).is_none(), "taken once");

        let (ours, _theirs, peer) = pair().await;
        checkin(&peer, ours, Duration::from_secs(60), start);
        assert!(
            checkout(&peer, later(60)).is_none(),
            "expired at idle_timeout"
        );

        // A timeout beyond the clock's range never expires (and does not panic).
        let (ours, _theirs, peer) = pair().await;
        checkin(&peer, ours, Duration::MAX, start);
        assert!(checkout(&peer, later(100_000)).is_some());

        let (ours, theirs, peer) = pair().await;
        checkin(&peer, ours, Duration::from_secs(60), start);
        drop(theirs);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(checkout(&peer, later(1)).is_none(), "closed by the peer");
    }

    #[tokio::test]
    async fn checkin_drops_the_expired_and_keeps_at_most_the_bound() {
        let start = Instant::now();
        let (ours, _a, peer) = pair().await;
        checkin(&peer, ours, Duration::from_secs(1), start);
        let len = || {
            IDLE.with(|idle| {
                let idle = idle.borrow();
                idle.iter().find(|(p, _)| *p == peer).map(|(_, l)| l.len())
            })
        };
        let mut peers = Vec::new();
        // Three: the expired one is gone at the first; then the bound holds.
        for n in [3, MAX_IDLE_PER_PEER] {
            for _ in 0..n {
                let (ours, theirs, _) = pair().await;
                peers.push(theirs);
                checkin(
                    &peer,
                    ours,
                    Duration::from_secs(60),
                    start + Duration::from_secs(2),
                );
            }
            assert_eq!(len(), Some(n));
        }
    }
}
