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
