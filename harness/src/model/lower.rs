//! Lowering: a graph with float weights becomes a model blob the kernel
//! crate's executor runs, with every activation placed in the arena by the
//! memory planner.

use super::graph::{Graph, LayerOp};
use kernels::geometry::{Activation, Window};
use kernels::model::{Act, Blob, DType, GraphHeader, ModelWriter, Op, Stage, TensorDesc, Weights};
use kernels::planner::{self, Buffer};

/// Alignment of every arena tensor (enough for the widest SIMD load).
pub const ARENA_ALIGN: usize = 16;

/// Why a graph could not be lowered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// A conv, depthwise or dense layer has no weights.
    #[error("failed to lower layer '{layer}': it has no weights")]
    MissingWeights {
        /// The layer.
        layer: String,
    },
    /// A layer's weights do not have the length its shapes call for.
    #[error("failed to lower layer '{layer}': its kernel has {found} values, expected {expected}")]
    WeightLength {
        /// The layer.
        layer: String,
        /// Expected kernel length.
        expected: usize,
        /// Kernel length found.
        found: usize,
    },
}

/// A lowered model: the blob and the arena it needs.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// The serialized model.
    pub blob: Blob,
    /// Peak arena bytes from the planner.
    pub arena_bytes: usize,
    /// Sum of all activation sizes (what an arena without reuse would need).
    pub activation_bytes: usize,
}

/// Arena placement of every tensor of `graph`, each `bytes_per_element` wide.
fn place(graph: &Graph, bytes_per_element: usize) -> (planner::Plan, Vec<Buffer>) {
    let size = |t: usize| (graph.tensors[t].shape.elements().unwrap_or(0) * bytes_per_element).next_multiple_of(ARENA_ALIGN);
    let mut buffers: Vec<Buffer> = (0..graph.tensors.len()).map(|t| Buffer { size: size(t), first: usize::MAX, last: 0 }).collect();
    buffers[graph.input].first = 0;
    for (step, layer) in graph.layers.iter().enumerate() {
        for &t in layer.inputs.iter().chain(std::iter::once(&layer.output)) {
            buffers[t].first = buffers[t].first.min(step);
            buffers[t].last = buffers[t].last.max(step);
        }
    }
    buffers[graph.output].last = graph.layers.len();
    for b in &mut buffers {
        b.first = b.first.min(b.last);
    }
    (planner::plan(&buffers, ARENA_ALIGN), buffers)
}

/// Lowers a float graph to float32 kernels.
pub fn lower_f32(graph: &Graph) -> Result<Lowered, LowerError> {
    let (plan, buffers) = place(graph, 4);
    let desc = |t: usize| TensorDesc { dtype: DType::F32, shape: graph.tensors[t].shape, offset: plan.offsets[t] as u32 };
    let clamp = |a: Activation| {
        let (min, max) = a.range_f32();
        Stage::F32 { min, max }
    };
    let mut w = ModelWriter::new();
    for layer in &graph.layers {
        let (input, output) = (desc(layer.inputs[0]), desc(layer.output));
        let window = |kernel, stride, dilation, padding| Window::new(kernel, stride, dilation, padding, (input.shape.h, input.shape.w)).0;
        let mut weights = || -> Result<Weights, LowerError> {
            let lw = layer.weights.as_ref().ok_or_else(|| LowerError::MissingWeights { layer: layer.name.clone() })?;
            let (expected, _) = layer.parameter_counts(input.shape, output.shape);
            if lw.kernel.len() != expected {
                return Err(LowerError::WeightLength { layer: layer.name.clone(), expected, found: lw.kernel.len() });
            }
            Ok(Weights::F32 { filter: w.constant(&lw.kernel), bias: Some(w.constant(&lw.bias)) })
        };
        let op = match layer.op {
            LayerOp::Conv2d { kernel, stride, dilation, padding, activation, .. } => {
                Op::Conv2d { input, output, window: window(kernel, stride, dilation, padding), weights: weights()?, stage: clamp(activation) }
            }
            LayerOp::DepthwiseConv2d { multiplier, kernel, stride, dilation, padding, activation } => Op::DepthwiseConv2d {
                input,
                output,
                window: window(kernel, stride, dilation, padding),
                depth_multiplier: multiplier,
                weights: weights()?,
                stage: clamp(activation),
            },
            LayerOp::Dense { activation, .. } => Op::FullyConnected { input, output, weights: weights()?, stage: clamp(activation) },
            LayerOp::AvgPool { kernel, stride, padding } => {
                Op::AvgPool { input, output, window: window(kernel, stride, (1, 1), padding), act: Act::F32 { min: f32::NEG_INFINITY, max: f32::INFINITY } }
            }
            LayerOp::MaxPool { kernel, stride, padding } => {
                Op::MaxPool { input, output, window: window(kernel, stride, (1, 1), padding), act: Act::F32 { min: f32::NEG_INFINITY, max: f32::INFINITY } }
            }
            LayerOp::Add { activation } => {
                let (min, max) = activation.range_f32();
                Op::Add { a: input, b: desc(layer.inputs[1]), output, int8: None, act: Act::F32 { min, max } }
            }
            LayerOp::Flatten => Op::Reshape { input, output },
            LayerOp::Softmax => Op::Softmax { input, output, int8: None, beta: 1.0 },
        };
        w.push(op);
    }
    let header = GraphHeader { arena_bytes: plan.peak as u32, op_count: 0, exit_heads: 0, input: desc(graph.input), output: desc(graph.output) };
    let activation_bytes = buffers.iter().map(|b| b.size).sum();
    Ok(Lowered { blob: w.finish(header), arena_bytes: plan.peak, activation_bytes })
}
