//! GTID positions (gh-ost's `--gtid`): where the reader stands, in the server's transaction
//! ids rather than a file and an offset, so that a resumed run asks the server for everything
//! after those transactions, wherever its binlog files now put them.
//!
//! MariaDB's position is the last GTID of each replication domain (`0-1-100,1-2-5`); MySQL's is
//! the set of every transaction executed (`3e11fa47-...:1-100:105,...`), which grows by each
//! GTID the reader passes.
//!
//! Invariant: a position moves only at a commit, by the GTID of the transaction committed.

use std::collections::BTreeMap;

/// One transaction's GTID, as its GTID event gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gtid {
    MariaDb { domain: u32, server: u32, seq: u64 },
    MySql { uuid: [u8; 16], gno: u64 },
}

/// A GTID position of either flavor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidPosition {
    /// Per domain: the server id and sequence number of its last transaction.
    MariaDb(BTreeMap<u32, (u32, u64)>),
    /// Per source (`uuid`, or `uuid:tag`): the executed transaction numbers, as sorted,
    /// disjoint, inclusive ranges.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl GtidPosition {
    /// Reads MariaDB's position as the server writes it (`@@gtid_binlog_pos`,
    /// `BINLOG_GTID_POS()`): `domain-server-seq`, comma-separated. An empty text is the empty
    /// position.
    pub fn parse_mariadb(text: &str) -> Result<GtidPosition, String> {
        let mut domains = BTreeMap::new();
        for part in parts(text) {
            let not_one = || format!("`{part}` is not a MariaDB GTID (domain-server-sequence)");
            let numbers: Vec<&str> = part.split('-').collect();
            let [domain, server, seq] = numbers[..] else { return Err(not_one()) };
            let narrow = |n: &str| n.parse::<u32>().map_err(|_| not_one());
            domains.insert(narrow(domain)?, (narrow(server)?, seq.parse::<u64>().map_err(|_| not_one())?));
        }
        Ok(GtidPosition::MariaDb(domains))
    }

    /// Reads a MySQL GTID set as the server writes it (`Executed_Gtid_Set`): `uuid:ranges`,
    /// comma-separated, a tag (MySQL 8.4+) naming the ranges after it. An empty text is the
    /// empty set.
    pub fn parse_mysql(text: &str) -> Result<GtidPosition, String> {
        let mut sources: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for part in parts(text) {
            let mut fields = part.split(':');
            let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
            let mut source = uuid.clone();
            for field in fields {
                match parse_range(field) {
                    Some(range) => insert_range(sources.entry(source.clone()).or_default(), range),
                    None if field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => source = format!("{uuid}:{field}"),
                    None => return Err(format!("`{part}` is not a MySQL GTID set")),
                }
            }
        }
        Ok(GtidPosition::MySql(sources))
    }

    /// The position after `gtid`'s transaction.
    pub fn add(&mut self, gtid: Gtid) {
        match (self, gtid) {
            (GtidPosition::MariaDb(domains), Gtid::MariaDb { domain, server, seq }) => {
                domains.insert(domain, (server, seq));
            }
            (GtidPosition::MySql(sources), Gtid::MySql { uuid, gno }) => insert_range(sources.entry(format_uuid(&uuid)).or_default(), (gno, gno)),
            // A GTID of the other flavor cannot come from the same server.
            _ => {}
        }
    }
}

impl std::fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = match self {
            GtidPosition::MariaDb(domains) => domains.iter().map(|(domain, (server, seq))| format!("{domain}-{server}-{seq}")).collect(),
            GtidPosition::MySql(sources) => sources
                .iter()
                .map(|(source, ranges)| {
                    let ranges: Vec<String> = ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
                    format!("{source}:{}", ranges.join(":"))
                })
                .collect(),
        };
        write!(f, "{}", parts.join(","))
    }
}

/// The comma-separated parts of a position's text (MySQL puts a line break after each comma).
fn parts(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn parse_range(field: &str) -> Option<(u64, u64)> {
    match field.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => field.parse().ok().map(|n| (n, n)),
    }
}

/// Adds an inclusive range to sorted, disjoint ranges, merging what touches it.
fn insert_range(ranges: &mut Vec<(u64, u64)>, (start, end): (u64, u64)) {
    let mut merged = (start, end);
    let mut kept = Vec::with_capacity(ranges.len() + 1);
    for &(a, b) in ranges.iter() {
        if b.saturating_add(1) < merged.0 || merged.1.saturating_add(1) < a {
            kept.push((a, b));
        } else {
            merged = (merged.0.min(a), merged.1.max(b));
        }
    }
    kept.push(merged);
    kept.sort_unstable();
    *ranges = kept;
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_positions_move_per_domain() {
        let mut position = GtidPosition::parse_mariadb("0-1-100,1-2-5").unwrap();
        position.add(Gtid::MariaDb { domain: 0, server: 3, seq: 101 });
        position.add(Gtid::MariaDb { domain: 2, server: 1, seq: 1 });
        assert_eq!(position.to_string(), "0-3-101,1-2-5,2-1-1");
        assert_eq!(GtidPosition::parse_mariadb("").unwrap().to_string(), "");
        assert!(GtidPosition::parse_mariadb("0-1").is_err());
    }

    #[test]
    fn mysql_sets_grow_and_merge() {
        let text = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3";
        let mut set = GtidPosition::parse_mysql(text).unwrap();
        assert_eq!(set.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3");
        let uuid = |hex_text: &str| <[u8; 16]>::try_from(hex::decode(hex_text).unwrap()).unwrap();
        set.add(Gtid::MySql { uuid: uuid("3e11fa4771ca11e19e33c80aa9429562"), gno: 6 });
        set.add(Gtid::MySql { uuid: uuid("5e11fa4771ca11e19e33c80aa9429562"), gno: 1 });
        assert_eq!(set.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3,5e11fa47-71ca-11e1-9e33-c80aa9429562:1");
        let mut ranges = vec![(1, 5), (7, 7)];
        insert_range(&mut ranges, (6, 6));
        assert_eq!(ranges, vec![(1, 7)]);
        let tagged = GtidPosition::parse_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:alpha:1-2").unwrap();
        assert_eq!(tagged.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,3e11fa47-71ca-11e1-9e33-c80aa9429562:alpha:1-2");
        assert!(GtidPosition::parse_mysql("x:1-y").is_err());
    }
}
