//! The HTTP/1 fast path (issue 19).
pub mod head;
