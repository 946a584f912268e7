//! A server that crashes while it writes a transaction leaves its binlog file ending in an event
//! cut short; restarted, it writes a new file, and refuses to read past the tear ("binlog
//! truncated in the middle of event") every time it is asked. The reader, whose position lies
//! before the tear, must read on from the next file instead of asking again until it gives up.
//! Here the server is killed mid-copy under writers and half an event is appended to its newest
//! binlog file before it starts again, as a crash in the middle of a write leaves it.

mod common;

use std::io::Write;
use std::path::Path;

use common::interrupt::migrate_with_interruption;
use common::server;

/// Appends the first 29 bytes of a 200-byte QUERY event: a whole v4 header (timestamp, type 2,
/// server id 1, the event's length, where it would end, no flags) and the start of its body.
fn tear_the_newest_binlog(dir: &Path) {
    let data = dir.join("data");
    let newest = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("binlog.") && n[7..].bytes().all(|b| b.is_ascii_digit())))
        .max()
        .expect("the server has binlog files");
    let length = std::fs::metadata(&newest).unwrap().len();
    let mut event = Vec::new();
    event.extend(1_700_000_000u32.to_le_bytes());
    event.push(2);
    event.extend(1u32.to_le_bytes());
    event.extend(200u32.to_le_bytes());
    event.extend((length as u32 + 200).to_le_bytes());
    event.extend(0u16.to_le_bytes());
    event.extend([0u8; 10]);
    std::fs::OpenOptions::new().append(true).open(&newest).unwrap().write_all(&event).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_binlog_torn_by_a_crash_is_read_past() {
    let stderr = migrate_with_interruption("torn", || async {
        tokio::task::spawn_blocking(|| server().crash_and_restart_with(tear_the_newest_binlog)).await.unwrap();
    })
    .await;
    assert!(stderr.contains("binlog stream lost"), "the restart was not noticed:\n{stderr}");
    // MySQL trims the torn tail when it recovers; MariaDB keeps it.
    if common::flavor().is_mariadb() {
        assert!(stderr.contains("ends in an event cut short after"), "the tear was not met:\n{stderr}");
    }
}
