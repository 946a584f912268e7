//! The atomic swap of the original and shadow tables.
//!
//! MariaDB refuses `RENAME TABLE` under `LOCK TABLES`, so it uses the sentry method: session A
//! creates `_<t>_del` as a sentry and write-locks it with the original; once the applier has
//! replayed everything up to a marker written under that lock, session B issues
//! `RENAME TABLE t TO _t_del, _t_gho TO t`, which queues on the metadata lock; when B is seen
//! waiting, A drops the sentry and unlocks, and the RENAME runs before any queued write.
//! MySQL 8.0.13+ renames under the lock itself (the applier's last changes are replayed on the
//! lock-holding session first).
//!
//! Invariants: if A dies, the sentry still exists and the RENAME fails (nothing swapped); if B
//! dies, A drops the sentry and unlocks (nothing swapped); lock waits are short
//! (`--cut-over-lock-timeout-seconds`) and the attempt is retried with backoff; an outcome made
//! ambiguous by a lost connection is resolved from which tables exist.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::apply::apply_with_retries;
use crate::binlog::stream::Batch;
use crate::changelog;
use crate::error::{describe_mysql_error, Context, Error, ExitKind, Result};
use crate::inspect::exists;
use crate::plan::{Plan, TableNames};
use crate::server::{Flavor, Server};
use crate::state::RunState;

pub struct CutOver {
    pub server: Server,
    pub plan: Arc<Plan>,
    pub state: Arc<RunState>,
    pub lock_timeout: Duration,
    pub retries: u32,
    /// The reader's channel, for MySQL's final replay on the lock-holding session.
    pub changes: Receiver<Batch>,
}

/// How an attempt ended, when it did not swap.
enum Attempt {
    /// Nothing was swapped; worth another try.
    Retry(String),
}

pub fn sentry_sql(names: &TableNames) -> String {
    format!("CREATE TABLE {} (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB COMMENT='alterego cut-over sentry'", names.q(&names.old))
}

/// The tables session A write-locks.
pub fn lock_sql(flavor: Flavor, names: &TableNames) -> String {
    let second = match flavor {
        Flavor::MariaDb => &names.old,
        Flavor::MySql => &names.shadow,
    };
    format!("LOCK TABLES {} WRITE, {} WRITE", names.q(&names.original), names.q(second))
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
            let marker = attempt as u64;
            let outcome = match self.server.facts.flavor {
                Flavor::MariaDb => self.sentry_attempt(marker).await,
                Flavor::MySql => self.lock_rename_attempt(marker).await,
            };
            self.state.hold_at_marker.store(0, Ordering::SeqCst);
            match outcome? {
                Ok(lock_time) => {
                    tracing::info!("cut-over done: tables swapped after holding the lock for {} ms", lock_time.as_millis());
                    return Ok(());
                }
                Err(Attempt::Retry(why)) => {
                    tracing::warn!("cut-over attempt {attempt} of {} did not swap: {why}; retrying in {backoff:?}", self.retries);
                    self.state.swap_started.store(false, Ordering::SeqCst);
                    last = why;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        Err(Error::new(ExitKind::CutOverFailed, format!("every cut-over attempt ({}) failed; the original table is untouched. Last: {last}", self.retries))
            .with_fix("find what holds locks on the table (SHOW PROCESSLIST, long transactions), raise --cut-over-lock-timeout-seconds, and run again"))
    }

    async fn session(&self) -> Result<Conn> {
        let mut conn = self.server.conn().await?;
        let timeout = self.lock_timeout.as_secs().max(1);
        conn.query_drop(format!("SET SESSION lock_wait_timeout = {timeout}")).await.context(|| "setting lock_wait_timeout".into())?;
        Ok(conn)
    }

    /// Holds the applier at `marker` and waits until everything before it is replayed.
    async fn flush_to_marker(&self, conn: &mut Conn, marker: u64) -> Result<bool> {
        self.state.hold_at_marker.store(marker, Ordering::SeqCst);
        changelog::write_marker(conn, &self.plan.names, marker).await?;
        let deadline = Instant::now() + self.lock_timeout * 2;
        while self.state.applied_marker.load(Ordering::SeqCst) < marker {
            if self.state.stopping() || Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(true)
    }

    /// One attempt of the sentry method. Outer error: fatal; inner: not swapped.
    async fn sentry_attempt(&self, marker: u64) -> Result<std::result::Result<Duration, Attempt>> {
        let names = &self.plan.names;
        let mut a = self.session().await?;
        let mut b = self.session().await?;
        let mut watcher = self.server.conn().await?;
        if let Err(e) = a.query_drop(sentry_sql(names)).await {
            return Ok(Err(Attempt::Retry(format!("creating the sentry table: {}", describe_mysql_error(&e)))));
        }
        if let Err(e) = a.query_drop(lock_sql(Flavor::MariaDb, names)).await {
            self.release(&mut a).await?;
            return Ok(Err(Attempt::Retry(format!("locking the table: {}", describe_mysql_error(&e)))));
        }
        let locked_at = Instant::now();
        if !self.flush_to_marker(&mut watcher, marker).await? {
            self.release(&mut a).await?;
            return Ok(Err(Attempt::Retry("the applier did not catch up while the table was locked".into())));
        }
        self.state.swap_started.store(true, Ordering::SeqCst);
        let rename_id = b.id();
        let sql = rename_sql(names);
        let rename = tokio::spawn(async move { b.query_drop(sql).await.map_err(|e| describe_mysql_error(&e)) });
        if !self.wait_for_rename_to_queue(&mut watcher, rename_id).await? {
            // Not queued (failed, or stuck behind something else): stop it before the sentry goes.
            watcher.query_drop(format!("KILL QUERY {rename_id}")).await.ok();
        }
        self.release(&mut a).await?;
        let lock_time = locked_at.elapsed();
        match rename.await {
            Ok(Ok(())) => Ok(Ok(lock_time)),
            Ok(Err(e)) => self.resolve_ambiguous(&mut watcher, e, lock_time).await,
            Err(join) => self.resolve_ambiguous(&mut watcher, join.to_string(), lock_time).await,
        }
    }

    /// Drops the sentry (if this session still holds it) and unlocks.
    async fn release(&self, a: &mut Conn) -> Result<()> {
        a.query_drop(format!("DROP TABLE IF EXISTS {}", self.plan.names.q(&self.plan.names.old))).await.context(|| "dropping the cut-over sentry".into())?;
        a.query_drop("UNLOCK TABLES").await.context(|| "unlocking the tables".into())
    }

    /// Whether the RENAME session is queued on the metadata lock, polled up to the lock timeout.
    async fn wait_for_rename_to_queue(&self, watcher: &mut Conn, id: u32) -> Result<bool> {
        let deadline = Instant::now() + self.lock_timeout;
        while Instant::now() < deadline {
            let state: Option<Option<String>> = watcher
                .exec_first("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'RENAME%'", (id,))
                .await
                .context(|| "watching the RENAME session".into())?;
            if state.flatten().is_some_and(|s| s.to_ascii_lowercase().contains("metadata lock")) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(false)
    }

    /// A RENAME that errored may still have happened (a lost connection): the tables tell.
    async fn resolve_ambiguous(&self, conn: &mut Conn, why: String, lock_time: Duration) -> Result<std::result::Result<Duration, Attempt>> {
        let names = &self.plan.names;
        let shadow_left = exists(conn, &names.database, &names.shadow).await?;
        let old_there = exists(conn, &names.database, &names.old).await?;
        if !shadow_left && old_there {
            tracing::warn!("the RENAME reported `{why}` but the tables were swapped");
            return Ok(Ok(lock_time));
        }
        Ok(Err(Attempt::Retry(format!("the RENAME failed: {why}"))))
    }

    /// One attempt of MySQL's lock-and-rename method.
    async fn lock_rename_attempt(&self, marker: u64) -> Result<std::result::Result<Duration, Attempt>> {
        let names = &self.plan.names;
        let mut a = self.session().await?;
        let mut watcher = self.server.conn().await?;
        // Replay everything up to a marker first, so little is left to replay under the lock.
        if !self.flush_to_marker(&mut watcher, marker).await? {
            return Ok(Err(Attempt::Retry("the applier did not catch up".into())));
        }
        if let Err(e) = a.query_drop(lock_sql(Flavor::MySql, names)).await {
            return Ok(Err(Attempt::Retry(format!("locking the tables: {}", describe_mysql_error(&e)))));
        }
        let locked_at = Instant::now();
        let end = self.server.binlog_position(&mut watcher).await?;
        // The applier is paused at the marker; replay the rest on the session holding the locks.
        while self.state.applied_position.lock().expect("position lock").clone() < end {
            let Ok(batch) = self.changes.recv_timeout(self.lock_timeout) else {
                a.query_drop("UNLOCK TABLES").await.ok();
                return Ok(Err(Attempt::Retry("the binlog did not reach the lock position in time".into())));
            };
            apply_with_retries(&mut a, &self.server, &self.plan, std::slice::from_ref(&batch), 1).await?;
            *self.state.applied_position.lock().expect("position lock") = batch.end.clone();
            self.state.backlog.fetch_sub(1, Ordering::Relaxed);
        }
        self.state.swap_started.store(true, Ordering::SeqCst);
        let renamed = a.query_drop(rename_sql(names)).await;
        a.query_drop("UNLOCK TABLES").await.ok();
        let lock_time = locked_at.elapsed();
        match renamed {
            Ok(()) => Ok(Ok(lock_time)),
            Err(e) => self.resolve_ambiguous(&mut watcher, describe_mysql_error(&e), lock_time).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_per_flavor() {
        let names = TableNames::new("shop", "orders").unwrap();
        assert_eq!(lock_sql(Flavor::MariaDb, &names), "LOCK TABLES `shop`.`orders` WRITE, `shop`.`_orders_del` WRITE");
        assert_eq!(lock_sql(Flavor::MySql, &names), "LOCK TABLES `shop`.`orders` WRITE, `shop`.`_orders_gho` WRITE");
        assert_eq!(rename_sql(&names), "RENAME TABLE `shop`.`orders` TO `shop`.`_orders_del`, `shop`.`_orders_gho` TO `shop`.`orders`");
        assert!(sentry_sql(&names).starts_with("CREATE TABLE `shop`.`_orders_del` "));
    }
}
