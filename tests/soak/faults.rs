//! Runs alterego for a soak round and injects the round's faults into it: `kill -9` and a rerun
//! (the resume), SIGTERM (exit 4 with nothing left behind, then a rerun), the binlog or a copy
//! connection killed, the server restarted, the replica stopped and started, the copy throttled
//! and unthrottled on the control socket, the swap postponed by the flag file and released.
//!
//! Invariants: a fault waits for its moment (a delay after the copy starts, or the postponed
//! phase) and is reported as missed when the run ends first; whatever a fault stops is restarted
//! before the next one (the replica, the throttle); every outcome the tool documents for a fault
//! is checked where it happens (exit codes, leftovers, the untouched original table).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;

use crate::common::{tables, TestServer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kill9,
    Sigterm,
    KillBinlog,
    KillCopy,
    RestartServer,
    StopReplica,
    Throttle,
    Postpone,
}

pub const KINDS: [Kind; 8] = [Kind::Kill9, Kind::Sigterm, Kind::KillBinlog, Kind::KillCopy, Kind::RestartServer, Kind::StopReplica, Kind::Throttle, Kind::Postpone];

/// When a fault strikes.
#[derive(Clone, Copy, Debug)]
pub enum Moment {
    /// Once this percentage of the estimated rows is copied (or the copy is over).
    Copied(u64),
    /// This many milliseconds after the copy is over.
    AfterCopy(u64),
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    /// Ignored for Postpone, which strikes in the postponed phase.
    pub moment: Moment,
    /// How long a throttle, a stopped replica or a postponed swap lasts.
    pub hold_ms: u64,
}

impl Fault {
    pub fn describe(&self) -> String {
        match (self.kind, self.moment) {
            (Kind::Postpone, _) => "Postpone".into(),
            (kind, Moment::Copied(percent)) => format!("{kind:?}@{percent}%"),
            (kind, Moment::AfterCopy(ms)) => format!("{kind:?}@copy+{ms}ms"),
        }
    }
}

/// The phases before the copy ends.
const COPY_PHASES: [&str; 2] = ["inspecting", "copying"];

/// Where a round's run keeps its files, and what it needs to reach the servers.
pub struct Runner {
    pub server: &'static TestServer,
    pub replica: &'static TestServer,
    pub db: String,
    pub args: Vec<String>,
    pub dir: PathBuf,
    /// The original table's DDL, which a signalled run must leave as it was.
    pub original_ddl: Vec<u8>,
    /// ORDER BY list for comparing `t` with the oracle.
    pub order_by: String,
    pub attempt: u32,
    child: Option<Child>,
    /// One entry per fault: what happened.
    pub notes: Vec<String>,
    /// Set once a signalled run is found to have swapped: nothing left to run.
    finished_by_signal: bool,
}

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("control.sock")
}

pub fn postpone_path(dir: &Path) -> PathBuf {
    dir.join("postpone")
}

/// One command on the control socket; None when the socket is gone.
fn control(socket: &Path, command: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(format!("{command}\n").as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer.trim().to_string())
}

impl Runner {
    pub fn new(server: &'static TestServer, replica: &'static TestServer, db: &str, args: Vec<String>, dir: PathBuf, original_ddl: Vec<u8>, order_by: String) -> Runner {
        Runner { server, replica, db: db.into(), args, dir, original_ddl, order_by, attempt: 0, child: None, notes: Vec::new(), finished_by_signal: false }
    }

    fn status_path(&self) -> PathBuf {
        self.dir.join(format!("status-{}.json", self.attempt))
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join(format!("stderr-{}.log", self.attempt))
    }

    /// Starts (another) attempt of the same command, plus `extra` flags.
    pub fn spawn(&mut self, extra: &[&str]) {
        self.attempt += 1;
        let file = |path: PathBuf| std::fs::File::create(path).unwrap();
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        // A run creates a missing postpone flag file (gh-ost's rule): once the postpone fault has
        // released the swap, later attempts run without the flag.
        if let Some(at) = args.iter().position(|a| *a == "--postpone-cut-over-flag-file").filter(|_| !postpone_path(&self.dir).exists()) {
            args.drain(at..at + 2);
        }
        let status = self.status_path().display().to_string();
        args.extend(["--status-json", &status]);
        args.extend(extra);
        let child = self.server.alterego_command(&args).stdout(file(self.dir.join(format!("stdout-{}.log", self.attempt)))).stderr(file(self.stderr_path())).spawn().unwrap();
        self.child = Some(child);
    }

    fn exited(&mut self) -> Option<i32> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        Some(status.code().unwrap_or(-1))
    }

    /// The run's phase and copy progress, from the control socket (None before it listens).
    fn progress(&self) -> Option<(String, u64, u64)> {
        let status: serde_json::Value = serde_json::from_str(&control(&socket_path(&self.dir), "status-json")?).ok()?;
        let number = |field: &str| status[field].as_u64().unwrap_or(0);
        Some((status["state"].as_str()?.to_string(), number("rows_copied"), number("rows_estimated")))
    }

    /// Waits until the fault's moment; false when the run ended first.
    async fn reached(&mut self, fault: &Fault) -> Result<bool, String> {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut copy_over: Option<Instant> = None;
        loop {
            if self.exited().is_some() {
                return Ok(false);
            }
            if let Some((state, copied, estimated)) = self.progress() {
                let copying = COPY_PHASES.contains(&state.as_str());
                if !copying && copy_over.is_none() {
                    copy_over = Some(Instant::now());
                }
                let due = match (fault.kind, fault.moment) {
                    (Kind::Postpone, _) => state == "postponed",
                    (_, Moment::Copied(percent)) => !copying || (state == "copying" && copied * 100 >= percent * estimated),
                    (_, Moment::AfterCopy(ms)) => copy_over.is_some_and(|t| t.elapsed() >= Duration::from_millis(ms)),
                };
                if due {
                    return Ok(true);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("the run never reached the moment of {}", fault.describe()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs the faults in order, each at its moment.
    pub async fn inject_all(&mut self, faults: &[Fault]) -> Result<(), String> {
        for fault in faults {
            if self.finished_by_signal || !self.reached(fault).await? {
                self.notes.push(format!("{} missed", fault.describe()));
                continue;
            }
            let note = self.inject(fault).await?;
            self.notes.push(format!("{} {note}", fault.describe()));
        }
        Ok(())
    }

    async fn inject(&mut self, fault: &Fault) -> Result<String, String> {
        let hold = Duration::from_millis(fault.hold_ms);
        match fault.kind {
            Kind::Kill9 => {
                let child = self.child.as_mut().unwrap();
                child.kill().ok();
                child.wait().ok();
                self.spawn(&[]);
                Ok("resumed".into())
            }
            Kind::Sigterm => self.sigterm().await,
            Kind::KillBinlog => {
                let killed = self.kill_connections("COMMAND LIKE 'Binlog Dump%' AND USER = 'alterego'").await;
                Ok(format!("killed {killed}"))
            }
            Kind::KillCopy => {
                let like = format!("INFO LIKE 'INSERT INTO `{}`.`\\_t\\_gho`%SELECT%'", self.db);
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    let killed = self.kill_connections(&like).await;
                    if killed > 0 || Instant::now() > deadline || self.exited().is_some() {
                        return Ok(format!("killed {killed}"));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Kind::RestartServer => {
                let server = self.server;
                let started = Instant::now();
                tokio::task::spawn_blocking(move || server.restart()).await.unwrap();
                Ok(format!("down {:.1}s", started.elapsed().as_secs_f64()))
            }
            Kind::StopReplica => {
                self.replica.sql(&crate::common::flavor().stop_replica(""));
                tokio::time::sleep(hold).await;
                self.replica.sql(&crate::common::flavor().start_replica(""));
                Ok(format!("for {}ms", fault.hold_ms))
            }
            Kind::Throttle => {
                let socket = socket_path(&self.dir);
                let Some(answer) = control(&socket, "throttle") else { return Ok("socket gone".into()) };
                tokio::time::sleep(hold).await;
                control(&socket, "no-throttle");
                Ok(format!("{answer} for {}ms", fault.hold_ms))
            }
            Kind::Postpone => {
                let names = tables(&mut self.server.conn(Some(&self.db)).await).await;
                if names.iter().any(|n| n == "_t_del") || !names.iter().any(|n| n == "_t_gho") {
                    return Err(format!("the swap happened while postponed: tables {names:?}"));
                }
                tokio::time::sleep(hold).await;
                std::fs::remove_file(postpone_path(&self.dir)).map_err(|e| format!("removing the postpone file: {e}"))?;
                Ok(format!("released after {}ms", fault.hold_ms))
            }
        }
    }

    /// Kills the connections the processlist condition finds; returns how many.
    async fn kill_connections(&self, condition: &str) -> usize {
        let mut admin = self.server.conn(None).await;
        let ids: Vec<u64> = admin.query(format!("SELECT ID FROM {} WHERE {condition}", crate::common::processlist())).await.unwrap();
        for id in &ids {
            admin.query_drop(format!("KILL {id}")).await.ok();
        }
        ids.len()
    }

    /// SIGTERM: exit 4 with only the original table and the oracle left, the original as it was
    /// and equal to the oracle; then the same command again. A run that had swapped already is
    /// complete.
    async fn sigterm(&mut self) -> Result<String, String> {
        let child = self.child.as_mut().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let code = self.wait(Duration::from_secs(60)).await?;
        let mut conn = self.server.conn(Some(&self.db)).await;
        let ddl = show_create(&mut conn, "t").await;
        match code {
            0 => return Ok("too late: the run had finished".into()),
            4 if ddl != self.original_ddl => {
                self.finished_by_signal = true;
                return Ok("after the swap".into());
            }
            4 => {}
            other => return Err(format!("SIGTERM: exit {other}, expected 4\n{}", self.stderr_tail())),
        }
        let names = tables(&mut conn).await;
        if names != ["t", "t_oracle"] {
            return Err(format!("SIGTERM left tables behind: {names:?}\n{}", self.stderr_tail()));
        }
        crate::compare_tables(&mut conn, &self.order_by, true).await.map_err(|e| format!("after SIGTERM, t differs from the oracle: {e}"))?;
        self.spawn(&[]);
        Ok("exit 4, clean; rerun".into())
    }

    /// Waits for the current attempt to exit; its exit code.
    pub async fn wait(&mut self, limit: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(code) = self.exited() {
                return Ok(code);
            }
            if Instant::now() > deadline {
                let child = self.child.as_mut().unwrap();
                child.kill().ok();
                child.wait().ok();
                return Err(format!("alterego did not finish within {}s; killed\n{}", limit.as_secs(), self.stderr_tail()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the run to end for good: an attempt refused because the killed one had no
    /// checkpoint yet is started over with `--no-resume`, as the refusal says.
    pub async fn finish(&mut self, limit: Duration) -> Result<(), String> {
        if self.finished_by_signal {
            return Ok(());
        }
        let mut code = self.wait(limit).await?;
        if code == 3 && self.stderr_tail().contains("interrupted before its first checkpoint") {
            self.notes.push("no checkpoint yet: rerun with --no-resume".into());
            // Every fault is over by now: a postponement none of them will release would hold
            // this attempt until the round's time limit.
            let _ = std::fs::remove_file(postpone_path(&self.dir));
            self.spawn(&["--no-resume"]);
            code = self.wait(limit).await?;
        }
        if code != 0 {
            return Err(format!("alterego exited {code}\n{}", self.stderr_tail()));
        }
        Ok(())
    }

    /// The last lines of the current attempt's log.
    pub fn stderr_tail(&self) -> String {
        let log = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("--- last lines of {} ---\n{}", self.stderr_path().display(), lines[lines.len().saturating_sub(25)..].join("\n"))
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The table's DDL without its name, as bytes: binary defaults are not UTF-8.
pub async fn show_create(conn: &mut mysql_async::Conn, table: &str) -> Vec<u8> {
    let row: Option<(String, Vec<u8>)> = conn.query_first(format!("SHOW CREATE TABLE `{table}`")).await.unwrap_or(None);
    let ddl = row.map(|(_, ddl)| ddl).unwrap_or_default();
    let named = format!("CREATE TABLE `{table}` ");
    ddl.strip_prefix(named.as_bytes()).map_or(ddl.clone(), <[u8]>::to_vec)
}
