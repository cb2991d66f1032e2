//! The run manifest: where the numbers came from (commit, toolchain, host,
//! input file hashes, device programs, time).

use crate::input::suite::Suite;
use crate::input::target::Target;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// Hex SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes as lower-case hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(crate::workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| {
        l.strip_prefix("model name")
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
    })
}

/// A device program a run used: the target's name, the `model/variant`
/// built into it (board firmware) or `None` (a host runner), and its path.
pub type Program<'a> = (String, Option<String>, &'a Path);

/// The source a run was built from, read when it starts: a commit made
/// while it runs must not be named as its source.
#[derive(Clone, Debug)]
pub struct Source {
    commit: Option<String>,
    dirty: bool,
}

impl Source {
    /// The working tree's commit and whether tracked files differ from it.
    pub fn now() -> Self {
        Self {
            commit: output_of("git", &["rev-parse", "HEAD"]),
            dirty: output_of("git", &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
        }
    }
}

/// The manifest of a run, with a hash of every device program it ran.
pub fn manifest(
    run_id: &str,
    (suite, targets): (&Suite, &[Target]),
    programs: &[Program],
    (started, source): (jiff::Timestamp, &Source),
    command: &[String],
) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .map(|t| {
            let built: Vec<Value> = programs
                .iter()
                .filter(|(n, ..)| *n == t.target.name)
                .map(|(_, model, p)| {
                    // Board firmware records the clock it was built for.
                    let clock_hz = model.as_ref().and_then(|_| crate::telemetry::elf::check_layout(p, &t.memory).ok()).and_then(|l| l.clock_hz);
                    json!({ "model": model, "file": p, "sha256": std::fs::read(p).ok().map(|b| sha256(&b)), "clock_hz": clock_hz })
                })
                .collect();
            // The emulator's version, where the target runs under one.
            let emulator = t.run.qemu.as_ref().and_then(|q| output_of(&q.binary, &["--version"])).and_then(|v| v.lines().next().map(String::from));
            json!({
                "name": t.target.name,
                "file": t.path,
                "sha256": sha256(t.text.as_bytes()),
                "triple": t.triple(),
                "emulator": emulator,
                "device_programs": built,
            })
        })
        .collect();
    json!({
        "run_id": run_id,
        "bench_version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "git_commit": source.commit,
        "git_dirty": source.dirty,
        "rustc": output_of("rustc", &["-V"]),
        "host": {
            "hostname": output_of("hostname", &[]),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "cpu": cpu_model(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        },
        "suite": { "name": suite.name, "file": suite.path, "sha256": sha256(suite.text.as_bytes()) },
        "targets": targets,
        "started": started.to_string(),
        "finished": jiff::Timestamp::now().to_string(),
    })
}

/// Folds the manifest of the interrupted part of a resumed run into the
/// manifest of the part that finished it: the first start, every earlier
/// resumption, and every device program either part ran.
pub fn resumed(manifest: &mut Value, earlier: &Value) {
    let mut resumptions: Vec<Value> = earlier["resumed"].as_array().cloned().unwrap_or_default();
    resumptions.push(json!({ "started": manifest["started"], "command": manifest["command"] }));
    manifest["resumed"] = resumptions.into();
    manifest["started"] = earlier["started"].clone();
    let Some(targets) = manifest["targets"].as_array_mut() else {
        return;
    };
    for t in targets {
        let before = earlier["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == t["name"]);
        let earlier_programs = before
            .and_then(|e| e["device_programs"].as_array())
            .cloned()
            .unwrap_or_default();
        if let Some(list) = t["device_programs"].as_array_mut() {
            for p in earlier_programs {
                if !list.contains(&p) {
                    list.push(p);
                }
            }
        }
    }
}

/// Why a run's manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// There is none: not a run directory.
    #[error("failed to read {}: it has no manifest.json; is it a run directory?", dir.display())]
    Missing {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// It could not be read.
    #[error("failed to read {}: {error}", path.display())]
    Unreadable {
        /// The manifest file.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// It is not the JSON bench writes.
    #[error("failed to read {}: it is corrupt ({error})", path.display())]
    Corrupt {
        /// The manifest file.
        path: std::path::PathBuf,
        /// The JSON error.
        error: serde_json::Error,
    },
}

/// The manifest of a run directory.
pub fn read(dir: &Path) -> Result<Value, ManifestError> {
    let path = dir.join("manifest.json");
    let text = match crate::input::files::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManifestError::Missing { dir: dir.into() })
        }
        Err(error) => return Err(ManifestError::Unreadable { path, error }),
    };
    let value: Value = serde_json::from_str(&text).map_err(|error| ManifestError::Corrupt {
        path: path.clone(),
        error,
    })?;
    if !value.is_object() {
        return Err(ManifestError::Corrupt {
            path,
            error: serde::de::Error::custom("not a JSON object"),
        });
    }
    Ok(value)
}

/// One line of provenance for a report's footnote: run, commit, toolchain, emulators, host CPU.
pub fn provenance_line(m: &Value) -> String {
    let commit = m["git_commit"]
        .as_str()
        .map_or("unknown commit".to_string(), |c| {
            format!("commit {}", &c[..c.len().min(10)])
        });
    let dirty = if m["git_dirty"].as_bool() == Some(true) {
        " with uncommitted changes"
    } else {
        ""
    };
    let mut emulators: Vec<&str> = m["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["emulator"].as_str())
        .collect();
    let mut seen = std::collections::HashSet::new();
    emulators.retain(|e| seen.insert(*e));
    let emulators = if emulators.is_empty() {
        String::new()
    } else {
        format!(", {}", emulators.join(", "))
    };
    format!(
        "run {}: {commit}{dirty}, bench {}, {}{emulators}, host {}",
        m["run_id"].as_str().unwrap_or("?"),
        m["bench_version"].as_str().unwrap_or("?"),
        m["rustc"].as_str().unwrap_or("unknown rustc"),
        m["host"]["cpu"].as_str().unwrap_or("unknown CPU")
    )
}
