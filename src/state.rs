//! State shared by the pipeline's stages: counters for progress, the positions the reader and
//! applier have reached, the first failure, and the stop flag.
//!
//! Invariant: the first failure recorded wins and stops every stage; later ones are logged only.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::Error;
use crate::server::BinlogPosition;

/// Settings an operator can change while the run goes on (see `control`); the copy and the
/// throttle read them at every chunk and every check.
#[derive(Default)]
pub struct Live {
    pub chunk_size: AtomicU64,
    /// Copy workers (fixed for the run; readable with `threads=?`).
    pub threads: AtomicU64,
    pub max_lag_ms: AtomicU64,
    pub max_load: Mutex<crate::limits::LoadLimits>,
    pub critical_load: Mutex<crate::limits::LoadLimits>,
    /// Set by the `throttle` command, cleared by `no-throttle`.
    pub operator_throttle: AtomicBool,
    /// Set by the `unpostpone` command: the swap no longer waits for the postpone flag file.
    pub unpostponed: AtomicBool,
    /// gh-ost's `--nice-ratio`: after each chunk, a copy worker sleeps this many times the time
    /// the chunk took (0 to 100).
    pub nice_ratio: Mutex<f64>,
    /// gh-ost's `--throttle-query`.
    pub throttle_query: Mutex<Option<String>>,
    /// gh-ost's `--throttle-http`: the URL checked.
    pub throttle_http: Mutex<Option<String>>,
    /// `--postpone-cut-over-flag-file`: while this file exists, the swap waits.
    pub postpone_flag_file: Mutex<Option<std::path::PathBuf>>,
}

#[derive(Default)]
pub struct RunState {
    pub live: Live,
    pub rows_copied: AtomicU64,
    /// Copy workers working right now.
    pub copy_workers: AtomicU64,
    pub verified_rows: AtomicU64,
    pub rows_estimated: AtomicU64,
    pub changes_applied: AtomicU64,
    /// Transactions read from the binlog but not applied yet.
    pub backlog: AtomicU64,
    /// Bytes of changes read from the binlog and not yet applied (bounded by the reader).
    pub buffered_bytes: std::sync::Arc<AtomicU64>,
    /// Replayed changes left out: superseded in their group, or to rows the copy reads later.
    pub changes_skipped: AtomicU64,
    /// The keys replayed since the last point at which every row was compared.
    pub changed_keys: crate::compare::ChangedKeys,
    /// The keys the copy has not handed out yet (see `pending::PendingKeys`).
    pub pending_keys: crate::pending::PendingKeys,
    /// Whether a watched replica lagged the copy's lag limit or more (or could not tell) at the
    /// last check: the cut-over waits while it does.
    pub replicas_lagging: AtomicBool,
    /// The copy's lag limit at the last check, in milliseconds (see `throttle::LagLimit`).
    pub lag_limit_ms: AtomicU64,
    /// The highest replica lag at the last check, in milliseconds; `None` when not measured.
    pub replica_lag_ms: Mutex<Option<u64>>,
    /// How fast the slowest watched replica replays the copy's chunks (caps their size).
    pub replay_pace: Mutex<crate::limits::ReplayPace>,
    /// Where `--status-json` lines go, if anywhere.
    pub status: Option<crate::status::StatusSink>,
    /// How long the successful cut-over held the table lock, in milliseconds.
    pub cut_over_lock_ms: AtomicU64,
    /// How long the copy and the verification took, in milliseconds.
    pub copy_ms: AtomicU64,
    pub verify_ms: AtomicU64,
    /// Highest cut-over marker the applier has applied everything before.
    pub applied_marker: AtomicU64,
    /// When non-zero, the applier pauses after applying this marker (cut-over in progress).
    pub hold_at_marker: AtomicU64,
    /// The last marker number handed out.
    last_marker: AtomicU64,
    /// Set by the cut-over before it renames: the reader then takes the RENAME of the original
    /// table as the swap, not as foreign DDL.
    pub swap_started: AtomicBool,
    /// Set by the reader when it reads that RENAME: every transaction before it has been passed on.
    pub rename_seen: AtomicBool,
    /// The plan's estimate of the new table's size in bytes, for a message when the server
    /// runs out of space.
    pub new_table_bytes: AtomicU64,
    /// The connection id of a cut-over RENAME that was sent and has not returned (0: none). A
    /// run that stops kills it first, so the swap cannot happen after the run has given up.
    pub pending_rename: AtomicU32,
    /// The connection id of a cut-over `LOCK TABLES` that was sent and has not returned (0:
    /// none). On MySQL it may hold the shadow while it waits for the original, and the cleanup's
    /// `DROP` of the shadow would wait behind it: a run that stops kills it first.
    pub pending_lock: AtomicU32,
    /// The binlog position everything before which is replayed (see [`RunState::wait_applied`]).
    applied_position: tokio::sync::watch::Sender<BinlogPosition>,
    phase: Mutex<&'static str>,
    /// Why the copy is paused, if it is.
    throttle: Mutex<Option<String>>,
    /// Set once, when the run stops; waits end on it.
    stop: tokio::sync::watch::Sender<bool>,
    failure: Mutex<Option<Error>>,
}

/// The time since the Unix epoch: the clock of heartbeats, markers and chunk commits.
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

impl RunState {
    /// A run's state, writing `--status-json` lines to `status` if given.
    /// Its markers start at the current time in microseconds: above those of an earlier run on
    /// the same changelog (see [`RunState::markers_above`]).
    pub fn new(status: Option<crate::status::StatusSink>) -> RunState {
        let now = since_epoch().as_micros() as u64;
        RunState { status, last_marker: AtomicU64::new(now), ..Default::default() }
    }

    /// The run's current phase, for people: "copying", "cutting over", ...
    pub fn phase(&self) -> &'static str {
        *self.phase.lock().expect("phase lock")
    }

    pub fn set_phase(&self, phase: &'static str) {
        tracing::info!("phase: {phase}");
        *self.phase.lock().expect("phase lock") = phase;
        self.emit("state", serde_json::json!({}));
    }

    /// Writes a `--status-json` line for `event`, with extra fields merged in.
    pub fn emit(&self, event: &str, extra: serde_json::Value) {
        let Some(sink) = &self.status else { return };
        let mut line = self.snapshot(event);
        if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
            line.extend(extra);
        }
        sink.write(&line);
    }

    /// The fields every status line carries (see `status`).
    pub fn snapshot(&self, event: &str) -> serde_json::Value {
        let lag = *self.replica_lag_ms.lock().expect("lag lock");
        serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "event": event,
            "state": self.phase(),
            "rows_copied": self.rows_copied.load(Ordering::Relaxed),
            "rows_estimated": self.rows_estimated.load(Ordering::Relaxed),
            "changes_applied": self.changes_applied.load(Ordering::Relaxed),
            "changes_skipped": self.changes_skipped.load(Ordering::Relaxed),
            "backlog": self.backlog.load(Ordering::Relaxed),
            "copy_workers": self.copy_workers.load(Ordering::Relaxed),
            "replica_lag_ms": lag,
            "throttle": self.throttle_reason(),
        })
    }

    /// A marker number never used before, in this run or an earlier one on its changelog.
    pub fn next_marker(&self) -> u64 {
        self.last_marker.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Makes the next markers higher than `marker`, the last one an interrupted run wrote. A
    /// resumed run replays that run's markers, which must not pass for its own; and writing the
    /// value the changelog row already holds changes nothing, so leaves no binlog event for the
    /// applier to see, and a wait for it would never end.
    pub fn markers_above(&self, marker: u64) {
        self.last_marker.fetch_max(marker, Ordering::SeqCst);
    }

    pub fn throttle_reason(&self) -> Option<String> {
        self.throttle.lock().expect("throttle lock").clone()
    }

    /// Records why the copy must pause (or that it may go). A change is logged when the reason
    /// changes in more than its numbers, so a growing lag does not log every 100 ms.
    pub fn set_throttle(&self, reason: Option<String>) {
        let mut slot = self.throttle.lock().expect("throttle lock");
        let shape = |r: &Option<String>| r.as_ref().map(|r| r.replace(|c: char| c.is_ascii_digit() || c == '.', ""));
        let changed = shape(&slot) != shape(&reason);
        *slot = reason.clone();
        drop(slot);
        if changed {
            match &reason {
                Some(why) => tracing::info!("throttled: {why}"),
                None => tracing::info!("throttle lifted"),
            }
            self.emit(if reason.is_some() { "throttled" } else { "unthrottled" }, serde_json::json!({}));
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Records a stage's failure and stops the run; only the first one is kept.
    pub fn fail(&self, error: Error) {
        let mut slot = self.failure.lock().expect("failure lock");
        if slot.is_none() {
            tracing::error!("{error}");
            *slot = Some(error);
        } else {
            tracing::warn!("after the first failure: {error}");
        }
        self.stop();
    }

    pub fn take_failure(&self) -> Option<Error> {
        self.failure.lock().expect("failure lock").take()
    }

    pub fn has_failed(&self) -> bool {
        self.failure.lock().expect("failure lock").is_some()
    }

    pub fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl RunState {
    /// The binlog position everything before which is replayed.
    pub fn applied_position(&self) -> BinlogPosition {
        self.applied_position.borrow().clone()
    }

    /// Records that everything before `position` is replayed, waking the waits for it.
    pub fn set_applied(&self, position: BinlogPosition) {
        self.applied_position.send_replace(position);
    }

    /// Waits until the applier has replayed everything up to `target`; false if the run stopped
    /// first. Woken by each new position and by the stop, not by polling.
    pub async fn wait_applied(&self, target: &BinlogPosition) -> bool {
        let mut applied = self.applied_position.subscribe();
        let mut stopped = self.stop.subscribe();
        // Biased: a position already reached counts, even once the run is stopping.
        tokio::select! {
            biased;
            reached = applied.wait_for(|position| position >= target) => reached.is_ok(),
            _ = stopped.wait_for(|stopped| *stopped) => false,
        }
    }
}

/// Runs a pipeline stage on its own thread inside the async runtime's context; an error or a
/// panic in the stage fails the run instead of leaving the other stages waiting for it.
pub fn spawn_stage(name: &str, runtime: tokio::runtime::Handle, state: std::sync::Arc<RunState>, stage: impl FnOnce() -> crate::error::Result<()> + Send + 'static) -> std::thread::JoinHandle<()> {
    let stage_name = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _context = runtime.enter();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(stage)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => state.fail(e),
                Err(_) => state.fail(Error::failed(format!("the {stage_name} thread panicked (a bug; please report it with the log)"))),
            }
        })
        .expect("spawning a pipeline thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_carry_the_core_fields_and_extras() {
        let state = RunState::default();
        state.rows_copied.store(7, Ordering::Relaxed);
        let mut line = state.snapshot("state");
        line.as_object_mut().unwrap().extend(serde_json::json!({"exit_code": 1}).as_object().unwrap().clone());
        let parsed: serde_json::Value = serde_json::from_str(&line.to_string()).unwrap();
        assert_eq!(parsed["rows_copied"], 7);
        assert_eq!(parsed["replica_lag_ms"], serde_json::Value::Null);
        assert_eq!(parsed["throttle"], serde_json::Value::Null);
        assert_eq!(parsed["exit_code"], 1);
        assert_eq!(parsed["event"], "state");
    }

    #[test]
    fn markers_pass_an_interrupted_runs_and_never_repeat() {
        let state = RunState::new(None);
        let first = state.next_marker();
        assert!(state.next_marker() > first);
        state.markers_above(first + 1_000_000);
        assert!(state.next_marker() > first + 1_000_000);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let fresh = RunState::new(None);
        assert!(fresh.next_marker() > first, "a later run starts above an earlier one's markers");
    }
}
