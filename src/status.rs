//! Machine-readable status for scripts: `--status-json FILE` (or `-` for stdout) gets one JSON
//! object per line, for every state change (a phase, throttled, unthrottled, done, failed) and
//! at every status interval.
//!
//! Invariant: every line is a complete JSON object with the same core fields (`time`, `event`,
//! `state`, `rows_copied`, `rows_estimated`, `changes_applied`, `changes_skipped`, `backlog`, `replica_lag_ms`,
//! `throttle`), so a script can read any line on its own. The password never appears: nothing
//! from the connection settings is written.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::state::RunState;

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

    fn write(&self, line: &Value) {
        let mut out = self.out.lock().expect("status lock");
        // Status must never stop a migration: a failed write is reported once per line, not fatal.
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            tracing::warn!("writing --status-json: {e}");
        }
    }
}

/// The fields every status line carries.
pub fn snapshot(state: &RunState, event: &str) -> Value {
    let lag = *state.replica_lag_ms.lock().expect("lag lock");
    json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "event": event,
        "state": state.phase(),
        "rows_copied": state.rows_copied.load(Ordering::Relaxed),
        "rows_estimated": state.rows_estimated.load(Ordering::Relaxed),
        "changes_applied": state.changes_applied.load(Ordering::Relaxed),
        "changes_skipped": state.changes_skipped.load(Ordering::Relaxed),
        "backlog": state.backlog.load(Ordering::Relaxed),
        "copy_workers": state.copy_workers.load(Ordering::Relaxed),
        "replica_lag_ms": lag,
        "throttle": state.throttle_reason(),
    })
}

/// Writes one status line for `event`, with extra fields merged in.
pub fn emit(sink: Option<&StatusSink>, state: &RunState, event: &str, extra: Value) {
    let Some(sink) = sink else { return };
    let mut line = snapshot(state, event);
    if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    sink.write(&line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_core_fields_and_extras() {
        let state = RunState::default();
        state.rows_copied.store(7, Ordering::Relaxed);
        let mut line = snapshot(&state, "state");
        line.as_object_mut().unwrap().extend(json!({"exit_code": 1}).as_object().unwrap().clone());
        let text = line.to_string();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["rows_copied"], 7);
        assert_eq!(parsed["replica_lag_ms"], Value::Null);
        assert_eq!(parsed["throttle"], Value::Null);
        assert_eq!(parsed["exit_code"], 1);
        assert_eq!(parsed["event"], "state");
    }
}
