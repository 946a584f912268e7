//! The binlog connection is killed mid-copy: the reader reconnects from its last committed
//! position and the result still equals the oracle. With gh-ost's
//! `--binlogsyncer-max-reconnect-attempts`, a reader that cannot reconnect fails the run after
//! that many attempts.

mod common;

use std::time::{Duration, Instant};

use common::interrupt::migrate_with_interruption;
use common::{server, tables};
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

/// The reader's user loses REPLICATION SLAVE and its dump thread is killed: every reconnect is
/// refused, and after the two attempts `--binlogsyncer-max-reconnect-attempts=2` allows, the
/// run fails (exit 1) saying so, leaving only the original table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnects_stop_after_the_attempts_allowed() {
    let db = "reconnect_attempts";
    let mut conn = server().fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, 1000))).await.unwrap();
    for sql in [
        "DROP USER IF EXISTS 'reconnecting'@'%'".to_string(),
        "CREATE USER 'reconnecting'@'%' IDENTIFIED BY 'reconnecting-pw'".into(),
        format!("GRANT REPLICATION SLAVE, {} ON *.* TO 'reconnecting'@'%'", common::flavor().binlog_monitor_privilege()),
        format!("GRANT ALL ON {db}.* TO 'reconnecting'@'%'"),
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let hold = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reconnect-attempts-hold-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    let child = server()
        .alterego_command(&[
            "--user",
            "reconnecting",
            "--database",
            db,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN b INT",
            "--execute",
            "--throttle-flag-file",
            hold.to_str().unwrap(),
            "--binlogsyncer-max-reconnect-attempts=2",
        ])
        .env("ALTEREGO_PASSWORD", "reconnecting-pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dump = loop {
        let dumps: Vec<u64> = conn.query(format!("SELECT ID FROM {} WHERE COMMAND LIKE 'Binlog Dump%' AND USER = 'reconnecting'", common::processlist())).await.unwrap();
        if let Some(id) = dumps.first() {
            break *id;
        }
        assert!(Instant::now() < deadline, "the reader never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    conn.query_drop("REVOKE REPLICATION SLAVE ON *.* FROM 'reconnecting'@'%'").await.unwrap();
    conn.query_drop(format!("KILL {dump}")).await.unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let stderr = common::stderr(&output);
    std::fs::remove_file(&hold).ok();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the binlog stream was lost and 2 attempts to resume it failed (--binlogsyncer-max-reconnect-attempts)"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
}
