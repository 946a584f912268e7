//! The guards against lost rows: verification finds a shadow row changed behind the tool's
//! back, and an ALTER that cannot hold every row (duplicates under a new unique index, a
//! narrower type, fewer ENUM members, NOT NULL over NULLs) fails before the swap naming the
//! offending key. In every case the original is untouched and nothing is left behind.

mod common;

use std::time::{Duration, Instant};

use common::hooks::{holding_hook, temp_path};
use common::{rows, server, tables};
use mysql_async::prelude::*;

/// Starts a migration of a 40,000-row table in small chunks and waits until the shadow exists.
async fn start_slow_copy(db: &str) -> (mysql_async::Conn, std::process::Child) {
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10)) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq, 'x' FROM {}", common::seq(1, 40000))).await.unwrap();
    let mut child = srv
        .alterego_command(&["--database", db, "--table", "t", "--alter", "ADD COLUMN c INT", "--execute", "--chunk-size", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tables(&mut conn).await.contains(&"_t_gho".to_string()) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the shadow table never appeared");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (conn, child)
}

/// Starts a migration of `db`.`t` that its `stage` hook holds, and waits until it is held
/// there; removing the returned file lets it go on.
async fn held_in_hook(db: &str, alter: &str, stage: &str) -> (std::process::Child, std::path::PathBuf) {
    let (reached, hold) = (temp_path(&format!("{db}-reached")), temp_path(&format!("{db}-hold")));
    let hooks = holding_hook(&format!("{db}-hooks"), stage, &reached, &hold);
    let mut child = server()
        .alterego_command(&["--database", db, "--table", "t", "--alter", alter, "--execute", "--hooks-path", hooks.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached.exists() {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the run never reached its {stage} hook");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (child, hold)
}

/// A shadow row changed behind alterego's back is found by the verification, copied again,
/// and the result is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_shadow_row_is_found_and_copied_again() {
    let (mut conn, mut child) = start_slow_copy("corrupt").await;
    let before = rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied: Option<u64> = conn.query_first("SELECT COUNT(*) FROM _t_gho WHERE id = 100").await.unwrap_or(None);
        if copied == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the copy never reached id 100");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.query_drop("UPDATE _t_gho SET b = 'corrupt' WHERE id = 42").await.unwrap();
    conn.query_drop("DELETE FROM _t_gho WHERE id = 77").await.unwrap();
    conn.query_drop("INSERT INTO _t_gho (id, a, b) VALUES (-5, 0, 'extra')").await.unwrap();
    assert!(child.try_wait().unwrap().is_none(), "the migration finished before the corruption");
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("key ranges differ between the shadow and the original (the first: the shadow table differs from the original in the range of keys after the start up to"), "{stderr}");
    assert!(stderr.contains("copied again after a difference"), "{stderr}");
    assert_eq!(rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id").await, before, "the repaired table differs from the original");
}

/// A shadow row that something keeps changing (here a trigger) fails the run after the passes,
/// naming the range, with nothing swapped and nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistently_corrupted_shadow_fails_before_the_swap() {
    let (mut conn, child) = start_slow_copy("corrupt_always").await;
    let before = rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await;
    for event in ["INSERT", "UPDATE"] {
        conn.query_drop(format!("CREATE TRIGGER corrupt_{event} BEFORE {event} ON _t_gho FOR EACH ROW SET NEW.b = IF(NEW.id = 42, 'corrupt', NEW.b)")).await.unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("verification failed after 3 passes") && stderr.contains("keys after the start up to"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await, before);
}

/// Runs a lossy ALTER on a 2,000-row table with one offending row and checks the failure.
async fn lossy(db: &str, setup: &[&str], alter: &str, key: &str, reason: &str) {
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(20), e ENUM('a','b','c') NOT NULL DEFAULT 'a') ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t (id, a, b) SELECT seq, seq, CONCAT('v', seq % 7) FROM {}", common::seq(1, 2000))).await.unwrap();
    for sql in setup {
        conn.query_drop(*sql).await.unwrap();
    }
    let before = rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await;
    let output = srv.alterego(&["--database", db, "--table", "t", "--alter", alter, "--execute", "--chunk-size", "500"]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the row with key ({key})")) && stderr.contains(reason), "expected key ({key}) and `{reason}` in:\n{stderr}");
    assert!(stderr.contains("the original table is untouched"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "CHECKSUM TABLE t EXTENDED").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_unique_index_over_duplicates() {
    // MySQL names the key with its table.
    let reason = if common::flavor().is_mysql() { "Duplicate entry '20' for key '_t_gho.ua'" } else { "Duplicate entry '20' for key 'ua'" };
    lossy("dup", &["UPDATE t SET a = 20 WHERE id = 1150"], "ADD UNIQUE INDEX ua (a)", "1150", reason).await;
}

/// A change replayed after the copy that collides with another row on a new unique index
/// (like gh-ost's `panic-on-warnings-update-pk-with-duplicate-on-new-unique-index`: row 2 moved
/// to a new id with row 1's email) fails the run naming its key, also when the key is AUTO_INCREMENT:
/// such a column takes the key guard's NULL as 0 in an UPDATE, which merged the two rows into
/// row 0 before the guard gave it a value it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_change_colliding_on_a_new_unique_index_names_its_key() {
    let db = "replayed_dup";
    let srv = server();
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, email VARCHAR(40) NOT NULL) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t (email) SELECT CONCAT('e', seq) FROM {}", common::seq(1, 3000))).await.unwrap();
    let (child, hold) = held_in_hook(db, "ADD UNIQUE KEY ue (email)", "on-before-cut-over").await;
    conn.query_drop("UPDATE t SET id = 5000, email = 'e1' WHERE id = 2").await.unwrap();
    let expected = rows(&mut conn, "SELECT id, email FROM t ORDER BY id").await;
    std::fs::remove_file(&hold).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a replayed change collides with a different row on a unique key of the new table (rows with key (5000))"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "{stderr}");
    assert_eq!(rows(&mut conn, "SELECT id, email FROM t ORDER BY id").await, expected, "the original table changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrower_varchar() {
    // MySQL's INSERT ... SELECT says "Data truncated" (1265) where a plain INSERT says "Data too long".
    let reason = if common::flavor().is_mysql() { "Data truncated for column 'b'" } else { "Data too long for column 'b'" };
    lossy("narrow", &["UPDATE t SET b = 'far too long' WHERE id = 77"], "MODIFY b VARCHAR(3)", "77", reason).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_overflow() {
    lossy("overflow", &["UPDATE t SET a = id % 100", "UPDATE t SET a = 300 WHERE id = 1999"], "MODIFY a TINYINT NOT NULL", "1999", "Out of range value for column 'a'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_member_in_use_dropped() {
    lossy("enums", &["UPDATE t SET e = 'c' WHERE id = 9"], "MODIFY e ENUM('a','b') NOT NULL DEFAULT 'a'", "9", "Data truncated for column 'e'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_null_over_nulls() {
    lossy("nulls", &["UPDATE t SET b = NULL WHERE id = 33"], "MODIFY b VARCHAR(20) NOT NULL", "33", "Column 'b' cannot be null").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_instant_ddl_takes_the_instant_path_where_allowed() {
    let srv = server();
    let mut conn = common::small_table("instant", 1000).await;
    let output = srv.alterego(&["--database", "instant", "--table", "t", "--alter", "ADD COLUMN b INT DEFAULT 7", "--execute", "--attempt-instant-ddl"]);
    common::assert_success(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("ALGORITHM=INSTANT: no copy was needed"));
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()], "no shadow, changelog or old table");
    let sevens: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t WHERE b = 7").await.unwrap();
    assert_eq!(sevens, Some(1000));

    // Adding an index cannot be instant: the online copy runs instead.
    let output = srv.alterego(&["--database", "instant", "--table", "t", "--alter", "ADD INDEX ia (a)", "--execute", "--attempt-instant-ddl"]);
    common::assert_success(&output);
    let stderr = common::stderr(&output);
    assert!(stderr.contains("cannot run instantly") && String::from_utf8_lossy(&output.stdout).contains("Migrated"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["_t_del".to_string(), "t".to_string()]);
}

/// DDL on other objects named like the table (an event, a view's column, another table's
/// column, a procedure) does not stop a run; an ALTER of the table itself does, with exit 1 and
/// nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ddl_on_the_table_stops_the_run() {
    let (mut conn, mut child) = start_slow_copy("otherddl").await;
    for statement in [
        "CREATE EVENT t ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t",
        "ALTER EVENT t DISABLE",
        "DROP EVENT IF EXISTS t",
        "CREATE VIEW t_v AS SELECT id AS t FROM t",
        "DROP VIEW t_v",
        "CREATE TABLE customers (id INT PRIMARY KEY) ENGINE=InnoDB",
        "ALTER TABLE customers ADD COLUMN t INT",
        "CREATE INDEX t ON customers (t)",
        "CREATE PROCEDURE t() SELECT COUNT(*) FROM t",
        "DROP PROCEDURE t",
    ] {
        conn.query_drop(statement).await.unwrap();
    }
    assert!(child.try_wait().unwrap().is_none(), "the run ended before the DDL was done");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));

    // During the copy: the binlog reader meets the ALTER.
    let (mut conn, child) = start_slow_copy("tableddl").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while conn.query_first::<u64, _>("SELECT COUNT(*) FROM _t_gho").await.unwrap().unwrap_or(0) < 1000 {
        assert!(Instant::now() < deadline, "the copy never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.query_drop("ALTER TABLE t ADD COLUMN z INT").await.unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the original table was changed by DDL during the migration: ALTER TABLE t ADD COLUMN z INT"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);

    // After the shadow was made from the table's definition, before the reader starts (the run
    // held in its on-validated hook): the definition shows it.
    let srv = server();
    let mut conn = srv.fresh_database("earlyddl").await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", common::seq(1, 100))).await.unwrap();
    let (child, hold) = held_in_hook("earlyddl", "ADD COLUMN c INT", "on-validated").await;
    conn.query_drop("ALTER TABLE t ADD COLUMN z INT").await.unwrap();
    std::fs::remove_file(&hold).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the original table was changed by DDL during the migration, after alterego read its definition"), "{stderr}");
    assert_eq!(tables(&mut conn).await, vec!["t".to_string()]);
}
