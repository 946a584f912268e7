//! Hooks: executables in `--hooks-path` run at the stages gh-ost runs them, named like gh-ost's
//! (`gh-ost-on-startup`, ...; also accepted as `alterego-on-startup`, ...; any file whose name
//! starts with the hook's name runs, in name order), with gh-ost's environment variables.
//!
//! Invariants: a failing hook fails the run at the stages where gh-ost fails (everything before
//! and including `on-before-cut-over`, so a failing `on-before-cut-over` prevents the swap);
//! `on-success`, `on-failure`, `on-status` and `on-interactive-command` failures are only logged. A hook's environment
//! never carries the password: ALTEREGO_PASSWORD is removed before it starts. A hook still
//! running when the run stops (a signal) is killed.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::plan::TableNames;
use crate::state::RunState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Startup,
    Validated,
    BeforeRowCopy,
    RowCopyComplete,
    BeginPostponed,
    BeforeCutOver,
    Success,
    Failure,
    Status,
    InteractiveCommand,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Startup => "on-startup",
            Hook::Validated => "on-validated",
            Hook::BeforeRowCopy => "on-before-row-copy",
            Hook::RowCopyComplete => "on-row-copy-complete",
            Hook::BeginPostponed => "on-begin-postponed",
            Hook::BeforeCutOver => "on-before-cut-over",
            Hook::Success => "on-success",
            Hook::Failure => "on-failure",
            Hook::Status => "on-status",
            Hook::InteractiveCommand => "on-interactive-command",
        }
    }

    /// Whether a failure of this hook fails the run (gh-ost's semantics).
    fn fails_run(self) -> bool {
        !matches!(self, Hook::Success | Hook::Failure | Hook::Status | Hook::InteractiveCommand)
    }
}

/// What every hook is told, set once per run.
#[derive(Debug, Clone)]
pub struct Hooks {
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    started: Instant,
}

impl Hooks {
    /// `hints` are gh-ost's `--hooks-hint`, `--hooks-hint-owner` and `--hooks-hint-token`,
    /// passed on as they are.
    pub fn new(dir: Option<PathBuf>, names: &TableNames, alter: &str, host: &str, dry_run: bool, hints: [String; 3]) -> Hooks {
        let [hint, owner, token] = hints;
        let executing_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
        let env = [
            ("GH_OST_DATABASE_NAME", names.database.clone()),
            ("GH_OST_TABLE_NAME", names.original.clone()),
            ("GH_OST_GHOST_TABLE_NAME", names.shadow.clone()),
            ("GH_OST_OLD_TABLE_NAME", names.old.clone()),
            ("GH_OST_DDL", alter.to_string()),
            ("GH_OST_MIGRATED_HOST", host.to_string()),
            ("GH_OST_INSPECTED_HOST", host.to_string()),
            ("GH_OST_EXECUTING_HOST", executing_host),
            ("GH_OST_DRY_RUN", dry_run.to_string()),
            ("GH_OST_HOOKS_HINT", hint),
            ("GH_OST_HOOKS_HINT_OWNER", owner),
            ("GH_OST_HOOKS_HINT_TOKEN", token),
        ];
        Hooks { dir, env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), started: Instant::now() }
    }

    /// Runs every executable for `hook`. `extra` adds variables (e.g. GH_OST_STATUS).
    pub async fn run(&self, hook: Hook, state: &RunState, extra: &[(&str, String)]) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        for path in hook_files(dir, hook) {
            let copied = state.rows_copied.load(Ordering::Relaxed);
            let estimated = state.rows_estimated.load(Ordering::Relaxed);
            let progress = if estimated == 0 { 0.0 } else { (copied as f64 * 100.0 / estimated as f64).min(100.0) };
            let status = tokio::process::Command::new(&path)
                .env_remove("ALTEREGO_PASSWORD")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("GH_OST_ELAPSED_SECONDS", self.started.elapsed().as_secs().to_string())
                .env("GH_OST_ESTIMATED_ROWS", estimated.to_string())
                .env("GH_OST_COPIED_ROWS", copied.to_string())
                .env("GH_OST_PROGRESS", format!("{progress:.2}"))
                .env("GH_OST_THROTTLE_REASON", state.throttle_reason().unwrap_or_default())
                .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(std::process::Stdio::null())
                // A run stopped while a hook runs (a signal) does not leave the hook behind.
                .kill_on_drop(true)
                .status()
                .await;
            let failure = match status {
                Ok(s) if s.success() => continue,
                Ok(s) => format!("the {} hook {} exited with {s}", hook.name(), path.display()),
                Err(e) => format!("the {} hook {} could not run: {e}", hook.name(), path.display()),
            };
            if hook.fails_run() {
                return Err(Error::failed(failure).with_fix("fix the hook or remove it from --hooks-path, then run again"));
            }
            tracing::warn!("{failure}");
        }
        Ok(())
    }
}

/// The executables in `dir` whose names start with `gh-ost-<hook>` or `alterego-<hook>`, sorted.
fn hook_files(dir: &std::path::Path, hook: Hook) -> Vec<PathBuf> {
    let prefixes = [format!("gh-ost-{}", hook.name()), format!("alterego-{}", hook.name())];
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            prefixes.iter().any(|p| name.starts_with(p.as_str()))
        })
        .filter(|e| {
            use std::os::unix::fs::PermissionsExt;
            e.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hooks_by_both_prefixes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("alterego-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["gh-ost-on-startup", "alterego-on-startup-2", "gh-ost-on-startup-not-executable", "gh-ost-on-success"] {
            std::fs::write(dir.join(name), "#!/bin/sh\n").unwrap();
            let mode = if name.ends_with("not-executable") { 0o644 } else { 0o755 };
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let found: Vec<String> = hook_files(&dir, Hook::Startup).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(found, vec!["alterego-on-startup-2", "gh-ost-on-startup"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Hook::BeforeCutOver.fails_run() && !Hook::Success.fails_run());
    }
}
