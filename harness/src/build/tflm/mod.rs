//! Builds a TFLite Micro firmware for a Cortex-M target: the peer runtime
//! bench measures beside its own kernels. TFLM (reference kernels, or the
//! `cmsis_nn` kernels over CMSIS-NN) is compiled from the pinned snapshot
//! found through `BENCH_PEERS_DIR` with Debian's `arm-none-eabi-gcc` and
//! TFLM's release flags, then linked with the model and bench's MLPerf Tiny
//! DUT (`firmware/tflm/`), which speaks the EEMBC serial protocol. Both the
//! library and the firmware are cached by a hash of everything that goes in.

mod compile;
pub mod ops;
pub mod sources;

pub use sources::Kernels;

use crate::input::target::Target;
use crate::results::manifest::hex;
use compile::Toolchain;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The environment variable naming the peers' source snapshot.
pub const PEERS_ENV: &str = "BENCH_PEERS_DIR";

/// Why a TFLM firmware could not be built.
#[derive(Debug, thiserror::Error)]
#[error("failed to build {runtime} for {target}: {why}")]
pub struct PeerBuildError {
    /// The runtime (`tflm`, `tflm-cmsis-nn`).
    pub runtime: &'static str,
    /// The target.
    pub target: String,
    /// What went wrong.
    pub why: String,
}

/// The snapshot of the peers' sources: `BENCH_PEERS_DIR`, checked to hold
/// what a TFLM build reads.
pub fn peers_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os(PEERS_ENV).map(PathBuf::from).ok_or(format!(
        "{PEERS_ENV} is not set: point it at the peers' sources (TFLite Micro, CMSIS-NN, CMSIS-6, flatbuffers, gemmlowp, ruy, Cortex_DFP, MLPerf Tiny); scripts/fetch-peers.sh fetches them at the pinned commits"
    ))?;
    for part in [
        "tflite-micro/tensorflow/lite/micro",
        "cmsis-nn/Source",
        "cmsis-6/CMSIS/Core/Include",
        "flatbuffers/include",
        "gemmlowp",
        "ruy",
        "cortex-dfp/Device",
        "mlperf-tiny/benchmark/api",
    ] {
        if !dir.join(part).is_dir() {
            return Err(format!("{} has no {part}", dir.display()));
        }
    }
    Ok(dir)
}

/// Builds the TFLM firmware of `model` (a `.tflite`) for `target` and
/// returns the ELF's path.
pub fn build(target: &Target, kernels: Kernels, model: &Path) -> Result<PathBuf, PeerBuildError> {
    let fail = |why: String| PeerBuildError {
        runtime: kernels.runtime(),
        target: target.target.name.clone(),
        why,
    };
    let peers = peers_dir().map_err(fail)?;
    let root = crate::workspace_root();
    let toolchain = Toolchain::for_target(target, kernels, &peers).map_err(fail)?;
    let cache = root.join("target/bench-peers");
    let library = build_library(&toolchain, &peers, kernels, &cache).map_err(fail)?;
    let model_bytes = std::fs::read(model)
        .map_err(|e| fail(format!("failed to read {}: {e}", model.display())))?;
    let firmware = root.join("firmware/tflm");
    let mut key = Sha256::new();
    key.update(library.to_string_lossy().as_bytes());
    key.update(&model_bytes);
    key.update(target.text.as_bytes());
    hash_files(
        &mut key,
        &sources::files_with(&firmware, &["c", "cc", "h"], true).map_err(fail)?,
    )
    .map_err(fail)?;
    let elf = cache.join(format!(
        "{}-{}-{}.elf",
        target.target.name,
        kernels.runtime(),
        &hex(&key.finalize())[..16]
    ));
    if elf.is_file() {
        return Ok(elf);
    }
    let operators = crate::model::tflite::builtin_operator_names(&model_bytes).map_err(fail)?;
    let header = std::fs::read_to_string(
        peers.join("tflite-micro/tensorflow/lite/micro/micro_mutable_op_resolver.h"),
    )
    .map_err(|e| fail(format!("failed to read TFLM's op resolver: {e}")))?;
    let ops = ops::ops_header(&operators, &ops::resolver_methods(&header)).map_err(fail)?;
    let app = compile::App {
        firmware: &firmware,
        model,
        ops: &ops,
        model_name: &model_name(model),
        input_bytes: crate::model::tflite::input_bytes(&model_bytes).map_err(fail)?,
    };
    toolchain
        .link_firmware(target, &app, &library, &elf)
        .map_err(fail)?;
    Ok(elf)
}

/// The TFLM static library for this toolchain and kernel set, cached by the
/// snapshot's contents, the flags and the compiler's version.
fn build_library(
    toolchain: &Toolchain,
    peers: &Path,
    kernels: Kernels,
    cache: &Path,
) -> Result<PathBuf, String> {
    let sources = sources::library_sources(peers, kernels, toolchain.isa)?;
    let mut key = Sha256::new();
    key.update(toolchain.fingerprint().as_bytes());
    for group in [&sources.core, &sources.kernels, &sources.third_party] {
        key.update(group.len().to_le_bytes());
    }
    hash_files(
        &mut key,
        &sources::files_with(peers, &["c", "cc", "h", "hpp", "inc"], true)?,
    )?;
    let name = format!(
        "libtflm-{}-{}",
        kernels.runtime(),
        &hex(&key.finalize())[..16]
    );
    let library = cache.join(format!("{name}.a"));
    if library.is_file() {
        return Ok(library);
    }
    let objects = cache.join(format!("{name}-obj"));
    toolchain.compile_library(&sources, &objects, &library)?;
    Ok(library)
}

/// Adds each file's path and contents to `key`.
fn hash_files(key: &mut Sha256, files: &[PathBuf]) -> Result<(), String> {
    for file in files {
        key.update(file.to_string_lossy().as_bytes());
        key.update(
            std::fs::read(file).map_err(|e| format!("failed to read {}: {e}", file.display()))?,
        );
    }
    Ok(())
}

/// The model's file stem, as the DUT's `m-model-[...]` name (letters,
/// digits, `-` and `_` only).
fn model_name(model: &Path) -> String {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "model".into()
    } else {
        clean
    }
}
