//! Concurrent writers for a soak round. Each transaction (1 to 4 statements: inserts, updates,
//! key-changing updates, deletes, some over several rows) runs every statement on the migrated
//! table `t` and then on the oracle `t_oracle`, in one transaction: only a committed transaction
//! changes either, so the oracle holds the effect of every acknowledged write.
//!
//! Invariants: writer `w` owns the row ids `id % writers == w`, so writers never collide on a
//! key; a row's key is a function of its id (see `schema`), and a key change moves the row to
//! `id + MOVE`; writers set only columns that exist under the same name before and after the
//! ALTER. A transaction that fails is rolled back on both tables; a lost connection (a server
//! restart) leaves both tables committed together or not at all, so the writer reconnects and
//! goes on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use super::schema::{quote, Role, Table};
use crate::common::workload::Rng;

/// A key change adds this to the row id.
pub const MOVE: i64 = 500_000;
/// Ids of rows inserted by the writers start here (the initial rows are 1..=rows).
const FIRST_NEW: i64 = 50_000;

pub struct WriterPlan {
    pub table: Arc<Table>,
    /// Data columns the writers may set.
    pub writable: Vec<usize>,
    pub writers: i64,
    pub pause_ms: u64,
    pub seed: u64,
    pub initial_rows: i64,
}

#[derive(Default)]
pub struct Stats {
    pub committed: AtomicU64,
    pub rolled_back: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

pub struct Running {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Running {
    /// Stops the writers; returns their unexpected errors.
    pub async fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for handle in self.handles.drain(..) {
            handle.await.ok();
        }
        self.stats.errors.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How a failed transaction ended.
enum Failure {
    /// Deadlock, lock wait timeout: rolled back, not acknowledged.
    RolledBack,
    /// The connection is gone.
    Disconnected,
    Unexpected(String),
}

fn classify(error: &mysql_async::Error, sql: &str) -> Failure {
    match error {
        mysql_async::Error::Server(e) if [1205, 1213].contains(&e.code) => Failure::RolledBack,
        mysql_async::Error::Server(e) if [1053, 1927, 2006, 2013].contains(&e.code) => Failure::Disconnected,
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Failure::Disconnected,
        other => Failure::Unexpected(format!("{sql}: {other}")),
    }
}

pub fn start(plan: WriterPlan, opts: Opts) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let plan = Arc::new(plan);
    let handles = (0..plan.writers)
        .map(|w| {
            let writer = Writer { plan: plan.clone(), me: w, rng: Rng::new(plan.seed.wrapping_add(w as u64 * 7919)), next_new: FIRST_NEW + w };
            tokio::spawn(writer.run(opts.clone(), stop.clone(), stats.clone()))
        })
        .collect();
    Running { stop, handles, stats }
}

struct Writer {
    plan: Arc<WriterPlan>,
    me: i64,
    rng: Rng,
    next_new: i64,
}

async fn connect(opts: &Opts, stop: &AtomicBool) -> Option<Conn> {
    while !stop.load(Ordering::SeqCst) {
        if let Ok(mut conn) = Conn::new(opts.clone()).await {
            if conn.query_drop("SET SESSION time_zone = '+00:00', SESSION innodb_lock_wait_timeout = 20, SESSION lock_wait_timeout = 60").await.is_ok() {
                return Some(conn);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

impl Writer {
    async fn run(mut self, opts: Opts, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
        let mut live: Vec<i64> = (1..=self.plan.initial_rows).filter(|id| id % self.plan.writers == self.me).collect();
        let Some(mut conn) = connect(&opts, &stop).await else { return };
        while !stop.load(Ordering::SeqCst) {
            let mut planned = live.clone();
            let steps = if self.rng.chance(60) { 1 } else { self.rng.between(2, 4) };
            let statements: Vec<String> = (0..steps).map(|_| self.statement(&mut planned)).collect();
            match transaction(&mut conn, &statements).await {
                Ok(()) => {
                    live = planned;
                    stats.committed.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failure::RolledBack) => {
                    stats.rolled_back.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failure::Disconnected) => {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = connect(&opts, &stop).await else { return };
                    conn = c;
                }
                Err(Failure::Unexpected(e)) => {
                    stats.errors.lock().unwrap().push(e);
                    let Some(c) = connect(&opts, &stop).await else { return };
                    conn = c;
                }
            }
            tokio::time::sleep(Duration::from_millis(self.rng.below(self.plan.pause_ms + 1))).await;
        }
    }

    /// One statement, with `{T}` for the table, updating the writer's view of its live ids.
    fn statement(&mut self, live: &mut Vec<i64>) -> String {
        let choice = if live.is_empty() { 0 } else { self.rng.below(100) };
        match choice {
            0..=29 => self.insert(live),
            30..=59 if !self.plan.writable.is_empty() => self.update(live),
            60..=74 => self.move_key(live),
            _ => self.delete(live),
        }
    }

    fn new_id(&mut self) -> i64 {
        let id = self.next_new;
        self.next_new += self.plan.writers;
        id
    }

    /// 1 to 3 live ids, taken out of `live` when `remove`.
    fn some_live(&mut self, live: &mut Vec<i64>, remove: bool) -> Vec<i64> {
        let count = if self.rng.chance(25) { 2 } else { 1 };
        let mut ids = Vec::new();
        for _ in 0..count.min(live.len()) {
            let i = self.rng.below(live.len() as u64) as usize;
            ids.push(if remove { live.swap_remove(i) } else { live[i] });
        }
        ids.dedup();
        ids
    }

    fn matching(&self, ids: &[i64]) -> String {
        ids.iter().map(|&id| format!("({})", self.plan.table.key_match(id))).collect::<Vec<_>>().join(" OR ")
    }

    fn insert(&mut self, live: &mut Vec<i64>) -> String {
        let table = self.plan.table.clone();
        let ids: Vec<i64> = (0..if self.rng.chance(25) { 3 } else { 1 }).map(|_| self.new_id()).collect();
        live.extend(&ids);
        let mut columns = table.key_columns();
        columns.extend(self.plan.writable.iter().filter(|_| self.rng.chance(60)));
        let rows: Vec<String> = ids
            .iter()
            .map(|&id| {
                let values: Vec<String> =
                    columns.iter().map(|&c| if table.columns[c].role == Role::Data { table.columns[c].random_value(&mut self.rng) } else { table.columns[c].key_literal(id) }).collect();
                format!("({})", values.join(", "))
            })
            .collect();
        let names: Vec<String> = columns.iter().map(|&c| quote(&table.columns[c].name)).collect();
        format!("INSERT INTO {{T}} ({}) VALUES {}", names.join(", "), rows.join(", "))
    }

    fn assignments(&mut self) -> Vec<String> {
        let table = self.plan.table.clone();
        let mut chosen: Vec<usize> = self.plan.writable.iter().copied().filter(|_| self.rng.chance(50)).collect();
        if chosen.is_empty() {
            chosen.push(*self.rng.pick(&self.plan.writable));
        }
        chosen.iter().map(|&c| format!("{} = {}", quote(&table.columns[c].name), table.columns[c].random_value(&mut self.rng))).collect()
    }

    fn update(&mut self, live: &mut Vec<i64>) -> String {
        let ids = self.some_live(live, false);
        format!("UPDATE {{T}} SET {} WHERE {}", self.assignments().join(", "), self.matching(&ids))
    }

    /// Moves a row to the key of `id + MOVE` (every key column, and some data); a row moved once
    /// is deleted instead.
    fn move_key(&mut self, live: &mut Vec<i64>) -> String {
        let i = self.rng.below(live.len() as u64) as usize;
        let id = live[i];
        if id >= MOVE {
            live.swap_remove(i);
            return format!("DELETE FROM {{T}} WHERE {}", self.matching(&[id]));
        }
        live[i] = id + MOVE;
        let table = self.plan.table.clone();
        let mut sets: Vec<String> = table.key_columns().iter().map(|&c| format!("{} = {}", quote(&table.columns[c].name), table.columns[c].key_literal(id + MOVE))).collect();
        if !self.plan.writable.is_empty() && self.rng.chance(50) {
            sets.extend(self.assignments());
        }
        format!("UPDATE {{T}} SET {} WHERE {}", sets.join(", "), self.matching(&[id]))
    }

    fn delete(&mut self, live: &mut Vec<i64>) -> String {
        let ids = self.some_live(live, true);
        format!("DELETE FROM {{T}} WHERE {}", self.matching(&ids))
    }
}

/// Runs `statements` on `t` and then `t_oracle` each, in one transaction.
async fn transaction(conn: &mut Conn, statements: &[String]) -> Result<(), Failure> {
    let mut run = async |sql: &str| conn.query_drop(sql).await.map_err(|e| classify(&e, sql));
    let mut result = run("START TRANSACTION").await;
    for statement in statements {
        for table in ["`t`", "`t_oracle`"] {
            if result.is_ok() {
                result = run(&statement.replace("{T}", table)).await;
            }
        }
    }
    if result.is_ok() {
        result = run("COMMIT").await;
    }
    if result.is_err() {
        // Undo what the failed statement left of the transaction; a dead connection has undone it.
        run("ROLLBACK").await.ok();
    }
    result
}
