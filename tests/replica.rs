//! alterego pointed at a replica. gh-ost lines point at one to migrate the primary, which
//! alterego would not do: it refuses, naming the source. gh-ost's `--migrate-on-replica`
//! migrates the replica alone while the primary's writes replicate to it, and the replica's
//! table then equals its oracle; `--test-on-replica` does everything but the swap, stops
//! replication, and leaves `_t_gho` equal to `t`. Neither touches the primary's table.

mod common;

use std::sync::OnceLock;

use common::interrupt::{loaded_tables, workload};
use common::{assert_same_rows, assert_success, server, stderr, tables, TestServer};
use mysql_async::prelude::*;

const DDL: &str = "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=latin1";

/// A replica of the test server that writes what it replicates to its binlog. The tests take
/// turns with `TURN`: one stops its replication.
fn replica() -> &'static TestServer {
    static REPLICA: OnceLock<TestServer> = OnceLock::new();
    let updates = if common::flavor().is_mysql() { "--log-replica-updates=ON" } else { "--log-slave-updates=ON" };
    REPLICA.get_or_init(|| server().start_replica_with(&[updates]))
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The workload's tables in a fresh database `db` on the primary, created once the replica
/// replicates (it starts from the primary's position then), so that they reach it.
async fn loaded_tables_replicated(db: &str) {
    tokio::task::spawn_blocking(replica).await.unwrap();
    loaded_tables(db, DDL).await;
}

fn args<'a>(db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT DEFAULT 5", "--execute", "--chunk-size", "500"];
    args.extend_from_slice(extra);
    args
}

/// Loads `db`, and runs alterego with `flag` on the replica while writers write on the
/// primary; it must succeed. Returns its output and the primary's table definition before it.
async fn run_on_replica_under_writes(db: &'static str, flag: &'static str) -> (std::process::Output, String) {
    loaded_tables_replicated(db).await;
    let before = primary_ddl(db).await;
    replica().wait_for_primary(server());
    let running = workload().start(server().opts(Some(db)), 11);
    let out = tokio::task::spawn_blocking(move || replica().alterego(&args(db, &[flag]))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    running.stop().await;
    assert_success(&out);
    (out, before)
}

/// The table's definition on the primary, which none of these runs may change.
async fn primary_ddl(db: &str) -> String {
    let (_, ddl): (String, String) = server().conn(Some(db)).await.query_first("SHOW CREATE TABLE t").await.unwrap().unwrap();
    ddl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_is_refused_unless_the_replica_is_meant() {
    let _turn = TURN.lock().await;
    let db = "replica_refused";
    loaded_tables_replicated(db).await;
    replica().wait_for_primary(server());
    let mut on_replica = replica().conn(Some(db)).await;
    let before = common::snapshot(&mut on_replica).await;
    let out = replica().alterego(&args(db, &[]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let source = format!("is a replica (of 127.0.0.1:{})", server().port);
    assert!(stderr(&out).contains(&source) && stderr(&out).contains("--migrate-on-replica"), "{}", stderr(&out));
    assert_eq!(common::snapshot(&mut on_replica).await, before, "a refusal must leave the replica as it was");

    let out = server().alterego(&args(db, &["--migrate-on-replica"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is no replica"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_on_replica_migrates_the_replica_alone_under_the_primarys_writes() {
    let _turn = TURN.lock().await;
    let db = "replica_migrate";
    let (_, before) = run_on_replica_under_writes(db, "--migrate-on-replica").await;
    replica().wait_for_primary(server());
    let mut on_replica = replica().conn(Some(db)).await;
    let n = assert_same_rows(&mut on_replica, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert!(n > 0);
    let unset: Option<u64> = on_replica.query_first("SELECT COUNT(*) FROM t WHERE c IS NULL").await.unwrap();
    assert_eq!(unset, Some(0), "every row of the replica's new table has the new column's default");
    assert_eq!(tables(&mut on_replica).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);
    assert_eq!(primary_ddl(db).await, before, "the primary's table changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_on_replica_stops_replication_and_leaves_the_new_table_beside() {
    let _turn = TURN.lock().await;
    let db = "replica_test";
    let (out, before) = run_on_replica_under_writes(db, "--test-on-replica").await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("Tested on the replica"), "{}", String::from_utf8_lossy(&out.stdout));
    let mut on_replica = replica().conn(Some(db)).await;
    // Replication is stopped: the table stands where the test ended, and so must the new one.
    let n = assert_same_rows(&mut on_replica, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM _t_gho ORDER BY id").await;
    assert!(n > 0);
    assert_eq!(tables(&mut on_replica).await, vec!["_t_gho".to_string(), "t".into(), "t_oracle".into()]);
    on_replica.query_drop(format!("DROP TABLE _t_gho; {}", common::flavor().start_replica(""))).await.unwrap();
    replica().wait_for_primary(server());
    assert_eq!(primary_ddl(db).await, before, "the primary's table changed");
}
