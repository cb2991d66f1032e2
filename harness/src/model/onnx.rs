//! Import of ONNX models (the format PyTorch and most training code
//! export), float or quantized by onnxruntime ([`quantized`]): the protobuf
//! is decoded through the message subset in [`super::onnx_proto`] (weights
//! kept beside the model in `.onnx.data` are read from there) and becomes a
//! [`Graph`] in NHWC.
//!
//! What it reads: Conv over `[N, C, H, W]` and `[N, C, L]` (any groups,
//! dilated), Gemm and MatMul with constant weights (MatMul at
//! every step of a `[N, T, F]` sequence), Relu and Clip fused into the
//! layer before them (a layer of their own where there is none),
//! LeakyRelu, Sigmoid, Tanh, HardSwish, HardSigmoid, Elu, MaxPool,
//! AveragePool, GlobalAveragePool (windows padded VALID, SAME or by any
//! explicit amounts, which become a Pad layer before the window),
//! ReduceMean, Flatten, Reshape to `[1, -1]`, Squeeze and Unsqueeze of unit
//! axes, Transpose, Concat, Slice, Split, Pad of values, Constant nodes, Add, Sub, Mul and Div (of two
//! activations that broadcast, or of an activation and a constant),
//! BatchNormalization (folded into the layer before it, else per-channel),
//! Softmax and LogSoftmax over channels, Identity and Dropout (dropped),
//! and binary layers in the form Larq and XNOR-Net exports take: `Sign ->
//! [Pad(value 1)] -> Conv` (or `Sign -> Gemm`) with weights `+-alpha` per
//! output channel.
//!
//! A model with several outputs is an early-exit model: the output computed
//! last is the final classifier, every other output of the same shape is an
//! exit head. Heads are scheduled right after the last backbone layer they
//! read, which is where a device can stop.
//!
//! ONNX is NCHW, bench is NHWC: weights are transposed, and a Flatten over
//! `C x H x W` followed by a dense layer has that layer's columns permuted,
//! so the imported model computes the same numbers. Its inputs and outputs
//! keep the model's layout outside bench ([`super::layout`]).

use super::elementwise::Elementwise;
use super::graph::{
    BinaryConstant, ExitHead, Graph, Layer, LayerOp, LayerWeights, Precision, Tensor, TensorId,
};
pub use super::import::ImportError;
use super::onnx_proto::{self as pb, AttributeProto, NodeProto, TensorProto};
use super::tflite::MAX_ELEMENTS;
use kernels::binary::BinaryPadding;
use kernels::broadcast::Binary;
use kernels::exit::Confidence;
use kernels::geometry::{Activation, Padding, Shape, Window};
use std::collections::HashMap;
use std::path::Path;

mod conv_transpose;
mod folding;
mod quantized;
mod reshape;

type Result<T, E = String> = std::result::Result<T, E>;

/// ONNX `DataType` codes bench reads.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;

/// Reads and imports the `.onnx` file at `path`; the graph is named after the file.
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

/// Imports an ONNX protobuf; `path` only names the file in errors.
pub fn import(bytes: &[u8], name: &str, path: &Path) -> Result<Graph, ImportError> {
    import_with_heads(bytes, name, path, None)
}

/// Imports an ONNX protobuf whose exit heads are the outputs named in
/// `heads` (see [`super::heads`]), or, without, every extra output of the
/// final output's shape.
pub fn import_with_heads(
    bytes: &[u8],
    name: &str,
    path: &Path,
    heads: Option<&[String]>,
) -> Result<Graph, ImportError> {
    let mut model = pb::decode(bytes).map_err(|e| ImportError::Model {
        path: path.into(),
        why: format!("not a valid ONNX protobuf ({e})"),
    })?;
    if let Some(g) = model.graph.as_mut() {
        read_external_data(&mut g.initializer, path).map_err(|why| ImportError::Model {
            path: path.into(),
            why,
        })?;
    }
    Importer::new(&model, name)
        .map(|mut i| {
            i.declared_heads = heads.map(<[String]>::to_vec);
            i
        })
        .and_then(Importer::run)
        .map_err(|p| match p {
            Problem::Model(why) => ImportError::Model {
                path: path.into(),
                why,
            },
            Problem::Node { index, op, why } => ImportError::Operator {
                path: path.into(),
                index,
                op,
                why,
            },
        })
}

/// Fills in the weights a model keeps beside it (`torch.onnx.export`
/// writes `model.onnx.data`): each initializer names a file in the model's
/// folder, an offset and a length. Paths that leave the folder are refused.
fn read_external_data(initializers: &mut [TensorProto], path: &Path) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for t in initializers.iter_mut().filter(|t| t.data_location == 1) {
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.clone())
        };
        let location = entry("location").ok_or(format!(
            "initializer '{}' is external but names no file",
            t.name
        ))?;
        let inside = Path::new(&location)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err(format!(
                "initializer '{}' keeps its data in '{location}', outside the model's folder",
                t.name
            ));
        }
        let number = |key: &str| -> Result<Option<usize>> {
            entry(key)
                .map(|v| {
                    v.parse().map_err(|_| {
                        format!("initializer '{}': {key} '{v}' is not a number", t.name)
                    })
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        if !files.contains_key(&location) {
            let file = folder.join(&location);
            let bytes = crate::input::files::read(&file).map_err(|e| {
                format!(
                    "failed to read {} (the weights of '{}'): {e}",
                    file.display(),
                    t.name
                )
            })?;
            files.insert(location.clone(), bytes);
        }
        let bytes = &files[&location];
        let end = length.map_or(Some(bytes.len()), |l| offset.checked_add(l));
        let data = end.and_then(|end| bytes.get(offset..end)).ok_or(format!(
            "initializer '{}': bytes {offset}..{} are not in {location} ({} bytes)",
            t.name,
            end.map_or("?".into(), |e| e.to_string()),
            bytes.len()
        ))?;
        t.raw_data = data.to_vec();
        t.data_location = 0;
    }
    Ok(())
}

enum Problem {
    Model(String),
    Node {
        index: usize,
        op: String,
        why: String,
    },
}

/// How an ONNX value is laid out in its bench tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// NCHW in ONNX, NHWC in bench (flat tensors: `[1, 1, 1, f]`).
    Plain,
    /// ONNX flattened `C x H x W` in channel-major order; bench holds it in `H x W x C` order.
    FlatChw { c: u32, h: u32, w: u32 },
    /// ONNX `[N, C, L]` (what a Conv1d reads) held as `[N, 1, L, C]`.
    Ncl,
    /// ONNX `[N, T, F]` (a sequence, what a MatMul reads per step) held as
    /// `[N, 1, T, F]`: the same order, features on C.
    Ntf,
    /// ONNX `[N, G, C / G, H, W]` (a channel shuffle's first Reshape) of a
    /// value bench holds as `[N, H, W, C]`: channel `g * C / G + k`.
    Grouped {
        /// G.
        groups: u32,
    },
}

impl Layout {
    /// The layout a rank-3 value should be in for `op`, which reads its
    /// channels (Conv1d and its neighbours) or its last axis (MatMul).
    fn wanted_by(op: &str) -> Option<Layout> {
        match op {
            "Conv" | "MaxPool" | "AveragePool" | "GlobalAveragePool" | "BatchNormalization"
            | "Unsqueeze" => Some(Layout::Ncl),
            "MatMul" | "Gemm" => Some(Layout::Ntf),
            _ => None,
        }
    }
}

/// Operators that read a rank-3 value as it is held (besides those of [`Layout::wanted_by`]).
const RANK3_OPERATORS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "HardSigmoid",
    "Elu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Flatten",
    "Reshape",
    "Transpose",
    "ReduceMean",
    "Softmax",
    "LogSoftmax",
    "Pad",
    "Slice",
    "Split",
    "Identity",
    "Dropout",
];

/// An ONNX value that a layer (or the input) wrote.
#[derive(Clone, Copy, Debug)]
struct Value {
    tensor: TensorId,
    layout: Layout,
    /// Written by a Sign: packed signs that only a binary layer reads.
    signs: bool,
    /// A Pad of the signs with +1 (explicit amounts), which the binary
    /// Conv reading them does itself.
    pad: Option<Padding>,
}

struct Importer<'m> {
    graph_proto: &'m pb::GraphProto,
    constants: HashMap<&'m str, &'m TensorProto>,
    graph: Graph,
    values: HashMap<String, Value>,
    /// How many nodes read each value (fusing a Relu needs its input read once).
    readers: HashMap<&'m str, usize>,
    /// The version of the default operator set.
    opset: i64,
    /// Constants a DequantizeLinear makes of quantized initializers (a
    /// QDQ model's weights and biases), by the node's output.
    folded: HashMap<&'m str, Result<ConstTensor>>,
    /// The outputs a suite declares exit heads (`None`: every extra output
    /// of the final output's shape is one).
    declared_heads: Option<Vec<String>>,
    /// Constants made while reading a QOperator node (its dequantized
    /// weights and bias), by a name of bench's.
    synthetic: HashMap<String, ConstTensor>,
}

/// The opset of a model that names none: the newest semantics.
const OPSET_UNKNOWN: i64 = i64::MAX;

impl<'m> Importer<'m> {
    fn new(model: &'m pb::ModelProto, name: &str) -> Result<Self, Problem> {
        let g = model
            .graph
            .as_ref()
            .ok_or(Problem::Model("the file has no graph".into()))?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(OPSET_UNKNOWN, |set| set.version);
        if opset < 7 {
            return Err(Problem::Model(format!(
                "opset {opset} is older than 7, the oldest bench reads"
            )));
        }
        let mut constants: HashMap<&str, &TensorProto> =
            g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        // PyTorch writes small constants (shapes, scalars) as Constant nodes.
        for node in g.node.iter().filter(|n| n.op_type == "Constant") {
            let value = node.attribute.iter().find(|a| a.name == "value");
            if let (Some(out), Some(t)) = (node.output.first(), value.and_then(|a| a.t.as_ref())) {
                constants.insert(out.as_str(), t);
            }
        }
        let folded = quantized::fold_constants(g, &constants);
        let mut readers = HashMap::new();
        for node in &g.node {
            for input in node.input.iter().filter(|i| !i.is_empty()) {
                *readers.entry(input.as_str()).or_default() += 1;
            }
        }
        let graph = Graph {
            name: name.into(),
            tensors: Vec::new(),
            layers: Vec::new(),
            input: 0,
            output: 0,
            exits: Vec::new(),
            int16: Default::default(),
            int32: Default::default(),
            float32: Default::default(),
            layout: super::layout::ModelLayout::Nchw,
        };
        Ok(Self {
            graph_proto: g,
            constants,
            graph,
            values: HashMap::new(),
            readers,
            opset,
            folded,
            synthetic: HashMap::new(),
            declared_heads: None,
        })
    }

    fn run(mut self) -> Result<Graph, Problem> {
        let g = self.graph_proto;
        let inputs: Vec<_> = g
            .input
            .iter()
            .filter(|i| !self.is_constant(i.name.as_str()))
            .collect();
        let [input] = inputs[..] else {
            return Err(Problem::Model(format!(
                "the graph has {} inputs besides its weights; exactly one is supported",
                inputs.len()
            )));
        };
        // A rank-3 input is held as its first reader wants it (looking
        // through quantization and identities).
        let mut value = &input.name;
        let mut rank3 = Layout::Ntf;
        while let Some(reader) = g.node.iter().find(|n| n.input.first() == Some(value)) {
            if let Some(wanted) = Layout::wanted_by(&reader.op_type) {
                rank3 = wanted;
                break;
            }
            match (reader.op_type.as_str(), reader.output.first()) {
                ("QuantizeLinear" | "DequantizeLinear" | "Identity", Some(out)) => value = out,
                _ => break,
            }
        }
        let (shape, layout) = input_shape(input, rank3).map_err(Problem::Model)?;
        self.graph.tensors.push(Tensor {
            name: input.name.clone(),
            shape,
            quant: None,
        });
        if layout == Layout::Ntf {
            self.graph.layout = super::layout::ModelLayout::Nhwc;
        }
        self.values.insert(
            input.name.clone(),
            Value {
                tensor: 0,
                layout,
                signs: false,
                pad: None,
            },
        );
        if g.output.is_empty() {
            return Err(Problem::Model("the graph has no output".into()));
        }
        for (index, node) in schedule(g).map_err(Problem::Model)? {
            let op = if node.name.is_empty() {
                node.op_type.clone()
            } else {
                format!("{} '{}'", node.op_type, node.name)
            };
            self.node(node)
                .map_err(|why| Problem::Node { index, op, why })?;
        }
        self.outputs().map_err(Problem::Model)?;
        self.check_quantized().map_err(Problem::Model)?;
        super::fold_pads::fold_pads(&mut self.graph);
        Ok(self.graph)
    }

    /// The final output and the exit heads, from the graph outputs.
    fn outputs(&mut self) -> Result<()> {
        let g = self.graph_proto;
        let tensor = |name: &str| {
            self.values.get(name).map(|v| v.tensor).ok_or(format!(
                "the graph output '{name}' is not written by any node"
            ))
        };
        let mut outputs = Vec::new();
        for o in &g.output {
            outputs.push((tensor(&o.name)?, o.name.as_str()));
        }
        // Tensors are numbered in the order their layers run: the last one
        // (of those not declared heads) is the final output.
        outputs.sort_by_key(|&(t, _)| t);
        let declared = self.declared_heads.clone();
        let is_head = |name: &str| {
            declared
                .as_ref()
                .is_some_and(|d| d.iter().any(|h| h == name))
        };
        // The classifier has its heads' shape: an auxiliary output of another
        // shape, even if computed last, is not the final output.
        let head_shape = outputs
            .iter()
            .find(|(_, n)| is_head(n))
            .map(|&(t, _)| self.graph.tensors[t].shape);
        let classifier = |t: TensorId| head_shape.is_none_or(|s| self.graph.tensors[t].shape == s);
        let final_at = outputs
            .iter()
            .rposition(|&(t, n)| !is_head(n) && classifier(t))
            .or_else(|| outputs.iter().rposition(|(_, n)| !is_head(n)))
            .unwrap_or(0);
        let (final_tensor, final_name) = if outputs.is_empty() {
            (0, "")
        } else {
            outputs.remove(final_at)
        };
        // With declared heads, the other outputs are no heads (the suite drops them).
        if declared.is_some() {
            outputs.retain(|(_, n)| is_head(n));
        }
        if final_tensor == 0 {
            return Err("the graph output is its input".into());
        }
        let final_tensor = self.in_boundary_layout(final_name);
        let float_output = g
            .output
            .iter()
            .find(|o| o.name == final_name)
            .and_then(|o| o.r#type.as_ref()?.tensor_type.as_ref())
            .is_none_or(|t| t.elem_type == FLOAT);
        let final_tensor = if float_output && self.graph.tensors[final_tensor].quant.is_some() {
            self.dequantized_output(final_name, final_tensor)
        } else {
            final_tensor
        };
        self.graph.output = final_tensor;
        let classes = self.graph.tensors[final_tensor].shape;
        if outputs.len() > protocol::MAX_HEADS {
            return Err(format!(
                "the graph has {} early-exit outputs; at most {} are supported",
                outputs.len(),
                protocol::MAX_HEADS
            ));
        }
        for (t, name) in outputs {
            let shape = self.graph.tensors[t].shape;
            if shape.features() != classes.features() || shape.h * shape.w != 1 {
                return Err(format!(
                    "output '{name}' ({:?}) would be an early-exit head, but its shape differs from the final output '{final_name}' ({:?})",
                    dims(shape),
                    dims(classes)
                ));
            }
            self.graph.exits.push(ExitHead {
                logits: t,
                measure: Confidence::MaxSoftmax,
            });
        }
        Ok(())
    }

    /// The tensor of graph output `name`, in the order the model's boundary
    /// layout gives its user (see [`super::layout`]): channels on C for an
    /// NCHW model, the file's own order for a model whose input is a
    /// `[N, T, F]` sequence. An output held otherwise gets a transposing
    /// layer, and the output's name.
    fn in_boundary_layout(&mut self, name: &str) -> TensorId {
        let v = self.values[name];
        let s = self.graph.tensors[v.tensor].shape;
        let sequence_model = self.graph.layout == super::layout::ModelLayout::Nhwc;
        let (perm, shape) = match v.layout {
            Layout::Ntf if !sequence_model && s.w > 1 && s.c > 1 => {
                ([0, 1, 3, 2], Shape::new(s.n, 1, s.c, s.w))
            }
            Layout::Ncl if sequence_model && s.w > 1 && s.c > 1 => {
                ([0, 1, 3, 2], Shape::new(s.n, 1, s.c, s.w))
            }
            Layout::Plain if sequence_model && s.h * s.w > 1 && s.c > 1 => {
                ([0, 3, 1, 2], Shape::new(s.n, s.c, s.h, s.w))
            }
            _ => return v.tensor,
        };
        let op = LayerOp::Transpose { perm };
        self.output_layer(name, ("held", "to-model-layout"), op, v.tensor, shape)
    }

    /// A last layer after tensor `t` that writes graph output `name` (of
    /// `shape`, float) in its place: `t` is renamed `name/<held>`, the layer
    /// `name/<layer>`; the output's tensor.
    fn output_layer(
        &mut self,
        name: &str,
        (held, layer): (&str, &str),
        op: LayerOp,
        t: TensorId,
        shape: Shape,
    ) -> TensorId {
        self.graph.tensors[t].name = format!("{name}/{held}");
        self.graph.tensors.push(Tensor {
            name: name.into(),
            shape,
            quant: None,
        });
        let out = self.graph.tensors.len() - 1;
        let layer = Layer::new(&format!("{name}/{layer}"), op, vec![t], out);
        self.graph.layers.push(layer);
        out
    }

    fn value(&self, name: &str) -> Result<Value> {
        if self.is_constant(name) {
            return Err(format!(
                "input '{name}' is a constant; bench needs an activation there"
            ));
        }
        self.values.get(name).copied().ok_or(format!(
            "input '{name}' is not written by an earlier node or the graph input"
        ))
    }

    /// Whether the value `name` is a constant (an initializer, a Constant
    /// node's, or a dequantized initializer).
    fn is_constant(&self, name: &str) -> bool {
        self.constants.contains_key(name)
            || self.folded.contains_key(name)
            || self.synthetic.contains_key(name)
    }

    fn constant(&self, node: &NodeProto, i: usize) -> Result<Option<ConstTensor>> {
        match node.input.get(i).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(name) if self.synthetic.contains_key(name) => {
                Ok(Some(self.synthetic[name].clone()))
            }
            Some(name) if self.folded.contains_key(name.as_str()) => {
                let folded = &self.folded[name.as_str()];
                folded
                    .clone()
                    .map(Some)
                    .map_err(|why| format!("input {i} ('{name}'): {why}"))
            }
            Some(name) => {
                let t = self.constants.get(name.as_str()).ok_or(format!(
                    "input {i} ('{name}') must be a constant initializer"
                ))?;
                ConstTensor::read(t)
                    .map(Some)
                    .map_err(|why| format!("input {i} ('{name}'): {why}"))
            }
        }
    }

    fn push(
        &mut self,
        node: &NodeProto,
        op: LayerOp,
        inputs: Vec<TensorId>,
        shape: Shape,
    ) -> TensorId {
        let t = self.output_tensor(node, shape);
        if quantized::moves_bytes(&op) {
            self.graph.tensors[t].quant = inputs.first().and_then(|&i| self.graph.tensors[i].quant);
        }
        let name = if node.name.is_empty() {
            self.graph.tensors[t].name.clone()
        } else {
            node.name.clone()
        };
        self.graph.layers.push(Layer::new(&name, op, inputs, t));
        t
    }

    /// The tensor of the node's output, registered as its value.
    fn output_tensor(&mut self, node: &NodeProto, shape: Shape) -> TensorId {
        let output = node.output.first().cloned().unwrap_or_default();
        self.graph.tensors.push(Tensor {
            name: output.clone(),
            shape,
            quant: None,
        });
        let t = self.graph.tensors.len() - 1;
        self.values.insert(
            output,
            Value {
                tensor: t,
                layout: Layout::Plain,
                signs: false,
                pad: None,
            },
        );
        t
    }

    /// `x` padded with zeros by a Pad layer of its own (an average that
    /// counts its padded taps).
    fn zero_padded(&mut self, node: &NodeProto, x: Value, padding: Padding) -> Value {
        let Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } = padding
        else {
            return x;
        };
        if top + bottom + left + right == 0 {
            return x;
        }
        let s = self.graph.tensors[x.tensor].shape;
        let op = LayerOp::Pad {
            before: [0, top, left, 0],
            after: [0, bottom, right, 0],
            value: 0.0,
        };
        let shape = Shape::new(s.n, s.h + top + bottom, s.w + left + right, s.c);
        let t = self.side_layer(node, "pad", op, vec![x.tensor], shape);
        Value { tensor: t, ..x }
    }

    /// A layer a node needs before its own (a pad, a transpose), named
    /// after the node with `/what`; its output tensor.
    fn side_layer(
        &mut self,
        node: &NodeProto,
        what: &str,
        op: LayerOp,
        inputs: Vec<TensorId>,
        shape: Shape,
    ) -> TensorId {
        let output = node.output.first().cloned().unwrap_or_default();
        let name = if node.name.is_empty() {
            &output
        } else {
            &node.name
        };
        // Pads and transposes move bytes: an int8 input's parameters carry over.
        let quant = inputs.first().and_then(|&i| self.graph.tensors[i].quant);
        self.graph.tensors.push(Tensor {
            name: format!("{output}/{what}"),
            shape,
            quant,
        });
        let t = self.graph.tensors.len() - 1;
        let layer = Layer::new(&format!("{name}/{what}"), op, inputs, t);
        self.graph.layers.push(layer);
        t
    }

    /// The layer that wrote `input` (tensor `t`) when the node at hand is
    /// its only reader and it is no graph output: a layer the node may fold
    /// into (an activation, a bias, a batch norm).
    fn foldable_producer(&mut self, input: &str, t: TensorId) -> Option<&mut Layer> {
        let is_output = self.graph_proto.output.iter().any(|o| o.name == input);
        // A tensor a QuantizeLinear gave parameters holds the values they
        // describe: nothing may fold into the layer that writes it.
        let quantized = self.graph.tensors[t].quant.is_some();
        if is_output || quantized || self.readers.get(input) != Some(&1) {
            return None;
        }
        self.graph.layers.iter_mut().rev().find(|l| l.output == t)
    }

    /// Gives the node's output the layout of its input (an elementwise
    /// node keeps a flattened C x H x W order as it is).
    fn keep_layout(&mut self, node: &NodeProto, layout: Layout) {
        if let Some(value) = node.output.first().and_then(|o| self.values.get_mut(o)) {
            value.layout = layout;
        }
    }

    fn alias(&mut self, node: &NodeProto, value: Value) {
        if let Some(out) = node.output.first() {
            self.values.insert(out.clone(), value);
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if let Some(done) = self.qoperator(node) {
            return done;
        }
        let folded = node.op_type == "DequantizeLinear"
            && node
                .output
                .first()
                .is_some_and(|o| self.folded.contains_key(o.as_str()));
        if folded {
            return Ok(());
        }
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(format!(
                "operators of domain '{}' are not supported",
                node.domain
            ));
        }
        // Dropout may name a second output, its mask, which nothing in inference reads.
        let one_output = node.output.len() == 1
            || (matches!(node.op_type.as_str(), "Dropout" | "Split") && !node.output.is_empty());
        if !one_output {
            return Err(format!(
                "has {} outputs; one is supported",
                node.output.len()
            ));
        }
        if node.op_type == "Constant" {
            return match node.output.first() {
                Some(out) if self.constants.contains_key(out.as_str()) => Ok(()),
                _ => Err("only a Constant with a tensor `value` is supported".into()),
            };
        }
        if self.fold_constant(node)? {
            return Ok(());
        }
        if node.op_type == "Add" && self.bias_add(node)? {
            return Ok(());
        }
        let arithmetic = matches!(node.op_type.as_str(), "Add" | "Sub" | "Mul" | "Div");
        if arithmetic && node.input.iter().any(|i| self.is_constant(i.as_str())) {
            return self.binary_constant(node);
        }
        let x = self.value(node.input.first().ok_or("it has no input")?)?;
        let x = self.rank3_input(node, x)?;
        let rank3 = x.layout;
        self.dispatch(node, x)?;
        // A layer that reads a sequence writes one in the same layout,
        // unless it made its output flat or said otherwise (a node that
        // only relabels its input sets the layout itself).
        if matches!(rank3, Layout::Ncl | Layout::Ntf) {
            if let Some(v) = node.output.first().and_then(|o| self.values.get_mut(o)) {
                let s = self.graph.tensors[v.tensor].shape;
                if v.tensor != x.tensor && v.layout == Layout::Plain && s.h == 1 && s.w > 1 {
                    v.layout = rank3;
                }
            }
        }
        Ok(())
    }

    /// A rank-3 input as `node` reads it: transposed between `[N, C, L]`
    /// and `[N, T, F]` where the node wants the other (a layer of its
    /// own, unless one extent is 1), or refused where the node has no
    /// rank-3 form.
    fn rank3_input(&mut self, node: &NodeProto, x: Value) -> Result<Value> {
        let op = node.op_type.as_str();
        if !matches!(x.layout, Layout::Ncl | Layout::Ntf) {
            return Ok(x);
        }
        let Some(want) = Layout::wanted_by(op) else {
            if RANK3_OPERATORS.contains(&op) {
                return Ok(x);
            }
            return Err(format!("it reads a rank-3 tensor; bench reads rank-3 tensors with Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, MatMul, Gemm and {}", RANK3_OPERATORS.join(", ")));
        };
        let s = self.graph.tensors[x.tensor].shape;
        if x.layout == want || s.c == 1 || s.w == 1 {
            return Ok(Value { layout: want, ..x });
        }
        let op = LayerOp::Transpose { perm: [0, 1, 3, 2] };
        let shape = Shape::new(s.n, 1, s.c, s.w);
        let t = self.side_layer(node, "transpose", op, vec![x.tensor], shape);
        Ok(Value {
            tensor: t,
            layout: want,
            ..x
        })
    }

    fn dispatch(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        if matches!(x.layout, Layout::Grouped { .. })
            && !matches!(node.op_type.as_str(), "Transpose" | "Reshape")
        {
            return Err("it reads a [N, G, C/G, H, W] value; only a channel shuffle (Transpose [0, 2, 1, 3, 4], then Reshape to [N, C, H, W]) may".into());
        }
        if (x.signs && !matches!(node.op_type.as_str(), "Conv" | "Gemm" | "MatMul" | "Pad"))
            || (x.pad.is_some() && node.op_type != "Conv")
        {
            return Err(format!("it reads the output of a Sign; only a binary Conv or Gemm (after an optional Pad with 1) may, not {}", node.op_type));
        }
        if let (Layout::FlatChw { .. }, false) = (
            x.layout,
            matches!(
                node.op_type.as_str(),
                "Gemm"
                    | "MatMul"
                    | "QuantizeLinear"
                    | "DequantizeLinear"
                    | "Identity"
                    | "Dropout"
                    | "Relu"
                    | "Sigmoid"
                    | "Tanh"
                    | "HardSwish"
                    | "LeakyRelu"
            ),
        ) {
            return Err("it reads a Flatten over C x H x W > 1 positions; bench can only feed such a Flatten to Gemm or MatMul".into());
        }
        let s = self.graph.tensors[x.tensor].shape;
        match node.op_type.as_str() {
            "Conv" => self.conv(node, x),
            "ConvTranspose" => self.conv_transpose(node, x),
            "Gemm" | "MatMul" => self.dense(node, x),
            "Relu" => self.fuse(node, x, Activation::Relu),
            "Sigmoid" => self.activation(node, x, Elementwise::Logistic),
            "Tanh" => self.activation(node, x, Elementwise::Tanh),
            "HardSwish" => self.activation(node, x, Elementwise::HardSwish),
            "HardSigmoid" => self.hard_sigmoid(node, x),
            "Elu" => {
                let alpha = attribute(node, "alpha").map_or(1.0, |a| a.f);
                self.activation(node, x, Elementwise::Elu { alpha })
            }
            "Transpose" => self.transpose(node, x),
            "LeakyRelu" => {
                let alpha = attribute(node, "alpha").map_or(0.01, |a| a.f);
                self.activation(node, x, Elementwise::LeakyRelu { alpha })
            }
            "Clip" => self.clip(node, x),
            "MaxPool" | "AveragePool" => self.pool(node, x),
            "GlobalAveragePool" => {
                let op = LayerOp::AvgPool { kernel: (s.h, s.w), stride: (1, 1), padding: Padding::Valid, rounding: Default::default(), activation: Activation::None };
                self.push(node, op, vec![x.tensor], Shape::new(s.n, 1, 1, s.c));
                Ok(())
            }
            "Flatten" => self.flatten(node, x),
            "Reshape" => self.reshape(node, x),
            "Squeeze" | "Unsqueeze" => self.unit_axes(node, x),
            "Slice" => self.slice(node, x),
            "Split" => self.split(node, x),
            "Concat" => self.concat(node),
            "ReduceMean" => self.reduce_mean(node, x),
            "Add" | "Sub" | "Mul" => self.add(node, x),
            "Softmax" | "LogSoftmax" => self.softmax(node, x),
            "Sign" => {
                self.push(node, LayerOp::Sign, vec![x.tensor], s);
                self.values.get_mut(&node.output[0]).expect("just written").signs = true;
                Ok(())
            }
            "Pad" => self.pad(node, x),
            "Identity" | "Dropout" => {
                self.alias(node, x);
                Ok(())
            }
            "QuantizeLinear" => self.quantize_linear(node, x),
            "DequantizeLinear" => self.dequantize_linear(node, x),
            "BatchNormalization" => self.batch_norm(node, x),
            other => Err(format!(
                "operator {other} is not supported (bench reads Conv, Gemm, MatMul, Relu, LeakyRelu, Sigmoid, Tanh, HardSwish, HardSigmoid, Elu, Clip, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, BatchNormalization, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, Slice, Split, Constant, Add, Sub, Mul, Div, Softmax, LogSoftmax, Sign, Pad, Identity, Dropout; quantized, QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, QGemm, QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QLinearAveragePool, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax)"
            )),
        }
    }

    /// Clip to [0, 6], [-1, 1] or [0, inf): an activation fused into the layer before.
    fn clip(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let bound = |i: usize, attr: &str| -> Result<Option<f32>> {
            match self.constant(node, i)? {
                Some(c) => c
                    .floats
                    .first()
                    .copied()
                    .map(Some)
                    .ok_or(format!("input {i} is empty")),
                None => Ok(attribute(node, attr).map(|a| a.f)),
            }
        };
        match (bound(1, "min")?, bound(2, "max")?) {
            (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => self.fuse(node, x, Activation::Relu6),
            (Some(lo), Some(hi)) if lo == -1.0 && hi == 1.0 => {
                self.fuse(node, x, Activation::ReluN1To1)
            }
            (Some(0.0), None) => self.fuse(node, x, Activation::Relu),
            (lo, hi) => Err(format!(
                "Clip to [{lo:?}, {hi:?}] is not supported; [0, 6], [-1, 1] and [0, inf) are"
            )),
        }
    }

    /// MaxPool and AveragePool (no dilation). The kernels leave padded
    /// taps out of an average, as ONNX's default does; counting them
    /// (count_include_pad = 1) is padding zeros first. ceil_mode's last
    /// windows, which overhang the padded input, are padding after it
    /// that no tap counts (ONNX: a window must start inside the input or
    /// the padding before it).
    fn pool(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let kernel = pair(
            ints(node, "kernel_shape").ok_or("it has no kernel_shape")?,
            "kernel_shape",
        )?;
        let stride = pair(ints(node, "strides").unwrap_or(vec![1, 1]), "strides")?;
        if ints(node, "dilations").is_some_and(|d| d.iter().any(|&d| d != 1)) {
            return Err("dilated pooling is not supported".into());
        }
        let max = node.op_type == "MaxPool";
        let scheme = padding(node, s, kernel, stride, (1, 1))?;
        let declared = scheme.explicit((s.h, s.w), kernel, stride, (1, 1));
        let Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } = declared
        else {
            unreachable!("explicit() gives explicit amounts")
        };
        let (extra_h, extra_w) = match int(node, "ceil_mode").unwrap_or(0) {
            0 => (0, 0),
            _ => (
                ceil_mode_extra(s.h, kernel.0, stride.0, (top, bottom)),
                ceil_mode_extra(s.w, kernel.1, stride.1, (left, right)),
            ),
        };
        let (x, padding) = if !max && int(node, "count_include_pad") == Some(1) {
            let x = self.zero_padded(node, x, declared);
            let overhang = Padding::Explicit {
                top: 0,
                bottom: extra_h,
                left: 0,
                right: extra_w,
            };
            (
                x,
                if (extra_h, extra_w) == (0, 0) {
                    Padding::Valid
                } else {
                    overhang
                },
            )
        } else if (extra_h, extra_w) == (0, 0) {
            (x, scheme)
        } else {
            let padding = Padding::Explicit {
                top,
                bottom: bottom + extra_h,
                left,
                right: right + extra_w,
            };
            (x, padding)
        };
        let s = self.graph.tensors[x.tensor].shape;
        let shape = window_shape(s, kernel, stride, (1, 1), padding);
        let op = if max {
            LayerOp::MaxPool {
                kernel,
                stride,
                padding,
                activation: Activation::None,
            }
        } else {
            LayerOp::AvgPool {
                kernel,
                stride,
                padding,
                rounding: Default::default(),
                activation: Activation::None,
            }
        };
        self.push(node, op, vec![x.tensor], shape);
        Ok(())
    }

    /// Flatten (axis 1) or a Reshape to `[N, F]`; the CHW order it leaves is remembered for the next dense layer.
    fn flatten(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        if node.op_type == "Flatten" && int(node, "axis").unwrap_or(1) != 1 {
            return Err("only Flatten with axis = 1 is supported".into());
        }
        // With one channel, or one position, CHW order is HWC order; a
        // sequence [N, T, F] is held in its own order.
        let reordered = s.h * s.w > 1 && s.c > 1 && x.layout != Layout::Ntf;
        // A dense layer reads the C x H x W order by permuting its columns;
        // any other reader (or the model's user) needs it in memory.
        let output = node.output.first().map(String::as_str).unwrap_or_default();
        let dense_readers_only = !self.graph_proto.output.iter().any(|o| o.name == output)
            && self
                .graph_proto
                .node
                .iter()
                .filter(|n| n.input.iter().any(|i| i == output))
                .all(|n| matches!(n.op_type.as_str(), "Gemm" | "MatMul"));
        let x = if reordered && !dense_readers_only {
            let op = LayerOp::Transpose { perm: [0, 3, 1, 2] };
            let t = self.side_layer(
                node,
                "to-chw",
                op,
                vec![x.tensor],
                Shape::new(s.n, s.c, s.h, s.w),
            );
            Value { tensor: t, ..x }
        } else {
            x
        };
        self.push(
            node,
            LayerOp::Flatten,
            vec![x.tensor],
            Shape::flat(s.n, s.features() as u32),
        );
        if reordered && dense_readers_only {
            self.values
                .get_mut(&node.output[0])
                .expect("just written")
                .layout = Layout::FlatChw {
                c: s.c,
                h: s.h,
                w: s.w,
            };
        }
        Ok(())
    }

    /// Add, Sub or Mul of two activations of one layout, broadcast where
    /// an axis of one is 1 (a squeeze-and-excitation scale `[N, C, 1, 1]`
    /// times `[N, C, H, W]`; a tensor of one position is taken as
    /// `[N, C, 1, 1]`, which bench holds as it holds `[N, C]`).
    fn add(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let a = self.graph.tensors[x.tensor].shape;
        let y = self.value(
            node.input
                .get(1)
                .ok_or("it has one input; two are needed")?,
        )?;
        let b = self.graph.tensors[y.tensor].shape;
        let one_position = |s: Shape| s.h * s.w == 1;
        let layouts_agree = y.layout == x.layout
            || (one_position(a) && y.layout == Layout::Plain)
            || (one_position(b) && x.layout == Layout::Plain);
        let (da, db) = ([a.n, a.h, a.w, a.c], [b.n, b.h, b.w, b.c]);
        let broadcast = (0..4).all(|k| da[k] == db[k] || da[k] == 1 || db[k] == 1);
        if !layouts_agree || !broadcast || x.signs || y.signs {
            return Err(format!(
                "its inputs {:?} and {:?} do not broadcast to one another",
                dims(a),
                dims(b)
            ));
        }
        let out: [u32; 4] = std::array::from_fn(|k| da[k].max(db[k]));
        let shape = Shape::new(out[0], out[1], out[2], out[3]);
        let op = match node.op_type.as_str() {
            "Add" if a == b => LayerOp::Add {
                activation: Activation::None,
            },
            other => LayerOp::Binary {
                op: match other {
                    "Add" => Binary::Add,
                    "Sub" => Binary::Sub,
                    _ => Binary::Mul,
                },
                activation: Activation::None,
                a_view: a,
                b_view: b,
                constant_b: None,
            },
        };
        self.push(node, op, vec![x.tensor, y.tensor], shape);
        let layout = if one_position(a) { y.layout } else { x.layout };
        self.keep_layout(node, layout);
        Ok(())
    }

    /// Add, Sub, Mul or Div of an activation and a constant broadcast to
    /// it (a scalar, a per-channel `[C, 1, 1]`, a whole tensor), either
    /// side: a Binary layer whose second operand is that constant in NHWC
    /// order. A division by a constant multiplies by its reciprocal.
    fn binary_constant(&mut self, node: &NodeProto) -> Result<()> {
        let [a, b] = &node.input[..] else {
            return Err(format!(
                "it has {} inputs; two are needed",
                node.input.len()
            ));
        };
        let first = self.is_constant(a);
        if first && self.is_constant(b) {
            return Err("both its inputs are constants".into());
        }
        let x = self.value(if first { b } else { a })?;
        let c = self
            .constant(node, usize::from(!first))?
            .ok_or("its constant is missing")?;
        let s = self.graph.tensors[x.tensor].shape;
        let (view, values) = nhwc_constant(&c, s)?;
        if x.layout != Layout::Plain && values.len() > 1 {
            return Err("it combines a Flatten over C x H x W with a constant of several values; bench's flat order is H x W x C".into());
        }
        let (op, values) = match (node.op_type.as_str(), first) {
            ("Add", _) => (Binary::Add, values),
            ("Sub", _) => (Binary::Sub, values),
            ("Mul", _) => (Binary::Mul, values),
            ("Div", false) => (Binary::Mul, values.iter().map(|v| 1.0 / v).collect()),
            _ => return Err("a constant divided by an activation is not supported".into()),
        };
        self.graph.tensors.push(Tensor {
            name: format!(
                "{} (operand of {})",
                node.input[usize::from(!first)],
                node.name
            ),
            shape: view,
            quant: None,
        });
        let constant = self.graph.tensors.len() - 1;
        let op = LayerOp::Binary {
            op,
            activation: Activation::None,
            a_view: s,
            b_view: view,
            constant_b: Some(BinaryConstant {
                values,
                int8: None,
                first,
            }),
        };
        self.push(node, op, vec![x.tensor, constant], s);
        self.keep_layout(node, x.layout);
        Ok(())
    }

    /// An Add of a constant per-output-channel vector to the output of a
    /// Conv, Gemm or MatMul that nothing else reads (Keras and tf2onnx write
    /// MatMul then Add for a dense layer): folded into that layer's bias.
    /// False when it cannot be (no constant input, another reader, another
    /// layer or constant shape): the Add is then a layer of its own.
    fn bias_add(&mut self, node: &NodeProto) -> Result<bool> {
        let inputs: Vec<&str> = node.input.iter().map(String::as_str).collect();
        let [a, b] = inputs[..] else {
            return Err(format!("it has {} inputs; Add needs two", inputs.len()));
        };
        let (activation, constant) = match (self.is_constant(a), self.is_constant(b)) {
            (false, false) => return Ok(false),
            (true, false) => (b, 0),
            (false, true) => (a, 1),
            (true, true) => return Err("both its inputs are constants".into()),
        };
        let x = self.value(activation)?;
        let c = self
            .constant(node, constant)?
            .ok_or("its constant is missing")?;
        let channels = self.graph.tensors[x.tensor].shape.c as usize;
        let Some(layer) = self.foldable_producer(activation, x.tensor) else {
            return Ok(false);
        };
        let activation_free = matches!(
            layer.op,
            LayerOp::Conv2d {
                activation: Activation::None,
                ..
            } | LayerOp::DepthwiseConv2d {
                activation: Activation::None,
                ..
            } | LayerOp::Dense {
                activation: Activation::None,
                ..
            }
        );
        // One value per channel, with only unit axes besides it (ONNX's
        // channel axis is 1 for NCHW and the last for [N, F]).
        let per_channel =
            c.floats.len() == channels && c.dims.iter().filter(|&&d| d != 1).count() <= 1;
        match &mut layer.weights {
            Some(w)
                if activation_free
                    && per_channel
                    && matches!(x.layout, Layout::Plain | Layout::Ntf) =>
            {
                for (b, v) in w.bias.iter_mut().zip(&c.floats) {
                    *b += v;
                }
            }
            _ => return Ok(false),
        }
        self.alias(node, x);
        Ok(true)
    }

    /// Concat of activations along one axis: the output tensor, and one
    /// layer per input that writes it into its place (as CONCATENATION's
    /// parts are written, in place where the planner can). NCHW axes of a
    /// 4-D tensor, or axis 1 of a flat `[N, F]` one.
    fn concat(&mut self, node: &NodeProto) -> Result<()> {
        let parts: Vec<Value> = node
            .input
            .iter()
            .map(|i| self.value(i))
            .collect::<Result<_>>()?;
        let shapes: Vec<Shape> = parts
            .iter()
            .map(|v| self.graph.tensors[v.tensor].shape)
            .collect();
        if parts.iter().any(|v| v.layout != Layout::Plain || v.signs) {
            return Err("it concatenates a Flatten over C x H x W or packed signs".into());
        }
        let axis = int(node, "axis").ok_or("it has no axis")?;
        let flat = shapes.iter().all(|s| s.h == 1 && s.w == 1);
        // NHWC axis of the ONNX one: N C H W -> N H W C.
        let nhwc = match (flat, axis) {
            (true, 1 | -1) => 3,
            (false, 0 | -4) => 0,
            (false, 1 | -3) => 3,
            (false, 2 | -2) => 1,
            (false, 3 | -1) => 2,
            _ => return Err(format!("Concat along axis {axis} is not supported (NCHW axes of a 4-D tensor, or axis 1 of [N, F])")),
        };
        let extent = |s: &Shape, k: usize| [s.n, s.h, s.w, s.c][k];
        let mut out = [shapes[0].n, shapes[0].h, shapes[0].w, shapes[0].c];
        out[nhwc] = 0;
        for s in &shapes {
            for k in (0..4).filter(|&k| k != nhwc) {
                if extent(s, k) != out[k] {
                    return Err(format!(
                        "its inputs {:?} differ off the concatenated axis",
                        shapes.iter().map(|&s| dims(s)).collect::<Vec<_>>()
                    ));
                }
            }
            out[nhwc] += extent(s, nhwc);
        }
        let output_view = Shape::new(out[0], out[1], out[2], out[3]);
        let name = node.output.first().cloned().unwrap_or_default();
        let t = self.output_tensor(node, output_view);
        let mut offset = 0;
        for (k, (part, s)) in parts.iter().zip(&shapes).enumerate() {
            let mut before = [0; 4];
            before[nhwc] = offset;
            offset += extent(s, nhwc);
            let op = LayerOp::Insert {
                before,
                input_view: *s,
                output_view,
            };
            let layer = Layer::new(&format!("{name}/part{k}"), op, vec![part.tensor], t);
            self.graph.layers.push(layer);
        }
        Ok(())
    }

    /// Slice with constant starts, ends, axes and steps (any sign, clamped
    /// as ONNX clamps them): a SLICE layer over the NHWC axes.
    fn slice(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let list = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
            Ok(match self.constant(node, i)? {
                Some(c) => Some(c.ints),
                None => ints(node, attr),
            })
        };
        let starts = list(1, "starts")?.ok_or("it has no starts")?;
        let ends = list(2, "ends")?.ok_or("it has no ends")?;
        let steps = list(4, "steps")?.unwrap_or(vec![1; starts.len()]);
        let onnx = onnx_axes(
            x.layout,
            s.h * s.w == 1 && !matches!(x.layout, Layout::Ncl | Layout::Ntf),
        );
        let rank = onnx.len() as i64;
        let axes = list(3, "axes")?.unwrap_or((0..starts.len() as i64).collect());
        if [ends.len(), axes.len(), steps.len()] != [starts.len(); 3] {
            return Err("its starts, ends, axes and steps differ in length".into());
        }
        let d = [s.n, s.h, s.w, s.c];
        let (mut begin, mut stride, mut extent) = ([0u32; 4], [1i32; 4], d);
        for (((&start, &end), &axis), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
            let k = if axis < 0 { axis + rank } else { axis };
            let Some(&nhwc) = usize::try_from(k).ok().and_then(|k| onnx.get(k)) else {
                return Err(format!("axis {axis} of a rank-{rank} tensor"));
            };
            let (first, count) = slice_range(start, end, step, d[nhwc]).ok_or(format!(
                "the slice {start}..{end} step {step} of an axis of {} is empty or its step 0",
                d[nhwc]
            ))?;
            (begin[nhwc], stride[nhwc], extent[nhwc]) = (first, step as i32, count);
        }
        if extent[0] != s.n {
            return Err("it slices the batch axis".into());
        }
        let view = Shape::new(extent[0], extent[1], extent[2], extent[3]);
        self.push(
            node,
            LayerOp::Slice {
                begin,
                stride,
                view,
            },
            vec![x.tensor],
            view,
        );
        self.keep_layout(node, x.layout);
        Ok(())
    }

    /// Split along one axis into the outputs' sizes (given, or equal
    /// parts): one SLICE layer per output.
    fn split(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let onnx = onnx_axes(
            x.layout,
            s.h * s.w == 1 && !matches!(x.layout, Layout::Ncl | Layout::Ntf),
        );
        let rank = onnx.len() as i64;
        let axis = int(node, "axis").unwrap_or(0);
        let k = if axis < 0 { axis + rank } else { axis };
        let Some(&nhwc) = usize::try_from(k)
            .ok()
            .filter(|&k| k > 0)
            .and_then(|k| onnx.get(k))
        else {
            return Err(format!("Split along axis {axis} of a rank-{rank} tensor is not supported (any axis but the batch)"));
        };
        let d = [s.n, s.h, s.w, s.c];
        let parts = node.output.len() as u32;
        let sizes: Vec<u32> = match self
            .constant(node, 1)?
            .map(|c| c.ints)
            .or(ints(node, "split"))
        {
            Some(sizes) => sizes
                .iter()
                .map(|&v| u32::try_from(v).unwrap_or(0))
                .collect(),
            None if d[nhwc].is_multiple_of(parts) => vec![d[nhwc] / parts; parts as usize],
            None => return Err(format!("{parts} equal parts of an axis of {}", d[nhwc])),
        };
        if sizes.len() != parts as usize
            || sizes.iter().sum::<u32>() != d[nhwc]
            || sizes.contains(&0)
        {
            return Err(format!(
                "parts {sizes:?} do not split an axis of {}",
                d[nhwc]
            ));
        }
        let mut first = 0;
        for (output, &size) in node.output.iter().zip(&sizes) {
            let (mut begin, mut extent) = ([0u32; 4], d);
            (begin[nhwc], extent[nhwc]) = (first, size);
            first += size;
            let view = Shape::new(extent[0], extent[1], extent[2], extent[3]);
            let part = NodeProto {
                output: vec![output.clone()],
                name: format!("{}/{output}", node.name),
                ..node.clone()
            };
            let op = LayerOp::Slice {
                begin,
                stride: [1; 4],
                view,
            };
            self.push(&part, op, vec![x.tensor], view);
            self.keep_layout(&part, x.layout);
        }
        Ok(())
    }

    /// Squeeze or Unsqueeze of unit axes around a tensor with one position
    /// (`[N, C, 1, 1]` to `[N, C]` and back, after a global pool): bench
    /// holds both as `[N, 1, 1, C]`, so the node passes its input on.
    fn unit_axes(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let axes = match self.constant(node, 1)? {
            Some(c) => c.ints,
            None => ints(node, "axes").unwrap_or_default(),
        };
        // [N, C, L] <-> [N, C, 1, L] (a Conv1d written as a Conv2d): both
        // are held as [N, 1, L, C].
        let squeeze = node.op_type == "Squeeze";
        match (x.layout, squeeze, &axes[..]) {
            (Layout::Ncl, false, [2] | [-2]) if s.h == 1 => {
                self.alias(
                    node,
                    Value {
                        layout: Layout::Plain,
                        ..x
                    },
                );
                return Ok(());
            }
            (Layout::Plain, true, [2] | [-2]) if s.h == 1 && s.w > 1 => {
                self.alias(
                    node,
                    Value {
                        layout: Layout::Ncl,
                        ..x
                    },
                );
                return Ok(());
            }
            _ => {}
        }
        if s.h * s.w != 1 {
            return Err(format!(
                "it reshapes a tensor of {:?}; only unit axes around a [N, C] or [N, C, 1, 1] tensor are supported",
                dims(s)
            ));
        }
        self.alias(node, x);
        Ok(())
    }

    /// ReduceMean over any axes of a 4-D or rank-3 tensor, or the
    /// features of a flat one: a global average pool over height and
    /// width, else a MEAN. Without keepdims the reduced axes go, which
    /// bench can hold where what remains is `[N, C]` (or `[N, F]`).
    fn reduce_mean(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let axes = match self.constant(node, 1)? {
            Some(c) => c.ints,
            None => ints(node, "axes").unwrap_or_default(),
        };
        if matches!(x.layout, Layout::FlatChw { .. }) {
            return Err("it reduces a Flatten over C x H x W".into());
        }
        // A flat tensor is [N, F] unless the axes say [N, C, 1, 1].
        let flat = s.h * s.w == 1 && axes.iter().all(|&a| a == 1 || a == -1);
        let onnx = onnx_axes(x.layout, flat);
        let rank = onnx.len() as i64;
        let mut reduced = [false; 4];
        for &a in &axes {
            let k = if a < 0 { a + rank } else { a };
            match usize::try_from(k).ok().and_then(|k| onnx.get(k).copied()) {
                Some(axis) if k > 0 => reduced[axis] = true,
                _ => {
                    return Err(format!(
                        "ReduceMean over axes {axes:?} of a rank-{rank} tensor is not supported (any axes but the batch)"
                    ))
                }
            }
        }
        if axes.is_empty() {
            // opset 18's empty axes reduce everything but, here, the batch.
            reduced = [false, true, true, true];
        }
        let extent = |k: usize, e: u32| if reduced[k] { 1 } else { e };
        let out = Shape::new(s.n, extent(1, s.h), extent(2, s.w), extent(3, s.c));
        let keepdims = int(node, "keepdims").unwrap_or(1) != 0;
        if !keepdims && out.h * out.w != 1 {
            return Err(format!(
                "ReduceMean over axes {axes:?} without keepdims leaves a tensor bench cannot hold; keepdims = 1 or a reduction to [N, C] is supported"
            ));
        }
        let op = if reduced == [false, true, true, false] {
            LayerOp::AvgPool {
                kernel: (s.h, s.w),
                stride: (1, 1),
                padding: Padding::Valid,
                rounding: Default::default(),
                activation: Activation::None,
            }
        } else {
            LayerOp::Mean { axes: reduced }
        };
        self.push(node, op, vec![x.tensor], out);
        Ok(())
    }

    /// BatchNormalization in inference form, `y = scale (x - mean) /
    /// sqrt(var + epsilon) + bias` per channel: folded into the Conv, Gemm
    /// or MatMul before it when nothing else reads that layer's output (as
    /// converters do), else a depthwise 1x1 convolution of its own, which
    /// is the same per-channel affine map.
    fn batch_norm(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        if int(node, "training_mode").unwrap_or(0) != 0 {
            return Err("training_mode = 1 is not supported: export the model in eval mode".into());
        }
        if !matches!(x.layout, Layout::Plain | Layout::Ncl) {
            return Err(
                "it normalizes a Flatten over C x H x W: channels are not features there".into(),
            );
        }
        let s = self.graph.tensors[x.tensor].shape;
        let epsilon = attribute(node, "epsilon").map_or(1e-5, |a| a.f);
        let parameter = |i: usize, what: &str| -> Result<Vec<f32>> {
            let c = self
                .constant(node, i)?
                .ok_or(format!("its {what} must be a constant"))?;
            if c.floats.len() != s.c as usize {
                return Err(format!(
                    "its {what} has {} values for {} channels",
                    c.floats.len(),
                    s.c
                ));
            }
            Ok(c.floats)
        };
        let (gamma, beta) = (parameter(1, "scale")?, parameter(2, "bias")?);
        let (mean, var) = (parameter(3, "mean")?, parameter(4, "variance")?);
        let multiplier: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + epsilon).sqrt())
            .collect();
        let shift: Vec<f32> = (0..s.c as usize)
            .map(|c| beta[c] - mean[c] * multiplier[c])
            .collect();
        let y = self.affine(node, x, &multiplier, &shift);
        if y.tensor == x.tensor {
            self.alias(node, x);
        }
        Ok(())
    }

    /// Softmax or LogSoftmax over the axis bench holds on C: the features
    /// of `[N, F]` or `[N, T, F]`, the channels of `[N, C, H, W]` or
    /// `[N, C, L]` (before opset 13, the axes from `axis` on, flattened, so
    /// those after C must be 1).
    fn softmax(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let (rank, channel_axis) = match x.layout {
            Layout::Ntf => (3, 2),
            Layout::Ncl => (3, 1),
            Layout::FlatChw { .. } => (2, -1),
            Layout::Plain if s.h * s.w == 1 => (2, 1),
            Layout::Plain => (4, 1),
            Layout::Grouped { .. } => {
                unreachable!("only Transpose and Reshape read [N, G, C/G, H, W]")
            }
        };
        let axis = int(node, "axis").unwrap_or(if self.opset >= 13 { -1 } else { 1 });
        let axis = if axis < 0 { axis + rank } else { axis };
        let flattened_over_more =
            self.opset < 13 && axis == 1 && s.h * s.w > 1 && rank > 2 && x.layout != Layout::Ntf;
        if axis != channel_axis || flattened_over_more {
            return Err(format!(
                "{} over axis {axis} of a rank-{rank} tensor is not supported; over its channel (feature) axis {channel_axis} it is",
                node.op_type
            ));
        }
        let op = if node.op_type == "LogSoftmax" {
            LayerOp::LogSoftmax
        } else {
            LayerOp::Softmax { beta: 1.0 }
        };
        self.push(node, op, vec![x.tensor], s);
        Ok(())
    }

    /// HardSigmoid, `max(0, min(1, alpha x + beta))`: an activation layer
    /// (in int8, a table, as for every curve).
    fn hard_sigmoid(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let alpha = attribute(node, "alpha").map_or(0.2, |a| a.f);
        let beta = attribute(node, "beta").map_or(0.5, |a| a.f);
        self.activation(node, x, Elementwise::HardSigmoid { alpha, beta })
    }

    /// `multiplier x + shift` per channel of `x`: folded into the layer
    /// that wrote `x` when the node is its only reader, else a depthwise
    /// 1x1 layer that writes the node's output; the value it gives.
    fn affine(&mut self, node: &NodeProto, x: Value, multiplier: &[f32], shift: &[f32]) -> Value {
        let producer = self
            .foldable_producer(&node.input[0], x.tensor)
            .filter(|_| !x.signs);
        if let Some(layer) = producer {
            if fold_affine(layer, multiplier, shift) {
                return x;
            }
        }
        let s = self.graph.tensors[x.tensor].shape;
        let op = LayerOp::DepthwiseConv2d {
            multiplier: 1,
            kernel: (1, 1),
            stride: (1, 1),
            dilation: (1, 1),
            padding: Padding::Valid,
            activation: Activation::None,
        };
        let t = self.push(node, op, vec![x.tensor], s);
        let layer = self.graph.layers.last_mut().expect("just pushed");
        layer.weights = Some(LayerWeights {
            kernel: multiplier.to_vec(),
            bias: shift.to_vec(),
        });
        Value { tensor: t, ..x }
    }

    /// Transpose: `[0, 2, 1]` of a rank-3 tensor swaps `[N, C, L]` and
    /// `[N, T, F]`, which bench holds the same way (no layer); a 4-D
    /// permutation that keeps the batch first is a TRANSPOSE layer.
    fn transpose(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let perm = ints(node, "perm").unwrap_or_default();
        match (x.layout, &perm[..]) {
            (Layout::Ncl, [0, 2, 1]) => self.alias(node, Value { layout: Layout::Ntf, ..x }),
            (Layout::Ntf, [0, 2, 1]) => self.alias(node, Value { layout: Layout::Ncl, ..x }),
            (Layout::Grouped { groups }, [0, 2, 1, 3, 4]) => self.shuffle_channels(node, x, groups),
            (Layout::Plain, &[0, a, b, c]) if s.h * s.w > 1 => {
                // NCHW axis k is NHWC axis NHWC_OF[k]; output NHWC axis j is
                // output NCHW axis NCHW_OF[j], which is input NCHW axis perm[..].
                const NHWC_OF: [usize; 4] = [0, 3, 1, 2];
                const NCHW_OF: [usize; 4] = [0, 2, 3, 1];
                let onnx = [0, a, b, c];
                if onnx.iter().any(|&p| !(0..4).contains(&p)) || (1..4).any(|k| !onnx.contains(&k)) {
                    return Err(format!("perm {perm:?} is not a permutation of 4 axes"));
                }
                let perm: [u8; 4] = std::array::from_fn(|j| NHWC_OF[onnx[NCHW_OF[j]] as usize] as u8);
                let d = [s.n, s.h, s.w, s.c];
                let shape = Shape::new(d[perm[0] as usize], d[perm[1] as usize], d[perm[2] as usize], d[perm[3] as usize]);
                self.push(node, LayerOp::Transpose { perm }, vec![x.tensor], shape);
            }
            _ => {
                return Err(format!(
                    "Transpose {perm:?} is not supported (a rank-3 [0, 2, 1], or a 4-D permutation that keeps the batch first)"
                ))
            }
        }
        Ok(())
    }

    /// A Relu or clip fused into the layer that wrote its input.
    fn fuse(&mut self, node: &NodeProto, x: Value, activation: Activation) -> Result<()> {
        if self.fuse_into_parts(node, x, activation) {
            self.alias(node, x);
            return Ok(());
        }
        match self.foldable_producer(&node.input[0], x.tensor) {
            Some(Layer {
                op:
                    LayerOp::Conv2d { activation: a, .. }
                    | LayerOp::DepthwiseConv2d { activation: a, .. }
                    | LayerOp::Dense { activation: a, .. }
                    | LayerOp::Add { activation: a },
                ..
            }) if *a == Activation::None => {
                *a = activation;
                self.alias(node, x);
                Ok(())
            }
            // Nothing to fuse into: an activation layer of its own.
            _ => {
                let f = match activation {
                    Activation::Relu => Elementwise::Relu,
                    Activation::Relu6 => Elementwise::Relu6,
                    Activation::ReluN1To1 => Elementwise::ReluN1To1,
                    Activation::None => {
                        self.alias(node, x);
                        return Ok(());
                    }
                };
                self.activation(node, x, f)
            }
        }
    }

    /// Fuses `activation` into every part of a tensor that Insert layers
    /// assemble (a grouped convolution's groups, a Concat of
    /// convolutions): it commutes with putting parts in place, so each
    /// part's convolution can clamp instead, where only its Insert reads
    /// it. `false` (nothing changed) unless every part can.
    fn fuse_into_parts(&mut self, node: &NodeProto, x: Value, activation: Activation) -> bool {
        let t = x.tensor;
        if activation == Activation::None || self.foldable_producer(&node.input[0], t).is_none() {
            return false;
        }
        let g = &self.graph;
        let inserts: Vec<&Layer> = g.layers.iter().filter(|l| l.output == t).collect();
        let parts: Vec<TensorId> = inserts.iter().map(|l| l.inputs[0]).collect();
        let all_inserts = inserts
            .iter()
            .all(|l| matches!(l.op, LayerOp::Insert { .. }));
        let writer = |p: TensorId| g.layers.iter().position(|l| l.output == p);
        let fusable = |p: TensorId| {
            g.consumers(p).count() == 1
                && writer(p).is_some_and(|i| {
                    matches!(
                        g.layers[i].op,
                        LayerOp::Conv2d {
                            activation: Activation::None,
                            ..
                        } | LayerOp::DepthwiseConv2d {
                            activation: Activation::None,
                            ..
                        }
                    )
                })
        };
        if inserts.is_empty() || !all_inserts || !parts.iter().all(|&p| fusable(p)) {
            return false;
        }
        let writers: Vec<usize> = parts.iter().filter_map(|&p| writer(p)).collect();
        for i in writers {
            if let LayerOp::Conv2d { activation: a, .. }
            | LayerOp::DepthwiseConv2d { activation: a, .. } = &mut self.graph.layers[i].op
            {
                *a = activation;
            }
        }
        true
    }

    /// An elementwise activation layer (Sigmoid, Tanh, LeakyRelu,
    /// HardSwish, or a Relu with nothing to fuse into); the layout of its
    /// input (a flattened C x H x W order) carries over.
    fn activation(&mut self, node: &NodeProto, x: Value, f: Elementwise) -> Result<()> {
        let shape = self.graph.tensors[x.tensor].shape;
        self.push(node, LayerOp::Activation { f }, vec![x.tensor], shape);
        self.keep_layout(node, x.layout);
        Ok(())
    }

    /// `Pad` with the constant 1 over spatial dimensions of signs: Larq's one-padding of a binary conv.
    fn pad(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        if !x.signs {
            return self.pad_values(node, x);
        }
        let (mode, pads, value) = self.pad_attributes(node)?;
        if mode != "constant" || value != 1.0 {
            return Err(format!("the signs must be padded with the constant 1 (Larq's one-padding), not {mode} {value}"));
        }
        // NCHW begins then ends: [n, c, top, left, n, c, bottom, right].
        let [0, 0, top, left, 0, 0, bottom, right] = pads[..] else {
            return Err(format!("pads {pads:?} pad more than the height and width"));
        };
        let amount =
            |p: i64| pad_amount(p).ok_or_else(|| format!("pad {p} is negative or above 16384"));
        let pad = Padding::Explicit {
            top: amount(top)?,
            bottom: amount(bottom)?,
            left: amount(left)?,
            right: amount(right)?,
        };
        self.alias(
            node,
            Value {
                pad: Some(pad),
                ..x
            },
        );
        Ok(())
    }

    /// A Pad node's mode, pads (inputs since opset 11, attributes before)
    /// and constant value.
    fn pad_attributes(&self, node: &NodeProto) -> Result<(String, Vec<i64>, f32)> {
        let mode = attribute(node, "mode").map_or("constant".into(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        });
        let pads = match self.constant(node, 1)? {
            Some(c) => c.ints,
            None => ints(node, "pads").ok_or("it has no pads")?,
        };
        let value = match self.constant(node, 2)? {
            Some(c) => c.floats.first().copied().unwrap_or(0.0),
            None => attribute(node, "value").map_or(0.0, |a| a.f),
        };
        Ok((mode, pads, value))
    }

    /// Pad of an activation with a constant (PyTorch's `F.pad`, an
    /// explicit padding tf2onnx keeps apart): a PAD layer over the NHWC
    /// axes the ONNX ones are held on.
    fn pad_values(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let (mode, pads, value) = self.pad_attributes(node)?;
        if mode != "constant" {
            return Err(format!("Pad mode {mode} is not supported; constant is"));
        }
        if node.input.get(3).is_some_and(|a| !a.is_empty()) {
            return Err("Pad with an axes input is not supported; give pads for every axis".into());
        }
        let s = self.graph.tensors[x.tensor].shape;
        let onnx = onnx_axes(x.layout, pads.len() == 4 && s.h * s.w == 1);
        let rank = onnx.len();
        if pads.len() != 2 * rank {
            return Err(format!(
                "pads {pads:?} are not two per axis of a rank-{rank} tensor"
            ));
        }
        let (mut before, mut after) = ([0u32; 4], [0u32; 4]);
        for (k, &axis) in onnx.iter().enumerate() {
            let amount = |p: i64| {
                u32::try_from(p).map_err(|_| {
                    format!("pads {pads:?}: a pad is negative (cropping is not supported)")
                })
            };
            before[axis] = amount(pads[k])?;
            after[axis] = amount(pads[rank + k])?;
        }
        if before[0] + after[0] != 0 {
            return Err("it pads the batch axis".into());
        }
        let d = [s.n, s.h, s.w, s.c];
        let out: [u32; 4] = std::array::from_fn(|k| d[k] + before[k] + after[k]);
        let op = LayerOp::Pad {
            before,
            after,
            value,
        };
        self.push(
            node,
            op,
            vec![x.tensor],
            Shape::new(out[0], out[1], out[2], out[3]),
        );
        self.keep_layout(node, x.layout);
        Ok(())
    }

    fn conv(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        let w = self
            .constant(node, 1)?
            .ok_or("its weights must be a constant")?;
        let (out, per_group, kh, kw) = match w.dims[..] {
            [out, per_group, kh, kw] if x.layout != Layout::Ncl => (out, per_group, kh, kw),
            [out, per_group, k] if x.layout == Layout::Ncl => (out, per_group, 1, k),
            _ => {
                return Err(format!(
                    "its weights have shape {:?}; [O, I, KH, KW] (or [O, I, K] on a [N, C, L] input) is needed",
                    w.dims
                ))
            }
        };
        let kernel = (kh, kw);
        if let Some(k) = ints(node, "kernel_shape") {
            if pair(k, "kernel_shape")? != kernel {
                return Err("kernel_shape differs from the weights' shape".into());
            }
        }
        let stride = pair(ints(node, "strides").unwrap_or(vec![1, 1]), "strides")?;
        let dilation = pair(ints(node, "dilations").unwrap_or(vec![1, 1]), "dilations")?;
        let group = int(node, "group").unwrap_or(1);
        let (padding, binary_padding) = conv_padding(node, x, s, kernel, stride, dilation)?;
        let bias = self.bias(node, 2, out)?;
        let shape = window_shape(s, kernel, stride, dilation, padding);
        let depthwise = group != 1 && group == i64::from(s.c) && per_group == 1;
        let arrange = |v: &[i64]| {
            if depthwise {
                depthwise_to_1hwo(v, (out, kh, kw))
            } else {
                oihw_to_ohwi(v, (out, per_group, kh, kw))
            }
        };
        let int8 = match &w.quantized {
            Some(q) => {
                let bias = self.constant(node, 2)?;
                Some(self.int8_weights(&node.name, x.tensor, q, 0, &arrange, bias.as_ref())?)
            }
            None => None,
        };
        let (op, kernel_values) = if group == 1 {
            if per_group != s.c {
                return Err(format!(
                    "its weights expect {per_group} input channels, the input has {}",
                    s.c
                ));
            }
            let activation = Activation::None;
            let k = oihw_to_ohwi(&w.floats, (out, per_group, kh, kw));
            (
                LayerOp::Conv2d {
                    filters: out,
                    kernel,
                    stride,
                    dilation,
                    padding,
                    activation,
                },
                k,
            )
        } else if group == s.c as i64 && per_group == 1 && out % s.c == 0 && !x.signs {
            let k = depthwise_to_1hwo(&w.floats, (out, kh, kw));
            (
                LayerOp::DepthwiseConv2d {
                    multiplier: out / s.c,
                    kernel,
                    stride,
                    dilation,
                    padding,
                    activation: Activation::None,
                },
                k,
            )
        } else if u32::try_from(group)
            .is_ok_and(|g| g > 1 && per_group.checked_mul(g) == Some(s.c) && out.is_multiple_of(g))
            && !x.signs
        {
            // Split into one convolution per group below.
            let k = oihw_to_ohwi(&w.floats, (out, per_group, kh, kw));
            let op = LayerOp::Conv2d {
                filters: out,
                kernel,
                stride,
                dilation,
                padding,
                activation: Activation::None,
            };
            (op, k)
        } else {
            return Err(format!("group = {group} with {per_group} input channels per group does not divide {} input and {out} output channels", s.c));
        };
        let binary = x.signs;
        if binary {
            check_binary_weights(&kernel_values, out as usize)?;
        }
        let shape = Shape::new(s.n, shape.h, shape.w, out);
        let weights = Some(LayerWeights {
            kernel: kernel_values,
            bias,
        });
        if group > 1 && !depthwise {
            let t = self.output_tensor(node, shape);
            let name = if node.name.is_empty() {
                node.output[0].clone()
            } else {
                node.name.clone()
            };
            let mut layer = Layer::new(&name, op, vec![x.tensor], t);
            (layer.weights, layer.int8) = (weights, int8);
            super::grouped::push(&mut self.graph, layer, s.c / per_group);
            return Ok(());
        }
        self.push(node, op, vec![x.tensor], shape);
        let layer = self.graph.layers.last_mut().expect("just pushed");
        layer.weights = weights;
        layer.int8 = int8;
        if binary {
            layer.precision = Precision::Binary;
            layer.binary_padding = binary_padding;
        }
        Ok(())
    }

    fn dense(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let s = self.graph.tensors[x.tensor].shape;
        // A MatMul of a sequence applies the weights at every step: a 1x1 convolution.
        let per_step = x.layout == Layout::Ntf && s.w > 1;
        if s.h * s.w != 1 && !(per_step && node.op_type == "MatMul") {
            return Err(format!("its input has shape {:?}; Gemm reads a flat [1, N] tensor and MatMul a [1, N] or [1, T, F] one", dims(s)));
        }
        let features_in = if per_step { s.c as usize } else { s.features() };
        let w = self
            .constant(node, 1)?
            .ok_or("its weights must be a constant")?;
        let is_gemm = node.op_type == "Gemm";
        if is_gemm && int(node, "transA").unwrap_or(0) != 0 {
            return Err("Gemm with transA = 1 is not supported: its input is a [1, N] row".into());
        }
        // Y = alpha A B + beta C: alpha scales the weights, beta the bias.
        let scale = |name: &str| {
            attribute(node, name)
                .filter(|_| is_gemm)
                .map_or(1.0, |a| a.f)
        };
        let (alpha, beta) = (scale("alpha"), scale("beta"));
        let transposed = is_gemm && int(node, "transB").unwrap_or(0) == 1;
        let [rows, cols] = w.dims[..] else {
            return Err(format!(
                "its weights have shape {:?}; 2-D is needed",
                w.dims
            ));
        };
        let (units, features) = if transposed {
            (rows, cols)
        } else {
            (cols, rows)
        };
        if features as usize != features_in {
            return Err(format!(
                "its weights take {features} features, the input has {features_in}"
            ));
        }
        let bias = if is_gemm {
            let bias = self.bias(node, 2, units)?;
            bias.into_iter().map(|b| beta * b).collect()
        } else {
            vec![0.0; units as usize]
        };
        // Rows of bench's [out, in] matrix, in bench's input order.
        let column = |j: usize| -> usize {
            match x.layout {
                Layout::Plain | Layout::Ncl | Layout::Ntf => j,
                Layout::Grouped { .. } => {
                    unreachable!("only Transpose and Reshape read [N, G, C/G, H, W]")
                }
                Layout::FlatChw { c, h, w } => {
                    let (c, h, w) = (c as usize, h as usize, w as usize);
                    let (y, xx, ch) = (j / (w * c), j / c % w, j % c);
                    (ch * h + y) * w + xx
                }
            }
        };
        let (units_u, features_u) = (units as usize, features as usize);
        // bench's [out, in] rows, from [out, in] (transposed) or [in, out].
        let arrange = |v: &[i64]| -> Vec<i64> {
            let mut rows = Vec::with_capacity(units_u * features_u);
            for o in 0..units_u {
                rows.extend((0..features_u).map(|j| {
                    let src = column(j);
                    v[if transposed {
                        o * features_u + src
                    } else {
                        src * units_u + o
                    }]
                }));
            }
            rows
        };
        let mut kernel = vec![0.0; units_u * features_u];
        for o in 0..units_u {
            for j in 0..features_u {
                let src = column(j);
                kernel[o * features_u + j] = alpha
                    * if transposed {
                        w.floats[o * features_u + src]
                    } else {
                        w.floats[src * units_u + o]
                    };
            }
        }
        let int8 = match &w.quantized {
            Some(_) if alpha != 1.0 || beta != 1.0 => {
                return Err("a Gemm with int8 weights must have alpha = beta = 1".into())
            }
            Some(q) => {
                let out_axis = usize::from(!transposed);
                let b = if is_gemm {
                    self.constant(node, 2)?
                } else {
                    None
                };
                Some(self.int8_weights(&node.name, x.tensor, q, out_axis, &arrange, b.as_ref())?)
            }
            None => None,
        };
        if x.signs {
            check_binary_weights(&kernel, units_u)?;
        }
        let (op, shape) = if per_step {
            let op = LayerOp::Conv2d {
                filters: units,
                kernel: (1, 1),
                stride: (1, 1),
                dilation: (1, 1),
                padding: Padding::Valid,
                activation: Activation::None,
            };
            (op, Shape::new(s.n, 1, s.w, units))
        } else {
            let op = LayerOp::Dense {
                units,
                activation: Activation::None,
            };
            (op, Shape::flat(s.n, units))
        };
        self.push(node, op, vec![x.tensor], shape);
        let layer = self.graph.layers.last_mut().expect("just pushed");
        layer.weights = Some(LayerWeights { kernel, bias });
        layer.int8 = int8;
        if x.signs {
            layer.precision = Precision::Binary;
        }
        Ok(())
    }

    fn bias(&self, node: &NodeProto, i: usize, out: u32) -> Result<Vec<f32>> {
        match self.constant(node, i)? {
            None => Ok(vec![0.0; out as usize]),
            Some(b) if b.floats.len() == out as usize => Ok(b.floats),
            // A scalar (or [1, 1]) broadcast to every output.
            Some(b) if b.floats.len() == 1 => Ok(vec![b.floats[0]; out as usize]),
            Some(b) => Err(format!(
                "its bias has {} values for {out} outputs (one, or one per output, is needed)",
                b.floats.len()
            )),
        }
    }
}

/// A binary layer's weights are `+-alpha` for each output channel (`rows` rows).
fn check_binary_weights(kernel: &[f32], rows: usize) -> Result<()> {
    for (o, row) in kernel.chunks(kernel.len() / rows.max(1)).enumerate() {
        let alpha = row.first().map_or(0.0, |v| v.abs());
        if row.iter().any(|v| (v.abs() - alpha).abs() > alpha * 1e-5) {
            return Err(format!("it reads signs, so it is a binary layer, but the weights of output channel {o} are not all +-alpha (XNOR-Net scaling); export sign(w) * mean|w| per channel"));
        }
    }
    Ok(())
}

/// A constant, checked, with its values as floats or integers.
#[derive(Clone, Debug)]
struct ConstTensor {
    dims: Vec<u32>,
    floats: Vec<f32>,
    ints: Vec<i64>,
    /// Its element type is uint8.
    uint8: bool,
    /// The integers and quantization of a dequantized constant (a QDQ or
    /// QOperator model's weights); `floats` are their real values.
    quantized: Option<quantized::QuantizedConst>,
}

impl ConstTensor {
    fn read(t: &TensorProto) -> Result<Self> {
        if t.data_location == 1 {
            return Err("its data is stored in an external file, which is not supported".into());
        }
        let mut dims = Vec::new();
        for &d in &t.dims {
            dims.push(
                u32::try_from(d)
                    .ok()
                    .filter(|&d| d > 0 || t.dims.len() == 1)
                    .ok_or(format!("a dimension of {d}"))?,
            );
        }
        let elements = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
            .filter(|&e| e <= MAX_ELEMENTS)
            .ok_or(format!("more than {MAX_ELEMENTS} elements"))?;
        let (floats, ints) = match t.data_type {
            FLOAT if !t.raw_data.is_empty() => (
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Vec::new(),
            ),
            FLOAT => (t.float_data.clone(), Vec::new()),
            INT64 if !t.raw_data.is_empty() => (
                Vec::new(),
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect(),
            ),
            INT64 => (Vec::new(), t.int64_data.clone()),
            INT8 | UINT8 | INT32 if !t.raw_data.is_empty() => {
                let ints = match t.data_type {
                    INT8 => t.raw_data.iter().map(|&b| i64::from(b as i8)).collect(),
                    UINT8 => t.raw_data.iter().map(|&b| i64::from(b)).collect(),
                    _ => t
                        .raw_data
                        .chunks_exact(4)
                        .map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))))
                        .collect(),
                };
                (Vec::new(), ints)
            }
            INT8 | UINT8 | INT32 => (Vec::new(), t.int32_data.iter().map(|&v| i64::from(v)).collect()),
            other => {
                return Err(format!(
                    "its element type {other} is not supported (float32 weights, int64 shapes, int8, uint8 and int32 quantized values)"
                ))
            }
        };
        if floats.len().max(ints.len()) != elements {
            return Err(format!(
                "{} values for shape {dims:?} ({elements} elements)",
                floats.len().max(ints.len())
            ));
        }
        if floats.iter().any(|v| !v.is_finite()) {
            return Err("a value is not finite".into());
        }
        Ok(Self {
            dims,
            floats,
            ints,
            uint8: t.data_type == UINT8,
            quantized: None,
        })
    }
}

/// The graph input's shape, float32: `[1, C, H, W]`, `[1, F]`, or `[1, A, B]`
/// held in `rank3`'s layout; a symbolic batch is 1.
fn input_shape(input: &pb::ValueInfoProto, rank3: Layout) -> Result<(Shape, Layout)> {
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or(format!("the input '{}' is not a tensor", input.name))?;
    if tensor.elem_type != FLOAT {
        return Err(format!(
            "the input '{}' has element type {}; bench imports float32 ONNX models",
            input.name, tensor.elem_type
        ));
    }
    let dims: Vec<i64> = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| {
                    if d.dim_param.is_empty() {
                        d.dim_value
                    } else {
                        1
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let size = |d: i64| {
        u32::try_from(d)
            .ok()
            .filter(|&d| (1..=1 << 16).contains(&d))
    };
    let bad = || {
        format!(
            "the input '{}' has shape {dims:?}; [1, C, H, W], [1, C, L] or [1, F] is supported",
            input.name
        )
    };
    match dims[..] {
        [1, c, h, w] => Ok((
            Shape::new(
                1,
                size(h).ok_or_else(bad)?,
                size(w).ok_or_else(bad)?,
                size(c).ok_or_else(bad)?,
            ),
            Layout::Plain,
        )),
        [1, a, b] => {
            let (a, b) = (size(a).ok_or_else(bad)?, size(b).ok_or_else(bad)?);
            Ok(match rank3 {
                Layout::Ncl => (Shape::new(1, 1, b, a), Layout::Ncl),
                _ => (Shape::new(1, 1, a, b), Layout::Ntf),
            })
        }
        [1, f] => Ok((Shape::flat(1, size(f).ok_or_else(bad)?), Layout::Plain)),
        _ => Err(bad()),
    }
}

/// The nodes in the order bench runs them: the backbone (everything the
/// last output needs) in file order, each exit head right after the last
/// backbone node it reads.
fn schedule<'g>(g: &'g pb::GraphProto) -> Result<Vec<(usize, &'g NodeProto)>> {
    let producer: HashMap<&str, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let ancestors = |output: &str| -> Vec<bool> {
        let mut needed = vec![false; g.node.len()];
        let mut stack: Vec<usize> = producer.get(output).copied().into_iter().collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut needed[i], true) {
                stack.extend(
                    g.node[i]
                        .input
                        .iter()
                        .filter_map(|v| producer.get(v.as_str()).copied()),
                );
            }
        }
        needed
    };
    // The output written last in file order is the final classifier.
    let last = g
        .output
        .iter()
        .max_by_key(|o| producer.get(o.name.as_str()).copied())
        .map(|o| o.name.as_str())
        .unwrap_or("");
    let backbone = ancestors(last);
    let mut heads: Vec<(usize, Vec<usize>)> = Vec::new();
    for o in g.output.iter().filter(|o| o.name != last) {
        let needed = ancestors(&o.name);
        let own: Vec<usize> = (0..g.node.len())
            .filter(|&i| needed[i] && !backbone[i])
            .collect();
        let branch = (0..g.node.len())
            .filter(|&i| needed[i] && backbone[i])
            .max()
            .unwrap_or(0);
        heads.push((branch, own));
    }
    heads.sort_by_key(|(branch, own)| (*branch, own.first().copied()));
    let mut order = Vec::new();
    let mut placed = vec![false; g.node.len()];
    let mut place = |i: usize, order: &mut Vec<(usize, &'g NodeProto)>| {
        if !std::mem::replace(&mut placed[i], true) {
            order.push((i, &g.node[i]));
        }
    };
    for i in (0..g.node.len()).filter(|&i| backbone[i]) {
        place(i, &mut order);
        for (_, own) in heads.iter().filter(|(branch, _)| *branch == i) {
            own.iter().for_each(|&j| place(j, &mut order));
        }
    }
    if order.is_empty() {
        return Err(format!("no node writes the output '{last}'"));
    }
    Ok(order)
}

fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int(node: &NodeProto, name: &str) -> Option<i64> {
    attribute(node, name).map(|a| a.i)
}

fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

fn pair(v: Vec<i64>, what: &str) -> Result<(u32, u32)> {
    let ok = |d: i64| {
        u32::try_from(d)
            .ok()
            .filter(|&d| (1..=1 << 16).contains(&d))
    };
    // A 1-D operator's one value is the width of bench's `[N, 1, L, C]`.
    match v[..] {
        [a, b] => ok(a)
            .zip(ok(b))
            .ok_or(format!("{what} {v:?} must be positive")),
        [b] => ok(b)
            .map(|b| (1, b))
            .ok_or(format!("{what} {v:?} must be positive")),
        _ => Err(format!(
            "{what} {v:?} must have one or two values (1-D and 2-D operators only)"
        )),
    }
}

/// The node's padding: VALID or SAME where its amounts are those, else
/// the explicit amounts (PyTorch's `padding=1` on a stride-2 convolution,
/// SAME_LOWER), which the kernels take as they are.
fn padding(
    node: &NodeProto,
    s: Shape,
    kernel: (u32, u32),
    stride: (u32, u32),
    dilation: (u32, u32),
) -> Result<Padding> {
    let auto = attribute(node, "auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_default();
    let same = Padding::Same.explicit((s.h, s.w), kernel, stride, dilation);
    let explicit = match auto.as_str() {
        "SAME_UPPER" => return Ok(Padding::Same),
        "VALID" => return Ok(Padding::Valid),
        // The odd one at the start.
        "SAME_LOWER" => match same {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => Padding::Explicit {
                top: bottom,
                bottom: top,
                left: right,
                right: left,
            },
            other => other,
        },
        "" | "NOTSET" => {
            let pads = ints(node, "pads").unwrap_or(vec![0; 4]);
            let amount = |p: i64| {
                pad_amount(p)
                    .ok_or_else(|| format!("pads {pads:?}: a pad is negative or above 16384"))
            };
            let (top, left, bottom, right) = match pads[..] {
                [top, left, bottom, right] => {
                    (amount(top)?, amount(left)?, amount(bottom)?, amount(right)?)
                }
                [left, right] => (0, amount(left)?, 0, amount(right)?),
                _ => {
                    return Err(format!(
                        "pads {pads:?} must have four values (2-D operators) or two (1-D)"
                    ))
                }
            };
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }
        other => return Err(format!("auto_pad {other} is not supported")),
    };
    Ok(match explicit {
        Padding::Explicit {
            top: 0,
            bottom: 0,
            left: 0,
            right: 0,
        } => Padding::Valid,
        p if p == same => Padding::Same,
        p => p,
    })
}

/// One side's padding amount of a window (0 to 16384, the kernels' extent
/// limit), or `None`.
fn pad_amount(p: i64) -> Option<u32> {
    u32::try_from(p)
        .ok()
        .filter(|&p| p <= kernels::geometry::MAX_EXTENT)
}

/// The padding ceil_mode adds after an axis of `input` (padded by
/// `before` and `after`): the last window may overhang, if it starts
/// inside the input or the padding before it (onnxruntime's and
/// PyTorch's rule).
fn ceil_mode_extra(input: u32, kernel: u32, stride: u32, (before, after): (u32, u32)) -> u32 {
    let padded = input + before + after;
    let Some(span) = padded.checked_sub(kernel) else {
        return 0;
    };
    let mut out = span.div_ceil(stride) + 1;
    if (out - 1) * stride >= input + before {
        out -= 1;
    }
    ((out - 1) * stride + kernel).saturating_sub(padded)
}

fn window_shape(
    s: Shape,
    kernel: (u32, u32),
    stride: (u32, u32),
    dilation: (u32, u32),
    padding: Padding,
) -> Shape {
    let (_, (h, w)) = Window::new(kernel, stride, dilation, padding, (s.h, s.w));
    Shape::new(s.n, h, w, s.c)
}

/// The first element and the count of ONNX's Slice of one axis of `dim`
/// elements: `start` and `end` wrap when negative and are clamped (to
/// `[0, dim]` going forward, `[-1, dim - 1]` going back); `None` when
/// nothing is left or the step is 0.
fn slice_range(start: i64, end: i64, step: i64, dim: u32) -> Option<(u32, u32)> {
    let dim = i64::from(dim);
    let wrap = |v: i64| if v < 0 { v + dim } else { v };
    let (first, count) = match step {
        0 => return None,
        s if s > 0 => {
            let (a, b) = (wrap(start).clamp(0, dim), wrap(end).clamp(0, dim));
            (a, (b - a + s - 1).div_euclid(s))
        }
        s => {
            let (a, b) = (wrap(start).clamp(0, dim - 1), wrap(end).clamp(-1, dim - 1));
            (a, (a - b - s - 1).div_euclid(-s))
        }
    };
    (count > 0).then_some((first as u32, count as u32))
}

/// The NHWC axis of each ONNX axis of a value held in `layout` (`flat`:
/// a plain value that is `[N, F]` rather than `[N, C, H, W]`).
fn onnx_axes(layout: Layout, flat: bool) -> Vec<usize> {
    match layout {
        Layout::Ncl => vec![0, 3, 2],
        Layout::Ntf => vec![0, 2, 3],
        _ if flat => vec![0, 3],
        _ => vec![0, 3, 1, 2],
    }
}

/// The ONNX shape of a bench tensor, for messages.
fn dims(s: Shape) -> Vec<u32> {
    if s.h * s.w == 1 {
        vec![s.n, s.c]
    } else {
        vec![s.n, s.c, s.h, s.w]
    }
}

/// A Conv's padding and, for a binary Conv, what it pads its signs with:
/// its own pads (zeros, which add nothing to the dot product), or a Pad
/// with 1 before it (Larq's `pad_values=1`).
fn conv_padding(
    node: &NodeProto,
    x: Value,
    s: Shape,
    kernel: (u32, u32),
    stride: (u32, u32),
    dilation: (u32, u32),
) -> Result<(Padding, BinaryPadding)> {
    let own = padding(node, s, kernel, stride, dilation)?;
    match x.pad {
        Some(_) if own != Padding::Valid => {
            Err("a binary Conv after a Pad must not pad again".into())
        }
        Some(pad) => Ok((pad, BinaryPadding::One)),
        None if x.signs => Ok((own, BinaryPadding::Zero)),
        None => Ok((own, BinaryPadding::One)),
    }
}

/// A constant broadcast against an activation of NHWC shape `s`: its NHWC
/// view and its values in NHWC order. ONNX aligns the constant's axes with
/// the activation's last ones: NCHW for a 4-D activation, `[N, F]` for a
/// flat one (whose features bench keeps on C). The constant may not make
/// the result larger than the activation.
fn nhwc_constant(c: &ConstTensor, s: Shape) -> Result<(Shape, Vec<f32>)> {
    let flat = s.h == 1 && s.w == 1 && c.dims.len() <= 2;
    let rank = if flat { 2 } else { 4 };
    if c.dims.len() > rank {
        return Err(format!(
            "its constant has rank {}, more than its input",
            c.dims.len()
        ));
    }
    let mut d = vec![1u32; rank - c.dims.len()];
    d.extend(&c.dims);
    let view = match d[..] {
        [n, f] => Shape::flat(n, f),
        [n, ch, h, w] => Shape::new(n, h, w, ch),
        _ => unreachable!("rank 2 or 4"),
    };
    let fits = |v: u32, x: u32| v == 1 || v == x;
    if !(fits(view.n, s.n) && fits(view.h, s.h) && fits(view.w, s.w) && fits(view.c, s.c)) {
        return Err(format!(
            "its constant of shape {:?} does not broadcast to its input {:?}",
            c.dims,
            dims(s)
        ));
    }
    if view.elements() != Some(c.floats.len()) {
        return Err(format!(
            "its constant has {} values for shape {:?}",
            c.floats.len(),
            c.dims
        ));
    }
    let (h, w, ch) = (view.h as usize, view.w as usize, view.c as usize);
    let mut values = vec![0.0; c.floats.len()];
    for (i, v) in values.iter_mut().enumerate() {
        // NHWC index i reads NCHW index (n, ch, y, x).
        let (n, rest) = (i / (h * w * ch), i % (h * w * ch));
        let (y, x, k) = (rest / (w * ch), rest / ch % w, rest % ch);
        *v = c.floats[((n * ch + k) * h + y) * w + x];
    }
    Ok((view, values))
}

/// Folds `y = multiplier x + shift` per output channel into `layer`, a
/// float Conv2d, DepthwiseConv2d or Dense without an activation; whether
/// it could.
fn fold_affine(layer: &mut Layer, multiplier: &[f32], shift: &[f32]) -> bool {
    let out = multiplier.len();
    // Which output channel weight `i` feeds: OHWI and [out, in] are
    // out-major, the depthwise 1HWO out-minor.
    let channel_of: fn(usize, usize, usize) -> usize = match layer.op {
        LayerOp::Conv2d {
            activation: Activation::None,
            ..
        }
        | LayerOp::Dense {
            activation: Activation::None,
            ..
        } => |i, per_channel, _| i / per_channel,
        LayerOp::DepthwiseConv2d {
            activation: Activation::None,
            ..
        } => |i, _, out| i % out,
        _ => return false,
    };
    let Some(w) = layer.weights.as_mut().filter(|w| w.bias.len() == out) else {
        return false;
    };
    if layer.precision != Precision::Full || w.kernel.len() % out != 0 {
        return false;
    }
    let per_channel = w.kernel.len() / out;
    for (i, k) in w.kernel.iter_mut().enumerate() {
        *k *= multiplier[channel_of(i, per_channel, out)];
    }
    for ((b, m), t) in w.bias.iter_mut().zip(multiplier).zip(shift) {
        *b = *b * m + t;
    }
    true
}

/// Conv weights from ONNX's OIHW to bench's OHWI.
fn oihw_to_ohwi<T: Copy + Default>(
    w: &[T],
    (out, per_group, kh, kw): (u32, u32, u32, u32),
) -> Vec<T> {
    let (out, per_group, kh, kw) = (out as usize, per_group as usize, kh as usize, kw as usize);
    let mut k = vec![T::default(); w.len()];
    for o in 0..out {
        for i in 0..per_group {
            for y in 0..kh {
                for x in 0..kw {
                    k[((o * kh + y) * kw + x) * per_group + i] =
                        w[((o * per_group + i) * kh + y) * kw + x];
                }
            }
        }
    }
    k
}

/// Depthwise weights from ONNX's [C * m, 1, KH, KW] to bench's [1, KH, KW, C * m].
fn depthwise_to_1hwo<T: Copy + Default>(w: &[T], (out, kh, kw): (u32, u32, u32)) -> Vec<T> {
    let (out, kh, kw) = (out as usize, kh as usize, kw as usize);
    let mut k = vec![T::default(); w.len()];
    for o in 0..out {
        for y in 0..kh {
            for x in 0..kw {
                k[(y * kw + x) * out + o] = w[(o * kh + y) * kw + x];
            }
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_pads_the_overhanging_windows() {
        // PyTorch MaxPool2d(2, 2, ceil_mode=True) on 5: 3 outputs, the last
        // window overhangs by one.
        assert_eq!(ceil_mode_extra(5, 2, 2, (0, 0)), 1);
        // Even sizes have nothing to round up.
        assert_eq!(ceil_mode_extra(4, 2, 2, (0, 0)), 0);
        // 3x3 stride 2 on 6 (SqueezeNet's pools): 3 outputs, overhang 1.
        assert_eq!(ceil_mode_extra(6, 3, 2, (0, 0)), 1);
        // With padding 1 on 5, kernel 2 stride 2: ceil gives 4 windows, but
        // the fourth would start in the padding after the input: 3, no overhang.
        assert_eq!(ceil_mode_extra(5, 2, 2, (1, 1)), 0);
        // A kernel larger than the padded input: no window, nothing added.
        assert_eq!(ceil_mode_extra(2, 3, 1, (0, 0)), 0);
    }
}
