//! The span export pipeline: a bounded queue between the request path and an
//! exporter thread, so a slow, hanging or failing collector can never cost a request
//! anything but a dropped span.
//!
//! The SDK's own batch processor hides its queue; this one exposes its depth (for
//! dynamic degradation) and counts what it exports and drops. `on_end` is a
//! `try_send` on a bounded channel: when the queue is full the span is dropped and
//! counted (`spans_dropped_total{reason="queue_full"}`), never waited for. Exporters
//! that need tokio (the gRPC exporter must even be *built* inside a runtime) get a
//! current-thread runtime of their own on the exporter thread; the others (OTLP/HTTP
//! with the blocking reqwest client, stdout) run without one, because the blocking
//! client owns a runtime itself and must not run or be dropped inside another.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
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

enum Message {
    Span(Box<SpanData>),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// The SDK span processor side of the pipeline.
#[derive(Debug)]
pub struct QueueProcessor {
    tx: SyncSender<Message>,
    stats: Arc<PipelineStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Span(_) => "Span",
            Message::Flush(_) => "Flush",
            Message::Shutdown(_) => "Shutdown",
        })
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
        let capacity = settings.queue_size.max(1);
        stats.capacity.store(capacity, Ordering::Relaxed);
        let (tx, rx) = sync_channel(capacity);
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("tracebridge-export".into())
            .spawn(move || export_loop(rx, settings, thread_stats, needs_tokio, make_exporter))
            .ok();
        if thread.is_none() {
            log::error!("cannot start the span export thread: spans will be dropped");
        }
        QueueProcessor {
            tx,
            stats,
            thread: Mutex::new(thread),
        }
    }

    fn request(&self, make: fn(SyncSender<()>) -> Message, timeout: Duration) -> OTelSdkResult {
        let (done_tx, done_rx) = sync_channel(1);
        self.tx
            .send(make(done_tx))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        done_rx
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        // Count before sending: the exporter thread may take the span (and decrement)
        // before try_send even returns.
        self.stats.depth.fetch_add(1, Ordering::Relaxed);
        let dropped = match self.tx.try_send(Message::Span(Box::new(span))) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => &self.stats.dropped_queue_full,
            Err(TrySendError::Disconnected(_)) => &self.stats.dropped_shutdown,
        };
        self.stats.depth.fetch_sub(1, Ordering::Relaxed);
        dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.request(Message::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.request(Message::Shutdown, timeout);
        if result.is_ok() {
            if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
                let _ = t.join();
            }
        }
        result
    }
}

fn export_loop<E, F>(
    rx: Receiver<Message>,
    settings: QueueSettings,
    stats: Arc<PipelineStats>,
    needs_tokio: bool,
    make: F,
) where
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
                return drain(rx, &stats);
            }
        }
    } else {
        None
    };
    let exporter = {
        let _guard = runtime.as_ref().map(|rt| rt.enter());
        make()
    };
    let Some(exporter) = exporter else {
        return drain(rx, &stats);
    };
    let run = |batch: Vec<SpanData>| match &runtime {
        Some(rt) => rt.block_on(exporter.export(batch)),
        None => futures_executor::block_on(exporter.export(batch)),
    };
    let mut batch: Vec<SpanData> = Vec::with_capacity(settings.batch_size);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(settings.batch_delay, |t| {
            settings.batch_delay.saturating_sub(t.elapsed())
        });
        let mut reply = None;
        let mut stop = false;
        match rx.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                stats.depth.fetch_sub(1, Ordering::Relaxed);
                oldest.get_or_insert_with(Instant::now);
                batch.push(*span);
            }
            Ok(Message::Flush(done)) => reply = Some(done),
            Ok(Message::Shutdown(done)) => {
                reply = Some(done);
                stop = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => stop = true,
        }
        let due = oldest.is_some_and(|t| t.elapsed() >= settings.batch_delay);
        if batch.len() >= settings.batch_size || due || reply.is_some() || stop {
            // Take what is queued too, so a flush exports everything sent before it.
            if reply.is_some() || stop {
                while let Ok(Message::Span(span)) = rx.try_recv() {
                    stats.depth.fetch_sub(1, Ordering::Relaxed);
                    batch.push(*span);
                }
            }
            while !batch.is_empty() {
                let n = batch.len().min(settings.batch_size.max(1));
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
            oldest = None;
        }
        if let Some(done) = reply {
            let _ = done.send(());
        }
        if stop {
            let _ = exporter.shutdown();
            return;
        }
    }
}

/// Without an exporter, count everything as dropped and answer flushes.
fn drain(rx: Receiver<Message>, stats: &PipelineStats) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Message::Span(_) => {
                stats.depth.fetch_sub(1, Ordering::Relaxed);
                stats.dropped_export_failed.fetch_add(1, Ordering::Relaxed);
            }
            Message::Flush(done) => {
                let _ = done.send(());
            }
            Message::Shutdown(done) => {
                let _ = done.send(());
                return;
            }
        }
    }
}
