//! What a person watching the run sees: on a terminal, an `indicatif` bar with rows copied of
//! the estimate, rate, ETA, applied changes, backlog, replica lag, phase and throttle reason; otherwise one status line at a
//! steady interval. The same interval paces the `--status-json` status lines and the on-status hook.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::state::RunState;

/// Shows progress until the run stops, and writes a `--status-json` line every `interval`.
pub fn spawn(state: Arc<RunState>, terminal: bool, interval: Duration, hooks: crate::hooks::Hooks) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let json = tokio::spawn(status_lines(state.clone(), interval, hooks));
        if terminal {
            show_bar(&state).await
        } else {
            log_lines(&state, interval).await
        }
        json.abort();
    })
}

/// At every interval: a `--status-json` line and the on-status hook.
async fn status_lines(state: Arc<RunState>, interval: Duration, hooks: crate::hooks::Hooks) {
    while !state.stopping() {
        tokio::time::sleep(interval).await;
        state.emit("status", serde_json::json!({}));
        hooks.run(crate::hooks::Hook::Status, &state, &[("GH_OST_STATUS", status(&state))]).await.ok();
    }
}

fn status(state: &RunState) -> String {
    let throttled = state.throttle_reason().map(|why| format!(" (throttled: {why})")).unwrap_or_default();
    let lag = match *state.replica_lag_ms.lock().expect("lag lock") {
        Some(ms) => format!(", replica lag {:.1}s", ms as f64 / 1000.0),
        None => String::new(),
    };
    format!("{}{throttled}; applied {} changes, backlog {} transactions{lag}", state.phase(), state.changes_applied.load(Ordering::Relaxed), state.backlog.load(Ordering::Relaxed))
}

async fn show_bar(state: &RunState) {
    let bar = ProgressBar::with_draw_target(Some(state.rows_estimated.load(Ordering::Relaxed).max(1)), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows ({per_sec}, ETA {eta}) {msg}").expect("valid progress template"));
    while !state.stopping() {
        let copied = state.rows_copied.load(Ordering::Relaxed);
        bar.set_length(state.rows_estimated.load(Ordering::Relaxed).max(copied).max(1));
        bar.set_position(copied);
        bar.set_message(status(state));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
}

async fn log_lines(state: &RunState, interval: Duration) {
    let mut last = std::time::Instant::now();
    while !state.stopping() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last.elapsed() < interval {
            continue;
        }
        last = std::time::Instant::now();
        let copied = state.rows_copied.load(Ordering::Relaxed);
        let estimated = state.rows_estimated.load(Ordering::Relaxed).max(copied).max(1);
        tracing::info!("copied {copied}/{estimated} rows ({:.1}%); {}", copied as f64 * 100.0 / estimated as f64, status(state));
    }
}
