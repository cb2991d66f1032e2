//! The bench harness: everything on the host side of the pipeline, one
//! module per stage: suite, plan, model (zoo, tflite import, transform,
//! lower, prepare), build, link, runner, telemetry, store, manifest, report;
//! `pipeline` runs them in order for `bench run`, `infer` runs one model over
//! a file of inputs for `bench infer`.
#![warn(missing_docs)]

pub mod accuracy;
pub mod build;
pub mod device;
pub mod error;
pub mod fuzzing;
pub mod guard;
pub mod input;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod results;
pub mod telemetry;

/// The bench workspace (for `targets/` and the device programs' sources):
/// `$BENCH_ROOT`, else the workspace this harness was built from.
pub fn workspace_root() -> std::path::PathBuf {
    std::env::var_os("BENCH_ROOT")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("harness lives in the workspace")
                .to_path_buf()
        })
}

/// Exit codes of the `bench` binary.
pub mod exit {
    /// Every job succeeded.
    pub const OK: u8 = 0;
    /// bench itself failed (I/O, store).
    pub const INTERNAL: u8 = 1;
    /// The input is invalid (suite, target, arguments); nothing ran.
    pub const INVALID_INPUT: u8 = 2;
    /// At least one job failed; the others ran and are stored.
    pub const JOBS_FAILED: u8 = 3;
    /// `bench compare`: the current run is worse than the baseline.
    pub const REGRESSED: u8 = 4;
}
