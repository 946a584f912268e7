//! One validated configuration, built once from the command line, a MySQL option file and the
//! environment. The engine never sees raw argument strings.
//!
//! Invariants: a password given on the command line (`--password`, as gh-ost and the mysql
//! client take it) is hidden from the process's command line at start and never passed on;
//! gh-ost's flag names and its Go-style single-dash spelling (`-alter=...`) are accepted, so a
//! gh-ost cron line works by changing the binary name; a gh-ost flag we do not implement is a
//! usage error that names it instead of being silently ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Parser;

use crate::error::{Error, Result};
use crate::server::Connection;

/// gh-ost flags alterego does not implement yet. Each is refused by name.
const UNSUPPORTED_GHOST_FLAGS: &[&str] = &[
    "switch-to-rbr",
    "assume-master-host",
    "skip-strict-mode",
    "allow-nullable-unique-key",
    "approve-renamed-columns-on-replica",
    "mysql-wait-replication-timeout",
    "table-engine",
    "revert",
    "old-table",
    "master-user",
];

/// Flags that would put a password on the command line and that alterego refuses, saying how
/// to pass it instead (`--password` itself is accepted, as the mysql client accepts it).
const PASSWORD_FLAGS: &[&str] = &["pass", "master-password", "throttle-control-replicas-password"];

/// Changes a live table's schema without downtime: shadow table, chunked copy, binlog replay,
/// atomic swap.
#[derive(Debug, Parser)]
#[command(name = "alterego", version, about, after_help = AFTER_HELP, args_override_self = true)]
pub struct Cli {
    /// Server host name or IP address.
    #[arg(long, default_value = None)]
    pub host: Option<String>,
    /// Server TCP port (default 3306, or the option file's `port`).
    #[arg(long)]
    pub port: Option<u16>,
    /// Unix socket path; used instead of host and port when given.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// User name (default: the option file's `user`, then the login name).
    #[arg(long)]
    pub user: Option<String>,
    /// The password, as gh-ost and the mysql client take it. Other users of the machine can
    /// read it (ps, /proc) until alterego overwrites it in its own command line, at start; a
    /// warning says so. ALTEREGO_PASSWORD, --ask-pass or an option file keep it off the
    /// command line altogether.
    #[arg(long, conflicts_with = "ask_pass")]
    pub password: Option<String>,
    /// Prompt for the password on the terminal.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ask_pass: bool,
    /// MySQL option file to read `[client]` user, password, host, port and socket from
    /// (default `~/.my.cnf` when it exists). `--conf` is gh-ost's name for it.
    #[arg(long, visible_alias = "conf")]
    pub defaults_file: Option<PathBuf>,
    /// TLS to the server: DISABLED; PREFERRED (TLS when the server offers it, not verified);
    /// REQUIRED (TLS or fail, not verified); VERIFY_CA (the certificate verified against
    /// --ssl-ca); VERIFY_IDENTITY (also the host name). Default: VERIFY_CA when --ssl-ca is
    /// given, else PREFERRED.
    #[arg(long, value_parser = crate::tls::SslMode::parse)]
    pub ssl_mode: Option<crate::tls::SslMode>,
    /// CA certificate (PEM) the server's certificate must be signed by (VERIFY_CA, VERIFY_IDENTITY).
    #[arg(long)]
    pub ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM), for accounts that REQUIRE X509; with --ssl-key.
    #[arg(long)]
    pub ssl_cert: Option<PathBuf>,
    /// Private key (PEM) of --ssl-cert.
    #[arg(long)]
    pub ssl_key: Option<PathBuf>,
    /// gh-ost's TLS switch: VERIFY_IDENTITY with --ssl-ca, REQUIRED with --ssl-allow-insecure.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ssl: bool,
    /// gh-ost's: with --ssl, do not verify the server's certificate (--ssl-mode=REQUIRED).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ssl_allow_insecure: bool,
    /// Database (schema) of the table to alter.
    #[arg(long)]
    pub database: String,
    /// Table to alter.
    #[arg(long)]
    pub table: String,
    /// The ALTER's clauses, e.g. "ADD COLUMN note VARCHAR(64)". A leading "ALTER TABLE t" is accepted.
    #[arg(long)]
    pub alter: String,
    /// Run the migration and swap the tables. Without it: a dry run that proves the ALTER on the
    /// shadow table, prints the plan, and removes what it created.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub execute: bool,
    /// Copy workers running chunks in parallel, each on its own connection. Default: half the
    /// server's CPUs (MariaDB's `thread_pool_size`), at least 1 and at most 8; 2 on MySQL.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub threads: Option<u64>,
    /// Sessions the applier splits a large group of binlog changes across, by key; each row's
    /// changes stay on one session, in binlog order. Keys made only of text columns use one.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub apply_threads: u64,
    /// Rows in the first copy chunk; with --chunk-time, later chunks are sized to take that long.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    pub chunk_size: u64,
    /// Seconds each copy chunk should take: the chunk size grows gently (at most 1.5x per chunk)
    /// toward it and shrinks at once after a chunk that took over twice as long, within 10 to
    /// 100,000 rows. 0 keeps --chunk-size fixed.
    #[arg(long, default_value_t = 0.5, value_parser = parse_chunk_time)]
    pub chunk_time: f64,
    /// Drop the old table after a successful swap instead of keeping it as `_<table>_del`.
    #[arg(long, visible_alias = "drop-old-table", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ok_to_drop_table: bool,
    /// Drop a leftover shadow table (`_<table>_gho`) and changelog (`_<table>_ghc`) before starting.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub initially_drop_ghost_table: bool,
    /// Set by the `plan` subcommand (`alterego plan ...`): print the plan and stop.
    #[arg(long, hide = true)]
    pub plan_only: bool,
    /// Continue the run a previous, interrupted run of the same migration left behind (its
    /// shadow, changelog and checkpoint tables); fail when there is none. Without this flag a
    /// matching checkpoint is resumed anyway; with --no-resume it is dropped.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), conflicts_with = "no_resume")]
    pub resume: bool,
    /// Start over: drop what an interrupted run left behind (shadow, changelog, checkpoint).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub no_resume: bool,
    /// Drop a leftover old table (`_<table>_del`) before starting.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub initially_drop_old_table: bool,
    /// Allow column renames (`CHANGE old new ...`, `RENAME COLUMN`); the data moves to the new name.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub approve_renamed_columns: bool,
    /// Take a column rename for a dropped column and a new one: no data is copied between them
    /// (the new column gets its default).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), conflicts_with = "approve_renamed_columns")]
    pub skip_renamed_columns: bool,
    /// Migrate the replica --host names, alone: its binlog is read and the table swapped there,
    /// and the primary is not touched. Without it a replica is refused, since gh-ost lines
    /// point at a replica to migrate the primary.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub migrate_on_replica: bool,
    /// Try the migration on the replica --host names: everything but the swap; at the end its
    /// replication is stopped and the new table left as `_<table>_gho`, equal to the table as
    /// of the stop, for comparing. Nothing on the primary is touched.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), conflicts_with = "migrate_on_replica")]
    pub test_on_replica: bool,
    /// With --test-on-replica: leave replication running at the end.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), requires = "test_on_replica")]
    pub test_on_replica_skip_replica_stop: bool,
    /// Follow the binlog by GTID rather than by file and position: the reader asks the server
    /// for the transactions after a GTID position, and the checkpoint records one, so a killed
    /// run resumes by GTID (MySQL: needs gtid_mode=ON).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub gtid: bool,
    /// Name the helper tables after this instead of the table: `_<NAME>_gho`, `_<NAME>_ghc`,
    /// `_<NAME>_ghk`, `_<NAME>_del` (for a table whose name is too long for them).
    #[arg(long)]
    pub force_table_names: Option<String>,
    /// Accept zero dates (`0000-00-00`) where the server's sql_mode refuses them: the ALTER
    /// runs on the shadow table under the server's sql_mode without NO_ZERO_DATE and
    /// NO_ZERO_IN_DATE (without this flag, under the server's sql_mode as it is, so it fails
    /// where a native ALTER would).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_zero_in_date: bool,
    /// Carry the table's triggers to the new table: they are created on it at the swap, each
    /// named with --trigger-suffix (the old names stay with the old table). Without it a table
    /// with triggers is refused.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub include_triggers: bool,
    /// With --include-triggers: appended to each trigger's name on the new table, e.g. `_v2`
    /// (letters, digits and underscores).
    #[arg(long, default_value = "")]
    pub trigger_suffix: String,
    /// With --include-triggers: a trigger whose name already ends in --trigger-suffix loses it
    /// on the new table instead.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub remove_trigger_suffix_if_exists: bool,
    /// Migrate a table that has foreign keys of its own: the new table has none (they cannot
    /// follow the table through the swap). Foreign keys of other tables that reference this
    /// one are still refused.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub discard_foreign_keys: bool,
    /// gh-ost's way to skip its foreign key check; accepted and ignored: alterego's check is
    /// one query, and a table with foreign keys is still refused unless
    /// --discard-foreign-keys.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub skip_foreign_key_checks: bool,
    /// gh-ost's guard against its row copy's `INSERT IGNORE` dropping rows; accepted and
    /// ignored: alterego never ignores a row. Its sessions are strict, so a value the new table
    /// cannot hold fails the run, and a duplicate on a new unique key fails it naming the keys.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub panic_on_warnings: bool,
    /// Run `ANALYZE TABLE` on the new table just before the cut-over, so its index statistics
    /// are fresh when it goes live.
    #[arg(long = "analyze-ghost-table-before-cutover", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub analyze_shadow_before_cut_over: bool,
    /// Take over a --serve-socket-file that a running process still answers on (without it,
    /// such a file is refused; one left by a process that is gone is always replaced).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub initially_drop_socket_file: bool,
    /// Log errors only, whatever --verbose or --debug say (gh-ost's).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub quiet: bool,
    /// gh-ost's stack traces with errors; accepted and ignored: alterego's errors carry their
    /// context instead (a panic's backtrace shows with RUST_BACKTRACE=1).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub stack: bool,
    /// gh-ost's table engine choice: `innodb` is the only one alterego migrates (`rocksdb` is
    /// refused).
    #[arg(long, default_value = "innodb", value_parser = parse_storage_engine)]
    pub storage_engine: String,
    /// gh-ost's connection character sets; accepted and ignored: alterego's sessions use
    /// utf8mb4, the copy runs in the server, and replayed values are bound as their bytes.
    #[arg(long)]
    pub charset: Option<String>,
    /// gh-ost's connection timeouts, in seconds; accepted and ignored: alterego retries a lost
    /// connection for up to a minute, then fails the run.
    #[arg(long)]
    pub mysql_timeout: Option<f64>,
    /// gh-ost's switches for Aliyun RDS, Azure and 1st-generation GCP, which skip its check
    /// of @@port and its host-name lookup; accepted: alterego makes neither.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub aliyun_rds: bool,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub azure: bool,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub gcp: bool,
    /// gh-ost's Tungsten topology switch; accepted: alterego migrates on the server it is given
    /// and reads that server's binlog, which is all gh-ost asks of a Tungsten master.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub tungsten: bool,
    /// gh-ost's check that the server's @@port is the one connected to; accepted: alterego
    /// makes no such check.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub skip_port_validation: bool,
    /// gh-ost's consent to a master-master topology; accepted: alterego migrates on the server
    /// it connects to, whatever replicates from it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_master_master: bool,
    /// Deprecated in gh-ost and ignored there; likewise here (lag comes from the heartbeat).
    #[arg(long)]
    pub replication_lag_query: Option<String>,
    /// gh-ost's way to skip restarting replication to check the binlog format; accepted:
    /// alterego never restarts replication, and reads binlog_format (only ROW is migrated).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub assume_rbr: bool,
    /// Name the old table `_<table>_<YYYYMMDDhhmmss>_del` (local time at the start) instead of
    /// `_<table>_del`, so that each migration keeps an old table of its own.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub timestamp_old_table: bool,
    /// Passed to every hook as GH_OST_HOOKS_HINT (gh-ost's), with the two below.
    #[arg(long, default_value = "")]
    pub hooks_hint: String,
    /// Passed to every hook as GH_OST_HOOKS_HINT_OWNER.
    #[arg(long, default_value = "")]
    pub hooks_hint_owner: String,
    /// Passed to every hook as GH_OST_HOOKS_HINT_TOKEN.
    #[arg(long, default_value = "")]
    pub hooks_hint_token: String,
    /// Count the table's rows (`SELECT COUNT(*)`) before the copy for the progress and the ETA,
    /// instead of the server's estimate. On a large table the count takes a while.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub exact_rowcount: bool,
    /// gh-ost's choice to count beside the copy; accepted and ignored: with --exact-rowcount
    /// the count runs before the copy.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub concurrent_rowcount: bool,
    /// gh-ost's cut-over kind: `atomic` (or its old name `default`) is alterego's only one;
    /// `two-step`, which leaves a moment without the table, is refused.
    #[arg(long, default_value = "atomic", value_parser = parse_cut_over)]
    pub cut_over: String,
    /// gh-ost's switch for backing off between cut-over attempts; accepted: alterego always
    /// waits 200 ms, doubling, between attempts.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub cut_over_exponential_backoff: bool,
    /// The longest wait between cut-over attempts, in seconds (the backoff doubles up to it).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub exponential_backoff_max_interval: u64,
    /// gh-ost's batch of replayed events per transaction; accepted and ignored: alterego's
    /// applier groups transactions itself (a 50 ms gathering window, statements of up to 200
    /// rows).
    #[arg(long)]
    pub dml_batch_size: Option<u64>,
    /// gh-ost's switch for its checkpoints; accepted: alterego always keeps one (a row per
    /// finished chunk, and the applied binlog position), and resumes from it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub checkpoint: bool,
    /// gh-ost's checkpoint interval; accepted and ignored (see --checkpoint).
    #[arg(long)]
    pub checkpoint_seconds: Option<u64>,
    /// While this file exists, the copy pauses (the applier keeps the shadow current).
    #[arg(long)]
    pub throttle_flag_file: Option<PathBuf>,
    /// A second throttle flag file, shared by every run (gh-ost's, with its default): touch it
    /// to pause all migrations at once. An empty value turns it off.
    #[arg(long, default_value = "/tmp/gh-ost.throttle")]
    pub throttle_additional_flag_file: String,
    /// A query run on the server once a second; while its first column is above zero (or it
    /// fails), the copy pauses. It runs as given: keep it light.
    #[arg(long)]
    pub throttle_query: Option<String>,
    /// A URL sent a HEAD request every --throttle-http-interval-millis; while it answers
    /// anything but 200 (or fails, unless --ignore-http-errors), the copy pauses.
    #[arg(long)]
    pub throttle_http: Option<String>,
    /// How often the --throttle-http URL is checked.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..))]
    pub throttle_http_interval_millis: u64,
    /// How long a --throttle-http request may take before it counts as failed.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub throttle_http_timeout_millis: u64,
    /// A --throttle-http request that fails (no connection, a timeout) does not throttle.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ignore_http_errors: bool,
    /// While this file exists, everything runs but the swap waits.
    #[arg(long)]
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// When this file appears, the run aborts (exit 4) and removes what it created.
    #[arg(long)]
    pub panic_flag_file: Option<PathBuf>,
    /// Pause the copy while a global status value is at or over its limit, e.g. "Threads_running=25".
    #[arg(long, default_value = "")]
    pub max_load: crate::limits::LoadLimits,
    /// Abort (exit 4) when a global status value is at or over its limit, e.g. "Threads_running=100".
    #[arg(long, default_value = "")]
    pub critical_load: crate::limits::LoadLimits,
    /// Look again after this long before aborting on --critical-load (0: abort at once).
    #[arg(long, default_value_t = 0)]
    pub critical_load_interval_millis: u64,
    /// On --critical-load, instead of aborting, pause the copy for this many seconds without
    /// reading the server's status, then look again; repeated as often as it is met (0: abort).
    #[arg(long, default_value_t = 0)]
    pub critical_load_hibernate_seconds: u64,
    /// How often the heartbeat is written to the changelog table, which replica lag is measured
    /// with (10 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=1000))]
    pub heartbeat_interval_millis: u64,
    /// First try the ALTER on the table itself with ALGORITHM=INSTANT (a metadata-only change,
    /// with a lock wait of --cut-over-lock-timeout-seconds); fall back to the online copy when
    /// the server cannot do it instantly or the lock is not granted in time.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub attempt_instant_ddl: bool,
    /// Build the shadow table's plain secondary indexes after the copy (one online, sorted
    /// build) instead of maintaining them row by row during it: `auto` (the default) does,
    /// unless a watched replica would replay a build as one statement lasting past
    /// --max-lag-millis; `always` (or a bare flag, `true`) does regardless; `never` (`false`)
    /// keeps them during the copy. Unique indexes are always kept.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "auto", default_missing_value = "always", value_parser = crate::indexes::DeferMode::parse)]
    pub defer_secondary_indexes: crate::indexes::DeferMode,
    /// Read the original table's rows with shared locks (`LOCK IN SHARE MODE`, as gh-ost does)
    /// even where alterego can copy with plain reads (a key of one integer column). Locks make
    /// writers to rows being copied wait, and can deadlock with them.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub copy_with_locks: bool,
    /// Where chunks are read with plain reads, read their rows into alterego and write them
    /// with multi-row INSERTs, instead of one server-side `INSERT ... SELECT`. Slower in the
    /// benchmark (docs/benchmark.md); kept to measure the two against each other.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub copy_through_client: bool,
    /// While the cut-over waits for its table lock, kill the sessions that have held the table
    /// (a metadata lock) for over a second: long transactions that would make every cut-over
    /// attempt time out. On MariaDB this needs the metadata_lock_info plugin.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub force_kill_blockers: bool,
    /// Unix socket for live commands (status, throttle, chunk-size=N, ...), created with mode 0600.
    #[arg(long)]
    pub serve_socket_file: Option<PathBuf>,
    /// Loopback TCP port for the same live commands (binds 127.0.0.1 only).
    #[arg(long)]
    pub serve_tcp_port: Option<u16>,
    /// The `unpostpone` (`cut-over`) command must name the table (`unpostpone=<table>`);
    /// without the name it is refused.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub force_named_cut_over: bool,
    /// The `panic` command must name the table (`panic=<table>`); without the name it is
    /// refused.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub force_named_panic: bool,
    /// After each chunk, a copy worker sleeps this many times the time the chunk took (0 to
    /// 100; 1 halves the copy's pace). Also the live `nice-ratio=R`.
    #[arg(long, default_value_t = 0.0, value_parser = parse_nice_ratio)]
    pub nice_ratio: f64,
    /// Directory of hook executables, named like gh-ost's (gh-ost-on-startup, ...) or
    /// alterego-on-startup, ...; they get gh-ost's GH_OST_* environment variables.
    #[arg(long)]
    pub hooks_path: Option<PathBuf>,
    /// Swap without comparing the shadow table with the original first (not recommended).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub skip_checksum: bool,
    /// Accepted for gh-ost compatibility: alterego always reads the binlog of the server it connects to.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_on_master: bool,
    /// Pause the copy while a replica lags this many milliseconds or more (measured with the
    /// changelog heartbeat, on alterego's own clock).
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_lag_millis: u64,
    /// Replicas to watch for lag, `host:port,...`. Default: those the primary lists in
    /// SHOW SLAVE HOSTS. A replica whose lag cannot be read counts as lagging.
    #[arg(long, value_parser = crate::throttle::parse_replicas, default_value = "")]
    pub throttle_control_replicas: std::vec::Vec<crate::throttle::ReplicaAddress>,
    /// Seconds a cut-over attempt waits for the table lock, and for the RENAME to queue; the
    /// wait for the final replay under the lock is bounded by twice this.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub cut_over_lock_timeout_seconds: u64,
    /// Attempts for a step that fails transiently (a lost connection, a deadlock, a lock wait
    /// timeout) in the copy or the apply; cut-over attempts are capped at 10.
    #[arg(long, default_value_t = 60)]
    pub default_retries: u32,
    /// Server id the binlog reader registers with; must be unique among the server's replicas.
    /// Default: derived from the process id.
    #[arg(long)]
    pub replica_server_id: Option<u32>,
    /// Write JSON status lines (state changes and one per status interval) to this file, or to
    /// stdout with `-` (the human report then goes to stderr).
    #[arg(long)]
    pub status_json: Option<PathBuf>,
    /// How often a status line (and a JSON status line) is written, in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    pub status_interval_millis: u64,
    /// Send the run's progress, backlog, replica lag and throttle state every second as StatsD
    /// gauges under gh-ost's names (`gh_ost.row_copy.rows_copied`...): `host:port` (UDP) or the
    /// path of a Unix datagram socket.
    #[arg(long)]
    pub statsd_addr: Option<String>,
    /// A tag on every StatsD metric, `key:value`; repeatable.
    #[arg(long)]
    pub statsd_tags: Vec<String>,
    /// gh-ost's interval for Go runtime gauges; accepted and ignored: alterego has no such
    /// runtime to report on.
    #[arg(long, default_value_t = 10)]
    pub runtime_metrics_interval: u64,
    /// How often the on-status hook runs, in seconds (gh-ost's flag); by default as often as
    /// the status line (--status-interval-millis).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub hooks_status_interval: Option<u64>,
    /// How many times in a row the binlog reader tries to reconnect before the run fails; 0:
    /// as many times as fit in two minutes (also the limit when this is set).
    #[arg(long, default_value_t = 0)]
    pub binlogsyncer_max_reconnect_attempts: u32,
    /// gh-ost's skip of its check that the RENAME holds the metadata lock, which needs
    /// performance_schema; accepted: alterego's equivalent check (a lock probe on the shadow
    /// table) needs none, and always runs.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub skip_metadata_lock_check: bool,
    /// gh-ost's permission to enable performance_schema's metadata lock instruments; accepted:
    /// alterego changes no server setting, and its cut-over does not use them.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_setup_metadata_lock_instruments: bool,
    /// Show a progress bar (default: when stderr is a terminal).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub progress: Option<bool>,
    /// More log output.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub verbose: bool,
    /// Debug log output.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub debug: bool,
}

const AFTER_HELP: &str = "Password: from ALTEREGO_PASSWORD, --ask-pass, or the option file's [client] password; --password works too, but others can see it until alterego hides it.\n\
Exit codes: 0 success, 1 failed (cleaned up), 2 invalid usage, 3 refused before starting, 4 aborted, 5 cut-over failed.";

/// What to do with a checkpoint an interrupted run left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Resume a matching checkpoint; start afresh when there is none (the default).
    WhenFound,
    /// `--resume`: there must be a checkpoint to resume.
    Required,
    /// `--no-resume`: drop it and start afresh.
    Never,
}

/// The validated configuration the engine runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub connection: Connection,
    pub database: String,
    pub table: String,
    pub alter: String,
    pub execute: bool,
    pub chunk_size: u64,
    /// `None`: sized to the server once connected.
    pub threads: Option<u64>,
    pub apply_threads: usize,
    pub chunk_time: std::time::Duration,
    pub drop_old_table: bool,
    pub initially_drop_ghost_table: bool,
    pub initially_drop_old_table: bool,
    pub resume: Resume,
    pub approve_renamed_columns: bool,
    /// `--skip-renamed-columns`: renamed columns are dropped and added, their data not copied.
    pub skip_renamed_columns: bool,
    /// `--force-table-names`: what the helper tables are named after.
    pub force_table_names: Option<String>,
    /// `--gtid`: the binlog followed, and the checkpoint kept, by GTID.
    pub gtid: bool,
    /// `--migrate-on-replica`, `--test-on-replica`.
    pub on_replica: OnReplica,
    pub allow_zero_in_date: bool,
    pub initially_drop_socket_file: bool,
    /// `--timestamp-old-table`: the start time in the old table's name.
    pub old_table_timestamp: Option<String>,
    /// `--hooks-hint`, `--hooks-hint-owner`, `--hooks-hint-token`.
    pub hooks_hints: [String; 3],
    pub exact_rowcount: bool,
    /// `--exponential-backoff-max-interval`.
    pub cut_over_backoff_max: Duration,
    pub discard_foreign_keys: bool,
    /// `--include-triggers`, with how the new triggers are named.
    pub include_triggers: Option<TriggerNaming>,
    pub analyze_shadow_before_cut_over: bool,
    /// `alterego plan`: a dry run that also times a sample chunk.
    pub plan_only: bool,
    pub skip_checksum: bool,
    pub attempt_instant_ddl: bool,
    pub defer_secondary_indexes: crate::indexes::DeferMode,
    pub force_kill_blockers: bool,
    pub copy_with_locks: bool,
    pub copy_through_client: bool,
    pub hooks_path: Option<PathBuf>,
    pub serve_socket_file: Option<PathBuf>,
    pub serve_tcp_port: Option<u16>,
    /// `--force-named-cut-over`, `--force-named-panic`.
    pub force_named_commands: NamedCommands,
    pub nice_ratio: f64,
    pub heartbeat_interval: Duration,
    pub throttler: crate::throttle::Throttler,
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    pub cut_over_lock_timeout: Duration,
    pub retries: u32,
    pub server_id: u32,
    pub progress: bool,
    pub status_json: Option<PathBuf>,
    pub status_interval: Duration,
    /// `--throttle-http`: the URL whose answer throttles the copy.
    pub throttle_http: Option<String>,
    /// `--statsd-addr`, `--statsd-tags`.
    pub statsd: Option<StatsdSettings>,
    /// `--hooks-status-interval`: how often the on-status hook runs.
    pub hooks_status_interval: Duration,
    /// `--binlogsyncer-max-reconnect-attempts` (0: no limit but the reader's deadline).
    pub max_reconnect_attempts: u32,
}

/// The long names (and visible aliases) of alterego's flags.
fn known_flags() -> Vec<String> {
    let command = <Cli as clap::CommandFactory>::command();
    command.get_arguments().flat_map(|a| a.get_long_and_visible_aliases().unwrap_or_default()).map(str::to_string).collect()
}

/// A Go-style single-dash flag (`-alter=x`) as `--alter=x`; anything else as it is.
fn double_dashed(arg: &str) -> String {
    let single_dash = arg.len() > 2 && arg.starts_with('-') && !arg.starts_with("--") && arg.as_bytes()[1].is_ascii_alphabetic();
    if single_dash {
        format!("-{arg}")
    } else {
        arg.to_string()
    }
}

/// `--storage-engine`: InnoDB only; gh-ost's experimental RocksDB is refused.
fn parse_storage_engine(text: &str) -> std::result::Result<String, String> {
    match text.to_ascii_lowercase().as_str() {
        "innodb" => Ok("innodb".into()),
        other => Err(format!("alterego migrates InnoDB tables only (`{other}`): its copy and cut-over rely on InnoDB's row locks and consistent reads")),
    }
}

/// `--cut-over`: `atomic` (gh-ost's `default` is its old name); `two-step` is refused.
fn parse_cut_over(text: &str) -> std::result::Result<String, String> {
    match text.to_ascii_lowercase().as_str() {
        "atomic" | "default" => Ok("atomic".into()),
        "two-step" => {
            Err("alterego swaps the tables atomically only: `two-step` renames the table away before the new one takes its name, so for a moment there is no table; leave --cut-over out".into())
        }
        other => Err(format!("`{other}` is not one of atomic, default")),
    }
}

/// gh-ost's `--force-named-cut-over` and `--force-named-panic`: which live commands must name
/// the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamedCommands {
    pub cut_over: bool,
    pub panic: bool,
}

/// Whether the server given is meant to be a replica, and what to do there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReplica {
    /// It must not be a replica: alterego migrates where it connects.
    No,
    /// gh-ost's `--migrate-on-replica`: migrate the replica alone.
    Migrate,
    /// gh-ost's `--test-on-replica`: everything but the swap, replication stopped at the end
    /// unless `--test-on-replica-skip-replica-stop`.
    Test { stop_replication: bool },
}

/// gh-ost's `--statsd-addr` and `--statsd-tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdSettings {
    /// `host:port` (UDP) or the path of a Unix datagram socket.
    pub addr: String,
    /// `key:value` (or a bare value) tags on every metric.
    pub tags: Vec<String>,
}

/// How `--include-triggers` names the new table's triggers (see `triggers::new_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerNaming {
    pub suffix: String,
    pub remove_suffix_if_exists: bool,
}

impl TriggerNaming {
    /// gh-ost's rule for the suffix: letters, digits and underscores.
    pub fn new(suffix: String, remove_suffix_if_exists: bool) -> Result<TriggerNaming> {
        if suffix.is_empty() || !suffix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::usage(format!("--trigger-suffix `{suffix}` is not letters, digits and underscores"), "give --trigger-suffix a suffix of 0-9, a-z, A-Z and _, such as _v2"));
        }
        Ok(TriggerNaming { suffix, remove_suffix_if_exists })
    }
}

/// gh-ost's rules: `--include-triggers` needs `--trigger-suffix` (the new triggers need names
/// of their own), and the suffix flags need `--include-triggers`.
fn trigger_naming(include: bool, suffix: String, remove_suffix: bool) -> Result<Option<TriggerNaming>> {
    match (include, suffix.is_empty()) {
        (true, true) => Err(Error::usage(
            "--include-triggers needs --trigger-suffix: trigger names are unique in a database, so the new table's triggers need names of their own",
            "add --trigger-suffix, e.g. --trigger-suffix=_v2",
        )),
        (false, false) => Err(Error::usage("--trigger-suffix is only used with --include-triggers", "add --include-triggers, or drop --trigger-suffix")),
        (false, true) if remove_suffix => {
            Err(Error::usage("--remove-trigger-suffix-if-exists is only used with --include-triggers and --trigger-suffix", "add them, or drop --remove-trigger-suffix-if-exists"))
        }
        (false, true) => Ok(None),
        (true, false) => TriggerNaming::new(suffix, remove_suffix).map(Some),
    }
}

/// gh-ost's `--check-flag`, for scripts that must work across versions: `Some(Ok)` when every
/// other flag on the command line is one alterego takes (each given a value if it needs one),
/// `Some(Err)` naming those it does not; `None` without `--check-flag`.
pub fn check_flags(args: &[String]) -> Option<Result<()>> {
    let flags: Vec<String> = args.iter().skip(1).map(|a| double_dashed(a)).filter_map(|a| a.strip_prefix("--").map(str::to_string)).collect();
    let on = |value: Option<&str>| value.is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"));
    if !flags.iter().any(|f| matches!(f.split_once('='), Some(("check-flag", v)) if on(Some(v))) || f == "check-flag") {
        return None;
    }
    let mut known = known_flags();
    known.extend(["help".into(), "version".into()]);
    let names = flags.iter().map(|f| f.split('=').next().unwrap_or(f));
    let missing: Vec<&str> = names.filter(|n| *n != "check-flag" && !known.iter().any(|k| k == n)).collect();
    Some(if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::usage(format!("alterego does not take --{}", missing.join(", --")), "docs/ghost-compat.md says what alterego does with each gh-ost flag"))
    })
}

/// Turns Go-style flags (`-alter=x`, `-execute`) into `--alter=x`, `--execute`, and refuses
/// passwords and unsupported gh-ost flags before clap sees anything.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Result<Vec<String>> {
    let known = known_flags();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let mut args: Vec<String> = args.into_iter().collect();
    // `alterego plan ...`: the plan only, as a hidden flag.
    if args.get(1).is_some_and(|a| a == "plan") {
        args[1] = "--plan-only".into();
    }
    for (i, arg) in args.into_iter().enumerate() {
        let normalized = if i > 0 { double_dashed(&arg) } else { arg.clone() };
        if i > 0 {
            let name = normalized.strip_prefix("--").map(|n| n.split('=').next().unwrap_or(n));
            // mysql's `-psecret`: a single-dash word starting with p that is none of our flags.
            let short_password = arg.starts_with("-p") && !arg.starts_with("--") && !name.is_some_and(|n| known.contains(&n) || UNSUPPORTED_GHOST_FLAGS.contains(&n));
            check_flag(name, short_password)?;
        }
        out.push(normalized);
    }
    Ok(out)
}

fn check_flag(name: Option<&str>, short_password: bool) -> Result<()> {
    if short_password || name.is_some_and(|n| PASSWORD_FLAGS.contains(&n)) {
        return Err(Error::usage(
            "a password on the command line is visible to every user of this machine (ps, shell history), so alterego refuses it",
            "set ALTEREGO_PASSWORD in the environment, use --ask-pass to be prompted, or put `password=...` under [client] in an option file (--defaults-file)",
        ));
    }
    if let Some(n) = name.filter(|n| UNSUPPORTED_GHOST_FLAGS.contains(n)) {
        return Err(Error::usage(format!("the gh-ost flag --{n} is not supported by alterego yet"), format!("remove --{n} from the command line; README.md lists the gh-ost flags alterego accepts")));
    }
    Ok(())
}

/// `[client]` values from a MySQL option file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OptionFile {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub ssl_mode: Option<String>,
    pub ssl_ca: Option<PathBuf>,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
}

/// Reads the `[client]` group of a MySQL option file. Lines the INI reader cannot take
/// (`!include`, options without a value such as `skip-ssl`) are skipped: they carry no
/// connection settings alterego uses.
pub fn read_option_file(path: &Path) -> Result<OptionFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::usage(format!("cannot read option file {}: {e}", path.display()), "check the path given to --defaults-file"))?;
    parse_option_file(&text).map_err(|e| Error::usage(format!("cannot parse option file {}: {e}", path.display()), "fix the file's syntax"))
}

fn parse_option_file(text: &str) -> std::result::Result<OptionFile, String> {
    let usable: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('[') || l.starts_with('#') || l.starts_with(';') || (l.contains('=') && !l.starts_with('!'))
        })
        .collect();
    let opts = ini::ParseOption { enabled_quote: true, enabled_escape: false, ..Default::default() };
    let ini = ini::Ini::load_from_str_opt(&usable.join("\n"), opts).map_err(|e| e.to_string())?;
    let Some(client) = ini.section(Some("client")) else {
        return Ok(OptionFile::default());
    };
    // Option names take `-` or `_` alike (`ssl-ca`, `ssl_ca`).
    let get = |k: &str| client.get(k).or_else(|| client.get(k.replace('-', "_"))).map(|v| v.trim().to_string());
    let port = get("port").map(|p| p.parse::<u16>().map_err(|_| format!("port `{p}` is not a port number"))).transpose()?;
    Ok(OptionFile {
        user: get("user"),
        password: get("password"),
        host: get("host"),
        port,
        socket: get("socket").map(PathBuf::from),
        ssl_mode: get("ssl-mode"),
        ssl_ca: get("ssl-ca").map(PathBuf::from),
        ssl_cert: get("ssl-cert").map(PathBuf::from),
        ssl_key: get("ssl-key").map(PathBuf::from),
    })
}

impl Config {
    /// Builds the configuration: command line first, then the option file, then defaults.
    /// `password_env` is the value of ALTEREGO_PASSWORD, passed in so tests need no globals.
    pub fn build(cli: Cli, password_env: Option<String>) -> Result<Config> {
        let option_file = match &cli.defaults_file {
            Some(path) => read_option_file(path)?,
            None => match std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".my.cnf")) {
                Some(path) if path.is_file() => read_option_file(&path)?,
                _ => OptionFile::default(),
            },
        };
        let password = if cli.ask_pass {
            Some(rpassword::prompt_password("Password: ").map_err(|e| Error::usage(format!("cannot read the password from the terminal: {e}"), "run from a terminal, or set ALTEREGO_PASSWORD"))?)
        } else {
            cli.password.or(password_env).or(option_file.password)
        };
        let user = cli.user.or(option_file.user).or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "root".into());
        if cli.plan_only && cli.execute {
            return Err(Error::usage("`alterego plan` prints the plan and changes nothing, so it takes no --execute", "drop --execute, or run without `plan` to migrate"));
        }
        for (flag, value) in [("--database", &cli.database), ("--table", &cli.table)] {
            if value.is_empty() {
                return Err(Error::usage(format!("{flag} is empty"), format!("pass {flag} with a name")));
            }
        }
        let file_ssl_mode = option_file
            .ssl_mode
            .map(|m| crate::tls::SslMode::parse(&m).map_err(|why| Error::usage(format!("ssl-mode in the option file's [client] group: {why}"), "fix ssl-mode in the option file")))
            .transpose()?;
        let tls_settings = crate::tls::TlsSettings {
            mode: cli.ssl_mode.or(file_ssl_mode.filter(|_| !cli.ssl)),
            ca: cli.ssl_ca.or(option_file.ssl_ca),
            cert: cli.ssl_cert.or(option_file.ssl_cert),
            key: cli.ssl_key.or(option_file.ssl_key),
            ghost_ssl: cli.ssl,
            ghost_allow_insecure: cli.ssl_allow_insecure,
        };
        let socket = cli.socket.or(option_file.socket);
        let tls = crate::tls::Tls::from_settings(tls_settings, socket.is_some())?;
        Ok(Config {
            connection: Connection { host: cli.host.or(option_file.host).unwrap_or_else(|| "127.0.0.1".into()), port: cli.port.or(option_file.port).unwrap_or(3306), socket, user, password, tls },
            database: cli.database,
            table: cli.table,
            alter: cli.alter,
            execute: cli.execute,
            chunk_size: cli.chunk_size,
            threads: cli.threads,
            apply_threads: cli.apply_threads as usize,
            chunk_time: std::time::Duration::from_secs_f64(cli.chunk_time),
            drop_old_table: cli.ok_to_drop_table,
            initially_drop_ghost_table: cli.initially_drop_ghost_table,
            resume: match (cli.resume, cli.no_resume) {
                (true, _) => Resume::Required,
                (_, true) => Resume::Never,
                _ => Resume::WhenFound,
            },
            initially_drop_old_table: cli.initially_drop_old_table,
            approve_renamed_columns: cli.approve_renamed_columns,
            skip_renamed_columns: cli.skip_renamed_columns,
            force_table_names: cli.force_table_names.filter(|n| !n.is_empty()),
            gtid: cli.gtid,
            on_replica: match (cli.migrate_on_replica, cli.test_on_replica) {
                (true, _) => OnReplica::Migrate,
                (_, true) => OnReplica::Test { stop_replication: !cli.test_on_replica_skip_replica_stop },
                _ => OnReplica::No,
            },
            allow_zero_in_date: cli.allow_zero_in_date,
            hooks_hints: [cli.hooks_hint, cli.hooks_hint_owner, cli.hooks_hint_token],
            initially_drop_socket_file: cli.initially_drop_socket_file,
            old_table_timestamp: cli.timestamp_old_table.then(|| chrono::Local::now().format("%Y%m%d%H%M%S").to_string()),
            exact_rowcount: cli.exact_rowcount,
            cut_over_backoff_max: Duration::from_secs(cli.exponential_backoff_max_interval),
            discard_foreign_keys: cli.discard_foreign_keys,
            include_triggers: trigger_naming(cli.include_triggers, cli.trigger_suffix, cli.remove_trigger_suffix_if_exists)?,
            analyze_shadow_before_cut_over: cli.analyze_shadow_before_cut_over,
            plan_only: cli.plan_only,
            skip_checksum: cli.skip_checksum,
            attempt_instant_ddl: cli.attempt_instant_ddl,
            defer_secondary_indexes: cli.defer_secondary_indexes,
            force_kill_blockers: cli.force_kill_blockers,
            copy_with_locks: cli.copy_with_locks,
            copy_through_client: cli.copy_through_client,
            hooks_path: cli.hooks_path,
            serve_socket_file: cli.serve_socket_file,
            serve_tcp_port: cli.serve_tcp_port,
            force_named_commands: NamedCommands { cut_over: cli.force_named_cut_over, panic: cli.force_named_panic },
            nice_ratio: cli.nice_ratio,
            heartbeat_interval: Duration::from_millis(cli.heartbeat_interval_millis),
            throttler: crate::throttle::Throttler {
                replicas: cli.throttle_control_replicas,
                max_lag: Duration::from_millis(cli.max_lag_millis),
                throttle_flag_file: cli.throttle_flag_file,
                additional_throttle_flag_file: Some(cli.throttle_additional_flag_file).filter(|p| !p.is_empty()).map(PathBuf::from),
                panic_flag_file: cli.panic_flag_file,
                max_load: cli.max_load,
                critical_load: cli.critical_load,
                critical_load_interval: Duration::from_millis(cli.critical_load_interval_millis),
                critical_load_hibernate: Duration::from_secs(cli.critical_load_hibernate_seconds),
                throttle_query: cli.throttle_query.filter(|q| !q.trim().is_empty()),
                http: crate::throttle::HttpChecks {
                    interval: Duration::from_millis(cli.throttle_http_interval_millis),
                    timeout: Duration::from_millis(cli.throttle_http_timeout_millis),
                    ignore_errors: cli.ignore_http_errors,
                },
            },
            postpone_cut_over_flag_file: cli.postpone_cut_over_flag_file,
            cut_over_lock_timeout: Duration::from_secs(cli.cut_over_lock_timeout_seconds),
            retries: cli.default_retries.max(1),
            server_id: cli.replica_server_id.unwrap_or_else(default_server_id),
            progress: cli.progress.unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stderr())),
            status_json: cli.status_json,
            status_interval: Duration::from_millis(cli.status_interval_millis),
            throttle_http: cli.throttle_http.filter(|u| !u.trim().is_empty()),
            statsd: cli.statsd_addr.filter(|a| !a.is_empty()).map(|addr| StatsdSettings { addr, tags: cli.statsd_tags }),
            hooks_status_interval: cli.hooks_status_interval.map_or(Duration::from_millis(cli.status_interval_millis), Duration::from_secs),
            max_reconnect_attempts: cli.binlogsyncer_max_reconnect_attempts,
        })
    }
}

/// `--nice-ratio`: from 0 (off) to 100, as gh-ost takes it.
pub fn parse_nice_ratio(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=100.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("`{text}` is not a nice ratio from 0 to 100")),
    }
}

/// `--chunk-time`: seconds from 0 (off) to 60.
fn parse_chunk_time(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..=60.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds from 0 to 60")),
    }
}

/// A server id unlikely to collide with real replicas or another alterego run: a fixed high
/// range plus the process id. A clash with another reader is reported by the server (error 4052).
fn default_server_id() -> u32 {
    1_100_000_000 + std::process::id() % 100_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        std::iter::once("alterego").chain(v.iter().copied()).map(String::from).collect()
    }

    #[test]
    fn plan_is_a_subcommand_without_execute() {
        let a = normalize_args(args(&["plan", "--database", "d", "--table", "t", "--alter", "ADD x INT"])).unwrap();
        let cli = Cli::try_parse_from(a).unwrap();
        assert!(cli.plan_only && !cli.execute);
        let a = normalize_args(args(&["plan", "--database", "d", "--table", "t", "--alter", "ADD x INT", "--execute"])).unwrap();
        let e = Config::build(Cli::try_parse_from(a).unwrap(), None).unwrap_err();
        assert_eq!(e.kind, crate::error::ExitKind::Usage);
    }

    #[test]
    fn max_lag_millis_is_at_least_one() {
        assert!(Cli::try_parse_from(args(&["--table=t", "--database=d", "--alter=x", "--max-lag-millis=0"])).is_err());
        assert_eq!(Cli::try_parse_from(args(&["--table=t", "--database=d", "--alter=x", "--max-lag-millis=1"])).unwrap().max_lag_millis, 1);
    }

    #[test]
    fn chunk_time_is_bounded_seconds() {
        assert_eq!(parse_chunk_time("0.25"), Ok(0.25));
        assert_eq!(parse_chunk_time("0"), Ok(0.0));
        assert!(parse_chunk_time("61").is_err());
        assert!(parse_chunk_time("-1").is_err());
        assert!(parse_chunk_time("fast").is_err());
    }

    #[test]
    fn accepts_go_style_single_dash_flags() {
        let a = normalize_args(args(&["-alter=ADD x INT", "-execute", "--table", "t", "-database=d"])).unwrap();
        let cli = Cli::try_parse_from(a).unwrap();
        assert!(cli.execute);
        assert_eq!(cli.alter, "ADD x INT");
        assert_eq!(cli.database, "d");
    }

    #[test]
    fn go_style_boolean_values() {
        let cli = Cli::try_parse_from(normalize_args(args(&["--table=t", "--database=d", "--alter=x", "--execute=false", "--ok-to-drop-table"])).unwrap()).unwrap();
        assert!(!cli.execute);
        assert!(cli.ok_to_drop_table);
        // Go's strconv.ParseBool spellings, and a flag given twice keeps its last value.
        for (text, expected) in [("1", true), ("0", false), ("t", true), ("F", false), ("TRUE", true), ("False", false)] {
            let cli = Cli::try_parse_from(normalize_args(args(&["-table=t", "-database=d", "-alter=x", &format!("-execute={text}"), "-chunk-size=10", "-chunk-size=20"])).unwrap()).unwrap();
            assert_eq!(cli.execute, expected, "{text}");
            assert_eq!(cli.chunk_size, 20);
        }
    }

    #[test]
    fn refuses_passwords_on_the_command_line() {
        for bad in [&["-psecret"][..], &["--pass=x"], &["--master-password=x"]] {
            let e = normalize_args(args(bad)).unwrap_err();
            assert_eq!(e.kind, crate::error::ExitKind::Usage);
            assert!(e.fix.unwrap().contains("ALTEREGO_PASSWORD"));
        }
    }

    #[test]
    fn single_dash_flags_starting_with_p_are_not_passwords() {
        assert!(normalize_args(args(&["-progress=false", "-port=3307"])).is_ok());
    }

    #[test]
    fn names_unsupported_ghost_flags() {
        let e = normalize_args(args(&["-revert"])).unwrap_err();
        assert!(e.message.contains("--revert"), "{}", e.message);
        // gh-ost flag names are not taken for mysql's `-p<password>`.
        assert!(normalize_args(args(&["-panic-on-warnings", "-postpone-cut-over-flag-file=/tmp/p"])).is_ok());
    }

    #[test]
    fn option_file_client_group() {
        let f = parse_option_file("[mysqld]\nport=1\n[client]\nuser = dba\npassword = \"se;cr et\"\nskip-ssl\n!include /x\nport=3307\n").unwrap();
        assert_eq!(f.user.as_deref(), Some("dba"));
        assert_eq!(f.password.as_deref(), Some("se;cr et"));
        assert_eq!(f.port, Some(3307));
        assert!(parse_option_file("[client]\nport=abc\n").is_err());
    }

    #[test]
    fn option_file_tls_keys_take_either_spelling() {
        let f = parse_option_file("[client]\nssl-mode=VERIFY_CA\nssl_ca=/etc/ca.pem\nssl-cert = c.pem\nssl_key=k.pem\n").unwrap();
        assert_eq!(f.ssl_mode.as_deref(), Some("VERIFY_CA"));
        assert_eq!(f.ssl_ca, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!((f.ssl_cert, f.ssl_key), (Some(PathBuf::from("c.pem")), Some(PathBuf::from("k.pem"))));
    }

    #[test]
    fn takes_the_password_as_gh_ost_does_and_never_shows_it() {
        for given in [&["--password=s3cr3t"][..], &["-password", "s3cr3t"], &["-password=s3cr3t"]] {
            let mut line = vec!["-table=t", "-database=d", "-alter=x"];
            line.extend_from_slice(given);
            let cli = Cli::try_parse_from(normalize_args(args(&line)).unwrap()).unwrap();
            let cfg = Config::build(cli, Some("fromenv".into())).unwrap();
            assert_eq!(cfg.connection.password.as_deref(), Some("s3cr3t"), "{given:?}");
            assert!(!format!("{cfg:?}").contains("s3cr3t"));
        }
        assert!(Cli::try_parse_from(args(&["--table=t", "--database=d", "--alter=x", "--password=x", "--ask-pass"])).is_err());
    }

    #[test]
    fn the_shared_throttle_flag_file_is_gh_osts_unless_emptied() {
        let base = ["--table=t", "--database=d", "--alter=x"];
        let cfg = Config::build(Cli::try_parse_from(args(&base)).unwrap(), None).unwrap();
        assert_eq!(cfg.throttler.additional_throttle_flag_file, Some(PathBuf::from("/tmp/gh-ost.throttle")));
        let cfg = Config::build(Cli::try_parse_from(args(&[&base[..], &["--throttle-additional-flag-file="]].concat())).unwrap(), None).unwrap();
        assert_eq!(cfg.throttler.additional_throttle_flag_file, None);
    }

    #[test]
    fn storage_engine_is_innodb_only() {
        assert_eq!(parse_storage_engine("InnoDB").as_deref(), Ok("innodb"));
        assert!(parse_storage_engine("rocksdb").unwrap_err().contains("InnoDB tables only"));
    }

    #[test]
    fn cut_over_is_atomic_only() {
        for ok in ["atomic", "default", "ATOMIC"] {
            assert_eq!(parse_cut_over(ok).as_deref(), Ok("atomic"));
        }
        assert!(parse_cut_over("two-step").unwrap_err().contains("no table"));
        assert!(Cli::try_parse_from(args(&["--table=t", "--database=d", "--alter=x", "--cut-over=two-step"])).is_err());
    }

    #[test]
    fn check_flag_says_whether_every_flag_is_taken() {
        assert!(check_flags(&args(&["--alter=x"])).is_none());
        assert!(check_flags(&args(&["--check-flag", "-alter=x", "--execute", "-max-lag-millis=1", "--password=x", "-help", "-version"])).unwrap().is_ok());
        assert!(check_flags(&args(&["--check-flag=false", "--no-such-flag"])).is_none());
        assert!(check_flags(&args(&["-check-flag=true", "--alter=x"])).unwrap().is_ok());
        let e = check_flags(&args(&["-check-flag", "--revert", "--no-such-flag", "--pass=x"])).unwrap().unwrap_err();
        assert_eq!(e.kind, crate::error::ExitKind::Usage);
        assert!(e.message.contains("--revert, --no-such-flag, --pass"), "{}", e.message);
    }

    #[test]
    fn env_password_wins_over_option_file() {
        let dir = std::env::temp_dir().join(format!("alterego-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("my.cnf");
        std::fs::write(&file, "[client]\npassword=fromfile\nuser=u\n").unwrap();
        let cli = Cli::try_parse_from(args(&["--table=t", "--database=d", "--alter=x", &format!("--defaults-file={}", file.display())])).unwrap();
        let cfg = Config::build(cli, Some("fromenv".into())).unwrap();
        assert_eq!(cfg.connection.password.as_deref(), Some("fromenv"));
        assert_eq!(cfg.connection.user, "u");
    }
}
