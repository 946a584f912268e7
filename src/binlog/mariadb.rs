//! MariaDB's own binlog events, which `mysql_common` does not know (types 160-171).
//!
//! Invariant: compressed events (165-171, written when `log_bin_compress=ON`) are never skipped:
//! skipping them would silently lose rows, so they stop the run.

/// ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID, GTID_LIST, START_ENCRYPTION: carry no row data.
pub const GTID_EVENT: u8 = 162;

/// Compressed QUERY and rows events.
pub fn is_compressed(event_type: u8) -> bool {
    (165..=171).contains(&event_type)
}

/// A MariaDB GTID event's (domain, sequence), read from its payload: seq u64le, domain u32le.
pub fn gtid(data: &[u8]) -> Option<(u32, u64)> {
    let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    Some((domain, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_types() {
        assert!(!is_compressed(162));
        assert!(is_compressed(165) && is_compressed(171));
        assert!(!is_compressed(172));
    }

    #[test]
    fn reads_gtid_payload() {
        let mut data = 42u64.to_le_bytes().to_vec();
        data.extend(7u32.to_le_bytes());
        data.push(1);
        assert_eq!(gtid(&data), Some((7, 42)));
        assert_eq!(gtid(&[1, 2]), None);
    }
}
