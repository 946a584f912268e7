//! The randomized fault soak: each round makes a random table, a random lossless ALTER, a random
//! concurrent workload and 0 to 2 random faults, runs alterego through them, and checks the
//! result: the exit code, no `_t_gho`/`_t_ghc`/`_t_ghk` left, `_t_del` kept (unless
//! `--ok-to-drop-table`), and `t` equal, in DDL and row for row, to the oracle table after the
//! same ALTER run natively on it.
//!
//! Everything random comes from the round's seed, so `scripts/soak.sh 1 <round seed>` replays a
//! round's plan (server timing aside). Knobs: `SOAK_ROUNDS`, `SOAK_SEED`, `SOAK_MAX_ROWS`;
//! without `SOAK_ROUNDS` it runs the CI subset (fixed seed, small tables). See docs/soak.md.

#[path = "soak/alter.rs"]
mod alter;
mod common;
#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/schema.rs"]
mod schema;
#[path = "soak/writers.rs"]
mod writers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::workload::Rng;
use common::{server, tables, TestServer};
use faults::{Fault, Kind, Moment, Runner};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};
use schema::{Role, Table};

const DB: &str = "soak";
const CI_ROUNDS: u64 = 20;
const CI_SEED: u64 = 20_261_121;
const CI_MAX_ROWS: i64 = 5_000;
const MAX_ROWS: i64 = 30_000;
const REPLICATION_USER: &str = "repl";
const REPLICATION_PASSWORD: &str = "repl-Pw7";

struct Settings {
    rounds: u64,
    seed: u64,
    max_rows: i64,
    ci: bool,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

fn settings() -> Settings {
    let rounds = env_number("SOAK_ROUNDS");
    let ci = rounds.is_none();
    let default_rows = if ci { CI_MAX_ROWS } else { MAX_ROWS };
    Settings { rounds: rounds.unwrap_or(CI_ROUNDS), seed: env_number("SOAK_SEED").unwrap_or(CI_SEED), max_rows: env_number("SOAK_MAX_ROWS").map_or(default_rows, |n| n as i64), ci }
}

/// Round 0 uses the run's seed itself, so one round is replayed by running one round with its seed.
fn round_seed(seed: u64, round: u64) -> u64 {
    if round == 0 {
        return seed;
    }
    let mut z = seed.wrapping_add(round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Everything a round does, drawn from its seed before anything runs.
struct Plan {
    seed: u64,
    table: Arc<Table>,
    rows: i64,
    alter: alter::Alter,
    writers: i64,
    pause_ms: u64,
    faults: Vec<Fault>,
    flags: Vec<String>,
    watch_replica: bool,
    ok_to_drop: bool,
}

impl Plan {
    fn draw(seed: u64, max_rows: i64) -> Plan {
        let mut rng = Rng::new(seed);
        let table = Table::random(&mut rng);
        let rows = if rng.chance(20) { rng.between(0, 100) } else { rng.between(0, max_rows) };
        let alter = alter::random(&table, &mut rng);
        let writers = rng.between(2, 4);
        let pause_ms = rng.between(2, 25) as u64;
        let fault_count = match rng.below(10) {
            0 => 0,
            1..=5 => 1,
            _ => 2,
        };
        let mut faults: Vec<Fault> = (0..fault_count)
            .map(|_| {
                let moment = if rng.chance(20) { Moment::AfterCopy(rng.below(3000)) } else { Moment::Copied(rng.below(100)) };
                Fault { kind: *rng.pick(&faults::KINDS), moment, hold_ms: rng.between(200, 2500) as u64 }
            })
            .collect();
        // One postponement at most: the second would find the flag file gone.
        if faults.iter().filter(|f| f.kind == Kind::Postpone).count() > 1 {
            faults.truncate(1);
        }
        // In the order they strike; the postponed phase comes last.
        faults.sort_by_key(|f| match (f.kind, f.moment) {
            (Kind::Postpone, _) => (2, 0),
            (_, Moment::Copied(percent)) => (0, percent),
            (_, Moment::AfterCopy(ms)) => (1, ms),
        });
        let mut flags = vec!["--chunk-size".to_string(), rng.pick(&["10", "20", "50", "100", "200", "500", "1000", "2000"]).to_string()];
        flags.extend(["--chunk-time".to_string(), rng.pick(&["0", "0", "0.1", "0.5"]).to_string()]);
        flags.extend(["--threads".to_string(), rng.between(1, 3).to_string()]);
        let ok_to_drop = rng.chance(20);
        for (flag, percent) in [("--ok-to-drop-table", if ok_to_drop { 100 } else { 0 }), ("--defer-secondary-indexes=false", 20), ("--copy-with-locks", 20)] {
            if rng.chance(percent) {
                flags.push(flag.into());
            }
        }
        if alter.renames {
            flags.push("--approve-renamed-columns".into());
        }
        let watch_replica = rng.chance(30) || faults.iter().any(|f| f.kind == Kind::StopReplica);
        Plan { seed, table: Arc::new(table), rows, alter, writers, pause_ms, faults, flags, watch_replica, ok_to_drop }
    }

    /// Data columns that exist under the same name before and after the ALTER.
    fn writable(&self) -> Vec<usize> {
        (0..self.table.columns.len()).filter(|c| self.table.columns[*c].role == Role::Data && !self.alter.frozen.contains(c)).collect()
    }
}

/// The servers the rounds share: the test server and its replica, which replicates as its own
/// user so that alterego's binlog connection is the only `Binlog Dump` of user `alterego`.
struct Servers {
    primary: &'static TestServer,
    replica: TestServer,
}

fn servers() -> &'static Servers {
    static SERVERS: std::sync::OnceLock<Servers> = std::sync::OnceLock::new();
    SERVERS.get_or_init(start_servers)
}

fn start_servers() -> Servers {
    let primary = server();
    primary.sql(&format!("CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}'; GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%';"));
    let replica = primary.start_replica();
    replica.replicate_as(REPLICATION_USER, REPLICATION_PASSWORD);
    Servers { primary, replica }
}

/// Creates `t` and `t_oracle` in a fresh database and loads `rows` rows into both.
async fn create_tables(servers: &'static Servers, plan: &Plan) -> Result<Conn, String> {
    let mut conn = servers.primary.fresh_database(DB).await;
    let mut run =
        async |sql: &str| conn.query_drop(sql).await.map_err(|e| format!("setting up the round: {e}\n{}", &sql[..(0..=sql.len().min(3000)).rev().find(|&i| sql.is_char_boundary(i)).unwrap_or(0)]));
    run("SET SESSION time_zone = '+00:00'").await?;
    for name in ["t", "t_oracle"] {
        run(&plan.table.create_sql(name)).await?;
    }
    let mut rng = Rng::new(plan.seed ^ 0x5EED);
    let ids: Vec<i64> = (1..=plan.rows).collect();
    for batch in ids.chunks(200) {
        run(&plan.table.insert_rows("t", batch, &mut rng)).await?;
    }
    run("INSERT INTO `t_oracle` SELECT * FROM `t`").await?;
    Ok(conn)
}

fn shorten(value: &Value) -> String {
    let text = format!("{value:?}");
    if text.len() > 120 {
        format!("{}...", &text[..text.char_indices().nth(120).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}

/// Compares `t` with `t_oracle` over all columns, in key order; names the first row that differs.
/// `consistent` reads both in one snapshot, for tables still being written.
pub async fn compare_tables(conn: &mut Conn, order_by: &str, consistent: bool) -> Result<usize, String> {
    if consistent {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.map_err(|e| e.to_string())?;
    }
    let mut read = async |table: &str| -> Result<Vec<Row>, String> { conn.query(format!("SELECT * FROM `{table}` ORDER BY {order_by}")).await.map_err(|e| format!("reading {table}: {e}")) };
    let (ours, oracle) = (read("t").await?, read("t_oracle").await?);
    if consistent {
        conn.query_drop("COMMIT").await.map_err(|e| e.to_string())?;
    }
    let names: Vec<String> = ours.first().or(oracle.first()).map(|r| r.columns_ref().iter().map(|c| c.name_str().into_owned()).collect()).unwrap_or_default();
    for i in 0..ours.len().max(oracle.len()) {
        let (a, b) = (ours.get(i).map(|r| r.clone().unwrap()), oracle.get(i).map(|r| r.clone().unwrap()));
        if a != b {
            let show = |row: Option<Vec<Value>>| row.map_or("(none)".to_string(), |r| names.iter().zip(&r).map(|(n, v)| format!("{n}={}", shorten(v))).collect::<Vec<_>>().join(", "));
            let differing = match (&a, &b) {
                (Some(x), Some(y)) => names
                    .iter()
                    .zip(x.iter().zip(y))
                    .filter(|(_, (p, q))| p != q)
                    .map(|(n, (p, q))| match (p, q) {
                        (Value::Bytes(p), Value::Bytes(q)) => {
                            let at = p.iter().zip(q.iter()).position(|(x, y)| x != y).unwrap_or(p.len().min(q.len()));
                            format!("\n  {n}: {} vs {} bytes, first differing at byte {at}: {:02x?} vs {:02x?}", p.len(), q.len(), &p[at..p.len().min(at + 8)], &q[at..q.len().min(at + 8)])
                        }
                        _ => format!("\n  {n}: {p:?} vs {q:?}"),
                    })
                    .collect::<String>(),
                _ => String::new(),
            };
            return Err(format!("{} rows in t, {} in the oracle; first difference at row {i} in key order:\n  t:      {}\n  oracle: {}{differing}", ours.len(), oracle.len(), show(a), show(b)));
        }
    }
    Ok(ours.len())
}

/// One line per round, and the failure's details.
struct Report {
    line: String,
    failure: Option<String>,
    faulted: bool,
}

/// Runs the round; `struck` tells whether a fault struck (was not missed).
async fn run_round(servers: &'static Servers, plan: &Plan, struck: &mut bool) -> Result<String, String> {
    let mut conn = create_tables(servers, plan).await?;
    let original_ddl = faults::show_create(&mut conn, "t").await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak").join(plan.seed.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut args: Vec<String> =
        ["--database", DB, "--table", "t", "--alter", &plan.alter.sql(), "--execute", "--progress=false", "--status-interval-millis", "500"].iter().map(|s| s.to_string()).collect();
    args.extend(plan.flags.iter().cloned());
    args.extend(["--serve-socket-file".into(), faults::socket_path(&dir).display().to_string()]);
    if plan.watch_replica {
        args.extend(["--throttle-control-replicas".into(), format!("127.0.0.1:{}", servers.replica.port)]);
    }
    if plan.faults.iter().any(|f| f.kind == Kind::Postpone) {
        std::fs::write(faults::postpone_path(&dir), "").unwrap();
        args.extend(["--postpone-cut-over-flag-file".into(), faults::postpone_path(&dir).display().to_string()]);
    }
    let writable = plan.writable();
    let plan_writers = writers::WriterPlan { table: plan.table.clone(), writable, writers: plan.writers, pause_ms: plan.pause_ms, seed: plan.seed, initial_rows: plan.rows };
    let running = writers::start(plan_writers, servers.primary.opts(Some(DB)));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut runner = Runner::new(servers.primary, &servers.replica, DB, args, dir.clone(), original_ddl, plan.table.order_by());
    runner.spawn(&[]);
    let outcome = match runner.inject_all(&plan.faults).await {
        Ok(()) => runner.finish(Duration::from_secs(300)).await,
        Err(e) => Err(e),
    };
    *struck = runner.notes.iter().any(|n| !n.ends_with("missed"));
    let notes = runner.notes.join("; ");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = running.stats.clone();
    let writer_errors = running.stop().await;
    outcome.map_err(|e| format!("{e}\nfaults: {notes}"))?;
    if !writer_errors.is_empty() {
        return Err(format!("writers failed: {writer_errors:?}"));
    }
    let mut conn = servers.primary.conn(Some(DB)).await;
    conn.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
    let mut expected = vec!["_t_del", "t", "t_oracle"];
    if plan.ok_to_drop {
        expected.remove(0);
    }
    let names = tables(&mut conn).await;
    if names != expected {
        return Err(format!("tables left: {names:?}, expected {expected:?}\nfaults: {notes}\n{}", runner.stderr_tail()));
    }
    let native = format!("ALTER TABLE `t_oracle` {}", plan.alter.sql());
    conn.query_drop(&native).await.map_err(|e| format!("the native ALTER failed: {native}: {e}"))?;
    let (ours, oracle) = (faults::show_create(&mut conn, "t").await, faults::show_create(&mut conn, "t_oracle").await);
    if ours != oracle {
        let (ours, oracle) = (String::from_utf8_lossy(&ours), String::from_utf8_lossy(&oracle));
        return Err(format!("the new table's DDL differs from the native ALTER's:\n{ours}\n---- oracle ----\n{oracle}"));
    }
    let rows = compare_tables(&mut conn, &plan.table.order_by(), false).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "faults [{notes}] | rows {}->{rows}, tx {} ({} rolled back, {} reconnects)",
        plan.rows,
        stats.committed.load(std::sync::atomic::Ordering::Relaxed),
        stats.rolled_back.load(std::sync::atomic::Ordering::Relaxed),
        stats.reconnects.load(std::sync::atomic::Ordering::Relaxed)
    ))
}

fn reproduction(settings: &Settings, seed: u64) -> String {
    let rows = if settings.max_rows == MAX_ROWS { String::new() } else { format!("SOAK_MAX_ROWS={} ", settings.max_rows) };
    format!("{rows}scripts/soak.sh 1 {seed}")
}

async fn round(servers: &'static Servers, settings: &Settings, index: u64) -> Report {
    let seed = round_seed(settings.seed, index);
    let plan = Plan::draw(seed, settings.max_rows);
    let started = Instant::now();
    let head = format!("round {index} seed {seed}: {} | ALTER {} | flags {} | {} writers", plan.table.summary(), plan.alter.sql(), plan.flags.join(" "), plan.writers);
    let mut faulted = false;
    let result = run_round(servers, &plan, &mut faulted).await;
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(tail) => Report { line: format!("{head} | {tail} | ok {seconds:.1}s"), failure: None, faulted },
        Err(e) => Report {
            line: format!("{head} | FAILED {seconds:.1}s"),
            failure: Some(format!("round {index} seed {seed} failed; reproduce with: {}\n{}\n{e}", reproduction(settings, seed), plan.table.create_sql("t"))),
            faulted,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak() {
    let settings = settings();
    let started = Instant::now();
    eprintln!("soak: {} rounds, seed {}, up to {} rows", settings.rounds, settings.seed, settings.max_rows);
    let servers = servers();
    let (mut failures, mut seeds, mut faulted) = (Vec::new(), Vec::new(), 0);
    for index in 0..settings.rounds {
        let report = round(servers, &settings, index).await;
        eprintln!("{}", report.line);
        seeds.push(round_seed(settings.seed, index));
        faulted += report.faulted as u64;
        if let Some(failure) = report.failure {
            eprintln!("{failure}");
            failures.push(round_seed(settings.seed, index));
        }
    }
    eprintln!("soak: seed {}, {} rounds ({faulted} with a fault that struck), round seeds {seeds:?}", settings.seed, settings.rounds);
    eprintln!("soak: {} failed {failures:?}; wall time {:.0}s", failures.len(), started.elapsed().as_secs_f64());
    if settings.ci {
        assert!(faulted >= 10, "the CI subset must have at least 10 rounds where a fault struck, it had {faulted}");
    }
    assert!(failures.is_empty(), "{} rounds failed: seeds {failures:?}; reproduce each with {}", failures.len(), reproduction(&settings, failures[0]));
}
