//! Import of TensorFlow Lite models: the flatbuffer (read and verified by
//! the `flatbuffers` crate through code generated from
//! `harness/schema/tflite.fbs`) becomes a [`Graph`].
//!
//! An int8 model keeps its exact quantization: every activation tensor its
//! `(scale, zero_point)`, every conv, depthwise and dense layer its int8
//! weights, per-channel scales and int32 biases ([`Int8Weights`]), so that
//! lowering reproduces the TFLite reference kernels byte for byte. The
//! layers also get the dequantized float weights, which the float32,
//! int4, binary and pruning variants start from. float32 models import too
//! (as the zoo's models are: float weights, calibrated when quantized).
//!
//! Everything read from the file is checked before it is used (shapes
//! against the shapes each operator implies, buffer lengths against
//! shapes, sizes against [`MAX_ELEMENTS`]), so a corrupted file gives an
//! error, never a panic or a huge allocation.

use super::graph::{
    BinaryConstant, Graph, Int8Weights, Layer, LayerOp, LayerWeights, Tensor, TensorId,
};
pub use super::import::ImportError;
use super::tflite_schema::tflite as fb;

mod folded;

mod lce;
mod lstm;
mod multi;
mod shape_only;
mod svdf;
use kernels::geometry::{Activation, Padding, Shape, Window};
use kernels::int8::PoolRounding;
use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

/// Largest tensor, in elements, an imported model may have (16 Mi: far
/// beyond any microcontroller, small enough to allocate on the host).
pub const MAX_ELEMENTS: usize = 1 << 24;

/// A problem found while reading, before the file name is attached.
enum Problem {
    Model(String),
    Operator {
        index: usize,
        op: String,
        why: String,
    },
}

type Result<T, E = String> = std::result::Result<T, E>;

/// Reads and imports the `.tflite` file at `path`; the graph is named after the file.
pub fn load(path: &Path) -> Result<Graph, ImportError> {
    let bytes = crate::input::files::read(path).map_err(|source| ImportError::Read {
        path: path.into(),
        source,
    })?;
    let name = path.file_stem().map_or_else(
        || "model".into(),
        |s| crate::input::diag::usable_name(&s.to_string_lossy()),
    );
    import(&bytes, &name, path)
}

/// Imports a `.tflite` flatbuffer; `path` only names the file in errors.
pub fn import(bytes: &[u8], name: &str, path: &Path) -> Result<Graph, ImportError> {
    read_model(bytes, name).map_err(|p| match p {
        Problem::Model(why) => ImportError::Model {
            path: path.into(),
            why,
        },
        Problem::Operator { index, op, why } => ImportError::Operator {
            path: path.into(),
            index,
            op,
            why,
        },
    })
}

/// TFLite's builtin operator codes bench supports.
mod code {
    use super::fb;

    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEQUANTIZE: i32 = 6;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const MAX_POOL_2D: i32 = 17;
    pub const RESHAPE: i32 = 22;
    pub const SOFTMAX: i32 = 25;
    pub const PAD: i32 = 34;
    pub const TRANSPOSE: i32 = 39;
    pub const MEAN: i32 = 40;
    pub const PADV2: i32 = 60;
    pub const LOGISTIC: i32 = 14;
    pub const RELU: i32 = 19;
    pub const RELU_N1_TO_1: i32 = 20;
    pub const RELU6: i32 = 21;
    pub const TANH: i32 = 28;
    pub const LEAKY_RELU: i32 = 98;
    pub const RELU_0_TO_1: i32 = 152;
    pub const HARD_SWISH: i32 = 117;
    pub const SQUEEZE: i32 = 43;
    pub const MUL: i32 = 18;
    pub const CONCATENATION: i32 = 2;
    pub const SPLIT: i32 = 49;
    pub const PACK: i32 = 83;
    pub const UNPACK: i32 = 88;
    pub const SPLIT_V: i32 = 102;
    pub const GATHER: i32 = 36;
    pub const RESIZE_NEAREST_NEIGHBOR: i32 = 97;
    pub const RESIZE_BILINEAR: i32 = 23;
    pub const UNIDIRECTIONAL_SEQUENCE_LSTM: i32 = 44;
    pub const LOG_SOFTMAX: i32 = 50;
    pub const STRIDED_SLICE: i32 = 45;
    pub const SLICE: i32 = 65;
    pub const SUB: i32 = 41;
    pub const MAXIMUM: i32 = 55;
    pub const MINIMUM: i32 = 57;
    pub const SQUARED_DIFFERENCE: i32 = 99;
    pub const EXPAND_DIMS: i32 = 70;
    pub const QUANTIZE: i32 = 114;
    pub const SVDF: i32 = 27;
    pub const BATCH_MATMUL: i32 = 126;

    /// Every code `import_op` reads.
    pub const SUPPORTED: &[i32] = &[
        ADD,
        AVERAGE_POOL_2D,
        CONV_2D,
        DEPTHWISE_CONV_2D,
        DEQUANTIZE,
        FULLY_CONNECTED,
        MAX_POOL_2D,
        RESHAPE,
        SOFTMAX,
        PAD,
        TRANSPOSE,
        MEAN,
        PADV2,
        QUANTIZE,
        LOGISTIC,
        RELU,
        RELU_N1_TO_1,
        RELU6,
        TANH,
        LEAKY_RELU,
        RELU_0_TO_1,
        HARD_SWISH,
        SQUEEZE,
        EXPAND_DIMS,
        MUL,
        SUB,
        MAXIMUM,
        MINIMUM,
        SQUARED_DIFFERENCE,
        STRIDED_SLICE,
        SLICE,
        CONCATENATION,
        SPLIT,
        PACK,
        UNPACK,
        SPLIT_V,
        GATHER,
        RESIZE_NEAREST_NEIGHBOR,
        RESIZE_BILINEAR,
        UNIDIRECTIONAL_SEQUENCE_LSTM,
        LOG_SOFTMAX,
        SVDF,
        BATCH_MATMUL,
    ];

    /// The operators whose uint8 form, run as int8 shifted by 128, is
    /// TFLite's uint8 kernel exactly (checked by one-op goldens), and those
    /// that only move bytes. The others (LOG_SOFTMAX, RESIZE_BILINEAR, the
    /// LSTM, ...) are not checked in uint8, so they are refused.
    pub const UINT8_EXACT: &[i32] = &[
        CONV_2D,
        DEPTHWISE_CONV_2D,
        FULLY_CONNECTED,
        AVERAGE_POOL_2D,
        MAX_POOL_2D,
        ADD,
        SOFTMAX,
        QUANTIZE,
        DEQUANTIZE,
        RESHAPE,
        SQUEEZE,
        EXPAND_DIMS,
        PAD,
        PADV2,
        TRANSPOSE,
        SLICE,
        STRIDED_SLICE,
        GATHER,
        RESIZE_NEAREST_NEIGHBOR,
        MAXIMUM,
        MINIMUM,
        MEAN,
        SUB,
        MUL,
        RELU,
        RELU6,
        RELU_N1_TO_1,
        RELU_0_TO_1,
        LEAKY_RELU,
        LOGISTIC,
        TANH,
        HARD_SWISH,
    ];

    /// The operators bench runs with int16 activations (TFLite's 16x8
    /// scheme), each checked against LiteRT's reference kernels by one-op
    /// goldens, and those that only move bytes.
    pub const INT16_EXACT: &[i32] = &[
        CONV_2D,
        DEPTHWISE_CONV_2D,
        FULLY_CONNECTED,
        AVERAGE_POOL_2D,
        MAX_POOL_2D,
        ADD,
        SUB,
        MUL,
        RELU,
        RELU6,
        LEAKY_RELU,
        LOGISTIC,
        TANH,
        SOFTMAX,
        QUANTIZE,
        DEQUANTIZE,
        RESHAPE,
        SQUEEZE,
        EXPAND_DIMS,
        TRANSPOSE,
        PAD,
        PADV2,
        MEAN,
        SLICE,
        STRIDED_SLICE,
        GATHER,
        CONCATENATION,
        PACK,
        SPLIT,
        SPLIT_V,
        UNPACK,
        // TFLite Micro's (LiteRT has none), checked against it.
        UNIDIRECTIONAL_SEQUENCE_LSTM,
    ];

    /// The operator's upstream name (`UNIDIRECTIONAL_SEQUENCE_LSTM`), from
    /// the schema's own table, or its code if the schema postdates it.
    pub fn name(code: i32) -> String {
        fb::BuiltinOperator(code)
            .variant_name()
            .map_or_else(|| format!("builtin operator {code}"), str::to_string)
    }
}

/// The number format of the model's activations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int8,
    /// int16 activations with int8 weights (TFLite's 16x8 scheme); int8
    /// tensors may appear too, on the far side of a QUANTIZE.
    Int16,
    Float32,
}

/// An activation or constant tensor of the file, checked. A uint8 tensor
/// (the legacy scheme) reads as int8 shifted by 128, data and zero points
/// alike: every difference `q - zero_point` stays, so every int8 kernel
/// computes what TFLite's uint8 kernel does.
struct TensorInfo<'a> {
    dims: Vec<u32>,
    dtype: fb::TensorType,
    quant: Option<fb::QuantizationParameters<'a>>,
    /// Constant data (empty for activations).
    data: Cow<'a, [u8]>,
    /// Whether the file stores the tensor as uint8.
    uint8: bool,
}

/// The NHWC shape of TFLite dimensions: `[f]` and `[n, f]` are flat,
/// `[n, w, c]` has height 1, and a rank-5 `[1, a, b, c, d]` (a unit batch
/// before four axes, as channel shuffles and PACK of rank-4 tensors make)
/// is `[a, b, c, d]`.
fn nhwc(dims: &[u32]) -> Result<Shape> {
    Ok(match dims[..] {
        [] => Shape::flat(1, 1),
        [f] => Shape::flat(1, f),
        [n, f] => Shape::flat(n, f),
        [n, w, c] => Shape::new(n, 1, w, c),
        [n, h, w, c] | [1, n, h, w, c] => Shape::new(n, h, w, c),
        [b, ..] if dims.len() == 5 => return Err(rank5_batch(b)),
        _ => {
            return Err(format!(
                "a tensor of rank {} is not supported (at most 5)",
                dims.len()
            ))
        }
    })
}

/// Why a rank-5 tensor whose first axis is not 1 is refused.
fn rank5_batch(first: u32) -> String {
    format!("a rank-5 tensor whose first axis is {first} is not supported (rank 5 needs a first axis of 1)")
}

impl TensorInfo<'_> {
    fn elements(&self) -> usize {
        self.dims.iter().map(|&d| d as usize).product()
    }

    /// The NHWC shape: `[f]` and `[n, f]` are flat, `[n, w, c]` has height 1.
    fn shape(&self) -> Result<Shape> {
        nhwc(&self.dims)
    }

    /// The zero points as int8 (a uint8 tensor's shifted by 128).
    fn zero_points(&self) -> Vec<i64> {
        let shift = if self.uint8 { 128 } else { 0 };
        self.quant
            .map(zero_points)
            .unwrap_or_default()
            .iter()
            .map(|z| z - shift)
            .collect()
    }

    /// The one scale of a per-tensor quantized tensor.
    fn quant_scale(&self) -> Result<f32> {
        let scales: Vec<f32> = self
            .quant
            .and_then(|q| q.scale())
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        match scales[..] {
            [s] if s.is_finite() && s > 0.0 => Ok(s),
            _ => Err("a tensor must have one positive, finite scale".into()),
        }
    }

    /// Per-tensor `(scale, zero_point)` of an int8 activation.
    fn activation_quant(&self) -> Result<(f32, i32)> {
        let q = self
            .quant
            .ok_or("an int8 activation has no quantization parameters")?;
        let int16 = self.dtype == fb::TensorType::INT16;
        let (scales, zero_points) = (
            q.scale()
                .map(|s| s.iter().collect::<Vec<_>>())
                .unwrap_or_default(),
            self.zero_points(),
        );
        let zero_point = (zero_points.len() == 1).then(|| zero_points[0]);
        match (&scales[..], zero_point) {
            // TFLite's int16 activations are symmetric: zero point 0.
            (&[scale], Some(zp)) if scale.is_finite() && scale > 0.0 && int16 && zp == 0 => Ok((scale, 0)),
            (&[_], Some(_)) if int16 => Err("an int16 activation has a scale that is not positive and finite, or a zero point other than 0".into()),
            (&[scale], Some(zp)) if scale.is_finite() && scale > 0.0 && (-128..=127).contains(&zp) => Ok((scale, zp as i32)),
            (&[_], Some(_)) => Err("an int8 activation has a scale that is not positive and finite, or a zero point outside int8".into()),
            _ => Err("an int8 activation must have exactly one scale and one zero point (per-tensor)".into()),
        }
    }
}

/// The parts of the file the import walks.
struct Reader<'a> {
    tensors: flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::Tensor<'a>>>,
    buffers: Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::Buffer<'a>>>>,
    /// Float32 values of tensors the importer computed (constant DEQUANTIZEs).
    folded: Option<&'a folded::Folded>,
}

impl<'a> Reader<'a> {
    fn tensor(&self, index: i32) -> Result<TensorInfo<'a>> {
        let t = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.tensors.len())
            .map(|i| self.tensors.get(i))
            .ok_or(format!("tensor index {index} is out of range"))?;
        let mut dims = Vec::new();
        for d in t.shape().iter().flatten() {
            dims.push(
                u32::try_from(d)
                    .ok()
                    .filter(|&d| d > 0)
                    .ok_or(format!("tensor {index} has a dimension of {d}"))?,
            );
        }
        if dims.len() > 5 {
            return Err(format!(
                "tensor {index} has rank {}; at most 5 is supported",
                dims.len()
            ));
        }
        if dims.len() == 5 && dims[0] != 1 {
            return Err(format!("tensor {index}: {}", rank5_batch(dims[0])));
        }
        let elements = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
            .filter(|&e| e <= MAX_ELEMENTS);
        if elements.is_none() {
            return Err(format!(
                "tensor {index} has more than {MAX_ELEMENTS} elements"
            ));
        }
        if t.sparsity().is_some() {
            return Err(format!(
                "tensor {index} is stored sparse, which is not supported"
            ));
        }
        if t.quantization()
            .is_some_and(|q| q.details_type() != fb::QuantizationDetails::NONE)
        {
            return Err(format!(
                "tensor {index} uses custom quantization, which is not supported"
            ));
        }
        let buffer = t.buffer() as usize;
        let data = match &self.buffers {
            Some(buffers) if buffer > 0 => {
                let b = (buffer < buffers.len())
                    .then(|| buffers.get(buffer))
                    .ok_or(format!(
                        "tensor {index} names buffer {buffer}, which does not exist"
                    ))?;
                if b.offset() > 1 {
                    return Err(format!("tensor {index} keeps its data outside the flatbuffer (a model over 2 GB), which is not supported"));
                }
                b.data().map(|d| d.bytes()).unwrap_or(&[])
            }
            _ => match self.folded.and_then(|f| f.get(&index)) {
                Some(values) => values.as_slice(),
                None => &[],
            },
        };
        let uint8 = t.type_() == fb::TensorType::UINT8;
        Ok(TensorInfo {
            dims,
            dtype: if uint8 {
                fb::TensorType::INT8
            } else {
                t.type_()
            },
            quant: t.quantization(),
            data: if uint8 {
                Cow::Owned(data.iter().map(|b| b ^ 0x80).collect())
            } else {
                Cow::Borrowed(data)
            },
            uint8,
        })
    }
}

/// What the operator being imported refers to, for its checks.
struct OpContext<'r, 'a> {
    reader: &'r Reader<'a>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    kind: Kind,
}

impl<'a> OpContext<'_, 'a> {
    /// Input `i`, which must be present.
    fn input(&self, i: usize) -> Result<i32> {
        self.inputs
            .get(i)
            .copied()
            .filter(|&t| t >= 0)
            .ok_or(format!("input {i} is missing"))
    }

    /// Input `i`, if present (TFLite marks an absent optional input with -1).
    fn optional(&self, i: usize) -> Option<i32> {
        self.inputs.get(i).copied().filter(|&t| t >= 0)
    }

    /// A constant input: the tensor must have data of the length its shape and type imply.
    fn constant(
        &self,
        i: usize,
        dtype: fb::TensorType,
        element_bytes: usize,
    ) -> Result<TensorInfo<'a>> {
        let t = self.reader.tensor(self.input(i)?)?;
        if t.dtype != dtype {
            return Err(format!(
                "input {i} is {}, expected {}",
                type_name(t.dtype),
                type_name(dtype)
            ));
        }
        if t.data.is_empty() && t.elements() > 0 {
            return Err(format!(
                "its input {i} is computed at run time; bench needs it to be a constant of the model"
            ));
        }
        if t.data.len() != t.elements() * element_bytes {
            return Err(format!(
                "input {i} has {} bytes of data, its shape {:?} needs {}",
                t.data.len(),
                t.dims,
                t.elements() * element_bytes
            ));
        }
        Ok(t)
    }
}

fn type_name(t: fb::TensorType) -> String {
    t.variant_name()
        .map_or_else(|| format!("tensor type {}", t.0), |n| n.to_lowercase())
}

fn activation(a: fb::ActivationFunctionType) -> Result<Activation> {
    match a {
        fb::ActivationFunctionType::NONE => Ok(Activation::None),
        fb::ActivationFunctionType::RELU => Ok(Activation::Relu),
        fb::ActivationFunctionType::RELU6 => Ok(Activation::Relu6),
        fb::ActivationFunctionType::RELU_N1_TO_1 => Ok(Activation::ReluN1To1),
        other => Err(format!(
            "fused activation {} is not supported",
            other.variant_name().unwrap_or("(unknown)")
        )),
    }
}

fn padding(p: fb::Padding) -> Result<Padding> {
    match p {
        fb::Padding::SAME => Ok(Padding::Same),
        fb::Padding::VALID => Ok(Padding::Valid),
        other => Err(format!("padding {} is not supported", other.0)),
    }
}

/// A positive stride, dilation or kernel size from the options.
fn positive(value: i32, what: &str) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&v| (1..=1 << 16).contains(&v))
        .ok_or(format!("{what} is {value}"))
}

fn read_model(bytes: &[u8], name: &str) -> Result<Graph, Problem> {
    // The verifier's message spans lines; one line reads better after a file name.
    let one_line = |e: flatbuffers::InvalidFlatbuffer| {
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let model = fb::root_as_model(bytes)
        .map_err(|e| Problem::Model(format!("not a valid TFLite flatbuffer ({})", one_line(e))))?;
    let subgraphs = model
        .subgraphs()
        .ok_or(Problem::Model("the model has no subgraph".into()))?;
    if subgraphs.len() != 1 {
        return Err(Problem::Model(format!(
            "the model has {} subgraphs; only single-subgraph models are supported",
            subgraphs.len()
        )));
    }
    let sg = subgraphs.get(0);
    let tensors = sg
        .tensors()
        .ok_or(Problem::Model("the subgraph has no tensors".into()))?;
    let plain = Reader {
        tensors,
        buffers: model.buffers(),
        folded: None,
    };
    let folded = folded::fold(&plain, model.operator_codes(), &sg).map_err(Problem::Model)?;
    let reader = Reader {
        folded: Some(&folded),
        ..plain
    };
    let (inputs, outputs) = (ends(sg.inputs()), ends(sg.outputs()));
    if inputs.is_empty() || outputs.is_empty() {
        return Err(Problem::Model(format!(
            "the model has {} inputs and {} outputs; at least one of each is needed",
            inputs.len(),
            outputs.len()
        )));
    }
    // An operator bench lacks is the one accurate reason: named before any
    // complaint about types, which that operator may be the cause of.
    let codes = model.operator_codes();
    let skipped = shape_only::skipped(&reader, codes, &sg);
    first_unsupported(codes, &sg, &skipped)?;
    // An integer LSTM keeps its cell state in int16, and an SVDF its
    // activation state; that alone is not 16x8 quantization.
    let states: HashSet<i32> = sg
        .operators()
        .iter()
        .flatten()
        .filter_map(|op| {
            let state = match opcode_of(codes, &op)? {
                Ok(code::UNIDIRECTIONAL_SEQUENCE_LSTM) => lstm::CELL_STATE_INPUT,
                Ok(code::SVDF) => svdf::STATE_INPUT,
                _ => return None,
            };
            ends(op.inputs()).get(state).copied()
        })
        .collect();
    let kind = kind_of(&reader, &states).map_err(Problem::Model)?;
    let int16_inputs = inputs
        .iter()
        .filter(|&&i| {
            reader
                .tensor(i)
                .is_ok_and(|t| t.dtype == fb::TensorType::INT16)
        })
        .count();
    if int16_inputs != 0 && int16_inputs != inputs.len() {
        return Err(Problem::Model(
            "the model's inputs mix int16 with other types; several inputs must share one type"
                .into(),
        ));
    }
    let int32_inputs: Vec<bool> = inputs
        .iter()
        .map(|&i| {
            reader
                .tensor(i)
                .is_ok_and(|t| t.dtype == fb::TensorType::INT32)
        })
        .collect();
    if int32_inputs.iter().any(|&u| u != int32_inputs[0]) {
        return Err(Problem::Model(
            "the model's inputs mix int32 with other types; several inputs must share one type"
                .into(),
        ));
    }
    let uint8_inputs: Vec<bool> = inputs
        .iter()
        .map(|&i| reader.tensor(i).is_ok_and(|t| t.uint8))
        .collect();
    if uint8_inputs.iter().any(|&u| u != uint8_inputs[0]) {
        return Err(Problem::Model(
            "the model's inputs mix uint8 and int8; several inputs must share one type".into(),
        ));
    }
    let mut graph = Graph {
        name: name.into(),
        tensors: Vec::new(),
        layers: Vec::new(),
        input: 0,
        output: 0,
        exits: Vec::new(),
        int16: Default::default(),
        int32: Default::default(),
        float32: Default::default(),
        layout: Default::default(),
    };
    // The graph tensor of each file tensor that an operator (or the input) writes.
    let mut written: Vec<Option<TensorId>> = vec![None; reader.tensors.len()];
    pack_inputs(&reader, &inputs, &mut graph, &mut written)?;
    if int32_inputs[0] {
        // The packed input and the parts slices hand out.
        graph.int32.insert(graph.input);
        for &file in &inputs {
            graph.int32.extend(written[file as usize]);
        }
    }
    if uint8_inputs[0] {
        for (k, &file) in inputs.iter().enumerate() {
            // pack_inputs checked every input is in range.
            let slot = &mut written[file as usize];
            let t = slot.expect("written by pack_inputs");
            *slot = Some(uint8_input(&mut graph, t, k));
        }
    }
    for (index, op) in sg.operators().iter().flatten().enumerate() {
        if !skipped.contains(&index) {
            add_operator(&reader, codes, kind, index, &op, &mut graph, &mut written)?;
        }
    }
    let mut ends = Vec::new();
    for &output in &outputs {
        let t = usize::try_from(output)
            .ok()
            .and_then(|o| written.get(o).copied().flatten())
            .filter(|&o| o != graph.input)
            .ok_or(Problem::Model(format!(
                "the model output (tensor {output}) is not written by any operator"
            )))?;
        match reader.tensor(output).is_ok_and(|o| o.uint8) {
            true => ends.push(uint8_output(&mut graph, t, ends.len())),
            false => ends.push(t),
        }
    }
    if ends
        .iter()
        .any(|&t| is_uint8(&graph, t) != is_uint8(&graph, ends[0]))
    {
        return Err(Problem::Model(
            "the model's outputs mix uint8 and int8; several outputs must share one type".into(),
        ));
    }
    graph.output = pack_outputs(&mut graph, &ends)?;
    lce::mark_binary_layers(&mut graph).map_err(Problem::Model)?;
    mark_int16(&reader, &written, &mut graph);
    if kind == Kind::Int8 {
        mark_float32(&mut graph);
    }
    super::fold_pads::fold_pads(&mut graph);
    Ok(graph)
}

/// Records which tensors of an int8 model hold float32: those without
/// quantization (the float islands of [`operator_kind`], the float side of
/// QUANTIZE and DEQUANTIZE), but int32 ones. Packed signs are marked too;
/// the lowering types them as bits.
fn mark_float32(graph: &mut Graph) {
    graph.float32 = (0..graph.tensors.len())
        .filter(|t| graph.tensors[*t].quant.is_none() && !graph.int32.contains(t))
        .collect();
}

/// The number format operator `builtin` computes in: in an int8 model, an
/// operator that reads a float32 activation runs in float (a float island
/// a converter left, such as the float layers LCE keeps between a binary
/// layer's float output and a QUANTIZE), but QUANTIZE, which takes float
/// to int8.
fn operator_kind(ctx: &OpContext, builtin: i32) -> Kind {
    let float_activation = ctx.inputs.iter().any(|&t| {
        !is_constant(ctx, t)
            && ctx
                .reader
                .tensor(t)
                .is_ok_and(|t| t.dtype == fb::TensorType::FLOAT32)
    });
    match ctx.kind {
        Kind::Int8 if builtin != code::QUANTIZE && float_activation => Kind::Float32,
        kind => kind,
    }
}

/// Records which graph tensors hold int16: those written from the file's
/// int16 tensors, and those the importer made (several inputs or outputs
/// packed into one) that take the bytes of an int16 tensor.
fn mark_int16(reader: &Reader, written: &[Option<TensorId>], graph: &mut Graph) {
    for (file, t) in written.iter().enumerate() {
        if let Some(t) = *t {
            if reader.tensors.get(file).type_() == fb::TensorType::INT16 {
                graph.int16.insert(t);
            }
        }
    }
    let moved = |op: &LayerOp| matches!(op, LayerOp::Slice { .. } | LayerOp::Insert { .. });
    for layer in graph.layers.iter().filter(|l| moved(&l.op)) {
        let (x, y) = (layer.inputs[0], layer.output);
        if graph.int16.contains(&x) || graph.int16.contains(&y) {
            graph.int16.extend([x, y]);
        }
    }
}

/// The model input: one tensor, or several packed one after another into
/// one flat input that slices hand out (the device protocol carries one
/// input; `bench` packs a file's arrays in the model's order). Several
/// inputs must share one type.
fn pack_inputs(
    reader: &Reader,
    inputs: &[i32],
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
) -> Result<(), Problem> {
    let tensors = inputs
        .iter()
        .map(|&i| input_tensor(reader, i))
        .collect::<Result<Vec<_>, _>>()?;
    let len = written.len();
    let slot = move |i: i32| usize::try_from(i).ok().filter(|&i| i < len);
    if let [only] = &tensors[..] {
        graph.tensors.push(only.clone());
        written
            [slot(inputs[0]).ok_or(Problem::Model("the model input is out of range".into()))?] =
            Some(0);
        return Ok(());
    }
    if tensors
        .iter()
        .any(|t| t.quant.is_some() != tensors[0].quant.is_some())
    {
        return Err(Problem::Model(
            "the model's inputs mix int8 and float32; several inputs must share one type".into(),
        ));
    }
    let total: usize = tensors
        .iter()
        .map(|t| t.shape.elements().unwrap_or(0))
        .sum();
    graph.tensors.push(Tensor {
        name: "inputs".into(),
        shape: Shape::flat(1, total as u32),
        quant: tensors[0].quant,
    });
    let mut offset = 0u32;
    for (k, (t, &file)) in tensors.into_iter().zip(inputs).enumerate() {
        let n = t.shape.elements().unwrap_or(0) as u32;
        graph.tensors.push(t);
        let id = graph.tensors.len() - 1;
        written[slot(file).ok_or(Problem::Model(format!("model input {k} is out of range")))?] =
            Some(id);
        let op = LayerOp::Slice {
            begin: [0, 0, 0, offset],
            stride: [1; 4],
            view: Shape::flat(1, n),
        };
        graph
            .layers
            .push(Layer::new(&format!("input_{k}"), op, vec![0], id));
        offset += n;
    }
    Ok(())
}

/// Whether `t` is a uint8 model input or output (a requantization's uint8 side).
fn is_uint8(graph: &Graph, t: TensorId) -> bool {
    graph.layers.iter().any(|l| match l.op {
        LayerOp::Requantize {
            input_uint8,
            output_uint8,
        } => (input_uint8 && l.inputs[0] == t) || (output_uint8 && l.output == t),
        _ => false,
    })
}

/// A legacy uint8 model's input `k`: tensor `t` (read as int8) becomes the
/// uint8 input, requantized to the int8 tensor the model computes on, which
/// is returned.
fn uint8_input(graph: &mut Graph, t: TensorId, k: usize) -> TensorId {
    let int8 = graph.tensors[t].clone();
    let (scale, zero_point) = int8.quant.expect("a uint8 tensor reads as int8");
    graph.tensors[t].quant = Some((scale, zero_point + 128));
    graph.tensors.push(Tensor {
        name: format!("{}/int8", int8.name),
        ..int8
    });
    let shifted = graph.tensors.len() - 1;
    let op = LayerOp::Requantize {
        input_uint8: true,
        output_uint8: false,
    };
    let name = format!("uint8_input_{k}");
    graph.layers.push(Layer::new(&name, op, vec![t], shifted));
    shifted
}

/// A legacy uint8 model's output `k`: the int8 tensor `t` the model
/// computes requantized to the uint8 output, which is returned (and
/// takes `t`'s name).
fn uint8_output(graph: &mut Graph, t: TensorId, k: usize) -> TensorId {
    let int8 = graph.tensors[t].clone();
    let (scale, zero_point) = int8.quant.expect("a uint8 tensor reads as int8");
    graph.tensors[t].name = format!("{}/int8", int8.name);
    graph.tensors.push(Tensor {
        quant: Some((scale, zero_point + 128)),
        ..int8
    });
    let out = graph.tensors.len() - 1;
    let op = LayerOp::Requantize {
        input_uint8: false,
        output_uint8: true,
    };
    let name = format!("uint8_output_{k}");
    graph.layers.push(Layer::new(&name, op, vec![t], out));
    out
}

/// The model output: one tensor, or several copied one after another into
/// one flat output (which `bench` unpacks by the model's output shapes).
fn pack_outputs(graph: &mut Graph, ends: &[TensorId]) -> Result<TensorId, Problem> {
    if let [only] = ends {
        return Ok(*only);
    }
    let first = graph.tensors[ends[0]].quant;
    if ends
        .iter()
        .any(|&t| graph.tensors[t].quant.is_some() != first.is_some())
    {
        return Err(Problem::Model(
            "the model's outputs mix int8 and float32; several outputs must share one type".into(),
        ));
    }
    let total: u32 = ends
        .iter()
        .map(|&t| graph.tensors[t].shape.elements().unwrap_or(0) as u32)
        .sum();
    graph.tensors.push(Tensor {
        name: "outputs".into(),
        shape: Shape::flat(1, total),
        quant: first,
    });
    let packed = graph.tensors.len() - 1;
    let mut offset = 0u32;
    for (k, &t) in ends.iter().enumerate() {
        let n = graph.tensors[t].shape.elements().unwrap_or(0) as u32;
        let op = LayerOp::Insert {
            before: [0, 0, 0, offset],
            input_view: Shape::flat(1, n),
            output_view: Shape::flat(1, total),
        };
        graph
            .layers
            .push(Layer::new(&format!("output_{k}"), op, vec![t], packed));
        offset += n;
    }
    Ok(packed)
}

type OperatorCodes<'a> =
    Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::OperatorCode<'a>>>>;

/// The builtin code of an operator (since schema version 3 large codes live
/// in `builtin_code`; the deprecated byte is clamped), or its custom name.
fn opcode_of(codes: OperatorCodes, op: &fb::Operator) -> Option<Result<i32, String>> {
    let c = codes.filter(|c| (op.opcode_index() as usize) < c.len())?;
    Some(builtin_or_custom(&c.get(op.opcode_index() as usize)))
}

/// An operator code's builtin code, or its custom name.
fn builtin_or_custom(opcode: &fb::OperatorCode) -> Result<i32, String> {
    match opcode.custom_code() {
        Some(custom) => Err(custom.to_string()),
        None => Ok(opcode
            .builtin_code()
            .max(opcode.deprecated_builtin_code() as i32)),
    }
}

/// The first operator (not `skipped`) whose builtin code bench does not read.
fn first_unsupported(
    codes: OperatorCodes,
    sg: &fb::SubGraph,
    skipped: &HashSet<usize>,
) -> Result<(), Problem> {
    for (index, op) in sg.operators().iter().flatten().enumerate() {
        if skipped.contains(&index) {
            continue;
        }
        if let Some(Ok(builtin)) = opcode_of(codes, &op) {
            if !code::SUPPORTED.contains(&builtin) {
                return Err(Problem::Operator {
                    index,
                    op: code::name(builtin),
                    why: "this operator is not supported".into(),
                });
            }
        }
    }
    Ok(())
}

/// The tensor indices of a subgraph's or operator's inputs or outputs.
fn ends(v: Option<flatbuffers::Vector<'_, i32>>) -> Vec<i32> {
    v.map(|v| v.iter().collect::<Vec<_>>()).unwrap_or_default()
}

/// The model input: int8 or float32, with its shape.
fn input_tensor(reader: &Reader, input: i32) -> Result<Tensor, Problem> {
    let input_info = reader.tensor(input).map_err(Problem::Model)?;
    let quant = match input_info.dtype {
        fb::TensorType::INT8 | fb::TensorType::INT16 => {
            Some(input_info.activation_quant().map_err(Problem::Model)?)
        }
        // int32: indices, which only GATHER reads (its import checks that).
        fb::TensorType::FLOAT32 | fb::TensorType::INT32 => None,
        other => {
            return Err(Problem::Model(format!(
                "the model input is {}; int8, int16, float32 and int32 (GATHER's indices) are supported",
                type_name(other)
            )))
        }
    };
    let shape = input_info.shape().map_err(Problem::Model)?;
    Ok(Tensor {
        name: tensor_name(reader, input),
        shape,
        quant,
    })
}

/// Imports operator `index` into `graph`: its layer and output tensor.
fn add_operator(
    reader: &Reader,
    codes: OperatorCodes,
    kind: Kind,
    index: usize,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
) -> Result<(), Problem> {
    let Some(opcode) = opcode_of(codes, op) else {
        return Err(Problem::Operator {
            index,
            op: "?".into(),
            why: format!("operator code index {} is out of range", op.opcode_index()),
        });
    };
    let (op_name, builtin) = match &opcode {
        Err(custom) => (format!("custom operator '{custom}'"), -1),
        Ok(builtin) => (code::name(*builtin), *builtin),
    };
    let fail = |why: String| Problem::Operator {
        index,
        op: op_name.clone(),
        why,
    };
    let mut ctx = OpContext {
        reader,
        inputs: ends(op.inputs()),
        outputs: ends(op.outputs()),
        kind,
    };
    if builtin >= 0 {
        ctx.kind = operator_kind(&ctx, builtin);
    }
    if let Err(custom) = &opcode {
        if !lce::handles(custom) {
            return Err(fail(format!(
                "custom operators are not supported ({})",
                lce::UNSUPPORTED
            )));
        }
        let name = format!("{}_{index}", custom.to_lowercase());
        return lce::add(&ctx, custom, op, graph, written, &name).map_err(&fail);
    }
    // A DEQUANTIZE of constant weights was evaluated at import: its output
    // reads as a constant, and the operator has nothing left to run.
    let folded_output = ctx
        .outputs
        .first()
        .is_some_and(|o| reader.folded.is_some_and(|f| f.contains_key(o)));
    if builtin == code::DEQUANTIZE && folded_output {
        return Ok(());
    }
    if multi::handles(builtin) {
        let name = format!("{}_{index}", op_name.to_lowercase());
        return multi::add(&ctx, builtin, op, graph, written, &name).map_err(&fail);
    }
    let layer = import_op(&ctx, builtin, op, graph, written).map_err(&fail)?;
    let [out] = ctx.outputs[..] else {
        return Err(fail(format!(
            "has {} outputs; one is supported",
            ctx.outputs.len()
        )));
    };
    let out_index = usize::try_from(out)
        .ok()
        .filter(|&o| o < written.len())
        .ok_or_else(|| fail(format!("output tensor {out} is out of range")))?;
    if written[out_index].is_some() {
        return Err(fail(format!(
            "writes tensor {out}, which is already written"
        )));
    }
    let NewLayer {
        op: layer_op,
        inputs,
        shape,
        quant,
        weights,
        int8,
        groups,
        constant_input,
    } = layer;
    graph.tensors.push(Tensor {
        name: tensor_name(reader, out),
        shape,
        quant,
    });
    let t = graph.tensors.len() - 1;
    written[out_index] = Some(t);
    let mut layer = Layer::new(
        &format!("{}_{index}", op_name.to_lowercase()),
        layer_op,
        inputs,
        t,
    );
    (layer.weights, layer.int8) = (weights, int8);
    if let Some(constant) = constant_input {
        // One tensor per use: a constant several operators read stays unique by name.
        graph.tensors.push(Tensor {
            name: format!("{} (operand of operator {index})", constant.name),
            ..constant
        });
        layer.inputs.push(graph.tensors.len() - 1);
    }
    if let LayerOp::Lstm { block } = &layer.op {
        let scratch = lstm_scratch(graph, block, t).map_err(&fail)?;
        layer.inputs.push(scratch);
    }
    if let LayerOp::Svdf { params, time, .. } = &layer.op {
        let scratch = svdf::scratch(graph, params, time.len(), t);
        layer.inputs.push(scratch);
    }
    match groups {
        1 => graph.layers.push(layer),
        _ => super::grouped::push(graph, layer, groups),
    }
    Ok(())
}

/// The scratch tensor of the LSTM writing `output`: its states and one
/// step's gates, as bytes.
fn lstm_scratch(graph: &mut Graph, block: &[u8], output: TensorId) -> Result<TensorId> {
    let (n_cell, time_major) = lstm_sizes(block)?;
    let s = graph.tensors[output].shape;
    let batch = if time_major { s.w } else { s.n } as usize;
    let bytes = match kernels::lstm::is_16x8(block) {
        true => kernels::lstm16::scratch_len(batch, n_cell),
        false => kernels::lstm::scratch_len(batch, n_cell),
    };
    graph.tensors.push(Tensor {
        name: format!("{}/lstm_scratch", graph.tensors[output].name),
        shape: Shape::flat(1, bytes as u32),
        // Bytes, not values: a quantization only so the model reads as int8 throughout.
        quant: Some((1.0, 0)),
    });
    Ok(graph.tensors.len() - 1)
}

/// An LSTM block's cell count and whether time comes first, in either scheme.
fn lstm_sizes(block: &[u8]) -> Result<(usize, bool)> {
    if kernels::lstm::is_16x8(block) {
        let l = kernels::lstm16::Lstm16::parse(block).map_err(|e| e.to_string())?;
        return Ok((l.n_cell, l.time_major));
    }
    let l = kernels::lstm::Lstm::parse(block).map_err(|e| e.to_string())?;
    Ok((l.n_cell, l.time_major))
}

fn tensor_name(reader: &Reader, index: i32) -> String {
    reader
        .tensors
        .get(index as usize)
        .name()
        .unwrap_or("")
        .to_string()
}

/// int8 if any activation (a tensor without constant data) is int8 or
/// uint8 (read as int8), else float32: a float model may keep int8 weights
/// (dynamic-range quantization).
fn kind_of(reader: &Reader, states: &HashSet<i32>) -> Result<Kind> {
    let mut kind = Kind::Float32;
    for (i, t) in reader.tensors.iter().enumerate() {
        if states.contains(&(i as i32)) {
            continue;
        }
        match t.type_() {
            fb::TensorType::INT8 | fb::TensorType::UINT8 => {
                let constant = reader.tensor(i as i32).is_ok_and(|t| !t.data.is_empty());
                if !constant {
                    kind = Kind::Int8;
                }
            }
            fb::TensorType::INT16 => {
                let constant = reader.tensor(i as i32).is_ok_and(|t| !t.data.is_empty());
                if !constant {
                    return Ok(Kind::Int16);
                }
            }
            _ => {}
        }
    }
    Ok(kind)
}

/// One imported operator, before its output tensor is added.
struct NewLayer {
    op: LayerOp,
    inputs: Vec<TensorId>,
    shape: Shape,
    quant: Option<(f32, i32)>,
    weights: Option<LayerWeights>,
    int8: Option<Int8Weights>,
    /// A grouped CONV_2D's groups (1 for every other layer).
    groups: u32,
    /// A constant operand's tensor, added to the graph as the layer's last input.
    constant_input: Option<Tensor>,
}

/// What every operator's import needs: its context, the graph so far,
/// its activation input and its declared output.
struct Site<'s, 'r, 'a> {
    ctx: &'s OpContext<'r, 'a>,
    builtin: i32,
    op: &'s fb::Operator<'a>,
    written: &'s [Option<TensorId>],
    /// The input's shape and quantization.
    s: Shape,
    x_quant: Option<(f32, i32)>,
    /// The output's declared shape, dimensions and quantization.
    declared: Shape,
    out_dims: Vec<u32>,
    quant: Option<(f32, i32)>,
}

impl Site<'_, '_, '_> {
    /// Input `i`, which an earlier operator or the model input must write.
    fn activation_input(&self, i: usize) -> Result<TensorId> {
        let t = self.ctx.input(i)?;
        self.written
            .get(t as usize)
            .copied()
            .flatten()
            .ok_or(format!(
                "input {i} (tensor {t}) is not written by an earlier operator or the model input"
            ))
    }

    /// The declared output shape must be the one the inputs imply.
    /// Whether the file stores the operator's first input as uint8.
    fn int16_input(&self) -> bool {
        self.ctx
            .input(0)
            .and_then(|t| self.ctx.reader.tensor(t))
            .is_ok_and(|t| t.dtype == fb::TensorType::INT16)
    }

    fn uint8_input(&self) -> bool {
        self.ctx
            .input(0)
            .and_then(|t| self.ctx.reader.tensor(t))
            .is_ok_and(|t| t.uint8)
    }

    fn check_shape(&self, inferred: Shape) -> Result<()> {
        if inferred != self.declared {
            return Err(format!(
                "its output shape {:?} does not match the shape its inputs imply, {inferred:?}",
                self.out_dims
            ));
        }
        Ok(())
    }

    /// Input and output quantization must be equal (TFLite requires it of `what`).
    fn same_quant(&self, what: &str) -> Result<()> {
        if self.x_quant != self.quant {
            return Err(format!("{what} with different input and output quantization is not supported (TFLite requires them equal)"));
        }
        Ok(())
    }
}

fn import_op(
    ctx: &OpContext,
    builtin: i32,
    op: &fb::Operator,
    graph: &Graph,
    written: &[Option<TensorId>],
) -> Result<NewLayer> {
    let [out] = ctx.outputs[..] else {
        return Err(format!(
            "has {} outputs; one is supported",
            ctx.outputs.len()
        ));
    };
    let out_info = ctx.reader.tensor(out)?;
    if builtin == code::GATHER && ctx.optional(1).is_some_and(|t| !is_constant(ctx, t)) {
        return gather_by_indices(ctx, op, graph, written, &out_info);
    }
    // A quantized operator keeps its input's integer type, but QUANTIZE,
    // which may change it (int8 and int16 either way).
    let input_type = ctx.input(0).and_then(|t| ctx.reader.tensor(t))?.dtype;
    let expected_type = match (builtin, ctx.kind, out_info.dtype) {
        (code::DEQUANTIZE, ..) | (_, Kind::Float32, _) => fb::TensorType::FLOAT32,
        (code::QUANTIZE, _, t @ (fb::TensorType::INT8 | fb::TensorType::INT16)) => t,
        (..) if input_type == fb::TensorType::INT16 => fb::TensorType::INT16,
        _ => fb::TensorType::INT8,
    };
    let int16 = [input_type, expected_type].contains(&fb::TensorType::INT16);
    if int16 && !code::INT16_EXACT.contains(&builtin) {
        return Err("it has int16 tensors, and bench runs only the int16 operators checked against LiteRT's reference kernels (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, the pools, ADD, SUB, MUL, RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, SOFTMAX, QUANTIZE, DEQUANTIZE, PAD, MEAN and the operators that move bytes) or TFLite Micro's (UNIDIRECTIONAL_SEQUENCE_LSTM)".into());
    }
    if out_info.dtype != expected_type {
        return Err(format!(
            "its output is {}, expected {}",
            type_name(out_info.dtype),
            type_name(expected_type)
        ));
    }
    let quant = match expected_type {
        fb::TensorType::INT8 | fb::TensorType::INT16 => Some(out_info.activation_quant()?),
        _ => None,
    };
    let mut site = Site {
        ctx,
        builtin,
        op,
        written,
        s: Shape::flat(1, 1),
        x_quant: None,
        declared: out_info.shape()?,
        out_dims: out_info.dims.clone(),
        quant,
    };
    let x = site.activation_input(first_activation(ctx, builtin))?;
    (site.s, site.x_quant) = (graph.tensors[x].shape, graph.tensors[x].quant);
    if site.uint8_input() && !code::UINT8_EXACT.contains(&builtin) {
        return Err("its input is uint8, and bench runs only the uint8 operators checked against TFLite's uint8 kernels (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, the pools, ADD, SUB, MUL, MAXIMUM, MINIMUM, MEAN, SOFTMAX, the standalone activations, QUANTIZE, DEQUANTIZE and the operators that move bytes)".into());
    }
    let requantize = builtin == code::QUANTIZE && site.x_quant.is_some();
    let int8_input = (builtin != code::QUANTIZE || requantize) && ctx.kind != Kind::Float32;
    if int8_input != site.x_quant.is_some() {
        return Err(format!(
            "its input must be {}",
            if int8_input { "int8" } else { "float32" }
        ));
    }
    let mut layer = NewLayer {
        op: LayerOp::Flatten,
        inputs: vec![x],
        shape: site.declared,
        quant,
        weights: None,
        int8: None,
        groups: 1,
        constant_input: None,
    };
    match builtin {
        code::CONV_2D | code::DEPTHWISE_CONV_2D => conv(&site, &mut layer)?,
        code::FULLY_CONNECTED => dense(&site, &mut layer)?,
        code::AVERAGE_POOL_2D | code::MAX_POOL_2D => pool(&site, &mut layer)?,
        code::ADD
        | code::SUB
        | code::MUL
        | code::MAXIMUM
        | code::MINIMUM
        | code::SQUARED_DIFFERENCE => binary(&site, &mut layer)?,
        // SQUEEZE and EXPAND_DIMS only relabel dimensions: the bytes stay.
        code::RESHAPE | code::SQUEEZE | code::EXPAND_DIMS => reshape(&site, &mut layer)?,
        code::SOFTMAX => softmax(&site, &mut layer)?,
        code::LOG_SOFTMAX => log_softmax(&site, &mut layer)?,
        code::PAD | code::PADV2 => pad(&site, &mut layer)?,
        code::TRANSPOSE => transpose(&site, &mut layer)?,
        code::MEAN => mean(&site, &mut layer)?,
        code::SLICE | code::STRIDED_SLICE => slice(&site, &mut layer)?,
        code::GATHER => gather(&site, &mut layer)?,
        code::RESIZE_NEAREST_NEIGHBOR => resize_nearest(&site, &mut layer)?,
        code::RESIZE_BILINEAR => resize_bilinear(&site, &mut layer)?,
        code::UNIDIRECTIONAL_SEQUENCE_LSTM => sequence_lstm(&site, &mut layer)?,
        code::SVDF => svdf::import(&site, &mut layer)?,
        code::BATCH_MATMUL => batch_matmul(&site, &mut layer)?,
        code::LOGISTIC
        | code::RELU
        | code::RELU_N1_TO_1
        | code::RELU6
        | code::TANH
        | code::LEAKY_RELU
        | code::RELU_0_TO_1
        | code::HARD_SWISH => elementwise(&site, &mut layer)?,
        code::QUANTIZE => {
            site.check_shape(site.s)?;
            // Between two int8 tensors (uint8 ones read as int8 too).
            layer.op = match requantize {
                true => LayerOp::Requantize {
                    input_uint8: false,
                    output_uint8: false,
                },
                false => LayerOp::Quantize,
            };
        }
        code::DEQUANTIZE => {
            site.check_shape(site.s)?;
            layer.op = LayerOp::Dequantize;
        }
        _ => return Err("this operator is not supported".into()),
    }
    Ok(layer)
}

/// CONV_2D and DEPTHWISE_CONV_2D: geometry, filter shape, weights.
fn conv(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    let depthwise = site.builtin == code::DEPTHWISE_CONV_2D;
    let (pad, stride, dilation, act) = if depthwise {
        let o = site
            .op
            .builtin_options_as_depthwise_conv_2_doptions()
            .ok_or("it has no DepthwiseConv2DOptions")?;
        (
            o.padding(),
            (o.stride_h(), o.stride_w()),
            (o.dilation_h_factor(), o.dilation_w_factor()),
            o.fused_activation_function(),
        )
    } else {
        let o = site
            .op
            .builtin_options_as_conv_2_doptions()
            .ok_or("it has no Conv2DOptions")?;
        (
            o.padding(),
            (o.stride_h(), o.stride_w()),
            (o.dilation_h_factor(), o.dilation_w_factor()),
            o.fused_activation_function(),
        )
    };
    let (padding, activation) = (padding(pad)?, activation(act)?);
    let stride = (
        positive(stride.0, "stride height")?,
        positive(stride.1, "stride width")?,
    );
    let dilation = (
        positive(dilation.0, "dilation height")?,
        positive(dilation.1, "dilation width")?,
    );
    let filter = site.ctx.reader.tensor(site.ctx.input(1)?)?;
    let [fo, kh, kw, fi] = filter.dims[..] else {
        return Err(format!(
            "its filter has shape {:?}, expected 4 dimensions",
            filter.dims
        ));
    };
    let kernel = (kh, kw);
    let (filters, multiplier) = if depthwise {
        if fo != 1 || fi % s.c != 0 {
            return Err(format!(
                "its filter has shape {:?}, expected [1, kh, kw, {} * multiplier]",
                filter.dims, s.c
            ));
        }
        (fi, fi / s.c)
    } else {
        // TFLite's grouped convolution: input channels a multiple of the
        // filter's, output channels a multiple of the groups.
        layer.groups = s.c / fi;
        if !s.c.is_multiple_of(fi) || !fo.is_multiple_of(layer.groups) {
            return Err(format!("its filter has {fi} input channels and {fo} outputs for an input of {} channels; a grouped convolution needs the input's a multiple of the filter's and the outputs a multiple of the groups", s.c));
        }
        (fo, 1)
    };
    let (_, (oh, ow)) = Window::new((kh, kw), stride, dilation, padding, (s.h, s.w));
    site.check_shape(Shape::new(s.n, oh, ow, filters))?;
    layer.op = if depthwise {
        LayerOp::DepthwiseConv2d {
            multiplier,
            kernel,
            stride,
            dilation,
            padding,
            activation,
        }
    } else {
        LayerOp::Conv2d {
            filters,
            kernel,
            stride,
            dilation,
            padding,
            activation,
        }
    };
    weights(
        site.ctx,
        layer,
        site.x_quant,
        filters as usize,
        if depthwise { 3 } else { 0 },
    )?;
    Ok(())
}

/// FULLY_CONNECTED: weights over the input's features per batch.
fn dense(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    let act = match site.op.builtin_options_as_fully_connected_options() {
        Some(o) if o.weights_format() != 0 => {
            return Err("shuffled weights are not supported".into())
        }
        Some(o) => o.fused_activation_function(),
        None => fb::ActivationFunctionType::NONE,
    };
    let activation = activation(act)?;
    let filter = site.ctx.reader.tensor(site.ctx.input(1)?)?;
    let [units, depth] = filter.dims[..] else {
        return Err(format!(
            "its weights have shape {:?}, expected [units, depth]",
            filter.dims
        ));
    };
    if depth as usize != s.features() {
        return Err(format!(
            "its weights have depth {depth} but its input has {} features per batch",
            s.features()
        ));
    }
    if site.declared.elements() != Some(s.n as usize * units as usize) {
        return Err(format!(
            "its output shape {:?} does not hold {} x {units} values",
            site.out_dims, s.n
        ));
    }
    layer.shape = Shape::flat(s.n, units);
    layer.op = LayerOp::Dense { units, activation };
    if site.x_quant.is_none() && filter.dtype == fb::TensorType::INT8 {
        return hybrid_weights(site, layer, units as usize);
    }
    weights(site.ctx, layer, site.x_quant, units as usize, 0)?;
    Ok(())
}

/// AVERAGE_POOL_2D and MAX_POOL_2D.
fn pool(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    let o = site
        .op
        .builtin_options_as_pool_2_doptions()
        .ok_or("it has no Pool2DOptions")?;
    let fused = activation(o.fused_activation_function())?;
    let padding = padding(o.padding())?;
    let kernel = (
        positive(o.filter_height(), "filter height")?,
        positive(o.filter_width(), "filter width")?,
    );
    let stride = (
        positive(o.stride_h(), "stride height")?,
        positive(o.stride_w(), "stride width")?,
    );
    let (_, (oh, ow)) = Window::new(kernel, stride, (1, 1), padding, (s.h, s.w));
    site.check_shape(Shape::new(s.n, oh, ow, s.c))?;
    site.same_quant("a pool")?;
    layer.op = if site.builtin == code::MAX_POOL_2D {
        LayerOp::MaxPool {
            kernel,
            stride,
            padding,
            activation: fused,
        }
    } else {
        LayerOp::AvgPool {
            kernel,
            stride,
            padding,
            // TFLite's uint8 kernel rounds its (never negative) sums half up.
            rounding: if site.uint8_input() {
                PoolRounding::Up
            } else {
                PoolRounding::AwayFromZero
            },
            activation: fused,
        }
    };
    Ok(())
}

/// ADD, SUB, MUL, MAXIMUM and MINIMUM of two activations, broadcast as
/// NumPy does (dimensions aligned from the last; each 1 or the output's).
/// An ADD of two same-shaped tensors keeps its own kernel.
fn binary(site: &Site, layer: &mut NewLayer) -> Result<()> {
    use kernels::broadcast::Binary;
    let op = match site.builtin {
        code::ADD => Binary::Add,
        code::SUB => Binary::Sub,
        code::MUL => Binary::Mul,
        code::MAXIMUM => Binary::Maximum,
        code::SQUARED_DIFFERENCE => Binary::SquaredDifference,
        _ => Binary::Minimum,
    };
    let o = site.op;
    let act = match op {
        Binary::Add => o
            .builtin_options_as_add_options()
            .map(|o| o.fused_activation_function()),
        Binary::Sub => o
            .builtin_options_as_sub_options()
            .map(|o| o.fused_activation_function()),
        Binary::Mul => o
            .builtin_options_as_mul_options()
            .map(|o| o.fused_activation_function()),
        _ => None,
    };
    let activation = activation(act.unwrap_or(fb::ActivationFunctionType::NONE))?;
    // Either operand may be a constant of the model (a scale, an offset,
    // the 1 of `1 - x`); the layer's activation is its first input.
    let is_constant = |i: usize| {
        site.ctx
            .input(i)
            .and_then(|t| site.ctx.reader.tensor(t))
            .is_ok_and(|t| !t.data.is_empty())
    };
    let (activation_operand, constant_operand) = match (is_constant(0), is_constant(1)) {
        (true, true) => return Err("both its operands are constants".into()),
        (true, false) => (1, Some(0)),
        (false, true) => (0, Some(1)),
        (false, false) => (0, None),
    };
    let constant_b = match constant_operand {
        Some(i) => Some(binary_constant(site, i)?),
        None => {
            layer.inputs.push(site.activation_input(1)?);
            None
        }
    };
    let dims =
        |i: usize| -> Result<Vec<u32>> { Ok(site.ctx.reader.tensor(site.ctx.input(i)?)?.dims) };
    // `a` is the activation, `b` the other operand (the constant, if any).
    let (da, db) = (dims(activation_operand)?, dims(1 - activation_operand)?);
    let rank = da.len().max(db.len());
    let padded = |d: &[u32]| [vec![1; rank - d.len()], d.to_vec()].concat();
    let (pa, pb) = (padded(&da), padded(&db));
    let mut out = Vec::with_capacity(rank);
    for (&x, &y) in pa.iter().zip(&pb) {
        if x != y && x != 1 && y != 1 {
            return Err(format!("its operands {da:?} and {db:?} do not broadcast"));
        }
        out.push(x.max(y));
    }
    if out != site.out_dims {
        return Err(format!(
            "its output shape {:?} is not its operands' broadcast shape {out:?}",
            site.out_dims
        ));
    }
    let (a_view, b_view) = (nhwc(&pa)?, nhwc(&pb)?);
    layer.op = if op == Binary::Add && a_view == b_view && constant_b.is_none() {
        LayerOp::Add { activation }
    } else {
        LayerOp::Binary {
            op,
            activation,
            a_view,
            b_view,
            constant_b: constant_b.as_ref().map(|(c, _)| c.clone()),
        }
    };
    layer.constant_input = constant_b.map(|(_, t)| t);
    Ok(())
}

/// The input an operator's layer reads as its activation: the first, but
/// for a binary operator whose first operand is a constant of the model.
fn first_activation(ctx: &OpContext, builtin: i32) -> usize {
    const BINARY: [i32; 6] = [
        code::ADD,
        code::SUB,
        code::MUL,
        code::MAXIMUM,
        code::MINIMUM,
        code::SQUARED_DIFFERENCE,
    ];
    let constant = |i: usize| {
        ctx.input(i)
            .and_then(|t| ctx.reader.tensor(t))
            .is_ok_and(|t| !t.data.is_empty())
    };
    usize::from(BINARY.contains(&builtin) && constant(0) && !constant(1))
}

/// BATCH_MATMUL: operands of rank 2 to 4 viewed as `[b0, b1, rows, cols]`,
/// batch axes broadcast, either stored transposed; the second operand may
/// be a constant of the model (weights).
fn batch_matmul(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let o = site.op.builtin_options_as_batch_mat_mul_options();
    let adj = kernels::matmul::Adjoint {
        x: o.is_some_and(|o| o.adj_x()),
        y: o.is_some_and(|o| o.adj_y()),
    };
    let constant = site
        .ctx
        .input(1)
        .and_then(|t| site.ctx.reader.tensor(t))
        .is_ok_and(|t| !t.data.is_empty());
    let constant_b = match constant {
        true => Some(binary_constant(site, 1)?),
        false => {
            layer.inputs.push(site.activation_input(1)?);
            None
        }
    };
    let dims =
        |i: usize| -> Result<Vec<u32>> { Ok(site.ctx.reader.tensor(site.ctx.input(i)?)?.dims) };
    let view = |d: &[u32]| -> Result<Shape> {
        match d.len() {
            2..=4 => {
                let p = [vec![1; 4 - d.len()], d.to_vec()].concat();
                Ok(Shape::new(p[0], p[1], p[2], p[3]))
            }
            r => Err(format!("an operand of rank {r} is not supported (2 to 4)")),
        }
    };
    let (a, b, out) = (view(&dims(0)?)?, view(&dims(1)?)?, view(&site.out_dims)?);
    let (m, k) = if adj.x { (a.c, a.w) } else { (a.w, a.c) };
    let (kb, n) = if adj.y { (b.c, b.w) } else { (b.w, b.c) };
    let batch = |x: u32, y: u32| (x == y || x == 1 || y == 1).then_some(x.max(y));
    let want = match (batch(a.n, b.n), batch(a.h, b.h)) {
        (Some(b0), Some(b1)) if k == kb => Shape::new(b0, b1, m, n),
        _ => {
            return Err(format!(
                "its operands {a:?} and {b:?} (adj_x {}, adj_y {}) do not multiply",
                adj.x, adj.y
            ))
        }
    };
    if want != out {
        return Err(format!(
            "its output shape {:?} is not the product's {want:?}",
            site.out_dims
        ));
    }
    layer.op = LayerOp::BatchMatMul {
        adj,
        a_view: a,
        b_view: b,
        out_view: out,
        constant_b: constant_b.as_ref().map(|(c, _)| c.clone()),
    };
    layer.constant_input = constant_b.map(|(_, t)| t);
    Ok(())
}

/// A binary operator's constant operand `i`: its values (int8 kept exactly
/// in an int8 model), and the tensor that gives its shape and quantization.
fn binary_constant(site: &Site, i: usize) -> Result<(BinaryConstant, Tensor)> {
    let index = site.ctx.input(i)?;
    let t = site.ctx.reader.tensor(index)?;
    let (constant, quant) = match (site.ctx.kind, t.dtype) {
        (Kind::Int8, fb::TensorType::INT8) => {
            let (scale, zero_point) = t.activation_quant()?;
            let int8: Vec<i8> = bytemuck::cast_slice(&t.data).to_vec();
            let values = int8
                .iter()
                .map(|&q| scale * (q as i32 - zero_point) as f32)
                .collect();
            (
                BinaryConstant {
                    values,
                    int8: Some(int8),
                    first: i == 0,
                },
                Some((scale, zero_point)),
            )
        }
        (Kind::Float32, fb::TensorType::FLOAT32) => {
            let values = le_words(&t.data, f32::from_le_bytes);
            let first = i == 0;
            (
                BinaryConstant {
                    values,
                    int8: None,
                    first,
                },
                None,
            )
        }
        (_, other) => {
            return Err(format!(
                "its constant operand is {}, not the model's type",
                type_name(other)
            ))
        }
    };
    let tensor = Tensor {
        name: tensor_name(site.ctx.reader, index),
        shape: t.shape()?,
        quant,
    };
    Ok((constant, tensor))
}

/// RESHAPE to as many elements.
fn reshape(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    if site.declared.elements() != s.elements() {
        return Err(format!(
            "it reshapes {s:?} to {:?}, which has another number of elements",
            site.out_dims
        ));
    }
    site.same_quant("a reshape")?;
    layer.op = LayerOp::Reshape;
    Ok(())
}

/// SOFTMAX (int8: output scale 1/256, zero point -128).
fn softmax(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    let beta = site
        .op
        .builtin_options_as_softmax_options()
        .map_or(1.0, |o| o.beta());
    if !(beta.is_finite() && beta > 0.0) {
        return Err(format!("beta is {beta}"));
    }
    site.check_shape(s)?;
    if !site.int16_input() && site.quant.is_some_and(|q| q != (1.0 / 256.0, -128)) {
        return Err("an int8 softmax must output scale 1/256 and zero point -128 (the TFLite int8 specification)".into());
    }
    layer.op = LayerOp::Softmax { beta };
    Ok(())
}

/// LOG_SOFTMAX over the last axis, float32 or int8 (output scale 16/256,
/// zero point 127).
fn log_softmax(site: &Site, layer: &mut NewLayer) -> Result<()> {
    site.check_shape(site.s)?;
    match site.quant {
        Some(q) if q != (16.0 / 256.0, 127) => Err("an int8 LOG_SOFTMAX must output scale 16/256 and zero point 127 (the TFLite int8 specification)".into()),
        _ => {
            layer.op = LayerOp::LogSoftmax;
            Ok(())
        }
    }
}

/// The NHWC axis of axis `axis` (negative counts from the end) of a tensor
/// of `rank`, as [`nhwc`] maps ranks 1 to 5 into NHWC: `None` for the unit
/// first axis of a rank-5 tensor, which has no NHWC axis.
fn nhwc_axis(rank: usize, axis: i64) -> Result<Option<usize>> {
    let at = if axis < 0 { axis + rank as i64 } else { axis };
    let map: &[Option<usize>] = match rank {
        0 | 1 => &[Some(3)],
        2 => &[Some(0), Some(3)],
        3 => &[Some(0), Some(2), Some(3)],
        4 => &[Some(0), Some(1), Some(2), Some(3)],
        5 => &[None, Some(0), Some(1), Some(2), Some(3)],
        _ => {
            return Err(format!(
                "a tensor of rank {rank} is not supported (at most 5)"
            ))
        }
    };
    usize::try_from(at)
        .ok()
        .and_then(|a| map.get(a).copied())
        .ok_or(format!("axis {axis} is outside a tensor of rank {rank}"))
}

/// The NHWC axis an operator works along: one that has one.
fn along_axis(rank: usize, axis: i64) -> Result<usize> {
    nhwc_axis(rank, axis)?.ok_or_else(|| {
        "it works along the unit first axis of a rank-5 tensor, which is not supported".into()
    })
}

/// An axis of a tensor of `rank`, negative counting from the end.
fn axis_in(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or(format!("axis {axis} is outside a tensor of rank {rank}"))
}

/// The TFLite rank of the operator's input 0.
fn input_rank(site: &Site) -> Result<usize> {
    Ok(site.ctx.reader.tensor(site.ctx.input(0)?)?.dims.len())
}

/// A constant int32 or int64 input as integers.
fn int_constant(site: &Site, i: usize) -> Result<Vec<i64>> {
    int_values(site.ctx, i)
}

/// A constant int32 or int64 input of an operator as integers.
fn int_values(ctx: &OpContext, i: usize) -> Result<Vec<i64>> {
    let t = ctx.reader.tensor(ctx.input(i)?)?;
    let (dtype, bytes) = match t.dtype {
        fb::TensorType::INT64 => (fb::TensorType::INT64, 8),
        _ => (fb::TensorType::INT32, 4),
    };
    let t = ctx.constant(i, dtype, bytes)?;
    Ok(t.data
        .chunks_exact(bytes)
        .map(|b| match bytes {
            8 => i64::from_le_bytes(b.try_into().expect("8 bytes")),
            _ => i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))),
        })
        .collect())
}

/// PAD and PADV2: `[rank, 2]` paddings (before, after per axis); PADV2's
/// constant value (int8 in the output's quantization, or float32).
fn pad(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let rank = input_rank(site)?;
    let paddings = int_constant(site, 1)?;
    if paddings.len() != rank * 2 || paddings.iter().any(|&p| !(0..=1 << 14).contains(&p)) {
        return Err(format!(
            "its paddings {paddings:?} are not [{rank}, 2] non-negative amounts"
        ));
    }
    let (mut before, mut after) = ([0u32; 4], [0u32; 4]);
    for axis in 0..rank {
        let pads = (paddings[2 * axis] as u32, paddings[2 * axis + 1] as u32);
        match nhwc_axis(rank, axis as i64)? {
            Some(k) => (before[k], after[k]) = pads,
            None if pads == (0, 0) => {}
            None => return Err(along_axis(rank, axis as i64).unwrap_err()),
        }
    }
    let out = kernels::layout::padded(site.s, before, after).ok_or("its padded shape overflows")?;
    site.check_shape(out)?;
    let value = match site.ctx.optional(2).filter(|_| site.builtin == code::PADV2) {
        None => 0.0,
        Some(_) => pad_value(site)?,
    };
    layer.op = LayerOp::Pad {
        before,
        after,
        value,
    };
    Ok(())
}

/// PADV2's constant value as a real number.
fn pad_value(site: &Site) -> Result<f32> {
    match site.quant {
        None => {
            let t = site.ctx.constant(2, fb::TensorType::FLOAT32, 4)?;
            let v = le_words(&t.data, f32::from_le_bytes);
            v.first().copied().ok_or("its pad value is empty".into())
        }
        Some((scale, zp)) => {
            let int16 = site.int16_input();
            let t = match int16 {
                true => site.ctx.constant(2, fb::TensorType::INT16, 2)?,
                false => site.ctx.constant(2, fb::TensorType::INT8, 1)?,
            };
            if t.activation_quant()? != (scale, zp) {
                return Err("its pad value is quantized differently from its output (TFLite requires them equal)".into());
            }
            let q = match (int16, &t.data[..]) {
                (true, [lo, hi, ..]) => i32::from(i16::from_le_bytes([*lo, *hi])),
                (false, [b, ..]) => i32::from(*b as i8),
                _ => return Err("its pad value is empty".into()),
            };
            Ok(scale * (q - zp) as f32)
        }
    }
}

/// TRANSPOSE by a constant permutation of the input's axes.
fn transpose(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let rank = input_rank(site)?;
    let perm = int_constant(site, 1)?;
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank as i64).collect::<Vec<_>>() {
        return Err(format!("its permutation {perm:?} is not one of 0..{rank}"));
    }
    let mut nhwc = [0u8, 1, 2, 3];
    for (axis, &from) in perm.iter().enumerate() {
        match (nhwc_axis(rank, axis as i64)?, nhwc_axis(rank, from)?) {
            (Some(to), Some(from)) => nhwc[to] = from as u8,
            (None, None) => {}
            _ => {
                return Err(
                    "it moves the unit first axis of a rank-5 tensor, which is not supported"
                        .into(),
                )
            }
        }
    }
    site.check_shape(kernels::layout::permuted(site.s, nhwc))?;
    layer.op = LayerOp::Transpose { perm: nhwc };
    Ok(())
}

/// A standalone activation: same shape out as in.
fn elementwise(site: &Site, layer: &mut NewLayer) -> Result<()> {
    use super::elementwise::Elementwise;
    site.check_shape(site.s)?;
    let f = match site.builtin {
        code::LOGISTIC => Elementwise::Logistic,
        code::TANH => Elementwise::Tanh,
        code::RELU => Elementwise::Relu,
        code::RELU6 => Elementwise::Relu6,
        code::RELU_N1_TO_1 => Elementwise::ReluN1To1,
        code::RELU_0_TO_1 => Elementwise::Relu0To1,
        code::HARD_SWISH => Elementwise::HardSwish,
        _ => {
            let alpha = site
                .op
                .builtin_options_as_leaky_relu_options()
                .map_or(0.0, |o| o.alpha());
            if !alpha.is_finite() {
                return Err(format!("its alpha is {alpha}"));
            }
            Elementwise::LeakyRelu { alpha }
        }
    };
    if let (Some((s_in, _)), Some((s_out, _)), false) =
        (site.x_quant, site.quant, site.int16_input())
    {
        if let Some(why) = f.int8_refusal(s_in, s_out) {
            return Err(why.into());
        }
    }
    layer.op = LayerOp::Activation { f };
    Ok(())
}

/// SLICE (constant begin and size, -1 to the end) and STRIDED_SLICE
/// (constant begin, end and strides with TFLite's masks; the ellipsis and
/// new-axis masks are not read), as per-axis starts and steps.
fn slice(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let info = site.ctx.reader.tensor(site.ctx.input(0)?)?;
    let (rank, dims) = (info.dims.len(), &info.dims);
    let arg = |i: usize| -> Result<Vec<i64>> {
        let v = int_constant(site, i)?;
        if v.len() != rank {
            return Err(format!(
                "its input {i} has {} values for a tensor of rank {rank}",
                v.len()
            ));
        }
        Ok(v)
    };
    let (starts, steps, extents) = if site.builtin == code::SLICE {
        let (begin, size) = (arg(1)?, arg(2)?);
        let mut extents = Vec::new();
        for k in 0..rank {
            let d = i64::from(dims[k]);
            let size = if size[k] == -1 { d - begin[k] } else { size[k] };
            if begin[k] < 0 || size < 1 || begin[k] + size > d {
                return Err(format!(
                    "it slices {size} from {} of an axis of {d}",
                    begin[k]
                ));
            }
            extents.push(size);
        }
        (begin, vec![1; rank], extents)
    } else {
        strided(site, dims, (arg(1)?, arg(2)?, arg(3)?))?
    };
    let (mut begin, mut stride, mut out) = ([0u32; 4], [1i32; 4], Vec::new());
    for k in 0..rank {
        // The unit first axis of a rank-5 tensor can only be taken whole.
        if let Some(at) = nhwc_axis(rank, k as i64)? {
            (begin[at], stride[at]) = (starts[k] as u32, steps[k] as i32);
        }
        out.push(extents[k] as u32);
    }
    let view = nhwc(&out)?;
    if view.elements() != site.declared.elements() {
        return Err(format!(
            "its output shape {:?} does not hold the slice {out:?}",
            site.out_dims
        ));
    }
    layer.op = LayerOp::Slice {
        begin,
        stride,
        view,
    };
    Ok(())
}

/// STRIDED_SLICE's start, step and extent per axis, as TFLite's
/// `StartForAxis` and `StopForAxis` resolve them.
fn strided(
    site: &Site,
    dims: &[u32],
    (begin, end, strides): (Vec<i64>, Vec<i64>, Vec<i64>),
) -> Result<(Vec<i64>, Vec<i64>, Vec<i64>)> {
    let o = site.op.builtin_options_as_strided_slice_options();
    let mask = |f: fn(&fb::StridedSliceOptions) -> i32| o.as_ref().map_or(0, f);
    if mask(|o| o.ellipsis_mask()) != 0 || mask(|o| o.new_axis_mask()) != 0 {
        return Err("its ellipsis and new-axis masks are not supported".into());
    }
    let (begin_mask, end_mask, shrink) = (
        mask(|o| o.begin_mask()),
        mask(|o| o.end_mask()),
        mask(|o| o.shrink_axis_mask()),
    );
    let offset = o.as_ref().is_some_and(|o| o.offset());
    let (mut starts, mut steps, mut extents) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..dims.len() {
        let bit = 1 << k;
        // A shrunk axis takes one element, read forwards whatever its stride.
        let s = if shrink & bit != 0 { 1 } else { strides[k] };
        let d = i64::from(dims[k]);
        if s == 0 {
            return Err("a stride of 0".into());
        }
        let clamp = |v: i64| {
            if s > 0 {
                v.clamp(0, d)
            } else {
                v.clamp(-1, d - 1)
            }
        };
        let wrap = |v: i64| if v < 0 { v + d } else { v };
        let start = if begin_mask & bit != 0 {
            if s > 0 {
                0
            } else {
                d - 1
            }
        } else {
            clamp(wrap(begin[k]))
        };
        let stop = if shrink & bit != 0 {
            start + 1
        } else if end_mask & bit != 0 {
            if s > 0 {
                d
            } else {
                -1
            }
        } else {
            clamp(wrap(if offset { begin[k] + end[k] } else { end[k] }))
        };
        let extent = if s > 0 {
            (stop - start + s - 1) / s
        } else {
            (start - stop + (-s) - 1) / (-s)
        };
        if extent < 1 {
            return Err(format!(
                "axis {k} of its output is empty, which is not supported"
            ));
        }
        starts.push(start);
        steps.push(s);
        extents.push(extent);
    }
    Ok((starts, steps, extents))
}

/// GATHER with constant indices (any shape; `batch_dims` 0) along an axis.
fn gather(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let options = site.op.builtin_options_as_gather_options();
    if options.is_some_and(|o| o.batch_dims() != 0) {
        return Err("batch_dims other than 0 is not supported".into());
    }
    let dims = site.ctx.reader.tensor(site.ctx.input(0)?)?.dims;
    let rank = dims.len();
    let axis = axis_in(i64::from(options.map_or(0, |o| o.axis())), rank)?;
    let indices = int_constant(site, 1)?;
    if let Some(bad) = indices
        .iter()
        .find(|&&i| !(0..i64::from(dims[axis])).contains(&i))
    {
        return Err(format!("index {bad} is outside an axis of {}", dims[axis]));
    }
    let mut view_dims = dims.clone();
    view_dims[axis] = indices.len() as u32;
    let view = nhwc(&view_dims)?;
    if view.elements() != site.declared.elements() {
        return Err(format!(
            "its output shape {:?} does not hold the gathered {view_dims:?}",
            site.out_dims
        ));
    }
    let mut maps: [Option<Vec<u32>>; 4] = Default::default();
    maps[along_axis(rank, axis as i64)?] = Some(indices.iter().map(|&i| i as u32).collect());
    layer.op = LayerOp::Remap { maps, view };
    Ok(())
}

/// Whether file tensor `t` holds data in the file (or was folded to a constant).
fn is_constant(ctx: &OpContext, t: i32) -> bool {
    ctx.reader.tensor(t).is_ok_and(|t| !t.data.is_empty())
}

/// GATHER of a constant table by indices read at run time (an embedding
/// lookup): int32 indices from the model input, the table int8, int16 or
/// float32 as the model computes, the output typed and quantized as the
/// table (TFLite requires it).
fn gather_by_indices(
    ctx: &OpContext,
    op: &fb::Operator,
    graph: &Graph,
    written: &[Option<TensorId>],
    out_info: &TensorInfo,
) -> Result<NewLayer> {
    let options = op.builtin_options_as_gather_options();
    if options.is_some_and(|o| o.batch_dims() != 0) {
        return Err("batch_dims other than 0 is not supported".into());
    }
    let indices_file = ctx.input(1)?;
    let indices = written
        .get(indices_file as usize)
        .copied()
        .flatten()
        .filter(|t| graph.int32.contains(t))
        .ok_or("its indices are computed at run time but are not an int32 model input (int64 indices, or indices another operator computes, are not supported)")?;
    let (dtype, elem) = match ctx.kind {
        Kind::Float32 => (fb::TensorType::FLOAT32, 4),
        Kind::Int8 => (fb::TensorType::INT8, 1),
        Kind::Int16 => (fb::TensorType::INT16, 2),
    };
    let table = ctx.constant(0, dtype, elem)?;
    if out_info.dtype != dtype || table.dtype != out_info.dtype {
        return Err(format!(
            "its output is {}, expected {} like its table",
            type_name(out_info.dtype),
            type_name(dtype)
        ));
    }
    let quant = match dtype {
        fb::TensorType::FLOAT32 => None,
        _ => {
            let q = out_info.activation_quant()?;
            if table.activation_quant()? != q {
                return Err(
                    "its table and output are quantized differently (TFLite requires them equal)"
                        .into(),
                );
            }
            Some(q)
        }
    };
    let dims = &table.dims;
    let axis = axis_in(i64::from(options.map_or(0, |o| o.axis())), dims.len())?;
    let product = |d: &[u32]| d.iter().map(|&d| d as usize).product::<usize>();
    let (outer, extent, inner) = (
        product(&dims[..axis]),
        dims[axis],
        product(&dims[axis + 1..]),
    );
    let count = graph.tensors[indices].shape.elements().unwrap_or(0);
    let declared = out_info.shape()?;
    if declared.elements() != Some(outer * count * inner) {
        return Err(format!(
            "its output shape {:?} does not hold {count} rows gathered from a table {dims:?}",
            out_info.dims
        ));
    }
    Ok(NewLayer {
        op: LayerOp::Gather {
            table: table.data.to_vec(),
            outer: outer as u32,
            extent,
            inner_bytes: (inner * elem) as u32,
        },
        inputs: vec![indices],
        shape: declared,
        quant,
        weights: None,
        int8: None,
        groups: 1,
        constant_input: None,
    })
}

/// RESIZE_NEAREST_NEIGHBOR of an NHWC tensor to a constant size: the
/// source row and column of each output, as TFLite's `GetNearestNeighbor`
/// computes them in float.
fn resize_nearest(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    let (new_h, new_w) = resize_size(site)?;
    let (new_h, new_w) = (new_h as i64, new_w as i64);
    let o = site.op.builtin_options_as_resize_nearest_neighbor_options();
    let (align, half) = (
        o.is_some_and(|o| o.align_corners()),
        o.is_some_and(|o| o.half_pixel_centers()),
    );
    let table = |input: u32, output: i64| -> Vec<u32> {
        let scale = if align && output > 1 {
            (input - 1) as f32 / (output - 1) as f32
        } else {
            input as f32 / output as f32
        };
        let offset = if half { 0.5 } else { 0.0 };
        (0..output)
            .map(|v| {
                let at = (v as f32 + offset) * scale;
                let nearest = if align {
                    at.round() as i32
                } else {
                    at.floor() as i32
                };
                let nearest = nearest.min(input as i32 - 1);
                (if half { nearest.max(0) } else { nearest }) as u32
            })
            .collect()
    };
    let view = Shape::new(s.n, new_h as u32, new_w as u32, s.c);
    site.check_shape(view)?;
    layer.op = LayerOp::Remap {
        maps: [None, Some(table(s.h, new_h)), Some(table(s.w, new_w)), None],
        view,
    };
    Ok(())
}

/// The `[height, width]` a resize's constant size input gives.
fn resize_size(site: &Site) -> Result<(u32, u32)> {
    let size = int_constant(site, 1)?;
    match size[..] {
        [h, w] if (1..=1 << 14).contains(&h) && (1..=1 << 14).contains(&w) => {
            Ok((h as u32, w as u32))
        }
        _ => Err(format!(
            "its size {size:?} is not a positive [height, width]"
        )),
    }
}

/// UNIDIRECTIONAL_SEQUENCE_LSTM, integer: `[batch, time, features]` (or
/// time first) in, the hidden state of every step out.
fn sequence_lstm(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let x_quant = site.x_quant.ok_or("its input must be int8 or int16")?;
    let (block, _) = match site.int16_input() {
        true => lstm::block16(site.ctx, site.op, x_quant.0)?,
        false => lstm::block(site.ctx, site.op, x_quant)?,
    };
    let (n_cell, _) = lstm_sizes(&block)?;
    let n_cell = n_cell as u32;
    let s = site.s;
    if s.h != 1 {
        return Err(format!(
            "its input {:?} is not [batch, time, features]",
            site.s
        ));
    }
    site.check_shape(Shape::new(s.n, 1, s.w, n_cell))?;
    layer.op = LayerOp::Lstm { block };
    Ok(())
}

/// RESIZE_BILINEAR of an NHWC tensor (int8 keeps its quantization).
fn resize_bilinear(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let s = site.s;
    let (h, w) = resize_size(site)?;
    let o = site.op.builtin_options_as_resize_bilinear_options();
    let mode = kernels::resize::Bilinear {
        align_corners: o.is_some_and(|o| o.align_corners()),
        half_pixel_centers: o.is_some_and(|o| o.half_pixel_centers()),
    };
    if mode.align_corners && mode.half_pixel_centers {
        return Err("it sets both align_corners and half_pixel_centers".into());
    }
    site.check_shape(Shape::new(s.n, h, w, s.c))?;
    site.same_quant("RESIZE_BILINEAR")?;
    layer.op = LayerOp::ResizeBilinear { mode };
    Ok(())
}

/// MEAN over constant axes (kept or dropped, as the declared output says).
fn mean(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let rank = input_rank(site)?;
    let mut axes = [false; 4];
    for axis in int_constant(site, 1)? {
        // The mean over a unit axis is the identity.
        if let Some(at) = nhwc_axis(rank, axis)? {
            axes[at] = true;
        }
    }
    let reduced = kernels::layout::reduced(site.s, axes);
    if reduced.elements() != site.declared.elements() {
        return Err(format!(
            "its output shape {:?} does not hold the input reduced over its axes, {reduced:?}",
            site.out_dims
        ));
    }
    layer.op = LayerOp::Mean { axes };
    Ok(())
}

/// Reads the weights (input 1) and optional bias (input 2) of a conv,
/// depthwise or dense layer with `channels` outputs, whose per-channel
/// quantization runs along `channel_axis` of the filter.
fn weights(
    ctx: &OpContext,
    layer: &mut NewLayer,
    input_quant: Option<(f32, i32)>,
    channels: usize,
    channel_axis: i32,
) -> Result<()> {
    let Some((input_scale, _)) = input_quant else {
        let kernel = le_words(
            &ctx.constant(1, fb::TensorType::FLOAT32, 4)?.data,
            f32::from_le_bytes,
        );
        let bias = match ctx.optional(2) {
            Some(_) => le_words(
                &ctx.constant(2, fb::TensorType::FLOAT32, 4)?.data,
                f32::from_le_bytes,
            ),
            None => vec![0.0; channels],
        };
        check_bias_len(bias.len(), channels)?;
        layer.weights = Some(LayerWeights { kernel, bias });
        return Ok(());
    };
    let filter = ctx.constant(1, fb::TensorType::INT8, 1)?;
    let scales = weight_scales(&filter, channels, channel_axis)?;
    // Only uint8 weights (shifted to int8) have a zero point; weight_scales checked.
    let zero_point = filter.zero_points().first().copied().unwrap_or(0) as i32;
    let values: Vec<i8> = bytemuck::cast_slice(&filter.data).to_vec();
    // TFLite's 16x8 scheme has int64 biases (its int32-bias variant is
    // refused by the type check of `constant`).
    let int16 = ctx.input(0).and_then(|t| ctx.reader.tensor(t))?.dtype == fb::TensorType::INT16;
    let bias: Vec<i64> = match ctx.optional(2) {
        Some(_) if int16 => ctx
            .constant(2, fb::TensorType::INT64, 8)?
            .data
            .chunks_exact(8)
            .map(|w| i64::from_le_bytes(w.try_into().expect("8-byte chunks")))
            .collect(),
        Some(_) => le_words(&ctx.constant(2, fb::TensorType::INT32, 4)?.data, |w| {
            i64::from(i32::from_le_bytes(w))
        }),
        None => vec![0; channels],
    };
    check_bias_len(bias.len(), channels)?;
    // Depthwise filters are [1, kh, kw, channels]: the channel is the innermost index.
    let per_row = values.len() / channels.max(1);
    let channel_of = |i: usize| {
        if channel_axis == 3 {
            i % channels
        } else {
            i / per_row
        }
    };
    let scale = |c: usize| scales[c.min(scales.len() - 1)];
    let kernel = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as i32 - zero_point) as f32 * scale(channel_of(i)))
        .collect();
    let float_bias = bias
        .iter()
        .enumerate()
        .map(|(c, &b)| (b as f64 * input_scale as f64 * scale(c) as f64) as f32)
        .collect();
    layer.weights = Some(LayerWeights {
        kernel,
        bias: float_bias,
    });
    layer.int8 = Some(Int8Weights {
        values,
        scales,
        zero_point,
        bias,
        dynamic_range: false,
    });
    Ok(())
}

/// The int8 weights (one scale) and float bias of a dynamic-range dense
/// layer in a float model: kept exactly, run as TFLite runs them.
fn hybrid_weights(site: &Site, layer: &mut NewLayer, units: usize) -> Result<()> {
    let asymmetric = site
        .op
        .builtin_options_as_fully_connected_options()
        .is_some_and(|o| o.asymmetric_quantize_inputs());
    if asymmetric {
        return Err("int8 weights with asymmetrically quantized float inputs (asymmetric_quantize_inputs) are not supported yet".into());
    }
    let filter = site.ctx.constant(1, fb::TensorType::INT8, 1)?;
    let scales = weight_scales(&filter, units, 0)?;
    if scales.len() != 1 {
        return Err("int8 weights with float activations and a scale per channel are not supported yet; one scale is".into());
    }
    let values: Vec<i8> = bytemuck::cast_slice(&filter.data).to_vec();
    let bias = match site.ctx.optional(2) {
        Some(_) => le_words(
            &site.ctx.constant(2, fb::TensorType::FLOAT32, 4)?.data,
            f32::from_le_bytes,
        ),
        None => vec![0.0; units],
    };
    check_bias_len(bias.len(), units)?;
    let kernel = values.iter().map(|&v| f32::from(v) * scales[0]).collect();
    layer.weights = Some(LayerWeights { kernel, bias });
    layer.int8 = Some(Int8Weights {
        values,
        scales,
        zero_point: 0,
        bias: Vec::new(),
        dynamic_range: true,
    });
    Ok(())
}

/// Little-endian 4-byte words.
fn le_words<T>(data: &[u8], word: fn([u8; 4]) -> T) -> Vec<T> {
    data.chunks_exact(4)
        .map(|b| word([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn check_bias_len(len: usize, channels: usize) -> Result<()> {
    if len != channels {
        return Err(format!(
            "its bias has {len} values for {channels} output channels"
        ));
    }
    Ok(())
}

/// A tensor's zero points (stored as int64, read whatever their alignment).
fn zero_points(q: fb::QuantizationParameters) -> Vec<i64> {
    q.zero_point()
        .map(|z| {
            z.iter()
                .map(|v| i64::from_le_bytes(v.bytes().into()))
                .collect()
        })
        .unwrap_or_default()
}

/// An int8 filter's scales: symmetric, one per tensor or one per output
/// channel along `channel_axis`, each positive and finite.
fn weight_scales(filter: &TensorInfo, channels: usize, channel_axis: i32) -> Result<Vec<f32>> {
    let q = filter
        .quant
        .ok_or("its int8 weights have no quantization parameters")?;
    let scales: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    if !filter.uint8 && filter.zero_points().iter().any(|&z| z != 0) {
        return Err("its weights have a nonzero zero point; int8 weights must be symmetric".into());
    }
    if filter.uint8 && scales.len() != 1 {
        return Err("its uint8 weights have a scale per channel; uint8 weights have one".into());
    }
    match scales.len() {
        1 => {}
        n if n == channels && q.quantized_dimension() == channel_axis => {}
        n => {
            return Err(format!(
                "its weights have {n} scales along axis {} for {channels} output channels",
                q.quantized_dimension()
            ))
        }
    }
    if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err("its weights have a scale that is not positive and finite".into());
    }
    Ok(scales)
}

/// The bytes of a `.tflite` model's inputs, all together: what a TFLite
/// Micro DUT's `db` buffer must hold.
pub fn input_bytes(bytes: &[u8]) -> std::result::Result<usize, String> {
    let model =
        fb::root_as_model(bytes).map_err(|e| format!("not a valid TFLite flatbuffer ({e})"))?;
    let graph = model
        .subgraphs()
        .and_then(|g| g.iter().next())
        .ok_or("the model has no subgraph")?;
    let tensors = graph.tensors().ok_or("the model has no tensors")?;
    let mut total = 0usize;
    for index in graph.inputs().iter().flat_map(|i| i.iter()) {
        let tensor = usize::try_from(index)
            .ok()
            .filter(|&i| i < tensors.len())
            .map(|i| tensors.get(i))
            .ok_or(format!("input tensor {index} does not exist"))?;
        let size = match tensor.type_() {
            fb::TensorType::INT8 | fb::TensorType::UINT8 | fb::TensorType::BOOL => 1,
            fb::TensorType::INT16 | fb::TensorType::FLOAT16 => 2,
            fb::TensorType::INT64 | fb::TensorType::FLOAT64 => 8,
            _ => 4,
        };
        let elements = tensor
            .shape()
            .iter()
            .flat_map(|s| s.iter())
            .try_fold(1usize, |n, d| {
                usize::try_from(d)
                    .ok()
                    .and_then(|d| n.checked_mul(d.max(1)))
            });
        total += elements
            .and_then(|n| n.checked_mul(size))
            .ok_or(format!("input tensor {index} has an impossible shape"))?;
    }
    Ok(total)
}

/// The TFLite names of a model's builtin operators (`CONV_2D`, ...), once
/// each in the order of its operator codes: what a TFLite Micro firmware
/// registers. A custom operator is an error naming it.
pub fn builtin_operator_names(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let model =
        fb::root_as_model(bytes).map_err(|e| format!("not a valid TFLite flatbuffer ({e})"))?;
    let mut names = Vec::new();
    for opcode in model.operator_codes().iter().flatten() {
        let name = code::name(builtin_or_custom(&opcode).map_err(|custom| {
            format!("the custom operator {custom} has no TFLite Micro kernel bench can register")
        })?);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_5_tensors_with_a_unit_first_axis_map_to_nhwc() {
        assert_eq!(nhwc(&[1, 2, 3, 4, 5]), Ok(Shape::new(2, 3, 4, 5)));
        assert_eq!(nhwc_axis(5, 0), Ok(None));
        assert_eq!(nhwc_axis(5, -1), Ok(Some(3)));
        assert_eq!(nhwc_axis(5, 1), Ok(Some(0)));
        assert_eq!(
            nhwc(&[2, 1, 3, 4, 5]),
            Err("a rank-5 tensor whose first axis is 2 is not supported (rank 5 needs a first axis of 1)".into())
        );
        assert_eq!(
            nhwc(&[1, 1, 2, 3, 4, 5]),
            Err("a tensor of rank 6 is not supported (at most 5)".into())
        );
        assert!(along_axis(5, 0).unwrap_err().contains("unit first axis"));
    }
}
