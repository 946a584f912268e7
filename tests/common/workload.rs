//! Concurrent writers for migration tests. Every transaction runs each statement twice, on the
//! migrated table and on an oracle table with the original schema, inside one transaction: the
//! oracle then holds exactly what the writers' acknowledged transactions imply, whatever the
//! migration did, and the final table must equal it on the shared columns.
//!
//! Writers own disjoint rows (id % WRITERS), so they never conflict with each other; a deadlock
//! against the copy's shared locks rolls back both tables and is retried, and counted.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, TxOpts};

pub const WRITERS: i64 = 4;
/// A key change adds this to the id; a multiple of WRITERS keeps the row with its writer.
pub const MOVE: i64 = 100_000_000;

#[derive(Clone)]
pub struct Workload {
    pub table: String,
    pub oracle: String,
    /// Columns a write sets, besides the key columns.
    pub columns: Vec<String>,
    /// Rows of SQL literals for `columns`.
    pub values: Vec<Vec<String>>,
    /// Key columns an insert sets, and their literals for a new id.
    pub key_columns: Vec<String>,
    pub key_values: fn(i64) -> Vec<String>,
    /// SET clause that moves a row to a new key (adds MOVE to its id).
    pub move_key: String,
    /// Ids 1..=initial_rows exist when the writers start.
    pub initial_rows: i64,
    /// Reconnect after a lost connection instead of failing (server restart tests).
    pub tolerate_disconnects: bool,
}

#[derive(Default)]
pub struct Stats {
    pub transactions: AtomicU64,
    pub deadlocks: AtomicU64,
    pub disconnects: AtomicU64,
    pub errors: std::sync::Mutex<Vec<String>>,
}

pub struct Running {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Running {
    pub fn transactions(&self) -> u64 {
        self.stats.transactions.load(Ordering::Relaxed)
    }

    /// Stops the writers and asserts none hit an unexpected error.
    pub async fn stop(self) -> Arc<Stats> {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.await.unwrap();
        }
        let errors = self.stats.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "writer errors: {errors:?}");
        self.stats
    }
}

/// A small xorshift generator: reproducible, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// An integer in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

impl Workload {
    /// Loads `initial_rows` rows into both tables, cycling through the value rows.
    pub async fn load(&self, conn: &mut Conn) {
        let mut cols = self.key_columns.clone();
        cols.extend(self.columns.clone());
        for (i, row) in self.values.iter().enumerate() {
            let key_exprs = key_exprs_for_seq(self.key_values);
            let sql = format!(
                "INSERT INTO {} ({}) SELECT {}, {} FROM {} WHERE seq % {} = {}",
                self.table,
                cols.join(", "),
                key_exprs.join(", "),
                row.join(", "),
                super::seq(1, self.initial_rows as u64),
                self.values.len(),
                i
            );
            conn.query_drop(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.query_drop(format!("INSERT INTO {} ({c}) SELECT {c} FROM {}", self.oracle, self.table, c = cols.join(", "))).await.unwrap();
    }

    pub fn start(&self, opts: Opts, seed: u64) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let handles = (0..WRITERS)
            .map(|w| {
                let (me, opts, stop, stats) = (self.clone(), opts.clone(), stop.clone(), stats.clone());
                tokio::spawn(async move { me.writer(w, opts, stop, stats, seed + w as u64).await })
            })
            .collect();
        Running { stop, handles, stats }
    }

    async fn connect(opts: &Opts) -> Option<Conn> {
        let mut conn = Conn::new(opts.clone()).await.ok()?;
        conn.query_drop("SET SESSION innodb_lock_wait_timeout = 120, SESSION lock_wait_timeout = 120").await.ok()?;
        Some(conn)
    }

    async fn writer(self, w: i64, opts: Opts, stop: Arc<AtomicBool>, stats: Arc<Stats>, seed: u64) {
        let mut conn = Self::connect(&opts).await.expect("writer connection");
        let mut rng = Rng::new(seed);
        let mut live: Vec<i64> = (1..=self.initial_rows).filter(|id| id % WRITERS == w).collect();
        let mut next_new = 10_000_000 + w;
        while !stop.load(Ordering::SeqCst) {
            let steps = if rng.below(4) == 0 { 2 + rng.below(3) } else { 1 };
            let mut planned = live.clone();
            let mut statements = Vec::new();
            for _ in 0..steps {
                statements.push(self.plan_step(&mut rng, &mut planned, &mut next_new));
            }
            match self.run_transaction(&mut conn, &statements).await {
                Ok(()) => {
                    live = planned;
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.contains("1213") || e.contains("1205") => {
                    stats.deadlocks.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if self.tolerate_disconnects && !e.contains("Server error") => {
                    // The server went away: the transaction committed on both tables or on
                    // neither, so the oracle still holds. Reconnect and carry on.
                    stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    if let Some(c) = Self::connect(&opts).await {
                        conn = c;
                    }
                }
                Err(e) => {
                    stats.errors.lock().unwrap().push(e);
                    return;
                }
            }
        }
    }

    /// One statement (with `{T}` for the table), updating the writer's view of its live ids.
    fn plan_step(&self, rng: &mut Rng, live: &mut Vec<i64>, next_new: &mut i64) -> String {
        let op = if live.is_empty() { 0 } else { rng.below(10) };
        let values = &self.values[rng.below(self.values.len() as u64) as usize];
        match op {
            0..=2 => {
                let id = *next_new;
                *next_new += WRITERS;
                live.push(id);
                let mut cols = self.key_columns.clone();
                cols.extend(self.columns.clone());
                let mut vals = (self.key_values)(id);
                vals.extend(values.clone());
                format!("INSERT INTO {{T}} ({}) VALUES ({})", cols.join(", "), vals.join(", "))
            }
            3..=5 => {
                let id = live[rng.below(live.len() as u64) as usize];
                let sets: Vec<String> = self.columns.iter().zip(values).map(|(c, v)| format!("{c} = {v}")).collect();
                format!("UPDATE {{T}} SET {} WHERE id = {id}", sets.join(", "))
            }
            6..=7 => {
                let i = rng.below(live.len() as u64) as usize;
                if live[i] >= MOVE {
                    return format!("DELETE FROM {{T}} WHERE id = {}", live.swap_remove(i));
                }
                let id = live[i];
                live[i] = id + MOVE;
                format!("UPDATE {{T}} SET {} WHERE id = {id}", self.move_key)
            }
            _ => {
                let i = rng.below(live.len() as u64) as usize;
                format!("DELETE FROM {{T}} WHERE id = {}", live.swap_remove(i))
            }
        }
    }

    async fn run_transaction(&self, conn: &mut Conn, statements: &[String]) -> Result<(), String> {
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(|e| e.to_string())?;
        for s in statements {
            for table in [&self.table, &self.oracle] {
                let sql = s.replace("{T}", table);
                tx.query_drop(&sql).await.map_err(|e| format!("{sql}: {e}"))?;
            }
        }
        tx.commit().await.map_err(|e| e.to_string())
    }
}

/// The key literals for `seq` in an INSERT ... SELECT: the key function applied to a marker id,
/// with the marker replaced by `seq`.
fn key_exprs_for_seq(key_values: fn(i64) -> Vec<String>) -> Vec<String> {
    const MARK: i64 = 987_654_321;
    key_values(MARK).into_iter().map(|e| e.replace(&MARK.to_string(), "seq")).collect()
}
