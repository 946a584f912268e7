//! Nothing reaches the swapped table unchecked: rows replayed after the verification are
//! compared with the original before the swap. A trigger created on the shadow once the
//! verification has passed (the swap postponed) corrupts the replayed rows; the run must fail
//! naming them, with nothing swapped and only the original left, holding the writes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{rows, server, tables};
use mysql_async::prelude::*;

/// Migrates a 3,000-row table with the swap postponed; once postponed, a trigger on the shadow
/// corrupts column `a` of the rows the replay writes, and `writes` rows of the original are
/// updated; then the postponement ends.
async fn corrupted_after_the_verification(db: &str, writes: u32) -> (String, Vec<Vec<mysql_async::Value>>) {
    let srv = server();
    let mut conn = common::small_table_on(srv, db, 3000).await;
    let dir = common::scratch_dir(db);
    let postpone = dir.join("postpone");
    std::fs::write(&postpone, "").unwrap();
    // The hook says when the swap is postponed, which is after the verification.
    let reached = dir.join("postponed");
    let hook = dir.join("gh-ost-on-begin-postponed");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", reached.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = srv
        .alterego_command(&[
            "--database",
            db,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN c INT",
            "--execute",
            "--postpone-cut-over-flag-file",
            postpone.to_str().unwrap(),
            "--hooks-path",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reached.exists() {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the swap was never postponed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for event in ["INSERT", "UPDATE"] {
        conn.query_drop(format!("CREATE TRIGGER corrupt_{event} BEFORE {event} ON _t_gho FOR EACH ROW SET NEW.a = -1")).await.unwrap();
    }
    conn.query_drop(format!("UPDATE t SET a = a + 1 WHERE id <= {writes}")).await.unwrap();
    let expected = rows(&mut conn, "SELECT id, a FROM t ORDER BY id").await;
    // The swap goes once the replay has written them all (and recorded their keys).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let corrupted: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_gho WHERE a = -1").await.unwrap();
        if corrupted == Some(u64::from(writes)) {
            break;
        }
        assert!(Instant::now() < deadline, "the replay never wrote the {writes} rows: {corrupted:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&postpone).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "SELECT id, a FROM t ORDER BY id").await, expected, "the original table changed");
    let columns: Option<u64> = conn.query_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'").await.unwrap();
    assert_eq!(columns, Some(2), "the original was swapped out");
    (stderr, expected)
}

/// A few changed rows: found by the comparison under the cut-over lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_corrupted_after_the_verification_fails_the_run_under_the_lock() {
    let (stderr, _) = corrupted_after_the_verification("late_few", 5).await;
    assert!(stderr.contains("rows replayed after the verification do not match the original (compared under the cut-over lock): 5 row(s) differ"), "{stderr}");
    for key in ["(1)", "(2)", "(3)", "(4)", "(5)"] {
        assert!(stderr.contains(key), "{key} not named: {stderr}");
    }
}

/// Many changed rows: compared at a new consistent point before the cut-over takes its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rows_corrupted_after_the_verification_fail_the_run_before_the_lock() {
    let (stderr, _) = corrupted_after_the_verification("late_many", 2500).await;
    assert!(stderr.contains("rows replayed after the verification do not match the original (compared at a consistent point before the cut-over): 2500 row(s) differ"), "{stderr}");
}
