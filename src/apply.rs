//! Replaying binlog changes onto the shadow table.
//!
//! The applier takes committed transactions from the reader's bounded channel, groups several
//! into one shadow transaction (waiting briefly for more while a group is small, so that a busy
//! table's transactions do not each cost a commit on the primary and on every replica), and
//! replays their changes in binlog order: consecutive upserts
//! become one multi-row `INSERT ... ON DUPLICATE KEY UPDATE` (the full after-image wins),
//! consecutive deletes one `DELETE ... WHERE key IN ...`.
//!
//! A large group is split by key across several sessions (`--apply-threads`), each replaying
//! its share in its own transaction; the position is recorded once all of them committed.
//! Every row's changes land in one share, so each row still sees its changes in binlog order.
//! Rows are told apart by a hash of their key columns' bytes, leaving out text columns: under a
//! case- or accent-insensitive collation different bytes can be the same row, so such keys
//! must not be spread by their bytes (a key of text columns only is never split).
//!
//! Invariants: each row's changes are applied in the order they were committed on the original
//! table; a row image never overwrites a *different* row (the key guard in
//! `guard::upsert_clause` turns a collision on another unique key into an error, which fails the
//! run naming the keys); the applied position only moves after every change before it is committed. Replaying
//! a group again is harmless (upserts carry full images, deletes are by key), which is what
//! makes a crash between the shares' commits and the position record safe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};
use tokio::runtime::Handle;

use crate::binlog::decode::Cell;
use crate::binlog::stream::{Batch, Change};
use crate::error::{codes, Error, Result};
use crate::guard::{collides, is_collision};
use crate::pending::{KeyState, Pending};
use crate::plan::Plan;
use crate::server::{in_transaction, Server};
use crate::sql::{format_key, Placeholder};
use crate::state::{spawn_stage, RunState};

/// Most changes replayed in one shadow transaction.
const MAX_GROUP_CHANGES: usize = 2000;
/// Most rows in one statement.
const MAX_STATEMENT_ROWS: usize = 200;
/// Parameters per replayed statement, under the protocol's limit of 65,535.
const MAX_STATEMENT_PARAMS: usize = 60_000;
/// How often the applied position is recorded when nothing is replayed.
const POSITION_RECORD_INTERVAL: Duration = Duration::from_secs(1);
/// How long a group waits for more transactions while it is small and no marker is awaited.
/// Replaying a busy table's transactions one by one as they come costs a commit each on the
/// primary and again on every replica, where replication is often serial: with 200 writer
/// transactions/s that was 150-200 more transactions a second for the replicas to replay, the
/// stage that bounds the copy when a replica shares the primary's cores.
const GATHER_WINDOW: Duration = Duration::from_millis(50);
/// How often a gathering applier looks whether a marker is awaited.
const MARKER_CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// Groups with fewer changes left after coalescing are replayed on one session: splitting them
/// would cost more commits than the sessions save.
const MIN_CHANGES_TO_SPLIT: usize = 2 * MAX_STATEMENT_ROWS;

/// How the applier replays.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Sessions a large group is split across (`--apply-threads`).
    pub sessions: usize,
    /// Attempts for transient errors (`--default-retries`).
    pub retries: u32,
}

/// Starts the applier thread. It runs until `state` says stop or the channel closes.
pub fn spawn(runtime: Handle, server: Server, plan: Arc<Plan>, rx: Receiver<Batch>, state: Arc<RunState>, settings: Settings) -> std::thread::JoinHandle<()> {
    let stage_state = state.clone();
    spawn_stage("applier", runtime.clone(), state, move || run(&runtime, &server, &plan, &rx, &stage_state, settings))
}

fn run(runtime: &Handle, server: &Server, plan: &Plan, rx: &Receiver<Batch>, state: &RunState, settings: Settings) -> Result<()> {
    let sessions = if spread_columns(plan).is_empty() { 1 } else { settings.sessions.max(1) };
    let mut conns = runtime.block_on(futures_util::future::try_join_all((0..sessions).map(|_| server.conn())))?;
    let mut last_recorded = std::time::Instant::now();
    while !state.stopping() {
        let hold = state.hold_at_marker.load(Ordering::SeqCst);
        if hold != 0 && state.applied_marker.load(Ordering::SeqCst) >= hold {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let first = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let group = gather(first, rx, &state.hold_at_marker, GATHER_WINDOW);
        // Read after the group was received, so after its changes committed.
        let Some(keys) = copy_position(state, &group, plan) else { return Ok(()) };
        // The position is recorded with every group that changes the shadow; for groups that
        // carry no change (other tables' transactions, including this one's own), at most once
        // a second, or its record would come back as another such group, forever.
        let has_changes = group.iter().any(|b| !b.changes.is_empty());
        let record = has_changes || last_recorded.elapsed() >= POSITION_RECORD_INTERVAL;
        if record {
            last_recorded = std::time::Instant::now();
        }
        let skipped = runtime.block_on(apply_group(&mut conns, server, plan, &group, settings.retries, &keys, record))?;
        record_changed_keys(state, plan, &group);
        record_applied(state, &group, skipped);
    }
    Ok(())
}

/// Where the copy is, once it has said (`None` if the run stops first), and once no change of
/// the group is to a row whose chunk is being copied: such a change may have committed after
/// the chunk's snapshot, and must not be replayed before the chunk's older image lands.
fn copy_position(state: &RunState, group: &[Batch], plan: &Plan) -> Option<KeyState> {
    loop {
        if state.stopping() {
            return None;
        }
        let keys = state.pending_keys.get();
        let waits = keys.pending == Pending::Unknown || (keys.copies_any() && group.iter().flat_map(|b| &b.changes).any(|c| keys.is_being_copied(&c.key(&plan.key_positions))));
        if !waits {
            return Some(keys);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Takes more transactions into one group: those waiting in the channel and, unless a marker
/// is awaited, those arriving within `window` of the first. Stops after the marker the applier
/// is held at, so that it can pause exactly there.
fn gather(first: Batch, rx: &Receiver<Batch>, hold_at_marker: &AtomicU64, window: Duration) -> Vec<Batch> {
    let window_ends = Instant::now() + window;
    let is_stop = |b: &Batch| {
        let hold = hold_at_marker.load(Ordering::SeqCst);
        hold != 0 && b.markers.iter().any(|&m| m >= hold)
    };
    let mut size = first.changes.len();
    let mut stop = is_stop(&first);
    let mut group = vec![first];
    while !stop && size < MAX_GROUP_CHANGES {
        let next = match rx.try_recv() {
            Ok(next) => next,
            Err(_) if hold_at_marker.load(Ordering::SeqCst) != 0 => break,
            Err(_) => {
                let left = window_ends.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(left.min(MARKER_CHECK_INTERVAL)) {
                    Ok(next) => next,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        size += next.changes.len();
        stop = is_stop(&next);
        group.push(next);
    }
    group
}

/// Records the keys a replayed group changed, for their comparison before the swap (see
/// `compare::ChangedKeys`). Done before the group counts as applied, so that a marker seen
/// applied implies its changes are recorded.
pub fn record_changed_keys(state: &RunState, plan: &Plan, group: &[Batch]) {
    state.changed_keys.record(group.iter().flat_map(|b| &b.changes).map(|c| c.key(&plan.key_positions)));
}

fn record_applied(state: &RunState, group: &[Batch], skipped: usize) {
    let changes: usize = group.iter().map(|b| b.changes.len()).sum();
    RunState::count(&state.changes_applied, (changes - skipped) as u64);
    RunState::count(&state.changes_skipped, skipped as u64);
    state.backlog.fetch_sub(group.len() as u64, Ordering::Relaxed);
    if let Some(last) = group.last() {
        state.set_applied(last.end.clone());
    }
    if let Some(&marker) = group.iter().flat_map(|b| &b.markers).max() {
        state.applied_marker.fetch_max(marker, Ordering::SeqCst);
    }
}

/// Applies a group on the applier's own sessions: split by key across them when it is large
/// and there is more than one, else on the first. Returns how many changes it left out.
///
/// A split group that fails on a unique key is replayed again whole on one session, with
/// every fallback of [`apply_with_retries`]: the shares commit independently, so one share's
/// row may have taken a unique value before another share's row gave it up.
async fn apply_group(conns: &mut [Conn], server: &Server, plan: &Plan, group: &[Batch], retries: u32, keys: &KeyState, record_position: bool) -> Result<usize> {
    let all: Vec<&Change> = group.iter().flat_map(|b| &b.changes).collect();
    let wanted = effective_changes(&plan.key_positions, &all, keys.pending);
    let record = match (record_position, group.last()) {
        (true, Some(last)) => Some(crate::checkpoint::record_position(&plan.names, &last.end, last.end_gtid.as_deref())),
        _ => None,
    };
    if conns.len() < 2 || wanted.len() < MIN_CHANGES_TO_SPLIT {
        return apply_on_one_session(&mut conns[0], server, plan, (&all, &wanted), retries, Session::Own, record.as_ref()).await;
    }
    let shares = split_by_key(&wanted, &plan.key_positions, &spread_columns(plan), conns.len());
    tracing::debug!("replaying {} changes split across {} sessions: {:?}", wanted.len(), shares.len(), shares.iter().map(Vec::len).collect::<Vec<_>>());
    let replays = conns.iter_mut().zip(&shares).map(|(conn, share)| async move {
        let mut failing_keys = String::new();
        let doing = "applying binlog changes to the shadow table";
        let result = server.retrying(conn, retries, doing, async |c| apply_fitting_the_binlog_cache(c, plan, share, Session::Own, None, &mut failing_keys).await).await;
        result.map_err(|e| (e, failing_keys))
    });
    let results = futures_util::future::join_all(replays).await;
    match results.into_iter().find_map(std::result::Result::err) {
        None => {
            if let Some((sql, params)) = &record {
                server.retrying(&mut conns[0], retries, "recording the applied binlog position", async |c| c.exec_drop(sql.as_str(), params.clone()).await).await?;
            }
            Ok(all.len() - wanted.len())
        }
        Some((e, _)) if is_collision(&e, &plan.key_target) => {
            tracing::debug!("a group split across sessions collided on a unique key; replaying it on one session");
            apply_on_one_session(&mut conns[0], server, plan, (&all, &wanted), retries, Session::Own, record.as_ref()).await
        }
        Some((e, failing_keys)) => Err(explain_failure(e, plan, &failing_keys)),
    }
}

/// Which of the key's columns (indexes into the key) a group may be split by: those whose
/// equal values have equal bytes. Text columns are left out, whatever their collation: the
/// new table's collation decides what is the same row there, and it may fold case, accents
/// or trailing spaces.
fn spread_columns(plan: &Plan) -> Vec<usize> {
    (0..plan.key_positions.len()).filter(|&k| plan.columns[plan.key_positions[k]].source.charset.is_none()).collect()
}

/// Splits changes into `shares` lists by a hash of their key's `spread` columns, keeping their
/// order within each list: all changes to one row land in one list.
fn split_by_key<'a>(changes: &[&'a Change], key_positions: &[usize], spread: &[usize], shares: usize) -> Vec<Vec<&'a Change>> {
    use std::hash::{Hash, Hasher};
    let mut split = vec![Vec::with_capacity(changes.len() / shares + 1); shares];
    for &change in changes {
        let key = change.key(key_positions);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for &k in spread {
            key[k].as_sql(false).hash(&mut hasher);
        }
        split[(hasher.finish() % shares as u64) as usize].push(change);
    }
    split
}

/// Applies a group, retrying deadlocks, lock wait timeouts and lost connections (replaying a
/// group again is harmless: its upserts carry full images and its deletes are by key). Returns
/// how many changes it left out.
///
/// Changes to rows the copy has not reached yet (`pending`) are left out, and so is every
/// change to a row that a later change in the group replaces (the last full image wins). That
/// can reorder what other rows see: a row may take a unique value before the row that gave it
/// up in a left-out change has moved. So a collision on a unique key is tried once more with
/// every change in binlog order; only a collision that persists is real, and it fails the run
/// naming the keys.
#[allow(clippy::too_many_arguments)]
pub async fn apply_with_retries(conn: &mut Conn, server: &Server, plan: &Plan, group: &[Batch], retries: u32, session: Session, keys: &KeyState, record_position: bool) -> Result<usize> {
    let all: Vec<&Change> = group.iter().flat_map(|b| &b.changes).collect();
    let wanted = effective_changes(&plan.key_positions, &all, keys.pending);
    // Recorded in the group's own transaction: the position is exactly what the shadow holds.
    let record = match (record_position && session == Session::Own, group.last()) {
        (true, Some(last)) => Some(crate::checkpoint::record_position(&plan.names, &last.end, last.end_gtid.as_deref())),
        _ => None,
    };
    apply_on_one_session(conn, server, plan, (&all, &wanted), retries, session, record.as_ref()).await
}

/// [`apply_with_retries`] for a group already coalesced: `changes` is (every change, those
/// worth replaying); `record` is the position record to run in the group's transaction.
async fn apply_on_one_session(
    conn: &mut Conn,
    server: &Server,
    plan: &Plan,
    changes: (&[&Change], &[&Change]),
    retries: u32,
    session: Session,
    record: Option<&(String, Vec<Value>)>,
) -> Result<usize> {
    let (all, wanted) = changes;
    let mut failing_keys = String::new();
    let doing = "applying binlog changes to the shadow table";
    let mut result = server.retrying(conn, retries, doing, async |c| apply_fitting_the_binlog_cache(c, plan, wanted, session, record, &mut failing_keys).await).await;
    let collided = |r: &Result<()>| r.as_ref().is_err_and(|e| is_collision(e, &plan.key_target));
    let mut left_out = all.len() - wanted.len();
    if left_out > 0 && collided(&result) {
        tracing::debug!("a shortened group collided on a unique key; replaying it change by change in binlog order");
        result = server.retrying(conn, retries, doing, async |c| apply_changes(c, plan, all, session, record, &mut failing_keys).await).await;
        left_out = 0;
    }
    if !plan.unique_in_both.is_empty() && collided(&result) {
        tracing::debug!("a group collided on a unique key in binlog order; replaying it row by row, clearing images not replaced yet");
        result = server.retrying(conn, retries, doing, async |c| apply_clearing_stale_rows(c, plan, all, session, record, &mut failing_keys).await).await;
    }
    result.map(|()| left_out).map_err(|e| explain_failure(e, plan, &failing_keys))
}

/// Replays changes in one shadow transaction, or, when its binlog events outgrow the server's
/// `max_binlog_cache_size`, in two halves (recursively), the position recorded with the last.
/// Every half is whole changes in binlog order, so the shadow passes through states the
/// original had or will reach; only a single change too big for the cache fails.
async fn apply_fitting_the_binlog_cache(
    conn: &mut Conn,
    plan: &Plan,
    changes: &[&Change],
    session: Session,
    record: Option<&(String, Vec<Value>)>,
    failing_keys: &mut String,
) -> std::result::Result<(), mysql_async::Error> {
    match apply_changes(conn, plan, changes, session, record, failing_keys).await {
        Err(mysql_async::Error::Server(e)) if e.code == codes::BINLOG_CACHE_FULL && changes.len() > 1 && session == Session::Own => {
            let (first, second) = changes.split_at(changes.len() / 2);
            tracing::debug!("{} replayed changes outgrew max_binlog_cache_size; replaying them in two transactions", changes.len());
            Box::pin(apply_fitting_the_binlog_cache(conn, plan, first, session, None, failing_keys)).await?;
            Box::pin(apply_fitting_the_binlog_cache(conn, plan, second, session, record, failing_keys)).await
        }
        other => other,
    }
}

/// Replays changes one statement each; a change that collides on a unique index the original
/// has too (see `Plan::unique_in_both`) first deletes the shadow rows holding its values under
/// another key, then runs again. Those rows are images from the future of what the applier has
/// replayed: the original allowed no duplicate when this change was made, so whoever holds the
/// values in the shadow took them later, and that later change, still to be replayed, writes
/// its full image back.
async fn apply_clearing_stale_rows(
    conn: &mut Conn,
    plan: &Plan,
    changes: &[&Change],
    session: Session,
    record: Option<&(String, Vec<Value>)>,
    failing_keys: &mut String,
) -> std::result::Result<(), mysql_async::Error> {
    in_session(conn, session, record, async |c| {
        for change in changes {
            let (sql, params) = statement(plan, std::slice::from_ref(change));
            clear_widened_keys(c, plan, std::slice::from_ref(change)).await?;
            let outcome = match c.exec_drop(sql.as_str(), params.clone()).await {
                Err(mysql_async::Error::Server(e)) if collides(e.code, &e.message, &plan.key_target) => {
                    if clear_stale_holders(c, plan, change).await? > 0 {
                        c.exec_drop(sql, params).await
                    } else {
                        Err(mysql_async::Error::Server(e))
                    }
                }
                other => other,
            };
            if let Err(e) = outcome {
                *failing_keys = keys_of(plan, std::slice::from_ref(change));
                return Err(e);
            }
        }
        Ok(())
    })
    .await
}

/// Deletes the shadow rows that hold an upserted row's values on a unique index the original
/// has too, under another key. Returns how many it deleted.
async fn clear_stale_holders(conn: &mut Conn, plan: &Plan, change: &Change) -> std::result::Result<u64, mysql_async::Error> {
    let Change::Upsert(row) = change else { return Ok(0) };
    let names = plan.target_names();
    let placeholders = plan.placeholders();
    let key_placeholders = plan.key_placeholders();
    let key = change.key(&plan.key_positions);
    let shadow = plan.names.q(&plan.names.shadow);
    let mut deleted = 0;
    for index in &plan.unique_in_both {
        let Some(positions) = index.iter().map(|c| names.iter().position(|n| n.eq_ignore_ascii_case(c))).collect::<Option<Vec<usize>>>() else { continue };
        // A unique index's columns are never JSON: their cells are values.
        if positions.iter().any(|&p| *row[p].value() == Value::NULL) {
            continue;
        }
        let exprs: Vec<String> = positions.iter().map(|&p| placeholders[p].expr()).collect();
        let key_exprs: Vec<String> = key_placeholders.iter().map(Placeholder::expr).collect();
        let sql = format!("DELETE FROM {shadow} WHERE {} AND NOT ({})", crate::sql::key_equals(index, &exprs), crate::sql::key_equals(&plan.key_target, &key_exprs));
        let params: Vec<Value> = positions.iter().map(|&p| placeholders[p].bind(row[p].value())).chain(key_placeholders.iter().zip(&key).map(|(p, v)| p.bind(v))).collect();
        conn.exec_drop(sql, params).await?;
        deleted += conn.affected_rows();
    }
    if deleted > 0 {
        tracing::debug!("cleared {deleted} shadow row(s) holding the unique values of the row with key {} ahead of the replay", format_key(&key));
    }
    Ok(deleted)
}

/// The changes worth replaying, in binlog order: not those to pending rows, and for each row
/// only its last change.
fn effective_changes<'a>(key_positions: &[usize], changes: &[&'a Change], pending: Pending) -> Vec<&'a Change> {
    // Keys by their SQL text: byte-equal keys are the same row. (Keys equal only under a
    // collation stay apart, each at its last change, so their order is kept.)
    let keys: Vec<Vec<Value>> = changes.iter().map(|c| c.key(key_positions)).collect();
    let texts: Vec<String> = keys.iter().map(|k| format_key(k)).collect();
    let mut last = std::collections::HashMap::new();
    for (i, text) in texts.iter().enumerate() {
        last.insert(text.as_str(), i);
    }
    (0..changes.len()).filter(|&i| last[texts[i].as_str()] == i && !pending.contains(&keys[i])).map(|i| changes[i]).collect()
}

fn explain_failure(e: Error, plan: &Plan, failing_keys: &str) -> Error {
    match e.server_code() {
        None => e,
        Some(_) if is_collision(&e, &plan.key_target) => {
            Error::failed(format!("a replayed change collides with a different row on a unique key of the new table (rows with key {failing_keys}): {}", e.message))
                .with_code(e.code)
                .with_fix("the ALTER would merge or drop rows (e.g. a new UNIQUE index over duplicate values); fix the data or the ALTER and run again")
        }
        Some(_) => Error::failed(format!("a replayed change does not fit the new schema (rows with key {failing_keys}): {}", e.message))
            .with_code(e.code)
            .with_fix("the ALTER would truncate, overflow or reject values (a narrower type, fewer ENUM/SET members, NOT NULL over NULLs): fix those rows or change the ALTER"),
    }
}

/// The session a group is replayed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// The applier's own connection: each group is one transaction.
    Own,
    /// The cut-over's connection holding `LOCK TABLES` (MySQL): starting a transaction would
    /// silently release the table locks, so statements run one by one under the lock.
    UnderLock,
}

/// Replays changes (in one shadow transaction on the applier's own session). On a failed
/// statement, `failing_keys` names the keys of the changes it carried.
async fn apply_changes(
    conn: &mut Conn,
    plan: &Plan,
    changes: &[&Change],
    session: Session,
    record: Option<&(String, Vec<Value>)>,
    failing_keys: &mut String,
) -> std::result::Result<(), mysql_async::Error> {
    if changes.is_empty() && record.is_none() {
        return Ok(());
    }
    in_session(conn, session, record, async |c| {
        for run in changes.chunk_by(|a, b| std::mem::discriminant(*a) == std::mem::discriminant(*b)) {
            for part in statement_parts(run) {
                let (sql, params) = statement(plan, part);
                let replayed = match clear_widened_keys(c, plan, part).await {
                    Ok(()) => c.exec_drop(sql, params).await,
                    cleared => cleared,
                };
                if let Err(e) = replayed {
                    *failing_keys = keys_of(plan, part);
                    return Err(e);
                }
            }
        }
        Ok(())
    })
    .await
}

/// Runs `body` and then the position record: in one transaction on the applier's own session,
/// statement by statement under the cut-over's lock.
async fn in_session(
    conn: &mut Conn,
    session: Session,
    record: Option<&(String, Vec<Value>)>,
    body: impl AsyncFnOnce(&mut Conn) -> std::result::Result<(), mysql_async::Error>,
) -> std::result::Result<(), mysql_async::Error> {
    let all = async |c: &mut Conn| {
        body(c).await?;
        match record {
            Some((sql, params)) => c.exec_drop(sql.as_str(), params.clone()).await,
            None => Ok(()),
        }
    };
    match session {
        Session::Own => in_transaction(conn, all).await,
        Session::UnderLock => all(conn).await,
    }
}

/// A run of changes cut into statements of at most `MAX_STATEMENT_ROWS` rows and
/// `MAX_STATEMENT_PARAMS` parameters (a JSON value rebuilt by an expression can carry hundreds).
fn statement_parts<'a, 'c>(run: &'a [&'c Change]) -> Vec<&'a [&'c Change]> {
    let params = |c: &Change| match c {
        Change::Upsert(row) => row.iter().map(|cell| if let Cell::Expr { params, .. } = cell { params.len() } else { 1 }).sum(),
        Change::Delete(key) => key.len(),
    };
    let mut parts = Vec::new();
    let (mut start, mut counted) = (0, 0);
    for (i, change) in run.iter().enumerate() {
        let n = params(change);
        if i > start && (i - start == MAX_STATEMENT_ROWS || counted + n > MAX_STATEMENT_PARAMS) {
            parts.push(&run[start..i]);
            (start, counted) = (i, 0);
        }
        counted += n;
    }
    if start < run.len() {
        parts.push(&run[start..]);
    }
    parts
}

/// The statement and parameters for a run of changes of one kind.
fn statement(plan: &Plan, run: &[&Change]) -> (String, Vec<Value>) {
    let shadow = plan.names.q(&plan.names.shadow);
    match run[0] {
        Change::Upsert(_) => {
            let placeholders = plan.placeholders();
            let mut params = Vec::new();
            let tuples: Vec<String> = run
                .iter()
                .map(|c| match c {
                    Change::Upsert(row) => row_tuple(&placeholders, row, &mut params),
                    Change::Delete(_) => unreachable!("runs hold one kind of change"),
                })
                .collect();
            (crate::guard::upsert_tuples(&shadow, &plan.target_names(), &tuples, &plan.guarded_key()), params)
        }
        Change::Delete(_) => {
            let placeholders = plan.key_placeholders();
            let sql = crate::sql::delete_rows(&shadow, &plan.key_target, &placeholders, run.len());
            let params = run.iter().flat_map(|c| match c {
                Change::Delete(key) => placeholders.iter().zip(key).map(|(p, v)| p.bind(v)).collect::<Vec<_>>(),
                Change::Upsert(_) => unreachable!("runs hold one kind of change"),
            });
            (sql, params.collect())
        }
    }
}

/// When the new table's key is wider than the chosen key (`Plan::shadow_key_widens`), deletes
/// the shadow rows with the keys of a run of upserts first: an upsert matches an existing row
/// only on the whole wider key, so an image whose extra columns changed would otherwise sit
/// beside the old one. The key is unique in the original, so these rows are the same rows.
async fn clear_widened_keys(conn: &mut Conn, plan: &Plan, run: &[&Change]) -> std::result::Result<(), mysql_async::Error> {
    if !plan.shadow_key_widens || !matches!(run.first(), Some(Change::Upsert(_))) {
        return Ok(());
    }
    let placeholders = plan.key_placeholders();
    let sql = crate::sql::delete_rows(&plan.names.q(&plan.names.shadow), &plan.key_target, &placeholders, run.len());
    let params: Vec<Value> = run.iter().flat_map(|c| placeholders.iter().zip(c.key(&plan.key_positions)).map(|(p, v)| p.bind(&v)).collect::<Vec<_>>()).collect();
    conn.exec_drop(sql, params).await
}

/// One row's `(...)` of an upsert: each value through its column's placeholder, each
/// expression as it is; their parameters are appended to `params` in order.
fn row_tuple(placeholders: &[Placeholder], row: &[Cell], params: &mut Vec<Value>) -> String {
    let exprs: Vec<String> = placeholders
        .iter()
        .zip(row)
        .map(|(placeholder, cell)| match cell {
            Cell::Value(v) => {
                params.push(placeholder.bind(v));
                placeholder.expr()
            }
            Cell::Expr { sql, params: own } => {
                params.extend(own.iter().cloned());
                sql.clone()
            }
        })
        .collect();
    format!("({})", exprs.join(", "))
}

/// The keys of some changes, for an error message.
fn keys_of(plan: &Plan, run: &[&Change]) -> String {
    let keys: Vec<String> = run.iter().take(5).map(|c| format_key(&c.key(&plan.key_positions))).collect();
    format!("{}{}", keys.join(", "), if run.len() > 5 { ", ..." } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(id: i64, v: &str) -> Change {
        Change::Upsert(vec![Cell::Value(Value::Int(id)), Cell::Value(Value::Bytes(v.as_bytes().to_vec()))])
    }

    fn delete(id: i64) -> Change {
        Change::Delete(vec![Value::Int(id)])
    }

    #[test]
    fn statements_hold_a_bounded_number_of_rows_and_parameters() {
        let plain: Vec<Change> = (0..450).map(|i| upsert(i, "v")).collect();
        let all: Vec<&Change> = plain.iter().collect();
        assert_eq!(statement_parts(&all).iter().map(|p| p.len()).collect::<Vec<_>>(), vec![200, 200, 50]);
        let heavy = |id: i64| Change::Upsert(vec![Cell::Value(Value::Int(id)), Cell::Expr { sql: "JSON_ARRAY(?)".into(), params: vec![Value::Int(1); 25_000] }]);
        let heavy: Vec<Change> = (0..5).map(heavy).collect();
        let all: Vec<&Change> = heavy.iter().collect();
        assert_eq!(statement_parts(&all).iter().map(|p| p.len()).collect::<Vec<_>>(), vec![2, 2, 1], "at most 60,000 parameters a statement");
        assert!(statement_parts(&[]).is_empty());
    }

    #[test]
    fn keeps_each_rows_last_change_in_binlog_order() {
        let changes = [upsert(1, "a"), upsert(2, "b"), upsert(1, "c"), delete(2), upsert(3, "d"), delete(1)];
        let all: Vec<&Change> = changes.iter().collect();
        let kept = effective_changes(&[0], &all, Pending::Nothing);
        assert_eq!(kept, vec![&changes[3], &changes[4], &changes[5]]);
    }

    #[test]
    fn leaves_out_rows_the_copy_reads_later() {
        let changes = [upsert(1, "a"), upsert(50, "b"), delete(60), upsert(200, "c")];
        let all: Vec<&Change> = changes.iter().collect();
        let kept = effective_changes(&[0], &all, Pending::Keys { after: Some(10), up_to: 100 });
        assert_eq!(kept, vec![&changes[0], &changes[3]]);
    }

    #[test]
    fn splits_rows_apart_but_keeps_each_rows_changes_together_in_order() {
        // Row images are (text, id) with the key (id, text): deletes carry the key only.
        let row = |id: i64, v: &str| Change::Upsert(vec![Cell::Value(Value::Bytes(v.as_bytes().to_vec())), Cell::Value(Value::Int(id))]);
        let gone = |id: i64| Change::Delete(vec![Value::Int(id), Value::Bytes(b"k".to_vec())]);
        let changes: Vec<Change> = (0..200).map(|i| if i % 3 == 0 { gone(i % 50) } else { row(i % 50, "k") }).collect();
        let all: Vec<&Change> = changes.iter().collect();
        let shares = split_by_key(&all, &[1, 0], &[0], 3);
        assert_eq!(shares.iter().map(Vec::len).sum::<usize>(), 200);
        assert!(shares.iter().all(|s| !s.is_empty()), "50 keys over 3 shares leave none empty");
        for id in 0..50 {
            let key = vec![Value::Int(id), Value::Bytes(b"k".to_vec())];
            let holders: Vec<&Vec<&Change>> = shares.iter().filter(|s| s.iter().any(|c| c.key(&[1, 0]) == key)).collect();
            assert_eq!(holders.len(), 1, "key {id} is in one share");
            let in_share: Vec<&Change> = holders[0].iter().copied().filter(|c| c.key(&[1, 0]) == key).collect();
            let in_binlog: Vec<&Change> = all.iter().copied().filter(|c| c.key(&[1, 0]) == key).collect();
            assert_eq!(in_share, in_binlog, "key {id} keeps its order");
        }
    }

    #[test]
    fn a_small_group_waits_for_the_transactions_that_follow_it() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let hold = AtomicU64::new(0);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(Batch::for_test(vec![upsert(2, "b")], vec![])).unwrap();
        });
        let group = gather(Batch::for_test(vec![upsert(1, "a")], vec![]), &rx, &hold, Duration::from_secs(5));
        sender.join().unwrap();
        assert_eq!(group.len(), 2, "the second transaction came within the window");
    }

    #[test]
    fn an_awaited_marker_ends_the_wait_and_the_group() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let hold = AtomicU64::new(7);
        let started = Instant::now();
        let group = gather(Batch::for_test(vec![upsert(1, "a")], vec![]), &rx, &hold, Duration::from_secs(5));
        assert_eq!(group.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(2), "no wait while a marker is awaited");

        tx.send(Batch::for_test(vec![upsert(2, "b")], vec![7])).unwrap();
        tx.send(Batch::for_test(vec![upsert(3, "c")], vec![])).unwrap();
        let group = gather(Batch::for_test(vec![upsert(1, "a")], vec![]), &rx, &hold, Duration::from_secs(5));
        assert_eq!(group.len(), 2, "the group ends with the marker's transaction");
    }
}
