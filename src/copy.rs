//! Copying the existing rows into the shadow table in key-range chunks.
//!
//! Each chunk is one `INSERT INTO shadow ... SELECT ... FROM original WHERE <key range>
//! ... ON DUPLICATE KEY UPDATE ...`, in the same transaction as the chunk's checkpoint record
//! (with plain reads, first tried without the upsert clause, which is cheaper; see
//! [`Copier::copy_chunk`]).
//! Two ways to read the original:
//!
//! - With shared locks (`LOCK IN SHARE MODE`, as gh-ost does): they hold the chunk's rows still
//!   until it commits, so every later change to them reaches the binlog after the copy and is
//!   replayed after it; a row the applier already wrote is overwritten with the (newer) copied
//!   image. Writers to those rows wait for the chunk, and can deadlock with it.
//! - With plain reads (a READ COMMITTED transaction, where `INSERT ... SELECT` takes no locks on
//!   the source), for a key of one integer column: the range is marked as being copied before
//!   the statement starts, and the applier holds every change to a row in it until the chunk has
//!   committed (see [`PendingKeys`]). A change committed before the chunk's snapshot is in the
//!   copied image and replaying it later only repeats it; one committed after is replayed after
//!   the chunk's image has landed. Writers never wait for the copy.
//!
//! Chunks are copied by `--threads` workers in parallel; each chunk's argument above holds on
//! its own, so their order does not matter. Chunk sizes follow `--chunk-time` (see
//! [`ChunkSizer`]).
//!
//! Invariants: no chunk starts while the run is throttled (the chunks already running finish); chunks are disjoint and walk the chosen key in order up to the maximum key seen
//! at the start (rows inserted later arrive through the binlog); a chunk that collides with a
//! different row on a unique key is retried once the applier has caught up (the other row may
//! be a stale image), and fails the run naming the key range when the collision persists.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use crate::checkpoint::{self, KeyRange};
use crate::error::{codes, Context, Error, Result};
use crate::guard::{collides, is_collision, names_index, upsert_clause, upsert_rows};
use crate::pending::{integer, Pending};
use crate::plan::Plan;
use crate::server::{in_transaction, rolled_back, Server};
use crate::sql::format_key;
use crate::sql::{column_list, quote_ident, tuple_after, tuple_compare_params, tuple_up_to, Placeholder};
use crate::state::RunState;

/// The most copy workers a run can have (`--threads`, `threads=N`).
pub const MAX_THREADS: u64 = 16;

/// Passes over the rows that collided on a unique key, each after the applier caught up.
const DEFERRED_ROW_PASSES: u32 = 10;

/// Bounds of the chunk size the sizer chooses.
const MIN_CHUNK_ROWS: u64 = 10;
const MAX_CHUNK_ROWS: u64 = 100_000;
/// Rows per INSERT when a chunk is copied through alterego (`--copy-through-client`).
const CLIENT_INSERT_ROWS: usize = 500;

/// How a chunk statement reads the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// With shared locks (`LOCK IN SHARE MODE`), upserting.
    Locking,
    /// Without locks (in a READ COMMITTED transaction), upserting.
    Plain,
    /// Without locks and without the upsert clause: a duplicate names its index.
    Bare,
}

/// Where the copy stands: the ranges of the key not handed out yet, the first of them
/// starting after the last chunk handed out, and the connection that finds chunk boundaries.
struct Cursor {
    conn: Conn,
    ranges: std::collections::VecDeque<KeyRange>,
}

/// What a copy has to do: the key ranges not copied yet, up to the highest key at the start.
pub struct CopyWork {
    /// The highest key when the (first) copy started; `None` for an empty table.
    pub max: Option<Vec<Value>>,
    /// Ranges to copy, in key order.
    pub ranges: Vec<KeyRange>,
    /// A first run (not a resumed one): no row is in the shadow table yet, so the applier may
    /// skip changes to rows the copy will read later.
    pub fresh: bool,
    /// `--copy-with-locks`: read the original with shared locks even where plain reads are safe.
    pub shared_locks: bool,
    /// `--copy-through-client`: with plain reads, move the rows through alterego.
    pub through_client: bool,
}

pub struct Copier {
    server: Server,
    plan: Arc<Plan>,
    state: Arc<RunState>,
    walk: KeyWalk,
    retries: u32,
    sizer: ChunkSizer,
    /// Keys of rows that collided on a unique key, copied again at the end of the copy.
    deferred: std::sync::Mutex<Vec<Vec<Value>>>,
    /// Chunks read the original with plain (READ COMMITTED) reads instead of shared locks.
    plain_reads: std::sync::atomic::AtomicBool,
    /// With plain reads: chunks are read into alterego and inserted from there.
    through_client: std::sync::atomic::AtomicBool,
    /// The most rows the sizer gives a chunk: lowered when a chunk outgrew the binlog cache.
    ceiling: std::sync::atomic::AtomicU64,
    /// The replica's cap on chunk sizes last logged (`u64::MAX`: none yet).
    replica_cap_said: std::sync::atomic::AtomicU64,
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

/// `key > lower AND key <= upper` over the given key columns, and its parameters. No lower
/// and an empty upper bound select every row (the verification's one range over a key that
/// sorts differently in the two tables).
pub fn key_range(key: &[String], lower: Option<&[Value]>, upper: &[Value]) -> (String, Vec<Value>) {
    if lower.is_none() && upper.is_empty() {
        return ("TRUE".into(), Vec::new());
    }
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
        Copier {
            server,
            walk: KeyWalk::new(plan.clone()),
            plan,
            state,
            retries,
            sizer,
            deferred: Default::default(),
            plain_reads: Default::default(),
            through_client: Default::default(),
            ceiling: std::sync::atomic::AtomicU64::new(MAX_CHUNK_ROWS),
            replica_cap_said: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// Copies every chunk with up to `MAX_THREADS` workers, of which the first `live.threads`
    /// take chunks (so `threads=N` takes effect at the next chunk). A worker takes the next
    /// chunk from a shared cursor over the key only when it is about to copy it, so a new chunk
    /// size or a throttle applies to every chunk not started yet; each worker copies on its own
    /// connection, opened when it first works. Returns early (Ok) when the run is stopping; the caller checks why.
    pub async fn run(&self, work: CopyWork) -> Result<()> {
        // Whatever happens, the applier must not wait for the copy once it has ended.
        let result = self.copy_all(work).await;
        self.state.pending_keys.set(Pending::Nothing);
        result
    }

    /// The highest key when the copy starts; rows inserted later arrive through the binlog.
    pub async fn max_key(&self) -> Result<Option<Vec<Value>>> {
        let mut conn = self.server.conn().await?;
        self.server.retrying(&mut conn, self.retries, "reading the highest key", async |c| self.walk.max_key(c).await).await
    }

    async fn copy_all(&self, work: CopyWork) -> Result<()> {
        let Some(max) = work.max else {
            tracing::info!("the table is empty: nothing to copy");
            return Ok(());
        };
        let pending = if work.fresh { self.pending_at_start(&max) } else { Pending::Nothing };
        // Plain reads need the applier to hold changes to rows being copied, which it can only
        // for a key it can order: the same condition as skipping pending rows.
        let plain_reads = !work.shared_locks && matches!(pending, Pending::Keys { .. });
        self.plain_reads.store(plain_reads, Ordering::Relaxed);
        self.through_client.store(plain_reads && work.through_client, Ordering::Relaxed);
        match (plain_reads, work.through_client) {
            (true, false) => tracing::info!("copying with plain reads: no locks on the original's rows"),
            (true, true) => tracing::info!("copying with plain reads through alterego: no locks on the original's rows, rows inserted from the client"),
            (false, true) => tracing::warn!("--copy-through-client applies to plain reads only (a fresh run, a key of one integer column, no --copy-with-locks): copying with INSERT ... SELECT"),
            (false, false) => {}
        }
        self.state.pending_keys.set(pending);
        let cursor = tokio::sync::Mutex::new(Cursor { conn: self.server.conn().await?, ranges: work.ranges.into() });
        let exhausted = std::sync::atomic::AtomicBool::new(false);
        let workers = (0..MAX_THREADS).map(|id| self.worker(id, &cursor, &exhausted));
        futures_util::future::try_join_all(workers).await?;
        if self.state.stopping() {
            return Ok(());
        }
        self.copy_deferred_rows(&mut self.server.conn().await?).await
    }

    /// Copies the next chunk until there are none left, while its `id` is below the live thread
    /// count; idle otherwise.
    async fn worker(&self, id: u64, cursor: &tokio::sync::Mutex<Cursor>, exhausted: &std::sync::atomic::AtomicBool) -> Result<()> {
        let mut conn: Option<Conn> = None;
        let mut active = false;
        let result = async {
            loop {
                let wanted = id < self.state.live.threads.load(Ordering::Relaxed);
                if wanted != active {
                    active = wanted;
                    if active {
                        self.state.copy_workers.fetch_add(1, Ordering::Relaxed)
                    } else {
                        self.state.copy_workers.fetch_sub(1, Ordering::Relaxed)
                    };
                }
                if !active {
                    if self.state.stopping() || exhausted.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                let Some((lower, upper)) = self.next_range(&mut *cursor.lock().await).await? else {
                    exhausted.store(true, Ordering::SeqCst);
                    return Ok(());
                };
                if conn.is_none() {
                    conn = Some(self.server.conn().await?);
                }
                let c = conn.as_mut().expect("connected above");
                let started = std::time::Instant::now();
                let plain = self.plain_reads.load(Ordering::Relaxed);
                if plain {
                    self.state.pending_keys.start_copying(lower.as_deref(), &upper);
                }
                let copied = self.copy_chunk_with_retries(c, lower.as_deref(), &upper).await;
                if plain {
                    self.state.pending_keys.done_copying(lower.as_deref(), &upper);
                }
                let copied = copied?;
                RunState::count(&self.state.rows_copied, copied);
                self.state.replay_pace.lock().expect("pace lock").committed(crate::state::since_epoch(), copied);
                self.resize(copied, started.elapsed());
                self.be_nice(started.elapsed()).await;
            }
        }
        .await;
        if active {
            self.state.copy_workers.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    /// gh-ost's `--nice-ratio` (live: `nice-ratio=R`): a pause of the ratio times what the chunk
    /// took, so the copy's share of the server's time shrinks by that factor.
    async fn be_nice(&self, took: std::time::Duration) {
        let ratio = *self.state.live.nice_ratio.lock().expect("live lock");
        if ratio > 0.0 {
            tokio::time::sleep(took.mul_f64(ratio)).await;
        }
    }

    /// The next chunk, of the current chunk size from where the last one ended, once the run is
    /// not throttled. None when every range is handed out or the run is stopping.
    async fn next_range(&self, cursor: &mut Cursor) -> Result<Option<KeyRange>> {
        while !cursor.ranges.is_empty() && self.state.throttle_reason().is_some() && !self.state.stopping() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let Some((lower, end)) = cursor.ranges.front().cloned().filter(|_| !self.state.stopping()) else { return Ok(None) };
        let upper = self.next_upper(&mut cursor.conn, lower.as_deref(), &end).await?;
        self.state.pending_keys.hand_out(&upper);
        if upper == end {
            cursor.ranges.pop_front();
        } else {
            cursor.ranges[0].0 = Some(upper.clone());
        }
        Ok(Some((lower, upper)))
    }

    /// Every key up to `max` is pending at the start, when the key is one integer column.
    fn pending_at_start(&self, max: &[Value]) -> Pending {
        let integer_key =
            self.plan.key_positions.len() == 1 && matches!(self.plan.columns[self.plan.key_positions[0]].source.data_type.as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "bigint");
        match (integer_key, max) {
            (true, [value]) => integer(value).map_or(Pending::Nothing, |up_to| Pending::Keys { after: None, up_to }),
            _ => Pending::Nothing,
        }
    }

    /// Sets the size of the chunks to come from how long this one took, and, when sized by
    /// time, at most what the slowest watched replica replays in half of `--max-lag-millis`.
    fn resize(&self, rows: u64, elapsed: std::time::Duration) {
        let size = &self.state.live.chunk_size;
        let current = size.load(Ordering::Relaxed);
        let mut next = self.sizer.next(current, rows, elapsed).min(self.ceiling.load(Ordering::Relaxed));
        if !self.sizer.target.is_zero() {
            next = next.min(self.replica_cap(next));
        }
        if next != current {
            size.store(next, Ordering::Relaxed);
            tracing::debug!("chunk of {rows} rows took {} ms; next chunks: {next} rows", elapsed.as_millis());
        }
    }

    /// The replica's cap on a chunk of `wanted` rows (see `limits::ReplayPace`), shared by
    /// the workers copying at once, since a serial replica replays their chunks one after
    /// another; said once when it first holds chunks back, and again when it halves.
    fn replica_cap(&self, wanted: u64) -> u64 {
        let max_lag = std::time::Duration::from_millis(self.state.live.max_lag_ms.load(Ordering::Relaxed));
        let workers = self.state.copy_workers.load(Ordering::Relaxed).max(1);
        let pace = self.state.replay_pace.lock().expect("pace lock");
        let (Some(cap), Some(rate)) = (pace.chunk_cap(max_lag, workers), pace.rows_per_sec()) else { return wanted };
        drop(pace);
        let cap = cap.max(MIN_CHUNK_ROWS);
        let said = self.replica_cap_said.load(Ordering::Relaxed);
        if cap < wanted && cap <= said / 2 {
            self.replica_cap_said.store(cap, Ordering::Relaxed);
            tracing::info!("chunks held to {cap} rows: the slowest replica replays about {rate:.0} rows/s, and the chunks of {workers} worker(s) must replay there in half of --max-lag-millis");
        }
        cap
    }

    async fn next_upper(&self, conn: &mut Conn, lower: Option<&[Value]>, max: &[Value]) -> Result<Vec<Value>> {
        let chunk_size = self.state.live.chunk_size.load(std::sync::atomic::Ordering::Relaxed);
        self.server.retrying(conn, self.retries, "finding the next chunk boundary", async |c| self.walk.next_upper(c, lower, max, chunk_size).await).await
    }

    fn range(&self, lower: Option<&[Value]>, upper: &[Value]) -> (String, Vec<Value>) {
        key_range(&self.plan.key_source, lower, upper)
    }

    /// Copies a chunk. One that collides on a unique key is tried again once the applier has
    /// caught up (the other row may be an image it has not replaced yet); if it still collides,
    /// its rows are copied one by one and those that collide are left for later
    /// ([`Copier::copy_deferred_rows`]). Any other rejection fails the run, naming the row.
    async fn copy_chunk_with_retries(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> Result<u64> {
        let range = format!("keys after {} up to {}", lower.map_or("the start".into(), format_key), format_key(upper));
        let doing = format!("copying the chunk of {range}");
        let mut caught_up = false;
        loop {
            let error = match self.server.retrying(conn, self.retries, &doing, async |c| self.copy_chunk(c, lower, upper).await).await {
                Ok(rows) => return Ok(rows),
                Err(e) => e,
            };
            if is_collision(&error, &self.plan.key_target) {
                if caught_up {
                    tracing::info!("chunk {range} still collides on a unique key; copying its rows one by one");
                    return self.copy_rows_one_by_one(conn, lower, upper).await;
                }
                caught_up = true;
                tracing::info!("chunk {range} collides on a unique key; retrying once the applier has caught up");
                // The applier holds changes to a range being copied: release it while waiting
                // for the applier (the failed chunk left nothing), or both would wait forever.
                let plain = self.plain_reads.load(Ordering::Relaxed);
                if plain {
                    self.state.pending_keys.done_copying(lower, upper);
                }
                let caught = self.wait_for_applier().await;
                if plain {
                    self.state.pending_keys.start_copying(lower, upper);
                }
                caught?;
                continue;
            }
            if error.server_code() == Some(codes::BINLOG_CACHE_FULL) {
                return Box::pin(self.copy_in_halves(conn, lower, upper)).await;
            }
            // No row is at fault when the server has no room or the connection failed.
            if error.server_code().is_none() || error.is_out_of_space() {
                return Err(error);
            }
            return Err(self.explain_rejected_chunk(conn, lower, upper, error).await);
        }
    }

    /// A chunk whose binlog events outgrow `max_binlog_cache_size`: copies its range in chunks
    /// of half the size, and keeps later chunks at most that big. One row too big for the
    /// cache fails the run.
    async fn copy_in_halves(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> Result<u64> {
        let size = &self.state.live.chunk_size;
        let half = size.load(Ordering::Relaxed) / 2;
        if half == 0 {
            return Err(Error::failed(format!("the row with key {} needs more binlog cache than max_binlog_cache_size allows", format_key(upper)))
                .with_fix("raise max_binlog_cache_size (SET GLOBAL max_binlog_cache_size = ...) and run again"));
        }
        size.store(half, Ordering::Relaxed);
        self.ceiling.fetch_min(half, Ordering::Relaxed);
        tracing::warn!("a chunk outgrew max_binlog_cache_size; copying in chunks of {half} rows");
        let mut copied = 0;
        let mut from = lower.map(<[Value]>::to_vec);
        loop {
            let to = self.server.retrying(conn, self.retries, "finding a smaller chunk", async |c| self.walk.next_upper(c, from.as_deref(), upper, half).await).await?;
            copied += Box::pin(self.copy_chunk_with_retries(conn, from.as_deref(), &to)).await?;
            if to == upper {
                return Ok(copied);
            }
            from = Some(to);
        }
    }

    /// Copies a chunk row by row; rows that collide on a unique key are kept for a later pass.
    async fn copy_rows_one_by_one(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> Result<u64> {
        let (range, params) = self.range(lower, upper);
        let sql = format!("SELECT {k} FROM {} WHERE {range} ORDER BY {k}", self.walk.source(), k = column_list(&self.plan.key_source));
        let keys: Vec<Row> = self.server.retrying(conn, self.retries, "listing the keys of a colliding chunk", async |c| c.exec(sql.as_str(), params.clone()).await).await?;
        let (mut copied, mut deferred) = (0, 0);
        for key in keys.into_iter().map(Row::unwrap) {
            match self.copy_row(conn, &key).await {
                Ok(rows) => copied += rows,
                Err(e) if is_collision(&e, &self.plan.key_target) => {
                    deferred += 1;
                    self.deferred.lock().expect("deferred rows lock").push(key);
                }
                Err(e) if e.server_code().is_none() => return Err(e),
                Err(e) => return Err(self.explain_rejected_row(conn, &key, e).await),
            }
        }
        // A chunk with rows left for later is not finished: a resumed run copies it again.
        if deferred == 0 {
            let (record, params) = checkpoint::record_chunk(&self.plan.names, lower, upper);
            self.server.retrying(conn, self.retries, "recording a finished chunk", async |c| c.exec_drop(record.as_str(), params.clone()).await).await?;
        }
        Ok(copied)
    }

    /// Copies the rows left over from colliding chunks, each pass after the applier has caught
    /// up, so a collision with an image it had not replaced goes away. A row that still collides
    /// after `DEFERRED_ROW_PASSES` passes collides in the original data: the run fails naming it.
    async fn copy_deferred_rows(&self, conn: &mut Conn) -> Result<()> {
        for pass in 1..=DEFERRED_ROW_PASSES {
            let keys = std::mem::take(&mut *self.deferred.lock().expect("deferred rows lock"));
            if keys.is_empty() {
                return Ok(());
            }
            tracing::info!("copying {} rows that collided on a unique key, after the applier has caught up (pass {pass})", keys.len());
            self.wait_for_applier().await?;
            for key in keys {
                match self.copy_row(conn, &key).await {
                    Ok(rows) => RunState::count(&self.state.rows_copied, rows),
                    Err(e) if is_collision(&e, &self.plan.key_target) && pass < DEFERRED_ROW_PASSES => self.deferred.lock().expect("deferred rows lock").push(key),
                    Err(e) if e.server_code().is_none() => return Err(e),
                    Err(e) => return Err(self.explain_rejected_row(conn, &key, e).await),
                }
            }
        }
        Ok(())
    }

    /// Copies the row with this key, if it still exists, as a chunk of one.
    async fn copy_row(&self, conn: &mut Conn, key: &[Value]) -> Result<u64> {
        let sql = self.row_insert(true);
        let doing = format!("copying the row with key {}", format_key(key));
        self.server
            .retrying(conn, self.retries, &doing, async |c| {
                c.exec_drop(sql.as_str(), key.to_vec()).await?;
                Ok(records_of(&c.info()))
            })
            .await
    }

    /// `INSERT ... SELECT` of the row with a given key; as the copy does it (`locking_upsert`),
    /// or bare, so that a duplicate names the index it is on.
    fn row_insert(&self, locking_upsert: bool) -> String {
        let q = vec!["?".to_string(); self.plan.key_source.len()];
        self.insert_select(&crate::sql::key_equals(&self.plan.key_source, &q), if locking_upsert { Read::Locking } else { Read::Bare })
    }

    /// Turns a chunk the new table rejects into an error that names the first rejected row,
    /// found by copying the chunk row by row in a transaction that is rolled back.
    async fn explain_rejected_chunk(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value], error: Error) -> Error {
        match self.first_rejected_row(conn, lower, upper).await {
            Ok(Some((key, code, reason))) => self.rejection(&format_key(&key), Some(code), reason),
            _ => self.rejection(&format!("in the range after {} up to {}", lower.map_or("the start".into(), format_key), format_key(upper)), error.code, error.message),
        }
    }

    /// Names the row the new table rejects, with the server's reason for the bare insert.
    async fn explain_rejected_row(&self, conn: &mut Conn, key: &[Value], error: Error) -> Error {
        let reason = rolled_back(conn, async |c| c.exec_drop(self.row_insert(false), key.to_vec()).await.err()).await;
        match reason {
            Ok(Some(mysql_async::Error::Server(e))) => self.rejection(&format_key(key), Some(e.code), format!("ERROR {} ({}): {}", e.code, e.state, e.message)),
            _ => self.rejection(&format_key(key), error.code, error.message),
        }
    }

    /// The error for a row (or range) the new table rejects, with the server's error number and
    /// words.
    fn rejection(&self, key: &str, code: Option<u16>, reason: String) -> Error {
        let collision = code.is_some_and(|code| collides(code, &reason, &self.plan.key_target));
        let what = if collision { "collides with another row on a unique key of the new table" } else { "does not fit the new schema" };
        Error::failed(format!("the row with key {key} {what}: {reason}; nothing was swapped, the original table is untouched")).with_code(code).with_fix(if collision {
            "the ALTER would merge or drop rows (e.g. a new UNIQUE index over duplicate values): remove the duplicates or change the ALTER"
        } else {
            "the ALTER would truncate, overflow or reject values (a narrower type, fewer ENUM/SET members, NOT NULL over NULLs): fix those rows or change the ALTER"
        })
    }

    /// The first row of a chunk the shadow table rejects, and the server's reason.
    async fn first_rejected_row(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> std::result::Result<Option<(Vec<Value>, u16, String)>, mysql_async::Error> {
        let (range, params) = self.range(lower, upper);
        let keys: Vec<Row> = conn.exec(format!("SELECT {k} FROM {} WHERE {range} ORDER BY {k}", self.walk.source(), k = column_list(&self.plan.key_source)), params).await?;
        let sql = self.row_insert(false);
        rolled_back(conn, async |c| {
            for key in keys.into_iter().map(Row::unwrap) {
                match c.exec_drop(sql.as_str(), key.clone()).await {
                    Err(mysql_async::Error::Server(e)) if !(e.code == codes::DUPLICATE_KEY && names_index(&e.message, &self.plan.shadow_key_name)) => {
                        return Ok(Some((key, e.code, format!("ERROR {} ({}): {}", e.code, e.state, e.message))));
                    }
                    Err(mysql_async::Error::Server(_)) | Ok(()) => {}
                    Err(other) => return Err(other),
                }
            }
            Ok(None)
        })
        .await?
    }

    /// The chunk statement for the rows of the original matching `condition`: read with shared
    /// locks, upserted into the shadow with the key guard.
    fn chunk_insert(&self, condition: &str) -> String {
        self.insert_select(condition, Read::Locking)
    }

    /// `INSERT INTO shadow ... SELECT ... FROM original WHERE condition`, as the copy runs it
    /// (with or without shared locks, upserting), or bare, so that a duplicate names the index
    /// it is on.
    fn insert_select(&self, condition: &str, read: Read) -> String {
        let shadow = self.plan.names.q(&self.plan.names.shadow);
        let upsert = || upsert_clause(&shadow, &self.plan.guarded_key(), &self.plan.target_names());
        let tail = match read {
            Read::Locking => format!(" LOCK IN SHARE MODE {}", upsert()),
            Read::Plain => format!(" {}", upsert()),
            Read::Bare => String::new(),
        };
        format!("INSERT INTO {shadow} ({}) SELECT {} FROM {} WHERE {condition}{tail}", column_list(&self.plan.target_names()), column_list(&self.plan.source_names()), self.walk.source())
    }

    /// Copies a chunk and records it as finished, in one transaction. With plain reads the
    /// transaction is READ COMMITTED, where `INSERT ... SELECT` reads without locks, and the
    /// chunk is first inserted without the upsert clause, which costs about a tenth of the
    /// statement's time: on a first run the shadow rarely holds a row of a chunk not copied yet
    /// (only one the applier wrote after the chunk was handed out). A duplicate rolls back that
    /// statement alone, and the upsert runs in its place.
    async fn copy_chunk(&self, conn: &mut Conn, lower: Option<&[Value]>, upper: &[Value]) -> std::result::Result<u64, mysql_async::Error> {
        let (range, params) = self.range(lower, upper);
        let plain = self.plain_reads.load(Ordering::Relaxed);
        let through_client = plain && self.through_client.load(Ordering::Relaxed);
        let (record, record_params) = checkpoint::record_chunk(&self.plan.names, lower, upper);
        if plain {
            conn.query_drop("SET TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
        }
        in_transaction(conn, async |c| {
            let rows = if through_client {
                self.copy_through_client(c, &range, params).await?
            } else {
                match c.exec_drop(self.insert_select(&range, if plain { Read::Bare } else { Read::Locking }), params.clone()).await {
                    // The upsert's key guard tells a row already there from a collision on
                    // another unique key (error 1048), whichever index InnoDB checked first.
                    Err(mysql_async::Error::Server(e)) if plain && e.code == codes::DUPLICATE_KEY => {
                        c.exec_drop(self.insert_select(&range, Read::Plain), params).await?;
                    }
                    other => other?,
                }
                records_of(&c.info())
            };
            c.exec_drop(record, record_params).await?;
            Ok(rows)
        })
        .await
    }

    /// Reads a chunk's rows into alterego with a plain read and writes them to the shadow with
    /// the applier's multi-row upsert. Text in a character set other than UTF-8 is read as its
    /// raw bytes, which the upsert's placeholders take as binlog values are taken, so nothing
    /// passes through a conversion.
    async fn copy_through_client(&self, conn: &mut Conn, range: &str, params: Vec<Value>) -> std::result::Result<u64, mysql_async::Error> {
        let placeholders = self.plan.placeholders();
        let columns: Vec<String> = self
            .plan
            .columns
            .iter()
            .zip(&placeholders)
            .map(|(column, placeholder)| match placeholder {
                Placeholder::Hex(_) => format!("CAST({} AS BINARY)", quote_ident(&column.source.name)),
                // MySQL assigns a BIT the bytes it reads as a string wrongly (b'1111111111111'
                // came back 0x001F): read as a number, bound as one.
                Placeholder::Plain if column.source.data_type == "bit" => format!("{} + 0", quote_ident(&column.source.name)),
                Placeholder::Plain | Placeholder::Binary => quote_ident(&column.source.name),
            })
            .collect();
        let select = format!("SELECT {} FROM {} WHERE {range}", columns.join(", "), self.walk.source());
        let rows: Vec<Row> = conn.exec(select, params).await?;
        let shadow = self.plan.names.q(&self.plan.names.shadow);
        for part in rows.chunks(CLIENT_INSERT_ROWS) {
            let sql = upsert_rows(&shadow, &self.plan.target_names(), &placeholders, &self.plan.guarded_key(), part.len());
            let values = part.iter().flat_map(|row| placeholders.iter().enumerate().map(|(i, p)| p.bind(&row[i])));
            conn.exec_drop(sql, values.collect::<Vec<Value>>()).await?;
        }
        Ok(rows.len() as u64)
    }

    /// Copies the first `rows` rows into the shadow in a transaction that is rolled back, for
    /// the plan's estimate: how many rows, and how long it took. `None` for an empty table.
    pub async fn time_sample_chunk(&self, rows: u64) -> Result<Option<(u64, std::time::Duration)>> {
        let mut conn = self.server.conn().await?;
        let Some(max) = self.walk.max_key(&mut conn).await.context(|| "reading the highest key".into())? else { return Ok(None) };
        let upper = self.walk.next_upper(&mut conn, None, &max, rows).await.context(|| "finding a sample chunk".into())?;
        let (range, params) = self.range(None, &upper);
        let started = std::time::Instant::now();
        let copied = rolled_back(&mut conn, async |c| c.exec_drop(self.chunk_insert(&range), params).await.map(|()| records_of(&c.info()))).await;
        let took = started.elapsed();
        Ok(Some((copied.and_then(|rows| rows).context(|| "copying a sample chunk".into())?, took)))
    }

    /// Copies a range again after the verification found it different: in one transaction
    /// with a chunk's locks, the range's rows are upserted and the shadow's rows that the
    /// original no longer has in the range are deleted. When the new table's key is wider
    /// (`Plan::shadow_key_widens`), an upsert would not replace a row whose extra key columns
    /// changed, so the range's shadow rows are deleted first instead.
    pub async fn recopy_range(&self, lower: Option<&[Value]>, upper: &[Value]) -> Result<()> {
        let mut conn = self.server.conn().await?;
        let (source_range, source_params) = self.range(lower, upper);
        let (target_range, target_params) = key_range(&self.plan.key_target, lower, upper);
        let shadow = self.plan.names.q(&self.plan.names.shadow);
        let copy = self.chunk_insert(&source_range);
        let widens = self.plan.shadow_key_widens;
        let clear = format!("DELETE FROM {shadow} WHERE {target_range}");
        // The copy above holds the range's rows and gaps in the original, so this reads it still.
        let prune = format!(
            "DELETE FROM {shadow} WHERE {target_range} AND ({}) NOT IN (SELECT {} FROM {} WHERE {source_range})",
            column_list(&self.plan.key_target),
            column_list(&self.plan.key_source),
            self.walk.source()
        );
        let prune_params: Vec<Value> = target_params.iter().cloned().chain(source_params.iter().cloned()).collect();
        let doing = format!("copying again the range of keys after {} up to {}", lower.map_or("the start".into(), format_key), format_key(upper));
        self.server
            .retrying(&mut conn, self.retries, &doing, async |c| {
                in_transaction(c, async |t| {
                    if widens {
                        t.exec_drop(clear.as_str(), target_params.clone()).await?;
                        return t.exec_drop(copy.as_str(), source_params.clone()).await;
                    }
                    t.exec_drop(copy.as_str(), source_params.clone()).await?;
                    t.exec_drop(prune.as_str(), prune_params.clone()).await
                })
                .await
            })
            .await
    }

    /// Waits until the applier has replayed everything committed up to now.
    async fn wait_for_applier(&self) -> Result<()> {
        let mut conn = self.server.conn().await?;
        let target = self.server.binlog_position_retrying(&mut conn, self.retries).await?;
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
    fn key_ranges_bound_their_rows_or_select_all() {
        let key = vec!["a".to_string(), "b".to_string()];
        assert_eq!(key_range(&key, None, &[]), ("TRUE".to_string(), Vec::new()));
        let (sql, params) = key_range(&key, None, &[Value::Int(5), Value::Int(6)]);
        assert!(sql.contains("`a`") && !params.is_empty(), "{sql}");
    }

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
