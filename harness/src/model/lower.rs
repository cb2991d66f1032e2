//! Lowering: a graph with float weights becomes a model blob the kernel
//! crate's executor runs, with every activation placed in the arena by the
//! memory planner.

mod bits;
mod int16;

use super::elementwise::requantize_table;
use super::fusion;
use super::graph::{BinaryConstant, Graph, Layer, LayerOp, Precision};
use super::host::HostModel;
use super::views;
use kernels::binary;
use kernels::broadcast::{Binary, Int8Binary, MulParams};
use kernels::geometry::{Activation, ConvGeometry, Window};
use kernels::int8::{AddParams, Clamp, MeanParams, SoftmaxParams};
use kernels::model::{Act, Blob, DType, GraphHeader, ModelWriter, Op, Stage, TensorDesc, Weights};
use kernels::planner::{self, Buffer};
use kernels::quant::{
    activation_range_i8, conv_output_multiplier, fully_connected_output_multiplier, Requant,
    Rounding,
};
use kernels::sparse::blocks::Blocks;
use kernels::sparse::{windows, Csr};

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
    /// A layer asks for a format this lowering cannot give it.
    #[error("failed to lower layer '{layer}': {why}")]
    Unsupported {
        /// The layer.
        layer: String,
        /// Why not.
        why: &'static str,
    },
}

/// How an int8 model quantizes its weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8Options {
    /// One weight scale per output channel (TFLite's default for conv), or one per tensor.
    pub per_channel: bool,
    /// Layers whose weights are at least this sparse use the sparse kernels
    /// (`None`: always dense).
    pub sparse_from: Option<f32>,
    /// How tensors share the arena.
    pub placement: Placement,
}

impl Default for Int8Options {
    fn default() -> Self {
        Self {
            per_channel: true,
            sparse_from: None,
            placement: Placement::Planned,
        }
    }
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
    /// Bytes of activations alive while each graph layer runs (its inputs,
    /// its output, and whatever a later layer still reads), by layer: the
    /// memory timeline, whose largest value the arena cannot go below.
    pub live_bytes: Vec<usize>,
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
    /// As `Planned`, and a convolution whose output can overwrite its input
    /// band by band shares its input's buffer (`kernels::model::in_place`).
    InPlace,
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
    /// Live bytes while each layer runs.
    live_bytes: Vec<usize>,
    /// Runs of layers executed as row-fused segments.
    segments: Vec<fusion::Segment>,
}

impl Placed {
    /// The marker of the row-fused segment starting at layer `step`, if one does.
    fn segment_marker(&self, step: usize) -> Option<Op> {
        let s = self.segments.iter().find(|s| s.first == step)?;
        Some(Op::Fused {
            layers: (s.last - s.first + 1) as u32,
            band: s.band,
        })
    }

    /// Serializes the operators written to `w` into a lowered model.
    fn finish(self, graph: &Graph, w: ModelWriter, quant: Vec<(f32, i32)>) -> Lowered {
        let (input, output) = (self.tensors[graph.input], self.tensors[graph.output]);
        let header = GraphHeader {
            arena_bytes: self.arena_bytes as u32,
            op_count: 0,
            exit_heads: graph.exits.len() as u8,
            input,
            output,
        };
        Lowered {
            blob: w.finish(header),
            arena_bytes: self.arena_bytes,
            activation_bytes: self.activation_bytes,
            live_bytes: self.live_bytes,
            tensors: self.tensors,
            quant,
        }
    }
}

/// The element type of each tensor of a model computing in `dtype` (F32
/// or I8): sign layers write packed bits, and an int8 model keeps float
/// tensors on the far side of its quantize and dequantize layers, and
/// uint8 ones on the far side of its requantizations (and of the slices
/// and inserts that pack several uint8 inputs or outputs into one).
fn dtypes(graph: &Graph, dtype: DType) -> Vec<DType> {
    let mut types = vec![dtype; graph.tensors.len()];
    if dtype == DType::I8 {
        for &t in &graph.int16 {
            types[t] = DType::I16;
        }
        for &t in &graph.float32 {
            types[t] = DType::F32;
        }
    }
    for &t in &graph.int32 {
        types[t] = DType::I32;
    }
    for layer in &graph.layers {
        match layer.op {
            LayerOp::Sign => types[layer.output] = DType::Bits,
            // A max pool of packed signs ([`bits::in_bits`]).
            LayerOp::MaxPool { .. } if types[layer.inputs[0]] == DType::Bits => {
                types[layer.output] = DType::Bits
            }
            // A binary layer reads packed signs (and may write them, fused with a Sign).
            _ if layer.precision == Precision::Binary => types[layer.inputs[0]] = DType::Bits,
            LayerOp::Quantize if dtype == DType::I8 => types[layer.inputs[0]] = DType::F32,
            LayerOp::Dequantize if dtype == DType::I8 => types[layer.output] = DType::F32,
            LayerOp::Requantize {
                input_uint8,
                output_uint8,
            } if dtype == DType::I8 => {
                if input_uint8 {
                    types[layer.inputs[0]] = DType::U8;
                }
                if output_uint8 {
                    types[layer.output] = DType::U8;
                }
            }
            _ => {}
        }
    }
    // A max pool of packed signs reads signs, which a fused binary layer may write.
    for layer in graph.layers.iter().rev() {
        if matches!(layer.op, LayerOp::MaxPool { .. }) && types[layer.output] == DType::Bits {
            types[layer.inputs[0]] = DType::Bits;
        }
    }
    // A slice moves elements of one type: the uint8 or float its reader
    // takes (a uint8 requantization, a quantization; a patch's window of a
    // model's input) is its input's too.
    for layer in &graph.layers {
        match layer.op {
            LayerOp::Slice { .. } if matches!(types[layer.output], DType::U8 | DType::F32) => {
                types[layer.inputs[0]] = types[layer.output]
            }
            LayerOp::Insert { .. } if types[layer.inputs[0]] == DType::U8 => {
                types[layer.output] = DType::U8
            }
            _ => {}
        }
    }
    types
}

/// Arena placement of every tensor of `graph` in a model computing in `dtype` (F32 or I8).
fn place(graph: &Graph, dtype: DType, placement: Placement) -> Placed {
    let types = dtypes(graph, dtype);
    let desc = |t: usize| TensorDesc {
        dtype: types[t],
        shape: graph.tensors[t].shape,
        offset: 0,
    };
    let size = |t: usize| {
        desc(t)
            .byte_len()
            .unwrap_or(0)
            .next_multiple_of(ARENA_ALIGN)
    };
    let mut buffers: Vec<Buffer> = (0..graph.tensors.len())
        .map(|t| Buffer {
            size: size(t),
            first: usize::MAX,
            last: 0,
        })
        .collect();
    buffers[graph.input].first = 0;
    for (step, layer) in graph.layers.iter().enumerate() {
        for &t in layer.inputs.iter().chain(std::iter::once(&layer.output)) {
            buffers[t].first = buffers[t].first.min(step);
            buffers[t].last = buffers[t].last.max(step);
        }
    }
    buffers[graph.output].last = graph.layers.len();
    // A binary operator's constant operand is read from the blob's constants.
    for layer in &graph.layers {
        if let LayerOp::Binary {
            constant_b: Some(_),
            ..
        }
        | LayerOp::BatchMatMul {
            constant_b: Some(_),
            ..
        } = layer.op
        {
            buffers[layer.inputs[1]].size = 0;
        }
    }
    for b in &mut buffers {
        // A tensor no layer touches (a float output a fused binary layer
        // never makes) takes no space.
        if b.first == usize::MAX {
            b.size = 0;
        }
        b.first = b.first.min(b.last);
        if placement == Placement::Unshared {
            (b.first, b.last) = (0, graph.layers.len());
        }
    }
    let plan_with = |placement: Placement, segments: Vec<fusion::Segment>| {
        let mut buffers = buffers.clone();
        fusion::resize_buffers(graph, &segments, &mut buffers, ARENA_ALIGN);
        let homes = views::plan(graph, &types, &mut buffers, placement, &segments);
        let overlaps = fusion::overlaps(graph, &segments, &homes, &buffers);
        let plan = planner::plan_overlapping(&buffers, ARENA_ALIGN, &overlaps);
        (homes, plan, buffers, segments)
    };
    let (homes, plan, buffers, segments) = match placement {
        // Sharing a buffer lengthens its life, and the planner's heuristics
        // are not monotonic; running in place or by bands costs a little
        // time: each only where it lowers the peak.
        Placement::InPlace => {
            let shared = plan_with(Placement::InPlace, Vec::new());
            let planned = plan_with(Placement::Planned, Vec::new());
            let live = fusion::live_bytes(&shared.2, graph.layers.len(), None);
            let fused = [(false, false), (true, false), (true, true)].map(|kind| {
                let segments = fusion::choose(graph, &types, &planned.2, &live, kind);
                let plan = |segments| plan_with(Placement::InPlace, segments);
                (!segments.is_empty())
                    .then(|| fusion::widen_bands(graph, &types, segments, plan, |p| p.1.peak))
            });
            let unfused = if shared.1.peak < planned.1.peak {
                shared
            } else {
                planned
            };
            fused.into_iter().flatten().fold(
                unfused,
                |best, f| if f.1.peak < best.1.peak { f } else { best },
            )
        }
        other => plan_with(other, Vec::new()),
    };
    let overlaps = fusion::overlaps(graph, &segments, &homes, &buffers);
    let tensors = (0..graph.tensors.len())
        .map(|t| {
            let (root, at) = homes.root(t);
            TensorDesc {
                offset: (plan.offsets[root] + at) as u32,
                ..desc(t)
            }
        })
        .collect();
    Placed {
        tensors,
        arena_bytes: plan.peak,
        activation_bytes: buffers.iter().map(|b| b.size).sum(),
        live_bytes: fusion::live_bytes(&buffers, graph.layers.len(), Some((&plan, &overlaps))),
        segments,
    }
}

/// Lowers a float graph to float32 kernels, with a planned arena.
pub fn lower_f32(graph: &Graph) -> Result<Lowered, LowerError> {
    lower_f32_placed(&bits::in_bits(graph), Placement::Planned)
}

/// Lowers a float graph to float32 kernels with the given placement.
/// Binary layers read packed signs and scale their dot products back to float.
pub fn lower_f32_placed(graph: &Graph, placement: Placement) -> Result<Lowered, LowerError> {
    let placed = place(graph, DType::F32, placement);
    let mut w = ModelWriter::new();
    for (step, layer) in graph.layers.iter().enumerate() {
        if let Some(marker) = placed.segment_marker(step) {
            w.push(marker);
        }
        let op = f32_op(&mut w, layer, &placed.tensors)?;
        w.push(op);
        push_exit(graph, layer, placed.tensors[layer.output], (1.0, 0), &mut w);
    }
    Ok(placed.finish(graph, w, Vec::new()))
}

/// The weights and output stage of a float model's conv, depthwise or dense
/// layer: float, dynamic-range int8, or binary (to float or packed signs).
fn f32_weighted(
    w: &mut ModelWriter,
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    activation: Activation,
) -> Result<(Weights, Stage), LowerError> {
    let lw = checked_weights(layer, input, output)?;
    let (min, max) = activation.range_f32();
    let hybrid = layer.int8.as_ref().filter(|q| q.dynamic_range);
    match layer.precision {
        // Dynamic-range weights run as TFLite runs them (dense layers only).
        Precision::Full if hybrid.is_some() => {
            let q = hybrid.expect("checked");
            Ok((
                Weights::Int8 {
                    filter: w.constant(&q.values),
                    bias: None,
                },
                Stage::HybridF32 {
                    filter_scale: q.scales[0],
                    bias: Some(w.constant(&lw.bias)),
                    min,
                    max,
                },
            ))
        }
        // int4 is how an int8 model stores weights; its float reference is the float layer.
        Precision::Full | Precision::Int4 => Ok((
            Weights::F32 {
                filter: w.constant(&lw.kernel),
                bias: Some(w.constant(&lw.bias)),
            },
            Stage::F32 { min, max },
        )),
        Precision::Binary if output.dtype == DType::Bits => {
            let (filter, thresholds) = binary_to_bits(layer, lw, input)?;
            Ok((
                Weights::Binary {
                    filter: w.constant(&filter),
                    padding: layer.binary_padding,
                },
                Stage::BinaryToBits {
                    thresholds: w.constant(&thresholds),
                },
            ))
        }
        Precision::Binary => {
            let (filter, alpha) = binary_weights(layer, lw, input)?;
            let (multiplier, bias) = (w.constant(&alpha), w.constant(&lw.bias));
            Ok((
                Weights::Binary {
                    filter: w.constant(&filter),
                    padding: layer.binary_padding,
                },
                Stage::BinaryToF32 {
                    multiplier,
                    bias,
                    min,
                    max,
                },
            ))
        }
    }
}

/// The float32 operator of `layer`, its tensors placed as `desc` says.
fn f32_op(w: &mut ModelWriter, layer: &Layer, desc: &[TensorDesc]) -> Result<Op, LowerError> {
    let (input, output) = (desc[layer.inputs[0]], desc[layer.output]);
    let op = match layer.op {
        LayerOp::Conv2d { activation, .. }
        | LayerOp::DepthwiseConv2d { activation, .. }
        | LayerOp::Dense { activation, .. } => {
            let (weights, stage) = f32_weighted(w, layer, input, output, activation)?;
            weighted_op(layer, input, output, weights, stage)
        }
        LayerOp::AvgPool { .. } | LayerOp::MaxPool { .. } => pool_op(layer, input, output, |a| {
            let (min, max) = a.range_f32();
            Act::F32 { min, max }
        }),
        LayerOp::Add { activation } => {
            let (min, max) = activation.range_f32();
            Op::Add {
                a: input,
                b: desc[layer.inputs[1]],
                output,
                int8: None,
                act: Act::F32 { min, max },
            }
        }
        // In a float model, quantize and dequantize leave float values as they are.
        LayerOp::Flatten
        | LayerOp::Reshape
        | LayerOp::Quantize
        | LayerOp::Dequantize
        | LayerOp::Requantize { .. } => Op::Reshape { input, output },
        LayerOp::Softmax { beta } => Op::Softmax {
            input,
            output,
            int8: None,
            beta,
        },
        LayerOp::Sign => Op::PackBits {
            input,
            output,
            zero_point: 0,
        },
        LayerOp::Pad { .. }
        | LayerOp::Transpose { .. }
        | LayerOp::Slice { .. }
        | LayerOp::Insert { .. }
        | LayerOp::Mean { .. } => layout_op(layer, input, output, None),
        LayerOp::Remap { ref maps, view } => remap_op(w, maps, input, output, view),
        LayerOp::ResizeBilinear { mode } => Op::ResizeBilinear {
            input,
            output,
            mode,
        },
        LayerOp::Binary {
            op,
            activation,
            a_view,
            b_view,
            ref constant_b,
        } => Op::Binary {
            a: input,
            b: desc[layer.inputs[1]],
            b_const: constant_b.as_ref().map(|c| w.constant(&c.values)),
            swapped: constant_b.as_ref().is_some_and(|c| c.first),
            output,
            a_view,
            b_view,
            op,
            int8: None,
            act: activation.range_f32(),
        },
        LayerOp::BatchMatMul {
            adj,
            a_view,
            b_view,
            out_view,
            ref constant_b,
        } => Op::BatchMatMul {
            a: TensorDesc {
                shape: a_view,
                ..input
            },
            b: TensorDesc {
                shape: b_view,
                ..desc[layer.inputs[1]]
            },
            b_const: constant_b.as_ref().map(|c| w.constant(&c.values)),
            output: TensorDesc {
                shape: out_view,
                ..output
            },
            adj,
            int8: None,
        },
        LayerOp::Activation { f } => Op::Activation {
            input,
            output,
            act: f.float(),
        },
        LayerOp::Gather { .. } => gather_op(w, layer, input, output),
        LayerOp::Lstm { .. } => {
            return Err(LowerError::Unsupported {
                layer: layer.name.clone(),
                why: "UNIDIRECTIONAL_SEQUENCE_LSTM runs in int8 only (TFLite's integer LSTM)",
            })
        }
        LayerOp::Svdf { .. } => {
            return Err(LowerError::Unsupported {
                layer: layer.name.clone(),
                why: "SVDF runs in int8 only (TFLite's integer SVDF)",
            })
        }
        LayerOp::LogSoftmax => Op::LogSoftmax {
            input,
            output,
            int8: None,
        },
    };
    Ok(op)
}

/// The sliding window of a conv or depthwise layer over `input`.
pub(crate) fn layer_window(layer: &Layer, input: TensorDesc) -> Option<Window> {
    let convolution = matches!(
        layer.op,
        LayerOp::Conv2d { .. } | LayerOp::DepthwiseConv2d { .. }
    );
    let (window, _) = layer.op.window((input.shape.h, input.shape.w))?;
    convolution.then_some(window)
}

/// The conv, depthwise or dense operator of `layer` with its weights and output stage.
fn weighted_op(
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    weights: Weights,
    stage: Stage,
) -> Op {
    let window = layer_window(layer, input);
    match layer.op {
        LayerOp::Conv2d { .. } => Op::Conv2d {
            input,
            output,
            window: window.expect("a convolution has a window"),
            weights,
            stage,
        },
        LayerOp::DepthwiseConv2d { multiplier, .. } => Op::DepthwiseConv2d {
            input,
            output,
            window: window.expect("a convolution has a window"),
            depth_multiplier: multiplier,
            weights,
            stage,
        },
        _ => Op::FullyConnected {
            input,
            output,
            weights,
            stage,
        },
    }
}

/// The average or max pool operator of `layer`, whose fused activation
/// `clamp` turns into the clamp in the tensors' own type.
fn pool_op(
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    clamp: impl Fn(Activation) -> Act,
) -> Op {
    let (LayerOp::AvgPool {
        kernel,
        stride,
        padding,
        activation,
        ..
    }
    | LayerOp::MaxPool {
        kernel,
        stride,
        padding,
        activation,
    }) = layer.op
    else {
        unreachable!("not a pool")
    };
    let window = Window::new(
        kernel,
        stride,
        (1, 1),
        padding,
        (input.shape.h, input.shape.w),
    )
    .0;
    let act = clamp(activation);
    match layer.op {
        LayerOp::MaxPool { .. } => Op::MaxPool {
            input,
            output,
            window,
            act,
        },
        LayerOp::AvgPool { rounding, .. } => Op::AvgPool {
            input,
            output,
            window,
            act,
            rounding,
        },
        _ => unreachable!("not a pool"),
    }
}

/// Emits the exit test right after the layer that computes a head's logits.
fn push_exit(
    graph: &Graph,
    layer: &Layer,
    logits: TensorDesc,
    (scale, zero_point): (f32, i32),
    w: &mut ModelWriter,
) {
    if let Some(head) = graph.exits.iter().position(|e| e.logits == layer.output) {
        w.push(Op::ExitHead {
            head: head as u8,
            logits,
            measure: graph.exits[head].measure,
            scale,
            zero_point,
        });
    }
}

/// The layer's float weights, checked against its shapes.
fn checked_weights(
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
) -> Result<&super::LayerWeights, LowerError> {
    let lw = layer
        .weights
        .as_ref()
        .ok_or_else(|| LowerError::MissingWeights {
            layer: layer.name.clone(),
        })?;
    let (expected, _) = layer.parameter_counts(input.shape, output.shape);
    if lw.kernel.len() != expected {
        return Err(LowerError::WeightLength {
            layer: layer.name.clone(),
            expected,
            found: lw.kernel.len(),
        });
    }
    Ok(lw)
}

/// Packed sign bits of a binary layer's weights, and each output channel's
/// scale `mean |w|` (XNOR-Net), so that `dot * scale` tracks the float layer.
fn binary_weights(
    layer: &Layer,
    lw: &super::LayerWeights,
    input: TensorDesc,
) -> Result<(Vec<u32>, Vec<f32>), LowerError> {
    // Conv filters are packed per tap over input channels; dense rows over all features.
    let channels = match layer.op {
        LayerOp::Conv2d { .. } => input.shape.c as usize,
        _ => input.shape.features(),
    };
    let mut packed = vec![0u32; lw.kernel.len() / channels * binary::words(channels)];
    binary::pack_f32(&lw.kernel, channels, &mut packed).map_err(|_| LowerError::Unsupported {
        layer: layer.name.clone(),
        why: "weights do not pack",
    })?;
    let row = lw.kernel.len() / lw.bias.len().max(1);
    let alpha = lw
        .kernel
        .chunks_exact(row)
        .map(|r| r.iter().map(|v| v.abs()).sum::<f32>() / row as f32)
        .collect();
    Ok((packed, alpha))
}

/// A binary layer that writes packed signs: its filter, with the rows of
/// negative scale negated, and per output channel the threshold below
/// which a dot product is negative, as `dot * alpha + bias < 0` decides it
/// in float ([`binary::fold_threshold`]).
fn binary_to_bits(
    layer: &Layer,
    lw: &super::LayerWeights,
    input: TensorDesc,
) -> Result<(Vec<u32>, Vec<i32>), LowerError> {
    let (mut filter, alpha) = binary_weights(layer, lw, input)?;
    let taps = match layer.op {
        LayerOp::Conv2d { kernel, .. } => kernel.0 * kernel.1 * input.shape.c,
        _ => input.shape.features() as u32,
    } as i32;
    let row = filter.len() / alpha.len().max(1);
    let mut thresholds = Vec::with_capacity(alpha.len());
    for (c, (&a, &b)) in alpha.iter().zip(&lw.bias).enumerate() {
        // binary_weights keeps the weights' signs and takes alpha >= 0.
        let (threshold, negate) = binary::fold_threshold(a, b, taps);
        if negate {
            filter[c * row..(c + 1) * row]
                .iter_mut()
                .for_each(|w| *w = !*w);
        }
        thresholds.push(threshold);
    }
    Ok((filter, thresholds))
}

/// The `(min, max)` each tensor takes over the calibration samples, by
/// running the float model with every tensor kept in the arena.
pub fn calibrate(graph: &Graph, samples: &[Vec<f32>]) -> Result<Vec<(f32, f32)>, LowerError> {
    let lowered = lower_f32_placed(graph, Placement::Unshared)?;
    let mut host = HostModel::new(lowered.blob.as_bytes()).map_err(LowerError::Calibration)?;
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); graph.tensors.len()];
    for sample in samples {
        host.run(bytemuck::cast_slice(sample), &[])
            .map_err(LowerError::Calibration)?;
        for (range, t) in ranges
            .iter_mut()
            .zip(&lowered.tensors)
            .filter(|(_, t)| t.dtype == DType::F32)
        {
            for &v in bytemuck::cast_slice::<u8, f32>(host.tensor(t)) {
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

/// Symmetric weights in `-qmax..=qmax`, one scale per output channel
/// (or one for all): `(values, scale per channel)`. `channel_of(i)` is the
/// output channel of weight `i`.
fn quantize_weights(
    kernel: &[f32],
    channels: usize,
    qmax: f32,
    per_channel: bool,
    channel_of: impl Fn(usize) -> usize,
) -> (Vec<i8>, Vec<f32>) {
    let mut max_abs = vec![0f32; channels];
    for (i, &w) in kernel.iter().enumerate() {
        max_abs[channel_of(i)] = max_abs[channel_of(i)].max(w.abs());
    }
    if !per_channel {
        let all = max_abs.iter().fold(0f32, |a, &b| a.max(b));
        max_abs.fill(all);
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / qmax } else { 1.0 })
        .collect();
    let values = kernel
        .iter()
        .enumerate()
        .map(|(i, &w)| (w / scales[channel_of(i)]).round().clamp(-qmax, qmax) as i8)
        .collect();
    (values, scales)
}

/// Lowers a float graph to int8 kernels by post-training quantization with
/// the given per-tensor ranges (from [`calibrate`]): activations asymmetric
/// per tensor, weights symmetric per output channel (or per tensor), biases
/// int32. Int4 layers pack their weights two per byte; binary layers read
/// packed signs and write int8, or packed signs where only binary layers
/// read their signs; sparse enough layers use the sparse kernels. Float
/// tensors an imported model keeps ([`Graph::float32`]) run in float.
///
/// Quantization an imported model fixes is kept exactly: tensors with a
/// fixed `quant` ignore their range, and full-precision layers with exact
/// int8 parameters are lowered as they are.
pub fn lower_int8(
    graph: &Graph,
    ranges: &[(f32, f32)],
    options: Int8Options,
) -> Result<Lowered, LowerError> {
    let graph = &*bits::in_bits(graph);
    let placed = place(graph, DType::I8, options.placement);
    let quant = tensor_quants(graph, ranges);
    let desc = |t: usize| placed.tensors[t];
    let mut w = ModelWriter::new();
    for (step, layer) in graph.layers.iter().enumerate() {
        if let Some(marker) = placed.segment_marker(step) {
            w.push(marker);
        }
        let (input, output) = (desc(layer.inputs[0]), desc(layer.output));
        let q = LayerQuant {
            input: quant[layer.inputs[0]],
            output: quant[layer.output],
        };
        let (s_out, zp_out) = q.output;
        if runs_in_float(layer, input, output) {
            let op = f32_op(&mut w, layer, &placed.tensors)?;
            w.push(op);
            push_exit(graph, layer, output, (1.0, 0), &mut w);
            continue;
        }
        if [input, output].iter().any(|t| t.dtype == DType::I16) {
            let b = layer.inputs.get(1).map(|&t| (desc(t), quant[t]));
            let op = int16::op(&mut w, layer, (input, output), b, q)?;
            w.push(op);
            continue;
        }
        let op = match layer.op {
            LayerOp::Conv2d { activation, .. }
            | LayerOp::DepthwiseConv2d { activation, .. }
            | LayerOp::Dense { activation, .. } => {
                let (min, max) = activation_range_i8(activation, s_out, zp_out);
                let clamp = Clamp { min, max };
                let (weights, stage) = if layer.precision == Precision::Binary {
                    binary_weighted(&mut w, layer, input, output, q, clamp)?
                } else {
                    int8_weighted(&mut w, layer, input, output, q, clamp, options)?
                };
                weighted_op(layer, input, output, weights, stage)
            }
            LayerOp::Add { activation } => {
                let b = layer.inputs[1];
                let act = activation_range_i8(activation, s_out, zp_out);
                let params = AddParams::new(q.input, quant[b], q.output, act);
                let clamp = Clamp {
                    min: act.0,
                    max: act.1,
                };
                Op::Add {
                    a: input,
                    b: desc(b),
                    output,
                    int8: Some(params),
                    act: Act::I8(clamp),
                }
            }
            LayerOp::Activation { f } => Op::Lookup {
                input,
                output,
                table: w.constant(&f.int8_table(q.input, q.output)),
            },
            LayerOp::Svdf {
                params,
                ref feature,
                ref time,
                ref bias,
            } => Op::Svdf {
                input,
                output,
                scratch: desc(layer.inputs[1]),
                params,
                feature: w.constant(feature),
                time: w.constant(time),
                bias: bias.as_ref().map(|b| w.constant(b)),
            },
            LayerOp::Lstm { ref block } => Op::Lstm {
                input,
                output,
                scratch: desc(layer.inputs[1]),
                params: w.constant(block),
            },
            LayerOp::Requantize {
                input_uint8,
                output_uint8,
            } => Op::Lookup {
                input,
                output,
                table: w.constant(&requantize_table(
                    q.input,
                    q.output,
                    input_uint8,
                    output_uint8,
                )),
            },
            LayerOp::Binary {
                op,
                activation,
                a_view,
                b_view,
                ref constant_b,
            } => {
                let b = layer.inputs[1];
                let act = activation_range_i8(activation, s_out, zp_out);
                let swapped = constant_b.as_ref().is_some_and(|c| c.first);
                // TFLite's first operand gets the first operand's parameters.
                let operands = match swapped {
                    false => (q.input, quant[b]),
                    true => (quant[b], q.input),
                };
                let int8 = binary_int8(layer, op, (operands.0, operands.1, q.output), act)?;
                let b_const = int8_constant(&mut w, constant_b.as_ref(), quant[b]);
                Op::Binary {
                    a: input,
                    b: desc(b),
                    b_const,
                    swapped,
                    output,
                    a_view,
                    b_view,
                    op,
                    int8: Some(int8),
                    act: (f32::NEG_INFINITY, f32::INFINITY),
                }
            }
            LayerOp::Remap { ref maps, view } => remap_op(&mut w, maps, input, output, view),
            LayerOp::BatchMatMul { .. } => {
                let b = layer.inputs[1];
                batch_matmul_int8(&mut w, layer, (input, desc(b), output), (q, quant[b]))?
            }
            LayerOp::ResizeBilinear { mode } => Op::ResizeBilinear {
                input,
                output,
                mode,
            },
            // A calibrated concatenation would mix scales; an imported one
            // (or the packing of several model outputs) is a copy of bytes.
            LayerOp::Insert { .. }
                if q.input != q.output && graph.tensors[layer.output].quant.is_none() =>
            {
                return Err(LowerError::Unsupported {
                    layer: layer.name.clone(),
                    why: "an int8 concatenation or pack copies bytes: its inputs and output must be quantized alike",
                })
            }
            LayerOp::Gather { .. } => gather_op(&mut w, layer, input, output),
            _ => unweighted_int8_op(layer, input, output, q),
        };
        w.push(op);
        push_exit(graph, layer, output, q.output, &mut w);
    }
    Ok(placed.finish(graph, w, quant))
}

/// Every tensor's int8 `(scale, zero point)`: fixed by an imported model, or
/// from its calibrated range; TFLite's constraints applied (pools and
/// reshapes keep their input's quantization; int8 softmax outputs 1/256
/// with zero point -128).
fn tensor_quants(graph: &Graph, ranges: &[(f32, f32)]) -> Vec<(f32, i32)> {
    let range = |t: usize| ranges.get(t).copied().unwrap_or((0.0, 0.0));
    let mut quant: Vec<(f32, i32)> = graph
        .tensors
        .iter()
        .enumerate()
        .map(|(t, tensor)| tensor.quant.unwrap_or_else(|| activation_quant(range(t))))
        .collect();
    // The parts of a concatenation bench quantizes share its output's
    // parameters (its calibrated range holds theirs), as TFLite's converter
    // makes them: the parts are then copied as bytes.
    for layer in &graph.layers {
        if let (LayerOp::Insert { .. }, [part]) = (&layer.op, &layer.inputs[..]) {
            if graph.tensors[*part].quant.is_none() && graph.tensors[layer.output].quant.is_none() {
                quant[*part] = quant[layer.output];
            }
        }
    }
    // A float model's constant operand, quantized by bench: its own range.
    for layer in &graph.layers {
        let constant = match &layer.op {
            LayerOp::Binary { constant_b, .. } | LayerOp::BatchMatMul { constant_b, .. } => {
                constant_b.as_ref()
            }
            _ => None,
        };
        if let (Some(c), Some(&t)) = (constant, layer.inputs.get(1)) {
            if graph.tensors[t].quant.is_none() {
                let (lo, hi) = c
                    .values
                    .iter()
                    .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                quant[t] = activation_quant((lo, hi));
            }
        }
    }
    for layer in graph
        .layers
        .iter()
        .filter(|l| graph.tensors[l.output].quant.is_none())
    {
        match layer.op {
            LayerOp::AvgPool { .. }
            | LayerOp::MaxPool { .. }
            | LayerOp::Flatten
            | LayerOp::Reshape
            | LayerOp::Pad { .. }
            | LayerOp::Transpose { .. }
            | LayerOp::Slice { .. }
            | LayerOp::Insert { .. }
            | LayerOp::Remap { .. }
            | LayerOp::ResizeBilinear { .. }
            | LayerOp::Binary {
                op: Binary::Maximum | Binary::Minimum,
                ..
            } => quant[layer.output] = quant[layer.inputs[0]],
            LayerOp::Softmax { .. } => quant[layer.output] = (1.0 / 256.0, -128),
            LayerOp::LogSoftmax => quant[layer.output] = (16.0 / 256.0, 127),
            LayerOp::Activation { f } => {
                if let Some(fixed) = f.fixed_output_quant() {
                    quant[layer.output] = fixed;
                }
            }
            _ => {}
        }
    }
    quant
}

/// GATHER by run-time indices: the table goes to the constants, typed as
/// the output is.
fn gather_op(w: &mut ModelWriter, layer: &Layer, indices: TensorDesc, output: TensorDesc) -> Op {
    let LayerOp::Gather {
        ref table,
        outer,
        extent,
        inner_bytes,
    } = layer.op
    else {
        unreachable!("gather_op lowers GATHER layers only")
    };
    Op::Gather {
        indices,
        table: w.constant(table),
        output,
        outer,
        extent,
        inner_bytes,
    }
}

/// Whether a layer of an int8 model runs in float: it reads or writes a
/// float32 tensor (an imported model's float island), QUANTIZE and
/// DEQUANTIZE excepted, which cross between the two. (Layers from packed
/// signs to packed signs are lowered as in a float model too: a binary
/// layer's threshold compares its float transform with 0.)
fn runs_in_float(layer: &Layer, input: TensorDesc, output: TensorDesc) -> bool {
    let float = [input, output].iter().any(|t| t.dtype == DType::F32);
    let crosses = matches!(layer.op, LayerOp::Quantize | LayerOp::Dequantize);
    // Packed signs in and out (binary layers with thresholds, max pools of signs): no int8 side.
    let bits = input.dtype == DType::Bits && output.dtype == DType::Bits;
    (float && !crosses) || bits
}

/// A layer's input and output `(scale, zero point)`.
#[derive(Clone, Copy)]
struct LayerQuant {
    input: (f32, i32),
    output: (f32, i32),
}

/// The int8 op of a layer without weights.
fn unweighted_int8_op(layer: &Layer, input: TensorDesc, output: TensorDesc, q: LayerQuant) -> Op {
    let ((s_in, zp_in), (s_out, zp_out)) = (q.input, q.output);
    match layer.op {
        LayerOp::AvgPool { .. } | LayerOp::MaxPool { .. } => pool_op(layer, input, output, |a| {
            let (min, max) = activation_range_i8(a, s_out, zp_out);
            Act::I8(Clamp { min, max })
        }),
        LayerOp::Flatten | LayerOp::Reshape => Op::Reshape { input, output },
        LayerOp::Softmax { beta } => Op::Softmax {
            input,
            output,
            int8: Some(SoftmaxParams::new(beta, s_in)),
            beta,
        },
        LayerOp::LogSoftmax => Op::LogSoftmax {
            input,
            output,
            int8: Some(kernels::int8::LogSoftmaxParams::new(s_in)),
        },
        LayerOp::Sign => Op::PackBits {
            input,
            output,
            zero_point: zp_in,
        },
        LayerOp::Quantize => Op::Quantize {
            input,
            output,
            scale: s_out,
            zero_point: zp_out,
        },
        LayerOp::Dequantize => Op::Dequantize {
            input,
            output,
            scale: s_in,
            zero_point: zp_in,
        },
        LayerOp::Pad { .. }
        | LayerOp::Transpose { .. }
        | LayerOp::Slice { .. }
        | LayerOp::Insert { .. }
        | LayerOp::Mean { .. } => layout_op(layer, input, output, Some(q)),
        LayerOp::Conv2d { .. }
        | LayerOp::DepthwiseConv2d { .. }
        | LayerOp::Dense { .. }
        | LayerOp::Add { .. }
        | LayerOp::Remap { .. }
        | LayerOp::Binary { .. }
        | LayerOp::BatchMatMul { .. }
        | LayerOp::Activation { .. }
        | LayerOp::Requantize { .. }
        | LayerOp::ResizeBilinear { .. }
        | LayerOp::Lstm { .. }
        | LayerOp::Gather { .. }
        | LayerOp::Svdf { .. } => {
            unreachable!("lower_int8 lowers weighted layers, additions and tables itself")
        }
    }
}

/// The int8 arithmetic of a binary operator from its operands' and
/// output's quantization. MAXIMUM and MINIMUM compare raw values, as
/// TFLite does, which is only the real maximum when the quantizations agree.
fn binary_int8(
    layer: &Layer,
    op: Binary,
    (a, b, out): ((f32, i32), (f32, i32), (f32, i32)),
    act: (i32, i32),
) -> Result<Int8Binary, LowerError> {
    Ok(match op {
        Binary::Add | Binary::Sub => Int8Binary::Add(AddParams::new(a, b, out, act)),
        Binary::Mul => Int8Binary::Mul(MulParams::new(a, b, out, act)),
        Binary::SquaredDifference => Int8Binary::SquaredDifference(
            kernels::broadcast::SquaredDifferenceParams::new(a, b, out),
        ),
        Binary::Maximum | Binary::Minimum if a == b && b == out => Int8Binary::Raw,
        Binary::Maximum | Binary::Minimum => {
            return Err(LowerError::Unsupported {
                layer: layer.name.clone(),
                why: "int8 MAXIMUM and MINIMUM need their operands and output quantized alike",
            })
        }
    })
}

/// An int8 BATCH_MATMUL: both operands' zero points, one multiplier (the
/// scales multiplied in single precision, as TFLite's prepare does).
fn batch_matmul_int8(
    w: &mut ModelWriter,
    layer: &Layer,
    (a, b, output): (TensorDesc, TensorDesc, TensorDesc),
    (q, (s_b, zp_b)): (LayerQuant, (f32, i32)),
) -> Result<Op, LowerError> {
    let LayerOp::BatchMatMul {
        adj,
        a_view,
        b_view,
        out_view,
        ref constant_b,
    } = layer.op
    else {
        unreachable!("batch_matmul_int8 lowers BATCH_MATMUL")
    };
    let b_const = int8_constant(w, constant_b.as_ref(), (s_b, zp_b));
    let ((s_a, zp_a), (s_out, zp_out)) = (q.input, q.output);
    let view = |t: TensorDesc, shape| TensorDesc { shape, ..t };
    Ok(Op::BatchMatMul {
        a: view(a, a_view),
        b: view(b, b_view),
        b_const,
        output: view(output, out_view),
        adj,
        int8: Some(kernels::matmul::MatMulInt8 {
            a_offset: -zp_a,
            b_offset: -zp_b,
            output_offset: zp_out,
            requant: fully_connected_output_multiplier(s_a, s_b, s_out),
        }),
    })
}

/// A binary operator's or BATCH_MATMUL's constant operand in an int8
/// model, as a blob constant: the int8 values an imported int8 model
/// stores, or a float model's values quantized with `(scale, zero_point)`,
/// the parameters [`tensor_quants`] gave the constant from its own range.
fn int8_constant(
    w: &mut ModelWriter,
    constant: Option<&BinaryConstant>,
    (scale, zero_point): (f32, i32),
) -> Option<kernels::model::ConstRef> {
    let constant = constant?;
    Some(match &constant.int8 {
        Some(v) => w.constant(v),
        None => {
            let q: Vec<i8> = constant
                .values
                .iter()
                .map(|&v| quantize_i8(v, (scale, zero_point)))
                .collect();
            w.constant(&q)
        }
    })
}

/// `value` in int8 with `(scale, zero_point)`, saturating (a pad of -inf,
/// MaxPool's explicit padding, is -128).
fn quantize_i8(value: f32, (scale, zero_point): (f32, i32)) -> i8 {
    ((value / scale).round() as i32)
        .saturating_add(zero_point)
        .clamp(-128, 127) as i8
}

/// GATHER or RESIZE_NEAREST_NEIGHBOR: the index tables as constants.
fn remap_op(
    w: &mut ModelWriter,
    maps: &[Option<Vec<u32>>; 4],
    input: TensorDesc,
    output: TensorDesc,
    view: kernels::geometry::Shape,
) -> Op {
    Op::Remap {
        input,
        output: TensorDesc {
            shape: view,
            ..output
        },
        maps: core::array::from_fn(|k| maps[k].as_ref().map(|m| w.constant(m))),
    }
}

/// PAD, TRANSPOSE or MEAN, in float (`q` is `None`) or int8. An int8 pad
/// value is the float one quantized with the output's parameters (the zero
/// point for PAD's 0); the int8 mean folds its count into its multiplier.
fn layout_op(layer: &Layer, input: TensorDesc, output: TensorDesc, q: Option<LayerQuant>) -> Op {
    match layer.op {
        LayerOp::Pad { before, value, .. } => {
            let value = match q {
                Some(LayerQuant {
                    output: (scale, zp),
                    ..
                }) => [quantize_i8(value, (scale, zp)) as u8, 0, 0, 0],
                None => value.to_le_bytes(),
            };
            Op::Pad {
                input,
                output,
                before,
                value,
            }
        }
        LayerOp::Transpose { perm } => Op::Transpose {
            input,
            output,
            perm,
        },
        LayerOp::Insert {
            before,
            input_view,
            output_view,
        } => {
            let part = TensorDesc {
                shape: input_view,
                ..input
            };
            let whole = TensorDesc {
                shape: output_view,
                ..output
            };
            if views::in_place(&whole, before, &part) {
                return Op::Reshape {
                    input: part,
                    output: part,
                };
            }
            Op::Insert {
                input: part,
                output: whole,
                before,
            }
        }
        LayerOp::Slice {
            begin,
            stride,
            view,
        } => {
            let part = TensorDesc {
                shape: view,
                ..output
            };
            if stride == [1; 4] && views::in_place(&input, begin, &part) {
                return Op::Reshape {
                    input: part,
                    output: part,
                };
            }
            Op::Slice {
                input,
                output: part,
                begin,
                stride,
            }
        }
        LayerOp::Mean { axes } => {
            let count =
                input.shape.elements().unwrap_or(0) / output.shape.elements().unwrap_or(1).max(1);
            Op::Mean {
                input,
                output,
                axes,
                int8: q.map(|q| MeanParams::new(q.input, q.output, count as u32)),
            }
        }
        _ => unreachable!("layout_op takes PAD, TRANSPOSE and MEAN"),
    }
}

/// A binary layer in an int8 model: packed signs in, int8 out through
/// `BinaryToI8` (alpha / output scale per channel, bias in output units).
fn binary_weighted(
    w: &mut ModelWriter,
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    q: LayerQuant,
    clamp: Clamp,
) -> Result<(Weights, Stage), LowerError> {
    let (s_out, zp_out) = q.output;
    let lw = checked_weights(layer, input, output)?;
    let (filter, alpha) = binary_weights(layer, lw, input)?;
    let multiplier: Vec<f32> = alpha.iter().map(|a| a / s_out).collect();
    let bias: Vec<f32> = lw.bias.iter().map(|b| b / s_out).collect();
    let stage = Stage::BinaryToI8 {
        multiplier: w.constant(&multiplier),
        bias: w.constant(&bias),
        zero_point: zp_out,
        clamp,
    };
    Ok((
        Weights::Binary {
            filter: w.constant(&filter),
            padding: layer.binary_padding,
        },
        stage,
    ))
}

/// An int8 or int4 layer: its weights quantized (or an imported model's
/// kept exactly), the requantization TFLite derives, the weights stored
/// dense, packed or sparse.
fn int8_weighted(
    w: &mut ModelWriter,
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    q: LayerQuant,
    clamp: Clamp,
    options: Int8Options,
) -> Result<(Weights, Stage), LowerError> {
    let ((s_in, zp_in), (s_out, zp_out)) = (q.input, q.output);
    let LayerInt8 {
        values,
        scales,
        bias,
        zero_point,
    } = int8_values(layer, input, output, s_in, options)?;
    // TFLite derives a dense layer's multiplier differently when its weights have one scale.
    let one_scale = layer
        .int8
        .as_ref()
        .map_or(!options.per_channel, |q| q.scales.len() == 1);
    let multiplier = match layer.op {
        LayerOp::Dense { .. } if one_scale => fully_connected_output_multiplier,
        _ => conv_output_multiplier,
    };
    let requant: Vec<Requant> = scales
        .iter()
        .map(|&s_w| multiplier(s_in, s_w, s_out))
        .collect();
    // LiteRT's reference FULLY_CONNECTED rounds once; its convolutions twice.
    let rounding = if matches!(layer.op, LayerOp::Dense { .. }) {
        Rounding::Single
    } else {
        Rounding::Double
    };
    let stage = Stage::Int8 {
        input_offset: -zp_in,
        filter_offset: -zero_point,
        output_offset: zp_out,
        requant: w.constant(&requant),
        clamp,
        rounding,
    };
    let bias = Some(w.constant(&bias));
    // Weights with a zero point have only the dense kernels of int8::offset.
    let format = match zero_point {
        0 => int8_format(layer, (input, output), &values, scales.len(), options),
        _ => Int8Format::Dense,
    };
    let weights = match format {
        Int8Format::Int4 => {
            let k = values.len() / scales.len();
            let mut packed = vec![0u8; scales.len() * kernels::int4::row_bytes(k)];
            kernels::int4::pack(&values, k, &mut packed).map_err(|_| LowerError::Unsupported {
                layer: layer.name.clone(),
                why: "int4 weights do not pack",
            })?;
            Weights::Int4 {
                filter: w.constant(&packed),
                bias,
            }
        }
        Int8Format::Sparse { row_ptr, entries } => Weights::Sparse {
            row_ptr: w.constant(&row_ptr),
            entries: w.constant(&entries),
            bias,
        },
        Int8Format::Blocks { row_ptr, entries } => Weights::Blocks {
            row_ptr: w.constant(&row_ptr),
            entries: w.constant(&entries),
            bias,
        },
        Int8Format::Dense => Weights::Int8 {
            filter: w.constant(&values),
            bias,
        },
    };
    Ok((weights, stage))
}

/// A layer's int8 weights, their scales per output channel and its int32
/// bias: an imported model's exactly, else quantized (int4 layers to
/// -7..=7) with the bias in units of input scale x weight scale.
fn int8_values(
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    s_in: f32,
    options: Int8Options,
) -> Result<LayerInt8, LowerError> {
    let exact = layer.int8.as_ref().filter(|q| !q.dynamic_range);
    if let (Some(exact), Precision::Full) = (exact, layer.precision) {
        let channels = exact.bias.len();
        let scales = (0..channels)
            .map(|c| exact.scales[c.min(exact.scales.len() - 1)])
            .collect();
        return Ok(LayerInt8 {
            values: exact.values.clone(),
            scales,
            // An int8 model's biases are int32 (only 16x8 layers have int64 ones).
            bias: exact.bias.iter().map(|&b| b as i32).collect(),
            zero_point: exact.zero_point,
        });
    }
    let qmax = if layer.precision == Precision::Int4 {
        7.0
    } else {
        127.0
    };
    let QuantizedWeights {
        values,
        scales,
        bias,
    } = quantized_layer(layer, input, output, qmax, options.per_channel)?;
    let bias = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s_w)| {
            (b as f64 / (s_in as f64 * s_w as f64))
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect();
    Ok(LayerInt8 {
        values,
        scales,
        bias,
        zero_point: 0,
    })
}

/// A layer's int8 weights, one scale per output channel, int32 bias.
struct LayerInt8 {
    values: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<i32>,
    /// The weights' zero point (a legacy uint8 model's; else 0).
    zero_point: i32,
}

/// How an int8 model stores one layer's weights.
enum Int8Format {
    /// One byte per weight.
    Dense,
    /// Two weights per byte.
    Int4,
    /// Compressed sparse rows of `kernels::sparse` entries.
    Sparse {
        /// Start of each row, plus the end.
        row_ptr: Vec<u32>,
        /// One entry per non-zero.
        entries: Vec<u32>,
    },
    /// Blocks of four weights (`kernels::sparse::blocks`).
    Blocks {
        /// Start of each row's blocks, plus the end.
        row_ptr: Vec<u32>,
        /// Two words per block: offset, weights.
        entries: Vec<u32>,
    },
}

fn int8_format(
    layer: &Layer,
    (input, output): (TensorDesc, TensorDesc),
    values: &[i8],
    channels: usize,
    options: Int8Options,
) -> Int8Format {
    if layer.precision == Precision::Int4 {
        return Int8Format::Int4;
    }
    let columns = match layer.op {
        LayerOp::Conv2d { .. } => input.shape.c as usize,
        LayerOp::Dense { .. } => input.shape.features(),
        LayerOp::DepthwiseConv2d { multiplier, .. } => {
            return depthwise_csr_format(layer, (input, output), values, multiplier, options)
                .unwrap_or(Int8Format::Dense);
        }
        _ => return Int8Format::Dense,
    };
    // Rows the product has (output pixels, or a dense layer's batch):
    // fewer than four leave each weight one product to pay for its load.
    let one_row = output.shape.elements().unwrap_or(0) / channels.max(1) < 4;
    let counts = WeightCounts::of(values);
    let csr = || {
        csr_format(
            layer,
            (input, output),
            (values, counts),
            (channels, columns),
            one_row,
            options,
        )
    };
    match block_format((values, counts), channels, one_row, options) {
        // Blocks less than half full (unstructured pruning: 80% zeros leave
        // 59% of the blocks of four non-empty, a third full) multiply over
        // twice the CSR kernels' non-zeros: at 80% unstructured, KWS on
        // qemu-m3 took 0.46 of int8's instructions with CSR pointwise
        // layers and 0.58 with blocks; on qemu-m4 1.01x the blocks'.
        // ResNet-8's 3x3 layers that CSR takes (stack2.conv2, stack3.conv1,
        // stack3.conv2; M instructions): qemu-m3 2.19, 1.22, 2.36 against
        // blocks' 9.13, 5.14, 10.31; qemu-m4 1.76, 1.10, 1.96 against
        // 2.11, 1.04, 1.89 (dense 2.86, 1.36, 2.58), the whole model 15.38
        // against 15.56.
        Some(blocks) if !one_row && counts.block_fill() < MIN_BLOCK_FILL => csr().unwrap_or(blocks),
        Some(blocks) => blocks,
        None => csr().unwrap_or(Int8Format::Dense),
    }
}

/// A layer's weights counted once for the format rules: all of them, the
/// non-zeros, and the blocks of four (in order) that hold a non-zero.
#[derive(Clone, Copy)]
struct WeightCounts {
    len: usize,
    nonzeros: usize,
    kept_blocks: usize,
}

impl WeightCounts {
    fn of(values: &[i8]) -> Self {
        let kept_blocks = values
            .chunks_exact(4)
            .filter(|b| b.iter().any(|&w| w != 0))
            .count();
        WeightCounts {
            len: values.len(),
            nonzeros: values.iter().filter(|&&v| v != 0).count(),
            kept_blocks,
        }
    }

    /// The share of zero weights.
    fn zeros(&self) -> f32 {
        (self.len - self.nonzeros) as f32 / self.len.max(1) as f32
    }

    /// The share of the weights in non-empty blocks of four that are non-zero.
    fn block_fill(&self) -> f32 {
        self.nonzeros as f32 / (4 * self.kept_blocks).max(1) as f32
    }
}

/// The CSR form of a layer's weights where the sparse kernels beat the
/// dense ones (zeros, non-zeros per row and window; see [`int8_format`]).
fn csr_format(
    layer: &Layer,
    (input, output): (TensorDesc, TensorDesc),
    (values, counts): (&[i8], WeightCounts),
    (channels, columns): (usize, usize),
    one_row: bool,
    options: Int8Options,
) -> Option<Int8Format> {
    let zeros = counts.zeros();
    // An output channel's walk over its entries costs a few instructions
    // of its own for each group of pixels: with fewer non-zeros than this
    // per output channel the dense kernel is faster.
    let per_row = (1.0 - zeros) * (values.len() / channels.max(1)) as f32;
    let min_zeros = match one_row {
        true => MIN_SPARSE_ZEROS_ONE_ROW,
        false => MIN_SPARSE_ZEROS,
    };
    let from = options.sparse_from?;
    if zeros < from.max(min_zeros) || per_row < MIN_SPARSE_ROW || channels == 0 {
        return None;
    }
    let geometry = |window| ConvGeometry {
        input: input.shape,
        output: output.shape,
        window,
    };
    let (row_ptr, entries) = match layer_window(layer, input) {
        Some(window) if gathers_windows(&geometry(window), channels) => {
            Csr::conv_fields(values, &geometry(window))?
        }
        Some(window) => {
            let g = geometry(window);
            // The kernel walks the pixels whose windows cross the padding
            // alike in groups too (ResNet-8's 3x3 layers at 80% zeros: see
            // the blocks rule in `int8_format`), one run of entries per
            // kernel row: with under two non-zeros a kernel row, the runs'
            // own instructions outweigh them unless nearly all windows lie
            // inside the input (qemu-m4, 80% zeros: KWS's conv1, 10x4 over
            // one channel, half of its windows crossing, 1.63 M with CSR
            // against 0.60 with blocks; ResNet-8's conv1, 3x3 over three
            // channels, 12% crossing, 0.81 against 1.87 dense).
            let kernel_row = (1.0 - zeros) * (window.kernel_w * input.shape.c) as f32;
            if kernel_row < MIN_SPARSE_KERNEL_ROW && inside_share(&g) < MIN_INSIDE_SHARE {
                return None;
            }
            Csr::conv(values, &g)?
        }
        None => Csr::dense_layer(values, columns)?,
    };
    Some(Int8Format::Sparse { row_ptr, entries })
}

/// The CSR form of a depthwise layer's `[1, kh, kw, oc]` weights (see
/// `kernels::sparse::Csr::depthwise`) from [`MIN_SPARSE_ZEROS_DEPTHWISE`].
fn depthwise_csr_format(
    layer: &Layer,
    (input, output): (TensorDesc, TensorDesc),
    values: &[i8],
    multiplier: u32,
    options: Int8Options,
) -> Option<Int8Format> {
    let zeros = WeightCounts::of(values).zeros();
    if zeros < options.sparse_from?.max(MIN_SPARSE_ZEROS_DEPTHWISE) {
        return None;
    }
    let g = ConvGeometry {
        input: input.shape,
        output: output.shape,
        window: layer_window(layer, input)?,
    };
    let (row_ptr, entries) = Csr::depthwise(values, &g, multiplier)?;
    Some(Int8Format::Sparse { row_ptr, entries })
}

/// The block-sparse form of a convolution's or dense layer's weights
/// (rows of whole blocks of four) when few enough of their blocks hold a
/// non-zero; `one_row`: the product has fewer than four rows.
fn block_format(
    (values, counts): (&[i8], WeightCounts),
    channels: usize,
    one_row: bool,
    options: Int8Options,
) -> Option<Int8Format> {
    options.sparse_from?;
    // A row is an output channel's weights: a receptive field or a dense
    // layer's inputs.
    let columns = values.len() / channels.max(1);
    if !columns.is_multiple_of(4) || values.is_empty() {
        return None;
    }
    let most = match one_row {
        true => MAX_BLOCK_OCCUPANCY_ONE_ROW,
        false => MAX_BLOCK_OCCUPANCY,
    };
    if counts.kept_blocks as f32 > most * (values.len() / 4) as f32 {
        return None;
    }
    let (row_ptr, entries) = Blocks::pack(values, columns)?;
    Some(Int8Format::Blocks { row_ptr, entries })
}

/// The share of blocks of four holding a non-zero up to which the
/// block-sparse kernels are chosen for four input rows or more (pointwise
/// convolutions' pixels). Measured on qemu-m4, KWS's pointwise layers
/// take 0.50 of the dense kernels' instructions with a fifth of the
/// blocks kept, 0.72 with half and 0.79 with 59% (80% zeros unstructured,
/// where the CSR kernels take 0.90): about `0.35 + 0.73 * share`, which
/// breaks even near 0.85. The host decides again at preparation
/// (`kernels::sparse::blocks::prefers_dense`).
const MAX_BLOCK_OCCUPANCY: f32 = 0.85;

/// As [`MAX_BLOCK_OCCUPANCY`] for fewer than four input rows (a dense
/// layer of batch 1), whose blocks the DSP cores multiply one row at a
/// time: the autoencoder's 128-wide layers on qemu-m4 take 0.71 of the
/// dense instructions with a fifth of the blocks kept, 1.16 with half.
const MAX_BLOCK_OCCUPANCY_ONE_ROW: f32 = 0.35;

/// The share of non-zeros in the non-empty blocks of four below which a
/// layer that the CSR kernels can take gets them rather than blocks (see
/// [`int8_format`]); block pruning keeps whole blocks, full.
const MIN_BLOCK_FILL: f32 = 0.5;

/// Non-zeros a row of a sparse layer (an output channel's) needs on
/// average for the sparse kernels to be chosen (see [`int8_format`]).
const MIN_SPARSE_ROW: f32 = 4.0;

/// Non-zeros a kernel row of a sparse convolution needs on average, unless
/// [`MIN_INSIDE_SHARE`] of its windows lie inside the input (see
/// [`csr_format`]).
const MIN_SPARSE_KERNEL_ROW: f32 = 2.0;

/// See [`MIN_SPARSE_KERNEL_ROW`].
const MIN_INSIDE_SHARE: f32 = 0.75;

/// Whether a sparse convolution's filter takes the field form, run over
/// gathered windows (`kernels::sparse::windows`), rather than the form by
/// taps, read where the input lies: windows of more than one tap small
/// enough to gather four side by side, and either many output channels
/// to share each group's gathering ([`MIN_GATHERED_CHANNELS`]) or many
/// windows crossing the padding, which the form by taps walks in pieces.
/// Measured on qemu-m4 at 80% zeros (M instructions, by taps -> field
/// form): ResNet-8's stack3.conv2 (8x8x64, 3x3, 44% of windows crossing)
/// 1.94 -> 1.50, stack3.conv1 1.09 -> 0.80, stack2.conv2 (16x16x32) 1.75
/// -> 1.60, stack2.conv1 1.03 -> 0.92; KWS's conv1 (10x4 over one channel,
/// 64 outputs, half crossing) 0.60 -> 0.48; but stack1's (32x32x16 to 16,
/// 12% crossing) 1.83 -> 2.04 and conv1's (three channels to 16) 0.79 ->
/// 0.98, where sixteen channels share each gathering.
fn gathers_windows(g: &ConvGeometry, channels: usize) -> bool {
    let window = g.window.taps() * g.input.c as usize;
    g.window.taps() > 1
        && windows::fit_four(window)
        && (channels >= MIN_GATHERED_CHANNELS || inside_share(g) < MIN_INSIDE_SHARE)
}

/// See [`gathers_windows`].
const MIN_GATHERED_CHANNELS: usize = 32;

/// The share of a convolution's output pixels whose windows lie inside
/// the input.
fn inside_share(g: &ConvGeometry) -> f32 {
    let (rows, columns) = g.inside_windows();
    let inside = rows.len() * columns.len();
    inside as f32 / (g.output.h * g.output.w).max(1) as f32
}

/// The share of zero weights from which the sparse kernels are faster than
/// the dense ones. Measured on qemu-m4, KWS's pointwise layers (64 to 64
/// channels, 125 pixels; 797,486 instructions dense) take 1,072,419 with
/// the sparse kernels at 50% zeros, 778,562 at 70% and 631,865 at 80%:
/// they break even near 70%. Below this a pruned layer keeps the dense
/// kernels, so pruning never slows a model down.
const MIN_SPARSE_ZEROS: f32 = 0.68;

/// As [`MIN_SPARSE_ZEROS`] for depthwise layers (`kernels::sparse::depthwise`,
/// which gathers four pixels' windows, then walks each channel's
/// non-zeros in the DSP cores' channel loop). Measured on KWS's depthwise
/// layers (3x3 over 64 channels) on qemu-m4, 499,886 instructions dense:
/// 346,084 at 50% zeros (unstructured) and 345,675 at 50% by blocks of
/// four channels at one tap; 282,457 at 80% (run
/// results/dw-forms/20261207T003357Z, commit e051d33 and this rule). The
/// per-channel part is fixed, so the kernel keeps its lead below 50%; on
/// qemu-m3 it took 0.67 of the dense instructions at 50% with the older
/// kernel already.
const MIN_SPARSE_ZEROS_DEPTHWISE: f32 = 0.4;

/// As [`MIN_SPARSE_ZEROS`] for fewer than four input rows (a dense layer of
/// batch 1), where each non-zero is loaded for one product only: at 80%
/// zeros the autoencoder's 128-wide layers take 1.3x the dense kernels'
/// instructions on qemu-m4, so they break even near 85%.
const MIN_SPARSE_ZEROS_ONE_ROW: f32 = 0.85;

/// A layer's weights after symmetric quantization.
struct QuantizedWeights {
    /// Weights in the kernel's layout.
    values: Vec<i8>,
    /// Scale of each output channel.
    scales: Vec<f32>,
    /// The float bias (quantized once the input scale is known).
    bias: Vec<f32>,
}

/// A layer's quantized weights, weight scales and float bias.
fn quantized_layer(
    layer: &Layer,
    input: TensorDesc,
    output: TensorDesc,
    qmax: f32,
    per_channel: bool,
) -> Result<QuantizedWeights, LowerError> {
    let lw = checked_weights(layer, input, output)?;
    let channels = lw.bias.len();
    let per_row = lw.kernel.len() / channels.max(1);
    let (values, scales) = match layer.op {
        // [1, KH, KW, C]: the channel is the innermost index.
        LayerOp::DepthwiseConv2d { .. } => {
            quantize_weights(&lw.kernel, channels, qmax, per_channel, |i| i % channels)
        }
        // OHWI and [out, in]: each channel is one contiguous row.
        _ => quantize_weights(&lw.kernel, channels, qmax, per_channel, |i| i / per_row),
    };
    Ok(QuantizedWeights {
        values,
        scales,
        bias: lw.bias.clone(),
    })
}

/// Names of the operators of a lowered `graph`, in blob order, for
/// per-layer profiles: `(layer, kernel)`, where the decision of exit head
/// `h` is named `head<h>`, as in the exit counts. Lowering emits one
/// operator per layer plus one per exit head; should a blob not follow
/// that, operators are named by index instead.
pub fn op_labels(graph: &Graph, blob: &[u8]) -> Vec<(String, &'static str)> {
    let Ok(model) = kernels::model::Model::parse(blob) else {
        return Vec::new();
    };
    // The layers as the lowering ran them.
    let graph = &*bits::in_bits(graph);
    let ops: Vec<Op> = model.ops().collect();
    let layers = ops
        .iter()
        .filter(|op| !matches!(op, Op::ExitHead { .. } | Op::Fused { .. }))
        .count();
    if layers != graph.layers.len() {
        return ops
            .iter()
            .enumerate()
            .map(|(i, op)| (format!("op{i}"), op.name()))
            .collect();
    }
    let names: Vec<&str> = graph.layers.iter().map(|l| l.name.as_str()).collect();
    let mut next = 0;
    ops.iter()
        .map(|op| match op {
            Op::ExitHead { head, .. } => (format!("head{head}"), op.name()),
            // A segment's time is its marker's: name it by its layers.
            Op::Fused { layers, .. } => {
                let last = (next + *layers as usize).saturating_sub(1);
                let name = |i: usize| names.get(i).copied().unwrap_or_default();
                (format!("{}..{}", name(next), name(last)), op.name())
            }
            _ => {
                next += 1;
                (
                    names.get(next - 1).copied().unwrap_or_default().to_string(),
                    op.name(),
                )
            }
        })
        .collect()
}
