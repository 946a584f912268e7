//! Table facts from `information_schema`: columns, unique keys, foreign keys, triggers, size.
//!
//! The binlog carries neither column names nor signedness, charsets or ENUM/SET members (with
//! MariaDB's default `binlog_row_metadata=NO_LOG`), so this module is where they come from.
//! Invariant: columns are listed in table order, so `Column::ordinal` indexes a binlog row image.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Context, Error, Result};
use crate::sql::{qualified, quote_ident};

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// 0-based position in the table, which is its position in a binlog row image.
    pub ordinal: usize,
    /// Lowercase `DATA_TYPE`, e.g. `int`, `varchar`, `enum`.
    pub data_type: String,
    /// Full `COLUMN_TYPE`, e.g. `int(10) unsigned`, `enum('a','b')`.
    pub column_type: String,
    pub nullable: bool,
    /// Character set of a text column; `None` for numbers, dates and binary strings.
    pub charset: Option<String>,
    /// Collation of a text column.
    pub collation: Option<String>,
    pub generated: bool,
    pub has_default: bool,
    pub auto_increment: bool,
}

impl Column {
    pub fn unsigned(&self) -> bool {
        self.column_type.to_ascii_lowercase().contains("unsigned")
    }

    /// ENUM or SET members in definition order.
    pub fn members(&self) -> Vec<String> {
        parse_members(&self.column_type)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub columns: Vec<String>,
    /// Some part is not a whole column: a column's prefix (`KEY (c(10))`) or an expression
    /// (MySQL's functional key parts, `KEY ((a + 1))`, which list no column).
    pub has_partial_parts: bool,
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub database: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub indexes: Vec<Index>,
    pub estimated_rows: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Unique keys the copy can walk and the applier can address rows by: every column NOT
    /// NULL, not generated, not indexed by prefix, and not FLOAT/DOUBLE/JSON (whose equality is
    /// not exact). PRIMARY first.
    pub fn usable_unique_keys(&self) -> Vec<&Index> {
        let mut keys: Vec<&Index> = self
            .indexes
            .iter()
            .filter(|i| i.unique && !i.has_partial_parts)
            .filter(|i| i.columns.iter().all(|c| self.column(c).is_some_and(|c| !c.nullable && !c.generated && !matches!(c.data_type.as_str(), "float" | "double" | "json" | "real"))))
            .collect();
        keys.sort_by_key(|i| i.name != "PRIMARY");
        keys
    }

    pub fn qualified(&self) -> String {
        qualified(&self.database, &self.name)
    }
}

/// Parses the members of `enum('a','b''c')` or `set('x','y')`.
pub fn parse_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else { return Vec::new() };
    let mut members = Vec::new();
    let chars: Vec<char> = column_type[open + 1..].chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\'' {
            i += 1;
            continue;
        }
        let mut member = String::new();
        i += 1;
        while i < chars.len() {
            if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                member.push('\'');
                i += 2;
            } else if chars[i] == '\'' {
                i += 1;
                break;
            } else if chars[i] == '\\' && i + 1 < chars.len() {
                member.push(chars[i + 1]);
                i += 2;
            } else {
                member.push(chars[i]);
                i += 1;
            }
        }
        members.push(member);
    }
    members
}

/// ENUM and SET types whose members `information_schema` cannot show are read from the server
/// instead. `information_schema` (and `SHOW CREATE TABLE`, which builds its text the same way)
/// holds them in utf8mb3 and shows a member with a 4-byte character (an emoji) as `?`, which no
/// row holds: a replayed change naming it failed (`Data truncated`). For such a column, a
/// temporary table (never in a row-based binlog) takes the column's type from the table
/// itself (`CREATE TEMPORARY TABLE ... SELECT c FROM t LIMIT 0`), gets each member by its
/// number, and gives them back as utf8mb4 text, exact.
async fn exact_members(conn: &mut Conn, database: &str, table: &str, columns: &mut [Column]) -> Result<()> {
    for column in columns.iter_mut().filter(|c| matches!(c.data_type.as_str(), "enum" | "set") && c.column_type.contains('?')) {
        let count = column.members().len() as u32;
        let numbers: Vec<u64> = if column.data_type == "set" { (0..count.min(64)).map(|bit| 1u64 << bit).collect() } else { (1..=u64::from(count)).collect() };
        let scratch = qualified(database, &format!("_alterego_members_{}", column.ordinal));
        let create = format!("CREATE TEMPORARY TABLE {scratch} SELECT {} AS m FROM {} LIMIT 0", quote_ident(&column.name), qualified(database, table));
        conn.query_drop(&create).await.context(|| format!("reading the members of {} (a temporary table, which needs the CREATE TEMPORARY TABLES privilege)", quote_ident(&column.name)))?;
        let values = numbers.iter().map(|n| format!("({n})")).collect::<Vec<_>>().join(", ");
        let members: std::result::Result<Vec<(u64, Vec<u8>)>, mysql_async::Error> = async {
            conn.query_drop(format!("INSERT INTO {scratch} (m) VALUES {values}")).await?;
            conn.query(format!("SELECT m + 0, CAST(m AS CHAR CHARACTER SET utf8mb4) FROM {scratch} ORDER BY m + 0")).await
        }
        .await;
        conn.query_drop(format!("DROP TEMPORARY TABLE {scratch}")).await.context(|| "dropping a temporary table".into())?;
        let members = members.context(|| format!("reading the members of {}", quote_ident(&column.name)))?;
        let quoted: Vec<String> = members.iter().map(|(_, text)| format!("'{}'", String::from_utf8_lossy(text).replace('\\', "\\\\").replace('\'', "''"))).collect();
        column.column_type = format!("{}({})", column.data_type, quoted.join(","));
    }
    Ok(())
}

/// Whether `information_schema.COLUMNS.EXTRA` says the server computes the column. MySQL also
/// writes `DEFAULT_GENERATED` there for a column with an expression default (`DEFAULT
/// (x'00')`, `DEFAULT CURRENT_TIMESTAMP`): such a column holds data like any other, and taking
/// it for a generated one left it out of the copy, the replay and the verification.
fn is_generated(extra: &str) -> bool {
    let extra = extra.to_ascii_uppercase();
    ["VIRTUAL GENERATED", "STORED GENERATED", "PERSISTENT GENERATED"].iter().any(|kind| extra.contains(kind))
}

/// Loads a table's facts; `None` when it does not exist.
pub async fn load(conn: &mut Conn, database: &str, table: &str) -> Result<Option<TableInfo>> {
    let doing = || format!("inspecting {}", qualified(database, table));
    type Facts = (String, Option<String>, Option<u64>, Option<u64>, Option<u64>);
    let facts: Option<Facts> = conn
        .exec_first("SELECT TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (database, table))
        .await
        .context(doing)?;
    let Some((table_type, engine, rows, data, index)) = facts else { return Ok(None) };
    if table_type != "BASE TABLE" {
        return Err(Error::refused(format!("{} is a {}, not a base table", qualified(database, table), table_type.to_lowercase()), "alter the base table the view reads from"));
    }
    if !engine.as_deref().unwrap_or_default().eq_ignore_ascii_case("InnoDB") {
        return Err(Error::refused(
            format!("{} uses the {} engine; the online copy needs InnoDB's row locks and consistent reads", qualified(database, table), engine.unwrap_or_default()),
            "convert it with a native ALTER TABLE ... ENGINE=InnoDB during a maintenance window",
        ));
    }
    let mut columns = load_columns(conn, database, table).await.context(doing)?;
    exact_members(conn, database, table, &mut columns).await?;
    let indexes = load_indexes(conn, database, table).await.context(doing)?;
    Ok(Some(TableInfo { database: database.into(), name: table.into(), columns, indexes, estimated_rows: rows.unwrap_or(0), data_bytes: data.unwrap_or(0), index_bytes: index.unwrap_or(0) }))
}

type ColumnRow = (String, u64, String, String, String, Option<String>, Option<String>, String, Option<String>, Option<String>);

async fn load_columns(conn: &mut Conn, database: &str, table: &str) -> Result<Vec<Column>> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, ORDINAL_POSITION, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, \
             GENERATION_EXPRESSION, COLUMN_DEFAULT \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .context(|| "reading columns".into())?;
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, (name, _, data_type, column_type, nullable, charset, collation, extra, generation, default))| Column {
            name,
            ordinal: i,
            data_type,
            column_type,
            nullable: nullable == "YES",
            charset,
            collation,
            generated: generation.is_some_and(|g| !g.is_empty()) || is_generated(&extra),
            has_default: default.is_some(),
            auto_increment: extra.to_ascii_lowercase().contains("auto_increment"),
        })
        .collect())
}

async fn load_indexes(conn: &mut Conn, database: &str, table: &str) -> Result<Vec<Index>> {
    let rows: Vec<(String, u64, Option<String>, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (database, table),
        )
        .await
        .context(|| "reading indexes".into())?;
    let mut indexes: Vec<Index> = Vec::new();
    for (name, non_unique, column, sub_part) in rows {
        if indexes.last().is_none_or(|i| i.name != name) {
            indexes.push(Index { name: name.clone(), unique: non_unique == 0, columns: Vec::new(), has_partial_parts: false });
        }
        let index = indexes.last_mut().expect("pushed above");
        index.has_partial_parts |= sub_part.is_some() || column.is_none();
        index.columns.extend(column);
    }
    Ok(indexes)
}

/// Foreign keys on either side of the table, as `constraint (child -> parent)` descriptions.
pub async fn foreign_keys(conn: &mut Conn, database: &str, table: &str) -> Result<ForeignKeys> {
    let rows: Vec<(String, String, String)> = conn
        .exec(
            "SELECT DISTINCT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE REFERENCED_TABLE_NAME IS NOT NULL AND ((TABLE_SCHEMA = ? AND TABLE_NAME = ?) OR (REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?))",
            (database, table, database, table),
        )
        .await
        .context(|| "reading foreign keys".into())?;
    let mut keys = ForeignKeys::default();
    for (constraint, child, parent) in rows {
        let list = if child == table { &mut keys.own } else { &mut keys.referencing };
        list.push(format!("{constraint} ({child} -> {parent})"));
    }
    Ok(keys)
}

/// A table's foreign keys, as `constraint (child -> parent)` descriptions.
#[derive(Debug, Default)]
pub struct ForeignKeys {
    /// The table's own, referencing other tables (or itself).
    pub own: Vec<String>,
    /// Other tables' keys that reference this one.
    pub referencing: Vec<String>,
}

/// Trigger names on the table.
pub async fn triggers(conn: &mut Conn, database: &str, table: &str) -> Result<Vec<String>> {
    conn.exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?", (database, table)).await.context(|| "reading triggers".into())
}

/// `SHOW CREATE TABLE` of a table. The server prints a binary column's DEFAULT as its raw
/// bytes, which need not be UTF-8: those are replaced (U+FFFD) in the text, which is only
/// compared and parsed for index definitions, never run.
pub async fn show_create(conn: &mut Conn, database: &str, table: &str) -> Result<String> {
    let row: Option<(Vec<u8>, Vec<u8>)> =
        conn.query_first(format!("SHOW CREATE TABLE {}", qualified(database, table))).await.context(|| format!("reading the definition of {}", qualified(database, table)))?;
    Ok(row.map(|(_, ddl)| String::from_utf8_lossy(&ddl).into_owned()).unwrap_or_default())
}

/// The `AUTO_INCREMENT=N` table option of a `SHOW CREATE TABLE` text: the table's next
/// automatic value, shown once a value has been used (or the option was set).
pub fn auto_increment_option(ddl: &str) -> Option<u64> {
    let options = ddl.lines().last()?.strip_prefix(')')?;
    let value = options.split_whitespace().find_map(|option| option.strip_prefix("AUTO_INCREMENT="))?;
    value.parse().ok()
}

/// Whether a `SHOW CREATE TABLE` text has an `AUTO_INCREMENT` column.
pub fn has_auto_increment_column(ddl: &str) -> bool {
    ddl.lines().map(str::trim).any(|line| line.starts_with('`') && line.split_whitespace().any(|word| word.trim_end_matches(',') == "AUTO_INCREMENT"))
}

/// Whether a table of that name exists.
pub async fn exists(conn: &mut Conn, database: &str, table: &str) -> Result<bool> {
    let n: Option<u64> = conn
        .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (database, table))
        .await
        .context(|| format!("looking for {}", qualified(database, table)))?;
    Ok(n.unwrap_or(0) > 0)
}

/// Whether the database exists (as far as this user may see it).
pub async fn database_exists(conn: &mut Conn, database: &str) -> Result<bool> {
    let n: Option<u64> = conn
        .exec_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (database,))
        .await
        .context(|| format!("looking for the database {}", crate::sql::quote_ident(database)))?;
    Ok(n.unwrap_or(0) > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_auto_increment_counter_and_column() {
        let ddl = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT COMMENT 'x',\n  `a` int DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=1001288 DEFAULT CHARSET=utf8mb4";
        assert_eq!(auto_increment_option(ddl), Some(1_001_288));
        assert!(has_auto_increment_column(ddl));
        let plain = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `c` varchar(20) DEFAULT 'AUTO_INCREMENT=5',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        assert_eq!(auto_increment_option(plain), None);
        assert!(!has_auto_increment_column(plain));
    }

    use super::*;

    #[test]
    fn expression_defaults_are_not_generated_columns() {
        for extra in ["VIRTUAL GENERATED", "STORED GENERATED", "PERSISTENT GENERATED", "virtual generated"] {
            assert!(is_generated(extra), "{extra}");
        }
        for extra in ["DEFAULT_GENERATED", "DEFAULT_GENERATED on update CURRENT_TIMESTAMP", "auto_increment INVISIBLE", ""] {
            assert!(!is_generated(extra), "{extra}");
        }
    }

    #[test]
    fn parses_enum_and_set_members() {
        assert_eq!(parse_members("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(parse_members("set('x','')"), vec!["x", ""]);
        assert!(parse_members("int(11)").is_empty());
    }

    fn col(name: &str, data_type: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            ordinal: 0,
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable,
            charset: None,
            collation: None,
            generated: false,
            has_default: false,
            auto_increment: false,
        }
    }

    #[test]
    fn usable_keys_exclude_nullable_float_and_prefix() {
        let t = TableInfo {
            database: "d".into(),
            name: "t".into(),
            columns: vec![col("id", "int", false), col("f", "float", false), col("n", "int", true), col("s", "varchar", false)],
            indexes: vec![
                Index { name: "uf".into(), unique: true, columns: vec!["f".into()], has_partial_parts: false },
                Index { name: "un".into(), unique: true, columns: vec!["n".into()], has_partial_parts: false },
                Index { name: "us".into(), unique: true, columns: vec!["s".into()], has_partial_parts: true },
                Index { name: "PRIMARY".into(), unique: true, columns: vec!["id".into()], has_partial_parts: false },
                Index { name: "ids".into(), unique: true, columns: vec!["id".into(), "s".into()], has_partial_parts: false },
            ],
            estimated_rows: 0,
            data_bytes: 0,
            index_bytes: 0,
        };
        let names: Vec<&str> = t.usable_unique_keys().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["PRIMARY", "ids"]);
    }
}
