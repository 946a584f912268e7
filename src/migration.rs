//! The runner: the phases of a migration in order, each with its cleanup.
//!
//! 1. preflight: server, binlog settings, privileges, table, ALTER, leftovers, the run lock;
//!    any refusal here leaves the server exactly as it was;
//! 2. prove: create the shadow table and run the ALTER on it (copying), build the plan; a dry
//!    run stops here and drops the shadow;
//! 3. pipeline: changelog, binlog reader from the current position, applier, heartbeat, copy;
//! 4. verification: the shadow compared with the original at one consistent point;
//! 5. the postpone flag file, if any; 6. cut-over; 7. cleanup.
//!
//! Invariants: the original table is never written except by the final RENAME; whatever fails
//! after the shadow exists, the tables this run created are dropped before it exits (the old
//! table after a successful swap is kept unless `--ok-to-drop-table`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::alter::{self, AlterSummary};
use crate::binlog::gtid::GtidPosition;
use crate::binlog::stream::{self, Start, Tables};
use crate::checkpoint;
use crate::config::{Config, OnReplica, Resume};
use crate::copy::{ChunkSizer, Copier, CopyWork};
use crate::cutover::CutOver;
use crate::error::{describe_mysql_error, Context, Error, ExitKind, Result, Retry};
use crate::hooks::{Hook, Hooks};
use crate::indexes::{self, without_auto_increment, Deferral, DeferredIndexes};
use crate::inspect::{self, TableInfo};
use crate::plan::{self, Plan, TableNames};
use crate::server::{self, preflight, BinlogPosition, Flavor, Server};
use crate::state::RunState;
use crate::triggers;
use crate::verify::Verifier;
use crate::{apply, changelog, progress, throttle};

/// Transactions buffered between the binlog reader and the applier.
const CHANNEL_CAPACITY: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    DryRun,
    Migrated,
    /// `--attempt-instant-ddl` changed the table in place, with no copy.
    Instant,
    /// `--test-on-replica`: everything but the swap.
    TestedOnReplica,
}

/// Runs the whole migration as configured. A failure or a signal at any point removes the
/// tables this run created (see [`Created`]) before returning.
/// Rows replayed since the last comparison beyond which they are compared at a new consistent
/// point before the cut-over, rather than all under its lock (about 50 ms per thousand).
const RECHECK_BEFORE_CUT_OVER: usize = 1_000;
/// The same while the swap is postponed, to keep their record small.
const RECHECK_WHILE_POSTPONED: usize = 100_000;

pub async fn run(config: &Config) -> Result<Outcome> {
    let mut signals = ShutdownSignals::install()?;
    let status = config.status_json.as_deref().map(crate::status::StatusSink::open).transpose()?;
    let created = Created::default();
    let state = Arc::new(RunState::new(status));
    state.live.chunk_size.store(config.chunk_size, Ordering::Relaxed);
    state.live.threads.store(config.threads.unwrap_or(1), Ordering::Relaxed);
    state.live.max_lag_ms.store(config.throttler.max_lag.as_millis() as u64, Ordering::Relaxed);
    *state.live.max_load.lock().expect("live lock") = config.throttler.max_load.clone();
    *state.live.critical_load.lock().expect("live lock") = config.throttler.critical_load.clone();
    *state.live.nice_ratio.lock().expect("live lock") = config.nice_ratio;
    *state.live.throttle_query.lock().expect("live lock") = config.throttler.throttle_query.clone();
    *state.live.throttle_http.lock().expect("live lock") = config.throttle_http.clone();
    *state.live.postpone_flag_file.lock().expect("live lock") = config.postpone_cut_over_flag_file.clone();
    state.set_phase("inspecting");
    let hooks = table_names(config).map(|names| Hooks::new(config.hooks_path.clone(), &names, &config.alter, &config.connection.host, !config.execute, config.hooks_hints.clone())).ok();
    let connection = &config.connection;
    let commands = crate::control::Context {
        table: config.table.clone(),
        named: config.force_named_commands,
        server: connection.socket.as_ref().map_or_else(|| format!("{}:{}", connection.host, connection.port), |s| s.display().to_string()),
    };
    let metrics = config.statsd.as_ref().map(|statsd| crate::metrics::spawn(statsd, state.clone())).transpose()?;
    let _listeners = crate::control::serve(config.serve_socket_file.clone(), config.initially_drop_socket_file, config.serve_tcp_port, state.clone(), hooks.clone(), commands).await?;
    // A panic (a bug) still goes through the cleanup below, like any failure.
    let migration = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(migrate(config, &created, &state, hooks.as_ref())));
    let result = tokio::select! {
        r = migration => r.unwrap_or_else(|_| Err(Error::failed("alterego panicked (a bug; please report it with the log)"))),
        signal = signals.received() => Err(Error::new(ExitKind::Aborted, format!("{signal} received; the migration was stopped"))),
    };
    state.stop();
    if let Some(socket) = &config.serve_socket_file {
        let _ = std::fs::remove_file(socket);
    }
    if let Some(metrics) = metrics {
        // The last values, the run's final counts, go out before the process ends.
        metrics.await.ok();
    }
    let result = result.map_err(|e| if e.kind == ExitKind::Aborted { e } else { state.take_failure().unwrap_or(e) });
    let result = result.map_err(|e| if e.is_out_of_space() { out_of_space(e, config, state.new_table_bytes.load(Ordering::Relaxed)) } else { e });
    let result = match result {
        Err(e) => {
            let waiting = [(state.pending_rename.load(Ordering::SeqCst), "the cut-over's RENAME"), (state.pending_lock.load(Ordering::SeqCst), "the cut-over's LOCK TABLES")];
            let (kind, message, fix, code) = (e.kind, e.message.clone(), e.fix.clone(), e.code);
            let cleanup = created.remove(&waiting, e);
            // The cleanup may wait up to a minute for a server that went away; a signal then
            // ends the run at once, saying what is left to drop. Not while a cut-over statement
            // waits: exiting would release the lock that holds it back, and the RENAME could
            // swap in a shadow that is behind.
            let statement_waits = waiting.iter().any(|&(id, _)| id != 0);
            tokio::select! {
                removed = cleanup => Err(removed),
                signal = signals.received(), if !statement_waits => {
                    eprintln!("alterego: {signal} received during the cleanup, which was abandoned; {}", created.left_behind());
                    Err(Error { kind, message, fix, transient: false, code })
                }
            }
        }
        ok => ok,
    };
    if let Some(hooks) = &hooks {
        let hook = if result.is_ok() { Hook::Success } else { Hook::Failure };
        hooks.run(hook, &state, &[]).await.ok();
    }
    match &result {
        Ok(outcome) => state.emit("done", serde_json::json!({"outcome": format!("{outcome:?}"), "verified_rows": state.verified_rows.load(Ordering::Relaxed), "copy_ms": state.copy_ms.load(Ordering::Relaxed), "verify_ms": state.verify_ms.load(Ordering::Relaxed), "cut_over_lock_ms": state.cut_over_lock_ms.load(Ordering::Relaxed)})),
        Err(e) => state.emit("failed", serde_json::json!({"exit_code": e.kind.code(), "error": e.to_string()})),
    }
    result
}

/// The error for a server that ran out of space, whoever met it (the copy, the applier, an
/// index build): what ran out, and how much room the new table needs.
fn out_of_space(e: Error, config: &Config, new_table_bytes: u64) -> Error {
    let shadow = table_names(config).map(|n| n.q(&n.shadow)).unwrap_or_default();
    let reason = e.server_reason().unwrap_or(&e.message);
    let message = format!("the server ran out of space while writing {shadow} ({reason}); the tables this run created were dropped, the original table is untouched");
    let room = format!("free about {} MB", (new_table_bytes >> 20).max(1));
    Error::new(e.kind, message).with_fix(format!(
        "{room} (the plan's estimate of the new table; `alterego plan` prints it) on the server's data directory, or in the InnoDB system tablespace when innodb_file_per_table is off (a `max:` in innodb_data_file_path caps it), then run again"
    ))
}

/// Writes the human report: to stdout, or to stderr when stdout carries `--status-json -`.
macro_rules! report {
    ($config:expr, $($arg:tt)*) => {
        if $config.status_json.as_deref() == Some(std::path::Path::new("-")) { eprintln!($($arg)*) } else { println!($($arg)*) }
    };
}

async fn migrate(config: &Config, created: &Created, state: &Arc<RunState>, hooks: Option<&Hooks>) -> Result<Outcome> {
    let names = table_names(config)?;
    let hooks = hooks.cloned().expect("hooks exist when the table names are valid");
    hooks.run(Hook::Startup, state, &[]).await?;
    let server = Server::connect(&config.connection).await?;
    let mut conn = server.conn().await.map_err(preflight)?;
    let Checked { mut original, summary, leftover, triggers } = check(&server, &mut conn, config, &names).await.map_err(preflight)?;
    if config.exact_rowcount {
        original.estimated_rows = count_rows(&mut conn, &names).await?;
    }
    state.new_table_bytes.store(plan::space_needed(&original).0, Ordering::Relaxed);
    if config.threads.is_none() {
        state.live.threads.store(server::default_copy_threads(&mut conn).await?, Ordering::Relaxed);
    }
    let _run_lock = take_run_lock(&server, &names).await?;
    drop_leftovers(&server, &mut conn, config, &names, leftover).await.map_err(preflight)?;
    let resumed = match leftover {
        Leftover::Resumable => Some(resume_point(&server, &mut conn, config, &names).await.map_err(preflight)?),
        _ if config.resume == Resume::Required => {
            return Err(Error::refused(
                format!("--resume: no interrupted run of this migration was found (no {} with {} and {})", names.q(&names.checkpoint), names.q(&names.shadow), names.q(&names.changelog)),
                "run without --resume to start the migration",
            ))
        }
        _ => None,
    };

    if config.execute {
        create_postpone_flag_file(config)?;
    }
    created.track(&server, &names);
    let (plan, instant) = match &resumed {
        None => {
            let (plan, instant) = prove_alter(&mut conn, &names, &original, &summary, created, config.allow_zero_in_date).await?;
            (Arc::new(plan), Some(instant))
        }
        Some(saved) => {
            for table in [&names.shadow, &names.changelog, &names.checkpoint] {
                created.add(table);
            }
            (Arc::new(resumed_plan(&mut conn, &names, &original, &summary, &saved.header.shadow_ddl).await?), None)
        }
    };
    let mut lag = throttle::LagProbe::new(&server, &mut conn, &config.throttler, &names, config.server_id).await?;
    let index_builds = plan_index_builds(&server, &mut lag, config, &plan, original.estimated_rows).await;
    let sample = if config.execute { None } else { time_sample_chunk(&server, &mut conn, &plan, state, config, index_builds.defer()).await? };
    print_plan(&plan, &original, &summary, &PlanFacts { instant, sample, deferral: &index_builds.deferral }, config);
    hooks.run(Hook::Validated, state, &[]).await?;
    if !config.execute {
        created.drop_all(&mut conn).await?;
        report!(config, "Dry run: the ALTER works on the shadow table, which has been dropped again. Add --execute to migrate.");
        return Ok(Outcome::DryRun);
    }

    if resumed.is_none() && config.attempt_instant_ddl && try_instant(&mut conn, config, &names, &summary).await? {
        created.drop_all(&mut conn).await?;
        report!(config, "Altered {} in place with ALGORITHM=INSTANT: no copy was needed.", names.q(&names.original));
        return Ok(Outcome::Instant);
    }

    state.rows_estimated.store(original.estimated_rows, Ordering::Relaxed);
    let deferred = match &resumed {
        Some(_) => DeferredIndexes::from_ddl(&plan.shadow_ddl).still_missing(&inspect::show_create(&mut conn, &names.database, &names.shadow).await?),
        None if index_builds.defer() => DeferredIndexes::from_ddl(&plan.shadow_ddl).defer(&mut conn, &names).await?,
        None => DeferredIndexes::default(),
    };
    let deferred = deferred.in_two_phases(index_builds.two_phase);
    let builds_hold_up_replicas = !index_builds.standing_still.is_empty();
    let migration =
        Migration { server: server.clone(), config: config.clone(), plan: plan.clone(), state: state.clone(), hooks, original: original.clone(), triggers, deferred, builds_hold_up_replicas };
    migration.execute(&mut conn, created, resumed, lag).await?;
    // A fresh connection: the first one may not have survived a server restart mid-run.
    migration.finish(&mut server.conn().await?, created).await?;
    if let OnReplica::Test { stop_replication } = config.on_replica {
        report!(
            config,
            "Tested on the replica: {} holds the new table, equal to {} as of the end of the test ({}); compare them, then drop {}.",
            names.q(&names.shadow),
            names.q(&names.original),
            if stop_replication { "replication is stopped: START it again afterwards" } else { "replication kept running, so the table has moved on since" },
            names.q(&names.shadow)
        );
        return Ok(Outcome::TestedOnReplica);
    }
    report!(
        config,
        "Migrated {}: copied {} rows in {:.1} s, replayed {} binlog changes (left out {}: superseded, or to rows not copied yet), verified {} rows in {:.1} s, cut-over lock held {} ms; {}.",
        names.q(&names.original),
        state.rows_copied.load(Ordering::Relaxed),
        state.copy_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        state.changes_applied.load(Ordering::Relaxed),
        state.changes_skipped.load(Ordering::Relaxed),
        state.verified_rows.load(Ordering::Relaxed),
        state.verify_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        state.cut_over_lock_ms.load(Ordering::Relaxed),
        if config.drop_old_table { "the old table was dropped".to_string() } else { format!("the old table is kept as {}", names.q(&names.old)) }
    );
    Ok(Outcome::Migrated)
}

/// The tables this run created, so that a failure or a signal removes exactly those: never
/// the original, never a leftover of another run, and not the old table after a swap.
#[derive(Default)]
struct Created {
    inner: std::sync::Mutex<Option<(Server, TableNames, Vec<String>)>>,
    /// The session running a `CREATE TABLE` of the run's, while it runs (0: none).
    creating: std::sync::atomic::AtomicU32,
}

impl Created {
    fn track(&self, server: &Server, names: &TableNames) {
        *self.inner.lock().expect("created lock") = Some((server.clone(), names.clone(), Vec::new()));
    }

    /// Runs `create` (the `CREATE TABLE` of `table`, on session `id`). The table counts as the
    /// run's from before the statement is sent, and the session is recorded: a signal that
    /// lands while the statement waits (for a metadata lock on `t`, say) kills it and drops
    /// what it made, or the table would appear after the run had exited. A table that already
    /// existed is not the run's.
    async fn creating<T>(&self, id: u32, table: &str, create: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.add(table);
        self.creating.store(id, Ordering::SeqCst);
        let result = create.await;
        self.creating.store(0, Ordering::SeqCst);
        if result.as_ref().is_err_and(|e| e.server_code() == Some(crate::error::codes::TABLE_EXISTS)) {
            self.forget(table);
        }
        result
    }

    fn add(&self, table: &str) {
        if let Some((_, _, tables)) = self.inner.lock().expect("created lock").as_mut() {
            tables.push(table.to_string());
        }
    }

    fn forget(&self, table: &str) {
        if let Some((_, _, tables)) = self.inner.lock().expect("created lock").as_mut() {
            tables.retain(|t| t != table);
        }
    }

    fn snapshot(&self) -> Option<(Server, TableNames, Vec<String>)> {
        self.inner.lock().expect("created lock").clone()
    }

    /// What an operator must drop by hand when the cleanup could not run.
    fn left_behind(&self) -> String {
        let Some((_, names, _)) = self.snapshot() else { return "this run created no table".into() };
        format!("drop {} and {} by hand if they exist ({}, if it exists, is the original table after a completed swap)", names.q(&names.shadow), names.q(&names.changelog), names.q(&names.old))
    }

    async fn drop_all(&self, conn: &mut Conn) -> Result<()> {
        let Some((server, names, tables)) = self.snapshot() else { return Ok(()) };
        for table in &tables {
            drop_tables(&server, conn, &names, &[table]).await?;
            self.forget(table);
        }
        Ok(())
    }

    /// Cleanup after `error`. The cut-over's statements still waiting (`waiting`: connection
    /// ids, 0 for none, and what they run) are killed first: a RENAME, so that the tables cannot
    /// be swapped after the run gave up, and a LOCK TABLES, which may hold the shadow.
    /// If the swap already happened (the shadow is gone and the old table exists), the shadow
    /// is the live table now: only the changelog is dropped, and the error says so.
    async fn remove(&self, waiting: &[(u32, &str)], error: Error) -> Error {
        let Some((server, names, _)) = self.snapshot() else { return error };
        let mut conn = match server.conn().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("alterego: cannot connect to clean up ({e}); {}", self.left_behind());
                return error;
            }
        };
        for &(id, what) in waiting {
            stop_waiting_statement(&mut conn, id, what).await;
        }
        stop_waiting_statement(&mut conn, self.creating.load(Ordering::SeqCst), "a CREATE TABLE").await;
        let shadow_exists = inspect::exists(&mut conn, &names.database, &names.shadow).await.unwrap_or(true);
        let swapped = !shadow_exists && inspect::exists(&mut conn, &names.database, &names.old).await.unwrap_or(false);
        if swapped {
            self.forget(&names.shadow);
        }
        if let Err(e) = self.drop_all(&mut conn).await {
            eprintln!("alterego: cleaning up after the failure: {e}");
        }
        if !swapped {
            return error;
        }
        let message = format!("{}; the tables had already been swapped: {} is the new table, the old one is kept as {}", error.message, names.q(&names.original), names.q(&names.old));
        Error { message, ..error }
    }
}

/// alterego migrates on the server it connects to, where gh-ost, pointed at a replica, reads
/// its binlog there and migrates the primary: a replica is refused unless
/// `--migrate-on-replica` or `--test-on-replica` says the replica itself is meant. Those need a
/// replica that writes what it replicates to its binlog, or replicated writes to the table
/// would never reach the reader, and be lost from the new table.
async fn check_replication(server: &Server, conn: &mut Conn, config: &Config) -> Result<()> {
    let host = &config.connection.host;
    match (server.replication(conn).await?, config.on_replica) {
        (server::Replication::None, OnReplica::No) => Ok(()),
        (server::Replication::From(source), OnReplica::No) => Err(Error::refused(
            format!("{host} is a replica (of {source}): alterego migrates the server it connects to, so the primary would keep the old table"),
            "point --host at the primary (gh-ost, given a replica, read the binlog there and migrated the primary), or pass --migrate-on-replica to migrate this replica alone (--test-on-replica to try it there)",
        )),
        (server::Replication::None, _) => Err(Error::refused(
            format!("--migrate-on-replica or --test-on-replica: {host} is no replica"),
            "point --host at a replica, or run without the flag to migrate this server",
        )),
        (server::Replication::From(_), _) => {
            let logs = match server::global_variable(conn, "log_replica_updates").await? {
                Some(value) => value,
                None => server::global_variable(conn, "log_slave_updates").await?.unwrap_or_default(),
            };
            if logs.eq_ignore_ascii_case("ON") {
                return Ok(());
            }
            Err(Error::refused(
                format!("{host} does not write what it replicates to its binlog (log_replica_updates is OFF): the writes to the table that reach it from its primary would be lost from the new table"),
                "set log_replica_updates=ON (log_slave_updates on MariaDB) on the replica and restart it, or migrate the primary",
            ))
        }
    }
}

/// Without `--include-triggers`, a table with triggers is refused: they would stay with the
/// old table.
async fn refuse_triggers(conn: &mut Conn, names: &TableNames) -> Result<triggers::Carried> {
    let found = inspect::triggers(conn, &names.database, &names.original).await?;
    if found.is_empty() {
        return Ok(triggers::Carried::default());
    }
    Err(Error::refused(
        format!("{} has triggers ({}); they would stay with the old table", names.q(&names.original), found.join(", ")),
        "pass --include-triggers with --trigger-suffix to create them on the new table at the swap, or drop them before the migration and recreate them after it",
    ))
}

/// Every refusal that needs no table to be created: server, binlog, privileges, the table, the ALTER.
/// What the checks before anything is created learned.
struct Checked {
    original: TableInfo,
    summary: AlterSummary,
    leftover: Leftover,
    /// The triggers `--include-triggers` carries to the new table.
    triggers: triggers::Carried,
}

async fn check(server: &Server, conn: &mut Conn, config: &Config, names: &TableNames) -> Result<Checked> {
    server::check_server(server, conn, &config.database).await?;
    if config.gtid {
        check_gtid(server, conn).await?;
    }
    check_replication(server, conn, config).await?;
    config.throttler.validate(conn).await?;
    let summary = alter::summarize(&config.alter, &config.table)?;
    let summary = if config.skip_renamed_columns { summary.renames_as_drops() } else { summary };
    plan::check_renames(&summary, config.approve_renamed_columns)?;
    let Some(original) = inspect::load(conn, &names.database, &names.original).await? else { return Err(missing_table(conn, names).await) };
    let fks = inspect::foreign_keys(conn, &names.database, &names.original).await?;
    if !fks.referencing.is_empty() {
        return Err(Error::refused(
            format!("other tables' foreign keys reference {} ({}); after the swap they would reference the old table", names.q(&names.original), fks.referencing.join(", ")),
            "drop those foreign keys first (and recreate them afterwards), or use a native ALTER",
        ));
    }
    if !fks.own.is_empty() && !config.discard_foreign_keys {
        return Err(Error::refused(
            format!("{} has foreign keys ({}); they cannot follow the table through the swap", names.q(&names.original), fks.own.join(", ")),
            "drop the foreign keys first (and recreate them afterwards), use a native ALTER, or pass --discard-foreign-keys to migrate without them (the new table has none)",
        ));
    }
    if !fks.own.is_empty() {
        tracing::warn!("--discard-foreign-keys: the new table will not have the foreign keys {}", fks.own.join(", "));
    }
    let triggers = match &config.include_triggers {
        Some(naming) => triggers::plan(conn, names, naming).await?,
        None => refuse_triggers(conn, names).await?,
    };
    if original.usable_unique_keys().is_empty() {
        return Err(Error::refused(format!("{} has no PRIMARY or NOT NULL UNIQUE key; rows cannot be matched between the tables", names.q(&names.original)), "add a primary key first"));
    }
    server::check_replayable(&server.facts, &original.columns, config.copy_through_client).map_err(|(why, fix)| Error::refused(format!("{}: {why}", names.q(&names.original)), fix))?;
    let leftover = leftover_run(conn, config, names).await?;
    let ghost_allowed = config.initially_drop_ghost_table || leftover != Leftover::None;
    for (table, flag, allowed) in [
        (&names.shadow, "--initially-drop-ghost-table", ghost_allowed),
        (&names.changelog, "--initially-drop-ghost-table", ghost_allowed),
        (&names.checkpoint, "--initially-drop-ghost-table", ghost_allowed),
        (&names.old, "--initially-drop-old-table", config.initially_drop_old_table),
    ] {
        if !allowed && inspect::exists(conn, &names.database, table).await? {
            return Err(Error::refused(format!("{} already exists, left by an earlier run", names.q(table)), format!("inspect it and drop it, or pass {flag} to drop it at start")));
        }
    }
    Ok(Checked { original, summary, leftover, triggers })
}

/// The refusal for a table that does not exist, naming the database when that is what is missing.
async fn missing_table(conn: &mut Conn, names: &TableNames) -> Error {
    let fix = "check --database and --table (names are case-sensitive)";
    match inspect::database_exists(conn, &names.database).await {
        Ok(false) => Error::refused(format!("database {} does not exist", crate::sql::quote_ident(&names.database)), fix),
        Ok(true) => Error::refused(format!("table {} does not exist", names.q(&names.original)), fix),
        Err(e) => e,
    }
}

/// What an interrupted earlier run left: nothing to resume, a run to resume, or one to drop
/// (`--no-resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    None,
    Resumable,
    Dropped,
}

/// An interrupted run left its shadow, changelog and checkpoint tables: resume it (when
/// executing), or drop it with `--no-resume`.
async fn leftover_run(conn: &mut Conn, config: &Config, names: &TableNames) -> Result<Leftover> {
    if !inspect::exists(conn, &names.database, &names.checkpoint).await? {
        return Ok(Leftover::None);
    }
    if config.resume == Resume::Never {
        return Ok(Leftover::Dropped);
    }
    let complete = inspect::exists(conn, &names.database, &names.shadow).await? && inspect::exists(conn, &names.database, &names.changelog).await?;
    Ok(if complete && config.execute { Leftover::Resumable } else { Leftover::None })
}

/// The checkpoint of the interrupted run, if this run may continue it: the same ALTER, the
/// same table, and the binlog from its position still on the server.
async fn resume_point(server: &Server, conn: &mut Conn, config: &Config, names: &TableNames) -> Result<checkpoint::Saved> {
    let start_over = "start over with --no-resume (it drops what the interrupted run left)";
    let saved = checkpoint::load(conn, names)
        .await?
        .ok_or_else(|| Error::refused(format!("{} and {} were left by a run interrupted before its first checkpoint", names.q(&names.shadow), names.q(&names.changelog)), start_over))?;
    if saved.header.alter.trim() != config.alter.trim() {
        return Err(Error::refused(
            format!("the interrupted run of {} had another ALTER: `{}` (this one: `{}`)", names.q(&names.original), saved.header.alter.trim(), config.alter.trim()),
            format!("run with the same --alter to resume it, or {start_over}"),
        ));
    }
    let original_ddl = inspect::show_create(conn, &names.database, &names.original).await?;
    if without_auto_increment(&original_ddl) != without_auto_increment(&saved.header.original_ddl) {
        return Err(Error::refused(format!("{} has changed since the interrupted run started", names.q(&names.original)), start_over));
    }
    match (config.gtid, &saved.gtid) {
        (true, None) => return Err(Error::refused("--gtid: the interrupted run followed the binlog by file and position, not by GTID", format!("resume it without --gtid, or {start_over}"))),
        (true, Some(gtid)) if !gtid_still_served(server, conn, gtid).await? => {
            return Err(Error::refused(
                format!("transactions after the interrupted run's GTID position `{gtid}` have been purged from the server's binlog (gtid_purged)"),
                format!("{start_over}; keep binlogs longer than a run may be interrupted"),
            ))
        }
        (true, Some(_)) => {}
        (false, _) if !server.binlog_files(conn).await?.contains(&saved.position.file) => {
            return Err(Error::refused(
                format!("the binlog file {} that the interrupted run must be resumed from has been purged from the server", saved.position.file),
                format!("{start_over}; keep binlogs longer than a run may be interrupted"),
            ))
        }
        (false, _) => {}
    }
    tracing::info!("resuming the interrupted run (checkpoint format {}, written by alterego {}) from binlog {}", saved.header.format, saved.header.tool_version, saved.position);
    Ok(saved)
}

/// Refuses `--gtid` where the server keeps no GTIDs: MySQL without `gtid_mode=ON` (MariaDB
/// always logs them).
async fn check_gtid(server: &Server, conn: &mut Conn) -> Result<()> {
    if server.facts.flavor == Flavor::MariaDb {
        return Ok(());
    }
    let mode: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_mode").await.context(|| "reading gtid_mode".into())?;
    match mode.as_deref() {
        Some("ON") => Ok(()),
        other => Err(Error::refused(
            format!("--gtid needs gtid_mode=ON on MySQL; this server has gtid_mode={}", other.unwrap_or("(none)")),
            "run without --gtid (the binlog is then followed by file and position), or turn GTIDs on (gtid_mode and enforce_gtid_consistency)",
        )),
    }
}

/// `--gtid`: the end of the binlog now, as a position and as the GTID position there.
async fn gtid_now(server: &Server, conn: &mut Conn) -> Result<(BinlogPosition, GtidPosition)> {
    let flavor = server.facts.flavor;
    let statement = server::binlog_status_statement(flavor, server.facts.version);
    let row: Option<mysql_async::Row> = conn.query_first(statement).await.context(|| format!("running {statement}"))?;
    let text: String = match flavor {
        // MySQL's status row carries the executed set, read with the position.
        Flavor::MySql => row.as_ref().and_then(|r| r.get::<Option<String>, _>(4)).flatten().unwrap_or_default(),
        Flavor::MariaDb => String::new(),
    };
    let position = server::position_of(row)?;
    let text = match flavor {
        Flavor::MySql => text,
        Flavor::MariaDb => conn
            .exec_first::<Option<String>, _, _>("SELECT BINLOG_GTID_POS(?, ?)", (&position.file, position.pos))
            .await
            .context(|| format!("reading the GTID position at {position}"))?
            .flatten()
            .unwrap_or_default(),
    };
    let gtid = parse_gtid(flavor, &text).map_err(|e| Error::failed(format!("the server's GTID position: {e}")))?;
    Ok((position, gtid))
}

/// MySQL: whether the server still has every transaction after `saved` (none of them is in
/// `gtid_purged`). MariaDB has no such test: its dump refuses a position it cannot serve.
async fn gtid_still_served(server: &Server, conn: &mut Conn, saved: &str) -> Result<bool> {
    if server.facts.flavor == Flavor::MariaDb {
        return Ok(true);
    }
    let covered: Option<i64> = conn.exec_first("SELECT GTID_SUBSET(@@GLOBAL.gtid_purged, ?)", (saved,)).await.context(|| "comparing the checkpoint's GTIDs with gtid_purged".into())?;
    Ok(covered == Some(1))
}

/// A GTID position of the server's flavor, from its text.
fn parse_gtid(flavor: Flavor, text: &str) -> std::result::Result<GtidPosition, String> {
    match flavor {
        Flavor::MariaDb => GtidPosition::parse_mariadb(text),
        Flavor::MySql => GtidPosition::parse_mysql(text),
    }
}

/// The GTID position a resumed `--gtid` run reads from (`resume_point` made sure it has one).
fn saved_gtid(server: &Server, saved: &checkpoint::Saved) -> Result<GtidPosition> {
    let text = saved.gtid.as_deref().unwrap_or_default();
    parse_gtid(server.facts.flavor, text).map_err(|e| Error::failed(format!("the checkpoint's GTID position: {e}")))
}

/// The plan of a resumed run, from the shadow table it left and the definition it recorded.
async fn resumed_plan(conn: &mut Conn, names: &TableNames, original: &TableInfo, summary: &AlterSummary, shadow_ddl: &str) -> Result<Plan> {
    let shadow_info = inspect::load(conn, &names.database, &names.shadow).await?.ok_or_else(|| Error::failed("the shadow table vanished"))?;
    plan::build(names.clone(), original, &shadow_info, summary, shadow_ddl.to_string())
}

/// Takes the server-wide lock that keeps two runs off one table. Held as long as the
/// returned connection lives. The name is a digest of the table's name (lock names are at most
/// 64 characters): SHA2, which every supported server has (MySQL 9 removed SHA1 and MD5).
async fn take_run_lock(server: &Server, names: &TableNames) -> Result<Conn> {
    let mut conn = server.conn().await.map_err(preflight)?;
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(CONCAT('alterego:', LEFT(SHA2(?, 256), 48)), 0)", (format!("{}.{}", names.database, names.original),))
        .await
        .context(|| "taking the run lock".into())
        .map_err(preflight)?;
    if got.flatten() != Some(1) {
        return Err(Error::refused(format!("another alterego run is migrating {}", names.q(&names.original)), "wait for it to finish (or stop it) before starting another"));
    }
    Ok(conn)
}

async fn drop_leftovers(server: &Server, conn: &mut Conn, config: &Config, names: &TableNames, leftover: Leftover) -> Result<()> {
    if config.initially_drop_ghost_table || leftover == Leftover::Dropped {
        drop_tables(server, conn, names, &[&names.shadow, &names.changelog, &names.checkpoint]).await?;
    }
    if config.initially_drop_old_table {
        drop_tables(server, conn, names, &[&names.old]).await?;
    }
    Ok(())
}

/// Kills the statement session `id` runs (0: none), so that it cannot change the tables once
/// the run has given up; `what` names it in the log.
async fn stop_waiting_statement(conn: &mut Conn, id: u32, what: &str) {
    if id == 0 {
        return;
    }
    match conn.query_drop(format!("KILL QUERY {id}")).await {
        Ok(()) => tracing::warn!("stopped {what}, which was still waiting"),
        Err(e) => tracing::debug!("{what} had ended: {}", describe_mysql_error(&e)),
    }
}

/// Attempts at dropping a table: a lost connection (a server restarting) is tried again on a
/// new one, so that a run whose swap is done does not fail over its cleanup.
const DROP_ATTEMPTS: u32 = 10;

async fn drop_tables(server: &Server, conn: &mut Conn, names: &TableNames, tables: &[&String]) -> Result<()> {
    for table in tables {
        let sql = format!("DROP TABLE IF EXISTS {}", names.q(table));
        server.retrying(conn, DROP_ATTEMPTS, &format!("dropping {}", names.q(table)), async |c| c.query_drop(sql.as_str()).await).await?;
    }
    Ok(())
}

/// Creates the shadow table and runs the ALTER on it, then rebuilds it with a copying ALTER so
/// it starts without instant-operation row versions. The ALTER is first tried with
/// `ALGORITHM=INSTANT`, which tells whether the server could apply it in place (`Ok`) or why
/// not (`Err`). A failure is a refusal; the shadow is dropped.
async fn prove_alter(
    conn: &mut Conn,
    names: &TableNames,
    original: &TableInfo,
    summary: &AlterSummary,
    created: &Created,
    allow_zero_in_date: bool,
) -> Result<(Plan, std::result::Result<(), String>)> {
    let shadow = names.q(&names.shadow);
    let id = conn.id();
    let create = server::with_servers_sql_mode(conn, allow_zero_in_date, async |conn| {
        conn.query_drop(format!("CREATE TABLE {shadow} LIKE {}", names.q(&names.original))).await.map_err(|e| alter_refused(&format!("creating the shadow table {shadow}"), &e, allow_zero_in_date))
    });
    created.creating(id, &names.shadow, create).await?;
    let result = async {
        let instant = server::with_servers_sql_mode(conn, allow_zero_in_date, async |conn| match conn.query_drop(format!("ALTER TABLE {shadow} {}, ALGORITHM=INSTANT", summary.clauses)).await {
            Ok(()) => Ok(Ok(())),
            Err(instant_error) => match conn.query_drop(format!("ALTER TABLE {shadow} {}", summary.clauses)).await {
                Ok(()) => Ok(Err(describe_mysql_error(&instant_error))),
                Err(e) => Err(alter_refused("the ALTER failed on the (empty) shadow table", &e, allow_zero_in_date)),
            },
        })
        .await?;
        conn.query_drop(format!("ALTER TABLE {shadow} FORCE, ALGORITHM=COPY")).await.context(|| "rebuilding the shadow table".into())?;
        let shadow_info = inspect::load(conn, &names.database, &names.shadow).await?.ok_or_else(|| Error::failed("the shadow table vanished"))?;
        let ddl = inspect::show_create(conn, &names.database, &names.shadow).await?;
        Ok((plan::build(names.clone(), original, &shadow_info, summary, ddl)?, instant))
    }
    .await;
    if result.is_err() {
        created.drop_all(conn).await?;
    }
    result.map_err(preflight)
}

/// The run's table names: `_t_gho`, `_t_ghc`, `_t_ghk`, and the old table `_t_del` (or, with
/// `--timestamp-old-table`, `_t_<when the run started>_del`).
fn table_names(config: &Config) -> Result<TableNames> {
    let names = TableNames::named_after(&config.database, &config.table, config.force_table_names.as_deref().unwrap_or(&config.table))?;
    match &config.old_table_timestamp {
        Some(timestamp) => names.with_timestamped_old(timestamp),
        None => Ok(names),
    }
}

/// `--exact-rowcount`: the table's rows counted, for the progress and the ETA.
async fn count_rows(conn: &mut Conn, names: &TableNames) -> Result<u64> {
    let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {}", names.q(&names.original))).await.context(|| format!("counting the rows of {}", names.q(&names.original)))?;
    let rows = rows.unwrap_or(0);
    tracing::info!("counted {rows} rows in {} (--exact-rowcount)", names.q(&names.original));
    Ok(rows)
}

/// gh-ost's `--postpone-cut-over-flag-file`: the file is created when it does not exist, so
/// the swap waits until someone removes it; a file that cannot be created is refused.
fn create_postpone_flag_file(config: &Config) -> Result<()> {
    let Some(flag) = &config.postpone_cut_over_flag_file else { return Ok(()) };
    if flag.exists() {
        return Ok(());
    }
    std::fs::File::create(flag).map(drop).map_err(|e| {
        Error::refused(format!("--postpone-cut-over-flag-file: cannot create {}: {e}", flag.display()), "give a path in a directory alterego can write to, or create the file yourself")
    })?;
    tracing::info!("created {}: the cut-over waits until it is removed (or the unpostpone command)", flag.display());
    Ok(())
}

/// `doing`, the shadow's DDL under the server's sql_mode, failed: so would the native ALTER.
fn alter_refused(doing: &str, e: &mysql_async::Error, allow_zero_in_date: bool) -> Error {
    let zero_date = crate::error::server_code(e) == Some(crate::error::codes::INVALID_DEFAULT) && !allow_zero_in_date;
    let fix = if zero_date {
        "the server's sql_mode (NO_ZERO_DATE, NO_ZERO_IN_DATE) refuses a zero date in a DEFAULT, as it would for a native ALTER; change the DEFAULT, or pass --allow-zero-in-date to accept it"
    } else {
        "fix the --alter text; it is run as `ALTER TABLE <table> <your text>` under the server's sql_mode"
    };
    Error::refused(format!("{doing}: {}", describe_mysql_error(e)), fix).with_code(crate::error::server_code(e))
}

/// How the shadow's plain secondary indexes are built, given the replicas watched.
struct IndexBuilds {
    deferral: Deferral,
    /// Builds are logged in two phases (MariaDB 10.8+).
    two_phase: bool,
    /// Watched replicas that would replay a build as one statement holding up their replication.
    standing_still: Vec<String>,
}

impl IndexBuilds {
    fn defer(&self) -> bool {
        matches!(self.deferral, Deferral::Defer { .. })
    }
}

/// Decides `--defer-secondary-indexes` for this table and these replicas.
async fn plan_index_builds(server: &Server, lag: &mut throttle::LagProbe, config: &Config, plan: &Plan, rows: u64) -> IndexBuilds {
    let two_phase = server::logs_alter_in_two_phases(server.facts.flavor, server.facts.version);
    let candidates = DeferredIndexes::from_ddl(&plan.shadow_ddl);
    let standing_still = if candidates.is_empty() { Vec::new() } else { lag.standing_still_during_ddl(two_phase).await };
    let build_rate = match server.facts.flavor {
        Flavor::MariaDb => indexes::MARIADB_BUILD_ROWS_PER_SECOND,
        Flavor::MySql => indexes::MYSQL_BUILD_ROWS_PER_SECOND,
    };
    let deferral = indexes::decide(config.defer_secondary_indexes, rows, build_rate, &standing_still, config.throttler.max_lag);
    if let Deferral::Keep { why } = &deferral {
        if !candidates.is_empty() {
            tracing::info!("secondary indexes {} are kept during the copy: {why}", candidates.names().join(", "));
        }
    }
    IndexBuilds { deferral, two_phase, standing_still }
}

/// Rows in the dry run's sample chunk.
const SAMPLE_CHUNK_ROWS: u64 = 10_000;

/// Copies a sample chunk into the (dry run's) shadow as the copy would, deferred indexes left
/// out, and rolls it back: its rows and how long it took.
async fn time_sample_chunk(server: &Server, conn: &mut Conn, plan: &Arc<Plan>, state: &Arc<RunState>, config: &Config, defer: bool) -> Result<Option<(u64, std::time::Duration)>> {
    if defer {
        DeferredIndexes::from_ddl(&plan.shadow_ddl).defer(conn, &plan.names).await?;
    }
    Copier::new(server.clone(), plan.clone(), state.clone(), config.retries, ChunkSizer { target: config.chunk_time }).time_sample_chunk(SAMPLE_CHUNK_ROWS).await
}

/// What the printed plan says besides the plan itself.
struct PlanFacts<'a> {
    /// Whether the server could apply the ALTER in place, or why not; `None` when not tried
    /// (a resumed run).
    instant: Option<std::result::Result<(), String>>,
    /// A chunk copied and rolled back: its rows and how long it took.
    sample: Option<(u64, std::time::Duration)>,
    deferral: &'a Deferral,
}

fn print_plan(plan: &Plan, original: &TableInfo, summary: &AlterSummary, facts: &PlanFacts, config: &Config) {
    report!(config, "Plan for {}:", plan.names.q(&plan.names.original));
    report!(config, "  ALTER:        {}", config.alter.trim());
    report!(config, "  rows:         about {} ({} MB data, {} MB indexes; from the table statistics)", original.estimated_rows, original.data_bytes >> 20, original.index_bytes >> 20);
    report!(config, "  key:          {} ({})", plan.key_name, plan.key_source.join(", "));
    let mapping: Vec<String> = plan.columns.iter().map(|c| if c.source.name == c.target { c.target.clone() } else { format!("{} -> {}", c.source.name, c.target) }).collect();
    report!(config, "  columns:      {}", mapping.join(", "));
    match &facts.instant {
        Some(Ok(())) => report!(config, "  instant:      yes, the server can apply this ALTER in place (--attempt-instant-ddl takes that path)"),
        Some(Err(why)) => report!(config, "  instant:      no ({why}); the online copy runs"),
        None => {}
    }
    let deferred = DeferredIndexes::from_ddl(&plan.shadow_ddl);
    match facts.deferral {
        _ if deferred.is_empty() => {}
        Deferral::Defer { why } => report!(config, "  indexes:      {} built after the copy: {why}", deferred.names().join(", ")),
        Deferral::Keep { why } => report!(config, "  indexes:      {} kept during the copy: {why}", deferred.names().join(", ")),
    }
    let (data, binlog) = plan::space_needed(original);
    report!(config, "  disk:         about {} MB for the new table, and about {} MB of binlog written by the copy", data >> 20, binlog >> 20);
    if let Some((rows, took)) = facts.sample {
        let estimate = plan::copy_estimate(original.estimated_rows, rows, took)
            .map_or("no estimate (the sample was empty)".to_string(), |d| format!("the copy would take about {} s at one worker's pace", d.as_secs().max(1)));
        report!(config, "  sample chunk: {rows} rows copied (and rolled back) in {} ms; {estimate}", took.as_millis());
    }
    for warning in plan::risks(summary, plan) {
        report!(config, "  warning:      {warning}");
    }
    report!(config, "  shadow table: {}", plan.shadow_ddl.replace('\n', "\n                "));
}

/// Runs the ALTER on the original with ALGORITHM=INSTANT under a short lock wait. True when it
/// did; false (and the online copy follows) when the server cannot do it instantly or the
/// metadata lock is not granted in time. Any other error fails the run.
async fn try_instant(conn: &mut Conn, config: &Config, names: &TableNames, summary: &AlterSummary) -> Result<bool> {
    let timeout = config.cut_over_lock_timeout.as_secs().max(1);
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {timeout}")).await.context(|| "setting lock_wait_timeout".into())?;
    let sql = format!("ALTER TABLE {} {}, ALGORITHM=INSTANT", names.q(&names.original), summary.clauses);
    let result = server::with_servers_sql_mode(conn, config.allow_zero_in_date, async |conn| Ok(conn.query_drop(sql).await)).await?;
    conn.query_drop("SET SESSION lock_wait_timeout = DEFAULT").await.context(|| "resetting lock_wait_timeout".into())?;
    match result {
        Ok(()) => Ok(true),
        Err(e) => match crate::error::server_code(&e) {
            // ALGORITHM=INSTANT not supported for this change (MariaDB 1845/1846, MySQL 1846),
            // or the metadata lock was not granted in time: copy online instead.
            Some(1845 | 1846 | crate::error::codes::LOCK_WAIT_TIMEOUT) => {
                tracing::info!("the ALTER cannot run instantly ({}); migrating with an online copy", describe_mysql_error(&e));
                Ok(false)
            }
            _ => Err(Error::server(&e, format!("the instant ALTER failed: {}", describe_mysql_error(&e)))),
        },
    }
}

/// A migration past preflight: what its phases share.
struct Migration {
    server: Server,
    config: Config,
    plan: Arc<Plan>,
    state: Arc<RunState>,
    hooks: Hooks,
    /// The original table as inspected, which the plan was made from.
    original: TableInfo,
    /// The triggers created on the new table at the swap (`--include-triggers`).
    triggers: triggers::Carried,
    /// Secondary indexes dropped from the shadow table, built after the copy.
    deferred: DeferredIndexes,
    /// A watched replica replays each build as one statement that holds up its replication,
    /// so a build waits for low lag first.
    builds_hold_up_replicas: bool,
}

impl Migration {
    /// Changelog, stream, applier, copy, cut-over.
    async fn execute(&self, conn: &mut Conn, created: &Created, resumed: Option<checkpoint::Saved>, lag: throttle::LagProbe) -> Result<()> {
        let names = &self.plan.names;
        match resumed {
            None => {
                let id = conn.id();
                created.creating(id, &names.changelog, changelog::create(conn, names)).await?;
                created.creating(id, &names.checkpoint, checkpoint::create(conn, names, &self.plan.key_source)).await?;
            }
            Some(_) => {
                // A run stopped inside its cut-over may have left the triggers on the shadow.
                triggers::drop_from_shadow(conn, names).await?;
                if let Some(marker) = changelog::last_marker(conn, names).await? {
                    self.state.markers_above(marker);
                }
            }
        }
        let changelog_info = inspect::load(conn, &names.database, &names.changelog).await?.ok_or_else(|| Error::failed("the changelog table vanished"))?;
        let start = match &resumed {
            Some(saved) => Start { position: saved.position.clone(), gtid: self.config.gtid.then(|| saved_gtid(&self.server, saved)).transpose()? },
            None if self.config.gtid => {
                let (position, gtid) = gtid_now(&self.server, conn).await?;
                Start { position, gtid: Some(gtid) }
            }
            None => Start { position: self.server.binlog_position(conn).await?, gtid: None },
        };
        // The reader sees DDL from `start` on; what came between the inspection and `start`
        // shows in the definition.
        let original_info = inspect::load(conn, &names.database, &names.original).await?.ok_or_else(|| Error::failed("the original table vanished"))?;
        if original_info.columns != self.original.columns || original_info.indexes != self.original.indexes {
            return Err(Error::failed(format!("the original table was changed by DDL during the migration, after alterego read its definition: {}", names.q(&names.original)))
                .with_fix("run the migration again once no other DDL touches the table"));
        }
        match &start.gtid {
            Some(gtid) => tracing::info!("reading the binlog by GTID from `{gtid}` (at {})", start.position),
            None => tracing::info!("reading the binlog from {}", start.position),
        }
        let tables = Tables {
            database: names.database.clone(),
            original: names.original.clone(),
            original_columns: original_info.columns,
            picks: self.plan.columns.iter().map(|c| c.source.ordinal).collect(),
            key_positions: self.plan.key_positions.clone(),
            changelog: names.changelog.clone(),
            changelog_columns: changelog_info.columns,
        };
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let runtime = tokio::runtime::Handle::current();
        let threads = [
            stream::spawn(
                runtime.clone(),
                self.server.clone(),
                start.clone(),
                stream::ReaderSettings { server_id: self.config.server_id, max_reconnect_attempts: self.config.max_reconnect_attempts },
                tables,
                tx,
                self.state.clone(),
            ),
            apply::spawn(runtime, self.server.clone(), self.plan.clone(), rx.clone(), self.state.clone(), apply::Settings { sessions: self.config.apply_threads, retries: self.config.retries }),
        ];
        let heartbeat = changelog::spawn_heartbeat(self.server.clone(), names.clone(), self.state.clone(), self.config.heartbeat_interval);
        let display = progress::spawn(self.state.clone(), self.config.progress, self.config.status_interval, self.config.hooks_status_interval, self.hooks.clone());
        let control = throttle::spawn_control(self.server.clone(), self.config.throttler.clone(), lag, self.config.chunk_time, self.state.clone());

        let result = self.copy_and_cut_over(rx, resumed.as_ref(), &start).await;
        self.state.stop();
        heartbeat.abort();
        control.abort();
        display.await.ok();
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| t.join().unwrap_or_default())).await.ok();
        result
    }

    async fn copy_and_cut_over(&self, rx: crossbeam_channel::Receiver<stream::Batch>, resumed: Option<&checkpoint::Saved>, start: &Start) -> Result<()> {
        self.hooks.run(Hook::BeforeRowCopy, &self.state, &[]).await?;
        self.state.set_phase("copying");
        let copier = Copier::new(self.server.clone(), self.plan.clone(), self.state.clone(), self.config.retries, ChunkSizer { target: self.config.chunk_time });
        let work = match resumed {
            None => self.first_checkpoint(&copier, start).await?,
            Some(saved) => self.remaining_work(saved).await?,
        };
        let copy_started = std::time::Instant::now();
        copier.run(work).await?;
        self.check_failure()?;
        self.state.copy_ms.store(copy_started.elapsed().as_millis() as u64, Ordering::Relaxed);
        tracing::info!("copied {} rows in {:.1}s", self.state.rows_copied.load(Ordering::Relaxed), copy_started.elapsed().as_secs_f64());
        self.hooks.run(Hook::RowCopyComplete, &self.state, &[]).await?;

        self.state.set_phase("catching up");
        let mut conn = self.server.conn().await?;
        let now = self.server.binlog_position_retrying(&mut conn, self.config.retries).await?;
        self.state.wait_applied(&now).await;
        self.check_failure()?;

        // The verification reads rows by the chosen key, which the deferred indexes do not
        // touch, and the online index build lets it read: the two run side by side.
        tokio::try_join!(self.build_deferred_indexes(), self.verify())?;
        self.wait_while_postponed().await?;
        self.wait_for_replicas().await?;
        if self.config.analyze_shadow_before_cut_over {
            self.analyze_shadow().await?;
        }
        self.hooks.run(Hook::BeforeCutOver, &self.state, &[]).await?;
        self.recheck_changed_rows(RECHECK_BEFORE_CUT_OVER).await?;
        if let OnReplica::Test { stop_replication } = self.config.on_replica {
            return self.end_test_on_replica(stop_replication).await;
        }

        self.state.set_phase("cutting over");
        let cut_over = CutOver {
            server: self.server.clone(),
            plan: self.plan.clone(),
            state: self.state.clone(),
            lock_timeout: self.config.cut_over_lock_timeout,
            retries: self.config.retries.min(10),
            backoff_max: self.config.cut_over_backoff_max,
            changes: rx,
            kill_blockers: self.config.force_kill_blockers,
            triggers: self.triggers.clone(),
        };
        cut_over.run().await?;
        self.state.set_phase("done");
        Ok(())
    }

    /// gh-ost's `--test-on-replica` in place of the swap: replication is stopped (unless asked
    /// not to), so the table stands still; the shadow catches up with everything written
    /// before, the rows replayed since the verification are compared, and the shadow is left
    /// as it is, equal to the table, for people to compare.
    async fn end_test_on_replica(&self, stop_replication: bool) -> Result<()> {
        self.state.set_phase("ending the test");
        let mut conn = self.server.conn().await?;
        if stop_replication {
            let stop = server::stop_replication_statement(self.server.facts.flavor, self.server.facts.version);
            conn.query_drop(stop).await.context(|| stop.to_string())?;
            tracing::info!("--test-on-replica: replication stopped ({stop}); START it again once the tables are compared");
        }
        let now = self.server.binlog_position_retrying(&mut conn, self.config.retries).await?;
        self.state.wait_applied(&now).await;
        self.check_failure()?;
        self.recheck_changed_rows(0).await?;
        self.state.set_phase("done");
        Ok(())
    }

    /// A first run: reads the highest key and records the run's header and starting position,
    /// so that from here on the run can be resumed. Tried again from the start after a lost
    /// connection (a server restart), up to `--default-retries` times: each step is a read or
    /// an upsert.
    async fn first_checkpoint(&self, copier: &Copier, start: &Start) -> Result<CopyWork> {
        let retry = Retry::new(self.config.retries, std::time::Duration::from_millis(200));
        retry.run("recording the first checkpoint", "trying again", |e: &Error| e.transient, async || self.write_first_checkpoint(copier, start).await).await
    }

    async fn write_first_checkpoint(&self, copier: &Copier, start: &Start) -> Result<CopyWork> {
        let max = copier.max_key().await?;
        let names = &self.plan.names;
        let mut conn = self.server.conn().await?;
        let header = checkpoint::Header {
            format: checkpoint::FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            alter: self.config.alter.trim().into(),
            original_ddl: inspect::show_create(&mut conn, &names.database, &names.original).await?,
            shadow_ddl: self.plan.shadow_ddl.clone(),
            max_key: max.as_deref().map(checkpoint::key_to_json),
        };
        checkpoint::write_header(&mut conn, names, &header).await?;
        let (sql, params) = checkpoint::record_position(names, &start.position, start.gtid.as_ref().map(ToString::to_string).as_deref());
        conn.exec_drop(sql, params).await.context(|| "recording the starting binlog position".into())?;
        let ranges = max.iter().map(|m| (None, m.clone())).collect();
        Ok(CopyWork { max, ranges, fresh: true, shared_locks: self.config.copy_with_locks, through_client: self.config.copy_through_client })
    }

    /// A resumed run: the ranges between the chunks the interrupted run finished.
    async fn remaining_work(&self, saved: &checkpoint::Saved) -> Result<CopyWork> {
        let max = saved.header.max_key.as_deref().map(checkpoint::key_from_json).transpose()?;
        let mut conn = self.server.conn().await?;
        let finished = checkpoint::finished_chunks(&mut conn, &self.plan.names, self.plan.key_source.len()).await?;
        let ranges = max.as_deref().map(|m| checkpoint::remaining_ranges(&finished, m)).unwrap_or_default();
        tracing::info!("resuming the copy: {} chunks were finished before the interruption; {} key ranges are left", finished.len(), ranges.len());
        Ok(CopyWork { max, ranges, fresh: false, shared_locks: true, through_client: false })
    }

    /// Adds the secondary indexes left out during the copy, one at a time. When a watched
    /// replica runs each build as one DDL after the primary, lagging by its length, each waits
    /// until the replicas are well under the lag limit. The applier keeps replaying meanwhile.
    async fn build_deferred_indexes(&self) -> Result<()> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut conn = self.server.conn().await?;
        let names = &self.plan.names;
        for (i, index) in self.deferred.names().iter().enumerate() {
            if self.builds_hold_up_replicas {
                self.wait_for_low_lag().await?;
            }
            tracing::info!("building secondary index {index}");
            self.deferred.build_one_retrying(&self.server, &mut conn, names, i, self.config.retries).await?;
        }
        self.deferred.check_built(&mut conn, names, &self.plan.shadow_ddl).await?;
        tracing::info!("built secondary indexes {} in {:.1}s", self.deferred.names().join(", "), started.elapsed().as_secs_f64());
        self.check_failure()
    }

    /// Waits while a watched replica lags half the copy's lag limit or more (or cannot tell).
    async fn wait_for_low_lag(&self) -> Result<()> {
        let low = std::time::Duration::from_millis(self.state.lag_limit_ms.load(Ordering::Relaxed) / 2);
        loop {
            self.check_failure()?;
            let lag = *self.state.replica_lag_ms.lock().expect("lag lock");
            let lagging = self.state.replicas_lagging.load(Ordering::SeqCst) || lag.is_some_and(|ms| ms >= low.as_millis() as u64);
            if !lagging {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Compares the shadow with the original before the swap, unless told not to.
    async fn verify(&self) -> Result<()> {
        if self.config.skip_checksum {
            tracing::warn!("--skip-checksum: swapping without comparing the shadow table with the original");
            return Ok(());
        }
        self.state.set_phase("verifying");
        let report = self.verifier().run().await?;
        self.check_failure()?;
        let repaired = if report.repaired_ranges > 0 { format!(" ({} copied again after a difference)", report.repaired_ranges) } else { String::new() };
        tracing::info!("verified {} rows in {} key ranges{repaired} in {:.1}s: the shadow table matches the original", report.rows, report.ranges, report.elapsed.as_secs_f64());
        self.state.verified_rows.store(report.rows, Ordering::Relaxed);
        self.state.verify_ms.store(report.elapsed.as_millis() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn verifier(&self) -> Verifier {
        Verifier {
            server: self.server.clone(),
            plan: self.plan.clone(),
            state: self.state.clone(),
            connections: (self.state.live.threads.load(Ordering::Relaxed) as usize * 2).clamp(2, 8),
            lock_timeout: self.config.cut_over_lock_timeout,
            retries: self.config.retries,
        }
    }

    /// Compares the rows replayed since the verification (or the last such comparison) at a
    /// new consistent point once more than `at_least` of them have changed, so that few are
    /// left for the comparison under the cut-over lock and the record stays small while the
    /// swap is postponed.
    async fn recheck_changed_rows(&self, at_least: usize) -> Result<()> {
        if self.state.changed_keys.len() <= at_least {
            return Ok(());
        }
        self.verifier().recheck_changed().await?;
        self.check_failure()
    }

    /// Holds the swap while a watched replica lags `max-lag-millis` or more, as the copy does:
    /// the new table must not go live while replicas are behind.
    async fn wait_for_replicas(&self) -> Result<()> {
        if !self.state.replicas_lagging.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.state.set_phase("waiting for replicas");
        while self.state.replicas_lagging.load(Ordering::SeqCst) {
            self.check_failure()?;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.check_failure()
    }

    /// gh-ost's `--analyze-ghost-table-before-cutover`: fresh index statistics on the new table,
    /// so the optimizer's first plans on it after the swap are not made from an empty table's.
    async fn analyze_shadow(&self) -> Result<()> {
        let names = &self.plan.names;
        let mut conn = self.server.conn().await?;
        conn.query_drop(format!("ANALYZE TABLE {}", names.q(&names.shadow))).await.context(|| format!("ANALYZE TABLE {}", names.q(&names.shadow)))?;
        tracing::info!("analyzed {} before the cut-over", names.q(&names.shadow));
        Ok(())
    }

    /// Holds the swap while the postpone flag file exists (the live setting's: the
    /// `postpone-cut-over-flag-file=` command can change it); the applier keeps the shadow
    /// current.
    async fn wait_while_postponed(&self) -> Result<()> {
        let flag = || self.state.live.postpone_flag_file.lock().expect("live lock").clone().filter(|f| f.exists());
        if let Some(flag) = flag() {
            self.state.set_phase("postponed");
            tracing::info!("cut-over postponed while {} exists", flag.display());
            self.hooks.run(Hook::BeginPostponed, &self.state, &[]).await?;
        }
        while flag().is_some() && !self.state.live.unpostponed.load(Ordering::SeqCst) {
            self.check_failure()?;
            self.recheck_changed_rows(RECHECK_WHILE_POSTPONED).await?;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.check_failure()
    }

    fn check_failure(&self) -> Result<()> {
        match self.state.take_failure() {
            Some(e) => Err(e),
            None if self.state.stopping() => Err(Error::new(ExitKind::Aborted, "the run was stopped")),
            None => Ok(()),
        }
    }

    /// After the swap: the shadow is the live table; drop the changelog, and the old table when asked.
    async fn finish(&self, conn: &mut Conn, created: &Created) -> Result<()> {
        let names = &self.plan.names;
        created.forget(&names.shadow);
        created.drop_all(conn).await?;
        if self.config.drop_old_table {
            drop_tables(&self.server, conn, names, &[&names.old]).await?;
        }
        Ok(())
    }
}

/// The run's SIGINT and SIGTERM handlers. They are installed before anything else happens:
/// a handler installed lazily, when the wait for it is first polled, left a window in which a
/// signal (sent as soon as an on-startup hook ran) killed the process without its cleanup.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind| signal(kind).map_err(|e| Error::failed(format!("installing a signal handler: {e}")));
        Ok(ShutdownSignals { interrupt: install(SignalKind::interrupt())?, terminate: install(SignalKind::terminate())? })
    }

    /// Waits for either signal; its name.
    async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
