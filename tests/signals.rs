//! SIGTERM during the copy: exit code 4, the original table untouched, nothing left behind.

mod common;

use std::time::{Duration, Instant};

use common::{rows, server, tables};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_copy_cleans_up() {
    let srv = server();
    let mut conn = common::small_table("sigterm", 40000).await;
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
