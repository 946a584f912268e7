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

use crate::error::{Error, ExitKind, Result};
use crate::hooks::{Hook, Hooks};
use crate::state::RunState;
use crate::throttle::LoadLimits;

const HELP: &str = "commands: status, sup, status-json, help, throttle, no-throttle, unpostpone, panic, \
chunk-size=N, max-lag-millis=N, max-load=NAME=N,..., critical-load=NAME=N,..., threads=N; NAME=? reads a value";

/// Starts the listeners; they end with the process (`migration::run` removes the socket file).
/// A socket file left by a process that is gone is replaced; one that a running process answers
/// on is refused, unless `take_over` (gh-ost's `--initially-drop-socket-file`).
pub async fn serve(socket: Option<PathBuf>, take_over: bool, tcp_port: Option<u16>, state: Arc<RunState>, hooks: Option<Hooks>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
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
        let (accepting, hooks) = (state.clone(), hooks.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, accepting.clone(), hooks.clone()));
            }
        }));
    }
    if let Some(port) = tcp_port {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| Error::usage(format!("cannot listen on 127.0.0.1:{port}: {e}"), "pick a free --serve-tcp-port"))?;
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, state.clone(), hooks.clone()));
            }
        }));
    }
    Ok(tasks)
}

/// Answers one connection's command, then runs the on-interactive-command hook with it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: Arc<RunState>, hooks: Option<Hooks>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let command = line.trim();
    let reply = execute(command, &state);
    // Commands that change something are logged; reads (status, NAME=?) only at debug level,
    // so a dashboard polling the socket does not flood the log.
    let reads = matches!(command, "status" | "sup" | "status-json" | "help") || command.ends_with("=?");
    if reads {
        tracing::debug!("command `{command}`");
    } else {
        tracing::info!("command `{command}`: {}", reply.lines().next().unwrap_or_default());
    }
    let _ = reader.get_mut().write_all(format!("{reply}\n").as_bytes()).await;
    let _ = reader.get_mut().shutdown().await;
    if let Some(hooks) = hooks {
        hooks.run(Hook::InteractiveCommand, &state, &[("GH_OST_COMMAND", command.to_string())]).await.ok();
    }
}

/// Carries out one command and returns the answer.
pub fn execute(command: &str, state: &RunState) -> String {
    let live = &state.live;
    match command.split_once('=') {
        Some((name, "?")) => read_setting(name, state),
        Some(("chunk-size", value)) => match value.parse::<u64>() {
            Ok(n) if (10..=1_000_000).contains(&n) => {
                live.chunk_size.store(n, Ordering::Relaxed);
                format!("chunk-size={n}")
            }
            _ => "error: chunk-size takes a whole number from 10 to 1000000".into(),
        },
        Some(("max-lag-millis", value)) => match value.parse::<u64>() {
            Ok(n) if n > 0 => {
                live.max_lag_ms.store(n, Ordering::Relaxed);
                format!("max-lag-millis={n}")
            }
            _ => "error: max-lag-millis takes a positive whole number".into(),
        },
        Some((name @ ("max-load" | "critical-load"), value)) => match value.parse::<LoadLimits>() {
            Ok(limits) => {
                let slot = if name == "max-load" { &live.max_load } else { &live.critical_load };
                *slot.lock().expect("live lock") = limits.clone();
                format!("{name}={limits}")
            }
            Err(e) => format!("error: {e}"),
        },
        Some(("threads", value)) => match value.parse::<u64>() {
            Ok(n) if (1..=crate::copy::MAX_THREADS).contains(&n) => {
                live.threads.store(n, Ordering::Relaxed);
                format!("threads={n}")
            }
            _ => format!("error: threads takes a whole number from 1 to {}", crate::copy::MAX_THREADS),
        },
        Some((name, _)) => format!("error: unknown setting `{name}`; {HELP}"),
        None => match command {
            "status" => status_text(state),
            "sup" => format!("{}; copied {} of about {} rows", state.phase(), state.rows_copied.load(Ordering::Relaxed), state.rows_estimated.load(Ordering::Relaxed)),
            "status-json" => crate::status::snapshot(state, "status").to_string(),
            "help" => HELP.into(),
            "throttle" => {
                live.operator_throttle.store(true, Ordering::SeqCst);
                "throttled".into()
            }
            "no-throttle" => {
                live.operator_throttle.store(false, Ordering::SeqCst);
                "throttle released".into()
            }
            "unpostpone" => {
                live.unpostponed.store(true, Ordering::SeqCst);
                "the cut-over will proceed".into()
            }
            "panic" => {
                state.fail(Error::new(ExitKind::Aborted, "the panic command was received"));
                "aborting".into()
            }
            other => format!("error: unknown command `{other}`; {HELP}"),
        },
    }
}

fn read_setting(name: &str, state: &RunState) -> String {
    let live = &state.live;
    match name {
        "chunk-size" => live.chunk_size.load(Ordering::Relaxed).to_string(),
        "max-lag-millis" => live.max_lag_ms.load(Ordering::Relaxed).to_string(),
        "max-load" => live.max_load.lock().expect("live lock").to_string(),
        "critical-load" => live.critical_load.lock().expect("live lock").to_string(),
        "threads" => state.live.threads.load(Ordering::Relaxed).to_string(),
        other => format!("error: unknown setting `{other}`"),
    }
}

fn status_text(state: &RunState) -> String {
    let s = crate::status::snapshot(state, "status");
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
        assert_eq!(execute("panic", &state), "aborting");
        assert!(state.stopping());
    }
}
