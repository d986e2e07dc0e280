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
//! Exporters that need tokio (the gRPC exporter must even be *built* inside a
//! runtime) get a current-thread runtime of their own on the exporter thread; the
//! others (OTLP/HTTP with the blocking reqwest client, stdout) run without one,
//! because the blocking client owns a runtime itself and must not run or be dropped
//! inside another.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// Queue and batching settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    /// Spans the queue holds before dropping.
    pub queue_size: usize,
    /// Spans per export call at most.
    pub batch_size: usize,
    /// Longest a span waits before its batch is exported.
    pub batch_delay: Duration,
}

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

/// What the request path and the exporter thread share, under one mutex.
#[derive(Default)]
struct Pending {
    spans: Vec<SpanData>,
    /// When the first span of the pending batch arrived.
    since: Option<Instant>,
    /// Flush requests waiting for everything queued before them to be exported.
    flushes: Vec<SyncSender<()>>,
    /// Shutdown asked (with the caller to answer, if one waits).
    stop: Option<Option<SyncSender<()>>>,
    /// The exporter thread is gone: spans are dropped.
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    stats: Arc<PipelineStats>,
    settings: QueueSettings,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave `Pending` inconsistent (every
        // update is a single push or swap), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The SDK span processor side of the pipeline.
pub struct QueueProcessor {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for QueueProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueProcessor")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl QueueProcessor {
    /// Starts the exporter thread. `make_exporter` runs on that thread, inside its
    /// tokio runtime when `needs_tokio`.
    pub fn start<E, F>(
        settings: QueueSettings,
        stats: Arc<PipelineStats>,
        needs_tokio: bool,
        make_exporter: F,
    ) -> Self
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Option<E> + Send + 'static,
    {
        let settings = QueueSettings {
            queue_size: settings.queue_size.max(1),
            batch_size: settings.batch_size.max(1),
            ..settings
        };
        stats.capacity.store(settings.queue_size, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                spans: Vec::with_capacity(settings.batch_size.min(settings.queue_size)),
                ..Pending::default()
            }),
            wake: Condvar::new(),
            stats,
            settings,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tracebridge-export".into())
            .spawn(move || export_loop(&thread_shared, needs_tokio, make_exporter))
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

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let stats = &self.shared.stats;
        let mut pending = self.shared.lock();
        if pending.closed {
            drop(pending);
            stats.dropped_shutdown.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let queued = pending.spans.len();
        if queued >= self.shared.settings.queue_size {
            drop(pending);
            stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.spans.push(span);
        if queued == 0 {
            pending.since = Some(Instant::now());
        }
        stats.depth.store(queued + 1, Ordering::Relaxed);
        drop(pending);
        // The exporter sleeps without a deadline while nothing is queued, and until
        // the batch delay once something is: wake it when a batch starts and when it
        // is full.
        if queued == 0 || queued + 1 == self.shared.settings.batch_size {
            self.shared.wake.notify_one();
        }
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

impl Drop for QueueProcessor {
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
fn next_work(shared: &Shared, batch: &mut Vec<SpanData>) -> Work {
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
    std::mem::swap(&mut pending.spans, batch);
    pending.since = None;
    shared.stats.depth.store(0, Ordering::Relaxed);
    let stop = pending.stop.take();
    if stop.is_some() {
        pending.closed = true;
    }
    Work {
        flushes: std::mem::take(&mut pending.flushes),
        stop,
    }
}

fn export_loop<E, F>(shared: &Shared, needs_tokio: bool, make: F)
where
    E: SpanExporter,
    F: FnOnce() -> Option<E>,
{
    let runtime = if needs_tokio {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => Some(rt),
            Err(e) => {
                log::error!("span export runtime: {e}; spans will be dropped");
                None
            }
        }
    } else {
        None
    };
    // Without an exporter (none configured, or it could not be built) the loop still
    // runs: it counts every span as dropped and answers flushes.
    let exporter = if needs_tokio && runtime.is_none() {
        None
    } else {
        let _guard = runtime.as_ref().map(|rt| rt.enter());
        make()
    };
    let run = |chunk: Vec<SpanData>| match (&exporter, &runtime) {
        (Some(exporter), Some(rt)) => rt.block_on(exporter.export(chunk)),
        (Some(exporter), None) => futures_executor::block_on(exporter.export(chunk)),
        (None, _) => Err(OTelSdkError::InternalFailure("no exporter".into())),
    };
    let stats = &shared.stats;
    let batch_size = shared.settings.batch_size;
    let mut batch: Vec<SpanData> = Vec::with_capacity(batch_size.min(shared.settings.queue_size));
    loop {
        let work = next_work(shared, &mut batch);
        while !batch.is_empty() {
            let n = batch.len().min(batch_size);
            let chunk: Vec<SpanData> = batch.drain(..n).collect();
            match run(chunk) {
                Ok(()) => stats.exported.fetch_add(n as u64, Ordering::Relaxed),
                Err(e) => {
                    log::debug!("span export failed: {e}");
                    stats
                        .dropped_export_failed
                        .fetch_add(n as u64, Ordering::Relaxed)
                }
            };
        }
        for done in work.flushes {
            let _ = done.send(());
        }
        if let Some(done) = work.stop {
            if let Some(exporter) = &exporter {
                let _ = exporter.shutdown();
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
        let processor =
            QueueProcessor::start(settings, stats.clone(), false, move || Some(exporter));
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

    #[test]
    fn without_an_exporter_spans_are_counted_as_dropped_and_flushes_answer() {
        let stats = Arc::new(PipelineStats::default());
        let settings = QueueSettings {
            queue_size: 10,
            batch_size: 10,
            batch_delay: Duration::from_secs(60),
        };
        let processor = QueueProcessor::start(settings, stats.clone(), false, || None::<Recorder>);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        spans(&provider, 4);
        provider.force_flush().expect("flush");
        assert_eq!(stats.dropped_export_failed.load(Ordering::Relaxed), 4);
        provider.shutdown().expect("shutdown");
    }
}
