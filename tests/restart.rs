//! The server is killed (kill -9) and restarted mid-copy: the copy retries its chunk on a new
//! connection, the reader resumes from its last committed position, and the result still
//! equals the oracle.

mod common;

use common::interrupt::migrate_with_interruption;
use common::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_mid_copy() {
    let stderr = migrate_with_interruption("restart", || async {
        tokio::task::spawn_blocking(|| server().restart()).await.unwrap();
    })
    .await;
    assert!(stderr.contains("binlog stream lost"), "the restart was not noticed:\n{stderr}");
}
