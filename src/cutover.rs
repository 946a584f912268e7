//! The atomic swap of the original and shadow tables.
//!
//! MariaDB refuses `RENAME TABLE` under `LOCK TABLES`, so it uses a queued rename: session A
//! write-locks the original; once the applier has replayed everything up to a marker written
//! under that lock, session B issues `RENAME TABLE t TO _t_del, _t_gho TO t`, which queues on
//! the original's metadata lock; when B is seen waiting *for `t`* (it already holds `_t_gho`,
//! which it takes first: another session reading the shadow can hold it up there), A unlocks,
//! and B's pending exclusive request is granted before the writes queued behind A's lock.
//!
//! Why not gh-ost's sentry table (`_t_del` created and locked by A, dropped just before the
//! unlock)? A RENAME takes its metadata locks in name order, and `_t_del` sorts before `t`, so
//! B queues on the sentry, not on `t`; between A's DROP and UNLOCK, B has not yet asked for `t`,
//! and a write queued on `t` can run on the old table first and be lost. Our tests caught this
//! under four concurrent writers. Issuing B only after the replay is complete makes the sentry
//! unnecessary: if A dies after that, the RENAME simply runs with nothing left to replay.
//! MySQL 8.0.13+ renames under the lock itself (the applier's last changes are replayed on the
//! lock-holding session first).
//!
//! Invariants: the RENAME is never issued before everything written to the original up to the
//! lock has been replayed; if B fails or is not seen queued within the lock timeout, it is
//! killed and A unlocks (nothing swapped); lock waits are short
//! (`--cut-over-lock-timeout-seconds`) and the attempt is retried with backoff, also when its
//! connections are lost before a RENAME was sent; an outcome made ambiguous by a lost
//! connection is resolved from which tables exist, read on a new connection; a RENAME that was sent
//! and has not returned is recorded (`RunState::pending_rename`) so that a run that stops can
//! kill it before it cleans up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::task::JoinHandle;

use crate::apply::{apply_with_retries, record_changed_keys, Session};
use crate::binlog::stream::Batch;
use crate::changelog;
use crate::compare::{differing_keys, mismatch, Readers};
use crate::error::{describe_mysql_error, Context, Error, ExitKind, Result};
use crate::inspect::{auto_increment_option, exists, has_auto_increment_column, show_create};
use crate::pending::KeyState;
use crate::plan::{Plan, TableNames};
use crate::server::{Flavor, Server};
use crate::sql::format_key;
use crate::state::RunState;
use crate::triggers::Carried;

/// Pause between seeing the RENAME queued and unlocking. Measured with four writers: without
/// it, about one cut-over in fourteen let queued writes run on the old table first; with 20 ms,
/// none in seventy. `verify_no_late_writes` catches any that still do.
const RENAME_SETTLE: Duration = Duration::from_millis(20);

/// How long to wait for the binlog reader to reach the RENAME after a swap.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct CutOver {
    pub server: Server,
    pub plan: Arc<Plan>,
    pub state: Arc<RunState>,
    pub lock_timeout: Duration,
    pub retries: u32,
    /// The longest pause between attempts (`--exponential-backoff-max-interval`); the pause
    /// starts at 200 ms and doubles.
    pub backoff_max: Duration,
    /// The reader's channel: for MySQL's final replay on the lock-holding session, and for
    /// checking that nothing was written to the original table during the swap.
    pub changes: Receiver<Batch>,
    /// `--force-kill-blockers`: kill the sessions that hold the table while the lock waits.
    pub kill_blockers: bool,
    /// `--include-triggers`: created on the shadow under the lock, just before the RENAME.
    pub triggers: Carried,
}

/// How long the cut-over's lock waits before `--force-kill-blockers` looks for blockers, and
/// how long a session must have been in its current state to count as one.
const BLOCKER_GRACE: Duration = Duration::from_secs(1);

/// Sessions holding a metadata lock on `table` for at least `BLOCKER_GRACE`, other than
/// `own`: MariaDB's `metadata_lock_info` plugin, MySQL's `performance_schema.metadata_locks`.
pub fn blockers_sql(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => {
            "SELECT DISTINCT m.THREAD_ID FROM information_schema.METADATA_LOCK_INFO m JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID \
             WHERE m.TABLE_SCHEMA = ? AND m.TABLE_NAME = ? AND m.THREAD_ID <> ? AND p.TIME >= ?"
        }
        Flavor::MySql => {
            "SELECT DISTINCT t.PROCESSLIST_ID FROM performance_schema.metadata_locks m JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID \
             WHERE m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME = ? AND m.LOCK_STATUS = 'GRANTED' AND t.PROCESSLIST_ID <> ? AND t.PROCESSLIST_TIME >= ?"
        }
    }
}

/// How an attempt ended, when it did not swap.
enum Attempt {
    /// Nothing was swapped; worth another try.
    Retry(String),
}

/// The tables session A write-locks: MySQL renames under the lock, so it locks both.
pub fn lock_sql(flavor: Flavor, names: &TableNames) -> String {
    match flavor {
        Flavor::MariaDb => format!("LOCK TABLES {} WRITE", names.q(&names.original)),
        Flavor::MySql => format!("LOCK TABLES {} WRITE, {} WRITE", names.q(&names.original), names.q(&names.shadow)),
    }
}

pub fn rename_sql(names: &TableNames) -> String {
    format!("RENAME TABLE {} TO {}, {} TO {}", names.q(&names.original), names.q(&names.old), names.q(&names.shadow), names.q(&names.original))
}

impl CutOver {
    /// Swaps the tables, retrying failed attempts with exponential backoff.
    pub async fn run(&self) -> Result<()> {
        let mut backoff = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=self.retries {
            if self.state.stopping() {
                return Err(self.state.take_failure().unwrap_or_else(|| Error::new(ExitKind::Aborted, "stopped during cut-over")));
            }
            let marker = self.state.next_marker();
            let outcome = match self.server.facts.flavor {
                Flavor::MariaDb => self.queued_rename_attempt(marker).await,
                Flavor::MySql => self.lock_rename_attempt(marker).await,
            };
            if !matches!(outcome, Ok(Ok(_))) {
                self.without_triggers_on_the_shadow().await?;
            }
            let outcome = outcome.inspect_err(|_| self.state.hold_at_marker.store(0, Ordering::SeqCst))?;
            match outcome {
                Ok(lock_time) => {
                    self.state.cut_over_lock_ms.store(lock_time.as_millis() as u64, Ordering::Relaxed);
                    tracing::info!("cut-over done: tables swapped after holding the lock for {} ms", lock_time.as_millis());
                    return self.verify_no_late_writes().await;
                }
                Err(Attempt::Retry(why)) => {
                    self.state.hold_at_marker.store(0, Ordering::SeqCst);
                    tracing::warn!("cut-over attempt {attempt} of {} did not swap: {why}; retrying in {backoff:?}", self.retries);
                    self.state.swap_started.store(false, Ordering::SeqCst);
                    last = why;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.backoff_max);
                }
            }
        }
        Err(Error::new(ExitKind::CutOverFailed, format!("every cut-over attempt ({}) failed; the original table is untouched. Last: {last}", self.retries))
            .with_fix("find what holds locks on the table (SHOW PROCESSLIST, long transactions), raise --cut-over-lock-timeout-seconds, and run again"))
    }

    /// After an attempt that did not swap, and before the applier is let go: the triggers an
    /// attempt may have created on the shadow are dropped, since they would fire on the
    /// replay. If they cannot be, the run stops with the applier still held.
    async fn without_triggers_on_the_shadow(&self) -> Result<()> {
        if self.triggers.is_empty() {
            return Ok(());
        }
        let mut conn = self.session().await?;
        crate::triggers::drop_from_shadow(&mut conn, &self.plan.names).await.map(|_| ()).map_err(|e| {
            Error::failed(format!(
                "{}; the triggers created on the new table for the swap could not be dropped after an attempt that did not swap, so the run stops before they could fire on replayed changes",
                e.message
            ))
        })
    }

    /// Proves that no write reached the original table between the final replay and the swap:
    /// every transaction the reader passed on after the lock marker, up to the RENAME, must be
    /// free of changes to it. A write there exists only in the old table; the run fails and
    /// names its keys rather than report a clean swap.
    ///
    /// The batches are taken from the channel while the reader gets there: every transaction
    /// on the server is one (most with no change to the table), the applier is held at the
    /// marker, and a busy server fills the channel before the RENAME otherwise, which left the
    /// reader waiting and the swap unproven.
    async fn verify_no_late_writes(&self) -> Result<()> {
        let deadline = Instant::now() + VERIFY_TIMEOUT;
        let mut late: Vec<String> = Vec::new();
        loop {
            // Read before draining: once the RENAME is seen, every batch before it is queued.
            let seen = self.state.rename_seen.load(Ordering::SeqCst);
            for batch in self.changes.try_iter() {
                self.state.backlog.fetch_sub(1, Ordering::Relaxed);
                late.extend(batch.changes.iter().map(|change| format_key(&change.key(&self.plan.key_positions))));
            }
            if seen {
                break;
            }
            if Instant::now() > deadline || self.state.has_failed() {
                return Err(Error::failed("the tables were swapped, but the binlog reader did not reach the RENAME, so alterego cannot prove no write reached the old table during the swap")
                    .with_fix(format!("compare {} with {} for rows written at the cut-over time", self.plan.names.q(&self.plan.names.original), self.plan.names.q(&self.plan.names.old))));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if late.is_empty() {
            return Ok(());
        }
        Err(Error::failed(format!(
            "the tables were swapped, but {} write(s) reached the old table after the final replay and are missing from the new one; keys: {}",
            late.len(),
            late.iter().take(20).cloned().collect::<Vec<_>>().join(", ")
        ))
        .with_fix(format!("copy those rows from {} into {} (the old table holds their final state)", self.plan.names.q(&self.plan.names.old), self.plan.names.q(&self.plan.names.original))))
    }

    async fn session(&self) -> Result<Conn> {
        let mut conn = self.server.conn().await?;
        let timeout = self.lock_timeout.as_secs().max(1);
        conn.query_drop(format!("SET SESSION lock_wait_timeout = {timeout}")).await.context(|| "setting lock_wait_timeout".into())?;
        Ok(conn)
    }

    async fn flush_to_marker(&self, conn: &mut Conn, marker: u64) -> Result<bool> {
        flush_to_marker(&self.state, &self.plan.names, conn, marker, self.lock_timeout * 2).await
    }

    /// One attempt of the queued-rename method. Outer error: fatal; inner: not swapped.
    async fn queued_rename_attempt(&self, marker: u64) -> Result<std::result::Result<Duration, Attempt>> {
        let Locked { mut a, mut b, mut watcher, locked_at } = match before_the_rename(self.lock_and_replay(marker).await)? {
            Ok(ready) => ready,
            Err(not_swapped) => return Ok(Err(not_swapped)),
        };
        self.state.swap_started.store(true, Ordering::SeqCst);
        let rename_id = b.id();
        let sql = rename_sql(&self.plan.names);
        self.state.pending_rename.store(rename_id, Ordering::SeqCst);
        let rename = tokio::spawn(async move { b.query_drop(sql).await.map_err(|e| describe_mysql_error(&e)) });
        let queued = self.wait_for_rename_to_queue(&mut watcher, rename_id, &rename).await;
        let (renamed, lock_time) = if matches!(queued, Ok(true)) {
            self.release(&mut a, locked_at).await;
            let lock_time = locked_at.elapsed();
            (rename.await.unwrap_or_else(|join| Err(join.to_string())), lock_time)
        } else {
            // Not queued (it failed, waits behind something else, or the watcher was lost):
            // A keeps `t` locked, so the RENAME cannot complete, until it has ended.
            if let Err(e) = &queued {
                tracing::warn!("lost sight of the RENAME ({e}); stopping it before unlocking");
            }
            let renamed = self.stop_rename(rename_id, rename).await;
            self.release(&mut a, locked_at).await;
            (renamed, locked_at.elapsed())
        };
        self.state.pending_rename.store(0, Ordering::SeqCst);
        match (queued, renamed) {
            (Err(e), _) if !e.transient => Err(e),
            (_, Ok(())) => Ok(Ok(lock_time)),
            (_, Err(why)) => self.resolve_ambiguous(why, lock_time).await,
        }
    }

    /// Everything before the RENAME: A locks `t`, the applier replays up to `marker`. Returns
    /// the sessions, or why not, with A unlocked.
    async fn lock_and_replay(&self, marker: u64) -> Result<std::result::Result<Locked, Attempt>> {
        let mut a = self.session().await?;
        let mut b = self.session().await?;
        let mut watcher = self.server.conn().await?;
        if let Err(e) = self.lock(&mut a, Flavor::MariaDb).await {
            return Ok(Err(Attempt::Retry(format!("locking the table: {}", describe_mysql_error(&e)))));
        }
        let locked_at = Instant::now();
        let flushed = self.flush_to_marker(&mut watcher, marker).await;
        if !matches!(flushed, Ok(true)) {
            self.release(&mut a, locked_at).await;
            flushed?;
            return Ok(Err(Attempt::Retry("the applier did not catch up while the table was locked".into())));
        }
        // A reads the original it holds; the shadow, which nothing writes now, is read beside.
        if let Err(e) = self.compare_changed_rows(Readers::Two { original: &mut a, shadow: &mut watcher }).await {
            self.release(&mut a, locked_at).await;
            return Err(e);
        }
        // Set on B, with its short lock wait: a session holding the shadow must not keep `t`
        // locked.
        if let Err(e) = self.carry_auto_increment(&mut a, Some(&mut b)).await {
            self.release(&mut a, locked_at).await;
            return Ok(Err(Attempt::Retry(format!("carrying the AUTO_INCREMENT counter: {e}"))));
        }
        if let Err(e) = self.triggers.create_on_shadow(&mut b, &self.plan.names).await {
            self.release(&mut a, locked_at).await;
            return retry_if_transient(e);
        }
        Ok(Ok(Locked { a, b, watcher, locked_at }))
    }

    /// Takes the cut-over's table lock on session `a`; with `--force-kill-blockers`, kills the
    /// sessions holding the table while the lock waits.
    async fn lock(&self, a: &mut Conn, flavor: Flavor) -> std::result::Result<(), mysql_async::Error> {
        let own = a.id();
        self.state.pending_lock.store(own, Ordering::SeqCst);
        let locked = self.lock_killing_blockers(a, flavor, own).await;
        self.state.pending_lock.store(0, Ordering::SeqCst);
        locked
    }

    async fn lock_killing_blockers(&self, a: &mut Conn, flavor: Flavor, own: u32) -> std::result::Result<(), mysql_async::Error> {
        let lock = a.query_drop(lock_sql(flavor, &self.plan.names));
        if !self.kill_blockers {
            return lock.await;
        }
        let killer = async {
            let mut watcher = None;
            loop {
                tokio::time::sleep(BLOCKER_GRACE).await;
                if watcher.is_none() {
                    watcher = self.server.conn().await.ok();
                }
                if let Some(w) = watcher.as_mut() {
                    if let Err(e) = self.kill_blockers_once(w, own).await {
                        tracing::warn!("--force-kill-blockers: {e}");
                    }
                }
            }
        };
        tokio::select! {
            locked = lock => locked,
            () = killer => unreachable!("the blocker killer never ends"),
        }
    }

    /// Kills each session that has held a metadata lock on the original table for a while.
    async fn kill_blockers_once(&self, watcher: &mut Conn, own: u32) -> Result<()> {
        let names = &self.plan.names;
        let sql = blockers_sql(self.server.facts.flavor);
        let blockers: Vec<u64> = watcher
            .exec(sql, (&names.database, &names.original, own, BLOCKER_GRACE.as_secs()))
            .await
            .context(|| "finding the sessions that block the cut-over (MariaDB needs the metadata_lock_info plugin: INSTALL SONAME 'metadata_lock_info')".into())?;
        for id in blockers {
            // Said before the KILL: once the blocker is gone the lock is granted and `lock`
            // drops this future, possibly before the KILL's reply is read.
            tracing::warn!("--force-kill-blockers: killing connection {id}, which holds {} and blocks the cut-over", names.q(&names.original));
            if let Err(e) = watcher.query_drop(format!("KILL CONNECTION {id}")).await {
                tracing::warn!("--force-kill-blockers: could not kill connection {id}: {}", describe_mysql_error(&e));
            }
        }
        Ok(())
    }

    /// Stops the RENAME sent on session `id` and waits until it has ended; its outcome. While
    /// A holds `t` it cannot complete, and once it has ended A can unlock safely. The KILL goes
    /// through a new connection (the watcher's may be the one that was lost), and only to a
    /// session still running this very RENAME: after a server restart, `id` may be another
    /// client's. Should the KILL not reach it, the RENAME ends at its own lock wait timeout.
    async fn stop_rename(&self, id: u32, rename: JoinHandle<std::result::Result<(), String>>) -> std::result::Result<(), String> {
        let sql = rename_sql(&self.plan.names);
        let stop = async {
            let mut conn = self.server.conn().await?;
            let running: Option<u32> =
                conn.exec_first("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO = ?", (id, &sql)).await.context(|| "looking for the RENAME's session".into())?;
            if running.is_some() {
                conn.query_drop(format!("KILL QUERY {id}")).await.context(|| format!("stopping the RENAME (KILL QUERY {id})"))?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = stop.await {
            tracing::warn!("{e}; waiting for the RENAME's lock wait to time out");
        }
        rename.await.unwrap_or_else(|join| Err(join.to_string()))
    }

    /// Unlocks A's tables. If the UNLOCK is lost with A's connection, A's session may still
    /// be alive on the server (a network failure): it is ended from a new connection, if the
    /// server has not restarted since the lock (a restart ended it anyway, and its id may be
    /// another client's now).
    async fn release(&self, a: &mut Conn, locked_at: Instant) {
        let Err(e) = a.query_drop("UNLOCK TABLES").await else { return };
        tracing::warn!("unlocking the tables: {}", describe_mysql_error(&e));
        let id = a.id();
        let end = async {
            let mut conn = self.server.conn().await?;
            let uptime = crate::throttle::status(&mut conn, "Uptime").await?;
            if uptime.is_some_and(|secs| Duration::from_secs(secs) > locked_at.elapsed() + Duration::from_secs(1)) {
                tracing::warn!("ending the locking session {id}, which may have outlived its connection");
                conn.query_drop(format!("KILL CONNECTION {id}")).await.ok();
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = end.await {
            tracing::warn!("{e}");
        }
    }

    /// Whether the RENAME session is queued on the original's metadata lock, polled up to the
    /// lock timeout (or until the RENAME returns).
    ///
    /// Its state only says it waits for *a* metadata lock. It takes them in name order, so it
    /// may still wait for `_t_gho` (another session reading the shadow in an open
    /// transaction); unlocking then would let writes queued on `t` run on the old table before
    /// the RENAME asks for `t`. So the shadow is probed too: a RENAME holding it refuses even the
    /// high-priority shared lock of `SHOW CREATE TABLE` at once, one still waiting for it does not.
    async fn wait_for_rename_to_queue(&self, watcher: &mut Conn, id: u32, rename: &JoinHandle<std::result::Result<(), String>>) -> Result<bool> {
        let deadline = Instant::now() + self.lock_timeout;
        let mut reported = false;
        while Instant::now() < deadline && !rename.is_finished() {
            let state: Option<Option<String>> =
                watcher.exec_first("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'RENAME%'", (id,)).await.context(|| "watching the RENAME session".into())?;
            if state.flatten().is_some_and(|s| s.to_ascii_lowercase().contains("metadata lock")) {
                if self.rename_holds_the_shadow(watcher).await? {
                    // Seen queued is not yet safe to unlock: without a short pause, writes queued
                    // on the table still ran before the RENAME in our tests (MariaDB 10.11).
                    tokio::time::sleep(RENAME_SETTLE).await;
                    return Ok(true);
                }
                if !reported {
                    tracing::info!("the RENAME waits for {}, which another session holds; keeping the table locked until it gets it", self.plan.names.q(&self.plan.names.shadow));
                    reported = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(false)
    }

    /// Whether the waiting RENAME holds the shadow table's metadata lock (so it waits for `t`).
    async fn rename_holds_the_shadow(&self, watcher: &mut Conn) -> Result<bool> {
        let probe = format!("SET STATEMENT lock_wait_timeout = 0 FOR SHOW CREATE TABLE {}", self.plan.names.q(&self.plan.names.shadow));
        match watcher.query_drop(probe).await {
            Ok(()) => Ok(false),
            Err(mysql_async::Error::Server(e)) if e.code == crate::error::codes::LOCK_WAIT_TIMEOUT => Ok(true),
            Err(e) => Err(e).context(|| "probing the shadow table's lock during the cut-over".into()),
        }
    }

    /// A RENAME that errored may still have happened (a lost connection): the tables tell.
    async fn resolve_ambiguous(&self, why: String, lock_time: Duration) -> Result<std::result::Result<Duration, Attempt>> {
        let names = &self.plan.names;
        // A new connection: the attempt's may have been lost with the RENAME's.
        let mut conn = self.server.conn().await?;
        let shadow_left = exists(&mut conn, &names.database, &names.shadow).await?;
        let old_there = exists(&mut conn, &names.database, &names.old).await?;
        if !shadow_left && old_there {
            tracing::warn!("the RENAME reported `{why}` but the tables were swapped");
            return Ok(Ok(lock_time));
        }
        Ok(Err(Attempt::Retry(format!("the RENAME failed: {why}"))))
    }

    /// One attempt of MySQL's lock-and-rename method.
    async fn lock_rename_attempt(&self, marker: u64) -> Result<std::result::Result<Duration, Attempt>> {
        let (mut a, locked_at) = match before_the_rename(self.lock_and_replay_on_a(marker).await)? {
            Ok(ready) => ready,
            Err(not_swapped) => return Ok(Err(not_swapped)),
        };
        self.state.swap_started.store(true, Ordering::SeqCst);
        let renamed = a.query_drop(rename_sql(&self.plan.names)).await;
        a.query_drop("UNLOCK TABLES").await.ok();
        let lock_time = locked_at.elapsed();
        match renamed {
            Ok(()) => Ok(Ok(lock_time)),
            Err(e) => self.resolve_ambiguous(describe_mysql_error(&e), lock_time).await,
        }
    }

    /// MySQL, everything before the RENAME: the applier replays up to `marker`, A locks both
    /// tables and replays the rest up to the binlog's end. Returns A (locked), or why not.
    async fn lock_and_replay_on_a(&self, marker: u64) -> Result<std::result::Result<(Conn, Instant), Attempt>> {
        let mut a = self.session().await?;
        let mut watcher = self.server.conn().await?;
        // Replay everything up to a marker first, so little is left to replay under the lock.
        if !self.flush_to_marker(&mut watcher, marker).await? {
            return Ok(Err(Attempt::Retry("the applier did not catch up".into())));
        }
        if let Err(e) = self.lock(&mut a, Flavor::MySql).await {
            return Ok(Err(Attempt::Retry(format!("locking the tables: {}", describe_mysql_error(&e)))));
        }
        let locked_at = Instant::now();
        let end = self.server.binlog_position(&mut watcher).await?;
        // The applier is paused at the marker; replay the rest on the session holding the locks.
        while self.state.applied_position() < end {
            let Ok(batch) = self.changes.recv_timeout(self.lock_timeout) else {
                a.query_drop("UNLOCK TABLES").await.ok();
                return Ok(Err(Attempt::Retry("the binlog did not reach the lock position in time".into())));
            };
            apply_with_retries(&mut a, &self.server, &self.plan, std::slice::from_ref(&batch), 1, Session::UnderLock, &KeyState::nothing(), false).await?;
            record_changed_keys(&self.state, &self.plan, std::slice::from_ref(&batch));
            self.state.set_applied(batch.end.clone());
            self.state.backlog.fetch_sub(1, Ordering::Relaxed);
        }
        if let Err(e) = self.compare_changed_rows(Readers::One(&mut a)).await {
            a.query_drop("UNLOCK TABLES").await.ok();
            return Err(e);
        }
        if let Err(e) = self.carry_auto_increment(&mut a, None).await {
            a.query_drop("UNLOCK TABLES").await.ok();
            return Ok(Err(Attempt::Retry(format!("carrying the AUTO_INCREMENT counter: {e}"))));
        }
        if let Err(e) = self.triggers.create_on_shadow(&mut a, &self.plan.names).await {
            a.query_drop("UNLOCK TABLES").await.ok();
            return retry_if_transient(e);
        }
        Ok(Ok((a, locked_at)))
    }

    /// Under the lock, with everything written to the original replayed: the original's
    /// AUTO_INCREMENT counter (read on `a`, which holds `t`) becomes the shadow's (set on
    /// `writer`, or on `a` itself, which holds both tables on MySQL), so the
    /// swapped table hands out neither ids the original already used (rows deleted at its end)
    /// nor ids far beyond them (ranges the copy's inserts reserved). Not when the ALTER sets
    /// the counter itself: that value stands, as it would after a native ALTER.
    async fn carry_auto_increment(&self, a: &mut Conn, writer: Option<&mut Conn>) -> Result<()> {
        let shadow_ddl = &self.plan.shadow_ddl;
        if !has_auto_increment_column(shadow_ddl) || auto_increment_option(shadow_ddl).is_some() {
            return Ok(());
        }
        let names = &self.plan.names;
        let Some(next) = auto_increment_of(a, names, &names.original).await? else { return Ok(()) };
        let writer = writer.unwrap_or(a);
        let shadow_next = auto_increment_of(writer, names, &names.shadow).await?;
        if shadow_next == Some(next) {
            return Ok(());
        }
        // A table option takes no placeholder; `next` is a number the server printed.
        let alter = format!("ALTER TABLE {} AUTO_INCREMENT = {next}", names.q(&names.shadow));
        writer.query_drop(&alter).await.context(|| alter.clone())?;
        tracing::info!("the new table's AUTO_INCREMENT counter is set to the original's: {next} (it was {})", shadow_next.map_or("unset".into(), |n| n.to_string()));
        Ok(())
    }

    /// Under the lock, with everything written to the original replayed: the rows replayed
    /// since the last comparison point must equal the original's, or nothing is swapped and
    /// the run fails naming them. Without a verification (`--skip-checksum`) nothing records
    /// them, and nothing is compared.
    async fn compare_changed_rows(&self, readers: Readers<'_>) -> Result<()> {
        let Some(changed) = self.state.changed_keys.recorded() else { return Ok(()) };
        let started = Instant::now();
        let differing = differing_keys(readers, &self.plan, &changed).await?;
        if !differing.is_empty() {
            return Err(mismatch(&differing, "compared under the cut-over lock"));
        }
        tracing::debug!("compared the {} rows replayed since the last comparison under the lock in {} ms", changed.len(), started.elapsed().as_millis());
        Ok(())
    }
}

/// A failure before the RENAME, with the lock released: tried again when it may pass next
/// time (a lock wait, a deadlock, a lost connection), fatal otherwise (a trigger the server
/// refuses, say, for want of a privilege).
fn retry_if_transient<T>(e: Error) -> Result<std::result::Result<T, Attempt>> {
    if e.transient {
        Ok(Err(Attempt::Retry(e.message)))
    } else {
        Err(e)
    }
}

/// A table's next AUTO_INCREMENT value, from its `SHOW CREATE TABLE` (none when it has not
/// been used).
async fn auto_increment_of(conn: &mut Conn, names: &TableNames, table: &str) -> Result<Option<u64>> {
    Ok(auto_increment_option(&show_create(conn, &names.database, table).await?))
}

/// A queued-rename attempt ready for its RENAME.
struct Locked {
    /// Holds `t` write-locked, since `locked_at`.
    a: Conn,
    /// Will send the RENAME.
    b: Conn,
    /// Watches B and the applier.
    watcher: Conn,
    locked_at: Instant,
}

/// The outcome of an attempt's steps before its RENAME: a connection lost there (a server
/// restart, a killed session) swapped nothing, so the attempt is tried again.
fn before_the_rename<T>(outcome: Result<std::result::Result<T, Attempt>>) -> Result<std::result::Result<T, Attempt>> {
    match outcome {
        Err(e) if e.transient => Ok(Err(Attempt::Retry(format!("a connection was lost before the RENAME: {e}")))),
        outcome => outcome,
    }
}

/// Holds the applier at `marker`, writes it, and waits up to `timeout` until everything before
/// it in the binlog has been replayed (the applier then stays paused until the hold is lifted).
pub async fn flush_to_marker(state: &RunState, names: &TableNames, conn: &mut Conn, marker: u64, timeout: Duration) -> Result<bool> {
    state.hold_at_marker.store(marker, Ordering::SeqCst);
    changelog::write_marker(conn, names, marker).await?;
    let deadline = Instant::now() + timeout;
    while state.applied_marker.load(Ordering::SeqCst) < marker {
        if state.stopping() || Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_per_flavor() {
        let names = TableNames::new("shop", "orders").unwrap();
        assert_eq!(lock_sql(Flavor::MariaDb, &names), "LOCK TABLES `shop`.`orders` WRITE");
        assert_eq!(lock_sql(Flavor::MySql, &names), "LOCK TABLES `shop`.`orders` WRITE, `shop`.`_orders_gho` WRITE");
        assert_eq!(rename_sql(&names), "RENAME TABLE `shop`.`orders` TO `shop`.`_orders_del`, `shop`.`_orders_gho` TO `shop`.`orders`");
        assert!(blockers_sql(Flavor::MariaDb).contains("information_schema.METADATA_LOCK_INFO"));
        assert!(blockers_sql(Flavor::MySql).contains("performance_schema.metadata_locks") && blockers_sql(Flavor::MySql).contains("'GRANTED'"));
        for flavor in [Flavor::MariaDb, Flavor::MySql] {
            assert_eq!(blockers_sql(flavor).matches('?').count(), 4, "schema, table, own id, grace");
        }
    }
}
