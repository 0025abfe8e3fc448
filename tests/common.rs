//! Helpers shared by the workspace-level tests: run the real `ladderc` binary from the repo root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

pub fn ladderc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("NO_COLOR")
        .output()
        .expect("ladderc runs")
}

/// Exit code and stdout (and stderr, if any) as one snapshot-friendly string.
pub fn transcript(output: &Output) -> String {
    let mut s = format!("exit: {}\n", output.status.code().unwrap_or(-1));
    s.push_str(&String::from_utf8_lossy(&output.stdout));
    if !output.stderr.is_empty() {
        s.push_str("--- stderr ---\n");
        s.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    s
}
