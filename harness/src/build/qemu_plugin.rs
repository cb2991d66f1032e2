//! The QEMU plugin behind the cycle estimates (`harness/qemu-plugin`),
//! built once per process with the workspace's cargo, as the host's
//! device program is.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The plugin's shared library, built on first use.
pub fn library() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    let root = crate::workspace_root();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
            "-p",
            "bench-qemu-plugin",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("failed to run cargo to build the QEMU cycle plugin: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(format!(
            "failed to build the QEMU cycle plugin (bench-qemu-plugin):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["reason"] == "compiler-artifact" && v["target"]["name"] == "bench_qemu_plugin"
        })
        .flat_map(|v| v["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "so" || e == "dylib"))
        .ok_or_else(|| "failed to find the QEMU cycle plugin's library in cargo's output".into())
}
