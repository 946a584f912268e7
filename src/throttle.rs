//! Throttling and operator stops: one answer for the pipeline, "go", "wait, because ...", or
//! "abort, because ...", from flag files, server load and replica lag.
//!
//! Replica lag is measured on our own clock: the heartbeat writes the tool's time into the
//! changelog every 100 ms, and a replica's lag is now minus the heartbeat it has applied.
//!
//! Invariants: a throttle only pauses the copy (the applier keeps the shadow current, so the
//! backlog stays small); a critical load aborts only when a second look, after
//! `--critical-load-interval-millis`, still sees it; a status the server does not have is an
//! error at startup, never a silent "go"; a replica whose lag cannot be read counts as lagging
//! (fail closed), and the reason says so.

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Context, Error, Result};
use crate::limits::LoadLimits;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Go,
    Wait(String),
    Abort(String),
    /// `--critical-load` met (twice, `--critical-load-interval-millis` apart): an abort, or,
    /// with `--critical-load-hibernate-seconds`, a pause.
    CriticalLoad(String),
}

/// A replica to measure lag on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ReplicaAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `host:port,host:port` (port 3306 when left out).
pub fn parse_replicas(text: &str) -> std::result::Result<Vec<ReplicaAddress>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (host, port) = part.rsplit_once(':').unwrap_or((part, "3306"));
            let port = port.parse::<u16>().map_err(|_| format!("`{port}` in `{part}` is not a port"))?;
            if host.is_empty() {
                return Err(format!("`{part}` has no host"));
            }
            Ok(ReplicaAddress { host: host.to_string(), port })
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct Throttler {
    /// Replicas given with --throttle-control-replicas; none means "discover them".
    pub replicas: Vec<ReplicaAddress>,
    pub max_lag: Duration,
    pub throttle_flag_file: Option<PathBuf>,
    /// gh-ost's `--throttle-additional-flag-file`: one file that pauses every run at once.
    pub additional_throttle_flag_file: Option<PathBuf>,
    pub panic_flag_file: Option<PathBuf>,
    pub max_load: LoadLimits,
    pub critical_load: LoadLimits,
    pub critical_load_interval: Duration,
    /// gh-ost's `--critical-load-hibernate-seconds`: on critical load, pause this long instead
    /// of aborting (zero: abort).
    pub critical_load_hibernate: Duration,
    /// gh-ost's `--throttle-query`: run on the primary once a second; a result above zero
    /// throttles.
    pub throttle_query: Option<String>,
    /// gh-ost's `--throttle-http` checks (the URL itself is a live setting).
    pub http: HttpChecks,
}

/// How gh-ost's `--throttle-http` URL is checked: a HEAD request every `interval`, given up
/// after `timeout`; any answer but 200 throttles, and so does a request that fails, unless
/// `ignore_errors` (`--ignore-http-errors`).
#[derive(Debug, Clone, Default)]
pub struct HttpChecks {
    pub interval: Duration,
    pub timeout: Duration,
    pub ignore_errors: bool,
}

impl HttpChecks {
    /// Checks the live setting's URL every interval until the run stops, keeping the last
    /// verdict in `verdict`. A task of its own: a slow endpoint holds up no other check.
    fn spawn(self, state: std::sync::Arc<crate::state::RunState>, verdict: std::sync::Arc<std::sync::Mutex<Verdict>>) -> tokio::task::JoinHandle<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(self.timeout)).build().into();
        tokio::spawn(async move {
            while !state.stopping() {
                let url = state.live.throttle_http.lock().expect("live lock").clone();
                let now = match url {
                    None => Verdict::Go,
                    Some(url) => {
                        let (agent, ignore_errors) = (agent.clone(), self.ignore_errors);
                        tokio::task::spawn_blocking(move || head(&agent, &url, ignore_errors)).await.unwrap_or_else(|e| Verdict::Wait(format!("throttle-http check failed: {e}")))
                    }
                };
                *verdict.lock().expect("verdict lock") = now;
                tokio::time::sleep(self.interval).await;
            }
        })
    }
}

/// One `--throttle-http` check: HEAD `url`.
fn head(agent: &ureq::Agent, url: &str, ignore_errors: bool) -> Verdict {
    match agent.head(url).call() {
        Ok(response) if response.status() == 200 => Verdict::Go,
        Ok(response) => Verdict::Wait(format!("throttle-http {} answered {}", redacted_url(url), response.status().as_u16())),
        Err(ureq::Error::StatusCode(code)) => Verdict::Wait(format!("throttle-http {} answered {code}", redacted_url(url))),
        Err(_) if ignore_errors => Verdict::Go,
        Err(e) => Verdict::Wait(format!("throttle-http {} failed: {e}", redacted_url(url))),
    }
}

/// A URL as it may be shown: scheme, host, port and path, without a user, password or query
/// that could carry a secret.
pub fn redacted_url(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => format!("{}://{}{}{}", uri.scheme_str().unwrap_or("http"), uri.host().unwrap_or_default(), uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default(), uri.path()),
        Err(_) => "(a URL that does not parse)".into(),
    }
}

impl Throttler {
    /// The verdict now. `conn` reads the server's status; the load limits and the operator's
    /// throttle come from `live`, which commands can change mid-run.
    pub async fn check(&self, conn: &mut Conn, live: &crate::state::Live) -> Result<Verdict> {
        let critical_load = live.critical_load.lock().expect("live lock").clone();
        let max_load = live.max_load.lock().expect("live lock").clone();
        if let Some(path) = self.panic_flag_file.as_ref().filter(|p| p.exists()) {
            return Ok(Verdict::Abort(format!("the panic flag file {} exists", path.display())));
        }
        if let Some(over) = over_limit(conn, &critical_load).await? {
            if !self.critical_load_interval.is_zero() {
                tokio::time::sleep(self.critical_load_interval).await;
            }
            if let Some(still) = over_limit(conn, &critical_load).await? {
                return Ok(Verdict::CriticalLoad(format!("critical load: {still} (first seen {over})")));
            }
        }
        if let Some(path) = [&self.throttle_flag_file, &self.additional_throttle_flag_file].into_iter().flatten().find(|p| p.exists()) {
            return Ok(Verdict::Wait(format!("the throttle flag file {} exists", path.display())));
        }
        if live.operator_throttle.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Verdict::Wait("throttled by an operator command".into()));
        }
        if let Some(over) = over_limit(conn, &max_load).await? {
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

/// The lag at which the copy pauses, learned during the run.
///
/// It starts two chunk times under `--max-lag-millis`: a chunk reaches a replica as one
/// transaction that takes longer to apply there than here (row events, applied by one thread
/// beside the rest of the load), and the chunks committed before the copy pauses still arrive
/// after it. How far they carry the lag is then measured: every time the lag crosses the
/// limit, its peak before it falls back under shows the overshoot, and the margin grows to
/// 1.25 times the largest seen. The limit never goes under a quarter of the maximum.
#[derive(Debug, Default)]
pub struct LagLimit {
    chunk_time: Duration,
    /// The largest rise of the lag past the limit seen so far.
    overshoot: Duration,
    /// The limit and the highest lag since the lag last crossed it, while it is over.
    over: Option<(Duration, Duration)>,
}

impl LagLimit {
    pub fn new(chunk_time: Duration) -> LagLimit {
        LagLimit { chunk_time, ..LagLimit::default() }
    }

    /// The limit for a given `--max-lag-millis`.
    pub fn current(&self, max_lag: Duration) -> Duration {
        let margin = (self.chunk_time * 2).max(self.overshoot * 5 / 4);
        max_lag.saturating_sub(margin).max(max_lag / 4)
    }

    /// Takes a lag reading (`None` when unreadable) checked against `limit`.
    pub fn observe(&mut self, lag: Option<Duration>, limit: Duration) {
        let Some(lag) = lag else { return };
        match (&mut self.over, lag >= limit) {
            (None, true) => self.over = Some((limit, lag)),
            (Some((_, peak)), true) => *peak = (*peak).max(lag),
            (Some((crossed, peak)), false) => {
                let overshoot = peak.saturating_sub(*crossed);
                if overshoot > self.overshoot {
                    tracing::debug!("replica lag rose {} ms past the copy's lag limit; pausing earlier from now on", overshoot.as_millis());
                    self.overshoot = overshoot;
                }
                self.over = None;
            }
            (None, false) => {}
        }
    }
}

/// Evaluates the verdict every 100 ms until the run stops: records the throttle reason for the
/// copy to obey, and fails the run (exit 4) on an abort verdict.
pub fn spawn_control(server: crate::server::Server, throttler: Throttler, lag: LagProbe, chunk_time: Duration, state: std::sync::Arc<crate::state::RunState>) -> tokio::task::JoinHandle<()> {
    let mut lag_limit = LagLimit::new(chunk_time);
    let max_lag = Duration::from_millis(state.live.max_lag_ms.load(std::sync::atomic::Ordering::Relaxed));
    state.lag_limit_ms.store(lag_limit.current(max_lag).as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    let http_verdict = std::sync::Arc::new(std::sync::Mutex::new(Verdict::Go));
    let http = throttler.http.clone().spawn(state.clone(), http_verdict.clone());
    tokio::spawn(async move {
        let mut lag = lag;
        let mut throttle_query = ThrottleQuery { last: None };
        let mut conn: Option<Conn> = None;
        while !state.stopping() {
            if conn.is_none() {
                conn = server.conn().await.ok();
            }
            if let Some(c) = conn.as_mut() {
                // Lag is read every time: the cut-over waits for it even when the copy is
                // throttled for another reason.
                let max_lag = Duration::from_millis(state.live.max_lag_ms.load(std::sync::atomic::Ordering::Relaxed));
                let limit = lag_limit.current(max_lag);
                let lag_verdict = lag.check(limit, &state).await;
                lag_limit.observe(state.replica_lag_ms.lock().expect("lag lock").map(Duration::from_millis), limit);
                match lag.slowest_applied {
                    Some(applied) => state.replay_pace.lock().expect("pace lock").replica_at(applied, crate::state::since_epoch()),
                    None => state.replay_pace.lock().expect("pace lock").forget_unseen(),
                }
                state.lag_limit_ms.store(limit.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                state.replicas_lagging.store(lag_verdict != Verdict::Go, std::sync::atomic::Ordering::SeqCst);
                let verdict = match throttler.check(c, &state.live).await {
                    Ok(Verdict::Go) => match throttle_query.check(c, &state.live).await {
                        Verdict::Go => match http_verdict.lock().expect("verdict lock").clone() {
                            Verdict::Go => Ok(lag_verdict),
                            wait => Ok(wait),
                        },
                        wait => Ok(wait),
                    },
                    other => other,
                };
                match verdict {
                    Ok(Verdict::Go) => state.set_throttle(None),
                    Ok(Verdict::Wait(why)) => state.set_throttle(Some(why)),
                    Ok(Verdict::CriticalLoad(why)) if !throttler.critical_load_hibernate.is_zero() => {
                        hibernate(&throttler, &state, &why).await;
                        conn = None;
                    }
                    Ok(Verdict::Abort(why) | Verdict::CriticalLoad(why)) => state.fail(Error::new(crate::error::ExitKind::Aborted, why)),
                    Err(e) => {
                        tracing::warn!("checking throttles: {e}");
                        conn = None;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        http.abort();
    })
}

/// gh-ost's `--critical-load-hibernate-seconds`: the copy pauses for that long, and no status
/// is read meanwhile (the replay and the heartbeat go on: they keep the shadow current and the
/// lag measured); then the checks start again, and a critical load still there hibernates
/// again. The connection is dropped for the duration.
async fn hibernate(throttler: &Throttler, state: &crate::state::RunState, why: &str) {
    let seconds = throttler.critical_load_hibernate.as_secs();
    tracing::warn!("{why}: hibernating for {seconds} s (--critical-load-hibernate-seconds) instead of aborting");
    state.set_throttle(Some(format!("hibernating for {seconds} s after {why}")));
    let until = std::time::Instant::now() + throttler.critical_load_hibernate;
    while std::time::Instant::now() < until && !state.stopping() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--throttle-query` (the live setting, which the `throttle-query=` command changes), run at
/// most once a second: its last verdict, and the query it came from, are kept in between.
struct ThrottleQuery {
    last: Option<(std::time::Instant, String, Verdict)>,
}

impl ThrottleQuery {
    const INTERVAL: Duration = Duration::from_secs(1);

    /// Wait while the query's first column is above zero. The query is the operator's own SQL,
    /// run as given; an error throttles too (the run cannot tell whether it may go on), naming
    /// the error.
    async fn check(&mut self, conn: &mut Conn, live: &crate::state::Live) -> Verdict {
        let Some(sql) = live.throttle_query.lock().expect("live lock").clone() else { return Verdict::Go };
        if let Some((at, last_sql, verdict)) = &self.last {
            if at.elapsed() < Self::INTERVAL && *last_sql == sql {
                return verdict.clone();
            }
        }
        let verdict = match conn.query_first::<Option<String>, _>(sql.as_str()).await {
            Ok(value) => match value.flatten().map(|v| v.trim().parse::<f64>()) {
                Some(Ok(n)) if n > 0.0 => Verdict::Wait(format!("throttle-query returned {}", n)),
                Some(Err(_)) => Verdict::Wait("throttle-query returned something other than a number".into()),
                _ => Verdict::Go,
            },
            Err(e) => Verdict::Wait(format!("throttle-query failed: {}", crate::error::describe_mysql_error(&e))),
        };
        self.last = Some((std::time::Instant::now(), sql, verdict.clone()));
        verdict
    }
}

/// Lag on each replica, read from the changelog heartbeat it has applied.
pub struct LagProbe {
    server: crate::server::Server,
    replicas: Vec<Watched>,
    heartbeat_sql: String,
    /// At the last check, the oldest heartbeat a watched replica had applied (time since the
    /// epoch); `None` when no replica is watched or one could not be read.
    slowest_applied: Option<Duration>,
}

/// A replica being watched.
struct Watched {
    label: String,
    opts: mysql_async::Opts,
    conn: Option<Conn>,
}

impl LagProbe {
    /// The replicas to watch: those given, or those the primary lists in SHOW SLAVE HOSTS
    /// (except our own binlog reader). Each is reached with the run's credentials.
    pub async fn new(server: &crate::server::Server, conn: &mut Conn, throttler: &Throttler, names: &crate::plan::TableNames, own_server_id: u32) -> Result<LagProbe> {
        let mut labelled: Vec<(String, ReplicaAddress)> = throttler.replicas.iter().map(|r| (r.to_string(), r.clone())).collect();
        if labelled.is_empty() {
            let statement = crate::server::replica_hosts_statement(server.facts.flavor, server.facts.version);
            let hosts: Vec<mysql_async::Row> = match conn.query(statement).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(
                        "cannot discover replicas with {statement} ({}); replica lag is NOT watched. Grant REPLICATION MASTER ADMIN (MariaDB) or REPLICATION SLAVE (MySQL), or list replicas with --throttle-control-replicas",
                        crate::error::describe_mysql_error(&e)
                    );
                    Vec::new()
                }
            };
            for row in hosts {
                let id: u32 = row.get(0).unwrap_or_default();
                let host: String = row.get(1).unwrap_or_default();
                let port: u16 = row.get(2).unwrap_or_default();
                if id == own_server_id {
                    continue;
                }
                if host.is_empty() || port == 0 {
                    // Binlog clients (another alterego, gh-ost, CDC tools) register too, with no
                    // address or port 0: without a port this is no server to read lag from.
                    tracing::warn!("not watching server id {id} from {statement}: it reports no address and port; if it is a replica, set report_host and report_port on it or list it in --throttle-control-replicas");
                } else {
                    labelled.push((format!("{host}:{port}"), ReplicaAddress { host, port }));
                }
            }
            if !labelled.is_empty() {
                tracing::info!("watching lag on discovered replicas: {}", labelled.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", "));
            }
        }
        let replicas = labelled.into_iter().map(|(label, a)| Watched { label, opts: server.opts_for(&a.host, a.port), conn: None }).collect();
        Ok(LagProbe { server: server.clone(), replicas, heartbeat_sql: format!("SELECT value FROM {} WHERE id = 1", names.q(&names.changelog)), slowest_applied: None })
    }

    /// The watched replicas that would replay a DDL as one statement holding up their
    /// replication while it runs: all of them when the primary cannot log an ALTER in two
    /// phases, otherwise those that do not apply in parallel (`slave_parallel_threads` = 0)
    /// or cannot be asked.
    pub async fn standing_still_during_ddl(&mut self, two_phase: bool) -> Vec<String> {
        let mut standing_still = Vec::new();
        for Watched { label, opts, conn } in &mut self.replicas {
            let parallel = two_phase && parallel_threads(&self.server, opts, conn).await.is_ok_and(|threads| threads > 0);
            if !parallel {
                standing_still.push(label.clone());
            }
        }
        standing_still
    }

    /// Wait when any replica lags by `max_lag` or more, or cannot tell its lag. Records the
    /// highest lag read for the status output.
    async fn check(&mut self, max_lag: Duration, state: &crate::state::RunState) -> Verdict {
        let mut highest: Option<Duration> = None;
        let mut verdict = Verdict::Go;
        self.slowest_applied = None;
        for Watched { label, opts, conn } in &mut self.replicas {
            match read_applied_heartbeat(&self.server, opts, conn, &self.heartbeat_sql).await {
                Ok(applied) => {
                    let lag = crate::state::since_epoch().saturating_sub(applied);
                    highest = highest.max(Some(lag));
                    self.slowest_applied = Some(self.slowest_applied.map_or(applied, |a| a.min(applied)));
                    if lag >= max_lag && verdict == Verdict::Go {
                        verdict = Verdict::Wait(format!("replica {label} lags {:.1}s (max {:.1}s)", lag.as_secs_f64(), max_lag.as_secs_f64()));
                    }
                }
                Err(why) => {
                    *conn = None;
                    verdict = Verdict::Wait(format!("cannot read the lag of replica {label}: {why}"));
                    highest = None;
                    self.slowest_applied = None;
                    break;
                }
            }
        }
        *state.replica_lag_ms.lock().expect("lag lock") = highest.map(|l| l.as_millis() as u64);
        verdict
    }
}

/// A MariaDB replica's `slave_parallel_threads`.
async fn parallel_threads(server: &crate::server::Server, opts: &mut mysql_async::Opts, conn: &mut Option<Conn>) -> std::result::Result<u64, String> {
    let ask = async {
        let threads: Option<u64> = replica_conn(server, opts, conn).await?.query_first("SELECT @@GLOBAL.slave_parallel_threads").await.map_err(|e| crate::error::describe_mysql_error(&e))?;
        Ok(threads.unwrap_or(0))
    };
    tokio::time::timeout(LAG_READ_TIMEOUT, ask).await.unwrap_or_else(|_| Err("no answer".into()))
}

/// The open connection to a watched replica, opened if there is none.
async fn replica_conn<'a>(server: &crate::server::Server, opts: &mut mysql_async::Opts, conn: &'a mut Option<Conn>) -> std::result::Result<&'a mut Conn, String> {
    if conn.is_none() {
        *conn = Some(server.connect_other(opts).await?);
    }
    Ok(conn.as_mut().expect("connected above"))
}

/// How long a replica may take to answer before its lag counts as unreadable.
const LAG_READ_TIMEOUT: Duration = Duration::from_secs(1);

async fn read_applied_heartbeat(server: &crate::server::Server, opts: &mut mysql_async::Opts, conn: &mut Option<Conn>, sql: &str) -> std::result::Result<Duration, String> {
    tokio::time::timeout(LAG_READ_TIMEOUT, read_applied_heartbeat_unbounded(server, opts, conn, sql)).await.unwrap_or_else(|_| Err(format!("no answer within {}s", LAG_READ_TIMEOUT.as_secs())))
}

/// The heartbeat a replica has applied: the time, since the epoch, it was written.
async fn read_applied_heartbeat_unbounded(server: &crate::server::Server, opts: &mut mysql_async::Opts, conn: &mut Option<Conn>, sql: &str) -> std::result::Result<Duration, String> {
    let value: Option<String> = replica_conn(server, opts, conn).await?.query_first(sql).await.map_err(|e| crate::error::describe_mysql_error(&e))?;
    let written: u64 = value.ok_or("no heartbeat replicated yet")?.parse().map_err(|_| "an unreadable heartbeat".to_string())?;
    Ok(Duration::from_micros(written))
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

/// A global status value. `name` must be an identifier (those of `--max-load` were checked
/// when parsed).
pub async fn status(conn: &mut Conn, name: &str) -> Result<Option<u64>> {
    let row: Option<(String, String)> = conn.query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'")).await.context(|| format!("reading status {name}"))?;
    Ok(row.and_then(|(_, v)| v.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_pauses_earlier_after_the_lag_overshot() {
        let ms = Duration::from_millis;
        let mut limit = LagLimit::new(ms(250));
        assert_eq!(limit.current(ms(1500)), ms(1000), "two chunk times under the maximum");
        assert_eq!(LagLimit::new(ms(0)).current(ms(1500)), ms(1500), "fixed chunk sizes start at the maximum");
        assert_eq!(LagLimit::new(ms(900)).current(ms(1000)), ms(250), "never under a quarter of it");
        for lag in [900, 1000, 1300, 1400, 1200, 990] {
            limit.observe(Some(ms(lag)), ms(1000));
        }
        assert_eq!(limit.current(ms(1500)), ms(1000), "a smaller overshoot than the margin changes nothing");
        for lag in [1000, 1600, 999] {
            limit.observe(Some(ms(lag)), ms(1000));
        }
        assert_eq!(limit.current(ms(1500)), ms(750), "margin 1.25 x the 600 ms overshoot");
        limit.observe(None, ms(750));
        assert_eq!(limit.current(ms(1500)), ms(750), "unreadable lag teaches nothing");
    }

    #[test]
    fn parses_replica_lists() {
        assert_eq!(parse_replicas("r1:3307, r2").unwrap(), vec![ReplicaAddress { host: "r1".into(), port: 3307 }, ReplicaAddress { host: "r2".into(), port: 3306 }]);
        assert!(parse_replicas("r1:x").is_err());
        assert!(parse_replicas(":3306").is_err());
        assert!(parse_replicas("").unwrap().is_empty());
    }
}
