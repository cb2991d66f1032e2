//! The host-side model graph: named layers in execution order over named
//! NHWC tensors, with shapes inferred as layers are added, and the cost
//! figures (MACs, parameters) every report quotes.

use kernels::exit::Confidence;
use kernels::geometry::{Activation, Padding, Shape, Window};

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// A tensor of the graph (activations only; weights belong to layers).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name, unique in the graph.
    pub name: String,
    /// NHWC shape; flat tensors are `[n, 1, 1, features]`.
    pub shape: Shape,
    /// int8 `(scale, zero_point)` fixed by an imported model; `None` when
    /// quantization is to be calibrated.
    pub quant: Option<(f32, i32)>,
}

/// What a layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerOp {
    /// 2-D convolution with `filters` outputs.
    Conv2d {
        /// Output channels.
        filters: u32,
        /// Kernel height and width.
        kernel: (u32, u32),
        /// Strides.
        stride: (u32, u32),
        /// Dilations.
        dilation: (u32, u32),
        /// Padding scheme.
        padding: Padding,
        /// Fused activation.
        activation: Activation,
    },
    /// Depthwise 2-D convolution.
    DepthwiseConv2d {
        /// Output channels per input channel.
        multiplier: u32,
        /// Kernel height and width.
        kernel: (u32, u32),
        /// Strides.
        stride: (u32, u32),
        /// Dilations.
        dilation: (u32, u32),
        /// Padding scheme.
        padding: Padding,
        /// Fused activation.
        activation: Activation,
    },
    /// Fully connected layer over the flattened input.
    Dense {
        /// Output features.
        units: u32,
        /// Fused activation.
        activation: Activation,
    },
    /// Average pool.
    AvgPool {
        /// Window height and width.
        kernel: (u32, u32),
        /// Strides.
        stride: (u32, u32),
        /// Padding scheme.
        padding: Padding,
        /// How an int8 mean rounds halves (up in legacy uint8 models).
        rounding: kernels::int8::PoolRounding,
        /// Fused activation.
        activation: Activation,
    },
    /// Max pool.
    MaxPool {
        /// Window height and width.
        kernel: (u32, u32),
        /// Strides.
        stride: (u32, u32),
        /// Padding scheme.
        padding: Padding,
        /// Fused activation.
        activation: Activation,
    },
    /// Elementwise sum of two same-shaped tensors.
    Add {
        /// Fused activation.
        activation: Activation,
    },
    /// `[n, h, w, c]` to `[n, 1, 1, h * w * c]`.
    Flatten,
    /// Same elements, another shape (the output tensor's).
    Reshape,
    /// Softmax over channels of `exp(beta * x)`.
    Softmax {
        /// Inverse temperature (1 for a plain softmax).
        beta: f32,
    },
    /// LOG_SOFTMAX over channels (int8 only: output scale 16/256, zero point 127).
    LogSoftmax,
    /// float32 to int8 with the output tensor's quantization (a model's float input).
    Quantize,
    /// int8 to float32 with the input tensor's quantization (a model's float output).
    Dequantize,
    /// TFLite's QUANTIZE from an int8 or uint8 tensor to another, with the
    /// tensors' own quantization (a uint8 tensor's zero point is its own):
    /// a legacy uint8 model's input and output, which computes in int8
    /// shifted by 128 in between, or a requantization inside a model.
    Requantize {
        /// Whether the input is uint8.
        input_uint8: bool,
        /// Whether the output is uint8.
        output_uint8: bool,
    },
    /// The sign of each activation (+1 for 0), packed into bits for the
    /// binary layer that follows.
    Sign,
    /// PAD / PADV2: a border of `value` (the output zero point in int8,
    /// unless the model gives a constant) around the input.
    Pad {
        /// Elements before the input on each NHWC axis.
        before: [u32; 4],
        /// Elements after it.
        after: [u32; 4],
        /// The float pad value (0 for PAD).
        value: f32,
    },
    /// TRANSPOSE: output axis `k` is input axis `perm[k]` (NHWC axes).
    Transpose {
        /// The permutation.
        perm: [u8; 4],
    },
    /// ADD, SUB, MUL, MAXIMUM or MINIMUM of two tensors with broadcasting.
    Binary {
        /// Which.
        op: kernels::broadcast::Binary,
        /// Fused activation (ADD, SUB, MUL).
        activation: Activation,
        /// The first operand as a 4-D shape broadcast to the output's.
        a_view: Shape,
        /// The second operand's.
        b_view: Shape,
        /// The second operand when it is a constant of the model (its
        /// tensor, `inputs[1]`, gives its shape and quantization).
        constant_b: Option<BinaryConstant>,
    },
    /// BATCH_MATMUL of `inputs[0]` and `inputs[1]`, each viewed as
    /// `[b0, b1, rows, cols]` (batch axes broadcast).
    BatchMatMul {
        /// Which operands are stored transposed.
        adj: kernels::matmul::Adjoint,
        /// The first operand's view.
        a_view: Shape,
        /// The second operand's view.
        b_view: Shape,
        /// The output's view.
        out_view: Shape,
        /// The second operand when it is a constant of the model.
        constant_b: Option<BinaryConstant>,
    },
    /// A standalone elementwise activation (RELU, LEAKY_RELU, LOGISTIC, ...).
    Activation {
        /// Which.
        f: crate::model::elementwise::Elementwise,
    },
    /// SLICE / STRIDED_SLICE: output element `o` on each NHWC axis is input
    /// element `begin + o * stride`.
    Slice {
        /// First element per axis.
        begin: [u32; 4],
        /// Step per axis.
        stride: [i32; 4],
        /// The output as the slice's extents on the input's axes (the
        /// output tensor may drop shrunk axes: same elements, same order).
        view: Shape,
    },
    /// One part of a CONCATENATION or PACK: the input, viewed as
    /// `input_view`, copied into the output (viewed as `output_view`) at
    /// `before`. Several such layers write one output tensor.
    Insert {
        /// Where the part starts on each NHWC axis.
        before: [u32; 4],
        /// The input as a 4-D shape in the output's rank.
        input_view: Shape,
        /// The whole output.
        output_view: Shape,
    },
    /// GATHER with constant indices and RESIZE_NEAREST_NEIGHBOR: output
    /// element `[a, b, c, d]` is input element `[m0(a), m1(b), m2(c), m3(d)]`.
    Remap {
        /// Input index per output index, on the NHWC axes that have one.
        maps: [Option<Vec<u32>>; 4],
        /// The output as 4-D extents on the input's axes.
        view: Shape,
    },
    /// GATHER from a constant table by indices the model reads at run time
    /// (`inputs[0]`, int32): the table is `[outer, extent, inner]` as
    /// bytes of the output's element type, `inner_bytes` per row.
    Gather {
        /// The table's bytes.
        table: Vec<u8>,
        /// Rows before the gathered axis.
        outer: u32,
        /// Extent of the gathered axis.
        extent: u32,
        /// Bytes of one gathered row.
        inner_bytes: u32,
    },
    /// UNIDIRECTIONAL_SEQUENCE_LSTM, integer: the `kernels::lstm` block
    /// (sizes, multipliers, folded biases, weights); `inputs[1]` is its
    /// scratch tensor.
    Lstm {
        /// The block.
        block: Vec<u8>,
    },
    /// SVDF, integer (`kernels::svdf`); `inputs[1]` is its scratch tensor.
    Svdf {
        /// Sizes and multipliers.
        params: kernels::svdf::SvdfParams,
        /// `[filters, input]` int8 weights.
        feature: Vec<i8>,
        /// `[filters, memory]` int16 weights.
        time: Vec<i16>,
        /// int32 bias per unit.
        bias: Option<Vec<i32>>,
    },
    /// RESIZE_BILINEAR to the output tensor's height and width.
    ResizeBilinear {
        /// Corner alignment and pixel centres.
        mode: kernels::resize::Bilinear,
    },
    /// MEAN over the NHWC axes set in `axes` (kept as extent 1).
    Mean {
        /// The reduced axes.
        axes: [bool; 4],
    },
}

/// A binary operator's constant operand.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryConstant {
    /// Its real values (an int8 constant's dequantized).
    pub values: Vec<f32>,
    /// The int8 values an imported int8 model stores, kept exactly.
    pub int8: Option<Vec<i8>>,
    /// The constant is the operator's first operand (`op(constant, x)`, as
    /// in `1 - x`); the layer's activation input stays `inputs[0]`.
    pub first: bool,
}

/// The number format a parameterized layer computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// The model's own format (float32, or int8 once quantized).
    #[default]
    Full,
    /// int4 weights, int8 activations.
    Int4,
    /// Binary weights and inputs (the input comes from a [`LayerOp::Sign`]).
    Binary,
}

/// An early-exit head: where its logits are, and how it judges confidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitHead {
    /// The head's logits tensor; the exit test runs right after it is computed.
    pub logits: TensorId,
    /// Confidence measure.
    pub measure: Confidence,
}

/// The float parameters of a conv, depthwise or dense layer, in the
/// layouts the kernels read: OHWI, `[1, KH, KW, C * multiplier]`, `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Kernel or weight matrix.
    pub kernel: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
}

/// The exact int8 parameters of an imported conv, depthwise or dense
/// layer, in the same layouts as [`LayerWeights`]: they are lowered as they
/// are, so that the model computes the bytes its source computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Weights {
    /// Symmetric int8 weights.
    pub values: Vec<i8>,
    /// Weight scale of each output channel, or one for the whole tensor.
    pub scales: Vec<f32>,
    /// The weights' zero point: 0 (symmetric) but in a legacy uint8 model,
    /// whose uint8 weights are kept shifted by 128.
    pub zero_point: i32,
    /// Integer bias of each output channel, in units of `input_scale *
    /// scale`: int32, or int64 in TFLite's 16x8 scheme (empty for
    /// dynamic-range weights, whose bias is the float one).
    pub bias: Vec<i64>,
    /// Dynamic-range ("hybrid") weights of a float layer: TFLite quantizes
    /// the float input per row at run time (`kernels::hybrid`). The layer's
    /// float `weights` are their dequantized values and its float bias.
    pub dynamic_range: bool,
}

/// One layer: its operation, input tensors and output tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Name, unique in the graph (exit heads and per-layer overrides refer to it).
    pub name: String,
    /// The computation.
    pub op: LayerOp,
    /// Input tensors.
    pub inputs: Vec<TensorId>,
    /// Output tensor.
    pub output: TensorId,
    /// Float parameters, for layers that have them, once initialized or imported.
    pub weights: Option<LayerWeights>,
    /// Exact int8 parameters of an imported int8 layer (its float
    /// `weights` are their dequantized values).
    pub int8: Option<Int8Weights>,
    /// Number format of a parameterized layer.
    pub precision: Precision,
    /// What a binary convolution pads with: +1 (bench's own binarized
    /// layers, Larq's `pad_values=1`) or 0 (Larq's default, `pad_values=0`).
    pub binary_padding: kernels::binary::BinaryPadding,
}

impl LayerOp {
    /// The sliding window of a convolution, depthwise convolution or pool
    /// on an input of `input` (height, width), and the output's height
    /// and width; `None` for other layers.
    pub fn window(&self, input: (u32, u32)) -> Option<(Window, (u32, u32))> {
        let (kernel, stride, dilation, padding) = match *self {
            LayerOp::Conv2d {
                kernel,
                stride,
                dilation,
                padding,
                ..
            }
            | LayerOp::DepthwiseConv2d {
                kernel,
                stride,
                dilation,
                padding,
                ..
            } => (kernel, stride, dilation, padding),
            LayerOp::AvgPool {
                kernel,
                stride,
                padding,
                ..
            }
            | LayerOp::MaxPool {
                kernel,
                stride,
                padding,
                ..
            } => (kernel, stride, (1, 1), padding),
            _ => return None,
        };
        Some(Window::new(kernel, stride, dilation, padding, input))
    }
}

impl Layer {
    /// A layer at full precision, without parameters yet.
    pub fn new(name: &str, op: LayerOp, inputs: Vec<TensorId>, output: TensorId) -> Self {
        Self {
            name: name.into(),
            op,
            inputs,
            output,
            weights: None,
            int8: None,
            precision: Precision::Full,
            binary_padding: kernels::binary::BinaryPadding::One,
        }
    }

    /// Number of kernel weights and of biases the layer needs, given its
    /// input and output shapes; `(0, 0)` for layers without parameters.
    pub fn parameter_counts(&self, input: Shape, output: Shape) -> (usize, usize) {
        let out_c = output.c as usize;
        match self.op {
            LayerOp::Conv2d { kernel, .. } => {
                ((kernel.0 * kernel.1 * input.c) as usize * out_c, out_c)
            }
            LayerOp::DepthwiseConv2d { kernel, .. } => {
                ((kernel.0 * kernel.1) as usize * out_c, out_c)
            }
            LayerOp::Dense { .. } => (input.features() * out_c, out_c),
            // Four gates: input and recurrent weights, one (folded) bias each.
            LayerOp::Lstm { .. } => (4 * out_c * (input.c as usize + out_c), 4 * out_c),
            LayerOp::Svdf {
                ref feature,
                ref time,
                ..
            } => (feature.len() + time.len(), out_c),
            _ => (0, 0),
        }
    }
}

/// A model: layers in execution order over tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// Every activation tensor.
    pub tensors: Vec<Tensor>,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// The model input.
    pub input: TensorId,
    /// The final output.
    pub output: TensorId,
    /// Early-exit heads, in execution order.
    pub exits: Vec<ExitHead>,
    /// The quantized tensors that hold int16 (TFLite's 16x8 scheme); every
    /// other quantized tensor is int8.
    pub int16: std::collections::BTreeSet<TensorId>,
    /// The tensors that hold int32 (GATHER's indices read at run time).
    pub int32: std::collections::BTreeSet<TensorId>,
    /// In an imported int8 model, the tensors its file keeps in float32
    /// (operators the converter left in float between a DEQUANTIZE, or an
    /// LCE operator with float output, and a QUANTIZE): they run in float.
    pub float32: std::collections::BTreeSet<TensorId>,
    /// The layout the model's file gives its inputs and outputs (bench
    /// holds them NHWC and transposes at the boundary).
    pub layout: super::layout::ModelLayout,
}

impl Graph {
    /// Multiply-accumulates of one layer: every kernel tap counts, padded
    /// ones included, as MLPerf Tiny and most papers count them.
    pub fn layer_macs(&self, layer: &Layer) -> u64 {
        let input = self.tensors[layer.inputs[0]].shape;
        let output = self.tensors[layer.output].shape;
        let out_elements = output.elements().unwrap_or(0) as u64;
        match layer.op {
            LayerOp::Conv2d { kernel, .. } => out_elements * (kernel.0 * kernel.1 * input.c) as u64,
            LayerOp::DepthwiseConv2d { kernel, .. } => out_elements * (kernel.0 * kernel.1) as u64,
            LayerOp::Dense { .. } => out_elements * input.features() as u64,
            // Each output element is a dot product of depth K.
            LayerOp::BatchMatMul { adj, a_view, .. } => {
                out_elements * u64::from(if adj.x { a_view.w } else { a_view.c })
            }
            // Four gates, each an input and a recurrent product per step and cell.
            LayerOp::Lstm { .. } => out_elements * 4 * (input.c + output.c) as u64,
            // Per row: the feature products and the time products.
            LayerOp::Svdf {
                ref feature,
                ref time,
                ..
            } => input.n as u64 * (feature.len() + time.len()) as u64,
            _ => 0,
        }
    }

    /// Weights and biases of one layer.
    pub fn layer_params(&self, layer: &Layer) -> u64 {
        let (kernel, bias) = layer.parameter_counts(
            self.tensors[layer.inputs[0]].shape,
            self.tensors[layer.output].shape,
        );
        (kernel + bias) as u64
    }

    /// Total multiply-accumulates of one inference through every layer
    /// (exit heads included), binary layers excluded.
    pub fn macs(&self) -> u64 {
        self.layers
            .iter()
            .filter(|l| l.precision != Precision::Binary)
            .map(|l| self.layer_macs(l))
            .sum()
    }

    /// Binary operations (XNOR-popcount MACs) of one inference through every layer.
    pub fn binary_ops(&self) -> u64 {
        self.layers
            .iter()
            .filter(|l| l.precision == Precision::Binary)
            .map(|l| self.layer_macs(l))
            .sum()
    }

    /// The model's inputs by name: the input itself, or, when an importer
    /// packed several into it, the tensors its `input_<j>` slices hand out.
    pub fn input_parts(&self) -> Vec<(String, TensorId)> {
        let parts: Vec<(String, TensorId)> = self
            .layers
            .iter()
            .enumerate()
            .take_while(|(j, l)| {
                l.name == format!("input_{j}")
                    && l.inputs == [self.input]
                    && matches!(l.op, LayerOp::Slice { .. })
            })
            .map(|(_, l)| l)
            .map(|l| (self.tensors[l.output].name.clone(), l.output))
            .collect();
        if parts.is_empty() {
            vec![(self.tensors[self.input].name.clone(), self.input)]
        } else {
            parts
        }
    }

    /// The model's outputs by name: the output itself, or the tensors the
    /// `output_<k>` layers pack into it.
    pub fn output_parts(&self) -> Vec<(String, TensorId)> {
        let parts: Vec<(String, TensorId)> = self
            .layers
            .iter()
            .filter(|l| {
                l.name.starts_with("output_")
                    && l.output == self.output
                    && matches!(l.op, LayerOp::Insert { .. })
            })
            .map(|l| (self.tensors[l.inputs[0]].name.clone(), l.inputs[0]))
            .collect();
        if parts.is_empty() {
            vec![(self.tensors[self.output].name.clone(), self.output)]
        } else {
            parts
        }
    }

    /// The tensor whose signs a Sign layer packed into `t`, if one did.
    pub fn sign_source(&self, t: TensorId) -> Option<TensorId> {
        self.layers
            .iter()
            .find(|l| l.output == t && l.op == LayerOp::Sign)
            .map(|l| l.inputs[0])
    }

    /// The layers that read tensor `t`.
    pub fn consumers(&self, t: TensorId) -> impl Iterator<Item = (usize, &Layer)> {
        self.layers
            .iter()
            .enumerate()
            .filter(move |(_, l)| l.inputs.contains(&t))
    }

    /// Total parameters (weights + biases of conv, depthwise and dense layers).
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| self.layer_params(l)).sum()
    }

    /// The layer with this name.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// Kernel size, stride and padding of a layer's sliding window, as the
/// zoo and importers write them: `Win::same((3, 3)).stride(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Win {
    /// Kernel height and width.
    pub kernel: (u32, u32),
    /// Stride in both directions.
    pub stride: u32,
    /// Padding scheme.
    pub padding: Padding,
}

impl Win {
    /// A stride-1 window with SAME padding.
    pub const fn same(kernel: (u32, u32)) -> Self {
        Self {
            kernel,
            stride: 1,
            padding: Padding::Same,
        }
    }

    /// A stride-1 window with VALID padding.
    pub const fn valid(kernel: (u32, u32)) -> Self {
        Self {
            kernel,
            stride: 1,
            padding: Padding::Valid,
        }
    }

    /// The same window with another stride.
    pub const fn stride(self, stride: u32) -> Self {
        Self { stride, ..self }
    }
}

/// Builds a graph layer by layer, inferring each output shape.
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// A graph named `name` with one input of `shape`.
    pub fn new(name: &str, input: Shape) -> Self {
        let tensors = vec![Tensor {
            name: "input".into(),
            shape: input,
            quant: None,
        }];
        Self {
            graph: Graph {
                name: name.into(),
                tensors,
                layers: Vec::new(),
                input: 0,
                output: 0,
                exits: Vec::new(),
                int16: Default::default(),
                int32: Default::default(),
                float32: Default::default(),
                layout: Default::default(),
            },
        }
    }

    /// The shape of tensor `t`.
    pub fn shape(&self, t: TensorId) -> Shape {
        self.graph.tensors[t].shape
    }

    fn push(&mut self, name: &str, op: LayerOp, inputs: Vec<TensorId>, shape: Shape) -> TensorId {
        let output = self.graph.tensors.len();
        self.graph.tensors.push(Tensor {
            name: name.into(),
            shape,
            quant: None,
        });
        self.graph.layers.push(Layer::new(name, op, inputs, output));
        output
    }

    fn window_shape(&self, x: TensorId, win: Win, channels: u32) -> Shape {
        let s = self.shape(x);
        let (_, (h, w)) = Window::new(
            win.kernel,
            (win.stride, win.stride),
            (1, 1),
            win.padding,
            (s.h, s.w),
        );
        Shape::new(s.n, h, w, channels)
    }

    /// A convolution with `filters` outputs (no dilation).
    pub fn conv(
        &mut self,
        name: &str,
        x: TensorId,
        filters: u32,
        win: Win,
        activation: Activation,
    ) -> TensorId {
        let shape = self.window_shape(x, win, filters);
        let (kernel, stride, padding) = (win.kernel, (win.stride, win.stride), win.padding);
        self.push(
            name,
            LayerOp::Conv2d {
                filters,
                kernel,
                stride,
                dilation: (1, 1),
                padding,
                activation,
            },
            vec![x],
            shape,
        )
    }

    /// A depthwise convolution (multiplier 1, no dilation).
    pub fn depthwise(
        &mut self,
        name: &str,
        x: TensorId,
        win: Win,
        activation: Activation,
    ) -> TensorId {
        let shape = self.window_shape(x, win, self.shape(x).c);
        let (kernel, stride, padding) = (win.kernel, (win.stride, win.stride), win.padding);
        self.push(
            name,
            LayerOp::DepthwiseConv2d {
                multiplier: 1,
                kernel,
                stride,
                dilation: (1, 1),
                padding,
                activation,
            },
            vec![x],
            shape,
        )
    }

    /// A dense layer over the flattened input.
    pub fn dense(
        &mut self,
        name: &str,
        x: TensorId,
        units: u32,
        activation: Activation,
    ) -> TensorId {
        let shape = Shape::flat(self.shape(x).n, units);
        self.push(name, LayerOp::Dense { units, activation }, vec![x], shape)
    }

    /// An average pool.
    pub fn avg_pool(&mut self, name: &str, x: TensorId, win: Win) -> TensorId {
        let shape = self.window_shape(x, win, self.shape(x).c);
        self.push(
            name,
            LayerOp::AvgPool {
                kernel: win.kernel,
                stride: (win.stride, win.stride),
                padding: win.padding,
                rounding: Default::default(),
                activation: Activation::None,
            },
            vec![x],
            shape,
        )
    }

    /// A max pool.
    pub fn max_pool(&mut self, name: &str, x: TensorId, win: Win) -> TensorId {
        let shape = self.window_shape(x, win, self.shape(x).c);
        self.push(
            name,
            LayerOp::MaxPool {
                kernel: win.kernel,
                stride: (win.stride, win.stride),
                padding: win.padding,
                activation: Activation::None,
            },
            vec![x],
            shape,
        )
    }

    /// The elementwise sum of two tensors of one shape.
    pub fn add(
        &mut self,
        name: &str,
        a: TensorId,
        b: TensorId,
        activation: Activation,
    ) -> TensorId {
        assert_eq!(
            self.shape(a),
            self.shape(b),
            "add {name}: operands differ in shape"
        );
        let shape = self.shape(a);
        self.push(name, LayerOp::Add { activation }, vec![a, b], shape)
    }

    /// Flattens to `[n, 1, 1, h * w * c]`.
    pub fn flatten(&mut self, name: &str, x: TensorId) -> TensorId {
        let s = self.shape(x);
        self.push(
            name,
            LayerOp::Flatten,
            vec![x],
            Shape::flat(s.n, s.features() as u32),
        )
    }

    /// Concatenates `parts` along NHWC axis `axis` (0..4), one `Insert`
    /// layer per part, as the importers write a CONCATENATION.
    pub fn concat(&mut self, name: &str, parts: &[TensorId], axis: usize) -> TensorId {
        let dims = |s: Shape| [s.n, s.h, s.w, s.c];
        let mut total = dims(self.shape(parts[0]));
        total[axis] = parts.iter().map(|&p| dims(self.shape(p))[axis]).sum();
        let whole = Shape::new(total[0], total[1], total[2], total[3]);
        let output = self.graph.tensors.len();
        self.graph.tensors.push(Tensor {
            name: name.into(),
            shape: whole,
            quant: None,
        });
        let mut before = [0u32; 4];
        for (k, &part) in parts.iter().enumerate() {
            let op = LayerOp::Insert {
                before,
                input_view: self.shape(part),
                output_view: whole,
            };
            let layer = Layer::new(&format!("{name}_{k}"), op, vec![part], output);
            self.graph.layers.push(layer);
            before[axis] += dims(self.shape(part))[axis];
        }
        output
    }

    /// A softmax over channels.
    pub fn softmax(&mut self, name: &str, x: TensorId) -> TensorId {
        let shape = self.shape(x);
        self.push(name, LayerOp::Softmax { beta: 1.0 }, vec![x], shape)
    }

    /// The finished graph, with `output` as its final output.
    pub fn finish(mut self, output: TensorId) -> Graph {
        self.graph.output = output;
        self.graph
    }
}
