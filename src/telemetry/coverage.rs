//! The coverage view: per route, which trace-context formats arrive, how many requests
//! arrive with none (the blind spots to instrument next), which headers are invalid or
//! conflicting, and which formats the gateway writes. The admin listener serves it at
//! `GET /coverage` (JSON, or an aligned table with `Accept: text/plain`) and
//! `tracebridge coverage` prints the table from a running gateway.
//!
//! Routes are keyed by name, as the current config names them. An entry is created the
//! first time a request of a config generation is recorded, for every route of that
//! generation; a newer generation drops the entries of routes it no longer has, so the
//! view holds at most the configured route names plus `none` (requests that matched no
//! route). A request still in flight on an older generation, for a route the newer one
//! removed, is not counted.
//!
//! # Cost on the request path
//!
//! [`Coverage::record`] runs once per request, in the logging phase. In the steady
//! state it takes no lock: one `ArcSwap` load (a thread-local read, no shared write)
//! of the table for the current generation, an index by route position, and two to
//! four relaxed `fetch_add`s — one for the incoming format (or `none`), one per
//! injected format — on this thread's shard of the route's counters, so worker threads
//! do not fight over one cache line. Invalid headers and conflicts, rare, add to shared
//! counters. The mutex is taken only by the first request of a new config generation
//! (to build its table) and by the admin endpoint. `cargo bench --bench coverage` (its
//! header has the machine): 20 ns per request on one thread, 36 ns with a second
//! thread recording on the same route, on a shared 2-vCPU VM.
//!
//! Counters are read with relaxed ordering: a report taken while requests are being
//! recorded may be a request or two apart between columns; each column is exact once
//! traffic stops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::labels::{NONE, NO_ROUTE};
use crate::codec::{Format, FormatSet, HeaderSource};
use crate::config::Snapshot;

/// What one request brought and what the gateway did with it, for the coverage view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    /// The format the incoming trace context came from (whatever trust made of it);
    /// `None` = it arrived without one.
    pub incoming: Option<Format>,
    /// Formats whose headers were present but invalid (treated as absent).
    pub invalid: FormatSet,
    /// Valid contexts of another format carrying a different trace (span links).
    pub conflicts: u32,
    /// Formats written into the outgoing request; empty when it was never forwarded.
    pub injected: FormatSet,
    /// A CORS preflight: the browser sends it without the page's trace context, so it
    /// is counted apart, not as a request without context (a false blind spot).
    pub preflight: bool,
    /// Observe mode: the formats mediation would have written (nothing was); empty
    /// in mediate mode.
    pub would_inject: FormatSet,
    /// Observe mode: the formats present that mediation would have removed.
    pub would_strip: FormatSet,
}

/// A CORS preflight (Fetch standard): `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_cors_preflight(method: &http::Method, headers: &impl HeaderSource) -> bool {
    // One definition, shared with the browser edge's CORS rules.
    crate::mediate::browser::is_preflight(method, headers)
}

/// Key of the requests that arrived without a trace context, next to the formats.
const NO_CONTEXT: &str = NONE;

/// How many copies of the per-request counters each route keeps; a thread always adds
/// to the same copy, so two worker threads do not bounce one cache line between cores.
/// Beyond this many threads copies are shared (still exact: every add is atomic).
/// Memory: 8 × 256 bytes per route.
const SHARDS: usize = 8;

thread_local! {
    /// This thread's copy of the per-request counters.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % SHARDS
    };
}

fn per_format() -> [AtomicU64; Format::COUNT] {
    [const { AtomicU64::new(0) }; Format::COUNT]
}

fn sum(counters: &[AtomicU64; Format::COUNT], into: &mut [u64; Format::COUNT]) {
    for (total, c) in into.iter_mut().zip(counters) {
        *total += c.load(Relaxed);
    }
}

/// The counters every request touches: one copy per shard, on its own cache lines.
#[derive(Debug)]
#[repr(align(64))]
struct Hot {
    /// By incoming format; requests = these + `none`.
    incoming: [AtomicU64; Format::COUNT],
    none: AtomicU64,
    injected: [AtomicU64; Format::COUNT],
    /// CORS preflights: neither with nor without context.
    preflight: AtomicU64,
    /// Observe mode's "would change": by format, written and removed.
    would_inject: [AtomicU64; Format::COUNT],
    would_strip: [AtomicU64; Format::COUNT],
}

/// The counters of one route.
#[derive(Debug)]
struct Counters {
    hot: [Hot; SHARDS],
    /// Rare (a messy request): shared by every thread.
    invalid: [AtomicU64; Format::COUNT],
    conflicts: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            hot: std::array::from_fn(|_| Hot {
                incoming: per_format(),
                none: AtomicU64::new(0),
                injected: per_format(),
                preflight: AtomicU64::new(0),
                would_inject: per_format(),
                would_strip: per_format(),
            }),
            invalid: per_format(),
            conflicts: AtomicU64::new(0),
        }
    }
}

impl Counters {
    fn add(&self, obs: &Observation) {
        let hot = &self.hot[SHARD.with(|s| *s)];
        match obs.incoming {
            Some(f) => hot.incoming[f.index()].fetch_add(1, Relaxed),
            None if obs.preflight => hot.preflight.fetch_add(1, Relaxed),
            None => hot.none.fetch_add(1, Relaxed),
        };
        for f in obs.injected.iter() {
            hot.injected[f.index()].fetch_add(1, Relaxed);
        }
        // Observe-mode routes only; one branch for the rest.
        if !(obs.would_inject.is_empty() && obs.would_strip.is_empty()) {
            for f in obs.would_inject.iter() {
                hot.would_inject[f.index()].fetch_add(1, Relaxed);
            }
            for f in obs.would_strip.iter() {
                hot.would_strip[f.index()].fetch_add(1, Relaxed);
            }
        }
        if !obs.invalid.is_empty() {
            for f in obs.invalid.iter() {
                self.invalid[f.index()].fetch_add(1, Relaxed);
            }
        }
        if obs.conflicts > 0 {
            self.conflicts.fetch_add(u64::from(obs.conflicts), Relaxed);
        }
    }

    fn report(&self) -> RouteReport {
        let mut incoming = [0u64; Format::COUNT];
        let mut injected = [0u64; Format::COUNT];
        let mut invalid = [0u64; Format::COUNT];
        let mut would_inject = [0u64; Format::COUNT];
        let mut would_strip = [0u64; Format::COUNT];
        let mut none = 0;
        let mut preflights = 0;
        for hot in &self.hot {
            sum(&hot.incoming, &mut incoming);
            sum(&hot.injected, &mut injected);
            sum(&hot.would_inject, &mut would_inject);
            sum(&hot.would_strip, &mut would_strip);
            none += hot.none.load(Relaxed);
            preflights += hot.preflight.load(Relaxed);
        }
        sum(&self.invalid, &mut invalid);
        let by_format = |totals: &[u64; Format::COUNT]| {
            Format::ALL
                .iter()
                .map(|f| (f.as_str(), totals[f.index()]))
                .filter(|(_, n)| *n > 0)
                .collect::<BTreeMap<_, _>>()
        };
        let with: u64 = incoming.iter().sum();
        let requests = with + none;
        let mut incoming = by_format(&incoming);
        if none > 0 {
            incoming.insert(NO_CONTEXT, none);
        }
        RouteReport {
            requests,
            with_context_share: if requests == 0 {
                0.0
            } else {
                with as f64 / requests as f64
            },
            incoming,
            invalid: by_format(&invalid),
            conflicts: self.conflicts.load(Relaxed),
            injected: by_format(&injected),
            preflights,
            would_inject: by_format(&would_inject),
            would_strip: by_format(&would_strip),
        }
    }
}

/// The counters of one config generation's routes, by route position.
#[derive(Debug, Default)]
struct Table {
    generation: u64,
    routes: Vec<Arc<Counters>>,
}

/// The per-route coverage counters of the whole process.
#[derive(Debug, Default)]
pub struct Coverage {
    /// The table of the newest generation seen: the lock-free fast path.
    table: ArcSwap<Table>,
    /// Every route's counters by name; locked only to build a table or a report.
    by_name: Mutex<HashMap<String, Arc<Counters>>>,
    /// Requests that matched no route.
    unrouted: Counters,
}

impl Coverage {
    /// Empty counters.
    pub fn new() -> Self {
        Coverage::default()
    }

    /// Counts one request of `snapshot`'s generation on its route (`None` = no route
    /// matched). See the module docs for what this costs.
    pub fn record(&self, snapshot: &Snapshot, route: Option<usize>, obs: &Observation) {
        let Some(index) = route else {
            self.unrouted.add(obs);
            return;
        };
        {
            let table = self.table.load();
            if table.generation == snapshot.generation {
                if let Some(counters) = table.routes.get(index) {
                    counters.add(obs);
                    return;
                }
            }
        }
        if let Some(counters) = self.resolve(snapshot, index) {
            counters.add(obs);
        }
    }

    /// The slow path: the first request of a newer generation builds its table (and
    /// drops routes it no longer has); a request of an older one looks its route up by
    /// name.
    fn resolve(&self, snapshot: &Snapshot, index: usize) -> Option<Arc<Counters>> {
        let mut by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load();
        if snapshot.generation > current.generation {
            let names: Vec<&str> = (0..snapshot.router.len())
                .filter_map(|i| snapshot.router.route(i).map(|r| &*r.name))
                .collect();
            let keep: HashSet<&str> = names.iter().copied().collect();
            by_name.retain(|name, _| keep.contains(name.as_str()));
            let routes = names
                .iter()
                .map(|name| by_name.entry((*name).to_string()).or_default().clone())
                .collect();
            self.table.store(Arc::new(Table {
                generation: snapshot.generation,
                routes,
            }));
        }
        let name = &snapshot.router.route(index)?.name;
        by_name.get(&**name).cloned()
    }

    /// Every route with at least one request, and `none` when requests matched no route.
    pub fn report(&self) -> CoverageReport {
        let by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let mut routes: BTreeMap<String, RouteReport> = by_name
            .iter()
            .map(|(name, c)| (name.clone(), c.report()))
            .filter(|(_, r)| r.requests > 0 || r.preflights > 0)
            .collect();
        drop(by_name);
        let unrouted = self.unrouted.report();
        if unrouted.requests > 0 || unrouted.preflights > 0 {
            routes.insert(NO_ROUTE.to_string(), unrouted);
        }
        CoverageReport { routes }
    }
}

/// One route's line of the coverage view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteReport {
    /// Requests recorded.
    pub requests: u64,
    /// Share of requests that arrived with a trace context, 0.0 to 1.0.
    pub with_context_share: f64,
    /// Requests by the format their context came from; `none` = no context.
    pub incoming: BTreeMap<&'static str, u64>,
    /// Invalid headers by format.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Contexts of another format carrying a different trace.
    pub conflicts: u64,
    /// Forwarded requests by format written.
    pub injected: BTreeMap<&'static str, u64>,
    /// CORS preflights without context, not in `requests` (a browser never sends the
    /// page's context on a preflight, so they are no blind spot); omitted when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub preflights: u64,
    /// Observe mode: requests by format mediation would have written (nothing was
    /// written: `injected` stays empty); omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub would_inject: BTreeMap<&'static str, u64>,
    /// Observe mode: requests by format present that mediation would have removed;
    /// omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub would_strip: BTreeMap<&'static str, u64>,
}

impl RouteReport {
    /// The "would change" cell: `+format n` for each format mediation would write,
    /// `-format n` for each it would remove; `-` when nothing.
    pub fn would_change(&self) -> String {
        let cells: Vec<String> = self
            .would_inject
            .iter()
            .map(|(f, n)| format!("+{f} {n}"))
            .chain(self.would_strip.iter().map(|(f, n)| format!("-{f} {n}")))
            .collect();
        if cells.is_empty() {
            "-".to_string()
        } else {
            cells.join(", ")
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The whole coverage view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageReport {
    /// By route name; `none` = requests that matched no route.
    pub routes: BTreeMap<String, RouteReport>,
}

/// How many incoming formats the table names per route.
const TOP_INCOMING: usize = 3;

/// `name count, name count` by count (highest first), at most `limit` names, then
/// `+N more`; `-` when empty.
fn counts(map: &BTreeMap<&'static str, u64>, skip: &str, limit: usize) -> String {
    let mut items: Vec<(&str, u64)> = map
        .iter()
        .filter(|(k, _)| **k != skip)
        .map(|(k, v)| (*k, *v))
        .collect();
    if items.is_empty() {
        return "-".to_string();
    }
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out = items
        .iter()
        .take(limit)
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > limit {
        let _ = write!(out, ", +{} more", items.len() - limit);
    }
    out
}

impl CoverageReport {
    /// The JSON body of `GET /coverage`, newline-terminated.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing maps of strings and numbers cannot fail; an empty object is the
        // fallback all the same.
        let mut body = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        body
    }

    /// The aligned plain-text table: one row per route, busiest first, `none` last. A
    /// last column, WOULD CHANGE, appears when a route runs in observe mode.
    pub fn to_table(&self) -> String {
        let observed = self
            .routes
            .values()
            .any(|r| !(r.would_inject.is_empty() && r.would_strip.is_empty()));
        const HEADER: [&str; 9] = [
            "ROUTE",
            "REQUESTS",
            "WITH CONTEXT",
            "TOP INCOMING",
            "NONE",
            "INVALID",
            "CONFLICTS",
            "INJECTED",
            "WOULD CHANGE",
        ];
        let columns = if observed { 9 } else { 8 };
        // Numbers right-aligned, text left-aligned.
        const RIGHT: [bool; 9] = [false, true, true, false, true, false, true, false, false];
        let mut order: Vec<(&String, &RouteReport)> = self.routes.iter().collect();
        order.sort_by(|a, b| {
            (a.0 == NO_ROUTE)
                .cmp(&(b.0 == NO_ROUTE))
                .then(b.1.requests.cmp(&a.1.requests))
                .then(a.0.cmp(b.0))
        });
        let mut rows: Vec<[String; 9]> = vec![HEADER.map(String::from)];
        for (name, r) in order {
            rows.push([
                name.clone(),
                r.requests.to_string(),
                format!("{:.1}%", r.with_context_share * 100.0),
                counts(&r.incoming, NO_CONTEXT, TOP_INCOMING),
                r.incoming.get(NO_CONTEXT).copied().unwrap_or(0).to_string(),
                counts(&r.invalid, "", usize::MAX),
                r.conflicts.to_string(),
                counts(&r.injected, "", usize::MAX),
                r.would_change(),
            ]);
        }
        let mut widths = [0usize; 9];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().take(columns).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                if RIGHT[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn config(routes: &[&str]) -> String {
        let mut text = String::from("[upstreams.demo]\nkind = \"echo\"\n");
        for (i, name) in routes.iter().enumerate() {
            text.push_str(&format!(
                "[[routes]]\nname = \"{name}\"\npath_prefix = \"/{i}\"\nupstream = \"demo\"\n"
            ));
        }
        text
    }

    fn snapshot(routes: &[&str], generation: u64) -> Snapshot {
        load_str(&config(routes), None, generation).unwrap()
    }

    fn set(formats: &[Format]) -> FormatSet {
        let mut s = FormatSet::default();
        for f in formats {
            s.insert(*f);
        }
        s
    }

    fn seen(incoming: Option<Format>) -> Observation {
        Observation {
            incoming,
            injected: set(&[Format::TraceContext]),
            ..Observation::default()
        }
    }

    #[test]
    fn counts_by_route_format_and_blind_spot() {
        let cov = Coverage::new();
        let s = snapshot(&["api", "web"], 1);
        for _ in 0..3 {
            cov.record(&s, Some(0), &seen(Some(Format::TraceContext)));
        }
        cov.record(&s, Some(0), &seen(Some(Format::B3)));
        cov.record(
            &s,
            Some(0),
            &Observation {
                invalid: set(&[Format::TraceContext, Format::B3]),
                conflicts: 2,
                ..seen(None)
            },
        );
        cov.record(&s, None, &Observation::default());
        let r = cov.report();
        assert_eq!(
            r.routes.keys().collect::<Vec<_>>(),
            ["api", "none"],
            "routes without requests are left out"
        );
        let api = &r.routes["api"];
        assert_eq!(api.requests, 5);
        assert_eq!(api.with_context_share, 0.8);
        assert_eq!(
            api.incoming,
            BTreeMap::from([("tracecontext", 3), ("b3", 1), ("none", 1)])
        );
        assert_eq!(
            api.invalid,
            BTreeMap::from([("tracecontext", 1), ("b3", 1)])
        );
        assert_eq!(api.conflicts, 2);
        assert_eq!(api.injected, BTreeMap::from([("tracecontext", 5)]));
        let none = &r.routes["none"];
        assert_eq!(none.requests, 1);
        assert_eq!(none.with_context_share, 0.0);
        assert!(none.injected.is_empty());
    }

    #[test]
    fn a_reload_keeps_surviving_routes_and_drops_removed_ones() {
        let cov = Coverage::new();
        let first = snapshot(&["api", "old"], 1);
        cov.record(&first, Some(0), &seen(None));
        cov.record(&first, Some(1), &seen(None));
        // Routes reordered, one removed, one added: counters follow the name.
        let second = snapshot(&["new", "api"], 2);
        cov.record(&second, Some(1), &seen(None));
        cov.record(&second, Some(0), &seen(None));
        // A request still on the first generation: its surviving route still counts,
        // the removed one does not come back.
        cov.record(&first, Some(0), &seen(None));
        cov.record(&first, Some(1), &seen(None));
        let r = cov.report();
        assert_eq!(r.routes.keys().collect::<Vec<_>>(), ["api", "new"]);
        assert_eq!(r.routes["api"].requests, 3);
        assert_eq!(r.routes["new"].requests, 1);
        assert_eq!(
            cov.by_name.lock().unwrap().len(),
            2,
            "bounded by the config"
        );
    }

    #[test]
    fn json_shape() {
        let cov = Coverage::new();
        let s = snapshot(&["api"], 1);
        cov.record(&s, Some(0), &seen(Some(Format::Jaeger)));
        cov.record(&s, Some(0), &seen(None));
        let v: serde_json::Value = serde_json::from_slice(&cov.report().to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"routes": {"api": {
                "requests": 2,
                "with_context_share": 0.5,
                "incoming": {"jaeger": 1, "none": 1},
                "invalid": {},
                "conflicts": 0,
                "injected": {"tracecontext": 2},
            }}})
        );
    }

    #[test]
    fn table_is_aligned_busiest_first_unrouted_last() {
        let cov = Coverage::new();
        let s = snapshot(&["api", "checkout"], 1);
        for f in [
            Format::B3,
            Format::B3,
            Format::TraceContext,
            Format::Jaeger,
            Format::Datadog,
        ] {
            cov.record(&s, Some(1), &seen(Some(f)));
        }
        cov.record(&s, Some(1), &seen(None));
        cov.record(&s, Some(0), &seen(None));
        for _ in 0..9 {
            cov.record(&s, None, &Observation::default());
        }
        let table = cov.report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("ROUTE     REQUESTS  WITH CONTEXT  TOP INCOMING"));
        assert_eq!(
            lines[1],
            "checkout         6         83.3%  b3 2, datadog 1, jaeger 1, +1 more     1  \
             -                0  tracecontext 6"
        );
        assert!(
            lines[2].starts_with("api              1          0.0%  -"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("none             9          0.0%  -"),
            "{table}"
        );
        // Every column starts at the same offset on every line.
        let col = lines[0].find("NONE").unwrap();
        assert_eq!(&lines[1][col - 2..col + 4], "     1");
    }

    /// Observe mode's "would change": counted per format, in the JSON only when
    /// present, and a last table column only when some route has it.
    #[test]
    fn observe_mode_adds_a_would_change_column() {
        let cov = Coverage::new();
        let s = snapshot(&["legacy", "api"], 1);
        cov.record(&s, Some(1), &seen(None));
        let plain = cov.report().to_table();
        assert!(!plain.contains("WOULD CHANGE"), "{plain}");
        let observed = Observation {
            incoming: Some(Format::B3),
            would_inject: set(&[Format::TraceContext, Format::B3]),
            would_strip: set(&[Format::Jaeger]),
            ..Observation::default()
        };
        cov.record(&s, Some(0), &observed);
        cov.record(&s, Some(0), &observed);
        let r = cov.report();
        let legacy = &r.routes["legacy"];
        assert!(legacy.injected.is_empty());
        assert_eq!(
            legacy.would_inject,
            BTreeMap::from([("tracecontext", 2), ("b3", 2)])
        );
        assert_eq!(legacy.would_strip, BTreeMap::from([("jaeger", 2)]));
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(
            v["routes"]["legacy"]["would_strip"],
            serde_json::json!({"jaeger": 2})
        );
        assert!(v["routes"]["api"].get("would_inject").is_none());
        let table = r.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].ends_with("INJECTED        WOULD CHANGE"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("legacy")
                && lines[1].ends_with("-               +b3 2, +tracecontext 2, -jaeger 2"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("api") && lines[2].ends_with("  -"),
            "{table}"
        );
    }

    #[test]
    fn preflights_are_not_blind_spots() {
        let cov = Coverage::new();
        let s = snapshot(&["api"], 1);
        let preflight = Observation {
            preflight: true,
            ..seen(None)
        };
        cov.record(&s, Some(0), &preflight);
        cov.record(&s, Some(0), &preflight);
        cov.record(&s, Some(0), &seen(Some(Format::TraceContext)));
        // A preflight that did carry a context counts with its format.
        cov.record(
            &s,
            Some(0),
            &Observation {
                preflight: true,
                ..seen(Some(Format::B3))
            },
        );
        let r = &cov.report().routes["api"];
        assert_eq!(r.requests, 2);
        assert_eq!(r.with_context_share, 1.0);
        assert_eq!(r.preflights, 2);
        assert!(!r.incoming.contains_key("none"));

        let mut h = http::HeaderMap::new();
        h.insert("origin", "https://app.example".parse().unwrap());
        assert!(
            !is_cors_preflight(&http::Method::OPTIONS, &h),
            "no request method"
        );
        h.insert("access-control-request-method", "POST".parse().unwrap());
        assert!(is_cors_preflight(&http::Method::OPTIONS, &h));
        assert!(!is_cors_preflight(&http::Method::GET, &h));
    }
}
