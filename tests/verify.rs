//! A row of the shadow table is changed behind the tool's back during the copy: verification
//! finds it, the migration fails without swapping, and the original is untouched.

mod common;

use std::time::{Duration, Instant};

use common::{rows, server, tables};
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_shadow_row_fails_before_the_swap() {
    let srv = server();
    let mut conn = srv.fresh_database("corrupt").await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10)) ENGINE=InnoDB").await.unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, seq, 'x' FROM seq_1_to_40000").await.unwrap();
    let before = rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await;
    let mut child = srv
        .alterego_command(&["--database", "corrupt", "--table", "t", "--alter", "ADD COLUMN c INT", "--execute", "--chunk-size", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_gho WHERE id = 100").await.unwrap_or(None);
        if copied == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy never reached id 100");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.query_drop("UPDATE _t_gho SET b = 'corrupt' WHERE id = 42").await.unwrap();
    assert!(child.try_wait().unwrap().is_none(), "the migration finished before the corruption");
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("verification failed") && stderr.contains("keys after the start up to"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await, before);
}
