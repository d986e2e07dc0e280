//! The one place the live config lives: a single `ArcSwap<Snapshot>`.
//!
//! A request loads the snapshot once, at its first filter, and keeps that `Arc` to its
//! end, so it sees one config generation from start to finish however many reloads
//! happen meanwhile.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{self, ConfigError, Snapshot};

/// The live config and where it is reloaded from.
pub struct ConfigHandle {
    current: ArcSwap<Snapshot>,
    path: Option<PathBuf>,
    last_generation: AtomicU64,
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

    /// Reads, validates and compiles the file again and swaps it in; on any problem the
    /// old snapshot keeps serving and the error is returned.
    pub fn reload(&self) -> Result<u64, ConfigError> {
        let generation = self.last_generation.load(Ordering::Relaxed) + 1;
        let snapshot = match &self.path {
            Some(path) => config::load_file(path, generation)?,
            None => config::load_str(config::DEFAULT_CONFIG, None, generation)?,
        };
        self.last_generation.store(generation, Ordering::Relaxed);
        self.current.store(Arc::new(snapshot));
        Ok(generation)
    }
}
