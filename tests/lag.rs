//! Replica lag throttles the copy: with the replica's SQL thread stopped, the heartbeat it has
//! applied falls behind, the copy pauses with a reason naming the replica, and it goes on once
//! the replica catches up. Replicas given on the command line and discovered ones alike.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{server, tables};
use mysql_async::prelude::*;

const ROWS: u64 = 20_000;

async fn shadow_rows(conn: &mut mysql_async::Conn) -> Option<u64> {
    conn.query_first("SELECT COUNT(*) FROM _t_gho").await.ok().flatten()
}

/// Runs a migration that is held by a throttle file until the replica's SQL thread is stopped,
/// then checks that lag keeps the copy paused and that it completes once replication resumes.
async fn throttled_by_lag(db: &str, replica: &common::TestServer, replica_flags: &[String]) -> String {
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM seq_1_to_{ROWS}")).await.unwrap();
    let hold = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{db}-hold-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    let mut args: Vec<String> = ["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--chunk-size", "100", "--max-lag-millis", "500", "--status-interval-millis", "200"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--throttle-flag-file".to_string(), hold.display().to_string()]);
    args.extend(replica_flags.iter().cloned());
    let mut child = srv.alterego_command(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tables(&mut conn).await.contains(&"_t_ghc".to_string()) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the migration never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    replica.sql("STOP SLAVE SQL_THREAD");
    // Let the lag pass --max-lag-millis before the throttle file stops holding the copy.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::remove_file(&hold).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let first = shadow_rows(&mut conn).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if child.try_wait().unwrap().is_some() {
        let output = child.wait_with_output().unwrap();
        panic!("the migration ended while the replica lagged:\n{}", common::stderr(&output));
    }
    assert_eq!(shadow_rows(&mut conn).await, first, "the copy went on while the replica lagged");
    replica.sql("START SLAVE SQL_THREAD");
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_lag_throttles_the_copy() {
    let replica = server().start_replica();
    let address = format!("127.0.0.1:{}", replica.port);
    let stderr = throttled_by_lag("lag_given", &replica, &["--throttle-control-replicas".into(), address.clone()]).await;
    assert!(stderr.contains(&format!("throttled: replica {address} lags")), "{stderr}");
    assert!(stderr.contains("throttle lifted"), "{stderr}");
    assert!(stderr.contains(", replica lag "), "no lag in the status lines: {stderr}");

    // The same replica found through SHOW SLAVE HOSTS.
    let stderr = throttled_by_lag("lag_discovered", &replica, &[]).await;
    assert!(stderr.contains(&format!("watching lag on discovered replicas: {address}")), "{stderr}");
    assert!(stderr.contains(&format!("throttled: replica {address} lags")), "{stderr}");
}
