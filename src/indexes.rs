//! Secondary indexes built after the copy instead of row by row during it.
//!
//! Every copied row updates each secondary index of the shadow table in that index's order, a
//! random walk over a second B-tree: on a million sysbench rows that doubles the cost of the
//! copy. Building the index once the rows are in is a sort, a fraction of that. So before the
//! copy, the shadow table's plain secondary indexes are dropped; after it they are added back,
//! one online `ALTER TABLE ... ALGORITHM=INPLACE, LOCK=NONE` each, while the applier goes on
//! replaying changes (InnoDB logs them and applies the log at the end of the build).
//!
//! A replica replays each build as one DDL. Unless it can run that DDL beside the rest of its
//! replication (MariaDB 10.8+ logs the build in two phases, `binlog_alter_two_phase`, and a
//! replica with `slave_parallel_threads` > 0 starts it when the primary does), the replica's
//! replication stands still for the build's length. So by default ([`DeferMode::Auto`]) the
//! indexes are deferred only when no watched replica would stand still longer than
//! `--max-lag-millis`.
//!
//! Invariants: only plain `KEY`s are deferred. Unique indexes stay, because they are what
//! rejects a lossy ALTER row by row during the copy; FULLTEXT and SPATIAL indexes stay, because
//! they cannot be built online. Deferral is decided on the empty shadow table, by building the
//! indexes there online once: what cannot be built online is not deferred. After the build the
//! shadow table's definition equals the one the ALTER produced, or the run fails.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Context, Error, Result};
use crate::plan::TableNames;

/// `--defer-secondary-indexes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferMode {
    /// Defer unless a watched replica would stand still past the lag limit during a build.
    Auto,
    Always,
    Never,
}

impl DeferMode {
    pub fn parse(text: &str) -> std::result::Result<DeferMode, String> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeferMode::Auto),
            "always" | "true" | "on" | "1" => Ok(DeferMode::Always),
            "never" | "false" | "off" | "0" => Ok(DeferMode::Never),
            _ => Err(format!("`{text}` is not one of auto, always, never")),
        }
    }
}

/// Rows per second a replica is assumed to get through when it replays the build of one
/// secondary index, measured on the development machine's 2 cores: MariaDB (10.11 and 11.8)
/// builds a 1M-row sysbench INT index in 0.7-1.1 s; MySQL 9.7 took 2.5 s for the same index.
/// Slower than most production servers, so the estimate errs towards keeping the indexes
/// during the copy.
pub const MARIADB_BUILD_ROWS_PER_SECOND: u64 = 1_000_000;
pub const MYSQL_BUILD_ROWS_PER_SECOND: u64 = 400_000;

/// Whether the indexes are built after the copy, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferral {
    Defer { why: String },
    Keep { why: String },
}

/// Decides `--defer-secondary-indexes` for a table of `rows` rows. `standing_still` names the
/// watched replicas that would replay a build as one statement holding up their replication.
/// `build_rows_per_second` is the flavor's assumed build rate.
pub fn decide(mode: DeferMode, rows: u64, build_rows_per_second: u64, standing_still: &[String], max_lag: Duration) -> Deferral {
    let estimate = Duration::from_secs_f64(rows as f64 / build_rows_per_second as f64);
    match mode {
        DeferMode::Never => Deferral::Keep { why: "--defer-secondary-indexes=never".into() },
        DeferMode::Always => Deferral::Defer { why: "--defer-secondary-indexes=always".into() },
        DeferMode::Auto if standing_still.is_empty() => Deferral::Defer { why: "no watched replica replays the builds as statements that hold up its replication".into() },
        DeferMode::Auto if estimate <= max_lag => {
            Deferral::Defer { why: format!("each build should take about {:.1} s on {}, within --max-lag-millis", estimate.as_secs_f64(), standing_still.join(", ")) }
        }
        DeferMode::Auto => Deferral::Keep {
            why: format!(
                "{} would replay each build as one statement of about {:.0} s, holding up its replication past --max-lag-millis; \
                 a build runs beside replication on MariaDB 10.8+ with slave_parallel_threads > 0 on the replica (or force deferral with --defer-secondary-indexes=always)",
                standing_still.join(", "),
                estimate.as_secs_f64().max(1.0)
            ),
        },
    }
}

/// The shadow table's secondary indexes that are built after the copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeferredIndexes {
    /// Index names, for `DROP INDEX`.
    names: Vec<String>,
    /// Their definitions as `SHOW CREATE TABLE` prints them, for `ADD`.
    definitions: Vec<String>,
    /// Log each build in two phases (`binlog_alter_two_phase`), so that replicas applying in
    /// parallel start it when the primary does.
    two_phase: bool,
}

impl DeferredIndexes {
    /// The plain secondary indexes of a `SHOW CREATE TABLE` text, in their order there.
    pub fn from_ddl(ddl: &str) -> DeferredIndexes {
        let mut deferred = DeferredIndexes::default();
        for line in ddl.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("KEY ") else { continue };
            let Some(name) = leading_ident(rest) else { continue };
            deferred.names.push(name);
            deferred.definitions.push(line.trim_end_matches(',').to_string());
        }
        deferred
    }

    /// Those not in `current_ddl`: what a resumed run still has to build.
    pub fn still_missing(self, current_ddl: &str) -> DeferredIndexes {
        let (names, definitions) = self.names.into_iter().zip(self.definitions).filter(|(_, d)| !defines(current_ddl, d)).unzip();
        DeferredIndexes { names, definitions, two_phase: self.two_phase }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Drops the indexes from the empty shadow table, after proving that they can be added back
    /// online. Returns the indexes actually deferred: none when they cannot be built online.
    pub async fn defer(self, conn: &mut Conn, names: &TableNames) -> Result<DeferredIndexes> {
        if self.is_empty() {
            return Ok(self);
        }
        self.drop_from(conn, names).await?;
        if let Err(e) = conn.query_drop(self.add_statement(names)).await {
            tracing::info!("building the secondary indexes after the copy is not possible online ({e}); the copy maintains them");
            conn.query_drop(format!("ALTER TABLE {} {}", names.q(&names.shadow), self.adds())).await.context(|| "restoring the secondary indexes of the shadow table".into())?;
            return Ok(DeferredIndexes::default());
        }
        self.drop_from(conn, names).await?;
        tracing::info!("secondary indexes {} are built after the copy", self.names.join(", "));
        Ok(self)
    }

    /// Builds logged in two phases (MariaDB 10.8+), which replicas applying in parallel run
    /// beside the rest of their replication.
    pub fn in_two_phases(self, two_phase: bool) -> DeferredIndexes {
        DeferredIndexes { two_phase, ..self }
    }

    /// Adds the index `i` back after the copy (one online `ALTER` per index: each reaches the
    /// replicas as one DDL, which holds up their replication while it runs unless it is logged
    /// in two phases and they apply in parallel).
    pub async fn build_one(&self, conn: &mut Conn, names: &TableNames, i: usize) -> Result<()> {
        conn.query_drop(self.build_statement(names, i)).await.context(|| format!("building the secondary index {} on the shadow table", self.names[i]))
    }

    fn build_statement(&self, names: &TableNames, i: usize) -> String {
        let alter = format!("ALTER TABLE {} ADD {}, ALGORITHM=INPLACE, LOCK=NONE", names.q(&names.shadow), self.definitions[i]);
        if self.two_phase {
            format!("SET STATEMENT binlog_alter_two_phase = 1 FOR {alter}")
        } else {
            alter
        }
    }

    /// [`DeferredIndexes::build_one`], again after a lost connection (a server restart) or a
    /// transient error, up to `retries` attempts; an ALTER whose connection was lost may have
    /// finished, so the shadow's DDL is read before each new attempt. The index existing
    /// already, as this definition, counts as built: the ALTER of an interrupted run lives on
    /// in the server after its client died, and may finish while a resumed run builds.
    pub async fn build_one_retrying(&self, server: &crate::server::Server, conn: &mut Conn, names: &TableNames, i: usize, retries: u32) -> Result<()> {
        let mut attempt = 1;
        loop {
            let error = match self.build_one(conn, names, i).await {
                Err(e) if e.server_code() == Some(crate::error::codes::DUPLICATE_KEY_NAME) && self.is_built(conn, names, i).await => return Ok(()),
                Err(e) if e.transient && attempt < retries => e,
                other => return other,
            };
            tracing::warn!("building the secondary index {} (attempt {attempt}): {error}; trying again", self.names[i]);
            tokio::time::sleep(crate::error::Retry::new(retries, std::time::Duration::from_millis(500)).pause(attempt)).await;
            attempt += 1;
            server.reconnect_if_lost(conn).await;
            if self.is_built(conn, names, i).await {
                return Ok(());
            }
        }
    }

    /// Whether the shadow table has the index `i`, as defined here.
    async fn is_built(&self, conn: &mut Conn, names: &TableNames, i: usize) -> bool {
        crate::inspect::show_create(conn, &names.database, &names.shadow).await.is_ok_and(|ddl| defines(&ddl, &self.definitions[i]))
    }

    /// Checks that, with every index built, the shadow table is exactly what the ALTER produced
    /// (`expected_ddl`, read before the indexes were dropped).
    pub async fn check_built(&self, conn: &mut Conn, names: &TableNames, expected_ddl: &str) -> Result<()> {
        let ddl = crate::inspect::show_create(conn, &names.database, &names.shadow).await?;
        if without_auto_increment(&ddl) != without_auto_increment(expected_ddl) {
            return Err(Error::failed(format!("after building its secondary indexes, the shadow table differs from what the ALTER produced:\n{ddl}\nexpected:\n{expected_ddl}"))
                .with_fix("run again with --defer-secondary-indexes=never, and report this as a bug"));
        }
        Ok(())
    }

    fn add_statement(&self, names: &TableNames) -> String {
        format!("ALTER TABLE {} {}, ALGORITHM=INPLACE, LOCK=NONE", names.q(&names.shadow), self.adds())
    }

    fn adds(&self) -> String {
        self.definitions.iter().map(|d| format!("ADD {d}")).collect::<Vec<_>>().join(", ")
    }

    async fn drop_from(&self, conn: &mut Conn, names: &TableNames) -> Result<()> {
        let drops: Vec<String> = self.names.iter().map(|n| format!("DROP INDEX {}", crate::sql::quote_ident(n))).collect();
        conn.query_drop(format!("ALTER TABLE {} {}", names.q(&names.shadow), drops.join(", "))).await.context(|| "dropping the secondary indexes of the shadow table until the copy is done".into())
    }
}

/// The backquoted identifier at the start of `text`, unescaped (```` `a``b` ```` is a`b).
fn leading_ident(text: &str) -> Option<String> {
    let mut chars = text.strip_prefix('`')?.chars().peekable();
    let mut name = String::new();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
            } else {
                return Some(name);
            }
        }
        name.push(c);
    }
    None
}

/// Whether a `SHOW CREATE TABLE` text has an index definition line (as [`DeferredIndexes`]
/// keeps them).
fn defines(ddl: &str, definition: &str) -> bool {
    ddl.lines().any(|l| l.trim().trim_end_matches(',') == definition)
}

/// A table definition without its ` AUTO_INCREMENT=N` table option, which writes change.
pub fn without_auto_increment(ddl: &str) -> String {
    ddl.split(' ').filter(|word| !word.starts_with("AUTO_INCREMENT=")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DDL: &str = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `a` int(11) DEFAULT NULL,\n  `b``c` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`a`),\n  KEY `k``1` (`b``c`(5)) COMMENT 'hi',\n  FULLTEXT KEY `f` (`b``c`),\n  KEY `ab` (`a`,`b``c`) USING BTREE\n) ENGINE=InnoDB AUTO_INCREMENT=12 DEFAULT CHARSET=utf8mb4";

    #[test]
    fn defers_only_plain_keys() {
        let deferred = DeferredIndexes::from_ddl(DDL);
        assert_eq!(deferred.names(), ["k`1", "ab"]);
        assert_eq!(deferred.definitions, ["KEY `k``1` (`b``c`(5)) COMMENT 'hi'", "KEY `ab` (`a`,`b``c`) USING BTREE"]);
    }

    #[test]
    fn builds_one_online_alter() {
        let names = TableNames::new("d", "t").unwrap();
        let sql = DeferredIndexes::from_ddl(DDL).add_statement(&names);
        assert_eq!(sql, "ALTER TABLE `d`.`_t_gho` ADD KEY `k``1` (`b``c`(5)) COMMENT 'hi', ADD KEY `ab` (`a`,`b``c`) USING BTREE, ALGORITHM=INPLACE, LOCK=NONE");
    }

    #[test]
    fn ignores_auto_increment_when_comparing() {
        assert_eq!(without_auto_increment(DDL), without_auto_increment(&DDL.replace("AUTO_INCREMENT=12 ", "")));
        assert_ne!(without_auto_increment(DDL), without_auto_increment(&DDL.replace("USING BTREE", "")));
    }

    #[test]
    fn a_resumed_run_builds_only_what_is_missing() {
        let current = DDL.replace("  KEY `ab` (`a`,`b``c`) USING BTREE\n", "");
        assert_eq!(DeferredIndexes::from_ddl(DDL).still_missing(&current).names(), ["ab"]);
        assert!(DeferredIndexes::from_ddl(DDL).still_missing(DDL).is_empty());
    }

    #[test]
    fn builds_in_two_phases_when_asked() {
        let names = TableNames::new("d", "t").unwrap();
        let deferred = DeferredIndexes::from_ddl(DDL);
        assert_eq!(deferred.build_statement(&names, 1), "ALTER TABLE `d`.`_t_gho` ADD KEY `ab` (`a`,`b``c`) USING BTREE, ALGORITHM=INPLACE, LOCK=NONE");
        assert_eq!(
            deferred.in_two_phases(true).build_statement(&names, 1),
            "SET STATEMENT binlog_alter_two_phase = 1 FOR ALTER TABLE `d`.`_t_gho` ADD KEY `ab` (`a`,`b``c`) USING BTREE, ALGORITHM=INPLACE, LOCK=NONE"
        );
    }

    #[test]
    fn defers_unless_a_replica_would_stand_still_past_the_lag_limit() {
        let lag = Duration::from_millis(1500);
        let serial = ["r1:3306".to_string()];
        let defers = |d: Deferral| matches!(d, Deferral::Defer { .. });
        assert!(defers(decide(DeferMode::Auto, 50_000_000, MARIADB_BUILD_ROWS_PER_SECOND, &[], lag)), "no replica stands still");
        assert!(defers(decide(DeferMode::Auto, 1_000_000, MARIADB_BUILD_ROWS_PER_SECOND, &serial, lag)), "a 1 s build fits in 1.5 s");
        assert!(!defers(decide(DeferMode::Auto, 1_000_000, MYSQL_BUILD_ROWS_PER_SECOND, &serial, lag)), "MySQL's 2.5 s build does not");
        match decide(DeferMode::Auto, 5_000_000, MARIADB_BUILD_ROWS_PER_SECOND, &serial, lag) {
            Deferral::Keep { why } => assert!(why.contains("r1:3306") && why.contains("about 5 s") && why.contains("slave_parallel_threads"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(defers(decide(DeferMode::Always, 5_000_000, MARIADB_BUILD_ROWS_PER_SECOND, &serial, lag)));
        assert!(!defers(decide(DeferMode::Never, 10, MARIADB_BUILD_ROWS_PER_SECOND, &[], lag)));
    }

    #[test]
    fn parses_the_modes() {
        assert_eq!(DeferMode::parse("AUTO"), Ok(DeferMode::Auto));
        assert_eq!(DeferMode::parse("true"), Ok(DeferMode::Always));
        assert_eq!(DeferMode::parse("false"), Ok(DeferMode::Never));
        assert!(DeferMode::parse("sometimes").unwrap_err().contains("auto, always, never"));
    }

    #[test]
    fn a_table_without_plain_keys_defers_nothing() {
        assert!(DeferredIndexes::from_ddl("CREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n)").is_empty());
    }
}
