//! Random tables for the soak: columns from every type family, a composite PRIMARY KEY whose first
//! column encodes a row id, sometimes a NOT NULL UNIQUE key encoding the id too, and plain indexes.
//!
//! Invariants: every literal this module produces fits its column (the soak tests the tool, not a
//! lossy conversion); a key column's literal for a row is a function of the row's id, and the
//! first column of each unique key maps distinct ids to values that differ under every collation
//! (the digits of the id differ, never only case or trailing spaces), so a writer can address,
//! move and re-create rows by id alone, and a UNIQUE index over that column can never collide.

// `*rng.pick(...)` picks a `&str` out of a slice of them; the auto-deref clippy suggests instead
// does not compile there (the generic pick's type is then inferred as `&&str`).
#![allow(clippy::explicit_auto_deref)]

use crate::common::workload::Rng;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Charset {
    Utf8mb4,
    Latin1,
    Ascii,
}

impl Charset {
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8mb4 => "utf8mb4",
            Charset::Latin1 => "latin1",
            Charset::Ascii => "ascii",
        }
    }

    /// Case-insensitive and binary collations.
    fn collations(self) -> &'static [&'static str] {
        match self {
            Charset::Utf8mb4 => &["utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_unicode_ci"],
            Charset::Latin1 => &["latin1_swedish_ci", "latin1_bin"],
            Charset::Ascii => &["ascii_general_ci", "ascii_bin"],
        }
    }

    /// Text this character set holds: empties, trailing spaces, quotes, control characters, and
    /// the accents or emoji it can store.
    fn samples(self) -> Vec<&'static str> {
        let mut samples = vec!["", " ", "a", "abc", "ABC", "trailing  ", "Mixed Case", "o'k \\ \"x\"", "multi\nline\ttab", "0"];
        match self {
            Charset::Utf8mb4 => samples.extend(["🦀 emoji ✓", "ünïcödé 𝄞", "ключ", "Ñandú àé"]),
            Charset::Latin1 => samples.extend(["àéîõü ÿ", "Ñandú ½ ©", "ÀÉÎ"]),
            Charset::Ascii => {}
        }
        samples
    }

    /// The prefix of an id-encoding string key, in this character set.
    fn key_prefix(self) -> &'static str {
        match self {
            Charset::Utf8mb4 => "ключ🦀-",
            Charset::Latin1 => "clé-",
            Charset::Ascii => "k-",
        }
    }

    fn pick(rng: &mut Rng) -> Charset {
        *rng.pick(&[Charset::Utf8mb4, Charset::Latin1, Charset::Ascii])
    }
}

#[derive(Clone, Copy, Debug)]
pub enum StrKind {
    Char(u32),
    Varchar(u32),
    Text,
}

#[derive(Clone, Copy, Debug)]
pub enum BytesKind {
    Binary(u32),
    Varbinary(u32),
    Blob,
}

#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Int { bytes: u32, unsigned: bool },
    Decimal { precision: u32, scale: u32 },
    Float,
    Double,
    Str { kind: StrKind, charset: Charset, collation: &'static str },
    Bytes(BytesKind),
    Date,
    Time { fsp: u32 },
    Datetime { fsp: u32 },
    Timestamp { fsp: u32 },
    Year,
    Enum { charset: Charset },
    Set { charset: Charset },
    Bit { bits: u32 },
    Json,
}

/// `'text'` with quotes and backslashes escaped.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A quoted identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn hex_literal(bytes: &[u8]) -> String {
    format!("x'{}'", hex::encode_upper(bytes))
}

/// `digits` random decimal digits.
fn digits(rng: &mut Rng, count: u32) -> String {
    (0..count).map(|_| char::from(b'0' + rng.below(10) as u8)).collect()
}

/// `.ddd` with `fsp` digits, or nothing for whole seconds.
fn fraction(rng: &mut Rng, fsp: u32) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", digits(rng, fsp))
    }
}

fn truncated(text: &str, chars: u32) -> String {
    text.chars().take(chars as usize).collect()
}

/// Members outside ASCII only in utf8mb4: MariaDB's CONVERT TO CHARACTER SET turns a latin1
/// member such as 'é' into '?' (and refuses a DEFAULT naming it), a lossy ALTER.
fn enum_members(charset: Charset) -> &'static [&'static str] {
    match charset {
        Charset::Utf8mb4 => &["a", "b", "c d", "é"],
        _ => &["a", "b", "c d", "Z"],
    }
}

fn set_members(charset: Charset) -> &'static [&'static str] {
    match charset {
        Charset::Utf8mb4 => &["x", "y", "z", "ü"],
        _ => &["x", "y", "z"],
    }
}

/// `days` days after 1000-01-01, as 'YYYY-MM-DD'.
fn date_after(days: i64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(1000, 1, 1).unwrap();
    (base + chrono::Duration::days(days)).format("%Y-%m-%d").to_string()
}

/// `seconds` as a TIME literal body, 'hhh:mm:ss', negative when asked.
fn time_of(seconds: i64, negative: bool) -> String {
    format!("{}{}:{:02}:{:02}", if negative { "-" } else { "" }, seconds / 3600, seconds / 60 % 60, seconds % 60)
}

impl Ty {
    /// The column type as SQL.
    pub fn sql(&self) -> String {
        match self {
            Ty::Int { bytes, unsigned } => {
                let name = match bytes {
                    1 => "TINYINT",
                    2 => "SMALLINT",
                    3 => "MEDIUMINT",
                    4 => "INT",
                    _ => "BIGINT",
                };
                format!("{name}{}", if *unsigned { " UNSIGNED" } else { "" })
            }
            Ty::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            Ty::Float => "FLOAT".into(),
            Ty::Double => "DOUBLE".into(),
            Ty::Str { kind, charset, collation } => {
                let name = match kind {
                    StrKind::Char(n) => format!("CHAR({n})"),
                    StrKind::Varchar(n) => format!("VARCHAR({n})"),
                    StrKind::Text => "TEXT".into(),
                };
                format!("{name} CHARACTER SET {} COLLATE {collation}", charset.name())
            }
            Ty::Bytes(BytesKind::Binary(n)) => format!("BINARY({n})"),
            Ty::Bytes(BytesKind::Varbinary(n)) => format!("VARBINARY({n})"),
            Ty::Bytes(BytesKind::Blob) => "BLOB".into(),
            Ty::Date => "DATE".into(),
            Ty::Time { fsp } => format!("TIME({fsp})"),
            Ty::Datetime { fsp } => format!("DATETIME({fsp})"),
            Ty::Timestamp { fsp } => format!("TIMESTAMP({fsp})"),
            Ty::Year => "YEAR".into(),
            Ty::Enum { charset } => format!("ENUM({}) CHARACTER SET {}", enum_members(*charset).iter().map(|m| string_literal(m)).collect::<Vec<_>>().join(","), charset.name()),
            Ty::Set { charset } => format!("SET({}) CHARACTER SET {}", set_members(*charset).iter().map(|m| string_literal(m)).collect::<Vec<_>>().join(","), charset.name()),
            Ty::Bit { bits } => format!("BIT({bits})"),
            Ty::Json => "JSON".into(),
        }
    }

    /// A short name for the round's summary line.
    pub fn short(&self) -> String {
        let sql = self.sql();
        let name = sql.split([' ', '(']).next().unwrap_or_default().to_lowercase();
        match self {
            Ty::Str { collation, .. } => format!("{name}/{collation}"),
            Ty::Int { unsigned: true, .. } => format!("{name}u"),
            _ => name,
        }
    }

    /// A random type from any family, for a data column.
    pub fn random(rng: &mut Rng) -> Ty {
        match rng.below(15) {
            0 | 1 => Ty::Int { bytes: *rng.pick(&[1, 2, 3, 4, 8]), unsigned: rng.chance(40) },
            2 => {
                let precision = rng.between(1, 40) as u32;
                Ty::Decimal { precision, scale: rng.between(0, precision.min(12) as i64) as u32 }
            }
            3 => *rng.pick(&[Ty::Float, Ty::Double]),
            4..=6 => {
                let charset = Charset::pick(rng);
                let kind = {
                    let options = [StrKind::Char(rng_len(rng, 1, 30)), StrKind::Varchar(rng_len(rng, 1, 255)), StrKind::Text];
                    *rng.pick(&options)
                };
                Ty::Str { kind, charset, collation: *rng.pick(charset.collations()) }
            }
            7 => Ty::Bytes({
                let options = [BytesKind::Binary(rng_len(rng, 1, 16)), BytesKind::Varbinary(rng_len(rng, 1, 64)), BytesKind::Blob];
                *rng.pick(&options)
            }),
            8 => *rng.pick(&[Ty::Date, Ty::Year]),
            9 => {
                let fsp = rng.between(0, 6) as u32;
                *rng.pick(&[Ty::Time { fsp }, Ty::Datetime { fsp }, Ty::Timestamp { fsp }])
            }
            10 => Ty::Enum { charset: Charset::pick(rng) },
            11 => Ty::Set { charset: Charset::pick(rng) },
            12 => Ty::Bit { bits: rng.between(1, 64) as u32 },
            13 => Ty::Json,
            _ => Ty::Int { bytes: 4, unsigned: false },
        }
    }

    /// A type whose values can encode any row id injectively: the first column of a unique key.
    pub fn random_id_carrier(rng: &mut Rng) -> Ty {
        match rng.below(7) {
            0 | 1 => Ty::Int { bytes: *rng.pick(&[3, 4, 8]), unsigned: rng.chance(40) },
            2 => {
                let charset = Charset::pick(rng);
                let kind = {
                    let options = [StrKind::Char(rng_len(rng, 16, 24)), StrKind::Varchar(rng_len(rng, 16, 64))];
                    *rng.pick(&options)
                };
                Ty::Str { kind, charset, collation: *rng.pick(charset.collations()) }
            }
            3 => Ty::Date,
            4 => {
                let options = [Ty::Datetime { fsp: rng.between(0, 6) as u32 }, Ty::Time { fsp: rng.between(0, 6) as u32 }];
                *rng.pick(&options)
            }
            5 => Ty::Bytes({
                let options = [BytesKind::Binary(rng_len(rng, 8, 16)), BytesKind::Varbinary(rng_len(rng, 8, 32))];
                *rng.pick(&options)
            }),
            _ => {
                let scale = rng.between(0, 4) as u32;
                Ty::Decimal { precision: scale + rng.between(8, 16) as u32, scale }
            }
        }
    }

    /// A type for the further columns of a composite key: values derived from the id, repeating.
    pub fn random_key_part(rng: &mut Rng) -> Ty {
        match rng.below(7) {
            0 | 1 => Ty::Int { bytes: *rng.pick(&[1, 2, 3, 4, 8]), unsigned: rng.chance(40) },
            2 => {
                let charset = Charset::pick(rng);
                let kind = {
                    let options = [StrKind::Char(rng_len(rng, 1, 4)), StrKind::Varchar(rng_len(rng, 1, 8))];
                    *rng.pick(&options)
                };
                Ty::Str { kind, charset, collation: *rng.pick(charset.collations()) }
            }
            3 => *rng.pick(&[Ty::Date, Ty::Year]),
            4 => Ty::Enum { charset: Charset::pick(rng) },
            5 => Ty::Bytes({
                let options = [BytesKind::Binary(rng_len(rng, 1, 4)), BytesKind::Varbinary(rng_len(rng, 1, 4))];
                *rng.pick(&options)
            }),
            _ => Ty::Decimal { precision: 4, scale: 2 },
        }
    }

    /// The integer range of an integer type.
    fn int_range(bytes: u32, unsigned: bool) -> (i128, i128) {
        let bits = bytes * 8;
        if unsigned {
            (0, (1i128 << bits) - 1)
        } else {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        }
    }

    /// A random non-NULL literal of this type, edge values included.
    pub fn value(&self, rng: &mut Rng) -> String {
        let edge = rng.chance(30);
        match self {
            Ty::Int { bytes, unsigned } => {
                let (min, max) = Ty::int_range(*bytes, *unsigned);
                if edge {
                    rng.pick(&[min, max, 0, 1, if *unsigned { max - 1 } else { -1 }]).to_string()
                } else {
                    let span = (max - min) as u128;
                    let offset = ((rng.next() as u128) << 64 | rng.next() as u128) % (span + 1);
                    (min + offset as i128).to_string()
                }
            }
            Ty::Decimal { precision, scale } => {
                let whole = precision - scale;
                let sign = if rng.chance(30) { "-" } else { "" };
                let (int_part, frac_part) = if edge {
                    ("9".repeat(whole as usize), "9".repeat(*scale as usize))
                } else {
                    {
                        let count = rng.between(0, whole as i64) as u32;
                        (digits(rng, count), digits(rng, *scale))
                    }
                };
                let int_part = if int_part.is_empty() { "0".to_string() } else { int_part };
                if *scale == 0 {
                    format!("{sign}{int_part}")
                } else {
                    format!("{sign}{int_part}.{frac_part}")
                }
            }
            Ty::Float => rng.pick(&["0", "-1.5", "3.25e10", "1e-5", "3.40282e38", "-3.40282e38", "0.1", "-0"]).to_string(),
            Ty::Double => rng.pick(&["0", "-0.1", "12345.678", "1.7976931348623157e308", "-2.2250738585072014e-308", "3.141592653589793", "1e-300"]).to_string(),
            Ty::Str { kind, charset, .. } => {
                let sample = *rng.pick(&charset.samples());
                let text = match kind {
                    StrKind::Char(n) | StrKind::Varchar(n) => truncated(sample, *n),
                    StrKind::Text if edge => sample.repeat(1 + rng.below(300) as usize),
                    StrKind::Text => sample.to_string(),
                };
                string_literal(&text)
            }
            Ty::Bytes(kind) => {
                let max = match kind {
                    BytesKind::Binary(n) | BytesKind::Varbinary(n) => *n as u64,
                    BytesKind::Blob => 300,
                };
                let len = if edge { *rng.pick(&[0, 1, max]) } else { rng.below(max + 1) };
                let zeros = rng.chance(30);
                let bytes: Vec<u8> = (0..len).map(|_| if zeros { 0 } else { rng.next() as u8 }).collect();
                hex_literal(&bytes)
            }
            Ty::Date => {
                if edge {
                    string_literal(*rng.pick(&["1000-01-01", "9999-12-31", "2020-02-29", "1970-01-01"]))
                } else {
                    string_literal(&date_after(rng.below(3_287_000) as i64))
                }
            }
            Ty::Time { fsp } => {
                let frac = fraction(rng, *fsp);
                if edge {
                    let time = *rng.pick(&["-838:59:59", "838:59:59", "00:00:00", "-00:00:01"]);
                    // MySQL's TIME ends at 838:59:59 exactly, MariaDB's at 838:59:59.999999.
                    let frac = if time.contains("838") && crate::common::flavor().is_mysql() { frac.replace(|c: char| c.is_ascii_digit(), "0") } else { frac };
                    string_literal(&format!("{time}{frac}"))
                } else {
                    string_literal(&format!("{}{frac}", time_of(rng.below(3_020_399) as i64, rng.chance(30))))
                }
            }
            Ty::Datetime { fsp } => {
                let frac = fraction(rng, *fsp);
                if edge {
                    string_literal(&format!("{}{frac}", rng.pick(&["1000-01-01 00:00:00", "9999-12-31 23:59:59", "2020-02-29 12:34:56"])))
                } else {
                    string_literal(&format!("{} {}{frac}", date_after(rng.below(3_287_000) as i64), time_of(rng.below(86_400) as i64, false)))
                }
            }
            Ty::Timestamp { fsp } => {
                let frac = fraction(rng, *fsp);
                if edge {
                    string_literal(&format!("{}{frac}", rng.pick(&["1970-01-01 00:00:01", "2038-01-19 03:14:07", "2000-02-29 00:00:00"])))
                } else {
                    // 1971..2037, in the writers' UTC session
                    let days_1971 = 354_635;
                    string_literal(&format!("{} {}{frac}", date_after(days_1971 + rng.below(24_000) as i64), time_of(rng.below(86_400) as i64, false)))
                }
            }
            Ty::Year => {
                if edge {
                    rng.pick(&["0", "1901", "2155"]).to_string()
                } else {
                    rng.between(1901, 2155).to_string()
                }
            }
            Ty::Enum { charset } => string_literal(*rng.pick(enum_members(*charset))),
            Ty::Set { charset } => {
                let members: Vec<&str> = set_members(*charset).iter().copied().filter(|_| rng.chance(40)).collect();
                string_literal(&members.join(","))
            }
            Ty::Bit { bits } => {
                let value: String = (0..*bits).map(|_| if edge || rng.chance(50) { '1' } else { '0' }).collect();
                format!("b'{value}'")
            }
            Ty::Json => string_literal(*rng.pick(&[
                r#"{"a": [1, 2.5, "x"], "b": null, "c": "🦀"}"#,
                "[]",
                r#""é""#,
                "null",
                r#"{"k": {"n": -1e-7, "t": true}}"#,
                "123456789012345678901234567890",
                r#"["a\"b", "\\", ""]"#,
            ])),
        }
    }

    /// A random literal for a DEFAULT clause: ASCII only, since MariaDB stores some defaults
    /// (TEXT, BLOB, JSON) as expressions in the table's character set and refuses a CREATE or
    /// ALTER whose default that character set cannot hold.
    pub fn default_value(&self, rng: &mut Rng) -> String {
        let mut value = self.value(rng);
        while !value.is_ascii() {
            value = self.value(rng);
        }
        value
    }

    /// The literal of row `id` in the first column of a unique key. `salt` tells the primary key
    /// (0) from the unique key (1). Distinct (id, salt) pairs give values that differ in their
    /// digits, so they are distinct under every collation.
    pub fn id_literal(&self, id: i64, salt: i64) -> String {
        let n = id * 2 + salt;
        match self {
            Ty::Int { bytes: 8, unsigned: true } => (u64::MAX - n as u64).to_string(),
            Ty::Int { bytes: 8, unsigned: false } if id % 2 == 1 => (i64::MIN + n).to_string(),
            Ty::Int { unsigned: false, .. } if id % 2 == 1 => (-n).to_string(),
            Ty::Int { .. } => n.to_string(),
            Ty::Str { kind, charset, .. } => {
                let prefix = if id % 2 == 1 { charset.key_prefix().to_uppercase() } else { charset.key_prefix().to_string() };
                let space = if matches!(kind, StrKind::Varchar(_)) && id % 3 == 0 { " " } else { "" };
                string_literal(&format!("{prefix}{n}{space}"))
            }
            Ty::Date => string_literal(&date_after(n)),
            Ty::Datetime { fsp } => string_literal(&format!("{} {}{}", date_after(n / 24), time_of(n % 24 * 3600 + id % 3600, false), fixed_fraction(id, *fsp))),
            Ty::Time { fsp } => string_literal(&format!("{}{}", time_of(n, id % 2 == 1), fixed_fraction(id, *fsp))),
            Ty::Bytes(BytesKind::Binary(len)) => hex_literal(&padded(&(n as u64).to_be_bytes(), *len)),
            Ty::Bytes(_) => hex_literal(&(n as u64).to_le_bytes()),
            Ty::Decimal { scale, .. } => {
                if *scale == 0 {
                    n.to_string()
                } else {
                    format!("{n}.{}", "7".repeat(*scale as usize))
                }
            }
            other => panic!("{} cannot carry a row id", other.sql()),
        }
    }

    /// The literal of row `id` in a further key column: a small value that repeats across ids.
    pub fn key_part_literal(&self, id: i64) -> String {
        let small = id % 7;
        match self {
            Ty::Int { unsigned: false, .. } if id % 2 == 1 => (-small).to_string(),
            Ty::Int { .. } => small.to_string(),
            Ty::Str { kind: StrKind::Char(n) | StrKind::Varchar(n), .. } => string_literal(&truncated(["", "a", "B", "zz", "Ab"][small as usize % 5], *n)),
            Ty::Date => string_literal(&format!("2000-01-0{}", 1 + small)),
            Ty::Year => ["0", "1901", "2155", "1999"][small as usize % 4].to_string(),
            Ty::Enum { charset } => string_literal(enum_members(*charset)[small as usize % 4]),
            Ty::Bytes(BytesKind::Binary(len)) => hex_literal(&padded(&[small as u8], *len)),
            Ty::Bytes(_) => hex_literal(&[small as u8]),
            Ty::Decimal { .. } => format!("{small}.{}", id % 10),
            other => panic!("{} is not a key part type", other.sql()),
        }
    }

    /// A wider type holding every value of this one exactly, if the soak knows one.
    pub fn widened(&self, rng: &mut Rng) -> Option<Ty> {
        match self {
            Ty::Int { bytes, unsigned } if *bytes < 8 => Some(Ty::Int { bytes: *rng.pick(&[1, 2, 3, 4, 8].iter().copied().filter(|b| b > bytes).collect::<Vec<u32>>()), unsigned: *unsigned }),
            Ty::Decimal { precision, scale } if *precision < 60 => Some(Ty::Decimal { precision: precision + 2, scale: scale + 1 }),
            Ty::Str { kind: StrKind::Varchar(n), charset, collation } => Some(Ty::Str { kind: StrKind::Varchar(n + rng_len(rng, 1, 100)), charset: *charset, collation }),
            Ty::Bytes(BytesKind::Varbinary(n)) => Some(Ty::Bytes(BytesKind::Varbinary(n + rng_len(rng, 1, 64)))),
            // Each value converts exactly; a FLOAT's changes with its precision, so the writers
            // leave a FLOAT widened to DOUBLE alone (see `is_value_changing_widening`).
            Ty::Float => Some(Ty::Double),
            Ty::Date => Some(Ty::Datetime { fsp: rng_len(rng, 0, 6) }),
            Ty::Time { fsp } if *fsp < 6 => Some(Ty::Time { fsp: rng_len(rng, i64::from(*fsp) + 1, 6) }),
            Ty::Datetime { fsp } if *fsp < 6 => Some(Ty::Datetime { fsp: rng_len(rng, i64::from(*fsp) + 1, 6) }),
            Ty::Timestamp { fsp } if *fsp < 6 => Some(Ty::Timestamp { fsp: rng_len(rng, i64::from(*fsp) + 1, 6) }),
            Ty::Bit { bits } if *bits < 64 => Some(Ty::Bit { bits: rng_len(rng, i64::from(*bits) + 1, 64) }),
            _ => None,
        }
    }

    /// Whether widening this type to `wider` changes what a value written afterwards is stored
    /// as: a FLOAT literal (or default) stored as DOUBLE keeps digits that FLOAT rounds away.
    pub fn is_value_changing_widening(&self, wider: &Ty) -> bool {
        matches!((self, wider), (Ty::Float, Ty::Double))
    }

    /// Whether an index over this column needs a prefix length, and whether it can be indexed.
    pub fn index_part(&self, name: &str) -> Option<String> {
        match self {
            Ty::Json => None,
            Ty::Str { kind: StrKind::Text, .. } | Ty::Bytes(BytesKind::Blob) => Some(format!("{}(10)", quote(name))),
            _ => Some(quote(name)),
        }
    }

    /// Whether CONVERT TO CHARACTER SET utf8mb4 changes this column.
    pub fn has_narrow_charset(&self) -> bool {
        matches!(self, Ty::Str { charset: Charset::Latin1 | Charset::Ascii, .. } | Ty::Enum { charset: Charset::Latin1 | Charset::Ascii } | Ty::Set { charset: Charset::Latin1 | Charset::Ascii })
    }
}

/// A fixed fraction for an id-encoding temporal value (the whole seconds already differ).
fn fixed_fraction(id: i64, fsp: u32) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", format!("{:06}", id % 1_000_000).chars().take(fsp as usize).collect::<String>())
    }
}

fn padded(bytes: &[u8], len: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(len as usize, 0);
    out
}

fn rng_len(rng: &mut Rng, low: i64, high: i64) -> u32 {
    rng.between(low, high) as u32
}

/// What a column is for, which decides how writers fill it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// First column of a unique key: the row id encoded with this salt.
    IdCarrier {
        salt: i64,
    },
    /// A further key column: derived from the id.
    KeyPart,
    Data,
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub ty: Ty,
    pub nullable: bool,
    pub default: Option<String>,
    pub role: Role,
}

impl Column {
    /// `name TYPE NULL|NOT NULL [DEFAULT x]`. MySQL takes a TEXT, BLOB or JSON column's
    /// default only as an expression, in parentheses.
    pub fn definition(&self) -> String {
        let mut sql = format!("{} {} {}", quote(&self.name), self.ty.sql(), if self.nullable { "NULL" } else { "NOT NULL" });
        if let Some(default) = &self.default {
            let expression_only = matches!(self.ty, Ty::Str { kind: StrKind::Text, .. } | Ty::Bytes(BytesKind::Blob) | Ty::Json);
            if expression_only && crate::common::flavor().is_mysql() {
                sql += &format!(" DEFAULT ({default})");
            } else {
                sql += &format!(" DEFAULT {default}");
            }
        }
        sql
    }

    /// The literal of row `id` in this key column.
    pub fn key_literal(&self, id: i64) -> String {
        match self.role {
            Role::IdCarrier { salt } => self.ty.id_literal(id, salt),
            Role::KeyPart => self.ty.key_part_literal(id),
            Role::Data => panic!("{} is not a key column", self.name),
        }
    }

    /// A random value for a write: NULL sometimes when the column allows it.
    pub fn random_value(&self, rng: &mut Rng) -> String {
        if self.nullable && rng.chance(15) {
            "NULL".into()
        } else {
            self.ty.value(rng)
        }
    }

    /// A random data column: nullable or not, always with a default when NOT NULL, so inserts
    /// naming a subset of the columns work.
    pub fn random_data(name: String, rng: &mut Rng) -> Column {
        let ty = Ty::random(rng);
        let nullable = rng.chance(60);
        let default = if !nullable || rng.chance(30) { Some(ty.default_value(rng)) } else { None };
        Column { name, ty, nullable, default, role: Role::Data }
    }
}

#[derive(Clone, Debug)]
pub struct Index {
    pub name: String,
    pub columns: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub columns: Vec<Column>,
    pub primary: Vec<usize>,
    /// A NOT NULL UNIQUE key (`uk`), when the table has one.
    pub unique: Vec<usize>,
    pub indexes: Vec<Index>,
    pub charset: Charset,
}

impl Table {
    pub fn random(rng: &mut Rng) -> Table {
        let mut columns = Vec::new();
        let key_column = |name: String, ty: Ty, role: Role| Column { name, ty, nullable: false, default: None, role };
        columns.push(key_column("k1".into(), Ty::random_id_carrier(rng), Role::IdCarrier { salt: 0 }));
        for i in 2..=rng.between(1, 3) {
            columns.push(key_column(format!("k{i}"), Ty::random_key_part(rng), Role::KeyPart));
        }
        let primary: Vec<usize> = (0..columns.len()).collect();
        let mut unique = Vec::new();
        if rng.chance(45) {
            unique.push(columns.len());
            columns.push(key_column("u1".into(), Ty::random_id_carrier(rng), Role::IdCarrier { salt: 1 }));
            if rng.chance(30) {
                unique.push(columns.len());
                columns.push(key_column("u2".into(), Ty::random_key_part(rng), Role::KeyPart));
            }
        }
        let data = rng.between(1, 12 - columns.len() as i64);
        for i in 1..=data {
            let name = if rng.chance(8) { format!("c{i} `odd` é") } else { format!("c{i}") };
            columns.push(Column::random_data(name, rng));
        }
        let mut table = Table { columns, primary, unique, indexes: Vec::new(), charset: *rng.pick(&[Charset::Utf8mb4, Charset::Latin1]) };
        for i in 1..=rng.below(3) {
            let indexable: Vec<usize> = (0..table.columns.len()).filter(|&c| table.columns[c].ty.index_part("").is_some()).collect();
            let width = rng.between(1, 2) as usize;
            let mut parts: Vec<usize> = (0..width).map(|_| *rng.pick(&indexable)).collect();
            parts.dedup();
            table.indexes.push(Index { name: format!("i{i}"), columns: parts });
        }
        table
    }

    pub fn index_parts(&self, columns: &[usize]) -> String {
        columns.iter().map(|&c| self.columns[c].ty.index_part(&self.columns[c].name).expect("indexable")).collect::<Vec<_>>().join(", ")
    }

    pub fn create_sql(&self, name: &str) -> String {
        let mut parts: Vec<String> = self.columns.iter().map(Column::definition).collect();
        parts.push(format!("PRIMARY KEY ({})", self.index_parts(&self.primary)));
        if !self.unique.is_empty() {
            parts.push(format!("UNIQUE KEY `uk` ({})", self.index_parts(&self.unique)));
        }
        for index in &self.indexes {
            parts.push(format!("KEY {} ({})", quote(&index.name), self.index_parts(&index.columns)));
        }
        format!("CREATE TABLE {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET={}", quote(name), parts.join(",\n  "), self.charset.name())
    }

    /// The columns of both unique keys: what a row's id decides.
    pub fn key_columns(&self) -> Vec<usize> {
        self.primary.iter().chain(&self.unique).copied().collect()
    }

    /// `k1 = .. AND k2 = ..` for row `id`, over the primary key.
    pub fn key_match(&self, id: i64) -> String {
        self.primary.iter().map(|&c| format!("{} = {}", quote(&self.columns[c].name), self.columns[c].key_literal(id))).collect::<Vec<_>>().join(" AND ")
    }

    /// The primary key's columns, for ORDER BY.
    pub fn order_by(&self) -> String {
        self.primary.iter().map(|&c| quote(&self.columns[c].name)).collect::<Vec<_>>().join(", ")
    }

    /// One line for the round's report.
    pub fn summary(&self) -> String {
        let names = |cols: &[usize]| cols.iter().map(|&c| self.columns[c].ty.short()).collect::<Vec<_>>().join(",");
        let data: Vec<String> = self.columns.iter().filter(|c| c.role == Role::Data).map(|c| c.ty.short()).collect();
        let mut out = format!("{} cols, pk({})", self.columns.len(), names(&self.primary));
        if !self.unique.is_empty() {
            out += &format!(" uk({})", names(&self.unique));
        }
        out + &format!(" idx {} data[{}] {}", self.indexes.len(), data.join(" "), self.charset.name())
    }

    /// An INSERT of `ids` setting every column: key columns from the id, the rest random.
    pub fn insert_rows(&self, name: &str, ids: &[i64], rng: &mut Rng) -> String {
        let columns: Vec<String> = self.columns.iter().map(|c| quote(&c.name)).collect();
        let rows: Vec<String> = ids
            .iter()
            .map(|&id| {
                let values: Vec<String> = self.columns.iter().map(|c| if c.role == Role::Data { c.random_value(rng) } else { c.key_literal(id) }).collect();
                format!("({})", values.join(", "))
            })
            .collect();
        format!("INSERT INTO {} ({}) VALUES {}", quote(name), columns.join(", "), rows.join(", "))
    }
}
