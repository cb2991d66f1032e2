//! Builds a target's device program with the real `cargo build --release`,
//! so the measured code is always optimized, whatever profile `bench` itself
//! was built with. Cargo's own fingerprints make a rebuild with nothing
//! changed a no-op.

use crate::input::target::Target;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
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
    /// The program is larger than the target's memory (the linker's verdict).
    #[error("failed to build {package} for {target}: does not fit: {}", fit_report(regions, *stack_bytes))]
    DoesNotFit {
        /// The package.
        package: String,
        /// The target.
        target: String,
        /// Each overflowing region: name, bytes needed, bytes it has.
        regions: Vec<(String, u64, u64)>,
        /// The stack reserve included in RAM's need.
        stack_bytes: u64,
    },
    /// The build produced no executable.
    #[error("failed to build {0}: cargo reported no executable")]
    NoExecutable(String),
    /// The firmware does not fit the board the way it must to boot.
    #[error("failed to check the firmware for {target}: {why}")]
    Layout {
        /// The target.
        target: String,
        /// What is wrong.
        why: String,
    },
}

/// "RAM needs X bytes (a 3072-byte stack included), has Y; FLASH needs ...".
fn fit_report(regions: &[(String, u64, u64)], stack_bytes: u64) -> String {
    let one = |(name, needs, has): &(String, u64, u64)| {
        let stack = if name == "RAM" {
            format!(" (a {stack_bytes}-byte stack included)")
        } else {
            String::new()
        };
        format!("{name} needs {needs} bytes{stack}, has {has}")
    };
    regions.iter().map(one).collect::<Vec<_>>().join("; ")
}

/// Builds the target's device program and returns the executable's path.
pub fn build(target: &Target) -> Result<PathBuf, BuildError> {
    cargo_build(target, &[], &[])
}

/// The crates built into a firmware: each one's sources, build script and
/// manifest go into its cache key.
const FIRMWARE_CRATES: [&str; 4] = ["kernels", "protocol", "firmware/core", "firmware/mcu"];

/// The cache key of a firmware: a hash of everything that goes in (the blob,
/// the target's triple, build settings and memory map, the compiler's
/// version, and each crate's sources, build script, manifest and lock file).
/// Only what reaches the build: a new energy model or timeout rebuilds nothing.
fn cache_key(
    root: &Path,
    rustc: &str,
    target: &Target,
    blob: &[u8],
    extras: &str,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(blob);
    hasher.update(extras.as_bytes());
    // The kernel families the blob turns on are part of what cargo is given.
    hasher.update(op_features(blob).join(",").as_bytes());
    hasher.update(rustc.as_bytes());
    // Exactly what cargo is given (flags and environment), so the key and the build cannot drift apart.
    let settings = (
        target.triple(),
        &target.build,
        &target.memory,
        cargo_settings(target, root),
    );
    hasher.update(format!("{settings:?}").as_bytes());
    for krate in FIRMWARE_CRATES {
        for part in ["src", "build.rs", "Cargo.toml", "Cargo.lock", ".cargo"] {
            let path = root.join(krate).join(part);
            if path.exists() {
                hash_tree(&path, &mut hasher)?;
            }
        }
    }
    Ok(crate::results::manifest::hex(&hasher.finalize()[..12]))
}

/// `rustc -vV` of the compiler cargo uses in `root` (`$RUSTC`, else the
/// toolchain rustup picks there); asked once per process, as the root is.
fn rustc_version(root: &Path) -> Result<String, BuildError> {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(version) = VERSION.get() {
        return Ok(version.clone());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc).arg("-vV").current_dir(root).output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(std::io::Error::other(format!("failed to run {rustc} -vV: {stderr}")).into());
    }
    Ok(VERSION
        .get_or_init(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .clone())
}

/// Builds a board firmware with `blob` built in, and returns the ELF.
/// Builds are cached by [`cache_key`], so a rerun with nothing changed runs
/// no cargo at all.
pub fn build_firmware(target: &Target, blob: &Path) -> Result<PathBuf, BuildError> {
    build_firmware_speaking(target, blob, Speaks::Bench)
}

/// The protocol a board firmware answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speaks {
    /// bench's own framed protocol (`protocol/`).
    Bench,
    /// The MLPerf Tiny (EEMBC) DUT protocol (feature `eembc`), with the
    /// output's `(scale, zero point)` for its dequantized results.
    Eembc(Option<(f32, i32)>),
}

impl Speaks {
    /// The cargo features and build environment it adds.
    fn extras(self) -> (Vec<String>, Vec<(String, String)>) {
        match self {
            Speaks::Bench => (Vec::new(), Vec::new()),
            Speaks::Eembc(quant) => (
                vec!["eembc".into()],
                quant
                    .map(|(scale, zero)| {
                        (
                            "BENCH_OUTPUT_QUANT".to_string(),
                            format!("{scale:e},{zero}"),
                        )
                    })
                    .into_iter()
                    .collect(),
            ),
        }
    }
}

/// [`build_firmware`], answering `speaks`' protocol.
pub fn build_firmware_speaking(
    target: &Target,
    blob: &Path,
    speaks: Speaks,
) -> Result<PathBuf, BuildError> {
    let root = crate::workspace_root();
    // cargo runs the firmware's build script in its own directory.
    let blob = &std::path::absolute(blob)?;
    let (extra_features, extra_env) = speaks.extras();
    let digest = cache_key(
        &root,
        &rustc_version(&root)?,
        target,
        &std::fs::read(blob)?,
        &format!("{extra_features:?}{extra_env:?}"),
    )?;
    let cache = root.join("target/bench-firmware");
    let cached = cache.join(format!("{}-{digest}.elf", target.target.name));
    if cached.is_file() {
        return Ok(cached);
    }
    let memory: Vec<String> = target
        .memory
        .iter()
        .map(|m| format!("{}:{:#x}:{}", m.name, m.origin, m.length))
        .collect();
    let env = [
        extra_env,
        vec![
            ("BENCH_MODEL_BLOB".to_string(), blob.display().to_string()),
            ("BENCH_MEMORY".to_string(), memory.join(",")),
            ("BENCH_BOARD".to_string(), target.target.name.clone()),
            (
                "BENCH_STACK_BYTES".to_string(),
                target.build.stack_bytes.to_string(),
            ),
        ],
    ]
    .concat();
    let features = [op_features(&std::fs::read(blob)?), extra_features].concat();
    let elf = cargo_build(target, &env, &features)?;
    let layout = crate::telemetry::elf::check_layout(&elf, &target.memory).map_err(|why| {
        BuildError::Layout {
            target: target.target.name.clone(),
            why,
        }
    })?;
    let configured = target.target.clock_hz.unwrap_or(0);
    if layout.clock_hz != Some(configured) {
        let why = format!(
            "it records a {:?} Hz clock, the target file configures {configured}",
            layout.clock_hz
        );
        return Err(BuildError::Layout {
            target: target.target.name.clone(),
            why,
        });
    }
    std::fs::create_dir_all(&cache)?;
    std::fs::copy(&elf, &cached)?;
    Ok(cached)
}

/// Feeds every file under `path` (or the file itself), in name order, to `hasher`.
fn hash_tree(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    if path.is_file() {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(path)?);
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        hash_tree(&entry, hasher)?;
    }
    Ok(())
}

/// The `RUSTFLAGS` and environment cargo builds a device program with:
/// the target's, and for board firmware the path remapping.
fn cargo_settings(target: &Target, root: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let (mut rustflags, env) = target.build_settings();
    if target.builds_per_model() {
        // Board firmware, whose flash is a figure (the host program has none).
        rustflags.extend(remapped_paths(root));
    }
    (rustflags, env)
}

/// Source paths as the program embeds them (panic locations): the
/// workspace and cargo's registry under fixed names, so a program's size
/// does not depend on where bench or cargo's home is on this machine.
fn remapped_paths(root: &Path) -> Vec<String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut flags = vec![format!("--remap-path-prefix={}=/bench", root.display())];
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    flags
}

/// The kernels' `op-*` feature families the blob's operators need, as the
/// firmware's `--features`: a firmware links the kernels its model uses
/// (the executor refuses another family's operator at load).
fn op_features(blob: &[u8]) -> Vec<String> {
    let Ok(model) = kernels::model::Model::parse(blob) else {
        // The firmware's build script reports a bad blob itself.
        return Vec::new();
    };
    let families: std::collections::BTreeSet<&str> =
        model.ops().filter_map(|op| op.family()).collect();
    families.iter().map(|f| format!("kernels/{f}")).collect()
}

/// Runs `cargo build --release` for the target's package with extra
/// environment and features.
fn cargo_build(
    target: &Target,
    env: &[(String, String)],
    features: &[String],
) -> Result<PathBuf, BuildError> {
    let triple = target.triple();
    let root = crate::workspace_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
        "-p",
        &target.build.package,
        "--target",
        &triple,
    ]);
    if let Some(manifest) = &target.build.manifest {
        cmd.arg("--manifest-path").arg(root.join(manifest));
    }
    let features = [&target.build.features[..], features].concat();
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let (rustflags, build_env) = cargo_settings(target, &root);
    if !rustflags.is_empty() {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"));
    }
    cmd.envs(build_env);
    cmd.envs(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let child = crate::device::process::spawn(
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )?;
    let id = child.id();
    let out = child.wait_with_output();
    crate::device::process::forget(id);
    let out = out?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let regions = overflowing_regions(&stderr, target);
        if !regions.is_empty() {
            let (package, name) = (target.build.package.clone(), target.target.name.clone());
            return Err(BuildError::DoesNotFit {
                package,
                target: name,
                regions,
                stack_bytes: target.build.stack_bytes,
            });
        }
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let diagnostics = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(BuildError::Failed {
            package: target.build.package.clone(),
            triple,
            diagnostics,
        });
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| BuildError::NoExecutable(target.build.package.clone()))
}

/// The memory regions the linker reports overflowing (`section '.bss' will
/// not fit in region 'RAM': overflowed by N bytes`), as `(region, bytes
/// needed, bytes the target has)`, largest overflow per region.
fn overflowing_regions(stderr: &str, target: &Target) -> Vec<(String, u64, u64)> {
    let mut regions: Vec<(String, u64, u64)> = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.split("will not fit in region '").nth(1) else {
            continue;
        };
        let Some((region, tail)) = rest.split_once('\'') else {
            continue;
        };
        let Some(by) = tail
            .split("overflowed by ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let has = target
            .memory
            .iter()
            .find(|m| m.name == region)
            .map_or(0, |m| m.length);
        match regions.iter_mut().find(|(name, ..)| name == region) {
            Some(entry) => entry.1 = entry.1.max(has + by),
            None => regions.push((region.to_string(), has + by, has)),
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firmware_gets_the_operator_families_its_blob_uses_and_no_others() {
        let blob = |model: &str| {
            let path = crate::workspace_root().join("models").join(model);
            let graph = crate::model::tflite::load(&path).unwrap();
            let options = crate::model::lower::Int8Options::default();
            crate::model::lower::lower_int8(&graph, &[], options)
                .unwrap()
                .blob
                .as_bytes()
                .to_vec()
        };
        assert_eq!(
            op_features(&blob("public/tfm_mnist_lstm_int8.tflite")),
            ["kernels/op-lstm"]
        );
        assert_eq!(
            op_features(&blob("public/coral_mobilenet_v1_025_128_uint8.tflite")),
            ["kernels/op-weight-offset"]
        );
        assert_eq!(
            op_features(&blob("exported/kws_dscnn_int16x8.tflite")),
            ["kernels/op-int16"]
        );
        assert!(op_features(&blob("public/arduino_magic_wand.tflite")).is_empty());
        assert!(op_features(b"not a blob").is_empty());
        // Precisions are families too: an int8 firmware links none of them.
        use crate::model::prepare::{self, Calibration, Pruning, Recipe, Scheme};
        let zoo = |scheme, pruning| {
            let recipe = Recipe {
                scheme,
                overrides: Vec::new(),
                pruning,
                exits: None,
                weight_seed: 1,
                calibration: Calibration::Synthetic(2, 1),
                input_seed: 1,
                memory: Default::default(),
            };
            let graph = crate::model::zoo::build("ds-cnn").unwrap();
            let prepared = prepare::prepare(&graph, &recipe).unwrap();
            op_features(prepared.lowered.blob.as_bytes())
        };
        let int8 = Scheme::Int8 { per_channel: true };
        assert!(zoo(int8.clone(), None).is_empty());
        assert_eq!(zoo(Scheme::Int4, None), ["kernels/op-int4"]);
        assert_eq!(
            zoo(Scheme::Binary { keep: None }, None),
            ["kernels/op-binary"]
        );
        assert_eq!(
            zoo(Scheme::Float32, None),
            ["kernels/op-float", "kernels/op-float-math"]
        );
        let sparse = Pruning::Magnitude {
            sparsity: 0.8,
            sparse_kernels: true,
        };
        assert_eq!(zoo(int8, Some(sparse)), ["kernels/op-sparse"]);
    }

    const TARGET: &str = "[target]\nname = \"t\"\ntriple = \"thumbv7em-none-eabihf\"\ncpu = \"cortex-m4\"\n[[memory]]\nname = \"FLASH\"\norigin = 0\nlength = 65536\n[[memory]]\nname = \"RAM\"\norigin = 0x20000000\nlength = 16384\n[build]\npackage = \"p\"\n[run]\nrunner = \"qemu\"\n[telemetry]\nlink = \"serial\"\nclock = \"timer\"\n";

    #[test]
    fn linker_overflow_messages_become_needs_and_has() {
        let target: Target = toml::from_str(TARGET).unwrap();
        let stderr = "rust-lld: error: section '.text' will not fit in region 'FLASH': overflowed by 57596 bytes\n\
                      rust-lld: error: section '.rodata' will not fit in region 'FLASH': overflowed by 150624 bytes\n\
                      rust-lld: error: section '.bss' will not fit in region 'RAM': overflowed by 39232 bytes\n";
        assert_eq!(
            overflowing_regions(stderr, &target),
            [
                ("FLASH".to_string(), 216_160, 65_536),
                ("RAM".to_string(), 55_616, 16_384)
            ]
        );
    }

    #[test]
    fn a_new_compiler_or_any_build_script_change_misses_the_cache() {
        let target: Target = toml::from_str(TARGET).unwrap();
        let root = tempfile::tempdir().unwrap();
        for krate in FIRMWARE_CRATES {
            std::fs::create_dir_all(root.path().join(krate).join("src")).unwrap();
            std::fs::write(root.path().join(krate).join("src/lib.rs"), "").unwrap();
            std::fs::write(root.path().join(krate).join("build.rs"), "fn main() {}").unwrap();
        }
        let rustc = "rustc 1.95.0 (59807616e 2026-04-14)";
        let key = |rustc: &str| cache_key(root.path(), rustc, &target, b"blob", "").unwrap();
        let before = key(rustc);
        assert_eq!(key(rustc), before, "the same inputs give the same key");
        let eembc = Speaks::Eembc(Some((0.5, -2))).extras();
        let speaking = cache_key(root.path(), rustc, &target, b"blob", &format!("{eembc:?}"));
        assert_ne!(
            speaking.unwrap(),
            before,
            "the EEMBC firmware is another build"
        );
        assert_ne!(key("rustc 1.96.0 (00000000 2026-05-28)"), before);
        for krate in FIRMWARE_CRATES {
            let script = root.path().join(krate).join("build.rs");
            std::fs::write(&script, "fn main() { println!(\"cargo::rustc-cfg=x\"); }").unwrap();
            assert_ne!(key(rustc), before, "{krate}/build.rs changed");
            std::fs::write(&script, "fn main() {}").unwrap();
            std::fs::write(root.path().join(krate).join("Cargo.lock"), "# locked").unwrap();
            assert_ne!(key(rustc), before, "{krate}/Cargo.lock appeared");
            std::fs::remove_file(root.path().join(krate).join("Cargo.lock")).unwrap();
        }
        assert_eq!(key(rustc), before);
        assert_ne!(
            cache_key(root.path(), rustc, &target, b"other blob", "").unwrap(),
            before
        );
    }
}
