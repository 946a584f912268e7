//! Copying the existing rows into the shadow table in key-range chunks.
//!
//! Each chunk is one `INSERT INTO shadow ... SELECT ... FROM original WHERE <key range> LOCK IN
//! SHARE MODE ON DUPLICATE KEY UPDATE ...`. The shared locks hold the chunk's rows still until it
//! commits, so every later change to them reaches the binlog after the copy and is replayed
//! after it; a row the applier already wrote is overwritten with the (newer) copied image.
//!
//! Chunks are copied by `--threads` workers in parallel; each chunk's argument above holds on
//! its own, so their order does not matter. Chunk sizes follow `--chunk-time` (see
//! [`ChunkSizer`]).
//!
//! Invariants: no chunk is handed out while the run is throttled; chunks are disjoint and walk the chosen key in order up to the maximum key seen
//! at the start (rows inserted later arrive through the binlog); a chunk that collides with a
//! different row on a unique key is retried once the applier has caught up (the other row may
//! be a stale image), and fails the run naming the key range when the collision persists.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use crate::apply::{format_key, is_collision, names_index};
use crate::error::{codes, Error, Result};
use crate::plan::Plan;
use crate::server::Server;
use crate::sql::{column_list, quote_ident, tuple_after, tuple_compare_params, tuple_up_to, upsert_clause};
use crate::state::RunState;

/// The most copy workers a run can have (`--threads`, `threads=N`).
pub const MAX_THREADS: u64 = 16;

/// How many times a colliding chunk is retried after the applier catches up.
const COLLISION_RETRIES: u32 = 3;

/// Bounds of the chunk size the sizer chooses.
const MIN_CHUNK_ROWS: u64 = 10;
const MAX_CHUNK_ROWS: u64 = 100_000;

pub struct Copier {
    server: Server,
    plan: Arc<Plan>,
    state: Arc<RunState>,
    walk: KeyWalk,
    retries: u32,
    sizer: ChunkSizer,
}

/// Sizes chunks toward a target duration (`--chunk-time`): after each chunk, the rows that
/// would have taken the target at that chunk's pace. It grows by at most half per chunk, so one
/// fast chunk does not make the next one huge; after an outlier (over twice the target) it
/// shrinks to the fitting size at once, so writers do not wait on long chunks twice.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSizer {
    /// Zero: the chunk size stays where the operator put it.
    pub target: std::time::Duration,
}

impl ChunkSizer {
    /// The size for the chunks to come, after a chunk of `rows` rows took `elapsed`; `current`
    /// is the size in force (kept when there is nothing to learn).
    pub fn next(&self, current: u64, rows: u64, elapsed: std::time::Duration) -> u64 {
        if self.target.is_zero() || rows == 0 {
            return current;
        }
        let fitting = (rows as f64 * self.target.as_secs_f64() / elapsed.as_secs_f64().max(1e-6)) as u64;
        let next = if fitting >= rows {
            fitting.min(rows + rows / 2)
        } else if elapsed > self.target * 2 {
            fitting
        } else {
            fitting.max(rows - rows / 4)
        };
        next.clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS)
    }
}

/// Walks the original table's chosen key in ranges of a given number of rows. Shared by the
/// copy and the verification, so both cut the table the same way.
pub struct KeyWalk {
    plan: Arc<Plan>,
}

impl KeyWalk {
    pub fn new(plan: Arc<Plan>) -> KeyWalk {
        KeyWalk { plan }
    }

    fn source(&self) -> String {
        format!("{} FORCE INDEX ({})", self.plan.names.q(&self.plan.names.original), quote_ident(&self.plan.key_name))
    }

    /// The highest key of the original table, or `None` when it is empty.
    pub async fn max_key(&self, conn: &mut Conn) -> std::result::Result<Option<Vec<Value>>, mysql_async::Error> {
        let desc = self.plan.key_source.iter().map(|k| format!("{} DESC", quote_ident(k))).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {} FROM {} ORDER BY {desc} LIMIT 1", column_list(&self.plan.key_source), self.source());
        let max: Option<Row> = conn.exec_first(sql, ()).await?;
        Ok(max.map(Row::unwrap))
    }

    /// The last key of the range after `lower`: `chunk_size` rows on, or `max`.
    pub async fn next_upper(&self, conn: &mut Conn, lower: Option<&[Value]>, max: &[Value], chunk_size: u64) -> std::result::Result<Vec<Value>, mysql_async::Error> {
        let (range, params) = key_range(&self.plan.key_source, lower, max);
        let keys = column_list(&self.plan.key_source);
        let sql = format!("SELECT {keys} FROM {} WHERE {range} ORDER BY {keys} LIMIT 1 OFFSET {}", self.source(), chunk_size.max(1) - 1);
        let row: Option<Row> = conn.exec_first(sql, params).await?;
        Ok(row.map(Row::unwrap).unwrap_or_else(|| max.to_vec()))
    }
}

/// `key > lower AND key <= upper` over the given key columns, and its parameters.
pub fn key_range(key: &[String], lower: Option<&[Value]>, upper: &[Value]) -> (String, Vec<Value>) {
    let q = vec!["?".to_string(); key.len()];
    let mut sql = tuple_up_to(key, &q);
    let mut params = tuple_compare_params(upper);
    if let Some(lower) = lower {
        sql = format!("{} AND {sql}", tuple_after(key, &q));
        params = tuple_compare_params(lower).into_iter().chain(params).collect();
    }
    (sql, params)
}

impl Copier {
    /// The chunk size is read from `state.live` before every chunk, so it can change mid-run.
    pub fn new(server: Server, plan: Arc<Plan>, state: Arc<RunState>, retries: u32, sizer: ChunkSizer) -> Copier {
        Copier { server, walk: KeyWalk::new(plan.clone()), plan, state, retries, sizer }
    }

    /// Copies every chunk with up to `MAX_THREADS` workers, of which the first `live.threads`
    /// take ranges (so `threads=N` takes effect at the next chunk). One producer walks the key
    /// and hands out disjoint ranges; each worker copies them on its own connection, opened
    /// when it first works. Returns early (Ok) when the run is stopping; the caller checks why.
    pub async fn run(&self) -> Result<()> {
        let mut conn = self.server.conn().await?;
        let Some(max) = self.max_key(&mut conn).await? else {
            tracing::info!("the table is empty: nothing to copy");
            return Ok(());
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<(Option<Vec<Value>>, Vec<Value>)>(2);
        let rx = tokio::sync::Mutex::new(rx);
        let producer_done = std::sync::atomic::AtomicBool::new(false);
        let done = &producer_done;
        let producer = async move {
            let mut lower: Option<Vec<Value>> = None;
            while !self.state.stopping() {
                if self.state.throttle_reason().is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                let upper = self.next_upper(&mut conn, lower.as_deref(), &max).await?;
                let last = upper == max;
                if tx.send((lower.take(), upper.clone())).await.is_err() || last {
                    break;
                }
                lower = Some(upper);
            }
            done.store(true, Ordering::SeqCst);
            Ok(())
        };
        let workers = (0..MAX_THREADS).map(|id| self.worker(id, &rx, done));
        // The first error ends both sides: a failed worker must not leave the producer waiting.
        tokio::try_join!(producer, futures_util::future::try_join_all(workers)).map(|_| ())
    }

    /// Copies the ranges it is handed until there are none left, while its `id` is below the
    /// live thread count; idle otherwise.
    async fn worker(&self, id: u64, ranges: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(Option<Vec<Value>>, Vec<Value>)>>, producer_done: &std::sync::atomic::AtomicBool) -> Result<()> {
        let mut conn: Option<Conn> = None;
        let mut active = false;
        let result = async {
            loop {
                let wanted = id < self.state.live.threads.load(Ordering::Relaxed);
                if wanted != active {
                    active = wanted;
                    if active { self.state.copy_workers.fetch_add(1, Ordering::Relaxed) } else { self.state.copy_workers.fetch_sub(1, Ordering::Relaxed) };
                }
                if !active {
                    // Never wait on the receiver here: an active worker holds it while it waits
                    // for a range, and an idle one must keep watching the thread count.
                    if self.state.stopping() || producer_done.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                let Some((lower, upper)) = ranges.lock().await.recv().await else { return Ok(()) };
                if self.state.stopping() {
                    return Ok(());
                }
                if conn.is_none() {
                    conn = Some(self.server.conn().await?);
                }
                let c = conn.as_mut().expect("connected above");
                let started = std::time::Instant::now();
                let copied = self.copy_chunk_with_retries(c, lower.as_deref(), &upper).await?;
                RunState::count(&self.state.rows_copied, copied);
                self.resize(copied, started.elapsed());
            }
        }
        .await;
        if active {
            self.state.copy_workers.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    /// Sets the size of the chunks to come from how long this one took.
    fn resize(&self, rows: u64, elapsed: std::time::Duration) {
        let size = &self.state.live.chunk_size;
        let current = size.load(Ordering::Relaxed);
        let next = self.sizer.next(current, rows, elapsed);
        if next != current {
            size.store(next, Ordering::Relaxed);
            tracing::debug!("chunk of {rows} rows took {} ms; next chunks: {next} rows", elapsed.as_millis());
        }
    }

    /// The highest key when the copy starts; rows inserted later arrive through the binlog.
    async fn max_key(&self, conn: &mut Conn) -> Result<Option<Vec<Value>>> {
        self.server.retrying(conn, self.retries, "reading the highest key", async |c| self.walk.max_key(c).await).await
    }

    async fn next_upper(&self, conn: &mut Conn, lower: Option<&[Value]>, max: &[Value]) -> Result<Vec<Value>> {
        let chunk_size = self.state.live.chunk_size.load(std::sync::atomic::Ordering::Relaxed);
        self.server.retrying(conn, self.retries, "finding the next chunk boundary", async |c| self.walk.next_upper(c, lower, max, chunk_size).await).await
    }

    fn range(&self, lower: Option<&[Value]>, upper: &[Value]) -> (String, Vec<Value>) {
        key_range(&self.plan.key_source, lower, upper)
    }

    async fn copy_chunk_with_retries(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> Result<u64> {
        let range = format!("keys after {} up to {}", lower.map_or("the start".into(), format_key), format_key(upper));
        let doing = format!("copying the chunk of {range}");
        let mut collisions = 0;
        loop {
            let error = match self.server.retrying(conn, self.retries, &doing, async |c| self.copy_chunk(c, lower, upper).await).await {
                Ok(rows) => return Ok(rows),
                Err(e) => e,
            };
            // A collision may be with a stale image the applier has not yet replaced: retry it
            // after the applier catches up. Anything else is a row the new schema cannot hold.
            if is_collision(&error, &self.plan.key_target) && collisions < COLLISION_RETRIES {
                collisions += 1;
                tracing::info!("chunk {range} collides on a unique key; retrying once the applier has caught up");
                self.wait_for_applier().await?;
                continue;
            }
            if error.server_code().is_none() {
                return Err(error);
            }
            return Err(self.explain_rejected_chunk(conn, lower, upper, error).await);
        }
    }

    /// Turns a chunk the new table rejects into an error that names the first rejected row,
    /// found by copying the chunk row by row in a transaction that is rolled back.
    async fn explain_rejected_chunk(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value], error: Error) -> Error {
        let first = self.first_rejected_row(conn, lower, upper).await;
        let (key, reason) = match first {
            Ok(Some((key, reason))) => (format_key(&key), reason),
            _ => (format!("in the range after {} up to {}", lower.map_or("the start".into(), format_key), format_key(upper)), error.message.clone()),
        };
        let collision = reason.contains("Duplicate entry") || is_collision(&Error::failed(reason.clone()), &self.plan.key_target);
        let what = if collision { "collides with another row on a unique key of the new table" } else { "does not fit the new schema" };
        Error::failed(format!("the row with key {key} {what}: {reason}; nothing was swapped, the original table is untouched")).with_fix(if collision {
            "the ALTER would merge or drop rows (e.g. a new UNIQUE index over duplicate values): remove the duplicates or change the ALTER"
        } else {
            "the ALTER would truncate, overflow or reject values (a narrower type, fewer ENUM/SET members, NOT NULL over NULLs): fix those rows or change the ALTER"
        })
    }

    /// The first row of a chunk the shadow table rejects, and the server's reason.
    async fn first_rejected_row(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> std::result::Result<Option<(Vec<Value>, String)>, mysql_async::Error> {
        let (range, params) = self.range(lower, upper);
        let keys: Vec<Row> = conn.exec(format!("SELECT {k} FROM {} WHERE {range} ORDER BY {k}", self.walk.source(), k = column_list(&self.plan.key_source)), params).await?;
        let q = vec!["?".to_string(); self.plan.key_source.len()];
        let shadow = self.plan.names.q(&self.plan.names.shadow);
        // Without the upsert clause, a duplicate names the index it is on.
        let sql = format!(
            "INSERT INTO {shadow} ({}) SELECT {} FROM {} WHERE {}",
            column_list(&self.plan.target_names()),
            column_list(&self.plan.source_names()),
            self.walk.source(),
            crate::sql::key_equals(&self.plan.key_source, &q)
        );
        conn.query_drop("START TRANSACTION").await?;
        let mut rejected = None;
        for key in keys.into_iter().map(Row::unwrap) {
            match conn.exec_drop(sql.as_str(), key.clone()).await {
                Err(mysql_async::Error::Server(e)) if !(e.code == codes::DUPLICATE_KEY && names_index(&e.message, &self.plan.shadow_key_name)) => {
                    rejected = Some((key, format!("ERROR {} ({}): {}", e.code, e.state, e.message)));
                    break;
                }
                Err(mysql_async::Error::Server(_)) | Ok(()) => {}
                Err(other) => return Err(other),
            }
        }
        conn.query_drop("ROLLBACK").await?;
        Ok(rejected)
    }

    async fn copy_chunk(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> std::result::Result<u64, mysql_async::Error> {
        let (range, params) = self.range(lower, upper);
        let shadow = self.plan.names.q(&self.plan.names.shadow);
        let sql = format!(
            "INSERT INTO {shadow} ({}) SELECT {} FROM {} WHERE {range} LOCK IN SHARE MODE {}",
            column_list(&self.plan.target_names()),
            column_list(&self.plan.source_names()),
            self.walk.source(),
            upsert_clause(&shadow, &self.plan.key_target, &self.plan.target_names())
        );
        conn.exec_drop(sql, params).await?;
        Ok(records_of(&conn.info()))
    }

    /// Waits until the applier has replayed everything committed up to now.
    async fn wait_for_applier(&self) -> Result<()> {
        let mut conn = self.server.conn().await?;
        let target = self.server.binlog_position(&mut conn).await?;
        self.state.wait_applied(&target).await;
        Ok(())
    }
}

/// Rows an `INSERT ... SELECT` read, from its info string ("Records: 100  Duplicates: 3  Warnings: 0").
fn records_of(info: &str) -> u64 {
    info.split_whitespace().skip_while(|w| *w != "Records:").nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_grows_gently_and_shrinks_hard() {
        let ms = std::time::Duration::from_millis;
        let sizer = ChunkSizer { target: ms(500) };
        // Ten times too fast: grow by half, not tenfold; from the measured chunk, not from a
        // size another worker already raised.
        assert_eq!(sizer.next(1000, 1000, ms(50)), 1500);
        assert_eq!(sizer.next(2250, 1000, ms(50)), 1500);
        // On target: stay.
        assert_eq!(sizer.next(1000, 1000, ms(500)), 1000);
        // A bit slow: shrink by at most a quarter.
        assert_eq!(sizer.next(1000, 1000, ms(600)), 833);
        assert_eq!(sizer.next(1000, 1000, ms(900)), 750);
        // An outlier: straight to what fits.
        assert_eq!(sizer.next(1000, 1000, ms(5000)), 100);
        // Bounded both ways.
        assert_eq!(sizer.next(90_000, 90_000, ms(1)), MAX_CHUNK_ROWS);
        assert_eq!(sizer.next(20, 20, ms(60_000)), MIN_CHUNK_ROWS);
        // No rows in the range (a sparse key) tells nothing; a zero target is off.
        assert_eq!(sizer.next(1000, 0, ms(5)), 1000);
        assert_eq!(ChunkSizer { target: ms(0) }.next(1000, 1000, ms(1)), 1000);
    }

    #[test]
    fn reads_records_from_info() {
        assert_eq!(records_of("Records: 1000  Duplicates: 3  Warnings: 0"), 1000);
        assert_eq!(records_of(""), 0);
    }
}
