//! A server that runs out of space for the shadow table: its own `mariadbd` keeps every table
//! in a system tablespace capped at 64 MB (`--innodb-file-per-table=0`), and the table to
//! migrate fills about half of it, so its copy cannot fit. The run must fail with exit 1 and a
//! message that says the server ran out of space and how much to free, drop what it created
//! (DROP works in a full tablespace), and leave the original table as it was.

mod common;

use common::{rows, tables, TestServer};
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_space_fails_cleanly() {
    let srv = TestServer::start(&["--innodb-file-per-table=0", "--innodb-data-file-path=ibdata1:12M:autoextend:max:64M"]);
    let mut conn = srv.fresh_database("full").await;
    conn.query_drop("CREATE TABLE t (id INT NOT NULL PRIMARY KEY, pad CHAR(200) NOT NULL) ENGINE=InnoDB").await.unwrap();
    for start in (0..120_000).step_by(20_000) {
        conn.query_drop(format!("INSERT INTO t SELECT seq, REPEAT('x', 200) FROM {}", common::seq(start + 1, start + 20_000))).await.unwrap();
    }
    conn.query_drop("ANALYZE TABLE t").await.unwrap();
    let before = rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await;
    let output = srv.alterego(&["--database", "full", "--table", "t", "--alter", "ADD COLUMN b INT", "--execute"]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the server ran out of space while writing `full`.`_t_gho`"), "{stderr}");
    assert!(stderr.contains("what to do: free about") && stderr.contains("MB"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await, before);
}
