//! The key guard: how a row image is written to the shadow table without ever overwriting a
//! different row, and how the errors it raises are told apart. Shared by the copy and the
//! applier, which both upsert row images.
//!
//! Invariant: a duplicate on the chosen key is the same row arriving again and is overwritten;
//! a duplicate on any other unique key is an error (never a merge), which [`is_collision`]
//! recognizes.

use crate::error::{codes, Error};
use crate::sql::{column_list, quote_ident, Placeholder};

/// The key guard's value for a numeric or temporal key column: a string no such column takes.
pub const COLLISION_MARKER: &str = "alterego: rows collide";

/// How the key guard of [`upsert_clause`] makes a collision fail on one key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// NULL, which a NOT NULL column refuses in strict mode (error 1048).
    Null,
    /// [`COLLISION_MARKER`], which numeric and temporal columns refuse (errors 1366, 1292, the
    /// marker quoted). Such columns may take NULL silently in an UPDATE: an AUTO_INCREMENT
    /// column turns it into 0, a TIMESTAMP without explicit defaults into the current time,
    /// either of which would merge two rows.
    Marker,
}

impl Guard {
    /// The guard for a column of `data_type` (`int`, `varchar`...).
    pub fn for_type(data_type: &str) -> Guard {
        const NUMERIC_OR_TEMPORAL: &[&str] = &["tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "date", "datetime", "timestamp", "time", "year"];
        if NUMERIC_OR_TEMPORAL.iter().any(|t| data_type.eq_ignore_ascii_case(t)) {
            Guard::Marker
        } else {
            Guard::Null
        }
    }

    fn value(self) -> String {
        match self {
            Guard::Null => "NULL".into(),
            Guard::Marker => format!("'{COLLISION_MARKER}'"),
        }
    }
}

/// The ON DUPLICATE KEY UPDATE clause shared by copy and apply, for the chosen key's columns
/// and their guards.
///
/// A duplicate on the chosen key is the same row arriving again: its columns are overwritten.
/// A duplicate on any *other* unique key is two different rows colliding: the guard assigns a
/// key column a value it refuses in strict mode (see [`Guard`]), an error instead of merging
/// the two rows (what `REPLACE` or a plain upsert would silently do). The guards come first
/// because MySQL evaluates the assignments left to right. Existing values are qualified with
/// `table` so that an `INSERT ... SELECT` from a table with the same column names is not
/// ambiguous.
pub fn upsert_clause(table: &str, key: &[(String, Guard)], columns: &[String]) -> String {
    let same_key = key.iter().map(|(k, _)| format!("BINARY {table}.{q} <=> BINARY VALUES({q})", q = quote_ident(k))).collect::<Vec<_>>().join(" AND ");
    let guards = key.iter().map(|(k, guard)| format!("{q} = IF({same_key}, {table}.{q}, {})", guard.value(), q = quote_ident(k)));
    let sets = columns.iter().filter(|c| !key.iter().any(|(k, _)| k == *c)).map(|c| format!("{q} = VALUES({q})", q = quote_ident(c)));
    format!("ON DUPLICATE KEY UPDATE {}", guards.chain(sets).collect::<Vec<_>>().join(", "))
}

/// Multi-row upsert of row images: `INSERT INTO t (cols) VALUES (...), (...) ON DUPLICATE ...`.
pub fn upsert_rows(table: &str, columns: &[String], placeholders: &[Placeholder], key: &[(String, Guard)], rows: usize) -> String {
    let one = format!("({})", placeholders.iter().map(Placeholder::expr).collect::<Vec<_>>().join(", "));
    upsert_tuples(table, columns, &vec![one; rows], key)
}

/// Multi-row upsert of the given row tuples, each `(expr, ...)` over `columns`.
pub fn upsert_tuples(table: &str, columns: &[String], tuples: &[String], key: &[(String, Guard)]) -> String {
    format!("INSERT INTO {table} ({}) VALUES {} {}", column_list(columns), tuples.join(", "), upsert_clause(table, key, columns))
}

/// Whether an error is two different rows colliding: a duplicate entry, or the key guard of
/// `guard::upsert_clause` (error 1048 on a key column, or the guard's marker refused). Error 1048
/// on another column is a NULL that a NOT NULL column of the new table cannot take.
pub fn is_collision(error: &Error, key: &[String]) -> bool {
    error.server_code().is_some_and(|code| collides(code, &error.message, key))
}

/// Whether a server error (code and message) is two different rows colliding.
pub fn collides(code: u16, message: &str, key: &[String]) -> bool {
    if message.contains(COLLISION_MARKER) {
        return true;
    }
    match code {
        codes::DUPLICATE_KEY => true,
        codes::BAD_NULL => null_column(message).is_some_and(|c| key.iter().any(|k| k.eq_ignore_ascii_case(&c))),
        _ => false,
    }
}

/// The column of a "Column 'x' cannot be null" message.
fn null_column(message: &str) -> Option<String> {
    let start = message.find("Column '")? + 8;
    let end = message[start..].find("' cannot be null")? + start;
    Some(message[start..end].to_string())
}

/// Whether a duplicate-entry message is about index `name`: MariaDB writes `for key 'name'`,
/// MySQL 8 `for key 'table.name'`.
pub fn names_index(message: &str, name: &str) -> bool {
    message.contains(&format!("for key '{name}'")) || message.contains(&format!(".{name}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn upsert_guards_other_unique_keys() {
        let sql = upsert_rows("`t`", &s(&["id", "v"]), &[Placeholder::Plain, Placeholder::Hex("latin1".into())], &[("id".into(), Guard::Null)], 2);
        assert_eq!(
            sql,
            "INSERT INTO `t` (`id`, `v`) VALUES (?, CONVERT(UNHEX(?) USING latin1)), (?, CONVERT(UNHEX(?) USING latin1)) \
             ON DUPLICATE KEY UPDATE `id` = IF(BINARY `t`.`id` <=> BINARY VALUES(`id`), `t`.`id`, NULL), `v` = VALUES(`v`)"
        );
        let auto_increment = upsert_rows("`t`", &s(&["id"]), &[Placeholder::Plain], &[("id".into(), Guard::for_type("bigint"))], 1);
        assert!(auto_increment.ends_with("`id` = IF(BINARY `t`.`id` <=> BINARY VALUES(`id`), `t`.`id`, 'alterego: rows collide')"), "{auto_increment}");
        assert_eq!((Guard::for_type("timestamp"), Guard::for_type("varchar"), Guard::for_type("enum")), (Guard::Marker, Guard::Null, Guard::Null));
    }

    #[test]
    fn tells_collisions_from_null_violations() {
        let key = vec!["id".to_string()];
        let server = |code: u16, text: &str| Error::failed(format!("ERROR {code} (23000): {text}")).with_code(Some(code));
        assert!(is_collision(&server(1048, "Column 'id' cannot be null"), &key));
        assert!(!is_collision(&server(1048, "Column 'note' cannot be null"), &key));
        assert!(is_collision(&server(1062, "Duplicate entry 'x' for key 'u'"), &key));
        assert!(!is_collision(&server(1406, "Data too long for column 'b'"), &key));
        assert!(is_collision(&server(1366, "Incorrect integer value: 'alterego: rows collide' for column `d`.`t`.`id` at row 1"), &key));
        assert!(!is_collision(&Error::failed("ERROR 1062 (23000): Duplicate entry, as text only"), &key), "the number comes from the driver");
    }

    #[test]
    fn duplicate_messages_name_their_index() {
        assert!(names_index("Duplicate entry '5' for key 'PRIMARY'", "PRIMARY"));
        assert!(names_index("Duplicate entry '5' for key 't.PRIMARY'", "PRIMARY"));
        assert!(!names_index("Duplicate entry '5' for key 'uk'", "PRIMARY"));
    }
}
