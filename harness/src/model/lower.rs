//! Lowering: a graph with float weights becomes a model blob the kernel
//! crate's executor runs, with every activation placed in the arena by the
//! memory planner.

use super::graph::{Graph, Layer, LayerOp};
use kernels::geometry::{Activation, Window};
use kernels::int8::{AddParams, Clamp, SoftmaxParams};
use kernels::model::{Act, Blob, DType, GraphHeader, Model, ModelWriter, Op, Stage, TensorDesc, Weights};
use kernels::planner::{self, Buffer};
use kernels::quant::{activation_range_i8, conv_output_multiplier, Requant};

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
    /// The float model could not be run for calibration.
    #[error("failed to calibrate: {0}")]
    Calibration(String),
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
    /// Where each graph tensor lives in the arena, by tensor id.
    pub tensors: Vec<TensorDesc>,
    /// `(scale, zero_point)` of each tensor of an int8 model, by tensor id.
    pub quant: Vec<(f32, i32)>,
}

/// How tensors share the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The memory planner reuses space between tensors that are not alive together.
    Planned,
    /// Every tensor keeps its own space, so all of them can be read after a run.
    Unshared,
}

/// Every tensor of a graph placed in the arena.
struct Placed {
    /// Where each tensor lives, by tensor id.
    tensors: Vec<TensorDesc>,
    /// Peak arena bytes.
    arena_bytes: usize,
    /// Sum of all tensor sizes.
    activation_bytes: usize,
}

impl Placed {
    /// Serializes the operators written to `w` into a lowered model.
    fn finish(self, graph: &Graph, w: ModelWriter, quant: Vec<(f32, i32)>) -> Lowered {
        let (input, output) = (self.tensors[graph.input], self.tensors[graph.output]);
        let header = GraphHeader { arena_bytes: self.arena_bytes as u32, op_count: 0, exit_heads: 0, input, output };
        Lowered { blob: w.finish(header), arena_bytes: self.arena_bytes, activation_bytes: self.activation_bytes, tensors: self.tensors, quant }
    }
}

/// Arena placement of every tensor of `graph` as `dtype` (F32 or I8).
fn place(graph: &Graph, dtype: DType, placement: Placement) -> Placed {
    let bytes_per_element = if dtype == DType::F32 { 4 } else { 1 };
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
        if placement == Placement::Unshared {
            (b.first, b.last) = (0, graph.layers.len());
        }
    }
    let plan = planner::plan(&buffers, ARENA_ALIGN);
    let tensors = graph.tensors.iter().zip(&plan.offsets).map(|(t, &offset)| TensorDesc { dtype, shape: t.shape, offset: offset as u32 }).collect();
    Placed { tensors, arena_bytes: plan.peak, activation_bytes: buffers.iter().map(|b| b.size).sum() }
}

/// Lowers a float graph to float32 kernels, with a planned arena.
pub fn lower_f32(graph: &Graph) -> Result<Lowered, LowerError> {
    lower_f32_placed(graph, Placement::Planned)
}

/// Lowers a float graph to float32 kernels with the given placement.
pub fn lower_f32_placed(graph: &Graph, placement: Placement) -> Result<Lowered, LowerError> {
    let placed = place(graph, DType::F32, placement);
    let desc = |t: usize| placed.tensors[t];
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
    Ok(placed.finish(graph, w, Vec::new()))
}

/// The `(min, max)` each tensor takes over the calibration samples, by
/// running the float model with every tensor kept in the arena.
pub fn calibrate(graph: &Graph, samples: &[Vec<f32>]) -> Result<Vec<(f32, f32)>, LowerError> {
    let lowered = lower_f32_placed(graph, Placement::Unshared)?;
    let model = Model::parse(lowered.blob.as_bytes()).map_err(|e| LowerError::Calibration(e.to_string()))?;
    let mut words = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); graph.tensors.len()];
    for sample in samples {
        let input = model.input_mut(arena).ok_or_else(|| LowerError::Calibration("input outside the arena".into()))?;
        if input.len() != sample.len() * 4 {
            return Err(LowerError::Calibration(format!("a sample has {} values, the model input {}", sample.len(), input.len() / 4)));
        }
        input.copy_from_slice(bytemuck::cast_slice(sample));
        model.run(arena, &[]).map_err(|e| LowerError::Calibration(e.to_string()))?;
        for (range, t) in ranges.iter_mut().zip(&lowered.tensors) {
            let values: &[f32] = bytemuck::cast_slice(model.tensor(arena, t).unwrap_or(&[]));
            for &v in values {
                *range = (range.0.min(v), range.1.max(v));
            }
        }
    }
    Ok(ranges)
}

/// Asymmetric int8 parameters covering `[min, max]` and zero (TFLite's
/// scheme: real 0 must be exactly representable).
pub fn activation_quant((min, max): (f32, f32)) -> (f32, i32) {
    let (min, max) = (min.min(0.0), max.max(0.0));
    if max <= min || !min.is_finite() || !max.is_finite() {
        return (1.0, 0);
    }
    let scale = (max - min) / 255.0;
    let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zero_point)
}

/// Symmetric int8 weights per output channel: `(values, scale per channel)`.
/// `channel_of(i)` is the output channel of weight `i`.
fn quantize_weights(kernel: &[f32], channels: usize, channel_of: impl Fn(usize) -> usize) -> (Vec<i8>, Vec<f32>) {
    let mut max_abs = vec![0f32; channels];
    for (i, &w) in kernel.iter().enumerate() {
        max_abs[channel_of(i)] = max_abs[channel_of(i)].max(w.abs());
    }
    let scales: Vec<f32> = max_abs.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let values = kernel.iter().enumerate().map(|(i, &w)| (w / scales[channel_of(i)]).round().clamp(-127.0, 127.0) as i8).collect();
    (values, scales)
}

/// Lowers a float graph to int8 kernels by post-training quantization with
/// the given per-tensor ranges (from [`calibrate`]): activations asymmetric
/// per tensor, weights symmetric per output channel, biases int32.
pub fn lower_int8(graph: &Graph, ranges: &[(f32, f32)]) -> Result<Lowered, LowerError> {
    let placed = place(graph, DType::I8, Placement::Planned);
    let mut quant: Vec<(f32, i32)> = ranges.iter().map(|&r| activation_quant(r)).collect();
    // TFLite constraints: pools and reshapes keep their input's quantization;
    // int8 softmax outputs 1/256 with zero point -128.
    for layer in &graph.layers {
        match layer.op {
            LayerOp::AvgPool { .. } | LayerOp::MaxPool { .. } | LayerOp::Flatten => quant[layer.output] = quant[layer.inputs[0]],
            LayerOp::Softmax => quant[layer.output] = (1.0 / 256.0, -128),
            _ => {}
        }
    }
    let desc = |t: usize| placed.tensors[t];
    let mut w = ModelWriter::new();
    for layer in &graph.layers {
        let (input, output) = (desc(layer.inputs[0]), desc(layer.output));
        let ((s_in, zp_in), (s_out, zp_out)) = (quant[layer.inputs[0]], quant[layer.output]);
        let window = |kernel, stride, dilation, padding| Window::new(kernel, stride, dilation, padding, (input.shape.h, input.shape.w)).0;
        let conv_parts = |w: &mut ModelWriter, activation: Activation| -> Result<(Weights, Stage), LowerError> {
            let QuantizedWeights { values, scales, bias } = quantized_layer(layer, input, output)?;
            let requant: Vec<Requant> = scales.iter().map(|&s_w| conv_output_multiplier(s_in, s_w, s_out)).collect();
            let bias: Vec<i32> = bias
                .iter()
                .zip(&scales)
                .map(|(&b, &s_w)| (b as f64 / (s_in as f64 * s_w as f64)).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
                .collect();
            let (min, max) = activation_range_i8(activation, s_out, zp_out);
            let stage = Stage::Int8 { input_offset: -zp_in, output_offset: zp_out, requant: w.constant(&requant), clamp: Clamp { min, max } };
            Ok((Weights::Int8 { filter: w.constant(&values), bias: Some(w.constant(&bias)) }, stage))
        };
        let op = match layer.op {
            LayerOp::Conv2d { kernel, stride, dilation, padding, activation, .. } => {
                let (weights, stage) = conv_parts(&mut w, activation)?;
                Op::Conv2d { input, output, window: window(kernel, stride, dilation, padding), weights, stage }
            }
            LayerOp::DepthwiseConv2d { multiplier, kernel, stride, dilation, padding, activation } => {
                let (weights, stage) = conv_parts(&mut w, activation)?;
                Op::DepthwiseConv2d { input, output, window: window(kernel, stride, dilation, padding), depth_multiplier: multiplier, weights, stage }
            }
            LayerOp::Dense { activation, .. } => {
                let (weights, stage) = conv_parts(&mut w, activation)?;
                Op::FullyConnected { input, output, weights, stage }
            }
            LayerOp::AvgPool { kernel, stride, padding } => {
                Op::AvgPool { input, output, window: window(kernel, stride, (1, 1), padding), act: Act::I8(Clamp::FULL) }
            }
            LayerOp::MaxPool { kernel, stride, padding } => {
                Op::MaxPool { input, output, window: window(kernel, stride, (1, 1), padding), act: Act::I8(Clamp::FULL) }
            }
            LayerOp::Add { activation } => {
                let b = layer.inputs[1];
                let act = activation_range_i8(activation, s_out, zp_out);
                let params = AddParams::new(quant[layer.inputs[0]], quant[b], (s_out, zp_out), act);
                Op::Add { a: input, b: desc(b), output, int8: Some(params), act: Act::I8(Clamp { min: act.0, max: act.1 }) }
            }
            LayerOp::Flatten => Op::Reshape { input, output },
            LayerOp::Softmax => Op::Softmax { input, output, int8: Some(SoftmaxParams::new(1.0, s_in)), beta: 1.0 },
        };
        w.push(op);
    }
    Ok(placed.finish(graph, w, quant))
}

/// A layer's weights after symmetric per-channel quantization.
struct QuantizedWeights {
    /// int8 weights in the kernel's layout.
    values: Vec<i8>,
    /// Scale of each output channel.
    scales: Vec<f32>,
    /// The float bias (quantized once the input scale is known).
    bias: Vec<f32>,
}

/// A layer's int8 weights, per-channel weight scales and float bias.
fn quantized_layer(layer: &Layer, input: TensorDesc, output: TensorDesc) -> Result<QuantizedWeights, LowerError> {
    let lw = layer.weights.as_ref().ok_or_else(|| LowerError::MissingWeights { layer: layer.name.clone() })?;
    let (expected, channels) = layer.parameter_counts(input.shape, output.shape);
    if lw.kernel.len() != expected {
        return Err(LowerError::WeightLength { layer: layer.name.clone(), expected, found: lw.kernel.len() });
    }
    let per_channel = expected / channels.max(1);
    let (values, scales) = match layer.op {
        // [1, KH, KW, C]: the channel is the innermost index.
        LayerOp::DepthwiseConv2d { .. } => quantize_weights(&lw.kernel, channels, |i| i % channels),
        // OHWI and [out, in]: each channel is one contiguous row.
        _ => quantize_weights(&lw.kernel, channels, |i| i / per_channel),
    };
    Ok(QuantizedWeights { values, scales, bias: lw.bias.clone() })
}
