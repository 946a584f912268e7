//! Operator control against a real server: the throttle flag file and --max-load pause the
//! copy, --critical-load and the panic flag file abort with exit 4 leaving nothing behind, and
//! the postpone flag file holds the swap while the shadow stays current.

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
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM seq_1_to_{ROWS}")).await.unwrap();
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
    let mut conn = setup("throttle_file").await;
    let file = flag("throttle");
    std::fs::write(&file, "").unwrap();
    let mut child = start("throttle_file", &["--throttle-flag-file", file.to_str().unwrap()]);
    wait_for_pipeline(&mut conn, &mut child).await;
    assert_copy_paused(&mut conn, &mut child).await;
    std::fs::remove_file(&file).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("throttled: the throttle flag file") && stderr.contains("throttle lifted"), "{stderr}");
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
    let throttle = flag("panic-hold");
    std::fs::write(&throttle, "").unwrap();
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
    let file = flag("postpone");
    std::fs::write(&file, "").unwrap();
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
/// replica discovery needs, the run says lag is not watched instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_grant_migrates_and_warns_about_discovery() {
    let mut conn = setup("minimal_grant").await;
    for sql in [
        "DROP USER IF EXISTS 'minimal'@'%'",
        "CREATE USER 'minimal'@'%' IDENTIFIED BY 'minimal-pw'",
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'minimal'@'%'",
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
    assert!(stderr.contains("cannot discover replicas") && stderr.contains("REPLICATION MASTER ADMIN"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".to_string()]);
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_every_state_change() {
    let mut conn = setup("status_json").await;
    let hold = flag("status-hold");
    std::fs::write(&hold, "").unwrap();
    let status = flag("status.jsonl");
    let mut child = start(
        "status_json",
        &["--status-json", status.to_str().unwrap(), "--status-interval-millis", "100", "--throttle-flag-file", hold.to_str().unwrap()],
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_at_their_stages_without_the_password() {
    let mut conn = setup("hooks").await;
    let dir = flag("hooks-dir");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = flag("hooks.log");
    for name in ["gh-ost-on-startup", "gh-ost-on-validated", "gh-ost-on-before-row-copy", "alterego-on-row-copy-complete", "gh-ost-on-before-cut-over", "gh-ost-on-success", "gh-ost-on-failure"] {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_commands_steer_a_running_migration() {
    use std::os::unix::fs::PermissionsExt;
    let mut conn = setup("socket").await;
    let socket = flag("control.sock");
    let postpone = flag("socket-postpone");
    std::fs::write(&postpone, "").unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_command_aborts() {
    let mut conn = setup("socket_panic").await;
    let socket = flag("panic.sock");
    let hold = flag("socket-panic-hold");
    std::fs::write(&hold, "").unwrap();
    let dir = flag("panic-hooks");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = flag("panic-hooks.log");
    hook(&dir, "gh-ost-on-interactive-command", &log, 0);
    let mut child = start(
        "socket_panic",
        &["--serve-socket-file", socket.to_str().unwrap(), "--throttle-flag-file", hold.to_str().unwrap(), "--hooks-path", dir.to_str().unwrap()],
    );
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
    let output = std::process::Command::new("script")
        .args(["-qec", &args, "/dev/null"])
        .env("ALTEREGO_PASSWORD", common::PASSWORD)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("rows (") && screen.contains("ETA") && screen.contains("copying"), "no progress bar on the terminal:\n{screen}");

    // Off a terminal: status lines instead of a bar.
    setup("progress").await;
    let (code, stderr) = finish(start("progress", &["--status-interval-millis", "100"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("copied ") && stderr.contains(" rows ("), "no status line:\n{stderr}");
    assert!(!stderr.contains("ETA"), "a progress bar off the terminal:\n{stderr}");
}
