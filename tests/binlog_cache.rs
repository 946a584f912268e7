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
    conn.query_drop(format!("INSERT INTO t SELECT seq, REPEAT('p', 200) FROM {}", common::seq(1, 20000))).await.unwrap();
    conn.query_drop("INSERT INTO t_copy SELECT * FROM t").await.unwrap();
    // 5,000 rows of about 200 bytes make a 1 MB chunk; the cache allows 256 KB.
    conn.query_drop("SET GLOBAL max_binlog_cache_size = 262144").await.unwrap();
    // Writers commit small transactions (20 rows on both tables, well within the cache) that
    // the applier groups into transactions too big for it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (stop, opts) = (stop.clone(), srv.opts(Some("cache")));
        async move {
            let mut conn = mysql_async::Conn::new(opts).await.unwrap();
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let first = 1 + (round * 20) % 19980;
                let update = |table: &str| format!("UPDATE {table} SET pad = REPEAT(CHAR(97 + {} % 26), 200) WHERE id BETWEEN {first} AND {}", round, first + 19);
                conn.query_drop(format!("START TRANSACTION; {}; {}; COMMIT", update("t"), update("t_copy"))).await.unwrap();
                round += 1;
            }
            round
        }
    });
    let out = tokio::task::spawn_blocking(move || srv.alterego(&["--database", "cache", "--table", "t", "--alter", "ADD COLUMN z INT", "--execute", "--chunk-size", "5000", "--debug"])).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = writer.await.unwrap();
    conn.query_drop("SET GLOBAL max_binlog_cache_size = DEFAULT").await.unwrap();
    assert_success(&out);
    let log = common::stderr(&out);
    assert!(log.contains("a chunk outgrew max_binlog_cache_size; copying in chunks of 2500 rows"), "{log}");
    assert!(rounds > 20, "only {rounds} writer transactions");
    eprintln!("{rounds} writer transactions; {} replays split for the binlog cache", log.matches("outgrew max_binlog_cache_size; replaying them in two").count());
    assert_eq!(assert_same_rows(&mut conn, "SELECT id, pad FROM t ORDER BY id", "SELECT id, pad FROM t_copy ORDER BY id").await, 20000);
}
