//! Label words shared by metrics, the coverage view, the access log and the span, in
//! one place so `metrics` and `coverage` need not import each other for them.

/// The word for "nothing": a request that matched no route (`route="none"`), that
/// arrived without a trace context (coverage `incoming`), or whose span has no
/// extracted format (`tracebridge.extracted_format`). One word, so dashboards can
/// group them the same way everywhere.
pub(crate) const NONE: &str = "none";

/// Route label for requests that matched no route.
pub(crate) const NO_ROUTE: &str = NONE;
