//! SIGTERM and SIGINT at the stages a run spends time in: exit code 4, the original table
//! untouched, nothing left behind.

mod common;

use std::time::{Duration, Instant};

use common::{rows, server, tables};
use mysql_async::prelude::*;

/// Starts a migration of a 40,000-row table, waits until `reached` says the stage is on, sends
/// `signal`, and checks the outcome.
async fn interrupt(db: &str, extra: &[&str], signal: i32, name: &str, reached: impl AsyncFn(&mut mysql_async::Conn, &str) -> bool) {
    let srv = server();
    let mut conn = common::small_table(db, 40000).await;
    let before = rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await;
    let status = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{db}-status-{}", std::process::id()));
    let _ = std::fs::remove_file(&status);
    let mut args = vec!["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--status-json", status.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut child = srv.alterego_command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached(&mut conn, &std::fs::read_to_string(&status).unwrap_or_default()).await {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the run never reached the stage to interrupt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unsafe { libc::kill(child.id() as i32, signal) };
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("{name} received")), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_copy_cleans_up() {
    interrupt("sigterm", &["--chunk-size", "10"], libc::SIGTERM, "SIGTERM", async |conn, _| {
        let copied: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_gho").await.unwrap_or(None);
        copied.is_some_and(|n| n > 100)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_the_swap_is_postponed_cleans_up() {
    let postpone = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sigint-postpone-{}", std::process::id()));
    std::fs::write(&postpone, "").unwrap();
    interrupt("sigint", &["--postpone-cut-over-flag-file", postpone.to_str().unwrap()], libc::SIGINT, "SIGINT", async |_, status| status.contains("\"state\":\"postponed\"")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_throttled_before_the_copy_cleans_up() {
    let hold = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sigterm-hold-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    interrupt("sigterm_throttled", &["--throttle-flag-file", hold.to_str().unwrap()], libc::SIGTERM, "SIGTERM", async |_, status| status.contains("\"event\":\"throttled\"")).await;
}
