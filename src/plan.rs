//! The ALTER understood: shadow and helper table names, which old column feeds which new one,
//! and the unique key shared by both schemas that the copy walks and the applier addresses rows by.
//!
//! Invariants: only columns present (possibly renamed) in both schemas and not generated are
//! copied; the chosen key is unique and NOT NULL in *both* tables, so a key identifies one row
//! on either side; a new NOT NULL column without a default is refused, since strict mode could
//! not fill it.

use crate::alter::AlterSummary;
use crate::error::{Error, Result};
use crate::guard::Guard;
use crate::inspect::{Column, TableInfo};
use crate::sql::{qualified, Placeholder};

/// Names of the tables a migration of `table` uses, gh-ost style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub database: String,
    pub original: String,
    pub shadow: String,
    pub changelog: String,
    /// The finished copy chunks (see `checkpoint`).
    pub checkpoint: String,
    pub old: String,
    /// What the helper tables are named after: the table, or gh-ost's `--force-table-names`.
    pub helper_base: String,
}

impl TableNames {
    /// The names for `table`, its helper tables named after it (the tests' shorthand for
    /// [`TableNames::named_after`]).
    #[cfg(test)]
    pub fn new(database: &str, table: &str) -> Result<TableNames> {
        TableNames::named_after(database, table, table)
    }

    /// The names, with the helper tables named after `base` (`_<base>_gho`...) rather than the
    /// table (gh-ost's `--force-table-names`).
    pub fn named_after(database: &str, table: &str, base: &str) -> Result<TableNames> {
        if base.chars().count() + 5 > 64 {
            return Err(Error::refused(
                format!("table name `{base}` is too long for the helper tables: the shadow table `_{base}_gho` would exceed MySQL's 64-character limit"),
                "name the helper tables after something of 59 characters or fewer with --force-table-names, or rename the table first",
            ));
        }
        Ok(TableNames {
            database: database.into(),
            original: table.into(),
            shadow: format!("_{base}_gho"),
            changelog: format!("_{base}_ghc"),
            checkpoint: format!("_{base}_ghk"),
            old: format!("_{base}_del"),
            helper_base: base.into(),
        })
    }

    /// gh-ost's `--timestamp-old-table`: the old table becomes `_<table>_<timestamp>_del`, so
    /// that each migration's old table has a name of its own.
    pub fn with_timestamped_old(mut self, timestamp: &str) -> Result<TableNames> {
        let old = format!("_{}_{timestamp}_del", self.helper_base);
        if old.chars().count() > 64 {
            return Err(Error::refused(
                format!("table name `{}` is too long for --timestamp-old-table: `{old}` would exceed MySQL's 64-character limit", self.original),
                "run without --timestamp-old-table (the old table is then `_<table>_del`)",
            ));
        }
        self.old = old;
        Ok(self)
    }

    pub fn q(&self, table: &str) -> String {
        qualified(&self.database, table)
    }
}

/// One copied column: where it comes from and where it goes.
#[derive(Debug, Clone)]
pub struct ColumnMapping {
    pub source: Column,
    pub target: String,
    /// The new column's full type, e.g. `bigint(20)`.
    pub target_type: String,
    /// Character set of the new column, if text.
    pub target_charset: Option<String>,
    /// Collation of the new column, if text.
    pub target_collation: Option<String>,
}

impl ColumnMapping {
    /// How a binlog value of this column is bound (see [`Placeholder`]). ENUM and SET values
    /// are bound as member names, which come from the server in UTF-8.
    pub fn placeholder(&self) -> Placeholder {
        let text = matches!(self.source.data_type.as_str(), "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json");
        match &self.source.charset {
            Some(cs) if text && !cs.starts_with("utf8") => Placeholder::Hex(cs.clone()),
            _ if self.source.data_type == "vector" => Placeholder::Binary,
            _ => Placeholder::Plain,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub names: TableNames,
    pub columns: Vec<ColumnMapping>,
    /// Name of the chosen key in the original table (used with FORCE INDEX).
    pub key_name: String,
    /// Chosen key columns, original names, in index order.
    pub key_source: Vec<String>,
    /// The same key columns under their names in the new table.
    pub key_target: Vec<String>,
    /// Name of the matching unique key in the new table.
    pub shadow_key_name: String,
    /// The new table's key holds more columns than the chosen key (`PRIMARY KEY (id)` becoming
    /// `(id, i)`): the chosen key stays unique there only because it is in the original, and an
    /// upsert matches an existing row only when the extra columns are equal too. So a replayed
    /// image first deletes the rows with its key (see `apply`).
    pub shadow_key_widens: bool,
    /// Positions of the key columns within `columns`.
    pub key_positions: Vec<usize>,
    pub shadow_ddl: String,
    /// Unique indexes (target columns) on which a collision can only be transient: see
    /// [`unique_in_both`].
    pub unique_in_both: Vec<Vec<String>>,
}

impl Plan {
    pub fn source_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.source.name.clone()).collect()
    }

    pub fn target_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.target.clone()).collect()
    }

    pub fn placeholders(&self) -> Vec<Placeholder> {
        self.columns.iter().map(ColumnMapping::placeholder).collect()
    }

    /// Whether the chosen key sorts the same way in both tables: its columns keep their types
    /// and collations. When they do not (`CONVERT TO CHARACTER SET`, a new collation), a key
    /// range bounded by the same values holds different rows in each table.
    pub fn key_order_kept(&self) -> bool {
        self.key_positions.iter().map(|&p| &self.columns[p]).all(|c| c.target_type == c.source.column_type && c.target_collation == c.source.collation)
    }

    pub fn key_placeholders(&self) -> Vec<Placeholder> {
        self.key_positions.iter().map(|&i| self.columns[i].placeholder()).collect()
    }

    /// The chosen key's columns in the new table, each with the guard its type needs (see
    /// `guard::upsert_clause`).
    pub fn guarded_key(&self) -> Vec<(String, Guard)> {
        let data_type = |column_type: &str| column_type.split(['(', ' ']).next().unwrap_or_default().to_string();
        self.key_target.iter().zip(&self.key_positions).map(|(name, &p)| (name.clone(), Guard::for_type(&data_type(&self.columns[p].target_type)))).collect()
    }
}

/// Refuses column renames that were not approved. Runs before anything is created.
pub fn check_renames(summary: &AlterSummary, approved: bool) -> Result<()> {
    if summary.renamed_columns.is_empty() || approved {
        return Ok(());
    }
    let list: Vec<String> = summary.renamed_columns.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
    Err(Error::refused(format!("the ALTER renames columns ({}); a mistyped CHANGE would silently lose that column's data", list.join(", ")), "check the renames and add --approve-renamed-columns"))
}

/// Builds the plan from the original table and the shadow table after the ALTER ran on it.
pub fn build(names: TableNames, original: &TableInfo, shadow: &TableInfo, summary: &AlterSummary, shadow_ddl: String) -> Result<Plan> {
    let columns = map_columns(original, shadow, summary);
    check_new_columns_fillable(shadow, &columns)?;
    let key = choose_key(original, shadow, summary)?;
    let key_positions = key.source.iter().map(|k| columns.iter().position(|c| c.source.name.eq_ignore_ascii_case(k)).expect("key columns are mapped columns")).collect();
    let unique_in_both = unique_in_both(original, shadow, &columns, &key.shadow_name);
    Ok(Plan {
        names,
        columns,
        key_name: key.name,
        key_source: key.source,
        key_target: key.target,
        shadow_key_name: key.shadow_name,
        shadow_key_widens: key.shadow_widens,
        key_positions,
        shadow_ddl,
        unique_in_both,
    })
}

/// The new table's unique indexes (other than the chosen key) that the original has too, over
/// the same columns with the same types, character sets and collations, as target column
/// lists. The original allows no two rows with the same values there, so a collision on them
/// in the shadow is with an image the applier has not replaced yet, never a real duplicate.
fn unique_in_both(original: &TableInfo, shadow: &TableInfo, columns: &[ColumnMapping], shadow_key_name: &str) -> Vec<Vec<String>> {
    let same_definition = |m: &ColumnMapping| shadow.column(&m.target).is_some_and(|t| t.column_type == m.source.column_type && t.charset == m.source.charset && t.collation == m.source.collation);
    shadow
        .indexes
        .iter()
        .filter(|i| i.unique && !i.has_partial_parts && i.name != shadow_key_name)
        .filter_map(|index| {
            let mapped: Vec<&ColumnMapping> = index.columns.iter().map(|t| columns.iter().find(|m| m.target.eq_ignore_ascii_case(t))).collect::<Option<_>>()?;
            let sources: Vec<&str> = mapped.iter().map(|m| m.source.name.as_str()).collect();
            let in_original =
                original.indexes.iter().any(|o| o.unique && !o.has_partial_parts && o.columns.len() == sources.len() && o.columns.iter().all(|c| sources.iter().any(|s| s.eq_ignore_ascii_case(c))));
            (in_original && mapped.iter().all(|m| same_definition(m))).then(|| index.columns.clone())
        })
        .collect()
}

fn target_name(summary: &AlterSummary, column: &str) -> Option<String> {
    if summary.dropped_columns.iter().any(|d| d.eq_ignore_ascii_case(column)) {
        return None;
    }
    let renamed = summary.renamed_columns.iter().find(|(old, _)| old.eq_ignore_ascii_case(column));
    Some(renamed.map_or(column.to_string(), |(_, new)| new.clone()))
}

fn map_columns(original: &TableInfo, shadow: &TableInfo, summary: &AlterSummary) -> Vec<ColumnMapping> {
    original
        .columns
        .iter()
        .filter(|c| !c.generated)
        .filter_map(|c| {
            let target = shadow.column(&target_name(summary, &c.name)?).filter(|t| !t.generated)?;
            Some(ColumnMapping {
                source: c.clone(),
                target: target.name.clone(),
                target_type: target.column_type.clone(),
                target_charset: target.charset.clone(),
                target_collation: target.collation.clone(),
            })
        })
        .collect()
}

fn check_new_columns_fillable(shadow: &TableInfo, columns: &[ColumnMapping]) -> Result<()> {
    let unfillable: Vec<&str> =
        shadow.columns.iter().filter(|c| !c.generated && !c.nullable && !c.has_default && !c.auto_increment).filter(|c| !columns.iter().any(|m| m.target == c.name)).map(|c| c.name.as_str()).collect();
    if unfillable.is_empty() {
        return Ok(());
    }
    Err(Error::refused(
        format!("new NOT NULL column(s) without a DEFAULT: {}; the copy cannot fill them in strict mode", unfillable.join(", ")),
        "give each a DEFAULT in the ALTER (e.g. ADD COLUMN c INT NOT NULL DEFAULT 0)",
    ))
}

/// The key rows are matched by: its name and columns in the original, its columns' names in the
/// new table, and the new table's unique key over them (or over more columns, see
/// `Plan::shadow_key_widens`).
struct ChosenKey {
    name: String,
    source: Vec<String>,
    target: Vec<String>,
    shadow_name: String,
    shadow_widens: bool,
}

/// The original's first usable unique key whose columns form a usable unique key of the new
/// table; failing that, one whose columns the new table's unique key contains (gh-ost's
/// shared-uk: `PRIMARY KEY (id)` becoming `PRIMARY KEY (id, i)`), provided an index of the new
/// table starts with them, so that looking rows up by them there is no table scan.
fn choose_key(original: &TableInfo, shadow: &TableInfo, summary: &AlterSummary) -> Result<ChosenKey> {
    let shadow_keys = shadow.usable_unique_keys();
    let candidates: Vec<(&crate::inspect::Index, Vec<String>)> =
        original.usable_unique_keys().into_iter().filter_map(|key| Some((key, key.columns.iter().map(|c| target_name(summary, c)).collect::<Option<Vec<String>>>()?))).collect();
    let holds = |cols: &[String], target: &[String]| target.iter().all(|t| cols.iter().any(|c| c.eq_ignore_ascii_case(t)));
    let exact = candidates.iter().find_map(|(key, target)| Some((key, target, shadow_keys.iter().find(|k| k.columns.len() == target.len() && holds(&k.columns, target))?, false)));
    let leads_an_index = |target: &[String]| shadow.indexes.iter().any(|i| !i.has_partial_parts && i.columns.len() >= target.len() && holds(&i.columns[..target.len()], target));
    let widened = || candidates.iter().filter(|(_, target)| leads_an_index(target)).find_map(|(key, target)| Some((key, target, shadow_keys.iter().find(|k| holds(&k.columns, target))?, true)));
    let Some((key, target, shadow_key, shadow_widens)) = exact.or_else(widened) else {
        return Err(Error::refused(
            format!("no PRIMARY or NOT NULL UNIQUE key is shared by the old and new schema of {}; rows could not be matched between them", original.qualified()),
            "keep the primary key (or another NOT NULL unique key) in the ALTER, or a new unique key that starts with its columns; or add one to the table first",
        ));
    };
    if let Some(why) = key_type_change(original, shadow, &key.columns, target) {
        return Err(Error::refused(why, "keep the key column's type, or migrate in two steps"));
    }
    let target = target.iter().map(|t| shadow.column(t).map_or_else(|| t.clone(), |c| c.name.clone())).collect();
    Ok(ChosenKey { name: key.name.clone(), source: key.columns.clone(), target, shadow_name: shadow_key.name.clone(), shadow_widens })
}

/// A key column that changes from DATETIME to TIMESTAMP (or back) changes values with the time
/// zone, so rows would no longer match by key.
fn key_type_change(original: &TableInfo, shadow: &TableInfo, source: &[String], target: &[String]) -> Option<String> {
    source.iter().zip(target).find_map(|(s, t)| {
        let (a, b) = (&original.column(s)?.data_type, &shadow.column(t)?.data_type);
        let moves = (a == "datetime" && b == "timestamp") || (a == "timestamp" && b == "datetime");
        moves.then(|| format!("key column `{s}` changes from {a} to {b}; its values would shift with the time zone"))
    })
}

/// Bytes the new table needs (about the original's data and indexes) and bytes of binlog the
/// copy writes (row images: about the original's data).
pub fn space_needed(original: &TableInfo) -> (u64, u64) {
    (original.data_bytes + original.index_bytes, original.data_bytes)
}

/// How long copying `rows` takes at the pace of a sample chunk of `sample_rows` that took
/// `took`, one worker copying.
pub fn copy_estimate(rows: u64, sample_rows: u64, took: std::time::Duration) -> Option<std::time::Duration> {
    (sample_rows > 0).then(|| took.mul_f64(rows as f64 / sample_rows as f64))
}

/// What in this ALTER can fail the run before the swap (it never loses rows silently), or
/// changes data on purpose, for people to know before they run it.
pub fn risks(summary: &AlterSummary, plan: &Plan) -> Vec<String> {
    let mut risks = Vec::new();
    if !summary.dropped_columns.is_empty() {
        risks.push(format!("drops column(s) {}: their data is gone from the new table (the old table keeps it)", summary.dropped_columns.join(", ")));
    }
    let changed: Vec<String> =
        plan.columns.iter().filter(|c| !c.source.column_type.eq_ignore_ascii_case(&c.target_type)).map(|c| format!("{} {} -> {}", c.target, c.source.column_type, c.target_type)).collect();
    if !changed.is_empty() {
        risks.push(format!("changes column type(s) ({}): a value that does not fit fails the run before the swap, naming its row", changed.join(", ")));
    }
    let clauses = summary.clauses.to_ascii_uppercase();
    if clauses.contains("UNIQUE") || clauses.contains("PRIMARY KEY") {
        risks.push("adds or changes a unique key: duplicate values fail the run before the swap, naming the row".into());
    }
    if clauses.contains("NOT NULL") {
        risks.push("makes a column NOT NULL (or adds one): a NULL in the data fails the run before the swap".into());
    }
    if clauses.contains("CONVERT TO") || clauses.contains("CHARACTER SET") || clauses.contains("CHARSET") {
        risks.push("converts text to another character set: a character it cannot hold fails the run before the swap".into());
    }
    risks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::Index;

    fn col(name: &str, ordinal: usize, data_type: &str) -> Column {
        Column {
            name: name.into(),
            ordinal,
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: false,
            charset: (data_type == "varchar").then(|| "latin1".into()),
            collation: (data_type == "varchar").then(|| "latin1_swedish_ci".into()),
            generated: false,
            has_default: true,
            auto_increment: false,
        }
    }

    fn table(columns: Vec<Column>, indexes: Vec<Index>) -> TableInfo {
        TableInfo { database: "d".into(), name: "t".into(), columns, indexes, estimated_rows: 0, data_bytes: 0, index_bytes: 0 }
    }

    fn key(name: &str, cols: &[&str]) -> Index {
        Index { name: name.into(), unique: true, columns: cols.iter().map(|c| c.to_string()).collect(), has_partial_parts: false }
    }

    fn summary(renamed: &[(&str, &str)], dropped: &[&str]) -> AlterSummary {
        AlterSummary {
            clauses: String::new(),
            renamed_columns: renamed.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            dropped_columns: dropped.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn timestamped_old_table_names_fit_mysqls_limit() {
        let names = TableNames::new("d", "orders").unwrap().with_timestamped_old("20261207211500").unwrap();
        assert_eq!(names.old, "_orders_20261207211500_del");
        assert!(TableNames::new("d", &"x".repeat(45)).unwrap().with_timestamped_old("20261207211500").unwrap_err().message.contains("--timestamp-old-table"));
    }

    #[test]
    fn unique_keys_in_both_tables_are_told_apart_from_new_ones() {
        let old = table(vec![col("id", 0, "int"), col("a", 1, "varchar"), col("b", 2, "int")], vec![key("PRIMARY", &["id"]), key("ua", &["a"])]);
        let new = table(vec![col("id", 0, "int"), col("a", 1, "varchar"), col("b", 2, "int")], vec![key("PRIMARY", &["id"]), key("ua", &["a"]), key("ub", &["b"])]);
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &new, &summary(&[], &[]), String::new()).unwrap();
        assert_eq!(plan.unique_in_both, vec![vec!["a".to_string()]], "ub is new: a collision there may be real");
        let mut recollated = new.clone();
        recollated.columns[1].collation = Some("latin1_bin".into());
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &recollated, &summary(&[], &[]), String::new()).unwrap();
        assert!(plan.unique_in_both.is_empty(), "another collation can make distinct values equal");
    }

    #[test]
    fn names_the_risks_of_an_alter() {
        let old = table(vec![col("id", 0, "int"), col("a", 1, "varchar"), col("b", 2, "int")], vec![key("PRIMARY", &["id"])]);
        let mut new_a = col("a", 1, "varchar");
        new_a.column_type = "varchar(3)".into();
        let new = table(vec![col("id", 0, "int"), new_a], vec![key("PRIMARY", &["id"])]);
        let mut alter = summary(&[], &["b"]);
        alter.clauses = "DROP COLUMN b, MODIFY a VARCHAR(3) NOT NULL, ADD UNIQUE KEY u (a)".into();
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &new, &alter, String::new()).unwrap();
        let risks = risks(&alter, &plan);
        assert_eq!(risks.len(), 4, "{risks:?}");
        assert!(risks[0].starts_with("drops column(s) b"));
        assert!(risks[1].contains("a varchar -> varchar(3)"), "{risks:?}");
        assert!(risks.iter().any(|r| r.contains("unique key")) && risks.iter().any(|r| r.contains("NOT NULL")));
        assert!(super::risks(&summary(&[], &[]), &build(TableNames::new("d", "t").unwrap(), &old, &old, &summary(&[], &[]), String::new()).unwrap()).is_empty());
    }

    #[test]
    fn estimates_space_and_time() {
        let mut t = table(vec![col("id", 0, "int")], vec![key("PRIMARY", &["id"])]);
        (t.data_bytes, t.index_bytes) = (300 << 20, 100 << 20);
        assert_eq!(space_needed(&t), (400 << 20, 300 << 20));
        assert_eq!(copy_estimate(1_000_000, 1000, std::time::Duration::from_millis(5)), Some(std::time::Duration::from_secs(5)));
        assert_eq!(copy_estimate(1_000_000, 0, std::time::Duration::from_millis(5)), None);
    }

    #[test]
    fn maps_renamed_and_dropped_columns() {
        let old = table(vec![col("id", 0, "int"), col("a", 1, "varchar"), col("b", 2, "int")], vec![key("PRIMARY", &["id"])]);
        let new = table(vec![col("id", 0, "int"), col("z", 1, "varchar"), col("c", 2, "int")], vec![key("PRIMARY", &["id"])]);
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &new, &summary(&[("a", "z")], &["b"]), String::new()).unwrap();
        let pairs: Vec<(String, String)> = plan.columns.iter().map(|m| (m.source.name.clone(), m.target.clone())).collect();
        assert_eq!(pairs, vec![("id".into(), "id".into()), ("a".into(), "z".into())]);
        assert_eq!(plan.placeholders()[1], Placeholder::Hex("latin1".into()));
        assert_eq!(plan.key_positions, vec![0]);
    }

    #[test]
    fn chooses_shared_unique_key_when_primary_changes() {
        let old = table(vec![col("id", 0, "int"), col("a", 1, "int"), col("b", 2, "int")], vec![key("PRIMARY", &["id"]), key("uab", &["a", "b"])]);
        let new = table(vec![col("id", 0, "int"), col("a", 1, "int"), col("b", 2, "int")], vec![key("PRIMARY", &["b", "a"])]);
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &new, &summary(&[], &[]), String::new()).unwrap();
        assert_eq!(plan.key_name, "uab");
        assert_eq!(plan.key_source, vec!["a", "b"]);
        assert_eq!(plan.key_target, vec!["a", "b"]);
        assert_eq!(plan.shadow_key_name, "PRIMARY");
    }

    #[test]
    fn a_new_key_containing_the_old_one_matches_rows_by_the_old_one() {
        let old = table(vec![col("id", 0, "int"), col("i", 1, "int")], vec![key("PRIMARY", &["id"])]);
        let widened = table(vec![col("id", 0, "int"), col("i", 1, "int")], vec![key("PRIMARY", &["id", "i"])]);
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &widened, &summary(&[], &[]), String::new()).unwrap();
        assert_eq!((plan.key_source, plan.key_target, plan.shadow_key_name.as_str(), plan.shadow_key_widens), (vec!["id".to_string()], vec!["id".to_string()], "PRIMARY", true));
        let mut also_exact = widened.clone();
        also_exact.indexes.push(key("uid", &["id"]));
        let plan = build(TableNames::new("d", "t").unwrap(), &old, &also_exact, &summary(&[], &[]), String::new()).unwrap();
        assert_eq!((plan.shadow_key_name.as_str(), plan.shadow_key_widens), ("uid", false), "a key shared as it is comes first");
        let not_leading = table(vec![col("id", 0, "int"), col("i", 1, "int")], vec![key("PRIMARY", &["i", "id"])]);
        let e = build(TableNames::new("d", "t").unwrap(), &old, &not_leading, &summary(&[], &[]), String::new()).unwrap_err();
        assert!(e.message.contains("no PRIMARY or NOT NULL UNIQUE key") && e.fix.as_deref().unwrap_or_default().contains("starts with its columns"), "{e:?}");
        let mut indexed = not_leading.clone();
        indexed.indexes.push(Index { unique: false, ..key("k_id", &["id"]) });
        assert!(build(TableNames::new("d", "t").unwrap(), &old, &indexed, &summary(&[], &[]), String::new()).unwrap().shadow_key_widens, "another index leads with the old key's columns");
    }

    #[test]
    fn refuses_without_shared_key() {
        let old = table(vec![col("id", 0, "int"), col("a", 1, "int")], vec![key("PRIMARY", &["id"])]);
        let new = table(vec![col("id", 0, "int"), col("a", 1, "int")], vec![key("PRIMARY", &["a"])]);
        let e = build(TableNames::new("d", "t").unwrap(), &old, &new, &summary(&[], &[]), String::new()).unwrap_err();
        assert!(e.message.contains("no PRIMARY or NOT NULL UNIQUE key"));
    }

    #[test]
    fn refuses_unfillable_not_null_column() {
        let old = table(vec![col("id", 0, "int")], vec![key("PRIMARY", &["id"])]);
        let mut extra = col("n", 1, "int");
        extra.has_default = false;
        let new = table(vec![col("id", 0, "int"), extra], vec![key("PRIMARY", &["id"])]);
        let e = build(TableNames::new("d", "t").unwrap(), &old, &new, &summary(&[], &[]), String::new()).unwrap_err();
        assert!(e.message.contains("without a DEFAULT"));
    }

    #[test]
    fn unapproved_renames_are_refused() {
        assert!(check_renames(&summary(&[("a", "b")], &[]), false).is_err());
        assert!(check_renames(&summary(&[("a", "b")], &[]), true).is_ok());
    }

    #[test]
    fn long_table_names_are_refused() {
        assert!(TableNames::new("d", &"x".repeat(60)).is_err());
        assert_eq!(TableNames::new("d", "orders").unwrap().shadow, "_orders_gho");
        let forced = TableNames::named_after("d", &"x".repeat(64), "tmp").unwrap();
        assert_eq!((forced.original.len(), forced.shadow.as_str(), forced.old.as_str()), (64, "_tmp_gho", "_tmp_del"));
    }
}
