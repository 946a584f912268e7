//! The password never leaves alterego: a migration run with it (from ALTEREGO_PASSWORD), with
//! debug logging, JSON status, the control socket and hooks, and then every place it could
//! show is searched: alterego's argv and its hooks' argv and environments, the server's
//! process list, the log, stdout, the status file and the socket's answers.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{server, PASSWORD};
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere() {
    let srv = server();
    let mut conn = common::small_table("secrets", 5000).await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (hooks, seen, status, socket, postpone) = (dir.join("hooks"), dir.join("seen"), dir.join("status.jsonl"), dir.join("control.sock"), dir.join("postpone"));
    std::fs::create_dir_all(&hooks).unwrap();
    // Every hook records its own argv and environment, and alterego's argv (its parent's).
    let hook = "#!/bin/sh\n{ tr '\\0' ' ' < /proc/$$/cmdline; echo; env; tr '\\0' ' ' < /proc/$PPID/cmdline; echo; } >> \"$SEEN\"\n";
    for name in ["gh-ost-on-startup", "gh-ost-on-status", "gh-ost-on-begin-postponed", "gh-ost-on-success"] {
        let path = hooks.join(name);
        std::fs::write(&path, hook).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(&postpone, "").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let args = [
        "--database",
        "secrets",
        "--table",
        "t",
        "--alter",
        "ADD COLUMN b INT",
        "--execute",
        "--debug",
        "--hooks-path",
        &path(&hooks),
        "--status-json",
        &path(&status),
        "--status-interval-millis",
        "100",
        "--serve-socket-file",
        &path(&socket),
        "--postpone-cut-over-flag-file",
        &path(&postpone),
    ];
    let mut child = srv.alterego_command(&args).env("SEEN", &seen).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    // While it waits to swap: the server's process list, and the socket's answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&status).unwrap_or_default().contains("\"state\":\"postponed\"") {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the run never reached its cut-over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let processes: Vec<(u64, Option<String>)> = conn.query(format!("SELECT ID, INFO FROM {}", common::processlist())).await.unwrap();
    let mut answers = String::new();
    for command in ["status", "status-json", "help"] {
        let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, format!("{command}\n").as_bytes()).await.unwrap();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answers).await.unwrap();
    }
    std::fs::remove_file(&postpone).unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));

    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.contains("--database secrets") && seen.contains("GH_OST_DATABASE_NAME=secrets"), "the hooks did not record anything useful:\n{seen}");
    let places = [
        ("the hooks' and alterego's argv, the hooks' environments", seen),
        ("the server's process list", format!("{processes:?}")),
        ("the socket's answers", answers),
        ("the --status-json file", std::fs::read_to_string(&status).unwrap()),
        ("stdout", String::from_utf8_lossy(&output.stdout).into_owned()),
        ("the debug log", common::stderr(&output)),
    ];
    for (place, text) in places {
        assert!(!text.is_empty(), "{place}: nothing recorded, so nothing checked");
        assert!(!text.contains(PASSWORD), "the password appears in {place}");
    }
}
