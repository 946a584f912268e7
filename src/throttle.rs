//! Throttling and operator stops: one answer for the pipeline, "go", "wait, because ...", or
//! "abort, because ...", from flag files and server load.
//!
//! Invariants: a throttle only pauses the copy (the applier keeps the shadow current, so the
//! backlog stays small); a critical load aborts only when a second look, after
//! `--critical-load-interval-millis`, still sees it; a status the server does not have is an
//! error at startup, never a silent "go".

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Context, Error, Result};

/// `Threads_running=25,Threads_connected=500`: status variable thresholds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadLimits(pub Vec<(String, u64)>);

impl std::str::FromStr for LoadLimits {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let limits = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (name, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=VALUE"))?;
                let name = name.trim();
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
                    return Err(format!("`{name}` is not a status variable name"));
                }
                let value = value.trim().parse::<u64>().map_err(|_| format!("`{value}` is not a whole number"))?;
                Ok((name.to_string(), value))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(LoadLimits(limits))
    }
}

impl std::fmt::Display for LoadLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Go,
    Wait(String),
    Abort(String),
}

#[derive(Debug, Clone, Default)]
pub struct Throttler {
    pub throttle_flag_file: Option<PathBuf>,
    pub panic_flag_file: Option<PathBuf>,
    pub max_load: LoadLimits,
    pub critical_load: LoadLimits,
    pub critical_load_interval: Duration,
}

impl Throttler {
    /// The verdict now. `conn` reads the server's status.
    pub async fn check(&self, conn: &mut Conn) -> Result<Verdict> {
        if let Some(path) = self.panic_flag_file.as_ref().filter(|p| p.exists()) {
            return Ok(Verdict::Abort(format!("the panic flag file {} exists", path.display())));
        }
        if let Some(over) = over_limit(conn, &self.critical_load).await? {
            if !self.critical_load_interval.is_zero() {
                tokio::time::sleep(self.critical_load_interval).await;
            }
            if let Some(still) = over_limit(conn, &self.critical_load).await? {
                return Ok(Verdict::Abort(format!("critical load: {still} (first seen {over})")));
            }
        }
        if let Some(path) = self.throttle_flag_file.as_ref().filter(|p| p.exists()) {
            return Ok(Verdict::Wait(format!("the throttle flag file {} exists", path.display())));
        }
        if let Some(over) = over_limit(conn, &self.max_load).await? {
            return Ok(Verdict::Wait(format!("max-load: {over}")));
        }
        Ok(Verdict::Go)
    }

    /// Fails at startup when a load limit names a status variable the server does not have.
    pub async fn validate(&self, conn: &mut Conn) -> Result<()> {
        for (name, _) in self.max_load.0.iter().chain(&self.critical_load.0) {
            if status(conn, name).await?.is_none() {
                return Err(Error::usage(format!("the server has no status variable `{name}` (from --max-load or --critical-load)"), "use a name from SHOW GLOBAL STATUS, e.g. Threads_running"));
            }
        }
        Ok(())
    }
}

/// Evaluates the verdict every 100 ms until the run stops: records the throttle reason for the
/// copy to obey, and fails the run (exit 4) on an abort verdict.
pub fn spawn_control(server: crate::server::Server, throttler: Throttler, state: std::sync::Arc<crate::state::RunState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn: Option<Conn> = None;
        while !state.stopping() {
            if conn.is_none() {
                conn = server.conn().await.ok();
            }
            if let Some(c) = conn.as_mut() {
                match throttler.check(c).await {
                    Ok(Verdict::Go) => state.set_throttle(None),
                    Ok(Verdict::Wait(why)) => state.set_throttle(Some(why)),
                    Ok(Verdict::Abort(why)) => state.fail(Error::new(crate::error::ExitKind::Aborted, format!("aborted: {why}"))),
                    Err(e) => {
                        tracing::warn!("checking throttles: {e}");
                        conn = None;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The first limit the server's status is at or over, as `Name=value >= limit`.
async fn over_limit(conn: &mut Conn, limits: &LoadLimits) -> Result<Option<String>> {
    for (name, limit) in &limits.0 {
        if let Some(value) = status(conn, name).await? {
            if value >= *limit {
                return Ok(Some(format!("{name}={value} >= {limit}")));
            }
        }
    }
    Ok(None)
}

/// A global status value. Names were checked to be identifiers when parsed.
async fn status(conn: &mut Conn, name: &str) -> Result<Option<u64>> {
    let row: Option<(String, String)> = conn.query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'")).await.context(|| format!("reading status {name}"))?;
    Ok(row.and_then(|(_, v)| v.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_load_limits() {
        let l: LoadLimits = "Threads_running=25, Threads_connected=500".parse().unwrap();
        assert_eq!(l.0, vec![("Threads_running".into(), 25), ("Threads_connected".into(), 500)]);
        assert_eq!(l.to_string(), "Threads_running=25,Threads_connected=500");
        assert!("Threads_running".parse::<LoadLimits>().is_err());
        assert!("x'y=1".parse::<LoadLimits>().is_err());
        assert!("a=-1".parse::<LoadLimits>().is_err());
        assert_eq!("".parse::<LoadLimits>().unwrap(), LoadLimits::default());
    }
}
