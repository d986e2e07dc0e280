//! The span export pipeline: a bounded queue between the request path and an
//! exporter thread, so a slow, hanging or failing collector can never cost a request
//! anything but a dropped span.
//!
//! The SDK's own batch processor hides its queue; this one exposes its depth (for
//! dynamic degradation) and counts what it exports and drops. `on_end` pushes the
//! span into a buffer under an uncontended mutex and wakes the exporter thread only
//! twice per batch (when a batch starts and when it is full), never per span: a
//! futex wake-up per span cost more than the rest of the span. When the buffer holds
//! `queue_size` spans the span is dropped and counted
//! (`spans_dropped_total{reason="queue_full"}`), never waited for. The exporter thread
//! swaps the buffer with a spare one of the same capacity, so the request path does
//! not allocate for the queue either.
//!
//! What the queue holds is the exporter's choice ([`Batch`]): the OTLP/HTTP exporter
//! queues spans already encoded to protobuf (see `otlp_http`), the SDK exporters
//! ([`SdkExport`]: gRPC, stdout) queue `SpanData`. Exporters that need tokio (the gRPC
//! exporter must even be *built* inside a runtime) get a current-thread runtime of
//! their own on the exporter thread; the others (OTLP/HTTP with the blocking reqwest
//! client, stdout) run without one, because the blocking client owns a runtime itself
//! and must not run or be dropped inside another.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::config::spec::QueueSettings;

/// What the pipeline did, for metrics and degradation.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Spans waiting in the queue now.
    pub depth: AtomicUsize,
    /// Spans handed to the exporter successfully.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because the exporter failed (collector down, 5xx, 429, timeout).
    pub dropped_export_failed: AtomicU64,
    /// Spans dropped because the pipeline was already shut down.
    pub dropped_shutdown: AtomicU64,
    /// Queue capacity.
    pub capacity: AtomicUsize,
}

/// How often a collector that keeps failing is reported again. One line a minute
/// says "still broken" without flooding the log at one failed call per batch delay.
pub const FAILURE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Turns the outcome of every export call into a few log lines an operator can act on:
/// one when exports start failing, one per [`FAILURE_REPORT_INTERVAL`] while they keep
/// failing (with what failed meanwhile), one when an export succeeds again. The
/// counters (`tracebridge_spans_dropped_total{reason="export_failed"}`) still count
/// every span; the log only marks the transitions.
#[derive(Debug)]
pub struct FailureLog {
    /// What is exported to, for the log lines (an endpoint, `stdout`).
    target: String,
    /// Minimum time between two "still failing" lines.
    every: Duration,
    failing: Option<Failing>,
}

#[derive(Debug)]
struct Failing {
    since: Instant,
    reported: Instant,
    /// Failed calls and their spans since the last line.
    calls: u64,
    spans: u64,
    /// Failed calls and their spans since the failure began.
    total_calls: u64,
    total_spans: u64,
}

impl FailureLog {
    /// A log for exports to `target`, reporting a lasting failure every `every`.
    pub fn new(target: impl Into<String>, every: Duration) -> Self {
        FailureLog {
            target: target.into(),
            every,
            failing: None,
        }
    }

    /// Records one export call of `spans` spans at `now`: `Err` carries why it failed.
    /// Returns the line to log, if this call starts, continues (once per interval) or
    /// ends a failure.
    pub fn record(
        &mut self,
        now: Instant,
        spans: u64,
        outcome: Result<(), &dyn std::fmt::Display>,
    ) -> Option<(log::Level, String)> {
        let target = &self.target;
        match (outcome, &mut self.failing) {
            (Ok(()), None) => None,
            (Ok(()), Some(f)) => {
                let line = format!(
                    "span export to {target} recovered after {}: {} calls ({} spans) failed meanwhile",
                    humantime::format_duration(round_secs(now.duration_since(f.since))),
                    f.total_calls,
                    f.total_spans
                );
                self.failing = None;
                Some((log::Level::Info, line))
            }
            (Err(e), None) => {
                self.failing = Some(Failing {
                    since: now,
                    reported: now,
                    calls: 0,
                    spans: 0,
                    total_calls: 1,
                    total_spans: spans,
                });
                Some((
                    log::Level::Warn,
                    format!(
                        "span export to {target} failing: {e}; spans are dropped and counted \
                         (tracebridge_spans_dropped_total{{reason=\"export_failed\"}}) until it \
                         recovers, reported again every {}",
                        humantime::format_duration(self.every)
                    ),
                ))
            }
            (Err(e), Some(f)) => {
                f.calls += 1;
                f.spans += spans;
                f.total_calls += 1;
                f.total_spans += spans;
                if now.duration_since(f.reported) < self.every {
                    return None;
                }
                let line = format!(
                    "span export to {target} still failing after {}: {} calls ({} spans) failed \
                     since the last report; last error: {e}",
                    humantime::format_duration(round_secs(now.duration_since(f.since))),
                    f.calls,
                    f.spans
                );
                f.reported = now;
                f.calls = 0;
                f.spans = 0;
                Some((log::Level::Warn, line))
            }
        }
    }

    /// [`FailureLog::record`] now, writing the line to the log.
    pub fn observe(&mut self, spans: u64, outcome: Result<(), &dyn std::fmt::Display>) {
        if let Some((level, line)) = self.record(Instant::now(), spans, outcome) {
            log::log!(level, "{line}");
        }
    }
}

/// Whole seconds (sub-second precision in "failing for 2m 3s 14ms 5us" is noise).
fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// How the queue holds spans until the exporter thread takes them.
pub trait Batch: Send + 'static {
    /// A span made ready for the queue on the request's thread, before the queue's
    /// lock is taken.
    type Item;
    /// Readies `span` for [`Batch::push`].
    fn prepare(span: SpanData) -> Self::Item;
    /// An empty batch sized for `settings` (so pushing does not allocate).
    fn with_capacity(settings: &QueueSettings) -> Self;
    /// Adds one span.
    fn push(&mut self, item: Self::Item);
    /// Spans held.
    fn len(&self) -> usize;
    /// No span held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Empties the batch, keeping its capacity.
    fn clear(&mut self);
    /// Moves the spans after the last whole export call (`len() % batch_size` of
    /// them, when there are more than `batch_size`) into the empty `rest`.
    fn split_partial(&mut self, rest: &mut Self);
}

/// The exporter thread's side of the queue.
pub trait BatchExport {
    /// What the queue holds for this exporter.
    type Batch: Batch;
    /// Exports every span of `batch` (at most `batch_size` per call) and empties it.
    /// Returns the spans exported and the spans whose call failed.
    fn export(&mut self, batch: &mut Self::Batch) -> (u64, u64);
    /// Called once, after the last export.
    fn shutdown(&mut self);
}

/// `SpanData` waiting for an SDK [`SpanExporter`].
#[derive(Debug)]
pub struct SdkSpans {
    spans: Vec<SpanData>,
    batch_size: usize,
}

impl Batch for SdkSpans {
    type Item = SpanData;

    fn prepare(span: SpanData) -> SpanData {
        span
    }

    fn with_capacity(settings: &QueueSettings) -> Self {
        SdkSpans {
            spans: Vec::with_capacity(settings.batch_size.min(settings.queue_size)),
            batch_size: settings.batch_size.max(1),
        }
    }

    fn push(&mut self, span: SpanData) {
        self.spans.push(span);
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn clear(&mut self) {
        self.spans.clear();
    }

    fn split_partial(&mut self, rest: &mut Self) {
        let len = self.spans.len();
        if len > self.batch_size {
            rest.spans
                .extend(self.spans.drain(len - len % self.batch_size..));
        }
    }
}

impl SdkSpans {
    /// The next export call's spans (at most `batch_size`), taken out of the batch;
    /// `None` when it is empty.
    pub(crate) fn next_chunk(&mut self) -> Option<Vec<SpanData>> {
        if self.spans.is_empty() {
            return None;
        }
        let n = self.spans.len().min(self.batch_size);
        Some(self.spans.drain(..n).collect())
    }
}

/// An OpenTelemetry SDK exporter run on the exporter thread, inside a current-thread
/// tokio runtime when it needs one.
pub struct SdkExport<E> {
    exporter: E,
    /// Logs the start, continuation and end of a run of failed calls.
    failures: FailureLog,
    /// Declared after `exporter`, so it is dropped after it.
    runtime: Option<tokio::runtime::Runtime>,
}

impl<E: SpanExporter> SdkExport<E> {
    /// Builds the exporter with `make` (inside the runtime when `needs_tokio`). Call it
    /// on the exporter thread. `None` after logging why.
    ///
    /// `target` names where spans go, for the failure log lines.
    pub fn build(
        needs_tokio: bool,
        target: &str,
        make: impl FnOnce() -> Option<E>,
    ) -> Option<Self> {
        let runtime = if needs_tokio {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => Some(rt),
                Err(e) => {
                    log::error!("span export runtime: {e}; spans will be dropped");
                    return None;
                }
            }
        } else {
            None
        };
        let exporter = {
            let _guard = runtime.as_ref().map(|rt| rt.enter());
            make()?
        };
        Some(SdkExport {
            exporter,
            failures: FailureLog::new(target, FAILURE_REPORT_INTERVAL),
            runtime,
        })
    }
}

impl<E: SpanExporter> BatchExport for SdkExport<E> {
    type Batch = SdkSpans;

    fn export(&mut self, batch: &mut SdkSpans) -> (u64, u64) {
        let (mut exported, mut failed) = (0, 0);
        while !batch.spans.is_empty() {
            let n = batch.spans.len().min(batch.batch_size);
            let chunk: Vec<SpanData> = batch.spans.drain(..n).collect();
            let result = match &self.runtime {
                Some(rt) => rt.block_on(self.exporter.export(chunk)),
                None => futures_executor::block_on(self.exporter.export(chunk)),
            };
            match result {
                Ok(()) => {
                    self.failures.observe(n as u64, Ok(()));
                    exported += n as u64;
                }
                Err(e) => {
                    self.failures.observe(n as u64, Err(&e));
                    failed += n as u64;
                }
            }
        }
        (exported, failed)
    }

    fn shutdown(&mut self) {
        let _ = self.exporter.shutdown();
    }
}

/// What the request path and the exporter thread share, under one mutex.
struct Pending<B> {
    spans: B,
    /// When the first span of the pending batch arrived.
    since: Option<Instant>,
    /// Flush requests waiting for everything queued before them to be exported.
    flushes: Vec<SyncSender<()>>,
    /// Shutdown asked (with the caller to answer, if one waits).
    stop: Option<Option<SyncSender<()>>>,
    /// The exporter thread is gone: spans are dropped.
    closed: bool,
}

struct Shared<B> {
    pending: Mutex<Pending<B>>,
    wake: Condvar,
    stats: Arc<PipelineStats>,
    settings: QueueSettings,
}

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, Pending<B>> {
        // A panic while holding the lock cannot leave `Pending` inconsistent (every
        // update is a single push or swap), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The SDK span processor side of the pipeline.
pub struct QueueProcessor<B> {
    shared: Arc<Shared<B>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl<B> std::fmt::Debug for QueueProcessor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueProcessor")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl<B: Batch> QueueProcessor<B> {
    /// Starts the exporter thread. `make_exporter` runs on that thread; without an
    /// exporter (it returned `None`) every span is counted as dropped.
    pub fn start<X, F>(settings: QueueSettings, stats: Arc<PipelineStats>, make_exporter: F) -> Self
    where
        X: BatchExport<Batch = B>,
        F: FnOnce() -> Option<X> + Send + 'static,
    {
        let settings = QueueSettings {
            queue_size: settings.queue_size.max(1),
            batch_size: settings.batch_size.max(1),
            ..settings
        };
        stats.capacity.store(settings.queue_size, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                spans: B::with_capacity(&settings),
                since: None,
                flushes: Vec::new(),
                stop: None,
                closed: false,
            }),
            wake: Condvar::new(),
            stats,
            settings,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tracebridge-export".into())
            .spawn(move || export_loop(&thread_shared, make_exporter))
            .ok();
        if thread.is_none() {
            log::error!("cannot start the span export thread: spans will be dropped");
            shared.lock().closed = true;
        }
        QueueProcessor {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Asks the exporter thread for a flush (or, with `stop`, a final flush and its
    /// end) and waits up to `timeout` for the answer.
    fn request(&self, stop: bool, timeout: Duration) -> OTelSdkResult {
        let (done_tx, done_rx) = sync_channel(1);
        {
            let mut pending = self.shared.lock();
            if pending.closed {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            if stop {
                pending.stop = Some(Some(done_tx));
            } else {
                pending.flushes.push(done_tx);
            }
        }
        self.shared.wake.notify_one();
        done_rx
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl<B: Batch> QueueProcessor<B> {
    /// A handle that queues spans made without the SDK into this processor's queue.
    pub fn handle(&self) -> QueueHandle<B::Item> {
        QueueHandle(self.shared.clone())
    }
}

/// Queues spans made without the SDK (`span::GatewaySpan`'s OTLP record) into a
/// [`QueueProcessor`]'s queue, exactly as its `on_end` queues SDK spans. Named by what
/// it takes (`I`, the queue's [`Batch::Item`]), not by the batch type, so the tracer
/// can hold one without depending on the exporter that made it.
pub struct QueueHandle<I>(Arc<dyn Enqueue<I>>);

impl<I> std::fmt::Debug for QueueHandle<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle").finish_non_exhaustive()
    }
}

impl<I> QueueHandle<I> {
    /// Queues one span (dropped and counted when the queue is full or shut down).
    pub fn push(&self, item: I) {
        self.0.enqueue(item);
    }
}

/// The request side of a queue.
trait Enqueue<I>: Send + Sync {
    fn enqueue(&self, item: I);
}

impl<B: Batch> Enqueue<B::Item> for Shared<B> {
    fn enqueue(&self, item: B::Item) {
        let stats = &self.stats;
        let mut pending = self.lock();
        if pending.closed {
            drop(pending);
            stats.dropped_shutdown.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let queued = pending.spans.len();
        if queued >= self.settings.queue_size {
            drop(pending);
            stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.spans.push(item);
        if queued == 0 {
            pending.since = Some(Instant::now());
        }
        stats.depth.store(queued + 1, Ordering::Relaxed);
        drop(pending);
        // The exporter sleeps without a deadline while nothing is queued, and until
        // the batch delay once something is: wake it when a batch starts and when it
        // is full.
        if queued == 0 || queued + 1 == self.settings.batch_size {
            self.wake.notify_one();
        }
    }
}

impl<B: Batch> SpanProcessor for QueueProcessor<B> {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.shared.enqueue(B::prepare(span));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.request(false, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.request(true, timeout);
        if result.is_ok() {
            if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
                let _ = t.join();
            }
        }
        result
    }
}

impl<B> Drop for QueueProcessor<B> {
    /// Without a shutdown (a provider dropped early), the exporter thread still ends:
    /// it exports what is queued and stops.
    fn drop(&mut self) {
        let mut pending = self.shared.lock();
        if !pending.closed && pending.stop.is_none() {
            pending.stop = Some(None);
        }
        drop(pending);
        self.shared.wake.notify_one();
    }
}

/// What the exporter thread takes out of the buffer in one go.
struct Work {
    flushes: Vec<SyncSender<()>>,
    stop: Option<Option<SyncSender<()>>>,
}

/// Waits until a batch is full or due, or a flush or shutdown is asked, then swaps
/// the pending spans into `batch`.
fn next_work<B: Batch>(shared: &Shared<B>, batch: &mut B) -> Work {
    let QueueSettings {
        batch_size,
        batch_delay,
        ..
    } = shared.settings;
    let mut pending = shared.lock();
    loop {
        if pending.stop.is_some() || !pending.flushes.is_empty() {
            break;
        }
        if pending.spans.len() >= batch_size {
            break;
        }
        pending = match pending.since {
            None => shared.wake.wait(pending).unwrap_or_else(|p| p.into_inner()),
            Some(since) => {
                let waited = since.elapsed();
                if waited >= batch_delay {
                    break;
                }
                shared
                    .wake
                    .wait_timeout(pending, batch_delay - waited)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
    let full = pending.stop.is_none() && pending.flushes.is_empty();
    std::mem::swap(&mut pending.spans, batch);
    if full {
        // Woken by a full batch, the exporter finds a few more spans the request
        // threads queued meanwhile: posted now, they would make a second, tiny call
        // per batch (measured: 256 spans per call on average at batch size 512). They
        // wait for the next batch instead, or for one more batch delay at most.
        batch.split_partial(&mut pending.spans);
    }
    let left = pending.spans.len();
    pending.since = (left > 0).then(Instant::now);
    shared.stats.depth.store(left, Ordering::Relaxed);
    let stop = pending.stop.take();
    if stop.is_some() {
        pending.closed = true;
    }
    Work {
        flushes: std::mem::take(&mut pending.flushes),
        stop,
    }
}

fn export_loop<B, X, F>(shared: &Shared<B>, make: F)
where
    B: Batch,
    X: BatchExport<Batch = B>,
    F: FnOnce() -> Option<X>,
{
    let mut exporter = make();
    let stats = &shared.stats;
    let mut batch = B::with_capacity(&shared.settings);
    loop {
        let work = next_work(shared, &mut batch);
        let (exported, failed) = match &mut exporter {
            Some(exporter) => exporter.export(&mut batch),
            // No exporter (none configured, or it could not be built): the loop still
            // runs, counting every span as dropped and answering flushes.
            None => (0, batch.len() as u64),
        };
        batch.clear();
        stats.exported.fetch_add(exported, Ordering::Relaxed);
        stats
            .dropped_export_failed
            .fetch_add(failed, Ordering::Relaxed);
        for done in work.flushes {
            let _ = done.send(());
        }
        if let Some(done) = work.stop {
            if let Some(exporter) = &mut exporter {
                exporter.shutdown();
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::sync::mpsc::{channel, Receiver, Sender};

    /// Signals each export, then waits for a release (a hanging collector).
    #[derive(Debug, Clone)]
    struct Hold {
        entered: Sender<()>,
        release: Arc<Mutex<Receiver<()>>>,
    }

    /// Records the size of every batch; optionally holds each export.
    #[derive(Debug, Clone, Default)]
    struct Recorder {
        batches: Arc<Mutex<Vec<usize>>>,
        hold: Option<Hold>,
    }

    impl SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if let Some(hold) = &self.hold {
                let _ = hold.entered.send(());
                let _ = hold.release.lock().unwrap().recv();
            }
            self.batches.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn pipeline(
        settings: QueueSettings,
        exporter: Recorder,
    ) -> (SdkTracerProvider, Arc<PipelineStats>) {
        let stats = Arc::new(PipelineStats::default());
        let processor = QueueProcessor::start(settings, stats.clone(), move || {
            SdkExport::build(false, "test", || Some(exporter))
        });
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        (provider, stats)
    }

    fn spans(provider: &SdkTracerProvider, n: usize) {
        let tracer = provider.tracer("test");
        for _ in 0..n {
            tracer.start("span").end();
        }
    }

    #[test]
    fn batches_are_capped_and_a_flush_exports_everything_queued() {
        let recorder = Recorder::default();
        let settings = QueueSettings {
            queue_size: 100,
            batch_size: 4,
            batch_delay: Duration::from_secs(60),
        };
        let (provider, stats) = pipeline(settings, recorder.clone());
        spans(&provider, 10);
        provider.force_flush().expect("flush");
        let batches = recorder.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 10, "{batches:?}");
        assert!(batches.iter().all(|&n| n <= 4), "{batches:?}");
        assert_eq!(stats.exported.load(Ordering::Relaxed), 10);
        assert_eq!(stats.depth.load(Ordering::Relaxed), 0);
        provider.shutdown().expect("shutdown");
    }

    #[test]
    fn a_batch_is_exported_after_the_delay_without_a_flush() {
        let recorder = Recorder::default();
        let settings = QueueSettings {
            queue_size: 100,
            batch_size: 50,
            batch_delay: Duration::from_millis(50),
        };
        let (provider, stats) = pipeline(settings, recorder.clone());
        spans(&provider, 3);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.exported.load(Ordering::Relaxed) < 3 {
            assert!(
                Instant::now() < deadline,
                "batch not exported after its delay"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*recorder.batches.lock().unwrap(), vec![3]);
        provider.shutdown().expect("shutdown");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (entered_tx, entered) = channel();
        let (release, release_rx) = channel();
        let recorder = Recorder {
            hold: Some(Hold {
                entered: entered_tx,
                release: Arc::new(Mutex::new(release_rx)),
            }),
            ..Recorder::default()
        };
        let settings = QueueSettings {
            queue_size: 2,
            batch_size: 1,
            batch_delay: Duration::from_millis(1),
        };
        let (provider, stats) = pipeline(settings, recorder.clone());
        spans(&provider, 1);
        entered
            .recv_timeout(Duration::from_secs(5))
            .expect("exporter called");
        // The exporter hangs on the first span: two more fill the queue, the rest drop.
        let started = Instant::now();
        spans(&provider, 5);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 3);
        assert_eq!(stats.depth.load(Ordering::Relaxed), 2);
        drop(release);
        provider.shutdown().expect("shutdown");
        assert_eq!(stats.exported.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn shutdown_exports_what_is_pending() {
        let recorder = Recorder::default();
        let settings = QueueSettings {
            queue_size: 100,
            batch_size: 100,
            batch_delay: Duration::from_secs(60),
        };
        let (provider, stats) = pipeline(settings, recorder.clone());
        spans(&provider, 5);
        provider.shutdown().expect("shutdown");
        assert_eq!(stats.exported.load(Ordering::Relaxed), 5);
        assert_eq!(*recorder.batches.lock().unwrap(), vec![5]);
    }

    /// A batch that only counts its spans.
    struct Count {
        len: usize,
        batch_size: usize,
    }

    impl Batch for Count {
        type Item = ();
        fn prepare(_: SpanData) {}
        fn with_capacity(settings: &QueueSettings) -> Self {
            Count {
                len: 0,
                batch_size: settings.batch_size,
            }
        }
        fn push(&mut self, (): ()) {
            self.len += 1;
        }
        fn len(&self) -> usize {
            self.len
        }
        fn clear(&mut self) {
            self.len = 0;
        }
        fn split_partial(&mut self, rest: &mut Self) {
            if self.len > self.batch_size {
                rest.len += self.len % self.batch_size;
                self.len -= self.len % self.batch_size;
            }
        }
    }

    fn shared(queued: usize, flush: bool) -> Shared<Count> {
        let settings = QueueSettings {
            queue_size: 100,
            batch_size: 4,
            batch_delay: Duration::from_secs(60),
        };
        let mut spans = Count::with_capacity(&settings);
        (0..queued).for_each(|_| spans.push(()));
        Shared {
            pending: Mutex::new(Pending {
                spans,
                since: Some(Instant::now()),
                flushes: if flush {
                    vec![sync_channel(1).0]
                } else {
                    vec![]
                },
                stop: None,
                closed: false,
            }),
            wake: Condvar::new(),
            stats: Arc::new(PipelineStats::default()),
            settings,
        }
    }

    #[test]
    fn a_full_batch_is_taken_without_the_spans_queued_after_it() {
        let shared = shared(10, false);
        let mut batch = Count::with_capacity(&shared.settings);
        next_work(&shared, &mut batch);
        assert_eq!(batch.len(), 8, "two whole calls of 4");
        let pending = shared.lock();
        assert_eq!(pending.spans.len(), 2, "the rest waits for the next batch");
        assert!(pending.since.is_some(), "and for its delay");
        assert_eq!(shared.stats.depth.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_flush_takes_every_span() {
        let shared = shared(10, true);
        let mut batch = Count::with_capacity(&shared.settings);
        next_work(&shared, &mut batch);
        assert_eq!(batch.len(), 10);
        let pending = shared.lock();
        assert_eq!((pending.spans.len(), pending.since), (0, None));
    }

    #[test]
    fn without_an_exporter_spans_are_counted_as_dropped_and_flushes_answer() {
        let stats = Arc::new(PipelineStats::default());
        let settings = QueueSettings {
            queue_size: 10,
            batch_size: 10,
            batch_delay: Duration::from_secs(60),
        };
        let processor =
            QueueProcessor::start(settings, stats.clone(), || None::<SdkExport<Recorder>>);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        spans(&provider, 4);
        provider.force_flush().expect("flush");
        assert_eq!(stats.dropped_export_failed.load(Ordering::Relaxed), 4);
        provider.shutdown().expect("shutdown");
    }

    #[test]
    fn a_failure_is_logged_when_it_starts_every_interval_and_when_it_ends() {
        let mut log = FailureLog::new("http://c:4318/v1/traces", Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let refused: &dyn std::fmt::Display = &"connection refused";
        assert_eq!(log.record(at(0), 5, Ok(())), None, "healthy: silent");
        let (level, first) = log.record(at(1), 5, Err(refused)).unwrap();
        assert_eq!(level, log::Level::Warn);
        assert!(
            first
                .starts_with("span export to http://c:4318/v1/traces failing: connection refused;"),
            "{first}"
        );
        // One call per second for the next 59 s: nothing more.
        for s in 2..61 {
            assert_eq!(log.record(at(s), 2, Err(refused)), None, "second {s}");
        }
        let (level, again) = log.record(at(61), 2, Err(&"answered 503")).unwrap();
        assert_eq!(level, log::Level::Warn);
        assert_eq!(
            again,
            "span export to http://c:4318/v1/traces still failing after 1m: 60 calls (120 spans) \
             failed since the last report; last error: answered 503"
        );
        assert_eq!(log.record(at(62), 2, Err(refused)), None);
        let (level, back) = log.record(at(70), 7, Ok(())).unwrap();
        assert_eq!(level, log::Level::Info);
        assert_eq!(
            back,
            "span export to http://c:4318/v1/traces recovered after 1m 9s: 62 calls (127 spans) \
             failed meanwhile"
        );
        assert_eq!(
            log.record(at(71), 7, Ok(())),
            None,
            "recovered: silent again"
        );
        // A new failure is a new start.
        assert!(log
            .record(at(72), 1, Err(refused))
            .unwrap()
            .1
            .contains(" failing: "));
    }
}
