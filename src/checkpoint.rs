//! Checkpoints, so that a run killed at any point can be resumed without copying finished
//! ranges again.
//!
//! What a run has done lives on the server, written in the same transactions as the work:
//!
//! - Every copied chunk inserts its key range into the checkpoint table `_<t>_ghk` in the
//!   chunk's own transaction. A chunk is finished exactly when its row there exists. The table's
//!   key columns have the types and collations of the chosen key, so the server orders the
//!   ranges the way the copy walked them, whatever the collation.
//! - Every replayed group of binlog changes records the binlog position after it in the
//!   changelog, in the group's own transaction: the applied position is exactly what the
//!   shadow table holds.
//! - The run's header (format version, tool version, the ALTER, the original and shadow table
//!   definitions, the copy's highest key) is written to the changelog once, before the copy.
//!
//! A new run of the same migration finds the header and resumes: it reads the binlog from the
//! recorded position again (replaying a change twice is harmless: full images, deletes by key)
//! and copies only the key ranges between finished chunks. It refuses, naming the difference,
//! when the ALTER or the table changed, when the binlog it needs is purged, or when the header
//! comes from a format it does not know.
//!
//! Invariant: a range is recorded only when every row in it was copied; rows left for a later
//! pass after a unique-key collision keep their chunk unrecorded.

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::plan::TableNames;
use crate::server::BinlogPosition;
use crate::sql::{column_list, quote_ident};

/// The checkpoint format this version writes. Versions it can read: 1.
pub const FORMAT_VERSION: u32 = 1;

/// Changelog rows: the run's header, and the applied binlog position.
const HEADER_ID: u64 = 3;
const HEADER_HINT: &str = "checkpoint";
const POSITION_ID: u64 = 4;
const POSITION_HINT: &str = "applied-position";

/// What a run is, written once before its copy starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub tool_version: String,
    /// The ALTER's clauses, as given.
    pub alter: String,
    /// `SHOW CREATE TABLE` of the original when the run started (without AUTO_INCREMENT).
    pub original_ddl: String,
    /// `SHOW CREATE TABLE` of the shadow after the ALTER, before any index was deferred.
    pub shadow_ddl: String,
    /// The highest key when the copy started; `None` for an empty table.
    pub max_key: Option<Vec<KeyValue>>,
}

/// A key value in JSON, without loss: bytes as hex, numbers as numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bytes(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(value: &Value) -> KeyValue {
        match value {
            Value::NULL => KeyValue::Null,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Float(f) => KeyValue::Float(*f),
            Value::Double(d) => KeyValue::Double(*d),
            Value::Bytes(b) => KeyValue::Bytes(hex::encode(b)),
            Value::Date(y, mo, d, h, mi, s, us) => KeyValue::Date(*y, *mo, *d, *h, *mi, *s, *us),
            Value::Time(neg, d, h, mi, s, us) => KeyValue::Time(*neg, *d, *h, *mi, *s, *us),
        }
    }
}

impl KeyValue {
    fn to_value(&self) -> Result<Value> {
        Ok(match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Float(f) => Value::Float(*f),
            KeyValue::Double(d) => Value::Double(*d),
            KeyValue::Bytes(h) => Value::Bytes(hex::decode(h).map_err(|e| Error::failed(format!("a key in the checkpoint is not valid hex: {e}")))?),
            KeyValue::Date(y, mo, d, h, mi, s, us) => Value::Date(*y, *mo, *d, *h, *mi, *s, *us),
            KeyValue::Time(neg, d, h, mi, s, us) => Value::Time(*neg, *d, *h, *mi, *s, *us),
        })
    }
}

pub fn key_to_json(key: &[Value]) -> Vec<KeyValue> {
    key.iter().map(KeyValue::from).collect()
}

pub fn key_from_json(key: &[KeyValue]) -> Result<Vec<Value>> {
    key.iter().map(KeyValue::to_value).collect()
}

/// A key range: after `lower` (None: from the lowest key) up to and including `upper`.
pub type KeyRange = (Option<Vec<Value>>, Vec<Value>);

/// The checkpoint table's columns for key column `i` (0-based) of the chosen key.
fn lower_column(i: usize) -> String {
    format!("lower_{}", i + 1)
}

fn upper_column(i: usize) -> String {
    format!("upper_{}", i + 1)
}

/// Creates the checkpoint table, with the key columns' types and collations.
pub async fn create(conn: &mut Conn, names: &TableNames, key: &[String]) -> Result<()> {
    let mut columns = Vec::new();
    for (i, name) in key.iter().enumerate() {
        let definition = key_column_type(conn, names, name).await?;
        columns.push(format!("{} {definition} NULL", quote_ident(&lower_column(i))));
        columns.push(format!("{} {definition} NOT NULL", quote_ident(&upper_column(i))));
    }
    let sql = format!(
        "CREATE TABLE {} (chunk BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, from_start BOOL NOT NULL, {}) ENGINE=InnoDB COMMENT='alterego checkpoint'",
        names.q(&names.checkpoint),
        columns.join(", ")
    );
    conn.query_drop(sql).await.context(|| format!("creating the checkpoint table {}", names.q(&names.checkpoint)))
}

/// `COLUMN_TYPE` plus character set and collation of a key column of the original table.
async fn key_column_type(conn: &mut Conn, names: &TableNames, column: &str) -> Result<String> {
    let row: Option<(String, Option<String>, Option<String>)> = conn
        .exec_first(
            "SELECT COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            (&names.database, &names.original, column),
        )
        .await
        .context(|| format!("reading the type of key column {column}"))?;
    let (column_type, charset, collation) = row.ok_or_else(|| Error::failed(format!("key column {column} vanished from {}", names.q(&names.original))))?;
    Ok(match (charset, collation) {
        (Some(charset), Some(collation)) => format!("{column_type} CHARACTER SET {charset} COLLATE {collation}"),
        _ => column_type,
    })
}

/// The statement that records a finished chunk, and its parameters.
pub fn record_chunk(names: &TableNames, lower: Option<&[Value]>, upper: &[Value]) -> (String, Vec<Value>) {
    let n = upper.len();
    let mut columns = vec!["from_start".to_string()];
    let mut params = vec![Value::from(lower.is_none())];
    for i in 0..n {
        columns.push(lower_column(i));
        params.push(lower.map_or(Value::NULL, |l| l[i].clone()));
    }
    for (i, value) in upper.iter().enumerate() {
        columns.push(upper_column(i));
        params.push(value.clone());
    }
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", names.q(&names.checkpoint), column_list(&columns), vec!["?"; columns.len()].join(", "));
    (sql, params)
}

/// The finished chunks, in key order (the server's, collations included).
pub async fn finished_chunks(conn: &mut Conn, names: &TableNames, key_len: usize) -> Result<Vec<KeyRange>> {
    let lowers: Vec<String> = (0..key_len).map(lower_column).collect();
    let uppers: Vec<String> = (0..key_len).map(upper_column).collect();
    let sql = format!("SELECT from_start, {}, {} FROM {} ORDER BY {}", column_list(&lowers), column_list(&uppers), names.q(&names.checkpoint), column_list(&uppers));
    // The binary protocol: keys come back typed, as the copy bound them, not as text.
    let rows: Vec<Row> = conn.exec(sql, ()).await.context(|| "reading the finished chunks".into())?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let values = row.unwrap();
            let from_start = matches!(values[0], Value::Int(1) | Value::UInt(1));
            let lower = (!from_start).then(|| values[1..=key_len].to_vec());
            (lower, values[key_len + 1..].to_vec())
        })
        .collect())
}

/// The key ranges not covered by finished chunks, up to `max`: the gaps between consecutive
/// chunks (a chunk's lower bound is its predecessor's upper bound), before the first and after
/// the last. `finished` must be in key order.
pub fn remaining_ranges(finished: &[KeyRange], max: &[Value]) -> Vec<KeyRange> {
    let mut remaining = Vec::new();
    let mut covered_up_to: Option<Vec<Value>> = None;
    let mut started = false;
    for (lower, upper) in finished {
        let contiguous = if started { lower.as_ref() == covered_up_to.as_ref() } else { lower.is_none() };
        if !contiguous {
            if let Some(lower) = lower {
                remaining.push((covered_up_to.clone(), lower.clone()));
            }
        }
        started = true;
        covered_up_to = Some(upper.clone());
    }
    if covered_up_to.as_deref() != Some(max) {
        remaining.push((covered_up_to, max.to_vec()));
    }
    remaining
}

/// Writes the run's header to the changelog.
pub async fn write_header(conn: &mut Conn, names: &TableNames, header: &Header) -> Result<()> {
    let json = serde_json::to_string(header).map_err(|e| Error::failed(format!("encoding the checkpoint header: {e}")))?;
    crate::changelog::write(conn, names, HEADER_ID, HEADER_HINT, json).await
}

/// The statement that records the applied binlog position (with `--gtid`, and the GTID
/// position there, on a line of its own), and its parameters; run in the applier's transaction.
pub fn record_position(names: &TableNames, position: &BinlogPosition, gtid: Option<&str>) -> (String, Vec<Value>) {
    let text = match gtid {
        Some(gtid) => format!("{}:{}\n{gtid}", position.file, position.pos),
        None => format!("{}:{}", position.file, position.pos),
    };
    crate::changelog::write_statement(names, POSITION_ID, POSITION_HINT, text)
}

/// A previous run's checkpoint: its header and the binlog position its applier reached.
#[derive(Debug)]
pub struct Saved {
    pub header: Header,
    pub position: BinlogPosition,
    /// The GTID position at `position`, when the run had `--gtid`.
    pub gtid: Option<String>,
}

/// Reads the checkpoint left in the changelog, if there is one.
pub async fn load(conn: &mut Conn, names: &TableNames) -> Result<Option<Saved>> {
    let sql = format!("SELECT id, value FROM {} WHERE id IN (?, ?)", names.q(&names.changelog));
    let rows: Vec<(u64, String)> = conn.exec(sql, (HEADER_ID, POSITION_ID)).await.context(|| "reading the checkpoint".into())?;
    let find = |id| rows.iter().find(|(i, _)| *i == id).map(|(_, v)| v.as_str());
    let (Some(header), Some(position)) = (find(HEADER_ID), find(POSITION_ID)) else { return Ok(None) };
    let header = parse_header(header)?;
    let (position, gtid) = match position.split_once('\n') {
        Some((position, gtid)) => (position, Some(gtid.to_string())),
        None => (position, None),
    };
    let position = parse_position(position).ok_or_else(|| Error::failed(format!("the checkpoint's binlog position `{position}` is not FILE:POSITION")))?;
    Ok(Some(Saved { header, position, gtid }))
}

/// Reads a header of any format this version knows; refuses newer ones.
fn parse_header(json: &str) -> Result<Header> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
        tool_version: String,
    }
    let version: Version = serde_json::from_str(json).map_err(|e| Error::failed(format!("the checkpoint header is not readable: {e}")))?;
    if version.format > FORMAT_VERSION {
        return Err(Error::refused(
            format!("the checkpoint was written by alterego {} in format {}, which this version ({}) cannot read", version.tool_version, version.format, env!("CARGO_PKG_VERSION")),
            "resume with that version of alterego, or start over with --no-resume",
        ));
    }
    serde_json::from_str(json).map_err(|e| Error::failed(format!("the checkpoint header is not readable: {e}")))
}

fn parse_position(text: &str) -> Option<BinlogPosition> {
    let (file, pos) = text.rsplit_once(':')?;
    Some(BinlogPosition { file: file.to_string(), pos: pos.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: i64) -> Vec<Value> {
        vec![Value::Int(i)]
    }

    #[test]
    fn remaining_ranges_are_the_gaps() {
        // Nothing finished: everything remains.
        assert_eq!(remaining_ranges(&[], &k(100)), vec![(None, k(100))]);
        // Contiguous from the start: the rest after the last.
        assert_eq!(remaining_ranges(&[(None, k(10)), (Some(k(10)), k(20))], &k(100)), vec![(Some(k(20)), k(100))]);
        // Chunks finished out of order by parallel workers leave gaps.
        let finished = [(None, k(10)), (Some(k(20)), k(30)), (Some(k(40)), k(50))];
        assert_eq!(remaining_ranges(&finished, &k(100)), vec![(Some(k(10)), k(20)), (Some(k(30)), k(40)), (Some(k(50)), k(100))]);
        // The first chunk missing; the last one finished.
        assert_eq!(remaining_ranges(&[(Some(k(10)), k(100))], &k(100)), vec![(None, k(10))]);
        // All done.
        assert!(remaining_ranges(&[(None, k(100))], &k(100)).is_empty());
    }

    #[test]
    fn keys_survive_json() {
        let key = vec![Value::Int(-3), Value::UInt(u64::MAX), Value::Bytes(vec![0, 0xff, b'a']), Value::Date(2026, 11, 21, 13, 0, 1, 5), Value::Time(true, 1, 2, 3, 4, 5), Value::NULL];
        let json = serde_json::to_string(&key_to_json(&key)).unwrap();
        let back: Vec<KeyValue> = serde_json::from_str(&json).unwrap();
        assert_eq!(key_from_json(&back).unwrap(), key);
    }

    #[test]
    fn newer_formats_are_refused_and_older_read() {
        let header = Header { format: 1, tool_version: "0.1.0".into(), alter: "ADD x INT".into(), original_ddl: "d".into(), shadow_ddl: "s".into(), max_key: Some(key_to_json(&k(7))) };
        let json = serde_json::to_string(&header).unwrap();
        assert_eq!(parse_header(&json).unwrap(), header);
        let newer = json.replace("\"format\":1", "\"format\":99");
        let e = parse_header(&newer).unwrap_err();
        assert!(e.message.contains("format 99"), "{e}");
    }

    #[test]
    fn positions_parse() {
        assert_eq!(parse_position("mysql-bin.000003:4711"), Some(BinlogPosition { file: "mysql-bin.000003".into(), pos: 4711 }));
        assert_eq!(parse_position("nonsense"), None);
    }
}
