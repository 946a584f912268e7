//! Runs a migration under writes and interrupts it mid-copy; shared by the reconnect and
//! restart tests, which need a server of their own.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use mysql_async::prelude::*;

use super::workload::{Workload, MOVE};
use super::{assert_same_rows, assert_success, server, TestServer};

pub const ROWS: i64 = 40_000;

pub fn workload() -> Workload {
    Workload {
        table: "t".into(),
        oracle: "t_oracle".into(),
        columns: vec!["a".into(), "b".into()],
        values: vec![vec!["1".into(), "'x'".into()], vec!["-7".into(), "NULL".into()], vec!["42".into(), "'ÿ latin1'".into()]],
        key_columns: vec!["id".into()],
        key_values: |id| vec![id.to_string()],
        move_key: format!("id = id + {MOVE}"),
        initial_rows: ROWS,
        tolerate_disconnects: true,
    }
}

/// A fresh database `db` with `t` and its oracle `t_oracle` (both `ddl`), loaded with the
/// workload's rows.
pub async fn loaded_tables(db: &str, ddl: &str) -> mysql_async::Conn {
    loaded_tables_on(server(), db, ddl).await
}

/// As [`loaded_tables`], on the server `srv`.
pub async fn loaded_tables_on(srv: &TestServer, db: &str, ddl: &str) -> mysql_async::Conn {
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop(format!("CREATE TABLE t {ddl}")).await.unwrap();
    conn.query_drop(format!("CREATE TABLE t_oracle {ddl}")).await.unwrap();
    workload().load(&mut conn).await;
    conn
}

/// Starts alterego with small chunks so the copy lasts a few seconds, calls `interrupt` once
/// the copy is under way, and checks the final table against the oracle. Returns stderr.
pub async fn migrate_with_interruption<F, Fut>(db: &str, interrupt: F) -> String
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let srv = server();
    drop(loaded_tables(db, "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=latin1").await);
    let w = workload();
    let running = w.start(srv.opts(Some(db)), 11);
    let child = srv
        .alterego_command(&["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT DEFAULT 5", "--execute", "--chunk-size", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    wait_for_copy(&mut child).await;
    interrupt().await;
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    eprintln!("{db}: the migration finished {:?} after the interruption", started.elapsed());
    for line in String::from_utf8_lossy(&output.stderr).lines().filter(|l| l.contains("WARN") || l.contains("phase") || l.contains("ERROR")) {
        eprintln!("  {line}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_success(&output);
    let mut conn = srv.conn(Some(db)).await;
    let n = assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert!(n as i64 > ROWS / 2);
    super::stderr(&output)
}

/// Waits until the migration's binlog reader is connected (so the copy is under way), then a
/// little more; panics if the migration ends first, since the interruption would test nothing.
async fn wait_for_copy(child: &mut std::process::Child) {
    let mut admin = server().conn(None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).ok();
            panic!("the migration ended before it could be interrupted:\n{err}");
        }
        let dumps: Vec<u64> = admin.query(format!("SELECT ID FROM {} WHERE COMMAND LIKE 'Binlog Dump%'", super::processlist())).await.unwrap();
        if !dumps.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the migration's binlog reader never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the copy finished before it could be interrupted; make it longer");
}
