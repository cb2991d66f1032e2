//! The suite file: what to benchmark (models x variants x targets) and how
//! often. Parsing rejects unknown keys; checking resolves every name (models,
//! layers, targets) and range, and reports all problems with file, line and
//! column. The schema is documented in `docs/suite.md`.
//!
//! `schema` is the file as serde reads it, `check` turns it into the
//! [`Suite`] below; this module loads and parses.

mod check;
mod schema;

pub use schema::*;

use crate::input::dataset::{self, Dataset, DatasetSpec};
use crate::input::diag::{did_you_mean, Diagnostic, Diagnostics, Source};
use crate::input::runtime::Runtime;
use crate::model::prepare::Calibration as CalibrationData;
use crate::model::prepare::{self, Pruning, Recipe, Scheme};
use crate::model::{import, zoo, Graph, Precision};
use kernels::exit::Confidence;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A model, resolved.
#[derive(Debug, Clone)]
pub struct SuiteModel {
    /// Name in tables.
    pub name: String,
    /// The architecture.
    pub graph: Graph,
    /// Weight seed.
    pub seed: u64,
    /// Index of its dataset in [`Suite::datasets`].
    pub dataset: Option<usize>,
    /// The `.tflite` file it was imported from, which a TFLite Micro
    /// runtime runs (none for zoo and ONNX models).
    pub tflite: Option<PathBuf>,
}

/// A variant applied to one model, resolved.
#[derive(Debug, Clone)]
pub struct SuiteVariant {
    /// Variant name.
    pub name: String,
    /// Index of the model in [`Suite::models`].
    pub model: usize,
    /// How to prepare it.
    pub recipe: Recipe,
    /// Thresholds (`[]` for no exits): one job each, or one sweep when the model has a dataset.
    pub thresholds: Vec<f32>,
    /// Whether the thresholds are swept over the model's dataset in one job per target.
    pub sweep: bool,
    /// Dataset inputs to run one by one on emulated targets to validate a sweep's predicted cost.
    pub validate: usize,
    /// Short description of the scheme, pruning and exits, for tables.
    pub summary: VariantSummary,
    /// Whether it leaves the model as imported (no quant, prune or exits):
    /// only such a variant can run on a peer runtime, which reads the file.
    pub as_imported: bool,
}

/// What a variant is, in words for the result table.
#[derive(Debug, Clone, Default)]
pub struct VariantSummary {
    /// e.g. `int8 per-channel`.
    pub quant: String,
    /// e.g. `channels 0.5`.
    pub pruning: String,
    /// e.g. `dw2,pw3 max-softmax`.
    pub exits: String,
}

/// A checked suite, ready to plan.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file's text (hashed into the manifest).
    pub text: String,
    /// Name.
    pub name: String,
    /// Target names.
    pub targets: Vec<String>,
    /// The runtimes every variant runs on, each once.
    pub runtimes: Vec<Runtime>,
    /// Warm-up inferences.
    pub warmup: u32,
    /// Timed inferences.
    pub repetitions: u32,
    /// Seconds per job.
    pub timeout: u64,
    /// Datasets.
    pub datasets: Vec<Dataset>,
    /// Models.
    pub models: Vec<SuiteModel>,
    /// Variant x model combinations, in file order.
    pub variants: Vec<SuiteVariant>,
    /// The `[[dut]]` runtimes, which `Runtime::Dut` indexes.
    pub duts: Vec<DutRuntime>,
}

/// A `[[dut]]`: a firmware of the user's that speaks the MLPerf Tiny DUT
/// protocol.
#[derive(Debug, Clone)]
pub struct DutRuntime {
    /// Its name.
    pub name: String,
    /// Its ELF per model index (`None`: this firmware has no build of that model).
    pub elves: Vec<Option<PathBuf>>,
}

impl Suite {
    /// The name of `runtime` in job ids and the `runtime` column.
    pub fn runtime_name(&self, runtime: Runtime) -> &str {
        match runtime {
            Runtime::Dut(i) => &self.duts[i].name,
            builtin => builtin.builtin_name().unwrap_or("dut"),
        }
    }

    /// The name a job id and a program label add for `runtime`: none for
    /// bench's own kernels, so their ids stay what earlier runs stored.
    pub fn peer_name(&self, runtime: Runtime) -> Option<&str> {
        (runtime != Runtime::Bench).then(|| self.runtime_name(runtime))
    }
}

/// Reads and checks a suite file.
pub fn load(path: &Path) -> Result<Suite, Diagnostics> {
    let text = crate::input::files::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.into(),
            line: 0,
            column: 0,
            message: format!("failed to read the suite: {e}"),
            help: None,
        }])
    })?;
    parse(path, text)
}

/// Checks the suite `text`, read from `path` (relative model and dataset paths start there).
pub fn parse(path: &Path, text: String) -> Result<Suite, Diagnostics> {
    let src = Source { path, text: &text };
    let file: SuiteFile =
        toml::from_str(&text).map_err(|e| Diagnostics(vec![src.from_toml(&e)]))?;
    let mut errors = Vec::new();
    let suite = check::check(&src, file, &mut errors);
    if errors.is_empty() {
        Ok(Suite {
            path: path.into(),
            text,
            ..suite
        })
    } else {
        Err(Diagnostics(errors))
    }
}
