//! Machine-readable status for scripts: `--status-json FILE` (or `-` for stdout) gets one JSON
//! object per line, for every state change (a phase, throttled, unthrottled, done, failed) and
//! at every status interval. The lines come from the run's state (`RunState::snapshot`); this
//! is where they are written.
//!
//! Invariant: every line is a complete JSON object with the same core fields (`time`, `event`,
//! `state`, `rows_copied`, `rows_estimated`, `changes_applied`, `changes_skipped`, `backlog`, `replica_lag_ms`,
//! `throttle`), so a script can read any line on its own. The password never appears: nothing
//! from the connection settings is written.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

use crate::error::{Error, Result};

pub struct StatusSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl StatusSink {
    /// Opens `-` (stdout) or a file, appending.
    pub fn open(target: &Path) -> Result<StatusSink> {
        let out: Box<dyn Write + Send> = if target == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(target)
                .map_err(|e| Error::usage(format!("cannot open --status-json file {}: {e}", target.display()), "give a writable path, or - for stdout"))?;
            Box::new(file)
        };
        Ok(StatusSink { out: Mutex::new(out) })
    }

    /// Writes one line.
    pub fn write(&self, line: &Value) {
        let mut out = self.out.lock().expect("status lock");
        // Status must never stop a migration: a failed write is reported once per line, not fatal.
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            tracing::warn!("writing --status-json: {e}");
        }
    }
}
