//! Replica lag throttles the copy: with the replica's SQL thread stopped, the heartbeat it has
//! applied falls behind, the copy pauses with a reason naming the replica, and it goes on once
//! the replica catches up. Replicas given on the command line and discovered ones alike, and
//! `max-lag-millis=N` changing the limit mid-run, and a SIGTERM while the swap waits for a
//! lagging replica.

mod common;

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{server, tables, TestServer};
use mysql_async::prelude::*;

const ROWS: u64 = 20_000;

/// The replica of the test server, shared by the tests here. They take turns with `TURN`: each
/// stops its SQL thread, and discovery must see this one replica only.
fn replica() -> &'static TestServer {
    static REPLICA: OnceLock<TestServer> = OnceLock::new();
    REPLICA.get_or_init(|| server().start_replica())
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn shadow_rows(conn: &mut mysql_async::Conn) -> Option<u64> {
    conn.query_first("SELECT COUNT(*) FROM _t_gho").await.ok().flatten()
}

/// Runs a migration that is held by a throttle file until the replica's SQL thread is stopped,
/// then checks that lag keeps the copy paused and that it completes once replication resumes.
async fn throttled_by_lag(db: &str, replica: &common::TestServer, replica_flags: &[String]) -> String {
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, ROWS))).await.unwrap();
    let hold = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{db}-hold-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    let mut args: Vec<String> = ["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--chunk-size", "100", "--max-lag-millis", "500", "--status-interval-millis", "200"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--throttle-flag-file".to_string(), hold.display().to_string()]);
    args.extend(replica_flags.iter().cloned());
    let mut child = srv.alterego_command(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tables(&mut conn).await.contains(&"_t_ghc".to_string()) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the migration never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    replica.sql(&common::flavor().stop_replica("SQL_THREAD"));
    // Let the lag pass --max-lag-millis before the throttle file stops holding the copy.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::remove_file(&hold).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let first = shadow_rows(&mut conn).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if child.try_wait().unwrap().is_some() {
        let output = child.wait_with_output().unwrap();
        panic!("the migration ended while the replica lagged:\n{}", common::stderr(&output));
    }
    assert_eq!(shadow_rows(&mut conn).await, first, "the copy went on while the replica lagged");
    replica.sql(&common::flavor().start_replica("SQL_THREAD"));
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_lag_throttles_the_copy() {
    let _turn = TURN.lock().await;
    let replica = replica();
    let address = format!("127.0.0.1:{}", replica.port);
    let stderr = throttled_by_lag("lag_given", replica, &["--throttle-control-replicas".into(), address.clone()]).await;
    assert!(stderr.contains(&format!("throttled: replica {address} lags")), "{stderr}");
    assert!(stderr.contains("throttle lifted"), "{stderr}");
    assert!(stderr.contains(", replica lag "), "no lag in the status lines: {stderr}");

    // The same replica found through SHOW SLAVE HOSTS (SHOW REPLICAS on MySQL).
    let stderr = throttled_by_lag("lag_discovered", replica, &[]).await;
    assert!(stderr.contains(&format!("watching lag on discovered replicas: {address}")), "{stderr}");
    assert!(stderr.contains(&format!("throttled: replica {address} lags")), "{stderr}");
}

/// Sends one command to the control socket and returns the answer.
async fn command(socket: &std::path::Path, cmd: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        stream.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.trim().to_string()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.unwrap_or_else(|_| panic!("no answer to `{cmd}` within 10 s"))
}

/// Asks the control socket for `status-json` until `done` holds for the answer, and returns it.
async fn wait_for_status(socket: &std::path::Path, child: &mut std::process::Child, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if !socket.exists() || child.try_wait().unwrap().is_some() {
            child.wait().unwrap();
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the migration ended before {what}:\n{stderr}");
        }
        let status: serde_json::Value = serde_json::from_str(&command(socket, "status-json").await).unwrap();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Restarts the replica's SQL thread when dropped, so a failed test leaves it replicating.
struct SqlThreadStopped<'a>(&'a TestServer);

impl SqlThreadStopped<'_> {
    fn stop(replica: &TestServer) -> SqlThreadStopped<'_> {
        replica.sql(&common::flavor().stop_replica("SQL_THREAD"));
        SqlThreadStopped(replica)
    }
}

impl Drop for SqlThreadStopped<'_> {
    fn drop(&mut self) {
        self.0.sql(&common::flavor().start_replica("SQL_THREAD"));
    }
}

/// `max-lag-millis=N` decides mid-run: a replica lagging over a second does not hold the copy
/// under a limit of 10 minutes, holds it once the limit is set to 500 ms, and lets it go again
/// when the limit is raised back, all while the replica's SQL thread stays stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lag_millis_changes_the_decision_mid_run() {
    let _turn = TURN.lock().await;
    let replica = replica();
    let address = format!("127.0.0.1:{}", replica.port);
    let srv = server();
    let db = "lag_live";
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, ROWS))).await.unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let hold = dir.join(format!("{db}-hold-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    let socket = dir.join(format!("{db}-{}.sock", std::process::id()));
    let args = [
        "--database",
        db,
        "--table",
        "t",
        "--alter",
        "ADD COLUMN b INT",
        "--execute",
        "--chunk-size",
        "10",
        "--threads",
        "1",
        "--max-lag-millis",
        "600000",
        "--throttle-control-replicas",
        &address,
        "--throttle-flag-file",
        hold.to_str().unwrap(),
        "--serve-socket-file",
        socket.to_str().unwrap(),
    ];
    let mut child = srv.alterego_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    // Stop the SQL thread once the replica has a heartbeat, so its lag can be read and grows.
    let mut on_replica = replica.conn(None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let heartbeat: Result<Option<String>, _> = on_replica.query_first(format!("SELECT value FROM {db}._t_ghc WHERE id = 1")).await;
        if matches!(heartbeat, Ok(Some(_))) {
            break;
        }
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "no heartbeat reached the replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = SqlThreadStopped::stop(replica);
    // A row locked near the end keeps the copy from finishing however fast it runs.
    let mut locker = srv.conn(Some(db)).await;
    locker.query_drop("START TRANSACTION").await.unwrap();
    locker.query_drop(format!("SELECT a FROM t WHERE id = {} FOR UPDATE", ROWS - 1000)).await.unwrap();
    std::fs::remove_file(&hold).unwrap();

    // Over a second of lag, under the 10-minute limit: not throttled.
    let status = wait_for_status(&socket, &mut child, "a lag of 1 s", |s| s["replica_lag_ms"].as_u64().is_some_and(|ms| ms >= 1000)).await;
    assert!(status["throttle"].is_null(), "throttled under a 10-minute limit: {status}");
    assert_eq!(status["state"], "copying", "{status}");

    // The limit lowered to 500 ms: the same lag now holds the copy, naming the replica.
    assert_eq!(command(&socket, "max-lag-millis=500").await, "max-lag-millis=500");
    let lags = format!("replica {address} lags ");
    let status = wait_for_status(&socket, &mut child, "a throttle for lag after max-lag-millis=500", |s| s["throttle"].as_str().is_some_and(|t| t.starts_with(&lags))).await;
    assert!(status["throttle"].as_str().unwrap().ends_with("(max 0.5s)"), "{status}");
    locker.query_drop("COMMIT").await.unwrap();
    // The chunks handed out before the throttle finish; no new one starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = wait_for_status(&socket, &mut child, "a status", |_| true).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = wait_for_status(&socket, &mut child, "a status", |_| true).await;
    assert_eq!(held["rows_copied"], later["rows_copied"], "the copy went on while the replica lagged over 500 ms: {later}");
    let copied = held["rows_copied"].as_u64().unwrap();
    assert!(copied < ROWS, "{held}");

    // Raised again, with the SQL thread still stopped: the copy goes on and completes.
    assert_eq!(command(&socket, "max-lag-millis=600000").await, "max-lag-millis=600000");
    wait_for_status(&socket, &mut child, "the copy going on after max-lag-millis=600000", |s| s["rows_copied"].as_u64().unwrap() > copied && s["throttle"].is_null()).await;
    drop(stopped);
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let lowered = stderr.find("command `max-lag-millis=500`").expect("the command logged");
    let throttled = stderr.find(&format!("throttled: {lags}")).expect("the lag throttle logged");
    assert!(lowered < throttled, "throttled for lag before max-lag-millis=500: {stderr}");
    assert!(stderr[throttled..].contains("throttle lifted"), "{stderr}");
}

/// The swap waits while a watched replica lags: with the copy and verification done and the
/// postponement lifted, a replica whose SQL thread is stopped holds the run in `waiting for
/// replicas` with nothing swapped; it swaps once replication resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_over_waits_for_lagging_replicas() {
    let _turn = TURN.lock().await;
    let replica = replica();
    let srv = server();
    let db = "lag_cutover";
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, 2000))).await.unwrap();
    let postpone = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{db}-postpone-{}", std::process::id()));
    std::fs::write(&postpone, "").unwrap();
    let address = format!("127.0.0.1:{}", replica.port);
    let args = ["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--max-lag-millis", "500"];
    let mut child = srv
        .alterego_command(&args)
        .args(["--throttle-control-replicas", &address, "--postpone-cut-over-flag-file", postpone.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await != Some(2000) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.sql(&common::flavor().stop_replica("SQL_THREAD"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::remove_file(&postpone).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still_running = child.try_wait().unwrap().is_none();
    let swapped = tables(&mut conn).await.contains(&"_t_del".to_string());
    replica.sql(&common::flavor().start_replica("SQL_THREAD"));
    assert!(still_running && !swapped, "the swap did not wait for the lagging replica");
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("phase: waiting for replicas"), "{stderr}");
    assert!(tables(&mut conn).await.contains(&"_t_del".to_string()));
}

/// A SIGTERM while the swap waits for a lagging replica (phase `waiting for replicas`): exit 4
/// within 5 s, the original table untouched, nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_replicas_cleans_up() {
    let _turn = TURN.lock().await;
    let (replica, db) = (replica(), "lag_sigterm");
    let mut conn = server().fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, ROWS))).await.unwrap();
    let before: Vec<mysql_async::Row> = conn.query("CHECKSUM TABLE t EXTENDED").await.unwrap();
    let path = |name: &str| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{db}-{name}-{}", std::process::id()));
    let (postpone, status) = (path("postpone"), path("status"));
    std::fs::write(&postpone, "").unwrap();
    let _ = std::fs::remove_file(&status);
    let (address, postpone_arg, status_arg) = (format!("127.0.0.1:{}", replica.port), postpone.display().to_string(), status.display().to_string());
    let args = [
        "--database",
        db,
        "--table",
        "t",
        "--alter",
        "ADD COLUMN b INT",
        "--execute",
        "--max-lag-millis",
        "500",
        "--throttle-control-replicas",
        &address,
        "--postpone-cut-over-flag-file",
        &postpone_arg,
        "--status-json",
        &status_arg,
    ];
    let mut child = server().alterego_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let wait_for_state = async |child: &mut std::process::Child, state: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&status).unwrap_or_default().contains(&format!("\"state\":\"{state}\"")) {
            assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the run never reached {state}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for_state(&mut child, "postponed").await;
    replica.sql(&common::flavor().stop_replica("SQL_THREAD"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::remove_file(&postpone).unwrap();
    wait_for_state(&mut child, "waiting for replicas").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() && sent.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.sql(&common::flavor().start_replica("SQL_THREAD"));
    assert!(child.try_wait().unwrap().is_some(), "still running 5 s after the SIGTERM");
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    let after: Vec<mysql_async::Row> = conn.query("CHECKSUM TABLE t EXTENDED").await.unwrap();
    assert_eq!(after.into_iter().map(mysql_async::Row::unwrap).collect::<Vec<_>>(), before.into_iter().map(mysql_async::Row::unwrap).collect::<Vec<_>>());
}

/// Sets the replica's `slave_parallel_threads`, and back to 0 when dropped.
struct ParallelReplica<'a>(&'a TestServer);

impl ParallelReplica<'_> {
    fn set(replica: &TestServer, threads: u32) -> ParallelReplica<'_> {
        replica.sql(&format!("STOP SLAVE; SET GLOBAL slave_parallel_threads = {threads}; START SLAVE"));
        ParallelReplica(replica)
    }
}

impl Drop for ParallelReplica<'_> {
    fn drop(&mut self) {
        self.0.sql("STOP SLAVE; SET GLOBAL slave_parallel_threads = 0; START SLAVE");
    }
}

/// Runs `ADD COLUMN` on a table with a plain secondary index under a lag limit shorter than the
/// index build is estimated to take; returns the log and the primary's binlog events of the run.
async fn migrate_with_an_index(db: &str, rows: u64) -> (String, String) {
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT, KEY ka (a)) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq % 1000 FROM {}", common::seq(1, rows))).await.unwrap();
    conn.query_drop("ANALYZE TABLE t").await.unwrap();
    let (file, pos): (String, u64) = conn.query_first(common::flavor().binlog_status()).await.unwrap().map(|row: mysql_async::Row| (row.get(0).unwrap(), row.get(1).unwrap())).unwrap();
    let args = ["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--max-lag-millis", "300"];
    let output = srv.alterego_command(&args).output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let ddl: (String, String) = conn.query_first("SHOW CREATE TABLE t").await.unwrap().unwrap();
    assert!(ddl.1.contains("KEY `ka` (`a`)") && ddl.1.contains("`b` int"), "{}", ddl.1);
    let events: Vec<mysql_async::Row> = conn.query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos}")).await.unwrap();
    let events = events.into_iter().map(|e| e.get::<String, _>("Info").unwrap_or_default()).collect::<Vec<_>>().join("\n");
    (stderr, events)
}

/// A replica that replays DDL one statement at a time would stand still for the whole deferred
/// index build, past `--max-lag-millis` on this table: the index is kept during the copy. With
/// `slave_parallel_threads` the build is logged in two phases, which the replica runs beside
/// its replication, and it is deferred (MariaDB only: MySQL logs no ALTER in two phases).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_builds_are_deferred_only_where_replicas_keep_replicating() {
    let _turn = TURN.lock().await;
    let replica = replica();
    let address = format!("127.0.0.1:{}", replica.port);
    // 600,000 rows: a build estimated at 0.6 s, over the 0.3 s limit.
    let (stderr, events) = migrate_with_an_index("index_serial", 600_000).await;
    assert!(stderr.contains(&format!("secondary indexes ka are kept during the copy: {address} would replay each build")), "{stderr}");
    assert!(!stderr.contains("building secondary index"), "{stderr}");
    assert!(!events.contains("START ALTER"), "{events}");
    if !common::mariadb_only("binlog_alter_two_phase and slave_parallel_threads (the deferred half)") {
        return;
    }

    let _parallel = ParallelReplica::set(replica, 2);
    let (stderr, events) = migrate_with_an_index("index_parallel", 600_000).await;
    assert!(stderr.contains("secondary indexes ka are built after the copy") && stderr.contains("building secondary index ka"), "{stderr}");
    let start_alter = events.find("START ALTER").unwrap_or_else(|| panic!("no two-phase ALTER in the binlog:\n{events}"));
    assert!(events[start_alter..].contains("ALTER TABLE `index_parallel`.`_t_gho` ADD KEY `ka`"), "{events}");
    // The replica has the built index.
    replica.wait_for_primary(server());
    assert!(replica.sql("SHOW CREATE TABLE index_parallel.t").contains("KEY `ka` (`a`)"));
}

/// A replica slow to replay the copy's chunks holds their size to what it replays in half of
/// `--max-lag-millis`: with its SQL thread stopped for 2 s, the chunks committed before the lag
/// throttle held the copy show up there 2 s late, and the copy goes on with smaller chunks.
///
/// Whether chunks are in flight when the SQL thread stops depends on timing: the copy may be
/// paused by the lag throttle at that moment (its limit is a quarter of the 500 ms here), and
/// then no chunk arrives late. So the scenario is run up to three times; every run must migrate
/// correctly, and at least one must hold the chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_holds_the_chunk_size() {
    let _turn = TURN.lock().await;
    for attempt in 1..=3 {
        let stderr = replica_stopped_mid_copy(&format!("lag_chunks{attempt}")).await;
        if stderr.contains("chunks held to ") && stderr.contains("rows: the slowest replica replays about") {
            return;
        }
        eprintln!("attempt {attempt}: no chunk arrived late enough to hold the chunk size; trying again");
    }
    panic!("three runs with the replica's SQL thread stopped mid-copy never held the chunk size");
}

/// Migrates a 300,000-row table, stopping the replica's SQL thread for 2 s once the copy runs
/// and a heartbeat has reached the replica; checks the result and returns the run's log.
async fn replica_stopped_mid_copy(db: &str) -> String {
    let replica = replica();
    let srv = server();
    let rows: u64 = 300_000;
    let mut conn = common::small_table(db, rows as u32).await;
    let args = ["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--max-lag-millis", "500", "--chunk-size", "2000", "--chunk-time", "0.5"];
    let child = srv.alterego_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Stop the replica once it has applied a heartbeat: its lag must stay readable (and
    // growing) while it is stopped, so the chunks committed meanwhile are timed.
    let heartbeat_applied = || {
        replica.sql(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '_t_ghc'")) == "1"
            && replica.sql(&format!("SELECT COUNT(*) FROM {db}._t_ghc WHERE id = 1")) == "1"
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await.unwrap_or(0) == 0 || !heartbeat_applied() {
        assert!(Instant::now() < deadline, "the copy never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(shadow_rows(&mut conn).await.unwrap_or(0) < rows, "the copy ended before the replica was stopped");
    replica.sql(&common::flavor().stop_replica("SQL_THREAD"));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    replica.sql(&common::flavor().start_replica("SQL_THREAD"));
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let (count, sum): (u64, u64) = conn.query_first("SELECT COUNT(*), SUM(a) FROM t").await.unwrap().unwrap();
    assert_eq!((count, sum), (rows, rows * (rows + 1) / 2));
    stderr
}
