//! The server is killed (kill -9) and restarted mid-copy, during the verification and during
//! the cut-over: the copy retries its chunk on a new connection, the reader resumes from its
//! last committed position, the verification starts again from a new consistent point, the
//! cut-over tries the swap again, and the result still equals the oracle.

mod common;

use common::interrupt::migrate_with_interruption;
use common::server;

/// The tests restart the one server they share: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_mid_copy() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stderr = migrate_with_interruption("restart", || async {
        tokio::task::spawn_blocking(|| server().restart()).await.unwrap();
    })
    .await;
    assert!(stderr.contains("binlog stream lost"), "the restart was not noticed:\n{stderr}");
}

/// The server is killed and restarted while the verification waits for its read lock (another
/// session's open transaction wrote `t`): the comparison starts again from a new consistent
/// point once the server is back, and the run completes with the oracle's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_during_verification() {
    use mysql_async::prelude::*;
    let _alone = ONE_AT_A_TIME.lock().await;
    use std::time::{Duration, Instant};
    let db = "restart_verify";
    drop(common::interrupt::loaded_tables(db, "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=latin1").await);
    let running = common::interrupt::workload().start(server().opts(Some(db)), 21);
    let status = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("restart-verify-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&status);
    let child = server()
        .alterego_command(&["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT", "--execute", "--cut-over-lock-timeout-seconds", "30", "--status-json", status.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = server().conn(Some(db)).await;
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder.query_drop("UPDATE t SET id = id WHERE id < 0").await.unwrap();
    let mut admin = server().conn(None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting: Option<u64> = admin.query_first(format!("SELECT COUNT(*) FROM {} WHERE INFO LIKE 'LOCK TABLES%' AND STATE LIKE '%metadata lock%'", common::processlist())).await.unwrap();
        if waiting == Some(1) && std::fs::read_to_string(&status).unwrap_or_default().contains("\"state\":\"verifying\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the verification never waited for its lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(holder);
    tokio::task::spawn_blocking(|| server().restart()).await.unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    common::assert_success(&output);
    let log = common::stderr(&output);
    assert!(log.contains("starting the comparison again"), "the verification did not start again:\n{log}");
    let mut conn = server().conn(Some(db)).await;
    common::assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert_eq!(common::tables(&mut conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);
}

/// The server is killed and restarted while the cut-over's RENAME waits (a session reading the
/// shadow holds it up, the original locked): the attempt loses every connection, alterego finds
/// the tables not swapped, tries again once the server is back, and the run completes with the
/// oracle's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_during_the_cut_over() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (conn, running, child, reader) = common::cutover::swap_held_on_the_shadow("restart_cutover", 22).await;
    tokio::task::spawn_blocking(|| server().restart()).await.unwrap();
    drop((conn, reader));
    let mut conn_after = server().conn(Some("restart_cutover")).await;
    let log = common::cutover::finish(child, running, &mut conn_after).await;
    assert!(log.contains("did not swap") && log.contains("cut-over done"), "the swap was not tried again:\n{log}");
}
