//! Builds a target's device program with the real `cargo build --release`,
//! so the measured code is always optimized, whatever profile `bench` itself
//! was built with. Cargo's own fingerprints make a rebuild with nothing
//! changed a no-op.

use crate::target::Target;
use std::path::PathBuf;
use std::process::Command;

/// Why a device program could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be started.
    #[error("failed to start cargo: {0}")]
    Spawn(#[from] std::io::Error),
    /// The build failed.
    #[error("failed to build {package} for {triple}:\n{diagnostics}")]
    Failed {
        /// The package.
        package: String,
        /// The triple.
        triple: String,
        /// The end of cargo's rendered errors.
        diagnostics: String,
    },
    /// The build produced no executable.
    #[error("failed to build {0}: cargo reported no executable")]
    NoExecutable(String),
}

/// Builds the target's device program and returns the executable's path.
pub fn build(target: &Target) -> Result<PathBuf, BuildError> {
    let triple = target.triple();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(crate::workspace_root()).args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
        "-p",
        &target.build.package,
        "--target",
        &triple,
    ]);
    if !target.build.features.is_empty() {
        cmd.args(["--features", &target.build.features.join(",")]);
    }
    if !target.build.rustflags.is_empty() {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", target.build.rustflags.join("\u{1f}"));
    }
    let out = cmd.output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let diagnostics = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(BuildError::Failed { package: target.build.package.clone(), triple, diagnostics });
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| BuildError::NoExecutable(target.build.package.clone()))
}
