//! Route matching, compiled once per config generation.
//!
//! Precedence (documented in the README): routes are grouped by host — an exact host
//! beats a `*.suffix` wildcard (longer suffix first), which beats a route without a
//! host. Within the first group that has a match, the longest `path_prefix` wins; among
//! equal prefixes, a route with more conditions (methods, header) wins, then file
//! order. Prefixes are plain string prefixes, as in Envoy's `prefix` and Traefik's
//! `PathPrefix` (`/orders` also matches `/orders-old`).

use std::collections::HashMap;

use std::sync::Arc;

use http::{HeaderName, Method};

use super::validate::RouteSpec;
use crate::codec::HeaderSource;
use crate::mediate::Policy;

/// A compiled route: what to match and where it goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// Route name (metric label, span attribute).
    pub name: Arc<str>,
    /// The path prefix as configured (`http.route` on spans).
    pub path_prefix: Arc<str>,
    /// Index of the upstream in the snapshot.
    pub upstream: usize,
    /// The effective propagation policy.
    pub policy: Arc<Policy>,
    methods: Vec<Method>,
    header: Option<(HeaderName, Option<String>)>,
}

impl Route {
    fn conditions(&self) -> usize {
        usize::from(!self.methods.is_empty()) + usize::from(self.header.is_some())
    }

    fn matches(&self, path: &str, method: &Method, headers: &impl HeaderSource) -> bool {
        if !path.starts_with(&*self.path_prefix) {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        match &self.header {
            None => true,
            Some((name, None)) => headers.contains(name),
            Some((name, Some(value))) => headers.values(name).any(|v| v == value.as_bytes()),
        }
    }
}

/// One host group's routes, indexed by path prefix.
///
/// Longest-prefix match without scanning every route: the distinct prefix lengths are
/// kept longest first, and each candidate prefix of the request path is one hash
/// lookup. The cost depends on how many distinct prefix *lengths* a host has, not on
/// how many routes it has (1,000 routes route as fast as 1; see `benches/reload.rs`).
///
/// A group with few prefixes (most hosts: a handful of routes) is scanned instead:
/// comparing a few prefixes costs less than hashing the request path once.
#[derive(Debug, Clone, Default)]
struct Group {
    /// Distinct prefix lengths, longest first.
    lengths: Vec<usize>,
    /// Routes by exact prefix, most conditions first, then file order.
    by_prefix: HashMap<String, Vec<usize>>,
    /// With at most [`SCAN_PREFIXES`] prefixes: the same, longest prefix first.
    scan: Option<Vec<(String, Vec<usize>)>>,
}

/// Prefixes up to which a group is scanned rather than looked up by hash.
const SCAN_PREFIXES: usize = 8;

impl Group {
    fn push(&mut self, all: &[Route], index: usize) {
        let prefix = &all[index].path_prefix;
        self.by_prefix
            .entry(prefix.to_string())
            .or_default()
            .push(index);
        if !self.lengths.contains(&prefix.len()) {
            self.lengths.push(prefix.len());
        }
    }

    /// Orders lengths longest first and each prefix's routes by conditions; the sort
    /// is stable, so file order breaks ties.
    fn finish(&mut self, all: &[Route]) {
        self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        for routes in self.by_prefix.values_mut() {
            routes.sort_by_key(|&i| std::cmp::Reverse(all[i].conditions()));
        }
        self.scan = (self.by_prefix.len() <= SCAN_PREFIXES).then(|| {
            let mut scan: Vec<_> = self
                .by_prefix
                .iter()
                .map(|(p, r)| (p.clone(), r.clone()))
                .collect();
            scan.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            scan
        });
    }

    fn find(
        &self,
        all: &[Route],
        path: &str,
        method: &Method,
        headers: &impl HeaderSource,
    ) -> Option<usize> {
        // Longest first either way; of prefixes of one length at most one can match.
        if let Some(scan) = &self.scan {
            return scan
                .iter()
                .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
                .flat_map(|(_, routes)| routes.iter().copied())
                .find(|&i| all[i].matches(path, method, headers));
        }
        self.lengths
            .iter()
            .filter_map(|&len| path.get(..len))
            .filter_map(|prefix| self.by_prefix.get(prefix))
            .flat_map(|routes| routes.iter().copied())
            .find(|&i| all[i].matches(path, method, headers))
    }
}

/// All routes of a config generation.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    exact: HashMap<String, Group>,
    /// `(".suffix", group)`, longest suffix first.
    wildcard: Vec<(String, Group)>,
    any: Group,
}

impl Router {
    /// Compiles validated routes.
    pub fn new(specs: &[RouteSpec]) -> Self {
        let mut router = Router::default();
        for (i, spec) in specs.iter().enumerate() {
            router.routes.push(Route {
                name: spec.name.as_str().into(),
                path_prefix: spec.path_prefix.as_str().into(),
                upstream: spec.upstream,
                policy: Arc::new(spec.policy.clone()),
                methods: spec.methods.clone(),
                header: spec.header.clone(),
            });
            let all = &router.routes;
            if spec.host.is_empty() {
                router.any.push(all, i);
            } else if let Some(suffix) = spec.host.strip_prefix('*') {
                let slot = match router.wildcard.iter().position(|(s, _)| s == suffix) {
                    Some(p) => p,
                    None => {
                        router.wildcard.push((suffix.to_string(), Group::default()));
                        router.wildcard.len() - 1
                    }
                };
                router.wildcard[slot].1.push(all, i);
            } else {
                router
                    .exact
                    .entry(spec.host.clone())
                    .or_default()
                    .push(all, i);
            }
        }
        let all = &router.routes;
        router.exact.values_mut().for_each(|g| g.finish(all));
        router.wildcard.iter_mut().for_each(|(_, g)| g.finish(all));
        router
            .wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        router.any.finish(all);
        router
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route at `index` (as returned by [`Router::find`]).
    pub fn route(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    /// The index of the route for a request. `host` is the Host header or
    /// `:authority`, with or without a port, any case.
    pub fn find(
        &self,
        host: Option<&str>,
        path: &str,
        method: &Method,
        headers: &impl HeaderSource,
    ) -> Option<usize> {
        let all = self.routes.as_slice();
        if let Some(host) = host.map(strip_port) {
            let lowered;
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                lowered = host.to_ascii_lowercase();
                lowered.as_str()
            } else {
                host
            };
            if let Some(r) = self
                .exact
                .get(host)
                .and_then(|g| g.find(all, path, method, headers))
            {
                return Some(r);
            }
            for (suffix, group) in &self.wildcard {
                // `*.example.com` matches `a.example.com`, not `example.com` itself.
                if host.len() > suffix.len() && host.ends_with(suffix.as_str()) {
                    if let Some(r) = group.find(all, path, method, headers) {
                        return Some(r);
                    }
                }
            }
        }
        self.any.find(all, path, method, headers)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    let bytes = host.as_bytes();
    if bytes.first() == Some(&b'[') {
        // `[v6]:port`: the port follows the last colon.
        return match bytes.iter().rposition(|&b| b == b':') {
            Some(i) if bytes[i + 1..].iter().all(u8::is_ascii_digit) => &host[..i],
            _ => host,
        };
    }
    // A name or IPv4 address: the port is all that follows its only colon (digits
    // never include another colon). This runs twice per request: one byte loop each.
    match bytes.iter().position(|&b| b == b':') {
        Some(i) if i > 0 && bytes[i + 1..].iter().all(u8::is_ascii_digit) => &host[..i],
        _ => host,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    proptest::proptest! {
        /// The byte loop agrees with the plain reading of the rule: split at the last
        /// colon; keep the name when the port is digits and the name is bracketed or
        /// has no colon of its own.
        #[test]
        fn strip_port_is_the_last_colon_rule(host in "[\\[\\]:a-c0-9.]{0,12}") {
            let want = match host.rsplit_once(':') {
                Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    && (h.starts_with('[') || !h.contains(':')) => h,
                _ => host.as_str(),
            };
            proptest::prop_assert_eq!(strip_port(&host), want);
        }
    }

    fn spec(name: &str, host: &str, prefix: &str, upstream: usize) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            host: host.into(),
            path_prefix: prefix.into(),
            methods: vec![],
            header: None,
            upstream,
            policy: Policy::default(),
        }
    }

    fn name(r: &Router, i: Option<usize>) -> Option<&str> {
        i.and_then(|i| r.route(i)).map(|r| &*r.name)
    }

    fn find<'a>(r: &'a Router, host: &str, path: &str) -> Option<&'a str> {
        name(r, r.find(Some(host), path, &Method::GET, &HeaderMap::new()))
    }

    #[test]
    fn host_classes_and_longest_prefix() {
        let r = Router::new(&[
            spec("any", "", "/", 0),
            spec("any-api", "", "/api", 0),
            spec("wild", "*.example.com", "/", 1),
            spec("wild-deep", "*.eu.example.com", "/", 1),
            spec("exact", "api.example.com", "/", 2),
            spec("exact-orders", "api.example.com", "/orders", 2),
        ]);
        assert_eq!(
            find(&r, "api.example.com", "/orders/1"),
            Some("exact-orders")
        );
        assert_eq!(find(&r, "API.Example.com:443", "/x"), Some("exact"));
        assert_eq!(find(&r, "shop.example.com", "/"), Some("wild"));
        assert_eq!(find(&r, "shop.eu.example.com", "/"), Some("wild-deep"));
        assert_eq!(
            find(&r, "example.com", "/api/x"),
            Some("any-api"),
            "wildcard needs a label"
        );
        assert_eq!(find(&r, "other.org", "/"), Some("any"));
    }

    #[test]
    fn method_and_header_conditions() {
        let mut post = spec("post", "", "/", 0);
        post.methods = vec![Method::POST];
        let mut canary = spec("canary", "", "/", 1);
        canary.header = Some((HeaderName::from_static("x-canary"), Some("1".into())));
        let r = Router::new(&[spec("plain", "", "/", 2), post, canary]);
        let mut h = HeaderMap::new();
        assert_eq!(name(&r, r.find(None, "/", &Method::POST, &h)), Some("post"));
        assert_eq!(name(&r, r.find(None, "/", &Method::GET, &h)), Some("plain"));
        h.insert("x-canary", "1".parse().unwrap());
        assert_eq!(
            name(&r, r.find(None, "/", &Method::GET, &h)),
            Some("canary")
        );
    }

    proptest::proptest! {
        /// A scanned group finds what the hashed lookup finds, conditions included.
        #[test]
        fn scanning_and_hashing_agree(
            prefixes in proptest::collection::vec("/[ab]{0,3}", 1..8),
            posts in proptest::collection::vec(proptest::bool::ANY, 8),
            path in "/[ab]{0,5}",
            post in proptest::bool::ANY,
        ) {
            let specs: Vec<RouteSpec> = prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut s = spec(&format!("r{i}"), "", p, 0);
                    if posts[i] {
                        s.methods = vec![Method::POST];
                    }
                    s
                })
                .collect();
            let scanned = Router::new(&specs);
            proptest::prop_assert!(scanned.any.scan.is_some());
            let mut hashed = scanned.clone();
            hashed.any.scan = None;
            let method = if post { Method::POST } else { Method::GET };
            let h = HeaderMap::new();
            proptest::prop_assert_eq!(
                scanned.find(None, &path, &method, &h),
                hashed.find(None, &path, &method, &h)
            );
        }
    }

    #[test]
    fn no_match() {
        let r = Router::new(&[spec("a", "a.com", "/x", 0)]);
        assert_eq!(find(&r, "b.com", "/x"), None);
        assert_eq!(find(&r, "a.com", "/y"), None);
    }

    #[test]
    fn ports_are_stripped() {
        for (host, name) in [
            ("a.com:", "a.com"),
            ("[::1]", "[::1]"),
            ("[::1]:", "[::1]"),
            ("[::1]:x", "[::1]:x"),
            ("::1", "::1"),
            (":80", ":80"),
            ("a:1:2", "a:1:2"),
            ("a.com:8x", "a.com:8x"),
            ("", ""),
        ] {
            assert_eq!(strip_port(host), name, "{host}");
        }
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.com"), "a.com");
    }
}
