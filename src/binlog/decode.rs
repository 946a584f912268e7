//! Row images out of binlog rows events, as values ready to bind on the shadow table.
//!
//! Rows are parsed cell by cell with `mysql_common`'s own value parser, driven by column types
//! and metadata taken once per TABLE_MAP (the crate's `rows()` builds a `Column` per cell, which
//! costs several times more CPU). Each cell is then corrected with facts the binlog lacks on
//! MariaDB (`binlog_row_metadata=NO_LOG`): signedness, ENUM/SET members, and the known quirks
//! listed in docs/architecture.md (MEDIUMINT sign, TIMESTAMP as epoch, YEAR 0, BIT bytes).
//! Invariant: a value this module cannot decode exactly is an error, never a guess.

use mysql_async::binlog::events::{RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

use super::json::ExactJson;
use crate::inspect::Column;

/// How a source column's binlog value is turned into a value to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// Passed through unchanged (signed integers, strings, dates, DECIMAL, floats).
    Plain,
    /// An unsigned integer of this many bits, which the binlog gives as a signed one.
    Unsigned(u32),
    /// Signed MEDIUMINT, which `mysql_common` does not sign-extend.
    SignedMedium,
    /// ENUM: the binlog gives a 1-based index into these members.
    Enum(Vec<String>),
    /// SET: the binlog gives a little-endian bitmask over these members.
    Set(Vec<String>),
    /// BIT: the binlog gives big-endian bytes.
    Bit,
    /// TIMESTAMP: the binlog gives seconds (and microseconds) since the epoch, UTC.
    Timestamp,
    /// YEAR: the binlog gives 1900 + byte, so 0000 arrives as 1900.
    Year,
    /// JSON on MySQL arrives in its binary form.
    Json,
    /// BINARY(n): the binlog drops the trailing zero bytes that pad the value to n bytes, and
    /// a key without them matches no row.
    Binary(usize),
}

impl ValueKind {
    pub fn of(column: &Column) -> ValueKind {
        let bits = match column.data_type.as_str() {
            "tinyint" => 8,
            "smallint" => 16,
            "mediumint" => 24,
            "int" | "integer" => 32,
            "bigint" => 64,
            "enum" => return ValueKind::Enum(column.members()),
            "set" => return ValueKind::Set(column.members()),
            "bit" => return ValueKind::Bit,
            "timestamp" => return ValueKind::Timestamp,
            "year" => return ValueKind::Year,
            "json" => return ValueKind::Json,
            "binary" => return column.column_type.trim_start_matches("binary(").trim_end_matches(')').parse().map_or(ValueKind::Plain, ValueKind::Binary),
            _ => return ValueKind::Plain,
        };
        match (column.unsigned(), bits) {
            (true, bits) => ValueKind::Unsigned(bits),
            (false, 24) => ValueKind::SignedMedium,
            (false, _) => ValueKind::Plain,
        }
    }
}

/// Corrects one decoded cell. `Err` carries what could not be decoded.
pub fn convert(kind: &ValueKind, value: BinlogValue<'_>) -> Result<Value, String> {
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(_) => return Err("binary JSON is decoded by `json::exact`, not here".into()),
        BinlogValue::JsonDiff(_) => return Err("a partial JSON update (binlog_row_value_options=PARTIAL_JSON) cannot be replayed".into()),
    };
    if value == Value::NULL {
        return Ok(value);
    }
    Ok(match (kind, value) {
        (ValueKind::Unsigned(bits), Value::Int(i)) => Value::UInt(if *bits == 64 { i as u64 } else { (i as u64) & ((1u64 << bits) - 1) }),
        (ValueKind::SignedMedium, Value::Int(i)) => {
            let raw = i & 0xFF_FFFF;
            Value::Int(if raw >= 0x80_0000 { raw - 0x100_0000 } else { raw })
        }
        (ValueKind::Enum(members), Value::Int(index)) => Value::Bytes(enum_member(members, index)?),
        (ValueKind::Set(members), Value::Bytes(mask)) => Value::Bytes(set_members(members, &mask)?),
        (ValueKind::Bit, Value::Bytes(bytes)) => Value::UInt(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))),
        (ValueKind::Timestamp, Value::Bytes(text)) => timestamp(&String::from_utf8_lossy(&text))?,
        (ValueKind::Timestamp, Value::Int(secs)) => timestamp(&secs.to_string())?,
        (ValueKind::Binary(length), Value::Bytes(mut bytes)) => {
            if bytes.len() < *length {
                bytes.resize(*length, 0);
            }
            Value::Bytes(bytes)
        }
        (ValueKind::Year, Value::Bytes(text)) => match String::from_utf8_lossy(&text).parse::<i64>() {
            Ok(1900) => Value::Int(0),
            Ok(year) => Value::Int(year),
            Err(_) => return Err(format!("undecodable YEAR {text:?}")),
        },
        (_, Value::Time(negative, days, hours, minutes, seconds, micros)) => time_text(negative, days, hours, minutes, seconds, micros),
        (_, other) => other,
    })
}

/// A TIME as text, `-838:59:59.500000`. Bound as a TIME parameter, MySQL 9.7 rejects values of
/// 838 hours with a fraction (error 1690) that its columns hold; as text every server takes the
/// whole range, on both flavors.
fn time_text(negative: bool, days: u32, hours: u8, minutes: u8, seconds: u8, micros: u32) -> Value {
    let sign = if negative { "-" } else { "" };
    let hours = u64::from(days) * 24 + u64::from(hours);
    Value::Bytes(format!("{sign}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}").into_bytes())
}

/// A TIME(1) or TIME(2) as the binlog stores it: 3 bytes of whole seconds offset by 0x800000,
/// then 1 byte of hundredths, counted backwards from the next second for negative times.
/// `mysql_common` 0.37.3 overflows on a negative time with a fraction (a panic in debug
/// builds, a wrong value in release builds), so these are decoded here.
fn time2_in_hundredths(bytes: &[u8]) -> Value {
    let mut whole = ((i64::from(bytes[0]) << 16) | (i64::from(bytes[1]) << 8) | i64::from(bytes[2])) - 0x80_0000;
    let mut hundredths = i64::from(bytes[3]);
    if whole < 0 && hundredths != 0 {
        whole += 1;
        hundredths -= 0x100;
    }
    let packed = (whole << 24) + hundredths * 10_000;
    let (negative, packed) = (packed < 0, packed.abs());
    let hms = packed >> 24;
    let hours = (hms >> 12) % (1 << 10);
    Value::Time(negative, (hours / 24) as u32, (hours % 24) as u8, ((hms >> 6) % (1 << 6)) as u8, (hms % (1 << 6)) as u8, (packed % (1 << 24)) as u32)
}

fn enum_member(members: &[String], index: i64) -> Result<Vec<u8>, String> {
    match index {
        0 => Ok(Vec::new()),
        i => members.get(i as usize - 1).map(|m| m.clone().into_bytes()).ok_or_else(|| format!("ENUM index {i} is beyond its {} members", members.len())),
    }
}

fn set_members(members: &[String], mask: &[u8]) -> Result<Vec<u8>, String> {
    let bits = mask.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if members.len() < 64 && bits >> members.len() != 0 {
        return Err(format!("SET bitmask {bits:#x} names members beyond its {}", members.len()));
    }
    let chosen: Vec<&str> = members.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, m)| m.as_str()).collect();
    Ok(chosen.join(",").into_bytes())
}

/// `"1700000000.123456"` (UTC epoch) -> a DATETIME value; 0 is MySQL's zero timestamp.
fn timestamp(text: &str) -> Result<Value, String> {
    let (secs, micros) = text.split_once('.').unwrap_or((text, "0"));
    let secs: i64 = secs.parse().map_err(|_| format!("undecodable TIMESTAMP {text:?}"))?;
    let micros: u32 = format!("{micros:0<6}")[..6].parse().map_err(|_| format!("undecodable TIMESTAMP {text:?}"))?;
    if secs == 0 && micros == 0 {
        return Ok(Value::Date(0, 0, 0, 0, 0, 0, 0));
    }
    let t = chrono::DateTime::from_timestamp(secs, micros * 1000).ok_or_else(|| format!("TIMESTAMP {text} out of range"))?;
    use chrono::{Datelike, Timelike};
    Ok(Value::Date(t.year() as u16, t.month() as u8, t.day() as u8, t.hour() as u8, t.minute() as u8, t.second() as u8, micros))
}

/// Per-TABLE_MAP decoding instructions for every column of a table.
pub struct RowDecoder {
    cells: Vec<(ColumnType, Vec<u8>, ValueKind)>,
    /// For each output position, the source column ordinal it takes.
    picks: Vec<usize>,
}

/// One cell of a row image.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A value, bound through its column's placeholder.
    Value(Value),
    /// An SQL expression that rebuilds the value, written in place of the column's placeholder,
    /// with its own parameters: a MySQL JSON value that no text rebuilds exactly (see `json`).
    Expr { sql: String, params: Vec<Value> },
}

impl Cell {
    /// The cell's value. Key columns and the changelog's columns are never JSON, so their
    /// cells are always values; an expression reads as NULL here.
    pub fn value(&self) -> &Value {
        static NULL: Value = Value::NULL;
        match self {
            Cell::Value(v) => v,
            Cell::Expr { .. } => &NULL,
        }
    }
}

/// A row image: the picked columns' cells, in pick order.
pub type RowImage = Vec<Cell>;
/// A row change's images: before (updates, deletes) and after (inserts, updates).
pub type ImagePair = (Option<RowImage>, Option<RowImage>);

impl RowDecoder {
    /// `columns` are the table's columns in order (all of them); `picks` are the ordinals to keep.
    pub fn new(tme: &TableMapEvent<'_>, columns: &[Column], picks: Vec<usize>) -> Result<RowDecoder, String> {
        let count = tme.columns_count() as usize;
        if count != columns.len() {
            return Err(format!("the binlog shows {count} columns for `{}`.`{}` but the table has {}: was it altered during the migration?", tme.database_name(), tme.table_name(), columns.len()));
        }
        let cells = (0..count)
            .map(|i| {
                let ty = tme.get_column_type(i).map_err(|e| e.to_string())?.ok_or("a column without a type")?;
                let meta = tme.get_column_metadata(i).unwrap_or(&[]).to_vec();
                Ok((ty, meta, ValueKind::of(&columns[i])))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RowDecoder { cells, picks })
    }

    /// Decodes every row of a rows event as (before image, after image).
    pub fn rows(&self, event: &RowsEventData<'_>) -> Result<Vec<ImagePair>, String> {
        let before: Option<Vec<bool>> = event.columns_before_image().map(|b| b.iter().map(|x| *x).collect());
        let after: Option<Vec<bool>> = event.columns_after_image().map(|b| b.iter().map(|x| *x).collect());
        if matches!(event, RowsEventData::PartialUpdateRowsEvent(_)) {
            return Err("partial JSON update events cannot be replayed; set binlog_row_value_options=''".into());
        }
        let mut buf = ParseBuf(event.rows_data());
        let mut rows = Vec::new();
        while !buf.is_empty() {
            let b = before.as_deref().map(|present| self.image(&mut buf, present)).transpose()?;
            let a = after.as_deref().map(|present| self.image(&mut buf, present)).transpose()?;
            rows.push((b, a));
        }
        Ok(rows)
    }

    fn image(&self, buf: &mut ParseBuf<'_>, present: &[bool]) -> Result<RowImage, String> {
        let present = &present[..self.cells.len().min(present.len())];
        let count = present.iter().filter(|p| **p).count();
        let nulls: &[u8] = buf.parse(count.div_ceil(8)).map_err(|e| format!("truncated row image: {e}"))?;
        let mut full = vec![Cell::Value(Value::NULL); self.cells.len()];
        let mut image_index = 0;
        for (i, (ty, meta, kind)) in self.cells.iter().enumerate() {
            if !present[i] {
                continue;
            }
            let is_null = nulls[image_index / 8] & (1 << (image_index % 8)) != 0;
            image_index += 1;
            if is_null {
                continue;
            }
            if *ty == ColumnType::MYSQL_TYPE_TIME2 && matches!(meta.first(), Some(1 | 2)) {
                let bytes: &[u8] = buf.parse(4).map_err(|e| format!("undecodable column {i}: {e}"))?;
                full[i] = Cell::Value(convert(kind, BinlogValue::Value(time2_in_hundredths(bytes))).map_err(|e| format!("column {i}: {e}"))?);
                continue;
            }
            // A view of the buffer that lives no longer than `meta`, as the parser's context requires.
            let mut cell = ParseBuf(buf.0);
            let raw: BinlogValue<'_> = cell.parse((*ty, meta.as_slice(), false, false)).map_err(|e| format!("undecodable column {i}: {e}"))?;
            buf.0 = &buf.0[buf.0.len() - cell.0.len()..];
            full[i] = match raw {
                BinlogValue::Jsonb(json) => match super::json::exact(&json).map_err(|e| format!("column {i}: a JSON value that cannot be replayed exactly: {e}"))? {
                    ExactJson::Text(text) => Cell::Value(Value::Bytes(text.into_bytes())),
                    ExactJson::Expr { sql, params } => Cell::Expr { sql, params },
                },
                raw => Cell::Value(convert(kind, raw).map_err(|e| format!("column {i}: {e}"))?),
            };
        }
        Ok(self.picks.iter().map(|&p| std::mem::replace(&mut full[p], Cell::Value(Value::NULL))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_binary_values_to_their_length() {
        let padded = convert(&ValueKind::Binary(4), BinlogValue::Value(Value::Bytes(vec![1, 2]))).unwrap();
        assert_eq!(padded, Value::Bytes(vec![1, 2, 0, 0]));
        let column = Column {
            name: "b".into(),
            ordinal: 0,
            data_type: "binary".into(),
            column_type: "binary(10)".into(),
            nullable: false,
            charset: None,
            collation: None,
            generated: false,
            has_default: false,
            auto_increment: false,
        };
        assert_eq!(ValueKind::of(&column), ValueKind::Binary(10));
    }

    #[test]
    fn decodes_times_in_hundredths_of_either_sign() {
        // Bytes as MariaDB writes them for TIME(2): whole seconds + 0x800000, then hundredths.
        let encode = |negative: bool, secs: i64, hundredths: i64| {
            let (mut whole, mut frac) = (secs, hundredths);
            if negative {
                whole = -secs;
                frac = -hundredths;
                if frac != 0 {
                    whole -= 1;
                    frac += 0x100;
                }
            }
            let whole = (whole + 0x80_0000) as u32;
            [(whole >> 16) as u8, (whole >> 8) as u8, whole as u8, frac as u8]
        };
        let hms = |h: i64, m: i64, s: i64| (h << 12) | (m << 6) | s;
        assert_eq!(time2_in_hundredths(&encode(false, hms(1, 2, 3), 45)), Value::Time(false, 0, 1, 2, 3, 450_000));
        assert_eq!(time2_in_hundredths(&encode(true, hms(0, 0, 37), 25)), Value::Time(true, 0, 0, 0, 37, 250_000));
        assert_eq!(time2_in_hundredths(&encode(true, hms(838, 59, 59), 99)), Value::Time(true, 34, 22, 59, 59, 990_000));
        assert_eq!(time2_in_hundredths(&encode(true, hms(0, 0, 1), 0)), Value::Time(true, 0, 0, 0, 1, 0));
    }

    #[test]
    fn times_bind_as_text_across_their_whole_range() {
        let text = |negative, days, hours, minutes, seconds, micros| convert(&ValueKind::Plain, v(Value::Time(negative, days, hours, minutes, seconds, micros))).unwrap();
        assert_eq!(text(false, 34, 22, 26, 9, 740_793), Value::Bytes(b"838:26:09.740793".to_vec()));
        assert_eq!(text(true, 34, 22, 0, 0, 1), Value::Bytes(b"-838:00:00.000001".to_vec()));
        assert_eq!(text(false, 0, 1, 2, 3, 0), Value::Bytes(b"01:02:03.000000".to_vec()));
    }

    fn v(x: Value) -> BinlogValue<'static> {
        BinlogValue::Value(x)
    }

    #[test]
    fn unsigned_integers_from_signed_binlog_values() {
        assert_eq!(convert(&ValueKind::Unsigned(8), v(Value::Int(-1))).unwrap(), Value::UInt(255));
        assert_eq!(convert(&ValueKind::Unsigned(16), v(Value::Int(-1))).unwrap(), Value::UInt(65535));
        assert_eq!(convert(&ValueKind::Unsigned(24), v(Value::Int(0xFF_FFFF))).unwrap(), Value::UInt(16_777_215));
        assert_eq!(convert(&ValueKind::Unsigned(32), v(Value::Int(-1))).unwrap(), Value::UInt(4_294_967_295));
        assert_eq!(convert(&ValueKind::Unsigned(64), v(Value::Int(-1))).unwrap(), Value::UInt(u64::MAX));
    }

    #[test]
    fn signed_mediumint_is_sign_extended() {
        assert_eq!(convert(&ValueKind::SignedMedium, v(Value::Int(8_388_608))).unwrap(), Value::Int(-8_388_608));
        assert_eq!(convert(&ValueKind::SignedMedium, v(Value::Int(16_777_215))).unwrap(), Value::Int(-1));
        assert_eq!(convert(&ValueKind::SignedMedium, v(Value::Int(8_388_607))).unwrap(), Value::Int(8_388_607));
        assert_eq!(convert(&ValueKind::SignedMedium, v(Value::Int(-5))).unwrap(), Value::Int(-5));
    }

    #[test]
    fn enum_and_set_become_member_names() {
        let members = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(convert(&ValueKind::Enum(members.clone()), v(Value::Int(2))).unwrap(), Value::Bytes(b"b".to_vec()));
        assert!(convert(&ValueKind::Enum(members.clone()), v(Value::Int(9))).is_err());
        assert_eq!(convert(&ValueKind::Set(members.clone()), v(Value::Bytes(vec![0b101]))).unwrap(), Value::Bytes(b"a,c".to_vec()));
        assert_eq!(convert(&ValueKind::Set(members), v(Value::Bytes(vec![0]))).unwrap(), Value::Bytes(Vec::new()));
    }

    #[test]
    fn bit_timestamp_year() {
        assert_eq!(convert(&ValueKind::Bit, v(Value::Bytes(vec![1, 0]))).unwrap(), Value::UInt(256));
        assert_eq!(convert(&ValueKind::Timestamp, v(Value::Bytes(b"86401.5".to_vec()))).unwrap(), Value::Date(1970, 1, 2, 0, 0, 1, 500_000));
        assert_eq!(convert(&ValueKind::Timestamp, v(Value::Bytes(b"0".to_vec()))).unwrap(), Value::Date(0, 0, 0, 0, 0, 0, 0));
        assert_eq!(convert(&ValueKind::Timestamp, v(Value::Int(1))).unwrap(), Value::Date(1970, 1, 1, 0, 0, 1, 0));
        assert_eq!(convert(&ValueKind::Year, v(Value::Bytes(b"1900".to_vec()))).unwrap(), Value::Int(0));
        assert_eq!(convert(&ValueKind::Year, v(Value::Bytes(b"2155".to_vec()))).unwrap(), Value::Int(2155));
    }

    #[test]
    fn null_passes_through_every_kind() {
        for kind in [ValueKind::Bit, ValueKind::Timestamp, ValueKind::Unsigned(8), ValueKind::Enum(vec![])] {
            assert_eq!(convert(&kind, v(Value::NULL)).unwrap(), Value::NULL);
        }
    }
}
