//! The suite file as serde reads it: unknown keys are refused, every name
//! and number that a check may refuse keeps its span.

use super::*;

/// `[suite]`: metadata and run settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteMeta {
    /// Name; results go to `results/<name>/`.
    pub name: Spanned<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Target names (files in `targets/`); default `["host"]`.
    pub targets: Option<Vec<Spanned<String>>>,
    /// Runtimes each variant runs on (`bench`, `tflm`, `tflm-cmsis-nn`,
    /// `litert`, `litert-ref`, `lce`, or a `[[dut]]`'s name); default `["bench"]`.
    pub runtimes: Option<Vec<Spanned<String>>>,
    /// Untimed inferences before the timed ones.
    #[serde(default = "default_warmup")]
    pub warmup: Spanned<u32>,
    /// Timed inferences per job.
    #[serde(default = "default_repetitions")]
    pub repetitions: Spanned<u32>,
    /// Seconds a job may take on its device before it is stopped.
    #[serde(default = "default_timeout")]
    pub timeout: Spanned<u64>,
}

/// The most inferences (warm-up or timed) a job may ask for.
pub const MAX_INFERENCES: u32 = 1_000_000;

/// The longest a job (or `bench infer`'s inference) may be given, in seconds: a week.
pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// The most calibration samples a variant may ask for: each is a float
/// inference of the model on the host.
pub const MAX_CALIBRATION_SAMPLES: usize = 10_000;

fn default_warmup() -> Spanned<u32> {
    Spanned::new(0..0, 5)
}

fn default_repetitions() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}

fn default_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 120)
}

/// `[[model]]`: a model from the zoo, or a model file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name used in tables; defaults to the zoo name or the file's stem.
    pub name: Option<Spanned<String>>,
    /// Zoo architecture.
    pub zoo: Option<Spanned<String>>,
    /// A model file to import.
    pub source: Option<Spanned<ModelSource>>,
    /// Seed of the synthetic weights (zoo models) and of the synthetic input.
    #[serde(default = "one")]
    pub seed: u64,
    /// The dataset accuracy and exit statistics are measured on.
    pub dataset: Option<Spanned<String>>,
    /// The outputs of an imported model that are early-exit heads.
    #[serde(rename = "exit-heads")]
    pub exit_heads: Option<Spanned<Vec<String>>>,
}

/// `[[dataset]]`: labelled samples in a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatasetFileSpec {
    /// Name, unique in the suite.
    pub name: Spanned<String>,
    /// `.npz` (arrays `x`, `y`), `.npy` or `.csv`, relative to the suite file.
    pub path: Spanned<PathBuf>,
    /// Labels of a `.npy` sample file.
    pub labels: Option<PathBuf>,
    /// The label column of a `.csv` file.
    #[serde(default = "default_label_column")]
    pub label_column: String,
    /// At most this many samples.
    pub limit: Option<Spanned<usize>>,
    /// Shuffle with this seed (default: the file's order).
    pub shuffle: Option<u64>,
}

fn default_label_column() -> String {
    "label".into()
}

/// `source`: where a model file is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// A `.tflite` flatbuffer, relative to the suite file.
    pub tflite: Option<PathBuf>,
    /// An `.onnx` model, relative to the suite file.
    pub onnx: Option<PathBuf>,
}

fn one() -> u64 {
    1
}

/// Number formats a variant can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeName {
    /// float32.
    Float32,
    /// int8 post-training quantization.
    Int8,
    /// int4 weights, int8 activations.
    Int4,
    /// Binary layers, int8 elsewhere.
    Binary,
}

/// Weight-scale granularity of int8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    /// One scale per output channel.
    #[default]
    PerChannel,
    /// One scale per tensor.
    PerTensor,
}

/// Per-layer formats an override can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerFormat {
    /// The model's own format.
    Int8,
    /// int4 weights.
    Int4,
    /// Binary.
    Binary,
}

/// `quant`: the number format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantSpec {
    /// float32, int8, int4 or binary.
    pub scheme: SchemeName,
    /// int8 weight scales.
    #[serde(default)]
    pub granularity: Granularity,
    /// Synthetic calibration samples.
    #[serde(default = "default_calibration")]
    pub calibration: Calibration,
    /// Binary: layers kept int8 (default: first and last).
    pub keep: Option<Vec<Spanned<String>>>,
    /// Per-layer format overrides.
    #[serde(default)]
    pub layers: BTreeMap<Spanned<String>, LayerFormat>,
}

/// Calibration samples for int8.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Number of samples.
    pub samples: Spanned<usize>,
    /// Seed of the synthetic samples.
    #[serde(default = "one")]
    pub seed: u64,
    /// Take the samples from this dataset instead (its first `samples`).
    pub dataset: Option<Spanned<String>>,
}

pub(super) fn default_calibration() -> Calibration {
    Calibration {
        samples: Spanned::new(0..0, 8),
        seed: 1,
        dataset: None,
    }
}

/// Pruning methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneMethod {
    /// Structured: drop channels by L1 norm.
    Channels,
    /// Unstructured: zero weights by magnitude.
    Magnitude,
    /// Structured: zero whole blocks of weights by their mean magnitude.
    Block,
}

/// What channel pruning aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneObjective {
    /// Every prunable layer alike: fewer weights and MACs (the default).
    Size,
    /// Only the layers whose outputs are live where activations peak, as
    /// Pex prunes for memory: less SRAM for fewer channels removed.
    PeakSram,
}

/// `prune`: structured or unstructured pruning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PruneSpec {
    /// channels or magnitude.
    pub method: Spanned<PruneMethod>,
    /// Channels: fraction of channels removed, in `[0, 1)`.
    pub ratio: Option<Spanned<f32>>,
    /// Magnitude and block: fraction of weights (blocks) zeroed, in `[0, 1)`.
    pub sparsity: Option<Spanned<f32>>,
    /// Block: `[output channels, inputs]` of a block, e.g. `[1, 4]`.
    pub block: Option<Spanned<Vec<u32>>>,
    /// Magnitude and block: use the sparse kernels (default true).
    pub sparse_kernels: Option<bool>,
    /// Channels: `size` (every layer, the default) or `peak-sram`.
    pub objective: Option<Spanned<PruneObjective>>,
}

/// Confidence measures, as written in suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeasureName {
    /// Largest softmax probability.
    MaxSoftmax,
    /// Softmax entropy (nats).
    Entropy,
    /// Top-1 minus top-2 probability.
    Margin,
}

impl MeasureName {
    /// The name as written in suites.
    pub fn name(self) -> &'static str {
        match self {
            MeasureName::MaxSoftmax => "max-softmax",
            MeasureName::Entropy => "entropy",
            MeasureName::Margin => "margin",
        }
    }
}

impl From<MeasureName> for Confidence {
    fn from(m: MeasureName) -> Self {
        match m {
            MeasureName::MaxSoftmax => Confidence::MaxSoftmax,
            MeasureName::Entropy => Confidence::Entropy,
            MeasureName::Margin => Confidence::Margin,
        }
    }
}

/// `exits`: early-exit heads and thresholds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExitSpec {
    /// Layers after which a head is attached (none: the model's own heads).
    #[serde(default)]
    pub at: Vec<Spanned<String>>,
    /// Confidence measure.
    #[serde(default = "default_measure")]
    pub measure: MeasureName,
    /// Thresholds, applied to every head.
    pub thresholds: Option<Spanned<Vec<Spanned<f32>>>>,
    /// Thresholds from `from` to `to` (included) in steps of `step`.
    pub range: Option<Spanned<ThresholdRange>>,
    /// Inputs of the dataset run one by one on each emulated target to check
    /// the predicted mean cost against a measured one (0: no check).
    #[serde(default = "default_validate")]
    pub validate: usize,
}

/// `exits.range`: evenly spaced thresholds.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRange {
    /// First threshold.
    pub from: f32,
    /// Last threshold (included when the steps reach it).
    pub to: f32,
    /// Spacing, > 0.
    pub step: f32,
}

fn default_validate() -> usize {
    32
}

fn default_measure() -> MeasureName {
    MeasureName::MaxSoftmax
}

/// `[[variant]]`: one way to prepare the models.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Name, unique in the suite.
    pub name: Spanned<String>,
    /// Models it applies to (default: all).
    pub models: Option<Vec<Spanned<String>>>,
    /// Number format (default: the model as it is, float32 for the zoo,
    /// its own int8 quantization for an imported int8 model).
    pub quant: Option<QuantSpec>,
    /// Pruning.
    pub prune: Option<PruneSpec>,
    /// Early exits.
    pub exits: Option<ExitSpec>,
    /// Memory schedule: `tensor` (default), `partial` or `patch`.
    pub memory: Option<crate::model::prepare::Schedule>,
}

/// The suite file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// Metadata and run settings.
    pub suite: SuiteMeta,
    /// Datasets.
    #[serde(default)]
    pub dataset: Vec<DatasetFileSpec>,
    /// Models.
    #[serde(default)]
    pub model: Vec<ModelSpec>,
    /// Variants.
    #[serde(default)]
    pub variant: Vec<VariantSpec>,
    /// Firmware of the user's that speaks the MLPerf Tiny DUT protocol.
    #[serde(default)]
    pub dut: Vec<DutSpec>,
}

/// `[[dut]]`: a runtime that is a firmware ELF of the user's (a vendor
/// stack) speaking the MLPerf Tiny DUT protocol, with the model built in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutSpec {
    /// Its name in `[suite] runtimes`, job ids and the `runtime` column.
    pub name: Spanned<String>,
    /// The ELF, relative to the suite: one file for every model, or one per
    /// model name (`elf = { kws = "kws.elf", ic = "ic.elf" }`).
    pub elf: Spanned<DutElf>,
}

/// A `[[dut]]`'s ELF: one for every model, or one per model.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DutElf {
    /// The same firmware for every model.
    One(String),
    /// A firmware per model name.
    PerModel(std::collections::BTreeMap<String, String>),
}
