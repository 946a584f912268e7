//! The cut-over under interference: the RENAME's connection killed while it waits, a session
//! whose open transaction blocks the swap, and a busy server while the RENAME waits. Writers run throughout; the result must
//! equal the oracle and the tool must say what happened.

mod common;

use std::time::Duration;

use common::cutover::{finish, flag, setup, start_postponed, swap_held_on_the_shadow, waiting_rename};
use common::interrupt::workload;
use common::server;
use mysql_async::prelude::*;

/// The RENAME waits (another session reads the shadow in an open transaction) and its
/// connection is killed: nothing was swapped, the tool says so, retries, and swaps. On MySQL
/// the session killed is the one whose `LOCK TABLES` (under which it would RENAME) waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_connection_killed_while_waiting() {
    let (mut conn, running, mut child, mut reader) = swap_held_on_the_shadow("killrename", 3).await;
    let rename = waiting_rename(&mut conn, "killrename", &mut child).await;
    conn.query_drop(format!("KILL CONNECTION {rename}")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    reader.query_drop("COMMIT").await.unwrap();
    let log = finish(child, running, &mut conn).await;
    let failed = if common::flavor().is_mysql() { "did not swap: locking the tables" } else { "did not swap: the RENAME failed" };
    assert!(log.contains("cut-over attempt 1 of") && log.contains(failed), "{log}");
    assert!(log.contains("cut-over done"), "{log}");
}

/// A session keeps a transaction open on the table, so the cut-over's lock is never granted.
/// With --force-kill-blockers the tool finds it (MariaDB's metadata_lock_info, MySQL's
/// performance_schema.metadata_locks), kills it, and swaps; the blocker's connection is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_kill_blockers_ends_the_session_blocking_the_swap() {
    let db = "blockers";
    let mut conn = setup(db).await;
    if common::flavor().is_mariadb() {
        // MySQL has performance_schema.metadata_locks instead.
        conn.query_drop("INSTALL SONAME 'metadata_lock_info'").await.ok();
    }
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
/// changes run on the old table, after the last replay, and the swap would lose them. (On
/// MySQL the RENAME runs under `LOCK TABLES t WRITE, _t_gho WRITE`, which waits for both
/// tables before anything is replayed under it; the writes must all arrive just the same.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_held_up_on_the_shadow_keeps_the_table_locked() {
    let (mut conn, running, child, mut reader) = swap_held_on_the_shadow("heldshadow", 5).await;
    // Long enough for writes queued on `t` to run if the tool unlocked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reader.query_drop("COMMIT").await.unwrap();
    let log = finish(child, running, &mut conn).await;
    if common::flavor().is_mariadb() {
        assert!(log.contains("the RENAME waits for"), "{log}");
    }
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
