//! Checkpoint and resume: alterego killed with `kill -9` mid-copy under writes, then run again
//! with the same command, continues from its checkpoint without copying a finished chunk again,
//! and the result equals the oracle. A changed ALTER, purged binlogs and `--resume` without a
//! checkpoint are refused; `--no-resume` starts over.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::interrupt::{loaded_tables, workload, ROWS};
use common::{assert_same_rows, assert_success, server, stderr, tables};
use mysql_async::prelude::*;
use mysql_async::Conn;

const DDL: &str = "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20), KEY ia (a)) ENGINE=InnoDB DEFAULT CHARSET=latin1";
const ALTER: &str = "ADD COLUMN c INT DEFAULT 5";

async fn setup(db: &str) -> Conn {
    loaded_tables(db, DDL).await
}

fn args<'a>(db: &'a str, alter: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--database", db, "--table", "t", "--alter", alter, "--execute", "--chunk-size", "200", "--threads", "2"];
    args.extend_from_slice(extra);
    args
}

fn spawn(args: &[&str]) -> Child {
    server().alterego_command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Finished chunks in the checkpoint table, as (exclusive lower, inclusive upper) ids.
async fn finished_chunks(conn: &mut Conn) -> Vec<(i64, i64)> {
    let rows: Vec<(bool, Option<i64>, i64)> = conn.query("SELECT from_start, lower_1, upper_1 FROM _t_ghk ORDER BY upper_1").await.unwrap();
    rows.into_iter().map(|(from_start, lower, upper)| (if from_start { i64::MIN } else { lower.unwrap() }, upper)).collect()
}

/// Kills the run (SIGKILL) once the checkpoint holds at least `chunks` finished chunks.
async fn kill_after_chunks(conn: &mut Conn, child: &mut Child, chunks: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the migration ended before it could be killed");
        let done: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_ghk").await.unwrap_or(Some(0));
        if done.unwrap_or(0) as usize >= chunks {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never reached {chunks} chunks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    settle_checkpoint(conn).await;
}

/// Waits until the killed run's last commits have landed: the server finishes a COMMIT whose
/// client died after sending it, so the checkpoint may still grow for a moment after the kill.
async fn settle_checkpoint(conn: &mut Conn) {
    const COUNT: &str = "SELECT COUNT(*) FROM _t_ghk";
    let mut last: Option<u64> = conn.query_first(COUNT).await.unwrap();
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now: Option<u64> = conn.query_first(COUNT).await.unwrap();
        if now != last {
            last = now;
            unchanged_since = Instant::now();
        }
    }
}

/// The key ranges of the chunk copies in the general log since it was switched on.
async fn logged_chunk_ranges(conn: &mut Conn, db: &str) -> Vec<(i64, i64)> {
    let like = format!("INSERT INTO `{db}`.`_t_gho`%SELECT%");
    let statements: Vec<String> = conn.exec("SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log WHERE command_type = 'Execute' AND argument LIKE ?", (like,)).await.unwrap();
    statements
        .iter()
        .filter(|s| s.contains("LOCK IN SHARE MODE"))
        .map(|s| {
            let number_after = |marker: &str| s.split(marker).nth(1).and_then(|rest| rest.trim_start().split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse::<i64>().ok());
            (number_after("`id` >").unwrap_or(i64::MIN), number_after("`id` <=").expect("a chunk has an upper bound"))
        })
        .collect()
}

/// One test purges the server's old binlogs, which the others' killed runs must be resumed
/// from, and the kill tests switch the general log on and read it: each of those runs alone.
static BINLOGS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_copy_then_resume_copies_no_finished_chunk_again() {
    let log = killed_and_resumed("resume", &[], None).await;
    assert!(log.contains("reading the binlog from "), "{log}");
}

/// gh-ost's `--gtid`: the killed run and the resumed one follow the binlog by GTID, and the
/// resume asks the server for the transactions after the recorded GTID position. The file
/// and offset recorded beside it are made to name a file the server never had: a resume by
/// them would be refused as purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_copy_then_resume_by_gtid() {
    let unknown_file = "UPDATE _t_ghc SET value = CONCAT('never-there.000001:4', SUBSTRING(value, LOCATE('\\n', value))) WHERE hint = 'applied-position'";
    let log = killed_and_resumed("resume_gtid", &["--gtid"], Some(unknown_file)).await;
    assert!(log.contains("reading the binlog by GTID from `") && log.contains("(at never-there.000001:4)"), "{log}");
}

/// Kills a run (`extra` flags) mid-copy under writes, runs `tamper` if given, and resumes it
/// with the same command: no finished chunk is copied again, and the result equals the
/// oracle. Returns the resumed run's log.
async fn killed_and_resumed(db: &'static str, extra: &[&'static str], tamper: Option<&str>) -> String {
    // Alone: it reads the general log, which it switches on and empties.
    let _alone = BINLOGS.write().await;
    let srv = server();
    let mut conn = setup(db).await;
    let running = workload().start(srv.opts(Some(db)), 5);
    let mut child = spawn(&args(db, ALTER, extra));
    kill_after_chunks(&mut conn, &mut child, 30).await;
    let finished = finished_chunks(&mut conn).await;
    assert!(tables(&mut conn).await.contains(&"_t_gho".to_string()), "kill -9 must leave the shadow table for the resume");
    if let Some(sql) = tamper {
        conn.query_drop(sql).await.unwrap();
        assert_eq!(conn.affected_rows(), 1, "{sql}");
    }

    conn.query_drop("SET GLOBAL log_output = 'TABLE'").await.unwrap();
    conn.query_drop("TRUNCATE mysql.general_log").await.unwrap();
    conn.query_drop("SET GLOBAL general_log = 1").await.unwrap();
    let resume_args = args(db, ALTER, extra).into_iter().map(String::from).collect::<Vec<_>>();
    let resumed = tokio::task::spawn_blocking(move || srv.alterego(&resume_args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
    conn.query_drop("SET GLOBAL general_log = 0").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = running.stop().await;
    assert_success(&resumed);
    let log = stderr(&resumed);
    assert!(log.contains("resuming the interrupted run") && log.contains(&format!("{} chunks were finished before the interruption", finished.len())), "{log}");

    let copied = logged_chunk_ranges(&mut conn, db).await;
    conn.query_drop("TRUNCATE mysql.general_log").await.unwrap();
    assert!(!copied.is_empty(), "the resumed run copied nothing: the kill came too late to test anything");
    for (lower, upper) in &copied {
        for (done_lower, done_upper) in &finished {
            assert!(upper <= done_lower || lower >= done_upper, "the resumed run copied ({lower}, {upper}] again, which overlaps the finished chunk ({done_lower}, {done_upper}]");
        }
    }
    let n = assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert!(n as i64 > ROWS / 2);
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);
    eprintln!("{} chunks finished before kill -9, {} copied after the resume; {} writer transactions", finished.len(), copied.len(), stats.transactions.load(std::sync::atomic::Ordering::Relaxed));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_refuses_a_changed_alter_and_purged_binlogs() {
    let _purging = BINLOGS.write().await;
    let db = "refuse_resume";
    let srv = server();
    let mut conn = setup(db).await;
    let mut child = spawn(&args(db, ALTER, &[]));
    kill_after_chunks(&mut conn, &mut child, 5).await;
    let left = tables(&mut conn).await;

    let out = srv.alterego(&args(db, "ADD COLUMN c BIGINT", &[]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("had another ALTER: `ADD COLUMN c INT DEFAULT 5`") && stderr(&out).contains("--no-resume"), "{}", stderr(&out));
    assert_eq!(tables(&mut conn).await, left, "a refused resume must leave the interrupted run's tables");

    let out = srv.alterego(&args(db, ALTER, &["--gtid"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--gtid: the interrupted run followed the binlog by file and position"), "{}", stderr(&out));
    assert_eq!(tables(&mut conn).await, left, "a refused resume must leave the interrupted run's tables");

    let current: (String, u64) = conn.query_first(common::flavor().binlog_status()).await.unwrap().map(|r: mysql_async::Row| (r.get(0).unwrap(), r.get(1).unwrap())).unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let newest: String = conn.query_first(common::flavor().binlog_status()).await.unwrap().map(|r: mysql_async::Row| r.get(0).unwrap()).unwrap();
    // A binlog still open by a dump thread (the killed run's, until the server notices) is kept.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        conn.query_drop(format!("PURGE BINARY LOGS TO '{newest}'")).await.unwrap();
        let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
        if files.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the old binlogs could not be purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = srv.alterego(&args(db, ALTER, &[]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("has been purged") && stderr(&out).contains("--no-resume"), "{}", stderr(&out));
    assert_eq!(tables(&mut conn).await, left);
    assert_ne!(current.0, newest);

    let out = srv.alterego(&args(db, ALTER, &["--no-resume"]));
    assert_success(&out);
    assert!(!stderr(&out).contains("resuming"), "{}", stderr(&out));
    assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);

    conn.query_drop("DROP TABLE _t_del").await.unwrap();
    let out = srv.alterego(&args(db, "ADD COLUMN d INT", &["--resume"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no interrupted run of this migration was found"), "{}", stderr(&out));
    assert_eq!(tables(&mut conn).await, vec!["t".to_string(), "t_oracle".into()]);
}

/// Sessions running the deferred build of `ia` on the shadow and waiting on a metadata lock.
async fn waiting_index_builds(conn: &mut Conn) -> usize {
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {} WHERE INFO LIKE '%ALTER TABLE `resume_build`.`_t_gho` ADD KEY `ia`%' AND STATE LIKE '%metadata lock%'", common::processlist()))
        .await
        .unwrap();
    n.unwrap_or(0) as usize
}

async fn wait_for_waiting_builds(conn: &mut Conn, child: &mut Child, builds: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while waiting_index_builds(conn).await < builds {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {builds} index builds waited");
        if Instant::now() > deadline {
            let sessions: Vec<(Option<String>, Option<String>)> = conn.query(format!("SELECT STATE, INFO FROM {} WHERE INFO IS NOT NULL", common::processlist())).await.unwrap();
            panic!("{builds} index builds never waited on the shadow's metadata lock; sessions: {sessions:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// kill -9 during the deferred index build: the server goes on with the dead run's ALTER, so
/// the resumed run may find the index missing, start building it, and find it built by the
/// time its own ALTER runs (error 1061, duplicate key name). That counts as built.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_while_the_killed_runs_index_build_goes_on() {
    let _kept = BINLOGS.read().await;
    let db = "resume_build";
    let mut conn = setup(db).await;
    let command = args(db, ALTER, &["--defer-secondary-indexes=always"]);
    let mut first = spawn(&command);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied: u64 = conn.query_first("SELECT COUNT(*) FROM _t_ghk").await.ok().flatten().unwrap_or(0);
        if copied > 0 {
            break;
        }
        assert!(Instant::now() < deadline && first.try_wait().unwrap().is_none(), "the copy never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The copy is under way. An open transaction that read the shadow holds every ALTER of it
    // at its metadata lock.
    let mut reader = server().conn(Some(db)).await;
    reader.query_drop("START TRANSACTION").await.unwrap();
    reader.query_drop("SELECT COUNT(*) FROM _t_gho").await.unwrap();
    wait_for_waiting_builds(&mut conn, &mut first, 1).await;
    first.kill().unwrap();
    first.wait().unwrap();

    let mut resumed = server().alterego_command(&command).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_waiting_builds(&mut conn, &mut resumed, 2).await;
    reader.query_drop("COMMIT").await.unwrap();
    let output = tokio::task::spawn_blocking(move || resumed.wait_with_output()).await.unwrap().unwrap();
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("resuming the interrupted run"), "{log}");
    let ddl: (String, String) = conn.query_first("SHOW CREATE TABLE t").await.unwrap().unwrap();
    // MySQL shows no display width.
    let int_column = if common::flavor().is_mysql() { "`c` int DEFAULT '5'" } else { "`c` int(11) DEFAULT 5" };
    assert!(ddl.1.contains("KEY `ia` (`a`)") && ddl.1.contains(int_column), "{}", ddl.1);
    assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);
}

/// kill -9 while the cut-over is postponed, under writes: the resumed run replays the killed
/// run's verification marker from the binlog and writes markers of its own, which must not be
/// taken for the old ones (an equal value rewritten leaves no binlog event, so the wait for it
/// never ended: "the applier did not catch up").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_while_postponed_then_resume_swaps() {
    let _kept = BINLOGS.read().await;
    let db = "resume_postponed";
    let mut conn = setup(db).await;
    let running = workload().start(server().opts(Some(db)), 3);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let postpone = dir.join(format!("{db}-postpone-{}", std::process::id()));
    let status = dir.join(format!("{db}-status-{}", std::process::id()));
    std::fs::write(&postpone, "").unwrap();
    let _ = std::fs::remove_file(&status);
    let (postpone_arg, status_arg) = (postpone.to_str().unwrap().to_string(), status.to_str().unwrap().to_string());
    let command = args(db, ALTER, &["--postpone-cut-over-flag-file", &postpone_arg, "--status-json", &status_arg]);
    let mut first = spawn(&command);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&status).unwrap_or_default().contains("\"state\":\"postponed\"") {
        assert!(first.try_wait().unwrap().is_none(), "the run ended before its cut-over");
        assert!(Instant::now() < deadline, "the run never reached its cut-over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    std::fs::remove_file(&postpone).unwrap();

    // The same command without the postpone flag file, which a run creates when it is missing.
    let command = args(db, ALTER, &["--status-json", &status_arg]);
    let owned: Vec<String> = command.iter().map(|a| a.to_string()).collect();
    let resumed = tokio::task::spawn_blocking(move || server().alterego(&owned.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_success(&resumed);
    let log = stderr(&resumed);
    assert!(log.contains("resuming the interrupted run") && log.contains("cut-over done"), "{log}");
    assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);
}
