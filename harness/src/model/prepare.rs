//! Model preparation: a graph and a recipe (quantization, pruning, exits)
//! become a blob, plus the figures and the reference a run is checked against.
//!
//! The order is fixed: attach exits, initialize weights, prune, set
//! precisions, calibrate, lower. Exit thresholds are not part of it: they
//! are set at run time, so a threshold sweep shares one prepared model.

use super::graph::{Graph, LayerOp, Precision, TensorId};
use super::host::HostModel;
use super::init;
use super::lower::{self, Int8Options, LowerError, Lowered};
use super::patch;
use super::transform::{self, TransformError};
use kernels::exit::Confidence;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The number format of a variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Scheme {
    /// float32 everywhere.
    Float32,
    /// int8 post-training quantization.
    Int8 {
        /// One weight scale per output channel, or one per tensor.
        per_channel: bool,
    },
    /// int4 weights (conv and dense; depthwise stays int8), int8 activations.
    Int4,
    /// Binary conv and dense layers, except `keep` (int8).
    Binary {
        /// Layers kept in int8; `None` keeps the first and the last.
        keep: Option<Vec<String>>,
    },
}

/// How a variant prunes.
#[derive(Clone, Debug, PartialEq)]
pub enum Pruning {
    /// Drop this fraction of output channels by L1 norm.
    Channels {
        /// Fraction in `[0, 1)`.
        ratio: f32,
        /// Only in the layers whose outputs are live where activations
        /// peak (`objective = "peak-sram"`), not in every layer.
        at_peak: bool,
    },
    /// Zero this fraction of weights by magnitude.
    Magnitude {
        /// Fraction in `[0, 1)`.
        sparsity: f32,
        /// Use the sparse kernels for layers at least half zeros.
        sparse_kernels: bool,
    },
    /// Zero this fraction of each conv and dense layer's blocks of
    /// `[output channels, inputs]` weights, by their mean magnitude.
    Block {
        /// Output channels and consecutive inputs of a block.
        block: [usize; 2],
        /// Fraction of blocks zeroed, in `[0, 1)`.
        sparsity: f32,
        /// Use the sparse kernels where they pay.
        sparse_kernels: bool,
    },
}

/// What int8 post-training quantization calibrates activation ranges on.
#[derive(Clone, Debug, PartialEq)]
pub enum Calibration {
    /// This many synthetic inputs in `[-1, 1)` from a seed.
    Synthetic(usize, u64),
    /// Real samples (a dataset's), as float inputs.
    Samples(Vec<Vec<f32>>),
}

/// Everything that turns a graph into one variant's model.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Number format.
    pub scheme: Scheme,
    /// Per-layer precision overrides, applied after the scheme.
    pub overrides: Vec<(String, Precision)>,
    /// Pruning, if any.
    pub pruning: Option<Pruning>,
    /// Exit heads after these layers, with this confidence measure (no
    /// layers: the model's own heads, judged by this measure).
    pub exits: Option<(Vec<String>, Confidence)>,
    /// Seed of the synthetic weights.
    pub weight_seed: u64,
    /// The samples int8 calibration runs on.
    pub calibration: Calibration,
    /// Seed of the synthetic input the runs use.
    pub input_seed: u64,
    /// How activations share memory.
    pub memory: Schedule,
}

/// A variant's memory schedule (`memory = "..."` in a suite).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Every operator reads and writes whole tensors; the planner reuses
    /// the space of tensors no longer needed.
    #[default]
    Tensor,
    /// Partial execution by rows: a convolution whose output may overwrite
    /// its input computes a band of output rows at a time and writes each
    /// back over input no later band reads (`kernels::model::in_place`), so
    /// the two tensors share one buffer.
    Partial,
    /// Patch-based inference (MCUNetV2): the first stage runs one spatial
    /// patch of its output at a time and computes the patches' overlaps
    /// again (`model::patch`); the layers after it as under `Partial`.
    Patch,
}

impl Schedule {
    /// The name in suites and the results' `memory` column.
    pub const fn name(self) -> &'static str {
        match self {
            Schedule::Tensor => "tensor",
            Schedule::Partial => "partial",
            Schedule::Patch => "patch",
        }
    }

    /// How the lowering places tensors under this schedule.
    pub const fn placement(self) -> lower::Placement {
        match self {
            Schedule::Tensor => lower::Placement::Planned,
            Schedule::Partial | Schedule::Patch => lower::Placement::InPlace,
        }
    }
}

/// Why a model could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A transform failed.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// Lowering failed.
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// The recipe asks for something the scheme cannot do.
    #[error("failed to prepare the model: {0}")]
    Recipe(String),
    /// The blob does not load or run in the host reference.
    #[error("failed to run the host reference: {0}")]
    Reference(String),
}

/// A prepared model and its static figures.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The transformed graph.
    pub graph: Graph,
    /// The blob and its memory plan.
    pub lowered: Lowered,
    /// The input the runs use, as the model's input tensor bytes.
    pub input: Vec<u8>,
    /// Layers removed or thinned by structured pruning.
    pub pruned_layers: Vec<String>,
}

/// A synthetic float input in `[-1, 1)`, the same for every variant of a model.
pub fn synthetic_input(elements: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..elements)
        .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

/// Synthetic `[-1, 1)` values as indices for a model whose input is
/// GATHER's indices: spread over `0..extent` of the smallest gathered axis,
/// so that every one is valid.
fn synthetic_indices(graph: &Graph, values: &[f32]) -> Vec<f32> {
    let extent = graph
        .layers
        .iter()
        .filter_map(|l| match l.op {
            crate::model::LayerOp::Gather { extent, .. } => Some(extent),
            _ => None,
        })
        .min()
        .unwrap_or(1) as f32;
    values
        .iter()
        .map(|&v| ((v + 1.0) / 2.0 * extent).floor().clamp(0.0, extent - 1.0))
        .collect()
}

/// Whether `graph` is an imported int8 model: its activations carry the
/// quantization the file fixed. (A float model with int8 weights, dynamic-
/// range quantized, is not: it runs in float as imported.)
pub fn is_imported_int8(graph: &Graph) -> bool {
    graph.tensors.iter().any(|t| t.quant.is_some())
}

/// Refuses the recipes an imported int8 model cannot take, with the reason.
pub fn check_imported(graph: &Graph, recipe: &Recipe) -> Result<(), PrepareError> {
    if !is_imported_int8(graph) {
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(PrepareError::Recipe(format!(
            "model '{}' is an imported int8 model: {why}",
            graph.name
        )))
    };
    match (&recipe.scheme, &recipe.pruning) {
        (Scheme::Int8 { per_channel: false }, _) => {
            refuse("its weight granularity is fixed by its quantization; re-quantizing per tensor would need its calibration data, so run it as it is")
        }
        (_, Some(Pruning::Channels { .. })) => refuse(
            "channel pruning changes the activation ranges its quantization was calibrated for; prune the float model and re-export it, or use magnitude pruning",
        ),
        _ => Ok(()),
    }
}

/// Applies `recipe` to `graph` and lowers it, in a fixed order: exits,
/// seeded weights, pruning, precisions, lowering, the synthetic input.
pub fn prepare(graph: &Graph, recipe: &Recipe) -> Result<Prepared, PrepareError> {
    check_imported(graph, recipe)?;
    let mut graph = match &recipe.exits {
        Some((at, measure)) if at.is_empty() => {
            let mut graph = graph.clone();
            graph.exits.iter_mut().for_each(|e| e.measure = *measure);
            graph
        }
        Some((at, measure)) => transform::attach_exits(graph, at, *measure)?,
        None => graph.clone(),
    };
    init::seeded(&mut graph, recipe.weight_seed);
    let (pruned_layers, sparse_from) = prune(&mut graph, recipe.pruning.as_ref())?;
    set_precisions(&mut graph, recipe)?;
    let elements = graph.tensors[graph.input].shape.elements().unwrap_or(0);
    let per_channel = match recipe.scheme {
        Scheme::Int8 { per_channel } => per_channel,
        _ => Int8Options::default().per_channel,
    };
    let ranges = match recipe.scheme {
        Scheme::Float32 => None,
        _ => Some(int8_ranges(&graph, recipe, elements)?),
    };
    let options = Int8Options {
        per_channel,
        sparse_from,
        placement: recipe.memory.placement(),
    };
    // Lowers `g`, whose tensors hold windows of `origin`'s tensors of the
    // prepared graph (and are quantized as those).
    let lower = |g: &Graph, origin: &[TensorId]| -> Result<Lowered, PrepareError> {
        Ok(match &ranges {
            None => lower::lower_f32_placed(g, options.placement)?,
            Some(ranges) if ranges.is_empty() => lower::lower_int8(g, ranges, options)?,
            Some(ranges) => {
                let mapped: Vec<_> = origin.iter().map(|&t| ranges[t]).collect();
                lower::lower_int8(g, &mapped, options)?
            }
        })
    };
    let identity: Vec<TensorId> = (0..graph.tensors.len()).collect();
    let mut lowered = lower(&graph, &identity)?;
    if recipe.memory == Schedule::Patch {
        if let Some((patched, by_patch)) = patch_schedule(&graph, &lowered, &lower)? {
            (graph, lowered) = (patched, by_patch);
        }
    }
    let mut values = synthetic_input(elements, recipe.input_seed);
    if graph.int32.contains(&graph.input) {
        values = synthetic_indices(&graph, &values);
    }
    let input = model_input(&lowered, graph.input, values)?;
    Ok(Prepared {
        graph,
        lowered,
        input,
        pruned_layers,
    })
}

/// Prunes as `pruning` says: the layers channel pruning changed, and the
/// density below which magnitude-pruned layers use the sparse kernels.
fn prune(
    graph: &mut Graph,
    pruning: Option<&Pruning>,
) -> Result<(Vec<String>, Option<f32>), PrepareError> {
    Ok(match pruning {
        Some(&Pruning::Channels {
            ratio,
            at_peak: false,
        }) => (transform::prune_channels(graph, ratio), None),
        Some(&Pruning::Channels {
            ratio,
            at_peak: true,
        }) => {
            let pruned = transform::prune_channels_at_peak(graph, ratio);
            if pruned.is_empty() {
                let (step, elements) = transform::peak(graph);
                let layer = graph.layers.get(step).map_or("(none)", |l| l.name.as_str());
                return Err(PrepareError::Recipe(format!(
                    "model '{}': channel pruning aimed at the peak (objective = \"peak-sram\") cannot lower it: {elements} activation values are live at layer '{layer}', and removing channels where the peak is leaves it as high (a residual block's input and sum, or the model's input or output); prune with objective = \"size\", or try memory = \"partial\"",
                    graph.name
                )));
            }
            (pruned, None)
        }
        Some(&Pruning::Magnitude {
            sparsity,
            sparse_kernels,
        }) => {
            transform::prune_magnitude(graph, sparsity);
            (Vec::new(), sparse_kernels.then_some(0.5))
        }
        Some(&Pruning::Block {
            block,
            sparsity,
            sparse_kernels,
        }) => {
            transform::prune_blocks(graph, block, sparsity);
            (Vec::new(), sparse_kernels.then_some(0.5))
        }
        None => (Vec::new(), None),
    })
}

/// The scheme's precisions (binary: all but the kept layers; int4: every
/// conv and dense layer), then the per-layer overrides; int4 needs int8.
fn set_precisions(graph: &mut Graph, recipe: &Recipe) -> Result<(), PrepareError> {
    match &recipe.scheme {
        Scheme::Binary { keep } => {
            let keep = keep
                .clone()
                .unwrap_or_else(|| transform::first_and_last(graph));
            transform::binarize(graph, &keep)?;
        }
        Scheme::Int4 => {
            let names: Vec<String> = graph
                .layers
                .iter()
                .filter(|l| matches!(l.op, LayerOp::Conv2d { .. } | LayerOp::Dense { .. }))
                .map(|l| l.name.clone())
                .collect();
            for name in names {
                transform::set_precision(graph, &name, Precision::Int4)?;
            }
        }
        _ => {}
    }
    for (name, precision) in &recipe.overrides {
        transform::set_precision(graph, name, *precision)?;
    }
    if let (Scheme::Float32, Some(layer)) = (
        &recipe.scheme,
        graph.layers.iter().find(|l| l.precision == Precision::Int4),
    ) {
        return Err(PrepareError::Recipe(format!(
            "layer '{}' asks for int4 weights, which need an int8 model, not float32",
            layer.name
        )));
    }
    Ok(())
}

/// The model input as the blob takes it: float bytes, or quantized.
fn model_input(
    lowered: &Lowered,
    input: TensorId,
    values: Vec<f32>,
) -> Result<Vec<u8>, PrepareError> {
    crate::input::dataset::input_from_real(
        &values,
        lowered.tensors[input].dtype,
        // A float model has no quantization to give.
        lowered.quant.get(input).copied().unwrap_or((1.0, 0)),
    )
    .map_err(PrepareError::Recipe)
}

/// The calibrated range of every tensor, by id; empty for an imported
/// int8 model, which fixes every tensor's quantization (or keeps it in
/// float or int32): nothing to calibrate.
fn int8_ranges(
    graph: &Graph,
    recipe: &Recipe,
    elements: usize,
) -> Result<Vec<(f32, f32)>, PrepareError> {
    let fixed = |(i, t): (usize, &crate::model::Tensor)| {
        t.quant.is_some() || graph.int32.contains(&i) || graph.float32.contains(&i)
    };
    if graph.tensors.iter().enumerate().all(fixed) {
        return Ok(Vec::new());
    }
    let samples: Vec<Vec<f32>> = match &recipe.calibration {
        Calibration::Synthetic(count, seed) => (0..*count as u64)
            .map(|i| synthetic_input(elements, seed.wrapping_add(i)))
            .collect(),
        Calibration::Samples(samples) => samples.clone(),
    };
    Ok(lower::calibrate(graph, &samples)?)
}

/// Lowers a graph whose tensors hold windows of the given tensors of the
/// prepared graph (quantized as those).
type LowerWindows<'a> = dyn Fn(&Graph, &[TensorId]) -> Result<Lowered, PrepareError> + 'a;

/// The patch schedule's graph and lowering, where running the first stage
/// by patches gives a smaller arena than `plain`, the graph lowered as it is.
fn patch_schedule(
    graph: &Graph,
    plain: &Lowered,
    lower: &LowerWindows,
) -> Result<Option<(Graph, Lowered)>, PrepareError> {
    let bytes = |t: TensorId| {
        let dtype = plain.tensors[t].dtype;
        dtype.element_bytes().unwrap_or(1) as usize
    };
    let Some(stage) = patch::choose(graph, &plain.live_bytes, plain.arena_bytes, &bytes) else {
        return Ok(None);
    };
    let Some(patched) = patch::rewrite(graph, stage) else {
        return Ok(None);
    };
    let lowered = lower(&patched.graph, &patched.origin)?;
    if lowered.arena_bytes >= plain.arena_bytes {
        return Ok(None);
    }
    // Every operator of the rewrite kept must load as the plain graph's
    // do; a type the executor has no Slice or Insert for would fail every run.
    if let Err(e) = kernels::model::Model::parse(lowered.blob.as_bytes()) {
        return Err(PrepareError::Recipe(format!(
            "model '{}': memory = \"patch\" made a blob that does not load ({e}); use memory = \"partial\"",
            graph.name
        )));
    }
    Ok(Some((patched.graph, lowered)))
}

/// The host reference of one inference: the output bytes and the exit taken.
pub fn reference(
    prepared: &Prepared,
    thresholds: &[f32],
) -> Result<(Vec<u8>, Option<u8>), PrepareError> {
    let mut host =
        HostModel::new(prepared.lowered.blob.as_bytes()).map_err(PrepareError::Reference)?;
    let outcome = host
        .run(&prepared.input, thresholds)
        .map_err(PrepareError::Reference)?;
    Ok((host.tensor(&outcome.output).to_vec(), outcome.exit))
}
