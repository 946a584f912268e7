//! Verification before the swap: the shadow table is compared with the original, key range by
//! key range, both read at one consistent point.
//!
//! The point is made under a brief read lock on the original: the applier replays up to a
//! marker written under the lock and pauses, a `START TRANSACTION WITH CONSISTENT SNAPSHOT`
//! opens on each of several connections, and the lock and the pause are lifted. Inside those
//! snapshots the original holds what was committed up to the lock and the shadow what was
//! replayed up to it: the same rows. Each range of the key is compared by `COUNT(*)` and
//! `BIT_XOR(CRC32(...))` over the copied columns; the connections read the ranges in parallel.
//!
//! Invariants: a mismatch fails the run before the swap, naming the key range; a column whose
//! type the ALTER changes cannot be compared by its text and is left out (and said so), but
//! its rows still count.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

use crate::compare::{differing_keys, mismatch, row_text, Readers};
use crate::copy::{key_range, ChunkSizer, Copier, KeyWalk};
use crate::cutover::flush_to_marker;
use crate::error::{Context, Error, Result, Retry};
use crate::plan::{ColumnMapping, Plan};
use crate::server::Server;
use crate::sql::format_key;
use crate::state::RunState;

/// Rows per compared key range.
const RANGE_ROWS: u64 = 10_000;

pub struct Verifier {
    pub server: Server,
    pub plan: Arc<Plan>,
    pub state: Arc<RunState>,
    /// Connections reading checksums in parallel, each in its own snapshot of the same point.
    pub connections: usize,
    pub lock_timeout: Duration,
    /// Attempts for a transient failure when copying a differing range again.
    pub retries: u32,
}

/// What a verification compared.
pub struct Report {
    pub rows: u64,
    pub ranges: u64,
    /// Ranges that differed at first and matched after being copied again.
    pub repaired_ranges: u64,
    pub elapsed: Duration,
}

/// One key range: after `lower` (or from the start) up to `upper`.
type Range = (Option<Vec<Value>>, Vec<Value>);

/// How many times the tables are compared before a difference fails the run.
const VERIFY_PASSES: u32 = 3;

/// A key range whose (rows, checksum) differ between the original and the shadow.
struct Difference {
    range: Range,
    source: (u64, u64),
    target: (u64, u64),
}

impl Difference {
    fn describe(&self) -> String {
        let (lower, upper) = &self.range;
        let range = match (lower, upper.is_empty()) {
            (None, true) => "the whole table".to_string(),
            _ => format!("the range of keys after {} up to {}", lower.as_deref().map_or("the start".into(), format_key), format_key(upper)),
        };
        format!("the shadow table differs from the original in {range} (original: {} rows, checksum {}; shadow: {} rows, checksum {})", self.source.0, self.source.1, self.target.0, self.target.1)
    }
}

impl Verifier {
    /// Compares the tables; ranges that differ are copied again and compared again at a new
    /// consistent point, up to `VERIFY_PASSES` times, before the run fails naming the first.
    pub async fn run(&self) -> Result<Report> {
        let started = Instant::now();
        let (mut report, mut differing) = self.compare_retrying(None).await?;
        for pass in 1..VERIFY_PASSES {
            if differing.is_empty() {
                break;
            }
            tracing::warn!("verification: {} key ranges differ between the shadow and the original (the first: {}); copying them again (pass {pass})", differing.len(), differing[0].describe());
            let copier = Copier::new(self.server.clone(), self.plan.clone(), self.state.clone(), self.retries, ChunkSizer { target: Duration::ZERO });
            for d in &differing {
                copier.recopy_range(d.range.0.as_deref(), &d.range.1).await?;
            }
            let ranges: Vec<Range> = differing.into_iter().map(|d| d.range).collect();
            let recopied = ranges.len();
            differing = self.compare_retrying(Some(ranges)).await?.1;
            report.repaired_ranges += (recopied - differing.len()) as u64;
        }
        if let Some(first) = differing.first() {
            return Err(Error::failed(format!("verification failed after {VERIFY_PASSES} passes: {}; the tables were not swapped", first.describe()))
                .with_fix("something keeps writing to the shadow table, or rows are lost: check for other writers to it (triggers, other tools) and run the migration again"));
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// [`Verifier::compare`], again from a new consistent point after a lost connection (a
    /// server restart), a transient error, or a snapshot that a deferred index build (running
    /// beside the verification) invalidated, up to `--default-retries` attempts.
    async fn compare_retrying(&self, only: Option<Vec<Range>>) -> Result<(Report, Vec<Difference>)> {
        let invalidated = |e: &Error| e.transient || e.server_code() == Some(crate::error::codes::TABLE_DEF_CHANGED);
        self.retry().run("verifying", "starting the comparison again", invalidated, async || self.compare(only.clone()).await).await
    }

    /// The verification's retries: `--default-retries` attempts, half a second more between
    /// each.
    fn retry(&self) -> Retry {
        Retry::new(self.retries, Duration::from_millis(500))
    }

    /// Compares all ranges (or only those given) at one consistent point; returns the report
    /// and the ranges that differ.
    async fn compare(&self, only: Option<Vec<Range>>) -> Result<(Report, Vec<Difference>)> {
        // A comparison of every row makes a new point from which changed rows are recorded;
        // one of some ranges does not, and the rows changed since the last point stay recorded.
        let (mut snapshots, _) = self.consistent_snapshots(self.connections, only.is_none()).await?;
        let (source_sum, target_sum, skipped_columns) = checksum_expressions(&self.plan.columns);
        if !skipped_columns.is_empty() && only.is_none() {
            tracing::warn!("not comparing the values of columns whose type changes: {}", skipped_columns.join(", "));
        }
        let mut report = Report { rows: 0, ranges: 0, repaired_ranges: 0, elapsed: Duration::ZERO };
        let ranges = match only {
            Some(ranges) => ranges,
            None => match self.ranges(&mut snapshots[0]).await? {
                Some(ranges) => ranges,
                None => return self.compare_empty(&mut snapshots[0], report).await.map(|r| (r, Vec::new())),
            },
        };
        let names = &self.plan.names;
        let (original, shadow) = (names.q(&names.original), names.q(&names.shadow));
        // Every range is two reads, one per table; the connections take them from one queue.
        let reads: Vec<(usize, bool)> = (0..ranges.len()).flat_map(|i| [(i, true), (i, false)]).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let sums = std::sync::Mutex::new(vec![((0, 0), (0, 0)); ranges.len()]);
        let workers = snapshots.iter_mut().map(|conn| async {
            while let Some(&(i, is_source)) = reads.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (lower, upper) = &ranges[i];
                let sum = if is_source {
                    range_sum(conn, &original, &source_sum, &self.plan.key_source, lower.as_deref(), upper).await?
                } else {
                    range_sum(conn, &shadow, &target_sum, &self.plan.key_target, lower.as_deref(), upper).await?
                };
                let mut sums = sums.lock().expect("sums lock");
                if is_source {
                    sums[i].0 = sum
                } else {
                    sums[i].1 = sum
                }
            }
            conn.query_drop("COMMIT").await.context(|| "closing a verification snapshot".into())
        });
        futures_util::future::try_join_all(workers).await?;
        report.ranges = ranges.len() as u64;
        let mut differing = Vec::new();
        for (range, (source, target)) in ranges.into_iter().zip(sums.into_inner().expect("sums lock")) {
            report.rows += source.0;
            if source != target {
                differing.push(Difference { range, source, target });
            }
        }
        Ok((report, differing))
    }

    /// The original's key cut into ranges of `RANGE_ROWS`, or `None` when it is empty. When the
    /// key sorts differently in the shadow, one range holds every row (the checksum does not
    /// depend on the order of the rows, but a range's bounds would select other rows there).
    async fn ranges(&self, snapshot: &mut Conn) -> Result<Option<Vec<Range>>> {
        let walk = KeyWalk::new(self.plan.clone());
        let Some(max) = walk.max_key(snapshot).await.context(|| "reading the highest key to verify".into())? else { return Ok(None) };
        if !self.plan.key_order_kept() {
            tracing::info!("the key sorts differently in the new table (its type or collation changes): comparing the tables as one range");
            return Ok(Some(vec![(None, Vec::new())]));
        }
        let mut ranges = Vec::new();
        let mut lower: Option<Vec<Value>> = None;
        loop {
            let upper = walk.next_upper(snapshot, lower.as_deref(), &max, RANGE_ROWS).await.context(|| "finding the next range to verify".into())?;
            let last = upper == max;
            ranges.push((lower, upper.clone()));
            if last {
                return Ok(Some(ranges));
            }
            lower = Some(upper);
        }
    }

    /// The original is empty: the shadow must be too.
    async fn compare_empty(&self, conn: &mut Conn, report: Report) -> Result<Report> {
        let names = &self.plan.names;
        let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {}", names.q(&names.shadow))).await.context(|| "counting the shadow's rows".into())?;
        if rows.unwrap_or(0) != 0 {
            return Err(Error::failed(format!("verification failed: the original table is empty but the shadow has {} rows; the tables were not swapped", rows.unwrap_or(0))));
        }
        Ok(report)
    }

    /// Compares again, at a new consistent point, the rows replayed since the last one, and
    /// records those replayed from this point on. A difference fails the run: every row
    /// matched at the last point, and the replay alone changed these since.
    pub async fn recheck_changed(&self) -> Result<usize> {
        let started = Instant::now();
        let (mut snapshots, changed) = self.retry().run("rechecking changed rows", "trying again", |e: &Error| e.transient, async || self.consistent_snapshots(1, true).await).await?;
        let snapshot = &mut snapshots[0];
        let differing = differing_keys(Readers::One(snapshot), &self.plan, &changed).await;
        snapshot.query_drop("COMMIT").await.ok();
        let differing = match differing {
            Ok(keys) => keys,
            // The rows are recorded again, to be compared at the next point.
            Err(e) => {
                self.state.changed_keys.record(changed.into_iter());
                return Err(e);
            }
        };
        if !differing.is_empty() {
            return Err(mismatch(&differing, "compared at a consistent point before the cut-over"));
        }
        tracing::info!("compared {} rows replayed since the last comparison in {:.1}s: they match the original", changed.len(), started.elapsed().as_secs_f64());
        Ok(changed.len())
    }

    /// Opens `count` snapshots of one point, at which the original and the shadow hold the
    /// same rows. With `restart_changed`, the record of changed keys restarts at that point;
    /// the keys recorded before it are returned.
    async fn consistent_snapshots(&self, count: usize, restart_changed: bool) -> Result<(Vec<Conn>, Vec<Vec<Value>>)> {
        let names = &self.plan.names;
        let mut lock = self.server.conn().await?;
        let mut snapshots = Vec::new();
        for _ in 0..count.max(1) {
            snapshots.push(self.server.conn().await?);
        }
        let mut marker_conn = self.server.conn().await?;
        lock.query_drop(format!("SET SESSION lock_wait_timeout = {}", self.lock_timeout.as_secs().max(1))).await.context(|| "setting lock_wait_timeout".into())?;
        lock.query_drop(format!("LOCK TABLES {} READ", names.q(&names.original))).await.context(|| "locking the original table to verify".into())?;
        let marker = self.state.next_marker();
        let flushed = flush_to_marker(&self.state, names, &mut marker_conn, marker, self.lock_timeout * 2).await;
        let opened = match flushed {
            Ok(true) => open_snapshots(&mut snapshots).await,
            Ok(false) => Err(Error::failed("the applier did not catch up while the table was locked for verification")),
            Err(e) => Err(e),
        };
        // The applier is held at the marker: nothing is replayed between the snapshots and this.
        let changed = match (&opened, restart_changed) {
            (Ok(()), true) => self.state.changed_keys.restart(),
            _ => Vec::new(),
        };
        let unlocked = lock.query_drop("UNLOCK TABLES").await.context(|| "unlocking the original table".into());
        self.state.hold_at_marker.store(0, Ordering::SeqCst);
        if let Err(e) = unlocked {
            self.state.changed_keys.record(changed.into_iter());
            return Err(e);
        }
        opened.map(|()| (snapshots, changed))
    }
}

/// Starts a consistent-snapshot transaction on each connection.
async fn open_snapshots(connections: &mut [Conn]) -> Result<()> {
    for conn in connections {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.context(|| "opening a verification snapshot".into())?;
    }
    Ok(())
}

/// The range checksum over each side's row text, and the columns left out.
fn checksum_expressions(columns: &[ColumnMapping]) -> (String, String, Vec<String>) {
    let text = row_text(columns);
    let sum = |row: &str| format!("COUNT(*), COALESCE(BIT_XOR(CRC32({row})), 0)");
    (sum(&text.source), sum(&text.target), text.skipped)
}

/// (rows, checksum) of one key range of a table.
async fn range_sum(conn: &mut Conn, table: &str, sum: &str, key: &[String], lower: Option<&[Value]>, upper: &[Value]) -> Result<(u64, u64)> {
    let (range, params) = key_range(key, lower, upper);
    let row: Option<(u64, u64)> = conn.exec_first(format!("SELECT {sum} FROM {table} WHERE {range}"), params).await.context(|| format!("checksumming {table}"))?;
    Ok(row.unwrap_or((0, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::Column;

    #[test]
    fn ranges_are_summed_over_the_row_text() {
        let column = Column {
            name: "id".into(),
            ordinal: 0,
            data_type: "int".into(),
            column_type: "int(11)".into(),
            nullable: false,
            charset: None,
            collation: None,
            generated: false,
            has_default: false,
            auto_increment: false,
        };
        let mapping = ColumnMapping { source: column, target: "id".into(), target_type: "int(11)".into(), target_charset: None, target_collation: None };
        let (source, target, skipped) = checksum_expressions(&[mapping]);
        assert_eq!(source, "COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', `id`))), 0)");
        assert_eq!(source, target);
        assert!(skipped.is_empty());
    }
}
