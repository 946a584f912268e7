//! SIGTERM and SIGINT at every stage a run spends time in, each held there on purpose (a hook
//! that waits, a flag file, or another session holding a lock the run needs): exit code 4
//! within a stated bound after the signal, the original table untouched, nothing left behind.

mod common;

use std::path::PathBuf;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::hooks::{holding_hook, hook, temp_path};
use common::{rows, server, tables};
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

/// How long after the signal the run must have exited, when nothing of the test's holds it.
const PROMPT: Duration = Duration::from_secs(5);

/// A run of a migration of a 40,000-row table, started with `extra` flags.
struct Run {
    child: Child,
    status: PathBuf,
    conn: Conn,
    db: &'static str,
}

impl Run {
    async fn start(db: &'static str, extra: &[&str]) -> Run {
        let conn = common::small_table(db, 40000).await;
        let status = temp_path(&format!("{db}-status"));
        let mut args = vec!["--database", db, "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--status-json", status.to_str().unwrap()];
        args.extend_from_slice(extra);
        let child = server().alterego_command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        Run { child, status, conn, db }
    }

    /// Waits (up to 60 s) until `reached` says the stage is on.
    async fn wait_for(&mut self, what: &str, reached: impl AsyncFn(&mut Conn, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reached(&mut self.conn, &std::fs::read_to_string(&self.status).unwrap_or_default()).await {
            assert!(self.child.try_wait().unwrap().is_none(), "{}: the run ended before {what}", self.db);
            assert!(Instant::now() < deadline, "{}: the run never reached {what}", self.db);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the run's phase is `phase`, then a little longer, so it is held there.
    async fn wait_for_phase(&mut self, phase: &str) {
        let needle = format!("\"state\":\"{phase}\"");
        self.wait_for(phase, async |_, status| status.contains(&needle)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(self.child.try_wait().unwrap().is_none(), "{}: the run left {phase} by itself", self.db);
    }

    fn signal(&self, signal: i32) -> Instant {
        unsafe { libc::kill(self.child.id() as i32, signal) };
        Instant::now()
    }

    /// Sends `signal` and checks that the run stopped within `PROMPT` and left the server as
    /// it was (`before`: the original's checksum).
    async fn stopped(self, (signal, name): (i32, &str), before: &[Vec<Value>]) -> (Output, Conn) {
        let sent = self.signal(signal);
        let (output, mut conn) = self.exited(name, sent, PROMPT);
        assert_untouched(&mut conn, before, &output).await;
        (output, conn)
    }

    /// Waits for the exit, asserting it came within `bound` of `sent`: code 4, naming the signal.
    fn exited(mut self, name: &str, sent: Instant, bound: Duration) -> (Output, Conn) {
        while self.child.try_wait().unwrap().is_none() {
            assert!(sent.elapsed() < bound, "{}: still running {bound:?} after the {name}", self.db);
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = self.child.wait_with_output().unwrap();
        let stderr = common::stderr(&output);
        assert_eq!(output.status.code(), Some(4), "{}: {stderr}", self.db);
        assert!(stderr.contains(&format!("{name} received")), "{}: {stderr}", self.db);
        (output, self.conn)
    }
}

/// The original table and its contents, to compare after the run.
async fn checksum(conn: &mut Conn) -> Vec<Vec<Value>> {
    rows(conn, "CHECKSUM TABLE t EXTENDED").await
}

async fn assert_untouched(conn: &mut Conn, before: &[Vec<Value>], output: &Output) {
    assert_eq!(tables(conn).await, vec!["t".to_string()], "{}", common::stderr(output));
    assert_eq!(checksum(conn).await, before, "the original table changed");
    let columns: Vec<String> = conn.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' ORDER BY ORDINAL_POSITION").await.unwrap();
    assert_eq!(columns, vec!["id", "a"], "the original table was altered");
}

/// A session's open transaction holding a write metadata lock on `table` (no row changes).
async fn hold_table_open(db: &str, table: &str) -> Conn {
    let mut holder = server().conn(Some(db)).await;
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder.query_drop(format!("UPDATE `{table}` SET id = id WHERE id < 0")).await.unwrap();
    holder
}

/// Whether a session runs a statement starting with `prefix` and waits on a metadata lock.
async fn waits_on_lock(conn: &mut Conn, prefix: &str) -> bool {
    let n: Option<u64> = conn.exec_first(format!("SELECT COUNT(*) FROM {} WHERE INFO LIKE ? AND STATE LIKE '%metadata lock%'", common::processlist()), (format!("{prefix}%"),)).await.unwrap();
    n.unwrap_or(0) > 0
}

/// Waits until the run's `LOCK TABLES` waits behind `holder`, sends `signal`, and checks that
/// the run stopped within `PROMPT` and left the server as it was, while `holder` still holds
/// the table and again after it lets go.
async fn interrupt_lock_wait(mut run: Run, before: &[Vec<Value>], mut holder: Conn, (signal, name): (i32, &str)) {
    run.wait_for("the lock wait", async |conn, _| waits_on_lock(conn, "LOCK TABLES").await).await;
    let (output, mut conn) = run.stopped((signal, name), before).await;
    holder.query_drop("ROLLBACK").await.unwrap();
    assert_untouched(&mut conn, before, &output).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_copy_cleans_up() {
    let mut run = Run::start("sigterm", &["--chunk-size", "10"]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for("the copy", async |conn, _| {
        let copied: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_gho").await.unwrap_or(None);
        copied.is_some_and(|n| n > 100)
    })
    .await;
    run.stopped((libc::SIGTERM, "SIGTERM"), &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_the_swap_is_postponed_cleans_up() {
    let postpone = temp_path("sigint-postpone");
    std::fs::write(&postpone, "").unwrap();
    let mut run = Run::start("sigint", &["--postpone-cut-over-flag-file", postpone.to_str().unwrap()]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for_phase("postponed").await;
    run.stopped((libc::SIGINT, "SIGINT"), &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_throttled_before_the_copy_cleans_up() {
    let hold = temp_path("sigterm-hold");
    std::fs::write(&hold, "").unwrap();
    let mut run = Run::start("sigterm_throttled", &["--throttle-flag-file", hold.to_str().unwrap()]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for("the throttle", async |_, status| status.contains("\"event\":\"throttled\"")).await;
    run.stopped((libc::SIGTERM, "SIGTERM"), &before).await;
}

/// Inspection, before anything is created: held by an on-startup hook that sleeps. The hook
/// is stopped with the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_inspection_creates_nothing() {
    let pid_file = temp_path("sigint-inspect-pid");
    let hooks = hook("sigint-inspect-hooks", "on-startup", &format!("echo $$ > '{}'\nexec sleep 60 >/dev/null 2>&1", pid_file.display()));
    let mut run = Run::start("sigint_inspecting", &["--hooks-path", hooks.to_str().unwrap()]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for("the on-startup hook", async |_, _| std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))).await;
    assert!(std::fs::read_to_string(&run.status).unwrap_or_default().contains("\"state\":\"inspecting\""));
    run.stopped((libc::SIGINT, "SIGINT"), &before).await;
    let hook_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let state = std::fs::read_to_string(format!("/proc/{hook_pid}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z "), "the on-startup hook still runs after the run stopped: {state}");
}

/// Catching up after the copy: the applier is held by a session that write-locks the shadow
/// table while a change to replay waits. The signal is honoured at once; the cleanup's DROP
/// of the shadow then waits for that session, which lets go half a second after the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_catching_up_cleans_up() {
    let (reached, hold) = (temp_path("catchup-reached"), temp_path("catchup-hold"));
    let hooks = holding_hook("catchup-hooks", "on-row-copy-complete", &reached, &hold);
    let mut run = Run::start("sigterm_catching_up", &["--hooks-path", hooks.to_str().unwrap()]).await;
    run.wait_for("the end of the copy", async |_, _| reached.exists()).await;
    let mut locker = server().conn(Some("sigterm_catching_up")).await;
    locker.query_drop("LOCK TABLES _t_gho WRITE").await.unwrap();
    run.conn.query_drop("INSERT INTO t VALUES (40001, 1)").await.unwrap();
    let before = checksum(&mut run.conn).await;
    std::fs::remove_file(&hold).unwrap();
    run.wait_for_phase("catching up").await;
    let sent = run.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    locker.query_drop("UNLOCK TABLES").await.unwrap();
    let (output, mut conn) = run.exited("SIGTERM", sent, PROMPT);
    assert_untouched(&mut conn, &before, &output).await;
}

/// Verification: its read lock on the original waits behind another session's open
/// transaction (`--cut-over-lock-timeout-seconds 30`); that session stays open while the run
/// stops, so nothing but the signal ends the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_verification_cleans_up() {
    let (reached, hold) = (temp_path("verify-reached"), temp_path("verify-hold"));
    let hooks = holding_hook("verify-hooks", "on-row-copy-complete", &reached, &hold);
    let mut run = Run::start("sigint_verifying", &["--hooks-path", hooks.to_str().unwrap(), "--cut-over-lock-timeout-seconds", "30"]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for("the end of the copy", async |_, _| reached.exists()).await;
    let holder = hold_table_open("sigint_verifying", "t").await;
    std::fs::remove_file(&hold).unwrap();
    run.wait_for_phase("verifying").await;
    interrupt_lock_wait(run, &before, holder, (libc::SIGINT, "SIGINT")).await;
}

/// Runs a migration up to its postponed swap, opens a transaction holding `table`, and lets
/// the cut-over start (`--cut-over-lock-timeout-seconds 30`): it waits behind that session.
async fn cut_over_behind(db: &'static str, table: &str) -> (Run, Vec<Vec<Value>>, Conn) {
    let postpone = temp_path(&format!("{db}-postpone"));
    std::fs::write(&postpone, "").unwrap();
    let mut run = Run::start(db, &["--postpone-cut-over-flag-file", postpone.to_str().unwrap(), "--cut-over-lock-timeout-seconds", "30"]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for_phase("postponed").await;
    let holder = hold_table_open(db, table).await;
    std::fs::remove_file(&postpone).unwrap();
    (run, before, holder)
}

/// The cut-over's write lock on the original waits behind another session's open transaction;
/// nothing was swapped, so everything is cleaned up while that session stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_cut_over_lock_waits_cleans_up() {
    let (run, before, holder) = cut_over_behind("sigterm_cut_over_lock", "t").await;
    interrupt_lock_wait(run, &before, holder, (libc::SIGTERM, "SIGTERM")).await;
}

/// The cut-over's RENAME waits: another session's open transaction holds the shadow table, so
/// the RENAME queues on it. The RENAME must not run after the run has stopped: once that
/// session lets go, the tables are not swapped and nothing is left behind. On MySQL the RENAME
/// runs in the session that locks both tables, so what waits is its `LOCK TABLES`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_the_rename_waits_does_not_swap() {
    let (mut run, before, mut holder) = cut_over_behind("sigint_rename", "_t_gho").await;
    let waiting = if common::flavor().is_mysql() { "LOCK TABLES `sigint_rename`.`t` WRITE, `sigint_rename`.`_t_gho` WRITE" } else { "RENAME TABLE" };
    run.wait_for("the RENAME's wait", async |conn, _| waits_on_lock(conn, waiting).await).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = run.signal(libc::SIGINT);
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.query_drop("ROLLBACK").await.unwrap();
    let (output, mut conn) = run.exited("SIGINT", sent, PROMPT);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_untouched(&mut conn, &before, &output).await;
}

/// Creating the shadow table: its `CREATE TABLE ... LIKE t` waits behind another session's
/// `LOCK TABLES t WRITE`. The signal kills the waiting statement, so no `_t_gho` appears when
/// that session lets go after the run has exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_shadow_is_being_created_leaves_nothing() {
    let (reached, hold) = (temp_path("create-reached"), temp_path("create-hold"));
    let hooks = holding_hook("create-hooks", "on-startup", &reached, &hold);
    let mut run = Run::start("sigterm_creating", &["--hooks-path", hooks.to_str().unwrap()]).await;
    let before = checksum(&mut run.conn).await;
    run.wait_for("the on-startup hook", async |_, _| reached.exists()).await;
    let mut locker = server().conn(Some("sigterm_creating")).await;
    locker.query_drop("LOCK TABLES t WRITE").await.unwrap();
    std::fs::remove_file(&hold).unwrap();
    run.wait_for("the shadow's CREATE TABLE waiting", async |conn, _| waits_on_lock(conn, "CREATE TABLE").await).await;
    let sent = run.signal(libc::SIGTERM);
    let (output, mut conn) = run.exited("SIGTERM", sent, PROMPT);
    locker.query_drop("UNLOCK TABLES").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_untouched(&mut conn, &before, &output).await;
}

/// A server gone for good holds the cleanup in its reconnect loop (up to a minute); a second
/// signal ends the run at once, naming what is left to drop by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_abandons_a_cleanup_waiting_for_the_server() {
    let srv = common::TestServer::start(&[]);
    let mut conn = common::small_table_on(&srv, "gone", 40000).await;
    let args = ["--database", "gone", "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--chunk-size", "10"];
    let mut child = srv.alterego_command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_gho").await.unwrap_or(None);
        if copied.is_some_and(|n| n > 100) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none() && Instant::now() < deadline, "the run never reached the copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);
    srv.kill();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "the cleanup did not wait for the server");
    let sent = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    while child.try_wait().unwrap().is_none() {
        assert!(sent.elapsed() < PROMPT, "still running {PROMPT:?} after the second SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("SIGTERM received during the cleanup, which was abandoned") && stderr.contains("drop `gone`.`_t_gho` and `gone`.`_t_ghc` by hand"), "{stderr}");
}
