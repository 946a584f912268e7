//! SIGTERM during the copy: exit code 4, the original table untouched, nothing left behind.

mod common;

use std::time::{Duration, Instant};

use common::{rows, server, tables};
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_copy_cleans_up() {
    let srv = server();
    let mut conn = srv.fresh_database("sigterm").await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, seq FROM seq_1_to_40000").await.unwrap();
    let before = rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await;
    let child = srv
        .alterego_command(&["--database", "sigterm", "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--chunk-size", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tables(&mut conn).await.contains(&"_t_ghc".to_string()) {
        assert!(Instant::now() < deadline, "the migration never started copying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await, before);
}
