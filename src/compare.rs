//! Comparing rows of the shadow table with the original: the per-row text both sides are
//! reduced to, the comparison of chosen rows by key, and the record of the keys replayed since
//! the last point at which every row was compared.
//!
//! The verification compares every row at one consistent point. Every change replayed after
//! that point, the final ones replayed under the cut-over lock included, is recorded here by
//! its key ([`ChangedKeys`]), and those rows are compared again before the swap: at a new
//! consistent point while many have changed, and last under the cut-over lock, where nothing
//! can change any more. Invariant: no replayed change reaches the swapped table without its
//! row having been compared with the original's.

use std::collections::HashMap;
use std::sync::Mutex;

use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

use crate::error::{Context, Error, Result};
use crate::plan::{ColumnMapping, Plan};
use crate::sql::{any_key, format_key, quote_ident, Placeholder};

/// Keys per comparison statement.
const KEYS_PER_READ: usize = 100;

/// What a row is reduced to on each side, and the columns left out.
pub struct RowText {
    /// An expression of the original's columns.
    pub source: String,
    /// The same for the shadow's columns, equal to `source` for rows that hold the same values.
    pub target: String,
    /// Columns whose type the ALTER changes: their text cannot be compared.
    pub skipped: Vec<String>,
}

/// The per-row text over the copied columns. Text is compared in one character set so that
/// `CONVERT TO CHARACTER SET` does not count as a difference; NULLs are marked, since CONCAT_WS
/// skips them.
///
/// When binary strings sit beside text, or text of several character sets or collations, the
/// text is cast to its bytes, so that CONCAT_WS has no character set to choose: MariaDB may
/// convert the binary arguments to the text's character set (when every text argument has one
/// collation, as after `CONVERT TO ... COLLATE`), turning bytes that are not valid there into
/// `?`, on one side only; MySQL may pick the narrower character set of two (an `ascii_bin`
/// column beside a `utf8mb4_unicode_ci` one) and fail on the other's text (error 3854).
pub fn row_text(columns: &[ColumnMapping]) -> RowText {
    let (mut source, mut target, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let has_binary =
        columns.iter().any(|c| c.source.charset.is_none() && matches!(c.source.data_type.as_str(), "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" | "vector"));
    let text_kinds = |side: fn(&ColumnMapping) -> (&Option<String>, &Option<String>)| columns.iter().filter(|c| c.source.charset.is_some()).map(side).collect::<std::collections::HashSet<_>>().len();
    let mixed_text = text_kinds(|c| (&c.source.charset, &c.source.collation)) > 1 || text_kinds(|c| (&c.target_charset, &c.target_collation)) > 1;
    let as_bytes = has_binary || mixed_text;
    for c in columns {
        if !c.source.column_type.eq_ignore_ascii_case(&c.target_type) {
            skipped.push(c.source.name.clone());
            continue;
        }
        // Text in two character sets is compared in one; NULLs, which CONCAT_WS skips, are
        // marked where the original allows them. Each costs a function call per row and column.
        let converted = c.source.charset.is_some() && c.source.charset != c.target_charset;
        for (out, name) in [(&mut source, &c.source.name), (&mut target, &c.target)] {
            let q = quote_ident(name);
            let text = match (converted, c.source.data_type.as_str()) {
                (true, _) => format!("CONVERT({q} USING utf8mb4)"),
                // MySQL's CONCAT_WS takes no VECTOR (error 1210); its bytes are the value.
                (false, "vector") => format!("CAST({q} AS BINARY)"),
                (false, _) => q.clone(),
            };
            out.push(if as_bytes && c.source.charset.is_some() { format!("CAST({text} AS BINARY)") } else { text });
            if c.source.nullable {
                out.push(format!("ISNULL({q})"));
            }
        }
    }
    let concat = |exprs: &[String]| format!("CONCAT_WS('#', {})", exprs.join(", "));
    RowText { source: concat(&source), target: concat(&target), skipped }
}

/// The keys replayed onto the shadow since the last point at which every row was compared.
/// Not recording (`None`) until a verification makes such a point.
#[derive(Default)]
pub struct ChangedKeys {
    keys: Mutex<Option<HashMap<String, Vec<Value>>>>,
}

impl ChangedKeys {
    /// Starts a new record at a point where every row has been compared (or is about to be,
    /// at that point); returns the keys recorded before it.
    pub fn restart(&self) -> Vec<Vec<Value>> {
        let previous = self.keys.lock().expect("changed keys lock").replace(HashMap::new());
        previous.map(|keys| keys.into_values().collect()).unwrap_or_default()
    }

    /// Records keys just replayed, when recording.
    pub fn record(&self, keys: impl Iterator<Item = Vec<Value>>) {
        if let Some(recorded) = self.keys.lock().expect("changed keys lock").as_mut() {
            for key in keys {
                recorded.entry(format_key(&key)).or_insert(key);
            }
        }
    }

    /// How many keys are recorded.
    pub fn len(&self) -> usize {
        self.keys.lock().expect("changed keys lock").as_ref().map_or(0, HashMap::len)
    }

    /// The recorded keys (kept recorded), or `None` when nothing records them: no verification
    /// ran (`--skip-checksum`).
    pub fn recorded(&self) -> Option<Vec<Vec<Value>>> {
        self.keys.lock().expect("changed keys lock").as_ref().map(|keys| keys.values().cloned().collect())
    }
}

/// Where the two sides of a comparison are read: one session that sees both tables (a
/// consistent snapshot, or one holding both locked), or one per table.
pub enum Readers<'a> {
    One(&'a mut Conn),
    Two { original: &'a mut Conn, shadow: &'a mut Conn },
}

/// The keys among `keys` whose rows differ between the original and the shadow (a row on one
/// side only counts), read through `readers`.
pub async fn differing_keys(readers: Readers<'_>, plan: &Plan, keys: &[Vec<Value>]) -> Result<Vec<Vec<Value>>> {
    let (first, mut second) = match readers {
        Readers::One(conn) => (conn, None),
        Readers::Two { original, shadow } => (original, Some(shadow)),
    };
    let text = row_text(&plan.columns);
    let names = &plan.names;
    let original = Side { table: names.q(&names.original), row: &text.source, key: &plan.key_source };
    let shadow = Side { table: names.q(&names.shadow), row: &text.target, key: &plan.key_target };
    let placeholders = plan.key_placeholders();
    let mut differing = Vec::new();
    for batch in keys.chunks(KEYS_PER_READ) {
        let a = original.digests(first, &placeholders, batch).await?;
        let b = shadow.digests(second.as_deref_mut().unwrap_or(&mut *first), &placeholders, batch).await?;
        if a == b {
            continue;
        }
        // Narrowed down to the rows, to name them.
        for key in batch {
            let one = std::slice::from_ref(key);
            let a = original.digests(first, &placeholders, one).await?;
            if a != shadow.digests(second.as_deref_mut().unwrap_or(&mut *first), &placeholders, one).await? {
                differing.push(key.clone());
            }
        }
    }
    Ok(differing)
}

/// One table of a comparison.
struct Side<'a> {
    table: String,
    row: &'a str,
    key: &'a [String],
}

impl Side<'_> {
    /// The sorted digests of the rows with these keys. Sorted, because under a collation that
    /// folds case a key may find its row spelled differently on each side.
    async fn digests(&self, conn: &mut Conn, placeholders: &[Placeholder], keys: &[Vec<Value>]) -> Result<Vec<String>> {
        let sql = format!("SELECT SHA2({}, 256) FROM {} WHERE {}", self.row, self.table, any_key(self.key, placeholders, keys.len()));
        let params: Vec<Value> = keys.iter().flat_map(|key| placeholders.iter().zip(key).map(|(p, v)| p.bind(v))).collect();
        let mut digests: Vec<Option<String>> = conn.exec(sql, params).await.context(|| format!("comparing changed rows of {}", self.table))?;
        digests.sort();
        Ok(digests.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// The failure for replayed rows that differ from the original's, naming up to twenty keys;
/// `when` says where they were compared.
pub fn mismatch(keys: &[Vec<Value>], when: &str) -> Error {
    let named: Vec<String> = keys.iter().take(20).map(|k| format_key(k)).collect();
    Error::failed(format!(
        "rows replayed after the verification do not match the original ({when}): {} row(s) differ between the shadow and the original; keys: {}{}; the tables were not swapped",
        keys.len(),
        named.join(", "),
        if keys.len() > 20 { ", ..." } else { "" }
    ))
    .with_fix("something changes the shadow table's rows behind alterego (a trigger or another writer on it), or alterego replayed them wrongly: look for other writers to the shadow table, and report it if there are none")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::Column;

    fn mapping(source: &str, target: &str, source_type: &str, target_type: &str, charset: Option<&str>) -> ColumnMapping {
        let column = Column {
            name: source.into(),
            ordinal: 0,
            data_type: source_type.split('(').next().unwrap().into(),
            column_type: source_type.into(),
            nullable: true,
            charset: charset.map(String::from),
            collation: None,
            generated: false,
            has_default: false,
            auto_increment: false,
        };
        ColumnMapping { source: column, target: target.into(), target_type: target_type.into(), target_charset: Some("utf8mb4".into()).filter(|_| charset.is_some()), target_collation: None }
    }

    #[test]
    fn row_text_covers_renames_and_charsets_but_not_type_changes() {
        let text = row_text(&[mapping("id", "id", "int(11)", "int(11)", None), mapping("b", "b2", "varchar(10)", "varchar(10)", Some("latin1")), mapping("n", "n", "int(11)", "bigint(20)", None)]);
        assert_eq!(text.source, "CONCAT_WS('#', `id`, ISNULL(`id`), CONVERT(`b` USING utf8mb4), ISNULL(`b`))");
        assert!(text.target.contains("CONVERT(`b2` USING utf8mb4)"));
        assert_eq!(text.skipped, vec!["n".to_string()]);
    }

    #[test]
    fn row_text_keeps_binary_bytes_beside_text() {
        let mut blob = mapping("v", "v", "varbinary(8)", "varbinary(8)", None);
        blob.source.data_type = "varbinary".into();
        let text = row_text(&[mapping("b", "b", "varchar(10)", "varchar(10)", Some("latin1")), blob]);
        assert!(text.source.contains("CAST(CONVERT(`b` USING utf8mb4) AS BINARY)") && text.source.contains(", `v`,"), "{}", text.source);
        assert!(text.target.contains("CAST(CONVERT(`b` USING utf8mb4) AS BINARY)"), "{}", text.target);
    }

    #[test]
    fn row_text_takes_text_of_several_character_sets_as_bytes() {
        let mut ascii = mapping("a", "a", "varchar(10)", "varchar(10)", Some("ascii"));
        ascii.target_charset = Some("ascii".into());
        let text = row_text(&[ascii, mapping("u", "u", "varchar(10)", "varchar(10)", Some("utf8mb4"))]);
        assert_eq!(text.source, "CONCAT_WS('#', CAST(`a` AS BINARY), ISNULL(`a`), CAST(`u` AS BINARY), ISNULL(`u`))");
        let one = row_text(&[mapping("u", "u", "varchar(10)", "varchar(10)", Some("utf8mb4")), mapping("v", "v", "text", "text", Some("utf8mb4"))]);
        assert_eq!(one.source, "CONCAT_WS('#', `u`, ISNULL(`u`), `v`, ISNULL(`v`))", "one character set and collation: no casts");
    }

    #[test]
    fn row_text_takes_a_vector_as_its_bytes() {
        let mut vector = mapping("v", "v", "vector(3)", "vector(3)", None);
        vector.source.data_type = "vector".into();
        assert_eq!(row_text(&[vector]).source, "CONCAT_WS('#', CAST(`v` AS BINARY), ISNULL(`v`))");
    }

    #[test]
    fn row_text_spends_nothing_on_what_cannot_differ() {
        let mut same_charset = mapping("c", "c", "char(10)", "char(10)", Some("utf8mb4"));
        same_charset.source.nullable = false;
        assert_eq!(row_text(&[same_charset]).source, "CONCAT_WS('#', `c`)", "no CONVERT within one character set, no ISNULL for NOT NULL");
    }

    #[test]
    fn changed_keys_are_recorded_once_and_only_after_a_restart() {
        let changed = ChangedKeys::default();
        changed.record([vec![Value::Int(1)]].into_iter());
        assert_eq!(changed.recorded(), None, "nothing records before the first comparison point");
        assert!(changed.restart().is_empty());
        changed.record([vec![Value::Int(1)], vec![Value::Int(2)], vec![Value::Int(1)]].into_iter());
        assert_eq!(changed.len(), 2);
        let mut before = changed.restart();
        before.sort_by_key(|k| format_key(k));
        assert_eq!(before, vec![vec![Value::Int(1)], vec![Value::Int(2)]]);
        assert_eq!(changed.recorded(), Some(Vec::new()));
    }
}
