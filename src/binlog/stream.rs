//! The binlog stream: connects as a replica from a position taken before the copy started,
//! decodes the changes of committed transactions to the original table (and the cut-over
//! markers in the changelog), and reconnects
//! from the last committed position when the connection drops or the server restarts.
//!
//! Invariants: the position handed on (and so the applied position) is always the end of a
//! committed transaction, so a reconnect re-reads any transaction it had only partly passed
//! on (replaying changes twice is harmless). A large transaction is passed on in parts of
//! `MAX_PART_CHANGES`, the position moving only with its last part, and the reader waits while
//! the changes not yet applied take over `MAX_BUFFERED_BYTES`: memory stays bounded whatever
//! the transaction size or the write rate. (The binlog holds only committed transactions; a
//! transaction cut short at the end of a crashed server's binlog could have had parts replayed
//! before the server rolled it back, which the verification before the swap would find and copy
//! again.) DDL on the original table during the run, a compressed event, or an undecodable row
//! stops the run instead of being skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::EventType;
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn, Value};
use tokio::runtime::Handle;

use super::decode::{Cell, RowDecoder, RowImage};
use super::gtid::{Gtid, GtidPosition};
use super::mariadb;
use crate::error::{describe_mysql_error, Error, Result};
use crate::inspect::Column;
use crate::server::{BinlogPosition, Flavor, Server};
use crate::state::{spawn_stage, RunState};

/// A change to one row of the original table, as the applier replays it on the shadow.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert the row, or overwrite the row with the same key.
    Upsert(RowImage),
    /// Remove the row with this key.
    Delete(Vec<Value>),
}

impl Change {
    /// The chosen key of the row this change is about.
    pub fn key(&self, key_positions: &[usize]) -> Vec<Value> {
        match self {
            Change::Upsert(row) => key_positions.iter().map(|&i| row[i].value().clone()).collect(),
            Change::Delete(key) => key.clone(),
        }
    }
}

/// One committed binlog transaction's effect (every commit on the server yields one, mostly
/// empty: the applier's position then follows the binlog even when the table is idle), or a
/// part of a large one.
#[derive(Debug)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// Cut-over markers written to the changelog in this transaction.
    pub markers: Vec<u64>,
    /// Position just after the transaction's commit event; for a part before the last, the
    /// end of the transaction before (so only the last part moves the applied position).
    pub end: BinlogPosition,
    /// With `--gtid`: the GTID position at `end`.
    pub end_gtid: Option<String>,
    /// The memory the changes take, counted until the batch is dropped.
    _memory: MemoryTicket,
}

#[cfg(test)]
impl Batch {
    /// A batch outside any reader, for the applier's tests.
    pub fn for_test(changes: Vec<Change>, markers: Vec<u64>) -> Batch {
        Batch { changes, markers, end: BinlogPosition::default(), end_gtid: None, _memory: MemoryTicket { bytes: 0, counter: Arc::default() } }
    }
}

/// A large transaction's changes are sent in parts of at most this many, so it never sits in
/// memory whole.
const MAX_PART_CHANGES: usize = 2000;
/// The reader waits while the changes read but not yet applied take more than this.
const MAX_BUFFERED_BYTES: u64 = 64 << 20;

/// Bytes a batch's changes take in `RunState::buffered_bytes`, given back when it is dropped.
#[derive(Debug)]
struct MemoryTicket {
    bytes: u64,
    counter: Arc<AtomicU64>,
}

impl Drop for MemoryTicket {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// About how much memory changes take: their values' bytes plus a fixed cost per value.
fn approximate_bytes(changes: &[Change]) -> u64 {
    let value_bytes = |v: &Value| 32 + if let Value::Bytes(b) = v { b.len() as u64 } else { 0 };
    let cell_bytes = |c: &Cell| match c {
        Cell::Value(v) => value_bytes(v),
        Cell::Expr { sql, params } => sql.len() as u64 + params.iter().map(value_bytes).sum::<u64>(),
    };
    changes
        .iter()
        .map(|c| match c {
            Change::Upsert(row) => row.iter().map(cell_bytes).sum::<u64>(),
            Change::Delete(key) => key.iter().map(value_bytes).sum(),
        })
        .sum()
}

/// What the reader must know about the tables it follows.
#[derive(Clone)]
pub struct Tables {
    pub database: String,
    pub original: String,
    pub original_columns: Vec<Column>,
    /// Original column ordinals that make a row image (the plan's copied columns).
    pub picks: Vec<usize>,
    /// Positions of the key within a row image.
    pub key_positions: Vec<usize>,
    pub changelog: String,
    pub changelog_columns: Vec<Column>,
}

/// How long the reader keeps trying to reconnect before it gives up.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(120);

/// Where the reader starts: a binlog position, and with `--gtid` the GTID position there,
/// which the reader then asks the server by (and reconnects by).
#[derive(Debug, Clone)]
pub struct Start {
    pub position: BinlogPosition,
    pub gtid: Option<GtidPosition>,
}

/// How the reader presents itself and how long it keeps reconnecting.
#[derive(Debug, Clone, Copy)]
pub struct ReaderSettings {
    /// The server id it reads the binlog as (`--replica-server-id`).
    pub server_id: u32,
    /// Failed reconnects in a row after which the run fails (gh-ost's
    /// `--binlogsyncer-max-reconnect-attempts`); 0: only `RECONNECT_DEADLINE` limits them.
    pub max_reconnect_attempts: u32,
}

/// Starts the reader thread. It runs until `state` says stop, or fails the run.
pub fn spawn(runtime: Handle, server: Server, start: Start, settings: ReaderSettings, tables: Tables, tx: Sender<Batch>, state: Arc<RunState>) -> std::thread::JoinHandle<()> {
    let reader_state = state.clone();
    spawn_stage("binlog-reader", runtime.clone(), state, move || {
        Reader { runtime, server, settings, tables, tx, state: reader_state, committed: start.position, gtid: start.gtid, pending_gtid: None, decoders: HashMap::new(), connected_once: false }.run()
    })
}

struct Reader {
    runtime: Handle,
    server: Server,
    settings: ReaderSettings,
    tables: Tables,
    tx: Sender<Batch>,
    state: Arc<RunState>,
    committed: BinlogPosition,
    /// With `--gtid`: the GTID position at `committed`.
    gtid: Option<GtidPosition>,
    /// The GTID of the transaction being read, until its commit.
    pending_gtid: Option<Gtid>,
    decoders: HashMap<u64, Target>,
    /// Whether a stream was ever opened: until then a failure to open one is final.
    connected_once: bool,
}

/// Which followed table a TABLE_MAP id refers to, with its decoder.
enum Target {
    Original(RowDecoder),
    Changelog(RowDecoder),
    Other,
}

/// Why a stream ended.
enum StreamEnd {
    Stopped,
    /// Connection lost, server restarted or shut down: reconnect and resume.
    Lost(String),
    /// The file being read ends in an event cut short (see [`is_torn_tail`]).
    TornTail(String),
}

/// Whether the server stopped the stream at an event cut short. A server that crashes while
/// it writes a transaction leaves its binlog file ending mid-event, and starts a new file when
/// it restarts (MariaDB keeps the torn tail; MySQL trims it when it recovers). The server
/// refuses to read past the tear, every time: it sends every whole event before it, then
/// this error.
fn is_torn_tail(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == crate::error::codes::FATAL_READING_BINLOG && s.message.contains("truncated in the middle of event"))
}

impl Reader {
    fn run(&mut self) -> Result<()> {
        let mut lost_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0;
        loop {
            let before = self.committed.clone();
            let end = match self.stream()? {
                StreamEnd::TornTail(why) => self.skip_torn_tail(why)?,
                end => end,
            };
            match end {
                StreamEnd::Stopped => return Ok(()),
                StreamEnd::TornTail(why) | StreamEnd::Lost(why) => {
                    if self.committed != before {
                        lost_since = None;
                        backoff = Duration::from_millis(100);
                        attempts = 0;
                    }
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RECONNECT_DEADLINE {
                        return Err(Error::failed(format!("the binlog stream was lost and could not be resumed within {}s: {why}", RECONNECT_DEADLINE.as_secs())));
                    }
                    let max = self.settings.max_reconnect_attempts;
                    if max > 0 && attempts >= max {
                        return Err(Error::failed(format!("the binlog stream was lost and {attempts} attempts to resume it failed (--binlogsyncer-max-reconnect-attempts): {why}")));
                    }
                    attempts += 1;
                    tracing::warn!("binlog stream lost ({why}); resuming from {} in {:?}", self.committed, backoff);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if self.state.stopping() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Moves past a torn tail: every whole event before the tear has been read (the server
    /// sends them before it refuses), so a transaction cut by it never reached its commit
    /// event, and InnoDB's crash recovery rolled it back. Reading goes on at the start of the
    /// next file, once the server has one; while it has none (the tear is in the file it is
    /// writing, which cannot be), the stream counts as lost and is tried again.
    fn skip_torn_tail(&mut self, why: String) -> Result<StreamEnd> {
        let runtime = self.runtime.clone();
        let files = runtime.block_on(async {
            let mut conn = self.server.conn().await?;
            self.server.binlog_files(&mut conn).await
        });
        let files = match files {
            Ok(files) => files,
            Err(e) => return Ok(StreamEnd::Lost(format!("{why}; listing the binlog files: {e}"))),
        };
        let Some(next) = files.iter().skip_while(|f| **f != self.committed.file).nth(1) else { return Ok(StreamEnd::TornTail(why)) };
        tracing::warn!(
            "{} ends in an event cut short after {} (a crash while the server wrote it: {why}); the transaction it belongs to never committed, reading on from {next}",
            self.committed.file,
            self.committed.pos
        );
        self.committed = BinlogPosition { file: next.clone(), pos: 4 };
        Ok(StreamEnd::Lost(format!("the torn tail of the previous file was skipped; reading from {next}")))
    }

    /// Reads one connection's worth of the stream.
    fn stream(&mut self) -> Result<StreamEnd> {
        let runtime = self.runtime.clone();
        let mut stream = match runtime.block_on(self.open()) {
            Ok(s) => s,
            // The run's other connections have just worked with the same options: a reader
            // the server refuses (no privilege, a purged file) will not start later either, so
            // fail now instead of retrying for minutes. A connection refused or reset is a
            // server (re)starting, and is tried again like a lost stream.
            Err(e) if !self.connected_once && crate::error::server_code(&e).is_some() => {
                return Err(Error::server(&e, format!("the binlog reader could not start reading at {}: {}", self.committed, describe_mysql_error(&e)))
                    .with_fix("check that the user has REPLICATION SLAVE and that the binlog file is still on the server (SHOW BINARY LOGS)"))
            }
            Err(e) if is_torn_tail(&e) => return Ok(StreamEnd::TornTail(describe_mysql_error(&e))),
            Err(e) => return Ok(StreamEnd::Lost(describe_mysql_error(&e))),
        };
        self.connected_once = true;
        let mut file = self.committed.file.clone();
        let mut seen_format_description = false;
        let mut txn = Transaction::default();
        loop {
            if self.state.stopping() {
                return Ok(StreamEnd::Stopped);
            }
            let event = match runtime.block_on(tokio::time::timeout(Duration::from_millis(500), stream.next())) {
                Err(_) => continue,
                Ok(None) => return Ok(StreamEnd::Lost("the server ended the stream".into())),
                Ok(Some(Err(e))) if is_torn_tail(&e) => return Ok(StreamEnd::TornTail(describe_mysql_error(&e))),
                Ok(Some(Err(e))) => return Ok(StreamEnd::Lost(describe_mysql_error(&e))),
                Ok(Some(Ok(event))) => event,
            };
            let header = event.header();
            let raw_type = header.event_type_raw();
            if mariadb::is_compressed(raw_type) {
                return Err(Error::failed(format!("compressed binlog event (type {raw_type}) at {file}:{}; alterego cannot replay it", header.log_pos()))
                    .with_fix("SET GLOBAL log_bin_compress=OFF and run the migration again"));
            }
            if raw_type == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
                // A session may compress its transactions whatever the global setting (which
                // preflight refuses): the changes inside are never skipped.
                return Err(Error::failed(format!("a compressed transaction payload at {file}:{}; alterego cannot replay it", header.log_pos()))
                    .with_fix("make sure no session sets binlog_transaction_compression=ON during the migration, and run it again"));
            }
            if raw_type == mariadb::GTID_EVENT {
                self.pending_gtid = mariadb::gtid(event.data()).map(|(domain, seq)| Gtid::MariaDb { domain, server: header.server_id(), seq });
                // A transaction starts: whatever is buffered belonged to one that never
                // committed (cut off by a crash), and must not be merged into this one.
                txn.changes.clear();
                txn.markers.clear();
                continue;
            }
            if raw_type == EventType::GTID_TAGGED_LOG_EVENT as u8 && self.gtid.is_some() {
                return Err(Error::failed(format!("a tagged GTID at {file}:{}, which --gtid cannot follow (mysql_common does not read them)", header.log_pos()))
                    .with_fix("run the migration without --gtid (the binlog is then followed by file and position)"));
            }
            let data = event.read_data().map_err(|e| Error::failed(format!("undecodable binlog event at {file}:{}: {e}", header.log_pos())))?;
            match data {
                Some(EventData::RotateEvent(rotate)) => {
                    // Real ROTATEs end a file; artificial ones start each file we are sent, and
                    // after a crash they are the only sign of a new file. The one before the
                    // connection's first FORMAT_DESCRIPTION names the file we asked for, with
                    // stray checksum bytes (mysql_async issue 189): it is skipped.
                    let name = rotate.name().to_string();
                    if !seen_format_description && self.gtid.is_some() {
                        // Asked by GTID, the server names the file it starts in.
                        file = runtime.block_on(self.file_named_in(&name))?;
                    } else if seen_format_description && name != file {
                        txn.changes.clear();
                        txn.markers.clear();
                        file = name;
                        self.committed = BinlogPosition { file: file.clone(), pos: rotate.position() };
                    }
                }
                Some(EventData::GtidEvent(gtid)) => self.pending_gtid = Some(Gtid::MySql { uuid: gtid.sid(), gno: gtid.gno() }),
                Some(EventData::TableMapEvent(tme)) => {
                    let target = self.target_for(&tme)?;
                    self.decoders.insert(tme.table_id(), target);
                }
                Some(EventData::RowsEvent(rows)) => self.decode_rows(&rows, &mut txn, &file, header.log_pos())?,
                Some(EventData::XidEvent(_)) => self.commit(&mut txn, &file, header.log_pos())?,
                Some(EventData::QueryEvent(query)) => {
                    let text = query.query();
                    let text = text.trim();
                    if text.eq_ignore_ascii_case("COMMIT") {
                        self.commit(&mut txn, &file, header.log_pos())?;
                    } else if text.eq_ignore_ascii_case("BEGIN") {
                        txn.changes.clear();
                        txn.markers.clear();
                    } else {
                        if crate::ddl::changes_table(text, &query.schema(), &self.tables.database, &self.tables.original) {
                            if self.state.swap_started.load(std::sync::atomic::Ordering::SeqCst) && text.to_ascii_uppercase().starts_with("RENAME") {
                                // Our own swap: nothing after it belongs to this migration.
                                self.state.rename_seen.store(true, std::sync::atomic::Ordering::SeqCst);
                                return Ok(StreamEnd::Stopped);
                            }
                            return Err(
                                Error::failed(format!("the original table was changed by DDL during the migration: {text}")).with_fix("run the migration again once no other DDL touches the table")
                            );
                        }
                        // DDL commits on its own.
                        self.commit(&mut txn, &file, header.log_pos())?;
                    }
                }
                _ => {}
            }
            if header.event_type() == Ok(EventType::FORMAT_DESCRIPTION_EVENT) {
                seen_format_description = true;
                self.decoders.clear();
            }
        }
    }

    async fn open(&self) -> std::result::Result<mysql_async::BinlogStream, mysql_async::Error> {
        let mut conn = Conn::new(self.server.opts().clone()).await?;
        if self.server.facts.flavor == Flavor::MariaDb {
            conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        }
        // MySQL 8.0.26 and later read `source_heartbeat_period`; MariaDB and older MySQL the other.
        conn.query_drop("SET @master_heartbeat_period = 1000000000, @source_heartbeat_period = 1000000000").await?;
        let request = BinlogStreamRequest::new(self.settings.server_id);
        let request = match &self.gtid {
            None => request.with_filename(self.committed.file.as_bytes()).with_pos(self.committed.pos),
            Some(position @ GtidPosition::MariaDb(_)) => {
                conn.exec_drop("SET @slave_connect_state = ?", (position.to_string(),)).await?;
                conn.query_drop("SET @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0").await?;
                request.with_filename(b"").with_pos(4u64)
            }
            Some(set @ GtidPosition::MySql(_)) => {
                let sids = set.to_string().split(',').filter(|s| !s.is_empty()).map(str::parse::<mysql_async::Sid<'static>>).collect::<std::io::Result<Vec<_>>>()?;
                request.with_gtid().with_gtid_set(sids).with_pos(4u64)
            }
        };
        conn.get_binlog_stream(request).await
    }

    /// The binlog file an artificial ROTATE names: its name can carry stray checksum bytes
    /// (mysql_async issue 189), so it is the longest of the server's files that begins it.
    async fn file_named_in(&self, name: &str) -> Result<String> {
        let mut conn = self.server.conn().await?;
        let files = self.server.binlog_files(&mut conn).await?;
        files
            .into_iter()
            .filter(|f| name.starts_with(f.as_str()))
            .max_by_key(String::len)
            .ok_or_else(|| Error::failed(format!("the binlog stream started in a file that SHOW BINARY LOGS does not list (`{}`)", name.escape_debug())))
    }

    fn target_for(&self, tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> Result<Target> {
        if tme.database_name() != self.tables.database {
            return Ok(Target::Other);
        }
        let build = |columns: &[Column], picks: Vec<usize>| RowDecoder::new(tme, columns, picks).map_err(Error::failed);
        let name = tme.table_name();
        Ok(if name == self.tables.original {
            Target::Original(build(&self.tables.original_columns, self.tables.picks.clone())?)
        } else if name == self.tables.changelog {
            Target::Changelog(build(&self.tables.changelog_columns, vec![1, 2])?)
        } else {
            Target::Other
        })
    }

    fn decode_rows(&mut self, rows: &RowsEventData<'_>, txn: &mut Transaction, file: &str, pos: u32) -> Result<()> {
        let failed = |e: String| Error::failed(format!("cannot decode the rows event at {file}:{pos}: {e}"));
        match self.decoders.get(&rows.table_id()) {
            Some(Target::Original(decoder)) => {
                let key = &self.tables.key_positions;
                for (before, after) in decoder.rows(rows).map_err(failed)? {
                    push_change(&mut txn.changes, key, before, after);
                }
                if txn.changes.len() >= MAX_PART_CHANGES {
                    // A part: the transaction is committed (the binlog holds only committed
                    // ones), but the position stays before it until its last part.
                    let part = std::mem::take(&mut txn.changes);
                    self.send(part, std::mem::take(&mut txn.markers), self.committed.clone());
                }
            }
            Some(Target::Changelog(decoder)) => {
                for (_, after) in decoder.rows(rows).map_err(failed)? {
                    if let Some(marker) = after.as_deref().and_then(marker_of) {
                        txn.markers.push(marker);
                    }
                }
            }
            Some(Target::Other) => {}
            None => return Err(failed("a rows event without its TABLE_MAP".into())),
        }
        Ok(())
    }

    fn commit(&mut self, txn: &mut Transaction, file: &str, pos: u32) -> Result<()> {
        self.committed = BinlogPosition { file: file.to_string(), pos: u64::from(pos) };
        if let (Some(position), Some(gtid)) = (self.gtid.as_mut(), self.pending_gtid.take()) {
            position.add(gtid);
        }
        self.send(std::mem::take(&mut txn.changes), std::mem::take(&mut txn.markers), self.committed.clone());
        Ok(())
    }

    /// Passes changes to the applier, first waiting while too much is buffered (unless nothing
    /// is: one part over the limit must still go through).
    fn send(&self, changes: Vec<Change>, markers: Vec<u64>, end: BinlogPosition) {
        let counter = &self.state.buffered_bytes;
        while counter.load(Ordering::Relaxed) > MAX_BUFFERED_BYTES && !self.state.stopping() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let bytes = approximate_bytes(&changes);
        counter.fetch_add(bytes, Ordering::Relaxed);
        RunState::count(&self.state.backlog, 1);
        let end_gtid = self.gtid.as_ref().map(GtidPosition::to_string);
        let mut pending = Batch { changes, markers, end, end_gtid, _memory: MemoryTicket { bytes, counter: counter.clone() } };
        loop {
            match self.tx.send_timeout(pending, Duration::from_millis(200)) {
                Ok(()) => return,
                Err(SendTimeoutError::Timeout(back)) if !self.state.stopping() => pending = back,
                Err(_) => return,
            }
        }
    }
}

/// The changes and markers of the transaction being read.
#[derive(Default)]
struct Transaction {
    changes: Vec<Change>,
    markers: Vec<u64>,
}

/// Turns one row of a rows event into changes: an update that moves the key is a delete of the
/// old key followed by an upsert of the new row.
fn push_change(changes: &mut Vec<Change>, key: &[usize], before: Option<RowImage>, after: Option<RowImage>) {
    match (before, after) {
        (None, Some(after)) => changes.push(Change::Upsert(after)),
        (Some(before), None) => changes.push(Change::Delete(Change::Upsert(before).key(key))),
        (Some(before), Some(after)) => {
            let old_key = Change::Upsert(before).key(key);
            let after = Change::Upsert(after);
            if old_key != after.key(key) {
                changes.push(Change::Delete(old_key));
            }
            changes.push(after);
        }
        (None, None) => {}
    }
}

/// A changelog row image (hint, value) that is a cut-over marker gives its number.
fn marker_of(image: &[Cell]) -> Option<u64> {
    match image {
        [Cell::Value(Value::Bytes(hint)), Cell::Value(Value::Bytes(value))] if hint == crate::changelog::MARKER_HINT.as_bytes() => std::str::from_utf8(value).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changing_update_deletes_the_old_key() {
        let mut changes = Vec::new();
        let row = |id: i64, v: &str| vec![Cell::Value(Value::Int(id)), Cell::Value(Value::Bytes(v.into()))];
        push_change(&mut changes, &[0], Some(row(1, "a")), Some(row(2, "a")));
        push_change(&mut changes, &[0], Some(row(3, "a")), Some(row(3, "b")));
        assert_eq!(changes, vec![Change::Delete(vec![Value::Int(1)]), Change::Upsert(row(2, "a")), Change::Upsert(row(3, "b"))]);
    }

    #[test]
    fn memory_is_counted_by_value_bytes() {
        let changes = vec![Change::Upsert(vec![Cell::Value(Value::Int(1)), Cell::Value(Value::Bytes(vec![0; 100]))]), Change::Delete(vec![Value::Int(2)])];
        assert_eq!(approximate_bytes(&changes), 32 + 132 + 32);
        let counter = Arc::new(AtomicU64::new(196));
        drop(MemoryTicket { bytes: 196, counter: counter.clone() });
        assert_eq!(counter.load(Ordering::Relaxed), 0, "a dropped batch gives its bytes back");
    }

    #[test]
    fn markers_are_read_from_changelog_images() {
        assert_eq!(marker_of(&[Cell::Value(Value::Bytes(b"cut-over-marker".to_vec())), Cell::Value(Value::Bytes(b"17".to_vec()))]), Some(17));
        assert_eq!(marker_of(&[Cell::Value(Value::Bytes(b"heartbeat".to_vec())), Cell::Value(Value::Bytes(b"17".to_vec()))]), None);
    }
}
