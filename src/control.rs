//! Live commands on a Unix socket (`--serve-socket-file`, created with mode 0600) and,
//! optionally, on a loopback TCP port (`--serve-tcp-port`), with gh-ost's command names: one
//! command per connection, one answer, e.g. `echo status | nc -U /tmp/orders.sock`.
//!
//! Invariants: the TCP listener binds 127.0.0.1 only; a command changes only the live settings
//! (`state::Live`) or the run's state, never a table directly; `name=?` reads a setting back.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::config::{parse_nice_ratio, NamedCommands};
use crate::error::{Error, ExitKind, Result};
use crate::hooks::{Hook, Hooks};
use crate::limits::LoadLimits;
use crate::state::{Live, RunState};
use crate::throttle::redacted_url;

const HELP: &str = "commands: status (info), sup, status-json, help, coordinates, applier, inspector, \
throttle (pause, suspend), no-throttle (unthrottle, resume, continue), unpostpone (no-postpone, cut-over), panic; \
settings: chunk-size=N, max-lag-millis=N, max-load=NAME=N,..., critical-load=NAME=N,..., threads=N, nice-ratio=R, \
throttle-query=SQL, throttle-http=URL, postpone-cut-over-flag-file=PATH, dml-batch-size=N; NAME=? reads a value; \
throttle, no-throttle, unpostpone and panic also take the table's name (unpostpone=TABLE)";

/// What the commands need besides the run's state: the table's name (gh-ost's named forms,
/// `panic=<table>`), which commands must carry it (`--force-named-cut-over`,
/// `--force-named-panic`), and the server's address (`applier`, `inspector`).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub table: String,
    pub named: NamedCommands,
    pub server: String,
}

/// Starts the listeners; they end with the process (`migration::run` removes the socket file).
/// A socket file left by a process that is gone is replaced; one that a running process answers
/// on is refused, unless `take_over` (gh-ost's `--initially-drop-socket-file`).
pub async fn serve(socket: Option<PathBuf>, take_over: bool, tcp_port: Option<u16>, state: Arc<RunState>, hooks: Option<Hooks>, context: Context) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let context = Arc::new(context);
    let mut tasks = Vec::new();
    if let Some(path) = socket {
        if !take_over && std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(Error::usage(
                format!("--serve-socket-file {} is the live socket of another running process (another migration?)", path.display()),
                "give this run another --serve-socket-file, or pass --initially-drop-socket-file to take the path over",
            ));
        }
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| Error::usage(format!("cannot listen on {}: {e}", path.display()), "give --serve-socket-file a writable path"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::failed(format!("securing {}: {e}", path.display())))?;
        let (accepting, hooks, context) = (state.clone(), hooks.clone(), context.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, accepting.clone(), hooks.clone(), context.clone()));
            }
        }));
    }
    if let Some(port) = tcp_port {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| Error::usage(format!("cannot listen on 127.0.0.1:{port}: {e}"), "pick a free --serve-tcp-port"))?;
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, state.clone(), hooks.clone(), context.clone()));
            }
        }));
    }
    Ok(tasks)
}

/// Answers one connection's command, then runs the on-interactive-command hook with it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: Arc<RunState>, hooks: Option<Hooks>, context: Arc<Context>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let command = line.trim();
    let reply = execute(command, &state, &context);
    // Commands that change something are logged; reads (status, NAME=?) only at debug level,
    // so a dashboard polling the socket does not flood the log.
    let reads = matches!(command, "status" | "info" | "sup" | "status-json" | "help" | "coordinates" | "applier" | "inspector") || command.ends_with("=?");
    let shown = shown(command);
    if reads {
        tracing::debug!("command `{shown}`");
    } else {
        tracing::info!("command `{shown}`: {}", reply.lines().next().unwrap_or_default());
    }
    let _ = reader.get_mut().write_all(format!("{reply}\n").as_bytes()).await;
    let _ = reader.get_mut().shutdown().await;
    if let Some(hooks) = hooks {
        hooks.run(Hook::InteractiveCommand, &state, &[("GH_OST_COMMAND", shown)]).await.ok();
    }
}

/// A command as the log and the hooks see it: a `throttle-http=` URL without a password or
/// query that could carry a secret.
fn shown(command: &str) -> String {
    match command.split_once('=') {
        Some(("throttle-http", url)) if url != "?" && !url.is_empty() => format!("throttle-http={}", redacted_url(url)),
        _ => command.to_string(),
    }
}

/// Carries out one command and returns the answer: `NAME`, `NAME=VALUE`, or `NAME=?` to read a
/// setting back.
pub fn execute(command: &str, state: &RunState, context: &Context) -> String {
    let (name, arg) = match command.split_once('=') {
        Some((name, arg)) => (name, Some(arg)),
        None => (command, None),
    };
    if arg == Some("?") {
        return read_setting(name, state);
    }
    match name {
        "status" | "info" => status_text(state),
        "sup" => format!("{}; copied {} of about {} rows", state.phase(), state.rows_copied.load(Ordering::Relaxed), state.rows_estimated.load(Ordering::Relaxed)),
        "status-json" => state.snapshot("status").to_string(),
        "help" => HELP.into(),
        "coordinates" => format!("replayed up to binlog {}", state.applied_position()),
        "applier" | "inspector" => format!("{name}: {} (alterego migrates on, and reads the binlog of, this one server)", context.server),
        "throttle" | "pause" | "suspend" | "no-throttle" | "unthrottle" | "resume" | "continue" | "unpostpone" | "no-postpone" | "cut-over" | "panic" => match named_command(name, arg, context) {
            Ok(()) => run_command(name, state),
            Err(refusal) => refusal,
        },
        _ => match arg {
            Some(value) => set(name, value, &state.live),
            None => format!("error: unknown command `{name}`; {HELP}"),
        },
    }
}

/// gh-ost's named forms: `panic=<table>` acts only on the run migrating `<table>`; with
/// `--force-named-cut-over` / `--force-named-panic`, `unpostpone` and `panic` need the name.
fn named_command(name: &str, arg: Option<&str>, context: &Context) -> std::result::Result<(), String> {
    let must_name = match name {
        "unpostpone" | "no-postpone" | "cut-over" => context.named.cut_over,
        "panic" => context.named.panic,
        _ => false,
    };
    match arg {
        None if must_name => Err(format!("error: `{name}` must name the table (`{name}={}`): --force-named-{} is set; ignored", context.table, if name == "panic" { "panic" } else { "cut-over" })),
        Some(table) if table != context.table => Err(format!("error: `{name}` names table `{table}`, but this run migrates `{}`; ignored", context.table)),
        _ => Ok(()),
    }
}

fn run_command(name: &str, state: &RunState) -> String {
    let live = &state.live;
    match name {
        "throttle" | "pause" | "suspend" => {
            live.operator_throttle.store(true, Ordering::SeqCst);
            "throttled".into()
        }
        "no-throttle" | "unthrottle" | "resume" | "continue" => {
            live.operator_throttle.store(false, Ordering::SeqCst);
            "throttle released".into()
        }
        "unpostpone" | "no-postpone" | "cut-over" => {
            live.unpostponed.store(true, Ordering::SeqCst);
            "the cut-over will proceed".into()
        }
        _ => {
            state.fail(Error::new(ExitKind::Aborted, "the panic command was received"));
            "aborting".into()
        }
    }
}

/// Sets a live setting from `NAME=VALUE`.
fn set(name: &str, value: &str, live: &Live) -> String {
    match name {
        "chunk-size" => match value.parse::<u64>() {
            Ok(n) if (10..=1_000_000).contains(&n) => {
                live.chunk_size.store(n, Ordering::Relaxed);
                format!("chunk-size={n}")
            }
            _ => "error: chunk-size takes a whole number from 10 to 1000000".into(),
        },
        "max-lag-millis" => match value.parse::<u64>() {
            Ok(n) if n > 0 => {
                live.max_lag_ms.store(n, Ordering::Relaxed);
                format!("max-lag-millis={n}")
            }
            _ => "error: max-lag-millis takes a positive whole number".into(),
        },
        "max-load" | "critical-load" => match value.parse::<LoadLimits>() {
            Ok(limits) => {
                let slot = if name == "max-load" { &live.max_load } else { &live.critical_load };
                *slot.lock().expect("live lock") = limits.clone();
                format!("{name}={limits}")
            }
            Err(e) => format!("error: {e}"),
        },
        "threads" => match value.parse::<u64>() {
            Ok(n) if (1..=crate::copy::MAX_THREADS).contains(&n) => {
                live.threads.store(n, Ordering::Relaxed);
                format!("threads={n}")
            }
            _ => format!("error: threads takes a whole number from 1 to {}", crate::copy::MAX_THREADS),
        },
        "nice-ratio" => match parse_nice_ratio(value) {
            Ok(ratio) => {
                *live.nice_ratio.lock().expect("live lock") = ratio;
                format!("nice-ratio={ratio}")
            }
            Err(e) => format!("error: {e}"),
        },
        "throttle-query" => {
            *live.throttle_query.lock().expect("live lock") = Some(value.to_string()).filter(|q| !q.trim().is_empty());
            format!("throttle-query={value}")
        }
        "throttle-http" => {
            *live.throttle_http.lock().expect("live lock") = Some(value.to_string()).filter(|u| !u.trim().is_empty());
            format!("throttle-http={}", if value.is_empty() { String::new() } else { redacted_url(value) })
        }
        "postpone-cut-over-flag-file" => {
            *live.postpone_flag_file.lock().expect("live lock") = Some(PathBuf::from(value)).filter(|_| !value.is_empty());
            format!("postpone-cut-over-flag-file={value}")
        }
        "dml-batch-size" => match value.parse::<u64>() {
            Ok(n) if n > 0 => format!("dml-batch-size={n}: accepted and ignored; {DML_BATCHES}"),
            _ => "error: dml-batch-size takes a positive whole number".into(),
        },
        "throttle-control-replicas" => "error: the replicas watched cannot change mid-run; start the run with --throttle-control-replicas".into(),
        _ => format!("error: unknown setting `{name}`; {HELP}"),
    }
}

/// Why `dml-batch-size` changes nothing.
const DML_BATCHES: &str = "alterego groups replayed changes into statements of up to 200 rows by itself";

fn read_setting(name: &str, state: &RunState) -> String {
    let live = &state.live;
    match name {
        "nice-ratio" => live.nice_ratio.lock().expect("live lock").to_string(),
        "throttle-query" => live.throttle_query.lock().expect("live lock").clone().unwrap_or_default(),
        "throttle-http" => live.throttle_http.lock().expect("live lock").as_deref().map(redacted_url).unwrap_or_default(),
        "postpone-cut-over-flag-file" => live.postpone_flag_file.lock().expect("live lock").as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "dml-batch-size" => format!("ignored: {DML_BATCHES}"),
        "chunk-size" => live.chunk_size.load(Ordering::Relaxed).to_string(),
        "max-lag-millis" => live.max_lag_ms.load(Ordering::Relaxed).to_string(),
        "max-load" => live.max_load.lock().expect("live lock").to_string(),
        "critical-load" => live.critical_load.lock().expect("live lock").to_string(),
        "threads" => state.live.threads.load(Ordering::Relaxed).to_string(),
        other => format!("error: unknown setting `{other}`"),
    }
}

fn status_text(state: &RunState) -> String {
    let s = state.snapshot("status");
    format!(
        "state: {}\ncopied: {} of about {} rows\napplied changes: {}\nbacklog: {} transactions\nreplica lag: {}\nthrottle: {}\nchunk-size: {}, threads: {} ({} copying), max-lag-millis: {}, max-load: {}, critical-load: {}",
        s["state"].as_str().unwrap_or_default(),
        s["rows_copied"],
        s["rows_estimated"],
        s["changes_applied"],
        s["backlog"],
        s["replica_lag_ms"].as_u64().map_or("not measured".into(), |ms| format!("{ms} ms")),
        s["throttle"].as_str().unwrap_or("none"),
        read_setting("chunk-size", state),
        read_setting("threads", state),
        s["copy_workers"],
        read_setting("max-lag-millis", state),
        read_setting("max-load", state),
        read_setting("critical-load", state),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context { table: "orders".into(), named: NamedCommands::default(), server: "127.0.0.1:3306".into() }
    }

    fn execute(command: &str, state: &RunState) -> String {
        super::execute(command, state, &context())
    }

    #[test]
    fn settings_change_and_read_back() {
        let state = RunState::default();
        assert_eq!(execute("chunk-size=500", &state), "chunk-size=500");
        assert_eq!(execute("chunk-size=?", &state), "500");
        assert!(execute("chunk-size=5", &state).starts_with("error"));
        assert_eq!(execute("max-load=Threads_running=30", &state), "max-load=Threads_running=30");
        assert_eq!(execute("max-load=?", &state), "Threads_running=30");
        assert!(execute("max-load=bad", &state).starts_with("error"));
        assert_eq!(execute("throttle", &state), "throttled");
        assert!(state.live.operator_throttle.load(Ordering::SeqCst));
        assert_eq!(execute("threads=4", &state), "threads=4");
        assert_eq!(execute("threads=?", &state), "4");
        assert!(execute("threads=99", &state).starts_with("error"));
        assert!(execute("bogus", &state).contains("unknown command"));
        assert_eq!(execute("nice-ratio=0.5", &state), "nice-ratio=0.5");
        assert_eq!(execute("nice-ratio=?", &state), "0.5");
        assert!(execute("nice-ratio=101", &state).starts_with("error"));
        assert_eq!(execute("throttle-query=SELECT 1", &state), "throttle-query=SELECT 1");
        assert_eq!(state.live.throttle_query.lock().unwrap().as_deref(), Some("SELECT 1"));
        execute("throttle-query=", &state);
        assert_eq!(*state.live.throttle_query.lock().unwrap(), None);
        assert_eq!(execute("postpone-cut-over-flag-file=/tmp/p", &state), "postpone-cut-over-flag-file=/tmp/p");
        assert_eq!(execute("postpone-cut-over-flag-file=?", &state), "/tmp/p");
        assert!(execute("dml-batch-size=50", &state).contains("ignored"));
        assert!(execute("throttle-control-replicas=r1:3306", &state).starts_with("error"));
        assert_eq!(execute("coordinates", &state), "replayed up to binlog :0");
        assert!(execute("applier", &state).contains("127.0.0.1:3306"));
        assert_eq!(execute("panic", &state), "aborting");
        assert!(state.stopping());
    }

    #[test]
    fn throttle_http_urls_are_shown_without_secrets() {
        let state = RunState::default();
        assert_eq!(execute("throttle-http=https://u:pw@example.com:8443/ok?key=1", &state), "throttle-http=https://example.com:8443/ok");
        assert_eq!(state.live.throttle_http.lock().unwrap().as_deref(), Some("https://u:pw@example.com:8443/ok?key=1"));
        assert_eq!(execute("throttle-http=?", &state), "https://example.com:8443/ok");
        assert_eq!(shown("throttle-http=http://u:pw@h/x?t=1"), "throttle-http=http://h/x");
        assert_eq!(shown("throttle-http=?"), "throttle-http=?");
        assert_eq!(execute("throttle-http=", &state), "throttle-http=");
        assert_eq!(*state.live.throttle_http.lock().unwrap(), None);
    }

    #[test]
    fn aliases_and_table_named_forms() {
        let state = RunState::default();
        assert_eq!(execute("pause", &state), "throttled");
        assert_eq!(execute("resume", &state), "throttle released");
        assert!(!state.live.operator_throttle.load(Ordering::SeqCst));
        assert!(execute("throttle=other", &state).contains("this run migrates `orders`; ignored"));
        assert!(!state.live.operator_throttle.load(Ordering::SeqCst));
        assert_eq!(execute("throttle=orders", &state), "throttled");
        assert!(execute("info", &state).starts_with("state:"));
        assert!(execute("panic=other", &state).contains("ignored"));
        assert!(!state.stopping());
        let named = Context { named: NamedCommands { cut_over: true, panic: true }, ..context() };
        assert!(super::execute("cut-over", &state, &named).contains("--force-named-cut-over is set"));
        assert!(!state.live.unpostponed.load(Ordering::SeqCst));
        assert_eq!(super::execute("cut-over=orders", &state, &named), "the cut-over will proceed");
        assert!(super::execute("panic", &state, &named).contains("--force-named-panic is set"));
        assert!(!state.stopping());
        assert_eq!(super::execute("panic=orders", &state, &named), "aborting");
    }
}
