//! SQL text building: quoted identifiers, key-range predicates, and the statements the copy,
//! apply and cut-over stages send.
//!
//! Invariants: every identifier is quoted with `quote_ident`; every value is a `?` placeholder
//! bound by the caller, in the order the builder documents. Nothing here talks to a server, so
//! all of it is unit-tested.

/// Quotes an identifier with backticks, doubling any backtick inside it.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(table))
}

/// `a`, `b`, `c`
pub fn column_list<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| quote_ident(n.as_ref())).collect::<Vec<_>>().join(", ")
}

/// How a value taken from a binlog row image is bound. Strings arrive as raw bytes in the
/// column's own character set. UTF-8 ones can be bound as they are (the connection speaks
/// utf8mb4); any other character set would fail the server's UTF-8 check on the way in, so such
/// bytes travel hex-encoded and are re-labelled with their real character set by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Plain,
    Hex(String),
    /// Bytes the column takes only as a binary string: MySQL's VECTOR refuses a text parameter
    /// (error 6136).
    Binary,
}

impl Placeholder {
    pub fn expr(&self) -> String {
        match self {
            Placeholder::Plain => "?".to_string(),
            Placeholder::Hex(cs) => format!("CONVERT(UNHEX(?) USING {cs})"),
            Placeholder::Binary => "CAST(? AS BINARY)".to_string(),
        }
    }

    /// The value to bind for this placeholder.
    pub fn bind(&self, value: &mysql_async::Value) -> mysql_async::Value {
        match (self, value) {
            (Placeholder::Hex(_), mysql_async::Value::Bytes(bytes)) => mysql_async::Value::Bytes(hex::encode(bytes).into_bytes()),
            _ => value.clone(),
        }
    }
}

/// A key tuple for people: `(1, 'abc')`.
pub fn format_key(values: &[mysql_async::Value]) -> String {
    format!("({})", values.iter().map(|v| v.as_sql(false)).collect::<Vec<_>>().join(", "))
}

/// `(k1 > ? OR (k1 = ? AND k2 > ?))`: rows strictly after a key tuple, in index order.
/// Bind order: see [`tuple_compare_params`]. Written as ORs of equalities rather than a row
/// constructor so that every supported server turns it into index ranges.
pub fn tuple_after(key: &[String], exprs: &[String]) -> String {
    tuple_compare(key, exprs, ">", ">")
}

/// `(k1 < ? OR (k1 = ? AND k2 <= ?))`: rows up to and including a key tuple.
pub fn tuple_up_to(key: &[String], exprs: &[String]) -> String {
    tuple_compare(key, exprs, "<", "<=")
}

fn tuple_compare(key: &[String], exprs: &[String], strict: &str, last: &str) -> String {
    let mut terms = Vec::with_capacity(key.len());
    for i in 0..key.len() {
        let mut parts: Vec<String> = (0..i).map(|j| format!("{} = {}", quote_ident(&key[j]), exprs[j])).collect();
        let op = if i + 1 == key.len() { last } else { strict };
        parts.push(format!("{} {} {}", quote_ident(&key[i]), op, exprs[i]));
        terms.push(if parts.len() == 1 { parts.remove(0) } else { format!("({})", parts.join(" AND ")) });
    }
    format!("({})", terms.join(" OR "))
}

/// The parameter list for a `tuple_after`/`tuple_up_to` predicate: term `i` binds values `0..=i`.
pub fn tuple_compare_params<T: Clone>(values: &[T]) -> Vec<T> {
    (0..values.len()).flat_map(|i| values[..=i].iter().cloned()).collect()
}

/// `k1 = ? AND k2 = ?`
pub fn key_equals(key: &[String], exprs: &[String]) -> String {
    key.iter().zip(exprs).map(|(k, e)| format!("{} = {}", quote_ident(k), e)).collect::<Vec<_>>().join(" AND ")
}

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

/// Deletes rows by key: `DELETE FROM t WHERE (k = ?) OR (k = ?)`.
pub fn delete_rows(table: &str, key: &[String], placeholders: &[Placeholder], rows: usize) -> String {
    format!("DELETE FROM {table} WHERE {}", any_key(key, placeholders, rows))
}

/// `(k1 = ? AND k2 = ?) OR (...)`: rows with any of `rows` keys, each bound through the key's
/// placeholders.
pub fn any_key(key: &[String], placeholders: &[Placeholder], rows: usize) -> String {
    let exprs: Vec<String> = placeholders.iter().map(Placeholder::expr).collect();
    vec![format!("({})", key_equals(key, &exprs)); rows].join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_keys_for_people() {
        assert_eq!(format_key(&[mysql_async::Value::Int(1), mysql_async::Value::Bytes(b"a'b".to_vec())]), "(1, 'a\\'b')");
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn quotes_backticks_and_unicode() {
        assert_eq!(quote_ident("order"), "`order`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("naïve col"), "`naïve col`");
        assert_eq!(qualified("d b", "t"), "`d b`.`t`");
    }

    #[test]
    fn tuple_predicates_expand_composite_keys() {
        let q = s(&["?", "?", "?"]);
        assert_eq!(tuple_after(&s(&["a"]), &q[..1]), "(`a` > ?)");
        assert_eq!(tuple_after(&s(&["a", "b", "c"]), &q), "(`a` > ? OR (`a` = ? AND `b` > ?) OR (`a` = ? AND `b` = ? AND `c` > ?))");
        assert_eq!(tuple_up_to(&s(&["a", "b"]), &q[..2]), "(`a` < ? OR (`a` = ? AND `b` <= ?))");
        assert_eq!(tuple_compare_params(&[1, 2, 3]), vec![1, 1, 2, 1, 2, 3]);
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
    fn hex_placeholders_bind_hex_text() {
        use mysql_async::Value;
        let hex = Placeholder::Hex("latin1".into());
        assert_eq!(hex.bind(&Value::Bytes(vec![0xF1, 0x00])), Value::Bytes(b"f100".to_vec()));
        assert_eq!(hex.bind(&Value::NULL), Value::NULL);
        assert_eq!(Placeholder::Plain.bind(&Value::Bytes(vec![0xF1])), Value::Bytes(vec![0xF1]));
    }

    #[test]
    fn delete_by_composite_key() {
        let sql = delete_rows("`t`", &s(&["a", "b"]), &[Placeholder::Plain, Placeholder::Plain], 2);
        assert_eq!(sql, "DELETE FROM `t` WHERE (`a` = ? AND `b` = ?) OR (`a` = ? AND `b` = ?)");
    }
}
