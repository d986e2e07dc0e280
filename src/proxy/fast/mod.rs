//! The HTTP/1 fast path (issue 19).
#[doc(hidden)]
pub mod differential;
pub mod head;
