//! Hooks and scratch files for tests that hold a run at a stage: a hook that waits while a
//! file exists, after creating another.

use std::path::{Path, PathBuf};

/// A path for this test process, not there yet.
pub fn temp_path(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A hooks directory holding one hook, `gh-ost-<stage>`, with `body` as its shell script.
pub fn hook(name: &str, stage: &str, body: &str) -> PathBuf {
    let dir = temp_path(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join(format!("gh-ost-{stage}"));
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// A hook that waits while `hold` exists, after creating `reached`.
pub fn holding_hook(name: &str, stage: &str, reached: &Path, hold: &Path) -> PathBuf {
    std::fs::write(hold, "").unwrap();
    hook(name, stage, &format!("touch '{}'\nwhile [ -e '{}' ]; do sleep 0.05; done", reached.display(), hold.display()))
}
