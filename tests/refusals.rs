//! Every refusal: a clear message, the documented exit code, and the server left exactly as it
//! was (same tables, same DDL, same data; no shadow, changelog or old table behind).

mod common;

use common::{server, snapshot, TestServer};
use mysql_async::prelude::*;

/// Tests that change global settings take this for writing; all others for reading.
static GLOBALS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const TABLE: &str = "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT NOT NULL, b VARCHAR(20), created DATETIME NOT NULL DEFAULT '2020-01-01', KEY ka (a)) ENGINE=InnoDB";

struct Case<'a> {
    db: &'a str,
    setup: &'a [&'a str],
    args: &'a [&'a str],
    code: i32,
    needle: &'a str,
}

/// Sets up the database, runs alterego, and checks code, message and an unchanged server.
async fn expect_refusal(srv: &TestServer, case: Case<'_>) -> String {
    let mut conn = srv.fresh_database(case.db).await;
    for sql in case.setup {
        conn.query_drop(*sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let before = snapshot(&mut conn).await;
    let mut args = vec!["--database", case.db, "--execute"];
    if !case.args.contains(&"--table") {
        args.extend_from_slice(&["--table", "t"]);
    }
    args.extend_from_slice(case.args);
    if !case.args.contains(&"--alter") && !case.args.iter().any(|a| a.starts_with("--alter=")) {
        args.extend_from_slice(&["--alter", "ADD COLUMN z INT"]);
    }
    let output = srv.alterego(&args);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(case.code), "{}: expected exit {}, stderr:\n{stderr}", case.db, case.code);
    assert!(stderr.contains(case.needle), "{}: expected `{}` in:\n{stderr}", case.db, case.needle);
    assert!(stderr.contains("what to do:"), "{}: no fix offered:\n{stderr}", case.db);
    assert_eq!(snapshot(&mut conn).await, before, "{}: the server changed", case.db);
    stderr
}

macro_rules! refusal {
    ($name:ident, $setup:expr, $args:expr, $code:expr, $needle:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let _shared = GLOBALS.read().await;
            let db = stringify!($name);
            expect_refusal(server(), Case { db, setup: &$setup, args: &$args, code: $code, needle: $needle }).await;
        }
    };
}

refusal!(table_does_not_exist, [], [], 3, "does not exist");
refusal!(view_is_not_a_base_table, ["CREATE TABLE base (id INT PRIMARY KEY)", "CREATE VIEW t AS SELECT * FROM base"], [], 3, "is a view");
refusal!(myisam_table, ["CREATE TABLE t (id INT PRIMARY KEY) ENGINE=MyISAM"], [], 3, "MyISAM engine");
refusal!(no_unique_key, ["CREATE TABLE t (id INT, a INT) ENGINE=InnoDB"], [], 3, "no PRIMARY or NOT NULL UNIQUE key");
refusal!(only_a_nullable_unique_key, ["CREATE TABLE t (id INT NULL, UNIQUE KEY (id)) ENGINE=InnoDB"], [], 3, "no PRIMARY or NOT NULL UNIQUE key");
refusal!(
    foreign_key_on_the_table,
    ["CREATE TABLE p (id INT PRIMARY KEY) ENGINE=InnoDB", "CREATE TABLE t (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id)) ENGINE=InnoDB"],
    [],
    3,
    "foreign keys"
);
refusal!(
    foreign_key_pointing_at_the_table,
    [TABLE, "CREATE TABLE c (id INT PRIMARY KEY, tid INT, FOREIGN KEY (tid) REFERENCES t (id)) ENGINE=InnoDB"],
    ["--discard-foreign-keys"],
    3,
    "other tables' foreign keys reference"
);
refusal!(triggers_on_the_table, [TABLE, "CREATE TABLE audit (n INT)", "CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (1)"], [], 3, "has triggers (trg)");
refusal!(
    a_new_trigger_name_taken_on_another_table,
    [TABLE, "CREATE TABLE other (id INT PRIMARY KEY)", "CREATE TRIGGER t_ai_v2 AFTER INSERT ON t FOR EACH ROW SET @x = 1", "CREATE TRIGGER t_ai AFTER INSERT ON other FOR EACH ROW SET @x = 1"],
    ["--include-triggers", "--trigger-suffix=_v2", "--remove-trigger-suffix-if-exists"],
    3,
    "already exist in `a_new_trigger_name_taken_on_another_table`: t_ai (on other)"
);
refusal!(
    a_new_trigger_name_too_long,
    [TABLE, "CREATE TRIGGER trigger_name_of_sixty_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx AFTER INSERT ON t FOR EACH ROW SET @x = 1"],
    ["--include-triggers", "--trigger-suffix=_v2"],
    3,
    "longer than 64 characters: trigger_name_of_sixty_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_v2"
);
refusal!(include_triggers_without_a_suffix, [TABLE], ["--include-triggers"], 2, "--include-triggers needs --trigger-suffix");
refusal!(a_trigger_suffix_that_is_not_a_name, [TABLE], ["--include-triggers", "--trigger-suffix=-v2"], 2, "is not letters, digits and underscores");
refusal!(alter_renames_the_table, [TABLE], ["--alter", "RENAME TO t2"], 3, "renames the table");
refusal!(column_rename_needs_approval, [TABLE], ["--alter", "CHANGE b b2 VARCHAR(20)"], 3, "--approve-renamed-columns");
refusal!(alter_adds_a_foreign_key, [TABLE], ["--alter", "ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES t (id)"], 3, "adds a foreign key");
refusal!(alter_sets_the_algorithm, [TABLE], ["--alter", "ADD COLUMN z INT, ALGORITHM=INSTANT"], 3, "ALGORITHM");
refusal!(alter_with_two_statements, [TABLE], ["--alter", "ADD COLUMN z INT; DROP TABLE t"], 3, "more than one statement");
refusal!(malformed_alter, [TABLE], ["--alter", "ADD COLUMN WHERE FROM"], 3, "the ALTER failed on the (empty) shadow table");
refusal!(alter_of_something_else, [TABLE], ["--alter", "DROP DATABASE mysql"], 3, "the ALTER failed on the (empty) shadow table");
refusal!(no_key_shared_after_the_alter, [TABLE], ["--alter", "DROP PRIMARY KEY, ADD PRIMARY KEY (a)"], 3, "no PRIMARY or NOT NULL UNIQUE key is shared");
refusal!(key_column_becomes_timestamp, ["CREATE TABLE t (d DATETIME NOT NULL PRIMARY KEY) ENGINE=InnoDB"], ["--alter", "MODIFY d TIMESTAMP NOT NULL"], 3, "changes from datetime to timestamp");
refusal!(new_not_null_column_without_default, [TABLE], ["--alter", "ADD COLUMN n INT NOT NULL"], 3, "without a DEFAULT");
refusal!(leftover_shadow_table, [TABLE, "CREATE TABLE _t_gho (id INT PRIMARY KEY)"], [], 3, "--initially-drop-ghost-table");
refusal!(leftover_changelog_table, [TABLE, "CREATE TABLE _t_ghc (id INT PRIMARY KEY)"], [], 3, "--initially-drop-ghost-table");
refusal!(leftover_old_table, [TABLE, "CREATE TABLE _t_del (id INT PRIMARY KEY)"], [], 3, "--initially-drop-old-table");
refusal!(alter_names_another_table, [TABLE], ["--alter", "ALTER TABLE other ADD COLUMN z INT"], 2, "--alter names table `other`");
refusal!(unsupported_ghost_flag, [TABLE], ["-assume-master-host=primary.example"], 2, "--assume-master-host is not supported");
refusal!(unknown_status_in_max_load, [TABLE], ["--max-load", "No_such_status=5"], 2, "no status variable `No_such_status`");
refusal!(password_on_the_command_line, [TABLE], ["-psecret"], 2, "ALTEREGO_PASSWORD");
refusal!(table_name_too_long, [], ["--table", "a_table_name_that_is_far_too_long_for_a_shadow_table_suffix_xx"], 3, "too long");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_run_holds_the_table() {
    let _shared = GLOBALS.read().await;
    let srv = server();
    let mut holder = srv.conn(None).await;
    let got: Option<i64> = holder.query_first("SELECT GET_LOCK(CONCAT('alterego:', LEFT(SHA2('another_run_holds_the_table.t', 256), 48)), 0)").await.unwrap();
    assert_eq!(got, Some(1));
    expect_refusal(srv, Case { db: "another_run_holds_the_table", setup: &[TABLE], args: &[], code: 3, needle: "another alterego run" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_does_not_exist() {
    let _shared = GLOBALS.read().await;
    let srv = server();
    let mut conn = srv.conn(None).await;
    conn.query_drop("DROP DATABASE IF EXISTS no_such_database").await.unwrap();
    let before: Vec<String> = conn.query("SHOW DATABASES").await.unwrap();
    let output = srv.alterego(&["--database", "no_such_database", "--table", "t", "--alter", "ADD z INT", "--execute"]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("database `no_such_database` does not exist") && stderr.contains("what to do: check --database"), "{stderr}");
    assert_eq!(conn.query::<String, _>("SHOW DATABASES").await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password() {
    let _shared = GLOBALS.read().await;
    let srv = server();
    let output = srv.alterego_command(&["--database", "x", "--table", "t", "--alter", "ADD z INT"]).env("ALTEREGO_PASSWORD", "wrong").output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = common::stderr(&output);
    assert!(stderr.contains("cannot connect") && stderr.contains("Access denied"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the password leaked into the message: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_alterego"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--user", "u", "--database", "d", "--table", "t", "--alter", "ADD z INT"])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(common::stderr(&output).contains("cannot connect"), "{}", common::stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_privileges() {
    let _shared = GLOBALS.read().await;
    let srv = server();
    let mut admin = srv.conn(None).await;
    for sql in [
        "DROP USER IF EXISTS 'limited'@'%'",
        "CREATE USER 'limited'@'%' IDENTIFIED BY 'limited-pw'",
        &format!("GRANT REPLICATION SLAVE, {} ON *.* TO 'limited'@'%'", common::flavor().binlog_monitor_privilege()),
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER ON missing_privileges.* TO 'limited'@'%'",
    ] {
        admin.query_drop(sql).await.unwrap();
    }
    let mut conn = srv.fresh_database("missing_privileges").await;
    conn.query_drop(TABLE).await.unwrap();
    let before = snapshot(&mut conn).await;
    let output =
        srv.alterego_command(&["--user", "limited", "--database", "missing_privileges", "--table", "t", "--alter", "ADD z INT", "--execute"]).env("ALTEREGO_PASSWORD", "limited-pw").output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("lacks privileges") && stderr.contains("LOCK TABLES"), "{stderr}");
    assert_eq!(snapshot(&mut conn).await, before);
}

/// Global binlog settings alterego cannot work with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_settings_are_checked() {
    let _exclusive = GLOBALS.write().await;
    let srv = server();
    let mut admin = srv.conn(None).await;
    let mut settings = vec![
        ("SET GLOBAL binlog_format = 'STATEMENT'", "SET GLOBAL binlog_format = 'ROW'", "binlog_format is `STATEMENT`"),
        ("SET GLOBAL binlog_format = 'MIXED'", "SET GLOBAL binlog_format = 'ROW'", "binlog_format is `MIXED`"),
        ("SET GLOBAL binlog_row_image = 'MINIMAL'", "SET GLOBAL binlog_row_image = 'FULL'", "binlog_row_image is `MINIMAL`"),
    ];
    if common::flavor().is_mysql() {
        settings.extend([
            ("SET GLOBAL binlog_row_value_options = 'PARTIAL_JSON'", "SET GLOBAL binlog_row_value_options = ''", "binlog_row_value_options is `PARTIAL_JSON`"),
            ("SET GLOBAL binlog_transaction_compression = ON", "SET GLOBAL binlog_transaction_compression = OFF", "binlog_transaction_compression is `ON`"),
        ]);
    } else {
        settings.push(("SET GLOBAL log_bin_compress = ON", "SET GLOBAL log_bin_compress = OFF", "log_bin_compress is `ON`"));
    }
    for (set, reset, needle) in settings {
        admin.query_drop(set).await.unwrap();
        let db = "binlog_settings";
        let result = std::panic::AssertUnwindSafe(expect_refusal(srv, Case { db, setup: &[TABLE], args: &[], code: 3, needle }));
        let result = futures_util::FutureExt::catch_unwind(result).await;
        admin.query_drop(reset).await.unwrap();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_log_off() {
    let srv = TestServer::start(&["--skip-log-bin"]);
    expect_refusal(&srv, Case { db: "nobinlog", setup: &[TABLE], args: &[], code: 3, needle: "log_bin is `OFF`" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initially_drop_flags_remove_leftovers_and_proceed() {
    let _shared = GLOBALS.read().await;
    let srv = server();
    let mut conn = srv.fresh_database("initially_drop").await;
    for sql in [
        TABLE,
        &format!("INSERT INTO t (id, a) SELECT seq, seq FROM {}", common::seq(1, 50)),
        "CREATE TABLE _t_gho (x INT PRIMARY KEY)",
        "CREATE TABLE _t_ghc (x INT PRIMARY KEY)",
        "CREATE TABLE _t_del (x INT PRIMARY KEY)",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let output = srv.alterego(&["--database", "initially_drop", "--table", "t", "--alter", "ADD z INT", "--execute", "--initially-drop-ghost-table", "--initially-drop-old-table"]);
    common::assert_success(&output);
    assert_eq!(common::tables(&mut conn).await, vec!["_t_del".to_string(), "t".to_string()]);
    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(50));
}

/// Under a server sql_mode with NO_ZERO_DATE a native ALTER that gives a column a zero-date
/// DEFAULT fails; so does the run (exit 3, naming --allow-zero-in-date), and with
/// --allow-zero-in-date it migrates, every row taking the zero date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_date_default_follows_the_servers_sql_mode() {
    let _exclusive = GLOBALS.write().await;
    let srv = server();
    let mut admin = srv.conn(None).await;
    let mode: Option<String> = admin.query_first("SELECT @@GLOBAL.sql_mode").await.unwrap();
    admin.query_drop("SET GLOBAL sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'").await.unwrap();
    let alter = "ADD COLUMN dt DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'";
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let mut conn = srv.fresh_database("zero_date").await;
        conn.query_drop("CREATE TABLE native (id INT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
        let native = conn.query_drop(format!("ALTER TABLE native {alter}")).await.unwrap_err();
        assert!(native.to_string().contains("Invalid default value for 'dt'"), "{native}");
        let setup = [TABLE, "INSERT INTO t (id, a) VALUES (1, 1), (2, 2)"];
        let stderr = expect_refusal(srv, Case { db: "zero_date", setup: &setup, args: &["--alter", alter], code: 3, needle: "Invalid default value for 'dt'" }).await;
        assert!(stderr.contains("--allow-zero-in-date"), "{stderr}");
        common::assert_success(&srv.alterego(&["--database", "zero_date", "--table", "t", "--alter", alter, "--execute", "--allow-zero-in-date"]));
        let zero: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t WHERE CAST(dt AS CHAR) = '0000-00-00 00:00:00'").await.unwrap();
        assert_eq!(zero, Some(2));
    }))
    .await;
    admin.exec_drop("SET GLOBAL sql_mode = ?", (mode,)).await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `--discard-foreign-keys` (gh-ost's): a table with a foreign key of its own migrates, the new
/// table without it; `--analyze-ghost-table-before-cutover` analyzes the new table first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_foreign_keys_migrates_without_them() {
    let _shared = GLOBALS.read().await;
    let srv = server();
    let mut conn = srv.fresh_database("discard_fk").await;
    conn.query_drop("CREATE TABLE p (id INT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    conn.query_drop("INSERT INTO p VALUES (1), (2)").await.unwrap();
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, pid INT, CONSTRAINT t_p FOREIGN KEY (pid) REFERENCES p (id)) ENGINE=InnoDB").await.unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, 1), (2, 2), (3, NULL)").await.unwrap();
    let output = srv.alterego(&["--database", "discard_fk", "--table", "t", "--alter", "ADD COLUMN z INT", "--execute", "--discard-foreign-keys", "--analyze-ghost-table-before-cutover"]);
    common::assert_success(&output);
    let stderr = common::stderr(&output);
    assert!(stderr.contains("the new table will not have the foreign keys t_p") && stderr.contains("analyzed `discard_fk`.`_t_gho` before the cut-over"), "{stderr}");
    let fks: Option<u64> = conn.query_first("SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'discard_fk' AND TABLE_NAME = 't'").await.unwrap();
    assert_eq!(fks, Some(0));
    let rows: Vec<(i32, Option<i32>)> = conn.query("SELECT id, pid FROM t ORDER BY id").await.unwrap();
    assert_eq!(rows, vec![(1, Some(1)), (2, Some(2)), (3, None)]);
}
