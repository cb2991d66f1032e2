//! The serializable description of a model: tensors, constants and operators.

use crate::binary::BinaryPadding;
use crate::exit::Confidence;
use crate::geometry::{Shape, Window};
use crate::int8::{AddParams, Clamp, MeanParams, SoftmaxParams};
use crate::quant::Rounding;
use serde::{Deserialize, Serialize};

/// Element type of an arena tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DType {
    /// Quantized int8.
    I8,
    /// Quantized uint8: only a legacy uint8 model's input and output, which
    /// a 256-entry [`Op::Lookup`] converts from and to int8.
    U8,
    /// Quantized int16 (TFLite's 16x8 scheme, zero point 0).
    I16,
    /// float32.
    F32,
    /// Packed sign bits, `words(c)` u32 words per pixel.
    Bits,
    /// int32: GATHER's indices when they are a model input.
    I32,
}

impl DType {
    /// Bytes of one element; packed bits have no whole element.
    pub fn element_bytes(self) -> Option<u32> {
        match self {
            DType::I8 | DType::U8 => Some(1),
            DType::I16 => Some(2),
            DType::F32 | DType::I32 => Some(4),
            DType::Bits => None,
        }
    }
}

/// A tensor in the arena: element type, NHWC shape and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorDesc {
    /// Element type.
    pub dtype: DType,
    /// Shape (NHWC; `[n, 1, 1, features]` for flat tensors).
    pub shape: Shape,
    /// Byte offset in the arena.
    pub offset: u32,
}

impl TensorDesc {
    /// Bytes the tensor occupies, or `None` on overflow.
    pub fn byte_len(&self) -> Option<usize> {
        match self.dtype {
            DType::I8 | DType::U8 => self.shape.elements(),
            DType::I16 => self.shape.elements()?.checked_mul(2),
            DType::F32 | DType::I32 => self.shape.elements()?.checked_mul(4),
            DType::Bits => self
                .shape
                .pixels()?
                .checked_mul(crate::binary::words(self.shape.c as usize) * 4),
        }
    }
}

/// A byte range of the constant section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstRef {
    /// Offset from the start of the constant section (4-byte aligned).
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// The weights of a convolution or dense layer, in one of the supported formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weights {
    /// int8 weights (OHWI, or `[out, in]`), optional int32 bias.
    Int8 {
        /// Filter bytes.
        filter: ConstRef,
        /// int32 bias per output channel.
        bias: Option<ConstRef>,
    },
    /// int4 weights, rows packed as in [`crate::int4`].
    Int4 {
        /// Packed filter bytes.
        filter: ConstRef,
        /// int32 bias per output channel.
        bias: Option<ConstRef>,
    },
    /// Sparse int8 weights in the CSR form of [`crate::sparse`].
    Sparse {
        /// u32 row pointers.
        row_ptr: ConstRef,
        /// u32 entries (`sparse::entry`): input offset and weight.
        entries: ConstRef,
        /// int32 bias per output channel.
        bias: Option<ConstRef>,
    },
    /// float32 weights, optional float bias.
    F32 {
        /// Filter values.
        filter: ConstRef,
        /// Bias per output channel.
        bias: Option<ConstRef>,
    },
    /// Packed binary weights (`[O, KH, KW, words(I)]` u32).
    Binary {
        /// Packed filter words.
        filter: ConstRef,
        /// Treatment of padded taps.
        padding: BinaryPadding,
    },
    /// Block-sparse int8 weights in the form of [`crate::sparse::blocks`].
    Blocks {
        /// u32 row pointers, counting blocks.
        row_ptr: ConstRef,
        /// Two u32 per block: byte offset of its first column, four weights.
        entries: ConstRef,
        /// int32 bias per output channel.
        bias: Option<ConstRef>,
    },
}

/// What happens to the accumulators of a convolution or dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Stage {
    /// int8 requantization (per output channel [`crate::quant::Requant`]s).
    Int8 {
        /// `-input_zero_point`.
        input_offset: i32,
        /// `-filter_zero_point` (0 but in legacy uint8 models).
        filter_offset: i32,
        /// `output_zero_point`.
        output_offset: i32,
        /// One `Requant` (8 bytes) per output channel.
        requant: ConstRef,
        /// Activation clamp in output units.
        clamp: Clamp,
        /// How the requantization rounds.
        rounding: Rounding,
    },
    /// TFLite's 16x8 scheme: int16 input and output, int64 accumulators.
    Int16 {
        /// int64 bias per output channel ([`crate::int16::Wide`] words).
        bias: Option<ConstRef>,
        /// Per output channel, or one: `Requant`s (8 bytes), or f64 scales
        /// as [`crate::int16::Wide`] words when `double`.
        rescale: ConstRef,
        /// Whether `rescale` holds double-precision scales (LiteRT's dense layer).
        double: bool,
        /// Activation clamp in output units.
        clamp: Clamp,
    },
    /// float activation clamp.
    F32 {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Binary accumulators to float: `dot * multiplier + bias`, clamped.
    BinaryToF32 {
        /// f32 per output channel.
        multiplier: ConstRef,
        /// f32 per output channel.
        bias: ConstRef,
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Binary accumulators to int8 (multiplier and bias in output quanta).
    BinaryToI8 {
        /// f32 per output channel.
        multiplier: ConstRef,
        /// f32 per output channel.
        bias: ConstRef,
        /// Output zero point.
        zero_point: i32,
        /// Activation clamp in output units.
        clamp: Clamp,
    },
    /// Dynamic-range: float input quantized per row, int8 weights of one
    /// scale, float output (`Weights::Int8` without a bias; dense only).
    HybridF32 {
        /// The weights' scale.
        filter_scale: f32,
        /// f32 bias per output channel.
        bias: Option<ConstRef>,
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Binary accumulators straight to packed bits by threshold.
    BinaryToBits {
        /// i32 per output channel.
        thresholds: ConstRef,
    },
}

/// The activation of a pool or addition, in the tensors' own type.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Act {
    /// int8 clamp.
    I8(Clamp),
    /// float clamp.
    F32 {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Act {
    /// No clamp: what a max pool of packed signs carries.
    pub const UNCLAMPED: Act = Act::F32 {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
}

/// One operator, with its tensors inline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// 2-D convolution.
    Conv2d {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// Kernel, stride, dilation, padding.
        window: Window,
        /// Weights.
        weights: Weights,
        /// Output stage.
        stage: Stage,
    },
    /// Depthwise 2-D convolution (int8 or float).
    DepthwiseConv2d {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// Kernel, stride, dilation, padding.
        window: Window,
        /// Output channels per input channel.
        depth_multiplier: u32,
        /// Weights (`Int8` or `F32`).
        weights: Weights,
        /// Output stage.
        stage: Stage,
    },
    /// Fully connected layer over the flattened input.
    FullyConnected {
        /// Input tensor (`[batch, features]` after flattening).
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// Weights.
        weights: Weights,
        /// Output stage.
        stage: Stage,
    },
    /// Average pool.
    AvgPool {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// Window.
        window: Window,
        /// Clamp.
        act: Act,
        /// How an int8 mean rounds halves.
        rounding: crate::int8::PoolRounding,
    },
    /// Max pool.
    MaxPool {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// Window.
        window: Window,
        /// Clamp.
        act: Act,
    },
    /// Elementwise addition of two same-shaped tensors.
    Add {
        /// First input.
        a: TensorDesc,
        /// Second input.
        b: TensorDesc,
        /// Output.
        output: TensorDesc,
        /// int8 parameters, or `None` for float.
        int8: Option<AddParams>,
        /// Clamp (float only; int8 clamps are in the parameters).
        act: Act,
    },
    /// Softmax over the channel axis.
    Softmax {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// int8 parameters, or `None` for float.
        int8: Option<SoftmaxParams>,
        /// The float `beta`.
        beta: f32,
    },
    /// LOG_SOFTMAX over the channel axis.
    LogSoftmax {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor (int8: scale 16/256, zero point 127).
        output: TensorDesc,
        /// The integer parameters, or `None` for float.
        int8: Option<crate::int8::LogSoftmaxParams>,
    },
    /// Same bytes, new shape.
    Reshape {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
    },
    /// float to int8 or int16.
    Quantize {
        /// Input (F32).
        input: TensorDesc,
        /// Output (I8 or I16).
        output: TensorDesc,
        /// Output scale.
        scale: f32,
        /// Output zero point.
        zero_point: i32,
    },
    /// int8 or int16 to float.
    Dequantize {
        /// Input (I8 or I16).
        input: TensorDesc,
        /// Output (F32).
        output: TensorDesc,
        /// Input scale.
        scale: f32,
        /// Input zero point.
        zero_point: i32,
    },
    /// QUANTIZE between integer tensors (int8 or int16, either way).
    Requantize {
        /// Input (I8 or I16).
        input: TensorDesc,
        /// Output (I8 or I16).
        output: TensorDesc,
        /// Zero points and multiplier.
        params: crate::int16::Requantize,
    },
    /// SOFTMAX over the channel axis on int16.
    Softmax16 {
        /// Input (I16).
        input: TensorDesc,
        /// Output (I16, scale `2^-15`).
        output: TensorDesc,
        /// The input rescaling.
        params: crate::int16::Softmax16,
        /// The exp and `1 / (1 + x)` tables, [`crate::int16::LUT_LEN`] i16 each.
        luts: ConstRef,
    },
    /// LOGISTIC or TANH on int16 (TFLite's interpolated table).
    Curve {
        /// Input (I16).
        input: TensorDesc,
        /// Output (I16, scale `2^-15`).
        output: TensorDesc,
        /// Which curve and the input rescaling.
        curve: crate::int16::Curve,
    },
    /// int8 or float to packed sign bits.
    PackBits {
        /// Input (I8 or F32).
        input: TensorDesc,
        /// Output (Bits).
        output: TensorDesc,
        /// Zero point of an int8 input.
        zero_point: i32,
    },
    /// An early exit: stop here if the head's confidence passes its threshold.
    ExitHead {
        /// Head number, indexing the run-time thresholds.
        head: u8,
        /// The head's logits (I8 or F32).
        logits: TensorDesc,
        /// Confidence measure.
        measure: Confidence,
        /// Scale of int8 logits.
        scale: f32,
        /// Zero point of int8 logits.
        zero_point: i32,
    },
    /// PAD / PADV2: the input inside a border of one value.
    Pad {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor (the input grown on each axis).
        output: TensorDesc,
        /// Elements of padding before the input on each NHWC axis.
        before: [u32; 4],
        /// The pad element's bytes (the first one for int8, all four for float32).
        value: [u8; 4],
    },
    /// TRANSPOSE: output axis `k` is input axis `perm[k]`.
    Transpose {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// The permutation of the NHWC axes.
        perm: [u8; 4],
    },
    /// A binary elementwise operator with broadcasting.
    Binary {
        /// First operand.
        a: TensorDesc,
        /// Second operand (its type and shape; its bytes are `b_const`'s
        /// when that is given).
        b: TensorDesc,
        /// The second operand's bytes when it is a constant of the model.
        b_const: Option<ConstRef>,
        /// The operator's operands are `(b, a)`: the result is `op(b, a)`
        /// (a model's constant first operand, as in `1 - x`).
        swapped: bool,
        /// Output.
        output: TensorDesc,
        /// The first operand as a 4-D shape broadcast to the output's.
        a_view: Shape,
        /// The second operand's.
        b_view: Shape,
        /// Which operator.
        op: crate::broadcast::Binary,
        /// int8 arithmetic, or `None` for float.
        int8: Option<crate::broadcast::Int8Binary>,
        /// Float clamp (ADD, SUB, MUL).
        act: (f32, f32),
    },
    /// BATCH_MATMUL ([`crate::matmul`]); the tensors' shapes are the
    /// `[b0, b1, rows, cols]` views.
    BatchMatMul {
        /// First operand.
        a: TensorDesc,
        /// Second operand (its bytes are `b_const`'s when that is given).
        b: TensorDesc,
        /// The second operand's bytes when it is a constant of the model.
        b_const: Option<ConstRef>,
        /// Output.
        output: TensorDesc,
        /// Which operands are stored transposed.
        adj: crate::matmul::Adjoint,
        /// int8 arithmetic, or `None` for float.
        int8: Option<crate::matmul::MatMulInt8>,
    },
    /// An int8 elementwise operator as a 256-entry table; also the
    /// conversions between a uint8 model's input or output and int8.
    Lookup {
        /// Input tensor (I8 or U8).
        input: TensorDesc,
        /// Output tensor (I8 or U8).
        output: TensorDesc,
        /// 256 i8, indexed by the input byte.
        table: ConstRef,
    },
    /// A float elementwise activation.
    Activation {
        /// Input tensor (F32).
        input: TensorDesc,
        /// Output tensor (F32).
        output: TensorDesc,
        /// Which.
        act: crate::float::Activation,
    },
    /// SLICE and STRIDED_SLICE: output element `o` on each NHWC axis is
    /// input element `begin + o * stride`.
    Slice {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// First element on each axis.
        begin: [u32; 4],
        /// Step on each axis (negative walks backwards).
        stride: [i32; 4],
    },
    /// One part of a CONCATENATION or PACK: the input copied into the box of
    /// the output at `before`; the output's other parts are other operators'.
    Insert {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor (the whole concatenation).
        output: TensorDesc,
        /// Where the input's box starts on each NHWC axis.
        before: [u32; 4],
    },
    /// GATHER and RESIZE_NEAREST_NEIGHBOR: output element `[a, b, c, d]` is
    /// input element `[m0(a), m1(b), m2(c), m3(d)]`, each `mk` a table of
    /// u32 input indices or the identity.
    Remap {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// One table per NHWC axis, or none.
        maps: [Option<ConstRef>; 4],
    },
    /// UNIDIRECTIONAL_SEQUENCE_LSTM, integer (int8 with an int16 cell state).
    Lstm {
        /// `[batch, time, features]` (or time first) as `[n, 1, w, c]`, int8.
        input: TensorDesc,
        /// The hidden state of every step, int8.
        output: TensorDesc,
        /// Bytes for the states and one step's gates ([`crate::lstm::scratch_len`]).
        scratch: TensorDesc,
        /// The [`crate::lstm::Lstm`] block: sizes, multipliers, biases, weights.
        params: ConstRef,
    },
    /// SVDF, integer ([`crate::svdf`]): int8 `[batch, input]` to int8
    /// `[batch, units]`, with its int16 state in `scratch`.
    Svdf {
        /// Input, int8.
        input: TensorDesc,
        /// Output, int8.
        output: TensorDesc,
        /// Bytes for the state and the sums ([`crate::svdf::scratch_len`]).
        scratch: TensorDesc,
        /// Sizes and multipliers.
        params: crate::svdf::SvdfParams,
        /// `[filters, input]` int8.
        feature: ConstRef,
        /// `[filters, memory]` int16.
        time: ConstRef,
        /// `[units]` int32.
        bias: Option<ConstRef>,
    },
    /// RESIZE_BILINEAR over H and W (int8 or float32).
    ResizeBilinear {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// Corner alignment and pixel centres.
        mode: crate::resize::Bilinear,
    },
    /// GATHER from a constant table by int32 indices read at run time:
    /// the table is `[outer, extent, inner]` (`inner_bytes` per row), the
    /// output `[outer, indices, inner]`.
    Gather {
        /// The indices (I32).
        indices: TensorDesc,
        /// The table's bytes.
        table: ConstRef,
        /// Output tensor (the table's element type).
        output: TensorDesc,
        /// Rows before the gathered axis.
        outer: u32,
        /// Extent of the gathered axis: indices must lie in `0..extent`.
        extent: u32,
        /// Bytes of one gathered row.
        inner_bytes: u32,
    },
    /// MEAN over the NHWC axes set in `axes`.
    Mean {
        /// Input tensor.
        input: TensorDesc,
        /// Output tensor.
        output: TensorDesc,
        /// The reduced axes.
        axes: [bool; 4],
        /// int8 parameters, or `None` for float.
        int8: Option<MeanParams>,
    },
    /// The next `layers` operators are one row-fused segment
    /// ([`fused`](super::fused)), run `band` output rows at a time: the
    /// tensors made and read inside it are line buffers (their `offset`
    /// is the buffer's, their shape the whole tensor's).
    Fused {
        /// Operators in the segment.
        layers: u32,
        /// Rows of the segment's output each band computes.
        band: u32,
    },
}

impl Op {
    /// A convolution's or pool's input, output and sliding window.
    pub fn windowed(&self) -> Option<(TensorDesc, TensorDesc, Window)> {
        match *self {
            Op::Conv2d {
                input,
                output,
                window,
                ..
            }
            | Op::DepthwiseConv2d {
                input,
                output,
                window,
                ..
            }
            | Op::AvgPool {
                input,
                output,
                window,
                ..
            }
            | Op::MaxPool {
                input,
                output,
                window,
                ..
            } => Some((input, output, window)),
            _ => None,
        }
    }

    /// The kernel crate's `op-*` feature family the operator needs, if any:
    /// a board firmware links a family only when its model uses it.
    pub fn family(&self) -> Option<&'static str> {
        // The LSTM's int16 variant and an int16 table's GATHER are part of
        // their own families.
        match self {
            Op::Lstm { .. } => return Some("op-lstm"),
            Op::Gather { .. } => return Some("op-gather"),
            Op::Fused { .. } => return Some("op-fused"),
            _ => {}
        }
        let (inputs, output) = self.io();
        if inputs
            .iter()
            .chain([&output])
            .flatten()
            .any(|t| t.dtype == DType::I16)
        {
            return Some("op-int16");
        }
        match self {
            Op::Lstm { .. } => Some("op-lstm"),
            Op::Svdf { .. } => Some("op-svdf"),
            Op::BatchMatMul { .. } => Some("op-matmul"),
            Op::ResizeBilinear { .. } => Some("op-resize"),
            Op::LogSoftmax { .. } => Some("op-log-softmax"),
            Op::Softmax { int8: None, .. }
            | Op::Activation {
                act:
                    crate::float::Activation::Logistic
                    | crate::float::Activation::Tanh
                    | crate::float::Activation::Elu { .. },
                ..
            } => Some("op-float-math"),
            Op::Requantize { .. } | Op::Curve { .. } | Op::Softmax16 { .. } => Some("op-int16"),
            Op::Conv2d {
                weights: Weights::Binary { .. },
                ..
            }
            | Op::FullyConnected {
                weights: Weights::Binary { .. },
                ..
            }
            | Op::PackBits { .. } => Some("op-binary"),
            Op::MaxPool { input, .. } if input.dtype == DType::Bits => Some("op-binary"),
            Op::Conv2d {
                weights: Weights::F32 { .. },
                ..
            }
            | Op::DepthwiseConv2d {
                weights: Weights::F32 { .. },
                ..
            }
            | Op::FullyConnected {
                weights: Weights::F32 { .. },
                ..
            }
            | Op::FullyConnected {
                stage: Stage::HybridF32 { .. },
                ..
            }
            | Op::AvgPool {
                act: Act::F32 { .. },
                ..
            }
            | Op::MaxPool {
                act: Act::F32 { .. },
                ..
            }
            | Op::Add {
                act: Act::F32 { .. },
                int8: None,
                ..
            } => Some("op-float"),
            Op::Conv2d {
                weights: Weights::Int4 { .. },
                ..
            }
            | Op::FullyConnected {
                weights: Weights::Int4 { .. },
                ..
            } => Some("op-int4"),
            Op::Conv2d {
                weights: Weights::Sparse { .. } | Weights::Blocks { .. },
                ..
            }
            | Op::DepthwiseConv2d {
                weights: Weights::Sparse { .. },
                ..
            }
            | Op::FullyConnected {
                weights: Weights::Sparse { .. } | Weights::Blocks { .. },
                ..
            } => Some("op-sparse"),
            Op::Conv2d { stage, .. }
            | Op::DepthwiseConv2d { stage, .. }
            | Op::FullyConnected { stage, .. }
                if matches!(stage, Stage::Int8 { filter_offset, .. } if *filter_offset != 0) =>
            {
                Some("op-weight-offset")
            }
            Op::Conv2d {
                input,
                window,
                weights: Weights::Int8 { .. },
                ..
            } if window.taps() == 1 && input.shape.c as usize > crate::int8::DSP_COLUMN => {
                Some("op-deep-conv")
            }
            _ => None,
        }
    }

    /// The operator's name, for messages and profiles.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::DepthwiseConv2d { .. } => "depthwise_conv2d",
            Op::FullyConnected { .. } => "fully_connected",
            Op::AvgPool { .. } => "avg_pool",
            Op::MaxPool { .. } => "max_pool",
            Op::Add { .. } => "add",
            Op::Softmax { .. } | Op::Softmax16 { .. } => "softmax",
            Op::Reshape { .. } => "reshape",
            Op::Quantize { .. } | Op::Requantize { .. } => "quantize",
            Op::Curve { curve, .. } if curve.tanh => "tanh",
            Op::Curve { .. } => "logistic",
            Op::Dequantize { .. } => "dequantize",
            Op::PackBits { .. } => "pack_bits",
            Op::ExitHead { .. } => "exit_head",
            Op::Pad { .. } => "pad",
            Op::Transpose { .. } => "transpose",
            Op::Mean { .. } => "mean",
            Op::Lookup { .. } => "lookup",
            Op::Slice { .. } => "slice",
            Op::Insert { .. } => "insert",
            Op::Remap { .. } => "remap",
            Op::Gather { .. } => "gather",
            Op::ResizeBilinear { .. } => "resize_bilinear",
            Op::Lstm { .. } => "lstm",
            Op::Fused { .. } => "fused",
            Op::Svdf { .. } => "svdf",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::Binary { op, .. } => match op {
                crate::broadcast::Binary::Add => "add",
                crate::broadcast::Binary::Sub => "sub",
                crate::broadcast::Binary::Mul => "mul",
                crate::broadcast::Binary::Maximum => "maximum",
                crate::broadcast::Binary::Minimum => "minimum",
                crate::broadcast::Binary::SquaredDifference => "squared_difference",
            },
            Op::Activation { .. } => "activation",
            Op::BatchMatMul { .. } => "batch_matmul",
        }
    }

    /// The tensors read (up to two) and the tensor written, if any.
    pub fn io(&self) -> ([Option<TensorDesc>; 2], Option<TensorDesc>) {
        match *self {
            Op::Conv2d { input, output, .. }
            | Op::DepthwiseConv2d { input, output, .. }
            | Op::FullyConnected { input, output, .. }
            | Op::AvgPool { input, output, .. }
            | Op::MaxPool { input, output, .. }
            | Op::Softmax { input, output, .. }
            | Op::LogSoftmax { input, output, .. }
            | Op::Reshape { input, output }
            | Op::Quantize { input, output, .. }
            | Op::Requantize { input, output, .. }
            | Op::Curve { input, output, .. }
            | Op::Softmax16 { input, output, .. }
            | Op::Dequantize { input, output, .. }
            | Op::PackBits { input, output, .. }
            | Op::Pad { input, output, .. }
            | Op::Transpose { input, output, .. }
            | Op::Mean { input, output, .. }
            | Op::Lookup { input, output, .. }
            | Op::Slice { input, output, .. }
            | Op::Insert { input, output, .. }
            | Op::Remap { input, output, .. }
            | Op::ResizeBilinear { input, output, .. }
            | Op::Activation { input, output, .. } => ([Some(input), None], Some(output)),
            // The scratch is read and written: an input for the overlap checks.
            Op::Lstm {
                input,
                output,
                scratch,
                ..
            }
            | Op::Svdf {
                input,
                output,
                scratch,
                ..
            } => ([Some(input), Some(scratch)], Some(output)),
            // A constant second operand is read from the constants, not the arena.
            Op::Binary {
                a,
                b_const: Some(_),
                output,
                ..
            }
            | Op::BatchMatMul {
                a,
                b_const: Some(_),
                output,
                ..
            } => ([Some(a), None], Some(output)),
            Op::Add { a, b, output, .. }
            | Op::Binary { a, b, output, .. }
            | Op::BatchMatMul { a, b, output, .. } => ([Some(a), Some(b)], Some(output)),
            Op::ExitHead { logits, .. } => ([Some(logits), None], None),
            Op::Fused { .. } => ([None, None], None),
            Op::Gather {
                indices, output, ..
            } => ([Some(indices), None], Some(output)),
        }
    }
}

/// The graph section's fixed part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphHeader {
    /// Bytes of arena the model needs.
    pub arena_bytes: u32,
    /// Number of operators that follow.
    pub op_count: u32,
    /// Number of exit heads (thresholds expected at run time).
    pub exit_heads: u8,
    /// The model input.
    pub input: TensorDesc,
    /// The final output.
    pub output: TensorDesc,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Shape, Window};

    /// An int8 convolution of a `k`x`k` window over `c` channels.
    fn conv(k: u32, c: u32) -> Op {
        let tensor = |c| TensorDesc {
            dtype: DType::I8,
            shape: Shape::new(1, 7, 7, c),
            offset: 0,
        };
        let none = ConstRef { offset: 0, len: 0 };
        Op::Conv2d {
            input: tensor(c),
            output: tensor(16),
            window: Window::new((k, k), (1, 1), (1, 1), Padding::Same, (7, 7)).0,
            weights: Weights::Int8 {
                filter: none,
                bias: None,
            },
            stage: Stage::Int8 {
                input_offset: 0,
                filter_offset: 0,
                output_offset: 0,
                requant: none,
                clamp: crate::int8::Clamp::FULL,
                rounding: crate::quant::Rounding::Double,
            },
        }
    }

    #[test]
    fn only_1x1_convolutions_past_the_dsp_column_are_deep() {
        let deep = crate::int8::DSP_COLUMN as u32 + 4;
        assert_eq!(conv(1, deep).family(), Some("op-deep-conv"));
        assert_eq!(conv(1, crate::int8::DSP_COLUMN as u32).family(), None);
        assert_eq!(conv(3, deep).family(), None);
    }
}
