//! MySQL's binary JSON, as the binlog carries it, turned into something that rebuilds the very
//! same JSON value on the shadow table.
//!
//! A JSON document's text is not enough: MySQL's JSON values also hold DECIMAL numbers, unsigned
//! integers, dates, times and binary strings ("opaque" values), which its text form shows as
//! plain numbers or strings, and its JSON parser reads back with another type (a DECIMAL as a
//! DOUBLE, an unsigned 5 as a signed 5, a DATE as a string). So a value is written as JSON text
//! only when the server's parser rebuilds it exactly; otherwise as an SQL expression of type
//! JSON, built from `JSON_ARRAY`, `JSON_OBJECT` and typed casts of bound parameters, every
//! part of it checked against a MySQL 9.7 server (same binary value, byte for byte).
//!
//! Invariants: a value this module cannot rebuild exactly (an opaque type it does not know, a
//! DECIMAL precision no expression gives, a string that is not UTF-8...) is an error naming it,
//! never a guess; every value travels as a bound parameter, and the SQL text only ever holds
//! numbers decoded here as type parameters (the precision and scale of a DECIMAL, the length of
//! a BINARY or BIT).
//!
//! What the server does, and this module relies on (as checked on MySQL 9.7):
//! - Its JSON parser reads a number with `.` or an exponent as a DOUBLE (the shortest digits that
//!   round-trip give the same double, `-0e0` and subnormals included), a negative integer as
//!   INTEGER, and a non-negative one as INTEGER up to 4294967295 but as UNSIGNED INTEGER above
//!   (so 5000000000 as text would come back unsigned, and an unsigned 5 as signed).
//! - A DECIMAL keeps, besides its digits and scale, a precision: its count of integer digits,
//!   which depends on how it was made (`0.5` written as a literal has 1, `CAST(0.5 AS
//!   DECIMAL(10,2))` has 9). It shows only in the binary value (`JSON_STORAGE_SIZE`, a replica),
//!   but it is kept all the same; which expression gives which precision is in [`decimal`].
//! - TIMESTAMP and the binary types keep the column type they came from, which `JSON_TYPE` or
//!   the text (`base64:type252:...`) shows: VARBINARY is what `UNHEX` gives; TIMESTAMP, BINARY,
//!   BIT and the four BLOB sizes are rebuilt through a `JSON_TABLE` column of that type. A
//!   TIMESTAMP passes through the session time zone, which must be a fixed offset (alterego's
//!   sessions use `+00:00`).
//! - DATE and DATETIME are bound as binary date parameters (a zero date or `2024-02-30` goes
//!   through unchecked); TIME as text cast to CHAR first (see [`opaque`]).
//! - Parameters are typed from their context (MySQL 8.0.22 and later): the DECIMAL forms that
//!   keep a literal's precision rely on it.
//! - Strings are bound as text in the connection's character set, which must be utf8mb4
//!   (`server::SESSION_SETUP`); binary data travels hex-encoded.

use mysql_async::Value;
use mysql_common::binlog::jsonb;
use mysql_common::constants::ColumnType;

/// A JSON value ready to be written: plain text when MySQL's JSON parser rebuilds it exactly,
/// otherwise an SQL expression of type JSON with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum ExactJson {
    /// JSON text, for a JSON column to parse (bound to a `?` assigned to the column, or
    /// `CAST(? AS JSON)`).
    Text(String),
    /// An expression of type JSON; `params` bind its `?`s in order.
    Expr { sql: String, params: Vec<Value> },
}

/// How to write `value` so that the server rebuilds it exactly. `Err` names what cannot be.
pub fn exact(value: &jsonb::Value<'_>) -> Result<ExactJson, String> {
    if is_text(value)? {
        let mut text = String::new();
        write_text(value, &mut text)?;
        return Ok(ExactJson::Text(text));
    }
    if value.is_array() || value.is_object() {
        let mut expr = Expr::default();
        expr.write(value)?;
        return Ok(ExactJson::Expr { sql: expr.sql, params: expr.params });
    }
    let leaf = leaf(value)?;
    // A scalar becomes JSON the way it would as an element of an array.
    let sql = if leaf.json { leaf.sql } else { format!("JSON_EXTRACT(JSON_ARRAY({}), '$[0]')", leaf.sql) };
    Ok(ExactJson::Expr { sql, params: vec![leaf.param] })
}

/// The elements of an array or the members of an object.
enum Children<'a> {
    Array(Vec<jsonb::Value<'a>>),
    Object(Vec<(jsonb::ObjectKey<'a>, jsonb::Value<'a>)>),
}

fn children<'a>(value: &'a jsonb::Value<'a>) -> Result<Option<Children<'a>>, String> {
    let bad = |e: std::io::Error| format!("undecodable JSON: {e}");
    Ok(Some(match value {
        jsonb::Value::SmallArray(a) => Children::Array(a.iter().collect::<Result<_, _>>().map_err(bad)?),
        jsonb::Value::LargeArray(a) => Children::Array(a.iter().collect::<Result<_, _>>().map_err(bad)?),
        jsonb::Value::SmallObject(o) => Children::Object(o.iter().collect::<Result<_, _>>().map_err(bad)?),
        jsonb::Value::LargeObject(o) => Children::Object(o.iter().collect::<Result<_, _>>().map_err(bad)?),
        _ => return Ok(None),
    }))
}

/// Whether MySQL's JSON parser rebuilds `value` exactly from the text [`write_text`] gives.
fn is_text(value: &jsonb::Value<'_>) -> Result<bool, String> {
    Ok(match value {
        jsonb::Value::Null | jsonb::Value::Bool(_) | jsonb::Value::String(_) | jsonb::Value::F64(_) => true,
        jsonb::Value::I16(_) | jsonb::Value::I32(_) => true,
        jsonb::Value::I64(i) => signed_is_text(*i),
        jsonb::Value::U16(_) | jsonb::Value::U32(_) => false,
        jsonb::Value::U64(u) => unsigned_is_text(*u),
        jsonb::Value::Opaque(_) => false,
        _ => match children(value)? {
            Some(Children::Array(elements)) => {
                for e in &elements {
                    if !is_text(e)? {
                        return Ok(false);
                    }
                }
                true
            }
            Some(Children::Object(members)) => {
                for (_, v) in &members {
                    if !is_text(v)? {
                        return Ok(false);
                    }
                }
                true
            }
            None => false,
        },
    })
}

/// The server parses a non-negative integer literal above `u32::MAX` as UNSIGNED INTEGER.
fn signed_is_text(i: i64) -> bool {
    i < 0 || i <= i64::from(u32::MAX)
}

fn unsigned_is_text(u: u64) -> bool {
    u > u64::from(u32::MAX)
}

/// Writes `value` (for which [`is_text`] holds) as JSON text.
fn write_text(value: &jsonb::Value<'_>, out: &mut String) -> Result<(), String> {
    use std::fmt::Write;
    match value {
        jsonb::Value::Null => out.push_str("null"),
        jsonb::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        jsonb::Value::I16(i) => write!(out, "{i}").unwrap(),
        jsonb::Value::I32(i) => write!(out, "{i}").unwrap(),
        jsonb::Value::I64(i) => write!(out, "{i}").unwrap(),
        jsonb::Value::U16(u) => write!(out, "{u}").unwrap(),
        jsonb::Value::U32(u) => write!(out, "{u}").unwrap(),
        jsonb::Value::U64(u) => write!(out, "{u}").unwrap(),
        jsonb::Value::F64(f) => out.push_str(&double_text(*f)?),
        jsonb::Value::String(s) => write_string(utf8(s.str_raw(), "string")?, out),
        jsonb::Value::Opaque(_) => return Err("an opaque JSON value has no exact text".into()),
        _ => match children(value)? {
            Some(Children::Array(elements)) => {
                out.push('[');
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_text(e, out)?;
                }
                out.push(']');
            }
            Some(Children::Object(members)) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(utf8(k.value_raw(), "key")?, out);
                    out.push(':');
                    write_text(v, out)?;
                }
                out.push('}');
            }
            None => unreachable!("every JSON value is a scalar, an array or an object"),
        },
    }
    Ok(())
}

/// A double as the shortest digits that give it back, always with an exponent (`1e0`, `-0e0`,
/// `1.5e-7`) so that the server reads a DOUBLE, never an integer.
fn double_text(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("a JSON double that is not finite ({f})"));
    }
    Ok(format!("{f:e}"))
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("a JSON {what} that is not valid UTF-8 ({})", hex::encode(&bytes[..bytes.len().min(64)])))
}

/// A JSON string literal: quotes, backslashes and control characters escaped, the rest as is.
fn write_string(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An SQL expression being built, with its parameters.
#[derive(Default)]
struct Expr {
    sql: String,
    params: Vec<Value>,
}

impl Expr {
    fn param(&mut self, placeholder: &str, value: Value) {
        self.sql.push_str(placeholder);
        self.params.push(value);
    }

    /// Writes `value` as an argument of `JSON_ARRAY` or a value of `JSON_OBJECT`.
    fn write(&mut self, value: &jsonb::Value<'_>) -> Result<(), String> {
        if is_text(value)? {
            let mut text = String::new();
            write_text(value, &mut text)?;
            self.param("CAST(? AS JSON)", Value::Bytes(text.into_bytes()));
            return Ok(());
        }
        match children(value)? {
            Some(Children::Array(elements)) => {
                self.sql.push_str("JSON_ARRAY(");
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(", ");
                    }
                    self.write(e)?;
                }
                self.sql.push(')');
            }
            Some(Children::Object(members)) => {
                self.sql.push_str("JSON_OBJECT(");
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(", ");
                    }
                    self.param("?", Value::Bytes(utf8(k.value_raw(), "key")?.as_bytes().to_vec()));
                    self.sql.push_str(", ");
                    self.write(v)?;
                }
                self.sql.push(')');
            }
            None => self.leaf(leaf(value)?),
        }
        Ok(())
    }

    fn leaf(&mut self, leaf: Leaf) {
        self.param(&leaf.sql, leaf.param);
    }
}

/// An SQL expression for a scalar that has no exact text, with its one parameter.
#[derive(Debug, PartialEq)]
struct Leaf {
    sql: String,
    param: Value,
    /// Whether the expression is of type JSON already (otherwise `JSON_ARRAY` makes it JSON).
    json: bool,
}

impl Leaf {
    fn new(sql: &str, param: Value) -> Leaf {
        Leaf { sql: sql.to_string(), param, json: false }
    }

    /// The value that a `JSON_TABLE` column of type `column` takes from `source` (an expression
    /// with one `?`), as JSON: the column's type is what the JSON keeps (TIMESTAMP, BLOB,
    /// BIT...). `JSON_ARRAY` must read the column itself: through a scalar subquery, every BLOB
    /// type would come out as BLOB.
    fn through_column(source: &str, column: &str, param: Value) -> Leaf {
        let sql = format!("JSON_EXTRACT((SELECT JSON_ARRAY(x) FROM JSON_TABLE(JSON_ARRAY({source}), '$' COLUMNS (x {column} PATH '$[0]' ERROR ON ERROR)) AS jt), '$[0]')");
        Leaf { sql, param, json: true }
    }
}

/// A scalar that has no exact text.
fn leaf(value: &jsonb::Value<'_>) -> Result<Leaf, String> {
    Ok(match value {
        jsonb::Value::I64(i) => Leaf::new("CAST(? AS SIGNED)", Value::Int(*i)),
        jsonb::Value::U16(u) => Leaf::new("CAST(? AS UNSIGNED)", Value::UInt(u64::from(*u))),
        jsonb::Value::U32(u) => Leaf::new("CAST(? AS UNSIGNED)", Value::UInt(u64::from(*u))),
        jsonb::Value::U64(u) => Leaf::new("CAST(? AS UNSIGNED)", Value::UInt(*u)),
        jsonb::Value::Opaque(o) => opaque(o.value_type(), o.data_raw())?,
        other => return Err(format!("no expression for the JSON value {other:?}")),
    })
}

/// An opaque value: a MySQL type JSON has none of, kept with its column type and raw bytes.
fn opaque(ty: ColumnType, data: &[u8]) -> Result<Leaf, String> {
    let binary = |column: &str| Leaf::through_column("UNHEX(?)", column, hex_param(data));
    Ok(match ty {
        ColumnType::MYSQL_TYPE_NEWDECIMAL => decimal(data)?,
        ColumnType::MYSQL_TYPE_DATE => {
            let t = DateTime::unpack(packed(data, "DATE")?, "DATE")?;
            if (t.hour, t.minute, t.second, t.micros) != (0, 0, 0, 0) {
                return Err(format!("a JSON DATE with a time of day ({})", hex::encode(data)));
            }
            Leaf::new("CAST(? AS DATE)", t.value())
        }
        ColumnType::MYSQL_TYPE_DATETIME => Leaf::new("CAST(? AS DATETIME(6))", DateTime::unpack(packed(data, "DATETIME")?, "DATETIME")?.value()),
        ColumnType::MYSQL_TYPE_TIMESTAMP => {
            let t = DateTime::unpack(packed(data, "TIMESTAMP")?, "TIMESTAMP")?;
            Leaf::through_column("CAST(? AS DATETIME(6))", "TIMESTAMP(6)", t.value())
        }
        // Not `CAST(? AS TIME(6))`: a text parameter the server types as TIME is read as a
        // DATETIME first when it can be, so `24:00:00` or `103:10:20` silently become 00:00:00.
        ColumnType::MYSQL_TYPE_TIME => Leaf::new("CAST(CAST(? AS CHAR) AS TIME(6))", Value::Bytes(time_text(packed(data, "TIME")?)?.into_bytes())),
        ColumnType::MYSQL_TYPE_VARCHAR => Leaf::new("UNHEX(?)", hex_param(data)),
        ColumnType::MYSQL_TYPE_TINY_BLOB if data.len() <= 255 => binary("TINYBLOB"),
        ColumnType::MYSQL_TYPE_BLOB if data.len() <= 65_535 => binary("BLOB"),
        ColumnType::MYSQL_TYPE_MEDIUM_BLOB => binary("MEDIUMBLOB"),
        ColumnType::MYSQL_TYPE_LONG_BLOB => binary("LONGBLOB"),
        // BINARY(n) keeps its padding in the data, so the column is exactly as long.
        ColumnType::MYSQL_TYPE_STRING if data.len() <= 255 => binary(&format!("BINARY({})", data.len())),
        // BIT(n) keeps (n + 7) / 8 bytes, which BIT(8 * bytes) gives back whatever n was.
        ColumnType::MYSQL_TYPE_BIT if (1..=8).contains(&data.len()) => {
            let bits = data.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            Leaf::through_column("CAST(? AS UNSIGNED)", &format!("BIT({})", data.len() * 8), Value::UInt(bits))
        }
        other => return Err(format!("a JSON opaque value of type {other:?} ({} bytes) cannot be rebuilt exactly", data.len())),
    })
}

fn hex_param(data: &[u8]) -> Value {
    Value::Bytes(hex::encode(data).into_bytes())
}

/// The 8-byte little-endian packed value MySQL stores for a date or time inside JSON.
fn packed(data: &[u8], what: &str) -> Result<i64, String> {
    let bytes: [u8; 8] = data.try_into().map_err(|_| format!("a JSON {what} of {} bytes instead of 8", data.len()))?;
    Ok(i64::from_le_bytes(bytes))
}

/// A DATE, DATETIME or TIMESTAMP unpacked from MySQL's packed integer.
#[derive(Debug, PartialEq)]
struct DateTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
}

impl DateTime {
    /// Packed as `((((year * 13 + month) << 5 | day) << 17 | hour << 12 | minute << 6 | second) << 24) + micros`.
    fn unpack(packed: i64, what: &str) -> Result<DateTime, String> {
        let bad = || format!("an invalid JSON {what} (packed {packed:#x})");
        if packed < 0 {
            return Err(bad());
        }
        let micros = (packed & 0xFF_FFFF) as u32;
        let whole = packed >> 24;
        let hms = whole & 0x1_FFFF;
        let ymd = whole >> 17;
        let ym = ymd >> 5;
        let t = DateTime {
            year: u16::try_from(ym / 13).map_err(|_| bad())?,
            month: (ym % 13) as u8,
            day: (ymd & 31) as u8,
            hour: (hms >> 12) as u8,
            minute: ((hms >> 6) & 63) as u8,
            second: (hms & 63) as u8,
            micros,
        };
        if t.year > 9999 || t.hour > 23 || t.minute > 59 || t.second > 59 || t.micros > 999_999 {
            return Err(bad());
        }
        Ok(t)
    }

    /// Bound as a binary DATETIME parameter: no text to parse, so no `sql_mode` check on the way
    /// (a zero date or `2024-02-30`, which the source column may hold, goes through as is).
    fn value(&self) -> Value {
        Value::Date(self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros)
    }
}

/// A TIME unpacked from MySQL's packed integer (`(hour << 12 | minute << 6 | second) << 24) +
/// micros`, negated when negative), as `[-]h:mm:ss.ffffff`. Bound as text: the server refuses
/// binary TIME parameters with a fraction near the limits (`838:59:58.5` is "out of range").
fn time_text(packed: i64) -> Result<String, String> {
    let bad = || format!("an invalid JSON TIME (packed {packed:#x})");
    let magnitude = packed.checked_abs().ok_or_else(bad)?;
    let micros = magnitude & 0xFF_FFFF;
    let hms = magnitude >> 24;
    let (hour, minute, second) = (hms >> 12, (hms >> 6) & 63, hms & 63);
    if hour > 838 || minute > 59 || second > 59 || micros > 999_999 {
        return Err(bad());
    }
    Ok(format!("{}{hour:02}:{minute:02}:{second:02}.{micros:06}", if packed < 0 { "-" } else { "" }))
}

/// A DECIMAL as stored inside JSON: precision, scale, then MySQL's binary DECIMAL of that
/// precision and scale.
///
/// The server keeps the precision the value had (its count of integer digits `I`, plus the
/// scale). For a value with `d` significant integer digits (0 when it is below 1), MySQL 9.7
/// gives (checked for d up to 36 and scales up to 30):
/// - `COALESCE(?, CAST(NULL AS DECIMAL(..)))` with the text bound: `I = d`, or `I = d + 1` when
///   the text starts with one zero (`0.5`, `012.5`): the server's own text-to-DECIMAL, as for
///   literals, which is where most JSON decimals come from.
/// - a `JSON_TABLE` column of type `DECIMAL(I + S, S)`: any `I` from `d` to the end of `d`'s
///   group of 9 digits (columns store integer digits by groups of 9 and drop the groups that
///   are all zero), as JSON made from a DECIMAL column has.
/// - `CAST(? AS DECIMAL(M, S))`: `I` is the text's integer digit count rounded up to a multiple
///   of 9, as from a `CAST` in the source.
///
/// Any other precision is an error. The scale, which shows in the text (`2.50`), is always kept.
fn decimal(data: &[u8]) -> Result<Leaf, String> {
    let d = Decimal::unpack(data)?;
    let (precision, scale) = (d.precision, d.scale);
    let unfit = || format!("a JSON DECIMAL {} of precision {precision} and scale {scale} cannot be rebuilt with the same precision", d.text(0));
    if scale > 30 {
        return Err(unfit());
    }
    let digits = d.significant_integer_digits();
    let wanted = precision - scale;
    let groups = |n: usize| n.div_ceil(9) * 9;
    // The text with `extra` zeros before the significant integer digits (`.5` with neither).
    let text = |extra: usize| Value::Bytes(d.text(extra).into_bytes());
    // A type that holds the value, as the server accepts it (precision 1 to 65).
    let declared = |integer: usize| format!("DECIMAL({},{scale})", (integer + scale).max(1));
    if wanted == digits && (digits > 0 || scale > 0) && precision <= 65 {
        Ok(Leaf::new(&format!("COALESCE(?, CAST(NULL AS {}))", declared(wanted)), text(0)))
    } else if wanted == digits + 1 && precision <= 65 {
        Ok(Leaf::new(&format!("COALESCE(?, CAST(NULL AS {}))", declared(wanted)), text(1)))
    } else if digits > 0 && wanted > digits && wanted <= groups(digits) && precision <= 65 {
        Ok(Leaf::through_column("?", &format!("DECIMAL({precision},{scale})"), text(0)))
    } else if let Some(extra) = (0..=1).find(|extra| digits + extra > 0 && groups(digits + extra) == wanted && digits + extra + scale <= 65) {
        Ok(Leaf::new(&format!("CAST(? AS {})", declared(digits + extra)), text(extra)))
    } else {
        Err(unfit())
    }
}

/// A DECIMAL's digits, as read from MySQL's binary form.
#[derive(Debug, PartialEq)]
struct Decimal {
    precision: usize,
    scale: usize,
    negative: bool,
    /// `precision - scale` digits, leading zeros included.
    integer: String,
    /// `scale` digits.
    fraction: String,
}

/// Bytes taken by a group of this many leftover digits (fewer than 9).
const DIGIT_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

impl Decimal {
    /// Reads `[precision, scale, binary...]`. The binary form is big-endian groups of 9 digits
    /// (4 bytes each; a partial group first for the integer part and last for the fraction),
    /// every bit inverted when negative, then the top bit flipped.
    fn unpack(data: &[u8]) -> Result<Decimal, String> {
        let bad = |why: &str| format!("an invalid JSON DECIMAL ({why}: {})", hex::encode(&data[..data.len().min(40)]));
        let ([precision, scale], binary) = data.split_first_chunk::<2>().ok_or_else(|| bad("too short"))?;
        let (precision, scale) = (usize::from(*precision), usize::from(*scale));
        if precision == 0 || scale > precision || precision > 81 {
            return Err(bad("precision and scale out of range"));
        }
        let integer_digits = precision - scale;
        let groups_of = |n: usize| -> Vec<usize> {
            let mut sizes = Vec::new();
            if !n.is_multiple_of(9) {
                sizes.push(n % 9);
            }
            sizes.extend(std::iter::repeat_n(9, n / 9));
            sizes
        };
        let integer_groups = groups_of(integer_digits);
        let mut fraction_groups: Vec<usize> = std::iter::repeat_n(9, scale / 9).collect();
        if !scale.is_multiple_of(9) {
            fraction_groups.push(scale % 9);
        }
        let size: usize = integer_groups.iter().chain(&fraction_groups).map(|&n| if n == 9 { 4 } else { DIGIT_BYTES[n] }).sum();
        if binary.len() != size {
            return Err(bad(&format!("{} bytes for DECIMAL({precision},{scale}), which takes {size}", binary.len())));
        }
        let mut bytes = binary.to_vec();
        if let Some(first) = bytes.first_mut() {
            *first ^= 0x80;
        }
        let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
        if negative {
            bytes.iter_mut().for_each(|b| *b = !*b);
        }
        let mut rest = bytes.as_slice();
        let mut read = |groups: &[usize], out: &mut String| -> Result<(), String> {
            for &n in groups {
                let len = if n == 9 { 4 } else { DIGIT_BYTES[n] };
                let (group, tail) = rest.split_at(len);
                rest = tail;
                let value = group.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                if value >= 10u64.pow(n as u32) {
                    return Err(bad("a digit group out of range"));
                }
                out.push_str(&format!("{value:0n$}"));
            }
            Ok(())
        };
        let (mut integer, mut fraction) = (String::new(), String::new());
        read(&integer_groups, &mut integer)?;
        read(&fraction_groups, &mut fraction)?;
        if negative && (integer.bytes().chain(fraction.bytes())).all(|b| b == b'0') {
            // The server writes zero as positive, and no expression gives a negative zero.
            return Err(bad("a negative zero"));
        }
        Ok(Decimal { precision, scale, negative, integer, fraction })
    }

    fn significant_integer_digits(&self) -> usize {
        self.integer.trim_start_matches('0').len()
    }

    /// The value as text, with `extra` zeros before its significant integer digits (`.5` for
    /// 0.5 with none, `0.5` with one), which the server's text-to-DECIMAL counts as digits.
    fn text(&self, extra: usize) -> String {
        let significant = self.integer.trim_start_matches('0');
        let mut s = String::with_capacity(self.precision + 3);
        if self.negative {
            s.push('-');
        }
        s.extend(std::iter::repeat_n('0', extra));
        s.push_str(significant);
        if self.scale > 0 {
            s.push('.');
            s.push_str(&self.fraction);
        } else if s.is_empty() || s == "-" {
            s.push('0');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::binlog::jsonb::{JsonbString, OpaqueValue};
    use mysql_common::io::ParseBuf;

    /// A JSON value to encode in MySQL's binary format (small arrays and objects only).
    enum J {
        Null,
        Bool(bool),
        I16(i16),
        I64(i64),
        U16(u16),
        U64(u64),
        F64(f64),
        Str(&'static str),
        Opaque(ColumnType, Vec<u8>),
        Arr(Vec<J>),
        Obj(Vec<(&'static str, J)>),
    }

    fn varlen(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// The type byte and the bytes of `j` (a small container's bytes start at its header).
    fn encode(j: &J) -> (u8, Vec<u8>) {
        match j {
            J::Null => (0x04, vec![0]),
            J::Bool(b) => (0x04, vec![if *b { 1 } else { 2 }]),
            J::I16(i) => (0x05, i.to_le_bytes().to_vec()),
            J::U16(u) => (0x06, u.to_le_bytes().to_vec()),
            J::I64(i) => (0x09, i.to_le_bytes().to_vec()),
            J::U64(u) => (0x0a, u.to_le_bytes().to_vec()),
            J::F64(f) => (0x0b, f.to_le_bytes().to_vec()),
            J::Str(s) => {
                let mut out = Vec::new();
                varlen(s.len(), &mut out);
                out.extend_from_slice(s.as_bytes());
                (0x0c, out)
            }
            J::Opaque(ty, data) => {
                let mut out = vec![*ty as u8];
                varlen(data.len(), &mut out);
                out.extend_from_slice(data);
                (0x0f, out)
            }
            J::Arr(elements) => (0x02, container(&[], &elements.iter().collect::<Vec<_>>())),
            J::Obj(members) => {
                let keys: Vec<&str> = members.iter().map(|(k, _)| *k).collect();
                (0x00, container(&keys, &members.iter().map(|(_, v)| v).collect::<Vec<_>>()))
            }
        }
    }

    /// A small array (no keys) or object: count, size, key entries, value entries, keys, values.
    fn container(keys: &[&str], values: &[&J]) -> Vec<u8> {
        let n = values.len();
        let header = 4 + keys.len() * 4 + n * 3;
        let mut tail = Vec::new();
        let mut key_entries = Vec::new();
        for k in keys {
            key_entries.extend_from_slice(&((header + tail.len()) as u16).to_le_bytes());
            key_entries.extend_from_slice(&(k.len() as u16).to_le_bytes());
            tail.extend_from_slice(k.as_bytes());
        }
        let mut value_entries = Vec::new();
        for v in values {
            let (ty, bytes) = encode(v);
            value_entries.push(ty);
            if matches!(ty, 0x04..=0x06) {
                let mut inline = bytes.clone();
                inline.resize(2, 0);
                value_entries.extend_from_slice(&inline);
            } else {
                value_entries.extend_from_slice(&((header + tail.len()) as u16).to_le_bytes());
                tail.extend_from_slice(&bytes);
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&((header + tail.len()) as u16).to_le_bytes());
        out.extend(key_entries);
        out.extend(value_entries);
        out.extend(tail);
        out
    }

    /// `j` in binary form, parsed back by `mysql_common` as the binlog decoder does, then rebuilt.
    fn rebuild(j: &J) -> Result<ExactJson, String> {
        let (ty, bytes) = encode(j);
        let mut whole = vec![ty];
        whole.extend(bytes);
        let value: jsonb::Value<'_> = ParseBuf(&whole).parse(()).expect("test JSON encodes");
        exact(&value)
    }

    fn text(j: &J) -> String {
        match rebuild(j) {
            Ok(ExactJson::Text(t)) => t,
            other => panic!("expected text, got {other:?}"),
        }
    }

    fn expr(j: &J) -> (String, Vec<Value>) {
        match rebuild(j) {
            Ok(ExactJson::Expr { sql, params }) => (sql, params),
            other => panic!("expected an expression, got {other:?}"),
        }
    }

    fn bytes(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn decimal_leaf(data: &str) -> Result<(String, String), String> {
        decimal(&unhex(data)).map(|l| match l.param {
            Value::Bytes(b) => (l.sql, String::from_utf8(b).unwrap()),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn plain_json_is_text() {
        let doc = J::Obj(vec![("a", J::Arr(vec![J::Null, J::Bool(true), J::Bool(false), J::I16(-7), J::Str("x")])), ("ключ 😀", J::Obj(vec![("", J::F64(0.1))])), ("big", J::U64(u64::MAX))]);
        assert_eq!(text(&doc), r#"{"a":[null,true,false,-7,"x"],"ключ 😀":{"":1e-1},"big":18446744073709551615}"#);
        assert_eq!(text(&J::Arr(vec![])), "[]");
        assert_eq!(text(&J::Obj(vec![])), "{}");
        assert_eq!(text(&J::Null), "null");
        assert_eq!(text(&J::Str("\"\\\u{0}\u{1f}\n\t\r\u{7f}é/")), r#""\"\\\u0000\u001f\n\t\r"#.to_string() + "\u{7f}é/\"");
    }

    #[test]
    fn integers_are_text_only_where_the_parser_gives_them_back() {
        // The parser reads 0..=4294967295 as INTEGER and anything larger as UNSIGNED INTEGER.
        assert_eq!(text(&J::I64(4_294_967_295)), "4294967295");
        assert_eq!(text(&J::I64(i64::MIN)), "-9223372036854775808");
        assert_eq!(expr(&J::I64(4_294_967_296)), ("JSON_EXTRACT(JSON_ARRAY(CAST(? AS SIGNED)), '$[0]')".into(), vec![Value::Int(4_294_967_296)]));
        assert_eq!(expr(&J::I64(i64::MAX)).1, vec![Value::Int(i64::MAX)]);
        assert_eq!(text(&J::U64(4_294_967_296)), "4294967296");
        assert_eq!(expr(&J::U64(4_294_967_295)), ("JSON_EXTRACT(JSON_ARRAY(CAST(? AS UNSIGNED)), '$[0]')".into(), vec![Value::UInt(4_294_967_295)]));
        assert_eq!(expr(&J::U16(5)).1, vec![Value::UInt(5)]);
        assert_eq!(expr(&J::U64(0)).1, vec![Value::UInt(0)]);
        assert_eq!(exact(&jsonb::Value::U32(7)).unwrap(), ExactJson::Expr { sql: "JSON_EXTRACT(JSON_ARRAY(CAST(? AS UNSIGNED)), '$[0]')".into(), params: vec![Value::UInt(7)] });
    }

    #[test]
    fn doubles_keep_an_exponent_and_every_bit() {
        for (f, t) in [(0.1, "1e-1"), (-0.0, "-0e0"), (0.0, "0e0"), (1.0, "1e0"), (100.0, "1e2"), (5e-324, "5e-324"), (1e300, "1e300"), (f64::MAX, "1.7976931348623157e308"), (123.456, "1.23456e2")] {
            assert_eq!(text(&J::F64(f)), t);
            let back: f64 = t.parse().unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{t}");
        }
        assert!(rebuild(&J::F64(f64::NAN)).unwrap_err().contains("not finite"));
        assert!(rebuild(&J::Arr(vec![J::F64(f64::INFINITY)])).unwrap_err().contains("not finite"));
    }

    #[test]
    fn strings_and_keys_must_be_utf8() {
        let bad = jsonb::Value::String(JsonbString::new(vec![b'a', 0xff]));
        assert!(exact(&bad).unwrap_err().contains("not valid UTF-8"));
        // Keys are bytes in the format: a key that is not UTF-8 is refused in text and in SQL.
        let mut whole = vec![0x00];
        whole.extend(container(&["k"], &[&J::I16(1)]));
        *whole.last_mut().unwrap() = 0xff; // the key's only byte (the value is inlined)
        let value: jsonb::Value<'_> = ParseBuf(&whole).parse(()).unwrap();
        assert!(exact(&value).unwrap_err().contains("key that is not valid UTF-8"), "{:?}", exact(&value));
    }

    #[test]
    fn expressions_keep_exact_parts_as_json_text() {
        let doc = J::Arr(vec![J::I16(1), J::Str("a\"b"), J::Opaque(ColumnType::MYSQL_TYPE_NEWDECIMAL, unhex("03028232")), J::Arr(vec![J::Null, J::F64(2.5)])]);
        assert_eq!(
            expr(&doc),
            (
                "JSON_ARRAY(CAST(? AS JSON), CAST(? AS JSON), COALESCE(?, CAST(NULL AS DECIMAL(3,2))), CAST(? AS JSON))".into(),
                vec![bytes("1"), bytes(r#""a\"b""#), bytes("2.50"), bytes("[null,2.5e0]")]
            )
        );
        let doc = J::Obj(vec![("u", J::U16(5)), ("t", J::Arr(vec![J::I16(1)])), ("n", J::Obj(vec![("😀", J::I64(5_000_000_000))]))]);
        assert_eq!(
            expr(&doc),
            (
                "JSON_OBJECT(?, CAST(? AS UNSIGNED), ?, CAST(? AS JSON), ?, JSON_OBJECT(?, CAST(? AS SIGNED)))".into(),
                vec![bytes("u"), Value::UInt(5), bytes("t"), bytes("[1]"), bytes("n"), bytes("😀"), Value::Int(5_000_000_000)]
            )
        );
    }

    #[test]
    fn opaque_values_become_typed_expressions() {
        let one = |ty: ColumnType, data: &str| expr(&J::Arr(vec![J::Opaque(ty, unhex(data))]));
        assert_eq!(one(ColumnType::MYSQL_TYPE_VARCHAR, "00ff"), ("JSON_ARRAY(UNHEX(?))".into(), vec![bytes("00ff")]));
        let (sql, params) = one(ColumnType::MYSQL_TYPE_STRING, "00ff0000");
        assert!(sql.contains("(x BINARY(4) PATH '$[0]' ERROR ON ERROR)") && sql.contains("JSON_ARRAY(UNHEX(?))"), "{sql}");
        assert_eq!(params, vec![bytes("00ff0000")]);
        let (sql, params) = one(ColumnType::MYSQL_TYPE_BIT, "000a");
        assert!(sql.contains("JSON_ARRAY(CAST(? AS UNSIGNED))") && sql.contains("x BIT(16) PATH"), "{sql}");
        assert_eq!(params, vec![Value::UInt(10)]);
        for (ty, column) in
            [(ColumnType::MYSQL_TYPE_TINY_BLOB, "TINYBLOB"), (ColumnType::MYSQL_TYPE_BLOB, "BLOB"), (ColumnType::MYSQL_TYPE_MEDIUM_BLOB, "MEDIUMBLOB"), (ColumnType::MYSQL_TYPE_LONG_BLOB, "LONGBLOB")]
        {
            let (sql, _) = one(ty, "41");
            assert!(sql.starts_with("JSON_ARRAY(JSON_EXTRACT((SELECT JSON_ARRAY(x) FROM JSON_TABLE(") && sql.contains(&format!("(x {column} PATH")), "{sql}");
        }
        // The TIMESTAMP, a JSON expression already, is not wrapped again at the top.
        let (sql, params) = expr(&J::Opaque(ColumnType::MYSQL_TYPE_TIMESTAMP, unhex("20a107053144b219")));
        assert_eq!(sql, "JSON_EXTRACT((SELECT JSON_ARRAY(x) FROM JSON_TABLE(JSON_ARRAY(CAST(? AS DATETIME(6))), '$' COLUMNS (x TIMESTAMP(6) PATH '$[0]' ERROR ON ERROR)) AS jt), '$[0]')");
        assert_eq!(params, vec![Value::Date(2024, 1, 2, 3, 4, 5, 500_000)]);
        assert_eq!(one(ColumnType::MYSQL_TYPE_DATE, "000000000000b219"), ("JSON_ARRAY(CAST(? AS DATE))".into(), vec![Value::Date(2024, 0, 0, 0, 0, 0, 0)]));
        assert_eq!(one(ColumnType::MYSQL_TYPE_DATETIME, "3f420ffb7efff37e"), ("JSON_ARRAY(CAST(? AS DATETIME(6)))".into(), vec![Value::Date(9999, 12, 31, 23, 59, 59, 999_999)]));
        assert_eq!(one(ColumnType::MYSQL_TYPE_TIME, "e05ef8ff3fffffff"), ("JSON_ARRAY(CAST(CAST(? AS CHAR) AS TIME(6)))".into(), vec![bytes("-12:00:00.500000")]));
    }

    #[test]
    fn opaque_values_that_cannot_be_rebuilt_are_named() {
        let refused = |ty: ColumnType, data: Vec<u8>| exact(&jsonb::Value::Opaque(OpaqueValue::new(ty, data))).unwrap_err();
        assert!(refused(ColumnType::MYSQL_TYPE_GEOMETRY, vec![0; 25]).contains("MYSQL_TYPE_GEOMETRY"));
        assert!(refused(ColumnType::MYSQL_TYPE_VAR_STRING, vec![1]).contains("MYSQL_TYPE_VAR_STRING"));
        assert!(refused(ColumnType::MYSQL_TYPE_YEAR, vec![1]).contains("MYSQL_TYPE_YEAR"));
        assert!(refused(ColumnType::MYSQL_TYPE_BIT, vec![0; 9]).contains("MYSQL_TYPE_BIT"));
        assert!(refused(ColumnType::MYSQL_TYPE_STRING, vec![0; 256]).contains("MYSQL_TYPE_STRING"));
        assert!(refused(ColumnType::MYSQL_TYPE_TINY_BLOB, vec![0; 256]).contains("MYSQL_TYPE_TINY_BLOB"));
        assert!(refused(ColumnType::MYSQL_TYPE_BLOB, vec![0; 65_536]).contains("MYSQL_TYPE_BLOB"));
        assert!(refused(ColumnType::MYSQL_TYPE_DATETIME, vec![0; 7]).contains("7 bytes"));
        // 2024-01-01 24:00:00 and a DATE with a time of day.
        let packed = |hour: i64| (((((2024i64 * 13 + 1) << 5) | 1) << 17 | hour << 12) << 24).to_le_bytes().to_vec();
        assert!(refused(ColumnType::MYSQL_TYPE_DATETIME, packed(24)).contains("invalid JSON DATETIME"));
        assert!(refused(ColumnType::MYSQL_TYPE_DATE, packed(1)).contains("time of day"));
        assert!(exact(&jsonb::Value::Opaque(OpaqueValue::new(ColumnType::MYSQL_TYPE_DATETIME, packed(23)))).is_ok());
        assert!(refused(ColumnType::MYSQL_TYPE_TIME, ((60i64 << 6) << 24).to_le_bytes().to_vec()).contains("invalid JSON TIME"));
        assert!(refused(ColumnType::MYSQL_TYPE_TIME, ((839i64 << 12) << 24).to_le_bytes().to_vec()).contains("invalid JSON TIME"));
    }

    #[test]
    fn packed_dates_and_times() {
        assert_eq!(
            DateTime::unpack(i64::from_le_bytes(unhex("0100000000820300").try_into().unwrap()), "DATETIME").unwrap(),
            DateTime { year: 1, month: 1, day: 1, hour: 0, minute: 0, second: 0, micros: 1 }
        );
        assert_eq!(DateTime::unpack(0, "DATE").unwrap().value(), Value::Date(0, 0, 0, 0, 0, 0, 0));
        assert!(DateTime::unpack(-1, "DATETIME").is_err());
        for (data, want) in [
            ("ffffffffffffffff", "-00:00:00.000001"),
            ("000000ffffffffff", "-00:00:01.000000"),
            ("000000fb6e340000", "838:59:59.000000"),
            ("0000000080010000", "24:00:00.000000"),
            ("0000000000000000", "00:00:00.000000"),
        ] {
            assert_eq!(time_text(i64::from_le_bytes(unhex(data).try_into().unwrap())).unwrap(), want);
        }
        assert!(time_text(i64::MIN).is_err());
    }

    #[test]
    fn decimals_decode_from_the_server_bytes() {
        // Bytes the server wrote, with what it printed.
        let d = Decimal::unpack(&unhex("421e80bc614e35b7bf87350e34c02f075f79075bcd1500bc614e35b7bf87037a")).unwrap();
        assert_eq!((d.precision, d.scale, d.text(0)), (66, 30, "12345678901234567890123456789012345.123456789012345678901234567890".to_string()));
        assert_eq!(Decimal::unpack(&unhex("0a017ffffffffa")).unwrap().text(0), "-.5");
        assert_eq!(Decimal::unpack(&unhex("0a017ffffffffa")).unwrap().text(1), "-0.5");
        assert_eq!(Decimal::unpack(&unhex("04037ffffe")).unwrap().text(1), "-0.001");
        assert_eq!(Decimal::unpack(&unhex("010080")).unwrap().text(0), "0");
        assert_eq!(Decimal::unpack(&unhex("0202b2")).unwrap().text(0), ".50");
        assert_eq!(Decimal::unpack(&unhex("0b028000007b2d")).unwrap().text(0), "123.45");
        assert!(Decimal::unpack(&unhex("0302823200")).unwrap_err().contains("takes 2"));
        assert!(Decimal::unpack(&unhex("0302")).unwrap_err().contains("takes 2"));
        assert!(Decimal::unpack(&unhex("03")).unwrap_err().contains("too short"));
        assert!(Decimal::unpack(&unhex("0203ffff")).unwrap_err().contains("out of range"));
        assert!(Decimal::unpack(&unhex("0302ffff")).unwrap_err().contains("a digit group out of range"));
        assert!(Decimal::unpack(&unhex("03027fff")).unwrap_err().contains("negative zero"));
    }

    #[test]
    fn decimals_keep_their_precision() {
        // Literals: as many integer digits as the value has (2.50), or one zero more (0.5).
        assert_eq!(decimal_leaf("03028232").unwrap(), ("COALESCE(?, CAST(NULL AS DECIMAL(3,2)))".into(), "2.50".into()));
        assert_eq!(decimal_leaf("02018005").unwrap(), ("COALESCE(?, CAST(NULL AS DECIMAL(2,1)))".into(), "0.5".into()));
        assert_eq!(decimal_leaf("010185").unwrap(), ("COALESCE(?, CAST(NULL AS DECIMAL(1,1)))".into(), ".5".into()));
        assert_eq!(decimal_leaf("010080").unwrap(), ("COALESCE(?, CAST(NULL AS DECIMAL(1,0)))".into(), "0".into()));
        // A DECIMAL(10,2) column holding 123.45: 8 integer digits.
        let (sql, text) = decimal_leaf("0a028000007b2d").unwrap();
        assert!(sql.contains("(x DECIMAL(10,2) PATH '$[0]' ERROR ON ERROR)") && sql.contains("JSON_ARRAY(?)"), "{sql}");
        assert_eq!(text, "123.45");
        // CAST(0.5 AS DECIMAL(10,1)): 9 integer digits, which only a CAST gives to a value below 1.
        assert_eq!(decimal_leaf("0a018000000005").unwrap(), ("CAST(? AS DECIMAL(2,1))".into(), "0.5".into()));
        // CAST(... AS DECIMAL(65,30)) of a 35-digit integer part: 36 integer digits.
        assert_eq!(decimal_leaf("421e80bc614e35b7bf87350e34c02f075f79075bcd1500bc614e35b7bf87037a").unwrap().0, "CAST(? AS DECIMAL(65,30))");
        // 2.50 with 18 integer digits: nothing gives that.
        assert!(decimal_leaf("1402800000000000000232").unwrap_err().contains("precision 20 and scale 2"));
        assert_eq!(decimal_leaf("0d0d800000000000").unwrap(), ("COALESCE(?, CAST(NULL AS DECIMAL(13,13)))".into(), ".0000000000000".into()));
    }
}
