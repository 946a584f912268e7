//! A copy chunk larger than the server's `max_binlog_cache_size` is copied in halves instead of
//! failing the run, and every row arrives. Its own server: the setting is global.

mod common;

use common::{assert_same_rows, assert_success, server};
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_shrink_to_fit_the_binlog_cache() {
    let srv = server();
    let mut conn = srv.fresh_database("cache").await;
    for table in ["t", "t_copy"] {
        conn.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB")).await.unwrap();
    }
    conn.query_drop("INSERT INTO t SELECT seq, REPEAT('p', 200) FROM seq_1_to_20000").await.unwrap();
    conn.query_drop("INSERT INTO t_copy SELECT * FROM t").await.unwrap();
    // 5,000 rows of about 200 bytes make a 1 MB chunk; the cache allows 256 KB.
    conn.query_drop("SET GLOBAL max_binlog_cache_size = 262144").await.unwrap();
    let out = srv.alterego(&["--database", "cache", "--table", "t", "--alter", "ADD COLUMN z INT", "--execute", "--chunk-size", "5000"]);
    conn.query_drop("SET GLOBAL max_binlog_cache_size = DEFAULT").await.unwrap();
    assert_success(&out);
    let log = common::stderr(&out);
    assert!(log.contains("a chunk outgrew max_binlog_cache_size; copying in chunks of 2500 rows"), "{log}");
    assert_eq!(assert_same_rows(&mut conn, "SELECT id, pad FROM t ORDER BY id", "SELECT id, pad FROM t_copy ORDER BY id").await, 20000);
}
