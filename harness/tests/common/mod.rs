//! What the integration tests that start the real `bench` binary share:
//! starting it, requiring success, finding the run it stored.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A golden's hex string (a JSON string) as bytes.
pub fn unhex(v: &serde_json::Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
use std::process::{Command, Output};

/// The `bench` binary of this build, with `args`.
pub fn bench(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench"));
    c.args(args);
    c
}

/// Requires that a finished `bench` exited with 0, showing its stderr otherwise.
pub fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `cmd` and requires exit code 0.
pub fn succeed(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("bench starts");
    ok(&o);
    o
}

/// The one run directory under a suite's results folder (`<out>/<suite>`).
pub fn only_run(suite_results: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(suite_results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}
