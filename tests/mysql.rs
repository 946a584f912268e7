//! MySQL's own ground, on the MySQL flavor (elsewhere each test says it is skipped), and first
//! the typed columns on every flavor: JSON values of every kind the server's JSON holds (on
//! MySQL, its binary JSON: decimals, unsigned and big integers, doubles, nested documents,
//! Unicode, dates, times, binary strings) replayed exactly, TIME at ±838 hours with fractions,
//! and VECTOR (MariaDB 10.11, which has none, gets bytes), with writes landing during the copy,
//! after the verification while the swap is postponed, and under the cut-over; the result
//! equals an oracle row for row, compared (on MySQL) by a text that shows each JSON value's
//! types and storage.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_rows, server, tables};
use mysql_async::prelude::*;
use mysql_async::Conn;

/// The compressed-transaction test writes a compressed payload, which fails every run reading
/// the binlog at that moment (the reader cannot tell what is inside): it runs alone.
static BINLOG_READERS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn mysql_only(test: &str) -> bool {
    if common::flavor().is_mysql() {
        return true;
    }
    eprintln!("{test}: skipped, MySQL only (ALTEREGO_TEST_FLAVOR=mysql)");
    false
}

/// A migration of `db`.`t` whose swap is postponed (until `postpone` is removed); a hook
/// touches `reached` once it is, which is after the verification.
struct Postponed {
    child: Child,
    postpone: PathBuf,
    reached: PathBuf,
}

impl Postponed {
    fn start(db: &str, alter: &str, extra: &[&str]) -> Postponed {
        let dir = common::scratch_dir(db);
        let postpone = dir.join("postpone");
        std::fs::write(&postpone, "").unwrap();
        let reached = dir.join("postponed");
        let hook = dir.join("gh-ost-on-begin-postponed");
        std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", reached.display())).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut args = vec!["--database", db, "--table", "t", "--alter", alter, "--execute", "--postpone-cut-over-flag-file", postpone.to_str().unwrap(), "--hooks-path", dir.to_str().unwrap()];
        args.extend(extra);
        let child = server().alterego_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        Postponed { child, postpone, reached }
    }

    /// Waits until the swap is postponed; a run that ended instead fails the test with its log.
    async fn wait(self) -> Postponed {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut run = self;
        while !run.reached.exists() {
            if run.child.try_wait().unwrap().is_some() {
                panic!("the run ended before its swap was postponed:\n{}", common::stderr(&run.child.wait_with_output().unwrap()));
            }
            assert!(Instant::now() < deadline, "the swap was never postponed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        run
    }

    /// Waits for the run's end (the swap goes once `postpone` is removed).
    async fn output(self) -> std::process::Output {
        let child = self.child;
        tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap()
    }
}

/// JSON documents, as SQL expressions, whose binary form text would not rebuild.
const DOCUMENTS: &[&str] = &[
    "JSON_ARRAY(1, 2.5, CAST(2.50 AS DECIMAL(10,2)), -0.000001)",
    "JSON_OBJECT('big', 18446744073709551615, 'min', -9223372036854775808, 'u', CAST(5 AS UNSIGNED), 'past 2^53', 9007199254740993)",
    "JSON_ARRAY(0.1e0, 1e300, -0e0, 5e-324, 3e0)",
    "JSON_ARRAY(CAST('2024-02-29' AS DATE), CAST('2024-02-29 10:11:12.123456' AS DATETIME(6)), CAST('-838:59:59' AS TIME), CAST('12:00:00.5' AS TIME(1)))",
    "JSON_OBJECT('ünïcödé 😀', 'value \"quoted\" \\\\ back\\tslash', 'nested', JSON_OBJECT('deep', JSON_ARRAY(JSON_ARRAY(1.25, NULL, TRUE))))",
    "JSON_ARRAY(UNHEX('00FF10'), CAST(x'0102' AS BINARY(4)))",
    "CAST(12.345 AS JSON)",
    "CAST('[1, \"two\", {\"three\": [3]}]' AS JSON)",
    "NULL",
];

/// TIMEs at the ends of the range, with fractions (MySQL 9.7 rejects some of these as bound
/// TIME parameters).
const TIMES: &[&str] = &["838:59:59.000000", "-838:59:59.000000", "838:26:09.740793", "-838:00:00.000001", "00:00:00.500000", "-00:00:01.000000"];

const VECTORS: &[&str] = &["STRING_TO_VECTOR('[1.5,-2,3.25]')", "STRING_TO_VECTOR('[0,0,0]')", "NULL"];

/// The typed columns of the flavor: JSON documents, VECTOR values (as SQL expressions), the
/// VECTOR's column type, and how a row is compared.
struct Types {
    documents: &'static [&'static str],
    vectors: &'static [&'static str],
    vector_type: &'static str,
    compared: fn(&str) -> String,
}

/// MariaDB's JSON is text (a LONGTEXT that must be valid JSON); VECTOR exists from 11.7, so
/// 10.11 gets bytes in its place.
const MARIADB_DOCUMENTS: &[&str] = &[
    "JSON_ARRAY(1, 2.5, 2.50, -0.000001)",
    "JSON_OBJECT('big', 18446744073709551615, 'min', -9223372036854775808, 'past 2^53', 9007199254740993)",
    "'[0.1, 1e300, -0.0, 5e-324, 3.0]'",
    "JSON_OBJECT('ünïcödé 😀', 'value \"quoted\" \\\\ back\\tslash', 'nested', JSON_OBJECT('deep', JSON_ARRAY(JSON_ARRAY(1.25, NULL, TRUE))))",
    "'[1, \"two\", {\"three\": [3]}]'",
    "NULL",
];

fn types() -> Types {
    match common::flavor() {
        common::Flavor::MySql => Types {
            documents: DOCUMENTS,
            vectors: VECTORS,
            vector_type: "VECTOR(3)",
            compared: |table| {
                format!(
                    "SELECT id, CAST(j AS CHAR), JSON_TYPE(j), JSON_STORAGE_SIZE(j), \
                     (SELECT GROUP_CONCAT(JSON_TYPE(x) ORDER BY o) FROM JSON_TABLE(IF(JSON_TYPE(j) = 'ARRAY', j, JSON_ARRAY()), '$[*]' COLUMNS (o FOR ORDINALITY, x JSON PATH '$')) AS jt), \
                     CAST(tm AS CHAR), VECTOR_TO_STRING(v), n FROM {table} ORDER BY id"
                )
            },
        },
        common::Flavor::MariaDb118 => Types {
            documents: MARIADB_DOCUMENTS,
            vectors: &["VEC_FromText('[1.5,-2,3.25]')", "VEC_FromText('[0,0,0]')", "NULL"],
            vector_type: "VECTOR(3)",
            compared: |table| format!("SELECT id, j, JSON_TYPE(j), CAST(tm AS CHAR), VEC_ToText(v), n FROM {table} ORDER BY id"),
        },
        common::Flavor::MariaDb => Types {
            documents: MARIADB_DOCUMENTS,
            vectors: &["x'0000C03F000000C000005040'", "x'000000000000000000000000'", "NULL"],
            vector_type: "VARBINARY(12)",
            compared: |table| format!("SELECT id, j, JSON_TYPE(j), CAST(tm AS CHAR), HEX(v), n FROM {table} ORDER BY id"),
        },
    }
}

/// Column values of row `i`'s `version`th write, as SQL expressions.
fn row_values(i: i64, version: i64) -> (String, String, String) {
    let types = types();
    let at = |list: &[&str], k: i64| list[(k.rem_euclid(list.len() as i64)) as usize].to_string();
    let time = at(TIMES, i + version);
    (at(types.documents, i * 3 + version), format!("'{time}'"), at(types.vectors, i + version))
}

/// Runs each statement on `t` and on `t_oracle` in one transaction.
async fn on_both(conn: &mut Conn, statements: &[String]) {
    conn.query_drop("START TRANSACTION").await.unwrap();
    for sql in statements {
        for table in ["t", "t_oracle"] {
            let sql = sql.replace("{t}", table);
            conn.query_drop(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    conn.query_drop("COMMIT").await.unwrap();
}

/// Inserts, updates (to other typed values), key changes and deletes over ids `from..to`.
fn writes(from: i64, to: i64, version: i64) -> Vec<String> {
    let mut out = Vec::new();
    for i in from..to {
        let (j, tm, v) = row_values(i, version);
        out.push(match i % 4 {
            0 => format!("INSERT INTO {{t}} (id, j, tm, v, n) VALUES ({}, {j}, {tm}, {v}, {i})", 100_000 + i + version * 10_000),
            1 => format!("UPDATE {{t}} SET j = {j}, tm = {tm}, v = {v} WHERE id = {i}"),
            2 => format!("UPDATE {{t}} SET id = id + 50000 WHERE id = {i}"),
            _ => format!("DELETE FROM {{t}} WHERE id = {i}"),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_replays_exactly_before_during_and_after_the_verification() {
    let _reading = BINLOG_READERS.read().await;
    let db = "typed";
    let srv = server();
    let types = types();
    let mut conn = srv.fresh_database(db).await;
    for table in ["t", "t_oracle"] {
        conn.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY, j JSON, tm TIME(6), v {}, n INT) ENGINE=InnoDB", types.vector_type)).await.unwrap();
    }
    let initial: Vec<String> = (1..=400)
        .map(|i| {
            let (j, tm, v) = row_values(i, 0);
            format!("INSERT INTO {{t}} (id, j, tm, v, n) VALUES ({i}, {j}, {tm}, {v}, {i})")
        })
        .collect();
    on_both(&mut conn, &initial).await;

    let run = Postponed::start(db, "ADD COLUMN c INT, ADD INDEX idx_n (n)", &["--chunk-size", "20"]);
    // During the copy (20-row chunks), and after the verification, while the swap waits.
    for (k, batch) in (0..20).map(|k| (k, writes(1 + k * 10, 11 + k * 10, 1))).collect::<Vec<_>>() {
        on_both(&mut conn, &batch).await;
        if k % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let run = run.wait().await;
    on_both(&mut conn, &writes(200, 300, 2)).await;
    on_both(&mut conn, &writes(300, 320, 3)).await;
    std::fs::remove_file(&run.postpone).unwrap();
    // And while the cut-over runs.
    on_both(&mut conn, &writes(320, 400, 4)).await;
    let output = run.output().await;
    common::assert_success(&output);
    let rows = assert_same_rows(&mut conn, &(types.compared)("t"), &(types.compared)("t_oracle")).await;
    assert!(rows > 300, "{rows} rows");
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".into(), "t_oracle".into()]);
}

/// A table whose primary key MySQL generated (`sql_generate_invisible_primary_key`), with an
/// invisible column and functional indexes, migrated under inserts, updates, key changes and
/// deletes (the invisible key named explicitly), adding a functional unique index: equal to
/// the oracle, invisible columns and functional indexes kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_invisible_keys_invisible_columns_and_functional_indexes() {
    let _reading = BINLOG_READERS.read().await;
    if !mysql_only("generated_invisible_keys_invisible_columns_and_functional_indexes") {
        return;
    }
    let db = "mysql_invisible";
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("SET SESSION sql_generate_invisible_primary_key = ON").await.unwrap();
    for table in ["t", "t_oracle"] {
        conn.query_drop(format!("CREATE TABLE {table} (a INT, b VARCHAR(20), j JSON, hidden INT INVISIBLE, INDEX fa ((a + 1)), INDEX fj ((CAST(j->'$.k' AS UNSIGNED)))) ENGINE=InnoDB")).await.unwrap();
    }
    conn.query_drop("SET SESSION sql_generate_invisible_primary_key = OFF").await.unwrap();
    let load: Vec<String> = (1..=2000).map(|i| format!("INSERT INTO {{t}} (a, b, j, hidden) VALUES ({i}, 'b{i}', JSON_OBJECT('k', {i}, 'd', {i}.5), {})", i * 2)).collect();
    for part in load.chunks(500) {
        on_both(&mut conn, part).await;
    }
    let mut child = srv
        .alterego_command(&["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT, ADD UNIQUE INDEX u2 ((a * 2))", "--execute", "--chunk-size", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for k in 0..40i64 {
        let i = 1 + k * 40;
        on_both(
            &mut conn,
            &[
                format!("INSERT INTO {{t}} (a, b, j, hidden) VALUES ({}, 'new', JSON_ARRAY({k}.25), {k})", 10_000 + k),
                format!("UPDATE {{t}} SET b = 'upd', hidden = hidden + 1, j = JSON_SET(j, '$.k', {k}) WHERE my_row_id = {i}"),
                format!("UPDATE {{t}} SET my_row_id = my_row_id + 100000 WHERE my_row_id = {}", i + 1),
                format!("DELETE FROM {{t}} WHERE my_row_id = {}", i + 2),
            ],
        )
        .await;
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    common::assert_success(&output);
    let compared = |table: &str| format!("SELECT my_row_id, a, b, CAST(j AS CHAR), JSON_STORAGE_SIZE(j), hidden FROM {table} ORDER BY my_row_id");
    assert_same_rows(&mut conn, &compared("t"), &compared("t_oracle")).await;
    let ddl: (String, String) = conn.query_first("SHOW CREATE TABLE t").await.unwrap().unwrap();
    for part in [
        "`my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */",
        "`hidden` int DEFAULT NULL /*!80023 INVISIBLE */",
        "KEY `fa` (((`a` + 1)))",
        "UNIQUE KEY `u2` (((`a` * 2)))",
        "`c` int",
    ] {
        assert!(ddl.1.contains(part), "{part} missing from:\n{}", ddl.1);
    }
}

/// `--attempt-instant-ddl` takes MySQL's INSTANT ADD and DROP COLUMN, copying nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_instant_ddl_adds_and_drops_columns_instantly() {
    let _reading = BINLOG_READERS.read().await;
    if !mysql_only("attempt_instant_ddl_adds_and_drops_columns_instantly") {
        return;
    }
    let srv = server();
    let mut conn = common::small_table_on(srv, "mysql_instant", 1000).await;
    for alter in ["ADD COLUMN b INT DEFAULT 7", "DROP COLUMN a"] {
        let output = srv.alterego(&["--database", "mysql_instant", "--table", "t", "--alter", alter, "--execute", "--attempt-instant-ddl"]);
        common::assert_success(&output);
        assert!(String::from_utf8_lossy(&output.stdout).contains("ALGORITHM=INSTANT: no copy was needed"), "{alter}: {}", common::stderr(&output));
        assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{alter}: no shadow, changelog or old table");
    }
    let sevens: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t WHERE b = 7").await.unwrap();
    assert_eq!(sevens, Some(1000));
    let columns: Vec<String> = conn.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql_instant' AND TABLE_NAME = 't' ORDER BY ORDINAL_POSITION").await.unwrap();
    assert_eq!(columns, vec!["id".to_string(), "b".into()]);
}

/// A `caching_sha2_password` account whose password the server has not cached (FLUSH
/// PRIVILEGES empties the cache) logs in without TLS through the RSA key exchange, and the
/// migration runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_sha2_password_without_tls_uses_the_rsa_exchange() {
    let _reading = BINLOG_READERS.read().await;
    if !mysql_only("caching_sha2_password_without_tls_uses_the_rsa_exchange") {
        return;
    }
    let srv = server();
    let mut conn = common::small_table_on(srv, "mysql_sha2", 500).await;
    for sql in
        ["DROP USER IF EXISTS 'sha2user'@'%'", "CREATE USER 'sha2user'@'%' IDENTIFIED WITH caching_sha2_password BY 'sha2-Secret'", "GRANT ALL PRIVILEGES ON *.* TO 'sha2user'@'%'", "FLUSH PRIVILEGES"]
    {
        conn.query_drop(sql).await.unwrap();
    }
    let output = srv
        .alterego_command(&["--database", "mysql_sha2", "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--user", "sha2user", "--ssl-mode", "DISABLED"])
        .env("ALTEREGO_PASSWORD", "sha2-Secret")
        .output()
        .unwrap();
    common::assert_success(&output);
    let plugin: Option<String> = conn.query_first("SELECT plugin FROM mysql.user WHERE user = 'sha2user'").await.unwrap();
    assert_eq!(plugin.as_deref(), Some("caching_sha2_password"));
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".into()]);
}

/// Columns with expression defaults, which MySQL marks `DEFAULT_GENERATED` (a BLOB's
/// `DEFAULT (x'...')`, `DEFAULT CURRENT_TIMESTAMP`, `ON UPDATE CURRENT_TIMESTAMP`), are copied
/// and replayed like any other: taken for generated columns, they were left out of the copy,
/// the replay and the verification, and the new table held their defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_with_expression_defaults_are_copied_and_replayed() {
    let _reading = BINLOG_READERS.read().await;
    if !mysql_only("columns_with_expression_defaults_are_copied_and_replayed") {
        return;
    }
    let db = "mysql_defaults";
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    for table in ["t", "t_oracle"] {
        conn.query_drop(format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, b BLOB NULL DEFAULT (x'00000000'), \
             created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
             d DATETIME DEFAULT CURRENT_TIMESTAMP, n INT DEFAULT (id * 2), KEY kb (b(3))) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
    }
    let load: Vec<String> = (1..=1000).map(|i| format!("INSERT INTO {{t}} (id, b, created, d) VALUES ({i}, x'0102{i:04}', '2001-02-03 04:05:06.{i:06}', '1999-01-01 00:00:{:02}')", i % 60)).collect();
    on_both(&mut conn, &load).await;
    let mut child =
        srv.alterego_command(&["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT", "--execute", "--chunk-size", "50"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    for k in 0..40i64 {
        let i = 1 + k * 25;
        on_both(
            &mut conn,
            &[
                format!("UPDATE {{t}} SET b = x'0A0B{k:02}', created = '2011-01-01 00:00:00.{k:06}', d = '2012-02-02', n = {k} WHERE id = {i}"),
                format!("INSERT INTO {{t}} (id, b, created, d, n) VALUES ({}, x'ABCD', '2020-01-01 00:00:{:02}', '2021-01-01', 7)", 5000 + k, k % 60),
            ],
        )
        .await;
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    common::assert_success(&output);
    let compared = |table: &str| format!("SELECT id, HEX(b), CAST(created AS CHAR), CAST(d AS CHAR), n FROM {table} ORDER BY id");
    assert_same_rows(&mut conn, &compared("t"), &compared("t_oracle")).await;
}

/// A session that compresses its own transactions (`binlog_transaction_compression` is a
/// session variable too) during a migration: the reader meets a TRANSACTION_PAYLOAD event and
/// fails the run rather than skip the changes inside it; nothing is swapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_transaction_fails_the_run_instead_of_being_skipped() {
    let _alone = BINLOG_READERS.write().await;
    if !mysql_only("a_compressed_transaction_fails_the_run_instead_of_being_skipped") {
        return;
    }
    let db = "mysql_compressed";
    let srv = server();
    let mut conn = common::small_table_on(srv, db, 2000).await;
    let run = Postponed::start(db, "ADD COLUMN c INT", &[]).wait().await;
    let mut writer = srv.conn(Some(db)).await;
    writer.query_drop("SET SESSION binlog_transaction_compression = ON").await.unwrap();
    writer.query_drop("UPDATE t SET a = -a WHERE id <= 10").await.unwrap();
    let output = run.output().await;
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a compressed transaction payload at") && stderr.contains("binlog_transaction_compression"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    let rows: Vec<(i64, i64)> = conn.query("SELECT id, a FROM t ORDER BY id").await.unwrap();
    let expected: Vec<(i64, i64)> = (1..=2000).map(|id| (id, if id <= 10 { -id } else { id })).collect();
    assert!(rows == expected, "the original table changed");
}
