//! A migration held at its cut-over, for the tests of the swap under interference
//! (`tests/cutover.rs`, `tests/restart.rs`): the run postponed before its swap, its RENAME
//! held up by a session reading the shadow, and the check of the result against the oracle.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;

use super::interrupt::{loaded_tables, workload};
use super::{assert_same_rows, server, stderr, tables};

pub const DDL: &str = "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=latin1";

/// The test table of the cut-over tests, loaded, with its oracle.
pub async fn setup(db: &str) -> Conn {
    loaded_tables(db, DDL).await
}

/// A flag or status file of this test process, not there yet.
pub fn flag(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Starts a migration whose cut-over waits for `postpone` to disappear; returns once the swap
/// is all that is left (the postponed phase reached).
pub async fn start_postponed(db: &str, postpone: &std::path::Path, extra: &[&str]) -> Child {
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
pub async fn swap_held_on_the_shadow(db: &str, seed: u64) -> (Conn, super::workload::Running, Child, Conn) {
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
/// in parallel, each with its own database, and more than one RENAME may wait at a time. On
/// MySQL the RENAME runs in the session that holds both tables locked, so what waits is that
/// session's `LOCK TABLES t WRITE, _t_gho WRITE` (see docs/cutover.md).
pub async fn waiting_rename(admin: &mut Conn, db: &str, child: &mut Child) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let statement = if super::flavor().is_mysql() { "LOCK TABLES" } else { "RENAME TABLE" };
    loop {
        let id: Option<u64> = admin.exec_first(format!("SELECT ID FROM {} WHERE INFO LIKE ? AND STATE LIKE '%lock%'", super::processlist()), (format!("{statement} `{db}`.%"),)).await.unwrap();
        if let Some(id) = id {
            return id;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its RENAME waited");
        assert!(Instant::now() < deadline, "the RENAME of `{db}` never waited on a lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn finish(child: Child, running: super::workload::Running, conn: &mut Conn) -> String {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_same_rows(conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert_eq!(tables(conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()], "{log}");
    log
}
