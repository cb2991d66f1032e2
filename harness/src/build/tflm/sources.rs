//! The source files of a TFLite Micro library, chosen as TFLM's own
//! makefiles choose them (`tensorflow/lite/micro/tools/make/Makefile`,
//! `sources.inc`, `ext_libs/cmsis_nn.inc`), read from the pinned snapshot:
//! the core (the interpreter, allocators, planners, the TFLite sources it
//! shares) specialized for `cortex_m_generic`, the kernel list of
//! `sources.inc` (specialized with `kernels/cmsis_nn/` for CMSIS-NN), and
//! CMSIS-NN's int8/int16 sources. The signal-processing kernels TFLM's
//! library also carries are left out: no model bench runs uses them.

use std::path::{Path, PathBuf};

/// Which kernels a TFLM build runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernels {
    /// TFLM's reference kernels.
    Reference,
    /// The `cmsis_nn` kernels over CMSIS-NN.
    CmsisNn,
}

impl Kernels {
    /// The runtime's name in suites and results.
    pub fn runtime(self) -> &'static str {
        match self {
            Kernels::Reference => "tflm",
            Kernels::CmsisNn => "tflm-cmsis-nn",
        }
    }
}

/// The library's sources, by the optimization level TFLM builds them with.
#[derive(Debug, Default)]
pub struct LibrarySources {
    /// Interpreter, allocators and shared TFLite code (`-Os`).
    pub core: Vec<PathBuf>,
    /// Operator kernels (`-O2`).
    pub kernels: Vec<PathBuf>,
    /// CMSIS-NN (`-O2`).
    pub third_party: Vec<PathBuf>,
}

/// The instruction set a library is built for, which picks TFLM's platform
/// files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Cortex-M: `cortex_m_generic`'s `debug_log.cc` and `micro_time.cc`.
    Arm,
    /// RV32: `cortex_m_generic`'s `debug_log.cc` only (plain C++ through a
    /// callback the DUT registers); TFLM's own `riscv32_generic` one needs
    /// the eyalroz printf download, which the snapshot does not hold, and
    /// the generic `micro_time.cc` stays (the DUT keeps time itself).
    RiscV,
}

/// The library sources for `kernels` and `isa` in the snapshot at `peers`.
pub fn library_sources(peers: &Path, kernels: Kernels, isa: Isa) -> Result<LibrarySources, String> {
    let tflm = peers.join("tflite-micro");
    let make = tflm.join("tensorflow/lite/micro/tools/make/sources.inc");
    let listing = std::fs::read_to_string(&make)
        .map_err(|e| format!("failed to read {}: {e}", make.display()))?;
    let tests = make_list(&listing, "MICROLITE_TEST_SRCS");
    let kernel_list = make_list(&listing, "MICROLITE_CC_KERNEL_SRCS");
    if kernel_list.is_empty() {
        return Err(format!(
            "{} lists no MICROLITE_CC_KERNEL_SRCS",
            make.display()
        ));
    }
    let micro = tflm.join("tensorflow/lite/micro");
    let mut core = Vec::new();
    for dir in ["", "arena_allocator", "memory_planner", "tflite_bridge"] {
        core.extend(files_with(&micro.join(dir), &["cc"], false)?);
    }
    core.extend(shared_tflite_sources(&tflm)?);
    core.retain(|p| {
        let relative = p.strip_prefix(&tflm).unwrap_or(p);
        !tests.iter().any(|t| Path::new(t) == relative)
            && !p.to_string_lossy().ends_with("benchmark.cc")
    });
    let mut platform = files_with(&micro.join("cortex_m_generic"), &["cc", "c"], false)?;
    if isa == Isa::RiscV {
        platform.retain(|p| p.ends_with("debug_log.cc"));
    }
    let core = replace_by_name(core, &platform);
    let kernel_paths = kernel_list.iter().map(|k| tflm.join(k)).collect();
    let (kernels, third_party) = match kernels {
        Kernels::Reference => (kernel_paths, Vec::new()),
        Kernels::CmsisNn => (
            specialize(kernel_paths, &micro.join("kernels/cmsis_nn"))?,
            cmsis_nn_sources(&peers.join("cmsis-nn/Source"))?,
        ),
    };
    Ok(LibrarySources {
        core,
        kernels,
        third_party,
    })
}

/// The paths of a `NAME := \` list in a TFLM makefile, without
/// `$(TENSORFLOW_ROOT)`.
fn make_list(listing: &str, name: &str) -> Vec<String> {
    let mut lines = listing
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{name} :=")));
    let mut paths = Vec::new();
    let Some(mut line) = lines.next() else {
        return paths;
    };
    while line.trim_end().ends_with('\\') {
        let Some(next) = lines.next() else { break };
        line = next;
        let entry = line.trim().trim_end_matches('\\').trim();
        if let Some(path) = entry.strip_prefix("$(TENSORFLOW_ROOT)") {
            paths.push(path.to_string());
        }
    }
    paths
}

/// `find tensorflow -name '*.cc' -o -name '*.c'` without
/// `tensorflow/lite/experimental` and `tensorflow/lite/micro`, and without
/// `lite/array.cc` (TFLM's TF_LITE_STATIC_MEMORY build leaves it out).
fn shared_tflite_sources(tflm: &Path) -> Result<Vec<PathBuf>, String> {
    let pruned = [
        tflm.join("tensorflow/lite/experimental"),
        tflm.join("tensorflow/lite/micro"),
        tflm.join("tensorflow/lite/array.cc"),
    ];
    let all = files_with(&tflm.join("tensorflow"), &["cc", "c"], true)?;
    Ok(all
        .into_iter()
        .filter(|p| !pruned.iter().any(|skip| p.starts_with(skip)))
        .collect())
}

/// CMSIS-NN's sources without the float16 and float32 ones (TFLM builds
/// with `ARM_NN_ENABLE_F16=0` and `ARM_NN_ENABLE_F32=0`).
fn cmsis_nn_sources(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let all = files_with(dir, &["c"], true)?;
    Ok(all
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.ends_with("_f16.c") && !name.ends_with("_f32.c") && name != "arm_nntables_flt.c"
        })
        .collect())
}

/// TFLM's `specialize_files.py`: a file whose name is also in `dir` is
/// replaced by that one.
fn specialize(files: Vec<PathBuf>, dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(replace_by_name(
        files,
        &files_with(dir, &["cc", "c"], false)?,
    ))
}

/// Each of `files` whose name is also in `special`, replaced by that one.
fn replace_by_name(files: Vec<PathBuf>, special: &[PathBuf]) -> Vec<PathBuf> {
    files
        .into_iter()
        .map(|f| {
            special
                .iter()
                .find(|s| s.file_name() == f.file_name())
                .cloned()
                .unwrap_or(f)
        })
        .collect()
}

/// The files of `dir` (and below, if `recursive`) with one of `extensions`,
/// sorted so that the library and its cache key do not depend on the
/// directory order.
pub(super) fn files_with(
    dir: &Path,
    extensions: &[&str],
    recursive: bool,
) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("failed to read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("failed to read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            if recursive {
                found.extend(files_with(&path, extensions, true)?);
            }
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_make_list_is_read_to_its_last_continued_line() {
        let listing = "A := \\\n$(TENSORFLOW_ROOT)x/a.cc \\\n$(TENSORFLOW_ROOT)x/b.cc\n\nB := \\\n$(TENSORFLOW_ROOT)y.cc\n";
        assert_eq!(make_list(listing, "A"), ["x/a.cc", "x/b.cc"]);
        assert_eq!(make_list(listing, "B"), ["y.cc"]);
        assert!(make_list(listing, "C").is_empty());
    }
}
