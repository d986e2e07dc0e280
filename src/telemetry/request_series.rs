//! The per-request series of [`super::metrics::Metrics`] (`tracebridge_requests_total`,
//! `tracebridge_request_duration_seconds`, `tracebridge_upstream_request_duration_seconds`),
//! kept per thread and summed when scraped.
//!
//! A shared prometheus series costs a locked read-modify-write per count: four for a
//! histogram observation, nine for the three series of one request. Here each worker
//! thread adds to cells of its own with a plain load and store (it is their only
//! writer), and a scrape sums every thread's cells. A scrape reads each cell once
//! (`Relaxed`): the counts it sees are ones some request already finished, as with any
//! scrape of moving counters.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// A count one thread adds to and any thread reads. Only the owning thread writes,
/// so an add is a load and a store, not a locked instruction.
#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl Cell {
    fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed).wrapping_add(n);
        self.0.store(v, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One histogram's observations on one thread: a count per bucket (not cumulative;
/// the last one is `+Inf`) and the sum's bits.
#[derive(Debug)]
struct HistogramCells {
    buckets: Box<[Cell]>,
    sum: Cell,
}

impl HistogramCells {
    fn new(bounds: &[f64]) -> Self {
        HistogramCells {
            buckets: (0..=bounds.len()).map(|_| Cell::default()).collect(),
            sum: Cell::default(),
        }
    }

    fn observe(&self, bounds: &[f64], v: f64) {
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.buckets[i].add(1);
        let sum = f64::from_bits(self.sum.get()) + v;
        self.sum.0.store(sum.to_bits(), Ordering::Relaxed);
    }
}

/// The status classes, in [`class_index`] order.
pub(crate) const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// `1xx` … `5xx`, or `other` for anything outside 100..=599 (0 = no response sent).
fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// The series of one (route, upstream) pair on one thread.
#[derive(Debug)]
struct SeriesCells {
    route: Box<str>,
    upstream: Box<str>,
    requests: [Cell; 6],
    duration: HistogramCells,
    upstream_duration: [HistogramCells; 6],
}

/// One thread's series, listed for the scrape. Only that thread adds to the list.
#[derive(Debug, Default)]
struct Shard {
    series: Mutex<Vec<Arc<SeriesCells>>>,
}

/// What a thread keeps of one [`RequestSeries`]: its shard, and the series it used
/// last, found without the shard's lock.
struct Local {
    id: u64,
    shard: Arc<Shard>,
    recent: Vec<Arc<SeriesCells>>,
}

/// Series kept at hand per thread; beyond it the oldest is dropped from the shortcut
/// (the shard keeps it, and its counts).
const SERIES_PER_THREAD: usize = 64;
/// `RequestSeries` (one per gateway in a process) a thread keeps at hand.
const SETS_PER_THREAD: usize = 8;

thread_local! {
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A list's lock; a panic while it was held cannot leave a list half-changed (every
/// change is one push), so a poisoned lock is still used.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The three request series of one registry, as one prometheus collector.
#[derive(Debug)]
pub(crate) struct RequestSeries {
    id: u64,
    bounds: Vec<f64>,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// requests, duration, upstream duration.
    descs: [Desc; 3],
}

/// Name and help of one family.
pub(crate) struct Family<'a> {
    pub(crate) name: &'a str,
    pub(crate) help: &'a str,
}

impl RequestSeries {
    /// The collector for `requests` (`{route,status_class}`), `duration` (`{route}`) and
    /// `upstream_duration` (`{upstream,status_class}`), histograms with `bounds`.
    pub(crate) fn new(
        requests: Family<'_>,
        duration: Family<'_>,
        upstream_duration: Family<'_>,
        bounds: &[f64],
    ) -> Result<Arc<Self>, prometheus::Error> {
        let desc = |f: Family<'_>, labels: &[&str]| {
            Desc::new(
                f.name.to_string(),
                f.help.to_string(),
                labels.iter().map(|l| (*l).to_string()).collect(),
                Default::default(),
            )
        };
        Ok(Arc::new(RequestSeries {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bounds: bounds.to_vec(),
            shards: Mutex::new(Vec::new()),
            descs: [
                desc(requests, &["route", "status_class"])?,
                desc(duration, &["route"])?,
                desc(upstream_duration, &["upstream", "status_class"])?,
            ],
        }))
    }

    /// Counts one finished request of `route` to `upstream` with the status the client
    /// got and its duration, and the upstream's part (its status, or the gateway's
    /// own when it gave none, and the time from the first attempt), if it was reached.
    pub(crate) fn observe(
        &self,
        route: &str,
        upstream: &str,
        status: u16,
        elapsed: Duration,
        upstream_part: Option<(u16, Duration)>,
    ) {
        LOCAL.with(|locals| {
            let mut locals = locals.borrow_mut();
            let local = self.local(&mut locals);
            let found = local
                .recent
                .iter()
                .position(|s| *s.route == *route && *s.upstream == *upstream);
            let i = match found {
                Some(i) => i,
                None => {
                    let series = self.series_of(&local.shard, route, upstream);
                    if local.recent.len() >= SERIES_PER_THREAD {
                        local.recent.remove(0);
                    }
                    local.recent.push(series);
                    local.recent.len() - 1
                }
            };
            let series = &local.recent[i];
            series.requests[class_index(status)].add(1);
            series.duration.observe(&self.bounds, elapsed.as_secs_f64());
            if let Some((status, took)) = upstream_part {
                series.upstream_duration[class_index(status)]
                    .observe(&self.bounds, took.as_secs_f64());
            }
        });
    }

    /// This thread's [`Local`] of `self`, made and registered on first use.
    fn local<'l>(&self, locals: &'l mut Vec<Local>) -> &'l mut Local {
        let i = match locals.iter().position(|l| l.id == self.id) {
            Some(i) => i,
            None => {
                let shard = Arc::new(Shard::default());
                lock(&self.shards).push(shard.clone());
                if locals.len() >= SETS_PER_THREAD {
                    locals.remove(0);
                }
                locals.push(Local {
                    id: self.id,
                    shard,
                    recent: Vec::new(),
                });
                locals.len() - 1
            }
        };
        &mut locals[i]
    }

    /// The thread's series of (`route`, `upstream`) in `shard`, made on first use.
    fn series_of(&self, shard: &Shard, route: &str, upstream: &str) -> Arc<SeriesCells> {
        let mut list = lock(&shard.series);
        if let Some(s) = list
            .iter()
            .find(|s| *s.route == *route && *s.upstream == *upstream)
        {
            return s.clone();
        }
        let series = Arc::new(SeriesCells {
            route: route.into(),
            upstream: upstream.into(),
            requests: Default::default(),
            duration: HistogramCells::new(&self.bounds),
            upstream_duration: std::array::from_fn(|_| HistogramCells::new(&self.bounds)),
        });
        list.push(series.clone());
        series
    }

    /// Every thread's cells summed: requests by (route, class), durations by route and
    /// upstream durations by (upstream, class).
    fn sums(&self) -> Sums {
        let mut sums = Sums::default();
        let n = self.bounds.len() + 1;
        let add = |into: &mut Hist, cells: &HistogramCells| {
            if into.buckets.is_empty() {
                into.buckets = vec![0; n];
            }
            for (b, c) in into.buckets.iter_mut().zip(cells.buckets.iter()) {
                *b += c.get();
            }
            into.sum += f64::from_bits(cells.sum.get());
        };
        // Copies of the lists, so a request thread adding a series waits only for a copy.
        let shards = lock(&self.shards).clone();
        for shard in shards {
            let list = lock(&shard.series).clone();
            for s in list {
                for (class, c) in s.requests.iter().enumerate() {
                    let v = c.get();
                    if v > 0 {
                        *sums.requests.entry((s.route.clone(), class)).or_default() += v;
                    }
                }
                add(
                    sums.duration.entry(s.route.clone()).or_default(),
                    &s.duration,
                );
                for (class, h) in s.upstream_duration.iter().enumerate() {
                    add(
                        sums.upstream
                            .entry((s.upstream.clone(), class))
                            .or_default(),
                        h,
                    );
                }
            }
        }
        sums
    }

    fn histogram(&self, h: &Hist) -> proto::Histogram {
        let mut out = proto::Histogram::default();
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(h.buckets.iter())
            .map(|(bound, count)| {
                cumulative += count;
                let mut b = proto::Bucket::default();
                b.set_cumulative_count(cumulative);
                b.set_upper_bound(*bound);
                b
            })
            .collect::<Vec<_>>();
        out.set_sample_count(h.buckets.iter().sum());
        out.set_sample_sum(h.sum);
        out.set_bucket(buckets.into());
        out
    }
}

#[derive(Default)]
struct Hist {
    buckets: Vec<u64>,
    sum: f64,
}

impl Hist {
    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[derive(Default)]
struct Sums {
    requests: BTreeMap<(Box<str>, usize), u64>,
    duration: BTreeMap<Box<str>, Hist>,
    upstream: BTreeMap<(Box<str>, usize), Hist>,
}

/// A metric with `labels` (name, value), in the sorted order prometheus prints them.
fn metric(labels: &[(&str, &str)]) -> proto::Metric {
    let mut pairs: Vec<proto::LabelPair> = labels
        .iter()
        .map(|(name, value)| {
            let mut p = proto::LabelPair::default();
            p.set_name((*name).to_string());
            p.set_value((*value).to_string());
            p
        })
        .collect();
    pairs.sort();
    let mut m = proto::Metric::default();
    m.set_label(pairs.into());
    m
}

fn family(desc: &Desc, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(desc.fq_name.clone());
    f.set_help(desc.help.clone());
    f.set_field_type(kind);
    f.set_metric(metrics.into());
    f
}

/// The registry's handle on a shared [`RequestSeries`].
pub(crate) struct Collect(pub(crate) Arc<RequestSeries>);

impl Collector for Collect {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = &self.0;
        let sums = series.sums();
        let requests = sums
            .requests
            .iter()
            .map(|((route, class), v)| {
                let mut m = metric(&[("route", route), ("status_class", CLASSES[*class])]);
                let mut c = proto::Counter::default();
                c.set_value(*v as f64);
                m.set_counter(c);
                m
            })
            .collect();
        let duration = sums
            .duration
            .iter()
            .filter(|(_, h)| h.count() > 0)
            .map(|(route, h)| {
                let mut m = metric(&[("route", route)]);
                m.set_histogram(series.histogram(h));
                m
            })
            .collect();
        let upstream = sums
            .upstream
            .iter()
            .filter(|(_, h)| h.count() > 0)
            .map(|((upstream, class), h)| {
                let mut m = metric(&[("upstream", upstream), ("status_class", CLASSES[*class])]);
                m.set_histogram(series.histogram(h));
                m
            })
            .collect();
        let [d_requests, d_duration, d_upstream] = &series.descs;
        [
            family(d_requests, MetricType::COUNTER, requests),
            family(d_duration, MetricType::HISTOGRAM, duration),
            family(d_upstream, MetricType::HISTOGRAM, upstream),
        ]
        .into_iter()
        // A family without a series yet is left out, as prometheus's vectors do.
        .filter(|f| !f.get_metric().is_empty())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];

    fn series() -> Arc<RequestSeries> {
        RequestSeries::new(
            Family {
                name: "t_requests_total",
                help: "r",
            },
            Family {
                name: "t_duration_seconds",
                help: "d",
            },
            Family {
                name: "t_upstream_duration_seconds",
                help: "u",
            },
            &BOUNDS,
        )
        .expect("valid names")
    }

    fn text(s: &Arc<RequestSeries>) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&Collect(s.clone()).collect(), &mut out)
            .expect("encodes");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn counts_from_several_threads_add_up_in_the_prometheus_text() {
        let s = series();
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        s.observe(
                            "api",
                            "origin",
                            200,
                            Duration::from_micros(500),
                            Some((200, Duration::from_millis(5))),
                        );
                    }
                    s.observe("api", "origin", 502, Duration::from_secs(1), None);
                });
            }
        });
        let page = text(&s);
        for line in [
            r#"t_requests_total{route="api",status_class="2xx"} 3000"#,
            r#"t_requests_total{route="api",status_class="5xx"} 3"#,
            r#"t_duration_seconds_bucket{route="api",le="0.001"} 3000"#,
            r#"t_duration_seconds_bucket{route="api",le="0.1"} 3000"#,
            r#"t_duration_seconds_bucket{route="api",le="+Inf"} 3003"#,
            r#"t_duration_seconds_count{route="api"} 3003"#,
            r#"t_upstream_duration_seconds_bucket{status_class="2xx",upstream="origin",le="0.001"} 0"#,
            r#"t_upstream_duration_seconds_bucket{status_class="2xx",upstream="origin",le="0.01"} 3000"#,
            r#"t_upstream_duration_seconds_count{status_class="2xx",upstream="origin"} 3000"#,
        ] {
            assert!(page.contains(line), "{line} not in:\n{page}");
        }
        let sum: f64 = page
            .lines()
            .find_map(|l| l.strip_prefix(r#"t_duration_seconds_sum{route="api"} "#))
            .and_then(|v| v.parse().ok())
            .expect("a duration sum");
        assert!((sum - 4.5).abs() < 1e-9, "{sum}");
        // The 502 never reached the upstream: no upstream series for it.
        assert!(!page.contains(r#"status_class="5xx",upstream"#), "{page}");
    }

    #[test]
    fn two_collectors_in_one_thread_keep_their_own_counts() {
        let (a, b) = (series(), series());
        a.observe("r", "u", 404, Duration::ZERO, None);
        b.observe("r", "u", 200, Duration::ZERO, None);
        b.observe("r", "u", 200, Duration::ZERO, None);
        assert!(text(&a).contains(r#"t_requests_total{route="r",status_class="4xx"} 1"#));
        assert!(text(&b).contains(r#"t_requests_total{route="r",status_class="2xx"} 2"#));
        assert!(!text(&a).contains("2xx"));
    }

    #[test]
    fn a_series_dropped_from_the_threads_shortcut_keeps_its_counts() {
        let s = series();
        for i in 0..(SERIES_PER_THREAD + 5) {
            s.observe(&format!("r{i}"), "u", 200, Duration::ZERO, None);
        }
        // r0 fell out of the shortcut; counting it again finds the same cells.
        s.observe("r0", "u", 200, Duration::ZERO, None);
        let page = text(&s);
        assert!(
            page.contains(r#"t_requests_total{route="r0",status_class="2xx"} 2"#),
            "{page}"
        );
        assert!(page.contains(r#"t_requests_total{route="r68",status_class="2xx"} 1"#));
    }

    #[test]
    fn nothing_is_printed_before_the_first_request() {
        assert_eq!(text(&series()), "");
    }
}
