//! Where access log lines go: standard output, or a file opened for appending when the
//! config is compiled. What a line says is `telemetry::access_log`'s business; this
//! only owns the open file.
//!
//! Every line is written whole with one `write_all` while holding a mutex, and not
//! buffered in user space: the caller builds the complete line (newline included) in
//! memory first, so a buffer would only add a copy, and "flushed per line" is exactly
//! one `write(2)` per line. The file is opened with `O_APPEND`, so concurrent lines
//! never overwrite each other; the mutex keeps them from interleaving should the kernel
//! ever do a short write. The write lands in the page cache; only when the disk falls
//! far behind does the kernel throttle writers. The proxy writes in its logging phase,
//! after the response was sent, so a slow disk never delays the client it logs.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// An opened access log destination.
#[derive(Debug)]
pub struct LogSink {
    target: Target,
    /// Set by the first failed write, so it is reported once.
    failed: AtomicBool,
}

#[derive(Debug)]
enum Target {
    Stdout,
    File { path: PathBuf, file: Mutex<File> },
}

impl LogSink {
    /// Standard output.
    pub fn stdout() -> LogSink {
        LogSink {
            target: Target::Stdout,
            failed: AtomicBool::new(false),
        }
    }

    /// `path`, created if missing, opened for appending.
    pub fn append(path: &Path) -> io::Result<LogSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogSink {
            target: Target::File {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            failed: AtomicBool::new(false),
        })
    }

    /// The file path, or `stdout`, for messages.
    pub fn name(&self) -> String {
        match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::File { path, .. } => path.display().to_string(),
        }
    }

    /// Writes one complete line (`line` ends with `\n`).
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        match &self.target {
            // Stdout's own lock keeps the line whole next to the stdout span exporter.
            Target::Stdout => io::stdout().lock().write_all(line),
            Target::File { file, .. } => file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(line),
        }
    }

    /// True the first time it is called on this sink (report a failure once).
    pub fn first_failure(&self) -> bool {
        !self.failed.swap(true, Ordering::Relaxed)
    }
}
