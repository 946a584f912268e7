//! What a person watching the run sees: on a terminal, an `indicatif` bar with rows copied of
//! the estimate, rate, ETA, applied changes, backlog, replica lag, phase and throttle reason; otherwise one status line at a
//! steady interval. The same interval paces the `--status-json` status lines and, unless
//! `--hooks-status-interval` gives it one of its own, the on-status hook.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::state::RunState;

/// Shows progress until the run stops, writes a `--status-json` line every `interval`, and runs
/// the on-status hook every `hook_interval`.
pub fn spawn(state: Arc<RunState>, terminal: bool, interval: Duration, hook_interval: Duration, hooks: crate::hooks::Hooks) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let json = tokio::spawn(status_lines(state.clone(), interval));
        let hook = tokio::spawn(status_hooks(state.clone(), hook_interval, hooks));
        if terminal {
            show_bar(&state).await
        } else {
            log_lines(&state, interval).await
        }
        json.abort();
        hook.abort();
    })
}

/// A `--status-json` line at every interval.
async fn status_lines(state: Arc<RunState>, interval: Duration) {
    while !state.stopping() {
        tokio::time::sleep(interval).await;
        state.emit("status", serde_json::json!({}));
    }
}

/// The on-status hook at every interval.
async fn status_hooks(state: Arc<RunState>, interval: Duration, hooks: crate::hooks::Hooks) {
    while !state.stopping() {
        tokio::time::sleep(interval).await;
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

/// The bar: one line that fits the terminal (80 columns show the rows, rate and ETA; the
/// status after them is cut to the width), whole numbers only.
async fn show_bar(state: &RunState) {
    let bar = ProgressBar::with_draw_target(Some(state.rows_estimated.load(Ordering::Relaxed).max(1)), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {bar:20} {percent:>3}% {wide_msg}").expect("valid progress template"));
    while !state.stopping() {
        let copied = state.rows_copied.load(Ordering::Relaxed);
        let estimated = state.rows_estimated.load(Ordering::Relaxed).max(copied).max(1);
        bar.set_length(estimated);
        bar.set_position(copied);
        let rate = bar.per_sec().round() as u64;
        bar.set_message(format!("{}/{} at {}/s, ETA {}; {}", grouped(copied), grouped(estimated), grouped(rate), short_duration(bar.eta()), status(state)));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration in whole units: `42s`, `9m05s`, `2h03m`.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_whole_and_short() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(51_877), "51,877");
        assert_eq!(grouped(1_000_936), "1,000,936");
        assert_eq!(short_duration(Duration::from_secs_f64(42.7)), "42s");
        assert_eq!(short_duration(Duration::from_secs(545)), "9m05s");
        assert_eq!(short_duration(Duration::from_secs(7380)), "2h03m");
    }
}
