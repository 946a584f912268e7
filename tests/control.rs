//! Operator control against a real server: the throttle flag file and --max-load pause the
//! copy, --critical-load and the panic flag file abort with exit 4 leaving nothing behind, and
//! the postpone flag file holds the swap while the shadow stays current. Live commands, on the
//! Unix socket and on the loopback TCP port, change what the copy does mid-run; hooks run at
//! their stages with their environment.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{server, tables};
use mysql_async::prelude::*;
use mysql_async::Conn;

const ROWS: u64 = 20_000;

async fn setup(db: &str) -> Conn {
    let mut conn = server().fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, ROWS))).await.unwrap();
    conn
}

fn start(db: &str, extra: &[&str]) -> Child {
    let mut args = vec!["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--chunk-size", "100"];
    args.extend_from_slice(extra);
    server().alterego_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn flag(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

async fn shadow_rows(conn: &mut Conn) -> Option<u64> {
    conn.query_first("SELECT COUNT(*) FROM _t_gho").await.ok().flatten()
}

/// Waits until the changelog exists: the pipeline is running.
async fn wait_for_pipeline(conn: &mut Conn, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tables(conn).await.contains(&"_t_ghc".to_string()) {
        assert!(child.try_wait().unwrap().is_none(), "the migration ended early");
        assert!(Instant::now() < deadline, "the migration never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the copy makes no progress for a while and the run is still going.
async fn assert_copy_paused(conn: &mut Conn, child: &mut Child) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = shadow_rows(conn).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(shadow_rows(conn).await, first, "the copy went on while throttled");
    assert!(first.unwrap_or(0) < ROWS);
    assert!(child.try_wait().unwrap().is_none());
}

fn finish(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().unwrap();
    (output.status.code(), common::stderr(&output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_flag_file_pauses_the_copy() {
    flag_file_pauses_the_copy("throttle_file", "--throttle-flag-file").await;
}

/// Runs with `flag` naming a flag file that exists: the copy is paused until it is removed,
/// then the run completes, having logged the throttle and its end.
async fn flag_file_pauses_the_copy(db: &str, flag: &str) {
    let mut conn = setup(db).await;
    let file = existing_flag(db);
    let mut child = start(db, &[flag, file.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    assert_copy_paused(&mut conn, &mut child).await;
    std::fs::remove_file(&file).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("throttled: the throttle flag file {} exists", file.display())) && stderr.contains("throttle lifted"), "{stderr}");
}

/// `--throttle-query` (gh-ost's): while the query returns a number above zero the copy pauses;
/// once it returns 0 the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_query_pauses_the_copy() {
    let mut conn = setup("throttle_query").await;
    conn.query_drop("CREATE TABLE throttle_switch (v INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop("INSERT INTO throttle_switch VALUES (1)").await.unwrap();
    let mut child = start("throttle_query", &["--throttle-query", "SELECT v FROM throttle_query.throttle_switch"]);
    wait_for_pipeline(&mut conn, &mut child).await;
    assert_copy_paused(&mut conn, &mut child).await;
    conn.query_drop("UPDATE throttle_switch SET v = 0").await.unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("throttled: throttle-query returned 1") && stderr.contains("throttle lifted"), "{stderr}");
}

/// gh-ost's `--throttle-additional-flag-file` (by default `/tmp/gh-ost.throttle`, shared by
/// every run) pauses the copy like the run's own throttle flag file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_additional_throttle_flag_file_pauses_the_copy() {
    flag_file_pauses_the_copy("throttle_shared", "-throttle-additional-flag-file").await;
}

/// Chunks handed out before a throttle began wait with it: only those already running finish.
/// The copy's inserts are held behind a locking read of the shadow while the throttle starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_lets_only_the_running_chunks_finish() {
    const CHUNK: u64 = 100;
    const THREADS: u64 = 2;
    let mut conn = setup("throttle_running").await;
    let file = flag("throttle-running");
    let mut child = start("throttle_running", &["--throttle-flag-file", file.to_str().unwrap(), "--chunk-time", "0", "--threads", &THREADS.to_string()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    while shadow_rows(&mut conn).await.unwrap_or(0) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the migration ended early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut holder = server().conn(Some("throttle_running")).await;
    holder.query_drop("BEGIN").await.unwrap();
    let held: u64 = holder.query_first("SELECT COUNT(*) FROM _t_gho FOR UPDATE").await.unwrap().unwrap();
    assert!(held < ROWS, "the copy ended before the shadow was locked");
    std::fs::write(&file, "").unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    holder.query_drop("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = shadow_rows(&mut conn).await.unwrap();
    assert!(after <= held + THREADS * CHUNK, "{} rows copied while throttled; at most {} chunks of {CHUNK} were running", after - held, THREADS);
    std::fs::remove_file(&file).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    let (count, sum): (u64, u64) = conn.query_first("SELECT COUNT(*), SUM(a) FROM t").await.unwrap().unwrap();
    assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2));
}

/// A throttle that begins while the last chunk runs does not hold the end of the copy: with no
/// chunk left to start, the run goes on to the verification and the swap, which do not obey it.
/// The on-before-row-copy hook holds the copy until the shadow is locked; the single chunk then
/// waits on that lock while the throttle begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_after_the_last_chunk_started_does_not_hold_the_run() {
    let mut conn = setup("throttle_last").await;
    let file = flag("throttle-last");
    let (dir, hooked) = held_before_row_copy("throttle_last");
    let args = [
        "--database",
        "throttle_last",
        "--table",
        "t",
        "--alter",
        "ADD COLUMN b INT",
        "--execute",
        "--chunk-size",
        "1000000",
        "--threads",
        "2",
        "--throttle-flag-file",
        file.to_str().unwrap(),
        "--hooks-path",
        dir.to_str().unwrap(),
    ];
    let mut child = server().alterego_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_hook_to_hold(&hooked, &mut child).await;
    let mut holder = server().conn(Some("throttle_last")).await;
    holder.query_drop("BEGIN").await.unwrap();
    let held: u64 = holder.query_first("SELECT COUNT(*) FROM _t_gho FOR UPDATE").await.unwrap().unwrap();
    assert_eq!(held, 0);
    release_hook(&hooked);
    let chunk_waiting = format!("SELECT COUNT(*) FROM {} WHERE INFO LIKE 'INSERT INTO `throttle\\_last`.`\\_t\\_gho`%'", common::processlist());
    let deadline = Instant::now() + Duration::from_secs(30);
    while conn.query_first::<u64, _>(&chunk_waiting).await.unwrap() != Some(1) {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            holder.query_drop("ROLLBACK").await.unwrap();
            panic!("the chunk never started:\n{}", finish(child).1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(&file, "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.query_drop("COMMIT").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            std::fs::remove_file(&file).unwrap();
            let (_, stderr) = finish(child);
            panic!("the run waited for the throttle with no chunk left to copy:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(&file).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("throttled: the throttle flag file"), "{stderr}");
    let (count, sum): (u64, u64) = conn.query_first("SELECT COUNT(*), SUM(a) FROM t").await.unwrap().unwrap();
    assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_load_pauses_the_copy() {
    let mut conn = setup("max_load").await;
    // Our own status query is always running, so this limit always holds.
    let mut child = start("max_load", &["--max-load", "Threads_running=1"]);
    wait_for_pipeline(&mut conn, &mut child).await;
    assert_copy_paused(&mut conn, &mut child).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("throttled: max-load: Threads_running="), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_load_aborts_after_a_second_look() {
    let mut conn = setup("critical_load").await;
    let (code, stderr) = finish(start("critical_load", &["--critical-load", "Threads_running=1", "--critical-load-interval-millis", "200"]));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("aborted: critical load: Threads_running=") && !stderr.contains("aborted: aborted"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_flag_file_aborts() {
    let mut conn = setup("panic_file").await;
    let file = flag("panic");
    let throttle = existing_flag("panic-hold");
    let mut child = start("panic_file", &["--panic-flag-file", file.to_str().unwrap(), "--throttle-flag-file", throttle.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    std::fs::write(&file, "").unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("panic flag file"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postponed_cut_over_waits_with_the_shadow_current() {
    let mut conn = setup("postpone").await;
    let file = existing_flag("postpone");
    let mut child = start("postpone", &["--postpone-cut-over-flag-file", file.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await != Some(ROWS) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Postponed: writes keep reaching the shadow, and no swap happens.
    conn.query_drop("INSERT INTO t VALUES (900001, 1), (900002, 2)").await.unwrap();
    conn.query_drop("DELETE FROM t WHERE id = 5").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(shadow_rows(&mut conn).await, Some(ROWS + 1), "the applier did not keep the shadow current");
    assert!(!tables(&mut conn).await.contains(&"_t_del".to_string()), "swapped while postponed");
    assert!(child.try_wait().unwrap().is_none());
    std::fs::remove_file(&file).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("cut-over postponed"), "{stderr}");
    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t WHERE b IS NULL").await.unwrap();
    assert_eq!(n, Some(ROWS + 1));
}

/// The least privileges of docs/security.md are enough to migrate; without the privilege that
/// replica discovery needs, the run says lag is not watched instead of failing. On MySQL the
/// minimal grant's REPLICATION SLAVE is what discovery needs, so there is nothing to warn about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_grant_migrates_and_warns_about_discovery() {
    let mut conn = setup("minimal_grant").await;
    for sql in [
        "DROP USER IF EXISTS 'minimal'@'%'",
        "CREATE USER 'minimal'@'%' IDENTIFIED BY 'minimal-pw'",
        &format!("GRANT REPLICATION SLAVE, {} ON *.* TO 'minimal'@'%'", common::flavor().binlog_monitor_privilege()),
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, LOCK TABLES ON minimal_grant.* TO 'minimal'@'%'",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let output = server()
        .alterego_command(&["--user", "minimal", "--database", "minimal_grant", "--table", "t", "--alter", "ADD COLUMN b INT", "--execute"])
        .env("ALTEREGO_PASSWORD", "minimal-pw")
        .output()
        .unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    if common::flavor().is_mysql() {
        assert!(!stderr.contains("cannot discover replicas"), "{stderr}");
    } else {
        assert!(stderr.contains("cannot discover replicas") && stderr.contains("REPLICATION MASTER ADMIN"), "{stderr}");
    }
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".to_string()]);
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_every_state_change() {
    let mut conn = setup("status_json").await;
    let hold = existing_flag("status-hold");
    let status = flag("status.jsonl");
    let mut child = start("status_json", &["--status-json", status.to_str().unwrap(), "--status-interval-millis", "100", "--throttle-flag-file", hold.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_file(&hold).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    let lines = json_lines(&std::fs::read_to_string(&status).unwrap());
    for line in &lines {
        for field in ["time", "event", "state", "rows_copied", "rows_estimated", "changes_applied", "backlog", "replica_lag_ms", "throttle"] {
            assert!(line.get(field).is_some(), "no `{field}` in {line}");
        }
    }
    let states: Vec<&str> = lines.iter().filter(|l| l["event"] == "state").map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["inspecting", "copying", "catching up", "verifying", "cutting over", "done"]);
    let throttled = lines.iter().find(|l| l["event"] == "throttled").expect("a throttled line");
    assert!(throttled["throttle"].as_str().unwrap().contains("throttle flag file"));
    assert!(lines.iter().any(|l| l["event"] == "unthrottled" && l["throttle"].is_null()));
    assert!(lines.iter().any(|l| l["event"] == "status"), "no interval status line");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["rows_copied"], ROWS);
    assert_eq!(last["verified_rows"], ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_on_stdout_is_pure_json_and_reports_refusals() {
    setup("status_stdout").await;
    let output = server().alterego(&["--database", "status_stdout", "--table", "t", "--alter", "RENAME TO elsewhere", "--execute", "--status-json", "-"]);
    assert_eq!(output.status.code(), Some(3));
    let lines = json_lines(&String::from_utf8_lossy(&output.stdout));
    let last = lines.last().expect("a final status line");
    assert_eq!(last["event"], "failed");
    assert_eq!(last["exit_code"], 3);
    assert!(last["error"].as_str().unwrap().contains("renames the table"));
}

/// Writes a hook script that logs its name and environment to `log`, and exits with `code`.
fn hook(dir: &std::path::Path, name: &str, log: &std::path::Path, code: i32) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"{name} db=$GH_OST_DATABASE_NAME table=$GH_OST_TABLE_NAME ghost=$GH_OST_GHOST_TABLE_NAME copied=$GH_OST_COPIED_ROWS pw=${{ALTEREGO_PASSWORD:-none}} env=$(env | grep -c {})\" >> {}\nexit {code}\n",
            common::PASSWORD,
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `-password PW` on a gh-ost command line: the run works, warns, and its own command line (what
/// `ps` shows, read here by a hook from `/proc/$PPID/cmdline`) no longer holds the password; no
/// hook sees it in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_on_the_command_line_is_hidden_from_ps_and_hooks() {
    let _conn = setup("pwcli").await;
    let (dir, log) = empty_hooks_dir("pwcli");
    let script = dir.join("gh-ost-on-before-row-copy");
    let body = format!(r#"echo "cmdline=$(tr '\0' ' ' < /proc/$PPID/cmdline) env=$(env | grep -c {})" >> {}"#, common::PASSWORD, log.display());
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args = ["-database", "pwcli", "-table", "t", "-alter", "ADD COLUMN b INT", "-execute", "-password", common::PASSWORD, "--hooks-path", dir.to_str().unwrap()];
    let output = server().alterego_command(&args).env_remove("ALTEREGO_PASSWORD").output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("a password on the command line can be read by other users"), "{stderr}");
    let line = std::fs::read_to_string(&log).unwrap();
    assert!(line.contains("-password xxx") && !line.contains(common::PASSWORD), "{line}");
    assert!(line.trim_end().ends_with("env=0"), "{line}");
}

/// gh-ost flags a cron line may carry: the hooks hints reach every hook (GH_OST_HOOKS_HINT,
/// _OWNER, _TOKEN); `--exact-rowcount` counts the rows; `--timestamp-old-table` names the old
/// table by the time; the cut-over, backoff, batch and checkpoint flags are taken, and the run
/// migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gh_ost_hints_and_accepted_flags() {
    let mut conn = setup("hints").await;
    let (dir, log) = empty_hooks_dir("hints");
    let script = dir.join("gh-ost-on-before-row-copy");
    let body = format!(r#"echo "hint=$GH_OST_HOOKS_HINT owner=$GH_OST_HOOKS_HINT_OWNER token=$GH_OST_HOOKS_HINT_TOKEN" >> {}"#, log.display());
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = [
        "--hooks-path",
        dir.to_str().unwrap(),
        "-hooks-hint",
        "release 42",
        "-hooks-hint-owner=dba",
        "-hooks-hint-token",
        "t0k",
        "-exact-rowcount",
        "-concurrent-rowcount=false",
        "-cut-over=default",
        "-cut-over-exponential-backoff",
        "-exponential-backoff-max-interval=5",
        "-dml-batch-size=50",
        "-checkpoint",
        "-checkpoint-seconds=30",
        "-timestamp-old-table",
        "-aliyun-rds",
        "-azure",
        "-gcp",
        "-tungsten",
    ];
    let (code, stderr) = finish(start("hints", &extra));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("counted {ROWS} rows in `hints`.`t` (--exact-rowcount)")), "{stderr}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "hint=release 42 owner=dba token=t0k");
    let n: Option<u64> = conn.query_first("SELECT COUNT(b IS NULL) FROM t").await.unwrap();
    assert_eq!(n, Some(ROWS));
    // --timestamp-old-table: `_t_<YYYYMMDDhhmmss>_del`.
    let names = tables(&mut conn).await;
    assert!(names.iter().any(|n| n.len() == "_t__del".len() + 14 && n.starts_with("_t_2") && n.ends_with("_del")), "{names:?}");
}

/// A --serve-socket-file that another process still answers on is refused (exit 2, nothing
/// created); gh-ost's --initially-drop-socket-file takes it over; one left by a process that is
/// gone is replaced. --quiet logs errors only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_socket_file_is_not_taken_over_unless_asked() {
    let mut conn = setup("socket_taken").await;
    let path = flag("socket-taken.sock");
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let args = ["--serve-socket-file", path.to_str().unwrap()];
    let (code, stderr) = finish(start("socket_taken", &args));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is the live socket of another running process") && stderr.contains("--initially-drop-socket-file"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
    let (code, stderr) = finish(start("socket_taken", &[args[0], args[1], "-initially-drop-socket-file", "-quiet"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(" INFO "), "--quiet logged more than errors:\n{stderr}");
    drop(live);
    // The socket file of a process that is gone (here: this listener, dropped) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(flag("socket-stale.sock")).unwrap();
    let stale_path = stale.local_addr().unwrap().as_pathname().unwrap().to_path_buf();
    drop(stale);
    setup("socket_stale").await;
    let (code, stderr) = finish(start("socket_stale", &["--serve-socket-file", stale_path.to_str().unwrap()]));
    assert_eq!(code, Some(0), "{stderr}");
}

/// A flag file that exists.
fn existing_flag(name: &str) -> PathBuf {
    let path = flag(name);
    std::fs::write(&path, "").unwrap();
    path
}

/// A fresh, empty hooks directory `<name>-dir` and the path of the log its hooks write.
fn empty_hooks_dir(name: &str) -> (PathBuf, PathBuf) {
    let dir = flag(&format!("{name}-dir"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir, flag(&format!("{name}.log")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_at_their_stages_without_the_password() {
    let conn = setup("hooks").await;
    let (dir, log) = empty_hooks_dir("hooks");
    // on-begin-postponed must not run: nothing postpones this cut-over.
    for name in [
        "gh-ost-on-startup",
        "gh-ost-on-validated",
        "gh-ost-on-before-row-copy",
        "alterego-on-row-copy-complete",
        "gh-ost-on-begin-postponed",
        "gh-ost-on-before-cut-over",
        "gh-ost-on-success",
        "gh-ost-on-failure",
    ] {
        hook(&dir, name, &log, 0);
    }
    let (code, stderr) = finish(start("hooks", &["--hooks-path", dir.to_str().unwrap()]));
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    let order: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(order, vec!["gh-ost-on-startup", "gh-ost-on-validated", "gh-ost-on-before-row-copy", "alterego-on-row-copy-complete", "gh-ost-on-before-cut-over", "gh-ost-on-success"]);
    assert!(lines[0].contains("db=hooks table=t ghost=_t_gho"), "{}", lines[0]);
    assert!(lines[3].contains(&format!("copied={ROWS}")), "{}", lines[3]);
    for line in &lines {
        assert!(line.contains("pw=none env=0"), "the password reached a hook: {line}");
    }

    // A failing on-before-cut-over prevents the swap.
    let mut conn2 = setup("hooks_fail").await;
    let _ = std::fs::remove_file(&log);
    hook(&dir, "gh-ost-on-before-cut-over", &log, 3);
    let (code, stderr) = finish(start("hooks_fail", &["--hooks-path", dir.to_str().unwrap()]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("on-before-cut-over hook") && stderr.contains("exit status: 3"), "{stderr}");
    assert_eq!(tables(&mut conn2).await, vec!["t".to_string()]);
    assert!(std::fs::read_to_string(&log).unwrap().lines().last().unwrap().starts_with("gh-ost-on-failure"));
    drop(conn);
}

/// A first run inserts each chunk without the upsert clause; a row already in the shadow (as the
/// applier leaves one it replayed after the chunk was handed out) makes the chunk upsert
/// instead, and the copied image replaces the row. The row is put there while the
/// on-before-row-copy hook holds the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_already_in_the_shadow_is_replaced_by_its_chunk() {
    let mut conn = setup("chunk_upsert").await;
    let (dir, hooked) = held_before_row_copy("chunk_upsert");
    let mut child = start("chunk_upsert", &["--hooks-path", dir.to_str().unwrap()]);
    wait_for_hook_to_hold(&hooked, &mut child).await;
    conn.query_drop("INSERT INTO _t_gho (id, a) VALUES (5, -5)").await.unwrap();
    release_hook(&hooked);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("collides on a unique key"), "the row was taken for a collision: {stderr}");
    let a: i64 = conn.query_first("SELECT a FROM t WHERE id = 5").await.unwrap().unwrap();
    assert_eq!(a, 5, "the copied image did not replace the row in the shadow");
    let (count, sum): (u64, u64) = conn.query_first("SELECT COUNT(*), SUM(a) FROM t").await.unwrap().unwrap();
    assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2));
}

/// A hooks directory whose on-before-row-copy hook touches `<name>.started` and waits for
/// `<name>.release`; returns the directory and the started file.
fn held_before_row_copy(name: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let (dir, started) = empty_hooks_dir(name);
    let _ = std::fs::remove_file(&started);
    let release = started.with_extension("release");
    let _ = std::fs::remove_file(&release);
    let hook = dir.join("gh-ost-on-before-row-copy");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\nwhile [ ! -f {} ]; do sleep 0.02; done\n", started.display(), release.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, started)
}

/// Waits until the hook of [`held_before_row_copy`] holds the copy.
async fn wait_for_hook_to_hold(started: &std::path::Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy never got to its hook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets the hook of [`held_before_row_copy`] end.
fn release_hook(started: &std::path::Path) {
    std::fs::write(started.with_extension("release"), "").unwrap();
}

/// Writes a hook that logs, `|`-separated, its name and the progress it is told: the status
/// text, the throttle reason, rows copied and estimated, and the database.
fn progress_hook(dir: &std::path::Path, name: &str, log: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nprintf '%s|%s|%s|%s|%s|%s\\n' {name} \"$GH_OST_STATUS\" \"$GH_OST_THROTTLE_REASON\" \"$GH_OST_COPIED_ROWS\" \"$GH_OST_ESTIMATED_ROWS\" \"$GH_OST_DATABASE_NAME\" >> {}\n",
        log.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The hook log's lines, split into their fields.
fn hook_lines(log: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().map(|l| l.split('|').map(String::from).collect()).collect()
}

/// Waits until a line of the hook log satisfies `wanted`, and returns it.
async fn wait_for_hook(log: &std::path::Path, child: &mut Child, what: &str, wanted: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = hook_lines(log).into_iter().find(|l| wanted(l)) {
            return line;
        }
        assert!(child.try_wait().unwrap().is_none(), "the migration ended before {what} ran: {:?}", hook_lines(log));
        assert!(Instant::now() < deadline, "{what} did not run: {:?}", hook_lines(log));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// on-status runs at every status interval with GH_OST_STATUS and the throttle reason, in the
/// copy and while postponed; on-begin-postponed runs once, when the cut-over is postponed with
/// the copy done and nothing swapped, before on-before-cut-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_begin_postponed_hooks_run_at_their_stages() {
    let mut conn = setup("hooks_status").await;
    let (dir, log) = empty_hooks_dir("status-hooks");
    for name in ["gh-ost-on-status", "gh-ost-on-begin-postponed", "gh-ost-on-before-cut-over"] {
        progress_hook(&dir, name, &log);
    }
    let hold = existing_flag("status-hooks-hold");
    let postpone = existing_flag("status-hooks-postpone");
    let mut child = start(
        "hooks_status",
        &["--hooks-path", dir.to_str().unwrap(), "--status-interval-millis", "100", "--throttle-flag-file", hold.to_str().unwrap(), "--postpone-cut-over-flag-file", postpone.to_str().unwrap()],
    );
    wait_for_pipeline(&mut conn, &mut child).await;
    let throttled = format!("the throttle flag file {} exists", hold.display());
    let copying = format!("copying (throttled: {throttled}); applied ");
    let line = wait_for_hook(&log, &mut child, "an on-status hook in the throttled copy", |l| l[0] == "gh-ost-on-status" && l[1].starts_with(&copying)).await;
    assert_eq!(line[2], throttled, "GH_OST_THROTTLE_REASON: {line:?}");
    assert!(line[4].parse::<u64>().unwrap() > 0 && line[5] == "hooks_status", "{line:?}");
    assert!(!hook_lines(&log).iter().any(|l| l[0] != "gh-ost-on-status"), "another hook ran during the copy: {:?}", hook_lines(&log));

    std::fs::remove_file(&hold).unwrap();
    let line = wait_for_hook(&log, &mut child, "an on-begin-postponed hook", |l| l[0] == "gh-ost-on-begin-postponed").await;
    assert_eq!(line[3], ROWS.to_string(), "{line:?}");
    assert_eq!(shadow_rows(&mut conn).await, Some(ROWS));
    assert!(!tables(&mut conn).await.contains(&"_t_del".to_string()), "swapped while postponed");
    let line = wait_for_hook(&log, &mut child, "an on-status hook while postponed", |l| l[0] == "gh-ost-on-status" && l[1].starts_with("postponed;")).await;
    assert_eq!(line[3], ROWS.to_string(), "{line:?}");

    std::fs::remove_file(&postpone).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    let names: Vec<String> = hook_lines(&log).into_iter().map(|l| l[0].clone()).filter(|n| n != "gh-ost-on-status").collect();
    assert_eq!(names, vec!["gh-ost-on-begin-postponed", "gh-ost-on-before-cut-over"]);
}

/// gh-ost's `--hooks-status-interval`: the on-status hook runs at its own interval, in
/// seconds, while the status lines keep theirs (`--status-interval-millis`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_status_hook_keeps_its_own_interval() {
    let mut conn = setup("hooks_interval").await;
    let (dir, log) = empty_hooks_dir("hooks-interval");
    progress_hook(&dir, "gh-ost-on-status", &log);
    let hold = existing_flag("hooks-interval-hold");
    let status = flag("hooks-interval.jsonl");
    let mut child = start(
        "hooks_interval",
        &[
            "--hooks-path",
            dir.to_str().unwrap(),
            "--status-interval-millis",
            "100",
            "--hooks-status-interval",
            "2",
            "--status-json",
            status.to_str().unwrap(),
            "--throttle-flag-file",
            hold.to_str().unwrap(),
        ],
    );
    wait_for_pipeline(&mut conn, &mut child).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let hooks_ran = hook_lines(&log).len();
    let status_lines = json_lines(&std::fs::read_to_string(&status).unwrap()).iter().filter(|l| l["event"] == "status").count();
    std::fs::remove_file(&hold).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!((1..=2).contains(&hooks_ran), "on-status ran {hooks_ran} times in about 3 s at a 2 s interval");
    assert!(status_lines >= 10, "only {status_lines} status lines in about 3 s at a 100 ms interval");
}

/// A local HTTP endpoint for `--throttle-http` that answers every request with `status`.
fn http_endpoint(status: u16) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = std::io::Write::write_all(&mut stream, format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
        }
    });
    port
}

/// gh-ost's `--throttle-http`: while the URL answers 503 the copy pauses, the reason naming
/// the URL without its password or query; pointed live at a port nothing listens on, with
/// `--ignore-http-errors`, the failing requests do not throttle, and the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_http_pauses_the_copy_while_the_url_says_so() {
    let mut conn = setup("throttle_http").await;
    let socket = flag("throttle-http.sock");
    let port = http_endpoint(503);
    let url = format!("http://probe:s3cret@127.0.0.1:{port}/health?token=t0ken");
    let mut child = start("throttle_http", &["--serve-socket-file", socket.to_str().unwrap(), "--throttle-http", &url, "--throttle-http-interval-millis", "50", "--ignore-http-errors"]);
    wait_for_pipeline(&mut conn, &mut child).await;
    let reason = format!("throttle-http http://127.0.0.1:{port}/health answered 503");
    wait_for_status("the 503 answer", || command(&socket, "status-json"), |s| s["throttle"] == reason.as_str()).await;
    assert_copy_paused(&mut conn, &mut child).await;
    assert_eq!(command(&socket, "throttle-http=?").await, format!("http://127.0.0.1:{port}/health"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert_eq!(command(&socket, &format!("throttle-http=http://127.0.0.1:{closed}/")).await, format!("throttle-http=http://127.0.0.1:{closed}/"));
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("throttled: {reason}")), "{stderr}");
    assert!(!stderr.contains("s3cret") && !stderr.contains("t0ken"), "the URL's secrets reached the log: {stderr}");
    let (count, sum): (u64, u64) = conn.query_first("SELECT COUNT(*), SUM(a) FROM t").await.unwrap().unwrap();
    assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2));
}

/// gh-ost's `--statsd-addr` and `--statsd-tags`: the run's gauges reach a StatsD listener
/// under gh-ost's names with the tags given: the throttle while the flag file holds the copy,
/// and, at the end, every row copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_gauges_carry_gh_osts_names_and_the_tags() {
    let mut conn = setup("statsd").await;
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let collecting = received.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let collector = std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(n) = listener.recv(&mut buffer) {
                collecting.lock().unwrap().extend(String::from_utf8_lossy(&buffer[..n]).lines().map(String::from));
            }
        }
    });
    let hold = existing_flag("statsd-hold");
    let mut child =
        start("statsd", &["--statsd-addr", &addr, "--statsd-tags", "env:test", "--statsd-tags=service:orders", "--runtime-metrics-interval=5", "--throttle-flag-file", hold.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::remove_file(&hold).unwrap();
    let (code, stderr) = finish(child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    collector.join().unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let lines = received.lock().unwrap().clone();
    let tags = "|#env:test,service:orders";
    assert!(lines.iter().any(|l| l == &format!("gh_ost.throttle.active:1|g{tags}")), "{lines:?}");
    assert!(lines.iter().any(|l| l == &format!("gh_ost.row_copy.rows_copied:{ROWS}|g{tags}")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("gh_ost.dml.events_applied:") && l.ends_with(tags)), "{lines:?}");
}

/// Sends one command to the control socket and returns the answer.
async fn command(socket: &std::path::Path, cmd: &str) -> String {
    ask(tokio::net::UnixStream::connect(socket), cmd).await
}

/// Sends one command to the control port (`--serve-tcp-port`) on 127.0.0.1 and returns the answer.
async fn tcp_command(port: u16, cmd: &str) -> String {
    ask(tokio::net::TcpStream::connect(("127.0.0.1", port)), cmd).await
}

async fn ask<S>(connect: impl std::future::Future<Output = std::io::Result<S>>, cmd: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = connect.await.unwrap();
        stream.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.trim().to_string()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.unwrap_or_else(|_| panic!("no answer to `{cmd}` within 10 s"))
}

/// Asks for `status-json` until `done` holds for the answer, and returns it.
async fn wait_for_status<F, Fut>(what: &str, mut status_json: F, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: serde_json::Value = serde_json::from_str(&status_json().await).unwrap();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_commands_steer_a_running_migration() {
    use std::os::unix::fs::PermissionsExt;
    let mut conn = setup("socket").await;
    let socket = flag("control.sock");
    let postpone = existing_flag("socket-postpone");
    let mut child = start("socket", &["--serve-socket-file", socket.to_str().unwrap(), "--postpone-cut-over-flag-file", postpone.to_str().unwrap(), "--threads", "2"]);
    wait_for_pipeline(&mut conn, &mut child).await;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    assert_eq!(command(&socket, "throttle").await, "throttled");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = serde_json::from_str(&command(&socket, "status-json").await).unwrap();
        if status["throttle"] == "throttled by an operator command" {
            break;
        }
        assert!(Instant::now() < deadline, "the throttle command did not take effect: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_copy_paused(&mut conn, &mut child).await;

    assert_eq!(command(&socket, "chunk-size=?").await, "100");
    assert_eq!(command(&socket, "chunk-size=2000").await, "chunk-size=2000");
    assert_eq!(command(&socket, "max-lag-millis=700").await, "max-lag-millis=700");
    assert_eq!(command(&socket, "max-lag-millis=?").await, "700");
    assert!(command(&socket, "status").await.contains("chunk-size: 2000, threads: 2"));
    assert_eq!(command(&socket, "threads=?").await, "2");
    assert_eq!(command(&socket, "threads=3").await, "threads=3");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = serde_json::from_str(&command(&socket, "status-json").await).unwrap();
        if status["copy_workers"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "threads=3 did not take effect: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(command(&socket, "no-throttle").await, "throttle released");

    // Bigger chunks take effect: 20,000 rows now take about 10 chunks, not 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await != Some(ROWS) {
        assert!(Instant::now() < deadline, "the copy did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "swapped while postponed");
    assert_eq!(command(&socket, "unpostpone").await, "the cut-over will proceed");
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("command `chunk-size=2000`"), "{stderr}");
    assert!(!socket.exists(), "the socket file was left behind");
}

/// gh-ost's command forms and live settings: with --critical-load always met and
/// --critical-load-hibernate-seconds, the run hibernates instead of aborting until the limit is
/// cleared live; gh-ost's aliases (`pause`, `continue`, `info`) work; with --force-named-panic
/// and --force-named-cut-over, `panic` and `unpostpone` without the table's name are refused
/// and a wrong name is ignored; `nice-ratio`, `coordinates` and `applier` answer; pointing
/// `postpone-cut-over-flag-file=` at a file that does not exist lets the swap go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gh_ost_command_forms_and_live_settings() {
    let mut conn = setup("ghost_commands").await;
    let socket = flag("ghost-commands.sock");
    let postpone = existing_flag("ghost-commands-postpone");
    let mut child = start(
        "ghost_commands",
        &[
            "--serve-socket-file",
            socket.to_str().unwrap(),
            "--postpone-cut-over-flag-file",
            postpone.to_str().unwrap(),
            "--force-named-cut-over",
            "--force-named-panic",
            "--nice-ratio=0.5",
            "--heartbeat-interval-millis=50",
            "--critical-load",
            "Threads_running=1",
            "--critical-load-hibernate-seconds=1",
        ],
    );
    wait_for_pipeline(&mut conn, &mut child).await;
    let status_json = || command(&socket, "status-json");
    wait_for_status("hibernation on critical load", status_json, |s| s["throttle"].as_str().is_some_and(|t| t.starts_with("hibernating for 1 s after critical load: Threads_running="))).await;
    assert_copy_paused(&mut conn, &mut child).await;
    assert_eq!(command(&socket, "critical-load=").await, "critical-load=");

    assert_eq!(command(&socket, "nice-ratio=?").await, "0.5");
    assert_eq!(command(&socket, "nice-ratio=0").await, "nice-ratio=0");
    assert!(command(&socket, "coordinates").await.starts_with("replayed up to binlog "));
    assert!(command(&socket, "applier").await.starts_with("applier: 127.0.0.1:"));
    assert!(command(&socket, "info").await.starts_with("state: "));
    assert_eq!(command(&socket, "pause").await, "throttled");
    wait_for_status("the pause command", status_json, |s| s["throttle"] == "throttled by an operator command").await;
    assert_eq!(command(&socket, "continue").await, "throttle released");
    assert!(command(&socket, "panic").await.contains("--force-named-panic is set"));
    assert!(command(&socket, "panic=other").await.contains("this run migrates `t`; ignored"));

    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await != Some(ROWS) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy did not finish once critical-load was cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(command(&socket, "unpostpone").await.contains("--force-named-cut-over is set"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "swapped on an unnamed unpostpone");
    let elsewhere = flag("ghost-commands-never-there");
    assert_eq!(command(&socket, &format!("postpone-cut-over-flag-file={}", elsewhere.display())).await, format!("postpone-cut-over-flag-file={}", elsewhere.display()));
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("hibernating for 1 s (--critical-load-hibernate-seconds) instead of aborting"), "{stderr}");
    assert!(postpone.exists(), "the swap went ahead with the first flag file still there");
    let (count, sum): (u64, u64) = conn.query_first("SELECT COUNT(*), SUM(a) FROM t").await.unwrap().unwrap();
    assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2));
}

/// This machine's IPv4 addresses outside 127.0.0.0/8.
fn non_loopback_addresses() -> Vec<std::net::Ipv4Addr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut entry = list;
    while let Some(e) = unsafe { entry.as_ref() } {
        if let Some(addr) = unsafe { e.ifa_addr.as_ref() } {
            if i32::from(addr.sa_family) == libc::AF_INET {
                let sin = unsafe { &*(e.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found.push(ip);
                }
            }
        }
        entry = e.ifa_next;
    }
    unsafe { libc::freeifaddrs(list) };
    found
}

/// `--serve-tcp-port` answers the same commands as the socket, and only on 127.0.0.1: another
/// loopback address (127.0.0.2), ::1 and the machine's other addresses are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_port_serves_commands_on_loopback_only() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    let mut conn = setup("tcp_control").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hold = existing_flag("tcp-hold");
    let postpone = existing_flag("tcp-postpone");
    let mut child = start("tcp_control", &["--serve-tcp-port", &port.to_string(), "--throttle-flag-file", hold.to_str().unwrap(), "--postpone-cut-over-flag-file", postpone.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    let status_json = move || tcp_command(port, "status-json");
    wait_for_status("the copy held by the flag file", status_json, |s| s["state"] == "copying" && s["throttle"].as_str().is_some_and(|t| t.starts_with("the throttle flag file"))).await;
    let status = tcp_command(port, "status").await;
    assert!(status.contains("state: copying") && status.contains("throttle: the throttle flag file") && status.contains("chunk-size: 100"), "{status}");

    // The throttle command holds the copy once the flag file is gone.
    assert_eq!(tcp_command(port, "throttle").await, "throttled");
    std::fs::remove_file(&hold).unwrap();
    wait_for_status("the throttle command over TCP", status_json, |s| s["throttle"] == "throttled by an operator command").await;
    assert_copy_paused(&mut conn, &mut child).await;

    // A max-load set live holds it in turn, and clearing it lets the copy go.
    assert_eq!(tcp_command(port, "max-load=Threads_running=1").await, "max-load=Threads_running=1");
    assert_eq!(tcp_command(port, "max-load=?").await, "Threads_running=1");
    assert_eq!(tcp_command(port, "no-throttle").await, "throttle released");
    wait_for_status("max-load=Threads_running=1", status_json, |s| s["throttle"].as_str().is_some_and(|t| t.starts_with("max-load: Threads_running="))).await;
    assert_copy_paused(&mut conn, &mut child).await;
    assert_eq!(tcp_command(port, "chunk-size=?").await, "100");
    assert_eq!(tcp_command(port, "chunk-size=5000").await, "chunk-size=5000");
    assert_eq!(tcp_command(port, "chunk-size=?").await, "5000");
    assert_eq!(tcp_command(port, "max-load=").await, "max-load=");
    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await != Some(ROWS) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy did not finish once max-load was cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bound to 127.0.0.1 alone: nothing listens on the port at any other address.
    let mut elsewhere: Vec<IpAddr> = vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    elsewhere.extend(non_loopback_addresses().into_iter().map(IpAddr::V4));
    for ip in elsewhere {
        let reached = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2));
        assert!(reached.is_err(), "the control port answers on {ip}");
    }

    assert!(child.try_wait().unwrap().is_none(), "swapped while postponed");
    assert_eq!(tcp_command(port, "unpostpone").await, "the cut-over will proceed");
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("command `throttle`: throttled") && stderr.contains("command `max-load=Threads_running=1`"), "{stderr}");
    assert!(stderr.contains("throttled: max-load: Threads_running="), "{stderr}");
}

/// The server's general log, into `mysql.general_log`, for as long as this lives. It logs the
/// statements of every test running meanwhile, which only slows them a little.
struct GeneralLog;

impl GeneralLog {
    fn on() -> GeneralLog {
        server().sql("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON");
        GeneralLog
    }
}

impl Drop for GeneralLog {
    fn drop(&mut self) {
        server().sql("SET GLOBAL general_log = OFF; TRUNCATE TABLE mysql.general_log");
    }
}

/// The copy's chunks as the server ran them, from the general log: the `(lower, upper]` id
/// range of each INSERT into the shadow table, and the connection that ran it; sorted.
async fn logged_chunks(conn: &mut Conn, db: &str) -> Vec<(u64, u64, u64)> {
    let sql = format!("SELECT thread_id, argument FROM mysql.general_log WHERE command_type = 'Execute' AND argument LIKE 'INSERT INTO `{db}`.`\\_t\\_gho`%'");
    let statements: Vec<(u64, String)> = conn.query(sql).await.unwrap();
    let bound = |statement: &str, op: &str| statement.split(op).nth(1).map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u64>().unwrap());
    let mut chunks: Vec<(u64, u64, u64)> = statements
        .iter()
        .map(|(thread, statement)| (bound(statement, "`id` > ").unwrap_or(0), bound(statement, "`id` <= ").unwrap_or_else(|| panic!("no upper bound in {statement}")), *thread))
        .collect();
    chunks.sort();
    // A chunk retried (after a deadlock, say) is logged twice.
    chunks.dedup_by_key(|(lower, upper, _)| (*lower, *upper));
    chunks
}

/// `chunk-size=N` and `threads=N` change the chunks the copy runs, as the server sees them:
/// 100-row chunks on one connection until the change, 1500-row chunks on several after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_and_threads_change_the_copy_mid_run() {
    let mut conn = setup("chunk_live").await;
    // More rows: the throttle takes up to 100 ms to hold the copy, and 100-row chunks run fast.
    let rows = 100_000;
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(ROWS + 1, rows))).await.unwrap();
    let log = GeneralLog::on();
    let socket = flag("chunk.sock");
    let mut child = start("chunk_live", &["--serve-socket-file", socket.to_str().unwrap(), "--threads", "1"]);
    wait_for_pipeline(&mut conn, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while shadow_rows(&mut conn).await.unwrap_or(0) < 1000 {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(command(&socket, "throttle").await, "throttled");
    let status_json = || command(&socket, "status-json");
    wait_for_status("the throttle command", status_json, |s| s["throttle"] == "throttled by an operator command").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paused = shadow_rows(&mut conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(shadow_rows(&mut conn).await, Some(paused), "the copy went on while throttled");
    assert!(paused <= rows - 4500, "the copy got too far ({paused} rows) before the throttle held it");

    assert_eq!(command(&socket, "chunk-size=1500").await, "chunk-size=1500");
    assert_eq!(command(&socket, "threads=3").await, "threads=3");
    wait_for_status("threads=3", status_json, |s| s["copy_workers"] == 3).await;
    assert_eq!(command(&socket, "no-throttle").await, "throttle released");
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");

    let chunks = logged_chunks(&mut conn, "chunk_live").await;
    drop(log);
    let ranges: Vec<(u64, u64)> = chunks.iter().map(|&(lower, upper, _)| (lower, upper)).collect();
    assert_eq!(ranges.first().map(|r| r.0), Some(0), "{ranges:?}");
    assert_eq!(ranges.last().map(|r| r.1), Some(rows), "{ranges:?}");
    assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0), "the chunks do not tile the table: {ranges:?}");
    let (before, after): (Vec<_>, Vec<_>) = chunks.iter().partition(|&&(_, upper, _)| upper <= paused);
    assert!(before.iter().all(|&&(lower, upper, _)| upper - lower == 100), "chunks before the change: {before:?}");
    assert_eq!(before.last().map(|c| c.1), Some(paused), "{chunks:?}");
    let threads = |chunks: &[&(u64, u64, u64)]| chunks.iter().map(|c| c.2).collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(threads(&before), 1, "more than one connection copied with --threads 1: {before:?}");
    let (last, full) = after.split_last().unwrap();
    assert!(full.iter().all(|&&(lower, upper, _)| upper - lower == 1500) && last.1 - last.0 <= 1500, "chunks after chunk-size=1500: {after:?}");
    assert!(full.len() >= 2, "{after:?}");
    assert!(threads(&after) > 1, "threads=3 left the copy on one connection: {after:?}");
    eprintln!("chunk_live: {} chunks of 100 rows on 1 connection, then {} of up to 1500 on {}", before.len(), after.len(), threads(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_command_aborts() {
    let mut conn = setup("socket_panic").await;
    let socket = flag("panic.sock");
    let hold = existing_flag("socket-panic-hold");
    let dir = flag("panic-hooks");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = flag("panic-hooks.log");
    hook(&dir, "gh-ost-on-interactive-command", &log, 0);
    let mut child = start("socket_panic", &["--serve-socket-file", socket.to_str().unwrap(), "--throttle-flag-file", hold.to_str().unwrap(), "--hooks-path", dir.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    let sup = command(&socket, "sup").await;
    assert!(sup.contains("; copied ") && sup.contains(" rows"), "{sup}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.starts_with("gh-ost-on-interactive-command db=socket_panic"), "the hook did not run: {logged}");
    assert_eq!(command(&socket, "panic").await, "aborting");
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("the panic command was received"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
}

/// On a terminal the progress bar is drawn; off a terminal, plain status lines are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_on_a_terminal_and_plain_lines_off_it() {
    setup("progress").await;
    let srv = server();
    let binary = env!("CARGO_BIN_EXE_alterego");
    let args = format!(
        "{binary} --host 127.0.0.1 --port {} --user {} --database progress --table t --alter 'ADD COLUMN b INT' --execute --chunk-size 20 --status-interval-millis 200",
        srv.port,
        common::USER
    );
    // `script` runs the command on a pseudo-terminal, as a person at a terminal would.
    let output = std::process::Command::new("script").args(["-qec", &args, "/dev/null"]).env("ALTEREGO_PASSWORD", common::PASSWORD).env("TERM", "xterm").stdin(Stdio::null()).output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("/s, ETA ") && screen.contains("copying"), "no progress bar on the terminal:\n{screen}");
    // Whole numbers: the rate is digits and commas, with no fraction.
    let pieces: Vec<&str> = screen.split("/s, ETA").collect();
    let rates: Vec<&str> = pieces[..pieces.len() - 1].iter().filter_map(|before| before.rsplit(" at ").next()).collect();
    assert!(!rates.is_empty() && rates.iter().all(|rate| rate.chars().all(|c| c.is_ascii_digit() || c == ',')), "a rate that is not a whole number: {rates:?}\n{screen}");

    // Off a terminal: status lines instead of a bar.
    setup("progress").await;
    let (code, stderr) = finish(start("progress", &["--status-interval-millis", "100"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("copied ") && stderr.contains(" rows ("), "no status line:\n{stderr}");
    assert!(!stderr.contains("ETA"), "a progress bar off the terminal:\n{stderr}");
}
