//! The one place the live config lives — a single `ArcSwap<Snapshot>` — and the ways
//! it is replaced: a change of the config file, SIGHUP, or the admin `POST /reload`.
//!
//! A request loads the snapshot once, at its first filter, and keeps that `Arc` to its
//! end, so it sees one config generation from start to finish however many reloads
//! happen meanwhile. A reload reads, parses, validates and compiles the file; any
//! problem leaves the old snapshot serving and is kept as the last error (shown by the
//! admin `/config`). Upstreams whose settings did not change keep their balancer (and
//! so their health state); listeners and thread counts are read at start-up only: a
//! change there is logged as needing a restart or `--upgrade`, the rest still applies.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::config::{self, ConfigError, Snapshot};

/// The outcome of the last failed reload.
#[derive(Debug, Clone)]
pub struct ReloadError {
    /// When it failed.
    pub at: SystemTime,
    /// Every problem, one per line.
    pub message: String,
}

/// The live config and where it is reloaded from.
pub struct ConfigHandle {
    current: ArcSwap<Snapshot>,
    path: Option<PathBuf>,
    last_generation: AtomicU64,
    /// Reloads run one at a time (file watcher, SIGHUP and admin may race).
    reloading: Mutex<()>,
    last_error: Mutex<Option<ReloadError>>,
    /// Successful reloads.
    pub reloads_ok: AtomicU64,
    /// Rejected reloads.
    pub reloads_failed: AtomicU64,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// A new generation is serving.
    Swapped(u64),
    /// The file is byte-for-byte what is already serving: nothing to do.
    Unchanged(u64),
}

impl ConfigHandle {
    /// Wraps the start-up snapshot; `path` is where reloads read from (`None` for the
    /// built-in config, which never changes).
    pub fn new(initial: Snapshot, path: Option<PathBuf>) -> Arc<Self> {
        let generation = initial.generation;
        Arc::new(ConfigHandle {
            current: ArcSwap::from_pointee(initial),
            path,
            last_generation: AtomicU64::new(generation),
            reloading: Mutex::new(()),
            last_error: Mutex::new(None),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        })
    }

    /// The current snapshot. Keep the `Arc` for the whole request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The file reloads read, if any.
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// The last rejected reload, if the newest attempt failed.
    pub fn last_error(&self) -> Option<ReloadError> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Reads, validates and compiles the file again and swaps it in; on any problem the
    /// old snapshot keeps serving and the error is returned (and kept for `/config`).
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        self.reload_text(None)
    }

    /// [`ConfigHandle::reload`] with the file's text already read (by the watcher, which
    /// saw it stay unchanged): exactly the text that settled is loaded.
    fn reload_text(&self, text: Option<String>) -> Result<Reloaded, ConfigError> {
        let _one_at_a_time = self.reloading.lock();
        let old = self.load();
        let result = self.build_next(&old, text);
        match &result {
            Ok(Reloaded::Swapped(generation)) => {
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                log::info!("config reloaded: generation {generation}");
                self.set_error(None);
            }
            Ok(Reloaded::Unchanged(_)) => self.set_error(None),
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "config reload rejected, generation {} keeps serving: {e}",
                    old.generation
                );
                self.set_error(Some(ReloadError {
                    at: SystemTime::now(),
                    message: e.to_string(),
                }));
            }
        }
        result
    }

    fn set_error(&self, e: Option<ReloadError>) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = e;
        }
    }

    fn build_next(&self, old: &Snapshot, text: Option<String>) -> Result<Reloaded, ConfigError> {
        let (text, path) = match (&self.path, text) {
            (Some(path), Some(text)) => (text, Some(path.as_path())),
            (Some(path), None) => (config::read_file(path)?, Some(path.as_path())),
            (None, _) => (config::DEFAULT_CONFIG.to_string(), None),
        };
        if config::sha256_hex(&text) == old.source.sha256 {
            return Ok(Reloaded::Unchanged(old.generation));
        }
        let generation = self.last_generation.load(Ordering::Relaxed) + 1;
        let next = config::load_str_reusing(&text, path, generation, Some(old))?;
        warn_about_restart_only_changes(old, &next);
        for w in &next.warnings {
            log::warn!("config generation {generation}: {w}");
        }
        self.last_generation.store(generation, Ordering::Relaxed);
        self.current.store(Arc::new(next));
        Ok(Reloaded::Swapped(generation))
    }
}

/// Listeners, threads and the span pipeline are built once at start-up.
fn warn_about_restart_only_changes(old: &Snapshot, new: &Snapshot) {
    let (o, n) = (&old.server, &new.server);
    if o.listen != n.listen || o.tls != n.tls || o.admin_listen != n.admin_listen {
        log::warn!(
            "listener changes need a restart or `--upgrade`; the rest of the config applies"
        );
    }
    if o.threads != n.threads {
        log::warn!("a thread count change needs a restart or `--upgrade`");
    }
    if old.telemetry != new.telemetry {
        log::warn!("[telemetry] changes need a restart or `--upgrade`");
    }
}

/// Watches the config file's directory and reloads on a change.
///
/// Editors write a temporary file and rename it over the config; Kubernetes swaps a
/// `..data` symlink in a ConfigMap volume. Both are seen as events in the directory,
/// not on the file itself, so the directory is watched. Access events are ignored (the
/// reload's own read would otherwise trigger the next reload) and events are debounced
/// for `debounce`. Then the file must settle (see [`settle`]): it is read, and read
/// again after another `debounce` without events, and only content that stayed the same
/// is loaded, so a file an editor truncates and then writes, or writes in pieces, is
/// read once it is whole (each read is cheap: the file is at most
/// [`config::MAX_FILE_BYTES`]). A file that did not really change is not reloaded (same
/// SHA-256). The returned watcher stops when dropped.
pub fn watch(
    handle: Arc<ConfigHandle>,
    debounce: Duration,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let Some(path) = handle.path().cloned() else {
        return Err(notify::Error::generic(
            "the built-in config has no file to watch",
        ));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let (tx, rx) = channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| f == name.as_os_str() || f.to_string_lossy().starts_with(".."))
        });
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("tracebridge-reload".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                let Some(text) = settle(&path, debounce, &rx) else {
                    return;
                };
                // The outcome is logged and kept by `reload` itself.
                let _ = handle.reload_text(text);
            }
        })
        .map_err(|e| notify::Error::generic(&format!("cannot start the reload thread: {e}")))?;
    Ok(watcher)
}

/// Most rounds [`settle`] takes: a file whose content still differs between the two reads
/// of every round is then read as it is (the reload still validates it).
const MAX_SETTLE_ROUNDS: usize = 25;

/// After an event: waits until `interval` passes without events, then reads the file,
/// and reads it again after another `interval` without events. Only when both reads
/// agree is that text returned (`Some(Some(text))`), so what is loaded stayed unchanged
/// for the whole interval: a writer that truncates and then writes, or pauses mid-file
/// for less than two intervals, is never read half-way. `Some(None)`: the file cannot be
/// read (the reload reads it itself and reports why) or did not settle within
/// [`MAX_SETTLE_ROUNDS`] (the reload reads whatever is there; it still validates).
/// `None`: the watcher is gone.
fn settle(path: &Path, interval: Duration, events: &Receiver<()>) -> Option<Option<String>> {
    // True once `interval` passed without an event.
    let quiet = || match events.recv_timeout(interval) {
        Ok(()) => Some(false),
        Err(RecvTimeoutError::Timeout) => Some(true),
        Err(RecvTimeoutError::Disconnected) => None,
    };
    for _ in 0..MAX_SETTLE_ROUNDS {
        while !quiet()? {}
        let Ok(first) = config::read_file(path) else {
            return Some(None);
        };
        if !quiet()? {
            continue;
        }
        match config::read_file(path) {
            Ok(again) if again == first => return Some(Some(again)),
            Ok(_) => continue,
            Err(_) => return Some(None),
        }
    }
    Some(None)
}
