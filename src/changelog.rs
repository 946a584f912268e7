//! The changelog table `_<t>_ghc`: a heartbeat row written every 100 ms
//! (`--heartbeat-interval-millis`), and the cut-over
//! markers. Both travel through the binlog like any write, so seeing a marker come back on the
//! stream proves that everything written before it has been read (and, once applied, replayed).

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Context, Result};
use crate::plan::TableNames;
use crate::server::Server;
use crate::state::RunState;

pub const MARKER_HINT: &str = "cut-over-marker";
const HEARTBEAT_HINT: &str = "heartbeat";
const HEARTBEAT_ID: u64 = 1;
const MARKER_ID: u64 = 2;

/// Creates the changelog table. Column order matters: the reader takes (hint, value) as columns 1 and 2.
pub async fn create(conn: &mut Conn, names: &TableNames) -> Result<()> {
    let sql = format!(
        "CREATE TABLE {} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, hint VARCHAR(64) CHARACTER SET ascii NOT NULL, \
         value MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL, \
         last_update TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) \
         ENGINE=InnoDB COMMENT='alterego changelog'",
        names.q(&names.changelog)
    );
    conn.query_drop(sql).await.context(|| format!("creating the changelog table {}", names.q(&names.changelog)))
}

/// Sets changelog row `id` to (hint, value).
pub async fn write(conn: &mut Conn, names: &TableNames, id: u64, hint: &str, value: String) -> Result<()> {
    let (sql, params) = write_statement(names, id, hint, value);
    conn.exec_drop(sql, params).await.context(|| format!("writing to {}", names.q(&names.changelog)))
}

/// The statement that sets changelog row `id`, and its parameters.
pub fn write_statement(names: &TableNames, id: u64, hint: &str, value: String) -> (String, Vec<mysql_async::Value>) {
    let sql = format!("INSERT INTO {} (id, hint, value) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE hint = VALUES(hint), value = VALUES(value)", names.q(&names.changelog));
    (sql, vec![id.into(), hint.into(), value.into()])
}

/// Writes cut-over marker `n`; the applier reports it once everything before it is applied.
pub async fn write_marker(conn: &mut Conn, names: &TableNames, n: u64) -> Result<()> {
    write(conn, names, MARKER_ID, MARKER_HINT, n.to_string()).await
}

/// The last cut-over marker written to the changelog, if any.
pub async fn last_marker(conn: &mut Conn, names: &TableNames) -> Result<Option<u64>> {
    let value: Option<String> =
        conn.exec_first(format!("SELECT value FROM {} WHERE id = ?", names.q(&names.changelog)), (MARKER_ID,)).await.context(|| "reading the last cut-over marker of the interrupted run".into())?;
    Ok(value.and_then(|v| v.parse().ok()))
}

/// Writes the heartbeat every `interval` until the run stops. A failed write is logged, not fatal: the heartbeat
/// only keeps the stream moving and (later) measures lag.
pub fn spawn_heartbeat(server: Server, names: TableNames, state: Arc<RunState>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn: Option<Conn> = None;
        while !state.stopping() {
            if conn.is_none() {
                conn = server.conn().await.ok();
            }
            if let Some(c) = conn.as_mut() {
                let now = format!("{:?}", crate::state::since_epoch().as_micros());
                if let Err(e) = write(c, &names, HEARTBEAT_ID, HEARTBEAT_HINT, now).await {
                    tracing::debug!("heartbeat: {e}");
                    conn = None;
                }
            }
            tokio::time::sleep(interval).await;
        }
    })
}
