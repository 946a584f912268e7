//! The one place that opens connections: connection options (their TLS from `tls`), session
//! settings, and the facts about the server (flavor, version, binlog settings, privileges) that
//! preflight checks.
//!
//! Invariants: every working connection runs with `time_zone='+00:00'` (binlog TIMESTAMPs are
//! UTC epochs), a strict `sql_mode` (a value that does not fit fails instead of being truncated),
//! `NO_AUTO_VALUE_ON_ZERO` (a row with id 0 keeps id 0) and REPEATABLE READ (a copy chunk's
//! `INSERT ... SELECT` takes shared locks on the rows it reads).

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

use crate::error::{Context, Error, ExitKind, Result};

/// How long a connection the run needs keeps being tried while the server does not answer.
const RECONNECT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long one connection attempt may take, TLS and login included.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Session settings for every connection that reads or writes table data.
pub const SESSION_SETUP: &[&str] =
    &["SET SESSION time_zone = '+00:00'", SESSION_SQL_MODE, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SET SESSION innodb_lock_wait_timeout = 10", "SET NAMES utf8mb4"];

/// The working sessions' sql_mode: strict, so a value the new table cannot hold fails instead
/// of being changed; explicit zeros kept in AUTO_INCREMENT columns; zero dates copied as they
/// are.
const SESSION_SQL_MODE: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

/// Runs `body`, DDL that stands in for the user's own ALTER, under the server's sql_mode
/// (`@@GLOBAL.sql_mode`), so that it accepts and refuses what the native statement would; with
/// `allow_zero_in_date` (gh-ost's `--allow-zero-in-date`) without NO_ZERO_DATE and
/// NO_ZERO_IN_DATE. The session's own mode is set again afterwards.
pub async fn with_servers_sql_mode<T>(conn: &mut Conn, allow_zero_in_date: bool, body: impl AsyncFnOnce(&mut Conn) -> Result<T>) -> Result<T> {
    let global: String = conn.query_first("SELECT @@GLOBAL.sql_mode").await.context(|| "reading the server's sql_mode".into())?.unwrap_or_default();
    with_sql_mode(conn, &ddl_sql_mode(&global, allow_zero_in_date), body).await
}

/// Runs `body` under `mode`, and sets the session's own sql_mode again afterwards.
pub async fn with_sql_mode<T>(conn: &mut Conn, mode: &str, body: impl AsyncFnOnce(&mut Conn) -> Result<T>) -> Result<T> {
    conn.exec_drop("SET SESSION sql_mode = ?", (mode,)).await.context(|| format!("setting sql_mode {mode}"))?;
    let result = body(conn).await;
    conn.query_drop(SESSION_SQL_MODE).await.context(|| "setting the session's sql_mode back".into())?;
    result
}

fn ddl_sql_mode(global: &str, allow_zero_in_date: bool) -> String {
    let dropped: &[&str] = if allow_zero_in_date { &["NO_ZERO_DATE", "NO_ZERO_IN_DATE"] } else { &[] };
    global.split(',').filter(|m| !m.is_empty() && !dropped.iter().any(|d| m.eq_ignore_ascii_case(d))).collect::<Vec<_>>().join(",")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

/// A server version as (major, minor, patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Parses `SELECT VERSION()` output such as `10.11.14-MariaDB-0+deb12u2` or `8.4.3`.
pub fn parse_version(text: &str) -> Option<(Flavor, Version)> {
    let flavor = if text.to_ascii_lowercase().contains("mariadb") { Flavor::MariaDb } else { Flavor::MySql };
    let numeric: String = text.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().ok());
    let version = Version(parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0));
    Some((flavor, version))
}

/// Whether alterego supports this server, and if not, why.
pub fn check_supported(flavor: Flavor, version: Version) -> std::result::Result<(), String> {
    match flavor {
        Flavor::MariaDb if version < Version(10, 6, 0) => Err(format!("MariaDB {version} is older than 10.6")),
        Flavor::MySql if version < Version(8, 0, 13) => Err(format!("MySQL {version} is older than 8.0.13 (needed for RENAME TABLE under LOCK TABLES)")),
        _ => Ok(()),
    }
}

/// Whether every column of the table can be copied and replayed exactly, and if not, why and
/// what to do. MySQL's JSON values are rebuilt from their binary form (see `binlog::json`):
/// MySQL before 8.0.22 does not type a bound parameter from its context, which a DECIMAL inside
/// a document needs to keep its precision; and a copy through the client reads them as text.
pub fn check_replayable(facts: &ServerFacts, columns: &[crate::inspect::Column], through_client: bool) -> std::result::Result<(), (String, &'static str)> {
    let Some(json) = columns.iter().find(|c| c.data_type.eq_ignore_ascii_case("json")) else { return Ok(()) };
    if facts.flavor != Flavor::MySql {
        return Ok(());
    }
    if facts.version < Version(8, 0, 22) {
        let why = format!("MySQL {} cannot replay the JSON column `{}` exactly: it types bound parameters from their context only from 8.0.22", facts.version, json.name);
        return Err((why, "upgrade the server to MySQL 8.0.22 or later, or use a native ALTER"));
    }
    if through_client {
        let why = format!("--copy-through-client would read the JSON column `{}` as text, which loses its values' types (a DECIMAL, an unsigned integer, a date)", json.name);
        return Err((why, "leave out --copy-through-client"));
    }
    Ok(())
}

/// The statement that reports the current binlog file and position.
pub fn binlog_status_statement(flavor: Flavor, version: Version) -> &'static str {
    match flavor {
        Flavor::MariaDb => "SHOW MASTER STATUS",
        Flavor::MySql if version >= Version(8, 2, 0) => "SHOW BINARY LOG STATUS",
        Flavor::MySql => "SHOW MASTER STATUS",
    }
}

/// The statement that lists the replicas connected to a primary (Server_id, Host, Port first).
pub fn replica_hosts_statement(flavor: Flavor, version: Version) -> &'static str {
    match flavor {
        Flavor::MySql if version >= Version(8, 0, 22) => "SHOW REPLICAS",
        _ => "SHOW SLAVE HOSTS",
    }
}

/// The statement that shows a replica's own replication (empty on a server that is none).
pub fn replica_status_statement(flavor: Flavor, version: Version) -> &'static str {
    match flavor {
        Flavor::MySql if version >= Version(8, 0, 22) => "SHOW REPLICA STATUS",
        _ => "SHOW SLAVE STATUS",
    }
}

/// The statement that stops a replica's SQL thread (gh-ost's `--test-on-replica`).
pub fn stop_replication_statement(flavor: Flavor, version: Version) -> &'static str {
    match flavor {
        Flavor::MySql if version >= Version(8, 0, 22) => "STOP REPLICA SQL_THREAD",
        _ => "STOP SLAVE SQL_THREAD",
    }
}

/// Whether the server replicates from another one, as far as can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// It is no replica.
    None,
    /// It replicates from this source (`host:port`, or "its source" when only MariaDB's
    /// `Slaves_running` could be read).
    From(String),
}

impl Server {
    /// Reads whether the server is a replica: `SHOW REPLICA STATUS`, or, without the privilege
    /// it needs (MariaDB's `SLAVE MONITOR`), the `Slaves_running` status, which tells whether
    /// replication runs now.
    pub async fn replication(&self, conn: &mut Conn) -> Result<Replication> {
        let statement = replica_status_statement(self.facts.flavor, self.facts.version);
        match conn.query_first::<Row, _>(statement).await {
            Ok(None) => Ok(Replication::None),
            Ok(Some(row)) => {
                let field = |names: [&str; 2]| names.iter().find_map(|n| row.get_opt::<String, _>(*n).and_then(|v| v.ok())).unwrap_or_default();
                Ok(Replication::From(format!("{}:{}", field(["Source_Host", "Master_Host"]), field(["Source_Port", "Master_Port"]))))
            }
            Err(mysql_async::Error::Server(e)) if e.code == crate::error::codes::ACCESS_DENIED_GLOBAL => {
                let running: Option<(String, String)> = conn.query_first("SHOW GLOBAL STATUS LIKE 'Slaves_running'").await.context(|| "reading Slaves_running".into())?;
                Ok(match running.and_then(|(_, n)| n.parse::<u64>().ok()) {
                    Some(n) if n > 0 => Replication::From("its source".into()),
                    _ => Replication::None,
                })
            }
            Err(e) => Err(e).context(|| format!("running {statement}")),
        }
    }
}

/// Whether the server can log an `ALTER` in two phases (`binlog_alter_two_phase`, MariaDB
/// 10.8+), so that replicas applying in parallel run it beside the rest of their replication.
pub fn logs_alter_in_two_phases(flavor: Flavor, version: Version) -> bool {
    flavor == Flavor::MariaDb && version >= Version(10, 8, 1)
}

/// A binlog coordinate. Files of one server share a base name and a zero-padded sequence
/// number, so (file, pos) orders like the log itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

impl std::fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// How to reach the server.
#[derive(Clone)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub socket: Option<std::path::PathBuf>,
    pub user: String,
    pub password: Option<String>,
    pub tls: crate::tls::Tls,
}

/// Everything but the password, which never reaches a log.
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// Facts about the server, read once at startup.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub flavor: Flavor,
    pub version: Version,
    pub version_text: String,
}

/// Connection options plus the server's facts; hands out configured connections.
#[derive(Clone)]
pub struct Server {
    /// The options that connected: for PREFERRED and VERIFY_CA they may differ from the
    /// configured ones (see `tls::connect`).
    opts: Opts,
    /// The options as configured, the base for other servers (replicas).
    configured: Opts,
    tls: crate::tls::Tls,
    pub facts: ServerFacts,
    pub describe: String,
}

impl Server {
    /// Connects once to learn the server's facts. A failure here is a refusal: nothing exists yet.
    pub async fn connect(connection: &Connection) -> Result<Server> {
        let mut builder = OptsBuilder::default()
            .user(Some(connection.user.clone()))
            .pass(connection.password.clone())
            .ip_or_hostname(connection.host.clone())
            .tcp_port(connection.port)
            .prefer_socket(false)
            .ssl_opts(connection.tls.ssl_opts())
            .setup(SESSION_SETUP.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let describe = match &connection.socket {
            Some(socket) => {
                builder = builder.socket(Some(socket.to_string_lossy().to_string()));
                format!("{}@{}", connection.user, socket.display())
            }
            None => format!("{}@{}:{}", connection.user, connection.host, connection.port),
        };
        let configured = Opts::from(builder);
        let (mut conn, opts) = crate::tls::connect(configured.clone(), connection.tls.mode).await.map_err(|e| {
            let (what, fix) = crate::tls::explain(&e, &connection.tls)
                .unwrap_or_else(|| (crate::error::describe_mysql_error(&e), "check --host/--port/--socket, --user and the password (ALTEREGO_PASSWORD, --ask-pass or the option file)".into()));
            Error::refused(format!("cannot connect to {describe}: {what}"), fix)
        })?;
        let version_text: String = conn.query_first("SELECT VERSION()").await.context(|| "reading the server version".into())?.unwrap_or_default();
        let (flavor, version) = parse_version(&version_text)
            .ok_or_else(|| Error::refused(format!("cannot parse the server version `{version_text}`"), "alterego supports MariaDB 10.6 and later and MySQL 8.0.13 and later"))?;
        conn.disconnect().await.ok();
        Ok(Server { opts, configured, tls: connection.tls.clone(), facts: ServerFacts { flavor, version, version_text }, describe })
    }

    /// A new connection with the session settings applied. The server answered when the run
    /// began, so a refused or reset connection (a restart: mariadbd refuses, then resets
    /// connections while it starts) is tried again for up to `RECONNECT_DEADLINE`.
    pub async fn conn(&self) -> Result<Conn> {
        let deadline = std::time::Instant::now() + RECONNECT_DEADLINE;
        let mut pause = std::time::Duration::from_millis(200);
        loop {
            let connected = match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts.clone())).await {
                Ok(connected) => connected.context(|| format!("connecting to {}", self.describe)),
                // A server that took the connection and never greets (one shutting down or
                // starting up) must not hold the run: tried again like a refused connection.
                Err(_) => Err(Error { transient: true, ..Error::failed(format!("connecting to {}: no greeting within {}s", self.describe, CONNECT_TIMEOUT.as_secs())) }),
            };
            match connected {
                Err(e) if e.transient && std::time::Instant::now() < deadline => {
                    tracing::warn!("{e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Options for another server of the topology (a replica), with the same user, password,
    /// session settings and TLS settings, over TCP.
    pub fn opts_for(&self, host: &str, port: u16) -> Opts {
        OptsBuilder::from_opts(self.configured.clone()).ip_or_hostname(host).tcp_port(port).socket(None::<String>).into()
    }

    /// Connects to another server with `opts` from [`Server::opts_for`], keeping in `opts` what
    /// worked for the next time. The error says what failed, with the fix for a TLS failure.
    pub async fn connect_other(&self, opts: &mut Opts) -> std::result::Result<Conn, String> {
        let (conn, worked) = crate::tls::connect(opts.clone(), self.tls.mode).await.map_err(|e| match crate::tls::explain(&e, &self.tls) {
            Some((what, fix)) => format!("{what}; what to do: {fix}"),
            None => crate::error::describe_mysql_error(&e),
        })?;
        *opts = worked;
        Ok(conn)
    }

    /// Runs `op`, retrying what goes away when tried again (a lost connection, a deadlock, a
    /// lock wait timeout) up to `attempts` times with a growing pause, reconnecting as needed.
    /// Any other server error fails at once. Every caller's `op` must be idempotent.
    pub async fn retrying<T>(&self, conn: &mut Conn, attempts: u32, doing: &str, mut op: impl AsyncFnMut(&mut Conn) -> std::result::Result<T, mysql_async::Error>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let e = match op(conn).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let transient = crate::error::is_transient(&e);
            if !transient || attempt >= attempts {
                let tries = if transient { format!(" (after {attempt} attempts)") } else { String::new() };
                return Err(Error::server(&e, format!("{doing}{tries}: {}", crate::error::describe_mysql_error(&e))));
            }
            tracing::warn!("{doing} (attempt {attempt}): {}; retrying", crate::error::describe_mysql_error(&e));
            tokio::time::sleep(crate::error::Retry { attempts, step: std::time::Duration::from_millis(100), max: std::time::Duration::from_secs(2) }.pause(attempt)).await;
            self.reconnect_if_lost(conn).await;
        }
    }

    /// Replaces `conn` with a new connection if it no longer answers. A failure to reconnect is
    /// only logged: the caller's next attempt fails and is retried with its own backoff.
    pub async fn reconnect_if_lost(&self, conn: &mut Conn) {
        if conn.ping().await.is_ok() {
            return;
        }
        match self.conn().await {
            Ok(fresh) => *conn = fresh,
            Err(e) => tracing::warn!("{e}; will retry"),
        }
    }

    /// The options, for the binlog reader which must set its own session variables.
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// The binlog files the server still has (`SHOW BINARY LOGS`).
    pub async fn binlog_files(&self, conn: &mut Conn) -> Result<Vec<String>> {
        let rows: Vec<Row> = conn.query("SHOW BINARY LOGS").await.context(|| "listing the binlog files (SHOW BINARY LOGS)".into())?;
        Ok(rows.into_iter().filter_map(|r| r.get::<String, _>(0)).collect())
    }

    /// The current end of the binlog.
    pub async fn binlog_position(&self, conn: &mut Conn) -> Result<BinlogPosition> {
        let statement = binlog_status_statement(self.facts.flavor, self.facts.version);
        position_of(conn.query_first(statement).await.context(|| format!("running {statement}"))?)
    }

    /// [`Server::binlog_position`], with a lost connection (a server restarting) tried again on
    /// a new one, up to `attempts` times: for the waits that only need to know where the
    /// binlog ends now.
    pub async fn binlog_position_retrying(&self, conn: &mut Conn, attempts: u32) -> Result<BinlogPosition> {
        let statement = binlog_status_statement(self.facts.flavor, self.facts.version);
        position_of(self.retrying(conn, attempts, &format!("running {statement}"), async |c| c.query_first(statement).await).await?)
    }
}

/// The binlog status statement's row as a position; none means the binary log is off.
pub fn position_of(row: Option<Row>) -> Result<BinlogPosition> {
    let row = row.ok_or_else(|| Error::refused("the binary log is off (SHOW MASTER STATUS is empty)", "start the server with log_bin enabled"))?;
    Ok(BinlogPosition { file: row.get::<String, _>(0).unwrap_or_default(), pos: row.get::<u64, _>(1).unwrap_or_default() })
}

/// Runs `body` in a transaction, committed when it succeeds and rolled back when it fails.
pub async fn in_transaction<T>(conn: &mut Conn, body: impl AsyncFnOnce(&mut Conn) -> std::result::Result<T, mysql_async::Error>) -> std::result::Result<T, mysql_async::Error> {
    conn.query_drop("START TRANSACTION").await?;
    match body(conn).await {
        Ok(value) => conn.query_drop("COMMIT").await.map(|()| value),
        Err(e) => {
            conn.query_drop("ROLLBACK").await.ok();
            Err(e)
        }
    }
}

/// Runs `body` in a transaction that is always rolled back: a trial whose outcome is all that
/// is wanted.
pub async fn rolled_back<T>(conn: &mut Conn, body: impl AsyncFnOnce(&mut Conn) -> T) -> std::result::Result<T, mysql_async::Error> {
    conn.query_drop("START TRANSACTION").await?;
    let outcome = body(conn).await;
    conn.query_drop("ROLLBACK").await.map(|()| outcome)
}

/// Copy workers when `--threads` is not given: half the server's CPUs, from 1 to 8. MariaDB
/// sizes `thread_pool_size` to its CPUs; MySQL shows no CPU count, so it gets 2.
pub async fn default_copy_threads(conn: &mut Conn) -> Result<u64> {
    let cpus = global_variable(conn, "thread_pool_size").await?.and_then(|v| v.parse::<u64>().ok());
    Ok(copy_threads_for(cpus))
}

fn copy_threads_for(cpus: Option<u64>) -> u64 {
    cpus.map_or(2, |n| (n / 2).clamp(1, 8))
}

/// Reads a global variable as text; `None` when the server does not have it. SHOW works on
/// both flavors (MySQL 8 has no information_schema.GLOBAL_VARIABLES) but cannot be prepared,
/// so `name` must be one of our own constant variable names, never input.
pub async fn global_variable(conn: &mut Conn, name: &'static str) -> Result<Option<String>> {
    assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "not a variable name: {name}");
    let row: Option<(String, Option<String>)> = conn.query_first(format!("SHOW GLOBAL VARIABLES LIKE '{name}'")).await.context(|| format!("reading @@global.{name}"))?;
    Ok(row.and_then(|(_, v)| v))
}

/// One binlog setting that must hold, and how to fix it. A server without the variable meets
/// the requirement when `absent_ok` (it predates the feature the variable turns on).
struct Requirement {
    variable: &'static str,
    expected: &'static str,
    fix: &'static str,
    absent_ok: bool,
}

fn binlog_requirements(flavor: Flavor) -> Vec<Requirement> {
    let required = |variable, expected, fix| Requirement { variable, expected, fix, absent_ok: false };
    let mut reqs = vec![
        required("log_bin", "ON", "start the server with log_bin (binary logging) enabled"),
        required("binlog_format", "ROW", "SET GLOBAL binlog_format='ROW' (and in the server's config file), then reconnect the writers"),
        required("binlog_row_image", "FULL", "SET GLOBAL binlog_row_image='FULL' (and in the server's config file): other images lack the columns a replay needs"),
    ];
    match flavor {
        Flavor::MariaDb => reqs.push(required("log_bin_compress", "OFF", "SET GLOBAL log_bin_compress=OFF: compressed row events cannot be replayed")),
        Flavor::MySql => reqs.extend([
            Requirement {
                variable: "binlog_row_value_options",
                expected: "",
                fix: "SET GLOBAL binlog_row_value_options='' (and in the server's config file): partial JSON updates cannot be replayed",
                absent_ok: true,
            },
            Requirement {
                variable: "binlog_transaction_compression",
                expected: "OFF",
                fix: "SET GLOBAL binlog_transaction_compression=OFF (and in the server's config file): alterego does not replay compressed transaction payloads",
                absent_ok: true,
            },
        ]),
    }
    reqs
}

/// Refuses a server whose version or binlog settings alterego cannot work with.
pub async fn check_server(server: &Server, conn: &mut Conn, database: &str) -> Result<()> {
    check_supported(server.facts.flavor, server.facts.version)
        .map_err(|why| Error::refused(format!("unsupported server {}: {why}", server.facts.version_text), "alterego supports MariaDB 10.6 and later and MySQL 8.0.13 and later"))?;
    for req in binlog_requirements(server.facts.flavor) {
        let value = match global_variable(conn, req.variable).await? {
            None if req.absent_ok => continue,
            value => value.unwrap_or_default(),
        };
        if !value.eq_ignore_ascii_case(req.expected) {
            return Err(Error::refused(format!("{} is `{value}`, alterego needs `{}`", req.variable, req.expected), req.fix));
        }
    }
    check_privileges(server.facts.flavor, conn, database).await
}

/// Privileges a run needs: global ones for reading the binlog, table-level ones for the shadow
/// table, the copy and the swap.
fn required_privileges(flavor: Flavor) -> (Vec<&'static str>, Vec<&'static str>) {
    let global = match flavor {
        Flavor::MariaDb => vec!["REPLICATION SLAVE", "BINLOG MONITOR"],
        Flavor::MySql => vec!["REPLICATION SLAVE", "REPLICATION CLIENT"],
    };
    let schema = vec!["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "LOCK TABLES"];
    (global, schema)
}

async fn check_privileges(flavor: Flavor, conn: &mut Conn, database: &str) -> Result<()> {
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.context(|| "reading SHOW GRANTS".into())?;
    let missing = missing_privileges(flavor, &grants, Some(database));
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::refused(
        format!("the user lacks privileges alterego needs: {}", missing.join(", ")),
        "GRANT them (see docs/security.md for the least privileges and why), or run as a user that has them",
    ))
}

/// Compares `SHOW GRANTS` lines with what a run needs. Grants on `*.*` count everywhere; grants
/// on the run's database count for the table-level privileges.
pub fn missing_privileges(flavor: Flavor, grants: &[String], database: Option<&str>) -> Vec<String> {
    let (global_needed, schema_needed) = required_privileges(flavor);
    let mut global = Vec::new();
    let mut schema = Vec::new();
    for grant in grants {
        let Some((privs, scope)) = parse_grant(grant) else { continue };
        let on_all = scope == "*.*";
        let on_db = database.is_some_and(|db| scope == format!("`{}`.*", db.replace('`', "``")));
        for p in privs {
            if on_all {
                global.push(p.clone());
            }
            if on_all || on_db {
                schema.push(p);
            }
        }
    }
    let has = |set: &[String], p: &str| set.iter().any(|g| g == "ALL PRIVILEGES" || g == "ALL" || g == p || (p == "BINLOG MONITOR" && (g == "SUPER" || g == "REPLICATION CLIENT")));
    global_needed.into_iter().filter(|p| !has(&global, p)).chain(schema_needed.into_iter().filter(|p| !has(&schema, p))).map(String::from).collect()
}

/// `GRANT SELECT, INSERT ON `db`.* TO ...` -> (["SELECT", "INSERT"], "`db`.*")
fn parse_grant(line: &str) -> Option<(Vec<String>, String)> {
    let rest = line.strip_prefix("GRANT ")?;
    let on = rest.find(" ON ")?;
    let privs = rest[..on].split(',').map(|p| p.split('(').next().unwrap_or(p).trim().to_ascii_uppercase()).collect();
    let scope = rest[on + 4..].split(" TO ").next()?.trim().to_string();
    Some((privs, scope))
}

/// Maps a database error during preflight to a refusal: nothing has been created yet.
pub fn preflight(e: Error) -> Error {
    if e.kind == ExitKind::Failed {
        e.with_kind(ExitKind::Refused)
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_alters_sql_mode_is_the_servers() {
        let strict = "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO";
        assert_eq!(ddl_sql_mode(strict, false), strict);
        assert_eq!(ddl_sql_mode(strict, true), "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO");
        assert_eq!(ddl_sql_mode("", true), "");
    }

    use super::*;

    #[test]
    fn copy_threads_follow_the_server_cpus() {
        assert_eq!(copy_threads_for(Some(2)), 1);
        assert_eq!(copy_threads_for(Some(8)), 4);
        assert_eq!(copy_threads_for(Some(64)), 8);
        assert_eq!(copy_threads_for(Some(0)), 1);
        assert_eq!(copy_threads_for(None), 2);
    }

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("10.11.14-MariaDB-0+deb12u2"), Some((Flavor::MariaDb, Version(10, 11, 14))));
        assert_eq!(parse_version("8.4.3"), Some((Flavor::MySql, Version(8, 4, 3))));
        assert_eq!(parse_version("8.0.36-log"), Some((Flavor::MySql, Version(8, 0, 36))));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn supported_versions() {
        assert!(check_supported(Flavor::MariaDb, Version(10, 6, 0)).is_ok());
        assert!(check_supported(Flavor::MariaDb, Version(10, 5, 9)).is_err());
        assert!(check_supported(Flavor::MySql, Version(8, 0, 12)).is_err());
        assert!(check_supported(Flavor::MySql, Version(8, 4, 0)).is_ok());
        assert!(check_supported(Flavor::MySql, Version(9, 7, 4)).is_ok());
        assert!(check_supported(Flavor::MariaDb, Version(11, 8, 9)).is_ok());
    }

    #[test]
    fn mysql_json_needs_8_0_22_and_the_server_side_copy() {
        let facts = |flavor, version| ServerFacts { flavor, version, version_text: String::new() };
        let json = crate::inspect::Column {
            name: "doc".into(),
            ordinal: 0,
            data_type: "json".into(),
            column_type: "json".into(),
            nullable: true,
            charset: None,
            collation: None,
            generated: false,
            has_default: false,
            auto_increment: false,
        };
        let json = std::slice::from_ref(&json);
        assert!(check_replayable(&facts(Flavor::MySql, Version(8, 0, 21)), json, false).unwrap_err().0.contains("`doc`"));
        assert!(check_replayable(&facts(Flavor::MySql, Version(8, 0, 22)), json, false).is_ok());
        assert!(check_replayable(&facts(Flavor::MySql, Version(9, 7, 4)), json, true).unwrap_err().0.contains("--copy-through-client"));
        assert!(check_replayable(&facts(Flavor::MariaDb, Version(10, 6, 0)), json, true).is_ok());
        assert!(check_replayable(&facts(Flavor::MySql, Version(8, 0, 13)), &[], true).is_ok());
    }

    #[test]
    fn binlog_status_per_flavor() {
        assert_eq!(binlog_status_statement(Flavor::MariaDb, Version(10, 11, 0)), "SHOW MASTER STATUS");
        assert_eq!(binlog_status_statement(Flavor::MySql, Version(8, 0, 36)), "SHOW MASTER STATUS");
        assert_eq!(binlog_status_statement(Flavor::MySql, Version(8, 4, 0)), "SHOW BINARY LOG STATUS");
    }

    #[test]
    fn replica_listing_per_flavor() {
        assert_eq!(replica_hosts_statement(Flavor::MariaDb, Version(10, 11, 0)), "SHOW SLAVE HOSTS");
        assert_eq!(replica_hosts_statement(Flavor::MySql, Version(8, 0, 21)), "SHOW SLAVE HOSTS");
        assert_eq!(replica_hosts_statement(Flavor::MySql, Version(8, 4, 0)), "SHOW REPLICAS");
    }

    #[test]
    fn two_phase_alter_from_mariadb_10_8() {
        assert!(!logs_alter_in_two_phases(Flavor::MariaDb, Version(10, 6, 20)));
        assert!(logs_alter_in_two_phases(Flavor::MariaDb, Version(10, 11, 14)));
        assert!(!logs_alter_in_two_phases(Flavor::MySql, Version(8, 4, 0)));
    }

    #[test]
    fn positions_order_like_the_log() {
        let a = BinlogPosition { file: "bin.000009".into(), pos: 900 };
        let b = BinlogPosition { file: "bin.000010".into(), pos: 4 };
        assert!(a < b);
    }

    #[test]
    fn privileges_from_grants() {
        let all = vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION".to_string()];
        assert!(missing_privileges(Flavor::MariaDb, &all, Some("d")).is_empty());
        let partial = vec!["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`".to_string(), "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER ON `d`.* TO `u`@`%`".to_string()];
        assert_eq!(missing_privileges(Flavor::MariaDb, &partial, Some("d")), vec!["LOCK TABLES".to_string()]);
        assert_eq!(missing_privileges(Flavor::MariaDb, &partial, Some("other")).len(), 8);
        let mysql = vec!["GRANT SELECT ON *.* TO `u`@`%`".to_string()];
        assert!(missing_privileges(Flavor::MySql, &mysql, Some("d")).contains(&"REPLICATION CLIENT".to_string()));
    }
}
