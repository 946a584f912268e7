//! The binlog connection is killed mid-copy: the reader reconnects from its last committed
//! position and the result still equals the oracle.

mod common;

use common::interrupt::migrate_with_interruption;
use common::server;
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_binlog_connection_is_resumed() {
    let stderr = migrate_with_interruption("reconnect", || async {
        let mut admin = server().conn(None).await;
        let dumps: Vec<u64> = admin.query(format!("SELECT ID FROM {} WHERE COMMAND LIKE 'Binlog Dump%'", common::processlist())).await.unwrap();
        assert!(!dumps.is_empty(), "no binlog dump thread to kill");
        for id in dumps {
            admin.query_drop(format!("KILL {id}")).await.unwrap();
        }
    })
    .await;
    assert!(stderr.contains("binlog stream lost"), "the kill was not noticed:\n{stderr}");
}
