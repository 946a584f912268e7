//! The cut-over under interference: the RENAME's connection killed while it waits, a session
//! whose open transaction blocks the swap, and a busy server while the RENAME waits. Writers run throughout; the result must
//! equal the oracle and the tool must say what happened.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::interrupt::{loaded_tables, workload};
use common::{assert_same_rows, server, stderr, tables};
use mysql_async::prelude::*;
use mysql_async::Conn;

const DDL: &str = "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=latin1";

async fn setup(db: &str) -> Conn {
    loaded_tables(db, DDL).await
}

fn flag(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Starts a migration whose cut-over waits for `postpone` to disappear; returns once the swap
/// is all that is left (the postponed phase reached).
async fn start_postponed(db: &str, postpone: &std::path::Path, extra: &[&str]) -> Child {
    std::fs::write(postpone, "").unwrap();
    let status = flag(&format!("{db}-status"));
    let mut args = vec!["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT", "--execute", "--cut-over-lock-timeout-seconds", "10"];
    let (postpone, status_path) = (postpone.to_str().unwrap().to_string(), status.to_str().unwrap().to_string());
    args.extend(["--postpone-cut-over-flag-file", &postpone, "--status-json", &status_path]);
    args.extend_from_slice(extra);
    let mut child = server().alterego_command(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&status).unwrap_or_default().contains("\"state\":\"postponed\"") {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its cut-over");
        assert!(Instant::now() < deadline, "the run never reached its cut-over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// A run under writers (workload `seed`) at its cut-over, with its RENAME waiting on `_t_gho`,
/// which the returned reader holds in an open transaction: the test connection, the writers,
/// the run and the reader.
async fn swap_held_on_the_shadow(db: &str, seed: u64) -> (Conn, common::workload::Running, Child, Conn) {
    let mut conn = setup(db).await;
    let running = workload().start(server().opts(Some(db)), seed);
    let postpone = flag(&format!("{db}-postpone"));
    let mut child = start_postponed(db, &postpone, &[]).await;
    let mut reader = server().conn(Some(db)).await;
    reader.query_drop("START TRANSACTION").await.unwrap();
    reader.query_drop("SELECT COUNT(*) FROM _t_gho").await.unwrap();
    std::fs::remove_file(&postpone).unwrap();
    waiting_rename(&mut conn, db, &mut child).await;
    (conn, running, child, reader)
}

/// Waits for the RENAME of database `db`'s swap to wait on a lock; its session id. Tests run
/// in parallel, each with its own database, and more than one RENAME may wait at a time.
async fn waiting_rename(admin: &mut Conn, db: &str, child: &mut Child) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let id: Option<u64> = admin
            .exec_first("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND STATE LIKE '%lock%'", (format!("RENAME TABLE `{db}`.%"),))
            .await
            .unwrap();
        if let Some(id) = id {
            return id;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its RENAME waited");
        assert!(Instant::now() < deadline, "the RENAME of `{db}` never waited on a lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finish(child: Child, running: common::workload::Running, conn: &mut Conn) -> String {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_same_rows(conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert_eq!(tables(conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()], "{log}");
    log
}

/// The RENAME waits (another session reads the shadow in an open transaction) and its
/// connection is killed: nothing was swapped, the tool says so, retries, and swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_connection_killed_while_waiting() {
    let (mut conn, running, mut child, mut reader) = swap_held_on_the_shadow("killrename", 3).await;
    let rename = waiting_rename(&mut conn, "killrename", &mut child).await;
    conn.query_drop(format!("KILL CONNECTION {rename}")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    reader.query_drop("COMMIT").await.unwrap();
    let log = finish(child, running, &mut conn).await;
    assert!(log.contains("cut-over attempt 1 of") && log.contains("did not swap: the RENAME failed"), "{log}");
    assert!(log.contains("cut-over done"), "{log}");
}

/// A session keeps a transaction open on the table, so the cut-over's lock is never granted.
/// With --force-kill-blockers the tool finds it (MariaDB's metadata_lock_info), kills it, and
/// swaps; the blocker's connection is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_kill_blockers_ends_the_session_blocking_the_swap() {
    let db = "blockers";
    let mut conn = setup(db).await;
    conn.query_drop("INSTALL SONAME 'metadata_lock_info'").await.ok();
    let running = workload().start(server().opts(Some(db)), 4);
    let postpone = flag("blockers-postpone");
    let child = start_postponed(db, &postpone, &["--force-kill-blockers"]).await;
    let mut blocker = server().conn(Some(db)).await;
    let blocker_id = blocker.id();
    blocker.query_drop("START TRANSACTION").await.unwrap();
    blocker.query_drop("SELECT COUNT(*) FROM t").await.unwrap();
    std::fs::remove_file(&postpone).unwrap();
    let log = finish(child, running, &mut conn).await;
    assert!(log.contains(&format!("killing connection {blocker_id}")), "{log}");
    assert!(blocker.query_drop("SELECT 1").await.is_err(), "the blocking session is still alive");
}

/// Another session reads the shadow in an open transaction, so the RENAME (which takes its
/// locks in name order) waits for `_t_gho` before it asks for `t`. The tool must keep `t`
/// locked until the RENAME waits for `t` itself: unlocking earlier lets the writers' queued
/// changes run on the old table, after the last replay, and the swap would lose them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_held_up_on_the_shadow_keeps_the_table_locked() {
    let (mut conn, running, child, mut reader) = swap_held_on_the_shadow("heldshadow", 5).await;
    // Long enough for writes queued on `t` to run if the tool unlocked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reader.query_drop("COMMIT").await.unwrap();
    let log = finish(child, running, &mut conn).await;
    assert!(log.contains("the RENAME waits for"), "{log}");
    assert!(log.contains("cut-over done"), "{log}");
}

/// While the RENAME waits, other tables take 1,500 transactions: each reaches the binlog before
/// the RENAME, and the applier is held at the cut-over marker. The tool must still read up to
/// the RENAME to prove the swap (the reader's channel holds 1,024 transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_server_during_the_swap_does_not_leave_it_unproven() {
    let (mut conn, running, child, mut reader) = swap_held_on_the_shadow("busyswap", 6).await;
    let mut other = server().conn(Some("busyswap")).await;
    other.query_drop("CREATE TABLE other (id INT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    for id in 0..1500 {
        other.exec_drop("INSERT INTO other VALUES (?)", (id,)).await.unwrap();
    }
    other.query_drop("DROP TABLE other").await.unwrap();
    reader.query_drop("COMMIT").await.unwrap();
    let log = finish(child, running, &mut conn).await;
    assert!(log.contains("cut-over done"), "{log}");
}
